/* sched_attach.c - schedules attached to a group's hyperparameters: the
 * value a step uses is base * factor(steps), base being the value the
 * caller set, steps the group's count of applied steps.  Re-evaluated
 * after every step, every setting and every checkpoint load, so g->hp
 * always holds the value the next step uses. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "optim-internal.h"
#include "schedule.h"

void optim__sched_apply(optim_group *g)
{
  if (!g->sched) return;
  for (int i = 0; i < g->alg->nhp; i++)
    if (g->sched[i]) g->hp[i].d = g->sched_base[i] * optim__sched_factor(g->sched[i], g->steps);
}

int optim__sched_check(const optim_group *g, int group, char *msg, size_t size)
{
  if (!g->sched) return OPTIM_OK;
  for (int i = 0; i < g->alg->nhp; i++) {
    if (!g->sched[i]) continue;
    char m[256];
    if (!isfinite(g->hp[i].d) ||
        optim__hp_check_value(&g->alg->hp[i], g->hp[i], m, sizeof m) != OPTIM_OK) {
      snprintf(msg, size,
               "group %d: the schedule of %s gives %g at step %lld (base %g), outside its "
               "range: nothing was changed",
               group, g->alg->hp[i].name, g->hp[i].d, (long long)g->steps, g->sched_base[i]);
      return OPTIM_ERANGE;
    }
  }
  return OPTIM_OK;
}

void optim__sched_free_all(optim_group *g)
{
  if (!g->sched) return;
  for (int i = 0; i < g->alg->nhp; i++) optim__sched_free(g->sched[i]);
  free(g->sched);
  free(g->sched_base);
  g->sched = NULL;
  g->sched_base = NULL;
}

int optim__sched_set(optim_group *g, int idx, optim_sched *s)
{
  if (!g->sched) {
    if (!s) return OPTIM_OK;
    g->sched = calloc((size_t)g->alg->nhp, sizeof *g->sched);
    g->sched_base = calloc((size_t)g->alg->nhp, sizeof *g->sched_base);
    if (!g->sched || !g->sched_base) {
      free(g->sched);
      free(g->sched_base);
      g->sched = NULL;
      g->sched_base = NULL;
      return OPTIM_ENOMEM;
    }
  }
  if (!g->sched[idx]) g->sched_base[idx] = g->hp[idx].d; /* a new schedule: the value is the base */
  else if (!s) g->hp[idx].d = g->sched_base[idx];      /* removed: back to the base */
  optim__sched_free(g->sched[idx]);
  g->sched[idx] = s;
  optim__sched_apply(g);
  return OPTIM_OK;
}

/* The group's double hyperparameter `name`: its index, or a failure. */
static int schedulable(optim_optimizer *opt, int group, const char *name, int *idx)
{
  if (group < 0 || group >= opt->ngroups)
    return optim__fail(opt, OPTIM_EINVAL, "group %d does not exist (%d groups)", group,
                       opt->ngroups);
  if (name == NULL) return optim__fail(opt, OPTIM_EINVAL, "hyperparameter name is NULL");
  const optim_alg *a = opt->groups[group].alg;
  int i = optim__hp_index(a, name);
  if (i == HP_NONE)
    return optim__fail(opt, OPTIM_EUNKNOWN, "%s has no hyperparameter '%s'", a->name, name);
  if (i < 0 || a->hp[i].type != OPTIM_TYPE_DOUBLE)
    return optim__fail(opt, OPTIM_ETYPE,
                       "%s: only the algorithm's real-valued hyperparameters take a schedule",
                       name);
  if ((a->hp[i].flags & HP_REQUIRED) && !opt->groups[group].hp_set[i])
    return optim__fail(opt, OPTIM_ECONFIG, "%s has no default: set it before its schedule",
                       name);
  *idx = i;
  return OPTIM_OK;
}

/* Attach s (NULL: remove) to hyperparameter idx of the group; takes s. */
static int attach(optim_optimizer *opt, int group, int idx, optim_sched *s)
{
  optim__step_cancel(opt);
  int st = optim__sched_set(&opt->groups[group], idx, s);
  if (st) {
    optim__sched_free(s);
    return optim__fail(opt, st, "out of memory");
  }
  return OPTIM_OK;
}

int optim_set_schedule(optim_optimizer *opt, int group, const char *hparam, const char *spec)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  int idx, st = schedulable(opt, group, hparam, &idx);
  if (st) return st;
  optim_sched *s = NULL;
  if (spec) {
    char msg[256] = "";
    st = optim__sched_parse(spec, &s, msg, sizeof msg);
    if (st) return optim__fail(opt, st, "schedule \"%s\": %s", spec, msg);
  }
  return attach(opt, group, idx, s);
}

int optim_set_schedule_table(optim_optimizer *opt, int group, const char *hparam,
                             const double *factors, int64_t count)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  int idx, st = schedulable(opt, group, hparam, &idx);
  if (st) return st;
  if (factors == NULL || count < 1)
    return optim__fail(opt, OPTIM_EINVAL, "a table needs at least one factor");
  for (int64_t t = 0; t < count; t++)
    if (!isfinite(factors[t]) || factors[t] < 0)
      return optim__fail(opt, isfinite(factors[t]) ? OPTIM_ERANGE : OPTIM_ENONFINITE,
                         "factor %lld of the table is %g: factors must be finite and >= 0",
                         (long long)t, factors[t]);
  optim_sched *s = optim__sched_table(factors, count);
  if (!s) return optim__fail(opt, OPTIM_ENOMEM, "out of memory");
  return attach(opt, group, idx, s);
}
