/* check_precond.c - properties of the preconditioned optimizers (SOAP,
 * Shampoo, AdaHessian) that
 * golden data cannot show: the reduction to Adam when nothing is rotated,
 * orthonormal bases and symmetric factors for non-square and N-D tensors
 * (where the eigenbasis is not unique), the first call that only builds
 * the preconditioner, refresh staggering, failure of the decompositions,
 * bad input. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

static optim_optimizer *make(const char *alg, const char *opts, int *grp)
{
  optim_optimizer *o;
  ck_assert_int_eq(optim_create(&o), OPTIM_OK);
  ck_assert_int_eq(optim_add_group(o, alg, grp), OPTIM_OK);
  if (opts) ck_assert_msg(optim_configure(o, *grp, opts) == OPTIM_OK, "%s", optim_errmsg(o));
  return o;
}

/* max_precond_dim = 0: nothing is rotated and SOAP is Adam with eps added
 * to sqrt(v) before the bias correction (lr sqrt(bc2)/bc1 m / (sqrt(v) +
 * eps)), decay after the update, and a first call that only initializes.
 * Checked against that formula, written out here in double. */
START_TEST(test_soap_unrotated_is_adam)
{
  enum { N = 40 };
  double w[N], g[N], ref[N], m[N] = {0}, v[N] = {0};
  int grp;
  int64_t shape[2] = {5, 8};
  const double lr = 0.01, b1 = 0.9, b2 = 0.99, eps = 1e-6, wd = 0.1;
  optim_optimizer *o = make("soap", "lr=0.01,beta1=0.9,beta2=0.99,eps=1e-6,weight_decay=0.1,"
                            "max_precond_dim=0", &grp);
  for (int i = 0; i < N; i++) w[i] = ref[i] = golden_noise((uint64_t)i, 0, 0, 3);
  ck_assert_int_eq(optim_add_param(o, grp, "w", OPTIM_FLOAT64, 2, shape, w, g, NULL), OPTIM_OK);
  ck_assert_int_eq(optim_state_count(o, 0), 5); /* step, initialized, stagger_slot, m, v */
  for (int k = 0; k <= 12; k++) {
    golden_grad(OPTIM_FLOAT64, w, g, N, (uint64_t)k, 0, 3);
    ck_assert_int_eq(optim_step(o), OPTIM_OK);
    if (k == 0) { /* the first call builds the (empty) preconditioner only */
      for (int i = 0; i < N; i++) ck_assert(w[i] == ref[i]);
      continue;
    }
    double step = lr * sqrt(1 - pow(b2, k)) / (1 - pow(b1, k));
    for (int i = 0; i < N; i++) {
      double gi = 0.25 * ref[i] + golden_noise((uint64_t)i, (uint64_t)k, 0, 3);
      m[i] = b1 * m[i] + (1 - b1) * gi;
      v[i] = b2 * v[i] + (1 - b2) * gi * gi;
      double x = ref[i] - step * m[i] / (sqrt(v[i]) + eps);
      ref[i] = x - lr * wd * x;
    }
    for (int i = 0; i < N; i++)
      ck_assert_msg(fabs(w[i] - ref[i]) <= 1e-13 * (1 + fabs(ref[i])), "step %d: %g vs %g", k,
                    w[i], ref[i]);
  }
  int64_t t;
  ck_assert_int_eq(optim_state_scalar(o, 0, "step", &t), OPTIM_OK);
  ck_assert_int_eq(t, 12);
  optim_destroy(o);
}
END_TEST

/* Q^T Q = I and GG symmetric positive semi-definite, for a tall matrix, a
 * vector with precondition_1d, and a 4-D tensor merged to (6, 36) and one
 * left unmerged, after 2 refreshes; the loss of a quadratic decreases. */
static void check_factors(optim_optimizer *o, int index, const int64_t *dims, int k, int dtype)
{
  const void *Qv, *Gv;
  int64_t nq, ng;
  ck_assert_int_eq(optim_state_buffer(o, index, "Q", &Qv, &nq), OPTIM_OK);
  ck_assert_int_eq(optim_state_buffer(o, index, "GG", &Gv, &ng), OPTIM_OK);
  int64_t off = 0, want = 0;
  for (int i = 0; i < k; i++) want += dims[i] * dims[i];
  ck_assert_int_eq(nq, want);
  ck_assert_int_eq(ng, want);
  double tol = dtype == OPTIM_FLOAT32 ? 2e-5 : 1e-12;
  for (int i = 0; i < k; i++) {
    int64_t d = dims[i];
    for (int64_t a = 0; a < d; a++)
      for (int64_t b = 0; b < d; b++) {
        double s = 0, gab, gba;
        for (int64_t r = 0; r < d; r++) {
          double qa = dtype == OPTIM_FLOAT32 ? ((const float *)Qv)[off + r * d + a]
                                             : ((const double *)Qv)[off + r * d + a];
          double qb = dtype == OPTIM_FLOAT32 ? ((const float *)Qv)[off + r * d + b]
                                             : ((const double *)Qv)[off + r * d + b];
          s += qa * qb;
        }
        /* the bases come from float32 decompositions also for float64 */
        ck_assert_msg(fabs(s - (a == b)) < 1e-5, "dim %d: (Q^T Q)[%lld][%lld] = %g", i,
                      (long long)a, (long long)b, s);
        gab = dtype == OPTIM_FLOAT32 ? ((const float *)Gv)[off + a * d + b]
                                     : ((const double *)Gv)[off + a * d + b];
        gba = dtype == OPTIM_FLOAT32 ? ((const float *)Gv)[off + b * d + a]
                                     : ((const double *)Gv)[off + b * d + a];
        ck_assert_msg(fabs(gab - gba) <= tol * (1 + fabs(gab)), "GG not symmetric");
        if (a == b) ck_assert(gab >= 0);
      }
    off += d * d;
  }
}

