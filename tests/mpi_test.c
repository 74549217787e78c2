/* mpi_test.c - liboptim_mpi under mpiexec -np P: data-parallel AdamW equals
 * the serial run on the averaged gradient; owner-computes Muon is
 * bit-identical to a serial run for every P; a failure on one rank is
 * reported by all; bad attachments are refused. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optim_mpi.h"
#include "testutil.h"

static int rank, size, failures, checks;

#define CHECK(cond, ...)                                              \
  do {                                                                \
    checks++;                                                         \
    if (!(cond)) {                                                    \
      failures++;                                                     \
      fprintf(stderr, "rank %d: %s:%d: ", rank, __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                                   \
      fputc('\n', stderr);                                            \
    }                                                                 \
  } while (0)

#define NP 4
static const int64_t shapes[NP][2] = {{40, 25}, {16, 64}, {30, 30}, {25, 1}};

typedef struct model {
  optim_optimizer *opt;
  float *p[NP], *g[NP];
  size_t n[NP];
  float *arena; /* all gradients back to back, when flat_grads is set */
} model;

/* Gradients of the models built next live in one flat arena (packed
 * buckets are then reduced where they lie, with no copy). */
static int flat_grads;

static void model_init(model *m, const char *alg, const char *opts)
{
  int grp;
  optim_create(&m->opt);
  optim_add_group(m->opt, alg, &grp);
  CHECK(optim_configure(m->opt, grp, opts) == OPTIM_OK, "%s", optim_errmsg(m->opt));
  size_t total = 0;
  for (int j = 0; j < NP; j++) total += (size_t)(shapes[j][0] * shapes[j][1]);
  m->arena = flat_grads ? malloc(sizeof(float) * total) : NULL;
  total = 0;
  for (int j = 0; j < NP; j++) {
    int nd = shapes[j][1] == 1 ? 1 : 2;
    m->n[j] = (size_t)(shapes[j][0] * shapes[j][1]);
    m->p[j] = malloc(sizeof(float) * m->n[j]);
    m->g[j] = m->arena ? m->arena + total : malloc(sizeof(float) * m->n[j]);
    total += m->n[j];
    for (size_t i = 0; i < m->n[j]; i++) m->p[j][i] = (float)golden_noise(i, 0, (uint64_t)j, 3);
    char name[8];
    snprintf(name, sizeof name, "p%d", j);
    CHECK(optim_add_param(m->opt, grp, name, OPTIM_FLOAT32, nd, shapes[j], m->p[j], m->g[j],
                          NULL) == OPTIM_OK,
          "%s", optim_errmsg(m->opt));
  }
}

static void model_free(model *m)
{
  optim_destroy(m->opt);
  for (int j = 0; j < NP; j++) {
    free(m->p[j]);
    if (!m->arena) free(m->g[j]);
  }
  free(m->arena);
}

/* The gradient rank r computes at step k (from the replicated params). */
static void rank_grad(const model *m, int j, int k, int r, float *out, int exact)
{
  if (exact) /* dyadic noise only: sums over ranks are exact */
    for (size_t i = 0; i < m->n[j]; i++) out[i] = (float)golden_noise(i, (uint64_t)k, (uint64_t)j, 100 + (uint64_t)r);
  else
    golden_grad(OPTIM_FLOAT32, m->p[j], out, m->n[j], (uint64_t)k, (uint64_t)j, 100 + (uint64_t)r);
}

/* serial reference: gradient = (sum over ranks, in rank order) * (1/size),
 * the average as liboptim_mpi defines it (optim_step_scaled) */
static void serial_grad(const model *m, int j, int k, int exact)
{
  float *t = malloc(sizeof(float) * m->n[j]);
  memset(m->g[j], 0, sizeof(float) * m->n[j]);
  for (int r = 0; r < size; r++) {
    rank_grad(m, j, k, r, t, exact);
    for (size_t i = 0; i < m->n[j]; i++) m->g[j][i] += t[i];
  }
  const float inv = (float)(1.0 / size);
  for (size_t i = 0; i < m->n[j]; i++) m->g[j][i] *= inv;
  free(t);
}

static void run_mode(const char *alg, const char *opts, const char *mode, const char *bucket);

static void run(const char *alg, const char *opts, int exact, const char *bucket)
{
  run_mode(alg, opts, exact ? "exact" : "mpi", bucket);
}

