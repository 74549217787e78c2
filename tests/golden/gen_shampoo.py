#!/usr/bin/python3
"""Generate tests/golden/shampoo.txt: Shampoo trajectories.

Usage (from the repository root; needs Debian's python3-torch 1.13 + numpy):

    /usr/bin/python3 tests/golden/gen_shampoo.py > tests/golden/shampoo.txt
    /usr/bin/python3 tests/golden/gen_shampoo.py --tolerance-study

The second form writes no golden data: it reruns every case with other
eigendecompositions and with rounding-level perturbations of the factors and
prints how far the parameters and the state buffers move (the numbers behind
the tolerances suggested in tests/golden/README).

There is no reference implementation of this Shampoo: the rule below is OUR
specification (documented in man 3 liboptim), implemented here
independently of the C library, with torch tensor operations in the order
the specification writes them.

Registry name shampoo; options and defaults:
  lr=1e-3, beta1=0.9, beta2=1.0, eps=1e-12, update_freq=10 (f),
  block_size=1024, grafting=adam (adam | sgd | none), graft_beta2=0.999,
  graft_eps=1e-8, weight_decay=0, nesterov=false.

Blocks.  A parameter of order k (1..4) with dims d_0..d_{k-1}: dim i is cut
into ceil(d_i / block_size) consecutive pieces of block_size (the last one
shorter); blocks are ordered row-major over their block indices (the last
dim's index fastest).  Block B (dims b_0..b_{k-1}) keeps, per dim i, a
factor F_{B,i} and an inverse root H_{B,i} (b_i x b_i, zeros at first).

State: scalar step (t); buffers factors (every F_{B,i}, block order then
dim order, each row-major, back to back), roots (every H_{B,i}, same
order), exp_avg (m, parameter shape) and, with grafting=adam only,
exp_avg_sq (v, parameter shape).

A parameter without gradient is skipped (no state change, t unchanged).
Step, every operation in the parameter's dtype unless stated:
  1. t = t + 1
  2. per block B, per dim i: C = G_(i) G_(i)^T (tensordot of the block with
     itself over every dim but i; 1-D: the outer product g g^T);
     F = F + C if beta2 == 1 else F*beta2 + C*(1-beta2)
  3. if (t - 1) % f == 0 (t = 1, 1+f, 1+2f, ...): for every factor
     lam, V = torch.linalg.eigh(F) (in the dtype);
     H = (V * d) @ V^T with d = (max(lam, 0) + eps) ** (-1/(2k)), k the
     ORDER OF THE PARAMETER (-1/4 matrix, -1/2 vector, -1/6, -1/8)
  4. P_B = G_B x_0 H_{B,0} x_1 H_{B,1} ... (mode-i product
     P[.., a, ..] = sum_b H[a, b] X[.., b, ..]; tensordot over H's dim 1,
     the mode moved to the back, so after all dims the order is restored)
  5. grafting direction D over the whole tensor:
       adam: v = v*graft_beta2 + ((1-graft_beta2)*g)*g   (left to right,
             as written; torch's addcmul rounds the same way)
             D = g / (sqrt(v / (1 - graft_beta2**t)) + graft_eps)
             (1 - graft_beta2**t in double, rounded to the dtype; a true
             element-wise IEEE division, not a multiplication by the
             reciprocal)
       sgd:  D = g
       none: no rescaling
     adam / sgd, per block: nD = ||D_B||_F, nP = ||P_B||_F, both in
     float64 (sqrt of the sum of squares); P_B = P_B * (nD / nP) with the
     ratio (a double) rounded to the dtype; P_B = 0 if nP == 0
  6. m = m*beta1 + P*(1-beta1)
     u = m*beta1 + P*(1-beta1) if nesterov else m
     p = p * (1 - lr*weight_decay)     only when weight_decay > 0
     p = p - u*lr
Python scalars are rounded to the dtype where they meet a tensor (torch's
rule for a wrapped number), e.g. (1-beta2) and (1 - lr*weight_decay) are
computed in double and then rounded.

Conditioning.  The inverse roots of a factor with eigenvalues near zero are
eps-dominated and sensitive to rounding (eigenvalues of a rank-deficient
factor come out as +-u*||F||).  Square matrix cases (both factors full rank
from step 1) use the default eps=1e-12; every case with a rank-deficient
factor at some step (non-square blocks, vectors) and the 3-D / 4-D cases use
eps=1e-3 (f32) / 1e-6 (f64).  --tolerance-study measures it.

Self-checks (stderr): (a) a square full-rank matrix with grafting=none,
beta2=1, eps=1e-12, f=1: H^4 (F + eps I) = I for both roots after every
step; (b) block_size >= every dim gives one block (and the same trajectory
bit for bit as block_size=1024); the block layout of 12x12 with
block_size=5; (c) after grafting ||P_B|| = ||D_B|| for every block of every
golden step (adam and sgd); (d) the order-k exponent: H^(2k) (F + eps I) = I
for a 1-D, a 3-D and a 4-D parameter (and H^4 (F + eps I) != I for the
3-D one); (e) an independent numpy implementation (explicit block loops,
matrices only) reproduces the 2-D / 1-D float64 golden cases to 1e-12.

Matrix products run in BLAS and eigh in the LAPACK torch links, so the file
is not bit-reproducible across machines; the C library is compared with a
tensor-wise tolerance (tests/golden/README).
"""
import itertools
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

