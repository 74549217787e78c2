#!/usr/bin/python3
"""Golden data for optim_batch_size_test (tests/golden/batch.txt).

    /usr/bin/python3 tests/golden/gen_batch.py > tests/golden/batch.txt

An independent numpy implementation of the adaptive sampling tests that
AdAdaGrad (Lau, Liu, Kolar, arXiv 2402.11215) uses to pick its next batch
size, written from their definitions (not from lib/batch_test.c).  For
per-sample gradients g_1 .. g_b (rows of G, b >= 2), gbar their mean and
Var the sample variance with divisor b - 1 (numpy ddof=1), each test asks
for the batch size r:

  norm                     r = sum_j Var_i(g_ij) / (eta^2 ||gbar||^2)
  inner_product            r = Var_i(<g_i, gbar>) / (theta^2 ||gbar||^4)
  augmented_inner_product  r = max(inner_product's r,
                                   sum_j Var_i(o_ij) / (nu^2 ||gbar||^2)),
                           o_i = g_i - (<g_i, gbar> / ||gbar||^2) gbar
  coordinate               r = max_j Var_i(g_ij) / (eta^2 gbar_j^2)

(theta is the library's eta argument for the two inner product tests).  A
zero variance term gives r = 0; a zero mean with a non-zero variance term,
and for the inner product tests gbar = 0 with gradients that are not all
zero, give r = inf.  The recommended next batch is max(b, ceil(r)),
INT64_MAX when r >= 2^63 (so inf too).

Everything runs in float64; float32 cases store float32 values and
compute in float64 from them, as the library does.  The statistics do not
change when all gradients are multiplied by one factor (checked below),
so each case is computed on G * 2^-e, e the exponent of max |G| (exact), to
keep squares of large or tiny values finite and normal.

Self-checks (stderr; asserted):
  (a) closed forms: rows (1, 3), (1, -3): norm r = 18 / eta^2, inner
      product r = 0, orthogonality part 18 / nu^2, coordinate inf (the
      second coordinate has mean 0 and variance 18); rows (1 + 3 s_i) m,
      s = (+1, -1, +1, -1), m = (1, 2, 0): every test r = 48 at
      eta = theta = 0.5;
  (b) a second implementation with explicit Python loops and math.fsum
      (o_i's mean subtracted, as Var does) agrees with the numpy one to
      1e-12 relative on every case;
  (c) multiplying G by 3 or by 2^40 changes no r by more than 1e-12
      relative (scale invariance);
  (d) no finite r > b of a random case lies within 1e-6 relative of an
      integer, so ceil(r) is the same for any correct implementation;
  (e) the cases built from small dyadic numbers (orthogonal_noise,
      closed48, identical, zero, zero_mean; constants powers of two) have
      r equal, bit for bit, to the exact rational value (fractions), so an
      implementation whose operations are all exact on them (the library's
      are) returns the same next batch even where r is an integer.
"""
import math
import sys
from fractions import Fraction

import numpy as np

INT64_MAX = 2**63 - 1
DTYPES = {"f32": np.float32, "f64": np.float64}


# ------------------------------------------------------------ the tests

def _scaled(G):
    """G as float64 times 2^-e, e the exponent of max |G| (exact)."""
    G = np.asarray(G, dtype=np.float64)
    amax = np.max(np.abs(G))
    if amax == 0:
        return G
    _, e = math.frexp(amax)
    return G * math.ldexp(1.0, -e)


def _ratio(num, den):
    if num == 0:
        return 0.0
    if den == 0:
        return math.inf
    return num / den


def statistic(test, G, eta, nu):
    """The batch size r the test asks for (numpy)."""
    G = _scaled(G)
    b = G.shape[0]
    assert b >= 2
    if not np.any(G):
        return 0.0
    gbar = G.mean(axis=0)
    var = G.var(axis=0, ddof=1)
    sig = float(gbar @ gbar)
    if test == "norm":
        return _ratio(float(var.sum()), eta**2 * sig)
    if test == "coordinate":
        return max(_ratio(float(v), eta**2 * float(m)**2) for v, m in zip(var, gbar))
    if sig == 0:
        return math.inf
    ip = G @ gbar
    r = _ratio(float(ip.var(ddof=1)), eta**2 * sig**2)
    if test == "inner_product":
        return r
    assert test == "augmented_inner_product"
    ortho = G - np.outer(ip / sig, gbar)
    return max(r, _ratio(float(ortho.var(axis=0, ddof=1).sum()), nu**2 * sig))


