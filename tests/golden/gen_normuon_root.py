#!/usr/bin/python3
"""Generate tests/golden/normuon_root.txt: NorMuon and ROOT trajectories.

Usage (from the repository root; needs Debian's python3-torch 1.13 + numpy):

    /usr/bin/python3 tests/golden/gen_normuon_root.py > tests/golden/normuon_root.txt

Our own re-implementation, written from ../shared/spec/optimizers.md
sections 3 (NorMuon) and 4 (ROOT) and checked against the operation order of
the authors' code (zichongli5/NorMuon normuon.py at d45c9a4,
huawei-noah/noah-research ROOT/examples/example_train.py at aa0f80c8); nothing
of that code is copied here.  What it shares with gen_muon.py (the first
two items are code in goldenlib.py, with the initial values and the golden
file writer):

  * the gradient formula of tests/golden/README;
  * Newton-Schulz in the parameter's dtype (never bf16), transposed when
    rows > cols, normalised by nrm * f * (1 + 1e-7) (f = 1.02 for
    polar_express, else 1), a zero matrix giving zero; matrix products and
    Frobenius norms in a fixed summation order (k = 0, 1, ... left to right,
    every product and sum rounded in the dtype), so the output does not
    depend on BLAS or the CPU;
  * torch.lerp semantics for every lerp (w < 0.5: a + w*(b-a), else
    b - (b-a)*(1-w)), Python-double scalars rounded to the dtype by torch.

NorMuon (registry name normuon)
  variant=reference, the authors' normuon_update with NS in f32/f64:
    M = lerp(M, G, 1-momentum); U = lerp(G, M, momentum) if nesterov else M;
    O = NS(U) (2-D as is; 3-D a batch of shape[0] matrices; 4-D viewed as
    (out, in*kh*kw) and O reshaped BACK to 4-D before what follows);
    n0 = ||O||_F over the last two dims (fixed order, per slice);
    r = (sum over the last dim of O*O, fixed order) / shape[-1];
    v = lerp(v, r, 1-beta2)           (the code's second_momentum.lerp_);
    O = O * reciprocal(sqrt(v) + eps) (the code's 1 / t is t.reciprocal()*1);
    O = O * (n0 / (||O||_F + eps))    (one factor, as in the code);
    O = O * sqrt(max(1, shape[-2]/shape[-1]))   (parameter shape: conv quirk);
    if weight_decay != 0 and the gradient existed: p *= 1 - lr*weight_decay;
    p += -lr * O.
  variant=paper (spec 3b; 2-D and 3-D only; nesterov is ignored):
    M = momentum*M + (1-momentum)*G (mul_ then add_(alpha)); O = NS(M);
    v = beta2*v + (1-beta2)*r (mul_ then add_(alpha)); O = O / (sqrt(v)+eps);
    eta = (0.2*lr*sqrt(R*C), rounded to the dtype) / ||O||_F per matrix;
    p *= 1 - lr*weight_decay (same missing-gradient rule); p -= O * eta.
  A missing gradient is a zero gradient (state and step still advance) but
  skips the weight decay of that step -- also in the auxiliary AdamW
  (nonmatrix=adamw: MuonWithAuxAdam's update, as in gen_muon.py), as the
  authors' NorMuonWithAuxAdam does.

ROOT (registry name root), 2-D parameters:
    M = momentum*M + G (mul_ then add_); U = G + momentum*M (G.add(M,
    alpha=momentum)) if nesterov else M;
    thr = quantile(|U|, quantile) + 1e-9, in the dtype: a = sorted |U|,
    h = quantile*(N-1) in double, lo = floor(h), hi = ceil(h),
    thr = a[lo] if lo == hi else lerp(a[lo], a[hi], (dtype)(h - lo))
    (numpy's "linear" method with the weight and the lerp in the dtype;
    the authors' simple_quantile casts |U| to float32 and rounds h to
    float32 as well);
    B = clamp(U, -thr, thr); X = NS(B) with ROOT's per-shape coefficients
    (Muon's for every test shape);
    p *= 1 - lr*weight_decay; p += -(lr * (0.2*sqrt(max(m, n)))) * X.
  Other parameters (1-D, 3-D, 4-D) with nonmatrix=adamw, ROOT's AdamW:
    m = lerp(m, G, 1-b1); v = lerp(v, G*G, 1-b2); u = m / (sqrt(v) + eps);
    p *= 1 - lr*weight_decay; p += -(lr / ((1-b1^t) / (1-b2^t)**0.5)) * u.
  A missing gradient skips the parameter entirely (no state change).
"""
import math
import os
import sys

