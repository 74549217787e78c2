/* matrix.c - shared pieces of the orthogonalizing optimizers. */
#include <math.h>
#include <stdio.h>

#include "matrix.h"

void optim__matrix_view(const optim_param *p, int64_t *batch, int64_t *rows, int64_t *cols)
{
  *batch = 1;
  *rows = p->shape[0];
  *cols = (int64_t)p->numel / p->shape[0];
  if (p->ndim == 3) {
    *batch = p->shape[0];
    *rows = p->shape[1];
    *cols = p->shape[2];
  }
}

int optim__matrix_fits(const optim_param *p, const char *alg, char *msg, size_t size)
{
  int64_t batch, rows, cols;
  optim__matrix_view(p, &batch, &rows, &cols);
  if ((uint64_t)rows * (uint64_t)cols < ((uint64_t)1 << 31)) return OPTIM_OK;
  snprintf(msg, size, "%s: '%s' is a %lld x %lld matrix; BLAS sizes are ints, so matrices "
           "must have fewer than 2^31 elements", alg, p->name, (long long)rows, (long long)cols);
  return OPTIM_EUNSUPPORTED;
}

int optim__matrix_accept(const optim_param *p, int matrix, int routed, const char *alg,
                         const char *what, char *msg, size_t size)
{
  if (matrix) return optim__matrix_fits(p, alg, msg, size);
  if (routed) return OPTIM_OK;
  snprintf(msg, size,
           "%s: '%s' has %d dimension%s; %s updates %s: register it in another group "
           "(adamw, say), or set nonmatrix=adamw to give it %s's AdamW",
           alg, p->name, p->ndim, p->ndim == 1 ? "" : "s", alg, what, alg);
  return OPTIM_EUNSUPPORTED;
}

double optim__muon_scale(const optim_param *p)
{
  double r = (double)p->shape[p->ndim - 2] / (double)p->shape[p->ndim - 1];
  return sqrt(r > 1 ? r : 1);
}

int optim__ns_prec(int64_t choice, int dtype)
{
  return choice == 0 ? dtype : choice == 1 ? OPTIM_FLOAT32 : OPTIM_FLOAT64;
}

#define MATRIX_KERNELS(T, SFX, SQRT)                                                   \
  static void momentum_##SFX(T *restrict m, const T *restrict g, T *restrict u,        \
                             size_t n, double beta, int nesterov, int zero,            \
                             double gscale)                                            \
  {                                                                                    \
    const T w = (T)(1 - beta), wc = (T)1 - w, bt = (T)beta, btc = (T)1 - bt;            \
    const T gs = (T)gscale;                                                            \
    for (size_t i = 0; i < n; i++) {                                                   \
      T gi = g ? OPTIM_GRAD(T, g, i, zero) * gs : (T)0;                                \
      T mi = LERP(m[i], gi, w, wc);                                                    \
      m[i] = mi;                                                                       \
      u[i] = nesterov ? LERP(gi, mi, bt, btc) : mi;                                    \
    }                                                                                  \
  }                                                                                    \
  static void apply_##SFX(T *restrict p, const T *restrict u, size_t n, double lr,      \
                          double decay, double scale)                                  \
  {                                                                                    \
    const T a = (T)-lr, d = (T)decay, s = (T)scale;                                    \
    for (size_t i = 0; i < n; i++) {                                                   \
      T pi = p[i] * d;                                                                 \
      p[i] = pi + a * (u[i] * s);                                                      \
    }                                                                                  \
  }                                                                                    \
  OPTIM_CLONES static void aux_##SFX(T *restrict p, const T *restrict g,               \
                                     T *restrict m, T *restrict v, size_t n,           \
                                     const double *c, int zero)                        \
  {                                                                                    \
    const T bc1 = (T)c[0], bc2 = (T)c[1], lr = (T)-c[2], decay = (T)c[3];              \
    const T w1 = (T)c[4], w2 = (T)c[5], eps = (T)c[6];                                 \
    const T w1c = (T)1 - w1, w2c = (T)1 - w2, gs = (T)c[7];                            \
    for (size_t i = 0; i < n; i++) {                                                   \
      T gi = g ? OPTIM_GRAD(T, g, i, zero) * gs : (T)0;                                \
      T mi = LERP(m[i], gi, w1, w1c);                                                  \
      T vi = LERP_SQ(v[i], gi * gi, w2, w2c);                                             \
      m[i] = mi;                                                                       \
      v[i] = vi;                                                                       \
      T u = (mi / bc1) / (SQRT(vi / bc2) + eps);                                       \
      T pi = p[i] * decay;                                                             \
      p[i] = pi + lr * u;                                                              \
    }                                                                                  \
  }

MATRIX_KERNELS(float, f32, sqrtf)
MATRIX_KERNELS(double, f64, sqrt)

