#!/usr/bin/env bash
# Builds small real-data subsets for scripts/gpu-check.sh under .gpu/data (git-ignored), so that the
# GPU machine (no network) can train every model config for 50 steps on CPU and GPU:
#   fashion-mnist: the first 4,000 training and 1,000 test images (idx, gzip);
#   births: the whole CSV (small); spam: every 8th mail of each SpamAssassin group.
# Needs the data sets in the cache (recur data fetch fashion-mnist births spam).
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${XDG_CACHE_HOME:-$HOME/.cache}/recur
out=.gpu/data
rm -rf "$out" && mkdir -p "$out/fashion-mnist" "$out/births/data" "$out/spam/data"
python3 - "$cache/fashion-mnist" "$out/fashion-mnist" <<'PY'
import gzip, struct, sys
src, dst = sys.argv[1], sys.argv[2]
def cut(name, n):
    raw = gzip.open(f"{src}/{name}").read()
    magic, count = struct.unpack(">II", raw[:8])
    dims = (magic & 0xff)
    shape = struct.unpack(">" + "I" * dims, raw[4:4 + 4 * dims])
    per = 1
    for d in shape[1:]: per *= d
    head = raw[:4] + struct.pack(">I", n) + raw[8:4 + 4 * dims]
    body = raw[4 + 4 * dims: 4 + 4 * dims + n * per]
    with gzip.open(f"{dst}/{name}", "wb") as f: f.write(head + body)
cut("train-images-idx3-ubyte.gz", 4000); cut("train-labels-idx1-ubyte.gz", 4000)
cut("t10k-images-idx3-ubyte.gz", 1000); cut("t10k-labels-idx1-ubyte.gz", 1000)
PY
cp "$cache/births/data/data.csv" "$out/births/data/"
for g in "$cache"/spam/data/*/; do
  name=$(basename "$g"); mkdir -p "$out/spam/data/$name"
  ls "$g" | grep '\.json$' | sort | awk "NR % 8 == 1" | while read -r f; do cp "$g/$f" "$out/spam/data/$name/"; done
done
du -sh "$out"/*
