"""Pieces shared by the golden-data generators gen_basic.py, gen_muon.py and
gen_normuon_root.py (not a script; run with Debian's python3-torch 1.13).

  * the gradient formula of tests/golden/README (noise, gradient);
  * the per-case seed and the initial values (case_seed, initial_values);
  * the golden file writer: case / param / init / missing / check / state /
    scalar / end lines, values as C99 hex floats (Python float.hex());
  * small helpers of the generators' summaries and tolerance studies;
  * Newton-Schulz in the parameter's dtype (never bf16), transposed when
    rows > cols, normalised by nrm * f * (1 + 1e-7) (f = 1.02 for
    polar_express, else 1), a zero matrix giving zero, with matrix products
    and Frobenius norms in a fixed summation order (k = 0, 1, ... left to
    right, every product and sum rounded in the dtype), so the output does
    not depend on BLAS or the CPU; its coefficient tables (Muon's, Polar
    Express's, ROOT's per-shape table) and its self-check.

Importing this module pins ATen's CPU kernels to the portable (non-SIMD)
build before it imports torch, so the generators import it before torch.
"""
import os
import zlib

# Pin ATen's CPU kernels to the portable (non-SIMD) build.  The AVX2/AVX512
# kernels evaluate add(alpha=) and addcmul as fused multiply-adds, the default
# ones as separately rounded IEEE operations; pinning keeps the output the
# same on every machine.  Must happen before torch is imported.
os.environ.setdefault("ATEN_CPU_CAPABILITY", "default")

import torch  # noqa: E402

DTYPES = {"f32": torch.float32, "f64": torch.float64}
M32 = 0xFFFFFFFF


# ---------------------------------------------------------------- gradients

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


def step_gradients(params, names, missing, k, seed):
    """The gradients of step k (1-based) for params (registration order,
    named names); None for a parameter listed missing at step k."""
    return [None if k in missing.get(n, ()) else gradient(p, k, j, seed)
            for j, (n, p) in enumerate(zip(names, params))]


# ----------------------------------------------------------- initial values

def case_seed(name):
    """The seed of a case: used by the gradient formula and initial_values."""
    return zlib.crc32(name.encode()) % 100000


