/* check_matrix.c - properties of the matrix optimizers that golden data
 * from the authors cannot give (FISMO has no reference code): reductions
 * to Muon, invariants of the Fisher factors, refusal of tensors. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

typedef struct run {
  optim_optimizer *opt;
  double w[12 * 7], g[12 * 7];
} run;

static void run_init(run *r, const char *alg, const char *opts)
{
  int grp;
  int64_t shape[2] = {12, 7};
  ck_assert_int_eq(optim_create(&r->opt), OPTIM_OK);
  ck_assert_int_eq(optim_add_group(r->opt, alg, &grp), OPTIM_OK);
  ck_assert_msg(optim_configure(r->opt, grp, opts) == OPTIM_OK, "%s", optim_errmsg(r->opt));
  for (int i = 0; i < 84; i++) r->w[i] = golden_noise((uint64_t)i, 0, 0, 11);
  ck_assert_int_eq(optim_add_param(r->opt, grp, "w", OPTIM_FLOAT64, 2, shape, r->w, r->g, NULL),
                   OPTIM_OK);
}

static void run_steps(run *r, int n)
{
  for (int k = 1; k <= n; k++) {
    golden_grad(OPTIM_FLOAT64, r->w, r->g, 84, (uint64_t)k, 0, 11);
    ck_assert_msg(optim_step(r->opt) == OPTIM_OK, "%s", optim_errmsg(r->opt));
  }
}

/* With fisher_beta = 1 the factors stay the identity and FISMO is Muon
 * without Nesterov (whose EMA is written as a lerp: rounding only). */
START_TEST(test_fismo_identity_factors_is_muon)
{
  run f, m;
  run_init(&f, "fismo", "fisher_beta=1,weight_decay=0.05");
  run_init(&m, "muon", "nesterov=false,weight_decay=0.05");
  run_steps(&f, 15);
  run_steps(&m, 15);
  double err = 0, mx = 0;
  for (int i = 0; i < 84; i++) {
    err = fmax(err, fabs(f.w[i] - m.w[i]));
    mx = fmax(mx, fabs(m.w[i]));
  }
  ck_assert_msg(err <= 1e-12 * mx, "fismo(fisher_beta=1) vs muon: %g", err / mx);
  const void *P;
  int64_t n;
  ck_assert_int_eq(optim_state_buffer(f.opt, 0, "fisher_left", &P, &n), OPTIM_OK);
  ck_assert_int_eq(n, 12 * 12);
  for (int i = 0; i < 12; i++)
    for (int j = 0; j < 12; j++) ck_assert(((const double *)P)[i * 12 + j] == (i == j));
  optim_destroy(f.opt);
  optim_destroy(m.opt);
}
END_TEST

/* The factors learn: symmetric, trace-normalised (tr P = m, tr Q = n),
 * positive definite, no longer the identity, and the update differs
 * from Muon's. */
START_TEST(test_fismo_factor_invariants)
{
  run f, m;
  run_init(&f, "fismo", "fisher_beta=0.9,damping=1e-3");
  run_init(&m, "muon", "nesterov=false");
  run_steps(&f, 10);
  run_steps(&m, 10);
  const char *names[2] = {"fisher_left", "fisher_right"};
  const int dims[2] = {12, 7};
  for (int k = 0; k < 2; k++) {
    const double *F;
    int64_t n;
    int d = dims[k];
    ck_assert_int_eq(optim_state_buffer(f.opt, 0, names[k], (const void **)&F, &n), OPTIM_OK);
    ck_assert_int_eq(n, d * d);
    double tr = 0, off = 0;
    for (int i = 0; i < d; i++) {
      tr += F[i * d + i];
      ck_assert(F[i * d + i] > 0);
      for (int j = 0; j < d; j++) {
        ck_assert(F[i * d + j] == F[j * d + i]);
        if (i != j) off += fabs(F[i * d + j]);
      }
    }
    ck_assert_msg(fabs(tr - d) < 1e-9 * d, "%s trace %g", names[k], tr);
    ck_assert_msg(off > 1e-3, "%s stayed diagonal", names[k]);
  }
  double diff = 0;
  for (int i = 0; i < 84; i++) diff = fmax(diff, fabs(f.w[i] - m.w[i]));
  ck_assert(diff > 1e-4);
  for (int i = 0; i < 84; i++) ck_assert(isfinite(f.w[i]));
  optim_destroy(f.opt);
  optim_destroy(m.opt);
}
END_TEST

