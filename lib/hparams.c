/* hparams.c - typed, validated access to group hyperparameters. */
#define _POSIX_C_SOURCE 200809L /* strtok_r */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optim-internal.h"

/* Index of word in a '|' separated list, or -1. */
static int choice_index(const char *choices, const char *word)
{
  size_t n = strlen(word);
  int idx = 0;
  for (const char *s = choices; *s; idx++) {
    const char *e = strchr(s, '|');
    size_t len = e ? (size_t)(e - s) : strlen(s);
    if (len == n && strncmp(s, word, n) == 0) return idx;
    if (!e) break;
    s = e + 1;
  }
  return -1;
}

/* Copy choice number idx of a '|' list into buf. */
static int choice_word(const char *choices, int64_t idx, char *buf, size_t size)
{
  const char *s = choices;
  for (int64_t k = 0; k < idx && s; k++) {
    s = strchr(s, '|');
    if (s) s++;
  }
  if (!s) return OPTIM_EINVAL;
  const char *e = strchr(s, '|');
  size_t len = e ? (size_t)(e - s) : strlen(s);
  if (len + 1 > size) return OPTIM_ERANGE;
  memcpy(buf, s, len);
  buf[len] = '\0';
  return OPTIM_OK;
}

static hp_value default_value(const hp_desc *d)
{
  hp_value v = {0};
  switch (d->type) {
  case OPTIM_TYPE_DOUBLE: v.d = d->def; break;
  case OPTIM_TYPE_STRING: v.i = choice_index(d->choices, d->def_str); break;
  default: v.i = (int64_t)d->def; break;
  }
  return v;
}

int optim__group_init(optim_group *g, const optim_alg *alg)
{
  memset(g, 0, sizeof *g);
  g->alg = alg;
  g->hp = calloc((size_t)alg->nhp + 1, sizeof *g->hp);
  g->hp_set = calloc((size_t)alg->nhp + 1, 1);
  if (!g->hp || !g->hp_set) {
    free(g->hp);
    free(g->hp_set);
    return OPTIM_ENOMEM;
  }
  for (int i = 0; i < alg->nhp; i++) g->hp[i] = default_value(&alg->hp[i]);
  for (int k = 0; k < OPTIM_NCOMMON; k++)
    optim__common_set(g, k, default_value(&optim__hp_common[k]));
  g->gnorm_pre = -1;
  return OPTIM_OK;
}

void optim__group_free(optim_group *g)
{
  optim__sched_free_all(g);
  free(g->hp);
  free(g->hp_set);
  g->hp = NULL;
  g->hp_set = NULL;
}

int optim__hp_check_value(const hp_desc *d, hp_value v, char *msg, size_t size)
{
  double x;
  switch (d->type) {
  case OPTIM_TYPE_DOUBLE:
    x = v.d;
    if (!isfinite(x)) {
      snprintf(msg, size, "%s must be finite", d->name);
      return OPTIM_ENONFINITE;
    }
    break;
  case OPTIM_TYPE_INT: x = (double)v.i; break;
  case OPTIM_TYPE_BOOL:
    if (v.i != 0 && v.i != 1) {
      snprintf(msg, size, "%s must be 0 or 1", d->name);
      return OPTIM_ERANGE;
    }
    return OPTIM_OK;
  default:
    return OPTIM_OK; /* strings are checked against their choices when parsed */
  }
  int lo_ok = (d->flags & HP_LO_OPEN) ? x > d->lo : x >= d->lo;
  int hi_ok = (d->flags & HP_HI_OPEN) ? x < d->hi : x <= d->hi;
  if (!lo_ok || !hi_ok) {
    snprintf(msg, size, "%s = %.17g is outside %c%g, %g%c", d->name, x,
             (d->flags & HP_LO_OPEN) ? '(' : '[', d->lo, d->hi,
             (d->flags & HP_HI_OPEN) ? ')' : ']');
    return OPTIM_ERANGE;
  }
  return OPTIM_OK;
}

