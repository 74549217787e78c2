/* adasvrg.c - AdaSVRG (Dubois-Taine, Vaswani, Babanezhad, Schmidt,
 * Lacoste-Julien; bpauld/AdaSVRG, spec section 10): SVRG's variance-reduced
 * gradient g = grad_B(x) - grad_B(x~) + mu (mu the full gradient at the
 * snapshot x~) stepped with AdaGrad, restarted at every snapshot:
 *   scalar:   G2 += ||g||^2 (over the group),  x -= eta g / sqrt(G2)
 *   diagonal: G2 += g*g (starts at 1e-8),      x -= eta g / sqrt(G2)
 * eta is lr, or with lr = 0 (the default) the adaptive ||mu_k|| /
 * (sqrt(2) Lmax), Lmax the running maximum of the secant estimates
 * ||mu_k - mu_k-1|| / ||x~_k - x~_k-1|| (the first one against a probe
 * point x + N(0, probe_std^2)); eta = 1e-4 while Lmax < 1e-8.  Snapshots
 * come from optim_snapshot (lib/snapshot.c); the gradient at the snapshot
 * of each step's minibatch from optim_param_bind_snapshot_grad. */
#include <math.h>
#include <string.h>

#include "optim-internal.h"

enum { LR, DIAGONAL, PROBE_STD, SEED };

static const hp_desc hps[] = {
  {"lr", OPTIM_TYPE_DOUBLE, 0, "0", 0, INFINITY, 0, 0,
   "step size eta; 0: adaptive, ||mu|| / (sqrt(2) Lmax) from secant estimates of the "
   "smoothness at each snapshot"},
  {"diagonal", OPTIM_TYPE_BOOL, 0, "false", 0, 1, HP_LAYOUT, 0,
   "per-coordinate AdaGrad accumulator (starts at 1e-8) instead of one scalar for the group"},
  {"probe_std", OPTIM_TYPE_DOUBLE, 0.01, "0.01", 0, INFINITY, HP_LO_OPEN, 0,
   "standard deviation of the noise of the first snapshot's probe point (adaptive lr)"},
  {"seed", OPTIM_TYPE_INT, 0, "0", 0, 9.007199254740992e15, 0, 0,
   "seed of the probe noise"},
};

enum { S_STEP, S_SNAPS, S_SNAPSHOT, S_FULL, S_SUMSQ, S_ETA, S_LMAX };

static void layout(const optim_group *g, const optim_param *p, state_layout *out)
{
  (void)p;
  static const char *const names[] = {"step", "snapshots", "snapshot", "full_grad",
                                      "sum_sq", "eta", "lmax"};
  for (int k = 0; k < 7; k++) {
    out->name[k] = names[k];
    out->kind[k] = k < 2 ? OPTIM_STATE_SCALAR : OPTIM_STATE_BUFFER;
  }
  out->count[S_SUMSQ] = hp_i(g, DIAGONAL) ? 0 : 1;
  out->count[S_ETA] = 1;
  out->count[S_LMAX] = 1;
  out->n = 7;
}

static double get1(const optim_param *p, int k)
{
  return p->dtype == OPTIM_FLOAT32 ? (double)*(const float *)p->state[k].buf
                                   : *(const double *)p->state[k].buf;
}

static void set1(optim_param *p, int k, double v)
{
  if (p->dtype == OPTIM_FLOAT32) *(float *)p->state[k].buf = (float)v;
  else *(double *)p->state[k].buf = v;
}

/* The variance-reduced gradient as the step reads it:
 * (grad * s - grad_snapshot * s) + mu, in the dtype. */
#define VR(T, g, a, mu, i, s, zero) \
  ((OPTIM_GRAD(T, g, i, zero) * (s) - OPTIM_GRAD(T, a, i, zero) * (s)) + (mu)[i])

#define SUMSQ_IMPL(T, SFX)                                                               \
  static double vr_sumsq_##SFX(const optim_param *p, size_t b, size_t e)                  \
  {                                                                                      \
    const T *g = p->kgrad, *a = p->aux_grad, *mu = p->state[S_FULL].buf;                 \
    const T s = (T)p->gscale;                                                            \
    double acc = 0;                                                                      \
    for (size_t i = b; i < e; i++) {                                                     \
      double v = (double)VR(T, g, a, mu, i, s, p->zero_nonfinite);                       \
      acc += v * v;                                                                      \
    }                                                                                    \
    return acc;                                                                          \
  }
