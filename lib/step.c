/* step.c - optim_step: validation, the non-finite policy, and one fused,
 * threaded pass of every algorithm kernel over its parameters. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "optim-internal.h"

/* Below this many elements a step runs on the calling thread only. */
#define PARALLEL_MIN_ELEMS ((size_t)1 << 15)
/* Thread ranges start on multiples of this many elements (a cache line of
 * float32), so threads never write the same line of a parameter. */
#define RANGE_ALIGN 16

static int thread_count(const optim_optimizer *opt, size_t total)
{
#ifdef _OPENMP
  if (total < PARALLEL_MIN_ELEMS) return 1;
  int t = opt->nthreads > 0 ? opt->nthreads : omp_get_max_threads();
  return t < 1 ? 1 : t;
#else
  (void)opt;
  (void)total;
  return 1;
#endif
}

/* The calling OpenMP thread's slice [lo, hi) of total elements. */
static void thread_range(size_t total, size_t *lo, size_t *hi)
{
  unsigned t = 0, nt = 1;
#ifdef _OPENMP
  t = (unsigned)omp_get_thread_num();
  nt = (unsigned)omp_get_num_threads();
#endif
  size_t a = (size_t)((unsigned __int128)total * t / nt);
  size_t b = (size_t)((unsigned __int128)total * (t + 1) / nt);
  if (t > 0) a -= a % RANGE_ALIGN;
  if (t + 1 < nt) b -= b % RANGE_ALIGN;
  *lo = a;
  *hi = b;
}

/* Mark in opt->bad[] the listed parameters whose gradient holds a NaN or
 * infinity.  Each thread scans its slice backwards, so the front of each
 * slice is still in cache when the update pass starts there. */
static void scan_nonfinite(optim_optimizer *opt, const int *list, int n, size_t total)
{
  int nt = thread_count(opt, total);
  for (int k = 0; k < n; k++) opt->bad[list[k]] = 0;
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    size_t lo, hi, off = total;
    thread_range(total, &lo, &hi);
    for (int k = n - 1; k >= 0; k--) {
      const optim_param *p = &opt->params[list[k]];
      off -= p->len;
      if (hi <= off || lo >= off + p->len) continue;
      size_t b = lo > off ? lo - off : 0;
      size_t e = hi < off + p->len ? hi - off : p->len;
      if (optim__nonfinite(p->dtype, p->kgrad, b, e)) {
#pragma omp atomic write
        opt->bad[list[k]] = 1;
      }
    }
  }
}

static void run_kernels(optim_optimizer *opt, const int *list, int n, size_t total)
{
  int nt = thread_count(opt, total);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    size_t lo, hi, off = 0;
    thread_range(total, &lo, &hi);
    for (int k = 0; k < n && off < hi; k++) {
      const optim_param *p = &opt->params[list[k]];
      size_t b = lo > off ? lo - off : 0;
      size_t e = hi < off + p->len ? hi - off : p->len;
      if (lo < off + p->len && b < e) {
        const optim_group *g = &opt->groups[p->group];
        g->alg->kernel(g, p, b, e);
      }
      off += p->len;
    }
  }
}

/* A NaN or infinity found in `what` of p, under its group's policy:
 * nonfinite=error fails the step (returns the status), skip makes the group
 * skip it (returns OPTIM_OK).  Callers do not look under nonfinite=zero. */
static int nonfinite_found(optim_optimizer *opt, const optim_param *p, const char *what)
{
  optim_group *g = &opt->groups[p->group];
  if (g->nonfinite == NONFINITE_ERROR)
    return optim__fail(opt, OPTIM_ENONFINITE,
                       "%s of '%s' holds NaN or infinity (group %d, nonfinite=error): "
                       "nothing was changed",
                       what, p->name, p->group);
  g->skip_now = 1;
  return OPTIM_OK;
}

/* Whether the step computes the norm of p's gradient (clipping, or an
 * algorithm that reads norms) in a way that also detects non-finite
 * values: its sum of squares, which is non-finite when a value is. */
static int norm_scans(const optim_optimizer *opt, const optim_param *p)
{
  const optim_group *g = &opt->groups[p->group];
  return (opt->clip_norm > 0 || g->clip_norm > 0 || g->alg->needs_norms) && !g->alg->sumsq &&
         p->len == p->numel;
}

/* Every check of a step; marks groups to skip (nonfinite=skip).  Changes
 * no parameter or state.  fused: the gradients whose norm the step
 * computes are left to norm_pass, which checks them in the same read. */
