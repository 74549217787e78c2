/*
 * optim.h - liboptim public API.
 *
 * liboptim applies optimizer steps to caller-owned parameter buffers.  An
 * optimizer handle holds parameter groups; each group runs one algorithm
 * (found by name in a registry) with its own hyperparameters, and each
 * parameter is a named, caller-owned tensor (param + grad) of 1 to 4
 * dimensions.  Every function returns an optim_status (0 on success, a
 * negative code otherwise) unless documented differently; the library never
 * prints, exits or aborts.
 *
 * Thread safety: every function that takes an optim_optimizer * may be called
 * concurrently with calls on *other* handles; calls on one handle must be
 * serialized by the caller.  Functions without a handle (version, strerror,
 * registry and introspection, schedules) are safe to call from any thread at
 * any time.
 *
 * ABI rules: enumerators have explicit values and are only ever appended;
 * no structure is part of the ABI.
 */
#ifndef OPTIM_H
#define OPTIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(OPTIM_BUILDING) && defined(__GNUC__)
#define OPTIM_API __attribute__((visibility("default")))
#else
#define OPTIM_API
#endif

#define OPTIM_VERSION_MAJOR 0
#define OPTIM_VERSION_MINOR 1
#define OPTIM_VERSION_PATCH 0
#define OPTIM_VERSION_STRING "0.1.0"

/* Largest number of dimensions of a parameter tensor. */
#define OPTIM_MAX_DIMS 4

/* Status codes.  Values are fixed forever; new codes are appended. */
typedef enum optim_status {
  OPTIM_OK = 0,
  OPTIM_EINVAL = -1,       /* invalid argument: NULL pointer, bad index */
  OPTIM_ENOMEM = -2,       /* out of memory */
  OPTIM_ESHAPE = -3,       /* bad number of dimensions or dimension size */
  OPTIM_ERANGE = -4,       /* value outside its allowed range */
  OPTIM_ENONFINITE = -5,   /* NaN or infinity in a value or a gradient */
  OPTIM_EUNKNOWN = -6,     /* unknown algorithm, hyperparameter or name */
  OPTIM_ETYPE = -7,        /* hyperparameter accessed with the wrong type */
  OPTIM_EDTYPE = -8,       /* unsupported element type */
  OPTIM_ECONFIG = -9,      /* inconsistent or missing required settings */
  OPTIM_EEXIST = -10,      /* a parameter with that name already exists */
  OPTIM_EIO = -11,         /* file could not be read or written */
  OPTIM_EFORMAT = -12,     /* not a liboptim checkpoint */
  OPTIM_EVERSION = -13,    /* checkpoint format version not supported */
  OPTIM_EENDIAN = -14,     /* checkpoint written with another byte order */
  OPTIM_ETRUNCATED = -15,  /* checkpoint shorter than its header says */
  OPTIM_ECORRUPT = -16,    /* checkpoint checksum mismatch */
  OPTIM_EMISMATCH = -17,   /* checkpoint does not match this optimizer */
  OPTIM_EUNSUPPORTED = -18, /* algorithm cannot be applied to this tensor */
  OPTIM_EMPI = -19,         /* MPI error, or failure on another rank (optim_mpi.h) */
  OPTIM_ECALLBACK = -20,    /* a callback of the caller reported a failure */
  OPTIM_ENUMERIC = -21      /* a numerical method failed (also in float64) */
} optim_status;

/* Element types of parameter tensors.  New types (bfloat16 next) are
 * appended; every function takes the type as an int, so a new type needs no
 * new symbol and no soname change. */
typedef enum optim_dtype {
  OPTIM_FLOAT32 = 1,
  OPTIM_FLOAT64 = 2
} optim_dtype;

/* Types of hyperparameters. */
typedef enum optim_type {
  OPTIM_TYPE_DOUBLE = 1,
  OPTIM_TYPE_INT = 2,    /* int64_t */
  OPTIM_TYPE_BOOL = 3,   /* int, 0 or 1 */
  OPTIM_TYPE_STRING = 4  /* one of a fixed set of words */
} optim_type;

