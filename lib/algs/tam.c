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
 * in index order. */
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

/* One step in the dtype T.  Pass 1 reduces.  Cosine: <m, g>, |m|^2 and
 * |g|^2, then the scalar chain (corr, s, the weight w = (1 + s)/2 + eps) in
 * double, s rounded to T as stored.  Elementwise: the squares of each
 * column of m and g (tam's first step copies g into m first), whose roots
 * clamped at 1e-12 (torch's normalize) divide m and g in pass 2, where s
 * follows torch's lerp in T.  Pass 2 updates m, v and p in the reference's
 * order; for cosine the tensor is one "row". */
#define TAM_IMPL(T, SFX, SQRT)                                                                \
  static void tam_##SFX(const tam_cfg *k, optim_param *P, void *work)                         \
  {                                                                                           \
    const size_t n = P->numel;                                                                \
    T *restrict p = P->data, *restrict m = P->state[1].buf;                                   \
    T *restrict v = k->ada ? P->state[2].buf : NULL;                                          \
    T *restrict s = P->state[k->ada ? 3 : 2].buf;                                             \
    const T *restrict g = P->grad;                                                            \
    const int zero = P->zero_nonfinite, cosine = k->corr == CORR_COSINE;                      \
    const int64_t t = ++P->state[0].scalar;                                                   \
    const T gs = (T)P->gscale, b1 = (T)k->b1, b2 = (T)k->b2, a2 = (T)(1 - k->b2);             \
    const T eps = (T)k->eps, step = (T)-k->lr, decay = (T)k->decay;                           \
    const size_t cols = cosine ? n : columns(P);                                              \
    char *wk = work;                                                                          \
    double one[2] = {0, 0}; /* cosine: |m|^2, |g|^2 */                                        \
    double *cm = cosine ? one : optim__carve(&wk, cols * sizeof(double));                     \
    double *cg = cosine ? one + 1 : optim__carve(&wk, cols * sizeof(double));                 \
    double dot = 0;                                                                           \
    const int first_copy = !cosine && !k->ada && t == 1; /* tam's m starts as the gradient */ \
    for (size_t j = 0; !cosine && j < cols; j++) cm[j] = cg[j] = 0;                           \
    for (size_t r = 0; r < n; r += cols)                                                      \
      for (size_t j = 0; j < cols; j++) {                                                     \
        T gi = OPTIM_GRAD(T, g, r + j, zero) * gs;                                            \
        if (first_copy) m[r + j] = gi;                                                        \
        double md = (double)m[r + j], gd = (double)gi;                                        \
        if (cosine) {                                                                         \
          dot += md * gd;                                                                     \
          one[0] += md * md;                                                                  \
          one[1] += gd * gd;                                                                  \
        } else {                                                                              \
          cm[j] += md * md;                                                                   \
          cg[j] += gd * gd;                                                                   \
        }                                                                                     \
      }                                                                                       \
    T w = 0;                                                                                  \
    if (cosine) {                                                                             \
      double nm = sqrt(one[0]), ng = sqrt(one[1]);                                            \
      double corr = dot / ((nm > 1e-12 ? nm : 1e-12) * (ng > 1e-12 ? ng : 1e-12));            \
      /* the cosine in double; its average and the damping in the dtype, one  \
       * rounding per operation as torch's tensor operations */               \
      T c1 = (T)corr;                                                                         \
      T s0 = s[0] * (T)k->decay_rate + (T)(1 - k->decay_rate) * c1;                           \
      s[0] = s0;                                                                              \
      w = ((T)1 + s0) / (T)2 + (T)k->eps;                                                     \
    }                                                                                         \
    const T tiny = (T)1e-12;                                                                  \
    for (size_t j = 0; !cosine && j < cols; j++) {                                            \
      T a = (T)sqrt(cm[j]), b = (T)sqrt(cg[j]);                                               \
      cm[j] = (double)(a > tiny ? a : tiny);                                                  \
      cg[j] = (double)(b > tiny ? b : tiny);                                                  \
    }                                                                                         \
    const T lw = (T)(1 - k->decay_rate), lw1 = (T)1 - lw;                                     \
    for (size_t r = 0; r < n; r += cols)                                                      \
      for (size_t j = 0; j < cols; j++) {                                                     \
        const size_t i = r + j;                                                               \
        T gi = OPTIM_GRAD(T, g, i, zero) * gs;                                                \
        T pi = p[i] * decay, d;                                                               \
        if (cosine) {                                                                         \
          d = w * gi;                                                                         \
        } else {                                                                              \
          T corr = (m[i] / (T)cm[j]) * (gi / (T)cg[j]);                                       \
          T si = LERP(s[i], corr, lw, lw1);                                                   \
          s[i] = si;                                                                          \
          d = (((T)1 + si) / (T)2 + eps) * gi;                                                \
        }                                                                                     \
        T mi = m[i] * b1 + d;                                                                 \
        m[i] = mi;                                                                            \
        if (v) {                                                                              \
          T vi = v[i] * b2 + a2 * gi * gi;                                                    \
          v[i] = vi;                                                                          \
          p[i] = pi + step * mi / (SQRT(vi) + eps);                                           \
        } else {                                                                              \
          p[i] = pi + step * mi;                                                              \
        }                                                                                     \
      }                                                                                       \
  }

TAM_IMPL(float, f32, sqrtf)
TAM_IMPL(double, f64, sqrt)

static int param_step(const optim_group *g, optim_param *p, void *work)
{
  tam_cfg k = config(g, p);
  if (p->dtype == OPTIM_FLOAT32) tam_f32(&k, p, work);
  else tam_f64(&k, p, work);
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
