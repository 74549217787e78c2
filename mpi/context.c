/* context.c - creating and inspecting an MPI context; failure agreement. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi-internal.h"

static int valid(const optim_mpi *d) { return d != NULL && d->magic == OPTIM_MPI_MAGIC; }

int optim_mpi__fail(optim_mpi *d, int status, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(d->errmsg, sizeof d->errmsg, fmt, ap);
  va_end(ap);
  return status;
}

void optim_mpi__range(const optim_mpi *d, int i, size_t n, int r, size_t *lo, size_t *hi)
{
  size_t p = (size_t)d->size;
  if (d->rowlen && d->rowlen[i] > 0) {
    size_t cols = (size_t)d->rowlen[i], rows = n / cols;
    *lo = rows * (size_t)r / p * cols;
    *hi = rows * (size_t)(r + 1) / p * cols;
  } else {
    *lo = n * (size_t)r / p;
    *hi = n * (size_t)(r + 1) / p;
  }
}

int optim_mpi__ranged(const optim_mpi *d, int i)
{
  return (d->rowlen && d->rowlen[i] > 0) || (d->shard_state && d->owner[i] < 0);
}

/* The ordered reduction of a bucket receives p blocks of up to ceil(n/p)
 * elements: up to p - 1 elements more than the bucket. */
static size_t scratch_bytes(const optim_mpi *d, size_t bucket)
{
  return bucket + 8 * (size_t)d->size + 64;
}

int optim_mpi__agree(optim_mpi *d, int status)
{
  int in[2] = {status, d->rank}, out[2];
  if (MPI_Allreduce(in, out, 1, MPI_2INT, MPI_MINLOC, d->comm) != MPI_SUCCESS)
    return optim_mpi__fail(d, OPTIM_EMPI, "MPI_Allreduce failed while agreeing on a status");
  if (out[0] == OPTIM_OK) return OPTIM_OK;
  char msg[sizeof d->errmsg];
  memcpy(msg, d->errmsg, sizeof msg);
  MPI_Bcast(msg, (int)sizeof msg, MPI_CHAR, out[1], d->comm);
  msg[sizeof msg - 1] = '\0';
  if (out[1] == d->rank) return status;
  snprintf(d->errmsg, sizeof d->errmsg, "rank %d failed (%s): %.400s", out[1],
           optim_strerror(out[0]), msg);
  return out[0];
}

/* FNV-1a of every rank-independent fact about the parameters. */
static uint64_t layout_hash(optim_optimizer *opt)
{
  uint64_t h = 1469598103934665603ull;
#define MIX(p, n)                                              \
  for (size_t z_ = 0; z_ < (n); z_++) {                        \
    h ^= ((const unsigned char *)(p))[z_];                     \
    h *= 1099511628211ull;                                     \
  }
  int np = optim_param_count(opt), ng = optim_group_count(opt);
  MIX(&np, sizeof np);
  MIX(&ng, sizeof ng);
  for (int g = 0; g < ng; g++) {
    const char *a = optim_group_algorithm(opt, g);
    MIX(a, strlen(a) + 1);
  }
  for (int i = 0; i < np; i++) {
    const char *name;
    int group, dtype, ndim;
    int64_t shape[OPTIM_MAX_DIMS];
    optim_param_info(opt, i, &name, &group, &dtype, &ndim, shape);
    MIX(name, strlen(name) + 1);
    MIX(&group, sizeof group);
    MIX(&dtype, sizeof dtype);
    MIX(&ndim, sizeof ndim);
    MIX(shape, sizeof shape[0] * (size_t)ndim);
  }
#undef MIX
  return h;
}

