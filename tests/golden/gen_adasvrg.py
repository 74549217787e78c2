#!/usr/bin/python3
"""Generate tests/golden/adasvrg.txt: AdaSVRG trajectories on a finite sum.

Usage (from the repository root; needs Debian's python3-torch 1.13 + numpy):

    /usr/bin/python3 tests/golden/gen_adasvrg.py > tests/golden/adasvrg.txt
    /usr/bin/python3 tests/golden/gen_adasvrg.py --tolerance-study

The second form writes no golden data: it reruns every case with other ways
of evaluating the same rule (below) and prints how far the values move.

Our own reference, written from liboptim(3) ("adasvrg"), optim_snapshot(3)
and ../shared/spec/optimizers.md section 10 (AdaSVRG, bpauld/AdaSVRG).  The
line format and the problem are described in tests/golden/README
("AdaSVRG"); tests/check_finitesum.c runs the same problem through the
library.

The problem.  Least squares f(x) = 1/N sum_i (a_i . x - b_i)^2 / 2 on the
model vector x, the concatenation of the group's flattened parameters (in
registration order, D values in all), with N samples:

    a_ij = noise(i*D + j, 1, 2, PSEED) + (1 if i mod D == j else 0)
    b_i  = noise(i, 4, 5, PSEED)

noise(i, k, j, seed) the s of the gradient formula of tests/golden/README
(goldenlib.noise): every a_ij and b_i is a multiple of 2^-9, exact in
float32.  The gradient of a minibatch (a list of sample indices, in the
file's order; the full gradient is the list 0, 1, ..., N-1) at a point x
(the parameters' values in their dtype, read as doubles) is computed in
double in this order, then rounded once to the dtype:

    r_i = -b_i;  r_i = r_i + a_ij * x_j     for j = 0, 1, ..., D-1
    g_j = 0;     g_j = g_j + r_i * a_ij     for i in the list, in order
    g_j = g_j / (length of the list)

(every product and sum a separately rounded IEEE double operation; C
compiles this with -ffp-contract=off).

Registry name adasvrg; options and defaults: lr=0 (0: adaptive),
diagonal=false, probe_std=0.01, seed=0.  State per parameter: scalars step
and snapshots; buffers (the parameter's dtype) snapshot, full_grad, sum_sq
(1 element, or one per element with diagonal), eta and lmax (1 element
each, the group's values).

A snapshot (optim_snapshot, at the start of every outer loop), for the
whole group:
  snapshot = x;  mu = full gradient at x (full_grad)
  sum_sq = 0 (scalar) or 1e-8 rounded to the dtype (every element)
  lr > 0:  eta = lr (stored rounded to the dtype); lmax untouched
  lr == 0: the secant L = ||mu - mu'|| / ||x - x'|| over the group, in
           double (each difference of two dtype values in double, squares
           summed with math.fsum, two square roots, one division), where
           (x', mu') is, at the first snapshot, the probe point x + z with
           its full gradient, and later the previous snapshot and its
           full gradient;  lmax = max(lmax, L) in double, lmax read from
           its buffer, L skipped when ||x - x'|| == 0;
           eta = 1e-4 if lmax < 1e-8 else sqrt(fsum mu^2) / (sqrt(2)*lmax)
           (double); eta and lmax stored rounded to the dtype.
  The probe point: for parameter number q in the group (0-based ordinal,
  registration order) and element e, z = probe_std * normal(seed, q, e),
  rounded to the dtype and added to x in the dtype.  normal() is the
  generator the library documents in lib/algs/adasvrg.c (splitmix64 of
  (seed, parameter ordinal, element): two uniforms, Box-Muller):

      mix(z): z += 0x9e3779b97f4a7c15; z = (z ^ z>>30) * 0xbf58476d1ce4e5b9;
              z = (z ^ z>>27) * 0x94d049bb133111eb; return z ^ z>>31
              (mod 2^64)
      a = mix(seed ^ mix(q * 0x100000001b3 ^ mix(e))); b = mix(a)
      u1 = ((a >> 11) + 0.5) / 2^53;  u2 = (b >> 11) / 2^53   (doubles)
      normal = sqrt(-2 log u1) * cos(6.283185307179586 * u2)  (libm)

  mirrored here so that the golden data do not come from the library.

A step, with g the minibatch gradient at x and gs the same minibatch's
gradient at the snapshot (both rounded to the dtype):
  v = (g - gs) + mu                       in the dtype, two roundings
  scalar:   G2 = sum_sq + fsum over the group of v*v   (double; sum_sq read
                 from its buffer); sum_sq = G2 rounded to the dtype;
            c = eta / sqrt(G2) in double with the unrounded G2 (0 if
                 G2 == 0), eta the buffer's value; p = p - c*v with c
                 rounded to the dtype, one rounding per operation
  diagonal: sum_sq = sum_sq + v*v;  p = p - (eta*v) / sqrt(sum_sq), every
            operation in the dtype (eta the buffer's value)
  step = step + 1

Self-checks (stderr; asserted): (a) run long enough (300 outer loops),
every problem's iterates (float64, adaptive) reach the least-squares
solution from numpy.linalg.lstsq: scalar to 1e-13, diagonal (sublinear;
not on MAT, where it overshoots) to 1e-4; (b) with the full batch and a single
outer loop, scalar AdaSVRG with a fixed lr is AdaGrad-Norm (b0 = 0) on the
full gradient: gen_adagrad_norm.py's step function agrees to 1e-13;
(c) normal() has mean 0 and variance 1 over 200000 draws (to 0.01) and
draws differ between parameters, elements and seeds.
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import goldenlib  # noqa: E402  (pins ATen to its portable kernels)
import numpy as np  # noqa: E402
import torch  # noqa: E402

DTYPES = goldenlib.DTYPES
NP = {"f32": np.float32, "f64": np.float64}
M64 = (1 << 64) - 1

DEFAULTS = dict(lr=0.0, diagonal=False, probe_std=0.01, seed=0)
OPT_ORDER = ("lr", "diagonal", "probe_std", "seed")
N = 24

# For --tolerance-study only (the golden data: all False):
#   seq          group sums of squares added in order in double (no fsum)
#   acc_rounded  c from sum_sq after it is rounded to the dtype
#   eta_double   eta kept in double, not rounded to the dtype
#   lmax_double  lmax kept in double
MODE = dict(seq=False, acc_rounded=False, eta_double=False,
            lmax_double=False)


# ------------------------------------------------------------- the problem

def problem(D, pseed):
    """(A, B): A[i][j] and B[i] as Python floats."""
    na = goldenlib.noise(N * D, 1, 2, pseed)
    A = [[na[i * D + j] + (1.0 if i % D == j else 0.0) for j in range(D)]
         for i in range(N)]
    B = goldenlib.noise(N, 4, 5, pseed)
    return A, B


def lsq_grad(A, B, x, batch):
    """Minibatch gradient at x (list of doubles), unrounded doubles."""
    D = len(x)
    r = {}
    for i in batch:
        acc = -B[i]
        for j in range(D):
            acc = acc + A[i][j] * x[j]
        r[i] = acc
    g = [0.0] * D
    for j in range(D):
        acc = 0.0
        for i in batch:
            acc = acc + r[i] * A[i][j]
        g[j] = acc / len(batch)
    return g


def rounded(vals, T):
    return np.array(vals, dtype=np.float64).astype(T)


def flat(params):
    return [float(v) for p in params for v in p]


def split(vec, sizes):
    out, o = [], 0
    for s in sizes:
        out.append(vec[o:o + s])
        o += s
    return out


# -------------------------------------------------- the probe generator

def mix(z):
    z = (z + 0x9e3779b97f4a7c15) & M64
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M64
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M64
    return z ^ (z >> 31)


def normal(seed, ordinal, e):
    a = mix(seed ^ mix(((ordinal * 0x100000001b3) & M64) ^ mix(e)))
    b = mix(a)
    u1 = (float(a >> 11) + 0.5) / 9007199254740992.0
    u2 = float(b >> 11) / 9007199254740992.0
    return math.sqrt(-2 * math.log(u1)) * math.cos(6.283185307179586 * u2)


def probe_point(params, o, T):
    return [(p + rounded([o["probe_std"] * normal(o["seed"], q, e)
                          for e in range(p.size)], T)).astype(T)
            for q, p in enumerate(params)]


# -------------------------------------------------------------- the rule

def fsum_sq(vals):
    if MODE["seq"]:
        acc = 0.0
        for v in vals:
            acc += v * v
        return acc
    return math.fsum(v * v for v in vals)


def store(x, T):
    """A double as the dtype buffer holds it (as a double again)."""
    return float(T(x))


class Svrg:
    """The optimizer's state for one group of parameters (numpy arrays of
    dtype T, flattened), on problem (A, B)."""

    def __init__(self, params, o, T, A, B):
        self.p, self.o, self.T, self.A, self.B = params, o, T, A, B
        self.sizes = [p.size for p in params]
        self.step = self.snaps = 0
        self.snapshot = self.mu = None
        self.sum_sq = None
        self.eta = self.lmax = 0.0
        self.probe = None

    def full_grad(self, pts):
        return [rounded(g, self.T) for g in split(
            lsq_grad(self.A, self.B, flat(pts), range(N)), self.sizes)]

    def take_snapshot(self):
        o, T = self.o, self.T
        mu = self.full_grad(self.p)
        if o["lr"] > 0:
            eta = o["lr"]
            lmax = self.lmax
        else:
            if self.snaps == 0:
                self.probe = probe_point(self.p, o, T)
                xp, mp = self.probe, self.full_grad(self.probe)
            else:
                xp, mp = self.snapshot, self.mu
            dmu = fsum_sq([float(a) - float(b) for m, n in zip(mu, mp)
                           for a, b in zip(m, n)])
            dx = fsum_sq([float(a) - float(b) for m, n in zip(self.p, xp)
                          for a, b in zip(m, n)])
            lmax = self.lmax
            if dx > 0:
                lmax = max(lmax, math.sqrt(dmu) / math.sqrt(dx))
            eta = 1e-4 if lmax < 1e-8 else math.sqrt(
                fsum_sq([float(v) for m in mu for v in m])) / (
                math.sqrt(2.0) * lmax)
        self.eta = eta if MODE["eta_double"] else store(eta, T)
        self.lmax = lmax if MODE["lmax_double"] else store(lmax, T)
        self.snapshot = [p.copy() for p in self.p]
        self.mu = mu
        if o["diagonal"]:
            self.sum_sq = [np.full(s, T(1e-8), dtype=T) for s in self.sizes]
        else:
            self.sum_sq = 0.0
        self.snaps += 1

    def do_step(self, batch):
        T = self.T
        g = [rounded(v, T) for v in split(
            lsq_grad(self.A, self.B, flat(self.p), batch), self.sizes)]
        gs = [rounded(v, T) for v in split(
            lsq_grad(self.A, self.B, flat(self.snapshot), batch), self.sizes)]
        vs = [((a - b).astype(T) + m).astype(T)
              for a, b, m in zip(g, gs, self.mu)]
        for v in vs:
            assert v.dtype == T
        if self.o["diagonal"]:
            eta = T(self.eta)
            for p, v, G in zip(self.p, vs, self.sum_sq):
                G[...] = G + v * v
                p[...] = p - (eta * v) / np.sqrt(G)
                assert p.dtype == T and G.dtype == T
        else:
            G2 = self.sum_sq + fsum_sq([float(x) for v in vs for x in v])
            self.sum_sq = store(G2, T)
            if MODE["acc_rounded"]:
                G2 = self.sum_sq
            c = T(self.eta / math.sqrt(G2)) if G2 > 0 else T(0)
            for p, v in zip(self.p, vs):
                p[...] = p - c * v
                assert p.dtype == T
        self.step += 1

    def state(self):
        """{key: [array per parameter]} as the library's buffers."""
        T = self.T
        k = len(self.p)
        st = dict(snapshot=self.snapshot, full_grad=self.mu,
                  sum_sq=self.sum_sq if self.o["diagonal"]
                  else [np.array([self.sum_sq], dtype=T)] * k,
                  eta=[np.array([self.eta], dtype=T)] * k)
        if self.o["lr"] == 0:
            st["lmax"] = [np.array([self.lmax], dtype=T)] * k
        return st


