/* normuon.c - NorMuon: Muon with a per-neuron (row) second moment applied
 * after orthogonalization and the Frobenius norm restored.  variant=reference
 * follows the authors' code (zichongli5/NorMuon); variant=paper the paper's
 * formulation (AdamW-matched update RMS).  NS runs in float32 or float64. */
#include <math.h>
#include <stdio.h>

#include "matrix.h"
#include "ns.h"

enum { LR, MOMENTUM, BETA2, EPS, NESTEROV, WEIGHT_DECAY, NS_STEPS, NS_COEFFICIENTS,
       NS_PRECISION, VARIANT, NONMATRIX, A_LR };
enum { VARIANT_REFERENCE = 0, VARIANT_PAPER = 1 };
enum { NONMATRIX_ERROR = 0, NONMATRIX_ADAMW = 1 };

static const hp_desc hps[] = {
  {"lr", OPTIM_TYPE_DOUBLE, 0.02, "0.02", 0, INFINITY, 0, 0, "learning rate"},
  {"momentum", OPTIM_TYPE_DOUBLE, 0.95, "0.95", 0, 1, HP_HI_OPEN, 0,
   "momentum of the gradient (EMA)"},
  {"beta2", OPTIM_TYPE_DOUBLE, 0.95, "0.95", 0, 1, HP_HI_OPEN, 0,
   "decay of the per-row second moment of the orthogonalized update"},
  {"eps", OPTIM_TYPE_DOUBLE, 1e-10, "1e-10", 0, INFINITY, 0, 0,
   "added to the root second moment and to the norm in the restore"},
  {"nesterov", OPTIM_TYPE_BOOL, 1, "true", 0, 1, 0, 0,
   "orthogonalize lerp(G, M, momentum) instead of M (reference variant)"},
  {"weight_decay", OPTIM_TYPE_DOUBLE, 0, "0", 0, INFINITY, 0, 0,
   "decoupled weight decay: param *= 1 - lr * weight_decay"},
  {"ns_steps", OPTIM_TYPE_INT, 5, "5", 1, 100, 0, 0, "Newton-Schulz iterations"},
  {"ns_coefficients", OPTIM_TYPE_STRING, 0, "muon", 0, 0, 0, NS_COEF_CHOICES,
   "Newton-Schulz coefficients (see muon)"},
  NS_PRECISION_HP,
  {"variant", OPTIM_TYPE_STRING, 0, "reference", 0, 0, 0, "reference|paper",
   "reference: the authors' code (norm restore, Muon's shape scale); paper: "
   "update scaled to RMS 0.2*lr (2-D and 3-D tensors)"},
  {"nonmatrix", OPTIM_TYPE_STRING, 0, "error", 0, 0, HP_LAYOUT, "error|adamw",
   "tensors of fewer than 2 dims: error (refused) or adamw (the auxiliary AdamW)"},
  AUX_ADAMW_HPS,
};

static int is_matrix(const optim_group *g, const optim_param *p)
{
  (void)g;
  return p->ndim >= 2;
}

static int accept(const optim_group *g, const optim_param *p, char *msg, size_t size)
{
  int st = optim__matrix_accept(p, p->ndim >= 2, hp_i(g, NONMATRIX) == NONMATRIX_ADAMW,
                                "normuon", "matrices (2-D, 3-D batches, 4-D convolutions)", msg,
                                size);
  if (st == OPTIM_OK && p->ndim == 4 && hp_i(g, VARIANT) == VARIANT_PAPER) {
    snprintf(msg, size,
             "normuon: '%s' is 4-D; variant=paper is defined for matrices and batches of "
             "them (use variant=reference, which normalizes conv weights as the authors' "
             "code does)",
             p->name);
    return OPTIM_EUNSUPPORTED;
  }
  return st;
}

