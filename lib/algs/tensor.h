/* tensor.h - mode products and Gram contractions of small dense tensors
 * (row-major, up to OPTIM_MAX_DIMS dims), for the preconditioned
 * optimizers (soap, shampoo).  Internal. */
#ifndef OPTIM_ALGS_TENSOR_H
#define OPTIM_ALGS_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "optim-internal.h"

typedef struct tview {
  int k;                         /* dims */
  size_t d[OPTIM_MAX_DIMS];
} tview;

size_t optim__tview_numel(const tview *v);

/* Y = X x_i op(M) for the d_i x d_i matrix M: Y[.., a, ..] =
 * sum_b op(M)[a, b] X[.., b, ..], op(M) = M^T when trans (SOAP's
 * project), M otherwise.  X and Y must not overlap. */
void optim__mode_mul_f32(const tview *v, int i, const float *M, int trans, const float *X,
                         float *Y);
void optim__mode_mul_f64(const tview *v, int i, const double *M, int trans, const double *X,
                         double *Y);

/* O = X_(i) X_(i)^T (d_i x d_i, full symmetric): X contracted with itself
 * over every dim but i. */
void optim__mode_gram_f32(const tview *v, int i, const float *X, float *O);
void optim__mode_gram_f64(const tview *v, int i, const double *X, double *O);
/* The same, only the upper triangle (j >= i) of O written. */
void optim__mode_gram_upper_f32(const tview *v, int i, const float *X, float *O);
void optim__mode_gram_upper_f64(const tview *v, int i, const double *X, double *O);

/* Eigendecomposition of the symmetric A (d x d, destroyed), LAPACK's
 * divide and conquer (syevd): the eigenvectors replace A as its ROWS
 * (A is passed as column-major, which a symmetric matrix allows, so LAPACK
 * makes no transposed copy), lam gets the eigenvalues in ascending order.
 * The workspace (1 + 6d + 2d^2 and 3 + 5d) is computed here, not queried:
 * LAPACKE's single-precision query returns it as a float, which rounds it
 * down for d > ~2900 so that ssyevd refuses it (and prints).  It is
 * allocated per call.  0, or -1 on failure or non-finite output. */
int optim__syevd_f32(float *A, size_t d, float *lam);
int optim__syevd_f64(double *A, size_t d, double *lam);

/* For algorithms that step every tensor as a whole (soap, shampoo): the
 * whole() that says yes, and the element-wise prepare() and kernel() that
 * have nothing to do (the step count advances when a step is committed). */
int optim__whole_always(const optim_group *g, const optim_param *p);
void optim__no_prepare(const optim_group *g, optim_param *p);
void optim__no_kernel(const optim_group *g, const optim_param *p, size_t b, size_t e);

/* Kronecker factors (soap, shampoo) are sums of products of gradient
 * entries kept in the parameter's type.  Non-zero when p's gradient (times
 * gscale, non-finite entries as 0 under nonfinite=zero) has an entry past
 * sqrt(max / (4 numel)) of the type, so that a factor could overflow: such
 * a step runs on copies (alg.fallible), and a factor that did overflow
 * fails it (OPTIM_ENUMERIC, nothing changed) instead of being stored as
 * +-inf, which would make every later decomposition fail. */
int optim__factor_may_overflow(const optim_param *p);

/* The next 64-byte aligned piece of `bytes` bytes of a workspace. */
static inline void *optim__carve(char **w, size_t bytes)
{
  void *p = (void *)(((uintptr_t)*w + 63) & ~(uintptr_t)63);
  *w = (char *)p + bytes;
  return p;
}

#endif