/* mode: "mpi" (tolerance), "exact" (exact sums: bitwise), "ordered" (the
 * rank-ordered reduction: bitwise on any gradients) */
static void run_mode(const char *alg, const char *opts, const char *mode, const char *bucket)
{
  int exact = strncmp(mode, "exact", 5) == 0, bitwise = strncmp(mode, "mpi", 3) != 0;
  int shard = strstr(mode, "shard") != NULL;
  model d, s;
  optim_mpi *ctx = NULL;
  model_init(&d, alg, opts);
  model_init(&s, alg, opts);
  CHECK(optim_mpi_create(d.opt, MPI_COMM_WORLD, &ctx) == OPTIM_OK, "create");
  if (!ctx) return;
  if (bucket) CHECK(optim_mpi_set_option(ctx, "bucket_bytes", bucket) == OPTIM_OK, "bucket");
  if (strstr(mode, "ordered"))
    CHECK(optim_mpi_set_option(ctx, "reduce", "ordered") == OPTIM_OK, "reduce=ordered");
  if (shard) {
    CHECK(optim_mpi_set_option(ctx, "shard_state", "true") == OPTIM_OK, "shard_state: %s",
          optim_mpi_errmsg(ctx));
    /* state for this rank's 1/p of each element-wise parameter only */
    for (int j = 0; j < NP; j++) {
      int64_t b, e, n;
      const char *nm;
      int own;
      optim_mpi_owner(ctx, j, &own);
      optim_param_get_range(d.opt, j, &b, &e);
      optim_state_info(d.opt, j, 1, &nm, NULL, &n);
      if (own >= 0) { /* matrices: owned whole, not sharded */
        CHECK(b == 0 && e == (int64_t)d.n[j], "matrix %d has a range", j);
        continue;
      }
      CHECK(b == (int64_t)d.n[j] * rank / size && e == (int64_t)d.n[j] * (rank + 1) / size &&
                n == e - b,
            "shard of parameter %d: [%lld, %lld), state %lld", j, (long long)b, (long long)e,
            (long long)n);
    }
  }
  for (int k = 1; k <= 12; k++) {
    for (int j = 0; j < NP; j++) serial_grad(&s, j, k, exact);
    if (strstr(mode, "hook")) {
      /* as a backward pass would: last layer first, each gradient written
       * just before it is marked ready (a piece started too early would
       * reduce stale values; the gradients are poisoned first) */
      for (int j = 0; j < NP; j++)
        for (size_t i = 0; i < d.n[j]; i++) d.g[j][i] = 1e6f;
      for (int j = NP - 1; j >= 0; j--) {
        rank_grad(&d, j, k, rank, d.g[j], exact);
        CHECK(optim_mpi_grad_ready(ctx, j) == OPTIM_OK, "grad_ready %d: %s", j,
              optim_mpi_errmsg(ctx));
      }
    } else {
      for (int j = 0; j < NP; j++) rank_grad(&d, j, k, rank, d.g[j], exact);
    }
    int st = optim_mpi_step(ctx);
    CHECK(st == OPTIM_OK, "step %d: %s", k, optim_mpi_errmsg(ctx));
    CHECK(optim_step(s.opt) == OPTIM_OK, "serial step");
  }
  for (int j = 0; j < NP; j++) {
    /* MPI sums in its own order: the average differs in the last bit, by up
     * to eps * sum|g_r| / p, which cancellation can make large relative to a
     * small average; so compare tensor-wise, max error against max value */
    double err = 0, mx = 0;
    for (size_t i = 0; i < d.n[j]; i++) {
      err = fmax(err, fabs((double)d.p[j][i] - s.p[j][i]));
      mx = fmax(mx, fabs((double)s.p[j][i]));
    }
    err /= mx;
    if (bitwise)
      CHECK(memcmp(d.p[j], s.p[j], sizeof(float) * d.n[j]) == 0,
            "%s p=%d: parameter %d differs from the serial run (max rel %g)", alg, size, j, err);
    else
      CHECK(err <= 1e-6, "%s p=%d: parameter %d: rel error %g", alg, size, j, err);
  }
  double imb = 0, bytes = -1;
  CHECK(optim_mpi_counter(ctx, "imbalance", &imb) == OPTIM_OK && imb >= 1, "imbalance %g", imb);
  CHECK(optim_mpi_counter(ctx, "bytes", &bytes) == OPTIM_OK && (size == 1 || bytes > 0),
        "bytes %g", bytes);
  int owner = -2;
  CHECK(optim_mpi_owner(ctx, 0, &owner) == OPTIM_OK, "owner");
  int elementwise = !strcmp(alg, "adamw") || !strcmp(alg, "adagrad") ||
                    !strcmp(alg, "adagrad_norm");
  CHECK(elementwise ? owner == -1 : owner >= 0 && owner < size, "owner %d", owner);
  optim_mpi_destroy(ctx);
  model_free(&d);
  model_free(&s);
}

