/* check_zoo2.c - adam_cm, igt and adam_igt: each update rule against a
 * double-precision version written out here (float32 and float64), the
 * buffer decisions of critical momenta, kappa = 0 as Adam, IGT's shifted
 * and true iterates, writable state, missing gradients, bad options and
 * checkpoints. */
#define _POSIX_C_SOURCE 200809L /* mkstemp */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define MAXN 16
#define MAXC 4

static const int dtypes[] = {OPTIM_FLOAT32, OPTIM_FLOAT64};

/* A parameter and its gradient, of either dtype. */
typedef struct ten {
  int dtype;
  int64_t n;
  float pf[MAXN], gf[MAXN];
  double pd[MAXN], gd[MAXN];
} ten;

static void *pbuf(ten *t) { return t->dtype == OPTIM_FLOAT32 ? (void *)t->pf : (void *)t->pd; }
static void *gbuf(ten *t) { return t->dtype == OPTIM_FLOAT32 ? (void *)t->gf : (void *)t->gd; }
static double pget(const ten *t, int i) { return t->dtype == OPTIM_FLOAT32 ? t->pf[i] : t->pd[i]; }
static double gget(const ten *t, int i) { return t->dtype == OPTIM_FLOAT32 ? t->gf[i] : t->gd[i]; }

static void ten_init(ten *t, int dtype, int64_t n, uint64_t seed)
{
  memset(t, 0, sizeof *t);
  t->dtype = dtype;
  t->n = n;
  for (int i = 0; i < n; i++) {
    double x = golden_noise((uint64_t)i, 0, 0, seed);
    t->pf[i] = (float)x;
    t->pd[i] = x;
  }
}

/* g = scale * (0.25 p + noise), rounded to the dtype (then exact in double). */
static void ten_grad(ten *t, uint64_t k, uint64_t seed, double scale)
{
  for (int i = 0; i < t->n; i++) {
    double x = scale * (0.25 * pget(t, i) + golden_noise((uint64_t)i, k, 0, seed));
    t->gf[i] = (float)x;
    t->gd[i] = x;
  }
}

static optim_optimizer *make(const char *alg, const char *opts, int *grp)
{
  optim_optimizer *o;
  ck_assert_int_eq(optim_create(&o), OPTIM_OK);
  ck_assert_int_eq(optim_add_group(o, alg, grp), OPTIM_OK);
  if (opts) ck_assert_msg(optim_configure(o, *grp, opts) == OPTIM_OK, "%s", optim_errmsg(o));
  return o;
}

static int add(optim_optimizer *o, int grp, const char *name, ten *t)
{
  int idx;
  ck_assert_msg(optim_add_param(o, grp, name, t->dtype, 1, &t->n, pbuf(t), gbuf(t), &idx) ==
                    OPTIM_OK,
                "%s", optim_errmsg(o));
  return idx;
}

/* An optimizer of one group with one parameter "w" of n elements (index 0). */
static optim_optimizer *single(const char *alg, const char *opts, ten *t, int dtype, int64_t n,
                               uint64_t seed)
{
  int grp;
  ten_init(t, dtype, n, seed);
  optim_optimizer *o = make(alg, opts, &grp);
  add(o, grp, "w", t);
  return o;
}

static void step_ok(optim_optimizer *o)
{
  ck_assert_msg(optim_step(o) == OPTIM_OK, "%s", optim_errmsg(o));
}

/* Element k of a state buffer, as a double. */
static double st(optim_optimizer *o, int idx, const char *name, int64_t k)
{
  const void *data;
  int64_t numel;
  int dtype;
  ck_assert_msg(optim_state_buffer(o, idx, name, &data, &numel) == OPTIM_OK, "%s",
                optim_errmsg(o));
  ck_assert_int_lt(k, numel);
  optim_param_info(o, idx, NULL, NULL, &dtype, NULL, NULL);
  return dtype == OPTIM_FLOAT32 ? ((const float *)data)[k] : ((const double *)data)[k];
}

static int64_t sc(optim_optimizer *o, int idx, const char *name)
{
  int64_t v = -1;
  ck_assert_msg(optim_state_scalar(o, idx, name, &v) == OPTIM_OK, "%s", optim_errmsg(o));
  return v;
}

static double tol_of(int dtype) { return dtype == OPTIM_FLOAT32 ? 2e-5 : 1e-12; }

#define CLOSE(a, b, tol, ...)                                                                \
  do {                                                                                       \
    double a_ = (a), b_ = (b);                                                               \
    ck_assert_msg(fabs(a_ - b_) <= (tol) * (fabs(b_) + 1e-3), __VA_ARGS__);                  \
    (void)a_;                                                                                \
  } while (0)

/* ---- adam_cm: the rule of chandar-lab/CMOptimizer, in double --------------------------- */

typedef struct cmopt {
  double lr, b1, b2, eps, decay, wd;
  int topc, amsgrad, synced;
} cmopt;

typedef struct cmref {
  int64_t n, step;
  double m[MAXN], v[MAXN], vmax[MAXN], buf[MAXC][MAXN], sum[MAXN], keys[MAXC];
  int size, last;
  int inserted; /* the last step put m in a slot (-1: no) */
} cmref;

static double norm2(const ten *t)
{
  double s = 0;
  for (int i = 0; i < t->n; i++) s += gget(t, i) * gget(t, i);
  return s;
}

