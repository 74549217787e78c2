/*
 * schedule.h - learning-rate schedules inside liboptim.  Never installed;
 * nothing here is ABI.
 *
 * A schedule maps the step t (0-based: the number of steps applied before)
 * to a factor of the base learning rate.  It is either parsed from a spec
 * string ("kind" or "kind:key=value,...", see optim_schedule_eval(3)) or a
 * table of values.  The coordinator attaches schedules to a group's
 * hyperparameters and saves them in checkpoints: as the canonical spec
 * text, or as the table's values.
 */
#ifndef OPTIM_SCHEDULE_H
#define OPTIM_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

#include "optim.h"

typedef struct optim_sched optim_sched;

/* Parse spec into a new schedule (*out, freed with optim__sched_free).  On
 * error *out is NULL and the status is OPTIM_EINVAL (malformed text, a
 * missing required key, a value that is not a number, keys that do not go
 * together), OPTIM_ERANGE (a value outside its range), OPTIM_EUNKNOWN (an
 * unknown kind or key) or OPTIM_ENOMEM; msg (size bytes, may be NULL when
 * size is 0) then names the problem. */
int optim__sched_parse(const char *spec, optim_sched **out, char *msg, size_t size);

/* A table schedule: factor(t) = f[t] for t < n, f[n-1] after.  Copies the
 * n >= 1 values.  NULL when n < 1, f is NULL or memory runs out. */
optim_sched *optim__sched_table(const double *f, int64_t n);

/* The factor at step t (t < 0 is taken as 0). */
double optim__sched_factor(const optim_sched *s, int64_t t);

/* Canonical spec text: the kind and every key, in a fixed order, with the
 * defaults filled in and numbers in their shortest round-trip form, so that
 * parsing it gives the same schedule.  NULL for a table. */
const char *optim__sched_spec(const optim_sched *s);

/* The values of a table schedule (*n receives their count), or NULL (and
 * *n = 0) for a parsed schedule.  n may be NULL. */
const double *optim__sched_values(const optim_sched *s, int64_t *n);

/* Free a schedule.  NULL is a no-op. */
void optim__sched_free(optim_sched *s);

#endif /* OPTIM_SCHEDULE_H */
