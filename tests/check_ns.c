/* check_ns.c - properties of the Newton-Schulz engine (lib/ns.c): it acts
 * on singular values as the iterated scalar polynomial a x + b x^3 + c x^5
 * of the normalized input, for random, ill-conditioned, rank-deficient and
 * tiny-norm inputs, tall or wide, float32 or float64. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <lapacke.h>
#include <pthread.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "algs/matrix.h"
#include "ns.h"
#include "optim.h"
#include "testutil.h"

/* Deterministic standard normals (Box-Muller on a 64-bit LCG). */
static uint64_t rng = 88172645463325252ull;
static double unif(void)
{
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return ((double)(rng >> 11) + 0.5) / 9007199254740992.0;
}
static double normal(void) { return sqrt(-2 * log(unif())) * cos(6.283185307179586 * unif()); }

/* A = U diag(s) V^T with random orthogonal U (m x m), V (n x n). */
static void make_matrix(double *A, int m, int n, const double *s)
{
  int k = m < n ? m : n;
  double *U = malloc(sizeof *U * (size_t)m * m), *V = malloc(sizeof *V * (size_t)n * n);
  double *tau = malloc(sizeof *tau * (size_t)(m > n ? m : n));
  for (int i = 0; i < m * m; i++) U[i] = normal();
  for (int i = 0; i < n * n; i++) V[i] = normal();
  LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, m, m, U, m, tau);
  LAPACKE_dorgqr(LAPACK_ROW_MAJOR, m, m, m, U, m, tau);
  LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, n, n, V, n, tau);
  LAPACKE_dorgqr(LAPACK_ROW_MAJOR, n, n, n, V, n, tau);
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      double v = 0;
      for (int r = 0; r < k; r++) v += U[i * m + r] * s[r] * V[j * n + r];
      A[i * n + j] = v;
    }
  free(U);
  free(V);
  free(tau);
}

static void singular_values(const double *A, int m, int n, double *s)
{
  double *c = malloc(sizeof *c * (size_t)m * n), *sup = malloc(sizeof *sup * (size_t)(m + n));
  memcpy(c, A, sizeof *c * (size_t)m * n);
  int info = LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'N', 'N', m, n, c, n, s, NULL, 1, NULL, 1, sup);
  ck_assert_int_eq(info, 0);
  free(c);
  free(sup);
}

static int desc(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x < y) - (x > y);
}

/* What NS does to a normalized singular value x. */
static double predict(double x, int coef, int m, int n, int steps)
{
  for (int it = 0; it < steps; it++) {
    double abc[3];
    optim__ns_coef(coef, m, n, it, abc);
    x = abc[0] * x + abc[1] * x * x * x + abc[2] * x * x * x * x * x;
  }
  return x;
}

/* Run NS on A (m x n) in the given precision; compare the output's singular
 * values with the prediction; return the smallest and largest output
 * singular value among those whose input was at least `floor` relative to
 * the largest. */
static void check_case(const double *s_in, int m, int n, int prec, int coef, double scale,
                       double floor, double *lo, double *hi)
{
  int k = m < n ? m : n;
  double *A = malloc(sizeof *A * (size_t)m * n), *O = malloc(sizeof *O * (size_t)m * n);
  double *sv = malloc(sizeof *sv * (size_t)k), *so = malloc(sizeof *so * (size_t)k);
  make_matrix(A, m, n, s_in);
  for (int i = 0; i < m * n; i++) A[i] *= scale;
  singular_values(A, m, n, sv);
  double fro = 0;
  for (int i = 0; i < k; i++) fro += sv[i] * sv[i];
  fro = sqrt(fro);
  void *work = malloc(optim__ns_workspace(m, n, prec));
  if (prec == OPTIM_FLOAT32) {
    float *f = malloc(sizeof *f * (size_t)m * n);
    for (int i = 0; i < m * n; i++) f[i] = (float)A[i];
    optim__ns(OPTIM_FLOAT32, OPTIM_FLOAT32, f, f, 1, m, n, 5, coef, work);
    for (int i = 0; i < m * n; i++) O[i] = f[i];
    free(f);
  } else {
    optim__ns(OPTIM_FLOAT64, OPTIM_FLOAT64, A, O, 1, m, n, 5, coef, work);
  }
  singular_values(O, m, n, so);
  /* The map is not monotone: compare the sorted predictions with the
   * (sorted) output singular values. */
  double f = coef == NS_COEF_POLAR_EXPRESS ? 1.02 : 1.0;
  double tol = prec == OPTIM_FLOAT32 ? 1e-4 : 1e-10;
  double *want = malloc(sizeof *want * (size_t)k);
  *lo = INFINITY;
  *hi = 0;
  for (int i = 0; i < k; i++) {
    want[i] = predict(sv[i] / (fro * f * (1 + 1e-7)), coef, m, n, 5);
    if (sv[i] >= floor * sv[0]) {
      if (want[i] < *lo) *lo = want[i];
      if (want[i] > *hi) *hi = want[i];
    }
  }
  qsort(want, (size_t)k, sizeof *want, desc);
  for (int i = 0; i < k; i++)
    ck_assert_msg(fabs(so[i] - want[i]) <= tol * (1 + fabs(want[i])),
                  "%dx%d prec %d coef %d scale %g: sigma %d = %.9g, predicted %.9g", m, n,
                  prec, coef, scale, i, so[i], want[i]);
  free(want);
  free(work);
  free(A);
  free(O);
  free(sv);
  free(so);
}

