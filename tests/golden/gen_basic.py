#!/usr/bin/python3
"""Generate tests/golden/basic.txt: SGD / Adam / AdamW / Adagrad trajectories.

Usage (from the repository root; needs Debian's python3-torch 1.13):

    /usr/bin/python3 tests/golden/gen_basic.py > tests/golden/basic.txt

The trajectories come from our own re-implementation of the update rules of
../shared/spec/optimizers.md section 1, written with torch tensor operations
in the order of torch 1.13's single-tensor code.  Every case is also run
through torch.optim (foreach=False) and the two must agree; a summary of the
agreement goes to stderr.  The file format and the gradient formula are
defined in tests/golden/README.
"""
import math
import os
import sys

# goldenlib (next to this script) holds the gradient formula, the initial
# values and the golden file writer shared with gen_muon.py and
# gen_normuon_root.py.  Importing it pins ATen's CPU kernels to the portable
# (non-SIMD) build (ATEN_CPU_CAPABILITY=default), so it comes before torch.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import goldenlib  # noqa: E402
import torch  # noqa: E402

STEPS = 50
CHECK_STEPS = (1, 2, 3, 5, 10, 25, 50)
SHAPES = {"vec": (37,), "2d": (7, 13), "4d": (3, 4, 3, 5)}
SHAPE_NAMES = ("vec", "2d", "4d")
DTYPES = goldenlib.DTYPES
RTOL = {"f32": 1e-6, "f64": 1e-13}

# Defaults of our option names (the torch 1.13 ones); lr=None means required.
DEFAULTS = {
    "sgd": dict(lr=None, momentum=0.0, dampening=0.0, weight_decay=0.0,
                nesterov=False, maximize=False),
    "adam": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                 amsgrad=False, maximize=False),
    "adamw": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                  weight_decay=1e-2, amsgrad=False, maximize=False),
    "adagrad": dict(lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                    initial_accumulator_value=0.0, eps=1e-10,
                    maximize=False),
}
OPTION_ORDER = ("lr", "momentum", "dampening", "weight_decay", "nesterov",
                "maximize", "beta1", "beta2", "eps", "amsgrad", "lr_decay",
                "initial_accumulator_value")
STATE_KEYS = {"sgd": ("momentum_buffer",), "adagrad": ("sum",),
              "adam": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
              "adamw": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")}


# ------------------------------------------------- reference update rules
# Each rule updates params in place; grads[i] is None for a parameter without
# gradient at this step (skipped entirely, as torch does for grad None).

def sgd_step(params, grads, states, o):
    lr, mom, damp = o["lr"], o["momentum"], o["dampening"]
    wd = o["weight_decay"]
    for p, g, st in zip(params, grads, states):
        if g is None:
            continue
        d_p = -g if o["maximize"] else g
        if wd != 0:
            d_p = d_p.add(p, alpha=wd)
        if mom != 0:
            buf = st.get("momentum_buffer")
            if buf is None:
                buf = st["momentum_buffer"] = torch.clone(d_p)
            else:
                buf.mul_(mom).add_(d_p, alpha=1 - damp)
            d_p = d_p.add(buf, alpha=mom) if o["nesterov"] else buf
        p.add_(d_p, alpha=-lr)


def adam_step(params, grads, states, o, decoupled=False):
    lr, beta1, beta2, eps = o["lr"], o["beta1"], o["beta2"], o["eps"]
    wd, amsgrad = o["weight_decay"], o["amsgrad"]
    for p, g, st in zip(params, grads, states):
        if g is None:
            continue
        if not st:  # lazy state initialisation at the first gradient
            st["step"] = 0.0
            st["exp_avg"] = torch.zeros_like(p)
            st["exp_avg_sq"] = torch.zeros_like(p)
            if amsgrad:
                st["max_exp_avg_sq"] = torch.zeros_like(p)
        grad = -g if o["maximize"] else g
        st["step"] += 1
        step = st["step"]
        if decoupled:
            p.mul_(1 - lr * wd)
        elif wd != 0:
            grad = grad.add(p, alpha=wd)
        exp_avg, exp_avg_sq = st["exp_avg"], st["exp_avg_sq"]
        exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias_correction1 = 1 - beta1 ** step
        bias_correction2 = 1 - beta2 ** step
        step_size = lr / bias_correction1
        bias_correction2_sqrt = math.sqrt(bias_correction2)
        if amsgrad:
            max_sq = st["max_exp_avg_sq"]
            torch.maximum(max_sq, exp_avg_sq, out=max_sq)
            denom = (max_sq.sqrt() / bias_correction2_sqrt).add_(eps)
        else:
            denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
        p.addcdiv_(exp_avg, denom, value=-step_size)


def adagrad_step(params, grads, states, o):
    lr, lr_decay, wd, eps = o["lr"], o["lr_decay"], o["weight_decay"], o["eps"]
    for p, g, st in zip(params, grads, states):
        if g is None:
            continue
        st["step"] += 1
        step = st["step"]
        grad = -g if o["maximize"] else g
        if wd != 0:
            grad = grad.add(p, alpha=wd)
        clr = lr / (1 + (step - 1) * lr_decay)
        st["sum"].addcmul_(grad, grad, value=1)
        std = st["sum"].sqrt().add_(eps)
        p.addcdiv_(grad, std, value=-clr)


def initial_states(alg, params, o):
    """Adagrad creates its state in the constructor, the others lazily."""
    if alg != "adagrad":
        return [{} for _ in params]
    return [{"step": 0.0,
             "sum": torch.full_like(p, o["initial_accumulator_value"])}
            for p in params]


RULES = {"sgd": sgd_step, "adam": adam_step, "adagrad": adagrad_step,
         "adamw": lambda *a: adam_step(*a, decoupled=True)}


def torch_optimizer(alg, params, o):
    """The torch.optim equivalent of (alg, options), single-tensor path."""
    kw = {k: v for k, v in o.items() if k not in ("beta1", "beta2")}
    if alg in ("adam", "adamw"):
        kw["betas"] = (o["beta1"], o["beta2"])
    cls = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW",
           "adagrad": "Adagrad"}[alg]
    return getattr(torch.optim, cls)(params, foreach=False, **kw)