# goldenlib (next to this script) holds the gradient formula, the initial
# values, the golden file writer and Newton-Schulz with its fixed-order
# matrix products and norms and ROOT's coefficient table.  Importing it pins
# ATen's CPU kernels to the portable (non-SIMD) build, as for gen_basic.py
# and gen_muon.py: the AVX2/AVX512 kernels may fuse add(alpha=) into an FMA.
# So it comes before torch.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import goldenlib  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

STEPS = 30
CHECK_STEPS = (1, 2, 3, 5, 10, 20, 30)
SHAPES = {"tall": (12, 7), "wide": (6, 15), "square": (9, 9),
          "3d": (3, 5, 8), "4d": (6, 3, 3, 2)}
DTYPES = goldenlib.DTYPES

# Defaults of our option names (as the C library spells them).
NORMUON_DEFAULTS = dict(
    lr=0.02, momentum=0.95, beta2=0.95, eps=1e-10, nesterov=True,
    weight_decay=0.0, ns_steps=5, ns_coefficients="muon",
    variant="reference", nonmatrix="error", adamw_lr=3e-4, adamw_beta1=0.9,
    adamw_beta2=0.95, adamw_eps=1e-10, adamw_weight_decay=0.0)
ROOT_DEFAULTS = dict(
    lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True, ns_steps=5,
    ns_coefficients="root", quantile=0.9, nonmatrix="adamw",
    adamw_beta1=0.9, adamw_beta2=0.95, adamw_eps=1e-8)
DEFAULTS = {"normuon": NORMUON_DEFAULTS, "root": ROOT_DEFAULTS}

ROOT_THR_EPS = 1e-9


# ------------------------------------------------------------ Newton-Schulz
# (goldenlib.newton_schulz, with ROOT's per-shape coefficients for
# ns_coefficients=root)

def self_check():
    """Sanity of the NS helper on a random 64x32 float64 matrix, and of the
    scalar shortcuts the C side may take (sqrt for **0.5)."""
    x, o, summary = goldenlib.ns_self_check()
    # 64x32 is not in ROOT's table
    assert torch.equal(goldenlib.newton_schulz(x, 5, "root"), o)
    # The authors write x**0.5; the C library may use sqrt().
    for b2 in (0.95, 0.99):
        for t in range(1, STEPS + 1):
            bc2 = 1 - b2 ** t
            assert bc2 ** 0.5 == math.sqrt(bc2)
    for shape in SHAPES.values():
        r = max(1, shape[-2] / shape[-1])
        assert r ** 0.5 == math.sqrt(r)
    print(summary, file=sys.stderr)


def norm_last2(x):
    """||x||_F over the last two dims, keepdim (fixed order per slice)."""
    s, l = x.shape[-2], x.shape[-1]
    flat = x.reshape(-1, s, l)
    n = torch.stack([goldenlib.frobenius(flat[i]) for i in range(flat.shape[0])])
    return n.reshape(tuple(x.shape[:-2]) + (1, 1))


def mean_sq_last(x):
    """mean over the last dim of x*x, keepdim: the squares summed k = 0, 1,
    ... left to right in the dtype, then divided by shape[-1]."""
    sq = x * x
    acc = sq[..., 0:1]
    for k in range(1, x.shape[-1]):
        acc = acc + sq[..., k:k + 1]
    return acc / x.shape[-1]


# ------------------------------------------------------------------ NorMuon

def normuon_reference_step(p, g, had_grad, st, o):
    lr, beta, eps = o["lr"], o["momentum"], o["eps"]
    st["step"] += 1
    buf, v = st["momentum_buffer"], st["second_moment"]
    buf.lerp_(g, 1 - beta)
    u = g.lerp(buf, beta) if o["nesterov"] else buf
    out, _ = goldenlib.orthogonalise(u, o)
    n0 = norm_last2(out)
    v.lerp_(mean_sq_last(out), 1 - o["beta2"])
    out = out * v.sqrt().add(eps).reciprocal()
    out = out * (n0 / norm_last2(out).add(eps))
    out = out * math.sqrt(max(1, p.shape[-2] / p.shape[-1]))
    if o["weight_decay"] != 0 and had_grad:
        p.mul_(1 - lr * o["weight_decay"])
    p.add_(out, alpha=-lr)


