/* finite.c - vectorized scan for NaN and infinity. */
#include <string.h>

#include "optim-internal.h"

/* An IEEE value is non-finite exactly when its exponent bits are all ones;
 * the integer test OR-reduces and vectorizes without -ffast-math. */
OPTIM_CLONES
static int scan_f32(const float *x, size_t begin, size_t end)
{
  uint32_t bad = 0;
  for (size_t i = end; i > begin; i--) {
    uint32_t u;
    memcpy(&u, &x[i - 1], sizeof u);
    bad |= (u & 0x7f800000u) == 0x7f800000u;
  }
  return bad != 0;
}

OPTIM_CLONES
static int scan_f64(const double *x, size_t begin, size_t end)
{
  uint64_t bad = 0;
  for (size_t i = end; i > begin; i--) {
    uint64_t u;
    memcpy(&u, &x[i - 1], sizeof u);
    bad |= (u & 0x7ff0000000000000u) == 0x7ff0000000000000u;
  }
  return bad != 0;
}

int optim__nonfinite(int dtype, const void *x, size_t begin, size_t end)
{
  return dtype == OPTIM_FLOAT32 ? scan_f32(x, begin, end) : scan_f64(x, begin, end);
}