/* One step of a group of np parameters. */
static void cm_ref_step(const cmopt *o, int np, cmref *r, ten *const *t, double *p[])
{
  double all = 0;
  for (int k = 0; k < np; k++) all += sqrt(norm2(t[k]));
  for (int k = 0; k < np; k++) {
    cmref *R = &r[k];
    double key = o->synced ? all : sqrt(norm2(t[k]));
    double *x = p[k], a[MAXN];
    if (o->wd != 0)
      for (int i = 0; i < R->n; i++) x[i] *= 1 - o->lr * o->wd;
    R->inserted = -1;
    if (R->size == 0) {
      for (int i = 0; i < R->n; i++) {
        R->buf[0][i] = gget(t[k], i);
        R->sum[i] = gget(t[k], i);
        a[i] = 0;
      }
      R->keys[0] = key;
      R->size = 1;
      R->inserted = 0;
    } else {
      for (int i = 0; i < R->n; i++) {
        R->m[i] = R->m[i] * o->b1 + (1 - o->b1) * gget(t[k], i);
        a[i] = R->m[i] + R->sum[i] / R->size;
      }
      int slot = -1;
      if (R->size < o->topc) {
        slot = R->size++;
      } else {
        int j = 0;
        for (int c = 1; c < o->topc; c++)
          if (R->keys[c] < R->keys[j]) j = c;
        R->last = j;
        if (key > R->keys[j]) {
          slot = j;
          for (int i = 0; i < R->n; i++) R->sum[i] -= R->buf[j][i];
        }
      }
      if (slot >= 0) {
        for (int i = 0; i < R->n; i++) {
          R->sum[i] += R->m[i];
          R->buf[slot][i] = R->m[i];
        }
        R->keys[slot] = key;
        R->inserted = slot;
      }
    }
    R->step++;
    double bc1 = 1 - pow(o->b1, (double)R->step), bc2 = 1 - pow(o->b2, (double)R->step);
    for (int i = 0; i < R->n; i++) {
      R->v[i] = R->v[i] * o->b2 + (1 - o->b2) * a[i] * a[i];
      if (R->v[i] > R->vmax[i]) R->vmax[i] = R->v[i];
      double vx = o->amsgrad ? R->vmax[i] : R->v[i];
      x[i] = x[i] + (-o->lr / bc1) * a[i] / (sqrt(vx) / sqrt(bc2) + o->eps);
    }
    for (int c = 0; c < o->topc; c++) R->keys[c] *= o->decay;
  }
}

static void cm_compare(optim_optimizer *o, int idx, const cmref *R, const cmopt *co,
                       const ten *t, const double *x, int dtype, int step)
{
  double tol = tol_of(dtype);
  ck_assert_int_eq(sc(o, idx, "step"), R->step);
  ck_assert_int_eq(sc(o, idx, "buffer_size"), R->size);
  for (int i = 0; i < R->n; i++) {
    CLOSE(pget(t, i), x[i], tol, "step %d p[%d]: %.17g vs %.17g", step, i, pget(t, i), x[i]);
    CLOSE(st(o, idx, "exp_avg", i), R->m[i], tol, "step %d m[%d]", step, i);
    CLOSE(st(o, idx, "exp_avg_sq", i), R->v[i], tol, "step %d v[%d]", step, i);
    CLOSE(st(o, idx, "buffer_sum", i), R->sum[i], 10 * tol, "step %d sum[%d]", step, i);
    for (int c = 0; c < R->size; c++)
      CLOSE(st(o, idx, "buffer", (int64_t)c * R->n + i), R->buf[c][i], tol, "step %d slot %d",
            step, c);
  }
  for (int c = 0; c < co->topc; c++)
    CLOSE(st(o, idx, "keys", c), R->keys[c], tol, "step %d key %d: %g vs %g", step, c,
          st(o, idx, "keys", c), R->keys[c]);
}

/* The first call only fills the buffer with the raw gradient: the
 * parameter does not move (weight decay 0), or only decays. */
START_TEST(test_adam_cm_first_step)
{
  for (int d = 0; d < 2; d++)
    for (int wdon = 0; wdon < 2; wdon++) {
      ten t;
      optim_optimizer *o =
          single("adam_cm", wdon ? "lr=0.1,weight_decay=0.5" : "lr=0.1", &t, dtypes[d], 7, 11);
      const int idx = 0;
      ten_grad(&t, 1, 11, 1.0);
      ten before = t;
      step_ok(o);
      for (int i = 0; i < 7; i++) {
        double want = pget(&before, i);
        if (wdon)
          want = dtypes[d] == OPTIM_FLOAT32 ? (double)(before.pf[i] * (float)(1 - 0.1 * 0.5))
                                            : before.pd[i] * (1 - 0.1 * 0.5);
        ck_assert_msg(pget(&t, i) == want, "dtype %d wd %d: p[%d] moved", dtypes[d], wdon, i);
        ck_assert(st(o, idx, "buffer", i) == gget(&t, i));
        ck_assert(st(o, idx, "buffer_sum", i) == gget(&t, i));
        ck_assert(st(o, idx, "exp_avg", i) == 0);
        ck_assert(st(o, idx, "exp_avg_sq", i) == 0);
      }
      ck_assert_int_eq(sc(o, idx, "step"), 1);
      ck_assert_int_eq(sc(o, idx, "buffer_size"), 1);
      CLOSE(st(o, idx, "keys", 0), sqrt(norm2(&t)) * 0.7, tol_of(dtypes[d]), "key");
      ck_assert(st(o, idx, "keys", 1) == 0);
      /* the second step moves */
      ten_grad(&t, 2, 11, 1.0);
      step_ok(o);
      ck_assert(pget(&t, 0) != pget(&before, 0));
      optim_destroy(o);
    }
}
END_TEST