# Defaults of our option names (as the C registry spells them); also the
# order of the `options` field.
DEFAULTS = dict(
    lr=1e-3, beta1=0.9, beta2=1.0, eps=1e-12, update_freq=10,
    block_size=1024, grafting="adam", graft_beta2=0.999, graft_eps=1e-8,
    weight_decay=0.0, nesterov=False)

# eps for cases with a rank-deficient factor (non-square blocks, vectors)
# and for the 3-D / 4-D cases.
EPS_DEFICIENT = {"f32": 1e-3, "f64": 1e-6}

# How the roots are computed.  "torch" is the golden data; the others exist
# for --tolerance-study (and the numpy cross-check):
#   torch     torch.linalg.eigh in the dtype
#   eigh64    eigh and the root in float64 of the same F, H rounded to the
#             dtype (for f64 the same as torch)
#   eigh32    eigh in float32 (F rounded to float32), the root in the dtype
#             (f32 only: for f64 it is a float32-level change)
#   rotated   eigh of R^T F R with a fixed random orthogonal R (in the
#             dtype), V = R V': the same matrix, other rounding errors, as
#             another LAPACK might produce
#   numpy     numpy.linalg.eigh in the dtype (here the same LAPACK as
#             torch's: identical results)
#   jacobi    our cyclic Jacobi eigensolver in the dtype (numpy): another
#             algorithm
#   pertC     torch eigh, but every contraction C = G_(i)G_(i)^T multiplied
#             element-wise by (1 + u*r), r uniform in [-1, 1] symmetric, u
#             the dtype's unit roundoff: another summation order of C
MODE = {"eigh": "torch", "pert_c": False}

STATS = {"graft": 0.0, "graft_blocks": 0, "refreshes": 0, "small": {}}

_ROT = {}
_PERT_GEN = None


# -------------------------------------------------------------- the root

def rotation(n, dtype):
    key = (n, dtype)
    if key not in _ROT:
        gen = torch.Generator().manual_seed(1000 + n)
        a = torch.randn((n, n), dtype=torch.float64, generator=gen)
        _ROT[key] = torch.linalg.qr(a)[0].to(dtype)
    return _ROT[key]


def eigh(f):
    """(eigenvalues, eigenvectors) of the symmetric f, as MODE says."""
    mode = MODE["eigh"]
    if mode == "torch":
        return torch.linalg.eigh(f)
    if mode == "eigh64":
        return torch.linalg.eigh(f.double())
    if mode == "eigh32":
        lam, v = torch.linalg.eigh(f.float())
        return lam.to(f.dtype), v.to(f.dtype)
    if mode == "rotated":
        r = rotation(f.shape[0], f.dtype)
        lam, v = torch.linalg.eigh(r.T @ f @ r)
        return lam, r @ v
    if mode == "numpy":
        lam, v = np.linalg.eigh(f.numpy())
        return torch.from_numpy(lam), torch.from_numpy(v)
    if mode == "jacobi":
        lam, v = goldenlib.jacobi_eigh(f.numpy())
        return torch.from_numpy(lam), torch.from_numpy(v)
    raise ValueError(mode)


