/* mpi-internal.h - the MPI layer's context (never installed). */
#ifndef OPTIM_MPI_INTERNAL_H
#define OPTIM_MPI_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "optim_mpi.h"
#include "plan.h"

#define OPTIM_MPI_MAGIC 0x4f4d5049u /* "OMPI" */

struct optim_mpi {
  uint32_t magic;
  optim_optimizer *opt;
  MPI_Comm comm;
  int rank, size;
  size_t bucket_bytes;
  unsigned char *bucket;
  int nparams;
  int *owner;          /* per parameter: owning rank, or -1 (element-wise) */
  double imbalance;
  int64_t steps;
  double bytes, messages, comm_s, compute_s, reduce_s;
  int reduce_mode;     /* OPTIM_MPI_REDUCE_* */
  int peer_failed;     /* set by the norm reduction: another rank failed */
  int shard_state;     /* element-wise state sharded by ranges (ZeRO-1) */
  int blockwise;       /* matrices split by rows across ranks */
  int64_t block_period; /* blockwise: every this many steps a full NS (0: never) */
  int64_t *rowlen;     /* per parameter: row length if split by rows, else 0 */
  int *counts_ag;      /* 2 * size ints, for the parameter allgathers */
  unsigned char *scratch; /* bucket_bytes, for the ordered reduction */
  int *counts;         /* 4 * size ints, for the ordered reduction */
  struct optim_mpi_overlap *ov; /* grad_ready plan of the step under way */
  /* Buffers of the pieces (packed buckets, received ranges), kept from
   * step to step: piece k of a plan uses pool[k].  Fresh buffers every
   * step cost page faults and defeat MPI's registration caches (a 16 MiB
   * bucket measured 2.5x slower than MPI_Allreduce). */
  unsigned char **pool;
  size_t *pool_size;
  int npool;
  char errmsg[512];
};
#define OPTIM_MPI_MAXSEG 4096
enum { OPTIM_MPI_REDUCE_MPI = 0, OPTIM_MPI_REDUCE_ORDERED = 1 };

int optim_mpi__fail(optim_mpi *d, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Collective: combine the local status of every rank.  If any rank failed,
 * every rank returns that status (the most negative, from the lowest rank
 * among those that failed with it), the others with the failing rank's
 * message. */
int optim_mpi__agree(optim_mpi *d, int status);
/* Elements [*lo, *hi) of parameter i (of n elements) that rank r steps
 * when sharded: whole rows when split by rows, else an even split. */
void optim_mpi__range(const optim_mpi *d, int i, size_t n, int r, size_t *lo, size_t *hi);
/* Whether parameter i is stepped by ranges (sharded or split by rows). */
int optim_mpi__ranged(const optim_mpi *d, int i);
/* The rank-ordered sum of x[0..cnt) across ranks, in place. */
int optim_mpi__ordered(optim_mpi *d, int dtype, void *x, size_t cnt);
/* Complete the reductions grad_ready started (and start the rest). */
int optim_mpi__overlap_finish(optim_mpi *d);
void optim_mpi__overlap_free(optim_mpi *d);
/* Sum the gradients of every parameter that has one across ranks, in
 * place (the step multiplies them by 1/p as it reads them). */
int optim_mpi__average(optim_mpi *d);

#endif