/* Fill up to topc, then replacement only when the new key exceeds the
 * smallest (decayed) one; every state entry against the double version. */
START_TEST(test_adam_cm_buffer)
{
  static const double scale[] = {1, 1.2, 0.8, 0.1, 3, 0.05, 0.1, 2, 0.02, 4, 1, 0.3, 0.2, 5};
  const int nsteps = (int)(sizeof scale / sizeof scale[0]);
  for (int d = 0; d < 2; d++)
    for (int ams = 0; ams < 2; ams++) {
      cmopt co = {0.05, 0.9, 0.999, 1e-8, 0.7, 0.1, 3, ams, 1};
      char opts[128];
      snprintf(opts, sizeof opts, "lr=0.05,topc=3,weight_decay=0.1,amsgrad=%s",
               ams ? "true" : "false");
      ten t;
      optim_optimizer *o = single("adam_cm", opts, &t, dtypes[d], 9, 5);
      const int idx = 0;
      cmref R = {.n = 9};
      double x[MAXN];
      for (int i = 0; i < 9; i++) x[i] = pget(&t, i);
      int kept = 0, replaced = 0;
      for (int s = 1; s <= nsteps; s++) {
        ten_grad(&t, (uint64_t)s, 5, scale[s - 1]);
        ten *tp = &t;
        double *xp = x;
        int full = R.size == 3;
        cm_ref_step(&co, 1, &R, &tp, &xp);
        step_ok(o);
        cm_compare(o, idx, &R, &co, &t, x, dtypes[d], s);
        ck_assert_int_eq(sc(o, idx, "buffer_size"), s < 3 ? s : 3);
        if (full) {
          kept += R.inserted < 0;
          replaced += R.inserted >= 0;
          ck_assert_int_eq(sc(o, idx, "last_slot"), R.last);
          if (R.inserted >= 0) /* the slot holds this step's momentum exactly */
            for (int i = 0; i < 9; i++)
              ck_assert(st(o, idx, "buffer", (int64_t)R.inserted * 9 + i) ==
                        st(o, idx, "exp_avg", i));
        }
      }
      ck_assert_int_ge(kept, 3);
      ck_assert_int_ge(replaced, 3);
      optim_destroy(o);
    }
}
END_TEST

/* synced: both parameters' keys are the sum of the two gradient norms;
 * unsynced: each its own.  Scales chosen so that the two settings decide
 * differently. */
START_TEST(test_adam_cm_synced)
{
  static const double sa[] = {1, 1, 0.2, 0.3, 0.1, 0.5, 2, 0.05};
  static const double sb[] = {0.1, 0.1, 5, 0.1, 4, 0.1, 0.1, 3};
  for (int d = 0; d < 2; d++) {
    int decisions[2][8][2];
    for (int sy = 0; sy < 2; sy++) {
      cmopt co = {0.01, 0.9, 0.999, 1e-8, 0.7, 0, 2, 0, sy};
      int grp;
      ten a, b;
      ten_init(&a, dtypes[d], 5, 1);
      ten_init(&b, dtypes[d], 3, 2);
      optim_optimizer *o = make("adam_cm", sy ? "lr=0.01,topc=2" : "lr=0.01,topc=2,synced=false",
                                &grp);
      int ia = add(o, grp, "a", &a), ib = add(o, grp, "b", &b);
      cmref R[2] = {{.n = 5}, {.n = 3}};
      double xa[MAXN], xb[MAXN];
      for (int i = 0; i < 5; i++) xa[i] = pget(&a, i);
      for (int i = 0; i < 3; i++) xb[i] = pget(&b, i);
      for (int s = 1; s <= 8; s++) {
        ten_grad(&a, (uint64_t)s, 1, sa[s - 1]);
        ten_grad(&b, (uint64_t)s, 2, sb[s - 1]);
        ten *tp[2] = {&a, &b};
        double *xp[2] = {xa, xb};
        cm_ref_step(&co, 2, R, tp, xp);
        step_ok(o);
        cm_compare(o, ia, &R[0], &co, &a, xa, dtypes[d], s);
        cm_compare(o, ib, &R[1], &co, &b, xb, dtypes[d], s);
        decisions[sy][s - 1][0] = R[0].inserted;
        decisions[sy][s - 1][1] = R[1].inserted;
        if (s == 1) {
          double na = sqrt(norm2(&a)), nb = sqrt(norm2(&b)), tol = tol_of(dtypes[d]);
          CLOSE(st(o, ia, "keys", 0), (sy ? na + nb : na) * 0.7, tol, "key a");
          CLOSE(st(o, ib, "keys", 0), (sy ? na + nb : nb) * 0.7, tol, "key b");
        }
      }
      optim_destroy(o);
    }
    ck_assert_msg(memcmp(decisions[0], decisions[1], sizeof decisions[0]) != 0,
                  "synced and unsynced took the same decisions");
  }
}
END_TEST