def inverse_root(f, eps, order):
    """H = V diag((max(lam, 0) + eps) ** (-1/(2 order))) V^T, in f's dtype
    (in float64 for MODE eigh64, then rounded)."""
    lam, v = eigh(f)
    if MODE["eigh"] == "torch":
        # relative rounding error of the smallest max(lam, 0) + eps: an
        # eigenvalue carries an error of about u * lam_max
        lo, hi = lam.min().item(), lam.max().item()
        u = torch.finfo(f.dtype).eps / 2
        key = ("f32" if f.dtype == torch.float32 else "f64",
               "tiny" if eps < 1e-9 else "large")
        STATS["small"][key] = max(STATS["small"].get(key, 0.0),
                                  u * hi / (max(lo, 0.0) + eps))
    d = (lam.clamp(min=0) + eps) ** (-1.0 / (2 * order))
    return ((v * d) @ v.T).to(f.dtype)


# ------------------------------------------------------------- the blocks

def block_layout(shape, block_size):
    """The blocks of a parameter: a list (row-major over block indices) of
    tuples of (start, stop) per dim."""
    per_dim = [[(s, min(s + block_size, d)) for s in range(0, d, block_size)]
               for d in shape]
    return list(itertools.product(*per_dim))


def block_slices(b):
    return tuple(slice(s, e) for s, e in b)


def contraction(g, i):
    """G_(i) G_(i)^T: g contracted with itself over every dim but i."""
    others = [d for d in range(g.ndim) if d != i]
    c = torch.tensordot(g, g, dims=(others, others))
    if MODE["pert_c"]:
        u = torch.finfo(g.dtype).eps / 2
        r = torch.rand(c.shape, dtype=torch.float64, generator=_PERT_GEN)
        r = (r + r.T) - 1  # symmetric, in [-1, 1]
        c = c * (1 + u * r).to(c.dtype)
    return c


def precondition(x, hs):
    """x x_0 H_0 x_1 H_1 ...: P[.., a, ..] = sum_b H[a, b] X[.., b, ..]."""
    for h in hs:
        x = torch.tensordot(x, h, dims=([0], [1]))
    return x.contiguous()


# ---------------------------------------------------------------- Shampoo

def init_state(p, o):
    blocks = block_layout(tuple(p.shape), o["block_size"])
    dims = [[e - s for s, e in b] for b in blocks]
    st = {"step": 0, "blocks": blocks,
          "F": [[torch.zeros((n, n), dtype=p.dtype) for n in ds]
                for ds in dims],
          "H": [[torch.zeros((n, n), dtype=p.dtype) for n in ds]
                for ds in dims],
          "exp_avg": torch.zeros_like(p),
          "exp_avg_sq": (torch.zeros_like(p) if o["grafting"] == "adam"
                         else None)}
    return st


def shampoo_param_step(p, g, st, o, record=None):
    """One step of one parameter (p updated in place); record, if given, a
    list that receives (block index, F list, H list, P_B) after step 4."""
    dtype = p.dtype
    order = p.ndim
    st["step"] += 1
    t = st["step"]
    refresh = (t - 1) % o["update_freq"] == 0
    b2 = o["beta2"]
    # 5 (first part): the grafting direction of the whole tensor
    graft = o["grafting"]
    if graft == "adam":
        gb2 = o["graft_beta2"]
        v = st["exp_avg_sq"].mul(gb2).add(g.mul(1 - gb2).mul(g))
        st["exp_avg_sq"] = v
        bc = torch.full_like(v, 1 - gb2 ** t)
        D = torch.div(g, torch.div(v, bc).sqrt().add(o["graft_eps"]))
    elif graft == "sgd":
        D = g
    else:
        assert graft == "none", graft
        D = None
    P = torch.zeros_like(g)
    for bi, b in enumerate(st["blocks"]):
        sl = block_slices(b)
        G = g[sl]
        Fs, Hs = st["F"][bi], st["H"][bi]
        # 2. factors
        for i in range(order):
            c = contraction(G, i)
            if b2 == 1:
                Fs[i] = Fs[i].add(c)
            else:
                Fs[i] = Fs[i].mul(b2).add(c.mul(1 - b2))
        # 3. inverse roots
        if refresh:
            for i in range(order):
                Hs[i] = inverse_root(Fs[i], o["eps"], order)
                STATS["refreshes"] += 1
        # 4. preconditioned block
        PB = precondition(G, Hs)
        if record is not None:
            record.append((bi, [f.clone() for f in Fs],
                           [h.clone() for h in Hs], PB.clone()))
        # 5. grafting rescale
        if D is not None:
            nD = math.sqrt(D[sl].double().pow(2).sum().item())
            nP = math.sqrt(PB.double().pow(2).sum().item())
            if nP == 0:
                PB = torch.zeros_like(PB)
            else:
                ratio = nD / nP
                if dtype == torch.float32:
                    ratio = float(np.float32(ratio))
                PB = PB.mul(ratio)
                got = math.sqrt(PB.double().pow(2).sum().item())
                if nD > 0:
                    STATS["graft"] = max(STATS["graft"], abs(got - nD) / nD)
                STATS["graft_blocks"] += 1
        P[sl] = PB
    # 6. momentum and update
    b1 = o["beta1"]
    m = st["exp_avg"].mul(b1).add(P.mul(1 - b1))
    st["exp_avg"] = m
    u = m.mul(b1).add(P.mul(1 - b1)) if o["nesterov"] else m
    if o["weight_decay"] > 0:
        p.mul_(1 - o["lr"] * o["weight_decay"])
    p.sub_(u.mul(o["lr"]))