int optim_mpi_create(optim_optimizer *opt, MPI_Comm comm, optim_mpi **out)
{
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  if (init) MPI_Finalized(&fin);
  if (!init || fin) return OPTIM_EMPI; /* nobody to agree with */
  if (comm == MPI_COMM_NULL || out == NULL) return OPTIM_EINVAL;
  optim_mpi *d = calloc(1, sizeof *d);
  if (d == NULL) return OPTIM_ENOMEM; /* (the others will fail in the dup below or later) */
  d->magic = OPTIM_MPI_MAGIC;
  if (MPI_Comm_dup(comm, &d->comm) != MPI_SUCCESS) {
    free(d);
    return OPTIM_EMPI;
  }
  MPI_Comm_set_errhandler(d->comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(d->comm, &d->rank);
  MPI_Comm_size(d->comm, &d->size);
  d->opt = opt;
  d->bucket_bytes = (size_t)4 << 20;
  d->imbalance = 1;

  int st = OPTIM_OK;
  if (optim_group_count(opt) < 0) {
    st = optim_mpi__fail(d, OPTIM_EINVAL, "optimizer handle is NULL or invalid");
  } else {
    d->nparams = optim_param_count(opt);
    d->owner = calloc((size_t)(d->nparams ? d->nparams : 1), sizeof *d->owner);
    d->bucket = malloc(d->bucket_bytes);
    d->scratch = malloc(scratch_bytes(d, d->bucket_bytes));
    d->counts = malloc(sizeof *d->counts * 4 * (size_t)d->size);
    d->counts_ag = malloc(sizeof *d->counts_ag * 2 * (size_t)d->size);
    double *cost = calloc((size_t)(d->nparams ? d->nparams : 1), sizeof *cost);
    if (!d->owner || !d->bucket || !d->scratch || !d->counts || !d->counts_ag || !cost)
      st = optim_mpi__fail(d, OPTIM_ENOMEM, "out of memory");
    for (int i = 0; st == OPTIM_OK && i < d->nparams; i++) optim_param_cost(opt, i, &cost[i]);
    if (st == OPTIM_OK) {
      d->imbalance = optim_mpi__plan(cost, d->nparams, d->size, d->owner);
      if (d->imbalance < 0) st = optim_mpi__fail(d, OPTIM_ENOMEM, "out of memory");
    }
    free(cost);
  }
  st = optim_mpi__agree(d, st);
  if (st == OPTIM_OK) {
    /* Every rank registered the same parameters. */
    uint64_t h = layout_hash(opt), lo, hi;
    MPI_Allreduce(&h, &lo, 1, MPI_UINT64_T, MPI_MIN, d->comm);
    MPI_Allreduce(&h, &hi, 1, MPI_UINT64_T, MPI_MAX, d->comm);
    if (lo != hi)
      st = optim_mpi__fail(d, OPTIM_EINVAL,
                           "ranks registered different groups or parameters (names, "
                           "algorithms, types or shapes differ)");
  }
  if (st != OPTIM_OK) {
    optim_mpi_destroy(d);
    return st;
  }
  /* Whole-tensor parameters are stepped by their owner only. */
  for (int i = 0; i < d->nparams; i++)
    if (d->owner[i] >= 0) optim_param_set_frozen(opt, i, d->owner[i] != d->rank);
  *out = d;
  return OPTIM_OK;
}

void optim_mpi_destroy(optim_mpi *d)
{
  if (!valid(d)) return;
  if (d->opt && d->owner && optim_param_count(d->opt) == d->nparams)
    for (int i = 0; i < d->nparams; i++)
      if (d->owner[i] >= 0) optim_param_set_frozen(d->opt, i, 0);
  optim_mpi__overlap_free(d);
  for (int k = 0; k < d->npool; k++) free(d->pool[k]);
  free(d->pool);
  free(d->pool_size);
  MPI_Comm_free(&d->comm);
  free(d->owner);
  free(d->rowlen);
  free(d->bucket);
  free(d->scratch);
  free(d->counts);
  free(d->counts_ag);
  d->magic = 0;
  free(d);
}

const char *optim_mpi_errmsg(const optim_mpi *d)
{
  if (d == NULL) return "NULL MPI context";
  if (d->magic != OPTIM_MPI_MAGIC) return "invalid MPI context";
  return d->errmsg;
}

int optim_mpi_set_option(optim_mpi *d, const char *name, const char *value)
{
  if (!valid(d)) return OPTIM_EINVAL;
  d->errmsg[0] = '\0';
  if (name == NULL || value == NULL) return optim_mpi__fail(d, OPTIM_EINVAL, "NULL name or value");
  if (strcmp(name, "bucket_bytes") == 0) {
    char *end;
    long long v = strtoll(value, &end, 10);
    if (end == value || *end)
      return optim_mpi__fail(d, OPTIM_EINVAL, "bucket_bytes: '%s' is not an integer", value);
    if (v < 1024 || v > ((long long)1 << 31) - 8)
      return optim_mpi__fail(d, OPTIM_ERANGE, "bucket_bytes = %lld outside [1024, 2^31)", v);
    unsigned char *b = malloc((size_t)v), *sc = malloc(scratch_bytes(d, (size_t)v));
    if (b == NULL || sc == NULL) {
      free(b);
      free(sc);
      return optim_mpi__fail(d, OPTIM_ENOMEM, "out of memory");
    }
    free(d->bucket);
    free(d->scratch);
    d->bucket = b;
    d->scratch = sc;
    d->bucket_bytes = (size_t)v;
    return OPTIM_OK;
  }
  if (strcmp(name, "shard_state") == 0) {
    int on;
    if (!strcmp(value, "true") || !strcmp(value, "1")) on = 1;
    else if (!strcmp(value, "false") || !strcmp(value, "0")) on = 0;
    else return optim_mpi__fail(d, OPTIM_EINVAL, "shard_state: '%s' is not true or false", value);
    if (d->steps > 0)
      return optim_mpi__fail(d, OPTIM_ECONFIG, "shard_state must be set before the first step");
    /* Each rank steps, and keeps state for, its 1/p of every element-wise
     * parameter. */
    for (int i = 0; i < d->nparams; i++) {
      if (d->owner[i] >= 0) continue;
      int ndim;
      int64_t shape[OPTIM_MAX_DIMS], n = 1;
      optim_param_info(d->opt, i, NULL, NULL, NULL, &ndim, shape);
      for (int k = 0; k < ndim; k++) n *= shape[k];
      if (on && n / d->size > INT32_MAX - 1)
        return optim_mpi__fail(d, OPTIM_ERANGE, "parameter %d is too large to shard", i);
      size_t lo, hi;
      optim_mpi__range(d, i, (size_t)n, d->rank, &lo, &hi);
      int64_t b = on ? (int64_t)lo : 0, e = on ? (int64_t)hi : n;
      int st = optim_param_set_range(d->opt, i, b, e);
      if (st) return optim_mpi__fail(d, st, "%s", optim_errmsg(d->opt));
    }
    d->shard_state = on;
    return OPTIM_OK;
  }
  if (strcmp(name, "blockwise") == 0) {
    if (strcmp(value, "true") && strcmp(value, "1"))
      return optim_mpi__fail(d, OPTIM_EINVAL, "blockwise: only 'true' can be set");
    if (d->steps > 0 || d->blockwise)
      return optim_mpi__fail(d, OPTIM_ECONFIG, "blockwise must be set once, before the first step");
    int64_t *rl = calloc((size_t)(d->nparams ? d->nparams : 1), sizeof *rl);
    if (!rl) return optim_mpi__fail(d, OPTIM_ENOMEM, "out of memory");
    /* Check every matrix can be split by rows before changing any. */
    for (int i = 0; i < d->nparams; i++) {
      if (d->owner[i] < 0) continue;
      int ndim;
      int64_t shape[OPTIM_MAX_DIMS];
      optim_param_info(d->opt, i, NULL, NULL, NULL, &ndim, shape);
      if (ndim != 2) {
        free(rl);
        return optim_mpi__fail(d, OPTIM_EUNSUPPORTED,
                               "blockwise: parameter %d is not a 2-D matrix", i);
      }
      rl[i] = shape[1];
    }
    int64_t *old = d->rowlen;
    d->rowlen = rl;
    for (int i = 0; i < d->nparams; i++) {
      if (rl[i] == 0) continue;
      int64_t shape[OPTIM_MAX_DIMS];
      optim_param_info(d->opt, i, NULL, NULL, NULL, NULL, shape);
      size_t lo, hi;
      optim_mpi__range(d, i, (size_t)(shape[0] * shape[1]), d->rank, &lo, &hi);
      optim_param_set_frozen(d->opt, i, 0);
      int st = optim_param_set_range(d->opt, i, (int64_t)lo, (int64_t)hi);
      if (st) {
        optim_mpi__fail(d, st, "blockwise: %s", optim_errmsg(d->opt));
        /* undo: the earlier matrices go back to whole and owned */
        for (int j = 0; j < i; j++) {
          if (rl[j] == 0) continue;
          int64_t sh[OPTIM_MAX_DIMS];
          optim_param_info(d->opt, j, NULL, NULL, NULL, NULL, sh);
          optim_param_set_range(d->opt, j, 0, sh[0] * sh[1]);
        }
        for (int j = 0; j <= i; j++)
          if (rl[j] > 0) optim_param_set_frozen(d->opt, j, d->owner[j] != d->rank);
        d->rowlen = old;
        free(rl);
        return st;
      }
    }
    for (int i = 0; i < d->nparams; i++)
      if (rl[i] > 0) d->owner[i] = -1;
    free(old);
    d->blockwise = 1;
    d->imbalance = 1;
    return OPTIM_OK;
  }
  if (strcmp(name, "block_period") == 0) {
    char *end;
    long long v = strtoll(value, &end, 10);
    if (end == value || *end)
      return optim_mpi__fail(d, OPTIM_EINVAL, "block_period: '%s' is not an integer", value);
    if (v < 0) return optim_mpi__fail(d, OPTIM_ERANGE, "block_period = %lld is negative", v);
    if (!d->blockwise)
      return optim_mpi__fail(d, OPTIM_ECONFIG, "block_period needs blockwise=true first");
    d->block_period = v;
    return OPTIM_OK;
  }
  if (strcmp(name, "reduce") == 0) {
    if (strcmp(value, "mpi") == 0) d->reduce_mode = OPTIM_MPI_REDUCE_MPI;
    else if (strcmp(value, "ordered") == 0) d->reduce_mode = OPTIM_MPI_REDUCE_ORDERED;
    else return optim_mpi__fail(d, OPTIM_ERANGE, "reduce: '%s' is not mpi or ordered", value);
    return OPTIM_OK;
  }
  return optim_mpi__fail(d, OPTIM_EUNKNOWN, "no MPI option named '%s'", name);
}

int optim_mpi_owner(optim_mpi *d, int index, int *rank)
{
  if (!valid(d)) return OPTIM_EINVAL;
  d->errmsg[0] = '\0';
  if (rank == NULL) return optim_mpi__fail(d, OPTIM_EINVAL, "rank pointer is NULL");
  if (index < 0 || index >= d->nparams)
    return optim_mpi__fail(d, OPTIM_EINVAL, "parameter %d does not exist", index);
  *rank = d->owner[index];
  return OPTIM_OK;
}

int optim_mpi_counter(optim_mpi *d, const char *name, double *value)
{
  if (!valid(d)) return OPTIM_EINVAL;
  d->errmsg[0] = '\0';
  if (name == NULL || value == NULL) return optim_mpi__fail(d, OPTIM_EINVAL, "NULL argument");
  if (!strcmp(name, "steps")) *value = (double)d->steps;
  else if (!strcmp(name, "bytes")) *value = d->bytes;
  else if (!strcmp(name, "messages")) *value = d->messages;
  else if (!strcmp(name, "comm_seconds")) *value = d->comm_s;
  else if (!strcmp(name, "compute_seconds")) *value = d->compute_s;
  else if (!strcmp(name, "reduce_seconds")) *value = d->reduce_s;
  else if (!strcmp(name, "imbalance")) *value = d->imbalance;
  else return optim_mpi__fail(d, OPTIM_EUNKNOWN, "no counter named '%s'", name);
  return OPTIM_OK;
}
