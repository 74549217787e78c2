#!/usr/bin/python3
"""Generate tests/golden/zoo.txt: AdaBelief, Lion, Lion-K, TAM, AdaTAM,
Adam+CM, IGT and Adam-IGT trajectories.

Usage (from the repository root; needs Debian's python3-torch 1.13 + numpy):

    /usr/bin/python3 tests/golden/gen_zoo.py > tests/golden/zoo.txt
    /usr/bin/python3 tests/golden/gen_zoo.py --xcheck DIR
    /usr/bin/python3 tests/golden/gen_zoo.py --tolerance-study

The other forms write no golden data.  --xcheck runs every case it can
through the authors' code found in DIR (not part of this repository; see
tests/golden/README, "Zoo", for the files and commits) and prints how far
those trajectories are from ours.  --tolerance-study reruns every case
with the whole-tensor reductions in the parameter's dtype (torch's norm(),
sum(), normalize(), as the authors' code) instead of double and prints how
far the parameters and the state move.

Our own reference implementations, written from ../shared/spec/optimizers.md
sections 7-10 with the choices of the issue-8 design note (registry names,
option names and defaults, state names), in the operation order of the
authors' code where there is code (read, not copied): adabelief-pytorch
0.2.1 AdaBelief.py, google/automl lion_pytorch.py, kozistr pytorch_optimizer
tam.py (TAM / AdaTAM, correlation=elementwise), chandar-lab/CMOptimizer
Adam_CM, seba-1511/igt.pth torch_igt/igt.py (MomentumIGT) and adam_igt.py
(AdamIGT).  Every tensor operation runs in the parameter's dtype (float32 or
float64) as a torch op; Python scalars (double) are rounded to the dtype
where they meet a tensor (torch's wrapped-number rule): p.add_(x, alpha=a)
is p + a*x, p.addcdiv_(x, y, value=a) is p + (a*x)/y, v.addcmul_(x, x,
value=a) is v + (a*x)*x, each operation separately rounded (ATen is pinned
to its portable kernels by goldenlib, so there are no fused multiply-adds).
Scalars (bias corrections, rho_t, step sizes, transport factors) are Python
doubles, in the expression order given below.  Whole-tensor reductions
(norms, dot products) are in double: every square / product rounded to
double, summed correctly rounded (math.fsum), sqrt in double.

A parameter without gradient at a step (listed `missing`) is skipped, as
torch.optim does: no change to it or to its state, its step count does not
advance (and it is left out of adam_cm's synced priority).  igt and
adam_igt count n per parameter, as liboptim does (the authors' code counts
it per group and crashes on a parameter missing at the first step):
IGT_MISSING_CASES below.

Registry names, options (defaults) and state (buffers of the parameter's
dtype; scalars are integers):

adabelief  lr=1e-3 beta1=0.9 beta2=0.999 eps=1e-16 weight_decay=0
           amsgrad=false weight_decouple=true fixed_decay=false rectify=true
           degenerated_to_sgd=true
           state exp_avg (m), exp_avg_var (s), max_exp_avg_var (amsgrad),
           scalar step (t)
    1. weight_decouple: p = p * (1 - lr*wd)  (fixed_decay: p * (1 - wd))
       else if wd != 0: g = g + wd*p
    2. t += 1; m = m*b1 + (1-b1)*g; r = g - m; s = s*b2 + ((1-b2)*r)*r;
       s = s + eps
    3. amsgrad: smax = max(smax, s); denom = sqrt(smax) / sqrt(bc2) + eps
       else denom = sqrt(s) / sqrt(bc2) + eps     (bc_i = 1 - b_i**t)
    4. rectify=false: p = p + ((-(lr/bc1))*m) / denom
       rectify=true (doubles): b2t = b2**t; rho_inf = 2/(1-b2) - 1;
         rho = rho_inf - 2*t*b2t/(1-b2t)
         rho >= 5: r = sqrt((1-b2t)*(rho-4)/(rho_inf-4)*(rho-2)/rho*rho_inf
                            /(rho_inf-2)) / (1 - b1**t)
                   p = p + ((-r*lr)*m) / (sqrt(s) + eps)  (s, not smax)
         else degenerated_to_sgd: p = p + (-(1/(1-b1**t))*lr)*m
         else: p unchanged
       With beta2 = 0.999, t = 1..5 take the SGD branch (rho_5 = 4.996).

lion       lr=1e-4 beta1=0.9 beta2=0.99 weight_decay=0     state exp_avg
lion_k     the same and norm=l1|l2|linf (default l1)       state exp_avg
    p = p * (1 - lr*wd); c = m*b1 + g*(1-b1); D = gradK(c);
    p = p + (-lr)*D; m = m*b2 + (1-b2)*g
    l1: D = sign(c) (sign(0) = 0; lion).  l2: D = c / nrm, nrm = ||c||_2
    (double, rounded to the dtype), D = 0 if c == 0.  linf: J = the indices
    of max |c|, D_j = sign(c_j) / |J| on J, 0 elsewhere (D = 0 if c == 0).

tam        lr=1e-3 momentum=0.9 decay_rate=0.9 weight_decay=0 eps=1e-8
           correlation=cosine|elementwise (default cosine)
           state momentum_buffer (m), s, scalar step
adatam     lr=1e-3 beta1=0.9 beta2=0.999 decay_rate=0.9 weight_decay=0
           eps=1e-8 correlation=cosine
           state exp_avg (m), exp_avg_sq (v), s, scalar step
    s has 1 element (cosine) or one per element (elementwise).
    corr: cosine: <m,g> / (max(||m||, 1e-12) * max(||g||, 1e-12)) in
      double, rounded to the dtype (a 1-element tensor);
      elementwise: nrm0(m) * nrm0(g), nrm0(x) = x / max(n, 1e-12) with n
      the L2 norm along dim 0 (per column for 2-D, the whole vector for
      1-D, torch.nn.functional.normalize(x, dim=0) semantics) computed in
      double and rounded to the dtype.
    tam:    p = p * (1 - lr*wd); elementwise and first step of this
            parameter: m = copy of g (cosine: m starts 0, so corr = 0 at
            the first step); s = s*gamma + (1-gamma)*corr;
            d = (((1 + s) / 2) + eps) * g; m = m*momentum + d;
            p = p + (-lr)*m
    adatam: p = p * (1 - lr*wd); m, v, s start 0; s and d as tam;
            m = m*b1 + d; v = v*b2 + ((1-b2)*g)*g;
            p = p + ((-lr)*m) / (sqrt(v) + eps)        (no bias correction)

adam_cm    lr=1e-3 beta1=0.9 beta2=0.999 eps=1e-8 decay=0.7 kappa=1 topc=5
           weight_decay=0 amsgrad=false critical_test=0 synced=true seed=0
           state exp_avg (m), exp_avg_sq (v), max_exp_avg_sq (amsgrad),
           and for kappa != 0 buffer (topc*numel: slot k at k*numel, zeros
           while unfilled), buffer_sum, keys (topc, 0 while unfilled);
           scalars step, buffer_size, last_slot (kappa != 0)
    priority n: synced: the sum, in registration order, of ||G||_2 of the
      group's parameters that have a gradient this step; else ||G||_2 of
      this parameter; computed in double, then rounded to the dtype.  The
      keys are a tensor of the dtype (as the reference's): n is stored and
      compared rounded, keys = keys * decay is a multiplication in the
      dtype (decay rounded to it).
    kappa != 0:
    0. wd != 0: p = p * (1 - lr*wd)
    1. first step: slot 0 = copy of g, keys[0] = n, buffer_size = 1,
         buffer_sum = 0 + g; a = m (= 0)
       later: m = m*b1 + (1-b1)*g; a = m + buffer_sum / buffer_size;
         then if buffer_size < topc: slot[size] = copy of m, key = n,
         size += 1, buffer_sum = buffer_sum + m; else j = argmin(keys)
         (first minimum), last_slot = j, and if n > keys[j]: buffer_sum =
         (buffer_sum + (-slot[j])) + m, slot[j] = copy of m, keys[j] = n
    2. t += 1; v = v*b2 + ((1-b2)*a)*a; amsgrad: vmax = max(vmax, v)
    3. denom = sqrt(v or vmax) / sqrt(bc2) + eps; keys = keys * decay
    4. p = p + ((-(lr/bc1))*a) / denom     (first step: a = 0, p unchanged)
    kappa == 0: plain Adam with the same decoupled decay: 0., t += 1,
      m = m*b1 + (1-b1)*g, v = v*b2 + ((1-b2)*g)*g, 3. and 4. with a = m
      (= torch.optim.Adam for wd = 0, torch.optim.AdamW otherwise; the
      script asserts both, bit for bit).
    critical_test is 0 in every case (never the random FIFO overwrite).

igt        lr (required) momentum=0 dampening=0 weight_decay=0
           nesterov=false delta=1
           state true_param (theta), igt_avg (v), momentum_buffer (u,
           momentum != 0), scalar step (n, completed steps)
adam_igt   lr=1e-3 beta1=0.9 beta2=0.999 eps=1e-8 weight_decay=0 delta=1
           state true_param, igt_avg, exp_avg (m), exp_avg_sq (s), step
    The parameter buffer is the shifted point (gradients are evaluated
    there, and `check` lines give it); theta is taken from it at n = 0.
    Doubles: gam = n/(n+delta); fg = (n+1)/(n+1+delta); tau = fg/(1-fg)
    (= (n+1)/delta up to rounding).
    igt: wd != 0: g = g + wd*p (p the shifted point);
      n = 0: theta = copy of p; v = 0 + g; u = 0 + v (momentum != 0)
      n >= 1: v = v*gam + (1-gam)*g; u = u*momentum + (1-dampening)*v
      plain:      theta = theta + (-lr)*v;  p = theta + (-lr*tau)*v
      heavy ball: theta = theta + (-lr)*u;  p = theta + (-lr*tau)*u
      nesterov:   theta = (theta + (-lr)*v) + (-lr*momentum)*u;
                  p = (theta + (-lr*tau)*v) + (-lr*momentum*tau)*u
      (-lr*momentum*tau is ((-lr)*momentum)*tau); n += 1
    adam_igt: n = 0: v = 0 + g, theta = 0 + p; n >= 1: v = v*gam +
      (1-gam)*g, p = theta (the true point);
      h = v, plus wd*p if wd != 0 (decay at the TRUE point, after the
      averaging); m = m*b1 + (1-b1)*h; s = s*b2 + ((1-b2)*h)*h;
      c = lr*sqrt(1 - b2**(n+1)) / (1 - b1**(n+1));
      U = (m / (sqrt(s) + eps)) * (-c); theta = p + U;
      p = p + (1 + tau)*U     (p the old true point); n += 1

Self-checks (stderr; asserted): (a) adam_cm kappa=0 equals torch.optim.Adam
/ AdamW (foreach=False) bit for bit; (b) an independent float64 numpy
implementation (plain loops, written from the rules above in their
mathematical form) reproduces every f64 case to 1e-12 (tensor-wise
relative); (c) adam_cm: step 1 moves p by the weight decay only; synced=true
and synced=false give different trajectories on the two-parameter cases;
(d) the adabelief SGD / rectified switch happens where expected; (e) IGT:
the shifted point equals theta_n + tau_n (theta_n - theta_(n-1)) and plain
igt with delta=1 averages all gradients, to rounding; (f) margins of the
discrete decisions (signs of lion's c, the linf argmax, adam_cm's argmin
and key comparisons, adabelief's rho_t >= 5): every one is far from a tie
relative to rounding (asserted > 1e-5 relative), so an implementation
with another rounding order makes the same decisions.
"""
import importlib.util
import io
import math
import os
import sys
import types
import warnings
from contextlib import redirect_stdout

