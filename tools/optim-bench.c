/* optim-bench - step throughput of liboptim algorithms against the memory
 * roofline of their own streams, measured in the same run. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "bench-matrix.h"
#include "optim.h"

typedef struct bench {
  const char *alg, *options;
  int dtype, tensors, threads, iters, warmup;
  size_t esize;
} bench;

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n)
{
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Parse 64M, 1G, 1000000 (K/M/G binary). */
static int parse_count(const char *s, size_t *out)
{
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || errno || v <= 0) return -1;
  switch (*end) {
  case 'k': case 'K': v *= 1024.0; end++; break;
  case 'm': case 'M': v *= 1048576.0; end++; break;
  case 'g': case 'G': v *= 1073741824.0; end++; break;
  default: break;
  }
  if (*end != '\0' || v > 1e12) return -1;
  *out = (size_t)v;
  return 0;
}

/* Touch memory from the threads that will use it (first-touch placement). */
static void *alloc_fill(size_t n, size_t esize, double value, int threads)
{
  void *p = NULL;
  size_t bytes = n * esize;
  if (posix_memalign(&p, 64, bytes > 0 ? bytes : 64) != 0) return NULL;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (size_t i = 0; i < n; i++) {
    if (esize == 4) ((float *)p)[i] = (float)(value * (double)((i % 97) + 1) / 97.0);
    else ((double *)p)[i] = value * (double)((i % 97) + 1) / 97.0;
  }
  return p;
}

/* The no-math kernel with exactly the step's streams: reads p, g and each
 * state buffer once, writes p and each state buffer once, in place.  Every
 * element is loaded before anything is stored and g is read once, as in the
 * step's kernels: a loop that stores p[i] and then loads s0[i] stalls on 4K
 * aliasing whenever the buffers share their offset in a page, which made
 * this "roofline" up to twice too slow depending on where malloc put the
 * state.  No restrict on purpose: it would let the compiler sink the loads
 * below the stores again (the vectorizer checks for overlap at run time).
 * Threads get the step's contiguous ranges (lib/step.c). */
static void streams1(float *p, const float *g, size_t n)
{
  for (size_t i = 0; i < n; i++) p[i] = p[i] + g[i];
}

static void streams2(float *p, const float *g, float *a, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    float gi = g[i], pi = p[i], ai = a[i];
    p[i] = pi + gi;
    a[i] = ai + gi;
  }
}

static void streams3(float *p, const float *g, float *a,
                     float *b, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    float gi = g[i], pi = p[i], ai = a[i], bi = b[i];
    p[i] = pi + gi;
    a[i] = ai + gi;
    b[i] = bi + gi;
  }
}

static void streams4(float *p, const float *g, float *a,
                     float *b, float *c, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    float gi = g[i], pi = p[i], ai = a[i], bi = b[i], ci = c[i];
    p[i] = pi + gi;
    a[i] = ai + gi;
    b[i] = bi + gi;
    c[i] = ci + gi;
  }
}

static void same_streams(float **p, float **g, float *(*s)[4], int nbuf, size_t *len, int nt,
                         int threads)
{
  size_t total = 0;
  for (int t = 0; t < nt; t++) total += len[t];
#pragma omp parallel num_threads(threads)
  {
    int id = 0, T = 1;
#ifdef _OPENMP
    id = omp_get_thread_num();
    T = omp_get_num_threads();
#endif
    size_t lo = (size_t)((unsigned __int128)total * (unsigned)id / (unsigned)T);
    size_t hi = (size_t)((unsigned __int128)total * (unsigned)(id + 1) / (unsigned)T);
    if (id > 0) lo -= lo % 16;
    if (id + 1 < T) hi -= hi % 16;
    size_t off = 0;
    for (int t = 0; t < nt && off < hi; off += len[t], t++) {
      if (lo >= off + len[t]) continue;
      size_t b = lo > off ? lo - off : 0, e = hi < off + len[t] ? hi - off : len[t];
      if (b >= e) continue;
      float *pp = p[t] + b, *s0 = s[t][0] + b, *s1 = s[t][1] + b, *s2 = s[t][2] + b;
      const float *gg = g[t] + b;
      switch (nbuf) {
      case 0: streams1(pp, gg, e - b); break;
      case 1: streams2(pp, gg, s0, e - b); break;
      case 2: streams3(pp, gg, s0, s1, e - b); break;
      default: streams4(pp, gg, s0, s1, s2, e - b); break;
      }
    }
  }
}