void optim__momentum_lerp(int dtype, void *m, const void *g, void *u, size_t n, double beta,
                          int nesterov, int zero, double gscale)
{
  if (dtype == OPTIM_FLOAT32) momentum_f32(m, g, u, n, beta, nesterov, zero, gscale);
  else momentum_f64(m, g, u, n, beta, nesterov, zero, gscale);
}

void optim__apply_update(int dtype, void *p, const void *u, size_t n, double lr, double decay,
                         double scale)
{
  if (dtype == OPTIM_FLOAT32) apply_f32(p, u, n, lr, decay, scale);
  else apply_f64(p, u, n, lr, decay, scale);
}

void optim__aux_prepare(const optim_group *g, optim_param *p, int first_hp, int64_t step,
                        int decay_needs_grad)
{
  double lr = hp_d(g, first_hp), b1 = hp_d(g, first_hp + 1), b2 = hp_d(g, first_hp + 2);
  double *c = p->coef;
  c[0] = 1 - pow(b1, (double)step);
  c[1] = 1 - pow(b2, (double)step);
  c[2] = lr;
  c[3] = (decay_needs_grad && !p->grad) ? 1 : 1 - lr * optim__wd(g, p, first_hp + 4);
  c[4] = 1 - b1;
  c[5] = 1 - b2;
  c[6] = hp_d(g, first_hp + 3);
  c[7] = p->gscale;
}

void optim__aux_kernel(const optim_param *p, size_t b, size_t e)
{
  if (p->dtype == OPTIM_FLOAT32)
    aux_f32((float *)p->kdata + b, p->kgrad ? (const float *)p->kgrad + b : NULL,
            (float *)p->state[1].buf + b, (float *)p->state[2].buf + b, e - b, p->coef,
            p->zero_nonfinite);
  else
    aux_f64((double *)p->kdata + b, p->kgrad ? (const double *)p->kgrad + b : NULL,
            (double *)p->state[1].buf + b, (double *)p->state[2].buf + b, e - b, p->coef,
            p->zero_nonfinite);
}

void optim__momentum_layout(state_layout *out)
{
  out->name[0] = "step";
  out->kind[0] = OPTIM_STATE_SCALAR;
  out->name[1] = "momentum_buffer";
  out->kind[1] = OPTIM_STATE_BUFFER;
  out->n = 2;
}

void optim__aux_layout(state_layout *out)
{
  out->name[0] = "step";
  out->kind[0] = OPTIM_STATE_SCALAR;
  out->name[1] = "exp_avg";
  out->kind[1] = OPTIM_STATE_BUFFER;
  out->name[2] = "exp_avg_sq";
  out->kind[2] = OPTIM_STATE_BUFFER;
  out->n = 3;
}

/* k-th smallest of a[0..n), by quickselect with a median-of-three pivot
 * (Hoare partition); a is reordered so that a[k] holds it. */
#define QUANTILE(T, SFX)                                                            \
  static T select_##SFX(T *a, size_t n, size_t k)                                   \
  {                                                                                 \
    size_t lo = 0, hi = n - 1;                                                      \
    while (hi > lo) {                                                               \
      size_t mid = lo + (hi - lo) / 2;                                              \
      if (a[mid] < a[lo]) { T t = a[mid]; a[mid] = a[lo]; a[lo] = t; }              \
      if (a[hi] < a[lo]) { T t = a[hi]; a[hi] = a[lo]; a[lo] = t; }                 \
      if (a[hi] < a[mid]) { T t = a[hi]; a[hi] = a[mid]; a[mid] = t; }              \
      T pivot = a[mid];                                                             \
      size_t i = lo, j = hi;                                                        \
      for (;;) {                                                                    \
        while (a[i] < pivot) i++;                                                   \
        while (pivot < a[j]) j--;                                                   \
        if (i >= j) break;                                                          \
        T t = a[i]; a[i] = a[j]; a[j] = t;                                          \
        i++;                                                                        \
        j--;                                                                        \
      }                                                                             \
      /* a[lo..j] <= pivot <= a[j+1..hi] */                                         \
      if (k <= j) hi = j;                                                           \
      else lo = j + 1;                                                              \
    }                                                                               \
    return a[k];                                                                    \
  }                                                                                 \
  T optim__quantile_##SFX(T *a, size_t n, double q)                                 \
  {                                                                                 \
    double idx = q * (double)(n - 1);                                               \
    size_t k = (size_t)floor(idx);                                                  \
    if (k >= n - 1) return select_##SFX(a, n, n - 1);                               \
    T w = (T)(idx - (double)k);                                                     \
    T lo = select_##SFX(a, n, k), hi = a[k + 1];                                    \
    for (size_t i = k + 2; i < n; i++)                                              \
      if (a[i] < hi) hi = a[i];                                                     \
    return w < (T)0.5 ? lo + w * (hi - lo) : hi - (hi - lo) * ((T)1 - w);           \
  }

QUANTILE(float, f32)
QUANTILE(double, f64)
