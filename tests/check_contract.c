/* check_contract.c - the step contract's extensions: global-norm clipping
 * fused into the step (optimizer-wide and per group), the norm reported,
 * per-parameter weight-decay scales and name masks, writable state, their
 * checkpoints, adagrad_norm (which reads the core's norms), and schedules
 * attached to hyperparameters, and the batch-size scaling rules. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

static optim_optimizer *make(const char *alg, const char *opts)
{
  optim_optimizer *o;
  ck_assert_int_eq(optim_create(&o), OPTIM_OK);
  ck_assert_int_eq(optim_add_group(o, alg, NULL), OPTIM_OK);
  if (opts) ck_assert_msg(optim_configure(o, 0, opts) == OPTIM_OK, "%s", optim_errmsg(o));
  return o;
}

static void add(optim_optimizer *o, int grp, const char *name, double *x, double *g, int n)
{
  int64_t shape[1] = {n};
  ck_assert_msg(optim_add_param(o, grp, name, OPTIM_FLOAT64, 1, shape, x, g, NULL) == OPTIM_OK,
                "%s", optim_errmsg(o));
}

/* sgd, lr 1: the step is exactly -factor * g, factor as torch's
 * clip_grad_norm_ computes it; the optimizer's limit, then the group's. */
START_TEST(test_clip_global_and_group)
{
  optim_optimizer *o = make("sgd", "lr=1");
  int g1;
  ck_assert_int_eq(optim_add_group(o, "sgd", &g1), OPTIM_OK);
  ck_assert_int_eq(optim_configure(o, g1, "lr=1,clip_norm=1"), OPTIM_OK);
  double x[2] = {0, 0}, gx[2] = {3, 4}, y[2] = {0, 0}, gy[2] = {0, 12};
  add(o, 0, "x", x, gx, 2);
  add(o, g1, "y", y, gy, 2);
  double norm;
  ck_assert_int_eq(optim_get_grad_norm(o, -1, &norm), OPTIM_ECONFIG); /* no step yet */
  ck_assert_int_eq(optim_set_clip_norm(o, 6.5), OPTIM_OK);
  ck_assert_int_eq(optim_step(o), OPTIM_OK);
  /* global norm sqrt(9 + 16 + 144) = 13 -> factor 6.5 / (13 + 1e-6) */
  double f = 6.5 / (13 + 1e-6);
  ck_assert_int_eq(optim_get_grad_norm(o, -1, &norm), OPTIM_OK);
  ck_assert_double_eq_tol(norm, 13, 1e-12);
  ck_assert_double_eq_tol(x[0], -3 * f, 1e-15);
  ck_assert_double_eq_tol(x[1], -4 * f, 1e-15);
  /* group 1 had norm 12, 12 f after the global clip, then limited to 1 */
  double fy = f * (1 / (12 * f + 1e-6));
  ck_assert_double_eq_tol(y[1], -12 * fy, 1e-12);
  ck_assert_int_eq(optim_get_grad_norm(o, g1, &norm), OPTIM_OK);
  ck_assert_double_eq_tol(norm, 12, 1e-12);
  ck_assert_int_eq(optim_get_grad_norm(o, 0, &norm), OPTIM_OK);
  ck_assert_double_eq_tol(norm, 5, 1e-12);
  /* below the limit nothing is scaled: exactly -g */
  ck_assert_int_eq(optim_set_clip_norm(o, 100), OPTIM_OK);
  ck_assert_int_eq(optim_set_double(o, g1, "clip_norm", 0), OPTIM_OK);
  double x0 = x[0], y1 = y[1];
  ck_assert_int_eq(optim_step(o), OPTIM_OK);
  ck_assert(x[0] == x0 - 3);
  ck_assert(y[1] == y1 - 12);
  /* off: no norm */
  ck_assert_int_eq(optim_set_clip_norm(o, 0), OPTIM_OK);
  ck_assert_int_eq(optim_step(o), OPTIM_OK);
  ck_assert_int_eq(optim_get_grad_norm(o, -1, &norm), OPTIM_ECONFIG);
  ck_assert_int_eq(optim_get_grad_norm(o, 0, &norm), OPTIM_ECONFIG);
  ck_assert_int_eq(optim_get_grad_norm(o, 2, &norm), OPTIM_EINVAL);
  ck_assert_int_eq(optim_get_grad_norm(o, -1, NULL), OPTIM_EINVAL);
  ck_assert_int_eq(optim_set_clip_norm(o, -1), OPTIM_ERANGE);
  ck_assert_int_eq(optim_set_clip_norm(o, NAN), OPTIM_ENONFINITE);
  ck_assert_int_eq(optim_set_double(o, 0, "clip_norm", -1), OPTIM_ERANGE);
  optim_destroy(o);
}
END_TEST

