#!/usr/bin/python3
"""Generate tests/golden/soap.txt: SOAP trajectories.

Usage (from the repository root; needs Debian's python3-torch 1.13 + numpy):

    /usr/bin/python3 tests/golden/gen_soap.py > tests/golden/soap.txt
    /usr/bin/python3 tests/golden/gen_soap.py --tolerance-study

The second form writes no golden data: it reruns every case with other
eigendecomposition / QR routines (and with the C library's rounding-only
departures) and prints, per variant, how far the trajectories move (the
numbers behind the tolerances suggested in tests/golden/README).

Our own re-implementation of SOAP, written from ../shared/spec/optimizers.md
section 5 (nikhilvyas/SOAP soap.py at a1e5535), section 12 (eps placement:
Form B) and the SOAP row of section 13.  Nothing of the authors' code is
copied here.

Registry name soap; options and defaults (our names):
  lr=3e-3, beta1=0.95, beta2=0.95, shampoo_beta=-1 (negative: use beta2),
  eps=1e-8, weight_decay=0.01, precondition_frequency=10 (f),
  max_precond_dim=10000, merge_dims=false, precondition_1d=false,
  normalize_grads=false, correct_bias=true, stagger=true.

The tensor SOAP works on: the parameter reshaped to its merged shape when
merge_dims (walk the dims left to right, multiply consecutive sizes while
the product stays <= max_precond_dim, else close the merged dim; trailing
size-1 products are dropped), else the parameter's own shape.  Dim i of it
is "rotated" when d_i <= max_precond_dim; a 1-D parameter is rotated only
with precondition_1d (and n <= max_precond_dim).  A rotated dim keeps GG_i
(d_i x d_i) and an orthonormal basis Q_i, any other dim uses the identity.
  project(X):      for each dim in order, tensordot(X, Q_i, [[0], [0]])
                   (X x_i Q_i^T); an identity dim is moved to the back
                   (permute), so after all dims the order is restored;
  project_back(X): the same with tensordot(X, Q_i, [[0], [1]]) (X x_i Q_i);
  outer_i(G):      tensordot(G, G) over every dim but i (matrix: G G^T for
                   i = 0, G^T G for i = 1; 1-D: the outer product g g^T).

First call for a parameter (every parameter, also 1-D and unrotated ones):
    GG_i = (1 - bs) * outer_i(G)            (bs = shampoo_beta, or beta2)
    Q_i  = eigh(GG_i + 1e-30 I) eigenvectors, columns reversed (descending
           eigenvalues)
    nothing else: no update, no decay, t stays 0, m and v stay zero.
Every later call:
    t += 1; G' = project(G)
    m = m*beta1 + (1-beta1)*G'    (mul_ then add_(alpha)); v likewise with
                                   G'*G' and beta2
    N = project_back(m / (sqrt(v) + eps))
    alpha = lr * sqrt(1-beta2^t) / (1-beta1^t) if correct_bias else lr
    if normalize_grads: N = N / (1e-30 + sqrt(mean(N*N)))
    p += -alpha * N;  if weight_decay > 0: p += -(lr*weight_decay) * p
    preconditioner update, with the OLD bases:
      m_o = project_back(m)
      GG_i = GG_i*bs + (1-bs)*outer_i(G)   (raw G; mul_ then add_(alpha))
      if refresh: for each rotated dim i in order:
          e = diag(Q_i^T GG_i Q_i); idx = stable argsort of e, descending;
          v = v.index_select(i, idx) (on the merged shape); Q_i = Q_i[:, idx];
          Q_i = Q-factor of torch.linalg.qr(GG_i @ Q_i, mode="reduced")
      m = project(m_o)     (with the new bases; on every call, as the
                            reference does, not only on refresh calls)
    refresh: t % f == 0, or with stagger (t + (k mod f)) % f == 0 where k
    is the parameter's 0-based ordinal among all the parameters of the group
    (registration order, rotated or not: the C library's stagger_slot).
eigh, diag(Q^T GG Q), the argsort and QR run in float32 also for float64
parameters (the reference casts GG and Q with .float(), decomposes and casts
the result back); a float32 parameter does everything in float32.

State in the golden file (after the last step): exp_avg_sq (v, in the
current rotated basis, parameter shape) for every parameter; exp_avg (m)
only for parameters without any rotated dim, because m in a rotated basis
changes sign with the (arbitrary) signs of Q's columns; scalar step (t).
GG and Q are not written.  The parameter values do not depend on those
signs (a sign flip of a column of Q flips the same component of G', m and
m/(sqrt(v)+eps) and is undone by project_back; Householder QR carries it
along).  With precondition_1d the first factor of a vector is g g^T, rank
1, and eigh's basis of its null space depends on the LAPACK routine: no
case has one (the run_case assertion below keeps it that way; the
tolerance study still reports such a case if one is added).

Self-checks (stderr): SOAP with nothing rotated (max_precond_dim=0, and
1-D without precondition_1d, also with merge_dims) against Adam written out
in numpy with Form-B eps and the first call skipped; project / project_back
(identity bases exact, random orthogonal bases inverse to 1e-13, a matrix's
projection equal to Q_L^T X Q_R); the merge rule on examples; the study's
own Jacobi eigh and Householder QR; every Q after a refresh orthogonal to
1e-5 (max |Q^T Q - I|, reported); step 1 leaves every parameter unchanged.

Unlike the other generators, matrix products here run in BLAS and the
decompositions in LAPACK (the ones torch links), so regenerating on another
machine may change the last bits; the C side compares with a tolerance
anyway (tests/golden/README).
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

# Defaults of our option names (as the C registry spells them); also the
# order of the `options` field.
DEFAULTS = dict(
    lr=3e-3, beta1=0.95, beta2=0.95, shampoo_beta=-1.0, eps=1e-8,
    weight_decay=0.01, precondition_frequency=10, max_precond_dim=10000,
    merge_dims=False, precondition_1d=False, normalize_grads=False,
    correct_bias=True, stagger=True)

EIGH_SHIFT = 1e-30

# How the decompositions are done.  "torch32" is the golden data (the
# reference's behaviour); the others exist for --tolerance-study only.
#   torch32   torch.linalg.eigh / qr in float32 (cast back to the dtype)
#   torch64   the same in the parameter's dtype (float64 for f64 cases)
#   exact32   eigh / qr in float64 of the float32-rounded input, rounded
#             to float32: a float32 routine without its own rounding error
#   jacobi32  our cyclic Jacobi eigensolver and Householder QR in float32
#             (numpy): a different algorithm, as another LAPACK might be
#   clike     torch32 with the C library's rounding-only departures: GG by
#             torch.lerp, m re-projected on refresh calls only
MODE = {"linalg": "torch32", "lerp_gg": False, "roundtrip_always": True}

STATS = {"q_orth": {"f32": 0.0, "f64": 0.0}, "refreshes": 0}


# ---------------------------------------------------------------- linalg

def _lin_dtype(dtype):
    return dtype if MODE["linalg"] == "torch64" else torch.float32


def householder_qr32(a):
    """Reduced Householder QR in float32 (numpy), LAPACK's sign convention
    (beta = -sign(alpha) ||x||); returns Q."""
    a = np.array(a, dtype=np.float32)
    m, n = a.shape
    vs = []
    for j in range(min(m, n)):
        x = a[j:, j].copy()
        nrm = np.float32(np.sqrt(np.sum(x * x)))
        if nrm == 0:
            vs.append(None)
            continue
        alpha = x[0]
        beta = -nrm if alpha >= 0 else nrm
        x[0] = alpha - beta
        x = x / x[0]  # v with v[0] = 1
        tau = (beta - alpha) / beta
        a[j:, j:] -= tau * np.outer(x, x @ a[j:, j:])
        vs.append((x, np.float32(tau)))
    q = np.eye(m, n, dtype=np.float32)
    for j in reversed(range(min(m, n))):
        if vs[j] is None:
            continue
        x, tau = vs[j]
        q[j:, :] -= tau * np.outer(x, x @ q[j:, :])
    return q


def eigh_descending(gg):
    """Eigenvectors of gg + 1e-30 I by descending eigenvalue, in gg's dtype
    (computed in float32 unless MODE says otherwise)."""
    n = gg.shape[0]
    mode = MODE["linalg"]
    if mode == "exact32":
        a = gg.float().double() + EIGH_SHIFT * torch.eye(n, dtype=torch.float64)
        q = torch.linalg.eigh(a)[1].float()
    elif mode == "jacobi32":
        a = gg.float() + EIGH_SHIFT * torch.eye(n, dtype=torch.float32)
        q = torch.from_numpy(goldenlib.jacobi_eigh(a.numpy().astype(np.float32))[1])
    else:
        ld = _lin_dtype(gg.dtype)
        a = gg.to(ld) + EIGH_SHIFT * torch.eye(n, dtype=ld)
        q = torch.linalg.eigh(a)[1]
    return torch.flip(q, [1]).to(gg.dtype)


def qr_q(a):
    """Q-factor of the reduced QR of a (a in the linalg dtype)."""
    mode = MODE["linalg"]
    if mode == "exact32":
        return torch.linalg.qr(a.double(), mode="reduced")[0].float()
    if mode == "jacobi32":
        return torch.from_numpy(householder_qr32(a.numpy()))
    return torch.linalg.qr(a, mode="reduced")[0]


def refresh_factor(gg, q, v, axis):
    """One basis refresh of a rotated dim: sort, reorder v, power step + QR.
    Returns (new Q in gg's dtype, reordered v)."""
    ld = _lin_dtype(gg.dtype)
    m, o = gg.to(ld), q.to(ld)
    e = torch.diag(o.T @ m @ o)
    idx = torch.sort(e, descending=True, stable=True).indices
    v = v.index_select(axis, idx)
    o = o[:, idx]
    return qr_q(m @ o).to(gg.dtype), v


# ------------------------------------------------------------ the tensors

def merged_shape(shape, max_dim):
    """The merge_dims rule of spec section 5."""
    new, cur = [], 1
    for sh in shape:
        tmp = cur * sh
        if tmp > max_dim:
            if cur > 1:
                new.append(cur)
                cur = sh
            else:
                new.append(sh)
                cur = 1
        else:
            cur = tmp
    if cur > 1 or not new:
        new.append(cur)
    return tuple(new)


def layout(shape, o):
    """(shape SOAP works on, rotated flag per dim) for a parameter shape."""
    maxd = o["max_precond_dim"]
    if len(shape) == 1:
        return tuple(shape), [o["precondition_1d"] and shape[0] <= maxd]
    ms = merged_shape(shape, maxd) if o["merge_dims"] else tuple(shape)
    return ms, [d <= maxd for d in ms]


def project(x, qs):
    for q in qs:
        if q is None:
            x = x.permute(*range(1, x.ndim), 0)
        else:
            x = torch.tensordot(x, q, dims=([0], [0]))
    return x.contiguous()


def project_back(x, qs):
    for q in qs:
        if q is None:
            x = x.permute(*range(1, x.ndim), 0)
        else:
            x = torch.tensordot(x, q, dims=([0], [1]))
    return x.contiguous()


def outer(g, i):
    others = [d for d in range(g.ndim) if d != i]
    return torch.tensordot(g, g, dims=(others, others))


# ------------------------------------------------------------------- SOAP

def soap_state(p, o, ordinal):
    """ordinal: the parameter's index among the group's parameters (None
    if it has no rotated dim: it never refreshes)."""
    ms, rot = layout(tuple(p.shape), o)
    return {"step": 0, "shape": ms, "rot": rot, "k": ordinal,
            "exp_avg": torch.zeros(ms, dtype=p.dtype),
            "exp_avg_sq": torch.zeros(ms, dtype=p.dtype),
            "GG": None, "Q": None}


def shampoo_beta(o):
    return o["shampoo_beta"] if o["shampoo_beta"] >= 0 else o["beta2"]


def is_refresh(st, o):
    t, f = st["step"], o["precondition_frequency"]
    off = st["k"] % f if (o["stagger"] and st["k"] is not None) else 0
    return t > 0 and (t + off) % f == 0


def soap_param_step(p, g, st, o, dt):
    bs = shampoo_beta(o)
    G = g.reshape(st["shape"])
    if st["Q"] is None:  # first call: factors and bases only
        st["GG"] = [outer(G, i).mul(1 - bs) if r else None
                    for i, r in enumerate(st["rot"])]
        st["Q"] = [eigh_descending(gg) if gg is not None else None
                   for gg in st["GG"]]
        return
    b1, b2, lr, wd = o["beta1"], o["beta2"], o["lr"], o["weight_decay"]
    st["step"] += 1
    t = st["step"]
    m, v = st["exp_avg"], st["exp_avg_sq"]
    gp = project(G, st["Q"])
    m.mul_(b1).add_(gp, alpha=1 - b1)
    v.mul_(b2).add_(gp * gp, alpha=1 - b2)
    denom = v.sqrt().add_(o["eps"])
    alpha = lr
    if o["correct_bias"]:
        alpha = lr * (1 - b2 ** t) ** 0.5 / (1 - b1 ** t)
    n = project_back(m / denom, st["Q"])
    if o["normalize_grads"]:
        n = n / (1e-30 + torch.mean(n ** 2) ** 0.5)
    p.add_(n.reshape(p.shape), alpha=-alpha)
    if wd > 0:
        p.add_(p, alpha=-lr * wd)
    # preconditioner update (old bases for m_o)
    refresh = is_refresh(st, o)
    roundtrip = MODE["roundtrip_always"] or refresh
    if roundtrip:
        m_o = project_back(m, st["Q"])
    for i, gg in enumerate(st["GG"]):
        if gg is None:
            continue
        if MODE["lerp_gg"]:
            gg.lerp_(outer(G, i), 1 - bs)
        else:
            gg.mul_(bs).add_(outer(G, i), alpha=1 - bs)
    if refresh:
        for i, gg in enumerate(st["GG"]):
            if gg is None:
                continue
            q, v = refresh_factor(gg, st["Q"][i], v, i)
            st["Q"][i] = q
            err = (q.T @ q - torch.eye(q.shape[0], dtype=q.dtype)).abs().max()
            STATS["q_orth"][dt] = max(STATS["q_orth"][dt], err.item())
            STATS["refreshes"] += 1
        st["exp_avg_sq"] = v
    if roundtrip:
        st["exp_avg"] = project(m_o, st["Q"])


def soap_step(params, grads, states, o, dt):
    for p, g, st in zip(params, grads, states):
        if g is None:  # not exercised: the reference skips the parameter
            continue
        soap_param_step(p, g, st, o, dt)


def init_states(params, o):
    states, k = [], 0
    for p in params:
        _, rot = layout(tuple(p.shape), o)
        states.append(soap_state(p, o, k if any(rot) else None))
        k += 1
    return states


# ------------------------------------------------------------ self-checks

def check_adam_equivalence():
    """With nothing rotated (max_precond_dim=0; a 1-D parameter without
    precondition_1d) SOAP is Adam with Form-B eps and a skipped first call.
    Compared with the formula written out in numpy in the same dtype."""
    worst = 0.0
    for dt, dtype in DTYPES.items():
        for extra in (dict(), dict(correct_bias=False, weight_decay=0.0),
                      dict(merge_dims=True, beta1=0.9, beta2=0.99)):
            o = dict(DEFAULTS, max_precond_dim=0, stagger=False, **extra)
            shapes = [("w", (6, 5)), ("c", (3, 2, 4)), ("b", (7,))]
            seed = goldenlib.case_seed("adam_check" + dt + str(extra))
            params = goldenlib.initial_values(shapes, dtype, seed)
            ref = [x.numpy().copy() for x in params]
            ms = [np.zeros_like(x) for x in ref]
            vs = [np.zeros_like(x) for x in ref]
            states = init_states(params, o)
            npt = ref[0].dtype.type
            b1, b2, lr, wd = (o["beta1"], o["beta2"], o["lr"],
                              o["weight_decay"])
            for k in range(1, 14):
                grads = [goldenlib.gradient(p, k, j, seed)
                         for j, p in enumerate(params)]
                soap_step(params, grads, states, o, dt)
                rgrads = [goldenlib.gradient(torch.from_numpy(x), k, j, seed)
                          .numpy() for j, x in enumerate(ref)]
                if k == 1:
                    continue
                t = k - 1
                a = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t) \
                    if o["correct_bias"] else lr
                for j in range(len(ref)):
                    g = rgrads[j]
                    ms[j] = ms[j] * npt(b1) + npt(1 - b1) * g
                    vs[j] = vs[j] * npt(b2) + npt(1 - b2) * (g * g)
                    u = ms[j] / (np.sqrt(vs[j]) + npt(o["eps"]))
                    ref[j] = ref[j] + npt(-a) * u
                    if wd > 0:
                        ref[j] = ref[j] + npt(-lr * wd) * ref[j]
                for j, p in enumerate(params):
                    d = np.abs(p.numpy() - ref[j]).max() / np.abs(ref[j]).max()
                    worst = max(worst, float(d))
            for j, st in enumerate(states):
                assert st["step"] == 12
                d = np.abs(st["exp_avg_sq"].reshape(vs[j].shape).numpy()
                           - vs[j]).max()
                worst = max(worst, float(d / np.abs(vs[j]).max()))
    assert worst <= 1e-6, "SOAP with nothing rotated vs Adam: %g" % worst
    return worst


