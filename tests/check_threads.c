/* check_threads.c - concurrency: worker threads each create, step (with
 * OpenMP teams and BLAS), save, load and destroy their own handles while
 * other threads call the handle-free functions (registry, introspection,
 * strerror, version, schedules).  Every result must be bit-identical to
 * the same work done serially.  Built also under ThreadSanitizer
 * (configure --enable-tsan; make check-tsan), where any data race fails. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

static char dir[256];

/* Each job: group 0 runs the algorithm over a 24 x 16 matrix and a bias
 * vector; group 1 runs AdamW over a vector large enough (> 32768
 * elements) that every step's element-wise pass runs an OpenMP team of two
 * threads.  K steps, save, load into a fresh handle, K2 more steps. */
#define VN 40000
#define K 8
#define K2 4

static const struct {
  const char *alg, *opts;
} configs[] = {
  {"adamw", "lr=0.01,weight_decay=0.1"},
  {"sgd", "lr=0.05,momentum=0.9,nesterov=true"},
  {"adagrad", "lr=0.1"},
  {"muon", "nonmatrix=adamw,weight_decay=0.01"},
  {"normuon", "nonmatrix=adamw"},
  {"soap", "precondition_frequency=2"},
  {"shampoo", "update_freq=2,block_size=8,eps=1e-6"},
  {"fismo", "nonmatrix=adamw"},
};
#define NCONFIGS ((int)(sizeof configs / sizeof configs[0]))
/* jobs: every configuration in both dtypes */
#define NJOBS (2 * NCONFIGS)

typedef struct job {
  int id;
  int rc;           /* first failing status, 0 when all went well */
  char msg[256];    /* and the handle's message */
  uint64_t hash;    /* parameters and state at the end */
} job;

static const int64_t shp_w[2] = {24, 16}, shp_b[1] = {16}, shp_v[1] = {VN};

typedef struct bufs {
  void *p[3], *g[3];
  size_t n[3];
} bufs;