SUMSQ_IMPL(float, f32)
SUMSQ_IMPL(double, f64)

static double sumsq(const optim_group *g, const optim_param *p, size_t b, size_t e)
{
  (void)g;
  return p->dtype == OPTIM_FLOAT32 ? vr_sumsq_f32(p, b, e) : vr_sumsq_f64(p, b, e);
}

enum { C_STEP, C_SCALE, C_ETA };

static void prepare(const optim_group *g, optim_param *p)
{
  p->state[S_STEP].scalar++;
  double eta = get1(p, S_ETA);
  p->coef[C_SCALE] = p->gscale;
  p->coef[C_ETA] = eta;
  if (!hp_i(g, DIAGONAL)) {
    double G2 = get1(p, S_SUMSQ) + g->gnorm2_sum;
    set1(p, S_SUMSQ, G2);
    p->coef[C_STEP] = G2 > 0 ? -eta / sqrt(G2) : 0; /* G2 = 0: every g was 0 */
  }
}

#define KERNEL_IMPL(T, SFX, SQRT)                                                        \
  OPTIM_CLONES static void adasvrg_##SFX(T *restrict x, const T *restrict g,            \
                                         const T *restrict a, const T *restrict mu,      \
                                         T *restrict G2, size_t n, const double *c,      \
                                         int zero)                                       \
  {                                                                                      \
    const T s = (T)c[C_SCALE];                                                           \
    if (!G2) {                                                                           \
      const T st = (T)c[C_STEP];                                                         \
      for (size_t i = 0; i < n; i++) x[i] += st * VR(T, g, a, mu, i, s, zero);           \
      return;                                                                            \
    }                                                                                    \
    const T eta = (T)c[C_ETA];                                                           \
    for (size_t i = 0; i < n; i++) {                                                     \
      T v = VR(T, g, a, mu, i, s, zero);                                                 \
      T q = G2[i] + v * v;                                                               \
      G2[i] = q;                                                                         \
      /* eta * v past the range against q = +inf is inf / inf: the step is     \
       * then eta * (v / sqrt(q)) = 0, not NaN (only for a NaN result) */      \
      T u = eta * v / SQRT(q);                                                           \
      x[i] -= u == u ? u : eta * (v / SQRT(q));                                          \
    }                                                                                    \
  }
KERNEL_IMPL(float, f32, sqrtf)
KERNEL_IMPL(double, f64, sqrt)

static void kernel(const optim_group *g, const optim_param *p, size_t b, size_t e)
{
  int diag = (int)hp_i(g, DIAGONAL);
  if (p->dtype == OPTIM_FLOAT32)
    adasvrg_f32((float *)p->kdata + b, (const float *)p->kgrad + b,
                (const float *)p->aux_grad + b, (const float *)p->state[S_FULL].buf + b,
                diag ? (float *)p->state[S_SUMSQ].buf + b : NULL, e - b, p->coef,
                p->zero_nonfinite);
  else
    adasvrg_f64((double *)p->kdata + b, (const double *)p->kgrad + b,
                (const double *)p->aux_grad + b, (const double *)p->state[S_FULL].buf + b,
                diag ? (double *)p->state[S_SUMSQ].buf + b : NULL, e - b, p->coef,
                p->zero_nonfinite);
}

