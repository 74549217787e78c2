#define _POSIX_C_SOURCE 200809L
/* check_batch.c - optim_batch_size_test: AdAdaGrad's adaptive sampling
 * tests (norm, inner product, augmented inner product, coordinate-wise).
 *
 * The function returns only the next batch, max(batch, ceil(r)).  The
 * statistic r itself is checked by probing: r scales as 1 / eta^2 (as
 * 1 / s^2 when eta and nu are both multiplied by s), so calling again with
 * eta and nu times s = sqrt(r_want / (K - 0.5)) must give exactly K for
 * K = 2^30; that pins the library's r to r_want within 0.5 / K (5e-10)
 * relative.  r_want comes from closed forms, from a reference written here
 * with other formulas (pairwise differences in long double, no mean
 * subtracted: Var = sum_{i<k} (x_i - x_k)^2 / (b (b - 1))), and from
 * tests/golden/batch.txt (numpy, tests/golden/gen_batch.py). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define PROBE_K ((int64_t)1 << 30)

static const char *const TESTS[] = {"norm", "inner_product", "augmented_inner_product",
                                    "coordinate"};

/* Copy n doubles into a buffer of dtype (exact for the values used with
 * float32: they are float32 numbers or rounded on purpose). */
static void *to_dtype(int dtype, const double *v, size_t n)
{
  if (dtype == OPTIM_FLOAT64) {
    double *p = malloc(n * sizeof *p);
    memcpy(p, v, n * sizeof *p);
    return p;
  }
  float *p = malloc(n * sizeof *p);
  for (size_t k = 0; k < n; k++) p[k] = (float)v[k];
  return p;
}

static int64_t next_of(const char *test, int dtype, int64_t b, int64_t d, const void *g,
                       double eta, double nu)
{
  int64_t next = -7;
  int st = optim_batch_size_test(test, dtype, b, d, g, eta, nu, &next);
  ck_assert_msg(st == OPTIM_OK, "%s: status %d", test, st);
  return next;
}

/* What a correct implementation returns for a statistic r. */
static int64_t expected_next(int64_t b, double r)
{
  if (!(r > (double)b)) return b;
  if (r >= 0x1p63) return INT64_MAX;
  return (int64_t)ceil(r);
}

/* Assert the library's r equals r_want within 0.5 / PROBE_K relative
 * (finite r_want > 0). */
static void probe(const char *test, int dtype, int64_t b, int64_t d, const void *g, double eta,
                  double nu, double r_want)
{
  double s = sqrt(r_want / ((double)PROBE_K - 0.5));
  int64_t got = next_of(test, dtype, b, d, g, eta * s, nu * s);
  ck_assert_msg(got == PROBE_K, "%s (%s, %lldx%lld): probe gave %lld, want %lld (r %.17g)",
                test, dtype == OPTIM_FLOAT32 ? "f32" : "f64", (long long)b, (long long)d,
                (long long)got, (long long)PROBE_K, r_want);
}

/* Check next batch and statistic against r_want. */
static void check_r(const char *test, int dtype, int64_t b, int64_t d, const void *g,
                    double eta, double nu, double r_want)
{
  int64_t got = next_of(test, dtype, b, d, g, eta, nu);
  ck_assert_msg(got == expected_next(b, r_want), "%s: next %lld, want %lld (r %.17g)", test,
                (long long)got, (long long)expected_next(b, r_want), r_want);
  if (r_want > 0 && isfinite(r_want)) probe(test, dtype, b, d, g, eta, nu, r_want);
}

/* ---- the reference (pairwise differences, long double) -------------------------- */

static long double lratio(long double num, long double den)
{
  if (num == 0) return 0;
  if (den == 0) return INFINITY;
  return num / den;
}