# ------------------------------------------------------------------ cases

def schedule(loops, bsz, shift):
    """[[batch, ...] per loop]: loop o (0-based) walks the permutation
    i -> (7 i + 5 o + shift) mod N in consecutive minibatches of bsz
    (wrapping around when a loop takes more than N samples)."""
    out = []
    for o, m in enumerate(loops):
        perm = [(7 * i + 5 * o + shift) % N for i in range(N)]
        out.append([[perm[(u * bsz + k) % N] for k in range(bsz)]
                    for u in range(m)])
    return out


ONE = ([("x", (5,))], 3)
TWO = ([("w", (2, 2)), ("c", (3,))], 11)
MAT = ([("m", (3, 4))], 5)
S1 = ((6, 6, 6, 6, 6), 4, 0)      # 5 passes over the data, minibatches of 4
S2 = ((8, 3, 8, 5), 3, 2)         # uneven loops, minibatches of 3
S3 = ((12, 12, 12), 1, 1)         # single samples
S4 = ((4, 4, 4, 4, 4, 4), 6, 5)


def build_cases():
    base = []
    for pname, prob in (("one", ONE), ("two", TWO)):
        for oname, o in (("lr03", dict(lr=0.3)),
                         ("lr03_diag", dict(lr=0.3, diagonal=True)),
                         ("adaptive", {}),
                         ("adaptive_diag", dict(diagonal=True))):
            base.append(("%s_%s" % (pname, oname), prob, o, S1))
    base += [
        ("two_adaptive_seed7", TWO, dict(seed=7, probe_std=0.05), S2),
        ("two_adaptive_diag_seed123", TWO, dict(diagonal=True, seed=123), S2),
        ("one_lr005_b1", ONE, dict(lr=0.05), S3),
        ("mat3x4_adaptive_b6", MAT, dict(probe_std=0.1, seed=2), S4),
    ]
    cases = []
    for dt in DTYPES:
        for name, (shapes, pseed), o, sch in base:
            cases.append(dict(name="adasvrg_%s_%s" % (name, dt), dt=dt,
                              shapes=shapes, pseed=pseed,
                              opts=dict(DEFAULTS, **o),
                              sched=schedule(*sch)))
    return cases