/* A setting missing on one rank only: every rank returns the same status
 * and no parameter changes anywhere. */
static void one_rank_fails(void)
{
  model d;
  optim_mpi *ctx = NULL;
  model_init(&d, "sgd", rank == size - 1 ? "momentum=0.9" : "lr=0.1,momentum=0.9");
  CHECK(optim_mpi_create(d.opt, MPI_COMM_WORLD, &ctx) == OPTIM_OK, "create");
  if (!ctx) return;
  for (int j = 0; j < NP; j++) rank_grad(&d, j, 1, rank, d.g[j], 0);
  uint64_t h = hash_state(d.opt);
  for (int j = 0; j < NP; j++) h = hash_bytes(h, d.p[j], sizeof(float) * d.n[j]);
  int st = optim_mpi_step(ctx);
  CHECK(st == OPTIM_ECONFIG, "one rank without lr: status %d (%s)", st, optim_mpi_errmsg(ctx));
  CHECK(strstr(optim_mpi_errmsg(ctx), "lr") != NULL, "message: %s", optim_mpi_errmsg(ctx));
  uint64_t h2 = hash_state(d.opt);
  for (int j = 0; j < NP; j++) h2 = hash_bytes(h2, d.p[j], sizeof(float) * d.n[j]);
  CHECK(h == h2, "parameters or state changed");
  /* a NaN in one rank's gradient reaches every rank through the average */
  optim_set_double(d.opt, 0, "lr", 0.1);
  for (int j = 0; j < NP; j++) rank_grad(&d, j, 1, rank, d.g[j], 0);
  if (rank == 0) d.g[1][7] = NAN;
  st = optim_mpi_step(ctx);
  CHECK(st == OPTIM_ENONFINITE, "NaN on rank 0: status %d", st);
  optim_mpi_destroy(ctx);
  model_free(&d);

  /* SOAP: the eigendecomposition of an owned matrix fails on its owner (its
   * factor overflows): every rank returns OPTIM_ENUMERIC and nothing changed
   * anywhere, also the tensors other ranks own */
  model_init(&d, "soap", "weight_decay=0");
  CHECK(optim_mpi_create(d.opt, MPI_COMM_WORLD, &ctx) == OPTIM_OK, "create");
  for (int j = 0; j < NP; j++) rank_grad(&d, j, 1, rank, d.g[j], 1);
  for (size_t i = 0; i < d.n[0]; i++) d.g[0][i] = 3e37f / (float)size; /* finite sum */
  h = hash_state(d.opt);
  for (int j = 0; j < NP; j++) h = hash_bytes(h, d.p[j], sizeof(float) * d.n[j]);
  st = optim_mpi_step(ctx);
  CHECK(st == OPTIM_ENUMERIC, "failed decomposition: status %d (%s)", st, optim_mpi_errmsg(ctx));
  h2 = hash_state(d.opt);
  for (int j = 0; j < NP; j++) h2 = hash_bytes(h2, d.p[j], sizeof(float) * d.n[j]);
  CHECK(h == h2, "parameters or state changed after a failed decomposition");
  optim_mpi_destroy(ctx);
  model_free(&d);
}

static void bad_attach(void)
{
  model d;
  optim_mpi *ctx = NULL;
  model_init(&d, "adamw", "lr=0.01");
  CHECK(optim_mpi_create(d.opt, MPI_COMM_NULL, &ctx) == OPTIM_EINVAL, "MPI_COMM_NULL");
  CHECK(optim_mpi_create(NULL, MPI_COMM_WORLD, &ctx) == OPTIM_EINVAL, "NULL optimizer");
  if (size > 1) {
    /* rank 0 registers one more parameter than the others */
    float x[3], gx[3];
    int64_t s3[1] = {3};
    if (rank == 0) optim_add_param(d.opt, 0, "extra", OPTIM_FLOAT32, 1, s3, x, gx, NULL);
    CHECK(optim_mpi_create(d.opt, MPI_COMM_WORLD, &ctx) == OPTIM_EINVAL, "mismatched params");
  }
  optim_mpi_destroy(NULL);
  model_free(&d);
}