/* Clipping is the gradient scale: adamw clipped equals adamw stepped with
 * optim_step_scaled(factor), bit for bit, in float32 and float64; a
 * frozen parameter and one without gradient do not count. */
START_TEST(test_clip_equals_scaled_step)
{
  for (int dt = 0; dt < 2; dt++) {
    int dtype = dt ? OPTIM_FLOAT64 : OPTIM_FLOAT32;
    size_t es = dt ? 8 : 4, n = 300;
    optim_optimizer *o[2];
    void *w[2][3], *gr[3];
    for (int j = 0; j < 3; j++) gr[j] = calloc(n, es);
    for (int r = 0; r < 2; r++) {
      o[r] = make("adamw", "lr=0.01");
      for (int j = 0; j < 3; j++) {
        w[r][j] = calloc(n, es);
        int64_t shape[1] = {(int64_t)n};
        char name[4] = {'p', (char)('0' + j), 0};
        ck_assert_int_eq(optim_add_param(o[r], 0, name, dtype, 1, shape, w[r][j], j == 2 ? NULL : gr[j], NULL),
                         OPTIM_OK);
      }
    }
    ck_assert_int_eq(optim_set_clip_norm(o[0], 0.5), OPTIM_OK);
    for (int k = 1; k <= 5; k++) {
      double ss = 0;
      for (int j = 0; j < 3; j++) {
        golden_grad(dtype, w[0][j], gr[j], n, (uint64_t)k, (uint64_t)j, 3);
        for (size_t i = 0; j < 2 && i < n; i++) {
          double v = dt ? ((double *)gr[j])[i] : ((float *)gr[j])[i];
          ss += v * v;
        }
      }
      ck_assert_int_eq(optim_step(o[0]), OPTIM_OK);
      double norm;
      ck_assert_int_eq(optim_get_grad_norm(o[0], -1, &norm), OPTIM_OK);
      ck_assert_double_eq_tol(norm, sqrt(ss), 1e-12 * sqrt(ss));
      /* the factor from the reported norm, as the library computes it */
      double f = 0.5 / (norm + 1e-6);
      ck_assert(f < 1);
      ck_assert_int_eq(optim_step_scaled(o[1], f), OPTIM_OK);
      for (int j = 0; j < 3; j++) ck_assert(memcmp(w[0][j], w[1][j], n * es) == 0);
    }
    for (int r = 0; r < 2; r++) {
      for (int j = 0; j < 3; j++) free(w[r][j]);
      optim_destroy(o[r]);
    }
    for (int j = 0; j < 3; j++) free(gr[j]);
  }
}
END_TEST

/* Non-finite entries read as 0 (nonfinite=zero) count as 0 in the norm;
 * clipping a parameter stepped over a range is refused, nothing changes. */
