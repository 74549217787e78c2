/* adam.c - Adam (coupled L2 weight decay) and AdamW (decoupled weight
 * decay), with AMSGrad; torch.optim.Adam / AdamW (1.13) semantics. */
#include <math.h>

#include "optim-internal.h"

enum { LR, BETA1, BETA2, EPS, WEIGHT_DECAY, AMSGRAD, MAXIMIZE };

#define ADAM_HPS(WD_DEFAULT, WD_TEXT, WD_DOC)                                    \
  {"lr", OPTIM_TYPE_DOUBLE, 1e-3, "1e-3", 0, INFINITY, 0, 0, "learning rate"},   \
  {"beta1", OPTIM_TYPE_DOUBLE, 0.9, "0.9", 0, 1, HP_HI_OPEN, 0,                  \
   "decay rate of the first moment (running mean of gradients)"},                \
  {"beta2", OPTIM_TYPE_DOUBLE, 0.999, "0.999", 0, 1, HP_HI_OPEN, 0,              \
   "decay rate of the second moment (running mean of squared gradients)"},       \
  {"eps", OPTIM_TYPE_DOUBLE, 1e-8, "1e-8", 0, INFINITY, 0, 0,                    \
   "added to the bias-corrected root second moment"},                            \
  {"weight_decay", OPTIM_TYPE_DOUBLE, WD_DEFAULT, WD_TEXT, 0, INFINITY, 0, 0,    \
   WD_DOC},                                                                      \
  {"amsgrad", OPTIM_TYPE_BOOL, 0, "false", 0, 1, HP_LAYOUT, 0,                   \
   "use the running maximum of the second moment (AMSGrad)"},                    \
  {"maximize", OPTIM_TYPE_BOOL, 0, "false", 0, 1, 0, 0,                          \
   "maximize the objective instead of minimizing it"}

static const hp_desc adam_hps[] = {
  ADAM_HPS(0, "0", "coupled L2 penalty: the gradient gets weight_decay * param added"),
};
static const hp_desc adamw_hps[] = {
  ADAM_HPS(1e-2, "1e-2", "decoupled weight decay: param *= 1 - lr * weight_decay first"),
};

enum { C_STEP_SIZE, C_BC2_SQRT, C_B1, C_1MB1, C_B2, C_1MB2, C_EPS, C_WD, C_HAS_WD,
       C_DECAY, C_SIGN };

