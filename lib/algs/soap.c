/* soap.c - SOAP: Adam in the eigenbasis of Shampoo's preconditioner
 * (nikhilvyas/SOAP; spec section 5).
 *
 * Every parameter is viewed as a tensor of up to four dims (merged with
 * merge_dims); each dim i of size <= max_precond_dim (1-D tensors only with
 * precondition_1d) is "rotated": it keeps a Kronecker factor GG_i (d_i x d_i,
 * an EMA of G_(i) G_(i)^T, the gradient contracted with itself over every
 * other dim) and an orthonormal basis Q_i.  project(X) multiplies each
 * rotated mode by Q_i^T, project_back by Q_i.
 *
 *  first call:  GG_i = (1 - bs) G_(i)G_(i)^T; Q_i = eigenvectors of
 *               GG_i + 1e-30 I, by descending eigenvalue; nothing else
 *               (no update, step stays 0)
 *  later calls: t += 1; G' = project(G); m = b1 m + (1 - b1) G';
 *               v = b2 v + (1 - b2) G'^2;
 *               N = project_back(m / (sqrt(v) + eps)) [/ RMS(N) if normalize_grads];
 *               p -= lr sqrt(1 - b2^t) / (1 - b1^t) N   (lr without correct_bias);
 *               p -= lr wd p  (decay after the update);
 *               GG_i = lerp(GG_i, G_(i)G_(i)^T, 1 - bs);
 *               every precondition_frequency steps: sort Q_i's columns by
 *               diag(Q_i^T GG_i Q_i) (descending), reorder v along dim i the
 *               same way, Q_i = QR(GG_i Q_i) (one power iteration), and
 *               re-project m into the new basis.
 *
 * As in the reference, eigendecompositions and QR run in float32 also for
 * float64 parameters.  An eigendecomposition or QR that fails or returns
 * non-finite values is retried in float64; if that fails too, the step of
 * that parameter changes nothing and the group's "failed" counter counts
 * it.  Departures: m is re-projected on refresh steps only (the reference
 * round-trips it through project_back/project on every step, which changes
 * only rounding), and with stagger (the default) the k-th parameter of a
 * group refreshes when (t + k mod f) is a multiple of f, so that the
 * refreshes of different parameters fall on different steps (the first
 * parameter refreshes exactly as the reference does). */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <string.h>

#include "optim-internal.h"
#include "tensor.h"
#include "ns.h"

enum { LR, BETA1, BETA2, SHAMPOO_BETA, EPS, WEIGHT_DECAY, FREQ, MAX_DIM, MERGE_DIMS,
       PRECOND_1D, NORMALIZE, CORRECT_BIAS, STAGGER };

static const hp_desc hps[] = {
  {"lr", OPTIM_TYPE_DOUBLE, 3e-3, "3e-3", 0, INFINITY, 0, 0, "learning rate"},
  {"beta1", OPTIM_TYPE_DOUBLE, 0.95, "0.95", 0, 1, HP_HI_OPEN, 0,
   "decay rate of the first moment (in the rotated basis)"},
  {"beta2", OPTIM_TYPE_DOUBLE, 0.95, "0.95", 0, 1, HP_HI_OPEN, 0,
   "decay rate of the second moment (in the rotated basis)"},
  {"shampoo_beta", OPTIM_TYPE_DOUBLE, -1, "-1", -1, 1, HP_HI_OPEN, 0,
   "decay rate of the Kronecker factors; negative: beta2"},
  {"eps", OPTIM_TYPE_DOUBLE, 1e-8, "1e-8", 0, INFINITY, 0, 0,
   "added to the root second moment (before the bias correction: eps/sqrt(1-beta2^t) "
   "in Adam's placement)"},
  {"weight_decay", OPTIM_TYPE_DOUBLE, 0.01, "0.01", 0, INFINITY, 0, 0,
   "decoupled weight decay, applied after the update: param -= lr * weight_decay * param"},
  {"precondition_frequency", OPTIM_TYPE_INT, 10, "10", 1, 1e9, 0, 0,
   "steps between eigenbasis refreshes (power iteration + QR)"},
  {"max_precond_dim", OPTIM_TYPE_INT, 10000, "10000", 0, 1e9, HP_LAYOUT | HP_REINIT, 0,
   "dims larger than this are not rotated (no factor, identity basis)"},
  {"merge_dims", OPTIM_TYPE_BOOL, 0, "false", 0, 1, HP_LAYOUT | HP_REINIT, 0,
   "merge consecutive dims while their product stays <= max_precond_dim"},
  {"precondition_1d", OPTIM_TYPE_BOOL, 0, "false", 0, 1, HP_LAYOUT | HP_REINIT, 0,
   "rotate 1-D tensors too (otherwise SOAP is Adam on them)"},
  {"normalize_grads", OPTIM_TYPE_BOOL, 0, "false", 0, 1, 0, 0,
   "divide the update by its root mean square"},
  {"correct_bias", OPTIM_TYPE_BOOL, 1, "true", 0, 1, 0, 0,
   "step size lr * sqrt(1 - beta2^t) / (1 - beta1^t) instead of lr"},
  {"stagger", OPTIM_TYPE_BOOL, 1, "true", 0, 1, 0, 0,
   "spread the refreshes: the k-th parameter of the group refreshes at steps t with "
   "(t + k) mod precondition_frequency = 0 (false: every parameter at multiples of it, "
   "as the reference does)"},
};