START_TEST(test_clip_nonfinite_and_ranges)
{
  optim_optimizer *o = make("sgd", "lr=1,nonfinite=zero,clip_norm=1");
  double x[3] = {0, 0, 0}, g[3] = {3, NAN, 4};
  add(o, 0, "x", x, g, 3);
  ck_assert_int_eq(optim_step(o), OPTIM_OK);
  double norm;
  ck_assert_int_eq(optim_get_grad_norm(o, 0, &norm), OPTIM_OK);
  ck_assert_double_eq_tol(norm, 5, 1e-12);
  ck_assert_double_eq_tol(x[0], -3 / (5 + 1e-6), 1e-15);
  ck_assert(x[1] == 0);
  optim_destroy(o);

  /* the norm's read is also the non-finite check of those gradients:
   * error and skip policies, optim_validate, and squares past the double
   * range (finite values: not an error) */
  o = make("adagrad_norm", NULL);
  int g1;
  ck_assert_int_eq(optim_add_group(o, "sgd", &g1), OPTIM_OK);
  ck_assert_int_eq(optim_configure(o, g1, "lr=1,nonfinite=skip"), OPTIM_OK);
  double u[2] = {1, 2}, gu[2] = {1, INFINITY}, w[2] = {1, 2}, gw[2] = {NAN, 1};
  add(o, 0, "u", u, gu, 2);
  add(o, g1, "w", w, gw, 2);
  ck_assert_int_eq(optim_set_clip_norm(o, 1), OPTIM_OK);
  ck_assert_int_eq(optim_validate(o), OPTIM_ENONFINITE);
  ck_assert_int_eq(optim_step(o), OPTIM_ENONFINITE);
  ck_assert(strstr(optim_errmsg(o), "'u'") != NULL);
  ck_assert(u[0] == 1 && w[0] == 1);
  gu[1] = 1; /* now only the skip group's gradient is bad */
  ck_assert_int_eq(optim_step(o), OPTIM_OK);
  ck_assert(w[0] == 1 && w[1] == 2 && u[0] != 1);
  int64_t skipped;
  ck_assert_int_eq(optim_get_counter(o, g1, "skipped", &skipped), OPTIM_OK);
  ck_assert_int_eq(skipped, 1);
  optim_destroy(o);
  o = make("sgd", "lr=1,clip_norm=1");
  double big[2] = {0, 0}, gbig[2] = {1e200, 1e200};
  add(o, 0, "big", big, gbig, 2);
  ck_assert_int_eq(optim_step(o), OPTIM_OK); /* norm inf: torch's factor 0 */
  ck_assert(big[0] == 0);
  optim_destroy(o);

  o = make("sgd", "lr=1,clip_norm=1");
  double y[4] = {1, 2, 3, 4}, gy[4] = {1, 1, 1, 1};
  add(o, 0, "y", y, gy, 4);
  ck_assert_int_eq(optim_param_set_range(o, 0, 1, 3), OPTIM_OK);
  ck_assert_int_eq(optim_step(o), OPTIM_ECONFIG);
  ck_assert(strstr(optim_errmsg(o), "range") != NULL);
  ck_assert(y[1] == 2 && y[2] == 3);
  ck_assert_int_eq(optim_set_double(o, 0, "clip_norm", 0), OPTIM_OK);
  ck_assert_int_eq(optim_step(o), OPTIM_OK);
  ck_assert(y[1] == 1 && y[2] == 2 && y[0] == 1);
  optim_destroy(o);
}
END_TEST

