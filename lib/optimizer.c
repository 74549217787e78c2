/* optimizer.c - handles, groups, parameters and state storage. */
#include <stdlib.h>
#include <string.h>

#include "optim-internal.h"

#define MAX_NAME 255

size_t optim__dtype_size(int dtype)
{
  switch (dtype) {
  case OPTIM_FLOAT32: return 4;
  case OPTIM_FLOAT64: return 8;
  default: return 0;
  }
}

int optim_create(optim_optimizer **out)
{
  if (out == NULL) return OPTIM_EINVAL;
  optim_optimizer *opt = calloc(1, sizeof *opt);
  if (opt == NULL) return OPTIM_ENOMEM;
  opt->magic = OPTIM_MAGIC;
  opt->gnorm_pre = -1;
  *out = opt;
  return OPTIM_OK;
}

#define BUF_ALIGN 64
#define BUF_PAGE 4096
#define BUF_STAGGER_MIN ((size_t)1 << 16)

void *optim__buf_alloc(size_t bytes, int zero, int slot)
{
  /* Large buffers also get a page offset of slot KiB (mod 4 KiB): kernels
   * stream the parameter, its gradient and every state buffer in lockstep,
   * and when all of them sit at the same offset in their pages the CPU
   * apparently sees false store-to-load dependencies between them (4K
   * aliasing): with SSE code a 64M AdamW step got 1.5x slower (Zen 4), a
   * no-math SSE/AVX2 loop up to 2x/1.2x.  Caller buffers usually start in
   * the first cache lines of a page. */
  size_t stagger = bytes >= BUF_STAGGER_MIN ? (size_t)1024 * (size_t)(slot & 3) : 0;
  size_t extra = BUF_ALIGN + (stagger ? BUF_PAGE : 0);
  if (bytes > SIZE_MAX - extra) return NULL;
  unsigned char *raw = zero ? calloc(1, bytes + extra) : malloc(bytes + extra);
  if (raw == NULL) return NULL;
  uintptr_t a = (uintptr_t)raw;
  uintptr_t want =
      stagger ? ((a + BUF_ALIGN + BUF_PAGE - 1 - stagger) & ~(uintptr_t)(BUF_PAGE - 1)) + stagger
              : (a + BUF_ALIGN) & ~(uintptr_t)(BUF_ALIGN - 1);
  size_t off = (size_t)(want - a);   /* 16 .. extra: malloc aligns to 16 */
  /* The offset is kept in the 2 bytes before the buffer. */
  raw[off - 1] = (unsigned char)(off & 0xff);
  raw[off - 2] = (unsigned char)(off >> 8);
  return raw + off;
}

void optim__buf_free(void *buf)
{
  if (buf == NULL) return;
  unsigned char *p = buf;
  free(p - ((size_t)p[-2] << 8 | p[-1]));
}

static size_t work_need(const optim_group *g, const optim_param *p)
{
  if (!g->alg->workspace || !g->alg->whole || !g->alg->whole(g, p)) return 0;
  return g->alg->workspace(g, p);
}

int optim__work_reserve(optim_optimizer *opt, const optim_group *g, const optim_param *extra)
{
  size_t need = extra ? work_need(g, extra) : 0;
  for (int i = 0; i < opt->nparams; i++) {
    size_t n = work_need(&opt->groups[opt->params[i].group], &opt->params[i]);
    if (n > need) need = n;
  }
  if (need <= opt->work_size) return OPTIM_OK;
  void *w = optim__buf_alloc(need, 0, 0);
  if (w == NULL) return optim__fail(opt, OPTIM_ENOMEM, "out of memory for a %zu-byte workspace", need);
  optim__buf_free(opt->work);
  opt->work = w;
  opt->work_size = need;
  return OPTIM_OK;
}

static void free_state(optim_param *p)
{
  for (int k = 0; k < p->nstate; k++) optim__buf_free(p->state[k].buf);
  p->nstate = 0;
}

