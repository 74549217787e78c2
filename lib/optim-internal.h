/*
 * optim-internal.h - definitions shared by liboptim's sources.  Never
 * installed; nothing here is ABI.
 */
#ifndef OPTIM_INTERNAL_H
#define OPTIM_INTERNAL_H

#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>

#include "optim.h"

#if defined(__GNUC__)
#define OPTIM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define OPTIM_PRINTF(a, b)
#endif

/* Run-time dispatch of hot kernels to the best vector ISA of the CPU. */
/* The clones must be chosen by ISA features: "arch=<cpu>" clones are picked
 * by __builtin_cpu_is, i.e. only on that exact CPU model (an AMD Zen 4 or an
 * Intel Ice Lake got the SSE2 "default" clone).  The x86-64-v4/v3 levels
 * (GCC 12+) and plain ISA names are resolved with __builtin_cpu_supports. */
#if defined(OPTIM_CLONES)
/* given on the command line */
#elif defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__) && __GNUC__ >= 12
#define OPTIM_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#elif defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__)
#define OPTIM_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define OPTIM_CLONES
#endif

#define OPTIM_MAX_STATE 12     /* state entries per parameter (adam_cm: 10) */
#define OPTIM_MAX_COEF 12      /* per-step coefficients per parameter */
#define OPTIM_ERRMSG_SIZE 512

/* ---- hyperparameters --------------------------------------------------------- */

enum {
  HP_LO_OPEN = 1u << 0,   /* lower bound excluded */
  HP_HI_OPEN = 1u << 1,   /* upper bound excluded */
  HP_REQUIRED = 1u << 2,  /* no default: the caller must set it */
  HP_LAYOUT = 1u << 3,    /* changing it changes the state layout */
  HP_REINIT = 1u << 4     /* changing it re-initializes fresh state */
};

typedef struct hp_desc {
  const char *name;
  int type;             /* optim_type */
  double def;           /* default for double/int/bool */
  const char *def_str;  /* default for strings */
  double lo, hi;        /* allowed range for double/int */
  unsigned flags;
  const char *choices;  /* strings: words separated by '|' */
  const char *doc;
} hp_desc;

typedef union hp_value {
  double d;
  int64_t i;    /* also bool (0/1) and string (index into choices) */
} hp_value;

/* Options every group has, whatever its algorithm. */
enum { NONFINITE_ERROR = 0, NONFINITE_SKIP = 1, NONFINITE_ZERO = 2 };

/* ---- state layout ---------------------------------------------------------------- */

typedef struct state_layout {
  int n;
  const char *name[OPTIM_MAX_STATE];
  int kind[OPTIM_MAX_STATE];            /* optim_state_kind */
  size_t count[OPTIM_MAX_STATE];        /* buffer elements; 0 means numel */
} state_layout;

typedef struct state_entry {
  const char *name;     /* static string from the algorithm */
  int kind;
  size_t count;         /* OPTIM_STATE_BUFFER: elements of the dtype */
  void *buf;            /* OPTIM_STATE_BUFFER: count elements of the dtype */
  int64_t scalar;       /* OPTIM_STATE_SCALAR */
} state_entry;

struct optim_group;
struct optim_param;

/* What an algorithm tells the core.  All callbacks are required except
 * check.  Values in g->hp follow the order of the hp table. */
