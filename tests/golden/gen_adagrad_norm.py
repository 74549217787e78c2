#!/usr/bin/python3
"""Generate tests/golden/adagrad_norm.txt: AdaGrad-Norm trajectories.

Usage (from the repository root; needs Debian's python3-torch 1.13 + numpy):

    /usr/bin/python3 tests/golden/gen_adagrad_norm.py > tests/golden/adagrad_norm.txt
    /usr/bin/python3 tests/golden/gen_adagrad_norm.py --tolerance-study

The second form writes no golden data: it reruns every case with other ways
of evaluating the same rule (below) and prints how far the parameters move.

Our own reference, written from liboptim(3) ("adagrad_norm") and
../shared/spec/optimizers.md section 10 (AdaGrad-Norm: b^2 <- b^2 + ||g||^2,
theta <- theta - eta g / b; bpauld/AdaSVRG adagrad.py with b0 = 0 over the
whole model; Ward, Wu and Bottou with b0 > 0).  Standard golden format and
gradient formula (tests/golden/README, goldenlib.py).

Registry name adagrad_norm; options and defaults: lr=1, b0=0,
scope=group (group | tensor).  State per parameter: scalar step and the
1-element buffer sum_sq (b^2), a buffer of the parameter's dtype.

A step, for every parameter with a gradient (a parameter listed `missing`
at a step is skipped: values, sum_sq and step untouched):
  1. n2 = ||g||^2 in double: every value of g as the kernel reads it (the
     dtype's value), squared in double, summed correctly rounded
     (math.fsum).  scope=group: the sum over ALL the group's parameters
     that have a gradient this step (one fsum over their values);
     scope=tensor: over this parameter alone.
  2. step = step + 1
     b2 = (step == 1 ? b0*b0 : sum_sq) + n2      in double, sum_sq read
                                                  from its buffer (the dtype)
     sum_sq = b2 rounded to the dtype             (stored)
  3. c = lr / sqrt(b2)   in double (0 when b2 == 0: nothing moves), with the
     b2 of step 2 before it is stored; then p = p - c*g, c rounded to the
     dtype, the product and the difference each rounded in the dtype.
Each parameter keeps its own b2: with scope=group a parameter that missed a
step lacks that step's n2 (and starts from b0^2 at its own first step),
while the others have it.

Self-checks (stderr; asserted): (a) a constant gradient g gives
p_t = p_0 - lr g sum_{k<=t} 1/sqrt(b0^2 + k ||g||^2) (float64, 1e-13);
(b) every single-parameter case gives the same bits with scope=tensor and
scope=group; (c) a second implementation (numpy, explicit loops over the
flattened parameters, scalars rounded by hand) reproduces every check and
state value bit for bit.
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import goldenlib  # noqa: E402  (pins ATen to its portable kernels)
import numpy as np  # noqa: E402
import torch  # noqa: E402

DTYPES = goldenlib.DTYPES
NP_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}

DEFAULTS = dict(lr=1.0, b0=0.0, scope="group")
STEPS = 50
CHECK_STEPS = (1, 2, 3, 5, 10, 20, 30, 40, 50)

# How the rule is evaluated ("golden": all False / "fsum").  For
# --tolerance-study only:
#   acc_rounded  c from sum_sq after it is rounded to the dtype
#   norm         fsum: correctly rounded (golden); seq: squares added in
#                double in order (parameters, then elements); dtype: squares
#                summed in the parameter's dtype, as torch's g.norm() on a
#                float32 tensor would (a plausible port of adagrad.py)
#   recip        p - (lr * (1/sqrt(b2))) * g
MODE = dict(acc_rounded=False, norm="fsum", recip=False)


def build_cases():
    """[{name, dt, opts, shapes, missing}] for both dtypes."""
    base = [
        ("vec10", [("x", (10,))], {}, {}),
        ("mat4x5", [("w", (4, 5))], {}, {}),
        ("conv2x3x2x2", [("k", (2, 3, 2, 2))], {}, {}),
        ("vec10_b0", [("x", (10,))], dict(lr=0.5, b0=2.0), {}),
        ("mat4x5_lr", [("w", (4, 5))], dict(lr=0.05), {}),
        ("conv_b0_lr", [("k", (2, 3, 2, 2))], dict(lr=3.0, b0=0.5), {}),
        ("two_group", [("w", (3, 4)), ("b", (5,))], dict(lr=0.5), {}),
        ("two_tensor", [("w", (3, 4)), ("b", (5,))],
         dict(lr=0.5, scope="tensor"), {}),
        # b has no gradient at step 1: it starts from b0^2 at step 2
        ("two_group_missing", [("w", (3, 4)), ("b", (5,))],
         dict(lr=0.5, b0=1.0), {"b": (1, 7, 8, 20)}),
        ("two_tensor_missing", [("w", (3, 4)), ("b", (5,))],
         dict(lr=0.5, b0=1.0, scope="tensor"), {"b": (1, 7, 8, 20)}),
        # step 15: no parameter has a gradient
        ("two_group_missing_all", [("w", (3, 4)), ("b", (5,))],
         dict(lr=0.2), {"w": (15, 33), "b": (15, 16, 50)}),
        ("three_group", [("a", (2, 3, 2, 2)), ("b", (6,)), ("c", (3, 3))],
         dict(lr=0.2, b0=0.1), {"c": (4,)}),
    ]
    cases = []
    for dt in DTYPES:
        for name, shapes, o, missing in base:
            cases.append(dict(name="adagrad_norm_%s_%s" % (name, dt), dt=dt,
                              opts=dict(DEFAULTS, **o), shapes=shapes,
                              missing=missing))
    return cases


# ----------------------------------------------------------- the rule

def sumsq(tensors):
    """||concatenation of tensors||^2 in double, as MODE["norm"] says."""
    vals = [v for t in tensors for v in t.reshape(-1).tolist()]
    if MODE["norm"] == "fsum":
        return math.fsum(v * v for v in vals)
    if MODE["norm"] == "seq":
        acc = 0.0
        for v in vals:
            acc += v * v
        return acc
    assert MODE["norm"] == "dtype"
    acc = torch.zeros((), dtype=tensors[0].dtype)
    for t in tensors:
        for v in t.reshape(-1):
            acc = acc + v * v
    return acc.item()


def to_dtype(x, dtype):
    """A double rounded to dtype, back as a Python float."""
    return torch.tensor(x, dtype=dtype).item()


def adagrad_norm_step(params, grads, states, o):
    """One step in place: params (tensors), grads (None = missing), states
    [{"step": int, "sum_sq": float (a dtype value)}]."""
    live = [g for g in grads if g is not None]
    group_n2 = sumsq(live) if live else 0.0
    for p, g, st in zip(params, grads, states):
        if g is None:
            continue
        n2 = group_n2 if o["scope"] == "group" else sumsq([g])
        st["step"] += 1
        b2 = (o["b0"] * o["b0"] if st["step"] == 1 else st["sum_sq"]) + n2
        st["sum_sq"] = to_dtype(b2, p.dtype)
        if MODE["acc_rounded"]:
            b2 = st["sum_sq"]
        if b2 > 0:
            c = o["lr"] * (1 / math.sqrt(b2)) if MODE["recip"] \
                else o["lr"] / math.sqrt(b2)
        else:
            c = 0.0
        p.sub_(torch.tensor(c, dtype=p.dtype) * g)


def run_case(c, out):
    """Run case c; append its lines to out (unless None).  Returns
    {(step, name): values, ("sum_sq", name): value, ("step", name): n}."""
    dtype, o = DTYPES[c["dt"]], c["opts"]
    seed = goldenlib.case_seed(c["name"])
    names = [n for n, _ in c["shapes"]]
    inits = goldenlib.initial_values(c["shapes"], dtype, seed)
    params = [t.clone() for t in inits]
    states = [dict(step=0, sum_sq=0.0) for _ in params]
    missing = c["missing"]
    if out is not None:
        goldenlib.write_case_header(
            out, c["name"], "adagrad_norm", c["dt"], seed,
            goldenlib.options_spec(o, DEFAULTS, DEFAULTS), STEPS,
            c["shapes"], inits, missing)
    rec = {}
    for k in range(1, STEPS + 1):
        grads = goldenlib.step_gradients(params, names, missing, k, seed)
        adagrad_norm_step(params, grads, states, o)
        for n, p in zip(names, params):
            assert torch.isfinite(p).all(), (c["name"], k, n)
            if k in CHECK_STEPS:
                rec[(k, n)] = p.clone()
                if out is not None:
                    goldenlib.write_check(out, k, n, p)
    for n, p, st in zip(names, params, states):
        assert st["step"] == STEPS - len(missing.get(n, ()))
        rec[("sum_sq", n)] = st["sum_sq"]
        rec[("step", n)] = st["step"]
        if out is not None:
            goldenlib.write_state(out, n, "sum_sq",
                                  torch.tensor([st["sum_sq"]], dtype=dtype))
            goldenlib.write_scalar(out, n, "step", st["step"])
    if out is not None:
        goldenlib.write_end(out)
    return rec


# ------------------------------------------------------------ self-checks

def closed_form_check():
    """(a) constant gradient, float64: p_t = p_0 - lr g S_t."""
    worst = 0.0
    for lr, b0 in ((1.0, 0.0), (0.3, 2.0)):
        g = torch.tensor([0.5, -1.25, 2.0, 0.125], dtype=torch.float64)
        p0 = torch.tensor([1.0, 2.0, -3.0, 0.5], dtype=torch.float64)
        p = p0.clone()
        st = [dict(step=0, sum_sq=0.0)]
        n2 = math.fsum(v * v for v in g.tolist())
        S = 0.0
        for t in range(1, 41):
            adagrad_norm_step([p], [g], st, dict(lr=lr, b0=b0,
                                                  scope="tensor"))
            S += 1 / math.sqrt(b0 * b0 + t * n2)
            want = p0 - lr * S * g
            worst = max(worst, ((p - want).abs().max() /
                                want.abs().max()).item())
    assert worst <= 1e-13, worst
    return worst


def scope_check(cases, goldens):
    """(b) single-parameter cases: scope=tensor gives the same bits."""
    n = 0
    for c in cases:
        if len(c["shapes"]) != 1:
            continue
        c2 = dict(c, opts=dict(c["opts"], scope="tensor"))
        rec = run_case(c2, None)
        for key, v in goldens[c["name"]].items():
            if isinstance(v, torch.Tensor):
                assert torch.equal(v, rec[key]), (c["name"], key)
            else:
                assert v == rec[key], (c["name"], key)
        n += 1
    return n


def numpy_reference(c):
    """(c) the rule again: numpy arrays, explicit loops, scalars rounded by
    hand; the gradient formula written out from noise()."""
    o = c["opts"]
    dtype = DTYPES[c["dt"]]
    T = NP_DTYPES[dtype]
    seed = goldenlib.case_seed(c["name"])
    names = [n for n, _ in c["shapes"]]
    ps = [t.numpy().reshape(-1).copy() for t in
          goldenlib.initial_values(c["shapes"], dtype, seed)]
    b2s = [None] * len(ps)
    steps = [0] * len(ps)
    out = {}
    for k in range(1, STEPS + 1):
        gs = []
        for j, (n, p) in enumerate(zip(names, ps)):
            if k in c["missing"].get(n, ()):
                gs.append(None)
                continue
            s = goldenlib.noise(p.size, k, j, seed)
            gs.append(np.array([T(T(T(0.25) * p[i]) + T(s[i]))
                                for i in range(p.size)], dtype=T))
        sq = {j: [float(v) * float(v) for v in g] for j, g in enumerate(gs)
              if g is not None}
        total = math.fsum(v for j in sq for v in sq[j])
        for j, (p, g) in enumerate(zip(ps, gs)):
            if g is None:
                continue
            n2 = total if o["scope"] == "group" else math.fsum(sq[j])
            steps[j] += 1
            prev = o["b0"] ** 2 if steps[j] == 1 else float(b2s[j])
            b2 = prev + n2
            b2s[j] = T(b2)
            cT = T(o["lr"] / math.sqrt(b2)) if b2 > 0 else T(0)
            for i in range(p.size):
                p[i] = T(p[i] - T(cT * g[i]))
        if k in CHECK_STEPS:
            for n, p in zip(names, ps):
                out[(k, n)] = p.copy()
    for j, n in enumerate(names):
        out[("sum_sq", n)] = float(b2s[j])
        out[("step", n)] = steps[j]
    return out


def numpy_check(cases, goldens):
    n = 0
    for c in cases:
        ref = numpy_reference(c)
        for key, v in goldens[c["name"]].items():
            if isinstance(v, torch.Tensor):
                assert np.array_equal(v.numpy().reshape(-1), ref[key]), \
                    (c["name"], key)
            else:
                assert v == ref[key], (c["name"], key, v, ref[key])
            n += 1
    return n


# ------------------------------------------------------ tolerance study

VARIANTS = {
    "acc_rounded": dict(acc_rounded=True),
    "seq_norm": dict(norm="seq"),
    "recip": dict(recip=True),
    "dtype_norm": dict(norm="dtype"),
}


def rel(a, b):
    """(element-wise max |a-b|/|b|, tensor-wise max|a-b|/max|b|)."""
    a, b = a.double(), b.double()
    d = (a - b).abs()
    nz = b != 0
    e = (d[nz] / b[nz].abs()).max().item() if nz.any() else 0.0
    if ((b == 0) & (d != 0)).any():
        e = math.inf
    return e, d.max().item() / b.abs().max().item()


def tolerance_study(cases, goldens):
    print("max relative difference of the parameters to the golden run, "
          "element-wise (tensor-wise), per dtype; sum_sq element-wise")
    worst = {}
    for vname, c, rec in goldenlib.variant_runs(VARIANTS, MODE, cases,
                                                run_case):
        w = worst.setdefault(vname, {dt: [0.0, 0.0, 0.0] for dt in DTYPES})
        w = w[c["dt"]]
        for key, b in goldens[c["name"]].items():
            if key[0] == "step":
                assert rec[key] == b
            elif key[0] == "sum_sq":
                w[2] = max(w[2], abs(rec[key] - b) / b)
            else:
                e, t = rel(rec[key], b)
                w[0], w[1] = max(w[0], e), max(w[1], t)
    for vname, w in worst.items():
        print("  %-12s %s" % (vname, "   ".join(
            "%s %.2e (%.2e) sum_sq %.2e" % (dt, *w[dt]) for dt in DTYPES)))


# ----------------------------------------------------------------- main

def main():
    torch.set_num_threads(1)
    with torch.no_grad():
        cases = build_cases()
        assert len({c["name"] for c in cases}) == len(cases)
        out = ["# liboptim golden trajectories: AdaGrad-Norm",
               "# generated by tests/golden/gen_adagrad_norm.py with torch %s "
               "(ATEN_CPU_CAPABILITY=%s); our reference from liboptim(3) "
               "and spec section 10; norms in double (math.fsum)"
               % (torch.__version__, os.environ["ATEN_CPU_CAPABILITY"]),
               "# %d cases; format and gradient formula: tests/golden/README"
               % len(cases)]
        goldens = {c["name"]: run_case(c, out) for c in cases}
        if sys.argv[1:] == ["--tolerance-study"]:
            tolerance_study(cases, goldens)
            return
        assert not sys.argv[1:], \
            "usage: gen_adagrad_norm.py [--tolerance-study]"
        wa = closed_form_check()
        nb = scope_check(cases, goldens)
        nc = numpy_check(cases, goldens)
    sys.stdout.write("\n".join(out) + "\n")
    mag = max(v.abs().max().item() for g in goldens.values()
              for k, v in g.items() if isinstance(v, torch.Tensor))
    print("adagrad_norm self-checks: (a) constant gradient vs closed form "
          "%.2g (float64); (b) %d single-parameter cases identical with "
          "scope=tensor; (c) numpy reference: %d values bit-identical"
          % (wa, nb, nc), file=sys.stderr)
    print("adagrad_norm: %d cases (%s), %d steps, checks after %s; largest "
          "|value| %.3g" % (len(cases), goldenlib.dtype_counts(cases), STEPS,
                            ", ".join(map(str, CHECK_STEPS)), mag),
          file=sys.stderr)


if __name__ == "__main__":
    main()