# goldenlib (next to this script): gradient formula, initial values, golden
# file writer.  Importing it pins ATen's CPU kernels to the portable build
# (before torch is imported), as for the other generators.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import goldenlib  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

DTYPES = goldenlib.DTYPES
STEPS = 50
CHECK_STEPS = (1, 2, 3, 4, 5, 6, 7, 10, 20, 30, 40, 50)
MARGIN_MIN = 1e-5

# igt / adam_igt with missing gradients: the authors' code counts n per
# group (every step() of the group, gradient or not; a parameter missing at
# the group's first step crashes it), the design note per parameter (a
# parameter without gradient is skipped, its n unchanged).  liboptim counts
# per parameter, like every torch.optim algorithm's step: True adds two cases
# per algorithm and dtype with per-parameter n.
IGT_MISSING_CASES = True

# How the whole-tensor reductions are computed: "double" (the golden data:
# double, correctly rounded sums) or, for --tolerance-study, "dtype" (torch
# reductions in the parameter's dtype, as the authors' code does: norm(),
# sum(), torch.nn.functional.normalize; adam_cm's priorities from norms in
# the dtype).
MODE = dict(reduce="double")

# Defaults of our option names (the C registry's); the dict order is also
# the order of the `options` field.  lr=None: required.
DEFAULTS = {
    "adabelief": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-16,
                      weight_decay=0.0, amsgrad=False, weight_decouple=True,
                      fixed_decay=False, rectify=True,
                      degenerated_to_sgd=True),
    "lion": dict(lr=1e-4, beta1=0.9, beta2=0.99, weight_decay=0.0),
    "lion_k": dict(lr=1e-4, beta1=0.9, beta2=0.99, weight_decay=0.0,
                   norm="l1"),
    "tam": dict(lr=1e-3, momentum=0.9, decay_rate=0.9, weight_decay=0.0,
                eps=1e-8, correlation="cosine"),
    "adatam": dict(lr=1e-3, beta1=0.9, beta2=0.999, decay_rate=0.9,
                   weight_decay=0.0, eps=1e-8, correlation="cosine"),
    "adam_cm": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, decay=0.7,
                    kappa=1.0, topc=5, weight_decay=0.0, amsgrad=False,
                    critical_test=0.0, synced=True, seed=0),
    "igt": dict(lr=None, momentum=0.0, dampening=0.0, weight_decay=0.0,
                nesterov=False, delta=1.0),
    "adam_igt": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                     weight_decay=0.0, delta=1.0),
}
ALGS = tuple(DEFAULTS)

# Smallest relative margin of every kind of discrete decision, per dtype
# (self-check (f)).
MARGINS = {}


def note_margin(kind, dt, value):
    key = (kind, dt)
    MARGINS[key] = min(MARGINS.get(key, math.inf), value)


# ------------------------------------------------------- double reductions

def dvals(t):
    """The elements of t as Python doubles (row-major)."""
    return [float(x) for x in t.reshape(-1).tolist()]


def dnorm(vals):
    return math.sqrt(math.fsum(x * x for x in vals))


def ddot(a, b):
    return math.fsum(x * y for x, y in zip(a, b))


def normalize_dim0(x):
    """x / max(n, 1e-12), n the L2 norm of x along dim 0 (double, rounded
    to x's dtype): torch.nn.functional.normalize(x, dim=0) semantics."""
    if MODE["reduce"] == "dtype":
        return torch.nn.functional.normalize(x, p=2.0, dim=0)
    cols = x.reshape(x.shape[0], -1)
    n = [dnorm(dvals(cols[:, j])) for j in range(cols.shape[1])]
    n = torch.tensor(n, dtype=x.dtype).reshape((1,) + tuple(x.shape[1:]))
    return x / n.clamp_min(1e-12)


# -------------------------------------------------------------- AdaBelief

def rho_terms(t, b2):
    b2t = b2 ** t
    rho_inf = 2 / (1 - b2) - 1
    rho = rho_inf - 2 * t * b2t / (1 - b2t)
    return b2t, rho_inf, rho


def adabelief_step(params, grads, states, o, dt):
    lr, b1, b2, eps, wd = (o["lr"], o["beta1"], o["beta2"], o["eps"],
                           o["weight_decay"])
    for p, g, st in zip(params, grads, states):
        if g is None:
            continue
        if not st:
            st.update(step=0, exp_avg=torch.zeros_like(p),
                      exp_avg_var=torch.zeros_like(p))
            if o["amsgrad"]:
                st["max_exp_avg_var"] = torch.zeros_like(p)
        if o["weight_decouple"]:
            p.mul_(1.0 - wd if o["fixed_decay"] else 1.0 - lr * wd)
        elif wd != 0:
            g = g.add(p, alpha=wd)
        st["step"] += 1
        t = st["step"]
        bc1 = 1 - b1 ** t
        bc2 = 1 - b2 ** t
        m, s = st["exp_avg"], st["exp_avg_var"]
        m.mul_(b1).add_(g, alpha=1 - b1)
        r = g - m
        s.mul_(b2).addcmul_(r, r, value=1 - b2)
        s.add_(eps)
        if o["amsgrad"]:
            smax = st["max_exp_avg_var"]
            torch.maximum(smax, s, out=smax)
            denom = (smax.sqrt() / math.sqrt(bc2)).add_(eps)
        else:
            denom = (s.sqrt() / math.sqrt(bc2)).add_(eps)
        if not o["rectify"]:
            p.addcdiv_(m, denom, value=-(lr / bc1))
            continue
        b2t, rho_inf, rho = rho_terms(t, b2)
        note_margin("adabelief rho_t vs 5", dt, abs(rho - 5) / 5)
        if rho >= 5:
            r_t = math.sqrt((1 - b2t) * (rho - 4) / (rho_inf - 4) * (rho - 2)
                            / rho * rho_inf / (rho_inf - 2)) / (1 - b1 ** t)
            p.addcdiv_(m, s.sqrt().add_(eps), value=-r_t * lr)
        elif o["degenerated_to_sgd"]:
            p.add_(m, alpha=-(1.0 / (1 - b1 ** t)) * lr)


