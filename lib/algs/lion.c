/* lion.c - Lion (google/automl lion_pytorch.py; spec section 10) and
 * Lion-K (Chen, Liu, Liang and Liu, 2023), which replaces Lion's sign by
 * the gradient of a convex K at the interpolated momentum:
 *
 *   p = p * (1 - lr * weight_decay)
 *   c = beta1 * exp_avg + (1 - beta1) * grad
 *   p = p - lr * gradK(c)
 *   exp_avg = beta2 * exp_avg + (1 - beta2) * grad
 *
 * K = l1 norm: gradK = sign (Lion itself, the fused element-wise kernel);
 * l2: c / ||c||_2; linf: sign(c_j) / |J| on the entries J where |c_j| is
 * largest.  The last two need the whole tensor: two passes, the first
 * reducing c (sums in double, in a fixed order), the second recomputing c
 * and updating. */
#include <math.h>
#include <stdio.h>

#include "optim-internal.h"

enum { LR, BETA1, BETA2, WEIGHT_DECAY, NORM };
enum { NORM_L1 = 0, NORM_L2 = 1, NORM_LINF = 2 };

#define LION_HPS                                                                          \
  {"lr", OPTIM_TYPE_DOUBLE, 1e-4, "1e-4", 0, INFINITY, 0, 0, "learning rate"},            \
  {"beta1", OPTIM_TYPE_DOUBLE, 0.9, "0.9", 0, 1, HP_HI_OPEN, 0,                           \
   "weight of exp_avg in the interpolation c the update is taken from"},                  \
  {"beta2", OPTIM_TYPE_DOUBLE, 0.99, "0.99", 0, 1, HP_HI_OPEN, 0,                         \
   "decay rate of exp_avg (running mean of gradients)"},                                  \
  {"weight_decay", OPTIM_TYPE_DOUBLE, 0, "0", 0, INFINITY, 0, 0,                          \
   "decoupled weight decay: p *= 1 - lr * weight_decay first"}

static const hp_desc lion_hps[] = {LION_HPS};
static const hp_desc lion_k_hps[] = {
  LION_HPS,
  {"norm", OPTIM_TYPE_STRING, 0, "l1", 0, 0, 0, "l1|l2|linf",
   "the norm K whose gradient replaces sign: l1 (Lion), l2 (c / ||c||_2 over the "
   "tensor) or linf (sign split evenly among the entries of largest |c|)"},
};

enum { C_STEP, C_B1, C_1MB1, C_B2, C_1MB2, C_DECAY, C_GSCALE };

static void layout(const optim_group *g, const optim_param *p, state_layout *out)
{
  (void)g;
  (void)p;
  out->name[0] = "exp_avg";
  out->kind[0] = OPTIM_STATE_BUFFER;
  out->n = 1;
}

static void prepare(const optim_group *g, optim_param *p)
{
  const double lr = hp_d(g, LR), b1 = hp_d(g, BETA1), b2 = hp_d(g, BETA2);
  double *c = p->coef;
  c[C_STEP] = -lr;
  c[C_B1] = b1;
  c[C_1MB1] = 1 - b1;
  c[C_B2] = b2;
  c[C_1MB2] = 1 - b2;
  c[C_DECAY] = 1 - lr * optim__wd(g, p, WEIGHT_DECAY);
  c[C_GSCALE] = p->gscale;
}

/* The reference's order: c = m*b1 + g*(1-b1); p = p*decay + (-lr)*sign(c);
 * m = m*b2 + (1-b2)*g.  sign(0) = 0. */
