/* check_robust.c - numerical robustness sweep over every registered
 * algorithm (taken from the registry, so a new one is covered at once), in
 * float32 and float64, on 1-D, 2-D and 4-D tensors (each that the algorithm
 * accepts): NaN and infinities in gradients, Hessian-vector products and
 * snapshot gradients under each nonfinite policy, in parameters, in
 * hyperparameters and in grad_scale; huge, tiny (subnormal) and zero
 * inputs; Newton-Schulz on zero, rank-1, spiked, tall and wide matrices;
 * the failure path of the eigendecompositions.  liboptim(3), NUMERICAL
 * BEHAVIOUR, documents what these assert. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define NSHAPES 3
static const int shape_ndim[NSHAPES] = {1, 2, 4};
static const int64_t shape_dims[NSHAPES][4] = {{7}, {4, 6}, {3, 2, 2, 2}};

/* Configurations run on top of each algorithm's defaults: the defaults,
 * then variants whose code paths differ (normalizations, other norms). */
static const char *const variants[][2] = {
  {"sgd", "momentum=0.9,nesterov=true,weight_decay=0.1"},
  {"adam", "amsgrad=true,weight_decay=0.1"},
  {"adagrad", "lr_decay=0.1,initial_accumulator_value=0"},
  {"soap", "normalize_grads=true,precondition_1d=true"},
  {"soap", "precondition_frequency=1"},
  {"shampoo", "update_freq=1,nesterov=true"},
  {"shampoo", "grafting=sgd"},
  {"adahessian", "averaging=none,hessian_power=0.5"},
  {"adagrad_norm", "scope=tensor"},
  {"adasvrg", "diagonal=true"},
  {"adam_cm", "critical_test=1,amsgrad=true"},
  {"lion_k", "norm=l2"},
  {"lion_k", "norm=linf"},
  {"normuon", "variant=paper"},
  {"adabelief", "rectify=false,weight_decouple=false,weight_decay=0.1"},
  {"tam", "correlation=elementwise"},
  {"adatam", "correlation=elementwise"},
  {"fismo", "ns_precision=float64"},
  {"muon", "ns_coefficients=polar_express,ns_precision=float32,lr_adjust=match_adamw"},
  {"muon", "ns_precision=float64,nesterov=false,weight_decay=0.1"},
  {"normuon", "ns_precision=float32"},
  {"root", "ns_precision=float64"},
  {"soap", "merge_dims=true,correct_bias=false"},
  {"igt", "momentum=0.9,nesterov=true,weight_decay=0.1"},
  {"sgd", "momentum=0.9,dampening=0.5,maximize=true"},
};
#define NVARIANTS (int)(sizeof variants / sizeof variants[0])

/* Assertions made, and (ROBUST_ALL=1, with CK_FORK=no: report every
 * failure instead of stopping at the first) failures; main prints both. */
static long nchecks, nfailed;
static int report_all;
#define CHECK(cond, ...)                      \
  do {                                        \
    int ok_ = (cond) ? 1 : 0;                 \
    nchecks++;                                \
    if (!ok_ && report_all) {                 \
      nfailed++;                              \
      fprintf(stderr, "FAIL: " __VA_ARGS__);  \
      fputc('\n', stderr);                    \
    } else {                                  \
      ck_assert_msg(ok_, __VA_ARGS__);        \
    }                                         \
  } while (0)

/* Set by the sweep: an optimizer-wide clip norm (1e6, never reached by
 * ordinary gradients), so that the step's norm pass is the non-finite
 * check (not for adasvrg, whose groups cannot clip). */
static int clip_all;

typedef struct fx {
  optim_optimizer *o;
  const char *alg, *opts;
  int dtype;
  size_t es;
  int np;                     /* parameters of group 0 */
  int64_t numel[NSHAPES];
  void *p[NSHAPES], *g[NSHAPES], *hv[NSHAPES], *sg[NSHAPES];
  int has_hvp, has_svrg;
  double side_p[3], side_g[3]; /* group 1: sgd lr=0.5, float64 */
  char label[160];
} fx;

static double rd(const fx *f, const void *b, size_t i)
{
  return f->dtype == OPTIM_FLOAT32 ? (double)((const float *)b)[i] : ((const double *)b)[i];
}

static void wr(const fx *f, void *b, size_t i, double v)
{
  if (f->dtype == OPTIM_FLOAT32) ((float *)b)[i] = (float)v;
  else ((double *)b)[i] = v;
}

/* Ordinary values in (-1, 1), depending on the tensor j and step k. */
static double val(size_t i, int j, int k)
{
  return 0.8 * sin(1.0 + 0.7 * (double)i + 1.3 * j + 0.37 * k);
}

static void fill(fx *f, void *b, int j, int k, double scale)
{
  for (size_t i = 0; i < (size_t)f->numel[j]; i++) wr(f, b, i, scale * val(i, j, k));
}

/* Full gradient at the snapshot (adasvrg): a quarter of the point. */
static int full_grad(void *ud, int count, const int *params, const void *const *points,
                     void *const *grads)
{
  fx *f = ud;
  for (int k = 0; k < count; k++) {
    int j = params[k];
    for (size_t i = 0; i < (size_t)f->numel[j]; i++)
      wr(f, grads[k], i, 0.25 * rd(f, points[k], i));
  }
  return 0;
}