def shampoo_step(params, grads, states, o):
    for p, g, st in zip(params, grads, states):
        if g is None:  # torch semantics: the parameter is skipped
            continue
        shampoo_param_step(p, g, st, o)


def flat_buffer(mats):
    return torch.cat([x.reshape(-1) for blk in mats for x in blk])


# --------------------------------------------------------------- the cases

def check_steps(steps):
    return sorted({1, 2, 3, 5, 8, 13, steps} & set(range(1, steps + 1)))


def case(dt, name, shapes, opts, steps=13, missing=None, deficient=False):
    """deficient: the case needs the large eps (rank-deficient factors, or
    order 3 / 4)."""
    o = dict(DEFAULTS)
    assert set(opts) <= set(o), opts
    if deficient:
        o["eps"] = EPS_DEFICIENT[dt]
    o.update(opts)
    return dict(name="shampoo_%s_%s" % (dt, name), dt=dt, opts=o,
                shapes=shapes, steps=steps, missing=missing or {})


def build_cases():
    cases = []
    for dt in DTYPES:
        f3 = dict(update_freq=3)
        f4 = dict(update_freq=4)
        cases += [
            # square matrices: both factors full rank, default eps=1e-12
            case(dt, "sq8", [("w", (8, 8))], f3),
            case(dt, "sq8_f10", [("w", (8, 8))], {}, steps=22),
            case(dt, "sq8_hp", [("w", (8, 8))],
                 dict(f4, beta2=0.9, nesterov=True, weight_decay=0.01,
                      lr=0.01)),
            case(dt, "sq8_sgd", [("w", (8, 8))], dict(f3, grafting="sgd")),
            case(dt, "sq8_none", [("w", (8, 8))],
                 dict(f3, grafting="none", lr=1e-4)),
            case(dt, "sq8_b1_0", [("w", (8, 8))], dict(f3, beta1=0.0)),
            # four square 4x4 blocks, EMA factors
            case(dt, "sq8_blk4", [("w", (8, 8))],
                 dict(f4, block_size=4, beta2=0.99, grafting="sgd")),
            case(dt, "sq8_missing", [("w", (8, 8))], f3,
                 missing={"w": [4, 9]}),
            # rank-deficient factors: eps 1e-3 (f32) / 1e-6 (f64)
            case(dt, "blk12_b5", [("w", (12, 12))],
                 dict(block_size=5, update_freq=2), deficient=True),
            case(dt, "rect6x10", [("w", (6, 10))], f3, deficient=True),
            case(dt, "vec7_b3", [("b", (7,))], dict(f3, block_size=3),
                 deficient=True),
            case(dt, "t3d", [("w", (3, 4, 5))], f3, deficient=True),
            case(dt, "t4d_b3", [("w", (4, 3, 2, 2))],
                 dict(f4, block_size=3), deficient=True),
            case(dt, "two", [("a", (6, 6)), ("b", (5,))], f3,
                 deficient=True),
            case(dt, "two_missing", [("a", (6, 6)), ("b", (5,))],
                 dict(f3, grafting="none", lr=1e-4), missing={"b": [6]},
                 deficient=True),
        ]
    return cases


# ----------------------------------------------------------------- running