# ------------------------------------------------------------- Lion, Lion-K

def grad_k(c, norm, dt):
    """D = gradK(c) for K = ||.||_1, ||.||_2 or ||.||_inf."""
    if norm == "l1":
        return c.sign()
    a = dvals(c.abs())
    if max(a) == 0:
        return torch.zeros_like(c)
    if norm == "l2":
        if MODE["reduce"] == "dtype":
            return c / c.norm()
        return c / torch.tensor(dnorm(dvals(c)), dtype=c.dtype)
    assert norm == "linf", norm
    top = max(a)
    J = [j for j, x in enumerate(a) if x == top]
    rest = [x for x in a if x != top]
    if rest:
        note_margin("lion_k linf max vs runner-up", dt,
                    (top - max(rest)) / top)
    flat = torch.zeros(c.numel(), dtype=c.dtype)
    cf = c.reshape(-1)
    for j in J:
        flat[j] = cf[j].sign() / len(J)
    return flat.reshape(c.shape)


def lion_step(params, grads, states, o, dt, norm=None):
    lr, b1, b2, wd = o["lr"], o["beta1"], o["beta2"], o["weight_decay"]
    norm = norm or o.get("norm", "l1")
    for p, g, st in zip(params, grads, states):
        if g is None:
            continue
        if not st:
            st["exp_avg"] = torch.zeros_like(p)
        m = st["exp_avg"]
        p.mul_(1 - lr * wd)
        x, y = m * b1, g * (1 - b1)
        c = x + y
        if norm == "l1":
            ac, scale = dvals(c.abs()), dvals(x.abs() + y.abs())
            nz = [a / s for a, s in zip(ac, scale) if a != 0]
            if nz:
                note_margin("lion sign(c): |c| / (|b1 m| + |(1-b1) g|)", dt,
                            min(nz))
        p.add_(grad_k(c, norm, dt), alpha=-lr)
        m.mul_(b2).add_(g, alpha=1 - b2)


# -------------------------------------------------------------- TAM, AdaTAM

def tam_corr(m, g, corr):
    if corr == "elementwise":
        return normalize_dim0(m) * normalize_dim0(g)
    assert corr == "cosine", corr
    if MODE["reduce"] == "dtype":
        return ((m * g).sum() / (m.norm().clamp_min(1e-12)
                                 * g.norm().clamp_min(1e-12))).reshape(1)
    mv, gv = dvals(m), dvals(g)
    c = ddot(mv, gv) / (max(dnorm(mv), 1e-12) * max(dnorm(gv), 1e-12))
    return torch.tensor([c], dtype=m.dtype)


def tam_step(params, grads, states, o, dt, ada=False):
    lr, wd, eps, gam = o["lr"], o["weight_decay"], o["eps"], o["decay_rate"]
    elem = o["correlation"] == "elementwise"
    mkey = "exp_avg" if ada else "momentum_buffer"
    for p, g, st in zip(params, grads, states):
        if g is None:
            continue
        if not st:
            st["step"] = 0
            st["s"] = torch.zeros_like(p) if elem else torch.zeros(
                1, dtype=p.dtype)
            st[mkey] = g.clone() if (elem and not ada) else torch.zeros_like(p)
            if ada:
                st["exp_avg_sq"] = torch.zeros_like(p)
        st["step"] += 1
        p.mul_(1 - lr * wd)
        s, m = st["s"], st[mkey]
        s.mul_(gam).add_(tam_corr(m, g, o["correlation"]), alpha=1 - gam)
        d = ((1.0 + s) / 2.0).add_(eps) * g
        if ada:
            m.mul_(o["beta1"]).add_(d)
            v = st["exp_avg_sq"]
            v.mul_(o["beta2"]).addcmul_(g, g, value=1 - o["beta2"])
            p.addcdiv_(m, v.sqrt().add_(eps), value=-lr)
        else:
            m.mul_(o["momentum"]).add_(d)
            p.add_(m, alpha=-lr)


# ----------------------------------------------------------------- Adam+CM

def cm_priorities(grads, o):
    """n of every parameter (None without gradient), in double (in the
    dtype for MODE reduce=dtype, as the authors' code)."""
    if MODE["reduce"] == "dtype":
        norms = [None if g is None else g.square().sum().sqrt()
                 for g in grads]
        tot = 0.0
        for n in norms:
            if n is not None:
                tot = n + tot
        return [None if n is None else float(tot if o["synced"] else n)
                for n in norms]  # already in the dtype
    norms = [None if g is None else dnorm(dvals(g)) for g in grads]
    if not o["synced"]:
        return norms
    tot = 0.0
    for n in norms:
        if n is not None:
            tot += n
    return [None if n is None else tot for n in norms]


def adam_cm_step(params, grads, states, o, dt):
    lr, b1, b2, eps, wd = (o["lr"], o["beta1"], o["beta2"], o["eps"],
                           o["weight_decay"])
    topc, cm = o["topc"], o["kappa"] != 0
    assert o["critical_test"] == 0, "only critical_test=0 is generated"
    assert isinstance(topc, int) and topc >= 1
    prio = cm_priorities(grads, o)
    for p, g, st, n in zip(params, grads, states, prio):
        if g is None:
            continue
        n = float(torch.tensor(n, dtype=p.dtype))  # rounded to the dtype
        if wd != 0:
            p.mul_(1 - lr * wd)
        m = st.get("exp_avg")
        if not st:
            st.update(step=0, exp_avg=torch.zeros_like(p),
                      exp_avg_sq=torch.zeros_like(p))
            if o["amsgrad"]:
                st["max_exp_avg_sq"] = torch.zeros_like(p)
            m = st["exp_avg"]
            if cm:
                st["buffer"] = torch.zeros((topc,) + tuple(p.shape),
                                           dtype=p.dtype)
                st["keys"] = torch.zeros(topc, dtype=p.dtype)
                st["buffer"][0] = g
                st["keys"][0] = n
                st["buffer_size"] = 1
                st["last_slot"] = 0
                st["buffer_sum"] = torch.zeros_like(p).add_(g)
                a = m
            else:
                m.mul_(b1).add_(g, alpha=1 - b1)
                a = m
        else:
            m.mul_(b1).add_(g, alpha=1 - b1)
            a = m
            if cm:
                buf, keys, size = st["buffer"], st["keys"], st["buffer_size"]
                a = torch.add(m, st["buffer_sum"].div(size))
                if size < topc:
                    buf[size] = m
                    keys[size] = n
                    st["buffer_size"] = size + 1
                    st["buffer_sum"].add_(m)
                else:
                    kv = keys.tolist()
                    kmin = min(kv)
                    j = kv.index(kmin)
                    others = [k for i, k in enumerate(kv) if i != j]
                    if others:
                        note_margin("adam_cm argmin: (second - min) / "
                                    "second", dt,
                                    (min(others) - kmin) / min(others))
                    note_margin("adam_cm n vs min key: |n - min| / max", dt,
                                abs(n - kmin) / max(n, kmin))
                    st["last_slot"] = j
                    if n > kmin:
                        st["buffer_sum"].add_(-buf[j])
                        buf[j] = m
                        keys[j] = n
                        st["buffer_sum"].add_(buf[j])
        st["step"] += 1
        t = st["step"]
        bc1 = 1 - b1 ** t
        bc2 = 1 - b2 ** t
        v = st["exp_avg_sq"]
        if cm:  # squares of the aggregated momentum
            v.mul_(b2).addcmul_(a, a, value=1 - b2)
        else:  # kappa = 0: plain Adam
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
        if o["amsgrad"]:
            vmax = st["max_exp_avg_sq"]
            torch.maximum(vmax, v, out=vmax)
            denom = (vmax.sqrt() / math.sqrt(bc2)).add_(eps)
        else:
            denom = (v.sqrt() / math.sqrt(bc2)).add_(eps)
        if cm:
            st["keys"] = torch.mul(st["keys"], o["decay"])
        p.addcdiv_(a, denom, value=-(lr / bc1))


# -------------------------------------------------------------------- IGT

def transport(n, delta):
    gam = n / (n + delta)
    fg = (n + 1) / (n + 1 + delta)
    return gam, fg / (1.0 - fg)


