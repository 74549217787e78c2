/* check_zoo.c - adabelief, lion, lion_k, tam and adatam: each update rule
 * against the formula written out here in double (a few steps on 1-D,
 * 2-D and 4-D tensors, float32 and float64), AdaBelief's branches (SGD
 * while rho_t < 5, then rectified), Lion-K's norms (l1 is Lion bit for
 * bit, an l2 step has norm lr, linf splits ties), TAM's two correlations,
 * missing gradients, bad options, and save/load/resume. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define MAXN 64

static optim_optimizer *make(const char *alg, const char *opts, int *grp)
{
  optim_optimizer *o;
  ck_assert_int_eq(optim_create(&o), OPTIM_OK);
  ck_assert_int_eq(optim_add_group(o, alg, grp), OPTIM_OK);
  if (opts) ck_assert_msg(optim_configure(o, *grp, opts) == OPTIM_OK, "%s", optim_errmsg(o));
  return o;
}

static double get(int dtype, const void *x, size_t i)
{
  return dtype == OPTIM_FLOAT32 ? (double)((const float *)x)[i] : ((const double *)x)[i];
}

static void set(int dtype, void *x, size_t i, double v)
{
  if (dtype == OPTIM_FLOAT32) ((float *)x)[i] = (float)v;
  else ((double *)x)[i] = v;
}

/* ---- the reference rules, in double ------------------------------------------------ */

typedef struct ref {
  size_t n, cols;       /* elements; columns of normalize(dim 0) */
  int64_t t;            /* steps taken */
  double m[MAXN], v[MAXN], s[MAXN], smax[MAXN];
  double sc;            /* tam's cosine s */
} ref;

typedef struct hp {
  double lr, b1, b2, eps, wd, decay_rate;
  int amsgrad, decouple, fixed, rectify, sgd; /* adabelief */
  int norm;                                   /* lion_k: 1, 2 or 0 (inf) */
  int elementwise, ada;                       /* tam */
} hp;

typedef void (*ref_fn)(ref *r, double *p, const double *g, const hp *h);

static void ref_adabelief(ref *r, double *p, const double *gin, const hp *h)
{
  double g[MAXN];
  for (size_t i = 0; i < r->n; i++) {
    g[i] = gin[i];
    if (h->decouple) p[i] *= h->fixed ? 1 - h->wd : 1 - h->lr * h->wd;
    else g[i] += h->wd * p[i];
  }
  int64_t t = ++r->t;
  double bc1 = 1 - pow(h->b1, (double)t), bc2 = 1 - pow(h->b2, (double)t);
  double rho_inf = 2 / (1 - h->b2) - 1, rho = rho_inf - 2 * (double)t * pow(h->b2, (double)t) / bc2;
  for (size_t i = 0; i < r->n; i++) {
    r->m[i] = h->b1 * r->m[i] + (1 - h->b1) * g[i];
    double d = g[i] - r->m[i];
    r->s[i] = h->b2 * r->s[i] + (1 - h->b2) * d * d + h->eps;
    if (r->smax[i] < r->s[i]) r->smax[i] = r->s[i];
    if (!h->rectify) {
      double s = h->amsgrad ? r->smax[i] : r->s[i];
      p[i] -= h->lr / bc1 * r->m[i] / (sqrt(s) / sqrt(bc2) + h->eps);
    } else if (rho >= 5) {
      double rt = sqrt(bc2 * (rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho)) / bc1;
      p[i] -= h->lr * rt * r->m[i] / (sqrt(r->s[i]) + h->eps);
    } else if (h->sgd) {
      p[i] -= h->lr / bc1 * r->m[i];
    }
  }
}

static double sgn(double x) { return (double)(x > 0) - (double)(x < 0); }

/* lion (norm 1) and lion_k */
static void ref_lion(ref *r, double *p, const double *g, const hp *h)
{
  double c[MAXN], nrm = 0, top = 0;
  int ties = 0;
  for (size_t i = 0; i < r->n; i++) {
    c[i] = h->b1 * r->m[i] + (1 - h->b1) * g[i];
    nrm += c[i] * c[i];
    if (fabs(c[i]) > top) top = fabs(c[i]);
  }
  nrm = sqrt(nrm);
  for (size_t i = 0; i < r->n; i++) ties += top > 0 && fabs(c[i]) == top;
  for (size_t i = 0; i < r->n; i++) {
    double d = h->norm == 1 ? sgn(c[i])
             : h->norm == 2 ? (nrm > 0 ? c[i] / nrm : 0)
             : (top > 0 && fabs(c[i]) == top ? sgn(c[i]) / ties : 0);
    p[i] = p[i] * (1 - h->lr * h->wd) - h->lr * d;
    r->m[i] = h->b2 * r->m[i] + (1 - h->b2) * g[i];
  }
}