void optim_destroy(optim_optimizer *opt)
{
  if (!optim__valid(opt)) return;
  optim__step_cancel(opt);
  for (int i = 0; i < opt->nparams; i++) {
    free_state(&opt->params[i]);
    free(opt->params[i].name);
    free(opt->params[i].hvp_z);
    free(opt->params[i].hvp_h);
  }
  for (int g = 0; g < opt->ngroups; g++) optim__group_free(&opt->groups[g]);
  free(opt->params);
  free(opt->active);
  free(opt->hvp_ptrs);
  free(opt->bad);
  free(opt->norm_part);
  optim__buf_free(opt->work);
  free(opt->groups);
  opt->magic = 0;
  free(opt);
}

int optim_set_threads(optim_optimizer *opt, int nthreads)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  if (nthreads < 0 || nthreads > 4096)
    return optim__fail(opt, OPTIM_ERANGE, "thread count %d outside [0, 4096]", nthreads);
  opt->nthreads = nthreads;
  return OPTIM_OK;
}

int optim_add_group(optim_optimizer *opt, const char *algorithm, int *group)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  if (algorithm == NULL) return optim__fail(opt, OPTIM_EINVAL, "algorithm name is NULL");
  const optim_alg *alg = optim__alg_find(algorithm);
  if (alg == NULL)
    return optim__fail(opt, OPTIM_EUNKNOWN, "unknown algorithm '%s'", algorithm);
  optim_group *gs = realloc(opt->groups, sizeof *gs * (size_t)(opt->ngroups + 1));
  if (gs == NULL) return optim__fail(opt, OPTIM_ENOMEM, "out of memory");
  opt->groups = gs;
  if (optim__group_init(&gs[opt->ngroups], alg) != OPTIM_OK)
    return optim__fail(opt, OPTIM_ENOMEM, "out of memory");
  if (group) *group = opt->ngroups;
  opt->ngroups++;
  return OPTIM_OK;
}

int optim_group_count(const optim_optimizer *opt)
{
  return optim__valid(opt) ? opt->ngroups : OPTIM_EINVAL;
}

const char *optim_group_algorithm(const optim_optimizer *opt, int group)
{
  if (!optim__valid(opt) || group < 0 || group >= opt->ngroups) return NULL;
  return opt->groups[group].alg->name;
}

state_entry *optim__state_get(optim_param *p, const char *name)
{
  for (int k = 0; k < p->nstate; k++)
    if (strcmp(p->state[k].name, name) == 0) return &p->state[k];
  return NULL;
}

int optim__param_has_stepped(const optim_param *p)
{
  for (int k = 0; k < p->nstate; k++)
    if (strcmp(p->state[k].name, "step") == 0) return p->state[k].scalar > 0;
  return 0;
}

/* Build the state of p for the layout its group needs now.  New buffers are
 * allocated into next[]; nothing in p changes.  Returns OPTIM_ENOMEM with
 * next[] freed on failure. */
static int build_state(const optim_group *g, const optim_param *p,
                       state_entry *next, int *nnext)
{
  state_layout lay;
  memset(&lay, 0, sizeof lay);
  g->alg->layout(g, p, &lay);
  for (int k = 0; k < lay.n; k++) {
    size_t count = lay.kind[k] == OPTIM_STATE_BUFFER ? (lay.count[k] ? lay.count[k] : p->len) : 0;
    size_t bytes = count * optim__dtype_size(p->dtype);
    next[k].name = lay.name[k];
    next[k].kind = lay.kind[k];
    next[k].count = count;
    next[k].buf = NULL;
    next[k].scalar = 0;
    /* Reuse what p already has under that name. */
    int found = 0;
    for (int j = 0; j < p->nstate; j++)
      if (strcmp(p->state[j].name, lay.name[k]) == 0 && p->state[j].kind == lay.kind[k] &&
          p->state[j].count == count) {
        next[k] = p->state[j];
        found = 1;
      }
    if (!found && lay.kind[k] == OPTIM_STATE_BUFFER) {
      next[k].buf = optim__buf_alloc(bytes ? bytes : 1, 1, k);
      if (next[k].buf == NULL) {
        for (int j = 0; j < k; j++)
          if (next[j].kind == OPTIM_STATE_BUFFER && optim__state_get((optim_param *)p, next[j].name) == NULL)
            optim__buf_free(next[j].buf);
        return OPTIM_ENOMEM;
      }
    }
  }
  *nnext = lay.n;
  return OPTIM_OK;
}

