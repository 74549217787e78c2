/* tam.c - Torque-Aware Momentum and AdaTAM (Malviya et al., arXiv
 * 2412.18790; spec section 7): momentum whose new gradient is weighted by
 * how well it aligns with the momentum, through a running average s of a
 * correlation:
 *
 *   s = decay_rate * s + (1 - decay_rate) * corr(m, grad)
 *   tam:    m = momentum * m + ((1 + s)/2 + eps) * grad;  p = p - lr * m
 *   adatam: m = beta1 * m + ((1 + s)/2 + eps) * grad;
 *           v = beta2 * v + (1 - beta2) * grad^2;  p = p - lr * m / (sqrt(v) + eps)
 *
 * after the decoupled decay p *= 1 - lr * weight_decay.  correlation=cosine
 * (the paper's) takes the cosine of the whole tensors m and grad, one
 * scalar s per tensor, m starting at 0; correlation=elementwise is
 * kozistr/pytorch_optimizer's tam.py: the product of m and grad each
 * L2-normalized along dim 0 (torch.nn.functional.normalize), one s per
 * element, and tam's m starting as a copy of the first gradient.
 * Both need reductions over the tensor: whole-tensor steps, sums in double
 * in a fixed order (independent of threads). */
#include <math.h>

#include "matrix.h"
#include "optim-internal.h"
#include "tensor.h"

enum { CORR_COSINE = 0, CORR_ELEMENTWISE = 1 };

/* Shared indices: both tables start lr, <beta1 or momentum>, then ... */
enum { LR, BETA1, T_DECAY_RATE, T_WEIGHT_DECAY, T_EPS, T_CORRELATION };
enum { A_BETA2 = 2, A_CORRELATION = 6 }; /* adatam: beta2 shifts the tail by one */

#define TAM_TAIL_HPS                                                                          \
  {"decay_rate", OPTIM_TYPE_DOUBLE, 0.9, "0.9", 0, 1, HP_HI_OPEN, 0,                          \
   "decay rate of s, the running average of the correlation"},                                \
  {"weight_decay", OPTIM_TYPE_DOUBLE, 0, "0", 0, INFINITY, 0, 0,                              \
   "decoupled weight decay: p *= 1 - lr * weight_decay first"},                               \
  {"eps", OPTIM_TYPE_DOUBLE, 1e-8, "1e-8", 0, INFINITY, 0, 0,                                 \
   "added to the gradient's weight (1 + s)/2"}

#define TAM_CORR_HP                                                                           \
  {"correlation", OPTIM_TYPE_STRING, 0, "cosine", 0, 0, HP_LAYOUT, "cosine|elementwise",      \
   "cosine: one cosine of m and grad per tensor (the paper); elementwise: m and grad "        \
   "L2-normalized along dim 0, multiplied (kozistr/pytorch_optimizer)"}

static const hp_desc tam_hps[] = {
  {"lr", OPTIM_TYPE_DOUBLE, 1e-3, "1e-3", 0, INFINITY, 0, 0, "learning rate"},
  {"momentum", OPTIM_TYPE_DOUBLE, 0.9, "0.9", 0, 1, HP_HI_OPEN, 0,
   "momentum factor: m = momentum * m + weight * grad"},
  TAM_TAIL_HPS,
  TAM_CORR_HP,
};

static const hp_desc adatam_hps[] = {
  {"lr", OPTIM_TYPE_DOUBLE, 1e-3, "1e-3", 0, INFINITY, 0, 0, "learning rate"},
  {"beta1", OPTIM_TYPE_DOUBLE, 0.9, "0.9", 0, 1, HP_HI_OPEN, 0,
   "decay of the first moment: m = beta1 * m + weight * grad"},
  {"beta2", OPTIM_TYPE_DOUBLE, 0.999, "0.999", 0, 1, HP_HI_OPEN, 0,
   "decay rate of the second moment (running mean of squared gradients)"},
  TAM_TAIL_HPS,
  TAM_CORR_HP,
};

