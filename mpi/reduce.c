/* reduce.c - gradient averaging: parameters' gradients are packed, in
 * registration order and per element type, into buckets of bucket_bytes
 * (a tensor may span buckets), each bucket is summed with MPI_Allreduce,
 * and the sum divided by the number of ranks is written back. */
#include <string.h>

#include "mpi-internal.h"

static double now(void) { return MPI_Wtime(); }

/* Sum the bucket across ranks and scatter the average back. */
static int flush(optim_mpi *d, int dtype, size_t used, const int *idx, const size_t *off,
                 const size_t *len, int nseg)
{
  size_t es = dtype == OPTIM_FLOAT32 ? 4 : 8;
  double t0 = now();
  int rc = MPI_Allreduce(MPI_IN_PLACE, d->bucket, (int)(used / es),
                         dtype == OPTIM_FLOAT32 ? MPI_FLOAT : MPI_DOUBLE, MPI_SUM, d->comm);
  d->comm_s += now() - t0;
  if (rc != MPI_SUCCESS) {
    char msg[MPI_MAX_ERROR_STRING];
    int l = 0;
    MPI_Error_string(rc, msg, &l);
    return optim_mpi__fail(d, OPTIM_EMPI, "MPI_Allreduce of a gradient bucket: %s", msg);
  }
  /* ring allreduce cost model: 2 (p-1)/p of the bytes leave each rank */
  d->bytes += 2.0 * (double)(d->size - 1) / (double)d->size * (double)used;
  d->messages += d->size > 1 ? 2.0 * (d->size - 1) : 0;
  size_t pos = 0;
  for (int s = 0; s < nseg; s++) {
    const void *g;
    optim_param_buffers(d->opt, idx[s], NULL, &g);
    if (dtype == OPTIM_FLOAT32) {
      float *dst = (float *)g + off[s], *src = (float *)(d->bucket + pos), p = (float)d->size;
      for (size_t i = 0; i < len[s]; i++) dst[i] = src[i] / p;
    } else {
      double *dst = (double *)g + off[s], *src = (double *)(d->bucket + pos), p = d->size;
      for (size_t i = 0; i < len[s]; i++) dst[i] = src[i] / p;
    }
    pos += len[s] * es;
  }
  return OPTIM_OK;
}

/* Sum cnt elements at x across ranks and divide by the number of ranks. */
static int reduce_in_place(optim_mpi *d, int dtype, void *x, size_t cnt)
{
  size_t es = dtype == OPTIM_FLOAT32 ? 4 : 8;
  double t0 = now();
  int rc = MPI_Allreduce(MPI_IN_PLACE, x, (int)cnt,
                         dtype == OPTIM_FLOAT32 ? MPI_FLOAT : MPI_DOUBLE, MPI_SUM, d->comm);
  d->comm_s += now() - t0;
  if (rc != MPI_SUCCESS)
    return optim_mpi__fail(d, OPTIM_EMPI, "MPI_Allreduce of a gradient failed");
  d->bytes += 2.0 * (double)(d->size - 1) / (double)d->size * (double)(cnt * es);
  d->messages += d->size > 1 ? 2.0 * (d->size - 1) : 0;
  if (dtype == OPTIM_FLOAT32) {
    float *f = x, p = (float)d->size;
    for (size_t i = 0; i < cnt; i++) f[i] = f[i] / p;
  } else {
    double *f = x, p = d->size;
    for (size_t i = 0; i < cnt; i++) f[i] = f[i] / p;
  }
  return OPTIM_OK;
}

int optim_mpi__average(optim_mpi *d)
{
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
         * packing copies. */
        for (size_t o = 0; o < n; o += cap / es) {
          size_t cnt = n - o < cap / es ? n - o : cap / es;
          int st = reduce_in_place(d, dtype, (char *)g + o * es, cnt);
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