def torch_state(alg, opt, p):
    """torch.optim's state for p in our naming ({} if none yet)."""
    st = dict(opt.state.get(p, {}))
    if "step" in st:
        st["step"] = float(st["step"].item())
    if st.get("momentum_buffer", 0) is None:
        del st["momentum_buffer"]
    return st


# --------------------------------------------------------------- the cases

TWO = [("w", (5, 6)), ("b", (6,))]
TWO_MISSING = {"w": (12,), "b": (3, 7, 8, 20)}


def case(alg, dt, shape, suffix, opts):
    """A case on one parameter "w" of SHAPES[shape], or on TWO ("two")."""
    o = dict(DEFAULTS[alg])
    o.update(opts)
    two = shape == "two"
    return dict(name="%s_%s_%s%s" % (alg, dt, shape, suffix), alg=alg, dt=dt,
                opts=o, shapes=TWO if two else [("w", SHAPES[shape])],
                missing=TWO_MISSING if two else {})


def build_cases():
    cases = []
    for dt in DTYPES:
        # SGD: 4 variants x weight decay off/on, shapes rotating.
        sgd_variants = [("_plain", {}), ("_mom", {"momentum": 0.9}),
                        ("_damp", {"momentum": 0.9, "dampening": 0.1}),
                        ("_nest", {"momentum": 0.9, "nesterov": True})]
        for vi, (vname, vopts) in enumerate(sgd_variants):
            for wi in range(2):
                opts = dict(lr=0.05, **vopts)
                if wi:
                    opts["weight_decay"] = 0.01
                cases.append(case("sgd", dt, SHAPE_NAMES[(2 * vi + wi) % 3],
                                  vname + "_wd" * wi, opts))
        cases.append(case("sgd", dt, "2d", "_nest_wd_max",
                          dict(lr=0.05, momentum=0.9, nesterov=True,
                               weight_decay=0.01, maximize=True)))
        cases.append(case("sgd", dt, "two", "_mom_wd",
                          dict(lr=0.05, momentum=0.9, weight_decay=0.01)))
        # Adam / AdamW: shape x weight decay, amsgrad alternating so that
        # all four (wd, amsgrad) combinations occur.
        for alg, wd in (("adam", 0.01), ("adamw", 0.1)):
            for si, shape in enumerate(SHAPE_NAMES):
                for wi in range(2):
                    ams = (si + wi) % 2 == 1
                    opts = dict(lr=1e-2, weight_decay=wd if wi else 0.0)
                    if ams:
                        opts["amsgrad"] = True
                    cases.append(case(alg, dt, shape,
                                      "_wd" * wi + "_ams" * ams, opts))
            cases.append(case(alg, dt, "vec", "_wd_max",
                              dict(lr=1e-2, weight_decay=wd, maximize=True)))
            cases.append(case(alg, dt, "two", "_wd_ams",
                              dict(lr=1e-2, weight_decay=wd, amsgrad=True)))
            cases.append(case(alg, dt, "2d", "_defaults", {}))
        # Adagrad: shape x weight decay; lr_decay / initial accumulator
        # cycle through all four on/off combinations.
        for si, shape in enumerate(SHAPE_NAMES):
            for wi in range(2):
                v = 2 * si + wi
                opts = dict(lr=0.1)
                if v % 2 == 0:
                    opts["lr_decay"] = 0.01
                if v % 4 < 2:
                    opts["initial_accumulator_value"] = 0.1
                if wi:
                    opts["weight_decay"] = 0.01
                suffix = ("_ld" * ("lr_decay" in opts)
                          + "_iav" * ("initial_accumulator_value" in opts)
                          + "_wd" * wi)
                cases.append(case("adagrad", dt, shape, suffix, opts))
        cases.append(case("adagrad", dt, "4d", "_ld_wd_max",
                          dict(lr=0.1, lr_decay=0.01, weight_decay=0.01,
                               maximize=True)))
        cases.append(case("adagrad", dt, "two", "_ld_iav",
                          dict(lr=0.1, lr_decay=0.01,
                               initial_accumulator_value=0.1)))
        cases.append(case("adagrad", dt, "vec", "_defaults", {}))
    return cases


