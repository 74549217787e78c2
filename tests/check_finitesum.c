/* check_finitesum.c - adasvrg and the finite-sum interface (optim_snapshot,
 * optim_param_bind_snapshot_grad) on least squares
 * f(x) = 1/N sum_i (a_i . x - b_i)^2 / 2, against the update rule written
 * out here in double; the adaptive step size from the secant estimate
 * (the first one against the probe point the callback is given);
 * convergence; bad input; checkpoints. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

enum { N = 24, D = 5 };
static double A[N][D], B[N];

static void problem(void)
{
  for (int i = 0; i < N; i++) {
    for (int j = 0; j < D; j++) A[i][j] = golden_noise((uint64_t)(i * D + j), 1, 2, 3) + (i % D == j);
    B[i] = golden_noise((uint64_t)i, 4, 5, 6);
  }
}

/* gradient over samples [s, s + m) (mod N) at x */
static void grad_at(const double *x, int s, int m, double *g)
{
  for (int j = 0; j < D; j++) g[j] = 0;
  for (int k = 0; k < m; k++) {
    int i = (s + k) % N;
    double r = -B[i];
    for (int j = 0; j < D; j++) r += A[i][j] * x[j];
    for (int j = 0; j < D; j++) g[j] += r * A[i][j] / m;
  }
}

typedef struct cb {
  int calls, fail;
  double last_point[D];
} cb;

static int full_grad(void *ud, int count, const int *params, const void *const *points,
                     void *const *grads)
{
  cb *c = ud;
  c->calls++;
  if (c->fail) return 7;
  ck_assert_int_eq(count, 1);
  ck_assert_int_eq(params[0], 0);
  memcpy(c->last_point, points[0], sizeof c->last_point);
  grad_at(points[0], 0, N, grads[0]);
  return 0;
}

static optim_optimizer *make(const char *opts, double *x, double *g, double *gs)
{
  optim_optimizer *o;
  ck_assert_int_eq(optim_create(&o), OPTIM_OK);
  ck_assert_int_eq(optim_add_group(o, "adasvrg", NULL), OPTIM_OK);
  if (opts) ck_assert_msg(optim_configure(o, 0, opts) == OPTIM_OK, "%s", optim_errmsg(o));
  int64_t shape[1] = {D};
  ck_assert_int_eq(optim_add_param(o, 0, "x", OPTIM_FLOAT64, 1, shape, x, g, NULL), OPTIM_OK);
  ck_assert_int_eq(optim_param_bind_snapshot_grad(o, 0, gs), OPTIM_OK);
  return o;
}

/* Fixed lr, scalar and diagonal, two outer loops of 6 minibatch steps. */
START_TEST(test_rule)
{
  problem();
  for (int diag = 0; diag < 2; diag++) {
    double x[D] = {0.5, -0.5, 1, 0, 0.25}, g[D], gs[D], e[D], snap[D], mu[D], G2[D], S = 0;
    memcpy(e, x, sizeof e);
    cb c = {0};
    optim_optimizer *o = make(diag ? "lr=0.3,diagonal=true" : "lr=0.3", x, g, gs);
    for (int outer = 0; outer < 2; outer++) {
      ck_assert_int_eq(optim_snapshot(o, full_grad, &c), OPTIM_OK);
      memcpy(snap, e, sizeof snap);
      grad_at(snap, 0, N, mu);
      S = 0;
      for (int j = 0; j < D; j++) G2[j] = 1e-8;
      for (int t = 0; t < 6; t++) {
        int s = (7 * t + 3 * outer) % N;
        grad_at(x, s, 4, g);
        grad_at(snap, s, 4, gs);
        double v[D], nv = 0;
        for (int j = 0; j < D; j++) {
          v[j] = (g[j] - gs[j]) + mu[j];
          nv += v[j] * v[j];
        }
        S += nv;
        for (int j = 0; j < D; j++) {
          if (diag) {
            G2[j] += v[j] * v[j];
            e[j] -= 0.3 * v[j] / sqrt(G2[j]);
          } else {
            e[j] += (-0.3 / sqrt(S)) * v[j];
          }
        }
        ck_assert_msg(optim_step(o) == OPTIM_OK, "%s", optim_errmsg(o));
        for (int j = 0; j < D; j++) ck_assert_double_eq_tol(x[j], e[j], 1e-13);
      }
    }
    ck_assert_int_eq(c.calls, 2); /* fixed lr: no probe */
    int64_t k;
    ck_assert_int_eq(optim_state_scalar(o, 0, "snapshots", &k), OPTIM_OK);
    ck_assert_int_eq(k, 2);
    optim_destroy(o);
  }
}
END_TEST