int optim__hp_parse(const hp_desc *d, const char *text, hp_value *out,
                    char *msg, size_t size)
{
  char *end;
  hp_value v = {0};
  switch (d->type) {
  case OPTIM_TYPE_DOUBLE:
    errno = 0;
    v.d = strtod(text, &end);
    if (end == text || *end != '\0') {
      snprintf(msg, size, "%s: '%s' is not a number", d->name, text);
      return OPTIM_EINVAL;
    }
    break;
  case OPTIM_TYPE_INT:
    errno = 0;
    v.i = strtoll(text, &end, 10);
    if (end == text || *end != '\0' || errno == ERANGE) {
      snprintf(msg, size, "%s: '%s' is not an integer", d->name, text);
      return OPTIM_EINVAL;
    }
    break;
  case OPTIM_TYPE_BOOL:
    if (!strcmp(text, "true") || !strcmp(text, "1") || !strcmp(text, "yes") ||
        !strcmp(text, "on"))
      v.i = 1;
    else if (!strcmp(text, "false") || !strcmp(text, "0") ||
             !strcmp(text, "no") || !strcmp(text, "off"))
      v.i = 0;
    else {
      snprintf(msg, size, "%s: '%s' is not a boolean (true/false)", d->name, text);
      return OPTIM_EINVAL;
    }
    break;
  default:
    v.i = choice_index(d->choices, text);
    if (v.i < 0) {
      snprintf(msg, size, "%s: '%s' is not one of %s", d->name, text, d->choices);
      return OPTIM_ERANGE;
    }
    return (*out = v, OPTIM_OK);
  }
  int st = optim__hp_check_value(d, v, msg, size);
  if (st == OPTIM_OK) *out = v;
  return st;
}

int optim__group_check(const optim_group *g, char *msg, size_t size)
{
  for (int i = 0; i < g->alg->nhp; i++)
    if ((g->alg->hp[i].flags & HP_REQUIRED) && !g->hp_set[i]) {
      snprintf(msg, size, "%s: %s is required and was not set", g->alg->name,
               g->alg->hp[i].name);
      return OPTIM_ECONFIG;
    }
  return g->alg->check ? g->alg->check(g, msg, size) : OPTIM_OK;
}

/* Resolve (group, name) to a descriptor and a value slot. */
static int lookup(optim_optimizer *opt, int group, const char *name,
                  const hp_desc **d, int *idx)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  if (name == NULL) return optim__fail(opt, OPTIM_EINVAL, "hyperparameter name is NULL");
  if (group < 0 || group >= opt->ngroups)
    return optim__fail(opt, OPTIM_EINVAL, "group %d does not exist (%d groups)",
                       group, opt->ngroups);
  const optim_alg *alg = opt->groups[group].alg;
  int i = optim__hp_index(alg, name);
  if (i == HP_NONE)
    return optim__fail(opt, OPTIM_EUNKNOWN, "%s has no hyperparameter '%s'",
                       alg->name, name);
  *idx = i;
  *d = optim__hp_desc(alg, i);
  return OPTIM_OK;
}

static hp_value current(const optim_group *g, int idx)
{
  if (idx >= 0) return g->hp[idx];
  return optim__common_get(g, -1 - idx);
}

/* Store a validated value, then bring the group's state in line with it.
 * A failing re-layout restores the previous value. */
static int store(optim_optimizer *opt, int group, int idx, hp_value v)
{
  optim__step_cancel(opt); /* a prepared step was checked under the old settings */
  optim_group *g = &opt->groups[group];
  if (idx < 0) {
    optim__common_set(g, -1 - idx, v);
    return OPTIM_OK;
  }
  if (g->sched && g->sched[idx]) { /* the value is the schedule's base */
    g->sched_base[idx] = v.d;
    g->hp_set[idx] = 1;
    optim__sched_apply(g);
    return OPTIM_OK;
  }
  hp_value old = g->hp[idx];
  unsigned char old_set = g->hp_set[idx];
  unsigned flags = g->alg->hp[idx].flags;
  g->hp[idx] = v;
  g->hp_set[idx] = 1;
  if (flags & (HP_LAYOUT | HP_REINIT)) {
    int st = optim__group_realize(opt, group, (flags & HP_REINIT) != 0);
    if (st != OPTIM_OK) {
      g->hp[idx] = old;
      g->hp_set[idx] = old_set;
      return st;
    }
  }
  return OPTIM_OK;
}

static int set_typed(optim_optimizer *opt, int group, const char *name,
                     int type, hp_value v)
{
  const hp_desc *d;
  int idx;
  int st = lookup(opt, group, name, &d, &idx);
  if (st) return st;
  if (d->type != type)
    return optim__fail(opt, OPTIM_ETYPE, "%s is not of the type used to set it", name);
  st = optim__hp_check_value(d, v, opt->errmsg, sizeof opt->errmsg);
  if (st) return st;
  return store(opt, group, idx, v);
}