/* adamw with a zero gradient only decays: p (1 - lr wd s), s the scale. */
START_TEST(test_decay_scales_and_masks)
{
  optim_optimizer *o = make("adamw", "lr=0.1,weight_decay=0.5");
  double a[2] = {1, 1}, b[2] = {1, 1}, c[2] = {1, 1}, z[2] = {0, 0};
  add(o, 0, "fc.weight", a, z, 2);
  add(o, 0, "fc.bias", b, z, 2);
  add(o, 0, "ln.norm.weight", c, z, 2);
  int n = -1;
  ck_assert_int_eq(optim_set_decay_mask(o, "*.bias, *norm*", 0, &n), OPTIM_OK);
  ck_assert_int_eq(n, 2);
  double s;
  ck_assert_int_eq(optim_param_get_decay_scale(o, 0, &s), OPTIM_OK);
  ck_assert(s == 1);
  ck_assert_int_eq(optim_param_get_decay_scale(o, 1, &s), OPTIM_OK);
  ck_assert(s == 0);
  ck_assert_int_eq(optim_param_set_decay_scale(o, 2, 2), OPTIM_OK);
  ck_assert_int_eq(optim_step(o), OPTIM_OK);
  ck_assert(a[0] == 1 - 0.1 * 0.5);
  ck_assert(b[0] == 1);
  ck_assert(c[0] == 1 - 0.1 * (0.5 * 2));
  /* all or nothing */
  ck_assert_int_eq(optim_set_decay_mask(o, "*.nothing", 0, &n), OPTIM_EUNKNOWN);
  ck_assert_int_eq(optim_set_decay_mask(o, "fc.*", -1, &n), OPTIM_ERANGE);
  ck_assert_int_eq(optim_set_decay_mask(o, "fc.*", INFINITY, &n), OPTIM_ENONFINITE);
  ck_assert_int_eq(optim_set_decay_mask(o, NULL, 0, &n), OPTIM_EINVAL);
  ck_assert_int_eq(optim_param_set_decay_scale(o, 3, 1), OPTIM_EINVAL);
  ck_assert_int_eq(optim_param_get_decay_scale(o, 0, NULL), OPTIM_EINVAL);
  int g2;
  ck_assert_int_eq(optim_add_group(o, "adagrad_norm", &g2), OPTIM_OK);
  double d[2] = {1, 1};
  add(o, g2, "fc2.bias", d, z, 2);
  ck_assert_int_eq(optim_set_decay_mask(o, "*.bias", 0.5, &n), OPTIM_EUNSUPPORTED);
  ck_assert_int_eq(optim_param_get_decay_scale(o, 1, &s), OPTIM_OK);
  ck_assert(s == 0); /* unchanged */
  ck_assert_int_eq(optim_param_set_decay_scale(o, 3, 0), OPTIM_EUNSUPPORTED);
  optim_destroy(o);
}
END_TEST

/* Checkpoints keep the clip settings and decay scales; optim_load_params
 * keeps the optimizer's own scales. */
START_TEST(test_checkpoint_keeps_settings)
{
  char path[] = "/tmp/optim-contract-XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  close(fd);
  optim_optimizer *o = make("adamw", "clip_norm=2.5");
  double a[2] = {1, 1}, z[2] = {0.5, 0.25};
  add(o, 0, "w", a, z, 2);
  ck_assert_int_eq(optim_param_set_decay_scale(o, 0, 0.25), OPTIM_OK);
  ck_assert_int_eq(optim_set_clip_norm(o, 3), OPTIM_OK);
  ck_assert_int_eq(optim_step(o), OPTIM_OK);
  ck_assert_int_eq(optim_save(o, path), OPTIM_OK);
  optim_optimizer *q = make("adamw", NULL);
  double b[2] = {1, 1};
  add(q, 0, "w", b, z, 2);
  ck_assert_int_eq(optim_load(q, path), OPTIM_OK);
  double v, s;
  ck_assert_int_eq(optim_get_double(q, 0, "clip_norm", &v), OPTIM_OK);
  ck_assert(v == 2.5);
  ck_assert_int_eq(optim_param_get_decay_scale(q, 0, &s), OPTIM_OK);
  ck_assert(s == 0.25);
  /* the optimizer's limit came back too: the norm is reported */
  memcpy(b, a, sizeof b);
  ck_assert_int_eq(optim_step(q), OPTIM_OK);
  ck_assert_int_eq(optim_get_grad_norm(q, -1, &v), OPTIM_OK);
  optim_destroy(q);
  q = make("adamw", NULL);
  add(q, 0, "w", b, z, 2);
  int idx = 0;
  ck_assert_int_eq(optim_load_params(q, path, &idx, 1), OPTIM_OK);
  ck_assert_int_eq(optim_param_get_decay_scale(q, 0, &s), OPTIM_OK);
  ck_assert(s == 1);
  optim_destroy(q);
  optim_destroy(o);
  unlink(path);
}
END_TEST

