/* adam_cm.c - Adam with critical momenta (chandar-lab/CMOptimizer Adam_CM,
 * spec section 8).  Each parameter keeps a buffer of up to topc past first
 * moments with priority keys; Adam runs on a = m + (mean of the buffer).
 *
 *   p = p * (1 - lr * weight_decay)                  (every call)
 *   buffer empty (first call): buffer = {(n, g)}; m = v = 0; no move
 *   otherwise: m = b1 m + (1 - b1) g;  a = m + buffer_sum / buffer_size
 *              (the mean before inserting); insert (n, m) when the buffer
 *              is not full, else replace the smallest key's entry when
 *              n exceeds it (critical_test: see below)
 *   t += 1;  v = b2 v + (1 - b2) a^2;  keys *= decay
 *   p = p - (lr / bc1) * a / (sqrt(v) / sqrt(bc2) + eps)
 *
 * The keys and the slot are decided here, serially, in prepare(); the
 * element-wise work (m, a, v, p, and the copy of m into the slot with the
 * running sum updated) is one fused threaded kernel.  kappa = 0 is plain
 * Adam with decoupled decay, the same arithmetic as adam/adamw. */
#include <math.h>

#include "optim-internal.h"

enum { LR, BETA1, BETA2, EPS, DECAY, KAPPA, TOPC, WEIGHT_DECAY, AMSGRAD, CRITICAL_TEST,
       SYNCED, SEED };

static const hp_desc hps[] = {
  {"lr", OPTIM_TYPE_DOUBLE, 1e-3, "1e-3", 0, INFINITY, 0, 0, "learning rate"},
  {"beta1", OPTIM_TYPE_DOUBLE, 0.9, "0.9", 0, 1, HP_HI_OPEN, 0,
   "decay rate of the first moment (running mean of gradients)"},
  {"beta2", OPTIM_TYPE_DOUBLE, 0.999, "0.999", 0, 1, HP_HI_OPEN, 0,
   "decay rate of the second moment (running mean of the squared aggregated momentum)"},
  {"eps", OPTIM_TYPE_DOUBLE, 1e-8, "1e-8", 0, INFINITY, 0, 0,
   "added to the bias-corrected root second moment"},
  {"decay", OPTIM_TYPE_DOUBLE, 0.7, "0.7", 0, 1, 0, 0,
   "factor applied to every priority key of the buffer at each step"},
  {"kappa", OPTIM_TYPE_DOUBLE, 1, "1", 0, INFINITY, 0, 0,
   "on/off: 0 is plain Adam (decoupled decay), any other value uses critical momenta"},
  {"topc", OPTIM_TYPE_INT, 5, "5", 1, 1e4, HP_LAYOUT | HP_REINIT, 0,
   "capacity of the buffer of critical momenta (entries per parameter)"},
  {"weight_decay", OPTIM_TYPE_DOUBLE, 0, "0", 0, INFINITY, 0, 0,
   "decoupled weight decay: param *= 1 - lr * weight_decay first, on every call"},
  {"amsgrad", OPTIM_TYPE_BOOL, 0, "false", 0, 1, HP_LAYOUT, 0,
   "use the running maximum of the second moment (AMSGrad)"},
  {"critical_test", OPTIM_TYPE_DOUBLE, 0, "0", 0, 1, 0, 0,
   "probability that a full buffer's last smallest-key slot is overwritten without the "
   "priority test"},
  {"synced", OPTIM_TYPE_BOOL, 1, "true", 0, 1, 0, 0,
   "priority = sum of the gradient norms of the group's parameters (true) or the "
   "tensor's own gradient norm (false)"},
  {"seed", OPTIM_TYPE_INT, 0, "0", 0, 9007199254740992.0, 0, 0,
   "seed of the draws of critical_test (with the group, the parameter's ordinal in it "
   "and the step)"},
};

/* State entries, in layout order (max_exp_avg_sq only with amsgrad, last). */
enum { S_STEP, S_EXP_AVG, S_EXP_AVG_SQ, S_BUFFER, S_SUM, S_KEYS, S_SIZE, S_LAST, S_USED,
       S_MAX };
