#!/usr/bin/python3
"""recur's Conv2d next to PyTorch's on this machine, in one sitting: prints a markdown table for
docs/BENCHMARKS.md.

  /usr/bin/python3 bench/compare_conv.py [--recur build/bin/recur] [--threads 2] [--rounds 3]

Each round runs `recur bench conv --json` (its conv suite, with the same run's sgemm rate) and then
the same layers in PyTorch (torch.nn.Conv2d with bias, float32, forward under no_grad, and forward +
backward with x requiring grad, as recur times them); every figure is the median over the rounds.
Needs a python with torch (Debian's python3-torch).
"""
import argparse
import json
import statistics
import subprocess
import time


def run_recur(binary, threads):
    out = subprocess.run([binary, "bench", "conv", "--threads", str(threads), "--json", "--repeats", "7"],
                         check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def median_ms(fn, repeats=7):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def run_torch(case, torch):
    conv = torch.nn.Conv2d(case["channels"], case["out"], case["kernel"], stride=case["stride"],
                           padding=case["padding"], dilation=case["dilation"], bias=True)
    x = torch.randn(case["batch"], case["channels"], case["height"], case["width"], requires_grad=True)

    def fwd():
        with torch.no_grad():
            conv(x)

    def fwdbwd():
        conv.zero_grad()
        x.grad = None
        y = conv(x)
        y.backward(torch.ones_like(y))

    return median_ms(fwd), median_ms(fwdbwd)


def name(c):
    return (f"N{c['batch']} C{c['channels']} {c['height']}x{c['width']} O{c['out']} "
            f"k{c['kernel']} s{c['stride']} p{c['padding']}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--recur", default="build/bin/recur")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    rows = {}
    for _ in range(args.rounds):
        for c in run_recur(args.recur, args.threads):
            r = rows.setdefault(name(c), {"case": c, "recur_fwd": [], "recur_fb": [], "frac_fwd": [], "frac_fb": [],
                                          "torch_fwd": [], "torch_fb": [], "sgemm": []})
            r["recur_fwd"].append(c["fwd_ms"])
            r["recur_fb"].append(c["fwdbwd_ms"])
            r["frac_fwd"].append(c["fwd_frac_sgemm"])
            r["frac_fb"].append(c["fwdbwd_frac_sgemm"])
            r["sgemm"].append(c["sgemm_gflops"])
            tf, tb = run_torch(c, torch)
            r["torch_fwd"].append(tf)
            r["torch_fb"].append(tb)
    med = statistics.median
    sgemm = med([s for r in rows.values() for s in r["sgemm"]])
    print(f"recur sgemm 2048^3: {sgemm:.0f} GFLOP/s; PyTorch {torch.__version__}, {args.threads} threads, "
          f"median of {args.rounds} rounds")
    print()
    print("| case | recur fwd ms | recur fwd+bwd ms | recur fwd / sgemm | recur fwd+bwd / sgemm "
          "| PyTorch fwd ms | PyTorch fwd+bwd ms | recur speed-up fwd / fwd+bwd |")
    print("|---|---|---|---|---|---|---|---|")
    for key, r in rows.items():
        rf, rb, tf, tb = med(r["recur_fwd"]), med(r["recur_fb"]), med(r["torch_fwd"]), med(r["torch_fb"])
        print(f"| {key} | {rf:.2f} | {rb:.2f} | {100 * med(r['frac_fwd']):.0f}% | {100 * med(r['frac_fb']):.0f}% "
              f"| {tf:.2f} | {tb:.2f} | {tf / rf:.1f}x / {tb / rb:.1f}x |")


if __name__ == "__main__":
    main()
