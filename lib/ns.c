/* ns.c - quintic Newton-Schulz orthogonalization on OpenBLAS, exploiting
 * symmetry: A = XX^T and A^2 = AA^T are symmetric rank-k updates (ssyrk,
 * half the flops of a general product) and (bA + cA^2)X is a symmetric
 * multiply.  Per iteration on a k x n matrix (k <= n): k^2 n + k^3 + 2 k^2 n
 * flops, against 4 k^2 n + 2 k^3 for the three general products. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "ns.h"
#include "optim-internal.h"

static const double muon_abc[3] = {3.4445, -4.7750, 2.0315};

/* Polar Express (arXiv 2505.16932) five-iteration schedule with its 2%
 * safety factor; later iterations repeat the last tuple. */
static const double polar_abc[5][3] = {
  {8.156554524902461, -22.48329292557795, 15.878769915207462},
  {4.042929935166739, -2.808917465908714, 0.5000178451051316},
  {3.8916678022926607, -2.772484153217685, 0.5060648178503393},
  {3.285753657755655, -2.3681294933425376, 0.46449024233003106},
  {2.3465413258596377, -1.7097828382687081, 0.42323551169305323},
};

/* ROOT's published per-shape coefficients, keyed by (min, max) of the
 * matrix; other shapes use Muon's. */
static const struct {
  int64_t lo, hi;
  double abc[3];
} root_table[] = {
  {2048, 2048, {3.4916, -4.8224, 2.1095}},
  {2048, 3072, {3.4509, -4.5790, 1.9325}},
  {2048, 8192, {2.9794, -3.6674, 1.6207}},
  {2048, 16384, {3.1943, -3.8221, 1.5322}},
};

void optim__ns_coef(int coef, int64_t rows, int64_t cols, int it, double abc[3])
{
  const double *src = muon_abc;
  if (coef == NS_COEF_POLAR_EXPRESS) {
    src = polar_abc[it < 5 ? it : 4];
  } else if (coef == NS_COEF_ROOT) {
    int64_t lo = rows < cols ? rows : cols, hi = rows < cols ? cols : rows;
    for (size_t i = 0; i < sizeof root_table / sizeof root_table[0]; i++)
      if (root_table[i].lo == lo && root_table[i].hi == hi) src = root_table[i].abc;
  }
  memcpy(abc, src, 3 * sizeof *abc);
}

size_t optim__ns_workspace(int64_t rows, int64_t cols, int prec)
{
  size_t k = (size_t)(rows < cols ? rows : cols), n = (size_t)(rows < cols ? cols : rows);
  size_t es = prec == OPTIM_FLOAT64 ? 8 : 4;
  /* X, Y (k x n) and A, A2, Q, P (k x k), each 64-byte aligned. */
  return es * (2 * k * n + 4 * k * k) + 6 * 64;
}