def run_case(c, out):
    """Runs one case; appends its lines to out (a list) if out is not None.
    Returns {(step or "init" or state key, name): tensor}."""
    dt, o = c["dt"], c["opts"]
    names = [n for n, _ in c["shapes"]]
    seed = goldenlib.case_seed(c["name"])
    inits = goldenlib.initial_values(c["shapes"], DTYPES[dt], seed)
    params = [t.clone() for t in inits]
    states = [init_state(p, o) for p in params]
    steps, missing = c["steps"], c["missing"]
    if out is not None:
        goldenlib.write_case_header(
            out, c["name"], "shampoo", dt, seed,
            goldenlib.options_spec(o, DEFAULTS, DEFAULTS), steps,
            c["shapes"], inits, missing)
    rec = {("init", n): t for n, t in zip(names, inits)}
    for k in range(1, steps + 1):
        grads = goldenlib.step_gradients(params, names, missing, k, seed)
        shampoo_step(params, grads, states, o)
        for n, p in zip(names, params):
            assert torch.isfinite(p).all(), "%s step %d %s" % (c["name"], k, n)
            if k in check_steps(steps):
                rec[(k, n)] = p.clone()
                if out is not None:
                    goldenlib.write_check(out, k, n, p)
    for n, st, p in zip(names, states, params):
        assert st["step"] == steps - len(missing.get(n, ()))
        bufs = [("exp_avg", st["exp_avg"])]
        if st["exp_avg_sq"] is not None:
            bufs.append(("exp_avg_sq", st["exp_avg_sq"]))
        bufs += [("factors", flat_buffer(st["F"])),
                 ("roots", flat_buffer(st["H"]))]
        for key, buf in bufs:
            assert torch.isfinite(buf).all()
            rec[(key, n)] = buf
            if out is not None:
                goldenlib.write_state(out, n, key, buf)
        rec[("step", n)] = st["step"]
        if out is not None:
            goldenlib.write_scalar(out, n, "step", st["step"])
    if out is not None:
        goldenlib.write_end(out)
    return rec


def rel_diff(a, b):
    """max |a - b| / max |b| (tensor-wise; 0 for two zero tensors)."""
    den = b.abs().max().item()
    num = (a.double() - b.double()).abs().max().item()
    return num / den if den else num


STATE_KEYS = ("exp_avg", "exp_avg_sq", "factors", "roots")

VARIANTS = {
    "eigh64": dict(eigh="eigh64", pert_c=False),
    "eigh32": dict(eigh="eigh32", pert_c=False),
    "rotated": dict(eigh="rotated", pert_c=False),
    "numpy": dict(eigh="numpy", pert_c=False),
    "jacobi": dict(eigh="jacobi", pert_c=False),
    "pertC": dict(eigh="torch", pert_c=True),
    "rot+pertC": dict(eigh="rotated", pert_c=True),
}


def compare_runs(gold, rec):
    """(params vs value, params vs displacement from init, per state key)
    over every check (step 1 included) and the final state."""
    dp = dd = 0.0
    ds = {k: 0.0 for k in STATE_KEYS}
    for key, b in gold.items():
        if key[0] in ("init", "step"):
            continue
        d = rel_diff(rec[key], b)
        if key[0] in ds:
            ds[key[0]] = max(ds[key[0]], d)
            continue
        dp = max(dp, d)
        init = gold[("init", key[1])]
        dd = max(dd, rel_diff(rec[key] - init, b - init))
    return dp, dd, ds


def tolerance_study(cases, quiet=False):
    """Reruns every case under the VARIANTS; prints per case the largest
    relative difference to the golden run (parameters against the values
    and against the displacement from the initial values, each state
    buffer) and the worst per dtype and variant.  Returns
    {(case, variant): (dp, dd, ds)}."""
    global _PERT_GEN
    golden = {c["name"]: run_case(c, None) for c in cases}
    table = {}
    for vname, mode in VARIANTS.items():
        MODE.update(mode)
        for c in cases:
            if vname == "eigh32" and c["dt"] == "f64":
                continue
            _PERT_GEN = torch.Generator().manual_seed(77)
            table[(c["name"], vname)] = compare_runs(golden[c["name"]],
                                                     run_case(c, None))
        MODE.update(eigh="torch", pert_c=False)
    if quiet:
        return table
    print("relative difference to the golden run (tensor-wise max|diff| / "
          "max|value|): params / params vs displacement / "
          "exp_avg exp_avg_sq factors roots")
    for c in cases:
        print(c["name"])
        for vname in VARIANTS:
            if (c["name"], vname) not in table:
                continue
            dp, dd, ds = table[(c["name"], vname)]
            print("  %-10s %.1e / %.1e / %s" % (
                vname, dp, dd, " ".join("%.1e" % ds[k] for k in STATE_KEYS)))
    for dt in DTYPES:
        for vname in VARIANTS:
            sel = [v for (cn, vn), v in table.items()
                   if vn == vname and cn.startswith("shampoo_%s_" % dt)]
            if not sel:
                continue
            print("worst %s %-10s params %.2e  displacement %.2e  %s" % (
                dt, vname, max(r[0] for r in sel), max(r[1] for r in sel),
                "  ".join("%s %.2e" % (k, max(r[2][k] for r in sel))
                          for k in STATE_KEYS)))
    sys.stdout.flush()
    return table


