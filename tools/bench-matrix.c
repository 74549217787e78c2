/* bench-matrix.c - optim-bench --ns and --shapes: the Newton-Schulz engine
 * against the BLAS's own sgemm rate, and matrix-optimizer steps against
 * their orthogonalization time, each measured in one run. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench-matrix.h"
#include "ns.h"
#include "optim.h"

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

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

static int parse_shape(const char *s, long *r, long *c, long *count)
{
  char *end;
  *r = strtol(s, &end, 10);
  if (end == s || (*end != 'x' && *end != 'X') || *r < 1) return -1;
  s = end + 1;
  *c = strtol(s, &end, 10);
  if (end == s || *c < 1) return -1;
  *count = 1;
  if (*end == ':') {
    s = end + 1;
    *count = strtol(s, &end, 10);
    if (end == s || *count < 1) return -1;
  }
  return (*end == '\0' || *end == ',') ? (int)(end - s) : -1;
}

static void fill(void *x, size_t n, int dtype, unsigned seed)
{
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1103515245u + 12345u;
    double v = ((double)(seed >> 8) / 16777216.0) - 0.5;
    if (dtype == OPTIM_FLOAT32) ((float *)x)[i] = (float)v;
    else ((double *)x)[i] = v;
  }
}

int bench_ns(const char *shape, int dtype, int threads, int iters, int warmup)
{
  openblas_set_num_threads(threads);
  long r, c, count;
  if (parse_shape(shape, &r, &c, &count) < 0 || count != 1) {
    fprintf(stderr, "optim-bench: --ns wants ROWSxCOLS, not '%s'\n", shape);
    return 2;
  }
  size_t es = dtype == OPTIM_FLOAT32 ? 4 : 8, k = (size_t)(r < c ? r : c);
  size_t n = (size_t)(r < c ? c : r);
  void *in = malloc((size_t)r * (size_t)c * es), *out = malloc((size_t)r * (size_t)c * es);
  void *work = malloc(optim__ns_workspace(r, c, dtype));
  void *ga = malloc(k * n * es), *gb = malloc(k * n * es), *gc = malloc(k * k * es);
  double *t = calloc((size_t)iters, sizeof *t), *u = calloc((size_t)iters, sizeof *u);
  if (!in || !out || !work || !ga || !gb || !gc || !t || !u) {
    fprintf(stderr, "optim-bench: out of memory\n");
    return 1;
  }
  fill(in, (size_t)(r * c), dtype, 1);
  fill(ga, k * n, dtype, 2);
  fill(gb, k * n, dtype, 3);
  for (int i = 0; i < warmup + iters; i++) {
    double t0 = now();
    optim__ns(dtype, dtype, in, out, 1, r, c, 5, NS_COEF_MUON, work);
    double t1 = now();
    /* The BLAS's own rate on the dominant product shape, k x n times n x k. */
    if (dtype == OPTIM_FLOAT32)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)k, (int)k, (int)n, 1, ga,
                  (int)n, gb, (int)n, 0, gc, (int)k);
    else
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)k, (int)k, (int)n, 1, ga,
                  (int)n, gb, (int)n, 0, gc, (int)k);
    double t2 = now();
    if (i >= warmup) {
      t[i - warmup] = t1 - t0;
      u[i - warmup] = t2 - t1;
    }
  }
  double ns = median(t, iters), mm = median(u, iters);
  double f = optim__ns_flops(r, c, 5), fg = 2.0 * (double)k * (double)k * (double)n;
  double torch_flops = 5 * (4.0 * k * k * n + 2.0 * k * k * k);
  printf("optim-bench: ns5 %ldx%ld %s, OpenBLAS %s, %d BLAS threads, median of %d\n", r, c,
         dtype == OPTIM_FLOAT32 ? "float32" : "float64", openblas_get_corename(),
         openblas_get_num_threads(), iters);
  printf("  liboptim ns5 %9.3f ms  %7.1f GFLOP/s performed (%.2f GFLOP; the three-gemm "
         "form\n               needs %.2f)\n",
         ns * 1e3, f / ns / 1e9, f / 1e9, torch_flops / 1e9);
  printf("  %cgemm        %9.3f ms  %7.1f GFLOP/s (%zux%zux%zu, same run)\n",
         dtype == OPTIM_FLOAT32 ? 's' : 'd', mm * 1e3, fg / mm / 1e9, k, k, n);
  printf("  ratio of rates ns5/gemm %.3f\n", (f / ns) / (fg / mm));
  free(in);
  free(out);
  free(work);
  free(ga);
  free(gb);
  free(gc);
  free(t);
  free(u);
  return 0;
}