typedef struct optim_alg {
  const char *name;
  const char *doc;
  const hp_desc *hp;
  int nhp;
  /* Optional: refuse a tensor the algorithm cannot handle
   * (OPTIM_EUNSUPPORTED with a message). */
  int (*accept)(const struct optim_group *g, const struct optim_param *p,
                char *msg, size_t size);
  /* Cross-hyperparameter consistency; fills msg and returns a status. */
  int (*check)(const struct optim_group *g, char *msg, size_t size);
  /* The state entries a parameter needs under the group's settings. */
  void (*layout)(const struct optim_group *g, const struct optim_param *p,
                 state_layout *out);
  /* Optional: initialize the state of a parameter that has not stepped yet
   * (buffers are already zero-filled, scalars 0). */
  void (*init_state)(const struct optim_group *g, struct optim_param *p);
  /* Serial, once per step for each parameter that steps: advance scalars
   * and compute p->coef for the kernel. */
  void (*prepare)(const struct optim_group *g, struct optim_param *p);
  /* Elements [begin, end) of one parameter; may run on any thread, on
   * disjoint ranges of the same parameter concurrently. */
  void (*kernel)(const struct optim_group *g, const struct optim_param *p,
                 size_t begin, size_t end);
  /* Optional, for algorithms that update whole tensors (matrix methods):
   * whole() says whether p takes that path; param_step() then runs on the
   * calling thread, once per parameter, after the element-wise pass (BLAS
   * may use its own threads), with `work` holding at least workspace(g, p)
   * bytes, allocated outside optim_step. */
  int (*whole)(const struct optim_group *g, const struct optim_param *p);
  /* Returns 0, or non-zero when a numerical method failed (e.g. an
   * eigendecomposition did not converge); the parameter and its state are
   * then left as they were and the group's "failed" counter counts it. */
  int (*param_step)(const struct optim_group *g, struct optim_param *p, void *work);
  /* Optional: floating-point operations of one whole-tensor step. */
  double (*cost)(const struct optim_group *g, const struct optim_param *p);
  size_t (*workspace)(const struct optim_group *g, const struct optim_param *p);
  /* Non-zero: a parameter without gradient still steps, as if its
   * gradient were zero (Muon), instead of being skipped (torch.optim);
   * kernels then see p->grad == NULL. */
  int missing_grad_zero;
  /* Non-zero: a 2-D whole-tensor parameter may be given a range of whole
   * rows (optim_param_set_range), stepped as a matrix of its own. */
  int row_ranges;
  /* Non-zero: a step also needs the Hutchinson product z * (H z) of each
   * parameter (p->hvp), bound or from the callback (adahessian). */
  int needs_hvp;
  /* Optional: whether this step of p runs a numerical method that can fail
   * (an eigendecomposition).  Such steps run in optim_step_prepare, on
   * copies, so that a failure fails the step (OPTIM_ENUMERIC) before
   * anything changes. */
  int (*fallible)(const struct optim_group *g, const struct optim_param *p);
  /* Non-zero: prepare() reads gradient norms (p->gnorm2, g->gnorm2_sum,
   * g->gnorm_sum), which the core then computes before it (adagrad_norm,
   * adam_cm). */
  int needs_norms;
  /* Optional: the squared norm of the vector the algorithm steps with, over
   * elements [begin, end) of p (p->gnorm2 then holds it instead of the
   * gradient's; adasvrg's variance-reduced gradient).  Such groups cannot
   * clip. */
  double (*sumsq)(const struct optim_group *g, const struct optim_param *p, size_t begin,
                  size_t end);
  /* Non-zero: a finite-sum method (adasvrg): each step also reads the
   * gradient at the snapshot (p->aux_grad, optim_param_bind_snapshot_grad),
   * and optim_snapshot calls snapshot() for the group. */
  int finite_sum;
  /* Optional (finite_sum): take a snapshot of the group's parameters
   * idx[0..n): full[k] holds the full gradient at the current values, and,
   * when probe[k] is not NULL, full gradient probe_grad[k] at the point
   * probe[k] (the first snapshot's secant estimate).  Cannot fail: every
   * check and allocation is done before. */
  void (*snapshot)(struct optim_optimizer *opt, struct optim_group *g, const int *idx, int n,
                  void *const *full, void *const *probe, void *const *probe_grad);
  /* Optional (finite_sum): whether the snapshot needs probe points, and
   * fill them (x + noise). */
  int (*snapshot_probe)(const struct optim_group *g, const struct optim_param *p, void *probe);
} optim_alg;

/* ---- objects ------------------------------------------------------------------------ */

typedef struct optim_group {
  const optim_alg *alg;
  hp_value *hp;          /* alg->nhp values */
  unsigned char *hp_set; /* whether the caller set each value */
  int nonfinite;         /* NONFINITE_* */
  double clip_norm;      /* common option: clip the group's gradient norm (0: off) */
  int64_t steps, skipped, failed;
  /* per-step, written by optim_step */
  int skip_now;
  double gnorm_pre;      /* L2 norm of the group's gradients before clipping (-1: not computed) */
  double gnorm2_sum;     /* sum of p->gnorm2 over the parameters that step */
  double gnorm_sum;      /* sum of sqrt(p->gnorm2) over them */
  struct optim_sched **sched; /* NULL, or alg->nhp schedules (NULL: none) */
  double *sched_base;    /* the values the scheduled factors multiply */
} optim_group;

/* A whole-tensor step computed ahead on copies (optim_step_prepare). */
typedef struct optim_shadow {
  void *data;
  int nstate;
  state_entry state[OPTIM_MAX_STATE];
} optim_shadow;