static const int shapes[][2] = {{24, 24}, {40, 16}, {16, 40}, {1, 30}, {30, 1}, {64, 32},
                                {12, 60}, {96, 24}, {32, 256}};

START_TEST(test_random_in_band)
{
  for (int p = 0; p < 2; p++)
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
      int m = shapes[t][0], n = shapes[t][1], k = m < n ? m : n;
      double *s = malloc(sizeof *s * (size_t)k), lo, hi;
      for (int i = 0; i < k; i++) s[i] = 0.5 + unif(); /* well conditioned */
      check_case(s, m, n, p ? OPTIM_FLOAT64 : OPTIM_FLOAT32, NS_COEF_MUON, 1, 0, &lo, &hi);
      /* Muon's coefficients promise roughly (0.5, 1.5); observed 0.68-1.2. */
      ck_assert_msg(lo > 0.6 && hi < 1.25, "%dx%d: band [%g, %g]", m, n, lo, hi);
      free(s);
    }
}
END_TEST

START_TEST(test_ill_conditioned_and_rank_deficient)
{
  int m = 48, n = 32, k = 32;
  double s[32], lo, hi;
  /* condition 1e3: the large end of the spectrum lands in the band, and
   * every value follows the polynomial */
  for (int i = 0; i < k; i++) s[i] = pow(1e-3, (double)i / (k - 1));
  check_case(s, m, n, OPTIM_FLOAT32, NS_COEF_MUON, 1, 0.05, &lo, &hi);
  ck_assert_msg(lo > 0.6 && hi < 1.25, "ill-conditioned band [%g, %g]", lo, hi);
  check_case(s, m, n, OPTIM_FLOAT64, NS_COEF_POLAR_EXPRESS, 1, 0.05, &lo, &hi);
  ck_assert_msg(lo > 0.6 && hi < 1.25, "polar express band [%g, %g]", lo, hi);
  /* the same on a wide matrix, which takes the Gram-side iteration */
  {
    double sw[24];
    for (int i = 0; i < 24; i++) sw[i] = pow(1e-3, (double)i / 23);
    check_case(sw, 24, 200, OPTIM_FLOAT32, NS_COEF_MUON, 1, 0.05, &lo, &hi);
    ck_assert_msg(lo > 0.6 && hi < 1.25, "wide ill-conditioned band [%g, %g]", lo, hi);
    check_case(sw, 200, 24, OPTIM_FLOAT64, NS_COEF_POLAR_EXPRESS, 1, 0.05, &lo, &hi);
  }
  /* rank 5: the null space stays null */
  for (int i = 0; i < k; i++) s[i] = i < 5 ? 1 + i : 0;
  check_case(s, m, n, OPTIM_FLOAT64, NS_COEF_MUON, 1, 1e-6, &lo, &hi);
  ck_assert_msg(lo > 0.6 && hi < 1.25, "rank-5 band [%g, %g]", lo, hi);
}
END_TEST

/* A known silent failure elsewhere: an absolute epsilon in the
 * normalization leaves tiny inputs far from orthogonal. */
START_TEST(test_tiny_norm_is_orthogonalized)
{
  double s[16], lo, hi;
  for (int i = 0; i < 16; i++) s[i] = 0.5 + unif();
  for (int p = 0; p < 2; p++) {
    double scale = p ? 1e-150 : 1e-18;
    check_case(s, 16, 28, p ? OPTIM_FLOAT64 : OPTIM_FLOAT32, NS_COEF_MUON, scale, 0, &lo, &hi);
    ck_assert_msg(lo > 0.6 && hi < 1.25, "tiny input band [%g, %g]", lo, hi);
  }
}
END_TEST

