/* reduce.c - the reduction the averaging pieces (mpi/overlap.c) use
 * besides MPI's own: the rank-ordered sum of reduce=ordered. */
#include <string.h>

#include "mpi-internal.h"

static int mpi_fail(optim_mpi *d, int rc, const char *what)
{
  char msg[MPI_MAX_ERROR_STRING];
  int l = 0;
  MPI_Error_string(rc, msg, &l);
  return optim_mpi__fail(d, OPTIM_EMPI, "%s: %s", what, msg);
}

/* Rank-ordered sum: every rank gathers the contributions to its 1/p of x
 * (MPI_Alltoallv), adds them in rank order 0, 1, ..., p-1 starting from
 * zero, and the sums are gathered back (MPI_Allgatherv).  The
 * same bytes as a ring allreduce, and the same sum as a serial loop over
 * the ranks' gradients, whatever MPI's algorithms. */
int optim_mpi__ordered(optim_mpi *d, int dtype, void *x, size_t cnt)
{
  int p = d->size, r = d->rank;
  size_t es = dtype == OPTIM_FLOAT32 ? 4 : 8;
  MPI_Datatype t = dtype == OPTIM_FLOAT32 ? MPI_FLOAT : MPI_DOUBLE;
  int *sc = d->counts, *sd = d->counts + p, *rc = d->counts + 2 * p, *rd = d->counts + 3 * p;
  for (int q = 0; q < p; q++) {
    size_t lo = cnt * (size_t)q / (size_t)p, hi = cnt * (size_t)(q + 1) / (size_t)p;
    sc[q] = (int)(hi - lo);
    sd[q] = (int)lo;
  }
  for (int q = 0; q < p; q++) {
    rc[q] = sc[r];
    rd[q] = q * sc[r];
  }
  int e = MPI_Alltoallv(x, sc, sd, t, d->scratch, rc, rd, t, d->comm);
  if (e != MPI_SUCCESS) return mpi_fail(d, e, "MPI_Alltoallv of gradients");
  size_t m = (size_t)sc[r];
  if (dtype == OPTIM_FLOAT32) {
    float *in = (float *)d->scratch, *out = (float *)x + sd[r];
    for (size_t i = 0; i < m; i++) {
      float acc = 0;
      for (int q = 0; q < p; q++) acc += in[(size_t)q * m + i];
      out[i] = acc;
    }
  } else {
    double *in = (double *)d->scratch, *out = (double *)x + sd[r];
    for (size_t i = 0; i < m; i++) {
      double acc = 0;
      for (int q = 0; q < p; q++) acc += in[(size_t)q * m + i];
      out[i] = acc;
    }
  }
  e = MPI_Allgatherv(MPI_IN_PLACE, 0, t, x, sc, sd, t, d->comm);
  if (e != MPI_SUCCESS) return mpi_fail(d, e, "MPI_Allgatherv of summed gradients");
  (void)es;
  return OPTIM_OK;
}