#define LION_KERNEL(T, SFX)                                                               \
  OPTIM_CLONES static void lion_##SFX(T *restrict p, const T *restrict g,                 \
                                      T *restrict m, size_t n, const double *c,           \
                                      int zero)                                           \
  {                                                                                       \
    const T step = (T)c[C_STEP], b1 = (T)c[C_B1], a1 = (T)c[C_1MB1];                      \
    const T b2 = (T)c[C_B2], a2 = (T)c[C_1MB2], decay = (T)c[C_DECAY];                    \
    const T gs = (T)c[C_GSCALE];                                                          \
    for (size_t i = 0; i < n; i++) {                                                      \
      T gi = OPTIM_GRAD(T, g, i, zero) * gs;                                              \
      T mi = m[i];                                                                        \
      T ci = mi * b1 + gi * a1;                                                           \
      T sg = (T)(ci > 0) - (T)(ci < 0);                                                   \
      p[i] = p[i] * decay + step * sg;                                                    \
      m[i] = mi * b2 + a2 * gi;                                                           \
    }                                                                                     \
  }

LION_KERNEL(float, f32)
LION_KERNEL(double, f64)

static void kernel(const optim_group *g, const optim_param *p, size_t b, size_t e)
{
  (void)g;
  if (p->dtype == OPTIM_FLOAT32)
    lion_f32((float *)p->kdata + b, (const float *)p->kgrad + b, (float *)p->state[0].buf + b,
             e - b, p->coef, p->zero_nonfinite);
  else
    lion_f64((double *)p->kdata + b, (const double *)p->kgrad + b,
             (double *)p->state[0].buf + b, e - b, p->coef, p->zero_nonfinite);
}

const optim_alg optim__alg_lion = {
  .name = "lion",
  .doc = "Lion: sign of interpolated momentum, decoupled weight decay (google/automl lion)",
  .hp = lion_hps,
  .nhp = (int)(sizeof lion_hps / sizeof lion_hps[0]),
  .layout = layout,
  .prepare = prepare,
  .kernel = kernel,
};

/* ---- Lion-K ------------------------------------------------------------------------ */

static int lion_k_whole(const optim_group *g, const optim_param *p)
{
  (void)p;
  return hp_i(g, NORM) != NORM_L1;
}

/* A range (optim_param_set_range) set under norm=l1 cannot step whole. */
static int lion_k_accept(const optim_group *g, const optim_param *p, char *msg, size_t size)
{
  if (!lion_k_whole(g, p) || p->len == p->numel) return OPTIM_OK;
  snprintf(msg, size,
           "%s: lion_k with norm=%s updates the tensor as a whole and cannot step a range "
           "(optim_param_set_range)",
           p->name, hp_i(g, NORM) == NORM_L2 ? "l2" : "linf");
  return OPTIM_EUNSUPPORTED;
}

/* Pass 1 reduces c: the sum of squares in double (l2), or max |c| and the
 * number of entries reaching it (linf), entry i into lane i % LANES (the
 * lanes vectorize; fixed order, so the result does not depend on threads),
 * lanes combined in order.  Pass 2 recomputes c (the same expression, so
 * the same values) and steps with D = k * c (l2) or D = k * sign(c) on the
 * maximal entries (linf). */