/* kappa = 0 is Adam: bit for bit adam (weight decay 0) or adamw (decoupled
 * decay), with and without AMSGrad, over 20 steps. */
START_TEST(test_adam_cm_kappa0_is_adam)
{
  for (int d = 0; d < 2; d++)
    for (int c = 0; c < 4; c++) {
      const int wd = c & 1, ams = c >> 1;
      char opts[128];
      snprintf(opts, sizeof opts, "lr=0.01,weight_decay=%s,amsgrad=%s", wd ? "0.1" : "0",
               ams ? "true" : "false");
      ten t0, t1;
      char cm_opts[160];
      snprintf(cm_opts, sizeof cm_opts, "%s,kappa=0", opts);
      optim_optimizer *o0 = single("adam_cm", cm_opts, &t0, dtypes[d], 13, 3);
      optim_optimizer *o1 = single(wd ? "adamw" : "adam", opts, &t1, dtypes[d], 13, 3);
      for (int s = 1; s <= 20; s++) {
        ten_grad(&t0, (uint64_t)s, 3, 1.0);
        ten_grad(&t1, (uint64_t)s, 3, 1.0);
        step_ok(o0);
        step_ok(o1);
        ck_assert_msg(memcmp(pbuf(&t0), pbuf(&t1), (size_t)t0.n * (d ? 8 : 4)) == 0,
                      "dtype %d case %d: step %d differs from adam", dtypes[d], c, s);
      }
      for (int i = 0; i < 13; i++) {
        ck_assert(st(o0, 0, "exp_avg", i) == st(o1, 0, "exp_avg", i));
        ck_assert(st(o0, 0, "exp_avg_sq", i) == st(o1, 0, "exp_avg_sq", i));
      }
      ck_assert_int_eq(sc(o0, 0, "buffer_size"), 0);
      ck_assert_int_eq(sc(o0, 0, "step"), 20);
      optim_destroy(o0);
      optim_destroy(o1);
    }
}
END_TEST

/* critical_test = 1: a full buffer's entry at last_slot (0 before any
 * argmin) is overwritten every step, whatever the keys; the draws repeat
 * with the seed. */
START_TEST(test_adam_cm_critical_test)
{
  ten t;
  optim_optimizer *o = single("adam_cm", "topc=2,critical_test=1", &t, OPTIM_FLOAT64, 4, 8);
  for (int s = 1; s <= 6; s++) {
    ten_grad(&t, (uint64_t)s, 8, s > 2 ? 1e-6 : 1.0); /* later keys far below the first */
    step_ok(o);
    if (s > 2)
      for (int i = 0; i < 4; i++) ck_assert(st(o, 0, "buffer", i) == st(o, 0, "exp_avg", i));
  }
  ck_assert_int_eq(sc(o, 0, "last_slot"), 0);
  optim_destroy(o);

  /* critical_test = 0.5: same seed, same trajectory; it does not only
   * follow the priorities */
  double out[3][4];
  for (int r = 0; r < 3; r++) {
    o = single("adam_cm", r == 2 ? "topc=2,critical_test=0.5,seed=7" : "topc=2,critical_test=0.5",
               &t, OPTIM_FLOAT64, 4, 8);
    for (int s = 1; s <= 40; s++) {
      ten_grad(&t, (uint64_t)s, 8, 1.0 / s);
      step_ok(o);
    }
    memcpy(out[r], t.pd, sizeof out[r]);
    optim_destroy(o);
  }
  ck_assert_mem_eq(out[0], out[1], sizeof out[0]);
  ck_assert(memcmp(out[0], out[2], sizeof out[0]) != 0);
}
END_TEST

/* ---- igt and adam_igt, in double ------------------------------------------------------ */

typedef struct igtref {
  int64_t n, steps;
  double th[MAXN], v[MAXN], u[MAXN], m[MAXN], s[MAXN];
} igtref;

typedef struct igtopt {
  double lr, mu, damp, wd, delta;
  int nesterov, adam;
  double b1, b2, eps;
} igtopt;

/* One step; x is the shifted point (the parameter), g the gradient there. */
static void igt_ref_step(const igtopt *o, igtref *R, double *x, const double *gin)
{
  const double n = (double)R->steps;
  const double gam = n / (n + o->delta), fut = (n + 1) / (n + 1 + o->delta);
  const double tau = fut / (1 - fut);
  for (int i = 0; i < R->n; i++) {
    double g = gin[i];
    if (!o->adam) {
      if (o->wd != 0) g += o->wd * x[i];
      if (n == 0) {
        R->th[i] = x[i];
        R->v[i] = g;
        R->u[i] = R->v[i];
      } else {
        R->v[i] = gam * R->v[i] + (1 - gam) * g;
        R->u[i] = o->mu * R->u[i] + (1 - o->damp) * R->v[i];
      }
      double dir = o->mu == 0 ? R->v[i] : o->nesterov ? R->v[i] + o->mu * R->u[i] : R->u[i];
      R->th[i] -= o->lr * dir;
      x[i] = R->th[i] - o->lr * tau * dir;
    } else {
      if (n == 0) {
        R->th[i] = x[i];
        R->v[i] = g;
      } else {
        R->v[i] = gam * R->v[i] + (1 - gam) * g;
      }
      double h = R->v[i] + o->wd * R->th[i];
      R->m[i] = o->b1 * R->m[i] + (1 - o->b1) * h;
      R->s[i] = o->b2 * R->s[i] + (1 - o->b2) * h * h;
      double upd = -o->lr * sqrt(1 - pow(o->b2, n + 1)) / (1 - pow(o->b1, n + 1)) * R->m[i] /
                   (sqrt(R->s[i]) + o->eps);
      x[i] = R->th[i] + (1 + tau) * upd;
      R->th[i] += upd;
    }
  }
  R->steps++;
}