int bench_matrix_step(const char *alg, const char *options, const char *shapes, int dtype,
                      int threads, int iters, int warmup)
{
  openblas_set_num_threads(threads);
  optim_optimizer *opt;
  int g, st, np = 0, rc = 1;
  size_t es = dtype == OPTIM_FLOAT32 ? 4 : 8;
  void *bufs[256];
  long dims[256][2];
  optim_optimizer *aw = NULL; /* the AdamW baseline */
  void *awbufs[256] = {0};
  if ((st = optim_create(&opt)) || (st = optim_add_group(opt, alg, &g)) ||
      (options && (st = optim_configure(opt, g, options)))) {
    fprintf(stderr, "optim-bench: %s\n", optim_errmsg(opt));
    optim_destroy(opt);
    return 2;
  }
  for (const char *s = shapes; *s;) {
    long r, c, count;
    int len = parse_shape(s, &r, &c, &count);
    if (len < 0) {
      fprintf(stderr, "optim-bench: --shapes wants RxC[:N],..., not '%s'\n", s);
      rc = 2;
      goto out;
    }
    if (np + count > 128) {
      fprintf(stderr, "optim-bench: --shapes: at most 128 matrices\n");
      rc = 2;
      goto out;
    }
    for (long i = 0; i < count; i++, np++) {
      char name[32];
      snprintf(name, sizeof name, "m%d", np);
      int64_t shape[2] = {r, c};
      bufs[2 * np] = malloc((size_t)(r * c) * es);
      bufs[2 * np + 1] = malloc((size_t)(r * c) * es);
      fill(bufs[2 * np], (size_t)(r * c), dtype, (unsigned)np + 7);
      fill(bufs[2 * np + 1], (size_t)(r * c), dtype, (unsigned)np + 99);
      dims[np][0] = r;
      dims[np][1] = c;
      if ((st = optim_add_param(opt, g, name, dtype, 2, shape, bufs[2 * np], bufs[2 * np + 1],
                                NULL))) {
        fprintf(stderr, "optim-bench: %s\n", optim_errmsg(opt));
        np++;
        goto out;
      }
    }
    s += strcspn(s, ",");
    if (*s == ',') s++;
  }
  /* The comparison: Newton-Schulz alone for the Muon family, otherwise an
   * AdamW step on copies of the same matrices (the usual baseline). */
  int ns_family = !strcmp(alg, "muon") || !strcmp(alg, "normuon") || !strcmp(alg, "root") ||
                  !strcmp(alg, "fismo");
  if (!ns_family) {
    int ga;
    optim_create(&aw);
    optim_add_group(aw, "adamw", &ga);
    for (int i = 0; i < np; i++) {
      size_t n = (size_t)(dims[i][0] * dims[i][1]);
      int64_t shape[2] = {dims[i][0], dims[i][1]};
      char name[32];
      snprintf(name, sizeof name, "m%d", i);
      awbufs[2 * i] = malloc(n * es);
      awbufs[2 * i + 1] = malloc(n * es);
      memcpy(awbufs[2 * i], bufs[2 * i], n * es);
      memcpy(awbufs[2 * i + 1], bufs[2 * i + 1], n * es);
      optim_add_param(aw, ga, name, dtype, 2, shape, awbufs[2 * i], awbufs[2 * i + 1], NULL);
    }
    optim_set_threads(aw, threads);
  }
  double *t = calloc((size_t)iters, sizeof *t), *u = calloc((size_t)iters, sizeof *u);
  size_t wmax = 0;
  for (int i = 0; i < np; i++) {
    size_t w = optim__ns_workspace(dims[i][0], dims[i][1], dtype);
    if (w > wmax) wmax = w;
  }
  size_t smax = 0;
  for (int i = 0; i < np; i++)
    if ((size_t)(dims[i][0] * dims[i][1]) > smax) smax = (size_t)(dims[i][0] * dims[i][1]);
  void *work = malloc(wmax), *scratch = malloc(smax * es);
  for (int it = 0; it < warmup + iters; it++) {
    double t0 = now();
    if ((st = optim_step(opt))) {
      fprintf(stderr, "optim-bench: step: %s\n", optim_errmsg(opt));
      goto out;
    }
    double t1 = now();
    if (ns_family)
      for (int i = 0; i < np; i++)
        optim__ns(dtype, dtype, bufs[2 * i + 1], scratch, 1, dims[i][0], dims[i][1], 5,
                  NS_COEF_MUON, work);
    else
      optim_step(aw);
    double t2 = now();
    if (it >= warmup) {
      t[it - warmup] = t1 - t0;
      u[it - warmup] = t2 - t1;
    }
  }
  double mean = 0, umean = 0;
  for (int i = 0; i < iters; i++) {
    mean += t[i] / iters;
    umean += u[i] / iters;
  }
  double step = median(t, iters), ns = median(u, iters);
  printf("optim-bench: %s step on %d matrices (%s) %s, %d BLAS threads, median of %d\n", alg,
         np, shapes, dtype == OPTIM_FLOAT32 ? "float32" : "float64", openblas_get_num_threads(),
         iters);
  if (ns_family) {
    printf("  step        %9.3f ms\n  NS alone    %9.3f ms  (the same matrices)\n", step * 1e3,
           ns * 1e3);
    printf("  ratio step/NS %.3f\n", step / ns);
  } else {
    /* (steps that refresh a preconditioner cost more: the mean counts them) */
    printf("  step        %9.3f ms median  %9.3f ms mean\n", step * 1e3, mean * 1e3);
    printf("  adamw step  %9.3f ms median  %9.3f ms mean  (the same matrices)\n", ns * 1e3,
           umean * 1e3);
    printf("  ratio step/adamw %.1f (mean %.1f)\n", step / ns, mean / umean);
  }
  free(t);
  free(u);
  free(work);
  free(scratch);
  rc = 0;
out:
  optim_destroy(opt);
  optim_destroy(aw);
  for (int i = 0; i < 2 * np; i++) {
    free(bufs[i]);
    free(awbufs[i]);
  }
  return rc;
}
