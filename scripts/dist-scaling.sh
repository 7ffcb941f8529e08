#!/usr/bin/env bash
# Data-parallel scaling on this machine: global target tokens/s of G2P training (configs/g2p-cmudict.yaml)
# with 1 rank x 1 thread, then 2 ranks x 1 thread under mpirun, each for MINUTES of training.
# Usage: bash scripts/dist-scaling.sh [MINUTES]   (BIN=path/to/recur: the binary; EXTRA="--set k=v ...": overrides)
set -euo pipefail
cd "$(dirname "$0")/.."
MIN=${1:-1}
BIN=${BIN:-build/bin/recur}
OUT=${OUT:-out/dist-scaling}
rm -rf "$OUT"
mkdir -p "$OUT"
common=(--threads 1 --set train.max_minutes="$MIN" --set train.epochs=1 --set train.valid_limit=50
        --set data.test_words=200 --set data.valid_words=200 --set decode.beam=1 ${EXTRA:-})
"$BIN" train configs/g2p-cmudict.yaml "${common[@]}" --out "$OUT/1" >"$OUT/1.log" 2>&1
mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 \
  "$BIN" train configs/g2p-cmudict.yaml "${common[@]}" --out "$OUT/2" >"$OUT/2.log" 2>&1
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
def rate(ranks):
    rows = [json.loads(l) for l in open(f"{out}/{ranks}/metrics.jsonl")]
    return [r for r in rows if r.get("kind") == "epoch"][0]["target_tokens_per_s"]
one, two = rate(1), rate(2)
print(f"1 rank x 1 thread : {one:8.0f} target tokens/s")
print(f"2 ranks x 1 thread: {two:8.0f} target tokens/s  ({two / one:.2f}x)")
PY