START_TEST(test_zero_transpose_batch)
{
  const int m = 7, n = 11;
  float A[2 * 7 * 11], At[11 * 7], O[2 * 7 * 11], Ot[11 * 7];
  void *work = malloc(optim__ns_workspace(m, n, OPTIM_FLOAT32));
  for (int i = 0; i < 2 * m * n; i++) A[i] = (float)normal();
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) At[j * m + i] = A[i * n + j];
  /* batched == one by one, and NS(A^T) == NS(A)^T exactly */
  optim__ns(OPTIM_FLOAT32, OPTIM_FLOAT32, A, O, 2, m, n, 5, NS_COEF_MUON, work);
  optim__ns(OPTIM_FLOAT32, OPTIM_FLOAT32, At, Ot, 1, n, m, 5, NS_COEF_MUON, work);
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) ck_assert(Ot[j * m + i] == O[i * n + j]);
  float B[7 * 11];
  optim__ns(OPTIM_FLOAT32, OPTIM_FLOAT32, A + m * n, B, 1, m, n, 5, NS_COEF_MUON, work);
  ck_assert_mem_eq(B, O + m * n, sizeof B);
  /* in place == out of place */
  optim__ns(OPTIM_FLOAT32, OPTIM_FLOAT32, A, A, 2, m, n, 5, NS_COEF_MUON, work);
  ck_assert_mem_eq(A, O, sizeof O);
  /* zero in, zero out */
  memset(A, 0, sizeof A);
  optim__ns(OPTIM_FLOAT32, OPTIM_FLOAT32, A, O, 1, m, n, 5, NS_COEF_MUON, work);
  for (int i = 0; i < m * n; i++) ck_assert(O[i] == 0.0f);
  free(work);
}
END_TEST

START_TEST(test_coefficient_sets)
{
  double abc[3];
  optim__ns_coef(NS_COEF_MUON, 10, 20, 3, abc);
  ck_assert(abc[0] == 3.4445 && abc[1] == -4.7750 && abc[2] == 2.0315);
  optim__ns_coef(NS_COEF_POLAR_EXPRESS, 10, 20, 0, abc);
  ck_assert(abc[0] == 8.156554524902461 && abc[2] == 15.878769915207462);
  double last[3];
  optim__ns_coef(NS_COEF_POLAR_EXPRESS, 10, 20, 4, last);
  ck_assert(last[0] == 2.3465413258596377);
  optim__ns_coef(NS_COEF_POLAR_EXPRESS, 10, 20, 9, abc); /* repeats the last */
  ck_assert_mem_eq(abc, last, sizeof abc);
  optim__ns_coef(NS_COEF_ROOT, 8192, 2048, 0, abc); /* keyed by (min, max) */
  ck_assert(abc[0] == 2.9794 && abc[1] == -3.6674 && abc[2] == 1.6207);
  optim__ns_coef(NS_COEF_ROOT, 2048, 2048, 0, abc);
  ck_assert(abc[0] == 3.4916);
  optim__ns_coef(NS_COEF_ROOT, 100, 2048, 0, abc); /* not in the table: Muon's */
  ck_assert(abc[0] == 3.4445);
}
END_TEST

/* float32 NS against float64 NS of the same (float32) input, relative
 * Frobenius error: the direct and the Gram-side (wide) iterations alike
 * stay near 2e-6 on graded inputs and near 2e-5 on rank-4-plus-noise ones. */