START_TEST(test_soap_factors)
{
  for (int dt = 0; dt < 2; dt++) {
    int dtype = dt ? OPTIM_FLOAT64 : OPTIM_FLOAT32;
    size_t es = dt ? 8 : 4;
    int grp;
    optim_optimizer *o = make("soap", "lr=0.01,precondition_frequency=3,precondition_1d=true,"
                              "max_precond_dim=40,merge_dims=true,stagger=false", &grp);
    int grp2 = -1;
    ck_assert_int_eq(optim_add_group(o, "soap", &grp2), OPTIM_OK);
    ck_assert_int_eq(optim_configure(o, grp2, "lr=0.01,precondition_frequency=3"), OPTIM_OK);
    const int64_t s0[2] = {16, 8}, s1[1] = {6}, s2[4] = {6, 4, 3, 3}, s3[4] = {6, 4, 3, 3};
    const int64_t *shapes[4] = {s0, s1, s2, s3};
    const int nd[4] = {2, 1, 4, 4}, gr[4] = {grp, grp, grp, grp2};
    size_t n[4] = {128, 6, 216, 216};
    void *w[4], *g[4];
    for (int j = 0; j < 4; j++) {
      w[j] = calloc(n[j], es);
      g[j] = calloc(n[j], es);
      for (size_t i = 0; i < n[j]; i++) {
        double x = golden_noise(i, 0, (uint64_t)j, 5);
        if (dt) ((double *)w[j])[i] = x;
        else ((float *)w[j])[i] = (float)x;
      }
      char name[8];
      snprintf(name, sizeof name, "p%d", j);
      ck_assert_int_eq(optim_add_param(o, gr[j], name, dtype, nd[j], shapes[j], w[j], g[j], NULL),
                       OPTIM_OK);
    }
    double loss0 = 0, loss = 0;
    for (int k = 0; k <= 8; k++) {
      loss = 0;
      for (int j = 0; j < 4; j++) {
        /* gradient of the quadratic sum (w - c)^2 / 2 plus noise */
        for (size_t i = 0; i < n[j]; i++) {
          double x = dt ? ((double *)w[j])[i] : ((float *)w[j])[i];
          double c = golden_noise(i, 99, (uint64_t)j, 5);
          double gi = (x - c) + 0.01 * golden_noise(i, (uint64_t)k, (uint64_t)j, 5);
          if (dt) ((double *)g[j])[i] = gi;
          else ((float *)g[j])[i] = (float)gi;
          loss += 0.5 * (x - c) * (x - c);
        }
      }
      if (k == 0) loss0 = loss;
      ck_assert_msg(optim_step(o) == OPTIM_OK, "%s", optim_errmsg(o));
    }
    ck_assert_msg(loss < 0.98 * loss0, "loss %g -> %g", loss0, loss);
    const int64_t d0[2] = {16, 8}, d1[1] = {6}, d2[2] = {24, 9}, d3[4] = {6, 4, 3, 3};
    check_factors(o, 0, d0, 2, dtype);
    check_factors(o, 1, d1, 1, dtype);
    check_factors(o, 2, d2, 2, dtype); /* (6,4,3,3) merged at 40: (24, 9) */
    check_factors(o, 3, d3, 4, dtype);
    for (int j = 0; j < 4; j++) {
      free(w[j]);
      free(g[j]);
    }
    optim_destroy(o);
  }
}
END_TEST

/* A refresh of a factor of 512 or more forms Q from sgeqrt's 256-column
 * block reflectors itself (lib/algs/soap.c): the new basis must be the Q of
 * the Householder QR of GG Q_old[:, perm], perm sorting diag(Q_old^T GG
 * Q_old) in descending order, i.e. orthonormal with Q^T (GG Q_old[:, perm])
 * upper triangular.  Checked in double from the state before and after. */