def normuon_paper_step(p, g, had_grad, st, o):
    assert p.ndim in (2, 3), "variant=paper: 2-D and 3-D only"
    lr, beta, beta2 = o["lr"], o["momentum"], o["beta2"]
    st["step"] += 1
    buf, v = st["momentum_buffer"], st["second_moment"]
    buf.mul_(beta).add_(g, alpha=1 - beta)
    out, (rows, cols) = goldenlib.orthogonalise(buf, o)
    v.mul_(beta2).add_(mean_sq_last(out), alpha=1 - beta2)
    out = out / v.sqrt().add(o["eps"])
    c = torch.tensor(0.2 * lr * math.sqrt(rows * cols), dtype=p.dtype)
    eta = c / norm_last2(out)
    if o["weight_decay"] != 0 and had_grad:
        p.mul_(1 - lr * o["weight_decay"])
    p.add_(out * eta, alpha=-1)


def aux_adamw_step(p, g, had_grad, st, o):
    """(Nor)MuonWithAuxAdam's adam_update; its weight decay only when the
    gradient existed (NorMuonWithAuxAdam)."""
    lr, beta1, beta2 = o["adamw_lr"], o["adamw_beta1"], o["adamw_beta2"]
    st["step"] += 1
    step = st["step"]
    st["exp_avg"].lerp_(g, 1 - beta1)
    st["exp_avg_sq"].lerp_(g.square(), 1 - beta2)
    m_hat = st["exp_avg"] / (1 - beta1 ** step)
    v_hat = st["exp_avg_sq"] / (1 - beta2 ** step)
    u = m_hat / (v_hat.sqrt() + o["adamw_eps"])
    if o["adamw_weight_decay"] != 0 and had_grad:
        p.mul_(1 - lr * o["adamw_weight_decay"])
    p.add_(u, alpha=-lr)


def normuon_step(params, grads, states, o):
    """grads[i] is None for a missing gradient: a zero gradient, no decay."""
    for p, g, st in zip(params, grads, states):
        had_grad = g is not None
        if not had_grad:
            g = torch.zeros_like(p)
        if p.ndim < 2:
            aux_adamw_step(p, g, had_grad, st, o)
        elif o["variant"] == "paper":
            normuon_paper_step(p, g, had_grad, st, o)
        else:
            assert o["variant"] == "reference"
            normuon_reference_step(p, g, had_grad, st, o)


def normuon_state(p, o):
    if p.ndim >= 2:
        assert p.ndim <= 4
        return {"step": 0, "momentum_buffer": torch.zeros_like(p),
                "second_moment": torch.zeros_like(p[..., 0:1])}
    assert o["nonmatrix"] == "adamw", "1-D parameter needs nonmatrix=adamw"
    return {"step": 0, "exp_avg": torch.zeros_like(p),
            "exp_avg_sq": torch.zeros_like(p)}


# --------------------------------------------------------------------- ROOT

QUANTILE_STATS = {"calls": 0, "numpy_equal": 0, "max_ulps": 0}


def root_threshold(u, q):
    """quantile(|U|, q) + 1e-9: numpy's "linear" method with the weight
    rounded to u's dtype and the interpolation done in u's dtype; cross-
    checked against numpy in float64."""
    a = torch.sort(u.abs().reshape(-1)).values
    n = a.numel()
    h = q * (n - 1)  # a Python double, as numpy's virtual index
    lo, hi = int(math.floor(h)), int(math.ceil(h))
    if lo == hi:
        val = a[lo]
    else:
        # torch.lerp's formula, written out (separate roundings, no FMA)
        w = torch.tensor(h - lo, dtype=u.dtype)
        d = a[hi] - a[lo]
        val = a[lo] + w * d if w.item() < 0.5 else a[hi] - d * (1 - w)
    # numpy on the same values in float64: identical for float64; for
    # float32 only the dtype roundings of w and of the lerp differ.
    ref = float(np.quantile(a.numpy().astype(np.float64), q, method="linear"))
    ulp = float(np.spacing(np.abs(val.numpy())))
    diff = abs(ref - val.item())
    assert diff <= 2 * ulp, "quantile %r vs numpy %r" % (val.item(), ref)
    if u.dtype == torch.float64:
        assert diff == 0, "quantile %r vs numpy %r" % (val.item(), ref)
    QUANTILE_STATS["calls"] += 1
    QUANTILE_STATS["numpy_equal"] += int(diff == 0)
    QUANTILE_STATS["max_ulps"] = max(QUANTILE_STATS["max_ulps"], diff / ulp)
    return val + ROOT_THR_EPS


