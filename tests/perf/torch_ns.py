#!/usr/bin/python3
"""Time quintic Newton-Schulz (NS5) written in torch 1.13, for comparison
with liboptim's engine (optim-bench --ns).  The iteration is the usual
X @ X.T form: A = X X^T; B = bA + cA^2; X = aX + BX, on the transposed
matrix when rows > cols, after dividing by the Frobenius norm.

    /usr/bin/python3 tests/perf/torch_ns.py [--shape 1024x4096 ...]
        [--threads T] [--iters 10] [--warmup 2] [--dtype float32|float64]

Prints one line per shape:
    torch-1.13 ns5 1024x4096 float32 threads=2 ms=12.3 GFLOPs=456.7
GFLOP/s counts the flops of the three general products, 5*(4k^2n + 2k^3)
with k = min(rows, cols), n = max(rows, cols).
"""
import argparse
import statistics
import time

import torch

A_, B_, C_ = 3.4445, -4.7750, 2.0315


def ns5(G, steps=5):
    X = G
    if G.size(0) > G.size(1):
        X = X.T
    X = X / (X.norm() + 1e-7)
    for _ in range(steps):
        A = X @ X.T
        B = B_ * A + C_ * (A @ A)
        X = A_ * X + B @ X
    if G.size(0) > G.size(1):
        X = X.T
    return X


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", action="append",
                    help="ROWSxCOLS (repeatable; default 1024x1024, "
                         "1024x4096, 1024x8192)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--dtype", default="float32",
                    choices=["float32", "float64"])
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    shapes = args.shape or ["1024x1024", "1024x4096", "1024x8192"]
    gen = torch.Generator().manual_seed(0)
    for shape in shapes:
        r, c = (int(v) for v in shape.lower().split("x"))
        G = torch.randn(r, c, generator=gen, dtype=dtype)
        times = []
        for i in range(args.warmup + args.iters):
            t0 = time.perf_counter()
            ns5(G)
            t1 = time.perf_counter()
            if i >= args.warmup:
                times.append(t1 - t0)
        ms = statistics.median(times) * 1e3
        k, n = min(r, c), max(r, c)
        flops = 5 * (4 * k * k * n + 2 * k ** 3)
        print(f"torch-1.13 ns5 {r}x{c} {args.dtype} "
              f"threads={torch.get_num_threads()} ms={ms:.3f} "
              f"GFLOPs={flops / (ms * 1e-3) / 1e9:.1f}")


if __name__ == "__main__":
    main()