/* Kinds of per-parameter optimizer state. */
typedef enum optim_state_kind {
  OPTIM_STATE_BUFFER = 1, /* an array of the parameter's dtype */
  OPTIM_STATE_SCALAR = 2  /* a single int64 value, e.g. the step count */
} optim_state_kind;

typedef struct optim_optimizer optim_optimizer;

/* Library version, e.g. "0.1.0". */
OPTIM_API const char *optim_version(void);

/* Static English description of a status code (never NULL). */
OPTIM_API const char *optim_strerror(int status);

/* ---- Registry and introspection (no handle needed) ---------------------- */

/* Number of registered algorithms. */
OPTIM_API int optim_algorithm_count(void);
/* Name of algorithm number index (0-based), or NULL when out of range. */
OPTIM_API const char *optim_algorithm_name(int index);
/* One-line description of an algorithm, or NULL when unknown. */
OPTIM_API const char *optim_algorithm_doc(const char *algorithm);
/* Number of hyperparameters of an algorithm (including the options every
 * group has, such as "nonfinite"), or OPTIM_EUNKNOWN. */
OPTIM_API int optim_hparam_count(const char *algorithm);
/* Describe hyperparameter number index of an algorithm.  Any output pointer
 * may be NULL.  *default_value is the default as text ("required" when the
 * caller must set it); *doc a one-line description. */
OPTIM_API int optim_hparam_info(const char *algorithm, int index,
                                const char **name, int *type,
                                const char **default_value, const char **doc);

/* ---- Optimizer lifecycle --------------------------------------------------- */

/* Create an empty optimizer; *out receives the handle. */
OPTIM_API int optim_create(optim_optimizer **out);
/* Free an optimizer and all its state.  NULL is a no-op.  Caller buffers
 * are not touched. */
OPTIM_API void optim_destroy(optim_optimizer *opt);
/* Message describing why the last call on this handle failed.  Calls that
 * take a handle clear it on entry (the const counting and naming functions
 * excepted), so after a successful call it is "". */
OPTIM_API const char *optim_errmsg(const optim_optimizer *opt);
/* Number of OpenMP threads used by optim_step; 0 (default) means the OpenMP
 * default (OMP_NUM_THREADS). */
OPTIM_API int optim_set_threads(optim_optimizer *opt, int nthreads);

/* ---- Parameter groups and hyperparameters ----------------------------------- */

/* Append a group running the named algorithm, with default hyperparameters;
 * *group (may be NULL) receives its index. */
OPTIM_API int optim_add_group(optim_optimizer *opt, const char *algorithm,
                              int *group);
OPTIM_API int optim_group_count(const optim_optimizer *opt);
/* Algorithm name of a group, or NULL for a bad index. */
OPTIM_API const char *optim_group_algorithm(const optim_optimizer *opt,
                                            int group);

/* Typed hyperparameter accessors.  Unknown names give OPTIM_EUNKNOWN, a
 * wrong type OPTIM_ETYPE, NaN/Inf OPTIM_ENONFINITE, and values outside the
 * documented range OPTIM_ERANGE; on error nothing changes. */
OPTIM_API int optim_set_double(optim_optimizer *opt, int group,
                               const char *name, double value);
OPTIM_API int optim_get_double(optim_optimizer *opt, int group,
                               const char *name, double *value);
OPTIM_API int optim_set_int(optim_optimizer *opt, int group, const char *name,
                            int64_t value);
OPTIM_API int optim_get_int(optim_optimizer *opt, int group, const char *name,
                            int64_t *value);
OPTIM_API int optim_set_bool(optim_optimizer *opt, int group, const char *name,
                             int value);
OPTIM_API int optim_get_bool(optim_optimizer *opt, int group, const char *name,
                             int *value);
