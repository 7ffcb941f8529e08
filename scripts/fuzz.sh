#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and fuzzes the safetensors parser for FUZZ_SECONDS
# (default 60). Exits non-zero on any finding (crash, sanitizer report, leak, timeout); the
# reproducer is left in FUZZ_ARTIFACTS (default build-fuzz/artifacts/).
# Usage: scripts/fuzz.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-${FUZZ_SECONDS:-60}}"
build="${FUZZ_BUILD_DIR:-build-fuzz}"
cc="${CC:-clang-14}"
cxx="${CXX:-clang++-14}"

CC="$cc" CXX="$cxx" cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRECUR_FUZZ=ON -DRECUR_TESTS=OFF -DRECUR_CUDA=OFF \
  -DRECUR_WERROR=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target fuzz_safetensors

# Fuzz a copy of the seeds: libFuzzer adds every new input to its first corpus directory.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp tests/fuzz/corpus/* "$work/"
artifacts="${FUZZ_ARTIFACTS:-$build/artifacts}"
mkdir -p "$artifacts"

export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# RECUR_NO_CACHE: every tensor block goes back to malloc, so ASan sees each over-read.
RECUR_NO_CACHE=1 "./$build/fuzz_safetensors" -max_total_time="$seconds" -max_len=4096 -timeout=10 \
  -dict=tests/fuzz/safetensors.dict -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/" "$work"
echo "fuzz_safetensors: no findings in ${seconds}s"