START_TEST(test_soap_large_refresh)
{
  enum { D = 520 };
  int grp;
  optim_optimizer *o = make("soap", "lr=0.01,precondition_frequency=2,stagger=false", &grp);
  const int64_t shape[2] = {D, D};
  float *w = malloc(sizeof(float) * D * D), *g = malloc(sizeof(float) * D * D);
  double *Qo = malloc(sizeof(double) * D * D), *P = malloc(sizeof(double) * D * D);
  double *key = malloc(sizeof(double) * D);
  int *perm = malloc(sizeof(int) * D);
  ck_assert_ptr_nonnull(w);
  ck_assert_ptr_nonnull(g);
  ck_assert_ptr_nonnull(Qo);
  ck_assert_ptr_nonnull(P);
  for (size_t i = 0; i < (size_t)D * D; i++) w[i] = (float)golden_noise(i, 0, 7, 5);
  ck_assert_int_eq(optim_add_param(o, grp, "w", OPTIM_FLOAT32, 2, shape, w, g, NULL), OPTIM_OK);
  const void *qv, *gv;
  int64_t n;
  for (int k = 0; k < 3; k++) {
    for (size_t i = 0; i < (size_t)D * D; i++) g[i] = (float)golden_noise(i, (uint64_t)k + 1, 7, 5);
    if (k == 2) { /* the refresh: keep the old bases */
      ck_assert_int_eq(optim_state_buffer(o, 0, "Q", &qv, &n), OPTIM_OK);
      ck_assert_int_eq(n, 2 * D * D);
    }
    if (k == 2)
      for (size_t i = 0; i < (size_t)D * D; i++) Qo[i] = ((const float *)qv)[i];
    ck_assert_msg(optim_step(o) == OPTIM_OK, "%s", optim_errmsg(o));
  }
  ck_assert_int_eq(optim_state_buffer(o, 0, "Q", &qv, &n), OPTIM_OK);
  ck_assert_int_eq(optim_state_buffer(o, 0, "GG", &gv, &n), OPTIM_OK);
  const float *Q = qv, *S = gv; /* the first dim's factor and basis */
  /* P = S Q_old; key_j = q_j^T S q_j */
  for (int i = 0; i < D; i++)
    for (int j = 0; j < D; j++) P[i * D + j] = 0;
  for (int i = 0; i < D; i++)
    for (int l = 0; l < D; l++) {
      double s = S[i * D + l];
      for (int j = 0; j < D; j++) P[i * D + j] += s * Qo[l * D + j];
    }
  double kmax = 0, scale = 0;
  for (int j = 0; j < D; j++) {
    double s = 0;
    for (int i = 0; i < D; i++) s += Qo[i * D + j] * P[i * D + j];
    key[j] = s;
    kmax = fmax(kmax, fabs(s));
  }
  for (int i = 0; i < D * D; i++) scale = fmax(scale, fabs(P[i]));
  /* M = Q^T P; Q orthonormal */
  double *M = calloc((size_t)D * D, sizeof *M);
  char *used = calloc(D, 1);
  ck_assert_ptr_nonnull(M);
  ck_assert_ptr_nonnull(used);
  for (int a = 0; a < D; a++)
    for (int b = 0; b < D; b++) {
      double r = 0, e = 0;
      for (int i = 0; i < D; i++) {
        r += (double)Q[i * D + a] * P[i * D + b];
        e += (double)Q[i * D + a] * Q[i * D + b];
      }
      ck_assert_msg(fabs(e - (a == b)) < 1e-4, "(Q^T Q)[%d][%d] = %g", a, b, e);
      M[a * D + b] = r;
    }
  /* perm sorts the keys in descending order.  The library sorts keys it
   * computed in float32, whose last bits depend on how the BLAS splits its
   * work (threads), so keys closer than 1e-4 of the largest may come in
   * either order: among those, position b takes the one whose column of
   * Q^T P is (most nearly) zero below row b.  Then Q^T P[:, perm] must be
   * upper triangular. */
  for (int b = 0; b < D; b++) {
    double top = -INFINITY, bestr = INFINITY;
    for (int c = 0; c < D; c++)
      if (!used[c]) top = fmax(top, key[c]);
    for (int c = 0; c < D; c++) {
      if (used[c] || key[c] < top - 1e-4 * kmax) continue;
      double r = 0;
      for (int a = b + 1; a < D; a++) r += fabs(M[a * D + c]);
      if (r < bestr) {
        bestr = r;
        perm[b] = c;
      }
    }
    used[perm[b]] = 1;
  }
  for (int b = 0; b < D; b++)
    for (int a = b + 1; a < D; a++)
      ck_assert_msg(fabs(M[a * D + perm[b]]) < 1e-4 * scale * D,
                    "(Q^T S Q_old)[%d][%d] = %g (scale %g)", a, b, M[a * D + perm[b]], scale);
  free(M);
  free(used);
  free(w);
  free(g);
  free(Qo);
  free(P);
  free(key);
  free(perm);
  optim_destroy(o);
}
END_TEST

/* With stagger the k-th parameter refreshes at steps t with (t + k) mod f
 * = 0: parameter 0 as the reference does (so it equals its run with
 * stagger=false), parameter 1 one step earlier (so it differs). */
START_TEST(test_soap_stagger)
{
  double w[2][2][64], g[2][2][64];
  optim_optimizer *o[2];
  int64_t shape[2] = {8, 8};
  for (int s = 0; s < 2; s++) {
    int grp;
    o[s] = make("soap", s ? "precondition_frequency=4,stagger=false" : "precondition_frequency=4",
                &grp);
    for (int j = 0; j < 2; j++) {
      for (int i = 0; i < 64; i++) w[s][j][i] = golden_noise((uint64_t)i, 0, (uint64_t)j, 7);
      char name[4] = {'p', (char)('0' + j), 0, 0};
      ck_assert_int_eq(optim_add_param(o[s], grp, name, OPTIM_FLOAT64, 2, shape, w[s][j],
                                       g[s][j], NULL),
                       OPTIM_OK);
    }
  }
  int differed = 0;
  for (int k = 0; k <= 9; k++) {
    for (int s = 0; s < 2; s++) {
      for (int j = 0; j < 2; j++) golden_grad(OPTIM_FLOAT64, w[s][j], g[s][j], 64, (uint64_t)k,
                                              (uint64_t)j, 7);
      ck_assert_int_eq(optim_step(o[s]), OPTIM_OK);
    }
    ck_assert_msg(memcmp(w[0][0], w[1][0], sizeof w[0][0]) == 0, "parameter 0 differs at %d", k);
    /* parameter 1 refreshes after step 3 instead of 4: step 4 differs */
    if (k <= 3) ck_assert(memcmp(w[0][1], w[1][1], sizeof w[0][1]) == 0);
    else differed |= memcmp(w[0][1], w[1][1], sizeof w[0][1]) != 0;
  }
  ck_assert_msg(differed, "stagger changed nothing for the second parameter");
  optim_destroy(o[0]);
  optim_destroy(o[1]);
}
END_TEST

