/* adagrad.c - AdaGrad with learning-rate decay, initial accumulator and
 * coupled weight decay; torch.optim.Adagrad (1.13) semantics. */
#include <math.h>

#include "optim-internal.h"

enum { LR, LR_DECAY, WEIGHT_DECAY, INITIAL_ACC, EPS, MAXIMIZE };

static const hp_desc hps[] = {
  {"lr", OPTIM_TYPE_DOUBLE, 1e-2, "1e-2", 0, INFINITY, 0, 0, "learning rate"},
  {"lr_decay", OPTIM_TYPE_DOUBLE, 0, "0", 0, INFINITY, 0, 0,
   "step t uses lr / (1 + (t - 1) * lr_decay)"},
  {"weight_decay", OPTIM_TYPE_DOUBLE, 0, "0", 0, INFINITY, 0, 0,
   "coupled L2 penalty: the gradient gets weight_decay * param added"},
  {"initial_accumulator_value", OPTIM_TYPE_DOUBLE, 0, "0", 0, INFINITY, HP_REINIT, 0,
   "starting value of the sum of squared gradients"},
  {"eps", OPTIM_TYPE_DOUBLE, 1e-10, "1e-10", 0, INFINITY, 0, 0,
   "added to the root of the accumulated squares"},
  {"maximize", OPTIM_TYPE_BOOL, 0, "false", 0, 1, 0, 0,
   "maximize the objective instead of minimizing it"},
};

enum { C_CLR, C_EPS, C_WD, C_HAS_WD, C_SIGN };

static void layout(const optim_group *g, const optim_param *p, state_layout *out)
{
  (void)g;
  (void)p;
  out->name[0] = "step";
  out->kind[0] = OPTIM_STATE_SCALAR;
  out->name[1] = "sum";
  out->kind[1] = OPTIM_STATE_BUFFER;
  out->n = 2;
}

/* torch fills "sum" with initial_accumulator_value when the state is made. */
static void init_state(const optim_group *g, optim_param *p)
{
  double v = hp_d(g, INITIAL_ACC);
  if (p->dtype == OPTIM_FLOAT32) {
    float *s = p->state[1].buf;
    for (size_t i = 0; i < p->len; i++) s[i] = (float)v;
  } else {
    double *s = p->state[1].buf;
    for (size_t i = 0; i < p->len; i++) s[i] = v;
  }
}

static void prepare(const optim_group *g, optim_param *p)
{
  int64_t step = ++optim__state_get(p, "step")->scalar;
  double *c = p->coef;
  c[C_CLR] = hp_d(g, LR) / (1 + (double)(step - 1) * hp_d(g, LR_DECAY));
  c[C_EPS] = hp_d(g, EPS);
  c[C_WD] = optim__wd(g, p, WEIGHT_DECAY);
  c[C_HAS_WD] = optim__wd(g, p, WEIGHT_DECAY) != 0;
  c[C_SIGN] = (hp_i(g, MAXIMIZE) ? -1 : 1) * p->gscale; /* optim_step_scaled */
}

/* s = s + g*g;  p = p + ((-clr)*g) / (sqrt(s) + eps), torch's roundings. */
#define ADAGRAD_KERNEL(T, SFX, SQRT)                                          \
  OPTIM_CLONES static void adagrad_##SFX(T *restrict p, const T *restrict g,  \
                                         T *restrict s, size_t n,            \
                                         const double *c, int zero)          \
  {                                                                           \
    const T clr = (T)-c[C_CLR], eps = (T)c[C_EPS], wd = (T)c[C_WD];           \
    const T sign = (T)c[C_SIGN];                                              \
    const int has_wd = c[C_HAS_WD] != 0;                                      \
    for (size_t i = 0; i < n; i++) {                                          \
      T gi = OPTIM_GRAD(T, g, i, zero) * sign;                                \
      gi = has_wd ? gi + wd * p[i] : gi;                                      \
      T si = s[i] + gi * gi;                                                  \
      s[i] = si;                                                              \
      p[i] = p[i] + clr * gi / (SQRT(si) + eps);                              \
    }                                                                         \
  }

ADAGRAD_KERNEL(float, f32, sqrtf)
ADAGRAD_KERNEL(double, f64, sqrt)

/* state[] follows layout(): step, sum. */
static void kernel(const optim_group *g, const optim_param *p, size_t b, size_t e)
{
  (void)g;
  if (p->dtype == OPTIM_FLOAT32)
    adagrad_f32((float *)p->kdata + b, (const float *)p->kgrad + b,
                (float *)p->state[1].buf + b, e - b, p->coef, p->zero_nonfinite);
  else
    adagrad_f64((double *)p->kdata + b, (const double *)p->kgrad + b,
                (double *)p->state[1].buf + b, e - b, p->coef, p->zero_nonfinite);
}

const optim_alg optim__alg_adagrad = {
  .name = "adagrad",
  .doc = "AdaGrad with lr decay and initial accumulator (torch.optim.Adagrad)",
  .hp = hps,
  .nhp = (int)(sizeof hps / sizeof hps[0]),
  .layout = layout,
  .init_state = init_state,
  .prepare = prepare,
  .kernel = kernel,
};
