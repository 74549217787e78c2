/* plan.h - the deterministic owner plan of the MPI layer (never installed).
 * Needs no MPI, so tools can compute the same plan (tools/optim-plan). */
#ifndef OPTIM_MPI_PLAN_H
#define OPTIM_MPI_PLAN_H

/* The deterministic LPT plan: owner[] from costs (0: element-wise, -1).
 * Returns max / mean planned cost over the `size` ranks (1 when nothing is
 * owned), or -1 when out of memory. */
double optim_mpi__plan(const double *cost, int n, int size, int *owner);

#endif