/* A factor that overflows float32 makes the decomposition fail (in float64
 * too: the factor holds infinities): the step fails with OPTIM_ENUMERIC
 * and nothing changes, not even the other group's element-wise parameter
 * or a counter; bad settings are refused.  Prepare / cancel / commit. */
START_TEST(test_soap_failure_and_bad_input)
{
  float w[16], g[16], u[5], gu[5];
  int grp, other;
  int64_t shape[2] = {4, 4}, su = 5;
  optim_optimizer *o = make("soap", NULL, &grp);
  ck_assert_int_eq(optim_add_group(o, "adamw", &other), OPTIM_OK);
  for (int i = 0; i < 16; i++) w[i] = (float)golden_noise((uint64_t)i, 0, 0, 9);
  for (int i = 0; i < 5; i++) u[i] = gu[i] = 1;
  ck_assert_int_eq(optim_add_param(o, other, "u", OPTIM_FLOAT32, 1, &su, u, gu, NULL), OPTIM_OK);
  ck_assert_int_eq(optim_add_param(o, grp, "w", OPTIM_FLOAT32, 2, shape, w, g, NULL), OPTIM_OK);
  for (int i = 0; i < 16; i++) g[i] = 3e37f * (float)(i % 3 + 1); /* finite; GG overflows */
  uint64_t h = hash_bytes(hash_state(o), u, sizeof u);
  float before[16];
  memcpy(before, w, sizeof w);
  ck_assert_int_eq(optim_step(o), OPTIM_ENUMERIC);
  ck_assert_msg(strstr(optim_errmsg(o), "nothing was changed") != NULL, "%s", optim_errmsg(o));
  int64_t failed = -1, steps = -1;
  ck_assert_int_eq(optim_get_counter(o, grp, "failed", &failed), OPTIM_OK);
  ck_assert_int_eq(optim_get_counter(o, other, "steps", &steps), OPTIM_OK);
  ck_assert(failed == 0 && steps == 0);
  ck_assert_uint_eq(hash_bytes(hash_state(o), u, sizeof u), h);
  ck_assert_mem_eq(w, before, sizeof w);
  /* the two phases: commit needs a prepared step; cancel drops it */
  ck_assert_int_eq(optim_step_commit(o), OPTIM_ECONFIG);
  for (int i = 0; i < 16; i++) g[i] = (float)golden_noise((uint64_t)i, 1, 0, 9);
  ck_assert_int_eq(optim_step_prepare(o, 1.0), OPTIM_OK); /* the first call decomposes */
  ck_assert_int_eq(optim_step_cancel(o), OPTIM_OK);
  ck_assert_uint_eq(hash_bytes(hash_state(o), u, sizeof u), h);
  ck_assert_int_eq(optim_step_commit(o), OPTIM_ECONFIG);
  ck_assert_int_eq(optim_step_prepare(o, 1.0), OPTIM_OK);
  ck_assert_int_eq(optim_step_commit(o), OPTIM_OK);
  int64_t init = 0;
  ck_assert_int_eq(optim_state_scalar(o, 1, "initialized", &init), OPTIM_OK);
  ck_assert_int_eq(init, 1);
  ck_assert(u[0] != 1); /* the adamw parameter stepped */
  h = hash_bytes(hash_state(o), u, sizeof u);
  /* NaN gradient: refused before anything changes */
  for (int i = 0; i < 16; i++) g[i] = 1;
  g[5] = NAN;
  ck_assert_int_eq(optim_step(o), OPTIM_ENONFINITE);
  ck_assert_uint_eq(hash_bytes(hash_state(o), u, sizeof u), h);
  /* settings */
  ck_assert_int_eq(optim_set_double(o, grp, "shampoo_beta", 1.0), OPTIM_ERANGE);
  ck_assert_int_eq(optim_set_double(o, grp, "shampoo_beta", -2.0), OPTIM_ERANGE);
  ck_assert_int_eq(optim_set_int(o, grp, "precondition_frequency", 0), OPTIM_ERANGE);
  ck_assert_int_eq(optim_set_double(o, grp, "beta1", 1.0), OPTIM_ERANGE);
  ck_assert_int_eq(optim_set_int(o, grp, "max_precond_dim", -1), OPTIM_ERANGE);
  ck_assert_uint_eq(hash_bytes(hash_state(o), u, sizeof u), h);
  optim_destroy(o);
}
END_TEST

/* ---- shampoo ------------------------------------------------------------------- */

/* block_size = 1: every block is one element, its two factors are the sum
 * of its squared gradients f, and the preconditioned element is
 * g (f + eps)^(-1/2): diagonal AdaGrad (grafting=none); with Adam grafting
 * each element takes the magnitude of Adam's direction, i.e. becomes it
 * (signs agree).  Checked against those formulas in double. */