/* The settings of a step, from either table. */
typedef struct tam_cfg {
  int ada, corr;
  double lr, b1, b2, decay_rate, eps, decay;
} tam_cfg;

static tam_cfg config(const optim_group *g, const optim_param *p)
{
  tam_cfg k;
  k.ada = g->alg->hp == adatam_hps;
  int o = k.ada ? 1 : 0; /* adatam has beta2 before the common tail */
  k.lr = hp_d(g, LR);
  k.b1 = hp_d(g, BETA1);
  k.b2 = k.ada ? hp_d(g, A_BETA2) : 0;
  k.decay_rate = hp_d(g, T_DECAY_RATE + o);
  k.eps = hp_d(g, T_EPS + o);
  k.corr = (int)hp_i(g, T_CORRELATION + o);
  k.decay = 1 - k.lr * optim__wd(g, p, T_WEIGHT_DECAY + o);
  return k;
}

static int corr_of(const optim_group *g)
{
  return (int)hp_i(g, g->alg->hp == adatam_hps ? A_CORRELATION : T_CORRELATION);
}

static void layout(const optim_group *g, const optim_param *p, state_layout *out)
{
  (void)p;
  const int ada = g->alg->hp == adatam_hps;
  int n = 0;
  out->name[n] = "step";
  out->kind[n++] = OPTIM_STATE_SCALAR;
  out->name[n] = ada ? "exp_avg" : "momentum_buffer";
  out->kind[n++] = OPTIM_STATE_BUFFER;
  if (ada) {
    out->name[n] = "exp_avg_sq";
    out->kind[n++] = OPTIM_STATE_BUFFER;
  }
  out->name[n] = "s";
  out->kind[n] = OPTIM_STATE_BUFFER;
  out->count[n++] = corr_of(g) == CORR_COSINE ? 1 : 0; /* 0: numel */
  out->n = n;
}

/* Per-step values of pass 2. */
enum { C_GSCALE, C_B1, C_B2, C_1MB2, C_EPS, C_STEP, C_DECAY, C_LW, C_COSINE, C_W, C_COUNT };

/* The columns of normalize(x, dim=0): dim 0 is reduced, the rest kept. */
static size_t columns(const optim_param *p)
{
  return p->numel / (size_t)p->shape[0];
}

static size_t workspace(const optim_group *g, const optim_param *p)
{
  if (corr_of(g) == CORR_COSINE) return 0;
  return 2 * (columns(p) * sizeof(double) + 64);
}

static double cost(const optim_group *g, const optim_param *p)
{
  return (g->alg->hp == adatam_hps ? 16.0 : 12.0) * (double)p->numel;
}

/* Sums in double in a fixed order whatever the threads: entry i goes to
 * lane i % TAM_LANES (the lanes vectorize), the lanes are added in order. */
#define TAM_LANES 8

/* Pass 1: with one column (cosine, or a vector), <m, g>, |m|^2 and |g|^2
 * into dot, cm[0], cg[0]; otherwise the squares of each column of m and g
 * (rows of len = ncol elements) into cm[], cg[].  tam's elementwise first
 * step copies g into m first (kozistr: m starts as the gradient). */