/* Gradients that overflow the Fisher factors: the eigendecomposition fails
 * and the step fails with OPTIM_ENUMERIC; the parameter, its state, its
 * step count and the group's counters stay as they were. */
START_TEST(test_fismo_failure_changes_nothing)
{
  optim_optimizer *opt;
  int g;
  float w[6 * 5], gw[6 * 5];
  int64_t shape[2] = {6, 5};
  for (int i = 0; i < 30; i++) w[i] = gw[i] = (float)golden_noise((uint64_t)i, 0, 0, 2);
  ck_assert_int_eq(optim_create(&opt), OPTIM_OK);
  ck_assert_int_eq(optim_add_group(opt, "fismo", &g), OPTIM_OK);
  ck_assert_int_eq(optim_add_param(opt, g, "w", OPTIM_FLOAT32, 2, shape, w, gw, NULL), OPTIM_OK);
  ck_assert_int_eq(optim_step(opt), OPTIM_OK);
  uint64_t h = hash_bytes(hash_state(opt), w, sizeof w);
  for (int i = 0; i < 30; i++) gw[i] = 1e25f;
  ck_assert_int_eq(optim_step(opt), OPTIM_ENUMERIC);
  ck_assert_uint_eq(hash_bytes(hash_state(opt), w, sizeof w), h);
  int64_t failed, steps, step;
  ck_assert_int_eq(optim_get_counter(opt, g, "failed", &failed), OPTIM_OK);
  ck_assert_int_eq(failed, 0);
  ck_assert_int_eq(optim_get_counter(opt, g, "steps", &steps), OPTIM_OK);
  ck_assert_int_eq(steps, 1);
  ck_assert_int_eq(optim_state_scalar(opt, 0, "step", &step), OPTIM_OK);
  ck_assert_int_eq(step, 1);
  optim_destroy(opt);
}
END_TEST

START_TEST(test_matrix_algorithms_refuse_other_tensors)
{
  const char *algs[4] = {"muon", "normuon", "root", "fismo"};
  int64_t s3[3] = {2, 3, 4}, s1[1] = {5};
  float x[24], gx[24];
  for (int a = 0; a < 4; a++) {
    optim_optimizer *opt;
    int g;
    ck_assert_int_eq(optim_create(&opt), OPTIM_OK);
    ck_assert_int_eq(optim_add_group(opt, algs[a], &g), OPTIM_OK);
    if (!strcmp(algs[a], "root"))
      ck_assert_int_eq(optim_set_string(opt, g, "nonmatrix", "error"), OPTIM_OK);
    ck_assert_int_eq(optim_add_param(opt, g, "b", OPTIM_FLOAT32, 1, s1, x, gx, NULL),
                     OPTIM_EUNSUPPORTED);
    ck_assert(strstr(optim_errmsg(opt), "nonmatrix=adamw") != NULL);
    /* Muon and NorMuon take 3-D batches; ROOT and FISMO only matrices. */
    int want3 = a < 2 ? OPTIM_OK : OPTIM_EUNSUPPORTED;
    ck_assert_int_eq(optim_add_param(opt, g, "c", OPTIM_FLOAT32, 3, s3, x, gx, NULL), want3);
    ck_assert_int_eq(optim_set_string(opt, g, "nonmatrix", "adamw"), OPTIM_OK);
    ck_assert_int_eq(optim_add_param(opt, g, "b", OPTIM_FLOAT32, 1, s1, x, gx, NULL), OPTIM_OK);
    optim_destroy(opt);
  }
}
END_TEST

int main(void)
{
  Suite *s = suite_create("matrix");
  TCase *tc = tcase_create("matrix");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_fismo_identity_factors_is_muon);
  tcase_add_test(tc, test_fismo_factor_invariants);
  tcase_add_test(tc, test_fismo_failure_changes_nothing);
  tcase_add_test(tc, test_matrix_algorithms_refuse_other_tensors);
  suite_add_tcase(s, tc);
  return run_suite(s);
}
