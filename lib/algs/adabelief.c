/* adabelief.c - AdaBelief (adabelief-pytorch 0.2.1; spec section 10): Adam
 * whose second moment tracks the squared deviation of the gradient from its
 * running mean, with eps stored into that moment every step, RAdam's
 * rectification and its SGD fallback while the variance estimate is not
 * tractable.  One fused element-wise pass; the step's branch (Adam-like,
 * rectified, SGD, or no move) is the same for the whole tensor and is
 * chosen in prepare(). */
#include <math.h>

#include "optim-internal.h"

enum { LR, BETA1, BETA2, EPS, WEIGHT_DECAY, AMSGRAD, WEIGHT_DECOUPLE, FIXED_DECAY, RECTIFY,
       DEGENERATED_TO_SGD };

static const hp_desc hps[] = {
  {"lr", OPTIM_TYPE_DOUBLE, 1e-3, "1e-3", 0, INFINITY, 0, 0, "learning rate"},
  {"beta1", OPTIM_TYPE_DOUBLE, 0.9, "0.9", 0, 1, HP_HI_OPEN, 0,
   "decay rate of the first moment (running mean of gradients)"},
  {"beta2", OPTIM_TYPE_DOUBLE, 0.999, "0.999", 0, 1, HP_HI_OPEN, 0,
   "decay rate of the second moment (running mean of (grad - exp_avg)^2)"},
  {"eps", OPTIM_TYPE_DOUBLE, 1e-16, "1e-16", 0, INFINITY, 0, 0,
   "added to the second moment every step and to its root (1e-8 suits CNNs)"},
  {"weight_decay", OPTIM_TYPE_DOUBLE, 0, "0", 0, INFINITY, 0, 0,
   "weight decay: decoupled (see weight_decouple) or a coupled L2 penalty"},
  {"amsgrad", OPTIM_TYPE_BOOL, 0, "false", 0, 1, HP_LAYOUT, 0,
   "divide by the running maximum of the second moment (AMSGrad; not in the "
   "rectified branch)"},
  {"weight_decouple", OPTIM_TYPE_BOOL, 1, "true", 0, 1, 0, 0,
   "decoupled decay p *= 1 - lr * weight_decay first; false: grad += weight_decay * p"},
  {"fixed_decay", OPTIM_TYPE_BOOL, 0, "false", 0, 1, 0, 0,
   "decoupled decay not scaled by lr: p *= 1 - weight_decay"},
  {"rectify", OPTIM_TYPE_BOOL, 1, "true", 0, 1, 0, 0,
   "RAdam's rectified step once rho_t >= 5"},
  {"degenerated_to_sgd", OPTIM_TYPE_BOOL, 1, "true", 0, 1, 0, 0,
   "while rho_t < 5 (rectify): take an SGD-with-momentum step; false: do not move p"},
};

/* Per-step coefficients.  C_STEP multiplies exp_avg (divided by the
 * denominator unless C_SGD); C_BC2S divides the root second moment (1 in
 * the rectified branch); C_USE_MAX: divide by max_exp_avg_var. */
enum { C_STEP, C_BC2S, C_B1, C_1MB1, C_B2, C_1MB2, C_EPS, C_WD, C_HAS_WD, C_DECAY, C_GSCALE,
       C_MODE };
enum { MODE_DIV = 0, MODE_DIV_MAX = 1, MODE_SGD = 2, MODE_STILL = 3 };

static void layout(const optim_group *g, const optim_param *p, state_layout *out)
{
  (void)p;
  static const char *const names[] = {"step", "exp_avg", "exp_avg_var", "max_exp_avg_var"};
  int n = hp_i(g, AMSGRAD) ? 4 : 3;
  for (int k = 0; k < n; k++) {
    out->name[k] = names[k];
    out->kind[k] = k == 0 ? OPTIM_STATE_SCALAR : OPTIM_STATE_BUFFER;
  }
  out->n = n;
}

static void prepare(const optim_group *g, optim_param *p)
{
  const int64_t t = ++optim__state_get(p, "step")->scalar;
  const double lr = hp_d(g, LR), b1 = hp_d(g, BETA1), b2 = hp_d(g, BETA2);
  const double wd = optim__wd(g, p, WEIGHT_DECAY);
  const int decouple = (int)hp_i(g, WEIGHT_DECOUPLE);
  double *c = p->coef;
  const double b2t = pow(b2, (double)t);
  const double bc1 = 1 - pow(b1, (double)t), bc2 = 1 - b2t;
  c[C_B1] = b1;
  c[C_1MB1] = 1 - b1;
  c[C_B2] = b2;
  c[C_1MB2] = 1 - b2;
  c[C_EPS] = hp_d(g, EPS);
  c[C_WD] = decouple ? 0 : wd;
  c[C_HAS_WD] = !decouple && wd != 0;
  c[C_DECAY] = !decouple ? 1 : hp_i(g, FIXED_DECAY) ? 1 - wd : 1 - lr * wd;
  c[C_GSCALE] = p->gscale;
  if (!hp_i(g, RECTIFY)) {
    c[C_STEP] = -(lr / bc1);
    c[C_BC2S] = sqrt(bc2);
    c[C_MODE] = hp_i(g, AMSGRAD) ? MODE_DIV_MAX : MODE_DIV;
    return;
  }
  /* The reference's order of operations, in double. */
  const double rho_inf = 2 / (1 - b2) - 1;
  const double rho = rho_inf - 2 * (double)t * b2t / bc2;
  c[C_BC2S] = 1;
  if (rho >= 5) {
    double r = sqrt(bc2 * (rho - 4) / (rho_inf - 4) * (rho - 2) / rho * rho_inf / (rho_inf - 2)) /
               bc1;
    c[C_STEP] = -r * lr;
    c[C_MODE] = MODE_DIV; /* exp_avg_var, not its maximum, even with amsgrad */
  } else if (hp_i(g, DEGENERATED_TO_SGD)) {
    c[C_STEP] = -(1.0 / bc1) * lr;
    c[C_MODE] = MODE_SGD;
  } else {
    c[C_STEP] = 0;
    c[C_MODE] = MODE_STILL;
  }
}