/* tam and adatam, both correlations */
static void ref_tam(ref *r, double *p, const double *g, const hp *h)
{
  int64_t t = ++r->t;
  size_t n = r->n, cols = r->cols;
  if (h->elementwise && !h->ada && t == 1)
    for (size_t i = 0; i < n; i++) r->m[i] = g[i];
  double corr[MAXN];
  if (h->elementwise) {
    for (size_t j = 0; j < cols; j++) {
      double nm = 0, ng = 0;
      for (size_t i = j; i < n; i += cols) {
        nm += r->m[i] * r->m[i];
        ng += g[i] * g[i];
      }
      nm = fmax(sqrt(nm), 1e-12);
      ng = fmax(sqrt(ng), 1e-12);
      for (size_t i = j; i < n; i += cols) corr[i] = r->m[i] / nm * g[i] / ng;
    }
  } else {
    double dot = 0, nm = 0, ng = 0;
    for (size_t i = 0; i < n; i++) {
      dot += r->m[i] * g[i];
      nm += r->m[i] * r->m[i];
      ng += g[i] * g[i];
    }
    double c = dot / (fmax(sqrt(nm), 1e-12) * fmax(sqrt(ng), 1e-12));
    r->sc = h->decay_rate * r->sc + (1 - h->decay_rate) * c;
  }
  for (size_t i = 0; i < n; i++) {
    double s = r->sc;
    if (h->elementwise) s = r->s[i] = h->decay_rate * r->s[i] + (1 - h->decay_rate) * corr[i];
    p[i] *= 1 - h->lr * h->wd;
    r->m[i] = h->b1 * r->m[i] + ((1 + s) / 2 + h->eps) * g[i];
    if (h->ada) {
      r->v[i] = h->b2 * r->v[i] + (1 - h->b2) * g[i] * g[i];
      p[i] -= h->lr * r->m[i] / (sqrt(r->v[i]) + h->eps);
    } else {
      p[i] -= h->lr * r->m[i];
    }
  }
}

/* ---- the comparison driver ------------------------------------------------------------ */

static const int64_t shape1[] = {11}, shape2[] = {4, 6}, shape4[] = {3, 2, 2, 3};
static const int64_t *const shapes[] = {shape1, shape2, shape4};
static const int ndims[] = {1, 2, 4};

/* Steps the library and the reference side by side for `steps` steps on
 * each shape and dtype, with the same gradients (0.25 p + noise at the
 * library's p) and asserts |p - ref| <= tol (1 + |ref|) after each. */
static void compare(const char *alg, const char *opts, ref_fn fn, const hp *h, int steps)
{
  for (int dt = 0; dt < 2; dt++) {
    int dtype = dt ? OPTIM_FLOAT64 : OPTIM_FLOAT32;
    double tol = dt ? 1e-12 : 2e-5;
    for (int sh = 0; sh < 3; sh++) {
      size_t n = 1;
      for (int d = 0; d < ndims[sh]; d++) n *= (size_t)shapes[sh][d];
      ck_assert(n <= MAXN);
      double w[MAXN], gr[MAXN], p[MAXN], g[MAXN]; /* (w, gr used as either dtype) */
      static ref r;
      memset(&r, 0, sizeof r);
      r.n = n;
      r.cols = n / (size_t)shapes[sh][0];
      int grp;
      optim_optimizer *o = make(alg, opts, &grp);
      for (size_t i = 0; i < n; i++) {
        p[i] = golden_noise(i, 0, (uint64_t)sh, 11);
        set(dtype, w, i, p[i]);
      }
      ck_assert_int_eq(optim_add_param(o, grp, "x", dtype, ndims[sh], shapes[sh], w, gr, NULL),
                       OPTIM_OK);
      for (int k = 1; k <= steps; k++) {
        golden_grad(dtype, w, gr, n, (uint64_t)k, (uint64_t)sh, 11);
        for (size_t i = 0; i < n; i++) g[i] = get(dtype, gr, i);
        ck_assert_msg(optim_step(o) == OPTIM_OK, "%s", optim_errmsg(o));
        fn(&r, p, g, h);
        for (size_t i = 0; i < n; i++) {
          double x = get(dtype, w, i);
          ck_assert_msg(fabs(x - p[i]) <= tol * (1 + fabs(p[i])),
                        "%s [%s] %s %d-D step %d element %zu: %.17g vs %.17g", alg,
                        opts ? opts : "", dt ? "f64" : "f32", ndims[sh], k, i, x, p[i]);
        }
      }
      optim_destroy(o);
    }
  }
}

/* ---- adabelief ------------------------------------------------------------------------ */

static hp adabelief_hp(void)
{
  hp h = {.lr = 1e-2, .b1 = 0.9, .b2 = 0.999, .eps = 1e-16, .decouple = 1, .rectify = 1,
          .sgd = 1};
  return h;
}