static double norm2(const double *a, const double *b)
{
  double s = 0;
  for (int j = 0; j < D; j++) s += (a[j] - (b ? b[j] : 0)) * (a[j] - (b ? b[j] : 0));
  return sqrt(s);
}

/* Adaptive lr: eta = ||mu|| / (sqrt(2) Lmax), the first L against the
 * probe point, later ones against the previous snapshot; the method
 * converges to the least-squares solution. */
START_TEST(test_adaptive_and_convergence)
{
  problem();
  double x[D] = {0}, g[D], gs[D], mu[D], mu0[D], pmu[D], x0[D], const_probe[D];
  cb c = {0};
  optim_optimizer *o = make("seed=5", x, g, gs);
  ck_assert_int_eq(optim_snapshot(o, full_grad, &c), OPTIM_OK);
  ck_assert_int_eq(c.calls, 2);
  memcpy(const_probe, c.last_point, sizeof const_probe);
  ck_assert(norm2(const_probe, x) > 0 && norm2(const_probe, x) < 0.2);
  grad_at(x, 0, N, mu);
  grad_at(const_probe, 0, N, pmu);
  double L = norm2(mu, pmu) / norm2(x, const_probe), lmax = L;
  const void *d;
  ck_assert_int_eq(optim_state_buffer(o, 0, "eta", &d, NULL), OPTIM_OK);
  ck_assert_double_eq_tol(*(const double *)d, norm2(mu, NULL) / (sqrt(2.0) * L), 1e-12);
  double best = 1e9;
  for (int outer = 0; outer < 40; outer++) {
    if (outer > 0) {
      memcpy(mu0, mu, sizeof mu);
      memcpy(x0, c.last_point, sizeof x0);
      ck_assert_int_eq(optim_snapshot(o, full_grad, &c), OPTIM_OK);
      grad_at(x, 0, N, mu);
      double l = norm2(mu, mu0) / norm2(x, x0);
      if (l > lmax) lmax = l;
      ck_assert_int_eq(optim_state_buffer(o, 0, "eta", &d, NULL), OPTIM_OK);
      ck_assert_double_eq_tol(*(const double *)d, norm2(mu, NULL) / (sqrt(2.0) * lmax), 1e-12);
      ck_assert_int_eq(optim_state_buffer(o, 0, "lmax", &d, NULL), OPTIM_OK);
      ck_assert_double_eq_tol(*(const double *)d, lmax, 1e-12);
    }
    memcpy(c.last_point, x, sizeof x);
    for (int t = 0; t < N / 4; t++) {
      grad_at(x, 4 * t, 4, g);
      const double *snap;
      ck_assert_int_eq(optim_state_buffer(o, 0, "snapshot", &d, NULL), OPTIM_OK);
      snap = d;
      grad_at(snap, 4 * t, 4, gs);
      ck_assert_int_eq(optim_step(o), OPTIM_OK);
    }
    grad_at(x, 0, N, g);
    best = norm2(g, NULL);
  }
  ck_assert_msg(best < 1e-6, "full gradient norm %g after 40 outer loops", best);
  optim_destroy(o);
}
END_TEST