static double ref_stat(const char *test, int64_t b, int64_t d, const double *G, double eta,
                       double nu)
{
  long double *mean = calloc((size_t)d, sizeof *mean), *c = calloc((size_t)b, sizeof *c);
  long double pairs = (long double)b * (long double)(b - 1), sig = 0, r = 0;
  int zero = 1;
  for (int64_t i = 0; i < b; i++)
    for (int64_t j = 0; j < d; j++) {
      mean[j] += G[i * d + j];
      zero &= G[i * d + j] == 0;
    }
  for (int64_t j = 0; j < d; j++) {
    mean[j] /= (long double)b;
    sig += mean[j] * mean[j];
  }
  if (zero) goto out;
  if (!strcmp(test, "norm") || !strcmp(test, "coordinate")) {
    long double tot = 0;
    for (int64_t j = 0; j < d; j++) {
      long double v = 0;
      for (int64_t i = 0; i < b; i++)
        for (int64_t k = i + 1; k < b; k++) {
          long double t = (long double)G[i * d + j] - G[k * d + j];
          v += t * t;
        }
      v /= pairs;
      tot += v;
      long double rj = lratio(v, (long double)eta * eta * mean[j] * mean[j]);
      if (rj > r) r = rj;
    }
    if (!strcmp(test, "norm")) r = lratio(tot, (long double)eta * eta * sig);
    goto out;
  }
  if (sig == 0) {
    r = INFINITY;
    goto out;
  }
  for (int64_t i = 0; i < b; i++)
    for (int64_t j = 0; j < d; j++) c[i] += G[i * d + j] * mean[j];
  long double v = 0, vo = 0;
  for (int64_t i = 0; i < b; i++)
    for (int64_t k = i + 1; k < b; k++) {
      long double t = c[i] - c[k];
      v += t * t;
      for (int64_t j = 0; j < d; j++) {
        long double o = ((long double)G[i * d + j] - G[k * d + j]) - t / sig * mean[j];
        vo += o * o;
      }
    }
  r = lratio(v / pairs, (long double)eta * eta * sig * sig);
  if (!strcmp(test, "augmented_inner_product")) {
    long double ro = lratio(vo / pairs, (long double)nu * nu * sig);
    if (ro > r) r = ro;
  }
out:
  free(mean);
  free(c);
  return (double)r;
}

/* ---- crafted cases with closed forms ---------------------------------------------- */

/* Identical rows: every variance is zero, r = 0, the batch is kept
 * whatever eta (and whatever the mean). */
START_TEST(test_identical_rows)
{
  double row[5] = {0.5, -1.25, 3.0, 0.0, 1e-3}, G[7 * 5];
  for (int i = 0; i < 7; i++) memcpy(G + i * 5, row, sizeof row);
  for (int dt = OPTIM_FLOAT32; dt <= OPTIM_FLOAT64; dt++) {
    void *g = to_dtype(dt, G, 35);
    for (int t = 0; t < 4; t++) {
      ck_assert_int_eq(next_of(TESTS[t], dt, 7, 5, g, 0.5, 1.0), 7);
      ck_assert_int_eq(next_of(TESTS[t], dt, 7, 5, g, 1e-6, 1e-6), 7);
    }
    free(g);
  }
}
END_TEST

/* Rows m + s_i u (s_i = +1, -1, ...; u orthogonal to m), b even:
 * Var summed = b ||u||^2 / (b - 1), so r_norm = b ||u||^2 / ((b - 1) eta^2
 * ||m||^2); every <g_i, m> equals ||m||^2, so r_ip = 0; o_i = s_i u, so the
 * orthogonality part is b ||u||^2 / ((b - 1) nu^2 ||m||^2); coordinates
 * where m is 0 and u is not give r = inf.  m = (1, 0, 0), u = (0, 3, 0),
 * b = 10: r_norm = 10 / eta^2, r_orth = 10 / nu^2. */
START_TEST(test_orthogonal_noise)
{
  double G[10 * 3];
  for (int i = 0; i < 10; i++) {
    G[i * 3] = 1.0;
    G[i * 3 + 1] = i % 2 ? -3.0 : 3.0;
    G[i * 3 + 2] = 0.0;
  }
  for (int dt = OPTIM_FLOAT32; dt <= OPTIM_FLOAT64; dt++) {
    void *g = to_dtype(dt, G, 30);
    check_r("norm", dt, 10, 3, g, 0.5, 0.0, 40.0);
    check_r("norm", dt, 10, 3, g, 0.25, 0.0, 160.0);
    check_r("norm", dt, 10, 3, g, 2.0, 0.0, 2.5);  /* passes: next stays 10 */
    ck_assert_int_eq(next_of("norm", dt, 10, 3, g, 2.0, 0.0), 10);
    check_r("norm", dt, 10, 3, g, 1.0, 0.0, 10.0); /* r == batch: passes */
    ck_assert_int_eq(next_of("norm", dt, 10, 3, g, 1.0, 0.0), 10);
    ck_assert_int_eq(next_of("inner_product", dt, 10, 3, g, 0.5, 0.0), 10);
    ck_assert_int_eq(next_of("inner_product", dt, 10, 3, g, 1e-6, 0.0), 10);
    check_r("augmented_inner_product", dt, 10, 3, g, 0.5, 1.0, 10.0);
    check_r("augmented_inner_product", dt, 10, 3, g, 0.5, 0.5, 40.0);
    check_r("augmented_inner_product", dt, 10, 3, g, 1e-3, 0.125, 640.0);
    ck_assert_int_eq(next_of("coordinate", dt, 10, 3, g, 0.5, 0.0), INT64_MAX);
    free(g);
  }
}
END_TEST