static int check_step(optim_optimizer *opt, int fused)
{
  for (int g = 0; g < opt->ngroups; g++) {
    int st = optim__group_check(&opt->groups[g], opt->errmsg, sizeof opt->errmsg);
    if (st) return st;
    st = optim__sched_check(&opt->groups[g], g, opt->errmsg, sizeof opt->errmsg);
    if (st) return st;
    opt->groups[g].skip_now = 0;
  }
  /* Settings changed since registration may no longer admit a tensor. */
  for (int i = 0; i < opt->nparams; i++) {
    const optim_param *p = &opt->params[i];
    const optim_group *g = &opt->groups[p->group];
    int st = g->alg->accept ? g->alg->accept(g, p, opt->errmsg, sizeof opt->errmsg) : OPTIM_OK;
    if (st) return st;
  }

  /* The stepped range of every parameter: all of a whole-tensor one. */
  for (int i = 0; i < opt->nparams; i++) {
    optim_param *p = &opt->params[i];
    const optim_group *g = &opt->groups[p->group];
    size_t es = optim__dtype_size(p->dtype), off = p->off;
    (void)g;
    p->kdata = (char *)p->data + off * es;
    p->kgrad = p->grad ? (const char *)p->grad + off * es : NULL;
  }
  /* Parameters with a gradient whose group checks for non-finite values. */
  int *list = opt->active, n = 0;
  size_t total = 0;
  for (int i = 0; i < opt->nparams; i++) {
    const optim_param *p = &opt->params[i];
    if (p->grad && !p->frozen && opt->groups[p->group].nonfinite != NONFINITE_ZERO &&
        !(fused && norm_scans(opt, p))) {
      list[n++] = i;
      total += p->len;
    }
  }
  if (n > 0) {
    scan_nonfinite(opt, list, n, total);
    for (int k = 0; k < n; k++) {
      const optim_param *p = &opt->params[list[k]];
      if (!opt->bad[list[k]]) continue;
      int st = nonfinite_found(opt, p, "gradient");
      if (st) return st;
    }
  }

  /* Finite-sum methods: a snapshot taken, and the snapshot's gradient bound
   * (and finite). */
  for (int i = 0; i < opt->nparams; i++) {
    optim_param *p = &opt->params[i];
    optim_group *g = &opt->groups[p->group];
    if (!g->alg->finite_sum || !p->grad || p->frozen || g->skip_now) continue;
    const state_entry *snaps = optim__state_get(p, "snapshots");
    if (!snaps || snaps->scalar == 0)
      return optim__fail(opt, OPTIM_ECONFIG,
                         "%s: %s needs a snapshot first (optim_snapshot)", p->name, g->alg->name);
    if (!p->aux_grad)
      return optim__fail(opt, OPTIM_ECONFIG,
                         "%s: %s needs the minibatch's gradient at the snapshot: bind it "
                         "(optim_param_bind_snapshot_grad)",
                         p->name, g->alg->name);
    if (g->nonfinite != NONFINITE_ZERO && optim__nonfinite(p->dtype, p->aux_grad, 0, p->numel)) {
      int st = nonfinite_found(opt, p, "snapshot gradient");
      if (st) return st;
    }
  }

  /* Hessian-vector products: bound (and finite) or from the callback. */
  for (int i = 0; i < opt->nparams; i++) {
    optim_param *p = &opt->params[i];
    optim_group *g = &opt->groups[p->group];
    if (!g->alg->needs_hvp || !p->grad || p->frozen || g->skip_now) continue;
    if (!p->hvp_in && !opt->hvp_fn)
      return optim__fail(opt, OPTIM_ECONFIG,
                         "%s: %s needs a Hessian-vector product: bind a buffer "
                         "(optim_param_bind_hvp) or set a callback (optim_set_hvp_callback)",
                         p->name, g->alg->name);
    if (p->hvp_in && g->nonfinite != NONFINITE_ZERO &&
        optim__nonfinite(p->dtype, p->hvp_in, 0, p->numel)) {
      int st = nonfinite_found(opt, p, "Hessian-vector product");
      if (st) return st;
    }
  }
  return OPTIM_OK;
}

/* z_i = +-1 from the seed, the group's step, the parameter and the element. */
static double rademacher(uint64_t seed, int64_t step, int index, size_t i)
{
  uint64_t z = seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(step + 1)) ^
               (0xbf58476d1ce4e5b9ull * (uint64_t)(index + 1)) ^ (0x94d049bb133111ebull * i);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return (z & 1) ? 1.0 : -1.0;
}