#define TAM_REDUCE(T, SFX)                                                                    \
  OPTIM_CLONES static void tam_reduce_##SFX(T *restrict m, const T *restrict g, size_t n,     \
                                            size_t len, int copy, int zero, T gs,            \
                                            double *restrict cm, double *restrict cg,        \
                                            double *restrict dot)                             \
  {                                                                                           \
    if (len < n) {                                                                            \
      for (size_t j = 0; j < len; j++) cm[j] = cg[j] = 0;                                     \
      for (size_t r = 0; r < n; r += len)                                                     \
        for (size_t j = 0; j < len; j++) {                                                    \
          T gi = OPTIM_GRAD(T, g, r + j, zero) * gs;                                          \
          if (copy) m[r + j] = gi;                                                            \
          cm[j] += (double)m[r + j] * (double)m[r + j];                                       \
          cg[j] += (double)gi * (double)gi;                                                   \
        }                                                                                     \
      return;                                                                                 \
    }                                                                                         \
    double ad[TAM_LANES] = {0}, am[TAM_LANES] = {0}, ag[TAM_LANES] = {0};                     \
    size_t i = 0;                                                                             \
    for (; i + TAM_LANES <= n; i += TAM_LANES)                                                \
      for (size_t l = 0; l < TAM_LANES; l++) {                                                \
        T gi = OPTIM_GRAD(T, g, i + l, zero) * gs;                                            \
        if (copy) m[i + l] = gi;                                                              \
        double md = (double)m[i + l], gd = (double)gi;                                        \
        ad[l] += md * gd;                                                                     \
        am[l] += md * md;                                                                     \
        ag[l] += gd * gd;                                                                     \
      }                                                                                       \
    for (size_t l = 0; i < n; i++, l++) {                                                     \
      T gi = OPTIM_GRAD(T, g, i, zero) * gs;                                                  \
      if (copy) m[i] = gi;                                                                    \
      double md = (double)m[i], gd = (double)gi;                                              \
      ad[l] += md * gd;                                                                       \
      am[l] += md * md;                                                                       \
      ag[l] += gd * gd;                                                                       \
    }                                                                                         \
    *dot = cm[0] = cg[0] = 0;                                                                 \
    for (size_t l = 0; l < TAM_LANES; l++) {                                                  \
      *dot += ad[l];                                                                          \
      cm[0] += am[l];                                                                         \
      cg[0] += ag[l];                                                                         \
    }                                                                                         \
  }

/* The end of an element's step, from its new m (adatam when ADA). */
#define TAM_TAIL(T, SQRT, ADA)                                                                \
  T mi = m[i] * b1 + d;                                                                       \
  m[i] = mi;                                                                                  \
  if (ADA) {                                                                                  \
    T vi = v[i] * b2 + a2 * gi * gi;                                                          \
    v[i] = vi;                                                                                \
    p[i] = pi + step * mi / (SQRT(vi) + eps);                                                 \
  } else {                                                                                    \
    p[i] = pi + step * mi;                                                                    \
  }

/* Pass 2 with the scalar weight w (cosine), and with the elementwise
 * correlation: m and g divided by their column norms dm[], dg[] (dm[0],
 * dg[0] for all when len == n), s by torch's lerp in T. */
#define TAM_COSINE_LOOP(T, SQRT, ADA)                                                         \
  for (size_t i = 0; i < n; i++) {                                                            \
    T gi = OPTIM_GRAD(T, g, i, zero) * gs, pi = p[i] * decay, d = w * gi;                     \
    TAM_TAIL(T, SQRT, ADA)                                                                    \
  }
#define TAM_ELEM_LOOP(T, SQRT, ADA, C)                                                        \
  for (size_t r = 0; r < n; r += len)                                                         \
    for (size_t j = 0; j < len; j++) {                                                        \
      const size_t i = r + j;                                                                 \
      T gi = OPTIM_GRAD(T, g, i, zero) * gs, pi = p[i] * decay;                               \
      T corr = (m[i] / (T)dm[C]) * (gi / (T)dg[C]);                                           \
      T si = LERP(s[i], corr, lw, lw1);                                                       \
      s[i] = si;                                                                              \
      T d = (((T)1 + si) / (T)2 + eps) * gi;                                                  \
      TAM_TAIL(T, SQRT, ADA)                                                                  \
    }