START_TEST(test_float32_accuracy)
{
  /* graded rows (ill-conditioned), then rank 4 plus 1% noise, which the
   * Gram side without restarts got wrong by up to 4.5e-4 */
  const int shapes2[6][2] = {{48, 48}, {32, 320}, {320, 32}, {40, 100}, {64, 256}, {256, 64}};
  for (int t = 0; t < 6; t++) {
    int m = shapes2[t][0], n = shapes2[t][1];
    double *A = malloc(sizeof *A * (size_t)m * n), *O = malloc(sizeof *O * (size_t)m * n);
    float *F = malloc(sizeof *F * (size_t)m * n);
    double u[256][4], v[4][256];
    for (int i = 0; i < 256; i++)
      for (int q = 0; q < 4; q++) u[i][q] = normal(), v[q][i] = normal();
    for (int i = 0; i < m; i++)
      for (int j = 0; j < n; j++) {
        double x;
        if (t < 4) {
          x = normal() * pow(1e-3, (double)i / (m - 1));
        } else {
          x = 0.01 * normal();
          for (int q = 0; q < 4; q++) x += u[i][q] * v[q][j];
        }
        F[i * n + j] = (float)x;
        A[i * n + j] = F[i * n + j];
      }
    void *w = malloc(optim__ns_workspace(m, n, OPTIM_FLOAT64));
    optim__ns(OPTIM_FLOAT64, OPTIM_FLOAT64, A, O, 1, m, n, 5, NS_COEF_MUON, w);
    optim__ns(OPTIM_FLOAT32, OPTIM_FLOAT32, F, F, 1, m, n, 5, NS_COEF_MUON, w);
    double e = 0, s2 = 0;
    for (int i = 0; i < m * n; i++) {
      e += (F[i] - O[i]) * (F[i] - O[i]);
      s2 += O[i] * O[i];
    }
    ck_assert_msg(sqrt(e / s2) < (t < 4 ? 1e-5 : 5e-5), "%dx%d: float32 error %g", m, n,
                  sqrt(e / s2));
    free(A);
    free(O);
    free(F);
    free(w);
  }
}
END_TEST

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* ROOT's threshold: quantile with linear interpolation, as numpy (float64)
 * and torch (float32) compute it; the selection against a full sort. */
START_TEST(test_quantile)
{
  double a[50];
  float f[50];
  const double q[4] = {0.9, 0.5, 0.25, 0.999};
  /* numpy.quantile of this array (float64) and torch.quantile (float32) */
  const double np64[4] = {12.9, 7.071428571428571, 3.392857142857143, 14.264714285714287};
  const double th32[4] = {12.899998664855957, 7.071428298950195, 3.392857074737549,
                          14.264714241027832};
  for (int k = 0; k < 4; k++) {
    for (int i = 0; i < 50; i++) f[i] = (float)(a[i] = ((i * 37) % 101) / 7.0);
    double v = optim__quantile_f64(a, 50, q[k]);
    ck_assert_msg(fabs(v - np64[k]) <= 4e-16 * np64[k], "q=%g: %.17g vs numpy %.17g", q[k], v,
                  np64[k]);
    double w = optim__quantile_f32(f, 50, q[k]);
    ck_assert_msg(fabs(w - th32[k]) <= 2e-7 * th32[k], "q=%g: %.9g vs torch %.9g", q[k], w,
                  th32[k]);
  }
  /* random sizes, many ties, extreme q: against sorting */
  for (int t = 0; t < 200; t++) {
    size_t n = 1 + (size_t)(unif() * 300);
    double *x = malloc(sizeof *x * n), *s = malloc(sizeof *s * n);
    for (size_t i = 0; i < n; i++) x[i] = s[i] = t % 3 ? normal() : floor(unif() * 5);
    qsort(s, n, sizeof *s, cmp_double);
    double qq = t % 5 == 0 ? 0 : t % 5 == 1 ? 1 : unif();
    double idx = qq * (double)(n - 1), fl = floor(idx), wt = idx - fl;
    size_t k = (size_t)fl;
    double lo = s[k], hi = k + 1 < n ? s[k + 1] : s[k];
    double want = wt < 0.5 ? lo + wt * (hi - lo) : hi - (hi - lo) * (1 - wt);
    ck_assert_msg(optim__quantile_f64(x, n, qq) == want, "n=%zu q=%g", n, qq);
    free(x);
    free(s);
  }
}
END_TEST

/* optim__ns_rows: three threads hold row blocks of one matrix (one of them
 * possibly empty) and sum through a barrier; the assembled result is
 * optim__ns's (float64: to rounding; float32: to float32 accuracy). */
enum { NT = 3 };
typedef struct rows_job {
  pthread_barrier_t *bar;
  pthread_mutex_t *mu;
  double *sum;          /* shared accumulator, C*C doubles */
  int id, prec, R, C, r0, r;
  const double *in;
  double *out;
  int rc;
} rows_job;