/* The tensor SOAP sees: dims after merge_dims, and which are rotated. */
typedef struct view {
  int k;
  size_t d[OPTIM_MAX_DIMS];
  int rot[OPTIM_MAX_DIMS];
  size_t factor;                 /* sum of d_i^2 over rotated dims */
  size_t dmax;                   /* largest rotated dim */
} view;

static void view_of(const optim_group *g, const optim_param *p, view *v)
{
  const int64_t maxd = hp_i(g, MAX_DIM);
  memset(v, 0, sizeof *v);
  if (p->ndim > 1 && hp_i(g, MERGE_DIMS)) {
    /* the reference's merge: consecutive dims multiplied while the product
     * stays <= max_precond_dim */
    int64_t cur = 1;
    for (int i = 0; i < p->ndim; i++) {
      int64_t sh = p->shape[i], tmp = cur * sh;
      if (tmp > maxd) {
        if (cur > 1) {
          v->d[v->k++] = (size_t)cur;
          cur = sh;
        } else {
          v->d[v->k++] = (size_t)sh;
          cur = 1;
        }
      } else {
        cur = tmp;
      }
    }
    if (cur > 1 || v->k == 0) v->d[v->k++] = (size_t)cur;
  } else {
    v->k = p->ndim;
    for (int i = 0; i < p->ndim; i++) v->d[i] = (size_t)p->shape[i];
  }
  for (int i = 0; i < v->k; i++) {
    v->rot[i] = (int64_t)v->d[i] <= maxd && (p->ndim > 1 || hp_i(g, PRECOND_1D));
    if (v->rot[i]) {
      v->factor += v->d[i] * v->d[i];
      if (v->d[i] > v->dmax) v->dmax = v->d[i];
    }
  }
}

enum { S_STEP, S_INIT, S_SLOT, S_M, S_V, S_GG, S_Q };

static void layout(const optim_group *g, const optim_param *p, state_layout *out)
{
  view v;
  view_of(g, p, &v);
  static const char *const names[] = {"step",    "initialized", "stagger_slot", "exp_avg",
                                      "exp_avg_sq", "GG",        "Q"};
  out->n = v.factor ? 7 : 5;
  for (int k = 0; k < out->n; k++) {
    out->name[k] = names[k];
    out->kind[k] = k <= S_SLOT ? OPTIM_STATE_SCALAR : OPTIM_STATE_BUFFER;
    out->count[k] = k >= S_GG ? v.factor : 0;
  }
}

static size_t workspace(const optim_group *g, const optim_param *p)
{
  view v;
  view_of(g, p, &v);
  size_t es = optim__dtype_size(p->dtype), n = p->numel, d = v.dmax;
  /* G, A, B (numel); new GG and Q (factor); for a refresh three float
   * d x d and two d; permutations (one per dim) and a sort buffer.  (The
   * eigensolver's workspace is allocated when it runs: first step only.) */
  return es * (3 * n + 2 * v.factor) + 4 * (3 * d * d + 2 * d) + sizeof(int) * 5 * d + 16 * 64;
}

/* About 2 d_i n flops per projection of each rotated mode (four per step:
 * project, project_back, the factor update and the moment) and a refresh
 * (~ 10 d_i^3) every precondition_frequency steps. */