/* Rows (1 + a s_i) m, s = (+1, -1, +1, -1): Var summed = 4 a^2 ||m||^2 / 3,
 * <g_i, m> = (1 + a s_i) ||m||^2 with variance 4 a^2 ||m||^4 / 3, o_i = 0,
 * and each coordinate with m_j != 0 has variance 4 a^2 m_j^2 / 3: every
 * test asks for r = 4 a^2 / (3 eta^2); a = 3, eta = 0.5: 48.  Coordinates
 * with m_j = 0 are constant (r_j = 0). */
START_TEST(test_scaled_rows_closed_form)
{
  double m[4] = {1.0, 2.0, 0.0, -0.5}, G[4 * 4];
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++) G[i * 4 + j] = (1.0 + 3.0 * (i % 2 ? -1 : 1)) * m[j];
  for (int dt = OPTIM_FLOAT32; dt <= OPTIM_FLOAT64; dt++) {
    void *g = to_dtype(dt, G, 16);
    for (int t = 0; t < 4; t++) {
      check_r(TESTS[t], dt, 4, 4, g, 0.5, 1.0, 48.0);
      check_r(TESTS[t], dt, 4, 4, g, 0.25, 1.0, 192.0);
      check_r(TESTS[t], dt, 4, 4, g, 0.1, 1.0, 1200.0);
    }
    free(g);
  }
}
END_TEST

/* A mean of exactly zero with non-zero gradients: r = inf, INT64_MAX, for
 * every test; all gradients zero: r = 0, the batch is kept. */
START_TEST(test_zero_mean)
{
  double G[4 * 3] = {1, -2, 0.5, -1, 2, -0.5, 0.25, 1, -3, -0.25, -1, 3}, Z[3 * 2] = {0};
  for (int dt = OPTIM_FLOAT32; dt <= OPTIM_FLOAT64; dt++) {
    void *g = to_dtype(dt, G, 12), *z = to_dtype(dt, Z, 6);
    for (int t = 0; t < 4; t++) {
      ck_assert_int_eq(next_of(TESTS[t], dt, 4, 3, g, 0.5, 1.0), INT64_MAX);
      ck_assert_int_eq(next_of(TESTS[t], dt, 4, 3, g, 1e6, 1e6), INT64_MAX);
      ck_assert_int_eq(next_of(TESTS[t], dt, 3, 2, z, 0.5, 1.0), 3);
    }
    free(g);
    free(z);
  }
}
END_TEST

/* The coordinate-wise test takes the worst coordinate, which can be far
 * worse than the norm test's average.  b = 4, column 0 = (1, 3, 1, 3):
 * mean 2, variance 4/3; column 1 = (8, -8, 8, -7): mean 1/4, variance
 * 240.75 / 3 = 80.25.  Coordinate: max(1/(3 eta^2), 80.25 / (eta^2 / 16))
 * = 1284 / eta^2 (5136 at eta = 0.5, exact); norm: (4/3 + 80.25) /
 * (eta^2 (4 + 1/16)).  Column 1 constant instead: only column 0 counts. */
