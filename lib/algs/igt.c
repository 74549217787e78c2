/* igt.c - Implicit Gradient Transport (seba-1511/igt.pth MomentumIGT and
 * AdamIGT, spec section 9).
 *
 * The caller's parameter buffer holds the SHIFTED point, where gradients
 * are evaluated; the true iterate is the state buffer true_param, taken
 * from the parameter buffer at the parameter's first step.  With n the
 * steps done so far, gamma = n / (n + delta) and the transport
 * tau = gamma' / (1 - gamma'), gamma' = (n + 1) / (n + 1 + delta):
 *
 * igt:      g += weight_decay * shifted;  n = 0: v = v + g, u = u + v
 *           n > 0: v = gamma v + (1 - gamma) g;  u = mu u + (1 - dampening) v
 *           d = v (plain), u (heavy ball) or v + mu u (nesterov)
 *           true = true - lr d;  shifted = true - lr tau d
 * adam_igt: v as igt (no decay in v);  ghat = v + weight_decay * true
 *           m, s: Adam moments of ghat;  upd = -lr sqrt(bc2)/bc1 m / (sqrt(s) + eps)
 *           shifted = true + (1 + tau) upd;  true = true + upd
 *
 * Everything is element-wise: one fused kernel pass, threaded. */
#include <math.h>

#include "optim-internal.h"

/* ---- shared ---------------------------------------------------------------------- */

/* State entries common to both, in layout order. */
enum { S_STEP, S_TRUE, S_AVG, S_NEXT };

static void layout_common(state_layout *out, const char *const *more, int nmore)
{
  static const char *const names[] = {"step", "true_param", "igt_avg"};
  for (int k = 0; k < S_NEXT + nmore; k++) {
    out->name[k] = k < S_NEXT ? names[k] : more[k - S_NEXT];
    out->kind[k] = k == S_STEP ? OPTIM_STATE_SCALAR : OPTIM_STATE_BUFFER;
  }
  out->n = S_NEXT + nmore;
}

/* Per-step coefficients shared by both kernels (p->coef). */
enum { C_FIRST, C_GAM, C_1MGAM, C_WD, C_SIGN, C_NCOMMON };

/* Advances the step count; fills the shared coefficients and returns the
 * transport tau of the next point, computed as the reference does. */
static double prepare_common(optim_param *p, double delta, double wd)
{
  const double n = (double)p->state[S_STEP].scalar++;
  const double gam = n / (n + delta), fut = (n + 1) / (n + 1 + delta);
  p->coef[C_FIRST] = n == 0;
  p->coef[C_GAM] = gam;
  p->coef[C_1MGAM] = 1.0 - gam;
  p->coef[C_WD] = wd;
  p->coef[C_SIGN] = p->gscale; /* optim_step_scaled */
  return fut / (1.0 - fut);
}

/* ---- igt (MomentumIGT) ---------------------------------------------------------------- */

enum { LR, MOMENTUM, DAMPENING, WEIGHT_DECAY, NESTEROV, DELTA };

static const hp_desc igt_hps[] = {
  {"lr", OPTIM_TYPE_DOUBLE, NAN, "required", 0, INFINITY, HP_REQUIRED, 0,
   "learning rate (no default, as in the reference)"},
  {"momentum", OPTIM_TYPE_DOUBLE, 0, "0", 0, INFINITY, HP_LAYOUT, 0,
   "momentum factor mu (heavy ball, or Nesterov); 0 disables the momentum buffer"},
  {"dampening", OPTIM_TYPE_DOUBLE, 0, "0", 0, 1, 0, 0,
   "dampening of the momentum update, not applied on the first step"},
  {"weight_decay", OPTIM_TYPE_DOUBLE, 0, "0", 0, INFINITY, 0, 0,
   "coupled L2 penalty at the shifted point: the gradient gets weight_decay * param added"},
  {"nesterov", OPTIM_TYPE_BOOL, 0, "false", 0, 1, 0, 0,
   "Nesterov momentum (needs momentum > 0 and dampening = 0)"},
  {"delta", OPTIM_TYPE_DOUBLE, 1, "1", 0, INFINITY, HP_LO_OPEN, 0,
   "IGT's delta: the averaging weight gamma = n / (n + delta) after n steps"},
};