static void fx_free(fx *f)
{
  optim_destroy(f->o);
  for (int j = 0; j < NSHAPES; j++) {
    free(f->p[j]);
    free(f->g[j]);
    free(f->hv[j]);
    free(f->sg[j]);
  }
  memset(f, 0, sizeof *f);
}

/* Group 0 runs alg with opts (and policy), its required values set and
 * non-matrix tensors routed to the auxiliary AdamW where the algorithm has
 * one; every shape it accepts is a parameter; group 1 is a float64 sgd.
 * Parameters are scaled by pscale. */
static void fx_init(fx *f, const char *alg, const char *opts, int dtype, const char *policy,
                    double pscale)
{
  memset(f, 0, sizeof *f);
  f->alg = alg;
  f->opts = opts;
  f->dtype = dtype;
  f->es = dtype == OPTIM_FLOAT32 ? 4 : 8;
  snprintf(f->label, sizeof f->label, "%s [%s] %s nonfinite=%s%s", alg, opts ? opts : "",
           dtype == OPTIM_FLOAT32 ? "float32" : "float64", policy,
           clip_all ? " clip_norm" : "");
  ck_assert_int_eq(optim_create(&f->o), OPTIM_OK);
  ck_assert_int_eq(optim_add_group(f->o, alg, NULL), OPTIM_OK);
  for (int i = 0; i < optim_hparam_count(alg); i++) {
    const char *name, *def;
    int type;
    ck_assert_int_eq(optim_hparam_info(alg, i, &name, &type, &def, NULL), OPTIM_OK);
    if (strcmp(def, "required") == 0) {
      ck_assert_int_eq(type, OPTIM_TYPE_DOUBLE);
      ck_assert_int_eq(optim_set_double(f->o, 0, name, 0.01), OPTIM_OK);
    }
    if (strcmp(name, "nonmatrix") == 0)
      ck_assert_int_eq(optim_set_string(f->o, 0, name, "adamw"), OPTIM_OK);
  }
  if (opts) ck_assert_msg(optim_configure(f->o, 0, opts) == OPTIM_OK, "%s: %s", f->label,
                          optim_errmsg(f->o));
  ck_assert_int_eq(optim_set_string(f->o, 0, "nonfinite", policy), OPTIM_OK);
  for (int j = 0; j < NSHAPES; j++) {
    int64_t n = 1;
    for (int d = 0; d < shape_ndim[j]; d++) n *= shape_dims[j][d];
    f->numel[j] = n;
    f->p[j] = calloc((size_t)n, f->es);
    f->g[j] = calloc((size_t)n, f->es);
    f->hv[j] = calloc((size_t)n, f->es);
    f->sg[j] = calloc((size_t)n, f->es);
    fill(f, f->p[j], j, 0, pscale);
    char name[8];
    snprintf(name, sizeof name, "t%d", j);
    int rc = optim_add_param(f->o, 0, name, dtype, shape_ndim[j], shape_dims[j], f->p[j],
                             f->g[j], NULL);
    if (rc == OPTIM_EUNSUPPORTED) continue; /* a shape the algorithm refuses */
    ck_assert_msg(rc == OPTIM_OK, "%s: %s", f->label, optim_errmsg(f->o));
    ck_assert_int_eq(f->np, j); /* every shape up to here was accepted */
    f->np++;
  }
  CHECK(f->np >= 1, "%s: no shape accepted", f->label);
  for (int j = 0; j < f->np; j++) {
    f->has_hvp = optim_param_bind_hvp(f->o, j, f->hv[j]) == OPTIM_OK;
    f->has_svrg = optim_param_bind_snapshot_grad(f->o, j, f->sg[j]) == OPTIM_OK;
  }
  int g1;
  ck_assert_int_eq(optim_add_group(f->o, "sgd", &g1), OPTIM_OK);
  ck_assert_int_eq(optim_configure(f->o, g1, "lr=0.5"), OPTIM_OK);
  int64_t three = 3;
  for (int i = 0; i < 3; i++) {
    f->side_p[i] = 1 + i;
    f->side_g[i] = 0.25 * (i + 1);
  }
  ck_assert_int_eq(optim_add_param(f->o, g1, "side", OPTIM_FLOAT64, 1, &three, f->side_p,
                                   f->side_g, NULL),
                   OPTIM_OK);
  if (f->has_svrg) ck_assert_int_eq(optim_snapshot(f->o, full_grad, f), OPTIM_OK);
  if (clip_all && !f->has_svrg) ck_assert_int_eq(optim_set_clip_norm(f->o, 1e6), OPTIM_OK);
}

/* Gradients of rank 1 (every tensor as a matrix over its last dimension):
 * set by the sweep's rank-1 cases. */
static int rank1;

/* Ordinary gradients (and products, snapshot gradients) of step k, times
 * gscale. */
static void fx_grads(fx *f, int k, double gscale)
{
  for (int j = 0; j < f->np; j++) {
    fill(f, f->g[j], j, 10 + k, 0.5 * gscale);
    if (rank1) {
      size_t cols = (size_t)shape_dims[j][shape_ndim[j] - 1];
      for (size_t i = 0; i < (size_t)f->numel[j]; i++)
        wr(f, f->g[j], i, 0.5 * gscale * val(i / cols, j, k) * (1.5 + val(i % cols, j, k + 1)));
    }
    fill(f, f->hv[j], j, 20 + k, 0.3 * gscale);
    fill(f, f->sg[j], j, 30 + k, 0.4 * gscale);
  }
}

