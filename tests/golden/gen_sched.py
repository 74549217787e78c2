#!/usr/bin/python3
"""Golden learning-rate schedules for tests/check_schedule.c.

    /usr/bin/python3 tests/golden/gen_sched.py > tests/golden/sched.txt

Needs Debian's python3-torch 1.13, python3-numpy and python3-scipy.  The
file format is described in tests/golden/README ("Schedules").

  * torch forms: torch.optim.lr_scheduler (StepLR, ExponentialLR, LinearLR,
    CosineAnnealingLR, SequentialLR of LinearLR then CosineAnnealingLR or
    LinearLR) on an optimizer with lr = 1, so the lr is the factor.  The
    file holds torch's closed forms (_get_closed_form_lr at last_epoch = t;
    for SequentialLR the closed form of the scheduler SequentialLR.step
    runs at t, at t - milestone after it), and the script asserts that the
    recursive values of actually stepping the schedulers agree with them
    to 1e-9 (they accumulate rounding: one multiplication per step).
  * transformers forms (form=hf): get_cosine_schedule_with_warmup's and
    get_linear_schedule_with_warmup's lambdas, re-implemented below from
    their published formulas (transformers is not installed), run through
    torch's LambdaLR.
  * wsd: our definition (optim_schedule_eval(3)), implemented below.
  * the refined schedule: our re-implementation, with numpy and scipy, of
    the procedure of facebookresearch/adaptive_scheduling (visual.py and
    find_schedule.py at 37a8a9b): the norms linearly resampled to a
    10,000-point grid when shorter, a median filter of width 1001 after
    reflect-padding the end by 2002 points, cropped, resampled to the grid,
    weights G^-2 (norm 2) or G^-1 (norm 1), w_t * sum_{p>t} w_p / w_last
    with the last value 0, normalised by the maximum; then (ours) resampled
    to the number of steps asked for and normalised by the maximum again.

Self-checks on stderr (asserted): scipy's median filter against a direct
median with the padding written out; constant norms give 1 - t/(steps-1)
(to 1e-12: the tail sums accumulate rounding);
multiplying the norms by a power of two changes no bit of the schedule
(the C library rescales the norms that way).
"""
import math
import sys
import warnings

import numpy as np
import torch
from scipy.ndimage import median_filter

torch.set_default_dtype(torch.float64)
# Stepping schedulers without an optimizer step, and SequentialLR.step(0), warn.
warnings.filterwarnings("ignore", category=UserWarning, module="torch.optim.lr_scheduler")

out = []


def hexf(x):
    return float(x).hex()


def emit_eval(spec, values, steps):
    for t in steps:
        out.append(f"eval {spec} {t} {hexf(values(t))}")


# ------------------------------------------------------------------ torch

def optimizer():
    p = torch.zeros(1, requires_grad=True)
    return torch.optim.SGD([p], lr=1.0)


def closed(sched, t):
    """torch's closed form of one scheduler at last_epoch = t."""
    saved = sched.last_epoch
    sched.last_epoch = t
    v = sched._get_closed_form_lr()[0]
    sched.last_epoch = saved
    return v


def check_recursive(sched, values, n, what):
    """Step the real scheduler n times; its lr must follow values(t)."""
    worst = 0.0
    for t in range(n):
        got = sched.optimizer.param_groups[0]["lr"]
        want = values(t)
        worst = max(worst, abs(got - want))
        assert abs(got - want) <= 1e-9, (what, t, got, want)
        sched.step()
    print(f"  {what}: recursive vs closed form {worst:.1e} over {n} steps", file=sys.stderr)


def torch_single(spec, make, steps):
    s = make(optimizer())
    values = lambda t: closed(s, t)  # noqa: E731
    check_recursive(make(optimizer()), values, max(steps) + 1, spec)
    emit_eval(spec, values, steps)


def torch_sequential(spec, warmup, start, second, steps):
    """SequentialLR([LinearLR(start, 1, warmup), second], [warmup])."""
    def build():
        opt = optimizer()
        first = torch.optim.lr_scheduler.LinearLR(opt, start_factor=start, end_factor=1.0,
                                                  total_iters=warmup)
        two = second(opt)
        seq = torch.optim.lr_scheduler.SequentialLR(opt, [first, two], milestones=[warmup])
        return seq, first, two
    _, first, two = build()
    values = lambda t: closed(first, t) if t < warmup else closed(two, t - warmup)  # noqa: E731
    seq, _, _ = build()
    check_recursive(seq, values, max(steps) + 1, spec)
    emit_eval(spec, values, steps)


# --------------------------------------------------- transformers' lambdas

def hf_cosine(W, T, cycles):
    def lam(t):
        if t < W:
            return float(t) / float(max(1, W))
        progress = float(t - W) / float(max(1, T - W))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(cycles) * 2.0 * progress)))
    return lam


def hf_linear(W, T):
    def lam(t):
        if t < W:
            return float(t) / float(max(1, W))
        return max(0.0, float(T - t) / float(max(1, T - W)))
    return lam