static int get_typed(optim_optimizer *opt, int group, const char *name,
                     int type, hp_value *v)
{
  const hp_desc *d;
  int idx;
  int st = lookup(opt, group, name, &d, &idx);
  if (st) return st;
  if (d->type != type)
    return optim__fail(opt, OPTIM_ETYPE, "%s is not of the type used to read it", name);
  if (idx >= 0 && (d->flags & HP_REQUIRED) && !opt->groups[group].hp_set[idx])
    return optim__fail(opt, OPTIM_ECONFIG, "%s has no default and was not set", name);
  *v = current(&opt->groups[group], idx);
  return OPTIM_OK;
}

int optim_set_double(optim_optimizer *opt, int group, const char *name, double value)
{
  hp_value v = {.d = value};
  return set_typed(opt, group, name, OPTIM_TYPE_DOUBLE, v);
}

int optim_get_double(optim_optimizer *opt, int group, const char *name, double *value)
{
  hp_value v = {0};
  if (value == NULL) return optim__fail(opt, OPTIM_EINVAL, "output pointer is NULL");
  int st = get_typed(opt, group, name, OPTIM_TYPE_DOUBLE, &v);
  if (st == OPTIM_OK) *value = v.d;
  return st;
}

int optim_set_int(optim_optimizer *opt, int group, const char *name, int64_t value)
{
  hp_value v = {.i = value};
  return set_typed(opt, group, name, OPTIM_TYPE_INT, v);
}

int optim_get_int(optim_optimizer *opt, int group, const char *name, int64_t *value)
{
  hp_value v = {0};
  if (value == NULL) return optim__fail(opt, OPTIM_EINVAL, "output pointer is NULL");
  int st = get_typed(opt, group, name, OPTIM_TYPE_INT, &v);
  if (st == OPTIM_OK) *value = v.i;
  return st;
}

int optim_set_bool(optim_optimizer *opt, int group, const char *name, int value)
{
  hp_value v = {.i = value};
  return set_typed(opt, group, name, OPTIM_TYPE_BOOL, v);
}

int optim_get_bool(optim_optimizer *opt, int group, const char *name, int *value)
{
  hp_value v = {0};
  if (value == NULL) return optim__fail(opt, OPTIM_EINVAL, "output pointer is NULL");
  int st = get_typed(opt, group, name, OPTIM_TYPE_BOOL, &v);
  if (st == OPTIM_OK) *value = (int)v.i;
  return st;
}

int optim_set_string(optim_optimizer *opt, int group, const char *name, const char *value)
{
  const hp_desc *d;
  int idx;
  hp_value v = {0};
  int st = lookup(opt, group, name, &d, &idx);
  if (st) return st;
  if (d->type != OPTIM_TYPE_STRING)
    return optim__fail(opt, OPTIM_ETYPE, "%s is not a string hyperparameter", name);
  if (value == NULL) return optim__fail(opt, OPTIM_EINVAL, "value is NULL");
  st = optim__hp_parse(d, value, &v, opt->errmsg, sizeof opt->errmsg);
  if (st) return st;
  return store(opt, group, idx, v);
}

int optim_get_string(optim_optimizer *opt, int group, const char *name, char *buf,
                     size_t size)
{
  hp_value v = {0};
  if (buf == NULL) return optim__fail(opt, OPTIM_EINVAL, "output buffer is NULL");
  int st = get_typed(opt, group, name, OPTIM_TYPE_STRING, &v);
  if (st) return st;
  int idx = optim__hp_index(opt->groups[group].alg, name);
  const hp_desc *d = optim__hp_desc(opt->groups[group].alg, idx);
  st = choice_word(d->choices, v.i, buf, size);
  if (st) return optim__fail(opt, st, "buffer of %zu bytes is too small for %s", size, name);
  return OPTIM_OK;
}

int optim_set_option(optim_optimizer *opt, int group, const char *name, const char *text)
{
  const hp_desc *d;
  int idx;
  hp_value v = {0};
  int st = lookup(opt, group, name, &d, &idx);
  if (st) return st;
  if (text == NULL) return optim__fail(opt, OPTIM_EINVAL, "value of %s is NULL", name);
  st = optim__hp_parse(d, text, &v, opt->errmsg, sizeof opt->errmsg);
  if (st) return st;
  return store(opt, group, idx, v);
}