# ------------------------------------------------------------ self-checks

def square_rank_check():
    """(a) square full-rank matrix, grafting=none, beta2=1, eps=1e-12, f=1:
    H^4 (F + eps I) = I for both roots after every step.  Returns the worst
    max |H^4 (F + eps I) - I| per dtype."""
    worst = {}
    for dt, dtype in DTYPES.items():
        o = dict(DEFAULTS, grafting="none", update_freq=1, lr=1e-4)
        seed = goldenlib.case_seed("selfcheck_a" + dt)
        (p,) = goldenlib.initial_values([("w", (8, 8))], dtype, seed)
        st = init_state(p, o)
        w = 0.0
        for k in range(1, 9):
            g = goldenlib.gradient(p, k, 0, seed)
            rec = []
            shampoo_param_step(p, g, st, o, rec)
            (_, Fs, Hs, PB), = rec
            for f, h in zip(Fs, Hs):
                a = f.double() + o["eps"] * torch.eye(8, dtype=torch.float64)
                h = h.double()
                e = (torch.linalg.matrix_power(h, 4) @ a
                     - torch.eye(8, dtype=torch.float64)).abs().max().item()
                w = max(w, e)
            # the mode products of a matrix are H_0 G H_1
            G = g
            ref = Hs[0] @ G @ Hs[1].T
            assert (PB - ref).abs().max() <= 1e-5 * ref.abs().max()
        worst[dt] = w
    assert worst["f64"] <= 1e-10 and worst["f32"] <= 1e-3, worst
    return worst


def one_block_check():
    """(b) block_size >= every dim gives one block, and the same trajectory
    (bit for bit) as the default; the 12x12 / 5 layout."""
    assert block_layout((8, 8), 8) == [((0, 8), (0, 8))]
    assert block_layout((3, 4, 5), 1024) == [((0, 3), (0, 4), (0, 5))]
    assert block_layout((7,), 7) == [((0, 7),)]
    lay = block_layout((12, 12), 5)
    assert len(lay) == 9
    assert [tuple(e - s for s, e in b) for b in lay] == [
        (5, 5), (5, 5), (5, 2), (5, 5), (5, 5), (5, 2), (2, 5), (2, 5),
        (2, 2)]
    assert lay[2] == ((0, 5), (10, 12)) and lay[6] == ((10, 12), (0, 5))
    assert [tuple(e - s for s, e in b) for b in
            block_layout((4, 3, 2, 2), 3)] == [(3, 3, 2, 2), (1, 3, 2, 2)]
    n = 0
    for dt in DTYPES:
        for shape in ((8, 8), (3, 4, 5), (6, 10)):
            runs = []
            for bs in (max(shape), 1024):
                c = case(dt, "onecheck", [("w", shape)],
                         dict(update_freq=2, block_size=bs), steps=6,
                         deficient=len(shape) != 2 or shape[0] != shape[1])
                runs.append(run_case(c, None))
                st = init_state(torch.zeros(shape), c["opts"])
                assert len(st["blocks"]) == 1
            for key in runs[1]:
                if key[0] != "step":
                    assert torch.equal(runs[0][key], runs[1][key]), key
            n += 1
    return n


def exponent_check():
    """(d) H^(2k) (F + eps I) = I with k the order of the parameter
    (1-D: -1/2, 3-D: -1/6, 4-D: -1/8), f64, full-rank factors after a few
    steps; H^4 (F + eps I) is far from I for the 3-D case.  Returns
    {order: worst error}, the 3-D H^4 distance."""
    res, wrong = {}, None
    for shape in ((3,), (3, 4, 5), (4, 3, 2, 2)):
        k = len(shape)
        o = dict(DEFAULTS, grafting="none", update_freq=4, eps=1e-6)
        seed = goldenlib.case_seed("selfcheck_d%d" % k)
        (p,) = goldenlib.initial_values([("w", shape)], torch.float64, seed)
        st = init_state(p, o)
        w = 0.0
        for s in range(1, 6):  # refresh at t = 1 and t = 5
            g = goldenlib.gradient(p, s, 0, seed)
            rec = []
            shampoo_param_step(p, g, st, o, rec)
            if s not in (1, 5):
                continue
            (_, Fs, Hs, _), = rec
            for f, h in zip(Fs, Hs):
                n = f.shape[0]
                a = f + o["eps"] * torch.eye(n, dtype=torch.float64)
                e = (torch.linalg.matrix_power(h, 2 * k) @ a
                     - torch.eye(n, dtype=torch.float64)).abs().max().item()
                w = max(w, e)
                if k == 3:
                    x = (torch.linalg.matrix_power(h, 4) @ a
                         - torch.eye(n, dtype=torch.float64)).abs().max()
                    wrong = x.item() if wrong is None else min(wrong,
                                                               x.item())
        res[k] = w
    assert max(res.values()) <= 1e-8, res
    assert wrong > 0.1, wrong
    return res, wrong


