#!/usr/bin/python3
"""Generate tests/golden/adahessian.txt: AdaHessian trajectories.

Usage (from the repository root; needs Debian's python3-torch 1.13 + numpy):

    /usr/bin/python3 tests/golden/gen_adahessian.py > tests/golden/adahessian.txt
    /usr/bin/python3 tests/golden/gen_adahessian.py --tolerance-study

The second form writes no golden data: it reruns every case with other
ways of computing the same rule (torch.mean for the averages, averages
accumulated in float64, fused multiply-adds, reciprocal scalars, libm pow
for hessian_power=0.5) and prints how far the parameters and the state
move (the numbers behind the tolerances in tests/golden/README).

Reference: amirgholami/adahessian (spec section 10 of
../shared/spec/optimizers.md), Adahessian.step of
image_classification/optim_adahessian.py, with the spatial averaging of
either that file's get_trace (averaging=image) or instruction/adahessian.py's
(averaging=instruction; that file's step() does not run as published, it
uses undefined names, so only its averaging is taken).  The torch tensor
operations below are the reference's, in its order.  The reference draws z
and computes H z itself (autograd, backward(create_graph=True)); here the
caller supplies the Hutchinson product h = z * (H z) of every parameter at
every step, and the golden data define it by a formula (hutchinson(),
tests/golden/README): D = |h| is what the reference computes as
|H z| = |z * H z| (|z| = 1).

Registry name adahessian; options and defaults:
  lr=0.15, beta1=0.9, beta2=0.999, eps=1e-4, weight_decay=0,
  hessian_power=1 (k, in (0, 1]), averaging=image (image | instruction |
  none), average_block=0 (b, int >= 0), seed=0 (the C library's
  Rademacher stream for its callback mode; unused here).

State: scalar step (t); buffers exp_avg (m) and exp_hessian_diag_sq (v),
both of the parameter's shape.

A parameter without gradient at a step (listed `missing`) has no h either
and is skipped: no state change, t unchanged.  Step, every tensor operation
in the parameter's dtype; Python scalars (double) are rounded to the dtype
where they meet a tensor (torch's rule for a wrapped number):
  1. t = t + 1
  2. D = |h|, then the spatial average: the flattened (row-major) D is cut
     into consecutive runs of R entries and every entry of a run is
     replaced by the run's mean, with
       averaging=none:                    no averaging (average_block ignored)
       average_block = b > 0:             R = b, the last run may be shorter
                                          (whatever the tensor's order)
       4-D (out, in, kh, kw), image or instruction: R = kh*kw
       instruction, 2-D (rows, cols):     R = cols (each row's mean)
       instruction, 3-D:                  R = shape[-1] (the last dim)
       anything else (1-D; 2-D and 3-D with image): no averaging
     The mean of a run: its entries summed in index order in the dtype
     (acc = D[s]; acc = acc + D[s+1]; ...), then divided by the run length
     (an IEEE division in the dtype).  The reference uses torch.mean
     (--tolerance-study measures the difference).
  3. m = m*beta1 + g*(1-beta1)          m.mul_(beta1).add_(g, alpha=1-beta1)
     v = v*beta2 + ((1-beta2)*D)*D      v.mul_(beta2).addcmul_(D, D,
                                        value=1-beta2): left to right
  4. bc1 = 1 - beta1**t, bc2 = 1 - beta2**t (double);
     denom = sqrt(v)**k / c + eps, c = sqrt(bc2)**k (a double, then rounded
     to the dtype); sqrt(v)**k is sqrt(v) for k = 1, sqrt(sqrt(v)) for
     k = 0.5 (torch's pow special-cases both), libm pow / powf in the dtype
     otherwise (no case uses another k)
  5. p = p - lr*((m / bc1) / denom + weight_decay*p)
     (m divided by bc1 rounded to the dtype, a true division, not a
     multiplication by a reciprocal; then divided by denom; then
     weight_decay*p added; then times lr; then subtracted)

Self-checks (stderr; asserted): (a) Newton: on a diagonal quadratic
f(x) = sum a_i (x_i - c_i)^2 / 2 with h = z * (a * z) = a exactly, one step
with beta1 = beta2 = 0, k = 1, eps = 1e-30, lr = 1 lands on c, also through
the image / instruction / block averaging when a is constant on the runs
averaged (and does not when it is not); (b) every averaging preserves the
mean of D and makes each run constant, agreeing with torch.mean to a few
ulps; (c) an independent numpy implementation of the rule reproduces every
golden case bit for bit (f32 and f64); (d) the h values are exact in
float32.

Everything is element-wise apart from the averages, and the averages sum
in a fixed order, so the file does not depend on BLAS or the CPU (ATen is
pinned to its portable kernels by goldenlib).
"""
import math
import os
import sys