def hf(spec, lam, steps):
    opt = optimizer()
    s = torch.optim.lr_scheduler.LambdaLR(opt, lam)
    check_recursive(s, lam, max(steps) + 1, spec)
    emit_eval(spec, lam, steps)


# ------------------------------------------------------------------- wsd

def wsd(W, T, D, shape, mn):
    def f(t):
        if t < W:
            return t / W
        if t >= T:
            return mn
        if t < T - D:
            return 1.0
        x = (t - (T - D)) / D
        if shape == "cosine":
            return mn + (1.0 - mn) * (1.0 + math.cos(math.pi * x)) / 2.0
        if shape == "sqrt":
            return 1.0 - (1.0 - mn) * math.sqrt(x)
        return 1.0 - (1.0 - mn) * x
    return f


# -------------------------------------------------------------- refined

NVALS = 10_000


def refined(g, norm, steps):
    g = np.asarray(g, dtype=np.float64)
    if len(g) < NVALS:
        g = np.interp(np.linspace(0, 1.0, NVALS), np.linspace(0, 1.0, len(g)), g)
    width = 2 * (int(0.1 * NVALS) // 2) + 1
    pad = 2 * width
    filt = median_filter(np.pad(g, (0, pad), mode="reflect"), size=width, mode="nearest")[:-pad]
    smooth = np.interp(np.linspace(0, 1.0, NVALS), np.linspace(0, 1.0, len(filt)), filt)
    w = smooth ** -2 if norm == 2 else smooth ** -1
    tail = np.flip(np.cumsum(np.flip(w)))
    T = len(w)
    sched = np.zeros(T)
    for t in range(T - 1):
        sched[t] = w[t] * tail[t + 1] / tail[-1]
    sched = sched / np.max(sched)
    res = np.interp(np.linspace(0, 1.0, steps), np.linspace(0, 1.0, T), sched)
    return res / np.max(res)


def self_checks():
    rng = np.random.default_rng(5)
    # (a) scipy's median filter, nearest mode, centred odd window, after
    # numpy's reflect padding of the end.
    x = rng.random(40)
    w, pad = 7, 9
    padded = np.pad(x, (0, pad), mode="reflect")
    for j in range(pad):
        assert padded[40 + j] == x[38 - j]
    got = median_filter(padded, size=w, mode="nearest")[:-pad]
    h = w // 2
    for i in range(40):
        win = [padded[min(max(k, 0), len(padded) - 1)] for k in range(i - h, i + h + 1)]
        assert got[i] == sorted(win)[h]
    # (b) constant norms: linear decay.
    for steps in (2, 3, 100, 4097, 12345):
        r = refined([3.0] * 17, 2, steps)
        lin = 1.0 - np.arange(steps) / (steps - 1)
        assert np.max(np.abs(r - lin)) <= 1e-12, steps  # tail sums: ~1e-13
        assert r[-1] == 0.0 and np.max(r) == 1.0
    # (c) powers of two change nothing.
    g = rng.random(321) + 0.1
    for norm in (1, 2):
        base = refined(g, norm, 500)
        for e in (-60, -3, 5, 70):
            assert np.array_equal(refined(np.ldexp(g, e), norm, 500), base), (norm, e)
    print("  self-checks passed", file=sys.stderr)


def emit_refined(name, g, norm, steps, scale=0):
    """A refined case; the reference runs on the norms times 2^scale (the
    same schedule, self-check (c)), for norms whose G^-2 overflows."""
    g = [float(f"{v:.6g}") for v in g]
    r = refined(np.ldexp(np.array(g), scale), norm, steps)
    out.append(f"refined {name} {norm} {steps} {len(g)}")
    for i in range(0, len(g), 10):
        out.append("gnorms " + " ".join(f"{v:.6g}" for v in g[i:i + 10]))
    for i in range(0, len(r), 6):
        out.append("factors " + " ".join(hexf(v) for v in r[i:i + 6]))
    out.append("end")


def main():
    L = torch.optim.lr_scheduler
    out.append("# Generated by tests/golden/gen_sched.py; see tests/golden/README (Schedules).")
    out.append("# eval SPEC STEP FACTOR  |  refined NAME NORM STEPS COUNT, gnorms ..., factors ..., end")
    print("torch forms", file=sys.stderr)
    out.append("# torch.optim.lr_scheduler closed forms (torch 1.13)")
    r = range
    torch_single("step:size=3,gamma=0.5", lambda o: L.StepLR(o, step_size=3, gamma=0.5), r(0, 25))
    torch_single("step:size=10", lambda o: L.StepLR(o, step_size=10), list(r(0, 45)) + [1000])
    torch_single("exponential:gamma=0.95", lambda o: L.ExponentialLR(o, gamma=0.95),
                 list(r(0, 60)) + [500])
    torch_single("exponential:gamma=1.01", lambda o: L.ExponentialLR(o, gamma=1.01), r(0, 30))
    torch_single("linear:total=5,start=0.3333333333333333,end=1", lambda o: L.LinearLR(o),
                 r(0, 10))
    torch_single("linear:total=20", lambda o: L.LinearLR(o, 1.0, 0.0, 20), r(0, 26))
    torch_single("linear:total=7,start=0.5,end=0.1", lambda o: L.LinearLR(o, 0.5, 0.1, 7),
                 r(0, 10))
    torch_single("cosine:total=50", lambda o: L.CosineAnnealingLR(o, T_max=50), r(0, 121))
    torch_single("cosine:total=30,min=0.1", lambda o: L.CosineAnnealingLR(o, 30, eta_min=0.1),
                 r(0, 40))
    torch_sequential("warmup_cosine:warmup=5,total=40,form=torch", 5, 1.0 / 3.0,
                     lambda o: L.CosineAnnealingLR(o, 35, eta_min=0.0), r(0, 46))
    torch_sequential("warmup_cosine:warmup=10,total=100,form=torch,start=0.01,min=0.05", 10, 0.01,
                     lambda o: L.CosineAnnealingLR(o, 90, eta_min=0.05), r(0, 105))
    torch_sequential("warmup_linear:warmup=4,total=30,form=torch", 4, 1.0 / 3.0,
                     lambda o: L.LinearLR(o, 1.0, 0.0, 26), r(0, 36))
    torch_sequential("warmup_linear:warmup=3,total=12,form=torch,start=0.2", 3, 0.2,
                     lambda o: L.LinearLR(o, 1.0, 0.0, 9), r(0, 15))

    print("transformers forms (LambdaLR)", file=sys.stderr)
    out.append("# transformers' get_cosine/linear_schedule_with_warmup lambdas, via LambdaLR")
    hf("warmup_cosine:warmup=10,total=100", hf_cosine(10, 100, 0.5), r(0, 121))
    hf("warmup_cosine:warmup=0,total=50,cycles=1.5", hf_cosine(0, 50, 1.5), r(0, 55))
    hf("warmup_cosine:warmup=7,total=7", hf_cosine(7, 7, 0.5), r(0, 12))
    hf("warmup_cosine:warmup=3,total=20,form=hf,cycles=0.5,min=0,start=0", hf_cosine(3, 20, 0.5),
       r(0, 22))
    hf("warmup_linear:warmup=10,total=100", hf_linear(10, 100), r(0, 111))
    hf("warmup_linear:warmup=0,total=1", hf_linear(0, 1), r(0, 4))

    out.append("# ours: constant, wsd")
    emit_eval("constant", lambda t: 1.0, [0, 1, 7, 1000000])
    emit_eval("wsd:warmup=10,total=100,decay=20", wsd(10, 100, 20, "linear", 0.0), r(0, 105))
    emit_eval("wsd:warmup=5,total=60,decay=15,shape=cosine,min=0.1",
              wsd(5, 60, 15, "cosine", 0.1), r(0, 65))
    emit_eval("wsd:warmup=0,total=50,decay_fraction=0.2,shape=sqrt",
              wsd(0, 50, 10, "sqrt", 0.0), r(0, 55))
    emit_eval("wsd:warmup=4,total=20,decay=0,min=0.25", wsd(4, 20, 0, "linear", 0.25), r(0, 24))

    print("refined schedule", file=sys.stderr)
    self_checks()
    out.append("# the refined schedule (our numpy/scipy re-implementation of the authors' procedure)")
    rng = np.random.default_rng(20231011)
    emit_refined("constant", [2.5] * 50, 2, 100)
    # Large norms early, falling to a plateau (the shape of the authors'
    # synthetic example): a warm-up appears.
    x = np.linspace(0, 1, 2000)
    falling = np.interp(x, [0, 0.003, 0.02, 0.03, 0.1, 1], [15, 6, 4, 2, 1, 1])
    emit_refined("falling", falling * (1 + 0.05 * rng.standard_normal(2000)), 2, 500)
    emit_refined("falling_l1", falling * 300 * (1 + 0.05 * rng.standard_normal(2000)), 1, 777)
    # Rising norms with noise, fewer points than steps.
    rising = np.linspace(1, 3, 300) * np.exp(0.3 * rng.standard_normal(300))
    emit_refined("rising_l1", rising, 1, 1234)
    # Longer than the grid (no first resampling), with a late bump.
    n = 10240
    x = np.linspace(0, 1, n)
    longer = (1 + 4 * np.exp(-x * 30) + 0.5 * np.exp(-((x - 0.8) / 0.05) ** 2)) \
        * np.exp(0.2 * rng.standard_normal(n))
    emit_refined("longer", longer, 2, 300)
    emit_refined("two_points", [4.0, 1.0], 2, 2)
    emit_refined("tiny_norms", np.geomspace(1e-200, 3e-200, 64), 2, 50, scale=660)
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