/* The callback's products, for every parameter that needs one and has no
 * bound buffer; then p->hvp for all.  Changes no parameter or state. */
static int run_hvp(optim_optimizer *opt)
{
  int count = 0;
  for (int i = 0; i < opt->nparams; i++) {
    optim_param *p = &opt->params[i];
    const optim_group *g = &opt->groups[p->group];
    p->hvp = NULL;
    if (!g->alg->needs_hvp || !p->grad || p->frozen || g->skip_now) continue;
    if (p->hvp_in) {
      p->hvp = p->hvp_in;
      continue;
    }
    size_t bytes = p->numel * optim__dtype_size(p->dtype);
    if (!p->hvp_z) p->hvp_z = malloc(bytes);
    if (!p->hvp_h) p->hvp_h = malloc(bytes);
    if (!p->hvp_z || !p->hvp_h)
      return optim__fail(opt, OPTIM_ENOMEM, "out of memory for the Hessian-vector buffers");
    for (size_t e = 0; e < p->numel; e++) {
      double z = rademacher(opt->hvp_seed, g->steps, i, e);
      if (p->dtype == OPTIM_FLOAT32) ((float *)p->hvp_z)[e] = (float)z;
      else ((double *)p->hvp_z)[e] = z;
    }
    opt->active[count++] = i;
  }
  if (count == 0) return OPTIM_OK;
  /* (scratch the optimizer keeps: no allocation per step) */
  const int *idx = opt->active;
  void **z = opt->hvp_ptrs, **hz = opt->hvp_ptrs + count;
  for (int k = 0; k < count; k++) {
    z[k] = opt->params[idx[k]].hvp_z;
    hz[k] = opt->params[idx[k]].hvp_h;
  }
  int rc = opt->hvp_fn(opt->hvp_ud, count, idx, (const void *const *)z, hz);
  int st = OPTIM_OK;
  if (rc != 0)
    st = optim__fail(opt, OPTIM_ECALLBACK,
                     "the Hessian-vector callback failed (returned %d): nothing was changed", rc);
  for (int k = 0; st == OPTIM_OK && k < count; k++) {
    optim_param *p = &opt->params[idx[k]];
    optim_group *g = &opt->groups[p->group];
    /* z * (H z), what a bound buffer holds */
    for (size_t e = 0; e < p->numel; e++) {
      if (p->dtype == OPTIM_FLOAT32)
        ((float *)p->hvp_h)[e] *= ((const float *)p->hvp_z)[e];
      else
        ((double *)p->hvp_h)[e] *= ((const double *)p->hvp_z)[e];
    }
    if (g->nonfinite != NONFINITE_ZERO && optim__nonfinite(p->dtype, p->hvp_h, 0, p->numel))
      st = nonfinite_found(opt, p, "the callback's Hessian-vector product");
    p->hvp = p->hvp_h;
  }
  return st;
}

static int steps_now(const optim_optimizer *opt, const optim_param *p);

/* Gradient norms, for the groups that clip (clip_norm, optim_set_clip_norm)
 * or whose algorithm reads norms: one threaded pass of sums of squares over
 * the parameters that step, partial sums added in thread order (so the
 * result does not depend on scheduling), into opt->norm_part[0..nparams).
 * Returns a status; with `failed` set (an earlier check failed) it only
 * zeroes the values, so that the collective below still runs. */