/* Install next[] as p's state, freeing entries that are no longer used. */
static void install_state(optim_param *p, const state_entry *next, int nnext)
{
  for (int j = 0; j < p->nstate; j++) {
    int kept = 0;
    for (int k = 0; k < nnext; k++)
      if (next[k].kind == OPTIM_STATE_BUFFER && next[k].buf == p->state[j].buf) kept = 1;
    if (!kept) optim__buf_free(p->state[j].buf);
  }
  memcpy(p->state, next, sizeof *next * (size_t)nnext);
  p->nstate = nnext;
}

static void reset_state(const optim_group *g, optim_param *p)
{
  for (int k = 0; k < p->nstate; k++) {
    if (p->state[k].kind == OPTIM_STATE_BUFFER)
      memset(p->state[k].buf, 0, p->state[k].count * optim__dtype_size(p->dtype));
    else p->state[k].scalar = 0;
  }
  if (g->alg->init_state) g->alg->init_state(g, p);
}

int optim__group_realize(optim_optimizer *opt, int group, int reinit)
{
  const optim_group *g = &opt->groups[group];
  int n = 0;
  for (int i = 0; i < opt->nparams; i++) n += opt->params[i].group == group;
  if (n == 0) return OPTIM_OK;
  /* The settings may need a larger workspace: get it before changing anything. */
  int wst = optim__work_reserve(opt, g, NULL);
  if (wst) return wst;
  state_entry(*next)[OPTIM_MAX_STATE] = calloc((size_t)n, sizeof *next);
  int *nnext = calloc((size_t)n, sizeof *nnext);
  if (!next || !nnext) {
    free(next);
    free(nnext);
    return optim__fail(opt, OPTIM_ENOMEM, "out of memory for optimizer state");
  }
  int k = 0, st = OPTIM_OK;
  for (int i = 0; i < opt->nparams && st == OPTIM_OK; i++) {
    if (opt->params[i].group != group) continue;
    st = build_state(g, &opt->params[i], next[k], &nnext[k]);
    if (st == OPTIM_OK) k++;
  }
  if (st != OPTIM_OK) {
    /* Free what was newly allocated for the parameters already built. */
    for (int i = 0, j = 0; i < opt->nparams && j < k; i++) {
      if (opt->params[i].group != group) continue;
      for (int e = 0; e < nnext[j]; e++)
        if (next[j][e].kind == OPTIM_STATE_BUFFER &&
            optim__state_get(&opt->params[i], next[j][e].name) == NULL)
          optim__buf_free(next[j][e].buf);
      j++;
    }
    free(next);
    free(nnext);
    return optim__fail(opt, OPTIM_ENOMEM, "out of memory for optimizer state");
  }
  for (int i = 0, j = 0; i < opt->nparams; i++) {
    optim_param *p = &opt->params[i];
    if (p->group != group) continue;
    int fresh = p->nstate == 0;
    install_state(p, next[j], nnext[j]);
    if (fresh || (reinit && !optim__param_has_stepped(p))) reset_state(g, p);
    j++;
  }
  free(next);
  free(nnext);
  return OPTIM_OK;
}

/* Non-zero when the n-byte buffers a and b share memory. */
static int overlap(const void *a, const void *b, size_t n)
{
  uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
  return a && b && x < y + n && y < x + n;
}