static void triad(float *restrict a, const float *restrict b, const float *restrict c, size_t n,
                  float s, int threads)
{
#pragma omp parallel for schedule(static) num_threads(threads)
  for (size_t i = 0; i < n; i++) a[i] = b[i] + s * c[i];
}

typedef struct result {
  double step_s, same_s, triad_s, bytes, paired;
  int reads, writes;
} result;

static int run(const bench *B, size_t nparams, result *R)
{
  int nt = B->tensors;
  size_t *len = calloc((size_t)nt, sizeof *len);
  void **p = calloc((size_t)nt, sizeof *p), **g = calloc((size_t)nt, sizeof *g);
  double *times = calloc((size_t)B->iters, sizeof *times);
  optim_optimizer *opt = NULL;
  int st, rc = 1, grp;
  if (!len || !p || !g || !times) goto out;
  if ((st = optim_create(&opt)) || (st = optim_add_group(opt, B->alg, &grp)) ||
      (st = optim_set_threads(opt, B->threads))) {
    fprintf(stderr, "optim-bench: %s: %s\n", optim_strerror(st), optim_errmsg(opt));
    goto out;
  }
  /* SGD has no default lr: benchmark the common momentum form unless the
   * caller's options say otherwise (they are applied after). */
  if (strcmp(B->alg, "sgd") == 0 && (st = optim_configure(opt, grp, "lr=0.01,momentum=0.9"))) {
    fprintf(stderr, "optim-bench: %s\n", optim_errmsg(opt));
    goto out;
  }
  if (B->options && (st = optim_configure(opt, grp, B->options))) {
    fprintf(stderr, "optim-bench: --options: %s\n", optim_errmsg(opt));
    rc = 2;
    goto out;
  }
  for (int t = 0; t < nt; t++) {
    len[t] = nparams / (size_t)nt + ((size_t)t < nparams % (size_t)nt);
    p[t] = alloc_fill(len[t], B->esize, 1.0, B->threads);
    g[t] = alloc_fill(len[t], B->esize, 1e-3, B->threads);
    if (!p[t] || !g[t]) {
      fprintf(stderr, "optim-bench: out of memory for %zu parameters\n", nparams);
      goto out;
    }
    char name[32];
    snprintf(name, sizeof name, "t%d", t);
    int64_t shape[1] = {(int64_t)len[t]};
    if ((st = optim_add_param(opt, grp, name, B->dtype, 1, shape, p[t], g[t], NULL))) {
      fprintf(stderr, "optim-bench: %s\n", optim_errmsg(opt));
      goto out;
    }
  }
  /* One untimed step first: the state buffers exist after it. */
  if ((st = optim_step(opt))) {
    fprintf(stderr, "optim-bench: step: %s\n", optim_errmsg(opt));
    goto out;
  }
  /* The streams of a step: the parameter, its gradient, and the state
   * buffers of the parameter's size, each read and written (smaller ones,
   * such as a scalar accumulator, are not streams; larger ones, such as
   * adam_cm's buffer of past momenta, of which a step writes one slot, are
   * not counted either) */
  int nbuf = 0, ns = optim_state_count(opt, 0);
  for (int k = 0; k < ns; k++) {
    int kind;
    int64_t numel;
    optim_state_info(opt, 0, k, NULL, &kind, &numel);
    nbuf += kind == OPTIM_STATE_BUFFER && numel == (int64_t)len[0];
  }
  R->reads = 2 + nbuf;
  R->writes = 1 + nbuf;
  R->bytes = (double)nparams * (double)B->esize * (R->reads + R->writes);

  /* Same-stream roofline on the optimizer's own state buffers (float32
   * view: the bytes are what matter). */
  if (nbuf > 3) nbuf = 3;
  float **pf = calloc((size_t)nt, sizeof *pf), **gf = calloc((size_t)nt, sizeof *gf);
  float *(*sf)[4] = calloc((size_t)nt, sizeof *sf);
  size_t *flen = calloc((size_t)nt, sizeof *flen);
  double *stimes = calloc((size_t)B->iters, sizeof *stimes);
  double *ratios = calloc((size_t)B->iters, sizeof *ratios);
  if (!pf || !gf || !sf || !flen || !stimes || !ratios) {
    fprintf(stderr, "optim-bench: out of memory\n");
    goto out;
  }
  for (int t = 0; t < nt; t++) {
    pf[t] = p[t];
    gf[t] = g[t];
    flen[t] = len[t] * B->esize / 4;
    int b = 0;
    for (int k = 0; k < ns && b < 3; k++) {
      const char *nm;
      int kind;
      int64_t numel;
      const void *data;
      optim_state_info(opt, t, k, &nm, &kind, &numel);
      if (kind != OPTIM_STATE_BUFFER || numel != (int64_t)len[t]) continue;
      optim_state_buffer(opt, t, nm, &data, NULL);
      sf[t][b++] = (float *)data; /* benchmark only: the library's own memory */
    }
  }
  /* Step and same-stream kernel alternate, so a shared and noisy machine
   * affects both alike; the paired ratio is the median of per-iteration
   * ratios. */
  for (int i = 0; i < B->warmup + B->iters; i++) {
    double t0 = now();
    if ((st = optim_step(opt))) {
      fprintf(stderr, "optim-bench: step: %s\n", optim_errmsg(opt));
      goto out;
    }
    double t1 = now();
    same_streams(pf, gf, sf, nbuf, flen, nt, B->threads);
    double t2 = now();
    if (i >= B->warmup) {
      times[i - B->warmup] = t1 - t0;
      stimes[i - B->warmup] = t2 - t1;
      ratios[i - B->warmup] = (t2 - t1) / (t1 - t0);
    }
  }
  R->step_s = median(times, B->iters);
  R->same_s = median(stimes, B->iters);
  R->paired = median(ratios, B->iters);
  free(pf);
  free(gf);
  free(sf);
  free(flen);
  free(stimes);
  free(ratios);

  /* Triad moving the same number of bytes. */
  size_t tn = (size_t)(R->bytes / 12.0);
  float *a = alloc_fill(tn, 4, 0.0, B->threads), *b = alloc_fill(tn, 4, 1.0, B->threads),
        *c = alloc_fill(tn, 4, 2.0, B->threads);
  if (!a || !b || !c) {
    free(a);
    free(b);
    free(c);
    fprintf(stderr, "optim-bench: out of memory for the triad\n");
    goto out;
  }
  for (int i = 0; i < B->warmup + B->iters; i++) {
    double t0 = now();
    triad(a, b, c, tn, 0.5f, B->threads);
    if (i >= B->warmup) times[i - B->warmup] = now() - t0;
  }
  R->triad_s = median(times, B->iters) * R->bytes / ((double)tn * 12.0);
  free(a);
  free(b);
  free(c);
  rc = 0;
out:
  optim_destroy(opt);
  for (int t = 0; p && g && t < nt; t++) {
    free(p[t]);
    free(g[t]);
  }
  free(p);
  free(g);
  free(len);
  free(times);
  return rc;
}

