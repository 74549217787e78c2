/* muon.c - Muon: momentum orthogonalized by Newton-Schulz, for matrices
 * (KellerJordan/Muon semantics, NS in float32 or float64 instead of bf16),
 * with the reference's auxiliary AdamW for tensors that are not matrices
 * (MuonWithAuxAdam) when nonmatrix=adamw. */
#include <math.h>
#include <stdio.h>

#include "ns.h"
#include "optim-internal.h"

enum { LR, MOMENTUM, NESTEROV, WEIGHT_DECAY, NS_STEPS, NS_COEFFICIENTS, LR_ADJUST,
       NS_PRECISION, NONMATRIX, A_LR, A_BETA1, A_BETA2, A_EPS, A_WEIGHT_DECAY };
enum { ADJ_REFERENCE = 0, ADJ_MATCH_ADAMW = 1 };
enum { PREC_AUTO = 0, PREC_FLOAT32 = 1, PREC_FLOAT64 = 2 };
enum { NONMATRIX_ERROR = 0, NONMATRIX_ADAMW = 1 };

static const hp_desc hps[] = {
  {"lr", OPTIM_TYPE_DOUBLE, 0.02, "0.02", 0, INFINITY, 0, 0,
   "learning rate, in units of spectral norm per update"},
  {"momentum", OPTIM_TYPE_DOUBLE, 0.95, "0.95", 0, 1, HP_HI_OPEN, 0,
   "EMA momentum: M = lerp(M, G, 1 - momentum)"},
  {"nesterov", OPTIM_TYPE_BOOL, 1, "true", 0, 1, 0, 0,
   "orthogonalize lerp(G, M, momentum) instead of M"},
  {"weight_decay", OPTIM_TYPE_DOUBLE, 0, "0", 0, INFINITY, 0, 0,
   "decoupled weight decay: param *= 1 - lr * weight_decay"},
  {"ns_steps", OPTIM_TYPE_INT, 5, "5", 1, 100, 0, 0, "Newton-Schulz iterations"},
  {"ns_coefficients", OPTIM_TYPE_STRING, 0, "muon", 0, 0, 0, NS_COEF_CHOICES,
   "Newton-Schulz coefficients: muon (3.4445, -4.775, 2.0315), polar_express "
   "(per-iteration), root (ROOT's per-shape table, muon elsewhere)"},
  {"lr_adjust", OPTIM_TYPE_STRING, 0, "reference", 0, 0, 0, "reference|match_adamw",
   "update scale: reference sqrt(max(1, rows/cols)) of the parameter's last two "
   "dims, or match_adamw 0.2*sqrt(max(rows, cols)) of the orthogonalized matrix"},
  {"ns_precision", OPTIM_TYPE_STRING, 0, "auto", 0, 0, HP_LAYOUT, "auto|float32|float64",
   "precision of the Newton-Schulz iteration (auto: the parameter's)"},
  {"nonmatrix", OPTIM_TYPE_STRING, 0, "error", 0, 0, HP_LAYOUT, "error|adamw",
   "tensors of fewer than 2 dims: error (refused) or adamw (the auxiliary AdamW)"},
  {"adamw_lr", OPTIM_TYPE_DOUBLE, 3e-4, "3e-4", 0, INFINITY, 0, 0,
   "learning rate of the auxiliary AdamW"},
  {"adamw_beta1", OPTIM_TYPE_DOUBLE, 0.9, "0.9", 0, 1, HP_HI_OPEN, 0,
   "first-moment decay of the auxiliary AdamW"},
  {"adamw_beta2", OPTIM_TYPE_DOUBLE, 0.95, "0.95", 0, 1, HP_HI_OPEN, 0,
   "second-moment decay of the auxiliary AdamW"},
  {"adamw_eps", OPTIM_TYPE_DOUBLE, 1e-10, "1e-10", 0, INFINITY, 0, 0,
   "added to the root of the bias-corrected second moment (auxiliary AdamW)"},
  {"adamw_weight_decay", OPTIM_TYPE_DOUBLE, 0, "0", 0, INFINITY, 0, 0,
   "decoupled weight decay of the auxiliary AdamW"},
};

static int is_matrix(const optim_group *g, const optim_param *p)
{
  (void)g;
  return p->ndim >= 2;
}

static int accept(const optim_group *g, const optim_param *p, char *msg, size_t size)
{
  if (p->ndim >= 2 || hp_i(g, NONMATRIX) == NONMATRIX_ADAMW) return OPTIM_OK;
  snprintf(msg, size,
           "muon: '%s' has %d dimension (%lld elements); Muon orthogonalizes matrices: "
           "register it in an adamw group, or set nonmatrix=adamw to route it to "
           "Muon's auxiliary AdamW",
           p->name, p->ndim, (long long)p->numel);
  return OPTIM_EUNSUPPORTED;
}