def check_projection():
    """project / project_back: identity bases and unrotated dims are exact
    no-ops; with random orthogonal bases they are inverse, and a matrix's
    project(X) is Q_L^T X Q_R."""
    gen = torch.Generator().manual_seed(4711)
    x = torch.randn((3, 4, 5), dtype=torch.float64, generator=gen)
    eyes = [torch.eye(d, dtype=torch.float64) for d in x.shape]
    for qs in (eyes, [None] * 3, [eyes[0], None, eyes[2]]):
        assert torch.equal(project(x, qs), x)
        assert torch.equal(project_back(x, qs), x)
    rq = [torch.linalg.qr(torch.randn((d, d), dtype=torch.float64,
                                      generator=gen))[0] for d in x.shape]
    worst = 0.0
    for qs in (rq, [rq[0], None, rq[2]], [None, rq[1], None]):
        y = project(x, qs)
        worst = max(worst, (project_back(y, qs) - x).abs().max().item())
        worst = max(worst, (project(project_back(x, qs), qs) - x)
                    .abs().max().item())
    xm = x[0]
    ql, qr = rq[1], rq[2]
    worst = max(worst, (project(xm, [ql, qr]) - ql.T @ xm @ qr)
                .abs().max().item())
    worst = max(worst, (project_back(xm, [ql, qr]) - ql @ xm @ qr.T)
                .abs().max().item())
    assert worst <= 1e-13, "project/project_back: %g" % worst
    # merge rule examples; the spec's conv (64,32,3,3) -> (64, 288) holds
    # for max_precond_dim in [288, 2047] (with 10000: (6144, 3))
    assert merged_shape((64, 32, 3, 3), 1024) == (64, 288)
    assert merged_shape((64, 32, 3, 3), 10000) == (6144, 3)
    assert merged_shape((6, 4, 3, 3), 16) == (6, 12, 3)
    assert merged_shape((4, 3, 12), 12) == (12, 12)
    assert merged_shape((4, 3, 5), 16) == (12, 5)
    return worst