static void usage(FILE *f)
{
  fprintf(f,
          "Usage: optim-bench [OPTION]...\n"
          "Measure optim_step throughput against, in the same run, a no-math kernel with\n"
          "the step's own read and write streams (its roofline) and a triad moving the\n"
          "same bytes.\n\n"
          "  -a, --algorithm NAME   algorithm to step (default adamw)\n"
          "  -p, --params N         parameter count, K/M/G suffixes (default 64M)\n"
          "  -n, --tensors N        split the parameters into N tensors (default 8)\n"
          "  -t, --threads N        OpenMP threads (default: OMP_NUM_THREADS or all)\n"
          "  -i, --iters N          timed iterations, median reported (default 10)\n"
          "  -w, --warmup N         untimed iterations first (default 2)\n"
          "  -d, --dtype TYPE       float32 or float64 (default float32)\n"
          "  -o, --options SPEC     hyperparameters, e.g. 'lr=1e-3,nonfinite=zero'\n"
          "  -s, --sweep            step time from 1M to 256M parameters, as a table\n"
          "      --ns RxC           time Newton-Schulz (5 steps) on one RxC matrix against\n"
          "                         the BLAS gemm rate, in the same run\n"
          "      --shapes LIST      step matrices RxC[:N],... with --algorithm (e.g. muon)\n"
          "                         and compare with their Newton-Schulz time\n"
          "  -h, --help             show this help and exit\n"
          "  -V, --version          show the library version and exit\n");
}