def root_matrix_step(p, g, st, o):
    lr, mu = o["lr"], o["momentum"]
    st["step"] += 1
    buf = st["momentum_buffer"]
    buf.mul_(mu).add_(g)
    u = g.add(buf, alpha=mu) if o["nesterov"] else buf
    thr = root_threshold(u, o["quantile"]).item()
    b = u.clamp(-thr, thr)
    x = goldenlib.newton_schulz(b, o["ns_steps"], o["ns_coefficients"])
    adjusted_lr = lr * (0.2 * math.sqrt(max(p.shape[0], p.shape[1])))
    p.mul_(1 - lr * o["weight_decay"])
    p.add_(x, alpha=-adjusted_lr)


def root_adamw_step(p, g, st, o):
    lr, beta1, beta2 = o["lr"], o["adamw_beta1"], o["adamw_beta2"]
    st["step"] += 1
    step = st["step"]
    st["exp_avg"].lerp_(g, 1 - beta1)
    st["exp_avg_sq"].lerp_(g.square(), 1 - beta2)
    u = st["exp_avg"] / (st["exp_avg_sq"].sqrt() + o["adamw_eps"])
    scale = (1 - beta1 ** step) / (1 - beta2 ** step) ** 0.5
    p.mul_(1 - lr * o["weight_decay"])
    p.add_(u, alpha=-lr / scale)


def root_step(params, grads, states, o):
    """grads[i] is None for a missing gradient: the parameter is skipped."""
    for p, g, st in zip(params, grads, states):
        if g is None:
            continue
        if p.ndim == 2:
            root_matrix_step(p, g, st, o)
        else:
            root_adamw_step(p, g, st, o)


def root_state(p, o):
    if p.ndim == 2:
        return {"step": 0, "momentum_buffer": torch.zeros_like(p)}
    assert o["nonmatrix"] == "adamw", "non-2-D parameter needs nonmatrix=adamw"
    return {"step": 0, "exp_avg": torch.zeros_like(p),
            "exp_avg_sq": torch.zeros_like(p)}


def state_keys(alg, p):
    if alg == "normuon" and p.ndim >= 2:
        return ("momentum_buffer", "second_moment")
    if alg == "root" and p.ndim == 2:
        return ("momentum_buffer",)
    return ("exp_avg", "exp_avg_sq")


ALGS = {"normuon": (normuon_state, normuon_step),
        "root": (root_state, root_step)}


# --------------------------------------------------------------- the cases

TWO = [("w", (8, 5)), ("b", (5,))]
MULTI = [("w", (8, 5)), ("b", (5,)), ("c", (2, 3, 4))]


def case(alg, dt, shape, suffix, opts, missing=None, params=None):
    o = dict(DEFAULTS[alg])
    assert set(opts) <= set(o), opts
    o.update(opts)
    return dict(name="%s_%s_%s%s" % (alg, dt, shape, suffix), alg=alg, dt=dt,
                opts=o, shapes=params or [("w", SHAPES[shape])],
                missing=missing or {})