START_TEST(test_coordinate_takes_worst)
{
  double G[4 * 2] = {1, 8, 3, -8, 1, 8, 3, -7}, C[4 * 2] = {1, 8, 3, 8, 1, 8, 3, 8};
  for (int dt = OPTIM_FLOAT32; dt <= OPTIM_FLOAT64; dt++) {
    void *g = to_dtype(dt, G, 8), *c = to_dtype(dt, C, 8);
    check_r("coordinate", dt, 4, 2, g, 0.5, 0.0, 5136.0);
    check_r("coordinate", dt, 4, 2, g, 0.1, 0.0, 128400.0);
    check_r("norm", dt, 4, 2, g, 0.5, 0.0, (4.0 / 3.0 + 80.25) / (0.25 * 4.0625));
    check_r("coordinate", dt, 4, 2, c, 0.125, 0.0, 64.0 / 3.0);
    check_r("norm", dt, 4, 2, c, 0.125, 0.0, (4.0 / 3.0) / (0.015625 * 68.0));
    free(g);
    free(c);
  }
}
END_TEST

/* Random per-sample gradients against the pairwise reference, all tests,
 * f32 and f64, through the next batch and the probe. */
START_TEST(test_random_against_reference)
{
  static const int64_t shapes[][2] = {{2, 1}, {2, 7}, {3, 5}, {8, 10}, {16, 33}, {5, 1}};
  static const double signal[] = {0.2, 1.0, 3.0};
  static const double etas[][2] = {{0.1, 1.0}, {0.5, 1.0}, {0.9, 5.0}, {2.0, 0.3}};
  uint64_t seed = 1;
  for (size_t sh = 0; sh < sizeof shapes / sizeof *shapes; sh++)
    for (size_t sg = 0; sg < 3; sg++) {
      int64_t b = shapes[sh][0], d = shapes[sh][1];
      size_t n = (size_t)(b * d);
      double *G = malloc(n * sizeof *G);
      for (int64_t i = 0; i < b; i++)
        for (int64_t j = 0; j < d; j++)
          G[i * d + j] = (float)(signal[sg] * (0.3 + golden_noise((uint64_t)j, 1, 0, seed)) +
                                 golden_noise((uint64_t)(i * d + j), 2, 1, seed));
      seed++;
      for (int dt = OPTIM_FLOAT32; dt <= OPTIM_FLOAT64; dt++) {
        void *g = to_dtype(dt, G, n);
        for (int t = 0; t < 4; t++)
          for (int e = 0; e < 4; e++) {
            double r = ref_stat(TESTS[t], b, d, G, etas[e][0], etas[e][1]);
            if (isfinite(r) && fabs(r - round(r)) < 1e-8 * r) continue; /* ceil ambiguous */
            check_r(TESTS[t], dt, b, d, g, etas[e][0], etas[e][1], r);
          }
        free(g);
      }
      free(G);
    }
}
END_TEST

/* The statistics do not depend on the scale of the gradients: values near
 * the top and the bottom of each dtype (powers of two: the scaled values
 * are exact, the reference of the unscaled ones holds) give the same
 * answers, with no overflow or underflow of the squares; so does a factor
 * of 3 (reference recomputed on the rounded values). */
START_TEST(test_scale_invariance)
{
  int64_t b = 6, d = 4;
  double G[24], H[24], *ref_on;
  for (int k = 0; k < 24; k++) G[k] = (float)(0.5 + golden_noise((uint64_t)k, 3, 0, 9));
  for (int dt = OPTIM_FLOAT32; dt <= OPTIM_FLOAT64; dt++) {
    double factors[3] = {3.0, dt == OPTIM_FLOAT32 ? 0x1p120 : 0x1p1000,
                         dt == OPTIM_FLOAT32 ? 0x1p-100 : 0x1p-1000};
    void *g = to_dtype(dt, G, 24);
    for (int f = 0; f < 3; f++) {
      for (int k = 0; k < 24; k++)
        H[k] = dt == OPTIM_FLOAT32 ? (double)(float)(G[k] * factors[f]) : G[k] * factors[f];
      ref_on = f == 0 ? H : G;
      void *h = to_dtype(dt, H, 24);
      for (int t = 0; t < 4; t++) {
        double r = ref_stat(TESTS[t], b, d, ref_on, 0.3, 0.7);
        ck_assert(isfinite(r) && r > 0);
        check_r(TESTS[t], dt, b, d, h, 0.3, 0.7, r);
        if (f > 0)
          ck_assert_int_eq(next_of(TESTS[t], dt, b, d, h, 0.3, 0.7),
                           next_of(TESTS[t], dt, b, d, g, 0.3, 0.7));
      }
      free(h);
    }
    free(g);
  }
}
END_TEST