static void layout(const optim_group *g, const optim_param *p, state_layout *out)
{
  (void)g;
  if (p->ndim < 2) {
    optim__aux_layout(out);
    return;
  }
  out->name[0] = "step";
  out->kind[0] = OPTIM_STATE_SCALAR;
  out->name[1] = "momentum_buffer";
  out->kind[1] = OPTIM_STATE_BUFFER;
  /* one value per row of the last dim (torch shape p[..., 0:1]) */
  out->name[2] = "second_moment";
  out->kind[2] = OPTIM_STATE_BUFFER;
  out->count[2] = p->numel / (size_t)p->shape[p->ndim - 1];
  out->n = 3;
}

static size_t workspace(const optim_group *g, const optim_param *p)
{
  int64_t batch, rows, cols;
  optim__matrix_view(p, &batch, &rows, &cols);
  return p->numel * optim__dtype_size(p->dtype) + 64 +
         optim__ns_workspace(rows, cols, optim__ns_prec(hp_i(g, NS_PRECISION), p->dtype));
}

static void prepare(const optim_group *g, optim_param *p)
{
  int64_t t = ++optim__state_get(p, "step")->scalar;
  if (p->ndim < 2) optim__aux_prepare(g, p, A_LR, t, 1);
}

static void kernel(const optim_group *g, const optim_param *p, size_t b, size_t e)
{
  (void)g;
  optim__aux_kernel(p, b, e);
}

/* EMA momentum in the mul/add form of the paper: M = beta*M + (1-beta)*G. */
#define PAPER_MOMENTUM(T, SFX)                                                       \
  static void paper_momentum_##SFX(T *restrict m, const T *restrict g, T *restrict u, \
                                   size_t n, double beta, int zero, double gscale)   \
  {                                                                                  \
    const T b = (T)beta, a = (T)(1 - beta), gs = (T)gscale;                          \
    for (size_t i = 0; i < n; i++) {                                                 \
      T gi = g ? OPTIM_GRAD(T, g, i, zero) * gs : (T)0;                              \
      T mi = m[i] * b + a * gi;                                                      \
      m[i] = mi;                                                                     \
      u[i] = mi;                                                                     \
    }                                                                                \
  }

/* Row normalization of O (blocks of S x L, the parameter's last two dims):
 *   reference: n0 = |O|_F per block; v = lerp(v, mean_row(O^2), 1-beta2);
 *              O /= sqrt(v) + eps; O *= n0 / (|O|_F + eps); O *= scale;
 *   paper:     v as above; O /= sqrt(v) + eps; O *= 0.2 sqrt(S L) / |O|_F;
 * then p = p*decay - lr*O. */
#define NORMALIZE(T, SFX, SQRT)                                                         \
  static void normalize_##SFX(T *restrict o, T *restrict v, T *restrict p, size_t blocks, \
                              size_t S, size_t L, double beta2, double eps, int paper,  \
                              double scale, double lr, double decay)                    \
  {                                                                                     \
    const T w = (T)(1 - beta2), wc = (T)1 - w, e = (T)eps, d = (T)decay, a = (T)-lr;      \
    for (size_t j = 0; j < blocks; j++) {                                               \
      T *ob = o + j * S * L, *pb = p + j * S * L, *vb = v + j * S;                       \
      double n0 = 0, n1 = 0;                                                            \
      for (size_t i = 0; i < S * L; i++) n0 += (double)ob[i] * (double)ob[i];             \
      for (size_t r = 0; r < S; r++) {                                                  \
        double ss = 0;                                                                  \
        for (size_t l = 0; l < L; l++) ss += (double)ob[r * L + l] * (double)ob[r * L + l]; \
        T mean = (T)(ss / (double)L);                                                   \
        T vr = LERP(vb[r], mean, w, wc);                                                \
        vb[r] = vr;                                                                     \
        T rden = (T)1 / (SQRT(vr) + e); /* the reference multiplies by 1/(...) */       \
        for (size_t l = 0; l < L; l++) {                                                \
          T x = ob[r * L + l] * rden;                                                   \
          ob[r * L + l] = x;                                                            \
          n1 += (double)x * (double)x;                                                  \
        }                                                                               \
      }                                                                                 \
      /* (paper: a zero O, from a zero momentum, stays zero instead of 0 * inf) */     \
      T f = paper ? (n1 > 0 ? (T)(0.2 * sqrt((double)(S * L)) / sqrt(n1)) : (T)0)       \
                  : (T)((T)sqrt(n0) / ((T)sqrt(n1) + e));                               \
      const T sc = (T)scale;                                                            \
      for (size_t i = 0; i < S * L; i++) {                                              \
        T x = paper ? ob[i] * f : (ob[i] * f) * sc;                                     \
        T pi = pb[i] * d;                                                               \
        pb[i] = pi + a * x;                                                             \
      }                                                                                 \
    }                                                                                   \
  }