START_TEST(test_adabelief_rule)
{
  hp h = adabelief_hp();
  compare("adabelief", "lr=1e-2", ref_adabelief, &h, 9);
  h.wd = 0.1;
  compare("adabelief", "lr=1e-2,weight_decay=0.1", ref_adabelief, &h, 8);
  h.amsgrad = 1;
  compare("adabelief", "lr=1e-2,weight_decay=0.1,amsgrad=true", ref_adabelief, &h, 8);
  h.rectify = 0;
  h.eps = 1e-8;
  compare("adabelief", "lr=1e-2,weight_decay=0.1,amsgrad=true,rectify=false,eps=1e-8",
          ref_adabelief, &h, 6);
  h.amsgrad = 0;
  h.decouple = 0;
  compare("adabelief", "lr=1e-2,weight_decay=0.1,rectify=false,eps=1e-8,weight_decouple=false",
          ref_adabelief, &h, 6);
  h.decouple = 1;
  h.fixed = 1;
  h.wd = 0.01;
  h.b2 = 0.99;
  compare("adabelief", "lr=1e-2,weight_decay=0.01,fixed_decay=true,beta2=0.99,eps=1e-8,"
          "rectify=false", ref_adabelief, &h, 6);
}
END_TEST

/* beta2 = 0.999: rho_t < 5 up to t = 5 (4.996), >= 5 from t = 6.  With
 * degenerated_to_sgd=false nothing moves before; the SGD step is
 * p - lr/bc1 * m (with m = (1 - beta1) g at t = 1: p - lr g). */
START_TEST(test_adabelief_branches)
{
  double rho_inf = 2 / (1 - 0.999) - 1;
  double rho5 = rho_inf - 2 * 5 * pow(0.999, 5) / (1 - pow(0.999, 5));
  double rho6 = rho_inf - 2 * 6 * pow(0.999, 6) / (1 - pow(0.999, 6));
  ck_assert(rho5 < 5 && rho6 >= 5);
  for (int sgd = 0; sgd < 2; sgd++) {
    int grp;
    optim_optimizer *o = make("adabelief", sgd ? "lr=0.5" : "lr=0.5,degenerated_to_sgd=false",
                              &grp);
    double w[5], g[5], before[5];
    int64_t n = 5;
    for (int i = 0; i < 5; i++) w[i] = golden_noise((uint64_t)i, 0, 0, 5);
    ck_assert_int_eq(optim_add_param(o, grp, "w", OPTIM_FLOAT64, 1, &n, w, g, NULL), OPTIM_OK);
    for (int t = 1; t <= 7; t++) {
      memcpy(before, w, sizeof w);
      golden_grad(OPTIM_FLOAT64, w, g, 5, (uint64_t)t, 0, 5);
      ck_assert_int_eq(optim_step(o), OPTIM_OK);
      if (t == 1 && sgd)
        for (int i = 0; i < 5; i++)
          ck_assert(fabs(w[i] - (before[i] - 0.5 * g[i])) <= 1e-15 * (1 + fabs(w[i])));
      if (t <= 5 && !sgd) ck_assert_mem_eq(w, before, sizeof w);
      if (t > 5 || sgd)
        for (int i = 0; i < 5; i++) ck_assert(w[i] != before[i]);
    }
    const void *s;
    int64_t cnt;
    ck_assert_int_eq(optim_state_buffer(o, 0, "exp_avg_var", &s, &cnt), OPTIM_OK);
    ck_assert_int_eq(cnt, 5);
    ck_assert_int_eq(optim_state_buffer(o, 0, "max_exp_avg_var", &s, &cnt), OPTIM_EUNKNOWN);
    optim_destroy(o);
  }
}
END_TEST

/* ---- lion, lion_k ------------------------------------------------------------------------ */

START_TEST(test_lion_rule)
{
  hp h = {.lr = 1e-2, .b1 = 0.9, .b2 = 0.99, .norm = 1};
  compare("lion", "lr=1e-2", ref_lion, &h, 6);
  h.wd = 0.5;
  h.b1 = 0.95;
  h.b2 = 0.98;
  compare("lion", "lr=1e-2,weight_decay=0.5,beta1=0.95,beta2=0.98", ref_lion, &h, 6);
  compare("lion_k", "lr=1e-2,weight_decay=0.5,beta1=0.95,beta2=0.98", ref_lion, &h, 6);
  h.norm = 2;
  compare("lion_k", "lr=1e-2,weight_decay=0.5,beta1=0.95,beta2=0.98,norm=l2", ref_lion, &h, 6);
  h.norm = 0;
  compare("lion_k", "lr=1e-2,weight_decay=0.5,beta1=0.95,beta2=0.98,norm=linf", ref_lion, &h, 6);
}
END_TEST

/* lion_k with norm=l1 is lion, bit for bit, also threaded over a large
 * tensor with a range. */