static const igtopt igt_cases[] = {
  {.lr = 0.1, .delta = 1},                                            /* plain */
  {.lr = 0.05, .wd = 0.1, .delta = 2},                                /* plain, decay */
  {.lr = 0.05, .mu = 0.9, .damp = 0.1, .wd = 0.01, .delta = 1},      /* heavy ball */
  {.lr = 0.05, .mu = 0.8, .nesterov = 1, .delta = 0.5},               /* nesterov */
  {.lr = 0.01, .adam = 1, .b1 = 0.9, .b2 = 0.999, .eps = 1e-8, .delta = 1},
  {.lr = 0.02, .adam = 1, .b1 = 0.8, .b2 = 0.99, .eps = 1e-6, .wd = 0.1, .delta = 3},
};
#define NIGT ((int)(sizeof igt_cases / sizeof igt_cases[0]))

/* An igt or adam_igt optimizer with the settings of c and one parameter. */
static optim_optimizer *igt_make(const igtopt *c, ten *t, int dtype, int64_t n, uint64_t seed)
{
  char opts[256];
  if (c->adam)
    snprintf(opts, sizeof opts, "lr=%.17g,beta1=%.17g,beta2=%.17g,eps=%.17g,weight_decay=%.17g,"
             "delta=%.17g", c->lr, c->b1, c->b2, c->eps, c->wd, c->delta);
  else
    snprintf(opts, sizeof opts, "lr=%.17g,momentum=%.17g,dampening=%.17g,weight_decay=%.17g,"
             "nesterov=%s,delta=%.17g", c->lr, c->mu, c->damp, c->wd,
             c->nesterov ? "true" : "false", c->delta);
  return single(c->adam ? "adam_igt" : "igt", opts, t, dtype, n, seed);
}

static void igt_compare(optim_optimizer *o, const igtopt *c, const igtref *R, const ten *t,
                        const double *x, int step)
{
  double tol = tol_of(t->dtype);
  ck_assert_int_eq(sc(o, 0, "step"), R->steps);
  for (int i = 0; i < R->n; i++) {
    CLOSE(pget(t, i), x[i], tol, "step %d shifted[%d]: %.17g vs %.17g", step, i, pget(t, i),
          x[i]);
    CLOSE(st(o, 0, "true_param", i), R->th[i], tol, "step %d true[%d]", step, i);
    CLOSE(st(o, 0, "igt_avg", i), R->v[i], tol, "step %d v[%d]", step, i);
    if (!c->adam && c->mu != 0) CLOSE(st(o, 0, "momentum_buffer", i), R->u[i], tol, "u");
    if (c->adam) {
      CLOSE(st(o, 0, "exp_avg", i), R->m[i], tol, "step %d m[%d]", step, i);
      CLOSE(st(o, 0, "exp_avg_sq", i), R->s[i], tol, "step %d s[%d]", step, i);
    }
  }
}

/* Step s: the gradient at the shifted point, one step of both, compared. */
static void igt_step_both(optim_optimizer *o, const igtopt *c, igtref *R, ten *t, double *x,
                          int s, uint64_t seed)
{
  double g[MAXN];
  ten_grad(t, (uint64_t)s, seed, 1.0);
  for (int i = 0; i < t->n; i++) g[i] = gget(t, i);
  igt_ref_step(c, R, x, g);
  step_ok(o);
  igt_compare(o, c, R, t, x, s);
}

/* Every variant for 12 steps; after each, shifted = true + tau (true -
 * previous true), tau = (n + 1) / delta. */
START_TEST(test_igt_rules)
{
  for (int d = 0; d < 2; d++)
    for (int c = 0; c < NIGT; c++) {
      const igtopt *co = &igt_cases[c];
      const double tol = tol_of(dtypes[d]);
      ten t;
      optim_optimizer *o = igt_make(co, &t, dtypes[d], 10, 21);
      igtref R = {.n = 10};
      double x[MAXN], prev[MAXN];
      for (int i = 0; i < 10; i++) x[i] = prev[i] = pget(&t, i);
      for (int s = 1; s <= 12; s++) {
        igt_step_both(o, co, &R, &t, x, s, 21);
        const double tau = s / co->delta;
        for (int i = 0; i < 10; i++) {
          double th = st(o, 0, "true_param", i), dth = th - prev[i];
          ck_assert_msg(fabs(pget(&t, i) - (th + tau * dth)) <=
                            10 * tol * (fabs(th) + tau * fabs(dth)),
                        "case %d step %d: shifted %.17g, true %.17g, tau %g", c, s,
                        pget(&t, i), th, tau);
          prev[i] = th;
        }
      }
      optim_destroy(o);
    }
}
END_TEST