/* n ordinary steps. */
static void fx_warm(fx *f, int n)
{
  for (int k = 0; k < n; k++) {
    fx_grads(f, k, 1);
    ck_assert_msg(optim_step(f->o) == OPTIM_OK, "%s: warm-up: %s", f->label, optim_errmsg(f->o));
  }
}

/* Hash of the parameters and state of group 0 (side = 0) or of everything. */
static uint64_t fx_hash(fx *f, int side)
{
  uint64_t h = 1469598103934665603ull;
  for (int j = 0; j < f->np; j++) {
    h = hash_bytes(h, f->p[j], (size_t)f->numel[j] * f->es);
    h = hash_param_state(h, f->o, j);
  }
  if (side) {
    h = hash_bytes(h, f->side_p, sizeof f->side_p);
    h = hash_param_state(h, f->o, f->np);
  }
  return h;
}

static int64_t counter(fx *f, int group, const char *name)
{
  int64_t v = -1;
  ck_assert_int_eq(optim_get_counter(f->o, group, name, &v), OPTIM_OK);
  return v;
}

/* Every parameter value finite, and every state value too (NaN never;
 * +-inf only in a buffer named in inf_ok, "|"-separated). */
static void check_finite(fx *f, const char *what, const char *inf_ok)
{
  for (int j = 0; j < f->np; j++) {
    for (size_t i = 0; i < (size_t)f->numel[j]; i++)
      CHECK(isfinite(rd(f, f->p[j], i)), "%s, %s: parameter t%d[%zu] = %g", f->label, what, j,
            i, rd(f, f->p[j], i));
    int ns = optim_state_count(f->o, j);
    for (int k = 0; k < ns; k++) {
      const char *name;
      int kind;
      int64_t numel;
      ck_assert_int_eq(optim_state_info(f->o, j, k, &name, &kind, &numel), OPTIM_OK);
      if (kind != OPTIM_STATE_BUFFER) continue;
      const void *d;
      ck_assert_int_eq(optim_state_buffer(f->o, j, name, &d, &numel), OPTIM_OK);
      char key[64];
      snprintf(key, sizeof key, "|%s|", name);
      char list[256];
      snprintf(list, sizeof list, "|%s|", inf_ok ? inf_ok : "");
      int inf_allowed = strstr(list, key) != NULL;
      for (int64_t i = 0; i < numel; i++) {
        double v = rd(f, d, (size_t)i);
        CHECK(isfinite(v) || (inf_allowed && isinf(v)), "%s, %s: state %s of t%d [%lld] = %g",
              f->label, what, name, j, (long long)i, v);
      }
    }
  }
}

/* ---- 1. non-finite gradients, products and snapshot gradients ------------------------- */

enum { T_GRAD, T_HVP, T_SNAP, T_HVP_CB };
static const char *const target_name[] = {"gradient", "Hessian-vector product",
                                          "snapshot gradient", "callback's H z"};

/* The Hessian-vector callback: H z = the bound product's values (fx.hv),
 * so that z * (H z) differs from them only in sign. */
static int hvp_cb(void *ud, int count, const int *params, const void *const *z,
                  void *const *hz)
{
  fx *f = ud;
  (void)z;
  for (int k = 0; k < count; k++)
    memcpy(hz[k], f->hv[params[k]], (size_t)f->numel[params[k]] * f->es);
  return 0;
}

/* Products from the callback instead of bound buffers. */
static void use_callback(fx *f)
{
  for (int j = 0; j < f->np; j++) ck_assert_int_eq(optim_param_bind_hvp(f->o, j, NULL), OPTIM_OK);
  ck_assert_int_eq(optim_set_hvp_callback(f->o, hvp_cb, f, 42), OPTIM_OK);
}

static void *target_buf(fx *f, int target, int j)
{
  return target == T_GRAD ? f->g[j] : target == T_SNAP ? f->sg[j] : f->hv[j];
}

/* Poison tensor j's target: one entry (all = 0) or every entry with v. */
static void poison(fx *f, int target, int j, int all, double v)
{
  void *b = target_buf(f, target, j);
  for (size_t i = 0; i < (size_t)f->numel[j]; i++)
    if (all || i == (size_t)f->numel[j] / 2) wr(f, b, i, v);
}

