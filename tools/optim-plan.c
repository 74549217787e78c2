/* optim-plan - the owner plan liboptim_mpi would compute for a set of
 * matrices, and a cost model of one distributed step, without MPI.
 *
 * The plan is the library's own: mpi/plan.c (greedy LPT) over the costs
 * lib/ns.c's optim__ns_flops gives (the cost Muon, NorMuon and ROOT report
 * through optim_param_cost), both compiled into this tool.  The gradient
 * buckets follow mpi/overlap.c and the broadcasts mpi/step.c. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ns.h"
#include "optim.h"
#include "plan.h"

/* As mpi/mpi-internal.h (OPTIM_MPI_MAXSEG): a bucket holds at most this
 * many tensor segments. */
#define MAXSEG 4096
/* As mpi/step.c: a parameter is broadcast in chunks of 2^30 elements. */
#define BCAST_CHUNK ((int64_t)1 << 30)
#define MAX_MATRICES 1000000
#define MAX_RANKS 1048576

typedef struct model {
  int p, steps, es, verbose;
  double alpha, bw, flops;
  size_t bucket;
} model;

typedef struct mat {
  int64_t rows, cols;
} mat;

static void usage(FILE *f)
{
  fprintf(f,
          "Usage: optim-plan --shapes LIST --ranks P [OPTION]...\n"
          "Compute, without MPI, the owner plan liboptim_mpi builds for whole-tensor\n"
          "matrices (LPT over Newton-Schulz flops) and model one distributed step:\n"
          "per-rank NS work, ring allreduce of the small gradients, sums of the large\n"
          "matrices' gradients to their owners, pipelined broadcasts.\n\n"
          "  -s, --shapes LIST        matrices RxC[:N],... in registration order\n"
          "                           (e.g. 2048x2048:96,2048x8192:48)\n"
          "  -p, --ranks P            number of ranks (1 to %d)\n"
          "      --alpha SECONDS      latency per message (default 2e-6)\n"
          "      --bandwidth BYTES_PER_S\n"
          "                           link bandwidth (default 25e9)\n"
          "      --flops FLOP_PER_S   Newton-Schulz rate of one rank (default 3e12)\n"
          "      --ns-steps N         Newton-Schulz iterations, 1 to 100 (default 5)\n"
          "      --dtype-bytes B      bytes per element, 2, 4 or 8 (default 4)\n"
          "      --bucket BYTES       gradient bucket size, 1024 to 2147483640\n"
          "                           (default 4194304)\n"
          "  -v, --verbose            also list the owner of every matrix\n"
          "  -h, --help               show this help and exit\n"
          "  -V, --version            show the version and exit\n",
          MAX_RANKS);
}

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "optim-plan: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\nTry 'optim-plan --help' for more information.\n");
  va_end(ap);
  return 2;
}

/* A finite real number with no trailing text. */
static int parse_real(const char *s, double *out)
{
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v)) return -1;
  *out = v;
  return 0;
}