#define TAM_APPLY(T, SFX, SQRT)                                                               \
  OPTIM_CLONES static void tam_apply_##SFX(T *restrict p, const T *restrict g,               \
                                           T *restrict m, T *restrict v, T *restrict s,      \
                                           size_t n, size_t len, const double *restrict dm,  \
                                           const double *restrict dg, const double *c,       \
                                           int zero)                                          \
  {                                                                                           \
    const T gs = (T)c[C_GSCALE], b1 = (T)c[C_B1], b2 = (T)c[C_B2], a2 = (T)c[C_1MB2];         \
    const T eps = (T)c[C_EPS], step = (T)c[C_STEP], decay = (T)c[C_DECAY], w = (T)c[C_W];     \
    const T lw = (T)c[C_LW], lw1 = (T)1 - lw;                                                 \
    if (c[C_COSINE] != 0) {                                                                   \
      if (v) { TAM_COSINE_LOOP(T, SQRT, 1) }                                                  \
      else { TAM_COSINE_LOOP(T, SQRT, 0) }                                                    \
    } else if (len == n) {                                                                    \
      if (v) { TAM_ELEM_LOOP(T, SQRT, 1, 0) }                                                 \
      else { TAM_ELEM_LOOP(T, SQRT, 0, 0) }                                                   \
    } else {                                                                                  \
      if (v) { TAM_ELEM_LOOP(T, SQRT, 1, j) }                                                 \
      else { TAM_ELEM_LOOP(T, SQRT, 0, j) }                                                   \
    }                                                                                         \
  }

TAM_REDUCE(float, f32)
TAM_REDUCE(double, f64)
TAM_APPLY(float, f32, sqrtf)
TAM_APPLY(double, f64, sqrt)

/* The cosine of m and g * gs when its sums of squares overflowed double
 * (float64 values past about 1e154): the same formula on m / max|m| and
 * g / max|g|, the 1e-12 floors of the norms scaled alike.  Only called
 * when the ordinary sums gave a non-finite cosine. */
static double cosine_rescaled(const optim_param *P, double gs)
{
  const size_t n = P->numel;
  const int f32 = P->dtype == OPTIM_FLOAT32, zero = P->zero_nonfinite;
  const void *mb = P->state[1].buf, *gb = P->grad;
#define TAM_RD(b, i) (f32 ? (double)((const float *)(b))[i] : ((const double *)(b))[i])
#define TAM_G(i) (f32 ? (double)(OPTIM_GRAD(float, (const float *)gb, i, zero) * (float)gs) \
                      : OPTIM_GRAD(double, (const double *)gb, i, zero) * gs)
  double mx = 0, gx = 0, dot = 0, am = 0, ag = 0;
  for (size_t i = 0; i < n; i++) {
    mx = fmax(mx, fabs(TAM_RD(mb, i)));
    gx = fmax(gx, fabs(TAM_G(i)));
  }
  if (!(mx > 0 && gx > 0 && isfinite(mx) && isfinite(gx))) return 0;
  for (size_t i = 0; i < n; i++) {
    double a = TAM_RD(mb, i) / mx, b = TAM_G(i) / gx;
    dot += a * b;
    am += a * a;
    ag += b * b;
  }
#undef TAM_RD
#undef TAM_G
  double nm = sqrt(am), ng = sqrt(ag);
  return dot / ((nm > 1e-12 / mx ? nm : 1e-12 / mx) * (ng > 1e-12 / gx ? ng : 1e-12 / gx));
}

/* One step: pass 1 reduces; the scalar chain of cosine (corr, s, the
 * weight w = (1 + s)/2 + eps) runs in double, s rounded to the dtype as
 * stored; elementwise takes the column norms clamped at 1e-12 in the
 * dtype (torch's normalize); pass 2 updates s, m, v and p. */