static void nonfinite_case(const char *alg, const char *opts, int dtype)
{
  static const char *const policies[] = {"error", "skip", "zero"};
  const double bad[3] = {NAN, INFINITY, -INFINITY};
  for (int pol = 0; pol < 3; pol++)
    for (int target = T_GRAD; target <= T_HVP_CB; target++)
      for (int b = 0; b < 3; b++)
        for (int all = 0; all < 2; all++) {
          fx f, twin;
          fx_init(&f, alg, opts, dtype, policies[pol], 1);
          if ((target != T_GRAD && target != T_SNAP && !f.has_hvp) ||
              (target == T_SNAP && !f.has_svrg)) {
            fx_free(&f);
            continue;
          }
          if (target == T_HVP_CB) use_callback(&f);
          fx_warm(&f, 2);
          fx_grads(&f, 5, 1);
          int j = f.np - 1; /* the last (largest-rank) tensor */
          poison(&f, target, j, all, bad[b]);
          char what[96];
          snprintf(what, sizeof what, "%s in %s %s", bad[b] != bad[b] ? "NaN" : b == 1 ? "+inf" : "-inf",
                   all ? "every entry of the" : "one entry of the", target_name[target]);
          uint64_t h_all = fx_hash(&f, 1), h0 = fx_hash(&f, 0);
          int64_t steps0 = counter(&f, 0, "steps"), skipped0 = counter(&f, 0, "skipped");
          double side0 = f.side_p[0];
          int rc = optim_step(f.o);
          if (pol == 0) {
            CHECK(rc == OPTIM_ENONFINITE, "%s, %s: status %d", f.label, what, rc);
            CHECK(fx_hash(&f, 1) == h_all, "%s, %s: something changed", f.label, what);
            CHECK(counter(&f, 0, "steps") == steps0 && counter(&f, 1, "steps") == steps0,
                  "%s, %s: counters changed", f.label, what);
            /* (optim_validate does not call the callback: optim_step(3)) */
            CHECK(optim_validate(f.o) == (target == T_HVP_CB ? OPTIM_OK : OPTIM_ENONFINITE),
                  "%s, %s: validate", f.label, what);
          } else if (pol == 1) {
            CHECK(rc == OPTIM_OK, "%s, %s: status %d (%s)", f.label, what, rc, optim_errmsg(f.o));
            CHECK(fx_hash(&f, 0) == h0, "%s, %s: skipped group changed", f.label, what);
            CHECK(counter(&f, 0, "skipped") == skipped0 + 1 && counter(&f, 0, "steps") == steps0,
                  "%s, %s: counters", f.label, what);
            CHECK(f.side_p[0] == side0 - 0.5 * 0.25, "%s, %s: other group not stepped", f.label,
                  what);
          } else {
            /* zero: the same as a step with those entries 0, bit for bit */
            fx_init(&twin, alg, opts, dtype, "zero", 1);
            if (target == T_HVP_CB) use_callback(&twin);
            fx_warm(&twin, 2);
            fx_grads(&twin, 5, 1);
            poison(&twin, target, j, all, 0.0);
            CHECK(rc == OPTIM_OK, "%s, %s: status %d (%s)", f.label, what, rc, optim_errmsg(f.o));
            int rc2 = optim_step(twin.o);
            CHECK(rc2 == OPTIM_OK, "%s, %s: twin status %d", f.label, what, rc2);
            CHECK(fx_hash(&f, 1) == fx_hash(&twin, 1),
                  "%s, %s: differs from the step with those entries zero", f.label, what);
            fx_free(&twin);
          }
          fx_free(&f);
        }
}

/* _i: float32 or float64, without or with the optimizer-wide clip norm;
 * every algorithm's defaults, then the variants. */
START_TEST(test_nonfinite_inputs)
{
  int dtype = _i % 2 ? OPTIM_FLOAT64 : OPTIM_FLOAT32;
  clip_all = _i / 2;
  for (int a = 0; a < optim_algorithm_count() + NVARIANTS; a++) {
    int v = a - optim_algorithm_count();
    nonfinite_case(v < 0 ? optim_algorithm_name(a) : variants[v][0], v < 0 ? NULL : variants[v][1],
                   dtype);
  }
  clip_all = 0;
}
END_TEST

/* Full gradient with a NaN at the snapshot (adasvrg). */
static int full_grad_nan(void *ud, int count, const int *params, const void *const *points,
                         void *const *grads)
{
  full_grad(ud, count, params, points, grads);
  wr(ud, grads[count - 1], 0, NAN);
  return 0;
}

/* A non-finite full gradient fails optim_snapshot (OPTIM_ENONFINITE), and
 * nothing changes. */
START_TEST(test_nonfinite_snapshot)
{
  for (int a = 0; a < optim_algorithm_count(); a++)
    for (int dt = 0; dt < 2; dt++) {
      fx f;
      fx_init(&f, optim_algorithm_name(a), NULL, dt ? OPTIM_FLOAT64 : OPTIM_FLOAT32, "zero", 1);
      if (f.has_svrg) {
        fx_warm(&f, 2);
        uint64_t h = fx_hash(&f, 1);
        CHECK(optim_snapshot(f.o, full_grad_nan, &f) == OPTIM_ENONFINITE, "%s: snapshot",
              f.label);
        CHECK(fx_hash(&f, 1) == h, "%s: the failed snapshot changed something", f.label);
      }
      fx_free(&f);
    }
}
END_TEST

/* NaN or inf in a parameter: parameters are not checked (liboptim(3));
 * the step succeeds and every other element is bit-identical to the step
 * of the same parameters with that element finite: nothing spreads. */
