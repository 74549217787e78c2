/* fismo.c - FISMO: Fisher-preconditioned orthogonalized momentum.
 *
 * No reference code exists; this follows the method as described (spec §6):
 * Kronecker factors P (m x m) and Q (n x n) of the empirical Fisher, updated
 * Gauss-Seidel style with trace normalisation and damping,
 *   L = G Q^-1 G^T / n + damping (tr P / m) I;  P = sym(m P~ / tr P~),
 *       P~ = fisher_beta P + (1 - fisher_beta) L
 *   R = G^T P^-1 G / m + damping (tr Q / n) I;  Q likewise with the new P,
 * momentum in the whitened space, M = momentum M + (1 - momentum) P^-1/2 G Q^-1/2,
 * and the update dW = P^-1/2 NS(M) Q^-1/2, applied as Muon applies its own
 * (decoupled decay, Muon's reference shape scale).  Choices the method
 * leaves open, documented in liboptim(3): P and Q start at the identity;
 * inverses and inverse square roots come from the eigendecomposition (LAPACK
 * syevd) with eigenvalues floored at 1e-30 relative; a missing gradient
 * skips the parameter.  With fisher_beta = 1, P = Q = I forever and FISMO is
 * Muon without Nesterov on the raw gradient. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "matrix.h"
#include "ns.h"
#include "tensor.h"

enum { LR, MOMENTUM, FISHER_BETA, DAMPING, WEIGHT_DECAY, NS_STEPS, NS_COEFFICIENTS,
       NS_PRECISION, NONMATRIX, A_LR };
enum { NONMATRIX_ERROR = 0, NONMATRIX_ADAMW = 1 };

static const hp_desc hps[] = {
  {"lr", OPTIM_TYPE_DOUBLE, 0.02, "0.02", 0, INFINITY, 0, 0, "learning rate"},
  {"momentum", OPTIM_TYPE_DOUBLE, 0.95, "0.95", 0, 1, HP_HI_OPEN, 0,
   "EMA momentum of the whitened gradient"},
  {"fisher_beta", OPTIM_TYPE_DOUBLE, 0.95, "0.95", 0, 1, 0, 0,
   "EMA decay of the Fisher factors P and Q (1 keeps them at the identity)"},
  {"damping", OPTIM_TYPE_DOUBLE, 1e-3, "1e-3", 0, INFINITY, 0, 0,
   "damping added to each factor, times its mean eigenvalue (trace / size)"},
  {"weight_decay", OPTIM_TYPE_DOUBLE, 0, "0", 0, INFINITY, 0, 0,
   "decoupled weight decay: param *= 1 - lr * weight_decay"},
  {"ns_steps", OPTIM_TYPE_INT, 5, "5", 1, 100, 0, 0, "Newton-Schulz iterations"},
  {"ns_coefficients", OPTIM_TYPE_STRING, 0, "muon", 0, 0, 0, NS_COEF_CHOICES,
   "Newton-Schulz coefficients (see muon)"},
  NS_PRECISION_HP,
  {"nonmatrix", OPTIM_TYPE_STRING, 0, "error", 0, 0, HP_LAYOUT, "error|adamw",
   "tensors that are not 2-D: error (refused) or adamw (the auxiliary AdamW)"},
  AUX_ADAMW_HPS,
};

static int is_matrix(const optim_group *g, const optim_param *p)
{
  (void)g;
  return p->ndim == 2;
}

static int accept(const optim_group *g, const optim_param *p, char *msg, size_t size)
{
  return optim__matrix_accept(p, p->ndim == 2, hp_i(g, NONMATRIX) == NONMATRIX_ADAMW, "fismo",
                              "2-D matrices only", msg, size);
}

static void layout(const optim_group *g, const optim_param *p, state_layout *out)
{
  (void)g;
  if (p->ndim != 2) {
    optim__aux_layout(out);
    return;
  }
  size_t m = (size_t)p->shape[0], n = (size_t)p->shape[1];
  out->name[0] = "step";
  out->kind[0] = OPTIM_STATE_SCALAR;
  out->name[1] = "momentum_buffer";
  out->kind[1] = OPTIM_STATE_BUFFER;
  out->name[2] = "fisher_left";
  out->kind[2] = OPTIM_STATE_BUFFER;
  out->count[2] = m * m;
  out->name[3] = "fisher_right";
  out->kind[3] = OPTIM_STATE_BUFFER;
  out->count[3] = n * n;
  out->n = 4;
}

/* P and Q start at the identity. */
static void init_state(const optim_group *g, optim_param *p)
{
  (void)g;
  if (p->ndim != 2) return;
  for (int k = 2; k <= 3; k++) {
    size_t d = (size_t)p->shape[k - 2];
    for (size_t i = 0; i < d; i++) {
      if (p->dtype == OPTIM_FLOAT32) ((float *)p->state[k].buf)[i * d + i] = 1;
      else ((double *)p->state[k].buf)[i * d + i] = 1;
    }
  }
}

