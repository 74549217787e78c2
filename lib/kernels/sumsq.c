/* sumsq.c - sum of squares in double, for gradient norms (clipping and the
 * algorithms that scale by a norm).  Eight independent partial sums keep
 * the loop vectorized without reassociation by the compiler, so the result
 * is the same on every CPU for a given range.  Each element is first
 * multiplied by the gradient scale in its own type, as the kernels read
 * it, so a scaled step sees the norm of the gradient it steps with. */
#include "optim-internal.h"

#define SUMSQ_IMPL(T, SFX)                                                              \
  OPTIM_CLONES static double sumsq_##SFX(const T *x, size_t b, size_t e, int zero,      \
                                         double scale)                                  \
  {                                                                                     \
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                           \
    const T sc = (T)scale;                                                              \
    size_t i = b;                                                                       \
    for (; i + 8 <= e; i += 8)                                                          \
      for (int k = 0; k < 8; k++) {                                                     \
        double v = (double)(OPTIM_GRAD(T, x, i + k, zero) * sc);                               \
        acc[k] += v * v;                                                                \
      }                                                                                 \
    for (int k = 0; i < e; i++, k++) {                                                  \
      double v = (double)(OPTIM_GRAD(T, x, i, zero) * sc);                                     \
      acc[k] += v * v;                                                                  \
    }                                                                                   \
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])); \
  }
SUMSQ_IMPL(float, f32)
SUMSQ_IMPL(double, f64)

double optim__sumsq(int dtype, const void *x, size_t begin, size_t end, int zero,
                    double scale)
{
  return dtype == OPTIM_FLOAT32 ? sumsq_f32(x, begin, end, zero, scale)
                                : sumsq_f64(x, begin, end, zero, scale);
}
