/* shampoo.c - Shampoo: Kronecker-factored preconditioning (Gupta, Koren
 * and Singer 2018), blocked, with the step size grafted onto Adam or SGD
 * (Anil et al. 2020; Shi et al. 2023).  No reference code is available
 * here: liboptim(3) specifies the rule, and tests/golden/gen_shampoo.py
 * implements that specification independently.
 *
 * A parameter of order k is cut into blocks of at most block_size along
 * every dim; block B keeps for each dim i a factor F (b_i x b_i, a sum or
 * an EMA of G_(i) G_(i)^T) and its inverse root H = (F + eps I)^(-1/(2k)),
 * recomputed every update_freq steps from an eigendecomposition (LAPACK
 * syevd in the parameter's precision, retried in float64; if that fails
 * the parameter's step changes nothing and counts as failed).  The
 * preconditioned block G x_0 H_0 x_1 H_1 ... takes the Frobenius norm of
 * the grafted direction's block (Adam's g / (sqrt(v_hat) + eps), or g),
 * then momentum and decoupled weight decay apply to the whole tensor. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "optim-internal.h"
#include "tensor.h"

enum { LR, BETA1, BETA2, EPS, UPDATE_FREQ, BLOCK_SIZE, GRAFTING, GRAFT_BETA2, GRAFT_EPS,
       WEIGHT_DECAY, NESTEROV };
enum { GRAFT_ADAM = 0, GRAFT_SGD = 1, GRAFT_NONE = 2 };

static const hp_desc hps[] = {
  {"lr", OPTIM_TYPE_DOUBLE, 1e-3, "1e-3", 0, INFINITY, 0, 0, "learning rate"},
  {"beta1", OPTIM_TYPE_DOUBLE, 0.9, "0.9", 0, 1, HP_HI_OPEN, 0,
   "momentum (EMA) of the grafted, preconditioned direction; 0: none"},
  {"beta2", OPTIM_TYPE_DOUBLE, 1, "1", 0, 1, 0, 0,
   "factor decay: 1 sums G G^T over the steps (the original Shampoo), < 1 is an EMA"},
  {"eps", OPTIM_TYPE_DOUBLE, 1e-12, "1e-12", 0, INFINITY, 0, 0,
   "added to each factor's eigenvalues (clipped at 0) before the inverse root"},
  {"update_freq", OPTIM_TYPE_INT, 10, "10", 1, 1e9, 0, 0,
   "steps between inverse-root computations (at steps 1, 1 + f, 1 + 2f, ...)"},
  {"block_size", OPTIM_TYPE_INT, 1024, "1024", 1, 1e9, HP_LAYOUT | HP_REINIT, 0,
   "dims larger than this are cut into blocks of at most this size, each "
   "preconditioned on its own"},
  {"grafting", OPTIM_TYPE_STRING, 0, "adam", 0, 0, HP_LAYOUT | HP_REINIT, "adam|sgd|none",
   "per-block step size: the norm of Adam's direction (adam), of the gradient "
   "(sgd), or Shampoo's own (none)"},
  {"graft_beta2", OPTIM_TYPE_DOUBLE, 0.999, "0.999", 0, 1, HP_HI_OPEN, 0,
   "decay of the Adam grafting's second moment"},
  {"graft_eps", OPTIM_TYPE_DOUBLE, 1e-8, "1e-8", 0, INFINITY, 0, 0,
   "added to the Adam grafting's bias-corrected root second moment"},
  {"weight_decay", OPTIM_TYPE_DOUBLE, 0, "0", 0, INFINITY, 0, 0,
   "decoupled weight decay: param *= 1 - lr * weight_decay"},
  {"nesterov", OPTIM_TYPE_BOOL, 0, "false", 0, 1, 0, 0,
   "update with beta1 * m + (1 - beta1) * P instead of m"},
};

/* The blocks of a parameter. */
typedef struct blocks {
  int k;
  size_t d[OPTIM_MAX_DIMS], nb[OPTIM_MAX_DIMS], bs;
  size_t count;                  /* blocks */
  size_t factor;                 /* sum over blocks and dims of b_i^2 */
  size_t bmax, bnumel;           /* largest block dim; largest block */
} blocks;