PAPER_MOMENTUM(float, f32)
PAPER_MOMENTUM(double, f64)
NORMALIZE(float, f32, sqrtf)
NORMALIZE(double, f64, sqrt)

static double cost(const optim_group *g, const optim_param *p)
{
  int64_t batch, rows, cols;
  optim__matrix_view(p, &batch, &rows, &cols);
  return (double)batch * optim__ns_flops(rows, cols, (int)hp_i(g, NS_STEPS));
}

static int param_step(const optim_group *g, optim_param *p, void *work)
{
  int64_t batch, rows, cols;
  optim__matrix_view(p, &batch, &rows, &cols);
  size_t ubytes = p->numel * optim__dtype_size(p->dtype);
  void *u = work;
  void *nswork = (char *)work + ((ubytes + 63) & ~(size_t)63);
  int paper = hp_i(g, VARIANT) == VARIANT_PAPER;
  double beta = hp_d(g, MOMENTUM), lr = hp_d(g, LR), wd = optim__wd(g, p, WEIGHT_DECAY);
  if (!paper)
    optim__momentum_lerp(p->dtype, p->state[1].buf, p->grad, u, p->numel, beta,
                         (int)hp_i(g, NESTEROV), p->zero_nonfinite, p->gscale);
  else if (p->dtype == OPTIM_FLOAT32)
    paper_momentum_f32(p->state[1].buf, p->grad, u, p->numel, beta, p->zero_nonfinite,
                       p->gscale);
  else
    paper_momentum_f64(p->state[1].buf, p->grad, u, p->numel, beta, p->zero_nonfinite,
                       p->gscale);
  optim__ns(p->dtype, optim__ns_prec(hp_i(g, NS_PRECISION), p->dtype), u, u, batch, rows,
            cols, (int)hp_i(g, NS_STEPS), (int)hp_i(g, NS_COEFFICIENTS), nswork);
  /* Normalization over the parameter's own last two dims (a conv weight's
   * rows are its (out, in, kh) rows of kw taps, as in the authors' code). */
  size_t L = (size_t)p->shape[p->ndim - 1], S = (size_t)p->shape[p->ndim - 2];
  size_t blocks = p->numel / (S * L);
  /* The reference skips weight decay when the gradient was missing. */
  double decay = p->grad ? 1 - lr * wd : 1;
  double scale = optim__muon_scale(p);
  if (p->dtype == OPTIM_FLOAT32)
    normalize_f32(u, p->state[2].buf, p->data, blocks, S, L, hp_d(g, BETA2), hp_d(g, EPS),
                  paper, scale, lr, decay);
  else
    normalize_f64(u, p->state[2].buf, p->data, blocks, S, L, hp_d(g, BETA2), hp_d(g, EPS),
                  paper, scale, lr, decay);
  return 0;
}

const optim_alg optim__alg_normuon = {
  .name = "normuon",
  .doc = "NorMuon: Muon with per-neuron second-moment normalization (zichongli5/NorMuon)",
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
  .missing_grad_zero = 1,
};
