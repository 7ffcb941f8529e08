#!/usr/bin/env python3
"""Compares the per-step training loss of two runs (metrics.jsonl with train.log_every: 1).

    python3 bench/compare_curves.py out/cpu/metrics.jsonl out/cuda/metrics.jsonl --steps 50 --name spam

Prints the largest relative difference over the first N steps and exits 1 when it exceeds --rtol.
"""
import argparse
import json
import sys


def steps(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    return {r["step"]: r["train_loss"] for r in rows if r.get("kind") == "step"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--rtol", type=float, default=2e-3)
    ap.add_argument("--name", default="")
    args = ap.parse_args()
    a, b = steps(args.a), steps(args.b)
    common = sorted(set(a) & set(b))[: args.steps]
    if len(common) < args.steps:
        print(f"{args.name}: only {len(common)} common logged steps (need {args.steps})")
        sys.exit(1)
    worst = max(abs(a[s] - b[s]) / max(abs(a[s]), 1e-6) for s in common)
    ok = worst <= args.rtol
    print(f"{args.name:14} steps 1-{common[-1]}: loss {a[common[0]]:.4f} -> {a[common[-1]]:.4f} (cpu) vs "
          f"{b[common[0]]:.4f} -> {b[common[-1]]:.4f} (cuda); max rel diff {worst:.2e} {'OK' if ok else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