def check_linalg_helpers():
    """The study's own eigh / QR against torch (float64 answers)."""
    gen = torch.Generator().manual_seed(99)
    a = torch.randn((9, 9), dtype=torch.float64, generator=gen)
    s = (a @ a.T).float()
    w, v = goldenlib.jacobi_eigh(s.numpy().astype(np.float32))
    wr = torch.linalg.eigh(s.double())[0].numpy()
    assert np.abs(w - wr).max() <= 1e-5 * np.abs(wr).max()
    r = v.astype(np.float64).T @ s.double().numpy() @ v.astype(np.float64)
    assert np.abs(r - np.diag(np.diag(r))).max() <= 1e-5 * np.abs(wr).max()
    q = householder_qr32(s.numpy())
    assert np.abs(q.T.astype(np.float64) @ q - np.eye(9)).max() <= 1e-5
    rr = q.T.astype(np.float64) @ s.double().numpy()
    assert np.abs(np.tril(rr, -1)).max() <= 1e-4 * np.abs(rr).max()


# --------------------------------------------------------------- the cases

def check_steps(steps):
    return sorted({1, 2, 3, 5, 8, 11, steps} & set(range(1, steps + 1)))


# The 4-D case below merges (6,4,3,3) with max_precond_dim=16 into
# (6,12,3): 6*4 = 24 > 16 closes (6); 4*3 = 12 <= 16, 12*3 = 36 > 16
# closes (12); the last 3 stays.  Every rotated factor is full rank (the
# other dims hold 36, 18 and 72 elements).  (4,3,5) would merge to (12,5)
# for any max_precond_dim in [12, 59], a 12x12 factor of rank 5 at the
# first call (eigh's null-space basis is then implementation-defined), so
# the 3-D merge case uses (4,3,12) with max_precond_dim=12 -> (12,12) and
# (4,3,5) runs unmerged (factors 4x4, 3x3, 5x5; others 15, 20, 12).
# At most 4 parameters per case (tests/check_golden.c: MAXP).
MULTI = [("a", (6, 6)), ("b", (5,)), ("c", (8, 8)), ("d", (4, 3, 5))]


