/* batch_test.c - adaptive batch sizes from per-sample gradients: the norm
 * test (Byrd, Chin, Nocedal, Wu 2012), the inner product and augmented inner
 * product tests (Bollapragada, Byrd, Nocedal 2018) and AdAdaGrad's
 * coordinate-wise norm test (Lau, Liu, Kolar 2024), as AdAdaGrad uses them
 * to grow the batch of AdaGrad / AdaGrad-Norm.  Formulas in
 * optim_batch_size_test(3).
 *
 * Every test reduces to a ratio r = (variance term) / (constant^2 * signal
 * term): the batch size at which the test would just pass.  The statistics
 * are invariant to scaling all gradients by one factor, so the rows are
 * scaled by a power of two (exact) that brings the largest |g| into
 * [0.5, 1): squares neither overflow nor underflow for any finite input. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "optim-internal.h"

enum { T_NORM, T_IP, T_AUG, T_COORD };

static int test_kind(const char *name)
{
  static const char *const names[] = {"norm", "inner_product", "augmented_inner_product",
                                      "coordinate"};
  for (int k = 0; k < 4; k++)
    if (strcmp(name, names[k]) == 0) return k;
  return -1;
}

/* Row i of the per-sample gradients as doubles multiplied by scale. */
static void load_row(int dtype, const void *grads, int64_t i, int64_t d, double scale,
                     double *row)
{
  if (dtype == OPTIM_FLOAT32) {
    const float *g = (const float *)grads + (size_t)i * (size_t)d;
    for (int64_t j = 0; j < d; j++) row[j] = (double)g[j] * scale;
  } else {
    const double *g = (const double *)grads + (size_t)i * (size_t)d;
    for (int64_t j = 0; j < d; j++) row[j] = g[j] * scale;
  }
}

static double max_abs(int dtype, const void *grads, size_t n)
{
  double m = 0.0;
  if (dtype == OPTIM_FLOAT32) {
    const float *g = grads;
    for (size_t k = 0; k < n; k++) m = fmax(m, fabs((double)g[k]));
  } else {
    const double *g = grads;
    for (size_t k = 0; k < n; k++) m = fmax(m, fabs(g[k]));
  }
  return m;
}

/* num / den, where num is a variance term (>= 0) and den a constant^2
 * times a signal term (>= 0): 0 when there is no variance (the test is
 * passed whatever the signal), +inf when there is variance and the signal
 * is zero (or underflows). */
static double ratio(double num, double den)
{
  if (num == 0.0) return 0.0;
  if (den == 0.0) return INFINITY;
  return num / den;
}

/* The requested batch size r of a test on the scaled rows; mean[d] holds
 * their mean, work[max(d, b)] is scratch. */
static double statistic(int kind, int dtype, const void *grads, int64_t b, int64_t d,
                        double scale, double eta, double nu, const double *mean, double *row,
                        double *work)
{
  double bm1 = (double)(b - 1);

  if (kind == T_NORM || kind == T_COORD) {
    /* per-coordinate sums of squared deviations from the mean */
    double *dev = work;
    for (int64_t j = 0; j < d; j++) dev[j] = 0.0;
    for (int64_t i = 0; i < b; i++) {
      load_row(dtype, grads, i, d, scale, row);
      for (int64_t j = 0; j < d; j++) {
        double t = row[j] - mean[j];
        dev[j] += t * t;
      }
    }
    if (kind == T_NORM) {
      double var = 0.0, sig = 0.0;
      for (int64_t j = 0; j < d; j++) {
        var += dev[j];
        sig += mean[j] * mean[j];
      }
      return ratio(var / bm1, eta * eta * sig);
    }
    double r = 0.0;
    for (int64_t j = 0; j < d; j++) {
      double rj = ratio(dev[j] / bm1, eta * eta * (mean[j] * mean[j]));
      if (rj > r) r = rj;
    }
    return r;
  }

  /* inner product tests: c_i = <g_i, gbar>; Var(c_i) / ||gbar||^4 is
   * formed as (Var(c_i) / ||gbar||^2) / ||gbar||^2 (||gbar||^4 alone could
   * underflow) */
  double sig = 0.0;
  for (int64_t j = 0; j < d; j++) sig += mean[j] * mean[j];
  if (sig == 0.0) return INFINITY; /* the rows are not all zero (caller) */
  double *c = work;
  double cmean = 0.0;
  for (int64_t i = 0; i < b; i++) {
    load_row(dtype, grads, i, d, scale, row);
    double s = 0.0;
    for (int64_t j = 0; j < d; j++) s += row[j] * mean[j];
    c[i] = s;
    cmean += s;
  }
  cmean /= (double)b;
  double cvar = 0.0;
  for (int64_t i = 0; i < b; i++) {
    double t = c[i] - cmean;
    cvar += t * t;
  }
  double r = ratio(cvar / bm1 / sig, eta * eta * sig);
  if (kind == T_IP) return r;

  /* orthogonality part: o_i = g_i - (c_i / ||gbar||^2) gbar, sample
   * variance summed over coordinates; the mean of the o_i is identically
   * zero (mean c_i = ||gbar||^2), so no mean is subtracted */
  for (int64_t i = 0; i < b; i++) c[i] /= sig;
  double ovar = 0.0;
  for (int64_t i = 0; i < b; i++) {
    load_row(dtype, grads, i, d, scale, row);
    for (int64_t j = 0; j < d; j++) {
      double t = row[j] - c[i] * mean[j];
      ovar += t * t;
    }
  }
  double ro = ratio(ovar / bm1, nu * nu * sig);
  return ro > r ? ro : r;
}