START_TEST(test_nonfinite_param)
{
  int dtype = _i ? OPTIM_FLOAT64 : OPTIM_FLOAT32;
  const double bad[3] = {NAN, INFINITY, -INFINITY};
  for (int a = 0; a < optim_algorithm_count(); a++) {
    const char *alg = optim_algorithm_name(a);
    for (int b = 0; b < 3; b++) {
      fx f, twin;
      fx_init(&f, alg, NULL, dtype, "error", 1);
      fx_init(&twin, alg, NULL, dtype, "error", 1);
      fx_warm(&f, 2);
      fx_warm(&twin, 2);
      int j = f.np - 1;
      size_t at = (size_t)f.numel[j] / 2;
      wr(&f, f.p[j], at, bad[b]);
      fx_grads(&f, 5, 1);
      fx_grads(&twin, 5, 1);
      int rc = optim_step(f.o);
      CHECK(rc == OPTIM_OK, "%s: parameter %g: status %d (%s)", f.label, bad[b], rc,
            optim_errmsg(f.o));
      CHECK(optim_step(twin.o) == OPTIM_OK, "%s: twin", f.label);
      for (int t = 0; t < f.np; t++)
        for (size_t i = 0; i < (size_t)f.numel[t]; i++) {
          if (t == j && i == at) continue;
          CHECK(memcmp((char *)f.p[t] + i * f.es, (char *)twin.p[t] + i * f.es, f.es) == 0,
                "%s: parameter %g at t%d[%zu] changed t%d[%zu]: %.17g vs %.17g", f.label, bad[b], j, at, t, i, rd(&f, f.p[t], i), rd(&twin, twin.p[t], i));
        }
      fx_free(&f);
      fx_free(&twin);
    }
  }
}
END_TEST

/* Non-finite hyperparameters, clip norms and grad_scale are refused and
 * change nothing. */
START_TEST(test_nonfinite_settings)
{
  const double bad[3] = {NAN, INFINITY, -INFINITY};
  for (int a = 0; a < optim_algorithm_count(); a++) {
    const char *alg = optim_algorithm_name(a);
    fx f;
    fx_init(&f, alg, NULL, OPTIM_FLOAT32, "error", 1);
    fx_warm(&f, 1);
    uint64_t h = fx_hash(&f, 1);
    for (int i = 0; i < optim_hparam_count(alg); i++) {
      const char *name;
      int type;
      optim_hparam_info(alg, i, &name, &type, NULL, NULL);
      if (type != OPTIM_TYPE_DOUBLE) continue;
      double before, after;
      ck_assert_int_eq(optim_get_double(f.o, 0, name, &before), OPTIM_OK);
      for (int b = 0; b < 3; b++) {
        CHECK(optim_set_double(f.o, 0, name, bad[b]) == OPTIM_ENONFINITE, "%s: %s = %g", alg,
              name, bad[b]);
        char spec[80];
        snprintf(spec, sizeof spec, "%s=%s", name, b == 0 ? "nan" : b == 1 ? "inf" : "-inf");
        CHECK(optim_configure(f.o, 0, spec) == OPTIM_ENONFINITE, "%s: %s", alg, spec);
        CHECK(optim_set_option(f.o, 0, name, spec + strlen(name) + 1) == OPTIM_ENONFINITE,
              "%s: option %s", alg, spec);
      }
      ck_assert_int_eq(optim_get_double(f.o, 0, name, &after), OPTIM_OK);
      CHECK(memcmp(&before, &after, sizeof before) == 0, "%s: %s changed", alg, name);
    }
    for (int b = 0; b < 3; b++) {
      CHECK(optim_step_scaled(f.o, bad[b]) == OPTIM_ERANGE, "%s: grad_scale %g", alg, bad[b]);
      CHECK(optim_step_prepare(f.o, bad[b]) == OPTIM_ERANGE, "%s: prepare %g", alg, bad[b]);
      CHECK(optim_set_clip_norm(f.o, bad[b]) == OPTIM_ENONFINITE, "%s: clip %g", alg, bad[b]);
      CHECK(optim_set_double(f.o, 0, "clip_norm", bad[b]) == OPTIM_ENONFINITE, "%s", alg);
      double fs[2] = {1, bad[b]};
      CHECK(optim_set_schedule_table(f.o, 0, "lr", fs, 2) == OPTIM_ENONFINITE,
            "%s: schedule %g", alg, bad[b]);
    }
    CHECK(fx_hash(&f, 1) == h, "%s: refused settings changed the state", alg);
    fx_free(&f);
  }
}
END_TEST

/* ---- 2./3. huge, tiny and zero inputs -------------------------------------------------------- */

/* Buffers documented (liboptim(3), NUMERICAL BEHAVIOUR) to overflow to
 * +inf for huge gradients (squares past the type's range, as in torch),
 * per algorithm; never NaN, and the parameters stay finite. */
static const char *inf_state(const char *alg)
{
  static const char *const table[][2] = {
    {"adam", "exp_avg_sq|max_exp_avg_sq"},
    {"adamw", "exp_avg_sq|max_exp_avg_sq"},
    {"adagrad", "sum"},
    {"muon", "exp_avg_sq"},
    {"normuon", "exp_avg_sq"},
    {"root", "exp_avg_sq"},
    {"fismo", "exp_avg_sq"},
    {"adahessian", "exp_avg_sq|exp_hessian_diag_sq"},
    {"adagrad_norm", "sum_sq"},
    {"adasvrg", "sum_sq"},
    {"adam_cm", "exp_avg_sq|max_exp_avg_sq|keys"},
    {"adam_igt", "exp_avg_sq"},
    {"adabelief", "exp_avg_var|max_exp_avg_var"},
    {"adatam", "exp_avg_sq"},
  };
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (strcmp(table[i][0], alg) == 0) return table[i][1];
  return NULL;
}