int optim_add_param(optim_optimizer *opt, int group, const char *name, int dtype,
                    int ndim, const int64_t *shape, void *param, const void *grad,
                    int *index)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  if (group < 0 || group >= opt->ngroups)
    return optim__fail(opt, OPTIM_EINVAL, "group %d does not exist (%d groups)", group,
                       opt->ngroups);
  if (name == NULL || name[0] == '\0')
    return optim__fail(opt, OPTIM_EINVAL, "parameter name is NULL or empty");
  size_t nlen = strlen(name);
  if (nlen > MAX_NAME)
    return optim__fail(opt, OPTIM_EINVAL, "parameter name longer than %d bytes", MAX_NAME);
  for (int i = 0; i < opt->nparams; i++)
    if (strcmp(opt->params[i].name, name) == 0)
      return optim__fail(opt, OPTIM_EEXIST, "a parameter named '%s' already exists", name);
  if (optim__dtype_size(dtype) == 0)
    return optim__fail(opt, OPTIM_EDTYPE, "%s: unsupported dtype %d", name, dtype);
  if (ndim < 1 || ndim > OPTIM_MAX_DIMS)
    return optim__fail(opt, OPTIM_ESHAPE, "%s: ndim %d outside [1, %d]", name, ndim,
                       OPTIM_MAX_DIMS);
  if (shape == NULL) return optim__fail(opt, OPTIM_EINVAL, "%s: shape is NULL", name);
  if (param == NULL) return optim__fail(opt, OPTIM_EINVAL, "%s: param buffer is NULL", name);
  size_t numel = 1, esize = optim__dtype_size(dtype);
  for (int d = 0; d < ndim; d++) {
    if (shape[d] < 1)
      return optim__fail(opt, OPTIM_ESHAPE, "%s: dimension %d has size %lld", name, d,
                         (long long)shape[d]);
    if ((uint64_t)shape[d] > (SIZE_MAX / esize) / numel)
      return optim__fail(opt, OPTIM_ESHAPE, "%s: tensor size overflows", name);
    numel *= (size_t)shape[d];
  }

  if (overlap(param, grad, numel * esize))
    return optim__fail(opt, OPTIM_EINVAL, "%s: param and grad buffers overlap", name);
  optim_param p;
  memset(&p, 0, sizeof p);
  p.group = group;
  for (int i = 0; i < opt->nparams; i++) p.group_ordinal += opt->params[i].group == group;
  p.dtype = dtype;
  p.ndim = ndim;
  for (int d = 0; d < ndim; d++) p.shape[d] = shape[d];
  p.numel = numel;
  p.len = numel;
  p.wd_scale = 1;
  p.data = param;
  p.grad = grad;
  const optim_group *g = &opt->groups[group];
  if (g->alg->accept) {
    p.name = (char *)name;
    int st = g->alg->accept(g, &p, opt->errmsg, sizeof opt->errmsg);
    if (st) return st;
  }
  if (opt->nparams == opt->cap_params) {
    int cap = opt->cap_params ? 2 * opt->cap_params : 16;
    optim_param *ps = realloc(opt->params, sizeof *ps * (size_t)cap);
    if (ps == NULL) return optim__fail(opt, OPTIM_ENOMEM, "out of memory");
    opt->params = ps;
    int *act = realloc(opt->active, sizeof *act * (size_t)cap);
    if (act == NULL) return optim__fail(opt, OPTIM_ENOMEM, "out of memory");
    opt->active = act;
    unsigned char *bad = realloc(opt->bad, (size_t)cap);
    if (bad == NULL) return optim__fail(opt, OPTIM_ENOMEM, "out of memory");
    opt->bad = bad;
    void **hp = realloc(opt->hvp_ptrs, sizeof *hp * 2 * (size_t)cap);
    if (hp == NULL) return optim__fail(opt, OPTIM_ENOMEM, "out of memory");
    opt->hvp_ptrs = hp;
    opt->cap_params = cap;
  }
  int wst = optim__work_reserve(opt, g, &p);
  if (wst) return wst;
  p.name = malloc(nlen + 1);
  if (p.name == NULL) return optim__fail(opt, OPTIM_ENOMEM, "out of memory");
  memcpy(p.name, name, nlen + 1);
  state_entry next[OPTIM_MAX_STATE];
  int nnext = 0;
  if (build_state(g, &p, next, &nnext) != OPTIM_OK) {
    free(p.name);
    return optim__fail(opt, OPTIM_ENOMEM, "%s: out of memory for optimizer state", name);
  }
  /* Nothing can fail from here on: only now drop a prepared step (it does
   * not know the new parameter), so that a refused parameter (the
   * algorithm's accept, out of memory) leaves it in place. */
  optim__step_cancel(opt);
  install_state(&p, next, nnext);
  reset_state(g, &p);
  opt->params[opt->nparams] = p;
  if (index) *index = opt->nparams;
  opt->nparams++;
  return OPTIM_OK;
}

