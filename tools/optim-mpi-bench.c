/* optim-mpi-bench - liboptim_mpi under mpiexec: the time of a distributed
 * step on a set of matrices (Muon: owner-computes Newton-Schulz; or an
 * element-wise algorithm such as AdamW, replicated), and the gradient
 * averaging against a raw MPI_Allreduce of the same bytes. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optim_mpi.h"

static int cmp(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n)
{
  qsort(v, (size_t)n, sizeof *v, cmp);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void usage(FILE *f)
{
  fprintf(f,
          "Usage: mpiexec -np P optim-mpi-bench [OPTION]...\n"
          "Time liboptim_mpi: a distributed step on N x N matrices (Muon: owner-computes\n"
          "Newton-Schulz), and gradient averaging against MPI_Allreduce of the same bytes.\n\n"
          "  -a, --algorithm A  muon (default) or any registered algorithm, e.g. adamw\n"
          "  -m, --matrices N   number of matrices (default 12)\n"
          "  -s, --size N       matrix size N x N (default 1024)\n"
          "  -b, --bucket BYTES gradient bucket size (default 4194304)\n"
          "  -i, --iters N      timed steps, median reported (default 5)\n"
          "  -r, --reduce MODE  gradient reduction: mpi (default) or ordered\n"
          "      --scattered    one gradient buffer per matrix (default: one flat arena)\n"
          "  -h, --help         show this help and exit\n"
          "  -V, --version      show the library version and exit\n");
}

int main(int argc, char **argv)
{
  static const struct option opts[] = {
    {"matrices", required_argument, 0, 'm'}, {"size", required_argument, 0, 's'},
    {"bucket", required_argument, 0, 'b'},   {"iters", required_argument, 0, 'i'},
    {"reduce", required_argument, 0, 'r'},   {"help", no_argument, 0, 'h'},
    {"version", no_argument, 0, 'V'},        {"algorithm", required_argument, 0, 'a'},
    {"scattered", no_argument, 0, 'S'},
    {0, 0, 0, 0}};
  int nm = 12, n = 1024, iters = 5, c, scattered = 0;
  const char *bucket = "4194304", *reduce = "mpi", *alg = "muon";
  while ((c = getopt_long(argc, argv, "a:m:s:b:i:r:hV", opts, NULL)) != -1) {
    switch (c) {
    case 'a': alg = optarg; break;
    case 'S': scattered = 1; break;
    case 'm': nm = atoi(optarg); break;
    case 's': n = atoi(optarg); break;
    case 'b': bucket = optarg; break;
    case 'i': iters = atoi(optarg); break;
    case 'r': reduce = optarg; break;
    case 'h': usage(stdout); return 0;
    case 'V': printf("optim-mpi-bench (liboptim) %s\n", optim_version()); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (nm < 1 || n < 1 || iters < 1 || nm > 1000) {
    fprintf(stderr, "optim-mpi-bench: invalid --matrices, --size or --iters\n");
    return 2;
  }
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  optim_optimizer *opt;
  optim_mpi *d;
  int g;
  optim_create(&opt);
  if (optim_add_group(opt, alg, &g) != OPTIM_OK) {
    if (rank == 0) fprintf(stderr, "optim-mpi-bench: unknown algorithm '%s'\n", alg);
    MPI_Finalize();
    return 2;
  }
  if (strcmp(alg, "sgd") == 0) optim_set_double(opt, g, "lr", 0.01);
  size_t numel = (size_t)n * (size_t)n;
  float **p = calloc((size_t)nm, sizeof *p), **gr = calloc((size_t)nm, sizeof *gr);
  for (int k = 0; k < nm; k++) {
    p[k] = malloc(numel * sizeof(float));
    /* a flat arena, as a training code lays gradients out (buckets are
     * then reduced where they lie), or one buffer per matrix */
    if (scattered || k == 0) gr[k] = malloc(numel * sizeof(float) * (scattered ? 1 : (size_t)nm));
    else gr[k] = gr[0] + numel * (size_t)k;
    for (size_t i = 0; i < numel; i++) p[k][i] = (float)((i * 7 + (size_t)k) % 13) / 13.0f;
    char name[16];
    snprintf(name, sizeof name, "m%d", k);
    int64_t shape[2] = {n, n};
    optim_add_param(opt, g, name, OPTIM_FLOAT32, 2, shape, p[k], gr[k], NULL);
  }
  int st = optim_mpi_create(opt, MPI_COMM_WORLD, &d);
  if (st == OPTIM_OK) st = optim_mpi_set_option(d, "bucket_bytes", bucket);
  if (st == OPTIM_OK) st = optim_mpi_set_option(d, "reduce", reduce);
  if (st != OPTIM_OK) {
    if (rank == 0) fprintf(stderr, "optim-mpi-bench: %s\n", optim_strerror(st));
    MPI_Finalize();
    return 1;
  }
  double *ts = calloc((size_t)iters, sizeof *ts), *tc = calloc((size_t)iters, sizeof *tc);
  double *tr = calloc((size_t)iters, sizeof *tr), *tcomp = calloc((size_t)iters, sizeof *tcomp);
  double *tred = calloc((size_t)iters, sizeof *tred);
  float *raw = malloc(numel * sizeof(float) * (size_t)nm);
  for (int it = -1; it < iters; it++) {
    for (int k = 0; k < nm; k++)
      for (size_t i = 0; i < numel; i++) gr[k][i] = (float)(((i + (size_t)it) * 11 + (size_t)rank) % 17) / 17.0f - 0.5f;
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    st = optim_mpi_step(d);
    double t1 = MPI_Wtime();
    if (st != OPTIM_OK) {
      if (rank == 0) fprintf(stderr, "optim-mpi-bench: %s\n", optim_mpi_errmsg(d));
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    /* raw allreduce of the same bytes, in the same bucket sizes */
    size_t bb = (size_t)atol(bucket) / sizeof(float), total = numel * (size_t)nm;
    MPI_Barrier(MPI_COMM_WORLD);
    double t2 = MPI_Wtime();
    for (size_t off = 0; off < total; off += bb) {
      size_t cnt = total - off < bb ? total - off : bb;
      MPI_Allreduce(MPI_IN_PLACE, raw + off, (int)cnt, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
    double t3 = MPI_Wtime();
    if (it >= 0) {
      ts[it] = t1 - t0;
      tr[it] = t3 - t2;
      optim_mpi_counter(d, "comm_seconds", &tc[it]);
      optim_mpi_counter(d, "compute_seconds", &tcomp[it]);
      optim_mpi_counter(d, "reduce_seconds", &tred[it]);
    }
  }
  double imb;
  optim_mpi_counter(d, "imbalance", &imb);
  /* the averaging's share of comm_seconds is the allreduce time; the rest
   * is the owners' broadcasts */
  if (rank == 0) {
    printf("optim-mpi-bench: %s, %d matrices %dx%d float32 (gradients %s), %d ranks, reduce=%s, "
           "bucket %s bytes, median of %d\n",
           alg, nm, n, n, scattered ? "scattered" : "in a flat arena", size, reduce, bucket, iters);
    printf("  step %9.3f ms   compute %9.3f ms   communication %9.3f ms   imbalance %.3f\n",
           median(ts, iters) * 1e3, median(tcomp, iters) * 1e3, median(tc, iters) * 1e3, imb);
    double red = median(tred, iters), rawt = median(tr, iters);
    printf("  gradient averaging %9.3f ms   raw MPI_Allreduce of the same bytes and buckets "
           "%9.3f ms   ratio %.3f\n", red * 1e3, rawt * 1e3, rawt > 0 ? red / rawt : 1.0);
  }
  optim_mpi_destroy(d);
  optim_destroy(opt);
  MPI_Finalize();
  return 0;
}