static double cost(const optim_group *g, const optim_param *p)
{
  view v;
  view_of(g, p, &v);
  double c = 10.0 * (double)p->numel, f = (double)hp_i(g, FREQ);
  for (int i = 0; i < v.k; i++)
    if (v.rot[i]) {
      double d = (double)v.d[i];
      c += 8 * d * (double)p->numel + 12 * d * d * d / f;
    }
  return c;
}

/* pre and post: the products of the dims before and after dim i. */
static void around(const view *v, int i, size_t *pre, size_t *post)
{
  *pre = *post = 1;
  for (int j = 0; j < i; j++) *pre *= v->d[j];
  for (int j = i + 1; j < v->k; j++) *post *= v->d[j];
}

/* ---- the decompositions, in float32 with a float64 retry ----------------------------- */

#define FINITE_IMPL(T, SFX)                                                              \
  static int finite_##SFX(const T *x, size_t n)                                          \
  {                                                                                      \
    for (size_t i = 0; i < n; i++)                                                       \
      if (!isfinite(x[i])) return 0;                                                     \
    return 1;                                                                            \
  }
FINITE_IMPL(float, f)
FINITE_IMPL(double, d)

/* Householder QR of A (d x d, row-major, replaced by its Q factor). */
static int qr_d(double *A, size_t d, double *tau)
{
  return LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, (lapack_int)d, (lapack_int)d, A, (lapack_int)d, tau) ==
                 0 &&
                 LAPACKE_dorgqr(LAPACK_ROW_MAJOR, (lapack_int)d, (lapack_int)d, (lapack_int)d, A,
                                (lapack_int)d, tau) == 0 &&
                 finite_d(A, d * d)
             ? 0
             : -1;
}

/* perm[0..n) sorted by key, descending, stable (ties keep index order);
 * tmp: n ints.  A merge sort: no global state (qsort has no context). */
static void sort_desc(int *perm, int *tmp, size_t n, const float *key)
{
  for (size_t j = 0; j < n; j++) perm[j] = (int)j;
  for (size_t width = 1; width < n; width *= 2) {
    for (size_t lo = 0; lo < n; lo += 2 * width) {
      size_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
      size_t a = lo, b = mid, o = lo;
      while (a < mid && b < hi) tmp[o++] = key[perm[b]] > key[perm[a]] ? perm[b++] : perm[a++];
      while (a < mid) tmp[o++] = perm[a++];
      while (b < hi) tmp[o++] = perm[b++];
    }
    memcpy(perm, tmp, n * sizeof *perm);
  }
}

/* The decompositions for a factor S (d x d) of element type T, in float32
 * with a float64 retry:
 *   eig_T: Qn = eigenvectors of S + 1e-30 I by descending eigenvalue;
 *   refresh_T: perm = order of diag(Q^T S Q) (descending), Qn = Q factor of
 *     QR(S Q[:, perm]).
 * fw: 3 d^2 + 2 d floats (refresh); perm, itmp: d ints. */