def case(dt, name, shapes, opts, steps=13):
    o = dict(DEFAULTS)
    assert set(opts) <= set(o), opts
    o.update(opts)
    return dict(name="soap_%s_%s" % (dt, name), dt=dt, opts=o,
                shapes=shapes, steps=steps)


def build_cases():
    cases = []
    for dt in DTYPES:
        f3 = dict(precondition_frequency=3, stagger=False)
        f4 = dict(precondition_frequency=4, stagger=False)
        cases += [
            case(dt, "sq8", [("w", (8, 8))], f3),
            case(dt, "sq12_f10", [("w", (12, 12))], dict(stagger=False),
                 steps=25),
            case(dt, "sq12_f4_hp", [("w", (12, 12))],
                 dict(f4, lr=0.01, beta1=0.9, beta2=0.99, eps=1e-6,
                      weight_decay=0.1)),
            case(dt, "sq8_wd0", [("w", (8, 8))], dict(f3, weight_decay=0.0)),
            case(dt, "sq8_norm", [("w", (8, 8))],
                 dict(f3, normalize_grads=True)),
            case(dt, "sq8_nobc", [("w", (8, 8))],
                 dict(f3, correct_bias=False)),
            case(dt, "sq8_sb09", [("w", (8, 8))], dict(f4, shampoo_beta=0.9)),
            # 1-D: plain Adam (Form-B eps, first call skipped) ...
            case(dt, "vec", [("b", (10,))], f3),
            # ... and rotated with precondition_1d (a 6x6 factor g g^T,
            # rank 1 at the first call: its eigenbasis apart from the
            # leading vector is arbitrary; see README)
            # (a vector with precondition_1d has a rank-1 first factor whose
            # null-space basis is LAPACK's choice: not comparable; the C
            # tests check its invariants instead)
            case(dt, "3d", [("w", (4, 3, 5))], f3),
            case(dt, "3d_merge", [("w", (4, 3, 12))],
                 dict(f3, merge_dims=True, max_precond_dim=12)),
            case(dt, "4d", [("w", (6, 4, 3, 3))], f4),
            case(dt, "4d_merge", [("w", (6, 4, 3, 3))],
                 dict(f3, merge_dims=True, max_precond_dim=16)),
            # the 12-dim is not rotated, the 8-dim is (12 others: full rank)
            case(dt, "maxdim", [("w", (8, 12))], dict(f3, max_precond_dim=10)),
            # nothing rotated: Adam on a matrix
            case(dt, "maxdim0", [("w", (6, 5))], dict(f3, max_precond_dim=0)),
            # several parameters; ordinals a=0, b=1 (1-D, unrotated: no
            # refresh), c=2, d=3: with stagger and f=2, a and c refresh at
            # t = 2,4,.. and d at t = 1,3,..
            case(dt, "multi", MULTI, f3),
            case(dt, "multi_stagger", MULTI,
                 dict(precondition_frequency=2, stagger=True)),
        ]
    return cases