static int norm_pass(optim_optimizer *opt, int failed)
{
  const int global = opt->clip_norm > 0;
  int np = opt->nparams;
  size_t need = (size_t)np + 1;
  int *list = opt->active, n = 0, st = OPTIM_OK;
  size_t total = 0;
  int nt = 1;
  if (!failed) {
    for (int i = 0; i < np; i++) {
      optim_param *p = &opt->params[i];
      const optim_group *g = &opt->groups[p->group];
      if (!(global || g->clip_norm > 0 || g->alg->needs_norms)) continue;
      if (!steps_now(opt, p) || !p->grad) continue;
      if (g->alg->sumsq && (global || g->clip_norm > 0)) {
        st = optim__fail(opt, OPTIM_ECONFIG,
                         "%s: %s steps with its own variance-reduced gradient, which gradient "
                         "clipping does not apply to: turn clipping off for its group",
                         p->name, g->alg->name);
        break;
      }
      if (p->len != p->numel) {
        st = optim__fail(opt, OPTIM_ECONFIG,
                         "%s: gradient norms (clip_norm, optim_set_clip_norm, %s) need whole "
                         "parameters, and this one steps a range (optim_param_set_range)",
                         p->name, g->alg->name);
        break;
      }
      list[n++] = i;
      total += p->len;
    }
    if (st) n = 0;
    nt = n ? thread_count(opt, total) : 1;
    if ((size_t)nt * (size_t)(n ? n : 1) > need) need = (size_t)nt * (size_t)n;
  }
  if (need > opt->norm_part_cap) {
    double *q = realloc(opt->norm_part, need * sizeof *q);
    if (!q) return optim__fail(opt, OPTIM_ENOMEM, "out of memory for gradient norms");
    opt->norm_part = q;
    opt->norm_part_cap = need;
  }
  double *part = opt->norm_part;
  for (size_t k = 0; k < need; k++) part[k] = 0;
  if (n == 0) return st;
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    size_t lo, hi, off = 0;
    int t = 0;
#ifdef _OPENMP
    t = omp_get_thread_num();
#endif
    thread_range(total, &lo, &hi);
    for (int k = 0; k < n && off < hi; k++) {
      const optim_param *p = &opt->params[list[k]];
      size_t b = lo > off ? lo - off : 0;
      size_t e = hi < off + p->len ? hi - off : p->len;
      const optim_alg *a = opt->groups[p->group].alg;
      if (lo < off + p->len && b < e)
        part[(size_t)t * (size_t)n + (size_t)k] =
            a->sumsq ? a->sumsq(&opt->groups[p->group], p, b, e)
                     : optim__sumsq(p->dtype, p->kgrad, b, e, p->zero_nonfinite, p->gscale);
      off += p->len;
    }
  }
  /* per parameter, in thread order; then spread to their indices (k <= i:
   * from the last, nothing is overwritten before it is read) */
  for (int k = 0; k < n; k++) {
    double v = 0;
    for (int t = 0; t < nt; t++) v += part[(size_t)t * (size_t)n + (size_t)k];
    part[k] = v;
  }
  for (size_t k = (size_t)n; k < need; k++) part[k] = 0; /* the other threads' partials */
  for (int k = n - 1; k >= 0; k--) {
    double v = part[k];
    part[k] = 0;
    part[list[k]] = v;
  }
  /* The non-finite check check_step left to this pass: a non-finite sum
   * of squares means a non-finite value (or, for float64, squares past
   * the double range: confirmed by a scan). */
  for (int k = 0; k < n; k++) {
    optim_param *p = &opt->params[list[k]];
    optim_group *g = &opt->groups[p->group];
    if (isfinite(part[list[k]]) || g->nonfinite == NONFINITE_ZERO || !norm_scans(opt, p) ||
        !optim__nonfinite(p->dtype, p->kgrad, 0, p->len))
      continue;
    int fs = nonfinite_found(opt, p, "gradient"); /* (skip: apply_norms leaves the group out) */
    if (fs) return fs;
  }
  return OPTIM_OK;
}

/* The norms from opt->norm_part (per parameter, after the reduction across
 * processes when one is set): group and global sums over every parameter
 * with a gradient in a group that steps (a frozen one counts only through
 * the reduction: the process that steps it has its value), then the
 * clipping factors folded into p->gscale. */
static void apply_norms(optim_optimizer *opt)
{
  const int global = opt->clip_norm > 0;
  const double *v = opt->norm_part;
  double all = 0;
  opt->gnorm_pre = -1;
  for (int gi = 0; gi < opt->ngroups; gi++) {
    optim_group *g = &opt->groups[gi];
    g->gnorm_pre = -1;
    g->gnorm2_sum = g->gnorm_sum = 0;
  }
  for (int i = 0; i < opt->nparams; i++) {
    optim_param *p = &opt->params[i];
    optim_group *g = &opt->groups[p->group];
    p->gnorm2 = 0;
    if (!(global || g->clip_norm > 0 || g->alg->needs_norms)) continue;
    if (!p->grad || g->skip_now) continue;
    p->gnorm2 = v[i];
    g->gnorm2_sum += v[i];
    all += v[i];
  }
  double fglob = 1;
  if (global) {
    /* torch.nn.utils.clip_grad_norm_: factor min(1, max / (norm + 1e-6)) */
    opt->gnorm_pre = sqrt(all);
    double c = opt->clip_norm / (opt->gnorm_pre + 1e-6);
    if (c < 1) fglob = c;
  }
  for (int gi = 0; gi < opt->ngroups; gi++) {
    optim_group *g = &opt->groups[gi];
    if (!(global || g->clip_norm > 0 || g->alg->needs_norms)) continue;
    g->gnorm_pre = sqrt(g->gnorm2_sum);
    double f = fglob; /* the optimizer's limit, then the group's on what remains */
    if (g->clip_norm > 0) {
      double c = g->clip_norm / (g->gnorm_pre * fglob + 1e-6);
      if (c < 1) f *= c;
    }
    g->gnorm2_sum = 0;
    for (int i = 0; i < opt->nparams; i++) {
      optim_param *p = &opt->params[i];
      if (p->group != gi || !p->grad || g->skip_now) continue;
      if (steps_now(opt, p)) p->gscale *= f;
      p->gnorm2 *= f * f;
      g->gnorm2_sum += p->gnorm2;
      g->gnorm_sum += sqrt(p->gnorm2);
    }
  }
}