/* optim_state_set_buffer on true_param moves the iterate: the next step
 * starts from the values written (checked against the double version
 * restarted from them); before the first step the parameter buffer is
 * what counts. */
START_TEST(test_igt_set_true_param)
{
  for (int d = 0; d < 2; d++)
    for (int c = 0; c < NIGT; c++) {
      const igtopt *co = &igt_cases[c];
      ten t;
      optim_optimizer *o = igt_make(co, &t, dtypes[d], 6, 4);
      igtref R = {.n = 6};
      double x[MAXN];
      float nf[MAXN];
      double nd[MAXN];
      for (int i = 0; i < 6; i++) {
        nf[i] = (float)(0.5 - 0.125 * i);
        nd[i] = 0.5 - 0.125 * i;
      }
      const void *newv = dtypes[d] == OPTIM_FLOAT32 ? (const void *)nf : (const void *)nd;
      /* fresh: nothing to overwrite yet but zeros, which the first step replaces */
      ck_assert_int_eq(optim_state_set_buffer(o, 0, "true_param", newv, 6), OPTIM_OK);
      for (int i = 0; i < 6; i++) x[i] = pget(&t, i);
      for (int s = 1; s <= 6; s++) {
        if (s == 4) {
          ck_assert_int_eq(optim_state_set_buffer(o, 0, "true_param", newv, 5), OPTIM_ESHAPE);
          ck_assert_int_eq(optim_state_set_buffer(o, 0, "true_param", newv, 6), OPTIM_OK);
          for (int i = 0; i < 6; i++) {
            ck_assert(st(o, 0, "true_param", i) == nd[i]);
            R.th[i] = nd[i];
          }
        }
        igt_step_both(o, co, &R, &t, x, s, 4);
      }
      optim_destroy(o);
    }
}
END_TEST

/* Hash of parameter idx's values (t) and every state entry of it. */
static uint64_t param_hash(optim_optimizer *o, int idx, ten *t)
{
  const size_t es = t->dtype == OPTIM_FLOAT32 ? 4 : 8;
  uint64_t h = hash_bytes(1469598103934665603ull, pbuf(t), (size_t)t->n * es);
  for (int k = 0; k < optim_state_count(o, idx); k++) {
    const char *name;
    int kind;
    optim_state_info(o, idx, k, &name, &kind, NULL);
    if (kind == OPTIM_STATE_SCALAR) {
      int64_t v = sc(o, idx, name);
      h = hash_bytes(h, &v, sizeof v);
    } else {
      const void *data;
      int64_t numel;
      optim_state_buffer(o, idx, name, &data, &numel);
      h = hash_bytes(h, data, (size_t)numel * es);
    }
  }
  return h;
}

/* A parameter without gradient is skipped: its values and state stay as
 * they are, the other parameter steps. */
START_TEST(test_missing_grad)
{
  static const char *const algs[][2] = {
    {"adam_cm", "lr=0.1"}, {"adam_cm", "lr=0.1,synced=false,weight_decay=0.1"},
    {"igt", "lr=0.1,momentum=0.9"}, {"adam_igt", "weight_decay=0.1"}};
  for (int d = 0; d < 2; d++)
    for (int a = 0; a < 4; a++) {
      int grp;
      ten t0, t1;
      ten_init(&t0, dtypes[d], 5, 1);
      ten_init(&t1, dtypes[d], 5, 2);
      optim_optimizer *o = make(algs[a][0], algs[a][1], &grp);
      add(o, grp, "a", &t0);
      add(o, grp, "b", &t1);
      for (int s = 1; s <= 3; s++) {
        ten_grad(&t0, (uint64_t)s, 1, 1.0);
        ten_grad(&t1, (uint64_t)s, 2, 1.0);
        step_ok(o);
      }
      ck_assert_int_eq(optim_param_bind(o, 1, pbuf(&t1), NULL), OPTIM_OK);
      const uint64_t hb = param_hash(o, 1, &t1);
      for (int s = 4; s <= 6; s++) {
        ten before0 = t0;
        ten_grad(&t0, (uint64_t)s, 1, 1.0);
        step_ok(o);
        ck_assert_uint_eq(param_hash(o, 1, &t1), hb);
        ck_assert(memcmp(pbuf(&t0), pbuf(&before0), (size_t)t0.n * (d ? 8 : 4)) != 0);
      }
      ck_assert_int_eq(sc(o, 1, "step"), 3);
      ck_assert_int_eq(sc(o, 0, "step"), 6);
      optim_destroy(o);
    }
}
END_TEST