# ----------------------------------------------------------------- running

def rank_deficient(st):
    """True if a rotated factor is rank-deficient at the first call: d_i
    larger than the number of elements of the other dims."""
    numel = math.prod(st["shape"])
    return any(r and d * d > numel for d, r in zip(st["shape"], st["rot"]))


AMBIGUOUS_NOTE = (
    "# %s: its factor g g^T has rank 1 at the first call, so eigh's "
    "basis of the null space is LAPACK-dependent and so is the whole "
    "trajectory: compare the checks with rtol 1e-2; no exp_avg_sq line")


def run_case(c, out):
    """Runs one case; appends its lines to out (a list) if out is not None.
    Returns {(step, name): tensor} of the checks and the final states."""
    dt, o = c["dt"], c["opts"]
    names = [n for n, _ in c["shapes"]]
    seed = goldenlib.case_seed(c["name"])
    inits = goldenlib.initial_values(c["shapes"], DTYPES[dt], seed)
    params = [t.clone() for t in inits]
    states = init_states(params, o)
    steps = c["steps"]
    if out is not None:
        if any(rank_deficient(st) for st in states):
            assert c["name"].endswith("_vec_p1d"), c["name"]
            out.append(AMBIGUOUS_NOTE % c["name"])
        goldenlib.write_case_header(
            out, c["name"], "soap", dt, seed,
            goldenlib.options_spec(o, DEFAULTS, DEFAULTS), steps,
            c["shapes"], inits, {})
    rec = {("init", n): t for n, t in zip(names, inits)}
    for k in range(1, steps + 1):
        grads = goldenlib.step_gradients(params, names, {}, k, seed)
        soap_step(params, grads, states, o, dt)
        for n, p in zip(names, params):
            assert torch.isfinite(p).all(), "%s step %d %s" % (c["name"], k, n)
            if k == 1:
                assert torch.equal(p, inits[names.index(n)])
            if k in check_steps(steps):
                rec[(k, n)] = p.clone()
                if out is not None:
                    goldenlib.write_check(out, k, n, p)
    for n, st, p in zip(names, states, params):
        assert st["step"] == steps - 1
        v = st["exp_avg_sq"].reshape(p.shape)
        if not rank_deficient(st):
            rec[("v", n)] = v
        if out is not None:
            if not any(st["rot"]):
                goldenlib.write_state(out, n, "exp_avg",
                                      st["exp_avg"].reshape(p.shape))
            if not rank_deficient(st):
                goldenlib.write_state(out, n, "exp_avg_sq", v)
            goldenlib.write_scalar(out, n, "step", st["step"])
    if out is not None:
        goldenlib.write_end(out)
    return rec