# ----------------------------------------------------------------- running

def agree(a, b, dt, what, verdict):
    """Compare reference tensor a with torch.optim's b; update verdict."""
    if torch.equal(a, b):
        return
    rt = RTOL[dt]
    assert torch.allclose(a, b, rtol=rt, atol=rt), "mismatch: " + what
    verdict["exact"] = False
    verdict["maxdiff"] = max(verdict["maxdiff"], (a - b).abs().max().item())


def run_case(c, out, verdict):
    alg, dt, o = c["alg"], c["dt"], c["opts"]
    names = [n for n, _ in c["shapes"]]
    seed = goldenlib.case_seed(c["name"])
    inits = goldenlib.initial_values(c["shapes"], DTYPES[dt], seed)

    ref = [t.clone() for t in inits]
    ref_states = initial_states(alg, ref, o)
    tp = [t.clone() for t in inits]
    opt = torch_optimizer(alg, tp, o)

    goldenlib.write_case_header(
        out, c["name"], alg, dt, seed,
        goldenlib.options_spec(o, DEFAULTS[alg], OPTION_ORDER), STEPS,
        c["shapes"], inits, c["missing"])

    for k in range(1, STEPS + 1):
        grads = goldenlib.step_gradients(ref, names, c["missing"], k, seed)
        RULES[alg](ref, grads, ref_states, o)
        for p, g in zip(tp, goldenlib.step_gradients(tp, names, c["missing"],
                                                     k, seed)):
            p.grad = g
        opt.step()
        for n, a, b in zip(names, ref, tp):
            agree(a, b, dt, "%s step %d %s" % (c["name"], k, n), verdict)
        if k in CHECK_STEPS:
            for n, p in zip(names, ref):
                goldenlib.write_check(out, k, n, p)

    for n, st, p in zip(names, ref_states, tp):
        tst = torch_state(alg, opt, p)
        assert sorted(st) == sorted(tst), "state keys differ: " + c["name"]
        for key in STATE_KEYS[alg]:
            if key in st:
                agree(st[key], tst[key], dt, c["name"] + " " + key, verdict)
                goldenlib.write_state(out, n, key, st[key])
        if "step" in st:
            assert st["step"] == tst["step"]
            goldenlib.write_scalar(out, n, "step", st["step"])
    goldenlib.write_end(out)


def main():
    torch.set_num_threads(1)
    cases = build_cases()
    assert len({c["name"] for c in cases}) == len(cases)
    out = ["# liboptim golden trajectories: SGD, Adam, AdamW, Adagrad",
           "# generated by tests/golden/gen_basic.py with torch %s "
           "(ATEN_CPU_CAPABILITY=%s); verified against torch.optim "
           "(foreach=False)" % (torch.__version__,
                                os.environ["ATEN_CPU_CAPABILITY"]),
           "# %d cases; format and gradient formula: tests/golden/README"
           % len(cases)]
    verdicts = {}
    with torch.no_grad():
        for c in cases:
            v = verdicts.setdefault((c["alg"], c["dt"]),
                                    {"exact": True, "maxdiff": 0.0, "n": 0})
            v["n"] += 1
            run_case(c, out, v)
    sys.stdout.write("\n".join(out) + "\n")
    for (alg, dt), v in sorted(verdicts.items()):
        how = ("exact" if v["exact"] else "NOTE: within tolerance only "
               "(max abs diff %g)" % v["maxdiff"])
        print("torch.optim check %-7s %s: %2d cases, %s"
              % (alg, dt, v["n"], how), file=sys.stderr)


if __name__ == "__main__":
    main()
