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

# goldenlib (next to this script) holds the gradient formula, the initial
# values, the golden file writer and Newton-Schulz with its fixed-order
# matrix products and norms.  Importing it pins ATen's CPU kernels to the
# portable (non-SIMD) build, as for gen_basic.py: the AVX2/AVX512 kernels may
# fuse add(alpha=) into an FMA.  So it comes before torch.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import goldenlib  # noqa: E402
import torch  # noqa: E402

STEPS = 30
CHECK_STEPS = (1, 2, 3, 5, 10, 20, 30)
SHAPES = {"tall": (12, 7), "wide": (6, 15), "square": (9, 9),
          "3d": (3, 5, 8), "4d": (6, 3, 3, 2)}
DTYPES = goldenlib.DTYPES

# Defaults of our option names (as the C library spells them).
DEFAULTS = dict(lr=0.02, momentum=0.95, nesterov=True, weight_decay=0.0,
                ns_steps=5, ns_coefficients="muon", lr_adjust="reference",
                nonmatrix="error", adamw_lr=3e-4, adamw_beta1=0.9,
                adamw_beta2=0.95, adamw_eps=1e-10, adamw_weight_decay=0.0)
OPTION_ORDER = ("lr", "momentum", "nesterov", "weight_decay", "ns_steps",
                "ns_coefficients", "lr_adjust", "nonmatrix", "adamw_lr",
                "adamw_beta1", "adamw_beta2", "adamw_eps",
                "adamw_weight_decay")


# ------------------------------------------------------------ Newton-Schulz
# (goldenlib.newton_schulz, ns_coefficients muon or polar_express)

def self_check():
    """Sanity of the NS helper on a random 64x32 float64 matrix."""
    _, _, summary = goldenlib.ns_self_check()
    print(summary, file=sys.stderr)


# ------------------------------------------------------- the update rules

def muon_param_step(p, g, st, o):
    lr, beta = o["lr"], o["momentum"]
    st["step"] += 1
    buf = st["momentum_buffer"]
    buf.lerp_(g, 1 - beta)
    u = g.lerp(buf, beta) if o["nesterov"] else buf
    out, (rows, cols) = goldenlib.orthogonalise(u, o)
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

def run_case(c, out):
    dt, o = c["dt"], c["opts"]
    names = [n for n, _ in c["shapes"]]
    seed = goldenlib.case_seed(c["name"])
    inits = goldenlib.initial_values(c["shapes"], DTYPES[dt], seed)

    ref = [t.clone() for t in inits]
    states = [initial_state(p, o) for p in ref]

    goldenlib.write_case_header(
        out, c["name"], "muon", dt, seed,
        goldenlib.options_spec(o, DEFAULTS, OPTION_ORDER), STEPS,
        c["shapes"], inits, c["missing"])

    for k in range(1, STEPS + 1):
        grads = goldenlib.step_gradients(ref, names, c["missing"], k, seed)
        muon_step(ref, grads, states, o)
        for n, p in zip(names, ref):
            assert torch.isfinite(p).all(), "%s step %d %s" % (c["name"], k, n)
            if k in CHECK_STEPS:
                goldenlib.write_check(out, k, n, p)

    for n, st, p in zip(names, states, ref):
        for key in state_keys(p):
            goldenlib.write_state(out, n, key, st[key])
        goldenlib.write_scalar(out, n, "step", st["step"])
    goldenlib.write_end(out)


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