START_TEST(test_state_set_buffer)
{
  optim_optimizer *o = make("adam", "lr=0.1");
  double x[3] = {1, 2, 3}, g[3] = {1, 1, 1};
  add(o, 0, "x", x, g, 3);
  ck_assert_int_eq(optim_step(o), OPTIM_OK);
  double m[3] = {0.5, -0.5, 0}, bad[3] = {0, NAN, 0};
  ck_assert_int_eq(optim_state_set_buffer(o, 0, "exp_avg", m, 2), OPTIM_ESHAPE);
  ck_assert_int_eq(optim_state_set_buffer(o, 0, "exp_avg", bad, 3), OPTIM_ENONFINITE);
  ck_assert_int_eq(optim_state_set_buffer(o, 0, "nope", m, 3), OPTIM_EUNKNOWN);
  ck_assert_int_eq(optim_state_set_buffer(o, 0, "step", m, 1), OPTIM_EUNKNOWN);
  ck_assert_int_eq(optim_state_set_buffer(o, 0, "exp_avg", NULL, 3), OPTIM_EINVAL);
  ck_assert_int_eq(optim_state_set_buffer(o, 0, "exp_avg", m, 3), OPTIM_OK);
  const void *d;
  ck_assert_int_eq(optim_state_buffer(o, 0, "exp_avg", &d, NULL), OPTIM_OK);
  ck_assert(memcmp(d, m, sizeof m) == 0);
  optim_destroy(o);
}
END_TEST

/* adagrad_norm: b^2 = b0^2 + sum ||g||^2, p -= lr g / b, over the group
 * (default) or per tensor; b = 0 moves nothing. */
START_TEST(test_adagrad_norm)
{
  for (int scope = 0; scope < 2; scope++) {
    optim_optimizer *o = make("adagrad_norm", scope ? "lr=0.5,b0=0.1,scope=tensor" : "lr=0.5,b0=0.1");
    double x[2] = {1, -1}, y[3] = {2, 0, 1}, gx[2], gy[3];
    add(o, 0, "x", x, gx, 2);
    add(o, 0, "y", y, gy, 3);
    double bx = 0.01, by = 0.01, ex[2] = {1, -1}, ey[3] = {2, 0, 1};
    for (int k = 1; k <= 6; k++) {
      double sx = 0, sy = 0;
      for (int i = 0; i < 2; i++) sx += (gx[i] = sin(k + i)) * gx[i];
      for (int i = 0; i < 3; i++) sy += (gy[i] = cos(2 * k + i)) * gy[i];
      bx += scope ? sx : sx + sy;
      by += scope ? sy : sx + sy;
      for (int i = 0; i < 2; i++) ex[i] -= 0.5 / sqrt(bx) * gx[i];
      for (int i = 0; i < 3; i++) ey[i] -= 0.5 / sqrt(by) * gy[i];
      ck_assert_int_eq(optim_step(o), OPTIM_OK);
      for (int i = 0; i < 2; i++) ck_assert_double_eq_tol(x[i], ex[i], 1e-14);
      for (int i = 0; i < 3; i++) ck_assert_double_eq_tol(y[i], ey[i], 1e-14);
    }
    const void *d;
    ck_assert_int_eq(optim_state_buffer(o, 1, "sum_sq", &d, NULL), OPTIM_OK);
    ck_assert_double_eq_tol(*(const double *)d, by, 1e-12);
    optim_destroy(o);
  }
  optim_optimizer *o = make("adagrad_norm", NULL);
  double x[2] = {1, 2}, z[2] = {0, 0};
  add(o, 0, "x", x, z, 2);
  ck_assert_int_eq(optim_step(o), OPTIM_OK);
  ck_assert(x[0] == 1 && x[1] == 2);
  ck_assert_int_eq(optim_set_string(o, 0, "scope", "model"), OPTIM_ERANGE);
  ck_assert_int_eq(optim_set_double(o, 0, "b0", -1), OPTIM_ERANGE);
  optim_destroy(o);
}
END_TEST

