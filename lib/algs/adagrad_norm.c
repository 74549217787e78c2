/* adagrad_norm.c - AdaGrad-Norm: one step size for a whole group (or
 * tensor), b^2 = b0^2 + sum over steps of ||g||^2, p -= lr * g / b
 * (Ward, Wu and Bottou; the whole-vector form of bpauld/AdaSVRG's
 * adagrad.py, spec section 10).  The norms come from the core's norm pass
 * (needs_norms), so the update itself is one fused element-wise pass. */
#include <float.h>
#include <math.h>

#include "optim-internal.h"

enum { LR, B0, SCOPE };
enum { SCOPE_GROUP = 0, SCOPE_TENSOR = 1 };

static const hp_desc hps[] = {
  {"lr", OPTIM_TYPE_DOUBLE, 1, "1", 0, INFINITY, 0, 0, "learning rate (eta)"},
  {"b0", OPTIM_TYPE_DOUBLE, 0, "0", 0, INFINITY, 0, 0,
   "initial accumulator b_0 (b^2 starts at b0^2; bpauld/AdaSVRG uses 0, Ward-Wu-Bottou b0 > 0)"},
  {"scope", OPTIM_TYPE_STRING, 0, "group", 0, 0, 0, "group|tensor",
   "the vector whose norm feeds b: all of the group's parameters that step (group) or each "
   "tensor on its own (tensor)"},
};

enum { C_STEP, C_SCALE };

static void layout(const optim_group *g, const optim_param *p, state_layout *out)
{
  (void)g;
  (void)p;
  out->name[0] = "step";
  out->kind[0] = OPTIM_STATE_SCALAR;
  out->name[1] = "sum_sq";
  out->kind[1] = OPTIM_STATE_BUFFER;
  out->count[1] = 1;
  out->n = 2;
}

static void prepare(const optim_group *g, optim_param *p)
{
  state_entry *st = optim__state_get(p, "step");
  state_entry *acc = optim__state_get(p, "sum_sq");
  double b2 = st->scalar == 0 ? hp_d(g, B0) * hp_d(g, B0)
              : p->dtype == OPTIM_FLOAT32 ? (double)*(float *)acc->buf : *(double *)acc->buf;
  b2 += hp_i(g, SCOPE) == SCOPE_GROUP ? g->gnorm2_sum : p->gnorm2;
  st->scalar++;
  if (p->dtype == OPTIM_FLOAT32) *(float *)acc->buf = (float)b2;
  else *(double *)acc->buf = b2;
  /* b = 0 only when every gradient so far was 0: nothing moves then */
  double a = b2 > 0 ? -hp_d(g, LR) / sqrt(b2) : 0, s = p->gscale;
  /* float32 gradients of subnormal size: lr / b overflows float, and the
   * kernel's inf * g made the parameter inf or NaN; move 2^64 of it into
   * the gradient's scale (powers of two: the same product, without the
   * overflow; this path only runs when the ordinary one would overflow) */
  if (p->dtype == OPTIM_FLOAT32 && fabs(a) > FLT_MAX) {
    a *= 0x1p-64;
    s *= 0x1p64;
  }
  p->coef[C_STEP] = a;
  p->coef[C_SCALE] = s;
}

/* p = p + (-lr / b) * (g * gscale) */
#define ADAGRAD_NORM_KERNEL(T, SFX)                                                     \
  OPTIM_CLONES static void agn_##SFX(T *restrict p, const T *restrict g, size_t n,      \
                                     const double *c, int zero)                         \
  {                                                                                     \
    const T a = (T)c[C_STEP], s = (T)c[C_SCALE];                                        \
    for (size_t i = 0; i < n; i++) p[i] += a * (OPTIM_GRAD(T, g, i, zero) * s);         \
  }
ADAGRAD_NORM_KERNEL(float, f32)
ADAGRAD_NORM_KERNEL(double, f64)

static void kernel(const optim_group *g, const optim_param *p, size_t b, size_t e)
{
  (void)g;
  if (p->dtype == OPTIM_FLOAT32)
    agn_f32((float *)p->kdata + b, (const float *)p->kgrad + b, e - b, p->coef,
            p->zero_nonfinite);
  else
    agn_f64((double *)p->kdata + b, (const double *)p->kgrad + b, e - b, p->coef,
            p->zero_nonfinite);
}

const optim_alg optim__alg_adagrad_norm = {
  .name = "adagrad_norm",
  .doc = "AdaGrad-Norm: one adaptive step size lr / b per group (or tensor), "
         "b^2 = b0^2 + sum of squared gradient norms",
  .hp = hps,
  .nhp = (int)(sizeof hps / sizeof hps[0]),
  .layout = layout,
  .prepare = prepare,
  .kernel = kernel,
  .needs_norms = 1,
};