static void *align64(void *p)
{
  return (void *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

/* Copy the upper triangle of the k x k row-major A into its lower one, by
 * 8 x 8 tiles, writing rows of the lower tile (contiguous) from columns of
 * the upper one: 3x faster at k = 4096 than 64 x 64 tiles written by column,
 * whose power-of-two strides land in one cache set. */
#define MIRROR_IMPL(T, SFX)                                                 \
  void optim__mirror_##SFX(T *A, size_t k)                                  \
  {                                                                         \
    const size_t t = 8;                                                     \
    for (size_t bi = 0; bi < k; bi += t)                                    \
      for (size_t bj = bi; bj < k; bj += t)                                 \
        for (size_t j = bj; j < bj + t && j < k; j++) {                     \
          const size_t ie = bi + t < j ? bi + t : j;                        \
          for (size_t i = bi; i < ie; i++) A[j * k + i] = A[i * k + j];     \
        }                                                                   \
  }
MIRROR_IMPL(float, f32)
MIRROR_IMPL(double, f64)

/* Wide matrices (n >= NS_GRAM_RATIO k) iterate on the k x k Gram side: with
 * X_i = Q_i X_0 and every Q_i a polynomial in A_0 = X_0 X_0^T (so all of
 * them symmetric and commuting), X_{i+1} = (aI + bA_i + cA_i^2) X_i becomes
 *   P_i = aI + bA_i + cA_i^2,  Q_{i+1} = P_i Q_i,  A_{i+1} = P_i^2 A_i,
 * and X = Q_steps X_0 at the end: 3 k^2 n + (6 steps - 3) k^3 flops per
 * restart chunk, against (3 k^2 n + k^3) per iteration for the direct form. */
#ifndef NS_GRAM_RATIO
#define NS_GRAM_RATIO 3
#endif
/* The Gram side loses the small singular values of low-rank-plus-noise
 * inputs (momentum often is one) to float32 rounding of A_0: without a
 * restart, float32 errors grew 20-300x over the direct form's.  Recomputing
 * A from X_i every 3 iterations brings them back to the direct form's level
 * (measured 1.7e-5 against 1.3e-5 relative, 64x256 rank 4 + noise). */
#ifndef NS_GRAM_RESTART
#define NS_GRAM_RESTART 3
#endif
#define GRAM_IMPL(T, SFX, SYRK, SYMM)                                                   \
  static void gram_##SFX(const T *X0, T *out, T *A, T *A2, size_t k, size_t n, int it0,   \
                         int steps, int coef, int64_t rows, int64_t cols)               \
  {                                                                                     \
    T *Q = align64(A2 + k * k), *P = align64(Q + k * k);                                \
    SYRK(CblasRowMajor, CblasUpper, CblasNoTrans, (int)k, (int)n, 1, X0, (int)n, 0, A,   \
         (int)k);                                                                       \
    optim__mirror_##SFX(A, k);                                                                 \
    memset(Q, 0, k * k * sizeof(T));                                                    \
    for (size_t i = 0; i < k; i++) Q[i * k + i] = 1;                                    \
    for (int it = 0; it < steps; it++) {                                                \
      double abc[3];                                                                    \
      optim__ns_coef(coef, rows, cols, it0 + it, abc);                                   \
      /* P = aI + bA + cA^2 (full, symmetric) */                                        \
      SYRK(CblasRowMajor, CblasUpper, CblasNoTrans, (int)k, (int)k, 1, A, (int)k, 0, A2, \
           (int)k);                                                                     \
      const T a = (T)abc[0], b = (T)abc[1], c = (T)abc[2];                              \
      for (size_t i = 0; i < k; i++)                                                    \
        for (size_t j = i; j < k; j++)                                                  \
          P[i * k + j] = b * A[i * k + j] + c * A2[i * k + j] + (i == j ? a : (T)0);      \
      optim__mirror_##SFX(P, k);                                                               \
      /* Q = P Q */                                                                     \
      SYMM(CblasRowMajor, CblasLeft, CblasUpper, (int)k, (int)k, 1, P, (int)k, Q, (int)k, \
           0, A2, (int)k);                                                              \
      memcpy(Q, A2, k * k * sizeof(T));                                                 \
      if (it + 1 == steps) break;                                                       \
      /* A = P^2 A: P^2 = P P^T by a rank-k update, then one symmetric         \
       * product */                                                                     \
      SYRK(CblasRowMajor, CblasUpper, CblasNoTrans, (int)k, (int)k, 1, P, (int)k, 0, A2, \
           (int)k);                                                                     \
      SYMM(CblasRowMajor, CblasLeft, CblasUpper, (int)k, (int)k, 1, A2, (int)k, A, (int)k, \
           0, P, (int)k);                                                               \
      memcpy(A, P, k * k * sizeof(T));                                                  \
      optim__mirror_##SFX(A, k); /* keep A exactly symmetric (its upper triangle) */          \
    }                                                                                   \
    /* Q is symmetric up to rounding: use its upper triangle */                         \
    SYMM(CblasRowMajor, CblasLeft, CblasUpper, (int)k, (int)n, 1, Q, (int)k, X0, (int)n, \
         0, out, (int)n);                                                               \
  }
GRAM_IMPL(float, f32, cblas_ssyrk, cblas_ssymm)
GRAM_IMPL(double, f64, cblas_dsyrk, cblas_dsymm)

double optim__ns_flops(int64_t rows, int64_t cols, int steps)
{
  double k = (double)(rows < cols ? rows : cols), n = (double)(rows < cols ? cols : rows);
  if (steps > 0 && n >= NS_GRAM_RATIO * k) {
    double f = 0;
    for (int it = 0; it < steps; it += NS_GRAM_RESTART) {
      int chunk = steps - it < NS_GRAM_RESTART ? steps - it : NS_GRAM_RESTART;
      f += 3 * k * k * n + (6.0 * chunk - 3) * k * k * k;
    }
    return f;
  }
  return steps * (3 * k * k * n + k * k * k);
}

/* Scale-invariance is what lets NS survive extreme inputs: a norm below
 * SMALL (squares of subnormal size, which a BLAS may flush to zero, and
 * reciprocals that overflow), an infinite one (entries near the maximum,
 * or float64 entries beyond float32's range with ns_precision=float32),
 * and a zero one (entries below float32's range) make the input be loaded
 * again divided by 2^e, e the exponent of its largest entry (exact, in
 * double).  Returns 1 and e, 0 for a zero input, -1 when it holds a NaN or
 * an infinity (propagated as before). */
static int in_max_exp(int io, const void *in, size_t count, int *e)
{
  double mx = 0;
  for (size_t i = 0; i < count; i++) {
    double v = io == OPTIM_FLOAT32 ? (double)((const float *)in)[i] : ((const double *)in)[i];
    if (!isfinite(v)) return -1;
    mx = fmax(mx, fabs(v));
  }
  if (mx == 0) return 0;
  *e = ilogb(mx);
  return 1;
}

/* in[s] / 2^e, in double (exact), then rounded to the iteration's type. */
static inline double in_scaled(int io, const void *in, size_t s, int e)
{
  double v = io == OPTIM_FLOAT32 ? (double)((const float *)in)[s] : ((const double *)in)[s];
  return ldexp(v, -e);
}

/* One implementation per precision T; the element type of in/out is
 * converted on the way in and out. */
#define NS_IMPL(T, SFX, SYRK, SYMM, NRM2, SCAL, SMALL)                                   \
  static void ns_##SFX(int io, const void *in, void *out, int64_t rows, int64_t cols,     \
                       int steps, int coef, void *work)                                  \
  {                                                                                      \
    const int tr = rows > cols;                                                          \
    const size_t k = (size_t)(tr ? cols : rows), n = (size_t)(tr ? rows : cols);          \
    T *X = align64(work), *Y = align64(X + k * n), *A = align64(Y + k * n);              \
    T *A2 = align64(A + k * k);                                                          \
    /* Load X (k x n), transposed when the input is tall. */                            \
    for (size_t i = 0; i < k; i++)                                                       \
      for (size_t j = 0; j < n; j++) {                                                   \
        size_t s = tr ? j * k + i : i * n + j;                                            \
        X[i * n + j] = io == OPTIM_FLOAT32 ? (T)((const float *)in)[s]                    \
                                           : (T)((const double *)in)[s];                  \
      }                                                                                  \
    T nrm = NRM2((int)(k * n), X, 1);                                                     \
    const double f = coef == NS_COEF_POLAR_EXPRESS ? 1.02 : 1.0;                         \
    int e;                                                                               \
    if ((nrm < (T)(SMALL) || isinf(nrm)) && in_max_exp(io, in, k * n, &e) > 0) {          \
      /* (see in_max_exp) */                                                             \
      for (size_t i = 0; i < k; i++)                                                     \
        for (size_t j = 0; j < n; j++)                                                   \
          X[i * n + j] = (T)in_scaled(io, in, tr ? j * k + i : i * n + j, e);             \
      nrm = NRM2((int)(k * n), X, 1);                                                     \
    }                                                                                    \
    if (!(nrm > 0)) {                                                                    \
      /* Zero (or non-finite) input: zero (or propagated) output. */                      \
      if (nrm == 0) memset(X, 0, k * n * sizeof(T));                                      \
      steps = 0;                                                                         \
    } else {                                                                             \
      SCAL((int)(k * n), (T)(1.0 / ((double)nrm * f * (1 + 1e-7))), X, 1);                \
    }                                                                                    \
    if (steps > 0 && n >= NS_GRAM_RATIO * k) {                                          \
      /* restart from X_i every NS_GRAM_RESTART iterations (see above) */               \
      for (int it = 0; it < steps; it += NS_GRAM_RESTART) {                              \
        int chunk = steps - it < NS_GRAM_RESTART ? steps - it : NS_GRAM_RESTART;          \
        gram_##SFX(X, Y, A, A2, k, n, it, chunk, coef, rows, cols);                       \
        T *t = X;                                                                        \
        X = Y;                                                                           \
        Y = t;                                                                           \
      }                                                                                  \
      steps = 0;                                                                         \
    }                                                                                    \
    for (int it = 0; it < steps; it++) {                                                 \
      double abc[3];                                                                     \
      optim__ns_coef(coef, rows, cols, it, abc);                                          \
      SYRK(CblasRowMajor, CblasUpper, CblasNoTrans, (int)k, (int)n, 1, X, (int)n, 0, A,  \
           (int)k);                                                                      \
      optim__mirror_##SFX(A, k); /* A2 = A A^T reads all of A */                              \
      SYRK(CblasRowMajor, CblasUpper, CblasNoTrans, (int)k, (int)k, 1, A, (int)k, 0, A2, \
           (int)k);                                                                      \
      const T b = (T)abc[1], c = (T)abc[2];                                              \
      for (size_t i = 0; i < k; i++)                                                     \
        for (size_t j = i; j < k; j++) A2[i * k + j] = b * A[i * k + j] + c * A2[i * k + j]; \
      memcpy(Y, X, k * n * sizeof(T));                                                   \
      SYMM(CblasRowMajor, CblasLeft, CblasUpper, (int)k, (int)n, 1, A2, (int)k, X, (int)n, \
           (T)abc[0], Y, (int)n);                                                        \
      T *t = X;                                                                          \
      X = Y;                                                                             \
      Y = t;                                                                             \
    }                                                                                    \
    for (size_t i = 0; i < k; i++)                                                       \
      for (size_t j = 0; j < n; j++) {                                                   \
        size_t d = tr ? j * k + i : i * n + j;                                            \
        if (io == OPTIM_FLOAT32) ((float *)out)[d] = (float)X[i * n + j];                 \
        else ((double *)out)[d] = (double)X[i * n + j];                                   \
      }                                                                                  \
  }

