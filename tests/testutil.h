/* testutil.h - helpers shared by the check suites. */
#ifndef OPTIM_TESTUTIL_H
#define OPTIM_TESTUTIL_H

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "optim.h"

/* The golden gradient noise of tests/golden/README, exact in float32. */
static inline double golden_noise(uint64_t i, uint64_t k, uint64_t j, uint64_t seed)
{
  uint32_t x = (uint32_t)(i * 2654435761u + k * 40503u + (j + 1) * 97u + seed * 7919u);
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return (double)((int)(x % 2001u) - 1000) / 512.0;
}

/* g = 0.25 * p + s, rounded twice in the dtype. */
static inline void golden_grad(int dtype, const void *p, void *g, size_t n, uint64_t k,
                               uint64_t j, uint64_t seed)
{
  for (size_t i = 0; i < n; i++) {
    double s = golden_noise(i, k, j, seed);
    if (dtype == OPTIM_FLOAT32) {
      float t = 0.25f * ((const float *)p)[i];
      ((float *)g)[i] = t + (float)s;
    } else {
      double t = 0.25 * ((const double *)p)[i];
      ((double *)g)[i] = t + s;
    }
  }
}

/* Parse the numbers of a golden-file line (C99 hex floats or decimals):
 * n of them (all up to the end of the line when n is 0); *count (if not
 * NULL) receives how many were read.  NULL when n > 0 and fewer were
 * there.  The caller frees the array. */
static inline double *golden_values(char *s, size_t n, size_t *count)
{
  size_t cap = n ? n : 64, k = 0;
  double *v = malloc(sizeof *v * cap);
  for (;;) {
    char *end;
    double x = strtod(s, &end);
    if (end == s) break;
    if (k == cap) v = realloc(v, sizeof *v * (cap *= 2));
    v[k++] = x;
    s = end;
    if (n && k == n) break;
  }
  if (count) *count = k;
  if (n && k != n) {
    free(v);
    return NULL;
  }
  return v;
}

/* FNV-1a over bytes, folded: used to assert that nothing changed. */
static inline uint64_t hash_bytes(uint64_t h, const void *data, size_t n)
{
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

/* Fold into h the state entries (names, scalars, buffers) of parameter i. */
static inline uint64_t hash_param_state(uint64_t h, optim_optimizer *opt, int i)
{
  int dtype, ndim;
  int64_t shape[OPTIM_MAX_DIMS];
  optim_param_info(opt, i, NULL, NULL, &dtype, &ndim, shape);
  int ns = optim_state_count(opt, i);
  h = hash_bytes(h, &ns, sizeof ns);
  for (int k = 0; k < ns; k++) {
    const char *name;
    int kind;
    int64_t numel;
    optim_state_info(opt, i, k, &name, &kind, &numel);
    h = hash_bytes(h, name, strlen(name));
    if (kind == OPTIM_STATE_SCALAR) {
      int64_t v;
      optim_state_scalar(opt, i, name, &v);
      h = hash_bytes(h, &v, sizeof v);
    } else {
      const void *data;
      optim_state_buffer(opt, i, name, &data, &numel);
      h = hash_bytes(h, data, (size_t)numel * (dtype == OPTIM_FLOAT32 ? 4 : 8));
    }
  }
  return h;
}

/* Hash of every hyperparameter-independent piece of optimizer state:
 * each parameter's state buffers and scalars, and its data. */
static inline uint64_t hash_state(optim_optimizer *opt)
{
  uint64_t h = 1469598103934665603ull;
  int np = optim_param_count(opt);
  for (int i = 0; i < np; i++) h = hash_param_state(h, opt, i);
  return h;
}

/* Run a suite, freeing it; the exit status for make check. */
static inline int run_suite(Suite *s)
{
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}

#endif
