#!/usr/bin/env python3
"""recur's GPU suite beside PyTorch (cuDNN) in the same run, on the same GPU.

Runs `recur bench --device cuda --json` (the ANCHORS.md GPU cases), then times PyTorch's nn.LSTM/GRU
on the same shapes -- for the variable-length cases with the very lengths recur used, both packed
(pack_padded_sequence) and padded -- with CUDA events after warm-up, median of repeats. Prints a
table of milliseconds and recur/PyTorch ratios and writes everything to $OUT/bench_gpu.json.

    python3 bench/compare_gpu.py --recur build/bin/recur [--repeats 20]
"""
import argparse
import json
import os
import subprocess
import sys


def torch_time(torch, fn, warm, rep):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    s = torch.cuda.Event(enable_timing=True)
    e = torch.cuda.Event(enable_timing=True)
    ts = []
    for _ in range(rep):
        s.record()
        fn()
        e.record()
        torch.cuda.synchronize()
        ts.append(s.elapsed_time(e))
    ts.sort()
    return ts[len(ts) // 2]


def torch_case(torch, c, rep, cudnn_tf32):
    # PyTorch's defaults: cudnn.allow_tf32 True (cuDNN's RNN may use TF32), matmul TF32 off.
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = cudnn_tf32
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[c["cell"]]
    m = cls(c["input"], c["hidden"], num_layers=c["layers"], bidirectional=c["bidirectional"]).cuda()
    T, B = c["steps"], c["batch"]
    x = torch.randn(T, B, c["input"], device="cuda", requires_grad=True)
    lengths = c.get("length_values")
    res = {}

    def fwd():
        with torch.no_grad():
            m(x)

    def fwdbwd():
        o, _ = m(x)
        o.sum().backward()

    res["torch_fwd_ms"] = torch_time(torch, fwd, 5, rep)
    res["torch_fwdbwd_ms"] = torch_time(torch, fwdbwd, 5, rep)
    if lengths is not None:
        ls = torch.tensor(sorted(lengths, reverse=True))

        def packed_fwdbwd():
            p = torch.nn.utils.rnn.pack_padded_sequence(x, ls, enforce_sorted=True)
            o, _ = m(p)
            o.data.sum().backward()

        res["torch_packed_fwdbwd_ms"] = torch_time(torch, packed_fwdbwd, 5, rep)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--recur", default="build/bin/recur")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    out_dir = os.environ.get("OUT", "/tmp")
    run = subprocess.run([args.recur, "bench", "--device", args.device, "--json", "--repeats", str(args.repeats)],
                         capture_output=True, text=True)
    if run.returncode != 0:
        print(run.stdout, run.stderr, file=sys.stderr)
        sys.exit("recur bench failed")
    cases = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    try:
        import torch
        have_torch = torch.cuda.is_available()
    except ImportError:
        have_torch = False
    rows = []
    for c in cases:
        r = dict(c)
        if have_torch:
            r.update(torch_case(torch, c, args.repeats, True))
            strict = torch_case(torch, c, args.repeats, False)
            r.update({k.replace("torch_", "torch_strict_"): v for k, v in strict.items()})
            r["torch"] = torch.__version__
            r["cudnn"] = torch.backends.cudnn.version()
        rows.append(r)
    json.dump(rows, open(os.path.join(out_dir, "bench_gpu.json"), "w"), indent=1)
    gpu = cases[0].get("gpu", "?") if cases else "?"
    print(f"\n{gpu}: recur vs PyTorch {rows[0].get('torch', '-') if rows else ''} (cuDNN {rows[0].get('cudnn', '-') if rows else ''}),"
          f" fp32 (recur TF32 off; torch = PyTorch defaults, strict = cudnn.allow_tf32 off), median of {args.repeats};"
          f" cuBLAS sgemm {cases[0]['sgemm_gflops'] / 1e3:.1f} TFLOP/s")
    print(f"{'case':44} {'fwd/bwd path':22} {'fwd ms':>8} {'torch':>8} {'ratio':>6} | {'f+b ms':>8} {'torch':>8} {'ratio':>6}")
    for r in rows:
        name = (f"{r['cell']} I{r['input']} H{r['hidden']} T{r['steps']} B{r['batch']} L{r['layers']}"
                f" {r['lengths']}{' padded' if r['padded'] else ''}")
        tf, tb = r.get("torch_fwd_ms"), r.get("torch_fwdbwd_ms")
        # The variable-length packed case is held against cuDNN's padded time (its fastest).
        path = f"{r.get('rnn_path', '')}/{r.get('rnn_backward_path', '')}"
        line = (f"{name:44} {path:22} {r['fwd_ms']:8.3f} {tf or 0:8.3f} {r['fwd_ms'] / tf if tf else 0:6.2f} |"
                f" {r['fwdbwd_ms']:8.3f} {tb or 0:8.3f} {r['fwdbwd_ms'] / tb if tb else 0:6.2f}")
        if "torch_strict_fwd_ms" in r:
            line += f" | strict {r['torch_strict_fwd_ms']:.3f} / {r['torch_strict_fwdbwd_ms']:.3f}"
        if "torch_packed_fwdbwd_ms" in r:
            line += f" | torch packed f+b {r['torch_packed_fwdbwd_ms']:.3f}"
        print(line)


if __name__ == "__main__":
    main()