/* Schedules: the value a step uses is base * factor(steps); setters set
 * the base; NULL restores it; an out-of-range scheduled value fails the
 * step; a checkpoint resumes the schedule exactly. */
START_TEST(test_schedules)
{
  optim_optimizer *o = make("sgd", "lr=0.1");
  double x[1] = {0}, g[1] = {1}, lr;
  add(o, 0, "x", x, g, 1);
  ck_assert_int_eq(optim_set_schedule(o, 0, "lr", "linear:total=4"), OPTIM_OK);
  double want = 0;
  for (int t = 0; t < 6; t++) {
    double f = t < 4 ? 1 - t / 4.0 : 0;
    ck_assert_int_eq(optim_get_double(o, 0, "lr", &lr), OPTIM_OK);
    ck_assert_double_eq_tol(lr, 0.1 * f, 1e-15);
    ck_assert_int_eq(optim_step(o), OPTIM_OK);
    want -= 0.1 * f;
    ck_assert_double_eq_tol(x[0], want, 1e-15);
  }
  /* a setter sets the base */
  ck_assert_int_eq(optim_set_schedule(o, 0, "lr", "constant"), OPTIM_OK);
  ck_assert_int_eq(optim_set_double(o, 0, "lr", 0.5), OPTIM_OK);
  ck_assert_int_eq(optim_get_double(o, 0, "lr", &lr), OPTIM_OK);
  ck_assert(lr == 0.5);
  const double tab[3] = {1, 0.5, 0.25};
  ck_assert_int_eq(optim_set_schedule_table(o, 0, "lr", tab, 3), OPTIM_OK);
  ck_assert_int_eq(optim_get_double(o, 0, "lr", &lr), OPTIM_OK);
  ck_assert(lr == 0.5 * 0.25); /* 6 steps done: past the end, the last factor */
  ck_assert_int_eq(optim_set_schedule(o, 0, "lr", NULL), OPTIM_OK);
  ck_assert_int_eq(optim_get_double(o, 0, "lr", &lr), OPTIM_OK);
  ck_assert(lr == 0.5);
  /* bad input changes nothing */
  ck_assert_int_eq(optim_set_schedule(o, 0, "lr", "cosine"), OPTIM_EINVAL);
  ck_assert_int_eq(optim_set_schedule(o, 0, "lr", "bogus:total=3"), OPTIM_EUNKNOWN);
  ck_assert_int_eq(optim_set_schedule(o, 0, "nesterov", "constant"), OPTIM_ETYPE);
  ck_assert_int_eq(optim_set_schedule(o, 0, "nonfinite", "constant"), OPTIM_ETYPE);
  ck_assert_int_eq(optim_set_schedule(o, 0, "nope", "constant"), OPTIM_EUNKNOWN);
  ck_assert_int_eq(optim_set_schedule(o, 1, "lr", "constant"), OPTIM_EINVAL);
  const double neg[2] = {1, -1}, nan_[1] = {NAN};
  ck_assert_int_eq(optim_set_schedule_table(o, 0, "lr", neg, 2), OPTIM_ERANGE);
  ck_assert_int_eq(optim_set_schedule_table(o, 0, "lr", nan_, 1), OPTIM_ENONFINITE);
  ck_assert_int_eq(optim_set_schedule_table(o, 0, "lr", tab, 0), OPTIM_EINVAL);
  ck_assert_int_eq(optim_get_double(o, 0, "lr", &lr), OPTIM_OK);
  ck_assert(lr == 0.5);
  /* momentum 0.6 scaled by 2 leaves [0, inf)? momentum has no upper
   * bound in sgd; dampening does not either: use adam's beta1 < 1 */
  optim_destroy(o);
  o = make("adam", "beta1=0.6");
  double y[1] = {1}, gy[1] = {1};
  add(o, 0, "y", y, gy, 1);
  const double up[2] = {1, 2};
  ck_assert_int_eq(optim_set_schedule_table(o, 0, "beta1", up, 2), OPTIM_OK);
  ck_assert_int_eq(optim_step(o), OPTIM_OK);
  double y1 = y[0];
  ck_assert_int_eq(optim_step(o), OPTIM_ERANGE);
  ck_assert(strstr(optim_errmsg(o), "beta1") != NULL);
  ck_assert(y[0] == y1);
  optim_destroy(o);
}
END_TEST