/* Blockwise Muon: each rank orthogonalizes its block of rows of every
 * matrix, as a matrix of its own; equal, bit for bit, to a serial Muon
 * whose matrices are registered as those row blocks. */
static void blockwise(const char *bucket)
{
  model d, r;
  optim_mpi *ctx = NULL;
  const char *opts = "nonmatrix=adamw,weight_decay=0.01";
  model_init(&d, "muon", opts);
  CHECK(optim_mpi_create(d.opt, MPI_COMM_WORLD, &ctx) == OPTIM_OK, "create");
  if (bucket) optim_mpi_set_option(ctx, "bucket_bytes", bucket);
  CHECK(optim_mpi_set_option(ctx, "blockwise", "true") == OPTIM_OK, "blockwise: %s",
        optim_mpi_errmsg(ctx));
  CHECK(optim_mpi_set_option(ctx, "blockwise", "true") == OPTIM_ECONFIG, "blockwise twice");
  /* reference: the same buffers layout, matrices registered by row block */
  memset(&r, 0, sizeof r);
  int grp;
  optim_create(&r.opt);
  optim_add_group(r.opt, "muon", &grp);
  optim_configure(r.opt, grp, opts);
  for (int j = 0; j < NP; j++) {
    r.n[j] = (size_t)(shapes[j][0] * shapes[j][1]);
    r.p[j] = malloc(sizeof(float) * r.n[j]);
    r.g[j] = malloc(sizeof(float) * r.n[j]);
    memcpy(r.p[j], d.p[j], sizeof(float) * r.n[j]);
    char name[16];
    if (shapes[j][1] == 1) {
      snprintf(name, sizeof name, "p%d", j);
      optim_add_param(r.opt, grp, name, OPTIM_FLOAT32, 1, shapes[j], r.p[j], r.g[j], NULL);
      continue;
    }
    int64_t rows = shapes[j][0], cols = shapes[j][1];
    for (int q = 0; q < size; q++) {
      int64_t lo = rows * q / size, hi = rows * (q + 1) / size;
      if (hi == lo) continue;
      int64_t sh[2] = {hi - lo, cols};
      snprintf(name, sizeof name, "p%db%d", j, q);
      CHECK(optim_add_param(r.opt, grp, name, OPTIM_FLOAT32, 2, sh, r.p[j] + lo * cols,
                            r.g[j] + lo * cols, NULL) == OPTIM_OK,
            "%s", optim_errmsg(r.opt));
    }
  }
  for (int k = 1; k <= 8; k++) {
    for (int j = 0; j < NP; j++) {
      rank_grad(&d, j, k, rank, d.g[j], 1);
      serial_grad(&r, j, k, 1);
    }
    CHECK(optim_mpi_step(ctx) == OPTIM_OK, "blockwise step: %s", optim_mpi_errmsg(ctx));
    CHECK(optim_step(r.opt) == OPTIM_OK, "reference step");
  }
  for (int j = 0; j < NP; j++)
    CHECK(memcmp(d.p[j], r.p[j], sizeof(float) * d.n[j]) == 0,
          "blockwise p=%d: parameter %d differs from the row-block reference", size, j);
  optim_mpi_destroy(ctx);
  model_free(&d);
  optim_destroy(r.opt);
  for (int j = 0; j < NP; j++) {
    free(r.p[j]);
    free(r.g[j]);
  }
}

/* Save at P ranks, load at P, P-1 and 1 ranks (sub-communicators), and
 * continue: bit-identical to an uninterrupted serial run (gradients are
 * the same exact dyadic values on every rank, so every average is exact).
 * save_shard / load_shard: shard_state when saving / loading, so state
 * saved in 1/P pieces is re-sharded into 1/Q pieces (or whole), and whole
 * state is cut into pieces. */
static void shard_on(optim_mpi *c, int on)
{
  if (on)
    CHECK(optim_mpi_set_option(c, "shard_state", "true") == OPTIM_OK, "shard_state: %s",
          optim_mpi_errmsg(c));
}