START_TEST(test_lion_k_l1_is_lion)
{
  enum { N = 100000 };
  for (int dt = 0; dt < 2; dt++) {
    int dtype = dt ? OPTIM_FLOAT64 : OPTIM_FLOAT32;
    size_t es = dt ? 8 : 4;
    optim_optimizer *o[2];
    void *w[2], *g[2];
    int64_t n = N, s2[2] = {3, 7};
    for (int k = 0; k < 2; k++) {
      int grp;
      o[k] = make(k ? "lion_k" : "lion", "lr=3e-3,weight_decay=0.1", &grp);
      ck_assert_int_eq(optim_set_threads(o[k], 2), OPTIM_OK);
      w[k] = malloc((N + 21) * es);
      g[k] = malloc((N + 21) * es);
      for (size_t i = 0; i < N + 21; i++) set(dtype, w[k], i, golden_noise(i, 0, 0, 21));
      ck_assert_int_eq(optim_add_param(o[k], grp, "big", dtype, 1, &n, w[k], g[k], NULL),
                       OPTIM_OK);
      ck_assert_int_eq(optim_add_param(o[k], grp, "m", dtype, 2, s2, (char *)w[k] + N * es,
                                       (char *)g[k] + N * es, NULL),
                       OPTIM_OK);
      ck_assert_int_eq(optim_param_set_range(o[k], 0, 1000, N - 17), OPTIM_OK);
    }
    for (int t = 1; t <= 4; t++) {
      golden_grad(dtype, w[0], g[0], N + 21, (uint64_t)t, 0, 21);
      memcpy(g[1], g[0], (N + 21) * es);
      ck_assert_int_eq(optim_step(o[0]), OPTIM_OK);
      ck_assert_int_eq(optim_step(o[1]), OPTIM_OK);
      ck_assert_mem_eq(w[0], w[1], (N + 21) * es);
      ck_assert_uint_eq(hash_state(o[0]), hash_state(o[1]));
    }
    /* the range cannot step whole under l2 */
    ck_assert_int_eq(optim_configure(o[1], 0, "norm=l2"), OPTIM_OK);
    uint64_t h = hash_state(o[1]);
    ck_assert_int_eq(optim_step(o[1]), OPTIM_EUNSUPPORTED);
    ck_assert_uint_eq(hash_state(o[1]), h);
    ck_assert_int_eq(optim_param_set_range(o[1], 1, 0, 7), OPTIM_EUNSUPPORTED);
    for (int k = 0; k < 2; k++) {
      optim_destroy(o[k]);
      free(w[k]);
      free(g[k]);
    }
  }
}
END_TEST

/* norm=l2 without decay moves p by exactly lr in L2 norm each step. */
START_TEST(test_lion_k_l2_step_norm)
{
  for (int dt = 0; dt < 2; dt++) {
    int dtype = dt ? OPTIM_FLOAT64 : OPTIM_FLOAT32;
    double w[24], g[24], before[24];
    int64_t s4[4] = {2, 3, 2, 2};
    int grp;
    optim_optimizer *o = make("lion_k", "norm=l2,lr=0.05", &grp);
    for (int i = 0; i < 24; i++) set(dtype, w, (size_t)i, golden_noise((uint64_t)i, 0, 0, 4));
    ck_assert_int_eq(optim_add_param(o, grp, "w", dtype, 4, s4, w, g, NULL), OPTIM_OK);
    for (int t = 1; t <= 5; t++) {
      for (int i = 0; i < 24; i++) before[i] = get(dtype, w, (size_t)i);
      golden_grad(dtype, w, g, 24, (uint64_t)t, 0, 4);
      ck_assert_int_eq(optim_step(o), OPTIM_OK);
      double d2 = 0;
      for (int i = 0; i < 24; i++) {
        double d = get(dtype, w, (size_t)i) - before[i];
        d2 += d * d;
      }
      ck_assert_msg(fabs(sqrt(d2) - 0.05) <= (dt ? 1e-12 : 1e-6), "step %d: %.17g", t,
                    sqrt(d2));
    }
    /* a zero gradient and momentum (c = 0) does not move */
    optim_destroy(o);
    o = make("lion_k", "norm=l2", &grp);
    memset(g, 0, sizeof g);
    for (int i = 0; i < 24; i++) set(dtype, w, (size_t)i, 1.0);
    ck_assert_int_eq(optim_add_param(o, grp, "w", dtype, 4, s4, w, g, NULL), OPTIM_OK);
    ck_assert_int_eq(optim_step(o), OPTIM_OK);
    for (int i = 0; i < 24; i++) ck_assert(get(dtype, w, (size_t)i) == 1.0);
    optim_destroy(o);
  }
}
END_TEST

/* norm=linf: the sign is split evenly among the entries of largest |c|
 * (here c = (1 - beta1) g at the first step: 3 ties); lion's sign(0) = 0. */
