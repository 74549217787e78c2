/* reduce.c - gradient averaging: small gradients are packed, in
 * registration order and per element type, into buckets of bucket_bytes
 * (a tensor may span buckets), large ones are reduced where they lie a
 * bucket at a time; each piece is summed across ranks (MPI_Allreduce, or
 * the rank-ordered reduction) and divided by the number of ranks.  With
 * MPI's reduction, a large matrix's gradient is summed on its owner only
 * (MPI_Reduce) and a large sharded one on each rank's range only
 * (MPI_Reduce_scatter): the bytes of the bandwidth-optimal exchange. */
#include <string.h>

#include "mpi-internal.h"

static double now(void) { return MPI_Wtime(); }

static int mpi_fail(optim_mpi *d, int rc, const char *what)
{
  char msg[MPI_MAX_ERROR_STRING];
  int l = 0;
  MPI_Error_string(rc, msg, &l);
  return optim_mpi__fail(d, OPTIM_EMPI, "%s: %s", what, msg);
}

#define DIVIDE(T, x, n, p)                                        \
  do {                                                            \
    T *f_ = (T *)(x), p_ = (T)(p);                                \
    for (size_t i_ = 0; i_ < (n); i_++) f_[i_] = f_[i_] / p_;     \
  } while (0)

void optim_mpi__divide(optim_mpi *d, int dtype, void *x, size_t n)
{
  if (dtype == OPTIM_FLOAT32) DIVIDE(float, x, n, d->size);
  else DIVIDE(double, x, n, d->size);
}

/* Rank-ordered sum: every rank gathers the contributions to its 1/p of x
 * (MPI_Alltoallv), adds them in rank order 0, 1, ..., p-1 starting from
 * zero, divides, and the results are gathered back (MPI_Allgatherv).  The
 * same bytes as a ring allreduce, and the same sum as a serial loop over
 * the ranks' gradients, whatever MPI's algorithms. */
static int ordered(optim_mpi *d, int dtype, void *x, size_t cnt)
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
      out[i] = acc / (float)p;
    }
  } else {
    double *in = (double *)d->scratch, *out = (double *)x + sd[r];
    for (size_t i = 0; i < m; i++) {
      double acc = 0;
      for (int q = 0; q < p; q++) acc += in[(size_t)q * m + i];
      out[i] = acc / (double)p;
    }
  }
  e = MPI_Allgatherv(MPI_IN_PLACE, 0, t, x, sc, sd, t, d->comm);
  if (e != MPI_SUCCESS) return mpi_fail(d, e, "MPI_Allgatherv of averaged gradients");
  (void)es;
  return OPTIM_OK;
}

/* x[0..cnt) <- the average over ranks of x, in place. */
static int sum_average(optim_mpi *d, int dtype, void *x, size_t cnt)
{
  size_t es = dtype == OPTIM_FLOAT32 ? 4 : 8;
  double t0 = now();
  int st = OPTIM_OK;
  if (d->reduce_mode == OPTIM_MPI_REDUCE_ORDERED) {
    st = ordered(d, dtype, x, cnt);
  } else {
    int e = MPI_Allreduce(MPI_IN_PLACE, x, (int)cnt,
                          dtype == OPTIM_FLOAT32 ? MPI_FLOAT : MPI_DOUBLE, MPI_SUM, d->comm);
    if (e != MPI_SUCCESS) st = mpi_fail(d, e, "MPI_Allreduce of gradients");
    else if (dtype == OPTIM_FLOAT32) DIVIDE(float, x, cnt, d->size);
    else DIVIDE(double, x, cnt, d->size);
  }
  d->comm_s += now() - t0;
  /* both move 2 (p-1)/p of the bytes out of each rank (ring model) */
  d->bytes += 2.0 * (double)(d->size - 1) / (double)d->size * (double)(cnt * es);
  d->messages += d->size > 1 ? 2.0 * (d->size - 1) : 0;
  return st;
}

/* Large matrix gradients: only the owner needs the sum (MPI_Reduce to it,
 * a bucket at a time), then divides; other ranks keep their own gradient. */
static int reduce_to_owner(optim_mpi *d, int dtype, void *g, size_t n, int owner)
{
  size_t es = dtype == OPTIM_FLOAT32 ? 4 : 8, step = d->bucket_bytes / es;
  MPI_Datatype t = dtype == OPTIM_FLOAT32 ? MPI_FLOAT : MPI_DOUBLE;
  double t0 = now();
  for (size_t o = 0; o < n; o += step) {
    size_t cnt = n - o < step ? n - o : step;
    char *x = (char *)g + o * es;
    int e = MPI_Reduce(d->rank == owner ? MPI_IN_PLACE : x, x, (int)cnt, t, MPI_SUM, owner,
                       d->comm);
    if (e != MPI_SUCCESS) return mpi_fail(d, e, "MPI_Reduce of a gradient to its owner");
    if (d->rank == owner) {
      if (dtype == OPTIM_FLOAT32) DIVIDE(float, x, cnt, d->size);
      else DIVIDE(double, x, cnt, d->size);
    }
  }
  d->comm_s += now() - t0;
  d->bytes += (double)(d->size - 1) / (double)d->size * (double)(n * es);
  d->messages += d->size - 1;
  return OPTIM_OK;
}

