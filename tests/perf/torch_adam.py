#!/usr/bin/python3
"""Time torch 1.13 CPU optimizer steps, for comparison with liboptim.

    /usr/bin/python3 tests/perf/torch_adam.py [--params 64M] [--tensors 8]
        [--threads T] [--iters 10] [--warmup 2] [--alg adamw|sgd|adagrad|all]

Prints one line per configuration, e.g.

    torch-1.13 adamw foreach=0 params=67108864 threads=2 step_ms=123.4 GBps=12.3

step_ms is the median over the timed iterations; GBps counts only the
optimizer's own float32 streams per parameter: AdamW 7 (read p,g,m,v; write
p,m,v), SGD with momentum 5 (read p,g,b; write p,b), Adagrad 5 (read p,g,s;
write p,s).
"""
import argparse
import statistics
import time

import torch

STREAMS = {"adamw": 7, "sgd": 5, "adagrad": 5}


def count(text):
    """Parse a count with an optional K/M/G (binary) suffix: 64M = 64*2^20."""
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:].upper())
    return int(text[:-1]) * mult if mult else int(text)


def make_optimizer(alg, params, foreach):
    if alg == "adamw":
        return torch.optim.AdamW(params, lr=1e-3, foreach=foreach)
    if alg == "sgd":
        return torch.optim.SGD(params, lr=1e-2, momentum=0.9, foreach=foreach)
    return torch.optim.Adagrad(params, lr=1e-2, foreach=foreach)


def bench(alg, foreach, args):
    sizes = [args.params // args.tensors + (i < args.params % args.tensors)
             for i in range(args.tensors)]
    params = [torch.randn(n) for n in sizes]
    for p in params:
        p.grad = torch.randn_like(p)  # filled once, reused every step
    opt = make_optimizer(alg, params, foreach)
    for _ in range(args.warmup):
        opt.step()
    times = []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        opt.step()
        times.append(time.perf_counter() - t0)
    sec = statistics.median(times)
    gbps = STREAMS[alg] * 4 * args.params / sec / 1e9
    print("torch-1.13 %s foreach=%d params=%d threads=%d step_ms=%.1f GBps=%.1f"
          % (alg, foreach, args.params, torch.get_num_threads(), sec * 1e3,
             gbps), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--params", type=count, default=64 << 20)
    ap.add_argument("--tensors", type=int, default=8)
    ap.add_argument("--threads", type=int, default=0,
                    help="torch.set_num_threads (0: torch's default)")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--alg", default="all",
                    choices=["adamw", "sgd", "adagrad", "all"])
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    configs = [("adamw", False), ("adamw", True), ("sgd", False),
               ("adagrad", False)]
    for alg, foreach in configs:
        if args.alg in (alg, "all"):
            bench(alg, foreach, args)


if __name__ == "__main__":
    main()