START_TEST(test_lion_k_linf_ties)
{
  for (int dt = 0; dt < 2; dt++) {
    int dtype = dt ? OPTIM_FLOAT64 : OPTIM_FLOAT32;
    const double gv[6] = {3, -3, 1, 3, 0, -2.5};
    const double want[6] = {-1.0 / 3, 1.0 / 3, 0, -1.0 / 3, 0, 0};
    double w[6], g[6];
    int64_t n = 6;
    int grp;
    optim_optimizer *o = make("lion_k", "norm=linf,lr=0.3", &grp);
    for (int i = 0; i < 6; i++) {
      set(dtype, w, (size_t)i, 1.0);
      set(dtype, g, (size_t)i, gv[i]);
    }
    ck_assert_int_eq(optim_add_param(o, grp, "w", dtype, 1, &n, w, g, NULL), OPTIM_OK);
    ck_assert_int_eq(optim_step(o), OPTIM_OK);
    for (int i = 0; i < 6; i++)
      ck_assert_msg(fabs(get(dtype, w, (size_t)i) - (1 + 0.3 * want[i])) <= (dt ? 1e-15 : 1e-7),
                    "%d: %.17g", i, get(dtype, w, (size_t)i));
    /* lion: sign(0) = 0, the zero entry stays */
    int g2;
    optim_optimizer *l = make("lion", "lr=0.3", &g2);
    double wl[6];
    for (int i = 0; i < 6; i++) set(dtype, wl, (size_t)i, 1.0);
    ck_assert_int_eq(optim_add_param(l, g2, "w", dtype, 1, &n, wl, g, NULL), OPTIM_OK);
    ck_assert_int_eq(optim_step(l), OPTIM_OK);
    for (int i = 0; i < 6; i++)
      ck_assert(fabs(get(dtype, wl, (size_t)i) - (1 - 0.3 * sgn(gv[i]))) <= (dt ? 1e-15 : 1e-7));
    optim_destroy(l);
    /* one entry alone at the top takes the whole step */
    set(dtype, g, 1, -4);
    for (int i = 0; i < 6; i++) set(dtype, w, (size_t)i, 1.0);
    ck_assert_int_eq(optim_step(o), OPTIM_OK);
    for (int i = 0; i < 6; i++)
      ck_assert(fabs(get(dtype, w, (size_t)i) - (i == 1 ? 1.3 : 1.0)) <= (dt ? 1e-15 : 1e-7));
    optim_destroy(o);
  }
}
END_TEST

/* ---- tam, adatam -------------------------------------------------------------------------- */

START_TEST(test_tam_rules)
{
  for (int ada = 0; ada < 2; ada++)
    for (int ew = 0; ew < 2; ew++) {
      const char *alg = ada ? "adatam" : "tam";
      hp h = {.lr = ada ? 1e-2 : 0.1, .b1 = 0.9, .b2 = 0.999, .decay_rate = 0.9, .eps = 1e-8,
              .ada = ada, .elementwise = ew};
      char opts[160];
      snprintf(opts, sizeof opts, "lr=%s,correlation=%s", ada ? "1e-2" : "0.1",
               ew ? "elementwise" : "cosine");
      compare(alg, opts, ref_tam, &h, 6);
      h.wd = 0.2;
      h.b1 = ada ? 0.8 : 0.7;
      h.decay_rate = 0.6;
      h.eps = 1e-3;
      snprintf(opts, sizeof opts, "lr=%s,weight_decay=0.2,%s=%s,decay_rate=0.6,eps=1e-3,"
               "correlation=%s", ada ? "1e-2" : "0.1", ada ? "beta1" : "momentum",
               ada ? "0.8" : "0.7", ew ? "elementwise" : "cosine");
      compare(alg, opts, ref_tam, &h, 6);
    }
}
END_TEST

/* The two correlations give different steps (from the second one for
 * tam's cosine, whose m starts at 0) and s of 1 vs numel elements; with
 * a gradient that keeps its direction, the cosine gives corr = 1 from the
 * second step on, so s -> 1 and the weight (1 + s)/2 -> 1. */