static void tam_step(const tam_cfg *k, optim_param *P, void *work)
{
  const size_t n = P->numel;
  const int f32 = P->dtype == OPTIM_FLOAT32, cosine = k->corr == CORR_COSINE;
  void *s = P->state[k->ada ? 3 : 2].buf, *v = k->ada ? P->state[2].buf : NULL;
  const int64_t t = ++P->state[0].scalar;
  /* ncol columns (1: the whole tensor), rows of len elements */
  const size_t ncol = cosine ? 1 : columns(P), len = ncol == 1 ? n : ncol;
  char *wk = work;
  double one[2], dot = 0;
  double *cm = ncol == 1 ? one : optim__carve(&wk, ncol * sizeof(double));
  double *cg = ncol == 1 ? one + 1 : optim__carve(&wk, ncol * sizeof(double));
  const int copy = !cosine && !k->ada && t == 1;
  if (f32)
    tam_reduce_f32(P->state[1].buf, P->grad, n, len, copy, P->zero_nonfinite, (float)P->gscale,
                   cm, cg, &dot);
  else
    tam_reduce_f64(P->state[1].buf, P->grad, n, len, copy, P->zero_nonfinite, P->gscale, cm,
                   cg, &dot);
  double c[C_COUNT];
  c[C_GSCALE] = P->gscale;
  c[C_B1] = k->b1;
  c[C_B2] = k->b2;
  c[C_1MB2] = 1 - k->b2;
  c[C_EPS] = k->eps;
  c[C_STEP] = -k->lr;
  c[C_DECAY] = k->decay;
  c[C_LW] = 1 - k->decay_rate;
  c[C_COSINE] = cosine;
  c[C_W] = 0;
  if (cosine) {
    double nm = sqrt(cm[0]), ng = sqrt(cg[0]);
    double corr = dot / ((nm > 1e-12 ? nm : 1e-12) * (ng > 1e-12 ? ng : 1e-12));
    if (!isfinite(corr)) corr = cosine_rescaled(P, P->gscale); /* overflowed sums */
    /* the cosine in double; its running average and the damping in the
     * dtype, one rounding per operation as torch's tensor operations */
    if (f32) {
      float c1 = (float)corr, s0 = *(float *)s * (float)k->decay_rate +
                                   (float)(1 - k->decay_rate) * c1;
      *(float *)s = s0;
      c[C_W] = (double)((1.0f + s0) / 2.0f + (float)k->eps);
    } else {
      double s0 = *(double *)s * k->decay_rate + (1 - k->decay_rate) * corr;
      *(double *)s = s0;
      c[C_W] = (1 + s0) / 2 + k->eps;
    }
  } else {
    for (size_t j = 0; j < ncol; j++) { /* the norms as torch has them: in the dtype */
      double a = sqrt(cm[j]), b = sqrt(cg[j]);
      if (f32) {
        a = (double)(float)a;
        b = (double)(float)b;
      }
      const double tiny = f32 ? (double)1e-12f : 1e-12;
      cm[j] = a > tiny ? a : tiny;
      cg[j] = b > tiny ? b : tiny;
    }
  }
  if (f32)
    tam_apply_f32(P->data, P->grad, P->state[1].buf, v, s, n, len, cm, cg, c, P->zero_nonfinite);
  else
    tam_apply_f64(P->data, P->grad, P->state[1].buf, v, s, n, len, cm, cg, c, P->zero_nonfinite);
}

static int param_step(const optim_group *g, optim_param *p, void *work)
{
  tam_cfg k = config(g, p);
  tam_step(&k, p, work);
  return 0;
}

#define TAM_ALG(NAME, DOC, TABLE)                                                           \
  {                                                                                         \
    .name = NAME, .doc = DOC, .hp = TABLE, .nhp = (int)(sizeof TABLE / sizeof TABLE[0]),    \
    .layout = layout, .prepare = optim__no_prepare, .kernel = optim__no_kernel,             \
    .whole = optim__whole_always, .param_step = param_step, .workspace = workspace,         \
    .cost = cost,                                                                           \
  }

const optim_alg optim__alg_tam =
    TAM_ALG("tam",
            "TAM: torque-aware momentum, the gradient weighted by its alignment with the "
            "momentum (cosine: the paper; elementwise: kozistr/pytorch_optimizer)",
            tam_hps);

const optim_alg optim__alg_adatam =
    TAM_ALG("adatam",
            "AdaTAM: Adam-style TAM, alignment-weighted first moment over the root second "
            "moment, no bias correction (kozistr/pytorch_optimizer)",
            adatam_hps);