#define LANES 8
#define LION_K_IMPL(T, SFX)                                                                 \
  OPTIM_CLONES static void lion_k_reduce_##SFX(const T *restrict g, const T *restrict m,    \
                                               size_t n, const double *c, int zero,         \
                                               double *ss_out, T *top_out,                  \
                                               int64_t *ties_out)                           \
  {                                                                                         \
    const T b1 = (T)c[C_B1], a1 = (T)c[C_1MB1], gs = (T)c[C_GSCALE];                        \
    double ss[LANES] = {0};                                                                 \
    T top[LANES] = {0};                                                                     \
    int64_t ties[LANES] = {0};                                                              \
    size_t i = 0;                                                                           \
    for (; i + LANES <= n; i += LANES)                                                      \
      for (size_t l = 0; l < LANES; l++) {                                                  \
        T ci = m[i + l] * b1 + (OPTIM_GRAD(T, g, i + l, zero) * gs) * a1;                   \
        T a = ci < 0 ? -ci : ci;                                                            \
        ss[l] += (double)ci * (double)ci;                                                   \
        ties[l] = a > top[l] ? 1 : a == top[l] ? ties[l] + 1 : ties[l];                     \
        top[l] = a > top[l] ? a : top[l];                                                   \
      }                                                                                     \
    for (size_t l = 0; i < n; i++, l++) {                                                   \
      T ci = m[i] * b1 + (OPTIM_GRAD(T, g, i, zero) * gs) * a1;                             \
      T a = ci < 0 ? -ci : ci;                                                              \
      ss[l] += (double)ci * (double)ci;                                                     \
      ties[l] = a > top[l] ? 1 : a == top[l] ? ties[l] + 1 : ties[l];                       \
      top[l] = a > top[l] ? a : top[l];                                                     \
    }                                                                                       \
    double sum = 0;                                                                         \
    T mx = 0;                                                                               \
    int64_t cnt = 0;                                                                        \
    for (size_t l = 0; l < LANES; l++) {                                                    \
      sum += ss[l];                                                                         \
      mx = top[l] > mx ? top[l] : mx;                                                       \
    }                                                                                       \
    for (size_t l = 0; l < LANES; l++) cnt += top[l] == mx ? ties[l] : 0;                   \
    *ss_out = sum;                                                                          \
    *top_out = mx;                                                                          \
    *ties_out = cnt;                                                                        \
  }                                                                                         \
  OPTIM_CLONES static void lion_k_##SFX(T *restrict p, const T *restrict g, T *restrict m,  \
                                        size_t n, const double *c, int zero, int norm)      \
  {                                                                                         \
    const T b1 = (T)c[C_B1], a1 = (T)c[C_1MB1], b2 = (T)c[C_B2], a2 = (T)c[C_1MB2];         \
    const T decay = (T)c[C_DECAY], gs = (T)c[C_GSCALE];                                     \
    double ss;                                                                              \
    T top;                                                                                  \
    int64_t ties;                                                                           \
    lion_k_reduce_##SFX(g, m, n, c, zero, &ss, &top, &ties);                                \
    /* the step on each moved entry: -lr/||c||_2 (times c), -lr/|J| (times sign c) */      \
    T k = 0;                                                                                \
    if (norm == NORM_L2 && ss > 0) k = (T)(c[C_STEP] / sqrt(ss));                           \
    if (norm == NORM_LINF && top > 0) k = (T)(c[C_STEP] / (double)ties);                    \
    for (size_t i = 0; i < n; i++) {                                                        \
      T gi = OPTIM_GRAD(T, g, i, zero) * gs;                                                \
      T mi = m[i];                                                                          \
      T ci = mi * b1 + gi * a1;                                                             \
      T a = ci < 0 ? -ci : ci;                                                              \
      T sg = (T)(ci > 0) - (T)(ci < 0);                                                     \
      T d = norm == NORM_L2 ? ci : a == top ? sg : (T)0;                                    \
      p[i] = p[i] * decay + k * d;                                                          \
      m[i] = mi * b2 + a2 * gi;                                                             \
    }                                                                                       \
  }

LION_K_IMPL(float, f32)
LION_K_IMPL(double, f64)

static int lion_k_step(const optim_group *g, optim_param *p, void *work)
{
  (void)work;
  int norm = (int)hp_i(g, NORM);
  if (p->dtype == OPTIM_FLOAT32)
    lion_k_f32(p->data, p->grad, p->state[0].buf, p->numel, p->coef, p->zero_nonfinite, norm);
  else
    lion_k_f64(p->data, p->grad, p->state[0].buf, p->numel, p->coef, p->zero_nonfinite, norm);
  return 0;
}

static double lion_k_cost(const optim_group *g, const optim_param *p)
{
  (void)g;
  return 12.0 * (double)p->numel;
}

const optim_alg optim__alg_lion_k = {
  .name = "lion_k",
  .doc = "Lion-K: Lion with the gradient of a norm K (l1: Lion, l2, linf) of the "
         "interpolated momentum",
  .hp = lion_k_hps,
  .nhp = (int)(sizeof lion_k_hps / sizeof lion_k_hps[0]),
  .accept = lion_k_accept,
  .layout = layout,
  .prepare = prepare,
  .kernel = kernel,
  .whole = lion_k_whole,
  .param_step = lion_k_step,
  .cost = lion_k_cost,
};