/* One fused pass in torch's operation order:
 *   p = p * decay;  grad = grad + wd * p (coupled only)
 *   m = m*b1 + (1-b1)*grad;  r = grad - m;  s = s*b2 + (1-b2)*r*r + eps
 *   smax = max(smax, s)
 *   p = p + (step*m) / (sqrt(s or smax)/bc2s + eps)   or   p + step*m (SGD).
 * ADABELIEF_MOMENTS and ADABELIEF_MOVE are the two halves of an element's
 * update, shared by the loops with and without smax. */
#define ADABELIEF_MOMENTS(T)                                                              \
  T pi = p[i] * decay;                                                                    \
  T gi = OPTIM_GRAD(T, g, i, zero) * gs;                                                  \
  gi = has_wd ? gi + wd * pi : gi;                                                        \
  T mi = m[i] * b1 + a1 * gi;                                                             \
  T ri = gi - mi;                                                                         \
  T si = (s[i] * b2 + a2 * ri * ri) + eps;                                                \
  m[i] = mi;                                                                              \
  s[i] = si
#define ADABELIEF_MOVE(T, SQRT, X)                                                        \
  T u = step * mi;                                                                        \
  u = sgd ? u : u / (SQRT(X) / bc2s + eps);                                               \
  p[i] = still ? pi : pi + u
#define ADABELIEF_KERNEL(T, SFX, SQRT)                                                    \
  OPTIM_CLONES static void adabelief_##SFX(T *restrict p, const T *restrict g,            \
                                           T *restrict m, T *restrict s,                  \
                                           T *restrict smax, size_t n, const double *c,  \
                                           int zero)                                      \
  {                                                                                       \
    const T step = (T)c[C_STEP], bc2s = (T)c[C_BC2S], b1 = (T)c[C_B1];                    \
    const T a1 = (T)c[C_1MB1], b2 = (T)c[C_B2], a2 = (T)c[C_1MB2], eps = (T)c[C_EPS];     \
    const T wd = (T)c[C_WD], decay = (T)c[C_DECAY], gs = (T)c[C_GSCALE];                 \
    const int has_wd = c[C_HAS_WD] != 0, mode = (int)c[C_MODE];                           \
    const int sgd = mode == MODE_SGD, still = mode == MODE_STILL;                         \
    const int use_max = mode == MODE_DIV_MAX;                                             \
    if (smax == NULL) {                                                                   \
      for (size_t i = 0; i < n; i++) {                                                    \
        ADABELIEF_MOMENTS(T);                                                             \
        ADABELIEF_MOVE(T, SQRT, si);                                                      \
      }                                                                                   \
      return;                                                                             \
    }                                                                                     \
    for (size_t i = 0; i < n; i++) {                                                      \
      ADABELIEF_MOMENTS(T);                                                               \
      T mx = (si > smax[i] || si != si) ? si : smax[i];                                   \
      smax[i] = mx;                                                                       \
      ADABELIEF_MOVE(T, SQRT, use_max ? mx : si);                                         \
    }                                                                                     \
  }

ADABELIEF_KERNEL(float, f32, sqrtf)
ADABELIEF_KERNEL(double, f64, sqrt)

/* state[] follows layout(): step, exp_avg, exp_avg_var[, max_exp_avg_var]. */
static void kernel(const optim_group *g, const optim_param *p, size_t b, size_t e)
{
  (void)g;
  void *sm = p->nstate > 3 ? p->state[3].buf : NULL;
  if (p->dtype == OPTIM_FLOAT32)
    adabelief_f32((float *)p->kdata + b, (const float *)p->kgrad + b,
                  (float *)p->state[1].buf + b, (float *)p->state[2].buf + b,
                  sm ? (float *)sm + b : NULL, e - b, p->coef, p->zero_nonfinite);
  else
    adabelief_f64((double *)p->kdata + b, (const double *)p->kgrad + b,
                  (double *)p->state[1].buf + b, (double *)p->state[2].buf + b,
                  sm ? (double *)sm + b : NULL, e - b, p->coef, p->zero_nonfinite);
}

const optim_alg optim__alg_adabelief = {
  .name = "adabelief",
  .doc = "AdaBelief: Adam with the belief (grad - exp_avg)^2 as second moment, "
         "rectified (adabelief-pytorch 0.2.1)",
  .hp = hps,
  .nhp = (int)(sizeof hps / sizeof hps[0]),
  .layout = layout,
  .prepare = prepare,
  .kernel = kernel,
};
