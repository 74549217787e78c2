#!/usr/bin/python3
"""Generate tests/golden/muon.txt: Muon (+ its auxiliary AdamW) trajectories.

Usage (from the repository root; needs Debian's python3-torch 1.13):

    /usr/bin/python3 tests/golden/gen_muon.py > tests/golden/muon.txt

The trajectories come from our own re-implementation of Muon as described in
../shared/spec/optimizers.md section 2 (KellerJordan/Muon muon_update and
MuonWithAuxAdam adam_update), with these deliberate differences from the
reference code:

  * everything runs in the parameter's dtype (f32 or f64), never bf16;
  * Newton-Schulz normalises by nrm * (1 + 1e-7) instead of nrm + 1e-7, so
    NS(c*X) == NS(X) (scale invariance);
  * the options ns_steps, ns_coefficients (muon / polar_express), lr_adjust
    (reference / match_adamw) and nonmatrix (error / adamw) are ours;
  * the matrix state also counts `step`.

There is no third-party implementation to check against here (the reference
computes in bf16), so instead the script self-checks its Newton-Schulz helper:
the singular values of NS(X) for a random 64x32 float64 X must lie in
[0.6, 1.2], and NS(1e-6 * X) must equal NS(X) to 1e-12 relative.

Matrix products and the Frobenius norm are written out as sequences of
elementwise torch operations with a fixed summation order (k = 0, 1, 2, ...
left to right, every product and every sum rounded in the dtype), so the
output does not depend on the BLAS library, its kernels or the CPU; a naive
C loop `acc = x0*y0; acc += xk*yk ...` compiled without FP contraction
reproduces the products bit for bit.  The file format and the gradient
formula are defined in tests/golden/README; a missing gradient is a zero
gradient for this algorithm (the parameter is still stepped).
"""
import math
import os
import sys
import zlib

# Pin ATen's CPU kernels to the portable (non-SIMD) build, as gen_basic.py
# does: the AVX2/AVX512 kernels may fuse add(alpha=) into an FMA.  Must
# happen before torch is imported.
os.environ.setdefault("ATEN_CPU_CAPABILITY", "default")

import torch  # noqa: E402

STEPS = 30
CHECK_STEPS = (1, 2, 3, 5, 10, 20, 30)
SHAPES = {"tall": (12, 7), "wide": (6, 15), "square": (9, 9),
          "3d": (3, 5, 8), "4d": (6, 3, 3, 2)}
DTYPES = {"f32": torch.float32, "f64": torch.float64}
M32 = 0xFFFFFFFF

# Defaults of our option names (as the C library spells them).
DEFAULTS = dict(lr=0.02, momentum=0.95, nesterov=True, weight_decay=0.0,
                ns_steps=5, ns_coefficients="muon", lr_adjust="reference",
                nonmatrix="error", adamw_lr=3e-4, adamw_beta1=0.9,
                adamw_beta2=0.95, adamw_eps=1e-10, adamw_weight_decay=0.0)
OPTION_ORDER = ("lr", "momentum", "nesterov", "weight_decay", "ns_steps",
                "ns_coefficients", "lr_adjust", "nonmatrix", "adamw_lr",
                "adamw_beta1", "adamw_beta2", "adamw_eps",
                "adamw_weight_decay")