static int bar_reduce(void *ud, void *buf, size_t count, int prec)
{
  rows_job *j = ud;
  if (j->id == 0) memset(j->sum, 0, count * sizeof(double));
  pthread_barrier_wait(j->bar);
  pthread_mutex_lock(j->mu);
  for (size_t i = 0; i < count; i++)
    j->sum[i] += prec == OPTIM_FLOAT64 ? ((double *)buf)[i] : (double)((float *)buf)[i];
  pthread_mutex_unlock(j->mu);
  pthread_barrier_wait(j->bar);
  for (size_t i = 0; i < count; i++) {
    if (prec == OPTIM_FLOAT64) ((double *)buf)[i] = j->sum[i];
    else ((float *)buf)[i] = (float)j->sum[i];
  }
  pthread_barrier_wait(j->bar);
  return 0;
}

static void *rows_thread(void *arg)
{
  rows_job *j = arg;
  void *w = malloc(optim__ns_rows_workspace(j->r, j->C, j->prec));
  j->rc = optim__ns_rows(OPTIM_FLOAT64, j->prec, j->in + (size_t)j->r0 * j->C,
                         j->out + (size_t)j->r0 * j->C, j->r, j->R, j->C, 5, NS_COEF_MUON, w,
                         bar_reduce, j);
  free(w);
  return NULL;
}

START_TEST(test_rows_distributed)
{
  static const int shp[][2] = {{40, 25}, {16, 64}, {30, 30}, {2, 9}};
  for (size_t c = 0; c < sizeof shp / sizeof shp[0]; c++) {
    int R = shp[c][0], C = shp[c][1], k = R < C ? R : C;
    double *s = malloc(sizeof *s * (size_t)k), *A = malloc(sizeof *A * (size_t)(R * C));
    double *ref = malloc(sizeof *ref * (size_t)(R * C)), *got = malloc(sizeof *got * (size_t)(R * C));
    double *sum = malloc(sizeof *sum * (size_t)(C * C));
    for (int i = 0; i < k; i++) s[i] = 0.1 + 0.9 * unif();
    make_matrix(A, R, C, s);
    void *w = malloc(optim__ns_workspace(R, C, OPTIM_FLOAT64));
    optim__ns(OPTIM_FLOAT64, OPTIM_FLOAT64, A, ref, 1, R, C, 5, NS_COEF_MUON, w);
    free(w);
    for (int prec = OPTIM_FLOAT32; prec <= OPTIM_FLOAT64; prec++) {
      pthread_barrier_t bar;
      pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
      pthread_barrier_init(&bar, NULL, NT);
      rows_job jobs[NT];
      pthread_t th[NT];
      for (int t = 0; t < NT; t++) {
        /* uneven blocks: the last thread gets R/2 rows, the first none when R < 3 */
        int b0 = t == 0 ? 0 : t == 1 ? (R < 3 ? 0 : R / 4) : R - R / 2;
        int b1 = t == 0 ? (R < 3 ? 0 : R / 4) : t == 1 ? R - R / 2 : R;
        jobs[t] = (rows_job){&bar, &mu, sum, t, prec, R, C, b0, b1 - b0, A, got, -1};
        pthread_create(&th[t], NULL, rows_thread, &jobs[t]);
      }
      for (int t = 0; t < NT; t++) {
        pthread_join(th[t], NULL);
        ck_assert_int_eq(jobs[t].rc, 0);
      }
      pthread_barrier_destroy(&bar);
      double worst = 0;
      for (int i = 0; i < R * C; i++)
        if (fabs(got[i] - ref[i]) > worst) worst = fabs(got[i] - ref[i]);
      ck_assert_msg(worst < (prec == OPTIM_FLOAT64 ? 1e-12 : 2e-5),
                    "%dx%d %s: distributed NS differs by %g", R, C,
                    prec == OPTIM_FLOAT64 ? "float64" : "float32", worst);
    }
    free(s);
    free(A);
    free(ref);
    free(got);
    free(sum);
  }
}
END_TEST

int main(void)
{
  Suite *s = suite_create("ns");
  TCase *tc = tcase_create("ns");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_random_in_band);
  tcase_add_test(tc, test_ill_conditioned_and_rank_deficient);
  tcase_add_test(tc, test_tiny_norm_is_orthogonalized);
  tcase_add_test(tc, test_zero_transpose_batch);
  tcase_add_test(tc, test_coefficient_sets);
  tcase_add_test(tc, test_quantile);
  tcase_add_test(tc, test_float32_accuracy);
  tcase_add_test(tc, test_rows_distributed);
  suite_add_tcase(s, tc);
  return run_suite(s);
}