/* Saving mid-schedule and resuming gives the uninterrupted trajectory. */
START_TEST(test_schedule_resume)
{
  char path[] = "/tmp/optim-sched-XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  close(fd);
  double w[2][4], gr[4];
  optim_optimizer *o[2];
  const double tab[5] = {0.1, 0.4, 0.7, 1.0, 0.5};
  for (int r = 0; r < 2; r++) {
    o[r] = make("adamw", "lr=0.01");
    for (int i = 0; i < 4; i++) w[r][i] = i;
    add(o[r], 0, "w", w[r], gr, 4);
    ck_assert_int_eq(optim_set_schedule(o[r], 0, "lr", "warmup_cosine:warmup=3,total=12"),
                     OPTIM_OK);
    ck_assert_int_eq(optim_set_schedule_table(o[r], 0, "weight_decay", tab, 5), OPTIM_OK);
  }
  for (int k = 1; k <= 10; k++) {
    for (int r = 0; r < 2; r++) {
      golden_grad(OPTIM_FLOAT64, w[r], gr, 4, (uint64_t)k, 0, 11);
      ck_assert_int_eq(optim_step(o[r]), OPTIM_OK);
    }
    if (k == 4) { /* replace o[1] by a fresh optimizer loaded from a checkpoint */
      ck_assert_int_eq(optim_save(o[1], path), OPTIM_OK);
      optim_destroy(o[1]);
      o[1] = make("adamw", "lr=0.5,weight_decay=0");
      add(o[1], 0, "w", w[1], gr, 4);
      ck_assert_int_eq(optim_load(o[1], path), OPTIM_OK);
    }
    ck_assert(memcmp(w[0], w[1], sizeof w[0]) == 0);
  }
  double a, b;
  ck_assert_int_eq(optim_get_double(o[1], 0, "lr", &a), OPTIM_OK);
  ck_assert_int_eq(optim_get_double(o[0], 0, "lr", &b), OPTIM_OK);
  ck_assert(a == b);
  optim_destroy(o[0]);
  optim_destroy(o[1]);
  unlink(path);
}
END_TEST

/* Batch-size scaling rules: linear for sgd, sqrt for adam-type, sqrt_sde
 * for betas and eps too; scheduled values scale their base; out-of-range
 * results refused with nothing changed. */