START_TEST(test_tam_correlations)
{
  for (int ada = 0; ada < 2; ada++) {
    const char *alg = ada ? "adatam" : "tam";
    double w[2][12], g[12];
    int64_t s2[2] = {3, 4};
    optim_optimizer *o[2];
    for (int k = 0; k < 2; k++) {
      int grp;
      o[k] = make(alg, k ? "correlation=elementwise" : NULL, &grp);
      for (int i = 0; i < 12; i++) w[k][i] = golden_noise((uint64_t)i, 0, 0, 6);
      ck_assert_int_eq(optim_add_param(o[k], grp, "w", OPTIM_FLOAT64, 2, s2, w[k], g, NULL),
                       OPTIM_OK);
      const void *s;
      int64_t cnt;
      ck_assert_int_eq(optim_state_buffer(o[k], 0, "s", &s, &cnt), OPTIM_OK);
      ck_assert_int_eq(cnt, k ? 12 : 1);
    }
    for (int t = 1; t <= 3; t++) {
      for (int i = 0; i < 12; i++) g[i] = golden_noise((uint64_t)i, (uint64_t)t, 0, 6);
      ck_assert_int_eq(optim_step(o[0]), OPTIM_OK);
      ck_assert_int_eq(optim_step(o[1]), OPTIM_OK);
    }
    ck_assert(memcmp(w[0], w[1], sizeof w[0]) != 0);
    optim_destroy(o[0]);
    optim_destroy(o[1]);

    int grp;
    optim_optimizer *c = make(alg, "decay_rate=0.9", &grp);
    ck_assert_int_eq(optim_add_param(c, grp, "w", OPTIM_FLOAT64, 2, s2, w[0], g, NULL),
                     OPTIM_OK);
    for (int i = 0; i < 12; i++) g[i] = 1 + i % 5;
    for (int t = 1; t <= 120; t++) {
      for (int i = 0; i < 12; i++) g[i] *= 1.01; /* parallel to m */
      ck_assert_int_eq(optim_step(c), OPTIM_OK);
    }
    const void *s;
    int64_t cnt;
    ck_assert_int_eq(optim_state_buffer(c, 0, "s", &s, &cnt), OPTIM_OK);
    double sv = *(const double *)s, d = (1 + sv) / 2;
    /* s = 1 - 0.9^(t-1) after t steps (corr 0, then 1) */
    ck_assert(fabs(sv - (1 - pow(0.9, 119))) <= 1e-12);
    ck_assert(d > 1 - 1e-5 && d <= 1);
    int64_t step;
    ck_assert_int_eq(optim_state_scalar(c, 0, "step", &step), OPTIM_OK);
    ck_assert_int_eq(step, 120);
    optim_destroy(c);
  }
}
END_TEST

/* tam elementwise starts m as a copy of the first gradient (kozistr): the
 * first step is then lr * (momentum g + ((1 + s)/2 + eps) g) with
 * s = (1 - decay_rate) g^2 / |g_col|^2. */
START_TEST(test_tam_elementwise_first_step)
{
  double w[6] = {0}, g[6] = {1, 2, 3, 4, 5, 6};
  int64_t s2[2] = {2, 3};
  int grp;
  optim_optimizer *o = make("tam", "correlation=elementwise,lr=1,momentum=0.5,eps=0", &grp);
  ck_assert_int_eq(optim_add_param(o, grp, "w", OPTIM_FLOAT64, 2, s2, w, g, NULL), OPTIM_OK);
  ck_assert_int_eq(optim_step(o), OPTIM_OK);
  for (int i = 0; i < 6; i++) {
    int j = i % 3;
    double col = g[j] * g[j] + g[j + 3] * g[j + 3];
    double s = 0.1 * g[i] * g[i] / col;
    ck_assert(fabs(w[i] + (0.5 * g[i] + (1 + s) / 2 * g[i])) <= 1e-14);
  }
  optim_destroy(o);
}
END_TEST

/* ---- every algorithm ------------------------------------------------------------------------ */

static const char *const configs[][2] = {
  {"adabelief", "lr=1e-2,weight_decay=0.1"},
  {"adabelief", "amsgrad=true,rectify=false,eps=1e-8"},
  {"lion", "weight_decay=0.1,lr=1e-2"},
  {"lion_k", "lr=1e-2"},
  {"lion_k", "norm=l2,weight_decay=0.1"},
  {"lion_k", "norm=linf"},
  {"tam", "weight_decay=0.1"},
  {"tam", "correlation=elementwise"},
  {"adatam", "weight_decay=0.1"},
  {"adatam", "correlation=elementwise"},
};
#define NCONFIGS ((int)(sizeof configs / sizeof configs[0]))

/* The values and state of parameter index (float32, bytes of data). */
static uint64_t hash_param(optim_optimizer *o, int index, const void *data, size_t bytes)
{
  return hash_param_state(hash_bytes(1469598103934665603ull, data, bytes), o, index);
}

/* A parameter without gradient is skipped: its values and state stay as
 * they are, while the other one steps. */
START_TEST(test_missing_gradient)
{
  for (int c = 0; c < NCONFIGS; c++) {
    int grp;
    optim_optimizer *o = make(configs[c][0], configs[c][1], &grp);
    float a[12], ga[12], b[12], gb[12];
    int64_t s2[2] = {3, 4};
    for (int i = 0; i < 12; i++) a[i] = b[i] = (float)golden_noise((uint64_t)i, 0, 0, 2);
    ck_assert_int_eq(optim_add_param(o, grp, "a", OPTIM_FLOAT32, 2, s2, a, ga, NULL), OPTIM_OK);
    ck_assert_int_eq(optim_add_param(o, grp, "b", OPTIM_FLOAT32, 2, s2, b, gb, NULL), OPTIM_OK);
    for (int t = 1; t <= 5; t++) {
      if (t == 3) ck_assert_int_eq(optim_param_bind(o, 1, b, NULL), OPTIM_OK);
      golden_grad(OPTIM_FLOAT32, a, ga, 12, (uint64_t)t, 0, 2);
      golden_grad(OPTIM_FLOAT32, b, gb, 12, (uint64_t)t, 1, 2);
      uint64_t hb = hash_param(o, 1, b, sizeof b);
      float before[12];
      memcpy(before, a, sizeof a);
      ck_assert_msg(optim_step(o) == OPTIM_OK, "%s: %s", configs[c][0], optim_errmsg(o));
      ck_assert(memcmp(a, before, sizeof a) != 0);
      if (t >= 3)
        ck_assert_msg(hash_param(o, 1, b, sizeof b) == hb, "%s [%s] changed b at step %d",
                      configs[c][0], configs[c][1], t);
    }
    optim_destroy(o);
  }
}
END_TEST