START_TEST(test_shampoo_diagonal)
{
  enum { N = 12 };
  for (int graft = 0; graft < 2; graft++) {
    double w[N], g[N], ref[N], f[N] = {0}, v[N] = {0}, m[N] = {0};
    int grp;
    int64_t shape[2] = {3, 4};
    const double lr = 0.05, eps = 1e-10, b1 = 0.5, gb2 = 0.9, geps = 1e-8;
    optim_optimizer *o = make("shampoo", graft ? "block_size=1,lr=0.05,eps=1e-10,beta1=0.5,"
                                                 "graft_beta2=0.9,update_freq=1"
                                               : "block_size=1,lr=0.05,eps=1e-10,beta1=0.5,"
                                                 "grafting=none,update_freq=1",
                              &grp);
    for (int i = 0; i < N; i++) w[i] = ref[i] = golden_noise((uint64_t)i, 0, 0, 13);
    ck_assert_int_eq(optim_add_param(o, grp, "w", OPTIM_FLOAT64, 2, shape, w, g, NULL), OPTIM_OK);
    for (int k = 1; k <= 8; k++) {
      golden_grad(OPTIM_FLOAT64, w, g, N, (uint64_t)k, 0, 13);
      ck_assert_int_eq(optim_step(o), OPTIM_OK);
      for (int i = 0; i < N; i++) {
        double gi = 0.25 * ref[i] + golden_noise((uint64_t)i, (uint64_t)k, 0, 13), d;
        f[i] += gi * gi;
        if (graft) {
          v[i] = gb2 * v[i] + (1 - gb2) * gi * gi;
          d = gi / (sqrt(v[i] / (1 - pow(gb2, k))) + geps);
        } else {
          d = gi / sqrt(f[i] + eps);
        }
        m[i] = b1 * m[i] + (1 - b1) * d;
        ref[i] -= lr * m[i];
      }
      for (int i = 0; i < N; i++)
        ck_assert_msg(fabs(w[i] - ref[i]) <= 1e-12 * (1 + fabs(ref[i])),
                      "grafting %s, step %d: %.17g vs %.17g", graft ? "adam" : "none", k, w[i],
                      ref[i]);
    }
    optim_destroy(o);
  }
}
END_TEST

/* A square matrix in one block, grafting=none, no momentum: after a step
 * the roots satisfy H^4 (F + eps I) = I, and the step is -lr H_0 G H_1. */
START_TEST(test_shampoo_roots)
{
  enum { D = 6 };
  double w[D * D], g[D * D], w0[D * D];
  int grp;
  int64_t shape[2] = {D, D};
  optim_optimizer *o = make("shampoo", "grafting=none,beta1=0,eps=1e-9,update_freq=1,lr=0.1",
                            &grp);
  for (int i = 0; i < D * D; i++) w[i] = w0[i] = golden_noise((uint64_t)i, 0, 0, 17);
  ck_assert_int_eq(optim_add_param(o, grp, "w", OPTIM_FLOAT64, 2, shape, w, g, NULL), OPTIM_OK);
  golden_grad(OPTIM_FLOAT64, w, g, D * D, 1, 0, 17);
  ck_assert_int_eq(optim_step(o), OPTIM_OK);
  const double *F, *H;
  int64_t n;
  ck_assert_int_eq(optim_state_buffer(o, 0, "factors", (const void **)&F, &n), OPTIM_OK);
  ck_assert_int_eq(n, 2 * D * D);
  ck_assert_int_eq(optim_state_buffer(o, 0, "roots", (const void **)&H, &n), OPTIM_OK);
  for (int f = 0; f < 2; f++) {
    const double *Hf = H + f * D * D, *Ff = F + f * D * D;
    double H2[D * D], H4[D * D];
    for (int a = 0; a < D; a++)
      for (int b = 0; b < D; b++) {
        double s = 0;
        for (int c = 0; c < D; c++) s += Hf[a * D + c] * Hf[c * D + b];
        H2[a * D + b] = s;
      }
    for (int a = 0; a < D; a++)
      for (int b = 0; b < D; b++) {
        double s = 0;
        for (int c = 0; c < D; c++) s += H2[a * D + c] * H2[c * D + b];
        H4[a * D + b] = s;
      }
    for (int a = 0; a < D; a++)
      for (int b = 0; b < D; b++) {
        double s = 0;
        for (int c = 0; c < D; c++) s += H4[a * D + c] * (Ff[c * D + b] + (c == b ? 1e-9 : 0));
        ck_assert_msg(fabs(s - (a == b)) < 1e-8, "factor %d: (H^4 F)[%d][%d] = %g", f, a, b, s);
      }
  }
  /* the step: w = w0 - lr H_0 g H_1 */
  for (int a = 0; a < D; a++)
    for (int b = 0; b < D; b++) {
      double s = 0;
      for (int c = 0; c < D; c++)
        for (int e = 0; e < D; e++) s += H[a * D + c] * g[c * D + e] * H[D * D + e * D + b];
      ck_assert_msg(fabs(w[a * D + b] - (w0[a * D + b] - 0.1 * s)) < 1e-12, "step [%d][%d]", a, b);
    }
  optim_destroy(o);
}
END_TEST

/* Grafting keeps each block's norm: with sgd grafting and no momentum a
 * 7x5 matrix in blocks of 3 moves by lr times each gradient block's norm;
 * order-3 and order-4 tensors and a vector step without trouble and
 * reduce a quadratic. */