def hexes(a):
    return " ".join(float(v).hex() for v in np.asarray(a).reshape(-1))


def run_case(c, out):
    """Run case c, appending its lines to out (unless None).  Returns
    {("check", t, name) | ("state", loop, name, key) | ("probe", name):
    array, ("scalar", name, key): int}."""
    T = NP[c["dt"]]
    dtype = DTYPES[c["dt"]]
    o = c["opts"]
    seed = goldenlib.case_seed(c["name"])
    names = [n for n, _ in c["shapes"]]
    inits = goldenlib.initial_values(c["shapes"], dtype, seed)
    params = [t.numpy().reshape(-1).copy() for t in inits]
    D = sum(p.size for p in params)
    A, B = problem(D, c["pseed"])
    opt = Svrg(params, o, T, A, B)
    rec = {}
    lines = []
    if out is not None:
        lines += ["case " + c["name"], "algorithm adasvrg",
                  "dtype " + c["dt"], "seed %d" % seed,
                  "options " + goldenlib.options_spec(o, DEFAULTS, OPT_ORDER),
                  "problem %d %d %d" % (N, D, c["pseed"])]
        for n, shape in c["shapes"]:
            lines.append("param %s %d %s" % (n, len(shape),
                                             " ".join(map(str, shape))))
        for n, t in zip(names, inits):
            lines.append("init %s %s" % (n, goldenlib.hexes(t)))
    t = 0
    for lo, batches in enumerate(c["sched"], 1):
        opt.take_snapshot()
        if lo == 1 and o["lr"] == 0:
            for n, pp in zip(names, opt.probe):
                rec[("probe", n)] = pp.copy()
                lines.append("probe %s %s" % (n, hexes(pp)))
        lines.append("loop %d %d" % (lo, len(batches)))
        for batch in batches:
            t += 1
            opt.do_step(batch)
            lines.append("batch %d %s" % (t, " ".join(map(str, batch))))
            for n, p in zip(names, params):
                assert np.isfinite(p).all(), (c["name"], t, n)
                rec[("check", t, n)] = p.copy()
                lines.append("check %d %s %s" % (t, n, hexes(p)))
        for key, vals in opt.state().items():
            for n, v in zip(names, vals):
                rec[("state", lo, n, key)] = np.array(v).copy()
                lines.append("loopstate %d %s %s %s" % (lo, n, key, hexes(v)))
    for n in names:
        for key, v in (("step", opt.step), ("snapshots", opt.snaps)):
            rec[("scalar", n, key)] = v
            lines.append("scalar %s %s %d" % (n, key, v))
    lines.append("end")
    if out is not None:
        out += lines
    return rec