def rel_diff(a, b):
    """max |a - b| / max |b| (0 for two zero tensors)."""
    den = b.abs().max().item()
    num = (a - b).abs().max().item()
    return num / den if den else num


VARIANTS = {
    "torch64": dict(linalg="torch64", lerp_gg=False, roundtrip_always=True),
    "exact32": dict(linalg="exact32", lerp_gg=False, roundtrip_always=True),
    "jacobi32": dict(linalg="jacobi32", lerp_gg=False, roundtrip_always=True),
    "clike": dict(linalg="torch32", lerp_gg=True, roundtrip_always=False),
}


def tolerance_study(cases):
    """Rerun every case under each variant of VARIANTS and print a table:
    per case and variant the largest relative difference to the golden
    run over the parameter checks after step 1, measured against the
    values (max |diff| / max |value|) and against the displacement from the
    initial values (max |diff| / max |value - init|), and that of the final
    exp_avg_sq; then the worst per dtype without the vec_p1d cases (rank-1
    first factor, see README)."""
    base_mode = dict(MODE)
    golden = {c["name"]: run_case(c, None) for c in cases}
    table = {}
    for vname, mode in VARIANTS.items():
        MODE.update(mode)
        for c in cases:
            gold = golden[c["name"]]
            rec = run_case(c, None)
            dp = dd = dv = 0.0
            for key, b in gold.items():
                if key[0] == "init" or key[0] == 1:
                    continue
                d = rel_diff(rec[key], b)
                if key[0] == "v":
                    dv = max(dv, d)
                    continue
                dp = max(dp, d)
                init = gold[("init", key[1])]
                dd = max(dd, rel_diff(rec[key] - init, b - init))
            table[(c["name"], vname)] = (dp, dd, dv)
        MODE.update(base_mode)
    print("relative difference to the golden run: params vs value / params "
          "vs displacement / final exp_avg_sq")
    print("%-23s" % "case" + "".join("%27s" % v for v in VARIANTS))
    for c in cases:
        print("%-23s" % c["name"] + "".join(
            "  %.1e/%.1e/%.1e" % table[(c["name"], v)] for v in VARIANTS))
    for dt in DTYPES:
        for vname in VARIANTS:
            sel = [table[(c["name"], vname)] for c in cases
                   if c["dt"] == dt and not c["name"].endswith("vec_p1d")]
            print("worst %s %-9s (without vec_p1d): params %.2e  "
                  "displacement %.2e  exp_avg_sq %.2e"
                  % ((dt, vname) + tuple(max(r[i] for r in sel)
                                         for i in range(3))))
    sys.stdout.flush()


