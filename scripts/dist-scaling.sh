#!/usr/bin/env bash
# Data-parallel scaling on this machine: global tokens/s of training with 1 rank x 1 thread, then 2 ranks x 1
# thread under mpirun. CONFIG: configs/g2p-cmudict.yaml (the default; MINUTES of training, target tokens/s)
# or a sequence-to-vector config such as configs/spam.yaml (EPOCHS whole epochs, default 3; input tokens/s,
# averaged over the epochs).
# Usage: bash scripts/dist-scaling.sh [MINUTES]   (BIN=path/to/recur: the binary; EXTRA="--set k=v ...": overrides
# for both runs; EXTRA2: overrides for the 2-rank run only, e.g. EXTRA2="--set train.batch=128" keeps 64
# examples a rank, as PyTorch DDP's per-GPU batch does; EXTRA2="--set train.balance=speed" splits batches by the
# ranks' measured speeds; TWO_ONLY=1 reruns only the 2-rank run against the 1-rank run already in OUT;
# BIND=core pins each rank to a core, default none; LAUNCH=threads runs the 2 ranks as threads of one process,
# recur train --devices cpu,cpu, instead of 2 processes under mpirun)
set -euo pipefail
cd "$(dirname "$0")/.."
MIN=${1:-1}
BIN=${BIN:-build/bin/recur}
OUT=${OUT:-out/dist-scaling}
CONFIG=${CONFIG:-configs/g2p-cmudict.yaml}
case "$CONFIG" in
  *g2p*) task=(--set train.max_minutes="$MIN" --set train.epochs=1 --set train.valid_limit=50
               --set data.test_words=200 --set data.valid_words=200 --set decode.beam=1) ;;
  *) task=(--set train.epochs="${EPOCHS:-3}" --set train.patience=1000) ;;  # no time budget: EPOCHS epochs
esac
common=(--threads 1 "${task[@]}" ${EXTRA:-})
if [[ -n "${TWO_ONLY:-}" ]]; then  # compare with the 1-rank run already in $OUT
  rm -rf "$OUT/2"
else
  rm -rf "$OUT"
  mkdir -p "$OUT"
  "$BIN" train "$CONFIG" "${common[@]}" --out "$OUT/1" >"$OUT/1.log" 2>&1
fi
if [[ "${LAUNCH:-mpirun}" == threads ]]; then
  "$BIN" train "$CONFIG" "${common[@]}" ${EXTRA2:-} --devices cpu,cpu --out "$OUT/2" >"$OUT/2.log" 2>&1
else
  mpirun --allow-run-as-root --oversubscribe --bind-to "${BIND:-none}" -np 2 \
    "$BIN" train "$CONFIG" "${common[@]}" ${EXTRA2:-} --out "$OUT/2" >"$OUT/2.log" 2>&1
fi
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
def epoch(ranks):  # the first epoch row, with tokens/s averaged over all epochs and the time splits summed
    rows = [json.loads(l) for l in open(f"{out}/{ranks}/metrics.jsonl")]
    rows = [r for r in rows if r.get("kind") == "epoch"]
    first = dict(rows[0])
    first["tokens_per_s"] = sum(r["tokens_per_s"] for r in rows) / len(rows)
    first["time_split"] = {k: sum(r.get("time_split", {}).get(k, 0) for r in rows) for k in rows[0].get("time_split", {})}
    if rows[0].get("rank_compute_s"):
        first["rank_compute_s"] = [sum(r["rank_compute_s"][i] for r in rows) for i in range(len(rows[0]["rank_compute_s"]))]
    return first
def split(row):  # rank 0's step time, in shares of the epoch's training seconds
    t = row.get("time_split", {})
    total = sum(t.values()) or 1
    return "  ".join(f"{k[:-2]} {100 * v / total:4.1f}%" for k, v in t.items())
one, two = epoch(1), epoch(2)
r1, r2 = one["tokens_per_s"], two["tokens_per_s"]
print(f"1 rank x 1 thread : {r1:8.0f} tokens/s           {split(one)}")
print(f"2 ranks x 1 thread: {r2:8.0f} tokens/s  ({r2 / r1:.2f}x)  {split(two)}")
ranks = two.get("rank_compute_s", [])
if ranks:
    print("2 ranks: forward+backward seconds per rank: " + ", ".join(f"{v:.1f}" for v in ranks))
PY