def numpy_reference(c):
    """(e) an independent float64 numpy implementation for 1-D and 2-D
    parameters (explicit block loops and matrix products): returns the
    parameters after every step {(step, name): array} and the final
    factors / roots."""
    o = c["opts"]
    names = [n for n, _ in c["shapes"]]
    seed = goldenlib.case_seed(c["name"])
    ps = [t.numpy().copy() for t in
          goldenlib.initial_values(c["shapes"], torch.float64, seed)]
    bs, k_f = o["block_size"], o["update_freq"]
    sts = []
    for p in ps:
        rows = list(range(0, p.shape[0], bs))
        cols = list(range(0, p.shape[1], bs)) if p.ndim == 2 else [None]
        sts.append(dict(t=0, m=np.zeros_like(p), v=np.zeros_like(p),
                        rows=rows, cols=cols, L={}, R={}, HL={}, HR={}))
    out = {}

    def root(a, order):
        lam, vec = np.linalg.eigh(a)
        return vec @ np.diag((np.maximum(lam, 0) + o["eps"])
                             ** (-1.0 / (2 * order))) @ vec.T

    for step in range(1, c["steps"] + 1):
        for j, (n, p) in enumerate(zip(names, ps)):
            if step in c["missing"].get(n, ()):
                continue
            g = goldenlib.gradient(torch.from_numpy(p), step, j,
                                   seed).numpy()
            s = sts[j]
            s["t"] += 1
            t = s["t"]
            if o["grafting"] == "adam":
                s["v"] = o["graft_beta2"] * s["v"] + \
                    (1 - o["graft_beta2"]) * g * g
                D = g / (np.sqrt(s["v"] / (1 - o["graft_beta2"] ** t))
                         + o["graft_eps"])
            else:
                D = g
            P = np.zeros_like(g)
            for r0 in s["rows"]:
                for c0 in s["cols"]:
                    key = (r0, c0)
                    r1 = min(r0 + bs, g.shape[0])
                    if p.ndim == 1:
                        G = g[r0:r1].reshape(-1, 1)
                    else:
                        c1 = min(c0 + bs, g.shape[1])
                        G = g[r0:r1, c0:c1]
                    L0 = s["L"].get(key, 0.0)
                    CL = G @ G.T
                    s["L"][key] = (L0 + CL if o["beta2"] == 1 else
                                   o["beta2"] * L0 + (1 - o["beta2"]) * CL)
                    if p.ndim == 2:
                        R0 = s["R"].get(key, 0.0)
                        CR = G.T @ G
                        s["R"][key] = (R0 + CR if o["beta2"] == 1 else
                                       o["beta2"] * R0
                                       + (1 - o["beta2"]) * CR)
                    if (t - 1) % k_f == 0:
                        s["HL"][key] = root(s["L"][key], p.ndim)
                        if p.ndim == 2:
                            s["HR"][key] = root(s["R"][key], p.ndim)
                    PB = s["HL"][key] @ G
                    if p.ndim == 2:
                        PB = PB @ s["HR"][key]
                    if o["grafting"] != "none":
                        DB = (D[r0:r1].reshape(-1, 1) if p.ndim == 1
                              else D[r0:r1, c0:c1])
                        nP = np.linalg.norm(PB)
                        PB = PB * (np.linalg.norm(DB) / nP) if nP else 0 * PB
                    if p.ndim == 1:
                        P[r0:r1] = PB.reshape(-1)
                    else:
                        P[r0:r1, c0:c1] = PB
            b1 = o["beta1"]
            s["m"] = b1 * s["m"] + (1 - b1) * P
            u = b1 * s["m"] + (1 - b1) * P if o["nesterov"] else s["m"]
            if o["weight_decay"] > 0:
                p *= 1 - o["lr"] * o["weight_decay"]
            p -= o["lr"] * u
        for n, p in zip(names, ps):
            out[(step, n)] = p.copy()
    for n, s in zip(names, sts):
        keys = [(r, cc) for r in s["rows"] for cc in s["cols"]]
        out[("factors", n)] = np.concatenate(
            [np.concatenate([s["L"][q].ravel()]
                            + ([s["R"][q].ravel()] if s["R"] else []))
             for q in keys])
        out[("roots", n)] = np.concatenate(
            [np.concatenate([s["HL"][q].ravel()]
                            + ([s["HR"][q].ravel()] if s["HR"] else []))
             for q in keys])
        out[("exp_avg", n)] = s["m"]
        if o["grafting"] == "adam":
            out[("exp_avg_sq", n)] = s["v"]
    return out