enum { C_MU = C_NCOMMON, C_1MDAMP, C_NLR, C_NLR_MU, C_NLR_TAU, C_NLR_MU_TAU, C_MODE };
enum { MODE_PLAIN = 0, MODE_HEAVY = 1, MODE_NESTEROV = 2 };

static int igt_check(const optim_group *g, char *msg, size_t size)
{
  return optim__check_nesterov(g, NESTEROV, MOMENTUM, DAMPENING, msg, size);
}

static void igt_layout(const optim_group *g, const optim_param *p, state_layout *out)
{
  (void)p;
  static const char *const more[] = {"momentum_buffer"};
  layout_common(out, more, hp_d(g, MOMENTUM) != 0);
}

static void igt_prepare(const optim_group *g, optim_param *p)
{
  const double lr = hp_d(g, LR), mu = hp_d(g, MOMENTUM);
  const double tau = prepare_common(p, hp_d(g, DELTA), optim__wd(g, p, WEIGHT_DECAY));
  double *c = p->coef;
  c[C_MU] = mu;
  c[C_1MDAMP] = 1.0 - hp_d(g, DAMPENING);
  /* the reference's scalars: -lr, -lr * momentum, -lr * tau, -lr * momentum * tau */
  c[C_NLR] = -lr;
  c[C_NLR_MU] = -lr * mu;
  c[C_NLR_TAU] = -lr * tau;
  c[C_NLR_MU_TAU] = -lr * mu * tau;
  c[C_MODE] = mu == 0 ? MODE_PLAIN : hp_i(g, NESTEROV) ? MODE_NESTEROV : MODE_HEAVY;
}

/* x is the parameter buffer (the shifted point), th the true iterate, u
 * the momentum buffer (NULL without momentum).  In torch's order:
 *   v = v*gam + (1-gam)*g;  u = u*mu + (1-damp)*v
 *   plain: th = th + (-lr)*v;  x = th + (-lr*tau)*v
 *   heavy: th = th + (-lr)*u;  x = th + (-lr*tau)*u
 *   nesterov: th = (th + (-lr)*v) + (-lr*mu)*u;  x = (th + (-lr*tau)*v) + (-lr*mu*tau)*u
 * IGT_LOOP is the loop of one mode, whose statements (the variable
 * arguments) set ti and xi from ti, vi (and ui). */
#define IGT_LOOP(T, ...)                                     \
  for (size_t i = 0; i < n; i++) {                           \
    T xi = x[i], gi = OPTIM_GRAD(T, g, i, zero) * sign;      \
    gi = has_wd ? gi + wd * xi : gi;                         \
    T vo = v[i], vi = first ? vo + gi : vo * gam + omg * gi; \
    T to = th[i], ti = first ? xi : to;                      \
    __VA_ARGS__;                                             \
    v[i] = vi;                                               \
    th[i] = ti;                                              \
    x[i] = xi;                                               \
  }
#define IGT_MOMENTUM(T)                                   \
  T uo = u[i], ui = first ? uo + vi : uo * mu + omd * vi; \
  u[i] = ui
#define IGT_KERNEL(T, SFX)                                                                \
  OPTIM_CLONES static void igt_##SFX(T *restrict x, const T *restrict g, T *restrict th,  \
                                     T *restrict v, T *restrict u, size_t n,              \
                                     const double *c, int zero)                           \
  {                                                                                       \
    const T gam = (T)c[C_GAM], omg = (T)c[C_1MGAM], wd = (T)c[C_WD], sign = (T)c[C_SIGN]; \
    const T mu = (T)c[C_MU], omd = (T)c[C_1MDAMP], nlr = (T)c[C_NLR];                     \
    const T nlr_mu = (T)c[C_NLR_MU], nlr_tau = (T)c[C_NLR_TAU];                           \
    const T nlr_mu_tau = (T)c[C_NLR_MU_TAU];                                              \
    const int first = c[C_FIRST] != 0, has_wd = c[C_WD] != 0, mode = (int)c[C_MODE];      \
    /* one loop per mode, so that each vectorizes */                                      \
    if (mode == MODE_PLAIN) {                                                             \
      IGT_LOOP(T, ti = ti + nlr * vi; xi = ti + nlr_tau * vi)                             \
    } else if (mode == MODE_HEAVY) {                                                      \
      IGT_LOOP(T, IGT_MOMENTUM(T); ti = ti + nlr * ui; xi = ti + nlr_tau * ui)            \
    } else {                                                                              \
      IGT_LOOP(T, IGT_MOMENTUM(T); ti = (ti + nlr * vi) + nlr_mu * ui;                    \
               xi = (ti + nlr_tau * vi) + nlr_mu_tau * ui)                                \
    }                                                                                     \
  }