/* float32 and float64 buffers holding the same numbers give the same
 * answers (the statistics are computed in double). */
START_TEST(test_f32_equals_f64)
{
  int64_t b = 9, d = 11;
  double G[99];
  for (int k = 0; k < 99; k++) G[k] = (float)(0.7 + golden_noise((uint64_t)k, 4, 2, 3));
  void *g32 = to_dtype(OPTIM_FLOAT32, G, 99), *g64 = to_dtype(OPTIM_FLOAT64, G, 99);
  for (int t = 0; t < 4; t++)
    for (double eta = 0.05; eta < 3; eta *= 1.7) {
      ck_assert_int_eq(next_of(TESTS[t], OPTIM_FLOAT32, b, d, g32, eta, eta),
                       next_of(TESTS[t], OPTIM_FLOAT64, b, d, g64, eta, eta));
      double r = ref_stat(TESTS[t], b, d, G, eta, eta);
      if (isfinite(r) && r > 0) {
        probe(TESTS[t], OPTIM_FLOAT32, b, d, g32, eta, eta, r);
        probe(TESTS[t], OPTIM_FLOAT64, b, d, g64, eta, eta, r);
      }
    }
  free(g32);
  free(g64);
}
END_TEST

/* Huge finite requests saturate at INT64_MAX; a tiny eta whose square
 * underflows counts as a zero denominator (r = inf). */
START_TEST(test_saturation)
{
  double G[4 * 2] = {1, 8, 3, 8, 1, 8, 3, 8};
  for (int dt = OPTIM_FLOAT32; dt <= OPTIM_FLOAT64; dt++) {
    void *g = to_dtype(dt, G, 8);
    /* norm r = (4/3) / (eta^2 68): eta = 1e-10 gives ~2e18 < 2^63, where
     * ceil cannot be compared exactly (an ulp of r is 256) */
    double eta = 1e-10, r = (4.0 / 3.0) / (eta * eta * 68.0);
    ck_assert(r < 0x1p63);
    int64_t got = next_of("norm", dt, 4, 2, g, eta, 0.0);
    ck_assert(got < INT64_MAX && fabs((double)got - r) <= 1e-12 * r);
    probe("norm", dt, 4, 2, g, eta, 0.0, r);
    ck_assert_int_eq(next_of("norm", dt, 4, 2, g, 1e-12, 0.0), INT64_MAX);
    ck_assert_int_eq(next_of("norm", dt, 4, 2, g, 1e-200, 0.0), INT64_MAX);
    ck_assert_int_eq(next_of("augmented_inner_product", dt, 4, 2, g, 1.0, 1e-200), INT64_MAX);
    free(g);
  }
}
END_TEST