def numpy_check(cases):
    """(e): the f64 cases of order <= 2 against numpy_reference."""
    worst, n = 0.0, 0
    for c in cases:
        if c["dt"] != "f64" or any(len(s) > 2 for _, s in c["shapes"]):
            continue
        gold = run_case(c, None)
        ref = numpy_reference(c)
        for key, b in gold.items():
            if key[0] in ("init", "step") or \
                    (isinstance(key[0], int) and key not in ref):
                continue
            d = rel_diff(torch.from_numpy(np.asarray(ref[key])).reshape(
                b.shape), b)
            worst = max(worst, d)
        n += 1
    assert worst <= 1e-12, "numpy reference: %g" % worst
    return n, worst


# ----------------------------------------------------------------- main

def main():
    torch.set_num_threads(1)
    with torch.no_grad():
        cases = build_cases()
        assert len({c["name"] for c in cases}) == len(cases)
        if "--tolerance-study" in sys.argv[1:]:
            tolerance_study(cases)
            return
        sq = square_rank_check()
        nb = one_block_check()
        ex, wrong = exponent_check()
        nn, nw = numpy_check(cases)
        STATS.update(graft=0.0, graft_blocks=0, refreshes=0, small={})
        out = ["# liboptim golden trajectories: Shampoo",
               "# generated by tests/golden/gen_shampoo.py with torch %s "
               "(ATEN_CPU_CAPABILITY=%s); OUR specification (man 3 "
               "liboptim), no reference implementation exists; eigh from "
               "LAPACK: compare tensor-wise with a tolerance"
               % (torch.__version__, os.environ["ATEN_CPU_CAPABILITY"]),
               "# %d cases; format and gradient formula: tests/golden/README"
               % len(cases)]
        for c in cases:
            run_case(c, out)
    assert STATS["graft"] <= 1e-6, STATS["graft"]
    sys.stdout.write("\n".join(out) + "\n")
    print("shampoo self-checks: (a) square 8x8 full rank, eps=1e-12, f=1: "
          "max |H^4 (F + eps I) - I| f32 %.3g, f64 %.3g; (b) one block for "
          "block_size >= dims, bit-identical to block_size=1024 (%d shapes "
          "x dtypes), 12x12/5 and 4x3x2x2/3 layouts; (c) grafting "
          "| ||P_B|| - ||D_B|| | / ||D_B|| <= %.3g over %d blocks of the "
          "golden steps; (d) max |H^(2k) (F + eps I) - I| f64: k=1 %.3g, "
          "k=3 %.3g, k=4 %.3g (3-D with exponent -1/4 instead: %.3g); "
          "(e) numpy reference, %d f64 cases of order <= 2: max rel diff "
          "%.3g" % (sq["f32"], sq["f64"], nb, STATS["graft"],
                    STATS["graft_blocks"], ex[1], ex[3], ex[4], wrong, nn,
                    nw), file=sys.stderr)
    sm = STATS["small"]
    print("shampoo: %d cases (%s); %d root computations; largest "
          "u*lam_max / (max(lam_min, 0) + eps) over the golden roots (the "
          "relative rounding of the smallest eigenvalue): eps=1e-12 cases "
          "f32 %.3g, f64 %.3g; large-eps cases f32 %.3g, f64 %.3g"
          % (len(cases), ", ".join("%d %s" % (sum(c["dt"] == dt
                                                  for c in cases), dt)
                                   for dt in DTYPES),
             STATS["refreshes"], sm[("f32", "tiny")], sm[("f64", "tiny")],
             sm[("f32", "large")], sm[("f64", "large")]), file=sys.stderr)


if __name__ == "__main__":
    main()
