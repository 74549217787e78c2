/* scaling.c - batch-size scaling rules for a group's hyperparameters:
 * when the batch grows by kappa, SGD keeps its trajectory with lr * kappa
 * (Goyal et al. 2017, the linear rule) and Adam-type methods with
 * lr * sqrt(kappa) (Malladi, Lyu, Panigrahi, Arora 2022, the square-root
 * rule), whose SDE argument also scales 1 - beta1, 1 - beta2 by kappa and
 * eps by 1 / sqrt(kappa) ("sqrt_sde"). */
#include <math.h>
#include <string.h>

#include "optim-internal.h"

/* Index of a double hyperparameter, or -1. */
static int hp_of(const optim_alg *a, const char *name)
{
  int i = optim__hp_index(a, name);
  return i >= 0 && a->hp[i].type == OPTIM_TYPE_DOUBLE ? i : -1;
}

int optim_scale_batch_size(optim_optimizer *opt, int group, double kappa, const char *rule)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  if (group < 0 || group >= opt->ngroups)
    return optim__fail(opt, OPTIM_EINVAL, "group %d does not exist", group);
  if (!isfinite(kappa)) return optim__fail(opt, OPTIM_ENONFINITE, "kappa must be finite");
  if (!(kappa > 0)) return optim__fail(opt, OPTIM_ERANGE, "kappa must be > 0, got %g", kappa);
  optim_group *g = &opt->groups[group];
  const optim_alg *a = g->alg;
  int lr = hp_of(a, "lr"), b1 = hp_of(a, "beta1"), b2 = hp_of(a, "beta2"), eps = hp_of(a, "eps");
  if (lr < 0)
    return optim__fail(opt, OPTIM_EUNSUPPORTED, "%s has no learning rate to scale", a->name);
  if (rule == NULL) /* the algorithm's usual rule */
    rule = (strcmp(a->name, "sgd") == 0 || strcmp(a->name, "igt") == 0) ? "linear" : "sqrt";
  int sde = strcmp(rule, "sqrt_sde") == 0;
  if (strcmp(rule, "linear") != 0 && strcmp(rule, "sqrt") != 0 && !sde)
    return optim__fail(opt, OPTIM_EUNKNOWN,
                       "unknown rule '%s' (linear, sqrt or sqrt_sde)", rule);
  if (sde && (b1 < 0 || b2 < 0 || eps < 0))
    return optim__fail(opt, OPTIM_EUNSUPPORTED,
                       "sqrt_sde scales beta1, beta2 and eps, which %s does not have all of",
                       a->name);
  /* new values, validated before anything changes (the bases when a
   * schedule is attached) */
  double cur[4], val[4];
  int idx[4] = {lr, b1, b2, eps}, n = sde ? 4 : 1;
  for (int k = 0; k < n; k++)
    cur[k] = (g->sched && g->sched[idx[k]]) ? g->sched_base[idx[k]] : g->hp[idx[k]].d;
  val[0] = cur[0] * (strcmp(rule, "linear") == 0 ? kappa : sqrt(kappa));
  if (sde) {
    val[1] = 1 - kappa * (1 - cur[1]);
    val[2] = 1 - kappa * (1 - cur[2]);
    val[3] = cur[3] / sqrt(kappa);
  }
  for (int k = 0; k < n; k++) {
    hp_value v = {.d = val[k]};
    char msg[200];
    if (optim__hp_check_value(&a->hp[idx[k]], v, msg, sizeof msg) != OPTIM_OK)
      return optim__fail(opt, OPTIM_ERANGE,
                         "%s would become %g (batch scaled by %g, rule %s): %s; nothing was "
                         "changed",
                         a->hp[idx[k]].name, val[k], kappa, rule, msg);
  }
  optim__step_cancel(opt);
  for (int k = 0; k < n; k++) {
    g->hp_set[idx[k]] = 1;
    if (g->sched && g->sched[idx[k]]) g->sched_base[idx[k]] = val[k];
    else g->hp[idx[k]].d = val[k];
  }
  optim__sched_apply(g);
  return OPTIM_OK;
}