static void blocks_of(const optim_group *g, const optim_param *p, blocks *b)
{
  memset(b, 0, sizeof *b);
  b->k = p->ndim;
  b->bs = (size_t)hp_i(g, BLOCK_SIZE);
  b->count = 1;
  b->bnumel = 1;
  for (int i = 0; i < p->ndim; i++) {
    b->d[i] = (size_t)p->shape[i];
    b->nb[i] = (b->d[i] + b->bs - 1) / b->bs;
    b->count *= b->nb[i];
    size_t m = b->d[i] < b->bs ? b->d[i] : b->bs;
    if (m > b->bmax) b->bmax = m;
    b->bnumel *= m;
    /* sum over the pieces of dim i of piece^2, times the blocks of the others */
    size_t full = b->d[i] / b->bs, rest = b->d[i] % b->bs;
    size_t sq = full * b->bs * b->bs + rest * rest, others = 1;
    for (int j = 0; j < p->ndim; j++)
      if (j != i) others *= ((size_t)p->shape[j] + b->bs - 1) / b->bs;
    b->factor += sq * others;
  }
}

/* Block number q (row-major over block indices): offsets and sizes. */
static void block_at(const blocks *b, size_t q, size_t *off, tview *tv)
{
  tv->k = b->k;
  for (int i = b->k - 1; i >= 0; i--) {
    size_t c = q % b->nb[i];
    q /= b->nb[i];
    off[i] = c * b->bs;
    tv->d[i] = b->d[i] - off[i] < b->bs ? b->d[i] - off[i] : b->bs;
  }
}

enum { S_STEP, S_FACTORS, S_ROOTS, S_M, S_V };

static void layout(const optim_group *g, const optim_param *p, state_layout *out)
{
  blocks b;
  blocks_of(g, p, &b);
  static const char *const names[] = {"step", "factors", "roots", "exp_avg", "exp_avg_sq"};
  out->n = hp_i(g, GRAFTING) == GRAFT_ADAM ? 5 : 4;
  for (int k = 0; k < out->n; k++) {
    out->name[k] = names[k];
    out->kind[k] = k == 0 ? OPTIM_STATE_SCALAR : OPTIM_STATE_BUFFER;
    out->count[k] = k == S_FACTORS || k == S_ROOTS ? b.factor : 0;
  }
}

static size_t workspace(const optim_group *g, const optim_param *p)
{
  blocks b;
  blocks_of(g, p, &b);
  size_t es = optim__dtype_size(p->dtype), n = p->numel, m = b.bmax;
  /* new factors and roots; P and D (numel); a block and its product
   * (two); the eigendecomposition's matrix, scaled copy and eigenvalues */
  return es * (2 * b.factor + 2 * n + 3 * b.bnumel + 2 * m * m + m) + 16 * 64;
}

/* Per step: the Gram products and the mode products of every block (about
 * 3 b_i flops per element and dim), the grafting and the update, and the
 * inverse roots (~ 10 b^3 each) every update_freq steps. */
static double cost(const optim_group *g, const optim_param *p)
{
  blocks b;
  blocks_of(g, p, &b);
  double c = 12.0 * (double)p->numel;
  for (int i = 0; i < b.k; i++) {
    double bi = (double)(b.d[i] < b.bs ? b.d[i] : b.bs);
    c += 6 * bi * (double)p->numel;
  }
  return c + 10.0 * (double)b.factor * (double)b.bmax / (double)hp_i(g, UPDATE_FREQ);
}

