/* decay.c - global-norm clipping settings and per-parameter weight-decay
 * scales (and the name masks that set them).  The clipping itself is
 * fused into the step (step.c, norm_pass and apply_norms). */
#define _POSIX_C_SOURCE 200809L /* strtok_r, fnmatch */
#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "optim-internal.h"

int optim_set_clip_norm(optim_optimizer *opt, double max_norm)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  if (!isfinite(max_norm))
    return optim__fail(opt, OPTIM_ENONFINITE, "max_norm must be finite");
  if (max_norm < 0)
    return optim__fail(opt, OPTIM_ERANGE, "max_norm must be >= 0 (0: off), got %g", max_norm);
  optim__step_cancel(opt);
  opt->clip_norm = max_norm;
  return OPTIM_OK;
}

int optim_set_norm_reduce(optim_optimizer *opt, optim_norm_reduce_fn fn, void *userdata)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  /* (a prepared step keeps its norms: it is not cancelled) */
  opt->norm_reduce = fn;
  opt->norm_reduce_ud = fn ? userdata : NULL;
  return OPTIM_OK;
}

int optim_get_grad_norm(optim_optimizer *opt, int group, double *norm)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  if (norm == NULL) return optim__fail(opt, OPTIM_EINVAL, "output pointer is NULL");
  if (group < -1 || group >= opt->ngroups)
    return optim__fail(opt, OPTIM_EINVAL, "group %d does not exist (-1: all)", group);
  double v = group < 0 ? opt->gnorm_pre : opt->groups[group].gnorm_pre;
  if (v < 0)
    return optim__fail(opt, OPTIM_ECONFIG,
                       "no gradient norm was computed at the last step for %s (it is computed "
                       "when clipping or for algorithms that read it)",
                       group < 0 ? "the optimizer (optim_set_clip_norm)" : "this group");
  *norm = v;
  return OPTIM_OK;
}

/* Index of the algorithm's "weight_decay", or -1. */
static int has_decay(const optim_param *p, const optim_optimizer *opt)
{
  const optim_alg *a = opt->groups[p->group].alg;
  for (int i = 0; i < a->nhp; i++)
    if (strcmp(a->hp[i].name, "weight_decay") == 0) return i;
  return -1;
}

static int check_scale(optim_optimizer *opt, double scale)
{
  if (!isfinite(scale)) return optim__fail(opt, OPTIM_ENONFINITE, "decay scale must be finite");
  if (scale < 0) return optim__fail(opt, OPTIM_ERANGE, "decay scale must be >= 0, got %g", scale);
  return OPTIM_OK;
}

int optim_param_set_decay_scale(optim_optimizer *opt, int index, double scale)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  if (index < 0 || index >= opt->nparams)
    return optim__fail(opt, OPTIM_EINVAL, "parameter %d does not exist", index);
  int st = check_scale(opt, scale);
  if (st) return st;
  optim_param *p = &opt->params[index];
  if (has_decay(p, opt) < 0)
    return optim__fail(opt, OPTIM_EUNSUPPORTED, "%s: %s has no weight decay to scale", p->name,
                       opt->groups[p->group].alg->name);
  optim__step_cancel(opt);
  p->wd_scale = scale;
  return OPTIM_OK;
}

int optim_param_get_decay_scale(optim_optimizer *opt, int index, double *scale)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  if (scale == NULL) return optim__fail(opt, OPTIM_EINVAL, "output pointer is NULL");
  if (index < 0 || index >= opt->nparams)
    return optim__fail(opt, OPTIM_EINVAL, "parameter %d does not exist", index);
  *scale = opt->params[index].wd_scale;
  return OPTIM_OK;
}

/* Whether name matches one of the comma-separated patterns (blanks around
 * a pattern ignored); pats is a writable copy. */
static int matches(const char *name, const char *patterns, char *buf)
{
  strcpy(buf, patterns);
  char *save = NULL;
  for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    while (*t == ' ' || *t == '\t') t++;
    size_t n = strlen(t);
    while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t')) t[--n] = '\0';
    if (n > 0 && fnmatch(t, name, 0) == 0) return 1;
  }
  return 0;
}

int optim_set_decay_mask(optim_optimizer *opt, const char *patterns, double scale, int *matched)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  if (patterns == NULL) return optim__fail(opt, OPTIM_EINVAL, "patterns is NULL");
  int st = check_scale(opt, scale);
  if (st) return st;
  char *buf = malloc(strlen(patterns) + 1);
  if (!buf) return optim__fail(opt, OPTIM_ENOMEM, "out of memory");
  int n = 0;
  for (int i = 0; i < opt->nparams; i++) {
    const optim_param *p = &opt->params[i];
    if (!matches(p->name, patterns, buf)) continue;
    if (has_decay(p, opt) < 0) {
      free(buf);
      return optim__fail(opt, OPTIM_EUNSUPPORTED,
                         "'%s' matches \"%s\" but %s has no weight decay: nothing was changed",
                         p->name, patterns, opt->groups[p->group].alg->name);
    }
    n++;
  }
  if (n == 0) {
    free(buf);
    return optim__fail(opt, OPTIM_EUNKNOWN, "no parameter name matches \"%s\"", patterns);
  }
  optim__step_cancel(opt);
  for (int i = 0; i < opt->nparams; i++)
    if (matches(opt->params[i].name, patterns, buf)) opt->params[i].wd_scale = scale;
  free(buf);
  if (matched) *matched = n;
  return OPTIM_OK;
}