int optim_validate(optim_optimizer *opt)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  return check_step(opt, 0);
}

/* A parameter steps now: it has a gradient (or its algorithm steps it
 * without one), is not frozen, and its group does not skip. */
static int steps_now(const optim_optimizer *opt, const optim_param *p)
{
  const optim_group *g = &opt->groups[p->group];
  return (p->grad || g->alg->missing_grad_zero) && !g->skip_now && !p->frozen;
}

static void shadow_free(optim_param *p)
{
  optim_shadow *sh = p->shadow;
  if (!sh) return;
  optim__buf_free(sh->data);
  for (int k = 0; k < sh->nstate; k++)
    if (sh->state[k].kind == OPTIM_STATE_BUFFER) optim__buf_free(sh->state[k].buf);
  free(sh);
  p->shadow = NULL;
}

/* The whole step of a parameter whose numerical method may fail, on copies
 * of its values and state: kept in p->shadow for the commit, or freed. */
static int shadow_run(optim_optimizer *opt, optim_param *p)
{
  const optim_group *g = &opt->groups[p->group];
  size_t es = optim__dtype_size(p->dtype);
  optim_shadow *sh = calloc(1, sizeof *sh);
  if (!sh) return OPTIM_ENOMEM;
  p->shadow = sh;
  sh->data = optim__buf_alloc(p->numel * es, 0, 0);
  if (!sh->data) goto oom;
  memcpy(sh->data, p->data, p->numel * es);
  sh->nstate = p->nstate;
  for (int k = 0; k < p->nstate; k++) {
    sh->state[k] = p->state[k];
    if (p->state[k].kind != OPTIM_STATE_BUFFER) continue;
    size_t bytes = p->state[k].count * es;
    sh->state[k].buf = optim__buf_alloc(bytes ? bytes : 1, 0, k);
    if (!sh->state[k].buf) {
      sh->nstate = k;
      goto oom;
    }
    memcpy(sh->state[k].buf, p->state[k].buf, bytes);
  }
  optim_param sp = *p;
  sp.data = sh->data;
  sp.kdata = (char *)sh->data + p->off * es;
  memcpy(sp.state, sh->state, sizeof sp.state);
  if (g->alg->param_step(g, &sp, opt->work) != 0) {
    shadow_free(p);
    return OPTIM_ENUMERIC;
  }
  /* (scalars the step advanced) */
  memcpy(sh->state, sp.state, sizeof sh->state);
  return OPTIM_OK;
oom:
  shadow_free(p);
  return OPTIM_ENOMEM;
}

void optim__step_cancel(optim_optimizer *opt)
{
  for (int i = 0; i < opt->nparams; i++) shadow_free(&opt->params[i]);
  opt->prepared = 0;
}

int optim_step_cancel(optim_optimizer *opt)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  optim__step_cancel(opt);
  return OPTIM_OK;
}