def statistic_loops(test, G, eta, nu):
    """The same with explicit loops and math.fsum (self-check (b))."""
    G = _scaled(G).tolist()
    b, d = len(G), len(G[0])
    if all(x == 0 for row in G for x in row):
        return 0.0
    mean = [math.fsum(G[i][j] for i in range(b)) / b for j in range(d)]

    def svar(xs):
        m = math.fsum(xs) / len(xs)
        return math.fsum((x - m)**2 for x in xs) / (len(xs) - 1)

    col_var = [svar([G[i][j] for i in range(b)]) for j in range(d)]
    sig = math.fsum(m * m for m in mean)
    if test == "norm":
        return _ratio(math.fsum(col_var), eta**2 * sig)
    if test == "coordinate":
        return max(_ratio(v, eta**2 * m * m) for v, m in zip(col_var, mean))
    if sig == 0:
        return math.inf
    ip = [math.fsum(G[i][j] * mean[j] for j in range(d)) for i in range(b)]
    r = _ratio(svar(ip), eta**2 * sig * sig)
    if test == "inner_product":
        return r
    o = [[G[i][j] - ip[i] / sig * mean[j] for j in range(d)] for i in range(b)]
    ov = math.fsum(svar([o[i][j] for i in range(b)]) for j in range(d))
    return max(r, _ratio(ov, nu**2 * sig))


def statistic_exact(test, G, eta, nu):
    """The same in exact rational arithmetic (self-check (e))."""
    G = [[Fraction(float(x)) for x in row] for row in np.asarray(G, dtype=np.float64)]
    eta, nu = Fraction(eta), Fraction(nu)
    b, d = len(G), len(G[0])
    if all(x == 0 for row in G for x in row):
        return Fraction(0)
    mean = [sum(G[i][j] for i in range(b)) / b for j in range(d)]

    def svar(xs):
        m = sum(xs) / len(xs)
        return sum((x - m)**2 for x in xs) / (len(xs) - 1)

    def ratio(num, den):
        return Fraction(0) if num == 0 else (math.inf if den == 0 else num / den)

    col_var = [svar([G[i][j] for i in range(b)]) for j in range(d)]
    sig = sum(m * m for m in mean)
    if test == "norm":
        return ratio(sum(col_var), eta**2 * sig)
    if test == "coordinate":
        return max(ratio(v, eta**2 * m * m) for v, m in zip(col_var, mean))
    if sig == 0:
        return math.inf
    ip = [sum(G[i][j] * mean[j] for j in range(d)) for i in range(b)]
    r = ratio(svar(ip), eta**2 * sig * sig)
    if test == "inner_product":
        return r
    o = [[G[i][j] - ip[i] / sig * mean[j] for j in range(d)] for i in range(b)]
    return max(r, ratio(sum(svar([o[i][j] for i in range(b)]) for j in range(d)), nu**2 * sig))


def next_batch(b, r):
    if r <= b:
        return b
    if r >= 2.0**63:
        return INT64_MAX
    return max(b, math.ceil(r))


def close(a, b, rtol):
    if math.isinf(a) or math.isinf(b) or a == 0 or b == 0:
        return a == b
    return abs(a - b) <= rtol * abs(b)


# ------------------------------------------------------------ self-checks

def self_check_closed_forms():
    G = np.array([[1.0, 3.0], [1.0, -3.0]])
    for eta in (0.5, 0.25, 1.0):
        assert statistic("norm", G, eta, 1) == 18 / eta**2
        assert statistic("inner_product", G, eta, 1) == 0
        assert statistic("coordinate", G, eta, 1) == math.inf
    for nu in (1.0, 0.5, 3.0):
        assert close(statistic("augmented_inner_product", G, 0.5, nu), 18 / nu**2, 1e-15)
    m = np.array([1.0, 2.0, 0.0])
    G = np.array([(1 + 3 * s) * m for s in (1, -1, 1, -1)])
    for test in ("norm", "inner_product", "augmented_inner_product", "coordinate"):
        assert statistic(test, G, 0.5, 1.0) == 48, test
    print("gen_batch: (a) closed forms hold", file=sys.stderr)


# ------------------------------------------------------------ cases

# (test, eta, nu) lines of every case; the constants of the exact cases
# are powers of two, so that their r are exact
TESTS = [("norm", 0.1, 1.0), ("norm", 0.5, 1.0), ("norm", 0.9, 1.0),
         ("inner_product", 0.5, 1.0), ("inner_product", 0.9, 1.0),
         ("augmented_inner_product", 0.5, 1.0), ("augmented_inner_product", 0.9, 5.0),
         ("coordinate", 0.5, 1.0), ("coordinate", 2.0, 1.0)]
TESTS_EXACT = [("norm", 0.5, 1.0), ("norm", 0.25, 1.0),
               ("inner_product", 0.5, 1.0), ("inner_product", 0.25, 1.0),
               ("augmented_inner_product", 0.5, 1.0), ("augmented_inner_product", 0.25, 0.5),
               ("coordinate", 0.5, 1.0), ("coordinate", 2.0, 1.0)]
EXACT = ("orthogonal_noise", "closed48", "identical", "zero", "zero_mean")


def random_rows(seed, b, d, signal, noise):
    """b rows: a fixed mean direction of norm `signal` plus N(0, noise^2)."""
    rng = np.random.default_rng(seed)
    mu = rng.standard_normal(d)
    mu *= signal / np.linalg.norm(mu)
    return mu + noise * rng.standard_normal((b, d))


