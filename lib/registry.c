/* registry.c - the table of algorithms and the introspection API. */
#include <math.h>
#include <string.h>

#include "optim-internal.h"

extern const optim_alg optim__alg_sgd;
extern const optim_alg optim__alg_adam;
extern const optim_alg optim__alg_adamw;
extern const optim_alg optim__alg_adagrad;
extern const optim_alg optim__alg_muon;
extern const optim_alg optim__alg_normuon;
extern const optim_alg optim__alg_root;
extern const optim_alg optim__alg_fismo;
extern const optim_alg optim__alg_soap;
extern const optim_alg optim__alg_shampoo;
extern const optim_alg optim__alg_adahessian;
extern const optim_alg optim__alg_adagrad_norm;
extern const optim_alg optim__alg_adasvrg;
extern const optim_alg optim__alg_adam_cm;
extern const optim_alg optim__alg_igt;
extern const optim_alg optim__alg_adam_igt;
extern const optim_alg optim__alg_adabelief;
extern const optim_alg optim__alg_lion;
extern const optim_alg optim__alg_lion_k;
extern const optim_alg optim__alg_tam;
extern const optim_alg optim__alg_adatam;

/* Order is the listing order of optim_algorithm_name(); append only. */
static const optim_alg *const algs[] = {
  &optim__alg_sgd,
  &optim__alg_adam,
  &optim__alg_adamw,
  &optim__alg_adagrad,
  &optim__alg_muon,
  &optim__alg_normuon,
  &optim__alg_root,
  &optim__alg_fismo,
  &optim__alg_soap,
  &optim__alg_shampoo,
  &optim__alg_adahessian,
  &optim__alg_adagrad_norm,
  &optim__alg_adasvrg,
  &optim__alg_adam_cm,
  &optim__alg_igt,
  &optim__alg_adam_igt,
  &optim__alg_adabelief,
  &optim__alg_lion,
  &optim__alg_lion_k,
  &optim__alg_tam,
  &optim__alg_adatam,
};
#define NALGS ((int)(sizeof algs / sizeof algs[0]))

const hp_desc optim__hp_common[OPTIM_NCOMMON] = {
  {"nonfinite", OPTIM_TYPE_STRING, 0, "error", 0, 0, 0, "error|skip|zero",
   "policy for NaN/Inf gradients: error (step fails, nothing changes), "
   "skip (the group skips this step), zero (non-finite entries count as 0)"},
  {"clip_norm", OPTIM_TYPE_DOUBLE, 0, "0", 0, INFINITY, 0, 0,
   "clip the group's gradients to this L2 norm (over all its parameters), as "
   "torch.nn.utils.clip_grad_norm_; 0: off"},
};

const hp_desc *optim__hp_desc(const optim_alg *alg, int idx)
{
  return idx >= 0 ? &alg->hp[idx] : &optim__hp_common[-1 - idx];
}

hp_value optim__common_get(const optim_group *g, int k)
{
  hp_value v = {0};
  if (k == HP_COMMON_NONFINITE) v.i = g->nonfinite;
  else v.d = g->clip_norm;
  return v;
}

void optim__common_set(optim_group *g, int k, hp_value v)
{
  if (k == HP_COMMON_NONFINITE) g->nonfinite = (int)v.i;
  else g->clip_norm = v.d;
}

const optim_alg *optim__alg_find(const char *name)
{
  if (name == NULL) return NULL;
  for (int i = 0; i < NALGS; i++)
    if (strcmp(algs[i]->name, name) == 0) return algs[i];
  return NULL;
}

int optim__hp_index(const optim_alg *alg, const char *name)
{
  for (int i = 0; i < alg->nhp; i++)
    if (strcmp(alg->hp[i].name, name) == 0) return i;
  for (int k = 0; k < OPTIM_NCOMMON; k++)
    if (strcmp(name, optim__hp_common[k].name) == 0) return -1 - k;
  return HP_NONE;
}

int optim_algorithm_count(void) { return NALGS; }

const char *optim_algorithm_name(int index)
{
  return (index >= 0 && index < NALGS) ? algs[index]->name : NULL;
}

const char *optim_algorithm_doc(const char *algorithm)
{
  const optim_alg *a = optim__alg_find(algorithm);
  return a ? a->doc : NULL;
}

int optim_hparam_count(const char *algorithm)
{
  if (algorithm == NULL) return OPTIM_EINVAL;
  const optim_alg *a = optim__alg_find(algorithm);
  return a ? a->nhp + OPTIM_NCOMMON : OPTIM_EUNKNOWN;
}

int optim_hparam_info(const char *algorithm, int index, const char **name,
                      int *type, const char **default_value, const char **doc)
{
  if (algorithm == NULL) return OPTIM_EINVAL;
  const optim_alg *a = optim__alg_find(algorithm);
  if (a == NULL) return OPTIM_EUNKNOWN;
  if (index < 0 || index >= a->nhp + OPTIM_NCOMMON) return OPTIM_ERANGE;
  const hp_desc *d = index < a->nhp ? &a->hp[index] : &optim__hp_common[index - a->nhp];
  if (name) *name = d->name;
  if (type) *type = d->type;
  if (default_value) *default_value = d->def_str;
  if (doc) *doc = d->doc;
  return OPTIM_OK;
}