/* Steps with parameters scaled by ps and gradients by gs: finite
 * parameters and state, or OPTIM_ENUMERIC with nothing changed. */
/* Whether a case may make parameters +-inf (never NaN): liboptim(3)
 * documents sgd's Nesterov sum d + momentum * b overflowing for gradients
 * near the type's maximum, as torch's does. */
static int inf_params_ok(const char *alg, const char *opts, double gs, int dtype)
{
  return strcmp(alg, "sgd") == 0 && opts && strstr(opts, "nesterov=true") &&
         gs > (dtype == OPTIM_FLOAT32 ? 1e38 : 1e307);
}

/* Steps with parameters scaled by ps and gradients by gs: finite
 * parameters and state (+inf where documented), or OPTIM_ENUMERIC with
 * nothing changed.  Zero parameters with zero gradients stay exactly
 * zero: every normalization of a zero vector gives a zero step. */
static int scaled_case(const char *alg, const char *opts, int dtype, double ps, double gs,
                       const char *what)
{
  fx f;
  int failed = 0;
  fx_init(&f, alg, opts, dtype, "error", ps);
  for (int k = 0; k < 3; k++) {
    fx_grads(&f, k, gs);
    uint64_t h = fx_hash(&f, 1);
    int rc = optim_step(f.o);
    if (rc == OPTIM_ENUMERIC) {
      CHECK(fx_hash(&f, 1) == h, "%s, %s: OPTIM_ENUMERIC but something changed", f.label, what);
      failed = 1;
      break;
    }
    CHECK(rc == OPTIM_OK, "%s, %s, step %d: status %d (%s)", f.label, what, k, rc,
          optim_errmsg(f.o));
    if (inf_params_ok(alg, opts, gs, dtype)) {
      for (int j = 0; j < f.np; j++)
        for (size_t i = 0; i < (size_t)f.numel[j]; i++) {
          double v = rd(&f, f.p[j], i);
          CHECK(v == v, "%s, %s: parameter t%d[%zu] is NaN", f.label, what, j, i);
          wr(&f, f.p[j], i, isinf(v) ? 0 : v); /* (the state is checked below) */
        }
    }
    check_finite(&f, what, inf_state(alg));
    if (ps == 0 && gs == 0)
      for (int j = 0; j < f.np; j++)
        for (size_t i = 0; i < (size_t)f.numel[j]; i++)
          CHECK(rd(&f, f.p[j], i) == 0, "%s, %s: t%d[%zu] = %g moved", f.label, what, j, i,
                rd(&f, f.p[j], i));
  }
  fx_free(&f);
  return failed;
}

static void magnitude_sweep(int dtype, int huge)
{
  double big = 1e30, edge = dtype == OPTIM_FLOAT32 ? 3e38 : 1e300;
  double tiny = dtype == OPTIM_FLOAT32 ? 1e-40 : 1e-310;
  for (int a = 0; a < optim_algorithm_count() + NVARIANTS; a++) {
    int v = a - optim_algorithm_count();
    const char *alg = v < 0 ? optim_algorithm_name(a) : variants[v][0];
    const char *opts = v < 0 ? NULL : variants[v][1];
    if (huge) {
      scaled_case(alg, opts, dtype, 1, big, "gradients ~1e30");
      scaled_case(alg, opts, dtype, big, 1, "parameters ~1e30");
      scaled_case(alg, opts, dtype, 1, edge, "gradients at the edge of the range");
      scaled_case(alg, opts, dtype, edge, 1, "parameters at the edge of the range");
      rank1 = 1;
      scaled_case(alg, opts, dtype, 1, 1, "rank-1 gradients");
      scaled_case(alg, opts, dtype, 1, big, "rank-1 gradients ~1e30");
      rank1 = 0;
    } else {
      rank1 = 1;
      scaled_case(alg, opts, dtype, 1, tiny, "subnormal rank-1 gradients");
      rank1 = 0;
      scaled_case(alg, opts, dtype, 1, tiny, "subnormal gradients");
      scaled_case(alg, opts, dtype, tiny, tiny, "subnormal parameters and gradients");
      scaled_case(alg, opts, dtype, 1, 0, "zero gradients");
      scaled_case(alg, opts, dtype, 0, 0, "zero parameters and gradients");
    }
  }
}

START_TEST(test_huge)
{
  magnitude_sweep(_i ? OPTIM_FLOAT64 : OPTIM_FLOAT32, 1);
}
END_TEST

START_TEST(test_tiny_and_zero)
{
  magnitude_sweep(_i ? OPTIM_FLOAT64 : OPTIM_FLOAT32, 0);
}
END_TEST

/* ---- 4. Newton-Schulz through muon ------------------------------------------------------------ */

/* Set by test_newton_schulz: float64 parameters, the iteration in float32
 * (ns_precision=float32), whose range the input may exceed. */
static int ns_prec32;

static int identity_reduce(void *ud, void *buf, size_t count, int dtype)
{
  (void)ud, (void)buf, (void)count, (void)dtype;
  return 0; /* one process: the sum over processes is its own value */
}