int optim_step_prepare(optim_optimizer *opt, double grad_scale)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  optim__step_cancel(opt);
  int st = OPTIM_OK;
  if (!(grad_scale > 0) || !isfinite(grad_scale))
    st = optim__fail(opt, OPTIM_ERANGE, "grad_scale must be finite and positive (got %g)",
                     grad_scale);
  if (!st) st = check_step(opt, 1);
  if (!st) st = run_hvp(opt);
  for (int i = 0; !st && i < opt->nparams; i++) {
    optim_param *p = &opt->params[i];
    if (!steps_now(opt, p)) continue;
    const optim_group *g = &opt->groups[p->group];
    p->zero_nonfinite = g->nonfinite == NONFINITE_ZERO;
    p->gscale = grad_scale;
    p->row_reduce = opt->row_reduce;
    p->row_reduce_ud = opt->row_reduce_ud;
  }
  /* Gradient norms; with a norm reduction set (liboptim_mpi) it runs on
   * every call, failed or not, so that every process takes part in it: the
   * per-parameter values and, last, this process's failure flag. */
  int pst = norm_pass(opt, st != OPTIM_OK);
  if (!st) st = pst;
  if (opt->norm_reduce) {
    if (pst == OPTIM_ENOMEM) return st; /* no buffer to send (cannot happen after the
                                         * first step: the buffer only grows) */
    opt->norm_part[opt->nparams] = st ? 1 : 0;
    int rc = opt->norm_reduce(opt->norm_reduce_ud, opt->norm_part, (size_t)opt->nparams + 1);
    if (!st && rc != 0)
      st = optim__fail(opt, OPTIM_ECALLBACK, "the norm reduction failed (returned %d)", rc);
    else if (!st && opt->norm_part[opt->nparams] != 0)
      st = optim__fail(opt, OPTIM_EMPI, "the step failed on another process");
  }
  if (st) return st;
  apply_norms(opt);
  /* Numerical methods that can fail run first, on copies: a failure
   * changes nothing. */
  for (int i = 0; i < opt->nparams; i++) {
    optim_param *p = &opt->params[i];
    const optim_group *g = &opt->groups[p->group];
    if (!steps_now(opt, p) || !g->alg->whole || !g->alg->whole(g, p) || !g->alg->fallible ||
        !g->alg->fallible(g, p))
      continue;
    st = shadow_run(opt, p);
    if (st) {
      optim__step_cancel(opt);
      if (st == OPTIM_ENOMEM) return optim__fail(opt, st, "out of memory for the step of '%s'", p->name);
      return optim__fail(opt, OPTIM_ENUMERIC,
                         "%s: the %s step's eigendecomposition or QR failed, also in float64 "
                         "(non-finite or overflowing factors): nothing was changed",
                         p->name, g->alg->name);
    }
  }
  opt->prepared = 1;
  return OPTIM_OK;
}

int optim_step_commit(optim_optimizer *opt)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  if (!opt->prepared)
    return optim__fail(opt, OPTIM_ECONFIG, "no step is prepared (optim_step_prepare)");
  opt->prepared = 0;
  /* From here on the step cannot fail.  Element-wise parameters go to one
   * threaded pass; whole-tensor ones (matrix methods) follow, one after the
   * other, from the end of the same list. */
  int *list = opt->active, n = 0, nwhole = 0;
  size_t total = 0;
  for (int i = 0; i < opt->nparams; i++) {
    optim_param *p = &opt->params[i];
    const optim_group *g = &opt->groups[p->group];
    if (!steps_now(opt, p)) continue;
    g->alg->prepare(g, p);
    if (g->alg->whole && g->alg->whole(g, p)) {
      list[opt->nparams - 1 - nwhole++] = i;
    } else {
      list[n++] = i;
      total += p->len;
    }
  }
  if (n > 0) run_kernels(opt, list, n, total);
  for (int k = 0; k < nwhole; k++) {
    optim_param *p = &opt->params[list[opt->nparams - 1 - k]];
    const optim_group *g = &opt->groups[p->group];
    optim_shadow *sh = p->shadow;
    if (sh) { /* computed by the prepare phase: take it */
      size_t es = optim__dtype_size(p->dtype);
      memcpy(p->data, sh->data, p->numel * es);
      for (int s = 0; s < p->nstate; s++) {
        if (p->state[s].kind == OPTIM_STATE_BUFFER)
          memcpy(p->state[s].buf, sh->state[s].buf, p->state[s].count * es);
        else
          p->state[s].scalar = sh->state[s].scalar;
      }
      shadow_free(p);
    } else if (g->alg->param_step(g, p, opt->work) != 0) {
      opt->groups[p->group].failed++;
    }
  }
  for (int g = 0; g < opt->ngroups; g++) {
    if (opt->groups[g].skip_now) opt->groups[g].skipped++;
    else opt->groups[g].steps++;
    optim__sched_apply(&opt->groups[g]);
  }
  return OPTIM_OK;
}

int optim_step(optim_optimizer *opt)
{
  return optim_step_scaled(opt, 1.0);
}

int optim_step_scaled(optim_optimizer *opt, double grad_scale)
{
  int st = optim_step_prepare(opt, grad_scale);
  return st ? st : optim_step_commit(opt);
}