def igt_step(params, grads, states, o, dt):
    lr, mu, damp, wd = (o["lr"], o["momentum"], o["dampening"],
                        o["weight_decay"])
    assert not o["nesterov"] or (mu > 0 and damp == 0)
    for p, g, st in zip(params, grads, states):
        if g is None:  # per-parameter n (IGT_MISSING_CASES)
            continue
        if wd != 0:
            g = g.add(p, alpha=wd)
        if not st:
            st.update(step=0, true_param=p.clone(),
                      igt_avg=torch.zeros_like(p).add_(g))
            if mu != 0:
                st["momentum_buffer"] = torch.zeros_like(p).add_(
                    st["igt_avg"])
        else:
            gam, _ = transport(st["step"], o["delta"])
            st["igt_avg"].mul_(gam).add_(g, alpha=1.0 - gam)
            if mu != 0:
                st["momentum_buffer"].mul_(mu).add_(st["igt_avg"],
                                                    alpha=1.0 - damp)
        _, tau = transport(st["step"], o["delta"])
        th, v = st["true_param"], st["igt_avg"]
        if mu == 0:
            th.add_(v, alpha=-lr)
            p.copy_(th).add_(v, alpha=-lr * tau)
        elif o["nesterov"]:
            u = st["momentum_buffer"]
            th.add_(v, alpha=-lr).add_(u, alpha=-lr * mu)
            p.copy_(th).add_(v, alpha=-lr * tau).add_(u, alpha=-lr * mu * tau)
        else:
            u = st["momentum_buffer"]
            th.add_(u, alpha=-lr)
            p.copy_(th).add_(u, alpha=-lr * tau)
        st["step"] += 1


def adam_igt_step(params, grads, states, o, dt):
    lr, b1, b2, eps, wd = (o["lr"], o["beta1"], o["beta2"], o["eps"],
                           o["weight_decay"])
    for p, g, st in zip(params, grads, states):
        if g is None:  # per-parameter n (IGT_MISSING_CASES)
            continue
        if not st:
            st.update(step=0, igt_avg=torch.zeros_like(g).add_(g),
                      true_param=torch.zeros_like(p).add_(p),
                      exp_avg=torch.zeros_like(p),
                      exp_avg_sq=torch.zeros_like(p))
        else:
            gam, _ = transport(st["step"], o["delta"])
            st["igt_avg"].mul_(gam).add_(g, alpha=1.0 - gam)
            p.copy_(st["true_param"])
        n = st["step"]
        _, tau = transport(n, o["delta"])
        h = st["igt_avg"]
        if wd != 0:
            h = h.add(p, alpha=wd)
        m, s = st["exp_avg"], st["exp_avg_sq"]
        m.mul_(b1).add_(h, alpha=1 - b1)
        s.mul_(b2).addcmul_(h, h, value=1 - b2)
        denom = s.sqrt().add_(eps)
        c = lr * math.sqrt(1 - b2 ** (n + 1)) / (1 - b1 ** (n + 1))
        upd = -c * (m / denom)
        st["true_param"].copy_(p).add_(upd)
        p.add_(upd, alpha=1.0 + tau)
        st["step"] = n + 1


RULES = {
    "adabelief": adabelief_step,
    "lion": lion_step,
    "lion_k": lion_step,
    "tam": tam_step,
    "adatam": lambda *a: tam_step(*a, ada=True),
    "adam_cm": adam_cm_step,
    "igt": igt_step,
    "adam_igt": adam_igt_step,
}


def state_entries(alg, st, o):
    """([(buffer name, tensor)], [(scalar name, int)]) as written."""
    if alg in ("lion", "lion_k"):
        return [("exp_avg", st["exp_avg"])], []
    if alg == "adabelief":
        keys = ["exp_avg", "exp_avg_var"] + (["max_exp_avg_var"]
                                             if o["amsgrad"] else [])
        return [(k, st[k]) for k in keys], [("step", st["step"])]
    if alg == "tam":
        return ([(k, st[k]) for k in ("momentum_buffer", "s")],
                [("step", st["step"])])
    if alg == "adatam":
        return ([(k, st[k]) for k in ("exp_avg", "exp_avg_sq", "s")],
                [("step", st["step"])])
    if alg == "adam_cm":
        bufs = [(k, st[k]) for k in ("exp_avg", "exp_avg_sq")]
        if o["amsgrad"]:
            bufs.append(("max_exp_avg_sq", st["max_exp_avg_sq"]))
        scal = [("step", st["step"])]
        if o["kappa"] != 0:
            bufs += [("buffer", st["buffer"]),
                     ("buffer_sum", st["buffer_sum"]),
                     ("keys", st["keys"])]
            scal += [("buffer_size", st["buffer_size"]),
                     ("last_slot", st["last_slot"])]
        return bufs, scal
    if alg == "igt":
        keys = ["true_param", "igt_avg"] + (["momentum_buffer"]
                                            if o["momentum"] != 0 else [])
        return [(k, st[k]) for k in keys], [("step", st["step"])]
    assert alg == "adam_igt"
    return ([(k, st[k]) for k in ("true_param", "igt_avg", "exp_avg",
                                  "exp_avg_sq")], [("step", st["step"])])


# --------------------------------------------------------------- the cases

SHAPES = {"vec": [("w", (11,))], "tall": [("w", (8, 3))],
          "wide": [("w", (3, 7))], "4d": [("w", (3, 2, 2, 2))],
          "two": [("a", (5, 4)), ("b", (6,))]}


def case(alg, dt, shape, suffix, opts, missing=None):
    o = dict(DEFAULTS[alg])
    assert set(opts) <= set(o), opts
    o.update(opts)
    assert o["lr"] is not None
    return dict(name="%s_%s_%s%s" % (alg, dt, shape, suffix), alg=alg, dt=dt,
                opts=o, shapes=SHAPES[shape], missing=missing or {})