START_TEST(test_bad_options)
{
  static const struct {
    const char *alg, *name;
    double value;
  } bad_d[] = {
    {"adabelief", "beta1", 1},  {"adabelief", "beta2", 1},     {"adabelief", "lr", -1},
    {"adabelief", "eps", -1e-8}, {"adabelief", "weight_decay", -0.1},
    {"lion", "beta1", 1},       {"lion", "beta2", -0.1},       {"lion", "lr", -1e-4},
    {"lion_k", "beta1", 1},     {"lion_k", "weight_decay", -1},
    {"tam", "momentum", 1},     {"tam", "decay_rate", 1},      {"tam", "lr", -1},
    {"tam", "eps", -1},         {"adatam", "beta1", 1},        {"adatam", "beta2", 1.5},
    {"adatam", "decay_rate", -0.5}, {"adatam", "lr", -1e-3},
  };
  for (size_t k = 0; k < sizeof bad_d / sizeof bad_d[0]; k++) {
    int grp;
    optim_optimizer *o = make(bad_d[k].alg, NULL, &grp);
    double before, after;
    ck_assert_int_eq(optim_get_double(o, grp, bad_d[k].name, &before), OPTIM_OK);
    ck_assert_msg(optim_set_double(o, grp, bad_d[k].name, bad_d[k].value) == OPTIM_ERANGE,
                  "%s %s=%g", bad_d[k].alg, bad_d[k].name, bad_d[k].value);
    ck_assert_int_eq(optim_get_double(o, grp, bad_d[k].name, &after), OPTIM_OK);
    ck_assert(before == after);
    optim_destroy(o);
  }
  int grp;
  char buf[32];
  optim_optimizer *o = make("tam", NULL, &grp);
  ck_assert_int_eq(optim_set_string(o, grp, "correlation", "pearson"), OPTIM_ERANGE);
  ck_assert_int_eq(optim_configure(o, grp, "correlation=cos"), OPTIM_ERANGE);
  ck_assert_int_eq(optim_get_string(o, grp, "correlation", buf, sizeof buf), OPTIM_OK);
  ck_assert_str_eq(buf, "cosine");
  ck_assert_int_eq(optim_set_double(o, grp, "beta1", 0.9), OPTIM_EUNKNOWN);
  optim_destroy(o);
  o = make("adatam", NULL, &grp);
  ck_assert_int_eq(optim_set_string(o, grp, "correlation", "Elementwise"), OPTIM_ERANGE);
  ck_assert_int_eq(optim_set_double(o, grp, "momentum", 0.9), OPTIM_EUNKNOWN);
  optim_destroy(o);
  o = make("lion_k", NULL, &grp);
  ck_assert_int_eq(optim_set_string(o, grp, "norm", "l3"), OPTIM_ERANGE);
  ck_assert_int_eq(optim_get_string(o, grp, "norm", buf, sizeof buf), OPTIM_OK);
  ck_assert_str_eq(buf, "l1");
  optim_destroy(o);
  o = make("lion", NULL, &grp);
  ck_assert_int_eq(optim_set_string(o, grp, "norm", "l2"), OPTIM_EUNKNOWN);
  ck_assert_int_eq(optim_set_double(o, grp, "eps", 1e-8), OPTIM_EUNKNOWN);
  optim_destroy(o);
  o = make("adabelief", NULL, &grp);
  ck_assert_int_eq(optim_set_option(o, grp, "rectify", "sometimes"), OPTIM_EINVAL);
  optim_destroy(o);
}
END_TEST