MUON_COEFFS = (3.4445, -4.7750, 2.0315)
POLAR = [(8.156554524902461, -22.48329292557795, 15.878769915207462),
         (4.042929935166739, -2.808917465908714, 0.5000178451051316),
         (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
         (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
         (2.3465413258596377, -1.7097828382687081, 0.42323551169305323)]
NS_EPS = 1e-7


# ---------------------------------------------------------------- gradients
# (identical to gen_basic.py; the formula is in tests/golden/README)

def noise(numel, k, j, seed):
    """The s values of the README formula for step k, parameter j."""
    base = k * 40503 + (j + 1) * 97 + seed * 7919
    out = []
    for i in range(numel):
        x = (i * 2654435761 + base) & M32
        x ^= x >> 16
        x = (x * 0x7feb352d) & M32
        x ^= x >> 15
        x = (x * 0x846ca68b) & M32
        x ^= x >> 16
        out.append(((x % 2001) - 1000) / 512)
    return out


def gradient(p, k, j, seed):
    """g = 0.25 * p + s, two roundings in p's dtype."""
    s = torch.tensor(noise(p.numel(), k, j, seed), dtype=p.dtype)
    return p.mul(0.25).add(s.reshape(p.shape))


# ------------------------------------------------------------ Newton-Schulz

def mm(x, y):
    """x @ y with a fixed order: C[i,j] = ((x[i,0]y[0,j] + x[i,1]y[1,j]) + ...),
    every product and sum rounded in the dtype."""
    c = x[:, 0:1] * y[0:1, :]
    for k in range(1, x.shape[1]):
        c = c + x[:, k:k + 1] * y[k:k + 1, :]
    return c


def frobenius(x):
    """||x||_F: squares summed in row-major order, then sqrt, in the dtype."""
    sq = (x * x).reshape(-1)
    acc = sq[0]
    for i in range(1, sq.numel()):
        acc = acc + sq[i]
    return acc.sqrt()


def coefficients(kind, i):
    if kind == "muon":
        return MUON_COEFFS
    return POLAR[min(i, len(POLAR) - 1)]


def newton_schulz(u, steps, kind="muon"):
    """Approximate orthogonalisation of one matrix u (2-D) in u's dtype."""
    assert u.ndim == 2
    x = u
    transposed = u.shape[0] > u.shape[1]
    if transposed:
        x = x.T
    nrm = frobenius(x)
    if nrm.item() == 0:
        return torch.zeros_like(u)
    if kind == "muon":
        x = x / (nrm * (1 + NS_EPS))
    else:
        x = x / (nrm * 1.02 * (1 + NS_EPS))
    for i in range(steps):
        a, b, c = coefficients(kind, i)
        A = mm(x, x.T)
        B = b * A + c * mm(A, A)
        x = a * x + mm(B, x)
    return x.T if transposed else x


def self_check():
    """Sanity of the NS helper on a random 64x32 float64 matrix."""
    gen = torch.Generator().manual_seed(20240613)
    x = torch.randn((64, 32), dtype=torch.float64, generator=gen)
    o = newton_schulz(x, 5)
    sv = torch.linalg.svdvals(o)
    lo, hi = sv.min().item(), sv.max().item()
    assert 0.6 <= lo and hi <= 1.2, "NS singular values %g..%g" % (lo, hi)
    oc = newton_schulz(x * 1e-6, 5)
    rel = ((oc - o).norm() / o.norm()).item()
    assert rel <= 1e-12, "NS not scale invariant: rel diff %g" % rel
    print("NS self-check: 64x32 f64 singular values in [%.4f, %.4f]; "
          "NS(1e-6 X) vs NS(X) relative difference %.3g"
          % (lo, hi, rel), file=sys.stderr)


# ------------------------------------------------------- the update rules

def orthogonalise(u, o):
    """NS applied to the update u of a >= 2-D parameter; returns the update
    in u's shape and the shape (R, C) of the matrix NS ran on."""
    if u.ndim == 2:
        return newton_schulz(u, o["ns_steps"], o["ns_coefficients"]), u.shape
    if u.ndim == 3:  # a batch of shape[0] matrices
        outs = [newton_schulz(u[i], o["ns_steps"], o["ns_coefficients"])
                for i in range(u.shape[0])]
        return torch.stack(outs), u.shape[1:]
    assert u.ndim == 4  # conv filter viewed as (out, in*kh*kw)
    m = u.reshape(u.shape[0], -1)
    return newton_schulz(m, o["ns_steps"], o["ns_coefficients"]), m.shape


def muon_param_step(p, g, st, o):
    lr, beta = o["lr"], o["momentum"]
    st["step"] += 1
    buf = st["momentum_buffer"]
    buf.lerp_(g, 1 - beta)
    u = g.lerp(buf, beta) if o["nesterov"] else buf
    out, (rows, cols) = orthogonalise(u, o)
    if o["lr_adjust"] == "reference":  # original shape, even for 4-D
        s = math.sqrt(max(1, p.shape[-2] / p.shape[-1]))
    else:  # match_adamw: shape of the matrix NS ran on
        s = 0.2 * math.sqrt(max(rows, cols))
    p.mul_(1 - lr * o["weight_decay"])
    p.add_(out.reshape(p.shape) * s, alpha=-lr)


def adamw_param_step(p, g, st, o):
    """MuonWithAuxAdam's adam_update plus its decoupled weight decay."""
    lr, beta1, beta2 = o["adamw_lr"], o["adamw_beta1"], o["adamw_beta2"]
    st["step"] += 1
    step = st["step"]
    st["exp_avg"].lerp_(g, 1 - beta1)
    st["exp_avg_sq"].lerp_(g.square(), 1 - beta2)
    m_hat = st["exp_avg"] / (1 - beta1 ** step)
    v_hat = st["exp_avg_sq"] / (1 - beta2 ** step)
    u = m_hat / (v_hat.sqrt() + o["adamw_eps"])
    p.mul_(1 - lr * o["adamw_weight_decay"])
    p.add_(u, alpha=-lr)


def initial_state(p, o):
    if p.ndim >= 2:
        assert p.ndim <= 4
        return {"step": 0, "momentum_buffer": torch.zeros_like(p)}
    assert o["nonmatrix"] == "adamw", "1-D parameter needs nonmatrix=adamw"
    return {"step": 0, "exp_avg": torch.zeros_like(p),
            "exp_avg_sq": torch.zeros_like(p)}


def muon_step(params, grads, states, o):
    """grads[i] is None for a missing gradient: treated as zeros."""
    for p, g, st in zip(params, grads, states):
        if g is None:
            g = torch.zeros_like(p)
        if p.ndim >= 2:
            muon_param_step(p, g, st, o)
        else:
            adamw_param_step(p, g, st, o)


def state_keys(p):
    return ("momentum_buffer",) if p.ndim >= 2 else ("exp_avg", "exp_avg_sq")


# --------------------------------------------------------------- the cases

TWO = [("w", (8, 5)), ("b", (5,))]
TWO_MISSING = {"w": (4, 9), "b": (7,)}


def case(dt, shape, suffix, opts, missing=None):
    """A case on one parameter "w" of SHAPES[shape], or on TWO ("two")."""
    o = dict(DEFAULTS)
    o.update(opts)
    two = shape == "two"
    return dict(name="muon_%s_%s%s" % (dt, shape, suffix), dt=dt, opts=o,
                shapes=TWO if two else [("w", SHAPES[shape])],
                missing=missing or {})


def build_cases():
    cases = []
    for dt in DTYPES:
        # Every shape with the defaults and with weight decay.
        for shape in ("tall", "wide", "square", "3d", "4d"):
            cases.append(case(dt, shape, "", {}))
            cases.append(case(dt, shape, "_wd", dict(weight_decay=0.1)))
        cases.append(case(dt, "tall", "_nonest", dict(nesterov=False)))
        cases.append(case(dt, "square", "_polar",
                          dict(ns_coefficients="polar_express")))
        cases.append(case(dt, "wide", "_polar",
                          dict(ns_coefficients="polar_express")))
        # ns_steps > 5 with polar_express repeats the last tuple.
        cases.append(case(dt, "tall", "_polar_ns7_wd",
                          dict(ns_coefficients="polar_express", ns_steps=7,
                               weight_decay=0.1)))
        cases.append(case(dt, "tall", "_adjadamw",
                          dict(lr_adjust="match_adamw")))
        cases.append(case(dt, "4d", "_adjadamw",
                          dict(lr_adjust="match_adamw")))
        cases.append(case(dt, "3d", "_adjadamw_ns3",
                          dict(lr_adjust="match_adamw", ns_steps=3)))
        cases.append(case(dt, "wide", "_ns3", dict(ns_steps=3)))
        cases.append(case(dt, "square", "_lr_mom_nonest_wd",
                          dict(lr=0.05, momentum=0.9, nesterov=False,
                               weight_decay=0.01)))
        cases.append(case(dt, "two", "_adamw",
                          dict(nonmatrix="adamw", adamw_weight_decay=0.01),
                          TWO_MISSING))
        cases.append(case(dt, "two", "_adamw_opts",
                          dict(nonmatrix="adamw", weight_decay=0.1,
                               adamw_lr=1e-3, adamw_beta1=0.8,
                               adamw_beta2=0.99, adamw_eps=1e-8,
                               adamw_weight_decay=0.1),
                          {"w": (2, 3), "b": (1, 30)}))
    return cases


# ----------------------------------------------------------------- running

def fmt_opt(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return v if isinstance(v, str) else repr(v)


def hexes(t):
    return " ".join(float(v).hex() for v in t.reshape(-1).tolist())


def run_case(c, out):
    dt, o = c["dt"], c["opts"]
    dtype = DTYPES[dt]
    names = [n for n, _ in c["shapes"]]
    seed = zlib.crc32(c["name"].encode()) % 100000
    gen = torch.Generator().manual_seed(seed)
    inits = [torch.randn(shape, dtype=torch.float64, generator=gen).to(dtype)
             for _, shape in c["shapes"]]

    ref = [t.clone() for t in inits]
    states = [initial_state(p, o) for p in ref]

    opts = ",".join("%s=%s" % (k, fmt_opt(o[k])) for k in OPTION_ORDER
                    if o[k] != DEFAULTS[k])
    out.append("case " + c["name"])
    out.append("algorithm muon")
    out.append("dtype " + dt)
    out.append("seed %d" % seed)
    out.append("options " + (opts or "-"))
    out.append("steps %d" % STEPS)
    for n, shape in c["shapes"]:
        out.append("param %s %d %s"
                   % (n, len(shape), " ".join(map(str, shape))))
    for n, t in zip(names, inits):
        out.append("init %s %s" % (n, hexes(t)))
    for n in names:
        if n in c["missing"]:
            out.append("missing %s %s"
                       % (n, " ".join(map(str, c["missing"][n]))))

    for k in range(1, STEPS + 1):
        skip = [k in c["missing"].get(n, ()) for n in names]
        grads = [None if s else gradient(p, k, j, seed)
                 for j, (p, s) in enumerate(zip(ref, skip))]
        muon_step(ref, grads, states, o)
        for n, p in zip(names, ref):
            assert torch.isfinite(p).all(), "%s step %d %s" % (c["name"], k, n)
            if k in CHECK_STEPS:
                out.append("check %d %s %s" % (k, n, hexes(p)))

    for n, st, p in zip(names, states, ref):
        for key in state_keys(p):
            out.append("state %s %s %s" % (n, key, hexes(st[key])))
        out.append("scalar %s step %d" % (n, st["step"]))
    out.append("end")


def main():
    torch.set_num_threads(1)
    with torch.no_grad():
        self_check()
        cases = build_cases()
        assert len({c["name"] for c in cases}) == len(cases)
        out = ["# liboptim golden trajectories: Muon (with auxiliary AdamW)",
               "# generated by tests/golden/gen_muon.py with torch %s "
               "(ATEN_CPU_CAPABILITY=%s); our own reference, see README"
               % (torch.__version__, os.environ["ATEN_CPU_CAPABILITY"]),
               "# %d cases; format and gradient formula: tests/golden/README"
               % len(cases)]
        for c in cases:
            run_case(c, out)
    sys.stdout.write("\n".join(out) + "\n")
    print("muon: %d cases (%s)" % (len(cases), ", ".join(
        "%d %s" % (sum(c["dt"] == dt for c in cases), dt) for dt in DTYPES)),
        file=sys.stderr)


if __name__ == "__main__":
    main()