typedef struct optim_param {
  char *name;
  int group;
  int dtype;
  int ndim;
  int64_t shape[OPTIM_MAX_DIMS];
  size_t numel;
  void *data;
  const void *grad;
  int nstate;
  state_entry state[OPTIM_MAX_STATE];
  double coef[OPTIM_MAX_COEF];   /* per-step values from alg->prepare */
  int zero_nonfinite;            /* per-step: replace NaN/Inf grads by 0 */
  optim_row_reduce_fn row_reduce; /* per-step: the optimizer's, for ranged matrices */
  void *row_reduce_ud;
  double gscale;                 /* per-step: gradients are multiplied by this
                                  * (optim_step_scaled; 1 for optim_step; and
                                  * the clipping factor) */
  double gnorm2;                 /* per-step, when computed: sum of (gscale * g)^2
                                  * over the stepped range, after clipping */
  double wd_scale;               /* optim_param_set_decay_scale (default 1) */
  int frozen;                    /* optim_param_set_frozen */
  int group_ordinal;             /* parameters of the group registered before it */
  const void *hvp_in;            /* optim_param_bind_hvp */
  void *hvp_z, *hvp_h;           /* the callback's z and H z (then z * H z), allocated on use */
  const void *hvp;               /* per-step: z * (H z), what the algorithm reads */
  const void *aux_grad;          /* optim_param_bind_snapshot_grad */
  optim_shadow *shadow;          /* prepared step of a fallible whole-tensor step */
  size_t off, len;               /* optim_param_set_range: stepped elements */
  /* The range as element-wise kernels see it (set by optim_step):
   * kdata = data + off, kgrad = grad + off (or NULL); state buffers of the
   * default size hold len elements, for the range only. */
  void *kdata;
  const void *kgrad;
} optim_param;

struct optim_optimizer {
  uint32_t magic;
  int nthreads;
  optim_group *groups;
  int ngroups;
  optim_param *params;
  int nparams, cap_params;
  int *active;                   /* scratch for optim_step, cap_params long */
  unsigned char *bad;            /* scratch for optim_step, cap_params long */
  void *work;                    /* whole-tensor workspace, work_size bytes */
  size_t work_size;
  optim_row_reduce_fn row_reduce; /* optim_set_row_reduce */
  void *row_reduce_ud;
  void **hvp_ptrs;               /* scratch for optim_step, 2 * cap_params: the
                                  * callback's z and H z pointers */
  optim_hvp_fn hvp_fn;           /* optim_set_hvp_callback */
  void *hvp_ud;
  uint64_t hvp_seed;
  int prepared;                  /* optim_step_prepare succeeded, commit pending */
  double clip_norm;              /* optim_set_clip_norm (0: off) */
  double gnorm_pre;              /* last step's global gradient norm (-1: not computed) */
  double *norm_part;             /* scratch: per-thread, per-parameter partial sums,
                                  * then per parameter (nparams + 1) */
  optim_norm_reduce_fn norm_reduce; /* optim_set_norm_reduce */
  void *norm_reduce_ud;
  size_t norm_part_cap;
  char errmsg[OPTIM_ERRMSG_SIZE];
};

#define OPTIM_MAGIC 0x4f50544du /* "OPTM" */

/* ---- helpers (lib/...) ------------------------------------------------------------------ */

/* Record a message on the handle and return status. */
int optim__fail(optim_optimizer *opt, int status, const char *fmt, ...)
    OPTIM_PRINTF(3, 4);
void optim__clear(optim_optimizer *opt);
/* Validate a handle (not NULL, right magic). */
int optim__valid(const optim_optimizer *opt);

/* step.c: drop a prepared step (and its copies) */
void optim__step_cancel(optim_optimizer *opt);

/* registry.c */
const optim_alg *optim__alg_find(const char *name);
/* Options every group has, whatever its algorithm: index -1 - k for
 * optim__hp_common[k]; HP_NONE when the name is unknown. */
#define OPTIM_NCOMMON 2
#define HP_COMMON_NONFINITE 0
#define HP_COMMON_CLIP_NORM 1
#define HP_NONE (-100)
int optim__hp_index(const optim_alg *alg, const char *name);
extern const hp_desc optim__hp_common[OPTIM_NCOMMON];
#define optim__hp_nonfinite (optim__hp_common[HP_COMMON_NONFINITE])
/* The descriptor of index idx (>= 0: the algorithm's, < 0: common). */
const hp_desc *optim__hp_desc(const optim_alg *alg, int idx);
/* Value of common option k of a group, and setting it (validated). */
hp_value optim__common_get(const optim_group *g, int k);
void optim__common_set(optim_group *g, int k, hp_value v);