def build_cases():
    cases = []
    for dt in DTYPES:
        # AdaBelief: rectify on (SGD branch at t <= 5) / off, amsgrad,
        # coupled and fixed decay, no SGD fallback, eps=1e-8.
        A, lr = "adabelief", dict(lr=1e-2)
        cases += [
            case(A, dt, "vec", "_defaults", {}),
            case(A, dt, "tall", "", lr),
            case(A, dt, "wide", "_wd", dict(lr, weight_decay=0.1)),
            case(A, dt, "4d", "_norect", dict(lr, rectify=False)),
            case(A, dt, "vec", "_ams", dict(lr, amsgrad=True)),
            case(A, dt, "tall", "_norect_ams_wd",
                 dict(lr, rectify=False, amsgrad=True, weight_decay=0.01)),
            case(A, dt, "wide", "_coupled",
                 dict(lr, weight_decouple=False, weight_decay=0.01)),
            case(A, dt, "4d", "_fixed_decay",
                 dict(lr, fixed_decay=True, weight_decay=1e-3)),
            case(A, dt, "vec", "_nosgd", dict(lr, degenerated_to_sgd=False)),
            case(A, dt, "tall", "_eps8_norect_coupled",
                 dict(lr, eps=1e-8, rectify=False, weight_decouple=False,
                      weight_decay=5e-4)),
            case(A, dt, "two", "_missing", dict(lr, weight_decay=0.01),
                 missing={"a": [12], "b": [3, 7, 8]}),
        ]
        L, lr = "lion", dict(lr=1e-2)
        cases += [
            case(L, dt, "vec", "_defaults", {}),
            case(L, dt, "tall", "", lr),
            case(L, dt, "wide", "_wd", dict(lr, weight_decay=0.1)),
            case(L, dt, "4d", "_betas", dict(lr, beta1=0.95, beta2=0.98)),
            case(L, dt, "two", "_wd_missing", dict(lr, weight_decay=0.5),
                 missing={"b": [2, 9, 10]}),
        ]
        K = "lion_k"
        cases += [
            case(K, dt, "vec", "_l1_wd", dict(lr, weight_decay=0.1)),
            case(K, dt, "tall", "_l2", dict(lr, norm="l2")),
            case(K, dt, "wide", "_l2_wd", dict(lr, norm="l2",
                                               weight_decay=0.1)),
            case(K, dt, "4d", "_l2", dict(lr, norm="l2")),
            case(K, dt, "vec", "_linf", dict(lr, norm="linf")),
            case(K, dt, "tall", "_linf_wd", dict(lr, norm="linf",
                                                 weight_decay=0.1)),
            case(K, dt, "4d", "_linf", dict(lr, norm="linf")),
            case(K, dt, "wide", "_linf_defaults", dict(norm="linf")),
            case(K, dt, "two", "_l2_wd_missing",
                 dict(lr, norm="l2", weight_decay=0.1),
                 missing={"a": [5], "b": [1, 6]}),
        ]
        T, el = "tam", dict(lr=1e-2, correlation="elementwise")
        cos = dict(lr=1e-2)
        cases += [
            case(T, dt, "vec", "_cosine", cos),
            case(T, dt, "tall", "_cosine_wd", dict(cos, weight_decay=0.1)),
            case(T, dt, "4d", "_cosine_mom", dict(cos, momentum=0.8,
                                                  decay_rate=0.5)),
            case(T, dt, "wide", "_cosine_defaults", {}),
            case(T, dt, "wide", "_elem", el),
            case(T, dt, "tall", "_elem", el),
            case(T, dt, "4d", "_elem_wd", dict(el, weight_decay=0.1)),
            case(T, dt, "two", "_elem_missing", el,
                 missing={"a": [9], "b": [1, 5]}),
            case(T, dt, "two", "_cosine_missing", cos,
                 missing={"a": [9], "b": [1, 5]}),
        ]
        T = "adatam"
        cases += [
            case(T, dt, "vec", "_cosine", cos),
            case(T, dt, "wide", "_cosine_wd", dict(cos, weight_decay=0.1)),
            case(T, dt, "4d", "_cosine_betas",
                 dict(cos, beta1=0.8, beta2=0.99, decay_rate=0.5)),
            case(T, dt, "vec", "_cosine_defaults", {}),
            case(T, dt, "tall", "_elem", el),
            case(T, dt, "wide", "_elem", el),
            case(T, dt, "4d", "_elem_wd", dict(el, weight_decay=0.1)),
            case(T, dt, "two", "_elem_missing", el,
                 missing={"a": [9], "b": [1, 5]}),
        ]
        C, lr = "adam_cm", dict(lr=1e-2)
        cases += [
            case(C, dt, "vec", "_defaults", {}),
            case(C, dt, "tall", "_topc2", dict(lr, topc=2)),
            case(C, dt, "wide", "_wd", dict(lr, weight_decay=0.1)),
            case(C, dt, "4d", "_decay099", dict(lr, decay=0.99)),
            case(C, dt, "tall", "_ams_decay099", dict(lr, amsgrad=True,
                                                      decay=0.99)),
            case(C, dt, "vec", "_kappa0", dict(lr, kappa=0.0)),
            case(C, dt, "wide", "_kappa0_wd_ams",
                 dict(lr, kappa=0.0, weight_decay=0.1, amsgrad=True)),
            case(C, dt, "two", "_synced_topc2", dict(lr, topc=2)),
            case(C, dt, "two", "_unsynced_topc2", dict(lr, topc=2,
                                                       synced=False)),
            case(C, dt, "two", "_synced_missing",
                 dict(lr, decay=0.99, weight_decay=0.01),
                 missing={"a": [4, 20], "b": [1, 7, 8, 15]}),
            case(C, dt, "two", "_unsynced_topc2_missing",
                 dict(lr, topc=2, synced=False),
                 missing={"a": [4, 20], "b": [1, 7, 8, 15]}),
        ]
        G, lr = "igt", dict(lr=0.05)
        mom = dict(lr, momentum=0.9)
        cases += [
            case(G, dt, "vec", "_plain", lr),
            case(G, dt, "tall", "_hb", mom),
            case(G, dt, "wide", "_nesterov", dict(mom, nesterov=True)),
            case(G, dt, "4d", "_damp", dict(mom, dampening=0.1)),
            case(G, dt, "vec", "_delta2", dict(lr, delta=2.0)),
            case(G, dt, "tall", "_wd", dict(lr, weight_decay=0.01)),
            case(G, dt, "4d", "_nesterov_wd_delta2",
                 dict(mom, nesterov=True, weight_decay=0.01, delta=2.0)),
            case(G, dt, "two", "_hb_wd", dict(mom, weight_decay=0.01)),
        ]
        if IGT_MISSING_CASES:
            cases += [
                case(G, dt, "two", "_missing", lr,
                     missing={"a": [9], "b": [1, 5, 6]}),
                case(G, dt, "two", "_hb_missing", mom,
                     missing={"a": [9], "b": [1, 5, 6]})]
        G, lr = "adam_igt", dict(lr=1e-2)
        cases += [
            case(G, dt, "vec", "_defaults", {}),
            case(G, dt, "tall", "", lr),
            case(G, dt, "wide", "_wd", dict(lr, weight_decay=0.1)),
            case(G, dt, "4d", "_delta2", dict(lr, delta=2.0)),
            case(G, dt, "two", "_wd_betas",
                 dict(lr, weight_decay=0.01, beta1=0.8, beta2=0.99)),
        ]
        if IGT_MISSING_CASES:
            cases += [
                case(G, dt, "two", "_missing", lr,
                     missing={"a": [9], "b": [1, 5, 6]}),
                case(G, dt, "two", "_wd_missing", dict(lr, weight_decay=0.01),
                     missing={"a": [9], "b": [3, 4]})]
    return cases


# ----------------------------------------------------------------- running

def run_case(c, out, rule=None):
    """Runs one case with RULES (or rule); appends its lines to out (a list)
    if out is not None.  Returns {(step | "init" | state key, name): value}
    and keeps the final states in c["_states"]."""
    alg, dt, o = c["alg"], c["dt"], c["opts"]
    rule = rule or RULES[alg]
    names = [n for n, _ in c["shapes"]]
    seed = goldenlib.case_seed(c["name"])
    inits = goldenlib.initial_values(c["shapes"], DTYPES[dt], seed)
    params = [t.clone() for t in inits]
    states = [{} for _ in params]
    missing = c["missing"]
    if out is not None:
        goldenlib.write_case_header(
            out, c["name"], alg, dt, seed,
            goldenlib.options_spec(o, DEFAULTS[alg], DEFAULTS[alg]), STEPS,
            c["shapes"], inits, missing)
    rec = {("init", n): t for n, t in zip(names, inits)}
    for k in range(1, STEPS + 1):
        grads = goldenlib.step_gradients(params, names, missing, k, seed)
        rule(params, grads, states, o, dt)
        for n, p in zip(names, params):
            assert torch.isfinite(p).all(), "%s step %d %s" % (c["name"], k, n)
            assert p.dtype == DTYPES[dt]
            rec[(k, n)] = p.clone()
            if k in CHECK_STEPS and out is not None:
                goldenlib.write_check(out, k, n, p)
    for n, st in zip(names, states):
        bufs, scal = state_entries(alg, st, o)
        for key, buf in bufs:
            assert buf.dtype == DTYPES[dt] and torch.isfinite(buf).all()
            rec[(key, n)] = buf.clone()
            if out is not None:
                goldenlib.write_state(out, n, key, buf)
        for key, v in scal:
            rec[(key, n)] = v
            if out is not None:
                goldenlib.write_scalar(out, n, key, v)
        if "step" in st:
            assert st["step"] == STEPS - len(missing.get(n, ()))
    if out is not None:
        goldenlib.write_end(out)
    c["_states"] = states
    return rec


def tensor_rel(a, b):
    """max |a - b| / max |b| (tensor-wise)."""
    a = torch.as_tensor(a).double().reshape(-1)
    b = torch.as_tensor(b).double().reshape(-1)
    den = b.abs().max().item()
    num = (a - b).abs().max().item()
    return num / den if den else num


def compare(gold, rec, keys=None, steps_only=False):
    """Worst tensor-wise relative difference over the check steps and the
    state buffers (integer scalars must be equal); keys: the state keys to
    compare (None: all)."""
    worst = 0.0
    for key, b in gold.items():
        what = key[0]
        if what == "init" or (isinstance(what, int) and
                              what not in CHECK_STEPS):
            continue
        if not isinstance(what, int):
            if steps_only or (keys is not None and what not in keys):
                continue
        if isinstance(b, int):
            assert rec[key] == b, (key, rec[key], b)
            continue
        worst = max(worst, tensor_rel(rec[key], b))
    return worst


# ------------------------------------------------------------ self-checks

def torch_adam_check(cases, goldens):
    """(a) adam_cm kappa=0 is torch.optim.Adam (wd = 0) or AdamW (wd > 0),
    foreach=False, bit for bit, state included."""
    n = 0
    for c in cases:
        o = c["opts"]
        if c["alg"] != "adam_cm" or o["kappa"] != 0:
            continue
        names = [nm for nm, _ in c["shapes"]]
        seed = goldenlib.case_seed(c["name"])
        ps = [t.clone() for t in goldenlib.initial_values(
            c["shapes"], DTYPES[c["dt"]], seed)]
        kw = dict(lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"],
                  weight_decay=o["weight_decay"], amsgrad=o["amsgrad"],
                  foreach=False)
        cls = torch.optim.AdamW if o["weight_decay"] else torch.optim.Adam
        opt = cls(ps, **kw)
        gold = goldens[c["name"]]
        for k in range(1, STEPS + 1):
            for p, g in zip(ps, goldenlib.step_gradients(
                    ps, names, c["missing"], k, seed)):
                p.grad = g
            opt.step()
            for nm, p in zip(names, ps):
                assert torch.equal(p, gold[(k, nm)]), (c["name"], k)
        for nm, p in zip(names, ps):
            st = opt.state[p]
            for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
                if key in st:
                    assert torch.equal(st[key], gold[(key, nm)])
            assert int(st["step"].item()) == gold[("step", nm)]
        n += 1
    return n


