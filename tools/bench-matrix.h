/* bench-matrix.h - optim-bench's matrix benchmarks (Newton-Schulz engine,
 * steps of matrix optimizers). */
#ifndef OPTIM_BENCH_MATRIX_H
#define OPTIM_BENCH_MATRIX_H

/* Time NS on one rows x cols matrix against sgemm of the same shapes, in
 * the same run.  Returns an exit status. */
int bench_ns(const char *shape, int dtype, int threads, int iters, int warmup);

/* Time optim_step of `alg` on matrices "RxC[:N],RxC[:N],..." against the
 * NS time of the same matrices.  Returns an exit status. */
int bench_matrix_step(const char *alg, const char *options, const char *shapes, int dtype,
                      int threads, int iters, int warmup);

#endif