#define DECOMP_IMPL(T, SFX)                                                                \
  static int eig_##SFX(const T *S, size_t d, T *Qn)                                         \
  {                                                                                        \
    float *A = malloc((d * d + d) * sizeof *A);                                            \
    if (!A) return -1;                                                                     \
    for (size_t i = 0; i < d * d; i++) A[i] = (float)S[i];                                 \
    for (size_t i = 0; i < d; i++) A[i * d + i] += 1e-30f;                                 \
    int st = optim__syevd_f32(A, d, A + d * d);                                                     \
    if (st == 0)                                                                           \
      for (size_t i = 0; i < d; i++)                                                       \
        for (size_t j = 0; j < d; j++) Qn[i * d + j] = (T)A[(d - 1 - j) * d + i];          \
    free(A);                                                                               \
    if (st == 0) return 0;                                                                 \
    double *B = malloc((d * d + d) * sizeof *B);                                           \
    if (!B) return -1;                                                                     \
    for (size_t i = 0; i < d * d; i++) B[i] = (double)S[i];                                \
    for (size_t i = 0; i < d; i++) B[i * d + i] += 1e-30;                                  \
    st = optim__syevd_f64(B, d, B + d * d);                                                         \
    if (st == 0)                                                                           \
      for (size_t i = 0; i < d; i++)                                                       \
        for (size_t j = 0; j < d; j++) Qn[i * d + j] = (T)B[(d - 1 - j) * d + i];          \
    free(B);                                                                               \
    return st;                                                                             \
  }                                                                                        \
  static int refresh_##SFX(const T *S, size_t d, const T *Q, T *Qn, int *perm, int *itmp,   \
                           float *fw)                                                      \
  {                                                                                        \
    float *Sf = fw, *Qf = fw + d * d, *Tm = fw + 2 * d * d, *key = fw + 3 * d * d;         \
    float *tau = key + d;                                                                  \
    /* float32 factors are read where they are; float64 ones are rounded into Sf, Qf */    \
    const float *Sr = (const float *)S, *Qr = (const float *)Q;                            \
    if (sizeof(T) != sizeof(float)) {                                                      \
      for (size_t i = 0; i < d * d; i++) Sf[i] = (float)S[i];                              \
      for (size_t i = 0; i < d * d; i++) Qf[i] = (float)Q[i];                              \
      Sr = Sf;                                                                             \
      Qr = Qf;                                                                             \
    }                                                                                      \
    /* Tm = Q^T S = (S Q)^T (S symmetric), i.e. S Q in column-major order, the layout      \
     * LAPACK's QR takes without transposed copies (sgemm reads Q transposed) */           \
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)d, (int)d, (int)d, 1, Qr,    \
                (int)d, Sr, (int)d, 0, Tm, (int)d);                                        \
    /* key_j = q_j^T S q_j = sum_i Tm[j][i] Q[i][j], summed over i in order; a band        \
     * of 64 rows of Q at a time, so its columns are read from cache */                    \
    for (size_t j = 0; j < d; j++) key[j] = 0;                                             \
    for (size_t bi = 0; bi < d; bi += 64)                                                  \
      for (size_t j = 0; j < d; j++) {                                                     \
        float s = key[j];                                                                  \
        for (size_t i = bi; i < bi + 64 && i < d; i++) s += Qr[i * d + j] * Tm[j * d + i]; \
        key[j] = s;                                                                        \
      }                                                                                    \
    sort_desc(perm, itmp, d, key);                                                         \
    /* S Q[:, perm] = (S Q)[:, perm]: the product is reused, its columns reordered */      \
    for (size_t j = 0; j < d; j++)                                                         \
      memcpy(Qf + j * d, Tm + (size_t)perm[j] * d, d * sizeof *Tm);                        \
    /* Householder QR: the reflectors by sgeqrt, blocked by up to 256 columns (its      \
     * panels are faster than sgeqrf's, which uses LAPACK's default 32), with their     \
     * block factors in Tm (nb x d).  Q = H_1 ... H_d is then formed in Sf (free since   \
     * the product) as sorgqr forms it, block by block from the last, each block       \
     * reflector applied by slarfb to the trailing part Q[j:, j:] (the rest is still    \
     * the identity's), but with sgeqrt's 256-column blocks instead of sorgqr's 32:     \
     * the same arithmetic in larger matrix products, twice as fast at d = 4096.       \
     * slarfb's work (d x nb) lives in the rest of Tm; below 512 (no room there, and   \
     * cheap anyway) sorgqr forms Q from the scalars tau on the factors' diagonals. */ \
    const size_t nb = d < 256 ? d : 256;                                                    \
    int qr_ok = LAPACKE_sgeqrt(LAPACK_COL_MAJOR, (lapack_int)d, (lapack_int)d,              \
                               (lapack_int)nb, Qf, (lapack_int)d, Tm, (lapack_int)nb) == 0; \
    float *Qc = Qf;                                                                        \
    if (qr_ok && d >= 2 * nb && nb == 256) {                                               \
      float *lw = Tm + nb * d;                                                             \
      memset(Sf, 0, d * d * sizeof *Sf);                                                   \
      for (size_t i = 0; i < d; i++) Sf[i * d + i] = 1;                                    \
      for (size_t j = (d - 1) / nb * nb;; j -= nb) {                                       \
        size_t jb = d - j < nb ? d - j : nb;                                               \
        if (LAPACKE_slarfb_work(LAPACK_COL_MAJOR, 'L', 'N', 'F', 'C', (lapack_int)(d - j),  \
                                (lapack_int)(d - j), (lapack_int)jb, Qf + j + j * d,       \
                                (lapack_int)d, Tm + j * nb, (lapack_int)nb, Sf + j + j * d, \
                                (lapack_int)d, lw, (lapack_int)(d - j)) != 0)             \
          qr_ok = 0;                                                                       \
        if (j == 0 || !qr_ok) break;                                                       \
      }                                                                                    \
      Qc = Sf;                                                                             \
    } else if (qr_ok) {                                                                    \
      for (size_t j = 0; j < d; j++) tau[j] = Tm[(j % nb) + j * nb];                       \
      qr_ok = LAPACKE_sorgqr(LAPACK_COL_MAJOR, (lapack_int)d, (lapack_int)d, (lapack_int)d,  \
                             Qf, (lapack_int)d, tau) == 0;                                 \
    }                                                                                      \
    if (qr_ok && finite_f(Qc, d * d)) {                                                    \
      if (sizeof(T) == sizeof(float)) /* Qn = the column-major Q, transposed */            \
        cblas_somatcopy(CblasRowMajor, CblasTrans, (int)d, (int)d, 1, Qc, (int)d,           \
                        (float *)Qn, (int)d);                                               \
      else                                                                                  \
        for (size_t bi = 0; bi < d; bi += 64)                                               \
          for (size_t bj = 0; bj < d; bj += 64)                                             \
            for (size_t i = bi; i < bi + 64 && i < d; i++)                                  \
              for (size_t j = bj; j < bj + 64 && j < d; j++) Qn[i * d + j] = (T)Qc[j * d + i]; \
      return 0;                                                                            \
    }                                                                                      \
    double *A = malloc((2 * d * d + d) * sizeof *A);                                       \
    if (!A) return -1;                                                                     \
    double *Qp = A + d * d;                                                                \
    for (size_t i = 0; i < d; i++)                                                         \
      for (size_t j = 0; j < d; j++) Qp[i * d + j] = (double)Q[i * d + (size_t)perm[j]];   \
    for (size_t i = 0; i < d * d; i++) A[i] = 0;                                           \
    for (size_t i = 0; i < d; i++)                                                         \
      for (size_t l = 0; l < d; l++) {                                                     \
        double s = (double)S[i * d + l];                                                   \
        for (size_t j = 0; j < d; j++) A[i * d + j] += s * Qp[l * d + j];                  \
      }                                                                                    \
    int st = qr_d(A, d, Qp);                                                               \
    if (st == 0)                                                                           \
      for (size_t i = 0; i < d * d; i++) Qn[i] = (T)A[i];                                  \
    free(A);                                                                               \
    return st;                                                                             \
  }