static const char *const state_names[] = {"step",   "exp_avg",     "exp_avg_sq",
                                          "buffer", "buffer_sum",  "keys",
                                          "buffer_size", "last_slot", "slot_used",
                                          "max_exp_avg_sq"};

static void layout(const optim_group *g, const optim_param *p, state_layout *out)
{
  size_t topc = (size_t)hp_i(g, TOPC);
  int n = hp_i(g, AMSGRAD) ? S_MAX + 1 : S_MAX;
  for (int k = 0; k < n; k++) {
    out->name[k] = state_names[k];
    out->kind[k] = (k == S_STEP || k == S_SIZE || k == S_LAST) ? OPTIM_STATE_SCALAR
                                                               : OPTIM_STATE_BUFFER;
  }
  out->count[S_BUFFER] = topc * p->len;
  out->count[S_KEYS] = topc;
  out->count[S_USED] = topc;
  out->n = n;
}

/* Per-step coefficients (p->coef). */
enum { C_STEP, C_BC2_SQRT, C_B1, C_1MB1, C_B2, C_1MB2, C_EPS, C_DECAY, C_SIGN, C_MODE,
       C_SIZE, C_SLOT };
/* C_MODE: plain Adam (kappa = 0), a first call (empty buffer), critical momenta.
 * C_SLOT: the buffer slot m is copied to (-1: none); it replaces an entry
 * when below C_SIZE, else it is appended. */
enum { MODE_ADAM = 0, MODE_FIRST = 1, MODE_CM = 2 };

/* Element k of a small state buffer of the dtype (keys, slot_used). */
static double elem_get(const optim_param *p, int entry, size_t k)
{
  const void *x = p->state[entry].buf;
  return p->dtype == OPTIM_FLOAT32 ? (double)((const float *)x)[k] : ((const double *)x)[k];
}

static void elem_set(optim_param *p, int entry, size_t k, double val)
{
  void *x = p->state[entry].buf;
  if (p->dtype == OPTIM_FLOAT32) ((float *)x)[k] = (float)val;
  else ((double *)x)[k] = val;
}

/* keys *= decay in the dtype, as torch.mul(keys, decay). */
static void keys_decay(optim_param *p, size_t n, double decay)
{
  void *keys = p->state[S_KEYS].buf;
  if (p->dtype == OPTIM_FLOAT32) {
    const float d = (float)decay;
    for (size_t k = 0; k < n; k++) ((float *)keys)[k] *= d;
  } else {
    for (size_t k = 0; k < n; k++) ((double *)keys)[k] *= decay;
  }
}

/* The uniform draw in [0, 1) of critical_test: a SplitMix64 hash of the
 * seed, the group, the parameter's ordinal in it and the step t. */