/* Defaults as ZOO-DESIGN.md gives them. */
START_TEST(test_defaults)
{
  static const struct {
    const char *alg, *name;
    double value;
  } defs[] = {
    {"adabelief", "lr", 1e-3},  {"adabelief", "beta1", 0.9},  {"adabelief", "beta2", 0.999},
    {"adabelief", "eps", 1e-16}, {"adabelief", "weight_decay", 0},
    {"lion", "lr", 1e-4},       {"lion", "beta1", 0.9},       {"lion", "beta2", 0.99},
    {"lion", "weight_decay", 0}, {"lion_k", "lr", 1e-4},      {"lion_k", "beta2", 0.99},
    {"tam", "lr", 1e-3},        {"tam", "momentum", 0.9},     {"tam", "decay_rate", 0.9},
    {"tam", "weight_decay", 0}, {"tam", "eps", 1e-8},         {"adatam", "lr", 1e-3},
    {"adatam", "beta1", 0.9},   {"adatam", "beta2", 0.999},   {"adatam", "decay_rate", 0.9},
    {"adatam", "weight_decay", 0}, {"adatam", "eps", 1e-8},
  };
  for (size_t k = 0; k < sizeof defs / sizeof defs[0]; k++) {
    int grp;
    double v;
    optim_optimizer *o = make(defs[k].alg, NULL, &grp);
    ck_assert_int_eq(optim_get_double(o, grp, defs[k].name, &v), OPTIM_OK);
    ck_assert_msg(v == defs[k].value, "%s %s", defs[k].alg, defs[k].name);
    optim_destroy(o);
  }
  static const struct {
    const char *name;
    int value;
  } bools[] = {{"amsgrad", 0}, {"weight_decouple", 1}, {"fixed_decay", 0}, {"rectify", 1},
               {"degenerated_to_sgd", 1}};
  int grp, b;
  optim_optimizer *o = make("adabelief", NULL, &grp);
  for (size_t k = 0; k < sizeof bools / sizeof bools[0]; k++) {
    ck_assert_int_eq(optim_get_bool(o, grp, bools[k].name, &b), OPTIM_OK);
    ck_assert_int_eq(b, bools[k].value);
  }
  optim_destroy(o);
}
END_TEST

/* Saved after 5 steps and resumed in a fresh optimizer: bit-identical to
 * the run that never stopped (a float32 matrix and a float64 vector). */
START_TEST(test_resume)
{
  char path[] = "/tmp/optim-zoo-XXXXXX";
  int fd = mkstemp(path);
  ck_assert(fd >= 0);
  close(fd);
  for (int c = 0; c < NCONFIGS; c++) {
    float a[2][12], ga[2][12];
    double b[2][5], gb[2][5];
    int64_t s2[2] = {3, 4}, s1 = 5;
    optim_optimizer *o[2];
    for (int r = 0; r < 2; r++) {
      for (int i = 0; i < 12; i++) a[r][i] = (float)golden_noise((uint64_t)i, 0, 0, 31);
      for (int i = 0; i < 5; i++) b[r][i] = golden_noise((uint64_t)i, 0, 1, 31);
    }
    for (int k = 0; k < 10; k++) {
      for (int r = 0; r < 2; r++) {
        if (k == 0 || (r == 1 && k == 5)) {
          if (k == 5) {
            ck_assert_int_eq(optim_save(o[1], path), OPTIM_OK);
            optim_destroy(o[1]);
          }
          int grp;
          o[r] = make(configs[c][0], configs[c][1], &grp);
          ck_assert_int_eq(optim_add_param(o[r], grp, "a", OPTIM_FLOAT32, 2, s2, a[r], ga[r],
                                           NULL),
                           OPTIM_OK);
          ck_assert_int_eq(optim_add_param(o[r], grp, "b", OPTIM_FLOAT64, 1, &s1, b[r], gb[r],
                                           NULL),
                           OPTIM_OK);
          if (k == 5) ck_assert_msg(optim_load(o[1], path) == OPTIM_OK, "%s", optim_errmsg(o[1]));
        }
        golden_grad(OPTIM_FLOAT32, a[r], ga[r], 12, (uint64_t)k, 0, 31);
        golden_grad(OPTIM_FLOAT64, b[r], gb[r], 5, (uint64_t)k, 1, 31);
        ck_assert_int_eq(optim_step(o[r]), OPTIM_OK);
      }
    }
    ck_assert_msg(memcmp(a[0], a[1], sizeof a[0]) == 0 && memcmp(b[0], b[1], sizeof b[0]) == 0,
                  "%s [%s]: resumed run differs", configs[c][0], configs[c][1]);
    ck_assert_uint_eq(hash_state(o[0]), hash_state(o[1]));
    optim_destroy(o[0]);
    optim_destroy(o[1]);
  }
  unlink(path);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("zoo");
  TCase *tc = tcase_create("zoo");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_adabelief_rule);
  tcase_add_test(tc, test_adabelief_branches);
  tcase_add_test(tc, test_lion_rule);
  tcase_add_test(tc, test_lion_k_l1_is_lion);
  tcase_add_test(tc, test_lion_k_l2_step_norm);
  tcase_add_test(tc, test_lion_k_linf_ties);
  tcase_add_test(tc, test_tam_rules);
  tcase_add_test(tc, test_tam_correlations);
  tcase_add_test(tc, test_tam_elementwise_first_step);
  tcase_add_test(tc, test_missing_gradient);
  tcase_add_test(tc, test_bad_options);
  tcase_add_test(tc, test_defaults);
  tcase_add_test(tc, test_resume);
  suite_add_tcase(s, tc);
  return run_suite(s);
}