int optim_batch_size_test(const char *test, int dtype, int64_t batch, int64_t numel,
                          const void *grads, double eta, double nu, int64_t *next_batch)
{
  /* no array of more than SIZE_MAX / 8 elements can exist (checked with
   * the largest element size, so that the order of the checks does not
   * depend on dtype) */
  if (test == NULL || grads == NULL || next_batch == NULL || batch < 2 || numel < 1 ||
      (uint64_t)batch > SIZE_MAX / sizeof(double) / (uint64_t)numel)
    return OPTIM_EINVAL;
  int kind = test_kind(test);
  if (kind < 0) return OPTIM_EUNKNOWN;
  if (!(isfinite(eta) && eta > 0.0)) return OPTIM_ERANGE;
  if (kind == T_AUG && !(isfinite(nu) && nu > 0.0)) return OPTIM_ERANGE;
  if (dtype != OPTIM_FLOAT32 && dtype != OPTIM_FLOAT64) return OPTIM_EDTYPE;
  size_t n = (size_t)batch * (size_t)numel;
  if (optim__nonfinite(dtype, grads, 0, n)) return OPTIM_ENONFINITE;

  double amax = max_abs(dtype, grads, n);
  if (amax == 0.0) { /* every gradient zero: no variance */
    *next_batch = batch;
    return OPTIM_OK;
  }
  int e;
  frexp(amax, &e); /* amax = f * 2^e, f in [0.5, 1) */
  double scale = ldexp(1.0, -e < 1023 ? -e : 1023);

  /* mean[d], row[d], scratch[max(d, b)] (at most 3d + b doubles: cannot
   * be had when that count does not even fit in size_t) */
  if ((uint64_t)batch > SIZE_MAX / sizeof(double) ||
      (uint64_t)numel > (SIZE_MAX / sizeof(double) - (uint64_t)batch) / 3)
    return OPTIM_ENOMEM;
  size_t nwork = numel > batch ? (size_t)numel : (size_t)batch;
  double *mem = malloc((2 * (size_t)numel + nwork) * sizeof(double));
  if (mem == NULL) return OPTIM_ENOMEM;
  double *mean = mem, *row = mem + numel, *work = mem + 2 * numel;
  for (int64_t j = 0; j < numel; j++) mean[j] = 0.0;
  for (int64_t i = 0; i < batch; i++) {
    load_row(dtype, grads, i, numel, scale, row);
    for (int64_t j = 0; j < numel; j++) mean[j] += row[j];
  }
  for (int64_t j = 0; j < numel; j++) mean[j] /= (double)batch;

  double r = statistic(kind, dtype, grads, batch, numel, scale, eta, nu, mean, row, work);
  free(mem);

  /* next = max(batch, ceil(r)), saturating at INT64_MAX */
  int64_t next = batch;
  if (r > (double)batch) {
    if (r >= 0x1p63)
      next = INT64_MAX;
    else {
      double c = ceil(r);
      next = (int64_t)c > batch ? (int64_t)c : batch;
    }
  }
  *next_batch = next;
  return OPTIM_OK;
}