static uint64_t mix64(uint64_t z)
{
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static double uniform(uint64_t seed, int group, int ordinal, int64_t t)
{
  uint64_t z = mix64(seed);
  z = mix64(z ^ (uint64_t)group);
  z = mix64(z ^ (uint64_t)ordinal);
  z = mix64(z ^ (uint64_t)t);
  return (double)(z >> 11) * 0x1p-53;
}

/* The slot the new momentum goes to (-1: none), as Adam_CM's buffer
 * decides it; updates buffer_size, last_slot, slot_used and the slot's key. */
static int64_t choose_slot(const optim_group *g, optim_param *p, double key, int64_t t)
{
  int64_t *size = &p->state[S_SIZE].scalar, *last = &p->state[S_LAST].scalar;
  const int64_t cap = hp_i(g, TOPC);
  int64_t slot = -1;
  if (*size < cap) {
    slot = (*size)++;
  } else if (uniform((uint64_t)hp_i(g, SEED), p->group, p->group_ordinal, t) >=
             hp_d(g, CRITICAL_TEST)) {
    int64_t j = 0; /* argmin, the first of equal keys */
    for (int64_t k = 1; k < cap; k++)
      if (elem_get(p, S_KEYS, (size_t)k) < elem_get(p, S_KEYS, (size_t)j)) j = k;
    *last = j;
    if (key > elem_get(p, S_KEYS, (size_t)j)) slot = j;
  } else {
    slot = *last; /* overwritten without the test */
  }
  if (slot >= 0) {
    elem_set(p, S_KEYS, (size_t)slot, key);
    elem_set(p, S_USED, (size_t)slot, 1);
  }
  return slot;
}

static void prepare(const optim_group *g, optim_param *p)
{
  const int64_t topc = hp_i(g, TOPC);
  int64_t *step = &p->state[S_STEP].scalar, *size = &p->state[S_SIZE].scalar;
  double *c = p->coef;
  /* Slot 0 fills first: a buffer with entries and slot 0 unused was
   * re-created, empty, by a change of topc. */
  if (*size > topc || elem_get(p, S_USED, 0) == 0) *size = 0;
  c[C_MODE] = hp_d(g, KAPPA) == 0 ? MODE_ADAM : *size == 0 ? MODE_FIRST : MODE_CM;
  c[C_SIZE] = (double)*size;
  c[C_SLOT] = -1;
  if (c[C_MODE] == MODE_FIRST) { /* the reference's state initialization */
    *step = 0;
    p->state[S_LAST].scalar = 0;
    for (size_t k = 0; k < (size_t)topc; k++) {
      elem_set(p, S_KEYS, k, 0);
      elem_set(p, S_USED, k, 0);
    }
  }
  const int64_t t = ++*step;
  if (c[C_MODE] != MODE_ADAM) {
    /* the priority, rounded to the dtype as the reference's tensor */
    double key = hp_i(g, SYNCED) ? g->gnorm_sum : sqrt(p->gnorm2);
    key = p->dtype == OPTIM_FLOAT32 ? (double)(float)key : key;
    c[C_SLOT] = (double)choose_slot(g, p, key, t);
  }
  keys_decay(p, (size_t)topc, hp_d(g, DECAY));

  const double lr = hp_d(g, LR), b1 = hp_d(g, BETA1), b2 = hp_d(g, BETA2);
  c[C_STEP] = lr / (1 - pow(b1, (double)t));
  c[C_BC2_SQRT] = sqrt(1 - pow(b2, (double)t));
  c[C_B1] = b1;
  c[C_1MB1] = 1 - b1;
  c[C_B2] = b2;
  c[C_1MB2] = 1 - b2;
  c[C_EPS] = hp_d(g, EPS);
  c[C_DECAY] = 1 - lr * optim__wd(g, p, WEIGHT_DECAY);
  c[C_SIGN] = p->gscale; /* optim_step_scaled */
}

/* One fused pass over [0, n) of the range.  The operation order is the
 * reference's (torch's):
 *   m = m*b1 + (1-b1)*g;  a = m + sum/size;  sum = (sum - old) + m;
 *   v = v*b2 + ((1-b2)*a)*a;  p = p + ((-lr/bc1)*a) / (sqrt(v)/sqrt(bc2) + eps)
 * (kappa = 0: a = m and v from g*g, adam's kernel exactly).
 * slot is the chosen buffer slot's range (NULL: none); replace says it
 * held an entry.  One loop per case (the aggregation AGG, with or without
 * AMSGrad), so that each vectorizes. */
#define CM_LOOP(T, SQRT, AGG, Q, VMAX)                  \
  for (size_t i = 0; i < n; i++) {                      \
    T pi = p[i], gi = OPTIM_GRAD(T, g, i, zero) * sign; \
    pi = decoupled ? pi * decay : pi;                   \
    T mi = m[i] * b1 + a1 * gi, ai = mi;                \
    AGG;                                                \
    T vi = v[i] * b2 + a2 * Q * Q, vx = vi;             \
    VMAX;                                               \
    m[i] = mi;                                          \
    v[i] = vi;                                          \
    p[i] = pi + step * ai / (SQRT(vx) / bc2s + eps);    \
  }
#define CM_AMS(T, SQRT, AGG, Q)                                                      \
  do {                                                                               \
    if (vmax) {                                                                      \
      CM_LOOP(T, SQRT, AGG, Q, T mo = vmax[i]; vx = (vi > mo || vi != vi) ? vi : mo; \
              vmax[i] = vx)                                                          \
    } else {                                                                         \
      CM_LOOP(T, SQRT, AGG, Q, (void)0)                                              \
    }                                                                                \
  } while (0)
#define ADAM_CM_KERNEL(T, SFX, SQRT)                                                     \
  OPTIM_CLONES static void adam_cm_##SFX(T *restrict p, const T *restrict g,             \
                                         T *restrict m, T *restrict v, T *restrict vmax, \
                                         T *restrict sum, T *restrict slot, int replace, \
                                         size_t n, const double *c, int zero)            \
  {                                                                                      \
    const T step = (T)-c[C_STEP], bc2s = (T)c[C_BC2_SQRT];                               \
    const T b1 = (T)c[C_B1], a1 = (T)c[C_1MB1], b2 = (T)c[C_B2];                         \
    const T a2 = (T)c[C_1MB2], eps = (T)c[C_EPS], decay = (T)c[C_DECAY];                 \
    const T sign = (T)c[C_SIGN], size = (T)c[C_SIZE];                                    \
    const int decoupled = c[C_DECAY] != 1, mode = (int)c[C_MODE];                        \
    if (mode == MODE_FIRST) { /* the raw gradient is the first entry; nothing moves */   \
      for (size_t i = 0; i < n; i++) {                                                   \
        T pi = p[i], gi = OPTIM_GRAD(T, g, i, zero) * sign;                              \
        p[i] = decoupled ? pi * decay : pi;                                              \
        slot[i] = gi;                                                                    \
        sum[i] = (T)0 + gi;                                                              \
        m[i] = 0;                                                                        \
        v[i] = 0;                                                                        \
      }                                                                                  \
      for (size_t i = 0; vmax && i < n; i++) vmax[i] = 0;                                \
    } else if (mode == MODE_ADAM) {                                                      \
      CM_AMS(T, SQRT, (void)0, gi);                                                      \
    } else if (slot == NULL) {                                                           \
      CM_AMS(T, SQRT, ai = mi + sum[i] / size, ai);                                      \
    } else if (replace) {                                                                \
      CM_AMS(T, SQRT, ai = mi + sum[i] / size; sum[i] = (sum[i] - slot[i]) + mi;         \
             slot[i] = mi, ai);                                                          \
    } else {                                                                             \
      CM_AMS(T, SQRT, ai = mi + sum[i] / size; sum[i] = sum[i] + mi; slot[i] = mi, ai);  \
    }                                                                                    \
  }