START_TEST(test_shampoo_blocks_and_grafting)
{
  double w[35], g[35], w0[35];
  int grp;
  int64_t shape[2] = {7, 5};
  optim_optimizer *o = make("shampoo", "grafting=sgd,beta1=0,block_size=3,lr=0.01", &grp);
  for (int i = 0; i < 35; i++) w[i] = w0[i] = golden_noise((uint64_t)i, 0, 0, 19);
  ck_assert_int_eq(optim_add_param(o, grp, "w", OPTIM_FLOAT64, 2, shape, w, g, NULL), OPTIM_OK);
  int64_t nf;
  const void *fb;
  /* blocks: rows 3,3,1 x cols 3,2: factors 3 x (9+9+1) ... = sum over blocks */
  ck_assert_int_eq(optim_state_buffer(o, 0, "factors", &fb, &nf), OPTIM_OK);
  ck_assert_int_eq(nf, (9 + 9 + 1) * 2 + (9 + 4) * 3);
  golden_grad(OPTIM_FLOAT64, w, g, 35, 1, 0, 19);
  ck_assert_int_eq(optim_step(o), OPTIM_OK);
  for (int br = 0; br < 3; br++)
    for (int bc = 0; bc < 2; bc++) {
      double sd = 0, sg = 0;
      for (int r = br * 3; r < br * 3 + 3 && r < 7; r++)
        for (int c = bc * 3; c < bc * 3 + 3 && c < 5; c++) {
          sd += (w[r * 5 + c] - w0[r * 5 + c]) * (w[r * 5 + c] - w0[r * 5 + c]);
          sg += g[r * 5 + c] * g[r * 5 + c];
        }
      ck_assert_msg(fabs(sqrt(sd) - 0.01 * sqrt(sg)) < 1e-12 * (1 + sqrt(sg)),
                    "block (%d,%d): moved %g, want %g", br, bc, sqrt(sd), 0.01 * sqrt(sg));
    }
  optim_destroy(o);

  /* other orders, float32 */
  const int64_t s1[1] = {7}, s3[3] = {3, 4, 5}, s4[4] = {4, 3, 2, 2};
  const int64_t *shapes[3] = {s1, s3, s4};
  const int nd[3] = {1, 3, 4};
  const size_t n[3] = {7, 60, 48};
  o = make("shampoo", "block_size=3,lr=0.05,update_freq=2,eps=1e-6", &grp);
  float *pw[3], *pg[3];
  for (int j = 0; j < 3; j++) {
    pw[j] = malloc(n[j] * sizeof(float));
    pg[j] = malloc(n[j] * sizeof(float));
    for (size_t i = 0; i < n[j]; i++) pw[j][i] = (float)golden_noise(i, 0, (uint64_t)j, 23);
    char name[4] = {'t', (char)('0' + j), 0, 0};
    ck_assert_int_eq(optim_add_param(o, grp, name, OPTIM_FLOAT32, nd[j], shapes[j], pw[j], pg[j],
                                     NULL),
                     OPTIM_OK);
  }
  double loss0 = 0, loss = 0;
  for (int k = 0; k < 30; k++) {
    loss = 0;
    for (int j = 0; j < 3; j++)
      for (size_t i = 0; i < n[j]; i++) {
        pg[j][i] = pw[j][i]; /* the gradient of |w|^2 / 2 */
        loss += 0.5 * pw[j][i] * pw[j][i];
      }
    if (k == 0) loss0 = loss;
    ck_assert_msg(optim_step(o) == OPTIM_OK, "%s", optim_errmsg(o));
  }
  ck_assert_msg(loss < 0.5 * loss0, "loss %g -> %g", loss0, loss);
  for (int j = 0; j < 3; j++) {
    free(pw[j]);
    free(pg[j]);
  }
  optim_destroy(o);
}
END_TEST

/* A factor that overflows makes the inverse root fail (also in float64):
 * the step fails with OPTIM_ENUMERIC and nothing changes; bad settings
 * refused. */
START_TEST(test_shampoo_failure_and_bad_input)
{
  float w[16], g[16];
  int grp;
  int64_t shape[2] = {4, 4};
  optim_optimizer *o = make("shampoo", NULL, &grp);
  for (int i = 0; i < 16; i++) w[i] = (float)golden_noise((uint64_t)i, 0, 0, 29);
  ck_assert_int_eq(optim_add_param(o, grp, "w", OPTIM_FLOAT32, 2, shape, w, g, NULL), OPTIM_OK);
  for (int i = 0; i < 16; i++) g[i] = 3e37f * (float)(i % 3 + 1);
  uint64_t h = hash_state(o);
  float before[16];
  memcpy(before, w, sizeof w);
  ck_assert_int_eq(optim_step(o), OPTIM_ENUMERIC);
  int64_t failed = -1;
  ck_assert_int_eq(optim_get_counter(o, grp, "failed", &failed), OPTIM_OK);
  ck_assert_int_eq(failed, 0);
  ck_assert_uint_eq(hash_state(o), h);
  ck_assert_mem_eq(w, before, sizeof w);
  ck_assert_int_eq(optim_set_string(o, grp, "grafting", "adagrad"), OPTIM_ERANGE);
  ck_assert_int_eq(optim_set_int(o, grp, "block_size", 0), OPTIM_ERANGE);
  ck_assert_int_eq(optim_set_int(o, grp, "update_freq", 0), OPTIM_ERANGE);
  ck_assert_int_eq(optim_set_double(o, grp, "beta2", 1.5), OPTIM_ERANGE);
  ck_assert_uint_eq(hash_state(o), h);
  optim_destroy(o);
}
END_TEST

/* ---- adahessian ------------------------------------------------------------------ */

/* f = sum a_i x_i^2 / 2: g = a x and H z = a z.  The callback computes H z;
 * with beta1 = beta2 = 0, k = 1 and a tiny eps the step is Newton's scaled
 * by lr: x_n = x_0 (1 - lr a / (a + eps))^n, so lr = 1 lands in one step
 * and lr = 0.5 halves x every step.  A bound buffer holding z * (H z) = a
 * gives the same bits. */
static double hv_a[16];
static int calls;
static int quad_hvp(void *ud, int count, const int *params, const void *const *z,
                    void *const *hz)
{
  (void)ud;
  calls++;
  ck_assert_int_eq(count, 1);
  ck_assert_int_eq(params[0], 0);
  for (int i = 0; i < 16; i++) {
    double zi = ((const double *)z[0])[i];
    ck_assert(zi == 1 || zi == -1);
    ((double *)hz[0])[i] = hv_a[i] * zi;
  }
  return 0;
}