OPTIM_API int optim_set_string(optim_optimizer *opt, int group,
                               const char *name, const char *value);
/* Copies the value with its NUL into buf; OPTIM_ERANGE if size is too small. */
OPTIM_API int optim_get_string(optim_optimizer *opt, int group,
                               const char *name, char *buf, size_t size);
/* Set one hyperparameter from text, parsed according to its type. */
OPTIM_API int optim_set_option(optim_optimizer *opt, int group,
                               const char *name, const char *text);
/* Set several hyperparameters from "name=value,name=value"; all or none. */
OPTIM_API int optim_configure(optim_optimizer *opt, int group,
                              const char *spec);

/* Attach a schedule to a real-valued hyperparameter of a group (the
 * learning rate, or any other): each step then uses base * factor(t), base
 * being the value set (now, or later with the setters, which set the base
 * while a schedule is attached) and t the group's count of applied steps.
 * spec is a schedule as optim_schedule_eval(3) describes it (e.g.
 * "warmup_cosine:warmup=100,total=10000"); NULL removes the schedule and
 * restores the base.  The getters return the value the next step uses.
 * Schedules are saved in checkpoints, so a resumed run continues them. */
OPTIM_API int optim_set_schedule(optim_optimizer *opt, int group, const char *hparam,
                                 const char *spec);
/* The same with a table: factor(t) = factors[t], factors[count - 1] after
 * the end (e.g. a refined schedule from optim_schedule_refined(3)).  The
 * factors are copied; each must be finite and >= 0. */
OPTIM_API int optim_set_schedule_table(optim_optimizer *opt, int group, const char *hparam,
                                       const double *factors, int64_t count);

/* Rescale a group's hyperparameters for a batch kappa times larger (kappa
 * < 1: smaller): rule "linear" multiplies lr by kappa (SGD; Goyal et al.),
 * "sqrt" by sqrt(kappa) (Adam-type; Malladi et al.), "sqrt_sde" also maps
 * 1 - beta1 and 1 - beta2 to kappa times themselves and eps to
 * eps / sqrt(kappa) (the SDE scaling rule).  NULL: linear for sgd and igt,
 * sqrt for the others.  Scheduled values scale their base.  All or
 * nothing: OPTIM_ERANGE when a value would leave its range. */
OPTIM_API int optim_scale_batch_size(optim_optimizer *opt, int group, double kappa,
                                     const char *rule);

/* ---- Parameters ---------------------------------------------------------------- */

/* Register a caller-owned tensor in a group.  name must be unique in the
 * optimizer (names key checkpoints).  shape has ndim entries (1..4), each
 * >= 1.  param and grad are arrays of dtype with prod(shape) elements that
 * must not overlap; grad may be NULL, meaning "no gradient": optim_step then
 * leaves the parameter and its state untouched (torch's grad-is-None rule).
 * *index (may be NULL) receives the parameter's index.  Optimizer state is
 * allocated here, never in optim_step. */
OPTIM_API int optim_add_param(optim_optimizer *opt, int group,
                              const char *name, int dtype, int ndim,
                              const int64_t *shape, void *param,
                              const void *grad, int *index);
/* Re-point a parameter at (possibly new) buffers; grad may be NULL (no
 * gradient for the next steps).  The buffers must not overlap. */
OPTIM_API int optim_param_bind(optim_optimizer *opt, int index, void *param,
                               const void *grad);
OPTIM_API int optim_param_count(const optim_optimizer *opt);
OPTIM_API int optim_param_find(optim_optimizer *opt, const char *name,
                               int *index);
/* Describe a parameter; any output may be NULL; shape must have room for
 * OPTIM_MAX_DIMS entries. */
OPTIM_API int optim_param_info(optim_optimizer *opt, int index,
                               const char **name, int *group, int *dtype,
                               int *ndim, int64_t *shape);
/* The buffers a parameter is bound to (outputs may be NULL). */
OPTIM_API int optim_param_buffers(optim_optimizer *opt, int index, void **param,
                                  const void **grad);