int optim_param_bind(optim_optimizer *opt, int index, void *param, const void *grad)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  if (index < 0 || index >= opt->nparams)
    return optim__fail(opt, OPTIM_EINVAL, "parameter %d does not exist", index);
  if (param == NULL) return optim__fail(opt, OPTIM_EINVAL, "param buffer is NULL");
  optim_param *p = &opt->params[index];
  if (overlap(param, grad, p->numel * optim__dtype_size(p->dtype)))
    return optim__fail(opt, OPTIM_EINVAL, "%s: param and grad buffers overlap", p->name);
  opt->params[index].data = param;
  opt->params[index].grad = grad;
  return OPTIM_OK;
}

int optim_param_count(const optim_optimizer *opt)
{
  return optim__valid(opt) ? opt->nparams : OPTIM_EINVAL;
}

int optim_param_find(optim_optimizer *opt, const char *name, int *index)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  if (name == NULL || index == NULL)
    return optim__fail(opt, OPTIM_EINVAL, "name or index pointer is NULL");
  for (int i = 0; i < opt->nparams; i++)
    if (strcmp(opt->params[i].name, name) == 0) {
      *index = i;
      return OPTIM_OK;
    }
  return optim__fail(opt, OPTIM_EUNKNOWN, "no parameter named '%s'", name);
}

static optim_param *param_at(optim_optimizer *opt, int index)
{
  if (index < 0 || index >= opt->nparams) {
    optim__fail(opt, OPTIM_EINVAL, "parameter %d does not exist (%d parameters)", index,
                opt->nparams);
    return NULL;
  }
  return &opt->params[index];
}

int optim_param_info(optim_optimizer *opt, int index, const char **name, int *group,
                     int *dtype, int *ndim, int64_t *shape)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  optim_param *p = param_at(opt, index);
  if (!p) return OPTIM_EINVAL;
  if (name) *name = p->name;
  if (group) *group = p->group;
  if (dtype) *dtype = p->dtype;
  if (ndim) *ndim = p->ndim;
  if (shape)
    for (int d = 0; d < OPTIM_MAX_DIMS; d++) shape[d] = d < p->ndim ? p->shape[d] : 0;
  return OPTIM_OK;
}

int optim_param_buffers(optim_optimizer *opt, int index, void **param, const void **grad)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  optim_param *p = param_at(opt, index);
  if (!p) return OPTIM_EINVAL;
  if (param) *param = p->data;
  if (grad) *grad = p->grad;
  return OPTIM_OK;
}

