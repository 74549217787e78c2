/* adahessian.c - AdaHessian (amirgholami/adahessian; spec section 10):
 * Adam whose second moment is the EMA of the squared Hutchinson estimate
 * of the Hessian diagonal, D = |z * (H z)|, averaged spatially.
 *
 *   t += 1; D = average(|z * Hz|)
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) D^2
 *   denom = sqrt(v)^k / sqrt(1 - b2^t)^k + eps
 *   p = p - lr (m / (1 - b1^t) / denom + weight_decay p)
 *
 * z * (H z) comes from the caller (optim_param_bind_hvp) or from the
 * optimizer's callback (optim_set_hvp_callback), see liboptim(3).
 * Averaging: "image" (the reference's image_classification file: 4-D
 * tensors over their kernel's two dims, nothing else), "instruction" (its
 * instruction file: 2-D per row, 3-D over the last dim, 4-D over the
 * kernel) or "none"; average_block = b > 0 instead averages consecutive
 * blocks of b flattened entries. */
#include <math.h>
#include <string.h>

#include "optim-internal.h"
#include "tensor.h"

enum { LR, BETA1, BETA2, EPS, WEIGHT_DECAY, POWER, AVERAGING, AVG_BLOCK };
enum { AVG_IMAGE = 0, AVG_INSTRUCTION = 1, AVG_NONE = 2 };

static const hp_desc hps[] = {
  {"lr", OPTIM_TYPE_DOUBLE, 0.15, "0.15", 0, INFINITY, 0, 0, "learning rate"},
  {"beta1", OPTIM_TYPE_DOUBLE, 0.9, "0.9", 0, 1, HP_HI_OPEN, 0,
   "decay rate of the first moment (gradients)"},
  {"beta2", OPTIM_TYPE_DOUBLE, 0.999, "0.999", 0, 1, HP_HI_OPEN, 0,
   "decay rate of the second moment (squared Hessian diagonal estimates)"},
  {"eps", OPTIM_TYPE_DOUBLE, 1e-4, "1e-4", 0, INFINITY, 0, 0,
   "added to the bias-corrected denominator"},
  {"weight_decay", OPTIM_TYPE_DOUBLE, 0, "0", 0, INFINITY, 0, 0,
   "decay decoupled from the moments: p -= lr * weight_decay * p (with the update)"},
  {"hessian_power", OPTIM_TYPE_DOUBLE, 1, "1", 0, 1, HP_LO_OPEN, 0,
   "exponent k of the root second moment (0.5 is the usual alternative)"},
  {"averaging", OPTIM_TYPE_STRING, 0, "image", 0, 0, 0, "image|instruction|none",
   "spatial averaging of |z * Hz|: image (4-D over the kernel), instruction (2-D per "
   "row, 3-D over the last dim, 4-D over the kernel) or none"},
  {"average_block", OPTIM_TYPE_INT, 0, "0", 0, 1e9, 0, 0,
   "> 0: average consecutive blocks of this many flattened entries instead "
   "(unless averaging=none)"},
};

static void layout(const optim_group *g, const optim_param *p, state_layout *out)
{
  (void)g;
  (void)p;
  static const char *const names[] = {"step", "exp_avg", "exp_hessian_diag_sq"};
  out->n = 3;
  for (int k = 0; k < 3; k++) {
    out->name[k] = names[k];
    out->kind[k] = k == 0 ? OPTIM_STATE_SCALAR : OPTIM_STATE_BUFFER;
  }
}

static size_t workspace(const optim_group *g, const optim_param *p)
{
  (void)g;
  return p->numel * optim__dtype_size(p->dtype) + 64;
}

static double cost(const optim_group *g, const optim_param *p)
{
  (void)g;
  return 16.0 * (double)p->numel;
}