START_TEST(test_adahessian_newton)
{
  for (int i = 0; i < 16; i++) hv_a[i] = 0.5 + (double)i;
  for (int mode = 0; mode < 3; mode++) {
    double x[16], g[16], x0[16], lr = mode == 1 ? 1.0 : 0.5;
    int grp;
    int64_t n = 16;
    char opts[128];
    snprintf(opts, sizeof opts, "beta1=0,beta2=0,eps=1e-14,lr=%g", lr);
    optim_optimizer *o = make("adahessian", opts, &grp);
    for (int i = 0; i < 16; i++) x[i] = x0[i] = golden_noise((uint64_t)i, 0, 0, 31);
    ck_assert_int_eq(optim_add_param(o, grp, "x", OPTIM_FLOAT64, 1, &n, x, g, NULL), OPTIM_OK);
    if (mode == 2) ck_assert_int_eq(optim_param_bind_hvp(o, 0, hv_a), OPTIM_OK);
    else ck_assert_int_eq(optim_set_hvp_callback(o, quad_hvp, NULL, 42), OPTIM_OK);
    calls = 0;
    int steps = mode == 1 ? 1 : 20;
    for (int k = 0; k < steps; k++) {
      for (int i = 0; i < 16; i++) g[i] = hv_a[i] * x[i];
      ck_assert_msg(optim_step(o) == OPTIM_OK, "%s", optim_errmsg(o));
    }
    ck_assert_int_eq(calls, mode == 2 ? 0 : steps);
    for (int i = 0; i < 16; i++) {
      double want = x0[i] * pow(1 - lr * hv_a[i] / (hv_a[i] + 1e-14), steps);
      ck_assert_msg(fabs(x[i] - want) <= 1e-12 * fabs(x0[i]) + 1e-300,
                    "mode %d element %d: %g, predicted %g", mode, i, x[i], want);
    }
    optim_destroy(o);
  }
}
END_TEST

/* The averaging of |z * Hz| shows in the second moment (beta2 = 0 after one
 * step: v = D^2): rows (instruction, 2-D), the kernel (image, 4-D), blocks
 * of average_block entries, nothing (image, 2-D). */
START_TEST(test_adahessian_averaging)
{
  static const struct {
    const char *opts;
    int ndim;
    int64_t shape[4];
    size_t run;
  } c[] = {
    {"averaging=instruction", 2, {3, 5}, 5},
    {"averaging=image", 2, {3, 5}, 1},
    {"averaging=image", 4, {2, 2, 3, 3}, 9},
    {"averaging=instruction,average_block=4", 2, {3, 5}, 4},
    {"averaging=none,average_block=4", 2, {3, 5}, 1},
    {"averaging=instruction", 3, {2, 3, 4}, 4},
  };
  for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
    double w[36], g[36], h[36];
    size_t n = 1;
    for (int d = 0; d < c[k].ndim; d++) n *= (size_t)c[k].shape[d];
    int grp;
    char opts[160];
    snprintf(opts, sizeof opts, "beta2=0,%s", c[k].opts);
    optim_optimizer *o = make("adahessian", opts, &grp);
    for (size_t i = 0; i < n; i++) {
      w[i] = 1;
      g[i] = 0.1;
      h[i] = golden_noise(i, 1, 0, 37); /* signed: the algorithm takes |h| */
    }
    ck_assert_int_eq(optim_add_param(o, grp, "w", OPTIM_FLOAT64, c[k].ndim, c[k].shape, w, g,
                                     NULL),
                     OPTIM_OK);
    ck_assert_int_eq(optim_param_bind_hvp(o, 0, h), OPTIM_OK);
    ck_assert_int_eq(optim_step(o), OPTIM_OK);
    const double *v;
    ck_assert_int_eq(optim_state_buffer(o, 0, "exp_hessian_diag_sq", (const void **)&v, NULL),
                     OPTIM_OK);
    for (size_t b = 0; b < n; b += c[k].run) {
      size_t len = n - b < c[k].run ? n - b : c[k].run;
      double s = 0;
      for (size_t e = b; e < b + len; e++) s += fabs(h[e]);
      for (size_t e = b; e < b + len; e++)
        ck_assert_msg(fabs(sqrt(v[e]) - s / (double)len) < 1e-12, "%s: element %zu", c[k].opts,
                      e);
    }
    optim_destroy(o);
  }
}
END_TEST

static int failing_hvp(void *ud, int count, const int *params, const void *const *z,
                       void *const *hz)
{
  (void)ud;
  (void)count;
  (void)params;
  (void)z;
  (void)hz;
  return 7;
}

static int nan_hvp(void *ud, int count, const int *params, const void *const *z, void *const *hz)
{
  (void)ud;
  (void)params;
  (void)z;
  for (int k = 0; k < count; k++) ((float *)hz[k])[0] = NAN;
  return 0;
}

/* No product: refused; a failing callback, NaN products: refused, nothing
 * changes; nonfinite=zero counts NaN entries as 0; binding to another
 * algorithm's parameter is refused. */