/* Large sharded element-wise gradients: each rank needs the sum over its
 * own range only (MPI_Reduce_scatter, a bucket at a time; each rank's
 * block is the part of its range inside the bucket). */
static int reduce_to_ranges(optim_mpi *d, int dtype, void *g, size_t n, int param)
{
  size_t es = dtype == OPTIM_FLOAT32 ? 4 : 8, step = d->bucket_bytes / es;
  MPI_Datatype t = dtype == OPTIM_FLOAT32 ? MPI_FLOAT : MPI_DOUBLE;
  int p = d->size, *rc = d->counts;
  double t0 = now();
  for (size_t o = 0; o < n; o += step) {
    size_t cnt = n - o < step ? n - o : step, mine = 0, at = 0;
    for (int r = 0; r < p; r++) {
      size_t lo, hi;
      optim_mpi__range(d, param, n, r, &lo, &hi);
      size_t a = lo > o ? lo : o, b = hi < o + cnt ? hi : o + cnt;
      rc[r] = b > a ? (int)(b - a) : 0;
      if (r == d->rank) {
        mine = (size_t)rc[r];
        at = a;
      }
    }
    int e = MPI_Reduce_scatter((char *)g + o * es, d->scratch, rc, t, MPI_SUM, d->comm);
    if (e != MPI_SUCCESS) return mpi_fail(d, e, "MPI_Reduce_scatter of a gradient");
    if (mine > 0) {
      if (dtype == OPTIM_FLOAT32) DIVIDE(float, d->scratch, mine, d->size);
      else DIVIDE(double, d->scratch, mine, d->size);
      memcpy((char *)g + at * es, d->scratch, mine * es);
    }
  }
  d->comm_s += now() - t0;
  d->bytes += (double)(d->size - 1) / (double)d->size * (double)(n * es);
  d->messages += d->size - 1;
  return OPTIM_OK;
}

/* Average the packed bucket and copy it back to the gradients. */
static int flush(optim_mpi *d, int dtype, size_t used, const int *idx, const size_t *off,
                 const size_t *len, int nseg)
{
  size_t es = dtype == OPTIM_FLOAT32 ? 4 : 8;
  int st = sum_average(d, dtype, d->bucket, used / es);
  if (st) return st;
  size_t pos = 0;
  for (int s = 0; s < nseg; s++) {
    const void *g;
    optim_param_buffers(d->opt, idx[s], NULL, &g);
    memcpy((char *)g + off[s] * es, d->bucket + pos, len[s] * es);
    pos += len[s] * es;
  }
  return OPTIM_OK;
}

int optim_mpi__average(optim_mpi *d)
{
  if (d->size == 1) return OPTIM_OK; /* the average of one gradient is itself */
  int *idx = d->seg_idx;
  size_t *off = d->seg_off, *len = d->seg_len;
  for (int dtype = OPTIM_FLOAT32; dtype <= OPTIM_FLOAT64; dtype++) {
    size_t es = dtype == OPTIM_FLOAT32 ? 4 : 8, cap = d->bucket_bytes / es * es, used = 0;
    int nseg = 0;
    for (int i = 0; i < d->nparams; i++) {
      int dt, ndim;
      int64_t shape[OPTIM_MAX_DIMS];
      const void *g;
      optim_param_info(d->opt, i, NULL, NULL, &dt, &ndim, shape);
      optim_param_buffers(d->opt, i, NULL, &g);
      if (dt != dtype || g == NULL) continue;
      size_t n = 1, done = 0;
      for (int k = 0; k < ndim; k++) n *= (size_t)shape[k];
      if (n * es >= cap / 2) {
        /* Large tensors are reduced where they lie, a bucket at a time: no
         * packing copies.  With MPI's reduction, a matrix's sum goes to its
         * owner only and a sharded tensor's to each rank's range only. */
        if (d->reduce_mode == OPTIM_MPI_REDUCE_MPI && d->owner[i] >= 0) {
          int st = reduce_to_owner(d, dtype, (void *)g, n, d->owner[i]);
          if (st) return st;
          continue;
        }
        if (d->reduce_mode == OPTIM_MPI_REDUCE_MPI && optim_mpi__ranged(d, i)) {
          int st = reduce_to_ranges(d, dtype, (void *)g, n, i);
          if (st) return st;
          continue;
        }
        for (size_t o = 0; o < n; o += cap / es) {
          size_t cnt = n - o < cap / es ? n - o : cap / es;
          int st = sum_average(d, dtype, (char *)g + o * es, cnt);
          if (st) return st;
        }
        continue;
      }
      while (done < n) {
        size_t take = (cap - used) / es;
        if (take > n - done) take = n - done;
        memcpy(d->bucket + used, (const char *)g + done * es, take * es);
        idx[nseg] = i;
        off[nseg] = done;
        len[nseg] = take;
        nseg++;
        used += take * es;
        done += take;
        if (used == cap || nseg == OPTIM_MPI_MAXSEG) {
          int st = flush(d, dtype, used, idx, off, len, nseg);
          if (st) return st;
          used = 0;
          nseg = 0;
        }
      }
    }
    if (used > 0) {
      int st = flush(d, dtype, used, idx, off, len, nseg);
      if (st) return st;
    }
  }
  return OPTIM_OK;
}