/* sched_attach.c: schedules of a group's hyperparameters */
struct optim_sched;
void optim__sched_apply(optim_group *g);        /* hp = base * factor(steps) */
int optim__sched_check(const optim_group *g, int group, char *msg, size_t size);
int optim__sched_set(optim_group *g, int idx, struct optim_sched *s); /* takes s; NULL removes */
void optim__sched_free_all(optim_group *g);

/* hparams.c */
int optim__group_init(optim_group *g, const optim_alg *alg);
void optim__group_free(optim_group *g);
/* Parse and validate text for hp desc into *out (no side effects). */
int optim__hp_parse(const hp_desc *d, const char *text, hp_value *out,
                    char *msg, size_t size);
int optim__hp_check_value(const hp_desc *d, hp_value v, char *msg, size_t size);
/* Group-level validation before a step: required values and alg->check. */
int optim__group_check(const optim_group *g, char *msg, size_t size);

/* optimizer.c */
/* Bring every parameter of a group to the layout its settings need
 * (allocates missing buffers) and re-initialize state of parameters that
 * have not stepped when reinit is set.  All or nothing. */
int optim__group_realize(optim_optimizer *opt, int group, int reinit);
state_entry *optim__state_get(optim_param *p, const char *name);
/* Grow opt->work to the largest workspace any parameter needs, counting
 * also `extra` (a parameter about to be added: its group and param). */
int optim__work_reserve(optim_optimizer *opt, const optim_group *g, const optim_param *extra);
size_t optim__dtype_size(int dtype);
/* Step count of a parameter (its "step" scalar, or the momentum flag...):
 * non-zero when the parameter has already been updated. */
int optim__param_has_stepped(const optim_param *p);

/* State buffers: zero-filled (zero != 0) and starting on a 64-byte boundary,
 * so vector kernels never split a cache line on them and thread ranges
 * (multiples of 64 bytes) never share a line; large ones start slot KiB
 * (mod 4) into a page, slot being the state entry's index.  Free with
 * optim__buf_free. */
void *optim__buf_alloc(size_t bytes, int zero, int slot);
void optim__buf_free(void *buf);

/* kernels/finite.c: non-zero when x[begin, end) holds a NaN or infinity.
 * Scans from the end towards begin. */
int optim__nonfinite(int dtype, const void *x, size_t begin, size_t end);

/* kernels/sumsq.c: sum of squares of x[begin, end) * scale (the product
 * rounded to the dtype), accumulated in double (non-finite entries
 * counted as 0 when zero != 0). */
double optim__sumsq(int dtype, const void *x, size_t begin, size_t end, int zero,
                    double scale);

/* Accessors used by algorithms. */
static inline double hp_d(const optim_group *g, int i) { return g->hp[i].d; }
static inline int64_t hp_i(const optim_group *g, int i) { return g->hp[i].i; }
/* A weight-decay hyperparameter as it applies to p: scaled by the
 * parameter's decay scale (optim_param_set_decay_scale, masks). */
static inline double optim__wd(const optim_group *g, const optim_param *p, int i)
{
  return g->hp[i].d * p->wd_scale;
}

/* torch.optim.SGD's condition on Nesterov momentum (sgd, igt): the
 * hyperparameters at indices nesterov, momentum and dampening. */
static inline int optim__check_nesterov(const optim_group *g, int nesterov, int momentum,
                                        int dampening, char *msg, size_t size)
{
  if (g->hp[nesterov].i && (g->hp[momentum].d <= 0 || g->hp[dampening].d != 0)) {
    snprintf(msg, size, "%s: nesterov requires momentum > 0 and dampening = 0", g->alg->name);
    return OPTIM_ECONFIG;
  }
  return OPTIM_OK;
}

/* Per-element gradient read honoring nonfinite=zero: v - v is 0 only for
 * finite v, so the select is branch-free and vectorizes. */
#define OPTIM_GRAD(T, g, i, zero) \
  ((zero) ? (((g)[i] - (g)[i]) == (T)0 ? (g)[i] : (T)0) : (g)[i])

/* Instantiate a kernel body for float and double from one source:
 * BODY(T, SQRT) is a macro generating the loop. */
#define OPTIM_SQRT_float sqrtf
#define OPTIM_SQRT_double sqrt

#endif /* OPTIM_INTERNAL_H */