/* muon with momentum 0, no Nesterov, lr 1 and no decay from p = 0 leaves
 * p = -scale * NS(G), scale = sqrt(max(1, rows/cols)).  Returns NS(G) in
 * out (rows * cols doubles) and the status.  rb > 0: only rows [0, rb)
 * step, a row block orthogonalized by the row-distributed iteration (a
 * row reduction set, over one process). */
static int muon_ns(int dtype, int64_t rows, int64_t cols, int64_t rb, const double *G,
                   double *out)
{
  optim_optimizer *o;
  size_t n = (size_t)(rows * cols), es = dtype == OPTIM_FLOAT32 ? 4 : 8;
  void *p = calloc(n, es), *g = calloc(n, es);
  for (size_t i = 0; i < n; i++) {
    if (dtype == OPTIM_FLOAT32) ((float *)g)[i] = (float)G[i];
    else ((double *)g)[i] = G[i];
  }
  ck_assert_int_eq(optim_create(&o), OPTIM_OK);
  ck_assert_int_eq(optim_add_group(o, "muon", NULL), OPTIM_OK);
  ck_assert_int_eq(optim_configure(o, 0, "lr=1,momentum=0,nesterov=false,weight_decay=0"),
                   OPTIM_OK);
  if (ns_prec32) ck_assert_int_eq(optim_configure(o, 0, "ns_precision=float32"), OPTIM_OK);
  int64_t shape[2] = {rows, cols};
  ck_assert_int_eq(optim_add_param(o, 0, "w", dtype, 2, shape, p, g, NULL), OPTIM_OK);
  if (rb > 0) {
    ck_assert_int_eq(optim_param_set_range(o, 0, 0, rb * cols), OPTIM_OK);
    ck_assert_int_eq(optim_set_row_reduce(o, identity_reduce, NULL), OPTIM_OK);
  }
  int rc = optim_step(o);
  double scale = sqrt(rows > cols ? (double)rows / (double)cols : 1.0);
  for (size_t i = 0; i < n; i++)
    out[i] = -(dtype == OPTIM_FLOAT32 ? (double)((float *)p)[i] : ((double *)p)[i]) / scale;
  optim_destroy(o);
  free(p);
  free(g);
  return rc;
}

/* The singular value 1 / (1 + 1e-7) after five iterations of Muon's quintic. */
static double quintic5(void)
{
  double x = 1 / (1 + 1e-7);
  for (int i = 0; i < 5; i++) x = 3.4445 * x - 4.7750 * x * x * x + 2.0315 * x * x * x * x * x;
  return x;
}

/* Zero, rank-1 (at ordinary, subnormal and near-maximal scale), and one
 * huge entry over noise, on wide, tall, square and Gram-side (aspect >= 3)
 * shapes: zero gives exactly zero; a rank-1 G = c u v^T gives
 * quintic5 * sign(c) u v^T / (|u| |v|) within the iteration's rounding. */
START_TEST(test_newton_schulz)
{
  /* _i: float32; float64; float64 parameters with the iteration in float32 */
  const int dtype = _i ? OPTIM_FLOAT64 : OPTIM_FLOAT32;
  ns_prec32 = _i == 2;
  const double tol = dtype == OPTIM_FLOAT32 || ns_prec32 ? 2e-5 : 1e-12;
  const int64_t shapes[][2] = {{4, 6}, {6, 4}, {5, 5}, {2, 8}, {8, 2}, {1, 7}, {7, 1}};
  /* exact powers of two: subnormal (whole-integer multiples stay exact)
   * and near the type's maximum */
  const double tiny = dtype == OPTIM_FLOAT32 ? 0x1p-140 : 0x1p-1060;
  const double huge = dtype == OPTIM_FLOAT32 ? 0x1p120 : 0x1p1015;
  const double spike = dtype == OPTIM_FLOAT32 ? 1e30 : 1e300;
  const double s5 = quintic5();
  for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
    int64_t r = shapes[sh][0], c = shapes[sh][1];
    size_t n = (size_t)(r * c);
    double *G = calloc(n, sizeof *G), *U = calloc(n, sizeof *U), *E = calloc(n, sizeof *E);
    for (int64_t rb = 0; rb < r; rb += r - 1) { /* the whole matrix, then rows [0, r-1) */
      if (rb == 0 && r == 1 && sh > 0) break;
      const char *how = rb ? "row-distributed" : "";
      memset(G, 0, n * sizeof *G);
      CHECK(muon_ns(dtype, r, c, rb, G, U) == OPTIM_OK, "zero %lldx%lld", (long long)r,
            (long long)c);
      for (size_t i = 0; i < n; i++)
        CHECK(U[i] == 0, "%s NS(0) %lldx%lld [%zu] = %g", how, (long long)r, (long long)c, i,
              U[i]);
      /* rank 1: u = (1, -2, 3, -1, ...), v = (-1, 2, 3, -4, ...) small integers */
      int64_t rr = rb ? rb : r;
      double nu = 0, nv = 0;
      for (int64_t i = 0; i < rr; i++) nu += (double)((i % 3 + 1) * (i % 3 + 1));
      for (int64_t j = 0; j < c; j++) nv += (double)((j % 4 + 1) * (j % 4 + 1));
      const double scales[] = {1, -1, tiny, huge};
      for (int k = 0; k < 4; k++) {
        for (int64_t i = 0; i < r; i++)
          for (int64_t j = 0; j < c; j++) {
            double ui = (i % 3 + 1) * (i % 2 ? -1 : 1), vj = (j % 4 + 1) * (j % 3 ? 1 : -1);
            G[i * c + j] = scales[k] * ui * vj;
            E[i * c + j] = i < rr ? (scales[k] < 0 ? -1 : 1) * s5 * ui * vj / sqrt(nu * nv) : 0;
          }
        CHECK(muon_ns(dtype, r, c, rb, G, U) == OPTIM_OK, "rank-1");
        for (size_t i = 0; i < n; i++)
          CHECK(fabs(U[i] - E[i]) <= tol,
                "%s%s %s NS(%g u v^T) %lldx%lld [%zu] = %.9g, expected %.9g",
                dtype == OPTIM_FLOAT32 ? "float32" : "float64",
                ns_prec32 ? " (ns_precision=float32)" : "", how, scales[k], (long long)r,
                (long long)c, i, U[i], E[i]);
      }
      if (r == 1) break;
    }
    /* one huge entry over noise: NS is that entry's direction */
    for (size_t i = 0; i < n; i++) {
      G[i] = 0.01 * val(i, 1, 1);
      E[i] = 0;
    }
    G[n / 2] = -spike;
    E[n / 2] = -s5;
    CHECK(muon_ns(dtype, r, c, 0, G, U) == OPTIM_OK, "spike");
    for (size_t i = 0; i < n; i++)
      CHECK(fabs(U[i] - E[i]) <= tol, "NS(spike) %lldx%lld [%zu] = %.9g, expected %.9g",
            (long long)r, (long long)c, i, U[i], E[i]);
    free(G);
    free(U);
    free(E);
  }
}
END_TEST

