#!/usr/bin/env bash
# The GPU check, in one call on a CUDA machine (H100/H200): configure and build for sm_90, run the
# GPU tests, train each model config 50 steps on CPU and GPU and compare the loss curves, and run
# the GPU benchmark beside PyTorch (cuDNN), ending with a short table. Logs go to $OUT (default
# /tmp/gpu-check). Needs .gpu/data from scripts/gpu-data.sh (real-data subsets; the GPU machine has
# no network). If the machine lacks a build dependency, a prebuilt .gpu/prebuilt (see
# scripts/gpu-prebuilt.sh) is used instead of the local build.
#
#   bash scripts/gpu-check.sh            # everything (about 90 s on an H200 with PREBUILT=1)
#   STAGES="build tests" bash scripts/gpu-check.sh
#   PREBUILT=1 bash scripts/gpu-check.sh # skip the build, use .gpu/prebuilt
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
STAGES=${STAGES:-"build tests curves bench paths"}
BUILD=${BUILD:-build-gpu}
JOBS=${JOBS:-$(nproc)}
summary=()
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
has() { [[ " $STAGES " == *" $1 "* ]]; }

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader | tee "$OUT/gpu.txt"

BIN=$BUILD/bin/recur
TESTS=$BUILD/recur_tests
use_prebuilt() {
  export LD_LIBRARY_PATH=$PWD/.gpu/prebuilt/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  BIN=.gpu/prebuilt/recur
  TESTS=.gpu/prebuilt/recur_tests
}
if [ "${PREBUILT:-0}" = 1 ]; then
  use_prebuilt
  summary+=("build: prebuilt (.gpu/prebuilt, built by scripts/gpu-prebuilt.sh)")
elif has build; then
  gen=()
  command -v ninja >/dev/null && gen=(-G Ninja)
  if cmake -S . -B "$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DRECUR_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
       -DRECUR_WERROR=OFF >"$OUT/configure.log" 2>&1 &&
     cmake --build "$BUILD" -j "$JOBS" --target recur_cli recur_tests >"$OUT/build.log" 2>&1; then
    stamp "built in $BUILD"
    summary+=("build: ok (local)")
  elif [ -x .gpu/prebuilt/recur ]; then
    tail -5 "$OUT/configure.log" "$OUT/build.log" 2>/dev/null
    stamp "local build failed; using .gpu/prebuilt"
    use_prebuilt
    summary+=("build: FAILED locally, prebuilt used")
  else
    tail -30 "$OUT/configure.log" "$OUT/build.log" 2>/dev/null
    echo "gpu-check: build failed and no .gpu/prebuilt"
    exit 1
  fi
fi

if has tests; then
  stamp "GPU tests"
  timeout 180 "$TESTS" --gtest_filter='*Cuda*:*Gpu*' --gtest_brief=1 >"$OUT/tests.log" 2>&1
  rc=$?
  grep -E "^\[  (PASSED|FAILED|SKIPPED) " "$OUT/tests.log" | head -40
  grep -B2 -A12 "Failure" "$OUT/tests.log" | head -120
  summary+=("gpu tests: $(grep -E '^\[  PASSED' "$OUT/tests.log" | head -1) rc=$rc")
fi

if has curves; then
  stamp "50-step loss curves, CPU vs GPU"
  run_pair() {  # name config data_dir extra-sets...
    local name=$1 cfg=$2 dir=$3
    shift 3
    for dev in cpu cuda; do
      rm -rf "out/gpu-check/$name-$dev"
      timeout 300 "$BIN" train "$cfg" --device "$dev" --threads 8 --out "out/gpu-check/$name-$dev" \
        --set data.dir="$dir" --set train.log_every=1 --set train.patience=100 "$@" \
        >"$OUT/train-$name-$dev.log" 2>&1 || { echo "$name on $dev failed:"; tail -5 "$OUT/train-$name-$dev.log"; }
    done
    python3 bench/compare_curves.py "out/gpu-check/$name-cpu/metrics.jsonl" "out/gpu-check/$name-cuda/metrics.jsonl" \
      --steps 50 --name "$name" | tee -a "$OUT/curves.txt"
  }
  : >"$OUT/curves.txt"
  run_pair fashion-rows configs/fashion-rows-short.yaml .gpu/data/fashion-mnist --set train.epochs=1
  run_pair births configs/births.yaml .gpu/data/births --set train.epochs=1
  run_pair spam configs/spam.yaml .gpu/data/spam --set train.epochs=4
  # The video model's frame CNN (convolutions, pooling, group norm) end to end: single Fashion-MNIST
  # images as one-frame clips need no OpenCV, which the GPU image lacks.
  run_pair fashion-frames configs/fashion-frames.yaml .gpu/data/fashion-mnist --set train.epochs=1 --set model.dropout=0
  summary+=("curves: $(grep -c OK "$OUT/curves.txt") of 4 within tolerance")
fi

if has bench; then
  stamp "benchmark beside PyTorch"
  PYTHONUNBUFFERED=1 timeout 300 python3 bench/compare_gpu.py --recur "$BIN" --repeats 20 2>&1 | tee "$OUT/bench.txt"
fi

if has paths; then
  stamp "backward paths and TF32 (LSTM I256 H512 T100: B64 fixed, B64 lengths 10..100; I512 B1)"
  : >"$OUT/paths.jsonl"
  for m in persistent splitk cublas; do
    for args in "" "--lengths uniform:10:100" "--batch 1 --input 512"; do
      # shellcheck disable=SC2086
      RECUR_RNN_BACKWARD=$m timeout 60 "$BIN" bench rnn --device cuda --repeats 20 --json $args >>"$OUT/paths.jsonl"
    done
  done
  timeout 60 "$BIN" bench --allow-tf32 rnn --device cuda --repeats 20 --json >>"$OUT/paths.jsonl"
  python3 - "$OUT/paths.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    if line.startswith("{"):
        j = json.loads(line)
        print(f"  {j['rnn_path']}/{j['rnn_backward_path']:10} B{j['batch']:<3} {j['lengths']:15} tf32={j['allow_tf32']!s:5}"
              f" fwd {j['fwd_ms']:.3f} ms  fwd+bwd {j['fwdbwd_ms']:.3f} ms")
PY
fi

stamp "done"
printf '%s\n' "${summary[@]}"