static void layout(const optim_group *g, const optim_param *p, state_layout *out)
{
  (void)g;
  out->name[0] = "step";
  out->kind[0] = OPTIM_STATE_SCALAR;
  if (p->ndim >= 2) {
    out->name[1] = "momentum_buffer";
    out->kind[1] = OPTIM_STATE_BUFFER;
    out->n = 2;
  } else {
    out->name[1] = "exp_avg";
    out->kind[1] = OPTIM_STATE_BUFFER;
    out->name[2] = "exp_avg_sq";
    out->kind[2] = OPTIM_STATE_BUFFER;
    out->n = 3;
  }
}

static void init_state(const optim_group *g, optim_param *p)
{
  (void)g;
  (void)p;
}

/* The matrix NS runs on, and how many of them: 3-D tensors are a batch
 * over the leading dim, 4-D (conv) ones are (out, in*kh*kw). */
static void ns_shape(const optim_param *p, int64_t *batch, int64_t *rows, int64_t *cols)
{
  *batch = 1;
  *rows = p->shape[0];
  *cols = (int64_t)p->numel / p->shape[0];
  if (p->ndim == 3) {
    *batch = p->shape[0];
    *rows = p->shape[1];
    *cols = p->shape[2];
  }
}

static int ns_prec(const optim_group *g, const optim_param *p)
{
  int64_t v = hp_i(g, NS_PRECISION);
  return v == PREC_AUTO ? p->dtype : v == PREC_FLOAT32 ? OPTIM_FLOAT32 : OPTIM_FLOAT64;
}

static size_t workspace(const optim_group *g, const optim_param *p)
{
  int64_t batch, rows, cols;
  ns_shape(p, &batch, &rows, &cols);
  return p->numel * optim__dtype_size(p->dtype) + 64 +
         optim__ns_workspace(rows, cols, ns_prec(g, p));
}

enum { C_BC1, C_BC2, C_LR, C_DECAY, C_W1, C_W2, C_EPS };

static void prepare(const optim_group *g, optim_param *p)
{
  int64_t t = ++optim__state_get(p, "step")->scalar;
  if (p->ndim >= 2) return;
  double *c = p->coef;
  c[C_BC1] = 1 - pow(hp_d(g, A_BETA1), (double)t);
  c[C_BC2] = 1 - pow(hp_d(g, A_BETA2), (double)t);
  c[C_LR] = hp_d(g, A_LR);
  c[C_DECAY] = 1 - hp_d(g, A_LR) * hp_d(g, A_WEIGHT_DECAY);
  c[C_W1] = 1 - hp_d(g, A_BETA1);
  c[C_W2] = 1 - hp_d(g, A_BETA2);
  c[C_EPS] = hp_d(g, A_EPS);
}

/* torch.lerp: start + w*(end - start) for |w| < 0.5, else
 * end - (end - start)*(1 - w). */
#define LERP(s, e, w, w1) ((w) < (w1) ? (s) + (w) * ((e) - (s)) : (e) - ((e) - (s)) * (w1))

/* The auxiliary AdamW of MuonWithAuxAdam:
 *   m = lerp(m, g, 1-b1); v = lerp(v, g^2, 1-b2);
 *   u = (m/bc1) / (sqrt(v/bc2) + eps); p = p*(1 - lr*wd) - lr*u.
 * A missing gradient (g == NULL) counts as zero. */
#define AUX_KERNEL(T, SFX, SQRT)                                                    \
  OPTIM_CLONES static void aux_##SFX(T *restrict p, const T *restrict g,            \
                                     T *restrict m, T *restrict v, size_t n,        \
                                     const double *c, int zero)                     \
  {                                                                                 \
    const T bc1 = (T)c[C_BC1], bc2 = (T)c[C_BC2], lr = (T)-c[C_LR];                 \
    const T decay = (T)c[C_DECAY], w1 = (T)c[C_W1], w2 = (T)c[C_W2];                \
    const T w1c = (T)1 - w1, w2c = (T)1 - w2, eps = (T)c[C_EPS];                    \
    for (size_t i = 0; i < n; i++) {                                                \
      T gi = g ? OPTIM_GRAD(T, g, i, zero) : (T)0;                                  \
      T mi = LERP(m[i], gi, w1, w1c);                                               \
      T vi = LERP(v[i], gi * gi, w2, w2c);                                          \
      m[i] = mi;                                                                    \
      v[i] = vi;                                                                    \
      T u = (mi / bc1) / (SQRT(vi / bc2) + eps);                                    \
      T pi = p[i] * decay;                                                          \
      p[i] = pi + lr * u;                                                           \
    }                                                                               \
  }

