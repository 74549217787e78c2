/* plan.c - which rank steps which whole-tensor parameter: greedy
 * largest-processing-time-first, a pure function of (costs, ranks), so
 * every rank computes the same plan without communicating.  LPT is within
 * 4/3 of the optimal makespan. */
#include <stdlib.h>

#include "plan.h"

typedef struct task {
  double cost;
  int index;
} task;

static int by_cost(const void *a, const void *b)
{
  const task *x = a, *y = b;
  if (x->cost != y->cost) return x->cost < y->cost ? 1 : -1; /* largest first */
  return (x->index > y->index) - (x->index < y->index);       /* then by index */
}

double optim_mpi__plan(const double *cost, int n, int size, int *owner)
{
  task *t = malloc(sizeof *t * (size_t)(n ? n : 1));
  double *load = calloc((size_t)size, sizeof *load);
  int nt = 0;
  if (!t || !load) {
    free(t);
    free(load);
    return -1;
  }
  for (int i = 0; i < n; i++) {
    owner[i] = -1;
    if (cost[i] > 0) t[nt++] = (task){cost[i], i};
  }
  qsort(t, (size_t)nt, sizeof *t, by_cost);
  for (int k = 0; k < nt; k++) {
    int best = 0; /* least loaded, lowest rank on ties */
    for (int r = 1; r < size; r++)
      if (load[r] < load[best]) best = r;
    owner[t[k].index] = best;
    load[best] += t[k].cost;
  }
  double max = 0, sum = 0;
  for (int r = 0; r < size; r++) {
    sum += load[r];
    if (load[r] > max) max = load[r];
  }
  free(t);
  free(load);
  return sum > 0 ? max / (sum / size) : 1;
}
