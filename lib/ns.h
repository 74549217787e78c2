/* ns.h - the Newton-Schulz orthogonalization engine (internal). */
#ifndef OPTIM_NS_H
#define OPTIM_NS_H

#include <stddef.h>
#include <stdint.h>

/* Coefficient sets, by the name an algorithm's "ns_coefficients" takes. */
enum {
  NS_COEF_MUON = 0,          /* (3.4445, -4.7750, 2.0315) every iteration */
  NS_COEF_POLAR_EXPRESS = 1, /* per-iteration tuples, input / 1.02 */
  NS_COEF_ROOT = 2           /* ROOT's per-shape table, Muon's elsewhere */
};
#define NS_COEF_CHOICES "muon|polar_express|root"

/* Bytes of workspace optim__ns needs for rows x cols matrices computed in
 * precision prec (OPTIM_FLOAT32 or OPTIM_FLOAT64). */
size_t optim__ns_workspace(int64_t rows, int64_t cols, int prec);

/* out[b] = NS(in[b]) for `batch` contiguous row-major rows x cols matrices
 * of element type io, computed in precision prec: the input is transposed
 * when rows > cols (so the Gram matrix is the small side), divided by its
 * Frobenius norm times (1 + 1e-7) (scale-invariant: tiny inputs are
 * orthogonalized too; an exactly zero matrix gives zero), and iterated
 * `steps` times X <- aX + (bA + cA^2)X with A = XX^T, using symmetric
 * rank-k updates for A and A^2 and a symmetric multiply for the product;
 * wide matrices (max >= 3 min) iterate on the Gram side instead, which is
 * the same polynomial in exact arithmetic, restarted from X every three
 * iterations so that float32 errors stay at the direct form's level, also
 * for low-rank-plus-noise inputs (tests/check_ns.c).
 * in and out may be the same array. */
void optim__ns(int io, int prec, const void *in, void *out, int64_t batch, int64_t rows,
               int64_t cols, int steps, int coef, void *work);

/* Newton-Schulz on a matrix distributed by rows.  This process holds r of
 * the R rows of an R x C matrix (in: r x C, row-major, element type io;
 * r may be 0); reduce(ud, buf, count, prec) sums buf (count elements of
 * type prec) in place over the processes holding the other rows, and
 * every one of them calls it in the same order: once for the Frobenius
 * norm, once per iteration for the C x C Gram matrix B = X^T X.  Iterates
 * X <- aX + X(bB + cB^2), which is optim__ns's polynomial in exact
 * arithmetic (X (X^T X)^j = (X X^T)^j X), with the coefficients of the
 * whole R x C shape.  work: optim__ns_rows_workspace(r, C, prec) bytes.
 * Returns 0, or the first non-zero value reduce returned (the iteration
 * still runs to the end, so that every process makes the same calls). */
typedef int (*optim__reduce_fn)(void *ud, void *buf, size_t count, int prec);
int optim__ns_rows(int io, int prec, const void *in, void *out, int64_t r, int64_t R, int64_t C,
                   int steps, int coef, void *work, optim__reduce_fn reduce, void *ud);
size_t optim__ns_rows_workspace(int64_t r, int64_t C, int prec);

/* Copy the upper triangle of the k x k row-major A into its lower one,
 * tile by tile so that both sides stream through cache. */
void optim__mirror_f32(float *A, size_t k);
void optim__mirror_f64(double *A, size_t k);

/* Floating-point operations optim__ns performs on one rows x cols matrix
 * (for benchmarks). */
double optim__ns_flops(int64_t rows, int64_t cols, int steps);

/* (a, b, c) of iteration it for a coefficient set and matrix shape. */
void optim__ns_coef(int coef, int64_t rows, int64_t cols, int it, double abc[3]);

#endif