static void dist_checkpoint(const char *dir, const char *alg, const char *opts, int save_shard,
                            int load_shard)
{
  model ref, d;
  optim_mpi *ctx = NULL;
  char prefix[512];
  snprintf(prefix, sizeof prefix, "%s/dist.ckpt", dir);
  model_init(&ref, alg, opts);
  for (int k = 1; k <= 12; k++) {
    for (int j = 0; j < NP; j++) rank_grad(&ref, j, k, 0, ref.g[j], 1);
    optim_step(ref.opt);
  }
  model_init(&d, alg, opts);
  CHECK(optim_mpi_create(d.opt, MPI_COMM_WORLD, &ctx) == OPTIM_OK, "create");
  shard_on(ctx, save_shard);
  for (int k = 1; k <= 6; k++) {
    for (int j = 0; j < NP; j++) rank_grad(&d, j, k, 0, d.g[j], 1);
    CHECK(optim_mpi_step(ctx) == OPTIM_OK, "step: %s", optim_mpi_errmsg(ctx));
  }
  CHECK(optim_mpi_save(ctx, prefix) == OPTIM_OK, "save: %s", optim_mpi_errmsg(ctx));
  int qs[3] = {size, size - 1, 1};
  for (int t = 0; t < 3; t++) {
    int q = qs[t];
    if (q < 1 || (t > 0 && q == qs[t - 1])) continue;
    MPI_Comm sub;
    MPI_Comm_split(MPI_COMM_WORLD, rank < q ? 0 : MPI_UNDEFINED, rank, &sub);
    if (sub != MPI_COMM_NULL) {
      model e;
      optim_mpi *c2 = NULL;
      model_init(&e, alg, opts);
      /* the parameters themselves are the caller's: restore them too */
      for (int j = 0; j < NP; j++) memcpy(e.p[j], d.p[j], sizeof(float) * d.n[j]);
      CHECK(optim_mpi_create(e.opt, sub, &c2) == OPTIM_OK, "create on %d ranks", q);
      shard_on(c2, load_shard);
      CHECK(optim_mpi_load(c2, prefix) == OPTIM_OK, "load on %d ranks: %s", q,
            optim_mpi_errmsg(c2));
      for (int k = 7; k <= 12; k++) {
        for (int j = 0; j < NP; j++) rank_grad(&e, j, k, 0, e.g[j], 1);
        CHECK(optim_mpi_step(c2) == OPTIM_OK, "step after load: %s", optim_mpi_errmsg(c2));
      }
      for (int j = 0; j < NP; j++)
        CHECK(memcmp(e.p[j], ref.p[j], sizeof(float) * e.n[j]) == 0,
              "%s%s saved at %d, resumed at %d ranks%s: parameter %d differs", alg,
              save_shard ? " sharded" : "", size, q, load_shard ? " sharded" : "", j);
      optim_mpi_destroy(c2);
      model_free(&e);
      MPI_Comm_free(&sub);
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }
  /* a missing shard is found by every rank before anything changes */
  if (rank == 0) {
    char shard[600];
    snprintf(shard, sizeof shard, "%s.shard%d", prefix, size - 1);
    remove(shard);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (size > 1) {
    uint64_t h = hash_state(d.opt);
    int st = optim_mpi_load(ctx, prefix);
    CHECK(st == OPTIM_EIO, "load with a shard missing: %d (%s)", st, optim_mpi_errmsg(ctx));
    CHECK(hash_state(d.opt) == h, "state changed by a failed load");
  }
  optim_mpi_destroy(ctx);
  model_free(&d);
  model_free(&ref);
}

/* Blockwise with block_period P (MuonBP): every P-th step orthogonalizes
 * each whole matrix, distributed by rows (one Gram allreduce per
 * iteration).  P = 1: every step is a whole-matrix Muon step, which equals
 * the serial Muon up to the rounding of a different (but equivalent) NS
 * form; P = 3: steps 1 and 2 are the blockwise steps bit for bit, step 3
 * is not. */
static void block_period(void)
{
  /* NS in float64 for the comparison with the serial Muon: the two forms
   * then agree to far below float32 rounding */
  const char *opts = "nonmatrix=adamw,weight_decay=0.01,ns_precision=float64";
  model d, s, b;
  optim_mpi *ctx = NULL, *cb = NULL;
  model_init(&d, "muon", opts);
  model_init(&s, "muon", opts);
  CHECK(optim_mpi_create(d.opt, MPI_COMM_WORLD, &ctx) == OPTIM_OK, "create");
  CHECK(optim_mpi_set_option(ctx, "block_period", "1") == OPTIM_ECONFIG,
        "block_period before blockwise");
  CHECK(optim_mpi_set_option(ctx, "blockwise", "true") == OPTIM_OK, "blockwise");
  CHECK(optim_mpi_set_option(ctx, "block_period", "-1") == OPTIM_ERANGE, "negative period");
  CHECK(optim_mpi_set_option(ctx, "block_period", "x") == OPTIM_EINVAL, "bad period");
  CHECK(optim_mpi_set_option(ctx, "block_period", "1") == OPTIM_OK, "block_period: %s",
        optim_mpi_errmsg(ctx));
  double worst = 0;
  for (int k = 1; k <= 6; k++) {
    for (int j = 0; j < NP; j++) {
      rank_grad(&d, j, k, rank, d.g[j], 1);
      serial_grad(&s, j, k, 1);
    }
    CHECK(optim_mpi_step(ctx) == OPTIM_OK, "period-1 step: %s", optim_mpi_errmsg(ctx));
    CHECK(optim_step(s.opt) == OPTIM_OK, "serial step");
    for (int j = 0; j < NP; j++)
      for (size_t i = 0; i < d.n[j]; i++) {
        double e = fabs((double)d.p[j][i] - (double)s.p[j][i]) / (fabs((double)s.p[j][i]) + 1e-3);
        if (e > worst) worst = e;
      }
  }
  CHECK(worst < 1e-6, "block_period=1 differs from whole-matrix Muon by %g (relative)", worst);
  optim_mpi_destroy(ctx);
  model_free(&d);
  model_free(&s);

  model_init(&d, "muon", opts);
  model_init(&b, "muon", opts);
  CHECK(optim_mpi_create(d.opt, MPI_COMM_WORLD, &ctx) == OPTIM_OK, "create");
  CHECK(optim_mpi_create(b.opt, MPI_COMM_WORLD, &cb) == OPTIM_OK, "create");
  optim_mpi_set_option(ctx, "blockwise", "true");
  optim_mpi_set_option(ctx, "reduce", "ordered");
  CHECK(optim_mpi_set_option(ctx, "block_period", "3") == OPTIM_OK, "block_period 3");
  optim_mpi_set_option(cb, "blockwise", "true");
  for (int k = 1; k <= 3; k++) {
    for (int j = 0; j < NP; j++) {
      rank_grad(&d, j, k, rank, d.g[j], 1);
      rank_grad(&b, j, k, rank, b.g[j], 1);
    }
    CHECK(optim_mpi_step(ctx) == OPTIM_OK, "period-3 step: %s", optim_mpi_errmsg(ctx));
    CHECK(optim_mpi_step(cb) == OPTIM_OK, "blockwise step: %s", optim_mpi_errmsg(cb));
    for (int j = 0; j < 3; j++) { /* the matrices */
      int same = memcmp(d.p[j], b.p[j], sizeof(float) * d.n[j]) == 0;
      if (k < 3) CHECK(same, "block_period=3: step %d of matrix %d is not the blockwise step", k, j);
      else if (size > 1 && shapes[j][0] >= size)
        CHECK(!same, "block_period=3: step 3 of matrix %d was not a full step", j);
    }
  }
  double v;
  CHECK(optim_mpi_counter(ctx, "bytes", &v) == OPTIM_OK && (size == 1 || v > 0), "bytes counted");
  optim_mpi_destroy(ctx);
  optim_mpi_destroy(cb);
  model_free(&d);
  model_free(&b);
}

int main(int argc, char **argv)
{
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  /* data parallel AdamW, buckets of 1 KiB: tensors span buckets */
  run("adamw", "lr=0.01,weight_decay=0.01", 0, "1024");
  /* the rank-ordered reduction: bit-identical to the serial sum */
  run_mode("adamw", "lr=0.01,weight_decay=0.01", "ordered", "1024");
  run_mode("adagrad", "lr=0.1", "ordered", NULL);
  /* ZeRO-1: element-wise state sharded across ranks, parameters gathered */
  run_mode("adamw", "lr=0.01,weight_decay=0.01", "ordered-shard", "1024");
  run_mode("muon", "nonmatrix=adamw,weight_decay=0.01", "ordered-shard", NULL);
  /* MPI's reduction with sharding: reduce-scatter to the ranges (tolerance),
   * and sums to the owners with exact gradients (bitwise) */
  run_mode("adamw", "lr=0.01", "mpi-shard", "1024");
  run_mode("muon", "nonmatrix=adamw", "exact-shard", "1024");
  /* grad_ready: reductions started during the "backward pass" give the
   * same results (packed buckets, sums to owners, reduce-scatters) */
  run_mode("adamw", "lr=0.01", "mpi-hook", "1024");
  run_mode("adamw", "lr=0.01", "mpi-hook-shard", "2048");
  run_mode("muon", "nonmatrix=adamw,weight_decay=0.01", "exact-hook", "1024");
  run_mode("muon", "nonmatrix=adamw", "exact-hook", NULL);
  /* 10000-byte buckets: every gradient is packed and the third one spans
   * two buckets, which start only when both its parts are ready */
  run_mode("adamw", "lr=0.01", "mpi-hook", "10000");
  run_mode("muon", "nonmatrix=adamw", "exact-hook", "10000");
  /* the same with the gradients in one flat arena: buckets reduced in
   * place (and one bucket boundary inside a tensor) */
  flat_grads = 1;
  run_mode("adamw", "lr=0.01", "mpi", "10000");
  run_mode("adamw", "lr=0.01", "exact", "10000");
  run_mode("adamw", "lr=0.01", "ordered", "10000");
  run_mode("adamw", "lr=0.01", "mpi-hook", "10000");
  run_mode("muon", "nonmatrix=adamw", "exact-hook", "10000");
  flat_grads = 0;
  /* owner-computes Muon (3 matrices + a vector for the auxiliary AdamW):
   * fewer matrices than ranks at p=4, not divisible at p=2, empty ranks */
  run("muon", "nonmatrix=adamw,weight_decay=0.01", 1, NULL);
  run("normuon", "nonmatrix=adamw", 1, "4096");
  /* gradient norms (clipping, adagrad_norm) over every rank's parameters:
   * owners see the gradients of the matrices they do not step */
  run("muon", "nonmatrix=adamw,clip_norm=0.5", 0, NULL); /* (1/p and the clip factor
                                                          * round once, not twice) */
  run("adamw", "lr=0.01,clip_norm=0.5", 0, NULL);
  run("adagrad_norm", "lr=0.5", 0, NULL);
  /* SOAP: every tensor (matrices and the 25x1 one) by its owner, with
   * refreshes (f = 3) and the first call that only builds the factors */
  run("soap", "precondition_frequency=3,weight_decay=0.05", 1, NULL);
  /* Shampoo: blocks of each tensor computed by its owner */
  run("shampoo", "update_freq=2,block_size=16,eps=1e-6", 1, NULL);
  blockwise(NULL);   /* small gradients: allreduced */
  blockwise("1024"); /* large ones: reduce-scattered to the row blocks */
  block_period();
  one_rank_fails();
  bad_attach();
  {
    char dir[64] = "/tmp/optim-mpi-XXXXXX";
    if (rank == 0 && !mkdtemp(dir)) failures++;
    MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    dist_checkpoint(dir, "muon", "nonmatrix=adamw,weight_decay=0.01", 0, 0);
    dist_checkpoint(dir, "muon", "nonmatrix=adamw,weight_decay=0.01", 1, 1);
    dist_checkpoint(dir, "adamw", "weight_decay=0.01", 1, 1);
    dist_checkpoint(dir, "adamw", "weight_decay=0.01", 1, 0);
    dist_checkpoint(dir, "adamw", "weight_decay=0.01", 0, 1);
    dist_checkpoint(dir, "soap", "precondition_frequency=3", 0, 0);
    dist_checkpoint(dir, "shampoo", "update_freq=3,eps=1e-6", 0, 0);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
      char cmd[128];
      snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
      if (system(cmd) != 0) failures++;
    }
  }
  int total = 0;
  MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) printf("mpi_test p=%d: %d checks on rank 0, %d failures on all ranks\n", size, checks, total);
  MPI_Finalize();
  return total ? 1 : 0;
}