START_TEST(test_adahessian_bad_input)
{
  float w[8], g[8], h[8];
  int grp, other;
  int64_t n = 8;
  optim_optimizer *o = make("adahessian", NULL, &grp);
  ck_assert_int_eq(optim_add_group(o, "adamw", &other), OPTIM_OK);
  for (int i = 0; i < 8; i++) {
    w[i] = (float)golden_noise((uint64_t)i, 0, 0, 41);
    g[i] = 0.5f;
    h[i] = 1;
  }
  ck_assert_int_eq(optim_add_param(o, grp, "w", OPTIM_FLOAT32, 1, &n, w, g, NULL), OPTIM_OK);
  ck_assert_int_eq(optim_add_param(o, other, "u", OPTIM_FLOAT32, 1, &n, h, g, NULL), OPTIM_OK);
  uint64_t hs = hash_state(o);
  ck_assert_int_eq(optim_step(o), OPTIM_ECONFIG);
  ck_assert_int_eq(optim_validate(o), OPTIM_ECONFIG);
  ck_assert_int_eq(optim_param_bind_hvp(o, 1, h), OPTIM_EUNSUPPORTED);
  ck_assert_int_eq(optim_param_bind_hvp(o, 0, w), OPTIM_EINVAL); /* overlaps the parameter */
  ck_assert_int_eq(optim_set_hvp_callback(o, failing_hvp, NULL, 1), OPTIM_OK);
  ck_assert_int_eq(optim_step(o), OPTIM_ECALLBACK);
  ck_assert_uint_eq(hash_state(o), hs);
  ck_assert_int_eq(optim_set_hvp_callback(o, nan_hvp, NULL, 1), OPTIM_OK);
  ck_assert_int_eq(optim_step(o), OPTIM_ENONFINITE);
  ck_assert_uint_eq(hash_state(o), hs);
  float hb[8];
  for (int i = 0; i < 8; i++) hb[i] = 2;
  hb[3] = INFINITY;
  ck_assert_int_eq(optim_param_bind_hvp(o, 0, hb), OPTIM_OK); /* the bound buffer wins */
  ck_assert_int_eq(optim_step(o), OPTIM_ENONFINITE);
  ck_assert_uint_eq(hash_state(o), hs);
  ck_assert_int_eq(optim_set_string(o, grp, "nonfinite", "zero"), OPTIM_OK);
  ck_assert_int_eq(optim_step(o), OPTIM_OK);
  const float *v;
  ck_assert_int_eq(optim_state_buffer(o, 0, "exp_hessian_diag_sq", (const void **)&v, NULL),
                   OPTIM_OK);
  ck_assert(v[3] == 0 && v[2] > 0);
  ck_assert_int_eq(optim_set_double(o, grp, "hessian_power", 0), OPTIM_ERANGE);
  ck_assert_int_eq(optim_set_string(o, grp, "averaging", "mean"), OPTIM_ERANGE);
  optim_destroy(o);
}
END_TEST

/* Resume: the optimizer's z come from the group's step count, which the
 * checkpoint keeps, so a run saved after 5 steps and continued in a new
 * optimizer equals the uninterrupted one bit for bit. */
START_TEST(test_adahessian_resume)
{
  for (int i = 0; i < 16; i++) hv_a[i] = 0.5 + (double)i;
  double x[2][16], g[2][16];
  optim_optimizer *o[2];
  int64_t n = 16;
  char path[] = "/tmp/optim-adah-XXXXXX";
  int fd = mkstemp(path);
  ck_assert(fd >= 0);
  close(fd);
  for (int r = 0; r < 2; r++) {
    int grp;
    o[r] = make("adahessian", "lr=0.1", &grp);
    for (int i = 0; i < 16; i++) x[r][i] = golden_noise((uint64_t)i, 0, 0, 43);
    ck_assert_int_eq(optim_add_param(o[r], grp, "x", OPTIM_FLOAT64, 1, &n, x[r], g[r], NULL),
                     OPTIM_OK);
    ck_assert_int_eq(optim_set_hvp_callback(o[r], quad_hvp, NULL, 9), OPTIM_OK);
  }
  for (int k = 0; k < 10; k++) {
    for (int r = 0; r < 2; r++) {
      if (r == 1 && k == 5) { /* save, and continue in a fresh optimizer */
        ck_assert_int_eq(optim_save(o[1], path), OPTIM_OK);
        optim_destroy(o[1]);
        int grp;
        o[1] = make("adahessian", "lr=0.1", &grp);
        ck_assert_int_eq(optim_add_param(o[1], grp, "x", OPTIM_FLOAT64, 1, &n, x[1], g[1], NULL),
                         OPTIM_OK);
        ck_assert_int_eq(optim_set_hvp_callback(o[1], quad_hvp, NULL, 9), OPTIM_OK);
        ck_assert_int_eq(optim_load(o[1], path), OPTIM_OK);
      }
      for (int i = 0; i < 16; i++) g[r][i] = hv_a[i] * x[r][i];
      ck_assert_int_eq(optim_step(o[r]), OPTIM_OK);
    }
  }
  ck_assert_mem_eq(x[0], x[1], sizeof x[0]);
  unlink(path);
  optim_destroy(o[0]);
  optim_destroy(o[1]);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("precond");
  TCase *tc = tcase_create("soap");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_soap_unrotated_is_adam);
  tcase_add_test(tc, test_soap_factors);
  tcase_add_test(tc, test_soap_stagger);
  tcase_add_test(tc, test_soap_large_refresh);
  tcase_add_test(tc, test_soap_failure_and_bad_input);
  suite_add_tcase(s, tc);
  TCase *ts = tcase_create("shampoo");
  tcase_set_timeout(ts, 120);
  tcase_add_test(ts, test_shampoo_diagonal);
  tcase_add_test(ts, test_shampoo_roots);
  tcase_add_test(ts, test_shampoo_blocks_and_grafting);
  tcase_add_test(ts, test_shampoo_failure_and_bad_input);
  suite_add_tcase(s, ts);
  TCase *ta = tcase_create("adahessian");
  tcase_add_test(ta, test_adahessian_newton);
  tcase_add_test(ta, test_adahessian_averaging);
  tcase_add_test(ta, test_adahessian_bad_input);
  tcase_add_test(ta, test_adahessian_resume);
  suite_add_tcase(s, ta);
  return run_suite(s);
}