def cm_checks(cases, goldens):
    """(c) adam_cm: step 1 is the weight decay only; synced matters on the
    two-parameter cases (rerun with the other setting)."""
    n1 = n2 = 0
    for c in cases:
        o = c["opts"]
        if c["alg"] != "adam_cm" or o["kappa"] == 0:
            continue
        gold = goldens[c["name"]]
        for nm, _ in c["shapes"]:
            if 1 in c["missing"].get(nm, ()):
                continue
            want = gold[("init", nm)].clone()
            if o["weight_decay"]:
                want.mul_(1 - o["lr"] * o["weight_decay"])
            assert torch.equal(gold[(1, nm)], want), c["name"]
            n1 += 1
        if len(c["shapes"]) > 1:
            other = dict(c, opts=dict(o, synced=not o["synced"]))
            saved = dict(MARGINS)
            rec = run_case(other, None)
            MARGINS.clear()
            MARGINS.update(saved)
            d = compare(gold, rec, steps_only=True)
            assert d > 1e-3, (c["name"], d)
            n2 += 1
    return n1, n2


def adabelief_switch_check():
    """(d) beta2 = 0.999: rho_t < 5 for t <= 5, >= 5 from t = 6."""
    rhos = [rho_terms(t, 0.999)[2] for t in range(1, 8)]
    assert all(r < 5 for r in rhos[:5]) and all(r >= 5 for r in rhos[5:])
    return rhos[4], rhos[5]


def igt_checks(cases, goldens):
    """(e) shifted = theta_n + tau_n (theta_n - theta_(n-1)) to rounding;
    plain igt with delta=1 and no weight decay: v = mean of the gradients.
    Returns the worst relative errors per dtype."""
    worst = {}
    for c in cases:
        if c["alg"] not in ("igt", "adam_igt") or c["missing"]:
            continue
        o, dt = c["opts"], c["dt"]
        names = [nm for nm, _ in c["shapes"]]
        seed = goldenlib.case_seed(c["name"])
        ps = [t.clone() for t in goldenlib.initial_values(
            c["shapes"], DTYPES[dt], seed)]
        sts = [{} for _ in ps]
        prev = [p.clone() for p in ps]
        gsum = [torch.zeros_like(p, dtype=torch.float64) for p in ps]
        w = worst.get(dt, 0.0)
        for k in range(1, STEPS + 1):
            grads = goldenlib.step_gradients(ps, names, {}, k, seed)
            for s, g in zip(gsum, grads):
                s.add_(g.double())
            RULES[c["alg"]](ps, grads, sts, o, dt)
            _, tau = transport(k - 1, o["delta"])
            for p, st, pv, s in zip(ps, sts, prev, gsum):
                th = st["true_param"].double()
                want = th + tau * (th - pv.double())
                disp = tau * (th - pv.double()).abs().max().item()
                w = max(w, (p.double() - want).abs().max().item() / disp)
                if (c["alg"] == "igt" and o["delta"] == 1 and
                        o["weight_decay"] == 0):
                    w = max(w, tensor_rel(st["igt_avg"], s / k))
                pv.copy_(st["true_param"])
        worst[dt] = w
    assert worst["f32"] < 1e-3 and worst["f64"] < 1e-11, worst
    return worst


def numpy_reference(c):
    """(b) float64 numpy, plain loops, from the rules in the docstring (not
    sharing code with the torch implementation above)."""
    alg, o = c["alg"], c["opts"]
    names = [nm for nm, _ in c["shapes"]]
    seed = goldenlib.case_seed(c["name"])
    ps = [t.numpy().astype(np.float64) for t in goldenlib.initial_values(
        c["shapes"], torch.float64, seed)]
    sts = [{} for _ in ps]
    out = {}
    lr, wd = o["lr"], o["weight_decay"]

    def nrm(x):
        return math.sqrt(float(np.sum(x.astype(np.float64) ** 2)))

    for k in range(1, STEPS + 1):
        gs = []
        for j, (nm, p) in enumerate(zip(names, ps)):
            if k in c["missing"].get(nm, ()):
                gs.append(None)
                continue
            s = np.array(goldenlib.noise(p.size, k, j, seed)).reshape(p.shape)
            gs.append(0.25 * p + s)
        if alg == "adam_cm":
            nr = [None if g is None else nrm(g) for g in gs]
            if o["synced"]:
                tot = sum(x for x in nr if x is not None)
                nr = [None if x is None else tot for x in nr]
        for j, (p, g, st) in enumerate(zip(ps, gs, sts)):
            if g is None:
                continue
            if alg == "adabelief":
                b1, b2, eps = o["beta1"], o["beta2"], o["eps"]
                if not st:
                    st.update(t=0, m=0 * p, s=0 * p, smax=0 * p)
                if o["weight_decouple"]:
                    p *= (1 - wd) if o["fixed_decay"] else (1 - lr * wd)
                else:
                    g = g + wd * p
                st["t"] += 1
                t = st["t"]
                st["m"] = b1 * st["m"] + (1 - b1) * g
                st["s"] = b2 * st["s"] + (1 - b2) * (g - st["m"]) ** 2 + eps
                st["smax"] = np.maximum(st["smax"], st["s"])
                sd = st["smax"] if o["amsgrad"] else st["s"]
                bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
                if not o["rectify"]:
                    p -= lr / bc1 * st["m"] / (np.sqrt(sd) / np.sqrt(bc2)
                                               + eps)
                else:
                    ri = 2 / (1 - b2) - 1
                    rt = ri - 2 * t * b2 ** t / bc2
                    if rt >= 5:
                        r = np.sqrt(bc2 * (rt - 4) * (rt - 2) * ri
                                    / ((ri - 4) * (ri - 2) * rt)) / bc1
                        p -= lr * r * st["m"] / (np.sqrt(st["s"]) + eps)
                    elif o["degenerated_to_sgd"]:
                        p -= lr / bc1 * st["m"]
            elif alg in ("lion", "lion_k"):
                b1, b2 = o["beta1"], o["beta2"]
                st.setdefault("m", 0 * p)
                cc = (b1 * st["m"] + (1 - b1) * g).reshape(-1)
                norm = o.get("norm", "l1")
                if norm == "l1":
                    D = np.sign(cc)
                elif not np.any(cc):
                    D = 0 * cc
                elif norm == "l2":
                    D = cc / np.sqrt(np.sum(cc * cc))
                else:
                    top = np.abs(cc) == np.max(np.abs(cc))
                    D = np.where(top, np.sign(cc) / np.sum(top), 0.0)
                p[...] = p * (1 - lr * wd) - lr * D.reshape(p.shape)
                st["m"] = b2 * st["m"] + (1 - b2) * g
            elif alg in ("tam", "adatam"):
                ada, eps = alg == "adatam", o["eps"]
                elem = o["correlation"] == "elementwise"
                if not st:
                    st.update(t=0, s=0 * p if elem else 0.0,
                              m=g.copy() if elem and not ada else 0 * p,
                              v=0 * p)
                st["t"] += 1
                p *= 1 - lr * wd
                m = st["m"]
                if elem:
                    def n0(x):
                        x2 = x.reshape(x.shape[0], -1)
                        return (x2 / np.maximum(np.sqrt(np.sum(x2 * x2, 0)),
                                                1e-12)).reshape(x.shape)
                    corr = n0(m) * n0(g)
                else:
                    corr = np.sum(m * g) / (max(nrm(m), 1e-12)
                                            * max(nrm(g), 1e-12))
                gm = o["decay_rate"]
                st["s"] = gm * st["s"] + (1 - gm) * corr
                d = ((1 + st["s"]) / 2 + eps) * g
                if ada:
                    st["m"] = o["beta1"] * m + d
                    st["v"] = o["beta2"] * st["v"] + (1 - o["beta2"]) * g * g
                    p -= lr * st["m"] / (np.sqrt(st["v"]) + eps)
                else:
                    st["m"] = o["momentum"] * m + d
                    p -= lr * st["m"]
            elif alg == "adam_cm":
                b1, b2, eps, C = o["beta1"], o["beta2"], o["eps"], o["topc"]
                cm = o["kappa"] != 0
                p *= 1 - lr * wd
                if not st:
                    st.update(t=0, m=0 * p, v=0 * p, vmax=0 * p, slots=[],
                              keys=[], last=0)
                    if cm:
                        st["slots"].append(g.copy())
                        st["keys"].append(nr[j])
                        a = st["m"]
                    else:
                        st["m"] = (1 - b1) * g
                        a = st["m"]
                else:
                    st["m"] = b1 * st["m"] + (1 - b1) * g
                    a = st["m"]
                    if cm:
                        a = st["m"] + sum(st["slots"]) / len(st["slots"])
                        if len(st["slots"]) < C:
                            st["slots"].append(st["m"].copy())
                            st["keys"].append(nr[j])
                        else:
                            i = int(np.argmin(st["keys"]))
                            st["last"] = i
                            if nr[j] > st["keys"][i]:
                                st["slots"][i] = st["m"].copy()
                                st["keys"][i] = nr[j]
                st["t"] += 1
                t = st["t"]
                sq = a * a if cm else g * g
                st["v"] = b2 * st["v"] + (1 - b2) * sq
                st["vmax"] = np.maximum(st["vmax"], st["v"])
                vd = st["vmax"] if o["amsgrad"] else st["v"]
                st["keys"] = [x * o["decay"] for x in st["keys"]]
                p -= lr / (1 - b1 ** t) * a / (np.sqrt(vd)
                                               / np.sqrt(1 - b2 ** t) + eps)
            elif alg == "igt":
                mu, dl = o["momentum"], o["delta"]
                g = g + wd * p
                if not st:
                    st.update(n=0, th=p.copy(), v=g.copy(), u=g.copy())
                else:
                    gm = st["n"] / (st["n"] + dl)
                    st["v"] = gm * st["v"] + (1 - gm) * g
                    st["u"] = mu * st["u"] + (1 - o["dampening"]) * st["v"]
                if mu == 0:
                    D = st["v"]
                elif o["nesterov"]:
                    D = st["v"] + mu * st["u"]
                else:
                    D = st["u"]
                st["th"] = st["th"] - lr * D
                p[...] = st["th"] - lr * (st["n"] + 1) / dl * D
                st["n"] += 1
            else:
                assert alg == "adam_igt"
                b1, b2, eps, dl = o["beta1"], o["beta2"], o["eps"], o["delta"]
                if not st:
                    st.update(n=0, th=p.copy(), v=g.copy(), m=0 * p, s=0 * p)
                else:
                    gm = st["n"] / (st["n"] + dl)
                    st["v"] = gm * st["v"] + (1 - gm) * g
                n = st["n"]
                h = st["v"] + wd * st["th"]
                st["m"] = b1 * st["m"] + (1 - b1) * h
                st["s"] = b2 * st["s"] + (1 - b2) * h * h
                D = (-lr * np.sqrt(1 - b2 ** (n + 1)) / (1 - b1 ** (n + 1))
                     * st["m"] / (np.sqrt(st["s"]) + eps))
                st["th"] = st["th"] + D
                p[...] = st["th"] + (n + 1) / dl * D
                st["n"] += 1
        for nm, p in zip(names, ps):
            out[(k, nm)] = p.copy()
    return out


