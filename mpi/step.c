/* step.c - optim_mpi_step: average, validate everywhere, step, share. */
#include <string.h>

#include "mpi-internal.h"


/* optim_set_norm_reduce's reduction: the maximum over the ranks */
static int norm_reduce(void *ud, double *values, size_t count)
{
  optim_mpi *d = ud;
  int rc = MPI_Allreduce(MPI_IN_PLACE, values, (int)count, MPI_DOUBLE, MPI_MAX, d->comm);
  d->peer_failed = rc == MPI_SUCCESS && values[count - 1] != 0;
  return rc != MPI_SUCCESS;
}

/* Broadcast a whole-tensor parameter from its owner, in chunks that fit an
 * int count. */
static int share(optim_mpi *d, int index)
{
  int dtype, ndim;
  int64_t shape[OPTIM_MAX_DIMS];
  void *data;
  optim_param_info(d->opt, index, NULL, NULL, &dtype, &ndim, shape);
  optim_param_buffers(d->opt, index, &data, NULL);
  size_t n = 1, es = dtype == OPTIM_FLOAT32 ? 4 : 8;
  for (int k = 0; k < ndim; k++) n *= (size_t)shape[k];
  const size_t chunk = (size_t)1 << 30;
  for (size_t done = 0; done < n; done += chunk) {
    size_t take = n - done < chunk ? n - done : chunk;
    int rc = MPI_Bcast((char *)data + done * es, (int)take,
                       dtype == OPTIM_FLOAT32 ? MPI_FLOAT : MPI_DOUBLE, d->owner[index], d->comm);
    if (rc != MPI_SUCCESS)
      return optim_mpi__fail(d, OPTIM_EMPI, "MPI_Bcast of parameter %d failed", index);
    if (d->rank == d->owner[index]) d->bytes += (double)(take * es);
    d->messages += 1;
  }
  return OPTIM_OK;
}

/* Gather every rank's range of a sharded parameter back into all ranks. */
static int gather_shards(optim_mpi *d, int index)
{
  int dtype, ndim;
  int64_t shape[OPTIM_MAX_DIMS], n = 1;
  void *data;
  optim_param_info(d->opt, index, NULL, NULL, &dtype, &ndim, shape);
  optim_param_buffers(d->opt, index, &data, NULL);
  for (int k = 0; k < ndim; k++) n *= shape[k];
  int *cnt = d->counts_ag, *dsp = d->counts_ag + d->size;
  for (int r = 0; r < d->size; r++) {
    size_t lo, hi;
    optim_mpi__range(d, index, (size_t)n, r, &lo, &hi);
    dsp[r] = (int)lo;
    cnt[r] = (int)(hi - lo);
  }
  MPI_Datatype t = dtype == OPTIM_FLOAT32 ? MPI_FLOAT : MPI_DOUBLE;
  int rc = MPI_Allgatherv(MPI_IN_PLACE, 0, t, data, cnt, dsp, t, d->comm);
  if (rc != MPI_SUCCESS)
    return optim_mpi__fail(d, OPTIM_EMPI, "MPI_Allgatherv of parameter %d failed", index);
  /* ring model: (p-1)/p of the tensor leaves each rank */
  d->bytes += (double)(d->size - 1) / (double)d->size * (double)n * (dtype == OPTIM_FLOAT32 ? 4 : 8);
  d->messages += d->size - 1;
  return OPTIM_OK;
}

/* optim_set_row_reduce's function for full steps of blockwise mode: sums a
 * Gram matrix (or a norm) over the ranks, which hold the other rows. */
static int row_reduce(void *ud, void *buf, size_t count, int dtype)
{
  optim_mpi *d = ud;
  size_t es = dtype == OPTIM_FLOAT32 ? 4 : 8;
  MPI_Datatype t = dtype == OPTIM_FLOAT32 ? MPI_FLOAT : MPI_DOUBLE;
  double t0 = MPI_Wtime();
  int st = OPTIM_OK;
  size_t cap = d->reduce_mode == OPTIM_MPI_REDUCE_ORDERED ? d->bucket_bytes / es : (size_t)1 << 28;
  for (size_t off = 0; off < count && st == OPTIM_OK; off += cap) {
    size_t n = count - off < cap ? count - off : cap;
    char *x = (char *)buf + off * es;
    if (d->reduce_mode == OPTIM_MPI_REDUCE_ORDERED) st = optim_mpi__ordered(d, dtype, x, n);
    else if (MPI_Allreduce(MPI_IN_PLACE, x, (int)n, t, MPI_SUM, d->comm) != MPI_SUCCESS)
      st = optim_mpi__fail(d, OPTIM_EMPI, "MPI_Allreduce of a Gram matrix failed");
    d->bytes += 2.0 * (double)(d->size - 1) / (double)d->size * (double)(n * es);
    d->messages += 2 * (d->size - 1);
  }
  d->comm_s += MPI_Wtime() - t0;
  return st;
}