#define TRY(call)                                                                      \
  do {                                                                                 \
    int st_ = (call);                                                                  \
    if (st_ != OPTIM_OK) {                                                             \
      j->rc = st_;                                                                     \
      snprintf(j->msg, sizeof j->msg, "%s: %s", #call, o ? optim_errmsg(o) : "");      \
      goto fail;                                                                       \
    }                                                                                  \
  } while (0)

static optim_optimizer *build(job *j, int c, int dtype, bufs *b)
{
  optim_optimizer *o = NULL;
  TRY(optim_create(&o));
  TRY(optim_set_threads(o, 2));
  TRY(optim_add_group(o, configs[c].alg, NULL));
  TRY(optim_configure(o, 0, configs[c].opts));
  TRY(optim_add_group(o, "adamw", NULL));
  TRY(optim_add_param(o, 0, "w", dtype, 2, shp_w, b->p[0], b->g[0], NULL));
  TRY(optim_add_param(o, 0, "b", dtype, 1, shp_b, b->p[1], b->g[1], NULL));
  TRY(optim_add_param(o, 1, "v", dtype, 1, shp_v, b->p[2], b->g[2], NULL));
  return o;
fail:
  optim_destroy(o);
  return NULL;
}

static int steps(job *j, optim_optimizer *o, int dtype, bufs *b, int from, int to)
{
  for (int k = from; k < to; k++) {
    for (int t = 0; t < 3; t++)
      golden_grad(dtype, b->p[t], b->g[t], b->n[t], (uint64_t)k + 1, (uint64_t)t, 21);
    TRY(optim_step(o));
  }
  return 0;
fail:
  return -1;
}

static void run_job(job *j)
{
  int c = j->id % NCONFIGS, dtype = j->id < NCONFIGS ? OPTIM_FLOAT32 : OPTIM_FLOAT64;
  size_t es = dtype == OPTIM_FLOAT32 ? 4 : 8;
  bufs b;
  b.n[0] = 24 * 16;
  b.n[1] = 16;
  b.n[2] = VN;
  for (int t = 0; t < 3; t++) {
    b.p[t] = malloc(b.n[t] * es);
    b.g[t] = malloc(b.n[t] * es);
    for (size_t i = 0; i < b.n[t]; i++) {
      double v = golden_noise(i, 0, (uint64_t)t, 21);
      if (dtype == OPTIM_FLOAT32) ((float *)b.p[t])[i] = (float)v;
      else ((double *)b.p[t])[i] = v;
    }
  }
  char path[512];
  snprintf(path, sizeof path, "%s/job-%d-%lx.ckpt", dir, j->id, (unsigned long)pthread_self());
  j->rc = 0;
  optim_optimizer *o = build(j, c, dtype, &b), *o2 = NULL;
  if (!o || steps(j, o, dtype, &b, 0, K)) goto fail;
  TRY(optim_save(o, path));
  optim_destroy(o);
  o = NULL;
  o2 = build(j, c, dtype, &b);
  if (!o2) goto fail;
  o = o2;
  TRY(optim_load(o, path));
  if (steps(j, o, dtype, &b, K, K + K2)) goto fail;
  uint64_t h = hash_state(o);
  for (int t = 0; t < 3; t++) h = hash_bytes(h, b.p[t], b.n[t] * es);
  j->hash = h;
fail:
  optim_destroy(o);
  unlink(path);
  for (int t = 0; t < 3; t++) {
    free(b.p[t]);
    free(b.g[t]);
  }
}

/* ---- handle-free functions: expected answers, computed serially first ---------------- */

static const char *sched_specs[] = {
  "constant", "cosine:total=100", "warmup_cosine:warmup=10,total=100",
  "step:size=7,gamma=0.5", "wsd:warmup=5,total=100,decay=20", "linear:total=50",
  "exponential:gamma=0.97",
};
#define NSPECS ((int)(sizeof sched_specs / sizeof sched_specs[0]))
#define NSTEPS 16

typedef struct facts {
  int nalg;
  const char *names[64];
  const char *docs[64];
  uint64_t hp_hash[64]; /* hash of every optim_hparam_info of the algorithm */
  const char *err[40];  /* optim_strerror(-i) */
  const char *version;
  double sched[NSPECS][NSTEPS];
  int sched_st[NSPECS][NSTEPS];
  double law_lr;
} facts;

static uint64_t hparam_hash(const char *alg)
{
  uint64_t h = 1469598103934665603ull;
  int n = optim_hparam_count(alg);
  h = hash_bytes(h, &n, sizeof n);
  for (int k = 0; k < n; k++) {
    const char *name, *def, *doc;
    int type;
    int st = optim_hparam_info(alg, k, &name, &type, &def, &doc);
    h = hash_bytes(h, &st, sizeof st);
    h = hash_bytes(h, name, strlen(name));
    h = hash_bytes(h, &type, sizeof type);
    h = hash_bytes(h, def, strlen(def));
    h = hash_bytes(h, doc, strlen(doc));
  }
  return h;
}

static void collect(facts *f)
{
  memset(f, 0, sizeof *f);
  f->nalg = optim_algorithm_count();
  for (int i = 0; i < f->nalg && i < 64; i++) {
    f->names[i] = optim_algorithm_name(i);
    f->docs[i] = optim_algorithm_doc(f->names[i]);
    f->hp_hash[i] = hparam_hash(f->names[i]);
  }
  for (int i = 0; i < 40; i++) f->err[i] = optim_strerror(-i);
  f->version = optim_version();
  for (int s = 0; s < NSPECS; s++)
    for (int t = 0; t < NSTEPS; t++)
      f->sched_st[s][t] = optim_schedule_eval(sched_specs[s], 7 * t, &f->sched[s][t]);
  optim_step_law(1e8, 1e10, &f->law_lr, NULL);
}

static facts expected;
static atomic_int workers_left;

typedef struct prober {
  long rounds;
  long mismatches;
  char first[200];
} prober;

static void mismatch(prober *p, const char *what)
{
  if (p->mismatches++ == 0) snprintf(p->first, sizeof p->first, "%s", what);
}

/* Call every handle-free function and compare with the serial answers,
 * until the workers are done (and at least a few rounds). */
static void *probe(void *arg)
{
  prober *p = arg;
  while (atomic_load(&workers_left) > 0 || p->rounds < 20) {
    facts f;
    collect(&f);
    if (f.nalg != expected.nalg) mismatch(p, "algorithm count");
    for (int i = 0; i < f.nalg && i < 64; i++) {
      if (!f.names[i] || strcmp(f.names[i], expected.names[i])) mismatch(p, "algorithm name");
      if (!f.docs[i] || strcmp(f.docs[i], expected.docs[i])) mismatch(p, "algorithm doc");
      if (f.hp_hash[i] != expected.hp_hash[i]) mismatch(p, "hparam info");
    }
    for (int i = 0; i < 40; i++)
      if (strcmp(f.err[i], expected.err[i])) mismatch(p, "strerror");
    if (strcmp(f.version, expected.version)) mismatch(p, "version");
    if (memcmp(f.sched, expected.sched, sizeof f.sched) ||
        memcmp(f.sched_st, expected.sched_st, sizeof f.sched_st))
      mismatch(p, "schedule_eval");
    if (f.law_lr != expected.law_lr) mismatch(p, "step_law");
    /* unknown names and bad specs: the same failures from every thread */
    double x;
    if (optim_hparam_count("no-such-algorithm") != OPTIM_EUNKNOWN ||
        optim_algorithm_doc("no-such-algorithm") != NULL ||
        optim_schedule_eval("cosine:total=", 3, &x) == OPTIM_OK)
      mismatch(p, "errors");
    p->rounds++;
  }
  return NULL;
}

typedef struct worker {
  job *jobs;
  int first, count;
} worker;

static void *work(void *arg)
{
  worker *w = arg;
  for (int i = 0; i < w->count; i++) run_job(&w->jobs[w->first + i]);
  atomic_fetch_sub(&workers_left, 1);
  return NULL;
}

#define NWORKERS 4
#define NPROBERS 2

START_TEST(test_concurrent_equals_serial)
{
  static job serial[NJOBS], conc[2][NJOBS];
  collect(&expected);
  for (int s = 0; s < NSPECS; s++) ck_assert_int_eq(expected.sched_st[s][3], OPTIM_OK);
  ck_assert_int_gt(expected.nalg, 10);
  ck_assert_int_le(expected.nalg, 64);
  for (int i = 0; i < NJOBS; i++) {
    serial[i].id = i;
    run_job(&serial[i]);
    ck_assert_msg(serial[i].rc == 0, "serial job %d (%s): %s", i, configs[i % NCONFIGS].alg,
                  serial[i].msg);
  }
  /* Every job twice at once (each pair on distinct handles and files),
   * spread over the workers, while the probers run. */
  for (int r = 0; r < 2; r++)
    for (int i = 0; i < NJOBS; i++) conc[r][i].id = i;
  pthread_t wt[2][NWORKERS], pt[NPROBERS];
  worker w[2][NWORKERS];
  prober pr[NPROBERS];
  memset(pr, 0, sizeof pr);
  atomic_store(&workers_left, 2 * NWORKERS);
  for (int k = 0; k < NPROBERS; k++) ck_assert_int_eq(pthread_create(&pt[k], NULL, probe, &pr[k]), 0);
  for (int r = 0; r < 2; r++)
    for (int k = 0; k < NWORKERS; k++) {
      /* round r = 1 walks the jobs in another order */
      int per = NJOBS / NWORKERS;
      w[r][k] = (worker){conc[r], (r ? NWORKERS - 1 - k : k) * per, per};
      ck_assert_int_eq(pthread_create(&wt[r][k], NULL, work, &w[r][k]), 0);
    }
  for (int r = 0; r < 2; r++)
    for (int k = 0; k < NWORKERS; k++) pthread_join(wt[r][k], NULL);
  for (int k = 0; k < NPROBERS; k++) pthread_join(pt[k], NULL);
  for (int r = 0; r < 2; r++)
    for (int i = 0; i < NJOBS; i++) {
      ck_assert_msg(conc[r][i].rc == 0, "concurrent job %d (%s): %s", i,
                    configs[i % NCONFIGS].alg, conc[r][i].msg);
      ck_assert_msg(conc[r][i].hash == serial[i].hash,
                    "job %d (%s, %s): concurrent result differs from the serial one", i,
                    configs[i % NCONFIGS].alg, i < NCONFIGS ? "float32" : "float64");
    }
  for (int k = 0; k < NPROBERS; k++)
    ck_assert_msg(pr[k].mismatches == 0, "prober %d: %ld mismatches, first: %s", k,
                  pr[k].mismatches, pr[k].first);
  fprintf(stderr, "threads: %d jobs x 2 on %d threads equal serial; probers %ld + %ld rounds\n",
          NJOBS, 2 * NWORKERS, pr[0].rounds, pr[1].rounds);
}
END_TEST

int main(void)
{
  _Static_assert(NJOBS % NWORKERS == 0, "jobs split evenly over the workers");
  snprintf(dir, sizeof dir, "/tmp/optim-threads-XXXXXX");
  if (!mkdtemp(dir)) return 99;
  Suite *s = suite_create("threads");
  TCase *tc = tcase_create("threads");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, test_concurrent_equals_serial);
  suite_add_tcase(s, tc);
  int failed = run_suite(s);
  if (rmdir(dir) != 0) return 99;
  return failed ? 1 : 0;
}