def main():
    torch.set_num_threads(1)
    with torch.no_grad():
        adam = check_adam_equivalence()
        proj = check_projection()
        check_linalg_helpers()
        print("soap self-checks: nothing rotated vs Adam (Form-B eps, first "
              "call skipped) max rel diff %.3g; project/project_back inverse "
              "(random orthogonal bases, f64) max abs err %.3g, identity "
              "bases exact" % (adam, proj), file=sys.stderr)
        cases = build_cases()
        assert len({c["name"] for c in cases}) == len(cases)
        if "--tolerance-study" in sys.argv[1:]:
            tolerance_study(cases)
            return
        out = ["# liboptim golden trajectories: SOAP",
               "# generated by tests/golden/gen_soap.py with torch %s "
               "(ATEN_CPU_CAPABILITY=%s); our own reference, see README; "
               "eigh/QR from LAPACK in float32: compare with a tolerance"
               % (torch.__version__, os.environ["ATEN_CPU_CAPABILITY"]),
               "# %d cases; format and gradient formula: tests/golden/README"
               % len(cases)]
        for c in cases:
            run_case(c, out)
    q = STATS["q_orth"]
    assert q["f32"] <= 1e-5 and q["f64"] <= 1e-5, q
    sys.stdout.write("\n".join(out) + "\n")
    print("soap: %d cases (%s); %d basis refreshes, max |Q^T Q - I| after a "
          "refresh: f32 %.3g, f64 %.3g (Q from float32 QR)"
          % (len(cases), ", ".join("%d %s" % (sum(c["dt"] == dt
                                                  for c in cases), dt)
                                   for dt in DTYPES),
             STATS["refreshes"], q["f32"], q["f64"]), file=sys.stderr)


if __name__ == "__main__":
    main()