int optim_param_set_range(optim_optimizer *opt, int index, int64_t begin, int64_t end)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  optim_param *p = param_at(opt, index);
  if (!p) return OPTIM_EINVAL;
  if (begin < 0 || end < begin || (uint64_t)end > p->numel)
    return optim__fail(opt, OPTIM_ERANGE, "%s: range [%lld, %lld) is not within [0, %zu)",
                       p->name, (long long)begin, (long long)end, p->numel);
  const optim_group *g = &opt->groups[p->group];
  if (g->alg->whole && g->alg->whole(g, p)) {
    int64_t cols = p->ndim == 2 ? p->shape[1] : 0;
    if (!g->alg->row_ranges || p->ndim != 2 || begin % cols != 0 || end % cols != 0)
      return optim__fail(opt, OPTIM_EUNSUPPORTED,
                         "%s: %s updates this tensor as a whole; it can only step a range "
                         "of whole rows of a 2-D matrix%s",
                         p->name, g->alg->name,
                         g->alg->row_ranges ? "" : ", and not even that");
  }
  if (optim__param_has_stepped(p))
    return optim__fail(opt, OPTIM_ECONFIG,
                       "%s: set the range before the parameter's first step", p->name);
  size_t old_off = p->off, old_len = p->len;
  p->off = (size_t)begin;
  p->len = (size_t)(end - begin);
  int st = optim__group_realize(opt, p->group, 1);
  if (st) {
    p->off = old_off;
    p->len = old_len;
  }
  return st;
}

int optim_param_bind_hvp(optim_optimizer *opt, int index, const void *hvp)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  optim_param *p = param_at(opt, index);
  if (!p) return OPTIM_EINVAL;
  const optim_group *g = &opt->groups[p->group];
  if (hvp && !g->alg->needs_hvp)
    return optim__fail(opt, OPTIM_EUNSUPPORTED, "%s: %s takes no Hessian-vector product",
                       p->name, g->alg->name);
  size_t es = optim__dtype_size(p->dtype);
  if (hvp && ((const char *)hvp < (const char *)p->data + p->numel * es &&
              (const char *)p->data < (const char *)hvp + p->numel * es))
    return optim__fail(opt, OPTIM_EINVAL, "%s: the Hessian-vector buffer overlaps the parameter",
                       p->name);
  p->hvp_in = hvp;
  return OPTIM_OK;
}

int optim_set_hvp_callback(optim_optimizer *opt, optim_hvp_fn fn, void *userdata, uint64_t seed)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  opt->hvp_fn = fn;
  opt->hvp_ud = fn ? userdata : NULL;
  opt->hvp_seed = seed;
  return OPTIM_OK;
}

int optim_set_row_reduce(optim_optimizer *opt, optim_row_reduce_fn fn, void *userdata)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  opt->row_reduce = fn;
  opt->row_reduce_ud = fn ? userdata : NULL;
  return OPTIM_OK;
}

int optim_param_get_range(optim_optimizer *opt, int index, int64_t *begin, int64_t *end)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  optim_param *p = param_at(opt, index);
  if (!p) return OPTIM_EINVAL;
  if (begin) *begin = (int64_t)p->off;
  if (end) *end = (int64_t)(p->off + p->len);
  return OPTIM_OK;
}

int optim_param_set_frozen(optim_optimizer *opt, int index, int frozen)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  optim_param *p = param_at(opt, index);
  if (!p) return OPTIM_EINVAL;
  p->frozen = frozen != 0;
  return OPTIM_OK;
}

int optim_param_get_frozen(optim_optimizer *opt, int index, int *frozen)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  if (frozen == NULL) return optim__fail(opt, OPTIM_EINVAL, "output pointer is NULL");
  optim_param *p = param_at(opt, index);
  if (!p) return OPTIM_EINVAL;
  *frozen = p->frozen;
  return OPTIM_OK;
}

int optim_param_cost(optim_optimizer *opt, int index, double *flops)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  if (flops == NULL) return optim__fail(opt, OPTIM_EINVAL, "output pointer is NULL");
  optim_param *p = param_at(opt, index);
  if (!p) return OPTIM_EINVAL;
  const optim_group *g = &opt->groups[p->group];
  *flops = g->alg->whole && g->alg->whole(g, p) && g->alg->cost ? g->alg->cost(g, p) : 0;
  return OPTIM_OK;
}

int optim_state_count(optim_optimizer *opt, int index)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  optim_param *p = param_at(opt, index);
  return p ? p->nstate : OPTIM_EINVAL;
}