/* The length of the runs of consecutive entries averaged together (1: none). */
static size_t run_length(const optim_group *g, const optim_param *p)
{
  int mode = (int)hp_i(g, AVERAGING);
  if (mode == AVG_NONE) return 1;
  if (hp_i(g, AVG_BLOCK) > 0) return (size_t)hp_i(g, AVG_BLOCK);
  if (p->ndim == 4) return (size_t)(p->shape[2] * p->shape[3]);
  if (mode == AVG_INSTRUCTION && (p->ndim == 2 || p->ndim == 3))
    return (size_t)p->shape[p->ndim - 1];
  return 1;
}

#define ADAHESSIAN_IMPL(T, SFX, SQRT, POW)                                                       \
  static int adahessian_##SFX(const optim_group *g, optim_param *p, void *work)             \
  {                                                                                         \
    const size_t n = p->numel, run = run_length(g, p);                                      \
    T *D = work, *W = p->data, *m = p->state[1].buf, *v = p->state[2].buf;                  \
    const T *gr = p->grad, *h = p->hvp, gs = (T)p->gscale;                                  \
    const int zero = p->zero_nonfinite;                                                     \
    for (size_t e = 0; e < n; e++) {                                                        \
      T x = OPTIM_GRAD(T, h, e, zero);                                                      \
      D[e] = x < 0 ? -x : x;                                                                \
    }                                                                                       \
    for (size_t b = 0; run > 1 && b < n; b += run) { /* in index order, in T */            \
      size_t len = n - b < run ? n - b : run;                                               \
      T s = 0;                                                                              \
      for (size_t e = b; e < b + len; e++) s += D[e];                                       \
      s = s / (T)len;                                                                       \
      for (size_t e = b; e < b + len; e++) D[e] = s;                                        \
    }                                                                                       \
    const int64_t t = ++p->state[0].scalar;                                                 \
    const double b1 = hp_d(g, BETA1), b2 = hp_d(g, BETA2), k = hp_d(g, POWER);              \
    const T tb1 = (T)b1, ta1 = (T)(1 - b1), tb2 = (T)b2, ta2 = (T)(1 - b2);                 \
    const T bc1 = (T)(1 - pow(b1, (double)t)), bc2k = (T)pow(sqrt(1 - pow(b2, (double)t)), k); \
    const T eps = (T)hp_d(g, EPS), lr = (T)hp_d(g, LR), wd = (T)optim__wd(g, p, WEIGHT_DECAY);      \
    /* k = 1 and 0.5 as torch computes them: sqrt, sqrt of sqrt */                        \
    const int root1 = k == 1, root2 = k == 0.5;                                             \
    for (size_t e = 0; e < n; e++) {                                                        \
      T gi = OPTIM_GRAD(T, gr, e, zero) * gs;                                               \
      T mi = m[e] * tb1 + ta1 * gi, vi = v[e] * tb2 + ta2 * D[e] * D[e];                    \
      m[e] = mi;                                                                            \
      v[e] = vi;                                                                            \
      T r = root1 ? SQRT(vi) : root2 ? SQRT(SQRT(vi)) : POW(SQRT(vi), (T)k);                 \
      T denom = r / bc2k + eps;                                                             \
      W[e] = W[e] - lr * (mi / bc1 / denom + wd * W[e]);                                    \
    }                                                                                       \
    return 0;                                                                               \
  }
ADAHESSIAN_IMPL(float, f32, sqrtf, powf)
ADAHESSIAN_IMPL(double, f64, sqrt, pow)

static int param_step(const optim_group *g, optim_param *p, void *work)
{
  return p->dtype == OPTIM_FLOAT32 ? adahessian_f32(g, p, work) : adahessian_f64(g, p, work);
}

const optim_alg optim__alg_adahessian = {
  .name = "adahessian",
  .doc = "AdaHessian: Adam with a Hutchinson estimate of the Hessian diagonal "
         "(amirgholami/adahessian)",
  .hp = hps,
  .nhp = (int)(sizeof hps / sizeof hps[0]),
  .layout = layout,
  .prepare = optim__no_prepare,
  .kernel = optim__no_kernel,
  .whole = optim__whole_always,
  .param_step = param_step,
  .workspace = workspace,
  .cost = cost,
  .needs_hvp = 1,
};