/* Freeze (non-zero) or thaw a parameter: optim_step leaves a frozen
 * parameter and its state untouched, whatever its algorithm does with
 * missing gradients.  Parameters start thawed. */
OPTIM_API int optim_param_set_frozen(optim_optimizer *opt, int index, int frozen);
OPTIM_API int optim_param_get_frozen(optim_optimizer *opt, int index, int *frozen);
/* Step only elements [begin, end) of an element-wise parameter (default:
 * all of it); its state buffers then hold end - begin elements.  Set it
 * before the parameter's first step (OPTIM_ECONFIG otherwise); whole-tensor
 * algorithms refuse it (OPTIM_EUNSUPPORTED).  The MPI layer uses it to
 * shard optimizer state across ranks. */
OPTIM_API int optim_param_set_range(optim_optimizer *opt, int index, int64_t begin,
                                    int64_t end);
/* Hessian-vector products (adahessian): either bind, for a parameter, a
 * buffer the caller fills before each step with the Hutchinson product
 * z * (H z) for its own Rademacher z (same type and shape as the parameter;
 * NULL unbinds), or set a callback that optim_step calls once per step,
 * before anything changes, for every such parameter without a bound
 * buffer: params[k] is a parameter index, z[k] the optimizer's Rademacher
 * vector for it (+-1, drawn from seed, the group's step count, the index
 * and the element), and hz[k] receives H z (the parameter's type and
 * size).  The callback returns 0, or non-zero to fail the step with
 * OPTIM_ECALLBACK.  fn NULL removes it. */
typedef int (*optim_hvp_fn)(void *userdata, int count, const int *params,
                            const void *const *z, void *const *hz);
OPTIM_API int optim_param_bind_hvp(optim_optimizer *opt, int index, const void *hvp);
OPTIM_API int optim_set_hvp_callback(optim_optimizer *opt, optim_hvp_fn fn, void *userdata,
                                     uint64_t seed);
/* Distributed row ranges: while fn is set, a matrix given a range of whole
 * rows (muon) is orthogonalized as the whole matrix it is part of, fn
 * summing in place, over the processes that hold its other rows, the
 * count elements (float or double, by dtype) of each Gram matrix; every
 * process must step the same parameters in the same order.  fn NULL (the
 * default): the row block is orthogonalized as a matrix of its own.
 * fn returns 0, or non-zero on failure (the step then counts the matrix
 * as failed).  liboptim_mpi sets it for its blockwise mode's full steps. */
typedef int (*optim_row_reduce_fn)(void *userdata, void *buf, size_t count, int dtype);
OPTIM_API int optim_set_row_reduce(optim_optimizer *opt, optim_row_reduce_fn fn,
                                   void *userdata);
/* Norm reduction across processes: while fn is set, every
 * optim_step_prepare (and optim_step) calls it once, whatever happens
 * before, with count = number of parameters + 1 doubles: the squared
 * gradient norm of each parameter this process steps (0 for the others)
 * and, last, 1 if the step already failed here (else 0).  fn replaces
 * them in place by their maximum over the processes (the process that
 * steps a parameter has its value; replicated parameters have the same
 * value everywhere), so that clipping and the algorithms that read norms
 * see the whole model's; a 1 in the last place fails the step with
 * OPTIM_EMPI.  fn returns 0, or non-zero to fail the step with
 * OPTIM_ECALLBACK.  liboptim_mpi sets it during its steps. */
typedef int (*optim_norm_reduce_fn)(void *userdata, double *values, size_t count);
OPTIM_API int optim_set_norm_reduce(optim_optimizer *opt, optim_norm_reduce_fn fn,
                                    void *userdata);
OPTIM_API int optim_param_get_range(optim_optimizer *opt, int index, int64_t *begin,
                                    int64_t *end);