DECOMP_IMPL(float, f32)
DECOMP_IMPL(double, f64)

/* ---- the step, in the parameter's precision ------------------------------------------------ */

#define SOAP_IMPL(T, SFX, SQRT)                                                             \
  /* Y = X with every rotated mode i multiplied by Q_i^T (back = 0) or Q_i              \
   * (back = 1); A, B scratch of numel; returns the buffer holding the result          \
   * (X itself when nothing is rotated). */                                             \
  static const T *rotate_##SFX(const view *v, const T *Q, const T *X, T *A, T *B, int back) \
  {                                                                                     \
    const tview tv = {v->k, {v->d[0], v->d[1], v->d[2], v->d[3]}};                      \
    const T *in = X;                                                                    \
    T *out = A;                                                                         \
    size_t off = 0;                                                                     \
    for (int i = 0; i < v->k; i++) {                                                    \
      if (!v->rot[i]) continue;                                                         \
      optim__mode_mul_##SFX(&tv, i, Q + off, !back, in, out);                            \
      off += v->d[i] * v->d[i];                                                         \
      in = out;                                                                         \
      out = out == A ? B : A;                                                           \
    }                                                                                   \
    return in;                                                                          \
  }                                                                                     \
  static int soap_##SFX(const optim_group *g, optim_param *p, void *work)                \
  {                                                                                     \
    view v;                                                                             \
    view_of(g, p, &v);                                                                  \
    const size_t n = p->numel, dm = v.dmax;                                             \
    const double b1 = hp_d(g, BETA1), b2 = hp_d(g, BETA2), lr = hp_d(g, LR);            \
    const double bs = hp_d(g, SHAMPOO_BETA) >= 0 ? hp_d(g, SHAMPOO_BETA) : b2;           \
    char *w = work;                                                                     \
    T *G = optim__carve(&w, n * sizeof(T)), *A = optim__carve(&w, n * sizeof(T));                     \
    T *B = optim__carve(&w, n * sizeof(T));                                                    \
    T *GGn = optim__carve(&w, v.factor * sizeof(T)), *Qn = optim__carve(&w, v.factor * sizeof(T));    \
    float *fw = optim__carve(&w, (3 * dm * dm + 2 * dm) * sizeof(float));                      \
    int *perm = optim__carve(&w, 4 * dm * sizeof(int)), *itmp = optim__carve(&w, dm * sizeof(int));    \
    T *W = p->data, *m = p->state[S_M].buf, *vv = p->state[S_V].buf;                    \
    T *GG = v.factor ? p->state[S_GG].buf : NULL, *Q = v.factor ? p->state[S_Q].buf : NULL; \
    const T *gr = p->grad;                                                              \
    const T gs = (T)p->gscale;                                                          \
    for (size_t i = 0; i < n; i++) G[i] = OPTIM_GRAD(T, gr, i, p->zero_nonfinite) * gs;  \
    const int first = p->state[S_INIT].scalar == 0;                                     \
    const int64_t t = first ? 0 : p->state[S_STEP].scalar + 1;                          \
    /* the slot: the parameter's place in its group at its first step, kept in        \
     * the state so that a checkpoint resumes the same schedule */                    \
    const int64_t slot = first ? p->group_ordinal : p->state[S_SLOT].scalar;           \
    const int64_t f = hp_i(g, FREQ), k0 = hp_i(g, STAGGER) ? slot % f : 0;               \
    const int refresh = !first && (t + k0) % f == 0;                                    \
    /* The factors are updated in place: a step that decomposes (the first, or a      \
     * refresh, or one whose gradient could overflow a factor) runs on copies of the   \
     * state (alg.fallible, optim_step_prepare), so a                                  \
     * failure below changes nothing.  G_(i) G_(i)^T goes to the upper triangle of    \
     * GGn (scratch), the lerp runs on the upper triangle and is mirrored: the lower   \
     * triangle's values are the same (both inputs are symmetric).  New bases of a     \
     * refresh go to Qn: the old ones are still needed to re-project m. */            \
    size_t off = 0;                                                                     \
    for (int i = 0; i < v.k; i++) {                                                     \
      if (!v.rot[i]) continue;                                                          \
      size_t d = v.d[i];                                                                \
      const tview tv = {v.k, {v.d[0], v.d[1], v.d[2], v.d[3]}};                          \
      optim__mode_gram_upper_##SFX(&tv, i, G, GGn + off);                               \
      const T wt = (T)(1 - bs);                                                         \
      int nf = 0; /* x - x is NaN exactly when x is not finite */                       \
      for (size_t r = 0; r < d; r++)                                                    \
        for (size_t e = off + r * d + r; e < off + (r + 1) * d; e++) {                  \
          T s0 = first ? (T)0 : GG[e], e1 = GGn[e];                                     \
          /* torch.lerp */                                                              \
          T x = wt < (T)0.5 ? s0 + wt * (e1 - s0) : e1 - (e1 - s0) * ((T)1 - wt);       \
          T z = x - x;                                                                  \
          GG[e] = x;                                                                    \
          nf |= z != z;                                                                 \
        }                                                                               \
      optim__mirror_##SFX(GG + off, d);                                                 \
      /* an overflowed factor is never stored (optim__factor_may_overflow): its upper   \
       * triangle, checked above, is all of it */                                      \
      if (nf) return -1;                                                                \
      if (first && eig_##SFX(GG + off, d, Q + off) != 0) return -1;                     \
      if (refresh && refresh_##SFX(GG + off, d, Q + off, Qn + off, perm + (size_t)i * dm, \
                                   itmp, fw) != 0)                                      \
        return -1;                                                                      \
      off += d * d;                                                                     \
    }                                                                                   \
    if (first) {                                                                        \
      p->state[S_INIT].scalar = 1;                                                      \
      p->state[S_SLOT].scalar = slot;                                                   \
      return 0;                                                                         \
    }                                                                                   \
    /* Adam in the rotated basis */                                                     \
    const T *Gp = v.factor ? rotate_##SFX(&v, Q, G, A, B, 0) : G;                        \
    const T tb1 = (T)b1, ta1 = (T)(1 - b1), tb2 = (T)b2, ta2 = (T)(1 - b2);              \
    const T eps = (T)hp_d(g, EPS);                                                      \
    T *U = Gp == A ? B : A; /* (m / denom); Gp is dead after this loop */               \
    for (size_t e = 0; e < n; e++) {                                                    \
      T gp = Gp[e];                                                                     \
      T mi = m[e] * tb1 + ta1 * gp, vi = vv[e] * tb2 + ta2 * (gp * gp);                 \
      m[e] = mi;                                                                        \
      vv[e] = vi;                                                                       \
      U[e] = mi / (SQRT(vi) + eps);                                                     \
    }                                                                                   \
    T *spare = U == A ? B : A;                                                          \
    const T *N = v.factor ? rotate_##SFX(&v, Q, U, spare, U == A ? A : B, 1) : U;        \
    double step = lr;                                                                   \
    if (hp_i(g, CORRECT_BIAS))                                                          \
      step = lr * sqrt(1 - pow(b2, (double)t)) / (1 - pow(b1, (double)t));               \
    T rms = (T)1;                                                                       \
    const int norm = (int)hp_i(g, NORMALIZE);                                           \
    if (norm) {                                                                         \
      double ss = 0;                                                                    \
      for (size_t e = 0; e < n; e++) ss += (double)N[e] * (double)N[e];                 \
      rms = (T)(1e-30 + sqrt(ss / (double)n));                                          \
    }                                                                                   \
    const T a = (T)-step, wd = (T)(-lr * optim__wd(g, p, WEIGHT_DECAY));                         \
    const int has_wd = optim__wd(g, p, WEIGHT_DECAY) > 0;                                       \
    for (size_t e = 0; e < n; e++) {                                                    \
      T x = W[e] + a * (norm ? N[e] / rms : N[e]);                                      \
      W[e] = has_wd ? x + wd * x : x;                                                   \
    }                                                                                   \
    /* the preconditioner */                                                            \
    if (refresh && v.factor) { /* nothing rotated: nothing to re-project */            \
      /* m back to parameter space with the old bases, v reordered */                  \
      const T *mo = rotate_##SFX(&v, Q, m, A, B, 1);                                    \
      memcpy(G, mo, n * sizeof(T));                                                     \
      for (int i = 0; i < v.k; i++) {                                                   \
        if (!v.rot[i]) continue;                                                        \
        size_t d = v.d[i], pre, post;                                                   \
        around(&v, i, &pre, &post);                                                     \
        const int *pm = perm + (size_t)i * dm;                                          \
        for (size_t q = 0; q < pre; q++) {                                              \
          T *blk = vv + q * d * post, *tmp = A;                                         \
          for (size_t j = 0; j < d; j++)                                                \
            memcpy(tmp + j * post, blk + (size_t)pm[j] * post, post * sizeof(T));        \
          memcpy(blk, tmp, d * post * sizeof(T));                                       \
        }                                                                               \
      }                                                                                 \
      memcpy(Q, Qn, v.factor * sizeof(T));                                              \
      const T *mn = rotate_##SFX(&v, Q, G, A, B, 0);                                    \
      memcpy(m, mn, n * sizeof(T));                                                     \
    }                                                                                   \
    p->state[S_STEP].scalar = t;                                                        \
    return 0;                                                                           \
  }

SOAP_IMPL(float, f32, sqrtf)
SOAP_IMPL(double, f64, sqrt)

static int param_step(const optim_group *g, optim_param *p, void *work)
{
  return p->dtype == OPTIM_FLOAT32 ? soap_f32(g, p, work) : soap_f64(g, p, work);
}

/* A step that decomposes: the first call (eigendecomposition) or a refresh
 * (QR) of a parameter with a rotated dim; or one whose factors may
 * overflow. */
static int fallible(const optim_group *g, const optim_param *p)
{
  if (p->nstate < 7) return 0; /* nothing rotated */
  if (p->state[S_INIT].scalar == 0) return 1;
  int64_t t = p->state[S_STEP].scalar + 1, f = hp_i(g, FREQ);
  int64_t k0 = hp_i(g, STAGGER) ? p->state[S_SLOT].scalar % f : 0;
  return (t + k0) % f == 0 || optim__factor_may_overflow(p);
}

const optim_alg optim__alg_soap = {
  .name = "soap",
  .doc = "SOAP: Adam in the eigenbasis of Shampoo's Kronecker factors (nikhilvyas/SOAP)",
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