# goldenlib (next to this script): gradient formula, initial values, golden
# file writer.  Importing it pins ATen's CPU kernels to the portable build
# (before torch is imported), as for the other generators.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import goldenlib  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

DTYPES = goldenlib.DTYPES
NP_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}

# Defaults of our option names (as the C registry spells them); also the
# order of the `options` field.
DEFAULTS = dict(
    lr=0.15, beta1=0.9, beta2=0.999, eps=1e-4, weight_decay=0.0,
    hessian_power=1.0, averaging="image", average_block=0, seed=0)
AVERAGING = ("image", "instruction", "none")

STEPS = 30
CHECK_STEPS = (1, 2, 3, 5, 10, 20, 30)
H_SEED_OFFSET = 1000

# How the rule is evaluated.  "golden" is the golden data; the others exist
# for --tolerance-study:
#   mean:  ordered  run sums in index order in the dtype / length (golden)
#          torch    torch.mean of each run (the reference's reduction)
#          f64      run sums accumulated in float64, mean rounded to dtype
#   fma:   the multiply-adds of m, v and of m/bc1/denom + wd*p fused
#          (one rounding), as a compiler contracting a*b + c may do
#   recip: m * (1/bc1) and sqrt(v)**k * (1/c), scalars rounded to dtype
#   pow05: for k = 0.5, (dtype) libm pow((double) sqrt(v), 0.5) instead of
#          sqrt(sqrt(v))
MODE = dict(mean="ordered", fma=False, recip=False, pow05=False)


# ----------------------------------------------------------- the h formula

def hutchinson(p, k, j, seed):
    """h = z * (H z) of parameter j (0-based registration order) at step k
    (1-based) of a case with seed `seed`: the gradient formula's noise with
    seed + 1000, times 0.5, i.e. ((x mod 2001) - 1000) / 1024 (exact in
    float32), in p's dtype and shape."""
    s = goldenlib.noise(p.numel(), k, j, seed + H_SEED_OFFSET)
    return torch.tensor([x * 0.5 for x in s], dtype=p.dtype).reshape(p.shape)


def step_hutchinson(params, names, missing, k, seed):
    """The h of step k for params; None where the gradient is missing."""
    return [None if k in missing.get(n, ()) else hutchinson(p, k, j, seed)
            for j, (n, p) in enumerate(zip(names, params))]


# -------------------------------------------------------- the averaging

def run_length(shape, o):
    """R of the docstring: the length of the runs of consecutive flattened
    entries averaged together (1: no averaging)."""
    mode, b = o["averaging"], o["average_block"]
    assert mode in AVERAGING, mode
    assert isinstance(b, int) and b >= 0, b
    if mode == "none":
        return 1
    if b > 0:
        return b
    if len(shape) == 4:
        return shape[2] * shape[3]
    if mode == "instruction" and len(shape) in (2, 3):
        return shape[-1]
    return 1


def run_means(x, how):
    """Means of the rows of the 2-D x (runs of equal length), as `how`."""
    n = x.shape[1]
    if how == "torch":
        return torch.mean(x, dim=1)
    if how == "f64":
        return (x.double().sum(dim=1) / n).to(x.dtype)
    assert how == "ordered", how
    acc = x[:, 0].clone()
    for c in range(1, n):
        acc = acc + x[:, c]
    return acc / n