static void layout(const optim_group *g, const optim_param *p, state_layout *out)
{
  (void)p;
  static const char *const names[] = {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
  int n = hp_i(g, AMSGRAD) ? 4 : 3;
  for (int k = 0; k < n; k++) {
    out->name[k] = names[k];
    out->kind[k] = k == 0 ? OPTIM_STATE_SCALAR : OPTIM_STATE_BUFFER;
  }
  out->n = n;
}

static void prepare_common(const optim_group *g, optim_param *p, int decoupled)
{
  int64_t step = ++optim__state_get(p, "step")->scalar;
  double lr = hp_d(g, LR), b1 = hp_d(g, BETA1), b2 = hp_d(g, BETA2);
  double wd = optim__wd(g, p, WEIGHT_DECAY);
  double *c = p->coef;
  double bc1 = 1 - pow(b1, (double)step), bc2 = 1 - pow(b2, (double)step);
  c[C_STEP_SIZE] = lr / bc1;
  c[C_BC2_SQRT] = sqrt(bc2);
  c[C_B1] = b1;
  c[C_1MB1] = 1 - b1;
  c[C_B2] = b2;
  c[C_1MB2] = 1 - b2;
  c[C_EPS] = hp_d(g, EPS);
  c[C_WD] = decoupled ? 0 : wd;
  c[C_HAS_WD] = !decoupled && wd != 0;
  c[C_DECAY] = decoupled ? 1 - lr * wd : 1;
  c[C_SIGN] = (hp_i(g, MAXIMIZE) ? -1 : 1) * p->gscale; /* optim_step_scaled */
}

static void prepare_adam(const optim_group *g, optim_param *p) { prepare_common(g, p, 0); }
static void prepare_adamw(const optim_group *g, optim_param *p) { prepare_common(g, p, 1); }

/* One fused pass: reads p, g, m, v (and vmax), writes each once.  The
 * operation order and roundings are torch's:
 *   m = m*b1 + (1-b1)*g;  v = v*b2 + ((1-b2)*g)*g;
 *   denom = sqrt(v)/sqrt(bc2) + eps;  p = p + ((-lr/bc1)*m)/denom. */
#define ADAM_KERNEL(T, SFX, SQRT)                                               \
  OPTIM_CLONES static void adam_##SFX(T *restrict p, const T *restrict g,       \
                                      T *restrict m, T *restrict v,             \
                                      T *restrict vmax, size_t n,               \
                                      const double *c, int zero)                \
  {                                                                             \
    const T step = (T)-c[C_STEP_SIZE], bc2s = (T)c[C_BC2_SQRT];                 \
    const T b1 = (T)c[C_B1], a1 = (T)c[C_1MB1], b2 = (T)c[C_B2];                \
    const T a2 = (T)c[C_1MB2], eps = (T)c[C_EPS], wd = (T)c[C_WD];              \
    const T decay = (T)c[C_DECAY], sign = (T)c[C_SIGN];                         \
    const int has_wd = c[C_HAS_WD] != 0, decoupled = c[C_DECAY] != 1;          \
    if (vmax == NULL) {                                                         \
      for (size_t i = 0; i < n; i++) {                                          \
        T pi = decoupled ? p[i] * decay : p[i];                                 \
        T gi = OPTIM_GRAD(T, g, i, zero) * sign;                                \
        gi = has_wd ? gi + wd * pi : gi;                                        \
        T mi = m[i] * b1 + a1 * gi;                                             \
        T vi = v[i] * b2 + a2 * gi * gi;                                        \
        m[i] = mi;                                                              \
        v[i] = vi;                                                              \
        p[i] = pi + step * mi / (SQRT(vi) / bc2s + eps);                        \
      }                                                                         \
      return;                                                                   \
    }                                                                           \
    for (size_t i = 0; i < n; i++) {                                            \
      T pi = decoupled ? p[i] * decay : p[i];                                   \
      T gi = OPTIM_GRAD(T, g, i, zero) * sign;                                  \
      gi = has_wd ? gi + wd * pi : gi;                                          \
      T mi = m[i] * b1 + a1 * gi;                                               \
      T vi = v[i] * b2 + a2 * gi * gi;                                          \
      T mx = (vi > vmax[i] || vi != vi) ? vi : vmax[i];                         \
      m[i] = mi;                                                                \
      v[i] = vi;                                                                \
      vmax[i] = mx;                                                             \
      p[i] = pi + step * mi / (SQRT(mx) / bc2s + eps);                          \
    }                                                                           \
  }

ADAM_KERNEL(float, f32, sqrtf)
ADAM_KERNEL(double, f64, sqrt)

/* state[] follows layout(): step, exp_avg, exp_avg_sq[, max_exp_avg_sq]. */
static void kernel(const optim_group *g, const optim_param *p, size_t b, size_t e)
{
  (void)g;
  void *vm = p->nstate > 3 ? p->state[3].buf : NULL;
  if (p->dtype == OPTIM_FLOAT32)
    adam_f32((float *)p->kdata + b, (const float *)p->kgrad + b, (float *)p->state[1].buf + b,
             (float *)p->state[2].buf + b, vm ? (float *)vm + b : NULL, e - b, p->coef,
             p->zero_nonfinite);
  else
    adam_f64((double *)p->kdata + b, (const double *)p->kgrad + b,
             (double *)p->state[1].buf + b, (double *)p->state[2].buf + b,
             vm ? (double *)vm + b : NULL, e - b, p->coef, p->zero_nonfinite);
}

const optim_alg optim__alg_adam = {
  .name = "adam",
  .doc = "Adam with coupled L2 weight decay and AMSGrad (torch.optim.Adam)",
  .hp = adam_hps,
  .nhp = (int)(sizeof adam_hps / sizeof adam_hps[0]),
  .layout = layout,
  .prepare = prepare_adam,
  .kernel = kernel,
};

const optim_alg optim__alg_adamw = {
  .name = "adamw",
  .doc = "Adam with decoupled weight decay (torch.optim.AdamW)",
  .hp = adamw_hps,
  .nhp = (int)(sizeof adamw_hps / sizeof adamw_hps[0]),
  .layout = layout,
  .prepare = prepare_adamw,
  .kernel = kernel,
};