/* Every error code; *next_batch is never written on failure. */
START_TEST(test_errors)
{
  double G[6] = {1, 2, 3, 4, 5, 6}, bad[6] = {1, 2, 3, 4, 5, 6};
  float G32[6] = {1, 2, 3, 4, 5, 6};
  int64_t next = 12345;
#define ST(test, dt, b, d, g, eta, nu, out) optim_batch_size_test(test, dt, b, d, g, eta, nu, out)
  ck_assert_int_eq(ST(NULL, OPTIM_FLOAT64, 3, 2, G, 0.5, 1, &next), OPTIM_EINVAL);
  ck_assert_int_eq(ST("norm", OPTIM_FLOAT64, 3, 2, NULL, 0.5, 1, &next), OPTIM_EINVAL);
  ck_assert_int_eq(ST("norm", OPTIM_FLOAT64, 3, 2, G, 0.5, 1, NULL), OPTIM_EINVAL);
  ck_assert_int_eq(ST("norm", OPTIM_FLOAT64, 1, 2, G, 0.5, 1, &next), OPTIM_EINVAL);
  ck_assert_int_eq(ST("norm", OPTIM_FLOAT64, 0, 2, G, 0.5, 1, &next), OPTIM_EINVAL);
  ck_assert_int_eq(ST("norm", OPTIM_FLOAT64, -3, 2, G, 0.5, 1, &next), OPTIM_EINVAL);
  ck_assert_int_eq(ST("norm", OPTIM_FLOAT64, 3, 0, G, 0.5, 1, &next), OPTIM_EINVAL);
  ck_assert_int_eq(ST("norm", OPTIM_FLOAT64, 3, -1, G, 0.5, 1, &next), OPTIM_EINVAL);
  /* batch * numel elements cannot exist: refused before reading */
  ck_assert_int_eq(ST("norm", OPTIM_FLOAT64, INT64_MAX, INT64_MAX, G, 0.5, 1, &next),
                   OPTIM_EINVAL);
  ck_assert_int_eq(ST("Norm", OPTIM_FLOAT64, 3, 2, G, 0.5, 1, &next), OPTIM_EUNKNOWN);
  ck_assert_int_eq(ST("", OPTIM_FLOAT64, 3, 2, G, 0.5, 1, &next), OPTIM_EUNKNOWN);
  ck_assert_int_eq(ST("orthogonality", OPTIM_FLOAT64, 3, 2, G, 0.5, 1, &next), OPTIM_EUNKNOWN);
  ck_assert_int_eq(ST("nope", OPTIM_FLOAT64, 3, 2, G, -1, 1, &next), OPTIM_EUNKNOWN);
  for (int t = 0; t < 4; t++) {
    ck_assert_int_eq(ST(TESTS[t], OPTIM_FLOAT64, 3, 2, G, 0.0, 1, &next), OPTIM_ERANGE);
    ck_assert_int_eq(ST(TESTS[t], OPTIM_FLOAT64, 3, 2, G, -0.5, 1, &next), OPTIM_ERANGE);
    ck_assert_int_eq(ST(TESTS[t], OPTIM_FLOAT64, 3, 2, G, NAN, 1, &next), OPTIM_ERANGE);
    ck_assert_int_eq(ST(TESTS[t], OPTIM_FLOAT64, 3, 2, G, INFINITY, 1, &next), OPTIM_ERANGE);
    ck_assert_int_eq(ST(TESTS[t], 0, 3, 2, G, 0.5, 1, &next), OPTIM_EDTYPE);
    ck_assert_int_eq(ST(TESTS[t], 3, 3, 2, G, 0.5, 1, &next), OPTIM_EDTYPE);
  }
  /* nu is checked only where it is read */
  ck_assert_int_eq(ST("augmented_inner_product", OPTIM_FLOAT64, 3, 2, G, 0.5, 0, &next),
                   OPTIM_ERANGE);
  ck_assert_int_eq(ST("augmented_inner_product", OPTIM_FLOAT64, 3, 2, G, 0.5, -1, &next),
                   OPTIM_ERANGE);
  ck_assert_int_eq(ST("augmented_inner_product", OPTIM_FLOAT64, 3, 2, G, 0.5, NAN, &next),
                   OPTIM_ERANGE);
  ck_assert_int_eq(ST("augmented_inner_product", OPTIM_FLOAT64, 3, 2, G, 0.5, -INFINITY, &next),
                   OPTIM_ERANGE);
  ck_assert_int_eq(next, 12345);
  for (int k = 0; k < 6; k++) {
    double v[3] = {NAN, INFINITY, -INFINITY};
    for (int q = 0; q < 3; q++) {
      memcpy(bad, G, sizeof bad);
      bad[k] = v[q];
      float b32[6];
      for (int m = 0; m < 6; m++) b32[m] = (float)bad[m];
      for (int t = 0; t < 4; t++) {
        ck_assert_int_eq(ST(TESTS[t], OPTIM_FLOAT64, 3, 2, bad, 0.5, 1, &next),
                         OPTIM_ENONFINITE);
        ck_assert_int_eq(ST(TESTS[t], OPTIM_FLOAT32, 3, 2, b32, 0.5, 1, &next),
                         OPTIM_ENONFINITE);
      }
    }
  }
  ck_assert_int_eq(next, 12345);
  /* the order of the checks (optim_batch_size_test(3), ERRORS) */
  bad[0] = NAN;
  ck_assert_int_eq(ST("nope", 99, INT64_MAX / 2, 3, bad, -1, 1, &next), OPTIM_EINVAL);
  ck_assert_int_eq(ST("nope", 99, 3, 2, bad, -1, 1, &next), OPTIM_EUNKNOWN);
  ck_assert_int_eq(ST("norm", 99, 3, 2, bad, -1, 1, &next), OPTIM_ERANGE);
  ck_assert_int_eq(ST("norm", 99, 3, 2, bad, 0.5, 1, &next), OPTIM_EDTYPE);
  ck_assert_int_eq(ST("norm", OPTIM_FLOAT64, 3, 2, bad, 0.5, 1, &next), OPTIM_ENONFINITE);
  ck_assert_int_eq(next, 12345);
  /* nu = 0 is fine where it is not read */
  ck_assert_int_eq(ST("norm", OPTIM_FLOAT64, 3, 2, G, 0.5, 0, &next), OPTIM_OK);
  ck_assert_int_eq(ST("inner_product", OPTIM_FLOAT32, 3, 2, G32, 0.5, NAN, &next), OPTIM_OK);
  ck_assert_int_eq(ST("coordinate", OPTIM_FLOAT32, 3, 2, G32, 0.5, -1, &next), OPTIM_OK);
#undef ST
}
END_TEST