START_TEST(test_scale_batch_size)
{
  optim_optimizer *o = make("sgd", "lr=0.1");
  double v;
  ck_assert_int_eq(optim_scale_batch_size(o, 0, 4, NULL), OPTIM_OK);
  ck_assert_int_eq(optim_get_double(o, 0, "lr", &v), OPTIM_OK);
  ck_assert_double_eq_tol(v, 0.4, 1e-15);
  ck_assert_int_eq(optim_scale_batch_size(o, 0, 0.25, "sqrt"), OPTIM_OK);
  ck_assert_int_eq(optim_get_double(o, 0, "lr", &v), OPTIM_OK);
  ck_assert_double_eq_tol(v, 0.2, 1e-15);
  ck_assert_int_eq(optim_scale_batch_size(o, 0, 2, "sqrt_sde"), OPTIM_EUNSUPPORTED);
  ck_assert_int_eq(optim_scale_batch_size(o, 0, 2, "cubic"), OPTIM_EUNKNOWN);
  ck_assert_int_eq(optim_scale_batch_size(o, 0, 0, NULL), OPTIM_ERANGE);
  ck_assert_int_eq(optim_scale_batch_size(o, 0, NAN, NULL), OPTIM_ENONFINITE);
  ck_assert_int_eq(optim_scale_batch_size(o, 1, 2, NULL), OPTIM_EINVAL);
  optim_destroy(o);

  o = make("adamw", "lr=1e-3,beta1=0.9,beta2=0.99,eps=1e-8");
  ck_assert_int_eq(optim_scale_batch_size(o, 0, 4, NULL), OPTIM_OK); /* sqrt */
  ck_assert_int_eq(optim_get_double(o, 0, "lr", &v), OPTIM_OK);
  ck_assert_double_eq_tol(v, 2e-3, 1e-18);
  ck_assert_int_eq(optim_get_double(o, 0, "beta2", &v), OPTIM_OK);
  ck_assert(v == 0.99);
  ck_assert_int_eq(optim_scale_batch_size(o, 0, 4, "sqrt_sde"), OPTIM_OK);
  ck_assert_int_eq(optim_get_double(o, 0, "lr", &v), OPTIM_OK);
  ck_assert_double_eq_tol(v, 4e-3, 1e-18);
  ck_assert_int_eq(optim_get_double(o, 0, "beta1", &v), OPTIM_OK);
  ck_assert_double_eq_tol(v, 0.6, 1e-14);
  ck_assert_int_eq(optim_get_double(o, 0, "beta2", &v), OPTIM_OK);
  ck_assert_double_eq_tol(v, 0.96, 1e-14);
  ck_assert_int_eq(optim_get_double(o, 0, "eps", &v), OPTIM_OK);
  ck_assert_double_eq_tol(v, 5e-9, 1e-22);
  /* beta1 would become 1 - 8 * 0.4 < 0: refused, nothing changes */
  ck_assert_int_eq(optim_scale_batch_size(o, 0, 8, "sqrt_sde"), OPTIM_ERANGE);
  ck_assert(strstr(optim_errmsg(o), "beta1") != NULL);
  ck_assert_int_eq(optim_get_double(o, 0, "lr", &v), OPTIM_OK);
  ck_assert_double_eq_tol(v, 4e-3, 1e-18);
  /* with a schedule: the base scales */
  ck_assert_int_eq(optim_set_schedule(o, 0, "lr", "linear:total=2"), OPTIM_OK);
  double x[1] = {0}, g[1] = {1};
  add(o, 0, "x", x, g, 1);
  ck_assert_int_eq(optim_step(o), OPTIM_OK); /* factor now 1/2 */
  ck_assert_int_eq(optim_scale_batch_size(o, 0, 0.25, "linear"), OPTIM_OK);
  ck_assert_int_eq(optim_get_double(o, 0, "lr", &v), OPTIM_OK);
  ck_assert_double_eq_tol(v, 4e-3 * 0.25 * 0.5, 1e-18);
  optim_destroy(o);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("contract");
  TCase *tc = tcase_create("contract");
  tcase_add_test(tc, test_clip_global_and_group);
  tcase_add_test(tc, test_clip_equals_scaled_step);
  tcase_add_test(tc, test_clip_nonfinite_and_ranges);
  tcase_add_test(tc, test_decay_scales_and_masks);
  tcase_add_test(tc, test_checkpoint_keeps_settings);
  tcase_add_test(tc, test_state_set_buffer);
  tcase_add_test(tc, test_adagrad_norm);
  tcase_add_test(tc, test_schedules);
  tcase_add_test(tc, test_schedule_resume);
  tcase_add_test(tc, test_scale_batch_size);
  suite_add_tcase(s, tc);
  return run_suite(s);
}