def cases():
    """[(name, G as float64, description)] before rounding to a dtype."""
    out = [
        ("b8_d10_signal", random_rows(11, 8, 10, 3.0, 0.1),
         "mean dominates: most tests pass"),
        ("b8_d10_noisy", random_rows(12, 8, 10, 1.0, 1.0), "noise comparable to the mean"),
        ("b16_d64", random_rows(13, 16, 64, 2.0, 0.5), "larger"),
        ("b32_d5", random_rows(14, 32, 5, 0.3, 1.0), "noise dominates"),
        ("b2_d3", random_rows(15, 2, 3, 1.0, 0.7), "smallest batch"),
        ("b5_d1", random_rows(16, 5, 1, 1.0, 0.8), "one coordinate"),
        ("orthogonal_noise", np.array([[1.0, 3.0], [1.0, -3.0]]),
         "noise orthogonal to the mean: inner product r = 0, coordinate inf"),
        ("closed48", np.array([(1 + 3 * s) * np.array([1.0, 2.0, 0.0])
                               for s in (1, -1, 1, -1)]), "every test r = 48 at 0.5"),
        ("identical", np.tile(np.array([0.5, -1.25, 2.0, 0.0]), (6, 1)),
         "identical rows: r = 0"),
        ("zero", np.zeros((3, 4)), "all zero: r = 0"),
        ("zero_mean", np.array([[1.0, -2.0, 0.5], [-1.0, 2.0, -0.5],
                                [0.25, 1.0, -3.0], [-0.25, -1.0, 3.0]]),
         "mean exactly zero with noise: r = inf"),
        ("coord_zero_mean", np.array([[1.0, 2.0, 0.5], [1.5, -2.0, 0.25],
                                      [0.75, 1.0, 0.5], [1.25, -1.0, 0.75]]),
         "second coordinate has mean 0 and noise: coordinate inf, others finite"),
    ]
    big = random_rows(17, 6, 7, 1.0, 0.6)
    out.append(("scale_large", big, "values near the top of the dtype"))
    out.append(("scale_small", big, "values near the bottom of the dtype"))
    return out


def to_dtype(name, G, dt):
    """Round G to the dtype (scaling the two scale_* cases into its range)."""
    if name == "scale_large":
        G = G * (1e37 if dt == "f32" else 1e306)
    elif name == "scale_small":
        G = G * (1e-36 if dt == "f32" else 1e-300)
    return np.asarray(G, dtype=DTYPES[dt])


def hexf(x):
    return float(x).hex()


def main():
    self_check_closed_forms()
    out = ["# Golden data for optim_batch_size_test; generated by gen_batch.py",
           "# (format in tests/golden/README).  Do not edit."]
    worst_b = worst_c = 0.0
    n_exact = 0
    for dt in ("f32", "f64"):
        for name, G0, desc in cases():
            G = to_dtype(name, G0, dt)
            assert np.all(np.isfinite(G))
            b, d = G.shape
            out.append(f"# {desc}")
            out.append(f"case {name}_{dt}")
            out.append(f"dtype {dt}")
            out.append(f"shape {b} {d}")
            out.append("grads " + " ".join(hexf(x) for x in G.ravel()))
            exact = name in EXACT
            for test, eta, nu in (TESTS_EXACT if exact else TESTS):
                r = statistic(test, G, eta, nu)
                if exact:  # (e) r is exact: any exact computation gives it
                    rx = statistic_exact(test, G, eta, nu)
                    assert rx == r, (name, dt, test, r, rx)
                    n_exact += 1
                # (b) second implementation
                r2 = statistic_loops(test, G, eta, nu)
                assert close(r, r2, 1e-12), (name, dt, test, r, r2)
                if r not in (0.0, math.inf):
                    worst_b = max(worst_b, abs(r - r2) / r)
                # (c) scale invariance
                G64 = _scaled(G)  # (values in [0.5, 1): G64 * f stays finite)
                for f in (3.0, 2.0**40):
                    r3 = statistic(test, G64 * f, eta, nu)
                    assert close(r3, r, 1e-12), (name, dt, test, f, r, r3)
                    if r not in (0.0, math.inf):
                        worst_c = max(worst_c, abs(r3 - r) / r)
                # (d) ceil is unambiguous
                if b < r < math.inf and not exact:
                    assert abs(r - round(r)) > 1e-6 * r, (name, dt, test, r)
                rs = "inf" if math.isinf(r) else hexf(r)
                out.append(f"expect {test} {hexf(eta)} {hexf(nu)} {rs} {next_batch(b, r)}")
            out.append("end")
    print(f"gen_batch: (b) loops vs numpy worst {worst_b:.2e}, "
          f"(c) scale invariance worst {worst_c:.2e}, (e) {n_exact} exact r", file=sys.stderr)
    print("\n".join(out))


if __name__ == "__main__":
    main()