START_TEST(test_bad_options)
{
  int grp;
  ten t;
  ten_init(&t, OPTIM_FLOAT32, 4, 1);
  ten_grad(&t, 1, 1, 1.0);
  optim_optimizer *o = make("igt", NULL, &grp);
  add(o, grp, "w", &t);
  uint64_t h = hash_state(o);
  ck_assert_int_eq(optim_step(o), OPTIM_ECONFIG); /* lr is required */
  ck_assert_ptr_nonnull(strstr(optim_errmsg(o), "lr"));
  ck_assert_int_eq(optim_configure(o, grp, "lr=0.1,nesterov=true"), OPTIM_OK);
  ck_assert_int_eq(optim_step(o), OPTIM_ECONFIG); /* nesterov without momentum */
  ck_assert_uint_eq(hash_state(o), h);
  ck_assert_int_eq(optim_configure(o, grp, "momentum=0.9,dampening=0.5"), OPTIM_OK);
  h = hash_state(o); /* (with a momentum buffer now) */
  ck_assert_int_eq(optim_step(o), OPTIM_ECONFIG); /* nesterov with dampening */
  ck_assert_uint_eq(hash_state(o), h);
  ck_assert_int_eq(optim_configure(o, grp, "dampening=0"), OPTIM_OK);
  ck_assert_int_eq(optim_configure(o, grp, "delta=0"), OPTIM_ERANGE);
  ck_assert_int_eq(optim_configure(o, grp, "delta=-1"), OPTIM_ERANGE);
  ck_assert_int_eq(optim_configure(o, grp, "lr=-1"), OPTIM_ERANGE);
  step_ok(o);
  optim_destroy(o);

  o = make("adam_igt", NULL, &grp);
  ck_assert_int_eq(optim_configure(o, grp, "delta=0"), OPTIM_ERANGE);
  ck_assert_int_eq(optim_configure(o, grp, "beta1=1"), OPTIM_ERANGE);
  ck_assert_int_eq(optim_configure(o, grp, "momentum=0.9"), OPTIM_EUNKNOWN);
  optim_destroy(o);

  o = make("adam_cm", NULL, &grp);
  add(o, grp, "w", &t);
  h = hash_state(o);
  ck_assert_int_eq(optim_configure(o, grp, "topc=0"), OPTIM_ERANGE);
  ck_assert_int_eq(optim_configure(o, grp, "topc=-3"), OPTIM_ERANGE);
  ck_assert_int_eq(optim_configure(o, grp, "critical_test=1.5"), OPTIM_ERANGE);
  ck_assert_int_eq(optim_configure(o, grp, "critical_test=-0.1"), OPTIM_ERANGE);
  ck_assert_int_eq(optim_configure(o, grp, "decay=1.5"), OPTIM_ERANGE);
  ck_assert_int_eq(optim_configure(o, grp, "kappa=-1"), OPTIM_ERANGE);
  ck_assert_int_eq(optim_configure(o, grp, "seed=-1"), OPTIM_ERANGE);
  ck_assert_int_eq(optim_configure(o, grp, "topc=2.5"), OPTIM_EINVAL);
  ck_assert_uint_eq(hash_state(o), h);
  int64_t v;
  ck_assert_int_eq(optim_get_int(o, grp, "topc", &v), OPTIM_OK);
  ck_assert_int_eq(v, 5);
  double c;
  ck_assert_int_eq(optim_get_double(o, grp, "critical_test", &c), OPTIM_OK);
  ck_assert(c == 0);
  const void *keys;
  int64_t nk;
  ck_assert_int_eq(optim_state_buffer(o, 0, "keys", &keys, &nk), OPTIM_OK);
  ck_assert_int_eq(nk, 5);
  ck_assert_int_eq(optim_state_buffer(o, 0, "buffer", &keys, &nk), OPTIM_OK);
  ck_assert_int_eq(nk, 5 * 4);
  /* a range: the priorities need whole tensors */
  ck_assert_int_eq(optim_param_set_range(o, 0, 0, 2), OPTIM_OK);
  h = hash_state(o);
  ck_assert_int_eq(optim_step(o), OPTIM_ECONFIG);
  ck_assert_uint_eq(hash_state(o), h);
  optim_destroy(o);
}
END_TEST

/* topc changed after steps: the buffer starts again (the next step is a
 * first step), like the first. */
START_TEST(test_adam_cm_topc_change)
{
  int grp = 0;
  ten t;
  optim_optimizer *o = single("adam_cm", "topc=2", &t, OPTIM_FLOAT64, 4, 3);
  for (int s = 1; s <= 4; s++) {
    ten_grad(&t, (uint64_t)s, 3, 1.0);
    step_ok(o);
  }
  ck_assert_int_eq(sc(o, 0, "buffer_size"), 2);
  for (int r = 0; r < 2; r++) {
    ck_assert_int_eq(optim_configure(o, grp, r ? "topc=3" : "topc=5"), OPTIM_OK);
    ten_grad(&t, 9, 3, 1.0);
    ten before = t;
    step_ok(o);
    ck_assert_mem_eq(t.pd, before.pd, sizeof t.pd); /* a first step again */
    ck_assert_int_eq(sc(o, 0, "buffer_size"), 1);
    ck_assert_int_eq(sc(o, 0, "step"), 1);
    for (int i = 0; i < 4; i++) ck_assert(st(o, 0, "buffer", i) == t.gd[i]);
  }
  optim_destroy(o);
}
END_TEST

/* Save after 5 steps, load into a fresh optimizer, continue: bit-identical
 * to the run that did not stop. */