def initial_values(shapes, dtype, seed):
    """Initial parameter values for [(name, shape), ...]: float64 normals
    from torch's generator seeded with seed, rounded to dtype."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, dtype=torch.float64, generator=gen).to(dtype)
            for _, shape in shapes]


# ------------------------------------------------------- golden file writer
# Each function appends lines (without newline) to the list out; the format
# is described in tests/golden/README.

def fmt_opt(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return v if isinstance(v, str) else repr(v)


def options_spec(o, defaults, order):
    """The `options` field: the keys of order whose value in o differs from
    defaults, as k=v separated by commas; "-" if there are none."""
    spec = ",".join("%s=%s" % (k, fmt_opt(o[k])) for k in order
                    if k in o and o[k] != defaults[k])
    return spec or "-"


def hexes(t):
    return " ".join(float(v).hex() for v in t.reshape(-1).tolist())


def write_case_header(out, name, alg, dt, seed, options, steps, shapes,
                      inits, missing):
    """The lines from `case` to the `missing` ones; shapes is
    [(param name, shape), ...], inits the initial values in that order,
    missing {param name: steps without gradient}."""
    names = [n for n, _ in shapes]
    out.append("case " + name)
    out.append("algorithm " + alg)
    out.append("dtype " + dt)
    out.append("seed %d" % seed)
    out.append("options " + options)
    out.append("steps %d" % steps)
    for n, shape in shapes:
        out.append("param %s %d %s"
                   % (n, len(shape), " ".join(map(str, shape))))
    for n, t in zip(names, inits):
        out.append("init %s %s" % (n, hexes(t)))
    for n in names:
        if n in missing:
            out.append("missing %s %s" % (n, " ".join(map(str, missing[n]))))


def write_check(out, k, name, t):
    out.append("check %d %s %s" % (k, name, hexes(t)))


def write_state(out, name, key, t):
    out.append("state %s %s %s" % (name, key, hexes(t)))


def write_scalar(out, name, key, value):
    out.append("scalar %s %s %d" % (name, key, value))


def write_end(out):
    out.append("end")


# ------------------------------------------------------------- generators

def dtype_counts(cases):
    """"12 f32, 12 f64": how many of cases (dicts with "dt") per dtype."""
    return ", ".join("%d %s" % (sum(c["dt"] == dt for c in cases), dt)
                     for dt in DTYPES)


def variant_runs(variants, mode, cases, run_case):
    """For a tolerance study: with mode (a generator's dict of evaluation
    switches) updated by each of variants {name: changes} in turn, run
    every case (run_case(case, None)) and yield (name, case, its record);
    mode is restored after each variant."""
    base = dict(mode)
    for vname, changes in variants.items():
        mode.update(changes)
        try:
            for c in cases:
                yield vname, c, run_case(c, None)
        finally:
            mode.clear()
            mode.update(base)


# ------------------------------------------------------------ Newton-Schulz

MUON_COEFFS = (3.4445, -4.7750, 2.0315)
POLAR = [(8.156554524902461, -22.48329292557795, 15.878769915207462),
         (4.042929935166739, -2.808917465908714, 0.5000178451051316),
         (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
         (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
         (2.3465413258596377, -1.7097828382687081, 0.42323551169305323)]
# ROOT's published per-shape coefficients, key (min(m, n), max(m, n)); any
# other shape uses MUON_COEFFS (spec section 4).
ROOT_TABLE = {(2048, 2048): (3.4916, -4.8224, 2.1095),
              (2048, 3072): (3.4509, -4.5790, 1.9325),
              (2048, 8192): (2.9794, -3.6674, 1.6207),
              (2048, 16384): (3.1943, -3.8221, 1.5322)}
NS_EPS = 1e-7


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


def coefficients(kind, i, shape):
    """(a, b, c) of NS iteration i (0-based) for kind muon, polar_express
    (the last tuple repeats) or root (per shape), on a matrix of shape."""
    if kind == "polar_express":
        return POLAR[min(i, len(POLAR) - 1)]
    if kind == "root":
        return ROOT_TABLE.get((min(shape), max(shape)), MUON_COEFFS)
    assert kind == "muon"
    return MUON_COEFFS


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
    if kind == "polar_express":
        x = x / (nrm * 1.02 * (1 + NS_EPS))
    else:
        x = x / (nrm * (1 + NS_EPS))
    for i in range(steps):
        a, b, c = coefficients(kind, i, tuple(u.shape))
        A = mm(x, x.T)
        B = b * A + c * mm(A, A)
        x = a * x + mm(B, x)
    return x.T if transposed else x


def orthogonalise(u, o):
    """NS (o["ns_steps"], o["ns_coefficients"]) of a >= 2-D update u,
    returned in u's shape (3-D: a batch of shape[0] matrices; 4-D: NS of the
    (out, in*kh*kw) view, reshaped back), and the (R, C) NS ran on."""
    steps, kind = o["ns_steps"], o["ns_coefficients"]
    if u.ndim == 2:
        return newton_schulz(u, steps, kind), tuple(u.shape)
    if u.ndim == 3:  # a batch of shape[0] matrices
        return (torch.stack([newton_schulz(u[i], steps, kind)
                             for i in range(u.shape[0])]),
                tuple(u.shape[1:]))
    assert u.ndim == 4
    m = u.reshape(u.shape[0], -1)
    return newton_schulz(m, steps, kind).reshape(u.shape), tuple(m.shape)


def ns_self_check():
    """Sanity of newton_schulz on a random 64x32 float64 matrix X: the
    singular values of NS(X) lie in [0.6, 1.2] and NS(1e-6 X) equals NS(X)
    to 1e-12 relative.  Returns (X, NS(X), a one-line summary)."""
    gen = torch.Generator().manual_seed(20240613)
    x = torch.randn((64, 32), dtype=torch.float64, generator=gen)
    o = newton_schulz(x, 5)
    sv = torch.linalg.svdvals(o)
    lo, hi = sv.min().item(), sv.max().item()
    assert 0.6 <= lo and hi <= 1.2, "NS singular values %g..%g" % (lo, hi)
    oc = newton_schulz(x * 1e-6, 5)
    rel = ((oc - o).norm() / o.norm()).item()
    assert rel <= 1e-12, "NS not scale invariant: rel diff %g" % rel
    return x, o, ("NS self-check: 64x32 f64 singular values in [%.4f, %.4f]; "
                  "NS(1e-6 X) vs NS(X) relative difference %.3g"
                  % (lo, hi, rel))


def jacobi_eigh(a):
    """Cyclic Jacobi on a symmetric matrix in its own dtype (numpy): a
    different algorithm from LAPACK's syevd, as another library might use
    (the generators' tolerance studies).
    Returns (eigenvalues ascending, eigenvectors as columns)."""
    import numpy as np

    dt = a.dtype.type
    a = np.array(a)
    n = a.shape[0]
    v = np.eye(n, dtype=a.dtype)
    one, two = dt(1), dt(2)
    tol = 1e-9 if a.dtype == np.float32 else 1e-18
    for _ in range(100):
        off = np.sqrt(np.sum(np.triu(a, 1).astype(np.float64) ** 2))
        scale = np.sqrt(np.sum(a.astype(np.float64) ** 2))
        if off <= tol * scale or off == 0:
            break
        for p in range(n - 1):
            for q in range(p + 1, n):
                apq = a[p, q]
                if apq == 0:
                    continue
                with np.errstate(over="ignore"):
                    theta = (a[q, q] - a[p, p]) / (two * apq)
                if abs(theta) > dt(1e15):
                    t = dt(0.5) / theta
                else:
                    t = dt(np.sign(theta) if theta != 0 else 1) / (
                        abs(theta) + np.sqrt(theta * theta + one))
                c = one / np.sqrt(t * t + one)
                s = t * c
                cp, cq = a[:, p].copy(), a[:, q].copy()
                a[:, p], a[:, q] = c * cp - s * cq, s * cp + c * cq
                rp, rq = a[p, :].copy(), a[q, :].copy()
                a[p, :], a[q, :] = c * rp - s * rq, s * rp + c * rq
                vp, vq = v[:, p].copy(), v[:, q].copy()
                v[:, p], v[:, q] = c * vp - s * vq, s * vp + c * vq
    w = np.diag(a).copy()
    order = np.argsort(w, kind="stable")
    return w[order], v[:, order]
