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

/* Floating-point operations optim__ns performs on one rows x cols matrix
 * (for benchmarks). */
double optim__ns_flops(int64_t rows, int64_t cols, int steps);

/* (a, b, c) of iteration it for a coefficient set and matrix shape. */
void optim__ns_coef(int coef, int64_t rows, int64_t cols, int it, double abc[3]);

#endif