/* Estimated floating-point operations of one step of a parameter: 0 for
 * element-wise updates, the matrix work (Newton-Schulz, eigendecompositions)
 * for whole-tensor ones.  Used to balance work across ranks. */
OPTIM_API int optim_param_cost(optim_optimizer *opt, int index, double *flops);

/* ---- Optimizer state (read access) -------------------------------------------- */

/* Number of state entries of a parameter. */
OPTIM_API int optim_state_count(optim_optimizer *opt, int index);
/* Describe state entry k of a parameter: name ("exp_avg", "step", ...),
 * kind (optim_state_kind) and element count (1 for scalars). */
OPTIM_API int optim_state_info(optim_optimizer *opt, int index, int k,
                               const char **name, int *kind, int64_t *numel);
/* Read-only view of a state buffer (elements of the parameter's dtype). */
OPTIM_API int optim_state_buffer(optim_optimizer *opt, int index,
                                 const char *name, const void **data,
                                 int64_t *numel);
/* Overwrite a state buffer with numel elements of the parameter's dtype
 * (numel must be the buffer's size).  For state that callers own by
 * design, such as igt's true iterate "true_param"; writing the moments of
 * a running optimizer is allowed but changes its trajectory. */
OPTIM_API int optim_state_set_buffer(optim_optimizer *opt, int index, const char *name,
                                     const void *data, int64_t numel);
/* Value of a state scalar. */
OPTIM_API int optim_state_scalar(optim_optimizer *opt, int index,
                                 const char *name, int64_t *value);
/* Per-group counters: "steps" (steps applied), "skipped" (steps skipped by
 * the nonfinite=skip policy) and "failed" (whole-tensor updates whose
 * numerical method failed; the tensor and its state were left unchanged). */
OPTIM_API int optim_get_counter(optim_optimizer *opt, int group,
                                const char *name, int64_t *value);

/* ---- Stepping ------------------------------------------------------------------ */

/* Apply one step of every group to every parameter.  Validation (settings,
 * buffers, non-finite gradients under nonfinite=error) happens before any
 * value is written: on error no parameter or state value changes. */
OPTIM_API int optim_step(optim_optimizer *opt);
/* optim_step with every gradient multiplied by grad_scale (finite, > 0) as
 * it is read: averaging summed gradients (1/k for k accumulated
 * micro-batches, 1/p across p ranks) or undoing a loss scale, fused into
 * the step at no cost.  The gradient buffers are not modified. */
OPTIM_API int optim_step_scaled(optim_optimizer *opt, double grad_scale);
/* optim_step_scaled in two phases, for callers that must agree on a step
 * before anything changes (liboptim_mpi): prepare runs every check, the
 * Hessian-vector callback and the numerical methods that can fail (on
 * copies), and changes nothing; commit applies the step and cannot fail;
 * cancel drops a prepared step.  Gradients and parameters must not change
 * in between. */
OPTIM_API int optim_step_prepare(optim_optimizer *opt, double grad_scale);
OPTIM_API int optim_step_commit(optim_optimizer *opt);
OPTIM_API int optim_step_cancel(optim_optimizer *opt);
/* ---- Finite sums (adasvrg) ------------------------------------------------------- */

/* Full-gradient callback of optim_snapshot: for k < count, write into
 * grads[k] the full gradient (over the whole finite sum) of parameter
 * params[k] at the point points[k] (the parameter's type and size; the
 * points of all parameters together form one point of the model).  Return
 * 0, or non-zero on failure. */
typedef int (*optim_grad_fn)(void *userdata, int count, const int *params,
                             const void *const *points, void *const *grads);
/* Start an outer loop of the finite-sum groups (adasvrg): the current
 * values become the snapshot and full_grad (called once, or twice for the
 * first snapshot with an adaptive step size, whose secant estimate also
 * needs the gradient at a nearby probe point) gives the full gradient
 * there.  Nothing changes on failure (OPTIM_ECALLBACK, OPTIM_ENONFINITE,
 * OPTIM_ECONFIG when there is no such group, OPTIM_ENOMEM). */