START_TEST(test_resume)
{
  static const char *const algs[][2] = {
    {"adam_cm", "lr=0.05,topc=2,amsgrad=true,weight_decay=0.1,critical_test=0.3"},
    {"igt", "lr=0.05,momentum=0.9,nesterov=true"}, {"adam_igt", "lr=0.01,weight_decay=0.1"}};
  char path[] = "/tmp/optim-zoo2-XXXXXX";
  int fd = mkstemp(path);
  ck_assert(fd >= 0);
  close(fd);
  for (int d = 0; d < 2; d++)
    for (int a = 0; a < 3; a++) {
      ten t[2][2];
      optim_optimizer *o[2];
      for (int r = 0; r < 2; r++) {
        int grp;
        o[r] = make(algs[a][0], algs[a][1], &grp);
        for (int k = 0; k < 2; k++) {
          ten_init(&t[r][k], dtypes[d], 6 + k, 30 + (uint64_t)k);
          add(o[r], grp, k ? "b" : "a", &t[r][k]);
        }
      }
      for (int s = 1; s <= 12; s++)
        for (int r = 0; r < 2; r++) {
          if (r == 1 && s == 6) {
            ck_assert_int_eq(optim_save(o[1], path), OPTIM_OK);
            optim_destroy(o[1]);
            int grp;
            o[1] = make(algs[a][0], NULL, &grp);
            for (int k = 0; k < 2; k++) add(o[1], grp, k ? "b" : "a", &t[1][k]);
            ck_assert_msg(optim_load(o[1], path) == OPTIM_OK, "%s", optim_errmsg(o[1]));
          }
          for (int k = 0; k < 2; k++) ten_grad(&t[r][k], (uint64_t)s, 30 + (uint64_t)k, 1.0);
          step_ok(o[r]);
        }
      for (int k = 0; k < 2; k++)
        ck_assert_mem_eq(pbuf(&t[0][k]), pbuf(&t[1][k]), (size_t)t[0][k].n * (d ? 8 : 4));
      ck_assert_uint_eq(hash_state(o[0]), hash_state(o[1]));
      optim_destroy(o[0]);
      optim_destroy(o[1]);
    }
  unlink(path);
}
END_TEST

/* Large tensors: the threaded kernels (ranges of each tensor, buffer
 * slots included) give the same bits with 1 and 2 threads. */
START_TEST(test_threads)
{
  static const char *const algs[][2] = {
    {"adam_cm", "lr=0.01,topc=2,amsgrad=true,synced=false"},
    {"igt", "lr=0.01,momentum=0.9,nesterov=true,weight_decay=0.1"}, {"adam_igt", NULL}};
  const size_t n[3] = {100003, 65536 + 7, 33};
  for (int a = 0; a < 3; a++) {
    uint64_t ref = 0;
    for (int th = 1; th <= 2; th++) {
      int grp;
      optim_optimizer *o = make(algs[a][0], algs[a][1], &grp);
      ck_assert_int_eq(optim_set_threads(o, th), OPTIM_OK);
      float *p[3], *g[3];
      for (int j = 0; j < 3; j++) {
        p[j] = malloc(n[j] * sizeof(float));
        g[j] = malloc(n[j] * sizeof(float));
        for (size_t i = 0; i < n[j]; i++) p[j][i] = (float)golden_noise(i, 0, (uint64_t)j, 9);
        int64_t sh[1] = {(int64_t)n[j]};
        char name[8];
        snprintf(name, sizeof name, "p%d", j);
        ck_assert_int_eq(optim_add_param(o, grp, name, OPTIM_FLOAT32, 1, sh, p[j], g[j], NULL),
                         OPTIM_OK);
      }
      for (int k = 1; k <= 8; k++) {
        for (int j = 0; j < 3; j++) {
          golden_grad(OPTIM_FLOAT32, p[j], g[j], n[j], (uint64_t)k, (uint64_t)j, 9);
          const float s = (k % 3 == 0) ? 0.1f : 1.0f; /* some priorities fall */
          for (size_t i = 0; i < n[j]; i++) g[j][i] *= s;
        }
        step_ok(o);
      }
      uint64_t h = hash_state(o);
      for (int j = 0; j < 3; j++) h = hash_bytes(h, p[j], n[j] * sizeof(float));
      if (th == 1) ref = h;
      else ck_assert_uint_eq(h, ref);
      for (int j = 0; j < 3; j++) {
        free(p[j]);
        free(g[j]);
      }
      optim_destroy(o);
    }
  }
}
END_TEST

int main(void)
{
  Suite *s = suite_create("zoo2");
  TCase *tc = tcase_create("adam_cm");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_adam_cm_first_step);
  tcase_add_test(tc, test_adam_cm_buffer);
  tcase_add_test(tc, test_adam_cm_synced);
  tcase_add_test(tc, test_adam_cm_kappa0_is_adam);
  tcase_add_test(tc, test_adam_cm_critical_test);
  tcase_add_test(tc, test_adam_cm_topc_change);
  suite_add_tcase(s, tc);
  TCase *ti = tcase_create("igt");
  tcase_set_timeout(ti, 60);
  tcase_add_test(ti, test_igt_rules);
  tcase_add_test(ti, test_igt_set_true_param);
  suite_add_tcase(s, ti);
  TCase *tx = tcase_create("common");
  tcase_set_timeout(tx, 60);
  tcase_add_test(tx, test_missing_grad);
  tcase_add_test(tx, test_bad_options);
  tcase_add_test(tx, test_resume);
  tcase_add_test(tx, test_threads);
  suite_add_tcase(s, tx);
  return run_suite(s);
}