int optim_state_info(optim_optimizer *opt, int index, int k, const char **name, int *kind,
                     int64_t *numel)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  optim_param *p = param_at(opt, index);
  if (!p) return OPTIM_EINVAL;
  if (k < 0 || k >= p->nstate)
    return optim__fail(opt, OPTIM_EINVAL, "state entry %d does not exist", k);
  if (name) *name = p->state[k].name;
  if (kind) *kind = p->state[k].kind;
  if (numel) *numel = p->state[k].kind == OPTIM_STATE_BUFFER ? (int64_t)p->state[k].count : 1;
  return OPTIM_OK;
}

static int state_named(optim_optimizer *opt, int index, const char *name, int kind,
                       state_entry **out)
{
  optim_param *p = param_at(opt, index);
  if (!p) return OPTIM_EINVAL;
  if (name == NULL) return optim__fail(opt, OPTIM_EINVAL, "state name is NULL");
  state_entry *e = optim__state_get(p, name);
  if (e == NULL || e->kind != kind)
    return optim__fail(opt, OPTIM_EUNKNOWN, "%s has no state %s '%s'", p->name,
                       kind == OPTIM_STATE_BUFFER ? "buffer" : "scalar", name);
  *out = e;
  return OPTIM_OK;
}

int optim_state_buffer(optim_optimizer *opt, int index, const char *name, const void **data,
                       int64_t *numel)
{
  state_entry *e;
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  if (data == NULL) return optim__fail(opt, OPTIM_EINVAL, "data pointer is NULL");
  int st = state_named(opt, index, name, OPTIM_STATE_BUFFER, &e);
  if (st) return st;
  *data = e->buf;
  if (numel) *numel = (int64_t)e->count;
  return OPTIM_OK;
}

int optim_state_set_buffer(optim_optimizer *opt, int index, const char *name, const void *data,
                           int64_t numel)
{
  state_entry *e;
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  if (data == NULL) return optim__fail(opt, OPTIM_EINVAL, "data pointer is NULL");
  int st = state_named(opt, index, name, OPTIM_STATE_BUFFER, &e);
  if (st) return st;
  if (numel != (int64_t)e->count)
    return optim__fail(opt, OPTIM_ESHAPE, "state '%s' of '%s' has %zu elements, not %lld", name,
                       opt->params[index].name, e->count, (long long)numel);
  size_t es = optim__dtype_size(opt->params[index].dtype);
  if (optim__nonfinite(opt->params[index].dtype, data, 0, e->count))
    return optim__fail(opt, OPTIM_ENONFINITE, "the values for state '%s' hold NaN or infinity",
                       name);
  optim__step_cancel(opt); /* a prepared step read the old values */
  memcpy(e->buf, data, e->count * es);
  return OPTIM_OK;
}

int optim_state_scalar(optim_optimizer *opt, int index, const char *name, int64_t *value)
{
  state_entry *e;
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  if (value == NULL) return optim__fail(opt, OPTIM_EINVAL, "value pointer is NULL");
  int st = state_named(opt, index, name, OPTIM_STATE_SCALAR, &e);
  if (st) return st;
  *value = e->scalar;
  return OPTIM_OK;
}

int optim_get_counter(optim_optimizer *opt, int group, const char *name, int64_t *value)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  if (name == NULL || value == NULL)
    return optim__fail(opt, OPTIM_EINVAL, "name or value pointer is NULL");
  if (group < 0 || group >= opt->ngroups)
    return optim__fail(opt, OPTIM_EINVAL, "group %d does not exist", group);
  if (strcmp(name, "steps") == 0) *value = opt->groups[group].steps;
  else if (strcmp(name, "skipped") == 0) *value = opt->groups[group].skipped;
  else if (strcmp(name, "failed") == 0) *value = opt->groups[group].failed;
  else return optim__fail(opt, OPTIM_EUNKNOWN, "no counter named '%s'", name);
  return OPTIM_OK;
}