/* A decimal integer in [lo, hi] with no sign or trailing text. */
static int parse_int(const char *s, long long lo, long long hi, long long *out)
{
  if (*s < '0' || *s > '9') return -1;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (*end != '\0' || errno == ERANGE || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

/* Unsigned decimal at *s, advancing it; -1 if none or too large. */
static long long digits(const char **s)
{
  long long v = 0;
  const char *q = *s;
  if (*q < '0' || *q > '9') return -1;
  for (; *q >= '0' && *q <= '9'; q++) {
    v = v * 10 + (*q - '0');
    if (v > INT32_MAX) return -1;
  }
  *s = q;
  return v;
}

/* RxC[:N],... into a freshly allocated array; 0, or 2 after a message. */
static int parse_shapes(const char *list, mat **out, int *count)
{
  mat *m = NULL;
  int n = 0, cap = 0;
  const char *s = list;
  for (;;) {
    const char *item = s;
    long long r = digits(&s), c = -1, k = 1;
    if (r >= 1 && (*s == 'x' || *s == 'X')) {
      s++;
      c = digits(&s);
    }
    if (c >= 1 && *s == ':') {
      s++;
      k = digits(&s);
    }
    if (r < 1 || c < 1 || k < 1 || (*s != ',' && *s != '\0')) {
      size_t len = strcspn(item, ",");
      if (len == 0) {
        fprintf(stderr, "optim-plan: --shapes: empty item in '%s'\n", list);
        free(m);
        return 2;
      }
      fprintf(stderr,
              "optim-plan: --shapes: '%.*s' is not RxC or RxC:N with positive integers "
              "(at most %d each)\n",
              (int)len, item, INT32_MAX);
      free(m);
      return 2;
    }
    if (r * c > ((long long)1 << 50)) {
      fprintf(stderr, "optim-plan: --shapes: %lldx%lld has more than 2^50 elements\n", r, c);
      free(m);
      return 2;
    }
    if (k > MAX_MATRICES - n) {
      fprintf(stderr, "optim-plan: --shapes: at most %d matrices\n", MAX_MATRICES);
      free(m);
      return 2;
    }
    if (n + (int)k > cap) {
      cap = 2 * (n + (int)k);
      mat *t = realloc(m, sizeof *m * (size_t)cap);
      if (!t) {
        free(m);
        fprintf(stderr, "optim-plan: out of memory\n");
        return 1;
      }
      m = t;
    }
    for (long long i = 0; i < k; i++) m[n++] = (mat){r, c};
    if (*s == '\0') break;
    s++; /* ',' */
  }
  *out = m;
  *count = n;
  return 0;
}

/* Ring allreduce of b bytes: 2(p-1) messages, 2(p-1)/p of the bytes leave
 * each rank. */
static double allreduce_s(const model *M, double b)
{
  if (M->p < 2) return 0;
  double p = M->p;
  return 2 * (p - 1) * M->alpha + 2 * (p - 1) / p * b / M->bw;
}

/* Pipelined (chain) broadcast of b bytes through the p ranks in k segments:
 * (p - 2 + k)(alpha + b/k / bandwidth), with the k that minimizes it
 * (k* = sqrt((p-2) b / (bandwidth alpha)), at most one segment per element). */
static double bcast_s(const model *M, double b, double elems, int *kseg)
{
  double p = M->p, beta = 1 / M->bw;
  *kseg = 0;
  if (M->p < 2) return 0;
  double kstar = M->alpha > 0 ? sqrt((p - 2) * b * beta / M->alpha) : elems;
  double cand[2] = {floor(kstar), ceil(kstar)}, best = HUGE_VAL;
  for (int i = 0; i < 2; i++) {
    double k = cand[i] < 1 ? 1 : cand[i] > elems ? elems : cand[i];
    double t = (p - 2 + k) * (M->alpha + b / k * beta);
    if (t < best) {
      best = t;
      *kseg = (int)(k < INT32_MAX ? k : INT32_MAX);
    }
  }
  return best;
}

static void human(double b, char *buf, size_t n)
{
  static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) b /= 1024, u++;
  snprintf(buf, n, u ? "%.2f %s" : "%.0f %s", b, unit[u]);
}

static int run(const model *M, const mat *m, int n)
{
  double *cost = malloc(sizeof *cost * (size_t)n);
  int *owner = malloc(sizeof *owner * (size_t)n);
  double *load = calloc((size_t)M->p, sizeof *load), *owned = calloc((size_t)M->p, sizeof *owned),
         *chain = calloc((size_t)M->p, sizeof *chain);
  int *cnt = calloc((size_t)M->p, sizeof *cnt);
  int rc = 1;
  if (!cost || !owner || !load || !owned || !chain || !cnt) {
    fprintf(stderr, "optim-plan: out of memory\n");
    goto out;
  }
  double numel = 0;
  for (int i = 0; i < n; i++) {
    cost[i] = optim__ns_flops(m[i].rows, m[i].cols, M->steps);
    numel += (double)m[i].rows * (double)m[i].cols;
  }
  double imb = optim_mpi__plan(cost, n, M->p, owner);
  if (imb < 0) {
    fprintf(stderr, "optim-plan: out of memory\n");
    goto out;
  }

  /* Compute: planned flops per rank. */
  double total = 0, maxload = 0;
  int replicated = 0;
  for (int i = 0; i < n; i++) {
    if (owner[i] < 0) {
      replicated++;
      continue;
    }
    load[owner[i]] += cost[i];
    cnt[owner[i]]++;
    total += cost[i];
  }
  for (int r = 0; r < M->p; r++)
    if (load[r] > maxload) maxload = load[r];
  double mean = total / M->p, speedup = maxload > 0 ? total / maxload : 1;

  /* Gradient averaging, bucket by bucket as mpi/overlap.c does it. */
  size_t es = (size_t)M->es, cap = M->bucket / es * es, used = 0;
  int nseg = 0;
  double ar_calls = 0, ar_bytes = 0, ar_s = 0, ar_lat = 0;
#define FLUSH(b)                          \
  do {                                    \
    ar_calls += 1;                        \
    ar_bytes += (double)(b);              \
    ar_s += allreduce_s(M, (double)(b));  \
  } while (0)
  /* Large matrices (at least half a bucket) are summed on their owner only
   * (MPI_Reduce per bucket, modeled as a pipelined chain ending at the
   * owner: every other rank sends each chunk once). */
  double rd_s = 0, rd_calls = 0, large_bytes = 0;
  double *rd_owned = calloc((size_t)M->p, sizeof *rd_owned);
  if (!rd_owned) {
    fprintf(stderr, "optim-plan: out of memory\n");
    goto out;
  }
  for (int i = 0; i < n; i++) {
    size_t ne = (size_t)m[i].rows * (size_t)m[i].cols, done = 0;
    if (ne * es >= cap / 2) {
      if (owner[i] < 0) {
        for (size_t o = 0; o < ne; o += cap / es) FLUSH((ne - o < cap / es ? ne - o : cap / es) * es);
        continue;
      }
      for (size_t o = 0; o < ne; o += cap / es) {
        size_t take = ne - o < cap / es ? ne - o : cap / es;
        int k;
        rd_s += bcast_s(M, (double)(take * es), (double)take, &k);
        rd_calls += 1;
      }
      large_bytes += (double)(ne * es);
      rd_owned[owner[i]] += (double)(ne * es);
      continue;
    }
    while (done < ne) {
      size_t take = (cap - used) / es;
      if (take > ne - done) take = ne - done;
      nseg++;
      used += take * es;
      done += take;
      if (used == cap || nseg == MAXSEG) {
        FLUSH(used);
        used = 0;
        nseg = 0;
      }
    }
  }
  if (used > 0) FLUSH(used);
#undef FLUSH
  double p = M->p, ring = M->p > 1 ? 2 * (p - 1) / p : 0;
  if (M->p > 1) ar_lat = ar_calls * 2 * (p - 1) * M->alpha;
  double ar_rank = ring * ar_bytes; /* bytes each rank sends */

  /* Owners' broadcasts, one matrix after the other as mpi/step.c does. */
  double bc_s = 0, bc_msgs = 0;
  int kmin = INT32_MAX, kmax = 0;
  for (int i = 0; i < n; i++) {
    if (owner[i] < 0) continue;
    int64_t ne = m[i].rows * m[i].cols;
    for (int64_t o = 0; o < ne; o += BCAST_CHUNK) {
      int64_t take = ne - o < BCAST_CHUNK ? ne - o : BCAST_CHUNK;
      double b = (double)take * (double)es;
      int k;
      bc_s += bcast_s(M, b, (double)take, &k);
      bc_msgs += 1;
      if (M->p > 1) {
        if (k < kmin) kmin = k;
        if (k > kmax) kmax = k;
      }
    }
    owned[owner[i]] += (double)ne * (double)es;
  }
  double owned_max = 0, chain_max = 0, owned_sum = 0;
  for (int r = 0; r < M->p; r++) {
    owned_sum += owned[r];
    if (owned[r] > owned_max) owned_max = owned[r];
  }
  /* In the chain owner, owner+1, ..., owner-1 every rank but the last
   * forwards the matrix: rank r sends all but what rank r+1 owns. */
  for (int r = 0; M->p > 1 && r < M->p; r++) {
    chain[r] = owned_sum - owned[(r + 1) % M->p];
    if (chain[r] > chain_max) chain_max = chain[r];
  }

  double rd_max = 0;
  for (int r = 0; M->p > 1 && r < M->p; r++)
    if (large_bytes - rd_owned[r] > rd_max) rd_max = large_bytes - rd_owned[r];
  free(rd_owned);
  double bound_b = ring * (ar_bytes + large_bytes), bound_s = bound_b / M->bw;
  double ex_b = ar_rank + rd_max + chain_max, ex_s = ar_s + rd_s + bc_s;
  double ns_s = maxload / M->flops, step_s = ns_s + ar_s + rd_s + bc_s;
  char h1[32], h2[32], h3[32];

  human(numel * (double)es, h1, sizeof h1);
  human((double)M->bucket, h2, sizeof h2);
  printf("optim-plan: %d matrices, %.0f parameters (%s at %d bytes), %d ranks\n", n, numel, h1,
         M->es, M->p);
  printf("  model: alpha %g s, bandwidth %g B/s, %g flop/s per rank, %d Newton-Schulz steps, "
         "bucket %zu B (%s)\n",
         M->alpha, M->bw, M->flops, M->steps, M->bucket, h2);

  printf("\nNewton-Schulz plan (LPT over optim__ns_flops, as liboptim_mpi):\n");
  printf("  %6s %9s %14s %11s %14s\n", "rank", "matrices", "flops", "NS_ms", "owned_bytes");
  for (int r = 0; r < M->p; r++)
    printf("  %6d %9d %14.6e %11.3f %14.0f\n", r, cnt[r], load[r], load[r] / M->flops * 1e3,
           owned[r]);
  if (replicated)
    printf("  (%d matrices of zero cost are stepped by every rank, not owned)\n", replicated);
  printf("  total flops          %.6e (one rank: %.3f s)\n", total, total / M->flops);
  printf("  max / mean per rank  %.6e / %.6e\n", maxload, mean);
  printf("  imbalance (max/mean) %.4f\n", imb);
  printf("  NS speedup over one rank (total/max) %.2f = %.3f p\n", speedup, speedup / p);

  printf("\nExchange per step (bytes sent per rank):\n");
  human(ar_bytes, h1, sizeof h1);
  printf("  gradient allreduce   %.0f B  (ring: 2(p-1)/p x %.0f B = %s of gradients, "
         "in %.0f allreduce call%s)\n",
         ar_rank, ar_bytes, h1, ar_calls, ar_calls == 1 ? "" : "s");
  printf("  sums to owners       %.0f B  (large matrices: a pipelined chain of MPI_Reduce per "
         "bucket ending at the owner, %.0f call%s; max over ranks)\n",
         rd_max, rd_calls, rd_calls == 1 ? "" : "s");
  printf("  owners' broadcasts   %.0f B  (pipelined chain: each rank but the chain's last "
         "forwards each matrix; max over ranks)\n",
         chain_max);
  printf("                       bytes leaving their owner: max %.0f, mean %.0f per rank, "
         "%.0f in %.0f broadcasts\n",
         owned_max, owned_sum / p, owned_sum, bc_msgs);
  printf("  exchange             %.0f B, %.6g s (allreduce, sums and broadcasts below)\n", ex_b,
         ex_s);
  printf("  bandwidth-optimal bound 2(p-1)/p x n: %.0f B, %.6g s\n", bound_b, bound_s);
  if (bound_s > 0)
    printf("  modeled / bound      %.3f x in bytes, %.3f x in time\n", ex_b / bound_b,
           ex_s / bound_s);
  else
    printf("  modeled / bound      n/a (one rank exchanges nothing)\n");

  printf("\nModeled step time:\n");
  printf("  NS, heaviest rank    %10.6f s  (%.6e flops / %g flop/s)\n", ns_s, maxload, M->flops);
  printf("  gradient allreduce   %10.6f s  (latency %.6f s: %.0f calls x 2(p-1) alpha; "
         "bandwidth %.6f s)\n",
         ar_s, ar_lat, ar_calls, ar_s - ar_lat);
  printf("  sums to owners       %10.6f s  (%.0f pipelined reductions)\n", rd_s, rd_calls);
  if (kmax > 0)
    printf("  owners' broadcasts   %10.6f s  (%.0f pipelined broadcasts, %d to %d segments)\n",
           bc_s, bc_msgs, kmin, kmax);
  else
    printf("  owners' broadcasts   %10.6f s\n", bc_s);
  printf("  step                 %10.6f s  (NS alone on one rank: %.6f s)\n", step_s,
         total / M->flops);

  if (M->verbose) {
    printf("\nAssignment (matrix, shape, rank, flops):\n");
    for (int i = 0; i < n; i++) {
      snprintf(h3, sizeof h3, "%lldx%lld", (long long)m[i].rows, (long long)m[i].cols);
      printf("  %7d %15s %6d %14.6e\n", i, h3, owner[i], cost[i]);
    }
  }
  rc = 0;
out:
  free(cost);
  free(owner);
  free(load);
  free(owned);
  free(chain);
  free(cnt);
  return rc;
}

int main(int argc, char **argv)
{
  enum { O_ALPHA = 256, O_BW, O_FLOPS, O_STEPS, O_DTYPE, O_BUCKET };
  static const struct option opts[] = {
    {"shapes", required_argument, 0, 's'},     {"ranks", required_argument, 0, 'p'},
    {"alpha", required_argument, 0, O_ALPHA},  {"bandwidth", required_argument, 0, O_BW},
    {"flops", required_argument, 0, O_FLOPS},  {"ns-steps", required_argument, 0, O_STEPS},
    {"dtype-bytes", required_argument, 0, O_DTYPE}, {"bucket", required_argument, 0, O_BUCKET},
    {"verbose", no_argument, 0, 'v'},          {"help", no_argument, 0, 'h'},
    {"version", no_argument, 0, 'V'},          {0, 0, 0, 0}};
  model M = {0, 5, 4, 0, 2e-6, 25e9, 3e12, (size_t)4 << 20};
  const char *shapes = NULL;
  int c;
  long long v;
  while ((c = getopt_long(argc, argv, "s:p:vhV", opts, NULL)) != -1) {
    switch (c) {
    case 's': shapes = optarg; break;
    case 'p':
      if (parse_int(optarg, 1, MAX_RANKS, &v))
        return bad("--ranks: '%s' is not an integer from 1 to 1048576", optarg);
      M.p = (int)v;
      break;
    case O_ALPHA:
      if (parse_real(optarg, &M.alpha) || M.alpha < 0)
        return bad("--alpha: '%s' is not a latency in seconds (a finite number >= 0)", optarg);
      break;
    case O_BW:
      if (parse_real(optarg, &M.bw) || M.bw <= 0)
        return bad("--bandwidth: '%s' is not a positive number of bytes per second", optarg);
      break;
    case O_FLOPS:
      if (parse_real(optarg, &M.flops) || M.flops <= 0)
        return bad("--flops: '%s' is not a positive number of flop per second", optarg);
      break;
    case O_STEPS:
      if (parse_int(optarg, 1, 100, &v))
        return bad("--ns-steps: '%s' is not an integer from 1 to 100", optarg);
      M.steps = (int)v;
      break;
    case O_DTYPE:
      if (parse_int(optarg, 2, 8, &v) || (v != 2 && v != 4 && v != 8))
        return bad("--dtype-bytes: '%s' is not 2, 4 or 8", optarg);
      M.es = (int)v;
      break;
    case O_BUCKET:
      if (parse_int(optarg, 1024, ((long long)1 << 31) - 8, &v))
        return bad("--bucket: '%s' is not an integer from 1024 to 2147483640 "
                   "(liboptim_mpi's bucket_bytes range)",
                   optarg);
      M.bucket = (size_t)v;
      break;
    case 'v': M.verbose = 1; break;
    case 'h': usage(stdout); return 0;
    case 'V': printf("optim-plan (liboptim) %s\n", OPTIM_VERSION_STRING); return 0;
    default:
      fprintf(stderr, "Try 'optim-plan --help' for more information.\n");
      return 2;
    }
  }
  if (optind < argc) return bad("unexpected argument '%s'", argv[optind]);
  if (!shapes) return bad("--shapes is required (e.g. --shapes 2048x2048:96)");
  if (M.p == 0) return bad("--ranks is required (the number of ranks)");
  mat *m;
  int n, st = parse_shapes(shapes, &m, &n);
  if (st) return st;
  st = run(&M, m, n);
  free(m);
  return st;
}