/* ---- 5. eigendecompositions that cannot succeed ------------------------------------------------ */

/* soap, shampoo and fismo keep Kronecker factors (sums of G G^T) in the
 * parameter's type: gradients whose squares overflow it (1e30 in float32,
 * 1e300 in float64) make every retry fail, and the step returns
 * OPTIM_ENUMERIC with nothing changed (no parameter, state or counter,
 * other groups included); ordinary gradients then step again.  With
 * float64 parameters, 1e30 works. */
START_TEST(test_enumeric)
{
  static const char *const algs[] = {"soap", "shampoo", "fismo"};
  for (int a = 0; a < 3; a++)
    for (int dt = 0; dt < 3; dt++) {
      int dtype = dt == 0 ? OPTIM_FLOAT32 : OPTIM_FLOAT64;
      double big = dt == 1 ? 1e300 : 1e30;
      fx f;
      fx_init(&f, algs[a], NULL, dtype, "error", 1);
      fx_warm(&f, 2);
      fx_grads(&f, 7, big);
      uint64_t h = fx_hash(&f, 1);
      int64_t steps = counter(&f, 0, "steps"), failed = counter(&f, 0, "failed");
      int rc = optim_step(f.o);
      if (dt == 2) {
        CHECK(rc == OPTIM_OK, "%s, 1e30: status %d (%s)", f.label, rc, optim_errmsg(f.o));
        check_finite(&f, "1e30", inf_state(algs[a]));
      } else {
        CHECK(rc == OPTIM_ENUMERIC, "%s, %g: status %d", f.label, big, rc);
        CHECK(strstr(optim_errmsg(f.o), "failed") != NULL, "%s: message %s", f.label,
              optim_errmsg(f.o));
        CHECK(fx_hash(&f, 1) == h, "%s, %g: something changed", f.label, big);
        CHECK(counter(&f, 0, "steps") == steps && counter(&f, 1, "steps") == steps &&
                  counter(&f, 0, "failed") == failed,
              "%s: counters changed", f.label);
        CHECK(optim_step_prepare(f.o, 1.0) == OPTIM_ENUMERIC, "%s: prepare", f.label);
        CHECK(fx_hash(&f, 1) == h, "%s: prepare changed something", f.label);
        fx_grads(&f, 8, 1);
        CHECK(optim_step(f.o) == OPTIM_OK, "%s: ordinary step after the failure: %s", f.label,
              optim_errmsg(f.o));
        check_finite(&f, "after OPTIM_ENUMERIC", NULL);
      }
      fx_free(&f);
    }
}
END_TEST

int main(void)
{
  Suite *s = suite_create("robust");
  TCase *tc = tcase_create("robust");
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, test_nonfinite_inputs, 0, 4);
  tcase_add_loop_test(tc, test_nonfinite_param, 0, 2);
  tcase_add_test(tc, test_nonfinite_settings);
  tcase_add_test(tc, test_nonfinite_snapshot);
  tcase_add_loop_test(tc, test_huge, 0, 2);
  tcase_add_loop_test(tc, test_tiny_and_zero, 0, 2);
  tcase_add_loop_test(tc, test_newton_schulz, 0, 3);
  tcase_add_test(tc, test_enumeric);
  suite_add_tcase(s, tc);
  report_all = getenv("ROBUST_ALL") != NULL;
  int rc = run_suite(s);
  if (report_all) {
    fprintf(stderr, "check_robust: %ld assertions, %ld failed\n", nchecks, nfailed);
    if (nfailed) rc = 1;
  }
  return rc;
}