int main(int argc, char **argv)
{
  static const struct option opts[] = {
    {"algorithm", required_argument, 0, 'a'}, {"params", required_argument, 0, 'p'},
    {"tensors", required_argument, 0, 'n'},   {"threads", required_argument, 0, 't'},
    {"iters", required_argument, 0, 'i'},     {"warmup", required_argument, 0, 'w'},
    {"dtype", required_argument, 0, 'd'},     {"options", required_argument, 0, 'o'},
    {"sweep", no_argument, 0, 's'},           {"help", no_argument, 0, 'h'},
    {"ns", required_argument, 0, 'N'},        {"shapes", required_argument, 0, 'S'},
    {"version", no_argument, 0, 'V'},         {0, 0, 0, 0}};
  bench B = {"adamw", NULL, OPTIM_FLOAT32, 8, 0, 10, 2, 4};
  size_t nparams = (size_t)64 << 20;
  int sweep = 0, c;
  const char *ns_shape = NULL, *shapes = NULL;
#ifdef _OPENMP
  B.threads = omp_get_max_threads();
#else
  B.threads = 1;
#endif
  while ((c = getopt_long(argc, argv, "a:p:n:t:i:w:d:o:shV", opts, NULL)) != -1) {
    char *end = NULL;
    long v = 0;
    if (strchr("ntiw", c)) {
      v = strtol(optarg, &end, 10);
      if (*end || v < (c == 'w' ? 0 : 1) || v > 1000000) {
        fprintf(stderr, "optim-bench: invalid number '%s' for -%c\n", optarg, c);
        return 2;
      }
    }
    switch (c) {
    case 'a': B.alg = optarg; break;
    case 'p':
      if (parse_count(optarg, &nparams)) {
        fprintf(stderr, "optim-bench: invalid parameter count '%s'\n", optarg);
        return 2;
      }
      break;
    case 'n': B.tensors = (int)v; break;
    case 't': B.threads = (int)v; break;
    case 'i': B.iters = (int)v; break;
    case 'w': B.warmup = (int)v; break;
    case 'd':
      if (!strcmp(optarg, "float32")) B.dtype = OPTIM_FLOAT32, B.esize = 4;
      else if (!strcmp(optarg, "float64")) B.dtype = OPTIM_FLOAT64, B.esize = 8;
      else {
        fprintf(stderr, "optim-bench: dtype must be float32 or float64\n");
        return 2;
      }
      break;
    case 'o': B.options = optarg; break;
    case 's': sweep = 1; break;
    case 'N': ns_shape = optarg; break;
    case 'S': shapes = optarg; break;
    case 'h': usage(stdout); return 0;
    case 'V': printf("optim-bench (liboptim) %s\n", optim_version()); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "optim-bench: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  if (optim_hparam_count(B.alg) < 0) {
    fprintf(stderr, "optim-bench: unknown algorithm '%s' (see optim-info --list)\n", B.alg);
    return 2;
  }
  if (ns_shape) return bench_ns(ns_shape, B.dtype, B.threads, B.iters, B.warmup);
  if (shapes)
    return bench_matrix_step(B.alg, B.options, shapes, B.dtype, B.threads, B.iters, B.warmup);
  if (nparams < (size_t)B.tensors) nparams = (size_t)B.tensors;
  result R;
  if (!sweep) {
    int rc = run(&B, nparams, &R);
    if (rc) return rc;
    double gb = R.bytes / 1e9;
    printf("optim-bench: %s %s, %zu params in %d tensors, %d threads, median of %d\n", B.alg,
           B.esize == 4 ? "float32" : "float64", nparams, B.tensors, B.threads, B.iters);
    printf("  step         %9.3f ms  %7.2f GB/s  (%d reads + %d writes, %.3f GB per step)\n",
           R.step_s * 1e3, gb / R.step_s, R.reads, R.writes, gb);
    printf("  same-stream  %9.3f ms  %7.2f GB/s  (no-math kernel, same reads and writes)\n",
           R.same_s * 1e3, gb / R.same_s);
    printf("  triad        %9.3f ms  %7.2f GB/s  (a = b + s*c, same bytes)\n", R.triad_s * 1e3,
           gb / R.triad_s);
    printf("  ratio step/same-stream %.3f   step/triad %.3f\n     paired step/same-stream %.3f\n",
           R.same_s / R.step_s, R.triad_s / R.step_s, R.paired);
    return 0;
  }
  printf("# optim-bench sweep: %s %s, %d tensors, %d threads, median of %d\n", B.alg,
         B.esize == 4 ? "float32" : "float64", B.tensors, B.threads, B.iters);
  printf("%12s %11s %10s %9s %12s %10s\n", "params", "step_ms", "ns/param", "GB/s",
         "same_GB/s", "ratio");
  for (size_t n = (size_t)1 << 20; n <= (size_t)256 << 20; n *= 2) {
    int rc = run(&B, n, &R);
    if (rc) return rc;
    double gb = R.bytes / 1e9;
    printf("%12zu %11.3f %10.3f %9.2f %12.2f %10.3f\n", n, R.step_s * 1e3,
           R.step_s * 1e9 / (double)n, gb / R.step_s, gb / R.same_s, R.paired);
    fflush(stdout);
  }
  return 0;
}