IGT_KERNEL(float, f32)
IGT_KERNEL(double, f64)

/* The element range [b, e) of state buffer k (or NULL) and of the parameter
 * and its gradient, as typed pointers. */
#define AT(T, q, b) ((q) ? (T *)(q) + (b) : NULL)
#define IGT_RANGE(T, p, b) (T *)(p)->kdata + (b), (const T *)(p)->kgrad + (b)
#define IGT_STATE(T, p, k, b) AT(T, (p)->nstate > (k) ? (p)->state[k].buf : NULL, b)

static void igt_kernel(const optim_group *g, const optim_param *p, size_t b, size_t e)
{
  (void)g;
  if (p->dtype == OPTIM_FLOAT32)
    igt_f32(IGT_RANGE(float, p, b), IGT_STATE(float, p, S_TRUE, b),
            IGT_STATE(float, p, S_AVG, b), IGT_STATE(float, p, S_NEXT, b), e - b, p->coef,
            p->zero_nonfinite);
  else
    igt_f64(IGT_RANGE(double, p, b), IGT_STATE(double, p, S_TRUE, b),
            IGT_STATE(double, p, S_AVG, b), IGT_STATE(double, p, S_NEXT, b), e - b, p->coef,
            p->zero_nonfinite);
}

const optim_alg optim__alg_igt = {
  .name = "igt",
  .doc = "Implicit Gradient Transport, plain, heavy ball or Nesterov; the parameter "
         "buffer holds the shifted point, state true_param the iterate (seba-1511/igt.pth)",
  .hp = igt_hps,
  .nhp = (int)(sizeof igt_hps / sizeof igt_hps[0]),
  .check = igt_check,
  .layout = igt_layout,
  .prepare = igt_prepare,
  .kernel = igt_kernel,
};

/* ---- adam_igt (AdamIGT) ---------------------------------------------------------------- */

enum { A_LR, A_BETA1, A_BETA2, A_EPS, A_WEIGHT_DECAY, A_DELTA };

static const hp_desc adam_igt_hps[] = {
  {"lr", OPTIM_TYPE_DOUBLE, 1e-3, "1e-3", 0, INFINITY, 0, 0, "learning rate"},
  {"beta1", OPTIM_TYPE_DOUBLE, 0.9, "0.9", 0, 1, HP_HI_OPEN, 0,
   "decay rate of the first moment of the IGT estimate"},
  {"beta2", OPTIM_TYPE_DOUBLE, 0.999, "0.999", 0, 1, HP_HI_OPEN, 0,
   "decay rate of the second moment of the IGT estimate"},
  {"eps", OPTIM_TYPE_DOUBLE, 1e-8, "1e-8", 0, INFINITY, 0, 0,
   "added to the root second moment (not bias-corrected)"},
  {"weight_decay", OPTIM_TYPE_DOUBLE, 0, "0", 0, INFINITY, 0, 0,
   "L2 penalty at the true iterate, added to the IGT estimate: weight_decay * true_param"},
  {"delta", OPTIM_TYPE_DOUBLE, 1, "1", 0, INFINITY, HP_LO_OPEN, 0,
   "IGT's delta: the averaging weight gamma = n / (n + delta) after n steps"},
};

enum { A_S_EXP_AVG = S_NEXT, A_S_EXP_AVG_SQ };
enum { C_B1 = C_NCOMMON, C_1MB1, C_B2, C_1MB2, C_EPS, C_NSTEP, C_SHIFT };

static void adam_igt_layout(const optim_group *g, const optim_param *p, state_layout *out)
{
  (void)g;
  (void)p;
  static const char *const more[] = {"exp_avg", "exp_avg_sq"};
  layout_common(out, more, 2);
}