static size_t workspace(const optim_group *g, const optim_param *p)
{
  size_t m = (size_t)p->shape[0], n = (size_t)p->shape[1], es = optim__dtype_size(p->dtype);
  size_t big = m > n ? m : n;
  /* G, T (m x n) x3; two d x d eigenvector and two root matrices; eigenvalues;
   * NS workspace */
  return es * (3 * m * n + 6 * big * big + 2 * big) + 16 * 64 +
         optim__ns_workspace(p->shape[0], p->shape[1],
                             optim__ns_prec(hp_i(g, NS_PRECISION), p->dtype));
}

/* Matrices count their step when it is committed (param_step), so that a
 * failed eigendecomposition leaves the step count as it was too. */
static void prepare(const optim_group *g, optim_param *p)
{
  if (p->ndim == 2) return;
  int64_t t = ++optim__state_get(p, "step")->scalar;
  optim__aux_prepare(g, p, A_LR, t, 0);
}

static void kernel(const optim_group *g, const optim_param *p, size_t b, size_t e)
{
  (void)g;
  optim__aux_kernel(p, b, e);
}

/* FISMO's matrix step in precision T (the parameter's). */
#define FISMO_IMPL(T, SFX, GEMM, SYEVD, SQRT)                                                \
  /* out = V diag(f(lambda)) V^T for symmetric A (d x d, destroyed into V);            \
   * pw = -1 for the inverse, -0.5 for the inverse square root. */                      \
  static int spd_power_##SFX(T *A, size_t d, double pw, T *out, T *tmp, T *lam)          \
  {                                                                                      \
    if (SYEVD(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)d, A, (lapack_int)d, lam) != 0)    \
      return -1;                                                                         \
    T top = lam[d - 1] > 0 ? lam[d - 1] : (T)1;                                          \
    for (size_t j = 0; j < d; j++) {                                                     \
      T l = lam[j] > top * (T)1e-30 ? lam[j] : top * (T)1e-30;                           \
      T f = (T)pow((double)l, pw);                                                       \
      for (size_t i = 0; i < d; i++) tmp[i * d + j] = A[i * d + j] * f;                  \
    }                                                                                    \
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)d, (int)d, (int)d, 1, tmp, (int)d, \
         A, (int)d, 0, out, (int)d);                                                     \
    return 0;                                                                            \
  }                                                                                      \
  /* F = sym(d F~ / tr F~), F~ = beta F + (1 - beta) (S / other + damp tr(F)/d I). */    \
  static void factor_update_##SFX(T *F, const T *S, size_t d, double scale_s,            \
                                  double beta, double damping)                           \
  {                                                                                      \
    double tr = 0, trn = 0;                                                              \
    for (size_t i = 0; i < d; i++) tr += F[i * d + i];                                   \
    double damp = damping * tr / (double)d;                                              \
    for (size_t i = 0; i < d; i++)                                                       \
      for (size_t j = 0; j < d; j++) {                                                   \
        double l = (double)S[i * d + j] * scale_s + (i == j ? damp : 0);                 \
        F[i * d + j] = (T)(beta * (double)F[i * d + j] + (1 - beta) * l);                \
      }                                                                                  \
    for (size_t i = 0; i < d; i++) trn += F[i * d + i];                                  \
    double f = (double)d / trn;                                                          \
    for (size_t i = 0; i < d; i++)                                                       \
      for (size_t j = i; j < d; j++) {                                                   \
        T v = (T)(0.5 * f * ((double)F[i * d + j] + (double)F[j * d + i]));               \
        F[i * d + j] = v;                                                                \
        F[j * d + i] = v;                                                                \
      }                                                                                  \
  }                                                                                      \
  static int fismo_##SFX(const optim_group *g, optim_param *p, void *work)               \
  {                                                                                      \
    const size_t m = (size_t)p->shape[0], n = (size_t)p->shape[1], big = m > n ? m : n;  \
    const double beta = hp_d(g, MOMENTUM), fb = hp_d(g, FISHER_BETA);                    \
    const double damping = hp_d(g, DAMPING), lr = hp_d(g, LR);                           \
    char *w = work;                                                                      \
    T *G = optim__carve(&w, m * n * sizeof(T)), *T1 = optim__carve(&w, m * n * sizeof(T));             \
    T *T2 = optim__carve(&w, m * n * sizeof(T));                                                \
    T *V = optim__carve(&w, big * big * sizeof(T)), *Tmp = optim__carve(&w, big * big * sizeof(T));    \
    T *Pr = optim__carve(&w, m * m * sizeof(T)), *Qr = optim__carve(&w, n * n * sizeof(T));            \
    T *lam = optim__carve(&w, big * sizeof(T));                                                 \
    T *Pn = optim__carve(&w, m * m * sizeof(T)), *Qn = optim__carve(&w, n * n * sizeof(T));            \
    void *nswork = optim__carve(&w, 64);                                                        \
    T *M = p->state[1].buf, *W = p->data;                                                \
    /* new factors are built in Pn, Qn and committed with M and W at the end, \
     * so a failed eigendecomposition leaves everything as it was */         \
    T *P = Pn, *Q = Qn;                                                                  \
    memcpy(Pn, p->state[2].buf, m * m * sizeof(T));                                      \
    memcpy(Qn, p->state[3].buf, n * n * sizeof(T));                                      \
    const T *gr = p->grad;                                                               \
    for (size_t i = 0; i < m * n; i++) G[i] = OPTIM_GRAD(T, gr, i, p->zero_nonfinite) * (T)p->gscale; \
    /* L = G Q^-1 G^T / n (Q as it was), then P */                                      \
    memcpy(V, Q, n * n * sizeof(T));                                                     \
    if (spd_power_##SFX(V, n, -1, Qr, Tmp, lam) != 0) return -1;                         \
    GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)n, 1, G, (int)n, \
         Qr, (int)n, 0, T1, (int)n);                                                     \
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)m, (int)n, 1, T1, (int)n, \
         G, (int)n, 0, Pr, (int)m);                                                      \
    factor_update_##SFX(P, Pr, m, 1.0 / (double)n, fb, damping);                         \
    /* R = G^T P^-1 G / m with the new P, then Q */                                     \
    memcpy(V, P, m * m * sizeof(T));                                                     \
    if (spd_power_##SFX(V, m, -1, Pr, Tmp, lam) != 0) return -1;                         \
    GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)m, 1, Pr, (int)m, \
         G, (int)n, 0, T1, (int)n);                                                      \
    GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n, (int)n, (int)m, 1, G, (int)n,  \
         T1, (int)n, 0, Qr, (int)n);                                                     \
    factor_update_##SFX(Q, Qr, n, 1.0 / (double)m, fb, damping);                         \
    /* inverse square roots of the new factors */                                       \
    memcpy(V, P, m * m * sizeof(T));                                                     \
    if (spd_power_##SFX(V, m, -0.5, Pr, Tmp, lam) != 0) return -1;                       \
    memcpy(V, Q, n * n * sizeof(T));                                                     \
    if (spd_power_##SFX(V, n, -0.5, Qr, Tmp, lam) != 0) return -1;                       \
    /* M = beta M + (1 - beta) P^-1/2 G Q^-1/2 */                                       \
    GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)m, 1, Pr, (int)m, \
         G, (int)n, 0, T1, (int)n);                                                      \
    GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)n, 1, T1, (int)n, \
         Qr, (int)n, 0, T2, (int)n);                                                     \
    const T bt = (T)beta, a = (T)(1 - beta);                                             \
    for (size_t i = 0; i < m * n; i++) T1[i] = M[i] * bt + a * T2[i];                    \
    memcpy(M, T1, m * n * sizeof(T));                                                    \
    memcpy(p->state[2].buf, Pn, m * m * sizeof(T));                                      \
    memcpy(p->state[3].buf, Qn, n * n * sizeof(T));                                      \
    p->state[0].scalar++;                                                                \
    optim__ns(p->dtype, optim__ns_prec(hp_i(g, NS_PRECISION), p->dtype), T1, T1, 1,      \
              (int64_t)m, (int64_t)n, (int)hp_i(g, NS_STEPS),                            \
              (int)hp_i(g, NS_COEFFICIENTS), nswork);                                    \
    /* dW = P^-1/2 O Q^-1/2 */                                                          \
    GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)m, 1, Pr, (int)m, \
         T1, (int)n, 0, T2, (int)n);                                                     \
    GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)n, 1, T2, (int)n, \
         Qr, (int)n, 0, T1, (int)n);                                                     \
    optim__apply_update(p->dtype, W, T1, m * n, lr, 1 - lr * optim__wd(g, p, WEIGHT_DECAY),       \
                        optim__muon_scale(p));                                           \
    return 0;                                                                            \
  }