ADAM_CM_KERNEL(float, f32, sqrtf)
ADAM_CM_KERNEL(double, f64, sqrt)

static void kernel(const optim_group *g, const optim_param *p, size_t b, size_t e)
{
  (void)g;
  const size_t es = optim__dtype_size(p->dtype);
  const double slot = p->coef[C_SLOT];
  char *vm = p->nstate > S_MAX ? (char *)p->state[S_MAX].buf + b * es : NULL;
  char *sl = slot >= 0 ? (char *)p->state[S_BUFFER].buf + ((size_t)slot * p->len + b) * es
                       : NULL;
  const int replace = slot < p->coef[C_SIZE];
#define ADAM_CM_ARGS(T)                                                                    \
  (T *)p->kdata + b, (const T *)p->kgrad + b, (T *)p->state[S_EXP_AVG].buf + b,            \
      (T *)p->state[S_EXP_AVG_SQ].buf + b, (T *)vm, (T *)p->state[S_SUM].buf + b, (T *)sl, \
      replace, e - b, p->coef, p->zero_nonfinite
  if (p->dtype == OPTIM_FLOAT32) adam_cm_f32(ADAM_CM_ARGS(float));
  else adam_cm_f64(ADAM_CM_ARGS(double));
#undef ADAM_CM_ARGS
}

const optim_alg optim__alg_adam_cm = {
  .name = "adam_cm",
  .doc = "Adam with critical momenta: Adam on the momentum plus the mean of a "
         "priority buffer of past momenta (chandar-lab/CMOptimizer Adam_CM)",
  .hp = hps,
  .nhp = (int)(sizeof hps / sizeof hps[0]),
  .layout = layout,
  .prepare = prepare,
  .kernel = kernel,
  .needs_norms = 1,
};
