/* sgd.c - stochastic gradient descent with momentum, dampening, Nesterov
 * and coupled weight decay; torch.optim.SGD (1.13) semantics. */
#include <math.h>

#include "optim-internal.h"

enum { LR, MOMENTUM, DAMPENING, WEIGHT_DECAY, NESTEROV, MAXIMIZE };

static const hp_desc hps[] = {
  {"lr", OPTIM_TYPE_DOUBLE, NAN, "required", 0, INFINITY, HP_REQUIRED, 0,
   "learning rate (no default, as in torch)"},
  {"momentum", OPTIM_TYPE_DOUBLE, 0, "0", 0, INFINITY, HP_LAYOUT, 0,
   "momentum factor; 0 disables the momentum buffer"},
  {"dampening", OPTIM_TYPE_DOUBLE, 0, "0", 0, 1, 0, 0,
   "dampening of the momentum update, not applied on the first step"},
  {"weight_decay", OPTIM_TYPE_DOUBLE, 0, "0", 0, INFINITY, 0, 0,
   "coupled L2 penalty: the gradient gets weight_decay * param added"},
  {"nesterov", OPTIM_TYPE_BOOL, 0, "false", 0, 1, 0, 0,
   "Nesterov momentum (needs momentum > 0 and dampening = 0)"},
  {"maximize", OPTIM_TYPE_BOOL, 0, "false", 0, 1, 0, 0,
   "maximize the objective instead of minimizing it"},
};

/* Per-step coefficients in p->coef. */
enum { C_LR, C_MOM, C_DAMP1, C_WD, C_FIRST, C_SIGN, C_NEST, C_HAS_WD };

static int check(const optim_group *g, char *msg, size_t size)
{
  return optim__check_nesterov(g, NESTEROV, MOMENTUM, DAMPENING, msg, size);
}

static void layout(const optim_group *g, const optim_param *p, state_layout *out)
{
  (void)p;
  out->name[out->n] = "step";
  out->kind[out->n++] = OPTIM_STATE_SCALAR;
  if (hp_d(g, MOMENTUM) != 0) {
    out->name[out->n] = "momentum_buffer";
    out->kind[out->n++] = OPTIM_STATE_BUFFER;
    /* torch's "buffer is None": the first momentum step copies d. */
    out->name[out->n] = "momentum_buffer_initialized";
    out->kind[out->n++] = OPTIM_STATE_SCALAR;
  }
}

static void prepare(const optim_group *g, optim_param *p)
{
  optim__state_get(p, "step")->scalar++;
  double *c = p->coef;
  c[C_LR] = hp_d(g, LR);
  c[C_MOM] = hp_d(g, MOMENTUM);
  c[C_DAMP1] = 1 - hp_d(g, DAMPENING);
  c[C_WD] = optim__wd(g, p, WEIGHT_DECAY);
  c[C_HAS_WD] = optim__wd(g, p, WEIGHT_DECAY) != 0;
  c[C_SIGN] = (hp_i(g, MAXIMIZE) ? -1 : 1) * p->gscale; /* optim_step_scaled */
  c[C_NEST] = (double)hp_i(g, NESTEROV);
  c[C_FIRST] = 0;
  if (c[C_MOM] != 0) {
    state_entry *init = optim__state_get(p, "momentum_buffer_initialized");
    c[C_FIRST] = init->scalar == 0;
    init->scalar = 1;
  }
}

/* One source for both dtypes.  Loop-invariant choices are selects, which
 * GCC if-converts, so every variant vectorizes. */
#define SGD_KERNEL(T, SFX)                                                   \
  OPTIM_CLONES static void sgd_##SFX(T *restrict p, const T *restrict g,     \
                                     T *restrict buf, size_t n,             \
                                     const double *c, int zero)             \
  {                                                                          \
    const T lr = (T)-c[C_LR], mom = (T)c[C_MOM], damp1 = (T)c[C_DAMP1];      \
    const T wd = (T)c[C_WD], sign = (T)c[C_SIGN];                            \
    const int has_wd = c[C_HAS_WD] != 0, first = c[C_FIRST] != 0;            \
    const int nest = c[C_NEST] != 0;                                         \
    if (buf == NULL) {                                                       \
      for (size_t i = 0; i < n; i++) {                                       \
        T d = OPTIM_GRAD(T, g, i, zero) * sign;                              \
        d = has_wd ? d + wd * p[i] : d;                                      \
        p[i] = p[i] + lr * d;                                                \
      }                                                                      \
      return;                                                                \
    }                                                                        \
    for (size_t i = 0; i < n; i++) {                                         \
      T d = OPTIM_GRAD(T, g, i, zero) * sign;                                \
      d = has_wd ? d + wd * p[i] : d;                                        \
      T b = first ? d : buf[i] * mom + damp1 * d;                            \
      buf[i] = b;                                                            \
      d = nest ? d + mom * b : b;                                            \
      p[i] = p[i] + lr * d;                                                  \
    }                                                                        \
  }

SGD_KERNEL(float, f32)
SGD_KERNEL(double, f64)

static void kernel(const optim_group *g, const optim_param *p, size_t b, size_t e)
{
  (void)g;
  const state_entry *s = p->coef[C_MOM] != 0 ? &p->state[1] : NULL;
  size_t n = e - b;
  if (p->dtype == OPTIM_FLOAT32)
    sgd_f32((float *)p->kdata + b, (const float *)p->kgrad + b,
            s ? (float *)s->buf + b : NULL, n, p->coef, p->zero_nonfinite);
  else
    sgd_f64((double *)p->kdata + b, (const double *)p->kgrad + b,
            s ? (double *)s->buf + b : NULL, n, p->coef, p->zero_nonfinite);
}

const optim_alg optim__alg_sgd = {
  .name = "sgd",
  .doc = "stochastic gradient descent with momentum and Nesterov (torch.optim.SGD)",
  .hp = hps,
  .nhp = (int)(sizeof hps / sizeof hps[0]),
  .check = check,
  .layout = layout,
  .prepare = prepare,
  .kernel = kernel,
};
