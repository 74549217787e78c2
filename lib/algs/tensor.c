/* tensor.c - mode products and Gram contractions on BLAS (see tensor.h).
 * A mode-i product is one gemm when i is the first or the last dim, and
 * one gemm per index of the dims before i otherwise. */
#include <cblas.h>
#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>

#include "ns.h"
#include "tensor.h"

size_t optim__tview_numel(const tview *v)
{
  size_t n = 1;
  for (int i = 0; i < v->k; i++) n *= v->d[i];
  return n;
}

/* pre and post: the products of the dims before and after dim i. */
static void around(const tview *v, int i, size_t *pre, size_t *post)
{
  *pre = *post = 1;
  for (int j = 0; j < i; j++) *pre *= v->d[j];
  for (int j = i + 1; j < v->k; j++) *post *= v->d[j];
}

#define TENSOR_IMPL(T, SFX, GEMM, SYRK)                                                     \
  void optim__mode_mul_##SFX(const tview *v, int i, const T *M, int trans, const T *X, T *Y) \
  {                                                                                         \
    size_t d = v->d[i], pre, post;                                                          \
    around(v, i, &pre, &post);                                                              \
    if (post == 1) /* Y = X op(M)^T with X pre x d */                                       \
      GEMM(CblasRowMajor, CblasNoTrans, trans ? CblasNoTrans : CblasTrans, (int)pre, (int)d, \
           (int)d, 1, X, (int)d, M, (int)d, 0, Y, (int)d);                                   \
    else                                                                                    \
      for (size_t q = 0; q < pre; q++)                                                      \
        GEMM(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, CblasNoTrans, (int)d,        \
             (int)post, (int)d, 1, M, (int)d, X + q * d * post, (int)post, 0,                \
             Y + q * d * post, (int)post);                                                   \
  }                                                                                         \
  void optim__mode_gram_upper_##SFX(const tview *v, int i, const T *X, T *O)                \
  {                                                                                         \
    size_t d = v->d[i], pre, post;                                                          \
    around(v, i, &pre, &post);                                                              \
    if (post == 1)                                                                          \
      SYRK(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)pre, 1, X, (int)d, 0, O,      \
           (int)d);                                                                         \
    else                                                                                    \
      for (size_t q = 0; q < pre; q++)                                                      \
        SYRK(CblasRowMajor, CblasUpper, CblasNoTrans, (int)d, (int)post, 1,                  \
             X + q * d * post, (int)post, q ? 1 : 0, O, (int)d);                             \
  }                                                                                         \
  void optim__mode_gram_##SFX(const tview *v, int i, const T *X, T *O)                      \
  {                                                                                         \
    optim__mode_gram_upper_##SFX(v, i, X, O);                                               \
    optim__mirror_##SFX(O, v->d[i]);                                                        \
  }

TENSOR_IMPL(float, f32, cblas_sgemm, cblas_ssyrk)
TENSOR_IMPL(double, f64, cblas_dgemm, cblas_dsyrk)

#define SYEVD_IMPL(T, SFX, SYEVD_WORK)                                                    \
  int optim__syevd_##SFX(T *A, size_t d, T *lam)                                          \
  {                                                                                       \
    size_t lw = 1 + 6 * d + 2 * d * d, liw = 3 + 5 * d;                                   \
    T *work = malloc(lw * sizeof *work);                                                  \
    lapack_int *iw = malloc(liw * sizeof *iw);                                            \
    int st = work && iw ? (int)SYEVD_WORK(LAPACK_COL_MAJOR, 'V', 'U', (lapack_int)d, A,   \
                                          (lapack_int)d, lam, work, (lapack_int)lw, iw,   \
                                          (lapack_int)liw)                                \
                        : -1;                                                             \
    free(work);                                                                           \
    free(iw);                                                                             \
    for (size_t i = 0; st == 0 && i < d * d; i++)                                         \
      if (!isfinite(A[i])) st = -1;                                                       \
    for (size_t i = 0; st == 0 && i < d; i++)                                             \
      if (!isfinite(lam[i])) st = -1;                                                     \
    return st == 0 ? 0 : -1;                                                              \
  }
SYEVD_IMPL(float, f32, LAPACKE_ssyevd_work)
SYEVD_IMPL(double, f64, LAPACKE_dsyevd_work)

int optim__whole_always(const optim_group *g, const optim_param *p)
{
  (void)g;
  (void)p;
  return 1;
}

void optim__no_prepare(const optim_group *g, optim_param *p)
{
  (void)g;
  (void)p;
}

void optim__no_kernel(const optim_group *g, const optim_param *p, size_t b, size_t e)
{
  (void)g;
  (void)p;
  (void)b;
  (void)e;
}

int optim__factor_may_overflow(const optim_param *p)
{
  const int f32 = p->dtype == OPTIM_FLOAT32, zero = p->zero_nonfinite;
  const double s = fabs(p->gscale);
  if (!p->grad || s == 0) return 0;
  /* |x| * s > lim, as |x| > lim / s in the gradient's type (rounded down, so
   * never later); the rare hit is confirmed in double */
  const double lim = sqrt((f32 ? (double)FLT_MAX : DBL_MAX) / (4.0 * (double)p->numel));
  if (f32) {
    const float *g = p->grad;
    float lf = (float)(lim / s);
    if ((double)lf > lim / s) lf = nextafterf(lf, 0);
    for (size_t i = 0; i < p->numel; i++)
      if (fabsf(g[i]) >= lf && (!zero || isfinite(g[i])) && fabs((double)g[i]) * s > lim)
        return 1;
  } else {
    const double *g = p->grad, ld = nextafter(lim / s, 0);
    for (size_t i = 0; i < p->numel; i++)
      if (fabs(g[i]) >= ld && (!zero || isfinite(g[i])) && fabs(g[i]) * s > lim) return 1;
  }
  return 0;
}