def numpy_check(cases, goldens):
    worst = {}
    for c in cases:
        if c["dt"] != "f64":
            continue
        ref = numpy_reference(c)
        gold = goldens[c["name"]]
        d = max(tensor_rel(torch.from_numpy(v), gold[key])
                for key, v in ref.items())
        worst[c["alg"]] = max(worst.get(c["alg"], 0.0), d)
    assert max(worst.values()) <= 1e-12, worst
    return worst


# ------------------------------------------------------ tolerance study

def elem_rel(a, b):
    """max over elements of |a - b| / |b| (an exact zero must match)."""
    a = torch.as_tensor(a).double().reshape(-1)
    b = torch.as_tensor(b).double().reshape(-1)
    d = (a - b).abs()
    if ((b == 0) & (d != 0)).any():
        return math.inf
    nz = b != 0
    return (d[nz] / b[nz].abs()).max().item() if nz.any() else 0.0


def tolerance_study(cases, goldens):
    """Rerun every case with the reductions in the dtype (MODE) and print
    the worst element-wise and tensor-wise relative differences of the
    parameters (check steps) and of each state buffer."""
    MODE["reduce"] = "dtype"
    worst = {}
    for c in cases:
        gold, rec = goldens[c["name"]], run_case(dict(c), None)
        for key, b in gold.items():
            what = key[0]
            if what == "init" or isinstance(b, int) or (
                    isinstance(what, int) and what not in CHECK_STEPS):
                continue
            kind = "params" if isinstance(what, int) else what
            w = worst.setdefault((c["alg"], c["dt"]), {}).setdefault(
                kind, [0.0, 0.0, ""])
            e, t = elem_rel(rec[key], b), tensor_rel(rec[key], b)
            if e > w[0]:
                w[2] = c["name"]
            w[0], w[1] = max(w[0], e), max(w[1], t)
    MODE["reduce"] = "double"
    print("reductions in the dtype instead of double: worst element-wise "
          "(tensor-wise) relative difference, and the case of the "
          "element-wise worst")
    for (alg, dt), w in sorted(worst.items()):
        for kind, (e, t, name) in w.items():
            print("  %-9s %s %-16s %.2e (%.2e)  %s" % (alg, dt, kind, e, t,
                                                     name))


# --------------------------------------------------- the authors' code

def load_module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def stub_kozistr():
    """Minimal stand-ins for the pytorch_optimizer.base modules tam.py
    imports (the package needs a newer torch): argument validation off,
    decoupled weight decay p *= 1 - wd*lr, maximize unused."""
    base = types.ModuleType("pytorch_optimizer.base")
    exc = types.ModuleType("pytorch_optimizer.base.exception")
    exc.NoSparseGradientError = RuntimeError
    typ = types.ModuleType("pytorch_optimizer.base.type")
    for n in ("Betas", "Closure", "Defaults", "Loss", "Parameters",
              "ParamGroup"):
        setattr(typ, n, object)
    opt = types.ModuleType("pytorch_optimizer.base.optimizer")

    class BaseOptimizer(torch.optim.Optimizer):
        def __getattr__(self, name):
            if name.startswith("validate_"):
                return lambda *a, **k: None
            raise AttributeError(name)

        @staticmethod
        def maximize_gradient(grad, maximize=False):
            assert not maximize

        @staticmethod
        def apply_weight_decay(p, grad, lr, weight_decay, weight_decouple,
                               fixed_decay, ratio=None):
            assert weight_decouple and not fixed_decay and ratio is None
            p.mul_(1.0 - weight_decay * lr)

    opt.BaseOptimizer = BaseOptimizer
    for name, mod in (("pytorch_optimizer", types.ModuleType("p")),
                      ("pytorch_optimizer.base", base),
                      ("pytorch_optimizer.base.exception", exc),
                      ("pytorch_optimizer.base.type", typ),
                      ("pytorch_optimizer.base.optimizer", opt)):
        sys.modules[name] = mod


