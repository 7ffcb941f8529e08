#!/usr/bin/python3
"""recur next to PyTorch on this machine, in one sitting: prints the markdown table of
docs/BENCHMARKS.md.

  /usr/bin/python3 bench/compare_cpu.py [--recur build/bin/recur] [--anchor ../shared/bench/anchor_cpu.py]
                                        [--threads 2] [--rounds 3] [--torch-env OPENBLAS_CORETYPE=SkylakeX]

recur's standard suite runs `rounds` times, interleaved with PyTorch's anchor script (which must be
run by a python that has torch, e.g. Debian's python3-torch); every figure is the median over the
rounds, and each ratio uses the sgemm rate measured in the same round.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys


def run_recur(binary, threads):
    out = subprocess.run([binary, "bench", "--threads", str(threads), "--json", "--repeats", "7"],
                         check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def run_torch(anchor, threads, env):
    full_env = dict(os.environ, **dict(kv.split("=", 1) for kv in env))
    out = subprocess.run(["/usr/bin/python3", anchor, str(threads)], check=True, capture_output=True, text=True,
                         env=full_env).stdout
    return json.loads(out)


def key(c):
    name = f"{c['cell'].upper()} I{c['input']} H{c['hidden']} T{c['steps']} B{c['batch']}"
    if c["lengths"] != "fixed":
        name += f" lengths {c['lengths']}" + (" padded" if c["padded"] else " packed")
    return name


def torch_key(c):
    return f"{c['cell'].upper()}x1_I{c['input']}_H{c['hidden']}_T{c['steps']}_B{c['batch']}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--recur", default="build/bin/recur")
    ap.add_argument("--anchor", default="../shared/bench/anchor_cpu.py")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--torch-env", nargs="*", default=[], help="VAR=VALUE settings for the PyTorch runs only")
    a = ap.parse_args()
    rec, tor = {}, []
    for r in range(a.rounds):
        for c in run_recur(a.recur, a.threads):
            rec.setdefault(key(c), []).append(c)
        tor.append(run_torch(a.anchor, a.threads, a.torch_env))
        print(f"round {r + 1}/{a.rounds} done", file=sys.stderr)
    med = lambda xs: statistics.median(xs)
    sg = med([c["sgemm_gflops"] for cs in rec.values() for c in cs])
    tsg = med([t["sgemm_2048_GFLOPs"] for t in tor])
    print(f"recur sgemm 2048^3 (OpenBLAS {next(iter(rec.values()))[0]['blas_core']} kernels, {a.threads} threads): "
          f"{sg:.0f} GFLOP/s; PyTorch {tor[0]['torch']} sgemm: {tsg:.0f} GFLOP/s\n")
    print("| case | recur fwd ms | recur fwd+bwd ms | recur fwd / sgemm | recur fwd+bwd / sgemm | peak MB "
          "| PyTorch fwd ms | PyTorch fwd+bwd ms | speed-up fwd / fwd+bwd |")
    print("|---|---|---|---|---|---|---|---|---|")
    for k, cs in rec.items():
        f, fb = med([c["fwd_ms"] for c in cs]), med([c["fwdbwd_ms"] for c in cs])
        ff, fbf = med([c["fwd_frac_sgemm"] for c in cs]), med([c["fwdbwd_frac_sgemm"] for c in cs])
        peak = med([c["peak_bytes"] for c in cs]) / 1e6
        c0 = cs[0]
        tf = tfb = None
        if c0["lengths"] == "fixed":
            ts = [t.get(torch_key(c0)) for t in tor]
            if all(ts):
                tf, tfb = med([t["fwd_ms"] for t in ts]), med([t["fwdbwd_ms"] for t in ts])
        else:
            tfb = med([t["varlen_padded_fwdbwd_ms" if c0["padded"] else "varlen_packed_fwdbwd_ms"] for t in tor])
        fmt = lambda v: "–" if v is None else f"{v:.1f}"
        sp = " / ".join("–" if t is None else f"{t / m:.1f}x" for t, m in ((tf, f), (tfb, fb)))
        print(f"| {k} | {f:.1f} | {fb:.1f} | {100 * ff:.0f}% | {100 * fbf:.0f}% | {peak:.0f} | {fmt(tf)} | {fmt(tfb)} | {sp} |")


if __name__ == "__main__":
    main()
