/* root.c - ROOT: robust orthogonalized optimizer (huawei-noah/noah-research
 * ROOT).  Nesterov sum-form momentum, outliers beyond the 90th percentile
 * of |U| clipped off (soft-threshold split), Newton-Schulz with ROOT's
 * per-shape coefficients, update scaled 0.2*sqrt(max(m, n)); tensors that
 * are not matrices go to ROOT's internal AdamW (its own eps placement). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "matrix.h"
#include "ns.h"

enum { LR, WEIGHT_DECAY, MOMENTUM, NESTEROV, NS_STEPS, NS_COEFFICIENTS, NS_PRECISION,
       QUANTILE, NONMATRIX, A_BETA1, A_BETA2, A_EPS };
enum { NONMATRIX_ERROR = 0, NONMATRIX_ADAMW = 1 };

static const hp_desc hps[] = {
  {"lr", OPTIM_TYPE_DOUBLE, 1e-3, "1e-3", 0, INFINITY, 0, 0,
   "learning rate (also of the internal AdamW)"},
  {"weight_decay", OPTIM_TYPE_DOUBLE, 0.1, "0.1", 0, INFINITY, 0, 0,
   "decoupled weight decay (also of the internal AdamW)"},
  {"momentum", OPTIM_TYPE_DOUBLE, 0.95, "0.95", 0, 1, HP_HI_OPEN, 0,
   "sum-form momentum: M = momentum*M + G"},
  {"nesterov", OPTIM_TYPE_BOOL, 1, "true", 0, 1, 0, 0,
   "use U = G + momentum*M instead of M"},
  {"ns_steps", OPTIM_TYPE_INT, 5, "5", 1, 100, 0, 0, "Newton-Schulz iterations"},
  {"ns_coefficients", OPTIM_TYPE_STRING, 0, "root", 0, 0, 0, NS_COEF_CHOICES,
   "Newton-Schulz coefficients (root: ROOT's per-shape table, muon elsewhere)"},
  NS_PRECISION_HP,
  {"quantile", OPTIM_TYPE_DOUBLE, 0.9, "0.9", 0, 1, 0, 0,
   "entries of |U| above this quantile (linear interpolation) are outliers"},
  {"nonmatrix", OPTIM_TYPE_STRING, 0, "adamw", 0, 0, HP_LAYOUT, "error|adamw",
   "tensors that are not 2-D: adamw (ROOT's internal AdamW) or error"},
  {"adamw_beta1", OPTIM_TYPE_DOUBLE, 0.9, "0.9", 0, 1, HP_HI_OPEN, 0,
   "first-moment decay of the internal AdamW"},
  {"adamw_beta2", OPTIM_TYPE_DOUBLE, 0.95, "0.95", 0, 1, HP_HI_OPEN, 0,
   "second-moment decay of the internal AdamW"},
  {"adamw_eps", OPTIM_TYPE_DOUBLE, 1e-8, "1e-8", 0, INFINITY, 0, 0,
   "added to the root of the (uncorrected) second moment, internal AdamW"},
};

static int is_matrix(const optim_group *g, const optim_param *p)
{
  (void)g;
  return p->ndim == 2;
}

static int accept(const optim_group *g, const optim_param *p, char *msg, size_t size)
{
  return optim__matrix_accept(p, p->ndim == 2, hp_i(g, NONMATRIX) == NONMATRIX_ADAMW, "root",
                              "2-D matrices only", msg, size);
}

static void layout(const optim_group *g, const optim_param *p, state_layout *out)
{
  (void)g;
  if (p->ndim != 2) optim__aux_layout(out);
  else optim__momentum_layout(out);
}

static size_t workspace(const optim_group *g, const optim_param *p)
{
  size_t b = p->numel * optim__dtype_size(p->dtype);
  /* U, |U| for the selection, then NS's own */
  return 2 * (b + 64) + optim__ns_workspace(p->shape[0], p->shape[1],
                                            optim__ns_prec(hp_i(g, NS_PRECISION), p->dtype));
}

enum { C_STEP_SIZE, C_DECAY, C_W1, C_W2, C_EPS, C_GSCALE };

static void prepare(const optim_group *g, optim_param *p)
{
  int64_t t = ++optim__state_get(p, "step")->scalar;
  if (p->ndim == 2) return;
  double lr = hp_d(g, LR), b1 = hp_d(g, A_BETA1), b2 = hp_d(g, A_BETA2);
  double *c = p->coef;
  /* the reference: alpha = -lr / scale with scale = bc1 / bc2**0.5 */
  c[C_STEP_SIZE] = lr / ((1 - pow(b1, (double)t)) / sqrt(1 - pow(b2, (double)t)));
  c[C_DECAY] = 1 - lr * optim__wd(g, p, WEIGHT_DECAY);
  c[C_W1] = 1 - b1;
  c[C_W2] = 1 - b2;
  c[C_EPS] = hp_d(g, A_EPS);
  c[C_GSCALE] = p->gscale;
}

/* ROOT's internal AdamW: m = lerp(m, g, 1-b1); v = lerp(v, g^2, 1-b2);
 * p = p*(1 - lr*wd); p = p + (-lr/(bc1/sqrt(bc2))) * (m / (eps + sqrt(v))). */