def build_cases():
    cases = []
    for dt in DTYPES:
        # NorMuon, variant=reference (the authors' code).
        for shape in ("tall", "wide", "square", "3d", "4d"):
            cases.append(case("normuon", dt, shape, "", {}))
            cases.append(case("normuon", dt, shape, "_wd",
                              dict(weight_decay=0.1)))
        cases.append(case("normuon", dt, "tall", "_nonest",
                          dict(nesterov=False)))
        cases.append(case("normuon", dt, "square", "_polar",
                          dict(ns_coefficients="polar_express")))
        cases.append(case("normuon", dt, "wide", "_missing_wd",
                          dict(weight_decay=0.1), {"w": (4, 9)}))
        cases.append(case("normuon", dt, "two", "_adamw",
                          dict(nonmatrix="adamw"), params=TWO))
        # Missing gradients with both decays: the auxiliary AdamW also
        # skips its decay on those steps (NorMuonWithAuxAdam).
        cases.append(case("normuon", dt, "two", "_adamw_missing_wd",
                          dict(nonmatrix="adamw", weight_decay=0.1,
                               adamw_weight_decay=0.01),
                          {"w": (4, 9), "b": (7,)}, params=TWO))
        # NorMuon, variant=paper (2-D and 3-D only).
        for shape in ("tall", "wide", "3d"):
            cases.append(case("normuon", dt, shape, "_paper",
                              dict(variant="paper")))
        cases.append(case("normuon", dt, "tall", "_paper_wd",
                          dict(variant="paper", weight_decay=0.1)))
        # ROOT (every test shape falls back to Muon's coefficients).
        for shape in ("tall", "wide", "square"):
            cases.append(case("root", dt, shape, "", {}))
        cases.append(case("root", dt, "tall", "_nonest",
                          dict(nesterov=False)))
        cases.append(case("root", dt, "wide", "_q05", dict(quantile=0.5)))
        cases.append(case("root", dt, "square", "_wd0",
                          dict(weight_decay=0.0)))
        cases.append(case("root", dt, "multi", "", {}, {"w": (3, 11)},
                          params=MULTI))
    return cases


# ----------------------------------------------------------------- running

def run_case(c, out):
    alg, dt, o = c["alg"], c["dt"], c["opts"]
    init_state, step = ALGS[alg]
    names = [n for n, _ in c["shapes"]]
    seed = goldenlib.case_seed(c["name"])
    inits = goldenlib.initial_values(c["shapes"], DTYPES[dt], seed)

    ref = [t.clone() for t in inits]
    states = [init_state(p, o) for p in ref]

    defaults = DEFAULTS[alg]
    goldenlib.write_case_header(
        out, c["name"], alg, dt, seed,
        goldenlib.options_spec(o, defaults, defaults), STEPS,
        c["shapes"], inits, c["missing"])

    for k in range(1, STEPS + 1):
        grads = goldenlib.step_gradients(ref, names, c["missing"], k, seed)
        step(ref, grads, states, o)
        for n, p in zip(names, ref):
            assert torch.isfinite(p).all(), "%s step %d %s" % (c["name"], k, n)
            if k in CHECK_STEPS:
                goldenlib.write_check(out, k, n, p)

    for n, st, p in zip(names, states, ref):
        for key in state_keys(alg, p):
            goldenlib.write_state(out, n, key, st[key])
        goldenlib.write_scalar(out, n, "step", st["step"])
    goldenlib.write_end(out)


def main():
    torch.set_num_threads(1)
    with torch.no_grad():
        self_check()
        cases = build_cases()
        assert len({c["name"] for c in cases}) == len(cases)
        out = ["# liboptim golden trajectories: NorMuon (reference and paper "
               "variants, auxiliary AdamW) and ROOT (with its AdamW)",
               "# generated by tests/golden/gen_normuon_root.py with torch %s "
               "(ATEN_CPU_CAPABILITY=%s); our own reference, see README"
               % (torch.__version__, os.environ["ATEN_CPU_CAPABILITY"]),
               "# %d cases; format and gradient formula: tests/golden/README"
               % len(cases)]
        for c in cases:
            run_case(c, out)
    sys.stdout.write("\n".join(out) + "\n")
    print("normuon_root: %d cases (%s); ROOT quantile: %d calls, %d equal to "
          "numpy's linear method, max %.2f ulp apart"
          % (len(cases), ", ".join(
              "%d %s %s" % (sum(c["dt"] == dt and c["alg"] == a
                                for c in cases), a, dt)
              for a in ALGS for dt in DTYPES),
             QUANTILE_STATS["calls"], QUANTILE_STATS["numpy_equal"],
             QUANTILE_STATS["max_ulps"]),
          file=sys.stderr)


if __name__ == "__main__":
    main()