OPTIM_API int optim_snapshot(optim_optimizer *opt, optim_grad_fn full_grad, void *userdata);
/* Bind the buffer the caller fills, before each step, with the gradient at
 * the snapshot of the same minibatch as the parameter's gradient (the
 * snapshot's values are the state buffer "snapshot").  NULL unbinds. */
OPTIM_API int optim_param_bind_snapshot_grad(optim_optimizer *opt, int index, const void *grad);

/* ---- Gradient clipping and weight-decay scales ---------------------------------- */

/* Clip the gradients of all parameters that step to a global L2 norm of at
 * most max_norm (torch.nn.utils.clip_grad_norm_: factor
 * min(1, max_norm / (norm + 1e-6))), fused into the step: the gradient
 * buffers are not modified.  0 (the default) turns it off.  Each group can
 * also clip its own gradients (option clip_norm), after this. */
OPTIM_API int optim_set_clip_norm(optim_optimizer *opt, double max_norm);
/* The L2 norm of the gradients (after grad_scale, before clipping) at the
 * last step: of group `group`, or of every parameter that stepped for
 * group -1.  OPTIM_ECONFIG when the last step computed none (no clipping
 * and no algorithm that reads norms in that scope). */
OPTIM_API int optim_get_grad_norm(optim_optimizer *opt, int group, double *norm);
/* Multiply the weight decay applied to one parameter by scale (finite,
 * >= 0; default 1; 0 exempts it).  OPTIM_EUNSUPPORTED when its algorithm
 * has no weight decay.  Saved in checkpoints. */
OPTIM_API int optim_param_set_decay_scale(optim_optimizer *opt, int index, double scale);
OPTIM_API int optim_param_get_decay_scale(optim_optimizer *opt, int index, double *scale);
/* Set the decay scale of every parameter whose name matches one of the
 * comma-separated fnmatch(3) patterns (e.g. "*.bias,*norm*" with scale 0:
 * no decay for biases and normalization weights); *matched (may be NULL)
 * receives how many.  All or nothing: OPTIM_EUNSUPPORTED if a match has no
 * weight decay, OPTIM_EUNKNOWN if nothing matches. */
OPTIM_API int optim_set_decay_mask(optim_optimizer *opt, const char *patterns, double scale,
                                   int *matched);

/* Run every check optim_step makes (settings, tensors, non-finite gradients
 * under nonfinite=error) without changing anything; returns the status
 * optim_step would return. */
OPTIM_API int optim_validate(optim_optimizer *opt);

/* ---- Checkpoints ------------------------------------------------------------------ */

/* Write the whole optimizer state (groups, hyperparameters, counters,
 * per-parameter state keyed by name) to path, atomically (temporary file,
 * fsync, rename). */
OPTIM_API int optim_save(optim_optimizer *opt, const char *path);
/* Restore state saved by optim_save into an optimizer with the same groups,
 * algorithms and parameter names and shapes (parameters are matched by
 * name).  The saved hyperparameters and counters replace the optimizer's;
 * state buffers are replaced, so earlier optim_state_buffer pointers become
 * invalid.  On any error the optimizer is left untouched. */
OPTIM_API int optim_load(optim_optimizer *opt, const char *path);
/* Restore only the state of the `count` listed parameters from a checkpoint
 * of the same optimizer layout, keeping this optimizer's settings, counters
 * and other parameters (the listed ones' state must have the layout the
 * current settings give).  The whole file is validated; on any error
 * nothing changes.  Used to reassemble sharded checkpoints. */
OPTIM_API int optim_load_params(optim_optimizer *opt, const char *path, const int *indices,
                                int count);

/* ---- Schedules (no handle needed) ----------------------------------------------------- */