#define ADAMW_KERNEL(T, SFX, SQRT)                                                   \
  OPTIM_CLONES static void adamw_##SFX(T *restrict p, const T *restrict g,           \
                                       T *restrict m, T *restrict v, size_t n,       \
                                       const double *c, int zero)                    \
  {                                                                                  \
    const T step = (T)-c[C_STEP_SIZE], decay = (T)c[C_DECAY], eps = (T)c[C_EPS];       \
    const T w1 = (T)c[C_W1], w2 = (T)c[C_W2], w1c = (T)1 - w1, w2c = (T)1 - w2;       \
    const T gs = (T)c[C_GSCALE];                                                     \
    for (size_t i = 0; i < n; i++) {                                                 \
      T gi = OPTIM_GRAD(T, g, i, zero) * gs;                                         \
      T mi = LERP(m[i], gi, w1, w1c);                                                \
      T vi = LERP_SQ(v[i], gi * gi, w2, w2c);                                           \
      m[i] = mi;                                                                     \
      v[i] = vi;                                                                     \
      T pi = p[i] * decay;                                                           \
      p[i] = pi + step * (mi / (eps + SQRT(vi)));                                    \
    }                                                                                \
  }

ADAMW_KERNEL(float, f32, sqrtf)
ADAMW_KERNEL(double, f64, sqrt)

/* state[] follows layout(): step, exp_avg, exp_avg_sq for non-matrices. */
static void kernel(const optim_group *g, const optim_param *p, size_t b, size_t e)
{
  (void)g;
  if (p->dtype == OPTIM_FLOAT32)
    adamw_f32((float *)p->kdata + b, (const float *)p->kgrad + b, (float *)p->state[1].buf + b,
              (float *)p->state[2].buf + b, e - b, p->coef, p->zero_nonfinite);
  else
    adamw_f64((double *)p->kdata + b, (const double *)p->kgrad + b,
              (double *)p->state[1].buf + b, (double *)p->state[2].buf + b, e - b, p->coef,
              p->zero_nonfinite);
}

/* One ROOT matrix step in the dtype: momentum, threshold, clip. */
#define ROOT_PREP(T, SFX)                                                           \
  static void root_prep_##SFX(T *restrict m, const T *restrict g, T *restrict u,    \
                              T *restrict a, size_t n, double mu, int nesterov,     \
                              double q, int zero, double gscale)                    \
  {                                                                                 \
    const T mt = (T)mu, gs = (T)gscale;                                             \
    for (size_t i = 0; i < n; i++) {                                                \
      T gi = OPTIM_GRAD(T, g, i, zero) * gs;                                        \
      T mi = m[i] * mt + gi;                                                        \
      m[i] = mi;                                                                    \
      T ui = nesterov ? gi + mt * mi : mi;                                          \
      u[i] = ui;                                                                    \
      a[i] = ui < 0 ? -ui : ui;                                                     \
    }                                                                               \
    T thr = optim__quantile_##SFX(a, n, q) + (T)1e-9;                               \
    for (size_t i = 0; i < n; i++) u[i] = u[i] > thr ? thr : u[i] < -thr ? -thr : u[i]; \
  }

ROOT_PREP(float, f32)
ROOT_PREP(double, f64)

static double cost(const optim_group *g, const optim_param *p)
{
  int64_t batch, rows, cols;
  optim__matrix_view(p, &batch, &rows, &cols);
  return (double)batch * optim__ns_flops(rows, cols, (int)hp_i(g, NS_STEPS));
}

static int param_step(const optim_group *g, optim_param *p, void *work)
{
  size_t bytes = (p->numel * optim__dtype_size(p->dtype) + 63) & ~(size_t)63;
  void *u = work, *a = (char *)work + bytes, *nswork = (char *)work + 2 * bytes;
  double mu = hp_d(g, MOMENTUM), q = hp_d(g, QUANTILE), lr = hp_d(g, LR);
  int nest = (int)hp_i(g, NESTEROV);
  if (p->dtype == OPTIM_FLOAT32)
    root_prep_f32(p->state[1].buf, p->grad, u, a, p->numel, mu, nest, q, p->zero_nonfinite,
                  p->gscale);
  else
    root_prep_f64(p->state[1].buf, p->grad, u, a, p->numel, mu, nest, q, p->zero_nonfinite,
                  p->gscale);
  int64_t m = p->shape[0], n = p->shape[1];
  optim__ns(p->dtype, optim__ns_prec(hp_i(g, NS_PRECISION), p->dtype), u, u, 1, m, n,
            (int)hp_i(g, NS_STEPS), (int)hp_i(g, NS_COEFFICIENTS), nswork);
  double step = lr * 0.2 * sqrt((double)(m > n ? m : n));
  optim__apply_update(p->dtype, p->data, u, p->numel, step, 1 - lr * optim__wd(g, p, WEIGHT_DECAY), 1);
  return 0;
}

const optim_alg optim__alg_root = {
  .name = "root",
  .doc = "ROOT: robust orthogonalized optimizer with outlier clipping (noah-research ROOT)",
  .hp = hps,
  .nhp = (int)(sizeof hps / sizeof hps[0]),
  .accept = accept,
  .layout = layout,
  .prepare = prepare,
  .kernel = kernel,
  .whole = is_matrix,
  .param_step = param_step,
  .workspace = workspace,
  .cost = cost,
};