#define ROOT_IMPL(T, SFX, GEMM)                                                             \
  /* H = V diag((max(lam, 0) + eps)^pw) V^T for the symmetric F (d x d), from an       \
   * eigendecomposition in precision T; A, S: d x d, lam: d. */                            \
  static int root_##SFX(const void *F, int ftype, size_t d, double eps, double pw, T *H,    \
                        T *A, T *S, T *lam)                                                 \
  {                                                                                         \
    for (size_t i = 0; i < d * d; i++)                                                      \
      A[i] = ftype == OPTIM_FLOAT32 ? (T)((const float *)F)[i] : (T)((const double *)F)[i]; \
    if (optim__syevd_##SFX(A, d, lam) != 0) return -1;                                            \
    for (size_t j = 0; j < d; j++) {                                                        \
      double l = (double)lam[j] > 0 ? (double)lam[j] : 0;                                   \
      T f = (T)pow(l + eps, pw);                                                            \
      for (size_t i = 0; i < d; i++) S[j * d + i] = A[j * d + i] * f;                       \
    }                                                                                       \
    /* rows of A are the eigenvectors: H = A^T diag(f) A */                                 \
    GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)d, (int)d, (int)d, 1, A, (int)d, S,  \
         (int)d, 0, H, (int)d);                                                             \
    for (size_t i = 0; i < d * d; i++)                                                      \
      if (!isfinite(H[i])) return -1;                                                       \
    return 0;                                                                               \
  }
ROOT_IMPL(float, f32, cblas_sgemm)
ROOT_IMPL(double, f64, cblas_dgemm)

/* The inverse root of a factor of element type T (the parameter's): in T,
 * retried in float64 (with malloc'ed scratch) for a float32 parameter. */
static int inverse_root(int dtype, const void *F, size_t d, double eps, double pw, void *H,
                        void *A, void *S, void *lam)
{
  if (dtype == OPTIM_FLOAT64) return root_f64(F, dtype, d, eps, pw, H, A, S, lam);
  if (root_f32(F, dtype, d, eps, pw, H, A, S, lam) == 0) return 0;
  double *buf = malloc((3 * d * d + d) * sizeof *buf);
  if (!buf) return -1;
  int st = root_f64(F, dtype, d, eps, pw, buf + 2 * d * d, buf, buf + d * d, buf + 3 * d * d);
  for (size_t i = 0; st == 0 && i < d * d; i++) ((float *)H)[i] = (float)buf[2 * d * d + i];
  free(buf);
  return st;
}

/* Copy block (off, tv) of the tensor X (dims b->d) to Y (contiguous), or
 * back (to_tensor). */
#define BLOCK_COPY_IMPL(T, SFX)                                                             \
  static void block_copy_##SFX(const blocks *b, const size_t *off, const tview *tv, T *X,   \
                               T *Y, int to_tensor)                                         \
  {                                                                                         \
    size_t idx[OPTIM_MAX_DIMS] = {0}, inner = tv->d[b->k - 1], rows = 1;                    \
    for (int i = 0; i < b->k - 1; i++) rows *= tv->d[i];                                    \
    for (size_t r = 0; r < rows; r++) {                                                     \
      size_t src = 0;                                                                       \
      for (int i = 0; i < b->k; i++) src = src * b->d[i] + off[i] + idx[i];                 \
      if (to_tensor) memcpy(X + src, Y + r * inner, inner * sizeof(T));                     \
      else memcpy(Y + r * inner, X + src, inner * sizeof(T));                               \
      for (int i = b->k - 2; i >= 0; i--) { /* next row index, last dims fastest */         \
        if (++idx[i] < tv->d[i]) break;                                                     \
        idx[i] = 0;                                                                         \
      }                                                                                     \
    }                                                                                       \
  }
BLOCK_COPY_IMPL(float, f32)
BLOCK_COPY_IMPL(double, f64)