#define MAX_SPEC_ITEMS 64

/* Strip blanks at both ends, in place. */
static char *trim(char *s)
{
  while (*s == ' ' || *s == '\t') s++;
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = '\0';
  return s;
}

int optim_configure(optim_optimizer *opt, int group, const char *spec)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  if (spec == NULL) return optim__fail(opt, OPTIM_EINVAL, "spec is NULL");
  if (group < 0 || group >= opt->ngroups)
    return optim__fail(opt, OPTIM_EINVAL, "group %d does not exist", group);
  optim_group *g = &opt->groups[group];
  size_t len = strlen(spec);
  char *copy = malloc(len + 1);
  if (!copy) return optim__fail(opt, OPTIM_ENOMEM, "out of memory");
  memcpy(copy, spec, len + 1);

  /* Parse and validate every item first; apply only if all are good. */
  int idx[MAX_SPEC_ITEMS];
  hp_value val[MAX_SPEC_ITEMS];
  int n = 0, st = OPTIM_OK;
  char *save = NULL;
  for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
    item = trim(item);
    if (*item == '\0') continue;
    char *eq = strchr(item, '=');
    if (!eq) {
      st = optim__fail(opt, OPTIM_EINVAL, "'%s' is not name=value", item);
      break;
    }
    *eq = '\0';
    item = trim(item);
    char *value = trim(eq + 1);
    int i = optim__hp_index(g->alg, item);
    if (i == HP_NONE) {
      st = optim__fail(opt, OPTIM_EUNKNOWN, "%s has no hyperparameter '%s'", g->alg->name, item);
      break;
    }
    if (n == MAX_SPEC_ITEMS) {
      st = optim__fail(opt, OPTIM_ERANGE, "more than %d settings", MAX_SPEC_ITEMS);
      break;
    }
    const hp_desc *d = optim__hp_desc(g->alg, i);
    st = optim__hp_parse(d, value, &val[n], opt->errmsg, sizeof opt->errmsg);
    if (st) break;
    idx[n++] = i;
  }
  free(copy);
  if (st) return st;

  /* Apply on a copy of the group's values so a failing re-layout leaves
   * everything as it was. */
  int nhp = g->alg->nhp;
  hp_value *old = malloc(sizeof *old * (size_t)(nhp + 1));
  unsigned char *old_set = malloc((size_t)nhp + 1);
  double *old_base = malloc(sizeof *old_base * (size_t)(nhp + 1));
  if (!old || !old_set || !old_base) {
    free(old);
    free(old_set);
    free(old_base);
    return optim__fail(opt, OPTIM_ENOMEM, "out of memory");
  }
  memcpy(old, g->hp, sizeof *old * (size_t)nhp);
  memcpy(old_set, g->hp_set, (size_t)nhp);
  if (g->sched_base) memcpy(old_base, g->sched_base, sizeof *old_base * (size_t)nhp);
  hp_value old_common[OPTIM_NCOMMON];
  for (int k = 0; k < OPTIM_NCOMMON; k++) old_common[k] = optim__common_get(g, k);
  int relayout = 0, reinit = 0;
  for (int k = 0; k < n; k++) {
    if (idx[k] < 0) {
      optim__common_set(g, -1 - idx[k], val[k]);
      continue;
    }
    if (g->sched && g->sched[idx[k]]) { /* the value is the schedule's base */
      g->sched_base[idx[k]] = val[k].d;
      g->hp_set[idx[k]] = 1;
      continue;
    }
    g->hp[idx[k]] = val[k];
    g->hp_set[idx[k]] = 1;
    unsigned f = g->alg->hp[idx[k]].flags;
    relayout |= (f & (HP_LAYOUT | HP_REINIT)) != 0;
    reinit |= (f & HP_REINIT) != 0;
  }
  if (relayout) st = optim__group_realize(opt, group, reinit);
  if (st) {
    memcpy(g->hp, old, sizeof *old * (size_t)nhp);
    memcpy(g->hp_set, old_set, (size_t)nhp);
    for (int k = 0; k < OPTIM_NCOMMON; k++) optim__common_set(g, k, old_common[k]);
    if (g->sched_base) memcpy(g->sched_base, old_base, sizeof *old_base * (size_t)nhp);
  }
  free(old);
  free(old_set);
  free(old_base);
  optim__sched_apply(g);
  return st;
}