AUX_KERNEL(float, f32, sqrtf)
AUX_KERNEL(double, f64, sqrt)

/* state[] follows layout(): step, exp_avg, exp_avg_sq for 1-D tensors. */
static void kernel(const optim_group *g, const optim_param *p, size_t b, size_t e)
{
  (void)g;
  if (p->dtype == OPTIM_FLOAT32)
    aux_f32((float *)p->data + b, p->grad ? (const float *)p->grad + b : NULL,
            (float *)p->state[1].buf + b, (float *)p->state[2].buf + b, e - b, p->coef,
            p->zero_nonfinite);
  else
    aux_f64((double *)p->data + b, p->grad ? (const double *)p->grad + b : NULL,
            (double *)p->state[1].buf + b, (double *)p->state[2].buf + b, e - b, p->coef,
            p->zero_nonfinite);
}

/* Momentum and the Nesterov blend in one pass, writing U into u. */
#define MOMENTUM_KERNEL(T, SFX)                                                       \
  static void momentum_##SFX(T *restrict m, const T *restrict g, T *restrict u,       \
                             size_t n, double beta, int nesterov, int zero)           \
  {                                                                                   \
    const T w = (T)(1 - beta), wc = (T)1 - w, bt = (T)beta, btc = (T)1 - bt;           \
    for (size_t i = 0; i < n; i++) {                                                  \
      T gi = g ? OPTIM_GRAD(T, g, i, zero) : (T)0;                                    \
      T mi = LERP(m[i], gi, w, wc);                                                   \
      m[i] = mi;                                                                      \
      u[i] = nesterov ? LERP(gi, mi, bt, btc) : mi;                                   \
    }                                                                                 \
  }                                                                                   \
  /* p = p*decay; p = p + (-lr)*(u*scale). */                                          \
  static void apply_##SFX(T *restrict p, const T *restrict u, size_t n, double lr,     \
                          double decay, double scale)                                 \
  {                                                                                   \
    const T a = (T)-lr, d = (T)decay, s = (T)scale;                                   \
    for (size_t i = 0; i < n; i++) {                                                  \
      T pi = p[i] * d;                                                                \
      p[i] = pi + a * (u[i] * s);                                                     \
    }                                                                                 \
  }

MOMENTUM_KERNEL(float, f32)
MOMENTUM_KERNEL(double, f64)

static void param_step(const optim_group *g, optim_param *p, void *work)
{
  int64_t batch, rows, cols;
  ns_shape(p, &batch, &rows, &cols);
  size_t ubytes = p->numel * optim__dtype_size(p->dtype);
  void *u = work;
  void *nswork = (char *)work + ((ubytes + 63) & ~(size_t)63);
  double beta = hp_d(g, MOMENTUM), lr = hp_d(g, LR);
  int nest = (int)hp_i(g, NESTEROV);
  if (p->dtype == OPTIM_FLOAT32)
    momentum_f32(p->state[1].buf, p->grad, u, p->numel, beta, nest, p->zero_nonfinite);
  else
    momentum_f64(p->state[1].buf, p->grad, u, p->numel, beta, nest, p->zero_nonfinite);
  optim__ns(p->dtype, ns_prec(g, p), u, u, batch, rows, cols, (int)hp_i(g, NS_STEPS),
            (int)hp_i(g, NS_COEFFICIENTS), nswork);
  /* The reference scales by the parameter's own last two dims (for a conv
   * weight that is kh/kw, not the flattened matrix's ratio). */
  double scale;
  if (hp_i(g, LR_ADJUST) == ADJ_REFERENCE) {
    double r = (double)p->shape[p->ndim - 2] / (double)p->shape[p->ndim - 1];
    scale = sqrt(r > 1 ? r : 1);
  } else {
    scale = 0.2 * sqrt((double)(rows > cols ? rows : cols));
  }
  double decay = 1 - lr * hp_d(g, WEIGHT_DECAY);
  if (p->dtype == OPTIM_FLOAT32) apply_f32(p->data, u, p->numel, lr, decay, scale);
  else apply_f64(p->data, u, p->numel, lr, decay, scale);
}

const optim_alg optim__alg_muon = {
  .name = "muon",
  .doc = "Muon: Newton-Schulz-orthogonalized momentum for matrices (KellerJordan/Muon)",
  .hp = hps,
  .nhp = (int)(sizeof hps / sizeof hps[0]),
  .accept = accept,
  .layout = layout,
  .init_state = init_state,
  .prepare = prepare,
  .kernel = kernel,
  .whole = is_matrix,
  .param_step = param_step,
  .workspace = workspace,
  .missing_grad_zero = 1,
};