START_TEST(test_bad_input)
{
  problem();
  double x[D] = {1, 2, 3, 4, 5}, g[D] = {0}, gs[D] = {0};
  cb c = {0};
  optim_optimizer *o = make("lr=0.1", x, g, gs);
  uint64_t h = hash_state(o);
  ck_assert_int_eq(optim_step(o), OPTIM_ECONFIG); /* no snapshot */
  ck_assert(strstr(optim_errmsg(o), "optim_snapshot") != NULL);
  ck_assert_int_eq(optim_snapshot(o, NULL, &c), OPTIM_EINVAL);
  c.fail = 1;
  ck_assert_int_eq(optim_snapshot(o, full_grad, &c), OPTIM_ECALLBACK);
  ck_assert_uint_eq(hash_state(o), h);
  c.fail = 0;
  ck_assert_int_eq(optim_snapshot(o, full_grad, &c), OPTIM_OK);
  ck_assert_int_eq(optim_param_bind_snapshot_grad(o, 0, NULL), OPTIM_OK);
  ck_assert_int_eq(optim_step(o), OPTIM_ECONFIG); /* no snapshot gradient */
  ck_assert_int_eq(optim_param_bind_snapshot_grad(o, 0, x), OPTIM_EINVAL); /* overlaps */
  ck_assert_int_eq(optim_param_bind_snapshot_grad(o, 1, gs), OPTIM_EINVAL);
  ck_assert_int_eq(optim_param_bind_snapshot_grad(o, 0, gs), OPTIM_OK);
  gs[2] = NAN;
  ck_assert_int_eq(optim_step(o), OPTIM_ENONFINITE);
  ck_assert(x[0] == 1 && x[4] == 5);
  gs[2] = 0;
  ck_assert_int_eq(optim_set_clip_norm(o, 1), OPTIM_OK);
  ck_assert_int_eq(optim_step(o), OPTIM_ECONFIG); /* clipping does not apply */
  ck_assert_int_eq(optim_set_clip_norm(o, 0), OPTIM_OK);
  ck_assert_int_eq(optim_step(o), OPTIM_OK);
  optim_destroy(o);
  /* no finite-sum group; a buffer for another algorithm */
  ck_assert_int_eq(optim_create(&o), OPTIM_OK);
  ck_assert_int_eq(optim_add_group(o, "adam", NULL), OPTIM_OK);
  int64_t shape[1] = {D};
  ck_assert_int_eq(optim_add_param(o, 0, "x", OPTIM_FLOAT64, 1, shape, x, g, NULL), OPTIM_OK);
  ck_assert_int_eq(optim_snapshot(o, full_grad, &c), OPTIM_ECONFIG);
  ck_assert_int_eq(optim_param_bind_snapshot_grad(o, 0, gs), OPTIM_EUNSUPPORTED);
  optim_destroy(o);
}
END_TEST

/* A run saved and resumed mid-loop equals the uninterrupted one. */
START_TEST(test_resume)
{
  problem();
  char path[] = "/tmp/optim-svrg-XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  close(fd);
  double x[2][D] = {{0}, {0}}, g[D], gs[D];
  cb c = {0};
  optim_optimizer *o[2];
  for (int r = 0; r < 2; r++) o[r] = make("diagonal=true,seed=3", x[r], g, gs);
  for (int outer = 0; outer < 3; outer++) {
    for (int r = 0; r < 2; r++) ck_assert_int_eq(optim_snapshot(o[r], full_grad, &c), OPTIM_OK);
    for (int t = 0; t < 5; t++) {
      for (int r = 0; r < 2; r++) {
        const void *d;
        ck_assert_int_eq(optim_state_buffer(o[r], 0, "snapshot", &d, NULL), OPTIM_OK);
        grad_at(x[r], 5 * t, 3, g);
        grad_at(d, 5 * t, 3, gs);
        ck_assert_int_eq(optim_step(o[r]), OPTIM_OK);
      }
      if (outer == 1 && t == 2) {
        ck_assert_int_eq(optim_save(o[1], path), OPTIM_OK);
        optim_destroy(o[1]);
        o[1] = make("diagonal=true", x[1], g, gs);
        ck_assert_int_eq(optim_load(o[1], path), OPTIM_OK);
      }
      ck_assert(memcmp(x[0], x[1], sizeof x[0]) == 0);
    }
  }
  optim_destroy(o[0]);
  optim_destroy(o[1]);
  unlink(path);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("finitesum");
  TCase *tc = tcase_create("adasvrg");
  tcase_add_test(tc, test_rule);
  tcase_add_test(tc, test_adaptive_and_convergence);
  tcase_add_test(tc, test_bad_input);
  tcase_add_test(tc, test_resume);
  suite_add_tcase(s, tc);
  return run_suite(s);
}