NS_IMPL(float, f32, cblas_ssyrk, cblas_ssymm, cblas_snrm2, cblas_sscal, 0x1p-63)
NS_IMPL(double, f64, cblas_dsyrk, cblas_dsymm, cblas_dnrm2, cblas_dscal, 0x1p-510)

void optim__ns(int io, int prec, const void *in, void *out, int64_t batch, int64_t rows,
               int64_t cols, int steps, int coef, void *work)
{
  size_t es = io == OPTIM_FLOAT64 ? 8 : 4, mat = (size_t)(rows * cols) * es;
  for (int64_t b = 0; b < batch; b++) {
    const char *i = (const char *)in + (size_t)b * mat;
    char *o = (char *)out + (size_t)b * mat;
    if (prec == OPTIM_FLOAT64) ns_f64(io, i, o, rows, cols, steps, coef, work);
    else ns_f32(io, i, o, rows, cols, steps, coef, work);
  }
}

/* Exponents of finite nonzero doubles (ilogb: -1074 .. 1023), and one bin
 * for a NaN or infinity. */
#define NS_EXP_MIN (-1074)
#define NS_EXP_BINS (1023 - NS_EXP_MIN + 2)

size_t optim__ns_rows_workspace(int64_t r, int64_t C, int prec)
{
  size_t es = prec == OPTIM_FLOAT64 ? 8 : 4;
  /* X, Y (r x C), B, M (C x C) and the exponent histogram, each 64-byte
   * aligned. */
  return es * (2 * (size_t)r * (size_t)C + 2 * (size_t)C * (size_t)C + NS_EXP_BINS) + 5 * 64;
}