/* Factor of the base learning rate at step `step` (0-based: the number of
 * steps applied before) of the schedule described by spec: "kind" or
 * "kind:key=value,...", kinds constant, step, exponential, linear, cosine,
 * warmup_cosine, warmup_linear and wsd (formulas and keys in
 * optim_schedule_eval(3)).  OPTIM_EINVAL for NULL pointers, malformed
 * text, a missing key or keys that do not go together, OPTIM_ERANGE for a
 * value out of range or step < 0, OPTIM_EUNKNOWN for an unknown kind or
 * key; *factor is written only on success.  Safe from any thread. */
OPTIM_API int optim_schedule_eval(const char *spec, int64_t step, double *factor);
/* Refined schedule (Defazio, Cutkosky, Mehta, Mishchenko) from a logged
 * series of count >= 1 gradient norms (finite, > 0): factors[0..steps),
 * steps >= 2, with maximum 1 and last value 0.  norm is 1 or 2, the norm the
 * series holds (weights G^-1 or G^-2).  Constant norms give the linear decay
 * 1 - t/(steps-1).  OPTIM_EINVAL (NULL), OPTIM_ERANGE (count, steps, norm,
 * a norm <= 0), OPTIM_ENONFINITE, OPTIM_ENOMEM.  Safe from any thread. */
OPTIM_API int optim_schedule_refined(const double *gnorms, int64_t count, int norm,
                                     int64_t steps, double *factors);
/* Step Law (StepFun, arXiv 2503.04715): *lr = 1.79 N^-0.713 D^0.307 and
 * *batch_tokens = 0.58 D^0.571, for N = params non-embedding parameters and
 * D = tokens training tokens (both finite, > 0; OPTIM_ENONFINITE,
 * OPTIM_ERANGE otherwise).  Either output may be NULL.  Safe from any
 * thread. */
OPTIM_API int optim_step_law(double params, double tokens, double *lr, double *batch_tokens);

/* ---- Adaptive batch sizes (no handle needed) ------------------------------------ */

/* AdAdaGrad's adaptive sampling tests (Lau, Liu, Kolar, arXiv 2402.11215):
 * from the batch x numel row-major per-sample gradients of dtype (batch >=
 * 2), compute the batch size r a test asks for and store in *next_batch
 * max(batch, ceil(r)), saturated at INT64_MAX; the test passes exactly
 * when *next_batch == batch.  test is "norm" (Byrd et al.: r =
 * tr Var(g_i) / (eta^2 ||gbar||^2)), "inner_product" (Bollapragada et al.:
 * r = Var(<g_i, gbar>) / (eta^2 ||gbar||^4), eta playing theta),
 * "augmented_inner_product" (the larger of that and the orthogonality
 * test's tr Var(g_i - <g_i, gbar> gbar / ||gbar||^2) / (nu^2 ||gbar||^2))
 * or "coordinate" (AdAdaGrad's coordinate-wise norm test: the largest over
 * coordinates j of Var(g_ij) / (eta^2 gbar_j^2)); Var is the sample
 * variance (divisor batch - 1), gbar the mean row, all in double.  A zero
 * variance term gives r = 0; a zero mean (gbar, or gbar_j for
 * "coordinate") with non-zero variance gives r = inf (INT64_MAX: clamp it
 * to the largest batch you allow).  nu is read by
 * "augmented_inner_product" only.  OPTIM_EINVAL (NULL, batch < 2,
 * numel < 1, batch * numel > SIZE_MAX / 8), OPTIM_EUNKNOWN (test),
 * OPTIM_ERANGE (eta, or nu when read, not finite and > 0), OPTIM_EDTYPE,
 * OPTIM_ENONFINITE (a gradient), OPTIM_ENOMEM; *next_batch is written
 * only on success.  Safe from any thread. */
OPTIM_API int optim_batch_size_test(const char *test, int dtype, int64_t batch, int64_t numel,
                                    const void *grads, double eta, double nu,
                                    int64_t *next_batch);

#ifdef __cplusplus
}
#endif

#endif /* OPTIM_H */