#define SHAMPOO_IMPL(T, SFX, SQRT)                                                            \
  static int shampoo_##SFX(const optim_group *g, optim_param *p, void *work)                  \
  {                                                                                           \
    blocks b;                                                                                 \
    blocks_of(g, p, &b);                                                                      \
    const size_t n = p->numel, m = b.bmax;                                                    \
    const int graft = (int)hp_i(g, GRAFTING);                                                 \
    const double beta2 = hp_d(g, BETA2), eps = hp_d(g, EPS), lr = hp_d(g, LR);               \
    const int64_t t = p->state[S_STEP].scalar + 1;                                            \
    const int refresh = (t - 1) % hp_i(g, UPDATE_FREQ) == 0;                                  \
    const double pw = -1.0 / (2.0 * (double)b.k);                                             \
    char *w = work;                                                                           \
    T *Fn = optim__carve(&w, b.factor * sizeof(T)), *Hn = optim__carve(&w, b.factor * sizeof(T));          \
    T *P = optim__carve(&w, n * sizeof(T)), *D = optim__carve(&w, n * sizeof(T));                           \
    T *X = optim__carve(&w, b.bnumel * sizeof(T)), *Y = optim__carve(&w, b.bnumel * sizeof(T));             \
    T *Z = optim__carve(&w, b.bnumel * sizeof(T));                                                   \
    T *A = optim__carve(&w, m * m * sizeof(T)), *S = optim__carve(&w, m * m * sizeof(T));                   \
    T *lam = optim__carve(&w, m * sizeof(T));                                                        \
    T *W = p->data, *mom = p->state[S_M].buf, *v = graft == GRAFT_ADAM ? p->state[S_V].buf : NULL; \
    const T *F = p->state[S_FACTORS].buf, *H = p->state[S_ROOTS].buf;                         \
    const T *gr = p->grad, gs = (T)p->gscale;                                                 \
    T *G = D; /* the scaled gradient lives in D until the grafted direction replaces it */   \
    for (size_t e = 0; e < n; e++) G[e] = OPTIM_GRAD(T, gr, e, p->zero_nonfinite) * gs;        \
    /* factors, then (every update_freq steps) their inverse roots */                        \
    const T b2 = (T)beta2, a2 = (T)(1 - beta2);                                               \
    size_t off[OPTIM_MAX_DIMS], fo = 0;                                                       \
    tview tv;                                                                                 \
    for (size_t q = 0; q < b.count; q++) {                                                    \
      block_at(&b, q, off, &tv);                                                              \
      block_copy_##SFX(&b, off, &tv, G, X, 0);                                                \
      for (int i = 0; i < b.k; i++) {                                                         \
        size_t d = tv.d[i];                                                                   \
        optim__mode_gram_##SFX(&tv, i, X, A);                                                 \
        for (size_t e = 0; e < d * d; e++)                                                    \
          Fn[fo + e] = beta2 == 1 ? F[fo + e] + A[e] : F[fo + e] * b2 + a2 * A[e];            \
        /* an overflowed factor is never stored (optim__factor_may_overflow) */             \
        if (optim__nonfinite(p->dtype, Fn + fo, 0, d * d)) return -1;                         \
        if (refresh && inverse_root(p->dtype, Fn + fo, d, eps, pw, Hn + fo, A, S, lam) != 0)   \
          return -1; /* nothing is committed yet */                                          \
        fo += d * d;                                                                          \
      }                                                                                       \
    }                                                                                         \
    const T *Hu = refresh ? Hn : H;                                                           \
    /* the preconditioned blocks, into P */                                                   \
    fo = 0;                                                                                   \
    for (size_t q = 0; q < b.count; q++) {                                                    \
      block_at(&b, q, off, &tv);                                                              \
      block_copy_##SFX(&b, off, &tv, G, X, 0);                                                \
      const T *in = X;                                                                        \
      T *out = Y;                                                                             \
      for (int i = 0; i < b.k; i++) {                                                         \
        optim__mode_mul_##SFX(&tv, i, Hu + fo, 0, in, out);                                   \
        fo += tv.d[i] * tv.d[i];                                                              \
        in = out;                                                                             \
        out = out == Y ? Z : Y;                                                               \
      }                                                                                       \
      block_copy_##SFX(&b, off, &tv, P, (T *)in, 1);                                          \
    }                                                                                         \
    /* the grafted direction (replacing G in D), and each block's norms */                   \
    const T gb2 = (T)hp_d(g, GRAFT_BETA2), ga2 = (T)(1 - hp_d(g, GRAFT_BETA2));               \
    const T bc = (T)(1 - pow(hp_d(g, GRAFT_BETA2), (double)t)), geps = (T)hp_d(g, GRAFT_EPS);  \
    if (graft == GRAFT_ADAM)                                                                  \
      for (size_t e = 0; e < n; e++) {                                                        \
        T vi = v[e] * gb2 + ga2 * (G[e] * G[e]);                                              \
        D[e] = G[e] / (SQRT(vi / bc) + geps);                                                 \
      }                                                                                       \
    if (graft != GRAFT_NONE)                                                                  \
      for (size_t q = 0; q < b.count; q++) {                                                  \
        block_at(&b, q, off, &tv);                                                            \
        size_t bn = optim__tview_numel(&tv);                                                  \
        block_copy_##SFX(&b, off, &tv, P, X, 0);                                              \
        block_copy_##SFX(&b, off, &tv, D, Y, 0);                                              \
        double sp = 0, sd = 0;                                                                \
        for (size_t e = 0; e < bn; e++) {                                                     \
          sp += (double)X[e] * (double)X[e];                                                  \
          sd += (double)Y[e] * (double)Y[e];                                                  \
        }                                                                                     \
        const T r = sp > 0 ? (T)(sqrt(sd) / sqrt(sp)) : (T)0;                                 \
        for (size_t e = 0; e < bn; e++) X[e] = X[e] * r;                                      \
        block_copy_##SFX(&b, off, &tv, P, X, 1);                                              \
      }                                                                                       \
    /* commit: factors, roots, the grafting moment, momentum, parameter */                   \
    memcpy(p->state[S_FACTORS].buf, Fn, b.factor * sizeof(T));                                \
    if (refresh) memcpy(p->state[S_ROOTS].buf, Hn, b.factor * sizeof(T));                     \
    const T b1 = (T)hp_d(g, BETA1), a1 = (T)(1 - hp_d(g, BETA1)), tlr = (T)lr;                \
    const int nest = (int)hp_i(g, NESTEROV), has_wd = optim__wd(g, p, WEIGHT_DECAY) > 0;              \
    const T decay = (T)(1 - lr * optim__wd(g, p, WEIGHT_DECAY));                                      \
    for (size_t e = 0; e < n; e++) {                                                          \
      if (v) {                                                                                \
        T gi = OPTIM_GRAD(T, gr, e, p->zero_nonfinite) * gs;                                  \
        v[e] = v[e] * gb2 + ga2 * (gi * gi);                                                  \
      }                                                                                       \
      T mi = mom[e] * b1 + a1 * P[e];                                                         \
      mom[e] = mi;                                                                            \
      T u = nest ? mi * b1 + a1 * P[e] : mi;                                                  \
      T x = has_wd ? W[e] * decay : W[e];                                                     \
      W[e] = x - tlr * u;                                                                     \
    }                                                                                         \
    p->state[S_STEP].scalar = t;                                                              \
    return 0;                                                                                 \
  }

SHAMPOO_IMPL(float, f32, sqrtf)
SHAMPOO_IMPL(double, f64, sqrt)

static int param_step(const optim_group *g, optim_param *p, void *work)
{
  return p->dtype == OPTIM_FLOAT32 ? shampoo_f32(g, p, work) : shampoo_f64(g, p, work);
}

/* A step that computes the inverse roots, or whose factors may overflow. */
static int fallible(const optim_group *g, const optim_param *p)
{
  return p->state[S_STEP].scalar % hp_i(g, UPDATE_FREQ) == 0 || optim__factor_may_overflow(p);
}

const optim_alg optim__alg_shampoo = {
  .name = "shampoo",
  .doc = "Shampoo: blocked Kronecker-factored preconditioning with Adam or SGD grafting",
  .hp = hps,
  .nhp = (int)(sizeof hps / sizeof hps[0]),
  .layout = layout,
  .prepare = optim__no_prepare,
  .kernel = optim__no_kernel,
  .whole = optim__whole_always,
  .param_step = param_step,
  .workspace = workspace,
  .cost = cost,
  .fallible = fallible,
};