FISMO_IMPL(float, f32, cblas_sgemm, LAPACKE_ssyevd, sqrtf)
FISMO_IMPL(double, f64, cblas_dgemm, LAPACKE_dsyevd, sqrt)

/* NS on the whitened momentum, three eigendecompositions (about 9 d^3
 * each with vectors) and eight m x n x (m or n) products. */
static double cost(const optim_group *g, const optim_param *p)
{
  double m = (double)p->shape[0], n = (double)p->shape[1];
  return optim__ns_flops(p->shape[0], p->shape[1], (int)hp_i(g, NS_STEPS)) +
         9 * (2 * n * n * n + m * m * m) + 8 * m * n * (m + n);
}

static int param_step(const optim_group *g, optim_param *p, void *work)
{
  return p->dtype == OPTIM_FLOAT32 ? fismo_f32(g, p, work) : fismo_f64(g, p, work);
}

/* Every matrix step decomposes its factors. */
static int fallible(const optim_group *g, const optim_param *p)
{
  (void)g;
  return p->ndim == 2;
}

const optim_alg optim__alg_fismo = {
  .name = "fismo",
  .doc = "FISMO: Fisher-whitened orthogonalized momentum (Kronecker factors, NS polar)",
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
  .cost = cost,
  .fallible = fallible,
};