def average(D, R, how=None):
    """D with every run of R consecutive flattened entries (the last one
    possibly shorter) replaced by its mean."""
    how = how or MODE["mean"]
    if R <= 1:
        return D
    flat = D.reshape(-1)
    n = flat.numel()
    full = (n // R) * R
    out = torch.empty_like(flat)
    if full:
        mu = run_means(flat[:full].reshape(-1, R), how)
        out[:full] = mu.repeat_interleave(R)
    if full < n:
        mu = run_means(flat[full:].reshape(1, -1), how)
        out[full:] = mu.expand(n - full)
    return out.reshape(D.shape)


# --------------------------------------------------------------- AdaHessian

def fma(a, b, c):
    """a*b + c with one rounding, element-wise, in c's dtype (f32: exact
    product in float64; f64: numpy longdouble, 64-bit significand: close
    to a true fma, enough for the tolerance study)."""
    dtype = c.dtype
    a = torch.as_tensor(a, dtype=dtype).expand_as(c)
    b = torch.as_tensor(b, dtype=dtype).expand_as(c)
    if dtype == torch.float32:
        return (a.double() * b.double() + c.double()).float()
    la, lb, lc = (x.numpy().astype(np.longdouble) for x in (a, b, c))
    return torch.from_numpy((la * lb + lc).astype(np.float64))


def dt_scalar(x, dtype):
    """A Python float rounded to dtype (torch's wrapped-number rule)."""
    return float(NP_DTYPES[dtype](x))


def root_power(v, k):
    """sqrt(v) ** k as torch computes it."""
    r = v.sqrt()
    if MODE["pow05"] and k == 0.5:
        # libm pow in double of the dtype's sqrt, rounded to the dtype
        return torch.tensor([math.pow(x, 0.5) for x in r.reshape(-1).tolist()],
                            dtype=v.dtype).reshape(v.shape)
    return r ** k


def init_state(p):
    return {"step": 0, "exp_avg": torch.zeros_like(p),
            "exp_hessian_diag_sq": torch.zeros_like(p)}


def adahessian_param_step(p, g, h, st, o):
    """One step of one parameter; p, exp_avg and exp_hessian_diag_sq are
    updated in place."""
    k = o["hessian_power"]
    assert 0 < k <= 1, k
    st["step"] += 1
    t = st["step"]
    # 2. the Hessian diagonal estimate, spatially averaged
    D = average(h.abs(), run_length(tuple(p.shape), o))
    # 3. moments
    b1, b2 = o["beta1"], o["beta2"]
    m, v = st["exp_avg"], st["exp_hessian_diag_sq"]
    if MODE["fma"]:
        d = p.dtype
        m.copy_(fma(m, dt_scalar(b1, d), g.mul(1 - b1)))
        v.copy_(fma(D.mul(1 - b2), D, v.mul(b2)))
    else:
        m.mul_(b1).add_(g, alpha=1 - b1)
        v.mul_(b2).addcmul_(D, D, value=1 - b2)
    # 4. bias corrections and the denominator
    bc1 = 1 - b1 ** t
    bc2 = 1 - b2 ** t
    c = math.sqrt(bc2) ** k
    if MODE["recip"]:
        d = p.dtype
        denom = (root_power(v, k) * (1 / dt_scalar(c, d))).add_(o["eps"])
        q = m * (1 / dt_scalar(bc1, d)) / denom
    else:
        denom = (root_power(v, k) / c).add_(o["eps"])
        q = m / bc1 / denom
    # 5. the update (weight decay decoupled from the moments, times lr)
    if MODE["fma"]:
        u = fma(o["weight_decay"], p, q)
    else:
        u = q + o["weight_decay"] * p
    p.copy_(p - o["lr"] * u)


def adahessian_step(params, grads, hs, states, o):
    for p, g, h, st in zip(params, grads, hs, states):
        if g is None:  # no gradient (and no h): the parameter is skipped
            assert h is None
            continue
        adahessian_param_step(p, g, h, st, o)


# --------------------------------------------------------------- the cases

def case(dt, name, shapes, opts, missing=None):
    o = dict(DEFAULTS)
    assert set(opts) <= set(o), opts
    o.update(opts)
    return dict(name="adahessian_%s_%s" % (dt, name), dt=dt, opts=o,
                shapes=shapes, steps=STEPS, missing=missing or {})


def build_cases():
    cases = []
    ins = dict(averaging="instruction")
    conv = (4, 3, 3, 3)
    for dt in DTYPES:
        cases += [
            case(dt, "vec10", [("b", (10,))], {}),
            # 2-D: image averages nothing, instruction each row
            case(dt, "mat5x7_image", [("w", (5, 7))], {}),
            case(dt, "mat5x7_instruction", [("w", (5, 7))], ins),
            # 3-D: image averages nothing (the reference leaves 3-D out),
            # instruction over the last dim
            case(dt, "t3d_image", [("w", (3, 4, 5))], {}),
            case(dt, "t3d_instruction", [("w", (3, 4, 5))], ins),
            # 4-D: both average over (kh, kw)
            case(dt, "conv_image", [("w", conv)], {}),
            case(dt, "conv_instruction", [("w", conv)], ins),
            case(dt, "conv_none", [("w", conv)], dict(averaging="none")),
            case(dt, "conv_power05", [("w", conv)], dict(hessian_power=0.5)),
            case(dt, "mat5x7_wd", [("w", (5, 7))],
                 dict(ins, weight_decay=0.01, lr=0.05)),
            # blocks of 4 flattened entries: 4, 4, 2 and 7 x 4 + 2 (runs
            # across rows)
            case(dt, "vec10_block4", [("b", (10,))], dict(average_block=4)),
            case(dt, "mat5x6_block4", [("w", (5, 6))],
                 dict(average_block=4)),
            case(dt, "mat5x7_missing", [("w", (5, 7))], ins,
                 missing={"w": [4, 9]}),
            case(dt, "two", [("a", conv), ("b", (6,))], {}),
            case(dt, "two_missing", [("a", (5, 7)), ("b", (6,))],
                 dict(ins, hessian_power=0.5, beta1=0.8, beta2=0.99),
                 missing={"b": [6, 7]}),
        ]
    return cases


# ----------------------------------------------------------------- running

def run_case(c, out):
    """Runs one case; appends its lines to out (a list) if out is not None.
    Returns {(step or "init" or state key, name): tensor or int}."""
    dt, o = c["dt"], c["opts"]
    names = [n for n, _ in c["shapes"]]
    seed = goldenlib.case_seed(c["name"])
    inits = goldenlib.initial_values(c["shapes"], DTYPES[dt], seed)
    params = [t.clone() for t in inits]
    states = [init_state(p) for p in params]
    steps, missing = c["steps"], c["missing"]
    if out is not None:
        goldenlib.write_case_header(
            out, c["name"], "adahessian", dt, seed,
            goldenlib.options_spec(o, DEFAULTS, DEFAULTS), steps,
            c["shapes"], inits, missing)
    rec = {("init", n): t for n, t in zip(names, inits)}
    for k in range(1, steps + 1):
        grads = goldenlib.step_gradients(params, names, missing, k, seed)
        hs = step_hutchinson(params, names, missing, k, seed)
        adahessian_step(params, grads, hs, states, o)
        for n, p in zip(names, params):
            assert torch.isfinite(p).all(), "%s step %d %s" % (c["name"], k, n)
            if k in CHECK_STEPS:
                rec[(k, n)] = p.clone()
                if out is not None:
                    goldenlib.write_check(out, k, n, p)
    for n, st in zip(names, states):
        assert st["step"] == steps - len(missing.get(n, ()))
        for key in ("exp_avg", "exp_hessian_diag_sq"):
            buf = st[key]
            assert torch.isfinite(buf).all()
            rec[(key, n)] = buf.clone()
            if out is not None:
                goldenlib.write_state(out, n, key, buf)
        rec[("step", n)] = st["step"]
        if out is not None:
            goldenlib.write_scalar(out, n, "step", st["step"])
    if out is not None:
        goldenlib.write_end(out)
    return rec


# ------------------------------------------------------ tolerance study

VARIANTS = {
    "torchmean": dict(mean="torch"),
    "mean64": dict(mean="f64"),
    "fma": dict(fma=True),
    "recip": dict(recip=True),
    "pow05": dict(pow05=True),
    "all": dict(mean="torch", fma=True, recip=True, pow05=True),
}
STATE_KEYS = ("exp_avg", "exp_hessian_diag_sq")


def elem_rel(a, b):
    """max over elements of |a - b| / |b| (an exact zero must match)."""
    a, b = a.double(), b.double()
    d = (a - b).abs()
    if ((b == 0) & (d != 0)).any():
        return math.inf
    nz = b != 0
    return (d[nz] / b[nz].abs()).max().item() if nz.any() else 0.0


def tensor_rel(a, b):
    """max |a - b| / max |b| (tensor-wise)."""
    den = b.abs().max().item()
    num = (a.double() - b.double()).abs().max().item()
    return num / den if den else num


def compare_runs(gold, rec):
    """{"params" | state key: (element-wise, tensor-wise)} worst over the
    checks and the final state."""
    res = {k: [0.0, 0.0] for k in ("params",) + STATE_KEYS}
    for key, b in gold.items():
        if key[0] in ("init", "step"):
            continue
        r = res["params" if isinstance(key[0], int) else key[0]]
        r[0] = max(r[0], elem_rel(rec[key], b))
        r[1] = max(r[1], tensor_rel(rec[key], b))
    return res


def tolerance_study(cases):
    golden = {c["name"]: run_case(c, None) for c in cases}
    print("relative difference to the golden run, element-wise max "
          "|diff|/|want| (tensor-wise max|diff|/max|want| in parentheses): "
          "params / exp_avg / exp_hessian_diag_sq")
    worst = {}
    for vname, mode in VARIANTS.items():
        MODE.update(mode)
        for c in cases:
            res = compare_runs(golden[c["name"]], run_case(c, None))
            w = worst.setdefault((c["dt"], vname), {})
            for key, (e, t) in res.items():
                we, wt, wc = w.get(key, (0.0, 0.0, "-"))
                w[key] = (max(we, e), max(wt, t), c["name"] if e > we else wc)
            if any(e > 0 for e, _ in res.values()):
                print("  %-8s %-36s %s" % (vname, c["name"], " / ".join(
                    "%.1e (%.1e)" % tuple(res[k]) for k in res)))
        MODE.update(mean="ordered", fma=False, recip=False, pow05=False)
    for dt in DTYPES:
        for vname in VARIANTS:
            w = worst[(dt, vname)]
            print("worst %s %-9s %s" % (dt, vname, "  ".join(
                "%s %.2e (%.2e, %s)" % (k, w[k][0], w[k][1], w[k][2])
                for k in w)))
    sys.stdout.flush()


# ------------------------------------------------------------ self-checks

def newton_check():
    """(a) one step with beta1 = beta2 = 0, k = 1, eps = 1e-30, lr = 1 on
    f(x) = sum a (x - c)^2 / 2, h = z * (a * z) = a: lands on c when a is
    constant on the averaged runs.  Returns the worst relative miss per
    dtype and the smallest miss of the mismatched control."""
    gen = torch.Generator().manual_seed(4242)
    worst, control = {}, math.inf
    layouts = [((9,), "none", 0, None), ((5, 7), "image", 0, None),
               ((5, 7), "instruction", 0, 7), ((3, 4, 5), "instruction", 0, 5),
               ((4, 3, 3, 3), "image", 0, 9),
               ((4, 3, 3, 3), "instruction", 0, 9), ((10,), "image", 3, 3),
               ((5, 6), "instruction", 4, 4)]
    for dt, dtype in DTYPES.items():
        w = 0.0
        for shape, mode, b, run in layouts:
            o = dict(DEFAULTS, lr=1.0, beta1=0.0, beta2=0.0, eps=1e-30,
                     averaging=mode, average_block=b)
            n = int(np.prod(shape))
            a = 0.5 + torch.rand(n, dtype=torch.float64, generator=gen)
            if run:  # constant on each run of the averaging
                a = a[torch.arange(n) // run * run]
            a = a.to(dtype).reshape(shape)
            cen = torch.randn(shape, dtype=torch.float64,
                              generator=gen).to(dtype)
            x = torch.randn(shape, dtype=torch.float64,
                            generator=gen).to(dtype)
            z = (torch.randint(0, 2, shape, generator=gen) * 2 - 1).to(dtype)
            h = z * (a * z)
            assert torch.equal(h, a)
            g = a * (x - cen)
            st = init_state(x)
            adahessian_param_step(x, g, h, st, o)
            w = max(w, ((x - cen).abs().max() / cen.abs().max()).item())
            if run and run > 1:  # control: a varying inside the runs
                a2 = (0.5 + torch.rand(shape, dtype=torch.float64,
                                       generator=gen)).to(dtype)
                x2 = torch.randn(shape, dtype=torch.float64,
                                 generator=gen).to(dtype)
                g2 = a2 * (x2 - cen)
                adahessian_param_step(x2, g2, z * (a2 * z), init_state(x2), o)
                control = min(control, ((x2 - cen).abs().max()
                                        / cen.abs().max()).item())
        worst[dt] = w
    assert worst["f32"] <= 1e-6 and worst["f64"] <= 1e-14, worst
    assert control > 1e-2, control
    return worst, control


def averaging_check():
    """(b) averages preserve the mean of D, make each run constant, and
    agree with torch.mean to a few ulps.  Returns (worst relative change
    of the mean per dtype, worst ordered-vs-torch.mean difference in ulps
    per dtype, number of layouts)."""
    gen = torch.Generator().manual_seed(777)
    layouts = [((10,), "image", 0), ((10,), "instruction", 0),
               ((10,), "image", 4), ((10,), "instruction", 3),
               ((5, 7), "image", 0), ((5, 7), "instruction", 0),
               ((5, 6), "image", 4), ((5, 6), "none", 4),
               ((3, 4, 5), "image", 0), ((3, 4, 5), "instruction", 0),
               ((4, 3, 3, 3), "image", 0), ((4, 3, 3, 3), "instruction", 0),
               ((4, 3, 3, 3), "none", 0), ((4, 3, 3, 3), "image", 5),
               ((7,), "image", 100)]
    expect_r = [1, 1, 4, 3, 1, 7, 4, 1, 1, 5, 9, 9, 1, 5, 100]
    wmean = {}
    wulp = {}
    for dt, dtype in DTYPES.items():
        wm = wu = 0.0
        for (shape, mode, b), er in zip(layouts, expect_r):
            o = dict(DEFAULTS, averaging=mode, average_block=b)
            R = run_length(shape, o)
            assert R == er, (shape, mode, b, R)
            D = torch.rand(shape, dtype=torch.float64,
                           generator=gen).to(dtype)
            A = average(D, R, "ordered")
            rel = abs(A.double().mean().item() - D.double().mean().item()) \
                / D.double().mean().item()
            wm = max(wm, rel)
            flat, af = D.reshape(-1), A.reshape(-1)
            n = flat.numel()
            for s in range(0, n, R):
                run = af[s:s + R]
                assert (run == run[0]).all()
                ref = flat[s:s + R].mean()
                ulp = torch.finfo(dtype).eps * abs(ref.item())
                wu = max(wu, abs(run[0].item() - ref.item()) / ulp)
            if R == 1:
                assert torch.equal(A, D)
        wmean[dt], wulp[dt] = wm, wu
    assert wmean["f32"] <= 1e-6 and wmean["f64"] <= 1e-14, wmean
    assert max(wulp.values()) <= 4, wulp
    return wmean, wulp, len(layouts)


def numpy_reference(c):
    """(c) the rule again in numpy, scalars rounded to the dtype explicitly,
    averages as ordered run sums: {(step, name) / (key, name): array}."""
    o = c["opts"]
    dtype = DTYPES[c["dt"]]
    T = NP_DTYPES[dtype]
    names = [n for n, _ in c["shapes"]]
    seed = goldenlib.case_seed(c["name"])
    ps = [t.numpy().copy() for t in
          goldenlib.initial_values(c["shapes"], dtype, seed)]
    sts = [dict(t=0, m=np.zeros_like(p), v=np.zeros_like(p)) for p in ps]
    k = o["hessian_power"]
    assert k in (1.0, 0.5), k
    b1, b2 = o["beta1"], o["beta2"]
    out = {}
    for step in range(1, c["steps"] + 1):
        for j, (n, p) in enumerate(zip(names, ps)):
            if step in c["missing"].get(n, ()):
                continue
            pt = torch.from_numpy(p)
            g = goldenlib.gradient(pt, step, j, seed).numpy()
            h = np.array(goldenlib.noise(p.size, step, j,
                                         seed + H_SEED_OFFSET),
                         dtype=np.float64).reshape(p.shape) * 0.5
            h = h.astype(T)
            D = np.abs(h).reshape(-1)
            # the runs of the docstring
            if o["averaging"] == "none":
                R = 1
            elif o["average_block"] > 0:
                R = o["average_block"]
            elif p.ndim == 4:
                R = p.shape[2] * p.shape[3]
            elif o["averaging"] == "instruction" and p.ndim in (2, 3):
                R = p.shape[-1]
            else:
                R = 1
            if R > 1:
                for s0 in range(0, D.size, R):
                    seg = D[s0:s0 + R]
                    acc = seg[0]
                    for x in seg[1:]:
                        acc = T(acc + x)
                    D[s0:s0 + R] = T(acc / T(len(seg)))
            D = D.reshape(p.shape)
            s = sts[j]
            s["t"] += 1
            t = s["t"]
            s["m"] = s["m"] * T(b1) + T(1 - b1) * g
            s["v"] = s["v"] * T(b2) + (T(1 - b2) * D) * D
            r = np.sqrt(s["v"])
            if k == 0.5:
                r = np.sqrt(r)
            bc1 = 1 - b1 ** t
            bc2 = 1 - b2 ** t
            denom = r / T(math.sqrt(bc2) ** k) + T(o["eps"])
            u = s["m"] / T(bc1) / denom + T(o["weight_decay"]) * p
            p[...] = p - T(o["lr"]) * u
            assert p.dtype == T and s["m"].dtype == T and s["v"].dtype == T
        if step in CHECK_STEPS:
            for n, p in zip(names, ps):
                out[(step, n)] = p.copy()
    for n, s in zip(names, sts):
        out[("exp_avg", n)] = s["m"]
        out[("exp_hessian_diag_sq", n)] = s["v"]
        out[("step", n)] = s["t"]
    return out


def numpy_check(goldens, cases):
    n = 0
    for c in cases:
        gold, ref = goldens[c["name"]], numpy_reference(c)
        for key, b in gold.items():
            if key[0] == "init":
                continue
            if key[0] == "step":
                assert ref[key] == b
                continue
            assert np.array_equal(ref[key], b.numpy()), (c["name"], key)
            n += 1
    return n


def h_exact_check(cases):
    """(d) every h of the golden steps is exact in float32: |h| <= 1000/1024
    and 1024 h an integer."""
    n = 0
    for c in cases:
        seed = goldenlib.case_seed(c["name"])
        for j, (_, shape) in enumerate(c["shapes"]):
            numel = int(np.prod(shape))
            for k in range(1, c["steps"] + 1):
                s = goldenlib.noise(numel, k, j, seed + H_SEED_OFFSET)
                h = np.array(s) * 0.5
                assert np.array_equal(h.astype(np.float32).astype(np.float64),
                                      h)
                assert np.all(np.abs(h) <= 1000 / 1024)
                assert np.all(h * 1024 == np.round(h * 1024))
                n += numel
    return n


# ----------------------------------------------------------------- main

def main():
    torch.set_num_threads(1)
    with torch.no_grad():
        cases = build_cases()
        assert len({c["name"] for c in cases}) == len(cases)
        if "--tolerance-study" in sys.argv[1:]:
            tolerance_study(cases)
            return
        nw, control = newton_check()
        wmean, wulp, nlay = averaging_check()
        nh = h_exact_check(cases)
        out = ["# liboptim golden trajectories: AdaHessian",
               "# generated by tests/golden/gen_adahessian.py with torch %s "
               "(ATEN_CPU_CAPABILITY=%s); amirgholami/adahessian semantics "
               "(spec section 10) with the caller's h = z*(Hz) from the "
               "formula in tests/golden/README; averages are ordered sums "
               "in the dtype / count"
               % (torch.__version__, os.environ["ATEN_CPU_CAPABILITY"]),
               "# %d cases; format, gradient and h formulas: "
               "tests/golden/README" % len(cases)]
        goldens = {}
        for c in cases:
            goldens[c["name"]] = run_case(c, out)
        nn = numpy_check(goldens, cases)
    sys.stdout.write("\n".join(out) + "\n")
    mag = max(b.abs().max().item() for g in goldens.values()
              for key, b in g.items() if key[0] not in ("step",))
    print("adahessian self-checks: (a) Newton step (beta1=beta2=0, k=1, "
          "lr=1, h = z*(a*z) = a): max |x1 - c| / max |c| f32 %.3g, f64 "
          "%.3g over 8 layouts (a varying inside the averaged runs "
          "instead: >= %.3g); (b) %d averaging layouts: mean of D kept to "
          "f32 %.3g, f64 %.3g relative, runs constant, ordered mean vs "
          "torch.mean <= %.2g ulp (f32) / %.2g ulp (f64); (c) numpy "
          "reference: %d checks and state buffers bit-identical; (d) %d h "
          "values exact in float32" % (
              nw["f32"], nw["f64"], control, nlay, wmean["f32"],
              wmean["f64"], wulp["f32"], wulp["f64"], nn, nh),
          file=sys.stderr)
    print("adahessian: %d cases (%s), %d steps, checks after %s; largest "
          "|value| in the file %.3g" % (
              len(cases), ", ".join("%d %s" % (sum(c["dt"] == dt
                                                   for c in cases), dt)
                                    for dt in DTYPES),
              STEPS, ", ".join(map(str, CHECK_STEPS)), mag),
          file=sys.stderr)


if __name__ == "__main__":
    main()
