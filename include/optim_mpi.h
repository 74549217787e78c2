/*
 * optim_mpi.h - liboptim's MPI layer (liboptim_mpi): data-parallel steps
 * of an optimizer across the ranks of a communicator.
 *
 * Every rank builds the same optimizer (same groups, algorithms, settings,
 * parameter names, shapes and types, in the same order) over its own
 * replica of the parameters, computes gradients on its share of the data,
 * and calls optim_mpi_step instead of optim_step:
 *   - gradients are summed across ranks in place (bucketed allreduce over
 *     a packed buffer; a tensor may span buckets), and the step reads them
 *     times 1/p (optim_step_scaled): the average, with no extra pass;
 *   - element-wise parameters are then stepped on every rank (identical
 *     inputs give identical results);
 *   - whole-tensor parameters (Muon, NorMuon, ROOT, FISMO matrices) are
 *     stepped by one owner rank each, chosen by a deterministic
 *     largest-first (LPT) plan over optim_param_cost, and broadcast from
 *     it: results are bit-identical to a single process stepping the
 *     averaged gradients, for every rank count.  Their optimizer state
 *     lives on the owner only.
 * The caller owns MPI_Init and MPI_Finalize.  Functions marked collective
 * must be called by every rank of the communicator; they agree on failure:
 * when one rank fails, every rank returns the same status (the others with
 * the failing rank's message) and no parameter or state changes (gradients
 * may already hold their sum).
 */
#ifndef OPTIM_MPI_H
#define OPTIM_MPI_H

#include <mpi.h>

#include "optim.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct optim_mpi optim_mpi;

/* Collective.  Attach an optimizer to (a duplicate of) comm, with
 * MPI_ERRORS_RETURN on the duplicate.  Checks that MPI is initialized,
 * comm is not MPI_COMM_NULL and every rank registered the same parameters.
 * The optimizer must outlive the context and keep its parameters. */
OPTIM_API int optim_mpi_create(optim_optimizer *opt, MPI_Comm comm, optim_mpi **out);
/* Collective.  Free the context (and its communicator); NULL is a no-op. */
OPTIM_API void optim_mpi_destroy(optim_mpi *d);
/* Message describing the last failed call on this context ("" if none). */
OPTIM_API const char *optim_mpi_errmsg(const optim_mpi *d);
/* Not collective, but every rank must use the same values.  Options:
 * "bucket_bytes" (size of the gradient buckets, default 4194304, at least
 * 1024); "reduce": "mpi" (default: MPI_Allreduce, whose summation order is
 * MPI's) or "ordered" (gradients summed in rank order 0..p-1, the same sum
 * a serial loop over the ranks' gradients gives: bit-identical repeated
 * runs for a given rank count, whatever the MPI build). */
OPTIM_API int optim_mpi_set_option(optim_mpi *d, const char *name, const char *value);
/* Collective.  Average the gradients, step, and share the owners' results. */
OPTIM_API int optim_mpi_step(optim_mpi *d);
/* Not collective (but every rank must call it for every parameter with a
 * gradient): parameter index's gradient is final for this step.  Buckets
 * whose parameters are all ready start reducing with nonblocking
 * collectives, in the same order on every rank, so the exchange overlaps
 * the rest of the caller's backward pass; optim_mpi_step completes them.
 * Bind this step's gradients before the first call; needs reduce=mpi
 * (OPTIM_ECONFIG otherwise).  Results are the same as without it. */
OPTIM_API int optim_mpi_grad_ready(optim_mpi *d, int index);
/* Collective.  Write a distributed checkpoint: PREFIX.shardR from every
 * rank R (a core checkpoint of its optimizer) and then, atomically, the
 * manifest PREFIX (rank count, shard sizes and hashes, owners). */
OPTIM_API int optim_mpi_save(optim_mpi *d, const char *prefix);
/* Collective.  Restore a checkpoint written by optim_mpi_save with any
 * number of ranks: settings, counters and element-wise state come from one
 * shard, each owned matrix's state from its old owner's shard.  Missing or
 * foreign shards and other parameters are found before anything is loaded
 * and reported by every rank; nothing changes then. */
OPTIM_API int optim_mpi_load(optim_mpi *d, const char *prefix);
/* Rank that steps parameter `index`: its owner for whole-tensor
 * parameters, -1 for element-wise ones (stepped by every rank). */
OPTIM_API int optim_mpi_owner(optim_mpi *d, int index, int *rank);
/* Counters of this rank: "steps", "bytes" and "messages" (sent by the
 * collectives of the last step), "comm_seconds" and "compute_seconds" (of
 * the last step), "imbalance" (max / mean planned cost over ranks, 1 when
 * perfectly balanced or nothing is owned). */
OPTIM_API int optim_mpi_counter(optim_mpi *d, const char *name, double *value);

#ifdef __cplusplus
}
#endif

#endif /* OPTIM_MPI_H */