int optim_mpi_step(optim_mpi *d)
{
  if (d == NULL || d->magic != OPTIM_MPI_MAGIC) return OPTIM_EINVAL;
  d->errmsg[0] = '\0';
  if (!d->ov) d->bytes = d->messages = d->comm_s = d->compute_s = d->reduce_s = 0;

  /* Same parameters as at attach time, and the same missing gradients on
   * every rank. */
  int st = OPTIM_OK;
  uint64_t mask = 1469598103934665603ull;
  if (optim_param_count(d->opt) != d->nparams) {
    st = optim_mpi__fail(d, OPTIM_EINVAL,
                         "parameters were added after optim_mpi_create (%d, now %d)",
                         d->nparams, optim_param_count(d->opt));
  } else {
    for (int i = 0; i < d->nparams; i++) {
      const void *g;
      optim_param_buffers(d->opt, i, NULL, &g);
      mask = (mask ^ (uint64_t)(g != NULL)) * 1099511628211ull;
    }
  }
  st = optim_mpi__agree(d, st);
  if (st) {
    /* every rank is here: complete what grad_ready started, then drop it */
    if (d->ov) optim_mpi__overlap_finish(d);
    return st;
  }
  uint64_t lo, hi;
  MPI_Allreduce(&mask, &lo, 1, MPI_UINT64_T, MPI_MIN, d->comm);
  MPI_Allreduce(&mask, &hi, 1, MPI_UINT64_T, MPI_MAX, d->comm);
  if (lo != hi) {
    /* (reductions grad_ready started are completed, then dropped) */
    if (d->ov) optim_mpi__overlap_finish(d);
    return optim_mpi__fail(d, OPTIM_EINVAL,
                           "ranks disagree on which parameters have a gradient this step");
  }

  double tr = MPI_Wtime();
  st = d->ov ? optim_mpi__overlap_finish(d) : optim_mpi__average(d);
  d->reduce_s = MPI_Wtime() - tr; /* packing and the reductions */
  st = optim_mpi__agree(d, st);
  if (st) return st;

  /* blockwise with block_period P: every P-th step orthogonalizes whole
   * matrices, distributed by rows (MuonBP) */
  int full = d->blockwise && d->block_period > 0 && (d->steps + 1) % d->block_period == 0;
  optim_set_row_reduce(d->opt, full ? row_reduce : NULL, d);
  double t1 = MPI_Wtime(), comm0 = d->comm_s;
  /* Every check of the step, and the numerical methods that can fail (an
   * owner's eigendecompositions), on every rank before anything changes;
   * the average: 1/p applied as the gradients are read. */
  /* gradient norms (clipping, adagrad_norm, adam_cm) of the whole model:
   * each parameter's from the rank that steps it */
  optim_set_norm_reduce(d->opt, norm_reduce, d);
  d->peer_failed = 0;
  st = optim_step_prepare(d->opt, 1.0 / d->size);
  /* failed only because another rank did: agree() reports that rank's status */
  if (st == OPTIM_EMPI && d->peer_failed) st = OPTIM_OK;
  if (st) optim_mpi__fail(d, st, "%s", optim_errmsg(d->opt));
  optim_set_norm_reduce(d->opt, NULL, NULL); /* (after the message is read: it clears it) */
  st = optim_mpi__agree(d, st);
  if (st) {
    optim_step_cancel(d->opt);
    optim_set_row_reduce(d->opt, NULL, NULL);
    return st;
  }
  optim_step_commit(d->opt); /* (cannot fail once prepared) */
  optim_set_row_reduce(d->opt, NULL, NULL);
  d->compute_s += MPI_Wtime() - t1 - (d->comm_s - comm0); /* (Gram sums are communication) */

  double t2 = MPI_Wtime();
  for (int i = 0; i < d->nparams && st == OPTIM_OK; i++) {
    const void *g;
    optim_param_buffers(d->opt, i, NULL, &g);
    if (d->owner[i] >= 0) st = share(d, i);
    else if (d->rowlen && d->rowlen[i] > 0) st = gather_shards(d, i); /* (stepped even
                                                                       * without gradient) */
    else if (d->shard_state && g != NULL) st = gather_shards(d, i);
  }
  d->comm_s += MPI_Wtime() - t2;
  st = optim_mpi__agree(d, st);
  if (st) return st;
  d->steps++;
  return OPTIM_OK;
}