/* ---- golden data (tests/golden/batch.txt, numpy) ------------------------------------ */

START_TEST(test_golden)
{
  const char *path = GOLDEN_DIR "/batch.txt";
  FILE *f = fopen(path, "r");
  ck_assert_msg(f != NULL, "cannot open %s", path);
  char *line = NULL, name[128] = "";
  size_t cap = 0;
  int dtype = 0, nexpect = 0, ncases = 0, nprobe = 0;
  int64_t b = 0, d = 0;
  double *G = NULL;
  void *g = NULL;
  while (getline(&line, &cap, f) > 0) {
    line[strcspn(line, "\n")] = '\0';
    if (line[0] == '#' || line[0] == '\0') continue;
    if (!strncmp(line, "case ", 5)) {
      snprintf(name, sizeof name, "%s", line + 5);
    } else if (!strncmp(line, "dtype ", 6)) {
      dtype = !strcmp(line + 6, "f32") ? OPTIM_FLOAT32 : OPTIM_FLOAT64;
    } else if (!strncmp(line, "shape ", 6)) {
      long long bb, dd;
      ck_assert_int_eq(sscanf(line + 6, "%lld %lld", &bb, &dd), 2);
      b = bb;
      d = dd;
    } else if (!strncmp(line, "grads ", 6)) {
      G = realloc(G, (size_t)(b * d) * sizeof *G);
      char *s = line + 6, *end;
      for (int64_t k = 0; k < b * d; k++, s = end) {
        G[k] = strtod(s, &end);
        ck_assert_msg(end != s, "%s: short grads line", name);
      }
      free(g);
      g = to_dtype(dtype, G, (size_t)(b * d));
    } else if (!strncmp(line, "expect ", 7)) {
      char test[64], rs[64];
      long long want;
      double eta, nu;
      char es[64], ns[64];
      ck_assert_int_eq(sscanf(line + 7, "%63s %63s %63s %63s %lld", test, es, ns, rs, &want), 5);
      eta = strtod(es, NULL);
      nu = strtod(ns, NULL);
      double r = strtod(rs, NULL);
      int64_t got = next_of(test, dtype, b, d, g, eta, nu);
      ck_assert_msg(got == want, "%s %s eta %g nu %g: next %lld, want %lld", name, test, eta, nu,
                    (long long)got, want);
      if (r > 0 && isfinite(r)) {
        probe(test, dtype, b, d, g, eta, nu, r);
        nprobe++;
      }
      nexpect++;
    } else if (!strcmp(line, "end")) {
      ncases++;
    } else {
      ck_abort_msg("batch.txt: unknown line '%.40s'", line);
    }
  }
  fclose(f);
  free(line);
  free(G);
  free(g);
  ck_assert_int_eq(ncases, 28);
  ck_assert_int_ge(nexpect, 200);
  ck_assert_int_ge(nprobe, 100);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("batch");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_identical_rows);
  tcase_add_test(tc, test_orthogonal_noise);
  tcase_add_test(tc, test_scaled_rows_closed_form);
  tcase_add_test(tc, test_zero_mean);
  tcase_add_test(tc, test_coordinate_takes_worst);
  tcase_add_test(tc, test_random_against_reference);
  tcase_add_test(tc, test_scale_invariance);
  tcase_add_test(tc, test_f32_equals_f64);
  tcase_add_test(tc, test_saturation);
  tcase_add_test(tc, test_errors);
  tcase_add_test(tc, test_golden);
  suite_add_tcase(s, tc);
  return run_suite(s);
}