/* splitmix64 of (seed, parameter, element): two uniforms, one normal. */
static uint64_t mix(uint64_t z)
{
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static double normal(uint64_t seed, int ordinal, size_t i)
{
  uint64_t a = mix(seed ^ mix((uint64_t)ordinal * 0x100000001b3ull ^ mix(i)));
  uint64_t b = mix(a);
  double u1 = ((double)(a >> 11) + 0.5) / 9007199254740992.0;
  double u2 = (double)(b >> 11) / 9007199254740992.0;
  return sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
}

static int probe(const optim_group *g, const optim_param *p, void *out)
{
  if (hp_d(g, LR) != 0 || p->state[S_SNAPS].scalar != 0) return 0;
  double sd = hp_d(g, PROBE_STD);
  uint64_t seed = (uint64_t)hp_i(g, SEED);
  for (size_t i = 0; i < p->numel; i++) {
    double z = sd * normal(seed, p->group_ordinal, i);
    if (p->dtype == OPTIM_FLOAT32) ((float *)out)[i] = ((const float *)p->data)[i] + (float)z;
    else ((double *)out)[i] = ((const double *)p->data)[i] + z;
  }
  return 1;
}

static double at(int dtype, const void *x, size_t i)
{
  return dtype == OPTIM_FLOAT32 ? (double)((const float *)x)[i] : ((const double *)x)[i];
}

/* New snapshot of the group's parameters idx[0..n): the secant estimate
 * over the whole group, then every parameter's state. */
static void snapshot(optim_optimizer *opt, optim_group *g, const int *idx, int n,
                    void *const *full, void *const *pr, void *const *pg)
{
  const int adaptive = hp_d(g, LR) == 0;
  double dmu = 0, dx = 0, mu2 = 0, lmax = 0;
  for (int k = 0; k < n; k++) {
    const optim_param *p = &opt->params[idx[k]];
    int fresh = p->state[S_SNAPS].scalar == 0;
    if (!fresh && get1(p, S_LMAX) > lmax) lmax = get1(p, S_LMAX);
    for (size_t i = 0; i < p->numel; i++) {
      double m = at(p->dtype, full[k], i);
      mu2 += m * m;
      double a, b;
      if (pr[k]) { /* the first snapshot: against the probe */
        a = m - at(p->dtype, pg[k], i);
        b = at(p->dtype, p->data, i) - at(p->dtype, pr[k], i);
      } else if (!fresh && adaptive) {
        a = m - at(p->dtype, p->state[S_FULL].buf, i);
        b = at(p->dtype, p->data, i) - at(p->dtype, p->state[S_SNAPSHOT].buf, i);
      } else {
        a = b = 0; /* fixed lr: no estimate needed */
      }
      dmu += a * a;
      dx += b * b;
    }
  }
  if (dx > 0) {
    double L = sqrt(dmu) / sqrt(dx);
    if (L > lmax) lmax = L;
  }
  double eta = hp_d(g, LR);
  if (eta == 0) eta = lmax < 1e-8 ? 1e-4 : sqrt(mu2) / (sqrt(2.0) * lmax);
  for (int k = 0; k < n; k++) {
    optim_param *p = &opt->params[idx[k]];
    size_t es = optim__dtype_size(p->dtype);
    memcpy(p->state[S_SNAPSHOT].buf, p->data, p->numel * es);
    memcpy(p->state[S_FULL].buf, full[k], p->numel * es);
    if (hp_i(g, DIAGONAL)) {
      for (size_t i = 0; i < p->numel; i++) {
        if (p->dtype == OPTIM_FLOAT32) ((float *)p->state[S_SUMSQ].buf)[i] = 1e-8f;
        else ((double *)p->state[S_SUMSQ].buf)[i] = 1e-8;
      }
    } else {
      set1(p, S_SUMSQ, 0);
    }
    set1(p, S_ETA, eta);
    set1(p, S_LMAX, lmax);
    p->state[S_SNAPS].scalar++;
  }
}

static int accept(const optim_group *g, const optim_param *p, char *msg, size_t size)
{
  (void)g;
  if (p->len != p->numel) {
    snprintf(msg, size, "%s: adasvrg steps whole parameters (no optim_param_set_range)", p->name);
    return OPTIM_EUNSUPPORTED;
  }
  return OPTIM_OK;
}

const optim_alg optim__alg_adasvrg = {
  .name = "adasvrg",
  .doc = "AdaSVRG: SVRG's variance-reduced gradient with AdaGrad steps restarted at every "
         "snapshot (scalar or diagonal), adaptive step size from secant smoothness estimates",
  .hp = hps,
  .nhp = (int)(sizeof hps / sizeof hps[0]),
  .accept = accept,
  .layout = layout,
  .prepare = prepare,
  .kernel = kernel,
  .needs_norms = 1,
  .sumsq = sumsq,
  .finite_sum = 1,
  .snapshot = snapshot,
  .snapshot_probe = probe,
};