#define NS_ROWS_IMPL(T, SFX, SYRK, SYMM, SMALL)                                                \
  static int ns_rows_##SFX(int io, const void *in, void *out, size_t r, int64_t R, size_t C,    \
                           int steps, int coef, void *work, optim__reduce_fn reduce, void *ud,  \
                           int prec)                                                           \
  {                                                                                            \
    T *X = align64(work), *Y = align64(X + r * C), *B = align64(Y + r * C);                    \
    T *M = align64(B + C * C), *H = align64(M + C * C);                                        \
    int st = 0;                                                                                \
    for (size_t i = 0; i < r * C; i++)                                                         \
      X[i] = io == OPTIM_FLOAT32 ? (T)((const float *)in)[i] : (T)((const double *)in)[i];      \
    T ss = 0;                                                                                  \
    for (size_t i = 0; i < r * C; i++) ss += X[i] * X[i];                                      \
    int e = reduce(ud, &ss, 1, prec);                                                          \
    if (e && !st) st = e;                                                                      \
    T nrm = (T)sqrt((double)ss);                                                               \
    if (nrm < (T)(SMALL) || isinf(nrm)) {                                                      \
      /* as ns_, with the largest exponent over all processes: a histogram of            \
       * each one's largest, summed; every process sees the same norm, so all            \
       * of them take these two extra reductions */                                      \
      int ex = 0, has = r > 0 ? in_max_exp(io, in, r * C, &ex) : 0;                            \
      memset(H, 0, NS_EXP_BINS * sizeof(T));                                                   \
      if (has) H[has < 0 ? NS_EXP_BINS - 1 : ex - NS_EXP_MIN] = 1;                             \
      e = reduce(ud, H, NS_EXP_BINS, prec);                                                    \
      if (e && !st) st = e;                                                                    \
      int top = NS_EXP_BINS - 2;                                                               \
      while (top >= 0 && H[top] == 0) top--;                                                   \
      if (H[NS_EXP_BINS - 1] == 0 && top >= 0) {                                               \
        ss = 0;                                                                                \
        for (size_t i = 0; i < r * C; i++) {                                                   \
          X[i] = (T)in_scaled(io, in, i, top + NS_EXP_MIN);                                    \
          ss += X[i] * X[i];                                                                   \
        }                                                                                      \
        e = reduce(ud, &ss, 1, prec);                                                          \
        if (e && !st) st = e;                                                                  \
        nrm = (T)sqrt((double)ss);                                                             \
      }                                                                                        \
    }                                                                                          \
    if (!(nrm > 0)) {                                                                          \
      /* zero (or non-finite) matrix: zero (or propagated) output; every                 \
       * process sees the same norm and stops here */                                      \
      if (nrm == 0) memset(X, 0, r * C * sizeof(T));                                           \
      steps = 0;                                                                               \
    } else {                                                                                   \
      double f = coef == NS_COEF_POLAR_EXPRESS ? 1.02 : 1.0;                                   \
      T s = (T)(1.0 / ((double)nrm * f * (1 + 1e-7)));                                         \
      for (size_t i = 0; i < r * C; i++) X[i] *= s;                                            \
    }                                                                                          \
    for (int it = 0; it < steps; it++) {                                                       \
      double abc[3];                                                                           \
      optim__ns_coef(coef, R, (int64_t)C, it, abc);                                            \
      /* B = X^T X over all rows (upper triangle, mirrored before the sum) */                  \
      if (r > 0)                                                                               \
        SYRK(CblasRowMajor, CblasUpper, CblasTrans, (int)C, (int)r, 1, X, (int)C, 0, B,        \
             (int)C);                                                                          \
      else                                                                                     \
        memset(B, 0, C * C * sizeof(T));                                                       \
      optim__mirror_##SFX(B, C);                                                                      \
      e = reduce(ud, B, C * C, prec);                                                          \
      if (e && !st) st = e;                                                                    \
      /* M = bB + cB^2 */                                                                      \
      SYRK(CblasRowMajor, CblasUpper, CblasNoTrans, (int)C, (int)C, 1, B, (int)C, 0, M,        \
           (int)C);                                                                            \
      const T b = (T)abc[1], c = (T)abc[2];                                                    \
      for (size_t i = 0; i < C; i++)                                                           \
        for (size_t j = i; j < C; j++) M[i * C + j] = b * B[i * C + j] + c * M[i * C + j];     \
      /* X = aX + X M (M symmetric: right-side symmetric multiply) */                          \
      if (r > 0) {                                                                             \
        memcpy(Y, X, r * C * sizeof(T));                                                       \
        SYMM(CblasRowMajor, CblasRight, CblasUpper, (int)r, (int)C, 1, M, (int)C, X, (int)C,   \
             (T)abc[0], Y, (int)C);                                                            \
        T *t = X;                                                                              \
        X = Y;                                                                                 \
        Y = t;                                                                                 \
      }                                                                                        \
    }                                                                                          \
    for (size_t i = 0; i < r * C; i++) {                                                       \
      if (io == OPTIM_FLOAT32) ((float *)out)[i] = (float)X[i];                                \
      else ((double *)out)[i] = (double)X[i];                                                  \
    }                                                                                          \
    return st;                                                                                 \
  }
NS_ROWS_IMPL(float, f32, cblas_ssyrk, cblas_ssymm, 0x1p-63)
NS_ROWS_IMPL(double, f64, cblas_dsyrk, cblas_dsymm, 0x1p-510)

int optim__ns_rows(int io, int prec, const void *in, void *out, int64_t r, int64_t R, int64_t C,
                   int steps, int coef, void *work, optim__reduce_fn reduce, void *ud)
{
  if (prec == OPTIM_FLOAT64)
    return ns_rows_f64(io, in, out, (size_t)r, R, (size_t)C, steps, coef, work, reduce, ud, prec);
  return ns_rows_f32(io, in, out, (size_t)r, R, (size_t)C, steps, coef, work, reduce, ud, prec);
}
