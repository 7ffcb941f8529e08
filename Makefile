# recur's front door. `make demo` and `make test` are the README's two commands.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Release

.PHONY: all setup build test test-asan test-tsan fuzz demo bench gpu-check clean

all: build

$(BUILD)/.setup-done: scripts/setup.sh
	bash scripts/setup.sh
	@mkdir -p $(BUILD) && touch $@

setup: $(BUILD)/.setup-done

build: setup
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

# Configure, build and run every unit test.
test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The unit tests under AddressSanitizer + UndefinedBehaviorSanitizer (separate build dir). This build
# leaves the CUDA backend out (the host code is what the sanitizers check, and it proves the build
# without CUDA); `make test` compiles and links the CUDA backend.
test-asan: setup
	cmake -S . -B $(BUILD)-asan -DCMAKE_BUILD_TYPE=Debug -DRECUR_SANITIZE=ON -DRECUR_CUDA=OFF
	cmake --build $(BUILD)-asan -j $(JOBS) --target recur_tests recur_cli
	cd $(BUILD)-asan && RECUR_NO_CACHE=1 ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS)

# The unit tests under ThreadSanitizer (separate build dir, no CUDA, no MPI: OpenMPI's own threads
# are not instrumented). For the thread pool and data-parallel replicas run as threads
# (dist::ThreadWorld, recur train --devices); about 9 minutes on 2 cores. Not part of .ci/run.
test-tsan: setup
	cmake -S . -B $(BUILD)-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRECUR_CUDA=OFF -DRECUR_MPI=OFF \
	  -DCMAKE_CXX_FLAGS=-fsanitize=thread -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread
	cmake --build $(BUILD)-tsan -j $(JOBS) --target recur_tests recur_cli
	cd $(BUILD)-tsan && ctest --output-on-failure -j $(JOBS)

# libFuzzer on the safetensors reader for FUZZ_SECONDS (default 60).
fuzz: setup
	bash scripts/fuzz.sh

# Fetches CMUdict and trains a short grapheme-to-phoneme model (a few minutes): falling loss,
# validation WER per epoch, test WER/PER with greedy decoding and beam search; then translates a
# handful of words into phonemes. (`recur demo` trains on generated data instead, with no download.)
DEMO_WORDS ?= hello world recurrent network phoneme toolkit
demo: build
	$(BUILD)/bin/recur data fetch cmudict
	$(BUILD)/bin/recur train configs/g2p-demo.yaml --out out/demo
	@printf '%s\n' $(DEMO_WORDS) > out/demo/words.txt
	@echo "word -> phonemes (beam 5):"
	@$(BUILD)/bin/recur translate --checkpoint out/demo/best.safetensors --input out/demo/words.txt | paste out/demo/words.txt -

bench: build
	$(BUILD)/bin/recur bench --threads 2

# On a CUDA machine: GPU tests, 50-step CPU/GPU loss curves, GPU benchmark beside PyTorch.
gpu-check:
	bash scripts/gpu-check.sh

clean:
	rm -rf $(BUILD) $(BUILD)-asan build-fuzz