# ------------------------------------------------------------ self-checks

def convergence_check():
    """(a) long adaptive runs (float64, 300 outer loops of 6 minibatches of
    4 from x = 0) reach numpy's least-squares solution: the scalar variant
    to rounding (linear convergence), the diagonal one, which converges
    sublinearly here, to 1e-4 and still closing in over the last 100 loops.
    (Not diagonal on MAT: there its first steps, about eta per coordinate,
    overshoot and it does not settle; the golden data run MAT with the
    scalar accumulator only.)  Returns the worst relative distances
    (scalar, diagonal)."""
    worst = {False: 0.0, True: 0.0}
    for (shapes, pseed), diags in ((ONE, (False, True)),
                                   (TWO, (False, True)), (MAT, (False,))):
        sizes = [int(np.prod(s)) for _, s in shapes]
        D = sum(sizes)
        A, B = problem(D, pseed)
        xs = np.linalg.lstsq(np.array(A), np.array(B), rcond=None)[0]
        for diag in diags:
            o = dict(DEFAULTS, diagonal=diag)
            params = [p.copy() for p in split(np.zeros(D), sizes)]
            opt = Svrg(params, o, np.float64, A, B)
            dist = []
            for batches in schedule([N // 4] * 300, 4, 0):
                opt.take_snapshot()
                for b in batches:
                    opt.do_step(b)
                x = np.concatenate(params)
                dist.append(np.linalg.norm(x - xs) / np.linalg.norm(xs))
            if diag:
                assert dist[-1] < 0.8 * dist[-101], (pseed, dist[-101:])
            worst[diag] = max(worst[diag], dist[-1])
    assert worst[False] < 1e-13 and worst[True] < 1e-4, worst
    return worst[False], worst[True]


def adagrad_norm_check():
    """(b) full batch, one loop, fixed lr, scalar: AdaGrad-Norm with b0 = 0
    on the full gradient (gen_adagrad_norm.py's step)."""
    import gen_adagrad_norm as agn
    worst = 0.0
    for shapes, pseed in (ONE, TWO):
        sizes = [int(np.prod(s)) for _, s in shapes]
        D = sum(sizes)
        A, B = problem(D, pseed)
        x0 = [0.5 * math.sin(k + 1.0) for k in range(D)]
        params = [np.array(p) for p in split(x0, sizes)]
        opt = Svrg(params, dict(DEFAULTS, lr=0.7), np.float64, A, B)
        opt.take_snapshot()
        ref = [torch.tensor(p, dtype=torch.float64) for p in split(x0, sizes)]
        st = [dict(step=0, sum_sq=0.0) for _ in ref]
        for _ in range(25):
            opt.do_step(list(range(N)))
            g = split(lsq_grad(A, B, flat(ref), range(N)), sizes)
            agn.adagrad_norm_step(
                ref, [torch.tensor(v, dtype=torch.float64) for v in g], st,
                dict(lr=0.7, b0=0.0, scope="group"))
            for p, r in zip(params, ref):
                worst = max(worst, np.abs(p - r.numpy()).max()
                            / np.abs(r.numpy()).max())
    assert worst < 1e-13, worst
    return worst


def normal_check():
    """(c) the probe generator: moments and independence."""
    z = np.array([normal(s, q, e) for s in (0, 7) for q in range(4)
                  for e in range(25000)])
    mean, var = z.mean(), z.var()
    assert abs(mean) < 0.01 and abs(var - 1) < 0.01, (mean, var)
    assert len({normal(0, 0, 0), normal(0, 1, 0), normal(0, 0, 1),
                normal(1, 0, 0)}) == 4
    return mean, var, z.size


# ------------------------------------------------------ tolerance study

VARIANTS = {
    "seq": dict(seq=True),
    "acc_rounded": dict(acc_rounded=True),
    "eta_double": dict(eta_double=True),
    "lmax_double": dict(lmax_double=True),
}


def tolerance_study(cases, goldens):
    print("max tensor-wise relative difference (max|diff| / max|want|) to "
          "the golden run: parameters / state buffers")
    worst = {}
    for vname, c, rec in goldenlib.variant_runs(VARIANTS, MODE, cases,
                                                run_case):
        w = worst.setdefault(vname, {dt: [0.0, 0.0] for dt in DTYPES})
        w = w[c["dt"]]
        for key, b in goldens[c["name"]].items():
            if key[0] == "scalar":
                assert rec[key] == b
                continue
            a, b = rec[key].astype(np.float64), b.astype(np.float64)
            i = 0 if key[0] == "check" else 1
            w[i] = max(w[i], np.abs(a - b).max() / np.abs(b).max())
    for vname, w in worst.items():
        print("  %-12s %s" % (vname, "   ".join(
            "%s %.2e / %.2e" % (dt, *w[dt]) for dt in DTYPES)))


# ----------------------------------------------------------------- main

def main():
    torch.set_num_threads(1)
    cases = build_cases()
    assert len({c["name"] for c in cases}) == len(cases)
    out = ["# liboptim golden trajectories: AdaSVRG on least squares",
           "# generated by tests/golden/gen_adasvrg.py (numpy %s, torch %s "
           "for the initial values); our reference from liboptim(3), "
           "optim_snapshot(3) and spec section 10"
           % (np.__version__, torch.__version__),
           "# %d cases; line format, problem and probe generator: "
           "tests/golden/README (AdaSVRG)" % len(cases)]
    goldens = {c["name"]: run_case(c, out) for c in cases}
    if sys.argv[1:] == ["--tolerance-study"]:
        tolerance_study(cases, goldens)
        return
    assert not sys.argv[1:], "usage: gen_adasvrg.py [--tolerance-study]"
    wa, wd = convergence_check()
    wb = adagrad_norm_check()
    mean, var, nz = normal_check()
    sys.stdout.write("\n".join(out) + "\n")
    steps = [sum(len(b) for b in c["sched"]) for c in cases]
    mag = max(np.abs(v).max() for g in goldens.values()
              for k, v in g.items() if k[0] != "scalar")
    print("adasvrg self-checks: (a) 300 outer loops reach the least-squares "
          "solution to %.2g relative (float64, adaptive; diagonal %.2g); "
          "(b) full-batch scalar AdaSVRG vs AdaGrad-Norm %.2g; "
          "(c) normal(): mean %.4f, variance %.4f over %d draws"
          % (wa, wd, wb, mean, var, nz), file=sys.stderr)
    print("adasvrg: %d cases (%s), %d..%d steps each, largest |value| %.3g"
          % (len(cases), goldenlib.dtype_counts(cases), min(steps),
             max(steps), mag), file=sys.stderr)


if __name__ == "__main__":
    main()