def author_optimizer(mods, c, ps):
    """(optimizer, state reader) for case c from the authors' code, or None
    when there is no code for the case."""
    alg, o = c["alg"], c["opts"]
    betas = (o.get("beta1"), o.get("beta2"))
    if alg == "adabelief":
        with redirect_stdout(io.StringIO()):
            opt = mods["adabelief"].AdaBelief(
                ps, lr=o["lr"], betas=betas, eps=o["eps"],
                weight_decay=o["weight_decay"], amsgrad=o["amsgrad"],
                weight_decouple=o["weight_decouple"],
                fixed_decay=o["fixed_decay"], rectify=o["rectify"],
                degenerated_to_sgd=o["degenerated_to_sgd"],
                print_change_log=False)
        return opt, lambda st, g: {k: st[k] for k in (
            "exp_avg", "exp_avg_var", "max_exp_avg_var", "step") if k in st}
    if alg == "lion" or (alg == "lion_k" and o["norm"] == "l1"):
        opt = mods["lion"].Lion(ps, lr=o["lr"], betas=betas,
                                weight_decay=o["weight_decay"])
        return opt, lambda st, g: {"exp_avg": st["exp_avg"]}
    if alg in ("tam", "adatam") and o["correlation"] == "elementwise":
        if alg == "tam":
            opt = mods["tam"].TAM(ps, lr=o["lr"], momentum=o["momentum"],
                                  decay_rate=o["decay_rate"],
                                  weight_decay=o["weight_decay"],
                                  eps=o["eps"])
            return opt, lambda st, g: {"s": st["s"], "momentum_buffer":
                                       st["momentum_buffer"]}
        opt = mods["tam"].AdaTAM(ps, lr=o["lr"], betas=betas,
                                 decay_rate=o["decay_rate"],
                                 weight_decay=o["weight_decay"],
                                 eps=o["eps"])
        return opt, lambda st, g: {k: st[k] for k in ("s", "exp_avg",
                                                      "exp_avg_sq")}
    if alg == "adam_cm" and o["kappa"] != 0:
        opt = mods["cm"].Adam_CM(
            ps, lr=o["lr"], betas=betas, eps=o["eps"], decay=o["decay"],
            kappa=o["kappa"], topC=o["topc"], weight_decay=o["weight_decay"],
            amsgrad=o["amsgrad"], critical_test=o["critical_test"],
            synced=o["synced"])

        def read(st, g):
            cg = st["critical gradients"]
            r = {k: st[k] for k in ("exp_avg", "exp_avg_sq",
                                    "max_exp_avg_sq", "step") if k in st}
            r.update(buffer=cg._heap, buffer_sum=cg.aggr_sum,
                     keys=cg._heap_key, buffer_size=cg.curr_k,
                     last_slot=int(cg.smallest))
            return r
        return opt, read
    if alg == "igt":
        opt = mods["igt"].MomentumIGT(
            ps, lr=o["lr"], momentum=o["momentum"],
            dampening=o["dampening"], weight_decay=o["weight_decay"],
            nesterov=o["nesterov"], delta=o["delta"])

        def read(st, g):
            r = dict(true_param=st["true_params"], igt_avg=st["igt_velocity"],
                     step=g["num_steps"])
            if "momentum_velocity" in st:
                r["momentum_buffer"] = st["momentum_velocity"]
            return r
        return opt, read
    if alg == "adam_igt":
        opt = mods["adam_igt"].AdamIGT(
            ps, lr=o["lr"], betas=betas, eps=o["eps"],
            weight_decay=o["weight_decay"], delta=o["delta"])
        return opt, lambda st, g: dict(
            true_param=st["true_p"], igt_avg=st["igt_estimate"],
            exp_avg=st["exp_avg"], exp_avg_sq=st["exp_avg_sq"],
            step=g["num_steps"])
    return None


def xcheck(cases, goldens, refdir):
    """Run the cases through the authors' code in refdir; print the worst
    tensor-wise relative differences to our trajectories."""
    warnings.simplefilter("ignore")
    sys.path.insert(0, refdir)
    sys.modules.setdefault("tabulate", types.SimpleNamespace(
        tabulate=lambda *a, **k: ""))
    stub_kozistr()
    mods = dict(
        adabelief=load_module("AdaBelief", os.path.join(refdir,
                                                        "AdaBelief.py")),
        lion=load_module("lion_pytorch", os.path.join(refdir,
                                                      "lion_pytorch.py")),
        tam=load_module("tam", os.path.join(refdir, "tam.py")),
        cm=importlib.import_module("cmoptimizer.optim"),
        igt=importlib.import_module("torch_igt.igt"),
        adam_igt=importlib.import_module("torch_igt.adam_igt"))
    summary = {}
    for c in cases:
        names = [nm for nm, _ in c["shapes"]]
        seed = goldenlib.case_seed(c["name"])
        ps = [t.clone() for t in goldenlib.initial_values(
            c["shapes"], DTYPES[c["dt"]], seed)]
        if c["alg"] in ("igt", "adam_igt") and c["missing"]:
            print("  %-44s skipped: the authors' code counts n per group"
                  % c["name"])
            continue
        got = author_optimizer(mods, c, ps)
        if got is None:
            print("  %-44s no authors' code" % c["name"])
            continue
        opt, read = got
        rec = {}
        for k in range(1, STEPS + 1):
            for p, g in zip(ps, goldenlib.step_gradients(
                    ps, names, c["missing"], k, seed)):
                p.grad = g
            opt.step()
            for nm, p in zip(names, ps):
                rec[(k, nm)] = p.detach().clone()
        for nm, p in zip(names, ps):
            for key, v in read(opt.state[p], opt.param_groups[0]).items():
                if torch.is_tensor(v) and key != "keys":
                    v = v.reshape(-1)
                rec[(key, nm)] = int(v) if key in (
                    "step", "buffer_size", "last_slot") else v
        gold = goldens[c["name"]]
        dp = compare(gold, rec, steps_only=True)
        ds = compare(gold, {k: v for k, v in rec.items()},
                     keys=[k[0] for k in rec if not isinstance(k[0], int)])
        de = max(elem_rel(rec[k], gold[k]) for k in gold
                 if isinstance(k[0], int) and k[0] in CHECK_STEPS)
        nbit = sum(torch.equal(rec[k], gold[k]) for k in gold
                   if isinstance(k[0], int) and k[0] in CHECK_STEPS)
        ntot = sum(1 for k in gold if isinstance(k[0], int)
                   and k[0] in CHECK_STEPS)
        print("  %-44s params %.2e (element-wise %.2e)  state %.2e  (%d/%d "
              "checks bit-identical)" % (c["name"], dp, de, ds, nbit, ntot))
        w = summary.setdefault((c["alg"], c["dt"]), [0.0, 0.0, 0, 0, 0, 0.0])
        w[0], w[1], w[5] = max(w[0], dp), max(w[1], ds), max(w[5], de)
        w[2], w[3], w[4] = w[2] + 1, w[3] + nbit, w[4] + ntot
    print("worst tensor-wise relative difference to the authors' code "
          "(checks / final state):")
    for (alg, dt), w in sorted(summary.items()):
        print("  %-9s %s: %2d cases, params %.2e (element-wise %.2e), state "
              "%.2e, %d/%d checks bit-identical"
              % (alg, dt, w[2], w[0], w[5], w[1], w[3], w[4]))


# ----------------------------------------------------------------- main

def main():
    torch.set_num_threads(1)
    args = sys.argv[1:]
    with torch.no_grad():
        cases = build_cases()
        assert len({c["name"] for c in cases}) == len(cases)
        out = ["# liboptim golden trajectories: adabelief, lion, lion_k, tam, "
               "adatam, adam_cm, igt, adam_igt",
               "# generated by tests/golden/gen_zoo.py with torch %s "
               "(ATEN_CPU_CAPABILITY=%s); our reimplementation of spec "
               "sections 7-10 in the operation order of the authors' code"
               % (torch.__version__, os.environ["ATEN_CPU_CAPABILITY"]),
               "# %d cases; format and gradient formula: tests/golden/README"
               % len(cases)]
        goldens = {c["name"]: run_case(c, out) for c in cases}
        if args[:1] == ["--xcheck"]:
            xcheck(cases, goldens, args[1])
            return
        if args == ["--tolerance-study"]:
            tolerance_study(cases, goldens)
            return
        assert not args, "usage: gen_zoo.py [--xcheck DIR | --tolerance-study]"
        nb = torch_adam_check(cases, goldens)
        nc = numpy_check(cases, goldens)
        n1, n2 = cm_checks(cases, goldens)
        r5, r6 = adabelief_switch_check()
        wi = igt_checks(cases, goldens)
    for (kind, dt), v in MARGINS.items():
        assert v > MARGIN_MIN, (kind, dt, v)
    sys.stdout.write("\n".join(out) + "\n")
    err = sys.stderr
    print("zoo self-checks: (a) %d adam_cm kappa=0 cases == torch.optim "
          "Adam/AdamW bit for bit; (b) numpy float64 reference, worst "
          "tensor-wise relative difference per algorithm: %s; (c) adam_cm "
          "step 1 = decay only (%d parameters), synced changes the "
          "trajectory (%d cases); (d) adabelief rho_5 = %.6f, rho_6 = %.6f; "
          "(e) IGT transport identity / mean of gradients to %.2g (f32) "
          "%.2g (f64)"
          % (nb, ", ".join("%s %.1e" % kv for kv in nc.items()), n1, n2,
             r5, r6, wi["f32"], wi["f64"]), file=err)
    print("(f) smallest relative margins of discrete decisions:", file=err)
    for (kind, dt), v in sorted(MARGINS.items()):
        print("  %s %s: %.3g" % (dt, kind, v), file=err)
    mag = max(b.abs().max().item() for g in goldens.values()
              for key, b in g.items() if torch.is_tensor(b))
    print("zoo: %d cases (%s), %d steps, checks after %s; largest |value| "
          "%.3g" % (len(cases), ", ".join(
              "%d %s" % (sum(c["alg"] == a for c in cases), a)
              for a in ALGS), STEPS, ", ".join(map(str, CHECK_STEPS)), mag),
          file=err)


if __name__ == "__main__":
    main()