static void adam_igt_prepare(const optim_group *g, optim_param *p)
{
  const double t = (double)p->state[S_STEP].scalar + 1; /* Adam's count */
  const double tau = prepare_common(p, hp_d(g, A_DELTA), optim__wd(g, p, A_WEIGHT_DECAY));
  const double b1 = hp_d(g, A_BETA1), b2 = hp_d(g, A_BETA2);
  double *c = p->coef;
  c[C_B1] = b1;
  c[C_1MB1] = 1 - b1;
  c[C_B2] = b2;
  c[C_1MB2] = 1 - b2;
  c[C_EPS] = hp_d(g, A_EPS);
  c[C_NSTEP] = -(hp_d(g, A_LR) * sqrt(1 - pow(b2, t)) / (1 - pow(b1, t)));
  c[C_SHIFT] = 1.0 + tau;
}

/* x is the parameter buffer, th the true iterate.  The first step starts
 * v, m and s again (v = 0 + g, m = s = 0), as the reference does; the
 * base point is th, or x at the first step.  In torch's order:
 *   v = v*gam + (1-gam)*g;  h = v + wd*th;  m = m*b1 + (1-b1)*h;
 *   s = s*b2 + ((1-b2)*h)*h;  upd = (-step) * (m / (sqrt(s) + eps));
 *   x = th + (1+tau)*upd;  th = th + upd */
#define ADAM_IGT_KERNEL(T, SFX, SQRT)                                                         \
  OPTIM_CLONES static void adam_igt_##SFX(T *restrict x, const T *restrict g,                 \
                                          T *restrict th, T *restrict v, T *restrict m,       \
                                          T *restrict s, size_t n, const double *c, int zero) \
  {                                                                                           \
    const T gam = (T)c[C_GAM], omg = (T)c[C_1MGAM], wd = (T)c[C_WD], sign = (T)c[C_SIGN];     \
    const T b1 = (T)c[C_B1], a1 = (T)c[C_1MB1], b2 = (T)c[C_B2], a2 = (T)c[C_1MB2];           \
    const T eps = (T)c[C_EPS], nstep = (T)c[C_NSTEP], shift = (T)c[C_SHIFT];                  \
    const int first = c[C_FIRST] != 0, has_wd = c[C_WD] != 0;                                 \
    for (size_t i = 0; i < n; i++) {                                                          \
      T gi = OPTIM_GRAD(T, g, i, zero) * sign;                                                \
      T vi = first ? (T)0 + gi : v[i] * gam + omg * gi;                                       \
      T base = first ? x[i] : th[i];                                                          \
      T hi = has_wd ? vi + wd * base : vi;                                                    \
      T mi = (first ? (T)0 : m[i] * b1) + a1 * hi;                                            \
      T si = (first ? (T)0 : s[i] * b2) + a2 * hi * hi;                                       \
      T upd = nstep * (mi / (SQRT(si) + eps));                                                \
      v[i] = vi;                                                                              \
      m[i] = mi;                                                                              \
      s[i] = si;                                                                              \
      x[i] = base + shift * upd;                                                              \
      th[i] = base + upd;                                                                     \
    }                                                                                         \
  }
ADAM_IGT_KERNEL(float, f32, sqrtf)
ADAM_IGT_KERNEL(double, f64, sqrt)

static void adam_igt_kernel(const optim_group *g, const optim_param *p, size_t b, size_t e)
{
  (void)g;
  if (p->dtype == OPTIM_FLOAT32)
    adam_igt_f32(IGT_RANGE(float, p, b), IGT_STATE(float, p, S_TRUE, b),
                 IGT_STATE(float, p, S_AVG, b), IGT_STATE(float, p, A_S_EXP_AVG, b),
                 IGT_STATE(float, p, A_S_EXP_AVG_SQ, b), e - b, p->coef, p->zero_nonfinite);
  else
    adam_igt_f64(IGT_RANGE(double, p, b), IGT_STATE(double, p, S_TRUE, b),
                 IGT_STATE(double, p, S_AVG, b), IGT_STATE(double, p, A_S_EXP_AVG, b),
                 IGT_STATE(double, p, A_S_EXP_AVG_SQ, b), e - b, p->coef, p->zero_nonfinite);
}

const optim_alg optim__alg_adam_igt = {
  .name = "adam_igt",
  .doc = "Adam on the Implicit Gradient Transport estimate; the parameter buffer holds the "
         "shifted point, state true_param the iterate (seba-1511/igt.pth AdamIGT)",
  .hp = adam_igt_hps,
  .nhp = (int)(sizeof adam_igt_hps / sizeof adam_igt_hps[0]),
  .layout = adam_igt_layout,
  .prepare = adam_igt_prepare,
  .kernel = adam_igt_kernel,
};
