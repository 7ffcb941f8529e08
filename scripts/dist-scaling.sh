#!/usr/bin/env bash
# Data-parallel scaling on this machine: global target tokens/s of G2P training (configs/g2p-cmudict.yaml)
# with 1 rank x 1 thread, then 2 ranks x 1 thread under mpirun, each for MINUTES of training.
# Usage: bash scripts/dist-scaling.sh [MINUTES]   (BIN=path/to/recur: the binary; EXTRA="--set k=v ...": overrides
# for both runs; EXTRA2: overrides for the 2-rank run only, e.g. EXTRA2="--set train.batch=128" keeps 64
# examples a rank, as PyTorch DDP's per-GPU batch does; EXTRA2="--set train.balance=speed" splits batches by the
# ranks' measured speeds; TWO_ONLY=1 reruns only the 2-rank run against the 1-rank run already in OUT;
# BIND=core pins each rank to a core, default none)
set -euo pipefail
cd "$(dirname "$0")/.."
MIN=${1:-1}
BIN=${BIN:-build/bin/recur}
OUT=${OUT:-out/dist-scaling}
common=(--threads 1 --set train.max_minutes="$MIN" --set train.epochs=1 --set train.valid_limit=50
        --set data.test_words=200 --set data.valid_words=200 --set decode.beam=1 ${EXTRA:-})
if [[ -n "${TWO_ONLY:-}" ]]; then  # compare with the 1-rank run already in $OUT
  rm -rf "$OUT/2"
else
  rm -rf "$OUT"
  mkdir -p "$OUT"
  "$BIN" train configs/g2p-cmudict.yaml "${common[@]}" --out "$OUT/1" >"$OUT/1.log" 2>&1
fi
mpirun --allow-run-as-root --oversubscribe --bind-to "${BIND:-none}" -np 2 \
  "$BIN" train configs/g2p-cmudict.yaml "${common[@]}" ${EXTRA2:-} --out "$OUT/2" >"$OUT/2.log" 2>&1
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
def epoch(ranks):
    rows = [json.loads(l) for l in open(f"{out}/{ranks}/metrics.jsonl")]
    return [r for r in rows if r.get("kind") == "epoch"][0]
def split(row):  # rank 0's step time, in shares of the epoch's training seconds
    t = row.get("time_split", {})
    total = sum(t.values()) or 1
    return "  ".join(f"{k[:-2]} {100 * v / total:4.1f}%" for k, v in t.items())
one, two = epoch(1), epoch(2)
r1, r2 = one["tokens_per_s"], two["tokens_per_s"]
print(f"1 rank x 1 thread : {r1:8.0f} target tokens/s           {split(one)}")
print(f"2 ranks x 1 thread: {r2:8.0f} target tokens/s  ({r2 / r1:.2f}x)  {split(two)}")
ranks = two.get("rank_compute_s", [])
if ranks:
    print("2 ranks: forward+backward seconds per rank: " + ", ".join(f"{v:.1f}" for v in ranks))
PY
