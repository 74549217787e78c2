/* check_checkpoint.c - save/load: bit-identical resume for every algorithm
 * and dtype, and every kind of bad file rejected with its own status while
 * the optimizer stays untouched. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <dirent.h>
#include <signal.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "testutil.h"

#define CKP_FUTURE_VERSION 3 /* one past the version lib/checkpoint.c writes */

static char dir[256];

static const char *path_in_dir(const char *name)
{
  static char buf[512];
  snprintf(buf, sizeof buf, "%s/%s", dir, name);
  return buf;
}

/* Three parameters over two groups; order can be reversed to show that
 * names, not positions, key the checkpoint. */
typedef struct model {
  optim_optimizer *opt;
  int dtype;
  size_t es;
  void *p[3], *g[3];
} model;

static const size_t sizes[3] = {6 * 5, 40000, 3 * 2 * 2 * 2};
static const int ndims[3] = {2, 1, 4};
static const int64_t shapes[3][4] = {{6, 5}, {40000}, {3, 2, 2, 2}};
static const char *names[3] = {"layer.weight", "layer.big", "conv.weight"};

static void model_init(model *m, const char *alg, const char *opts, int dtype, int reversed)
{
  memset(m, 0, sizeof *m);
  m->dtype = dtype;
  m->es = dtype == OPTIM_FLOAT32 ? 4 : 8;
  int g0, g1;
  ck_assert_int_eq(optim_create(&m->opt), OPTIM_OK);
  ck_assert_int_eq(optim_add_group(m->opt, alg, &g0), OPTIM_OK);
  ck_assert_int_eq(optim_add_group(m->opt, "adamw", &g1), OPTIM_OK);
  ck_assert_msg(optim_configure(m->opt, g0, opts) == OPTIM_OK, "%s", optim_errmsg(m->opt));
  ck_assert_int_eq(optim_set_threads(m->opt, 2), OPTIM_OK);
  for (int k = 0; k < 3; k++) {
    int j = reversed ? 2 - k : k;
    m->p[j] = malloc(sizes[j] * m->es);
    m->g[j] = malloc(sizes[j] * m->es);
    for (size_t i = 0; i < sizes[j]; i++) {
      double v = golden_noise(i, 0, (uint64_t)j, 5);
      if (dtype == OPTIM_FLOAT32) ((float *)m->p[j])[i] = (float)v;
      else ((double *)m->p[j])[i] = v;
    }
    ck_assert_int_eq(optim_add_param(m->opt, j == 2 ? g1 : g0, names[j], dtype, ndims[j],
                                     shapes[j], m->p[j], m->g[j], NULL),
                     OPTIM_OK);
  }
}

static void model_steps(model *m, int from, int to)
{
  for (int k = from; k < to; k++) {
    for (int j = 0; j < 3; j++) {
      int idx;
      optim_param_find(m->opt, names[j], &idx);
      /* Parameter 0 misses its gradient every fourth step. */
      if (j == 0 && k % 4 == 3) {
        optim_param_bind(m->opt, idx, m->p[j], NULL);
        continue;
      }
      golden_grad(m->dtype, m->p[j], m->g[j], sizes[j], (uint64_t)k + 1, (uint64_t)j, 5);
      optim_param_bind(m->opt, idx, m->p[j], m->g[j]);
    }
    ck_assert_msg(optim_step(m->opt) == OPTIM_OK, "%s", optim_errmsg(m->opt));
  }
}

/* Hash of parameters by name, state in name order. */
static uint64_t model_hash(model *m)
{
  uint64_t h = 1469598103934665603ull;
  for (int j = 0; j < 3; j++) {
    int idx;
    optim_param_find(m->opt, names[j], &idx);
    h = hash_bytes(h, m->p[j], sizes[j] * m->es);
    int ns = optim_state_count(m->opt, idx);
    for (int k = 0; k < ns; k++) {
      const char *nm;
      int kind;
      optim_state_info(m->opt, idx, k, &nm, &kind, NULL);
      if (kind == OPTIM_STATE_SCALAR) {
        int64_t v;
        optim_state_scalar(m->opt, idx, nm, &v);
        h = hash_bytes(h, &v, sizeof v);
      } else {
        const void *d;
        int64_t n;
        optim_state_buffer(m->opt, idx, nm, &d, &n);
        h = hash_bytes(h, d, (size_t)n * m->es);
      }
    }
  }
  for (int g = 0; g < 2; g++) {
    int64_t s;
    optim_get_counter(m->opt, g, "steps", &s);
    h = hash_bytes(h, &s, sizeof s);
  }
  return h;
}

static void model_free(model *m)
{
  optim_destroy(m->opt);
  for (int j = 0; j < 3; j++) {
    free(m->p[j]);
    free(m->g[j]);
  }
}

static const struct {
  const char *alg, *opts;
} configs[] = {
  {"sgd", "lr=0.05"},
  {"sgd", "lr=0.05,momentum=0.9,nesterov=true,weight_decay=0.01"},
  {"sgd", "lr=0.05,momentum=0.8,dampening=0.3"},
  {"adam", "lr=0.01,amsgrad=true,weight_decay=0.01"},
  {"adam", "lr=0.01"},
  {"adamw", "lr=0.01,weight_decay=0.1"},
  {"adagrad", "lr=0.1,lr_decay=0.01,initial_accumulator_value=0.1"},
  {"muon", "nonmatrix=adamw,weight_decay=0.01,adamw_weight_decay=0.01"},
  {"muon", "nonmatrix=adamw,nesterov=false,ns_coefficients=polar_express,lr_adjust=match_adamw"},
  {"normuon", "nonmatrix=adamw,weight_decay=0.1"},
  {"root", "quantile=0.8"},
  {"fismo", "nonmatrix=adamw,weight_decay=0.01"},
  {"soap", "precondition_frequency=3,weight_decay=0.05"},
  {"soap", "precondition_frequency=2,merge_dims=true,max_precond_dim=20,normalize_grads=true"},
  {"shampoo", "update_freq=3,block_size=4,eps=1e-6,weight_decay=0.01"},
  {"shampoo", "grafting=sgd,beta2=0.9,nesterov=true,update_freq=2,eps=1e-6,block_size=16"},
};
#define NCONFIGS ((int)(sizeof configs / sizeof configs[0]))

/* N steps uninterrupted == k steps, save, load into a fresh optimizer
 * (parameters registered in another order), N - k steps. */
START_TEST(test_resume_bit_identical)
{
  int c = _i % NCONFIGS, dtype = _i < NCONFIGS ? OPTIM_FLOAT32 : OPTIM_FLOAT64;
  const int N = 17, K = 7;
  model ref, a, b;
  model_init(&ref, configs[c].alg, configs[c].opts, dtype, 0);
  model_steps(&ref, 0, N);

  model_init(&a, configs[c].alg, configs[c].opts, dtype, 0);
  model_steps(&a, 0, K);
  char path[512];
  snprintf(path, sizeof path, "%s", path_in_dir("resume.ckpt"));
  ck_assert_msg(optim_save(a.opt, path) == OPTIM_OK, "%s", optim_errmsg(a.opt));

  model_init(&b, configs[c].alg, configs[c].opts, dtype, 1);
  /* A different lr in the fresh optimizer: load restores the saved one. */
  ck_assert_int_eq(optim_set_double(b.opt, 0, "lr", 0.5), OPTIM_OK);
  for (int j = 0; j < 3; j++) memcpy(b.p[j], a.p[j], sizes[j] * a.es);
  ck_assert_msg(optim_load(b.opt, path) == OPTIM_OK, "%s", optim_errmsg(b.opt));
  ck_assert_uint_eq(model_hash(&b), model_hash(&a));
  model_steps(&b, K, N);
  ck_assert_uint_eq(model_hash(&b), model_hash(&ref));
  for (int j = 0; j < 3; j++) ck_assert_mem_eq(b.p[j], ref.p[j], sizes[j] * ref.es);
  model_free(&ref);
  model_free(&a);
  model_free(&b);
}
END_TEST

static unsigned char *read_file(const char *path, size_t *n)
{
  FILE *f = fopen(path, "rb");
  ck_assert_ptr_nonnull(f);
  fseek(f, 0, SEEK_END);
  *n = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *d = malloc(*n);
  ck_assert_uint_eq(fread(d, 1, *n, f), *n);
  fclose(f);
  return d;
}

static void write_file(const char *path, const void *d, size_t n)
{
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(d, 1, n, f), n);
  fclose(f);
}

static void fix_header_crc(unsigned char *d)
{
  uint32_t c = (uint32_t)crc32(0L, d, 36);
  memcpy(d + 36, &c, 4);
}

/* Load a variant of the good file; assert the status and that nothing in
 * the optimizer changed (state, counters, hyperparameters). */
static void expect_load(model *m, const unsigned char *d, size_t n, int status, const char *what)
{
  const char *p = path_in_dir("bad.ckpt");
  write_file(p, d, n);
  uint64_t h = model_hash(m);
  double lr;
  optim_get_double(m->opt, 0, "lr", &lr);
  int st = optim_load(m->opt, p);
  ck_assert_msg(st == status, "%s: got %d (%s: %s), want %d", what, st, optim_strerror(st),
                optim_errmsg(m->opt), status);
  ck_assert_msg(strlen(optim_errmsg(m->opt)) > 0, "%s: no message", what);
  ck_assert_uint_eq(model_hash(m), h);
  double lr2;
  optim_get_double(m->opt, 0, "lr", &lr2);
  ck_assert_double_eq(lr, lr2);
}

START_TEST(test_bad_files)
{
  model m, other;
  model_init(&m, "adam", "lr=0.01,amsgrad=true", OPTIM_FLOAT32, 0);
  model_steps(&m, 0, 3);
  char good[512];
  snprintf(good, sizeof good, "%s", path_in_dir("good.ckpt"));
  ck_assert_int_eq(optim_save(m.opt, good), OPTIM_OK);
  size_t n;
  unsigned char *d = read_file(good, &n);
  unsigned char *v = malloc(n + 16);
  /* The optimizer we load into has moved on, and a different lr. */
  optim_set_double(m.opt, 0, "lr", 0.02);
  model_steps(&m, 3, 5);

  ck_assert_int_eq(optim_load(m.opt, path_in_dir("does-not-exist")), OPTIM_EIO);
  ck_assert_int_eq(optim_load(m.opt, NULL), OPTIM_EINVAL);
  expect_load(&m, d, 0, OPTIM_EFORMAT, "empty file");
  expect_load(&m, (const unsigned char *)"hello, world, this is not it at all........................", 60,
              OPTIM_EFORMAT, "text file");
  /* Truncation at many lengths, including inside the header. */
  for (size_t cut = 4; cut < n; cut += (cut < 64 ? 4 : n / 7)) {
    memcpy(v, d, n);
    expect_load(&m, v, cut, OPTIM_ETRUNCATED, "truncated");
  }
  memcpy(v, d, n);
  expect_load(&m, v, n - 1, OPTIM_ETRUNCATED, "one byte short");
  memcpy(v, d, n);
  v[n] = 0;
  expect_load(&m, v, n + 1, OPTIM_ECORRUPT, "trailing byte");
  /* Bit flips: header, meta, first and last data byte. */
  size_t flips[] = {20, 45, 60, n / 2, n - 1};
  for (int k = 0; k < 5; k++) {
    memcpy(v, d, n);
    v[flips[k]] ^= 0x10;
    expect_load(&m, v, n, OPTIM_ECORRUPT, "bit flip");
  }
  /* Version skew and byte order, with a valid header checksum. */
  memcpy(v, d, n);
  uint32_t ver = CKP_FUTURE_VERSION;
  memcpy(v + 8, &ver, 4);
  fix_header_crc(v);
  expect_load(&m, v, n, OPTIM_EVERSION, "a future version");
  memcpy(v, d, n);
  uint32_t swapped = 0x04030201u;
  memcpy(v + 12, &swapped, 4);
  fix_header_crc(v);
  expect_load(&m, v, n, OPTIM_EENDIAN, "other byte order");

  /* Files from optimizers that do not match: other algorithm, other dtype. */
  const struct {
    const char *alg, *opts;
    int dtype;
  } others[] = {
    {"adamw", "lr=0.01", OPTIM_FLOAT32},
    {"adam", "lr=0.01,amsgrad=true", OPTIM_FLOAT64},
  };
  for (int k = 0; k < 2; k++) {
    model_init(&other, others[k].alg, others[k].opts, others[k].dtype, 0);
    ck_assert_int_eq(optim_save(other.opt, path_in_dir("other.ckpt")), OPTIM_OK);
    size_t on;
    unsigned char *od = read_file(path_in_dir("other.ckpt"), &on);
    expect_load(&m, od, on, OPTIM_EMISMATCH, others[k].alg);
    free(od);
    model_free(&other);
  }
  /* Other names, other shapes, fewer parameters, other group count. */
  {
    optim_optimizer *o;
    int g0, g1;
    float w[30], big[40000], c[24];
    int64_t s0[2] = {6, 5}, s0b[2] = {5, 6}, s1[1] = {40000}, s2[4] = {3, 2, 2, 2};
    for (int k = 0; k < 4; k++) {
      optim_create(&o);
      optim_add_group(o, "adam", &g0);
      if (k != 3) optim_add_group(o, "adamw", &g1);
      else g1 = g0;
      optim_set_bool(o, g0, "amsgrad", 1);
      optim_add_param(o, g0, k == 0 ? "layer.renamed" : "layer.weight", OPTIM_FLOAT32, 2,
                      k == 1 ? s0b : s0, w, w, NULL);
      optim_add_param(o, g0, "layer.big", OPTIM_FLOAT32, 1, s1, big, big, NULL);
      if (k != 2) optim_add_param(o, g1, "conv.weight", OPTIM_FLOAT32, 4, s2, c, c, NULL);
      ck_assert_int_eq(optim_save(o, path_in_dir("other.ckpt")), OPTIM_OK);
      optim_destroy(o);
      size_t on;
      unsigned char *od = read_file(path_in_dir("other.ckpt"), &on);
      expect_load(&m, od, on, OPTIM_EMISMATCH, "names/shapes/count/groups");
      free(od);
    }
  }
  /* The good file still loads, and restores the saved lr. */
  ck_assert_msg(optim_load(m.opt, good) == OPTIM_OK, "%s", optim_errmsg(m.opt));
  double lr;
  optim_get_double(m.opt, 0, "lr", &lr);
  ck_assert_double_eq(lr, 0.01);
  free(d);
  free(v);
  model_free(&m);
}
END_TEST

START_TEST(test_save_errors)
{
  model m;
  model_init(&m, "sgd", "lr=0.1,momentum=0.9", OPTIM_FLOAT32, 0);
  ck_assert_int_eq(optim_save(m.opt, NULL), OPTIM_EINVAL);
  ck_assert_int_eq(optim_save(m.opt, ""), OPTIM_EINVAL);
  ck_assert_int_eq(optim_save(m.opt, "/nonexistent-dir/x/y.ckpt"), OPTIM_EIO);
  ck_assert(strstr(optim_errmsg(m.opt), "nonexistent") != NULL);
  /* An existing file is replaced whole, and no temporary file is left. */
  char p[512];
  snprintf(p, sizeof p, "%s", path_in_dir("replace.ckpt"));
  write_file(p, "old contents", 12);
  ck_assert_int_eq(optim_save(m.opt, p), OPTIM_OK);
  ck_assert_int_eq(optim_load(m.opt, p), OPTIM_OK);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "ls %s | grep -c tmp >/dev/null", dir);
  ck_assert_int_ne(system(cmd), 0);
  model_free(&m);
}
END_TEST

/* Partial loads restore the listed parameters' state only. */
START_TEST(test_load_params)
{
  model a, b;
  model_init(&a, "adam", "lr=0.01,amsgrad=true", OPTIM_FLOAT32, 0);
  model_steps(&a, 0, 5);
  char path[512];
  snprintf(path, sizeof path, "%s", path_in_dir("partial.ckpt"));
  ck_assert_int_eq(optim_save(a.opt, path), OPTIM_OK);
  model_init(&b, "adam", "lr=0.02,amsgrad=true", OPTIM_FLOAT32, 1);
  model_steps(&b, 0, 2);
  int i1, i0, i2;
  optim_param_find(b.opt, names[1], &i1);
  optim_param_find(b.opt, names[0], &i0);
  optim_param_find(b.opt, names[2], &i2);
  const void *m0;
  optim_state_buffer(b.opt, i0, "exp_avg", &m0, NULL);
  float keep[30];
  memcpy(keep, m0, sizeof keep);
  int64_t st_before;
  optim_state_scalar(b.opt, i2, "step", &st_before);
  ck_assert_msg(optim_load_params(b.opt, path, &i1, 1) == OPTIM_OK, "%s", optim_errmsg(b.opt));
  /* param 1 now has a's state; 0 and 2 kept theirs; lr kept */
  int ia1;
  optim_param_find(a.opt, names[1], &ia1);
  const void *ma, *mb;
  optim_state_buffer(a.opt, ia1, "max_exp_avg_sq", &ma, NULL);
  optim_state_buffer(b.opt, i1, "max_exp_avg_sq", &mb, NULL);
  ck_assert_mem_eq(ma, mb, sizes[1] * 4);
  int64_t sa, sb;
  optim_state_scalar(a.opt, ia1, "step", &sa);
  optim_state_scalar(b.opt, i1, "step", &sb);
  ck_assert_int_eq(sa, sb);
  optim_state_buffer(b.opt, i0, "exp_avg", &m0, NULL);
  ck_assert_mem_eq(m0, keep, sizeof keep);
  int64_t st_after;
  optim_state_scalar(b.opt, i2, "step", &st_after);
  ck_assert_int_eq(st_after, st_before);
  double lr;
  optim_get_double(b.opt, 0, "lr", &lr);
  ck_assert_double_eq(lr, 0.02);
  /* bad lists; another layout (no amsgrad) for the listed parameter */
  int bad = 7;
  ck_assert_int_eq(optim_load_params(b.opt, path, &bad, 1), OPTIM_EINVAL);
  ck_assert_int_eq(optim_load_params(b.opt, path, NULL, 1), OPTIM_EINVAL);
  ck_assert_int_eq(optim_load_params(b.opt, path, &i1, -1), OPTIM_EINVAL);
  ck_assert_int_eq(optim_load_params(b.opt, path, NULL, 0), OPTIM_OK);
  optim_set_bool(b.opt, 0, "amsgrad", 0);
  uint64_t h = model_hash(&b);
  ck_assert_int_eq(optim_load_params(b.opt, path, &i1, 1), OPTIM_EMISMATCH);
  ck_assert_uint_eq(model_hash(&b), h);
  model_free(&a);
  model_free(&b);
}
END_TEST

/* State saved for one range of a parameter loads into another range (the
 * MPI layer re-shards this way): the overlap comes from the file, the rest
 * of the range keeps its values, and the result steps exactly like an
 * optimizer that never stopped. */
enum { RN = 1000 };
static optim_optimizer *range_opt(float *p, float *g, int64_t lo, int64_t hi)
{
  optim_optimizer *o;
  int g0;
  int64_t shape = RN;
  ck_assert_int_eq(optim_create(&o), OPTIM_OK);
  ck_assert_int_eq(optim_add_group(o, "adamw", &g0), OPTIM_OK);
  ck_assert_int_eq(optim_configure(o, g0, "lr=0.01,weight_decay=0.1"), OPTIM_OK);
  ck_assert_int_eq(optim_add_param(o, g0, "w", OPTIM_FLOAT32, 1, &shape, p, g, NULL), OPTIM_OK);
  ck_assert_int_eq(optim_param_set_range(o, 0, lo, hi), OPTIM_OK);
  return o;
}

static const float *range_state(optim_optimizer *o, const char *name)
{
  const void *b;
  ck_assert_int_eq(optim_state_buffer(o, 0, name, &b, NULL), OPTIM_OK);
  return b;
}

START_TEST(test_load_ranges)
{
  static float pf[RN], pa[RN], pb[RN], pc[RN], pd[RN], g[RN];
  for (int i = 0; i < RN; i++) pf[i] = pa[i] = pb[i] = (float)golden_noise((size_t)i, 0, 1, 5);
  optim_optimizer *f = range_opt(pf, g, 0, RN), *a = range_opt(pa, g, 0, 400),
                  *b = range_opt(pb, g, 400, RN);
  for (int t = 0; t < 3; t++) {
    for (int i = 0; i < RN; i++) g[i] = (float)golden_noise((size_t)i, t, 2, 5);
    ck_assert_int_eq(optim_step(f), OPTIM_OK);
    ck_assert_int_eq(optim_step(a), OPTIM_OK);
    ck_assert_int_eq(optim_step(b), OPTIM_OK);
  }
  char pa_path[512], pb_path[512];
  snprintf(pa_path, sizeof pa_path, "%s", path_in_dir("range-a.ckpt"));
  snprintf(pb_path, sizeof pb_path, "%s", path_in_dir("range-b.ckpt"));
  ck_assert_int_eq(optim_save(a, pa_path), OPTIM_OK);
  ck_assert_int_eq(optim_save(b, pb_path), OPTIM_OK);

  /* [250, 700) from both files; the whole tensor from both files */
  memcpy(pc, pf, sizeof pc);
  memcpy(pd, pf, sizeof pd);
  optim_optimizer *c = range_opt(pc, g, 250, 700), *d = range_opt(pd, g, 0, RN);
  int zero = 0;
  for (int k = 0; k < 2; k++) {
    optim_optimizer *o = k ? d : c;
    ck_assert_msg(optim_load(o, pa_path) == OPTIM_OK, "%s", optim_errmsg(o));
    ck_assert_msg(optim_load_params(o, pb_path, &zero, 1) == OPTIM_OK, "%s", optim_errmsg(o));
    int64_t lo = k ? 0 : 250, hi = k ? RN : 700, s;
    ck_assert_int_eq(optim_state_scalar(o, 0, "step", &s), OPTIM_OK);
    ck_assert_int_eq(s, 3);
    ck_assert_mem_eq(range_state(o, "exp_avg"), range_state(f, "exp_avg") + lo,
                     (size_t)(hi - lo) * 4);
    ck_assert_mem_eq(range_state(o, "exp_avg_sq"), range_state(f, "exp_avg_sq") + lo,
                     (size_t)(hi - lo) * 4);
  }
  for (int i = 0; i < RN; i++) g[i] = (float)golden_noise((size_t)i, 3, 2, 5);
  ck_assert_int_eq(optim_step(f), OPTIM_OK);
  ck_assert_int_eq(optim_step(c), OPTIM_OK);
  ck_assert_int_eq(optim_step(d), OPTIM_OK);
  ck_assert_mem_eq(pc + 250, pf + 250, 450 * 4);
  ck_assert_mem_eq(pd, pf, sizeof pd);

  /* No overlap: the range keeps its own values. */
  optim_optimizer *e = range_opt(pc, g, 0, 100);
  ck_assert_int_eq(optim_load(e, pb_path), OPTIM_OK);
  for (int i = 0; i < 100; i++) ck_assert_float_eq(range_state(e, "exp_avg")[i], 0.0f);
  ck_assert_int_eq(optim_load(e, pa_path), OPTIM_OK);
  ck_assert_mem_eq(range_state(e, "exp_avg"), range_state(a, "exp_avg"), 100 * 4);
  optim_destroy(f);
  optim_destroy(a);
  optim_destroy(b);
  optim_destroy(c);
  optim_destroy(d);
  optim_destroy(e);
}
END_TEST

/* Files of checkpoint format 1 (before clip_norm, decay scales and
 * schedules) still load.  tests/data/adamw-v1.ckpt was written by liboptim
 * at commit e1e99d2 from adamw (lr 0.01, weight_decay 0.1, nonfinite=skip),
 * w = (1, -2, 3, -4, 5) (float64), 3 steps with g_i = 0.5 w_i + 0.125 k
 * (i - 2) at step k: the state must be that of the same run today. */
START_TEST(test_reads_format_1)
{
  double w[2][5], g[5];
  int64_t shape[1] = {5};
  optim_optimizer *o[2];
  for (int r = 0; r < 2; r++) {
    const double w0[5] = {1, -2, 3, -4, 5};
    memcpy(w[r], w0, sizeof w0);
    ck_assert_int_eq(optim_create(&o[r]), OPTIM_OK);
    ck_assert_int_eq(optim_add_group(o[r], "adamw", NULL), OPTIM_OK);
    ck_assert_int_eq(optim_add_param(o[r], 0, "w", OPTIM_FLOAT64, 1, shape, w[r], g, NULL),
                     OPTIM_OK);
  }
  ck_assert_int_eq(optim_configure(o[0], 0, "lr=0.01,weight_decay=0.1,nonfinite=skip"), OPTIM_OK);
  for (int k = 1; k <= 3; k++) {
    for (int i = 0; i < 5; i++) g[i] = 0.5 * w[0][i] + 0.125 * k * (i - 2);
    ck_assert_int_eq(optim_step(o[0]), OPTIM_OK);
  }
  ck_assert_int_eq(optim_set_clip_norm(o[1], 3), OPTIM_OK);
  ck_assert_int_eq(optim_param_set_decay_scale(o[1], 0, 0.5), OPTIM_OK);
  ck_assert_msg(optim_load(o[1], DATA_DIR "/adamw-v1.ckpt") == OPTIM_OK, "%s",
                optim_errmsg(o[1]));
  ck_assert_uint_eq(hash_state(o[1]), hash_state(o[0]));
  double v;
  char word[16];
  ck_assert_int_eq(optim_get_double(o[1], 0, "lr", &v), OPTIM_OK);
  ck_assert(v == 0.01);
  ck_assert_int_eq(optim_get_string(o[1], 0, "nonfinite", word, sizeof word), OPTIM_OK);
  ck_assert_str_eq(word, "skip");
  /* what format 1 lacks takes the defaults: no clipping, scale 1 */
  ck_assert_int_eq(optim_get_double(o[1], 0, "clip_norm", &v), OPTIM_OK);
  ck_assert(v == 0);
  ck_assert_int_eq(optim_param_get_decay_scale(o[1], 0, &v), OPTIM_OK);
  ck_assert(v == 1);
  for (int i = 0; i < 5; i++) g[i] = 0.25 * i;
  ck_assert_int_eq(optim_step(o[1]), OPTIM_OK);
  ck_assert_int_eq(optim_get_grad_norm(o[1], -1, &v), OPTIM_ECONFIG);
  optim_destroy(o[0]);
  optim_destroy(o[1]);
}
END_TEST

/* ---- damaged files, exhaustively, on a small checkpoint ------------------------------- */

/* Two groups (Adam with amsgrad and a cosine schedule on lr; SGD with
 * momentum, float64), one small parameter each: a checkpoint of a few
 * hundred bytes whose every bit can be flipped. */
typedef struct tiny {
  optim_optimizer *opt;
  float w[6], gw[6];
  double b[4], gb[4], e[4], ge[4];
} tiny;

static void tiny_init(tiny *t, int extra)
{
  int64_t sw[2] = {3, 2}, sb[1] = {4};
  for (int i = 0; i < 6; i++) t->w[i] = (float)golden_noise((uint64_t)i, 0, 0, 3);
  for (int i = 0; i < 4; i++) t->b[i] = golden_noise((uint64_t)i, 0, 1, 3);
  ck_assert_int_eq(optim_create(&t->opt), OPTIM_OK);
  ck_assert_int_eq(optim_add_group(t->opt, "adam", NULL), OPTIM_OK);
  ck_assert_int_eq(optim_add_group(t->opt, "sgd", NULL), OPTIM_OK);
  ck_assert_int_eq(optim_configure(t->opt, 0, "lr=0.01,amsgrad=true"), OPTIM_OK);
  ck_assert_int_eq(optim_configure(t->opt, 1, "lr=0.1,momentum=0.9"), OPTIM_OK);
  ck_assert_int_eq(optim_set_schedule(t->opt, 0, "lr", "cosine:total=50"), OPTIM_OK);
  ck_assert_int_eq(optim_add_param(t->opt, 0, "w", OPTIM_FLOAT32, 2, sw, t->w, t->gw, NULL),
                   OPTIM_OK);
  ck_assert_int_eq(optim_add_param(t->opt, 1, "b", OPTIM_FLOAT64, 1, sb, t->b, t->gb, NULL),
                   OPTIM_OK);
  if (extra) /* a third parameter the saved optimizer did not have */
    ck_assert_int_eq(optim_add_param(t->opt, 1, "extra", OPTIM_FLOAT64, 1, sb, t->e, t->ge, NULL),
                     OPTIM_OK);
}

static void tiny_steps(tiny *t, int from, int to)
{
  for (int k = from; k < to; k++) {
    golden_grad(OPTIM_FLOAT32, t->w, t->gw, 6, (uint64_t)k + 1, 0, 3);
    golden_grad(OPTIM_FLOAT64, t->b, t->gb, 4, (uint64_t)k + 1, 1, 3);
    ck_assert_msg(optim_step(t->opt) == OPTIM_OK, "%s", optim_errmsg(t->opt));
  }
}

/* One step whatever its outcome (an accepted file may hold settings that
 * refuse to step, e.g. a step count at its limit). */
static void tiny_steps_any(tiny *t)
{
  golden_grad(OPTIM_FLOAT32, t->w, t->gw, 6, 9, 0, 3);
  golden_grad(OPTIM_FLOAT64, t->b, t->gb, 4, 9, 1, 3);
  int st = optim_step(t->opt);
  ck_assert_msg(st == OPTIM_OK || strlen(optim_errmsg(t->opt)) > 0, "step %d without a message", st);
}

/* Everything a load may change: state, counters, every hyperparameter. */
static uint64_t tiny_hash(tiny *t)
{
  uint64_t h = hash_state(t->opt);
  for (int g = 0; g < 2; g++) {
    int64_t s;
    optim_get_counter(t->opt, g, "steps", &s);
    h = hash_bytes(h, &s, sizeof s);
    const char *alg = optim_group_algorithm(t->opt, g);
    int nh = optim_hparam_count(alg);
    for (int k = 0; k < nh; k++) {
      const char *name;
      int type;
      optim_hparam_info(alg, k, &name, &type, NULL, NULL);
      double d;
      int64_t i;
      int b;
      char word[64];
      if (type == OPTIM_TYPE_DOUBLE && optim_get_double(t->opt, g, name, &d) == OPTIM_OK)
        h = hash_bytes(h, &d, sizeof d);
      else if (type == OPTIM_TYPE_INT && optim_get_int(t->opt, g, name, &i) == OPTIM_OK)
        h = hash_bytes(h, &i, sizeof i);
      else if (type == OPTIM_TYPE_BOOL && optim_get_bool(t->opt, g, name, &b) == OPTIM_OK)
        h = hash_bytes(h, &b, sizeof b);
      else if (type == OPTIM_TYPE_STRING &&
               optim_get_string(t->opt, g, name, word, sizeof word) == OPTIM_OK)
        h = hash_bytes(h, word, strlen(word));
    }
  }
  return h;
}

/* Load d[0..n) into t; the status; on failure assert that nothing in t
 * changed and that the handle says why. */
static int tiny_load(tiny *t, const unsigned char *d, size_t n)
{
  const char *p = path_in_dir("tiny-bad.ckpt");
  /* a new file each time: ext4 flushes a file truncated and rewritten on
   * close (auto_da_alloc), which made thousands of loads disk-bound */
  unlink(p);
  write_file(p, d, n);
  uint64_t h = tiny_hash(t);
  int st = optim_load(t->opt, p);
  if (st != OPTIM_OK) {
    ck_assert(strlen(optim_errmsg(t->opt)) > 0);
    ck_assert_msg(tiny_hash(t) == h, "a failed load (%s) changed the optimizer",
                  optim_strerror(st));
  }
  return st;
}

/* A tiny optimizer after nsteps steps, and its checkpoint's bytes. */
static unsigned char *tiny_file(tiny *t, int nsteps, size_t *n)
{
  tiny_init(t, 0);
  tiny_steps(t, 0, nsteps);
  ck_assert_int_eq(optim_save(t->opt, path_in_dir("tiny.ckpt")), OPTIM_OK);
  return read_file(path_in_dir("tiny.ckpt"), n);
}

/* Every single-bit flip of a checkpoint is refused: EFORMAT in the magic,
 * ECORRUPT anywhere else (the header, meta section and each buffer carry a
 * CRC-32, which detects every single-bit error); every truncation is
 * refused (EFORMAT when empty, ETRUNCATED otherwise). */
START_TEST(test_every_bit_and_length)
{
  tiny t, u;
  size_t n;
  unsigned char *d = tiny_file(&t, 3, &n);
  unsigned char *v = malloc(n);
  tiny_init(&u, 0); /* the optimizer loaded into: other state and counters */
  tiny_steps(&u, 0, 5);
  ck_assert_int_eq(optim_set_double(u.opt, 1, "lr", 0.5), OPTIM_OK);
  size_t bits = 0;
  for (size_t i = 0; i < n; i++)
    for (int b = 0; b < 8; b++) {
      memcpy(v, d, n);
      v[i] ^= (unsigned char)(1u << b);
      int st = tiny_load(&u, v, n);
      int want = i < 8 ? OPTIM_EFORMAT : OPTIM_ECORRUPT;
      ck_assert_msg(st == want, "bit %d of byte %zu of %zu: got %d (%s), want %d", b, i, n, st,
                    optim_errmsg(u.opt), want);
      bits++;
    }
  for (size_t cut = 0; cut < n; cut++) {
    int st = tiny_load(&u, d, cut);
    int want = cut == 0 ? OPTIM_EFORMAT : OPTIM_ETRUNCATED;
    ck_assert_msg(st == want, "cut at %zu of %zu: got %d (%s), want %d", cut, n, st,
                  optim_errmsg(u.opt), want);
  }
  /* The untouched file loads, and gives exactly the saved optimizer. */
  ck_assert_int_eq(tiny_load(&u, d, n), OPTIM_OK);
  ck_assert_uint_eq(tiny_hash(&u), tiny_hash(&t));
  fprintf(stderr, "checkpoint: %zu single-bit flips and %zu truncations of a %zu-byte file "
          "refused\n", bits, n, n);
  free(d);
  free(v);
  optim_destroy(t.opt);
  optim_destroy(u.opt);
}
END_TEST

/* A meta section damaged behind a valid CRC (a bug in another writer, or
 * a deliberate edit): every single-bit flip of it, with the meta and header
 * CRCs recomputed, is either refused with a checkpoint status and nothing
 * changed, or accepted (a hyperparameter still in its range, say) and then
 * steps like any optimizer; never a crash or an out-of-bounds read (this
 * suite also runs under valgrind and ASan). */
START_TEST(test_meta_flips_behind_crc)
{
  tiny t, u;
  size_t n;
  unsigned char *d = tiny_file(&t, 3, &n);
  unsigned char *v = malloc(n);
  uint64_t mlen;
  memcpy(&mlen, d + 16, 8);
  ck_assert_uint_le(40 + mlen, n);
  int counts[2] = {0, 0};
  for (size_t i = 40; i < 40 + mlen; i++)
    for (int b = 0; b < 8; b++) {
      memcpy(v, d, n);
      v[i] ^= (unsigned char)(1u << b);
      uint32_t c = (uint32_t)crc32(0L, v + 40, (uInt)mlen);
      memcpy(v + 32, &c, 4);
      fix_header_crc(v);
      tiny_init(&u, 0);
      int st = tiny_load(&u, v, n);
      ck_assert_msg(st == OPTIM_OK || st == OPTIM_ECORRUPT || st == OPTIM_EMISMATCH ||
                        st == OPTIM_ENOMEM,
                    "meta byte %zu bit %d: %d (%s)", i - 40, b, st, optim_errmsg(u.opt));
      counts[st == OPTIM_OK]++;
      if (st == OPTIM_OK) { /* what was accepted must be usable: step it (under the checkers) */
        for (int g = 0; g < 2; g++)
          for (int ci = 0; ci < 3; ci++) {
            static const char *counter[3] = {"steps", "skipped", "failed"};
            int64_t x;
            ck_assert_int_eq(optim_get_counter(u.opt, g, counter[ci], &x), OPTIM_OK);
            ck_assert_msg(x >= 0, "meta byte %zu bit %d: %s = %lld loaded", i - 40, b,
                          counter[ci], (long long)x);
          }
        tiny_steps_any(&u);
      }
      optim_destroy(u.opt);
    }
  ck_assert_int_gt(counts[0], 0);
  fprintf(stderr, "checkpoint: %d meta-bit flips behind a valid CRC: %d refused, %d loaded\n",
          counts[0] + counts[1], counts[0], counts[1]);
  free(d);
  free(v);
  optim_destroy(t.opt);
}
END_TEST

/* A file written on a machine of the other byte order: every header field
 * byte-swapped.  Refused with EENDIAN before anything else is read. */
static void bswap_bytes(unsigned char *p, int n)
{
  for (int i = 0; i < n / 2; i++) {
    unsigned char c = p[i];
    p[i] = p[n - 1 - i];
    p[n - 1 - i] = c;
  }
}

START_TEST(test_foreign_headers)
{
  tiny t, u;
  size_t n;
  unsigned char *d = tiny_file(&t, 2, &n);
  unsigned char *v = malloc(n);
  tiny_init(&u, 0);
  tiny_steps(&u, 0, 1);
  memcpy(v, d, n);
  static const int field[][2] = {{8, 4}, {12, 4}, {16, 8}, {24, 8}, {32, 4}, {36, 4}};
  for (int k = 0; k < 6; k++) bswap_bytes(v + field[k][0], field[k][1]);
  ck_assert_int_eq(tiny_load(&u, v, n), OPTIM_EENDIAN);
  /* Format versions other than 1 and 2, behind a valid header CRC. */
  const uint32_t versions[] = {0, CKP_FUTURE_VERSION, 0x02000000u, 0xffffffffu};
  for (int k = 0; k < 4; k++) {
    memcpy(v, d, n);
    memcpy(v + 8, &versions[k], 4);
    fix_header_crc(v);
    ck_assert_int_eq(tiny_load(&u, v, n), OPTIM_EVERSION);
  }
  /* Section lengths that promise more than the file holds, or less. */
  const uint64_t mlens[] = {(uint64_t)1 << 41, UINT64_MAX};
  for (int k = 0; k < 2; k++) {
    memcpy(v, d, n);
    memcpy(v + 16, &mlens[k], 8);
    fix_header_crc(v);
    ck_assert_int_eq(tiny_load(&u, v, n), OPTIM_ETRUNCATED);
  }
  memcpy(v, d, n);
  uint64_t dlen;
  memcpy(&dlen, v + 24, 8);
  dlen -= 1;
  memcpy(v + 24, &dlen, 8);
  fix_header_crc(v);
  ck_assert_int_eq(tiny_load(&u, v, n), OPTIM_ECORRUPT);
  /* A file that holds a parameter the optimizer lacks, and the other way:
   * EMISMATCH either way; parameters are matched by name, in any order. */
  tiny x;
  tiny_init(&x, 1);
  ck_assert_int_eq(tiny_load(&x, d, n), OPTIM_EMISMATCH);
  ck_assert_int_eq(optim_save(x.opt, path_in_dir("extra.ckpt")), OPTIM_OK);
  size_t xn;
  unsigned char *xd = read_file(path_in_dir("extra.ckpt"), &xn);
  ck_assert_int_eq(tiny_load(&u, xd, xn), OPTIM_EMISMATCH);
  free(xd);
  optim_destroy(x.opt);
  free(d);
  free(v);
  optim_destroy(t.opt);
  optim_destroy(u.opt);
}
END_TEST

/* optim_load_params validates the whole file as optim_load does: damage in
 * the data of a parameter it does not restore is refused too (also with
 * count 0, which only validates), and nothing changes. */
START_TEST(test_partial_load_validates)
{
  tiny t, u;
  size_t n;
  unsigned char *d = tiny_file(&t, 3, &n);
  uint64_t mlen;
  memcpy(&mlen, d + 16, 8);
  tiny_init(&u, 0);
  tiny_steps(&u, 0, 1);
  const char *p = path_in_dir("tiny-bad.ckpt");
  /* the first data byte is w's (parameter 0), the last b's (parameter 1) */
  const size_t at[2] = {(size_t)(40 + mlen), n - 1};
  for (int k = 0; k < 2; k++) {
    d[at[k]] ^= 4;
    write_file(p, d, n);
    d[at[k]] ^= 4;
    uint64_t h = tiny_hash(&u);
    int other = 1 - k;
    ck_assert_int_eq(optim_load_params(u.opt, p, &other, 1), OPTIM_ECORRUPT);
    ck_assert(strstr(optim_errmsg(u.opt), "checksum") != NULL);
    ck_assert_int_eq(optim_load_params(u.opt, p, NULL, 0), OPTIM_ECORRUPT);
    ck_assert_uint_eq(tiny_hash(&u), h);
    ck_assert_int_eq(optim_load_params(u.opt, p, &k, 1), OPTIM_ECORRUPT);
    ck_assert_uint_eq(tiny_hash(&u), h);
  }
  /* the intact file: the listed parameter's state only */
  write_file(p, d, n);
  int one = 1;
  ck_assert_int_eq(optim_load_params(u.opt, p, &one, 1), OPTIM_OK);
  ck_assert_uint_eq(hash_param_state(0, u.opt, 1), hash_param_state(0, t.opt, 1));
  ck_assert_uint_ne(hash_param_state(0, u.opt, 0), hash_param_state(0, t.opt, 0));
  free(d);
  optim_destroy(t.opt);
  optim_destroy(u.opt);
}
END_TEST

/* ---- crash safety: SIGKILL during saves ------------------------------------------------- */

/* A child saves a changing optimizer over one path in a loop and reports
 * each finished save through a pipe; the parent kills it with SIGKILL at a
 * random point (seeded), then checks what is on disk.  The target must
 * load, and hold exactly the last reported version or the one being saved
 * when the kill came (its rename may have happened before the report);
 * a leftover temporary file must be refused (EFORMAT when empty,
 * ETRUNCATED when partly written) or, when complete, hold that version
 * being saved.  Version k is the optimizer after k steps, regenerated here
 * from the same deterministic gradients. */
#define CRASH_N ((int64_t)1 << 18) /* AdamW elements: 1 MiB of parameters, 2 MiB of state */
#define CRASH_ROUNDS 300
#define CRASH_MAXV 4096

typedef struct crash_model {
  optim_optimizer *opt;
  float *p, *g, w[16 * 12], gw[16 * 12];
} crash_model;

/* AdamW over a large vector and SOAP over a 16 x 12 matrix; one thread
 * (the child is forked from a process that may have run OpenMP teams). */
static int crash_init(crash_model *m)
{
  int64_t sw[2] = {16, 12};
  memset(m, 0, sizeof *m);
  m->p = malloc((size_t)CRASH_N * sizeof *m->p);
  m->g = malloc((size_t)CRASH_N * sizeof *m->g);
  if (!m->p || !m->g || optim_create(&m->opt) != OPTIM_OK) return -1;
  for (int64_t i = 0; i < CRASH_N; i++) m->p[i] = (float)golden_noise((uint64_t)i, 0, 0, 11);
  for (int i = 0; i < 16 * 12; i++) m->w[i] = (float)golden_noise((uint64_t)i, 0, 1, 11);
  int64_t n = CRASH_N;
  if (optim_set_threads(m->opt, 1) || optim_add_group(m->opt, "adamw", NULL) ||
      optim_add_group(m->opt, "soap", NULL) ||
      optim_configure(m->opt, 1, "precondition_frequency=2") ||
      optim_add_param(m->opt, 0, "big", OPTIM_FLOAT32, 1, &n, m->p, m->g, NULL) ||
      optim_add_param(m->opt, 1, "w", OPTIM_FLOAT32, 2, sw, m->w, m->gw, NULL))
    return -1;
  return 0;
}

static int crash_step(crash_model *m, int k)
{
  golden_grad(OPTIM_FLOAT32, m->p, m->g, (size_t)CRASH_N, (uint64_t)k, 0, 11);
  golden_grad(OPTIM_FLOAT32, m->w, m->gw, 16 * 12, (uint64_t)k, 1, 11);
  return optim_step(m->opt);
}

static void crash_free(crash_model *m)
{
  optim_destroy(m->opt);
  free(m->p);
  free(m->g);
}

/* The child: save version k = 1, 2, ... and report k after each save. */
static void crash_child(int fd, const char *target)
{
  crash_model m;
  if (crash_init(&m) != 0) _exit(2);
  for (int k = 1; k < CRASH_MAXV; k++) {
    if (crash_step(&m, k) != OPTIM_OK) _exit(3);
    if (optim_save(m.opt, target) != OPTIM_OK) _exit(4);
    if (write(fd, &k, sizeof k) != (ssize_t)sizeof k) _exit(5);
  }
  _exit(0);
}

static double now_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

START_TEST(test_crash_kill)
{
  char target[600], tmpdir[512];
  snprintf(tmpdir, sizeof tmpdir, "%s", path_in_dir("crash"));
  ck_assert_int_eq(mkdir(tmpdir, 0700), 0);
  snprintf(target, sizeof target, "%s/state.ckpt", tmpdir);
  /* hash of version k, computed on demand by stepping a reference */
  static uint64_t vhash[CRASH_MAXV];
  int have = 0;
  crash_model ref, chk;
  ck_assert_int_eq(crash_init(&ref), 0);
  ck_assert_int_eq(crash_init(&chk), 0);
  uint64_t rng = 0x9e3779b97f4a7c15ull; /* fixed seed: the same kill delays every run */
  double cycle_us = 0, first_us = 0, start_us = now_us();
  uint64_t on_disk = 0;
  int kills_in_flight = 0, kills_before_first = 0, maxv = 0;
  int tmp_partial = 0, tmp_empty = 0, tmp_complete = 0;
  for (int round = 0; round < CRASH_ROUNDS; round++) {
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    double fork_us = now_us();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      crash_child(fds[1], target);
    }
    close(fds[1]);
    /* Round 0 waits for four saves, which creates the target and measures
     * the save cycle; later rounds start over the target the round before
     * left and kill after a random delay from the fork of up to the time
     * to the first save's end plus two cycles (so also before or during
     * the child's first save). */
    int k = 0, last = 0;
    if (round == 0) {
      ck_assert_int_eq(read(fds[0], &k, sizeof k), (ssize_t)sizeof k);
      double t0 = now_us();
      first_us = t0 - fork_us;
      for (int j = 0; j < 3; j++) {
        ck_assert_int_eq(read(fds[0], &k, sizeof k), (ssize_t)sizeof k);
        last = k;
      }
      cycle_us = (now_us() - t0) / 3;
    } else {
      rng = rng * 6364136223846793005ull + 1442695040888963407ull;
      double delay = (double)(rng >> 11) / 9007199254740992.0 * (first_us + 2 * cycle_us);
      struct timespec ts = {(time_t)(delay / 1e6), (long)(fmod(delay, 1e6) * 1e3)};
      nanosleep(&ts, NULL);
    }
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                  "round %d: the child ended on its own (status %d)", round, status);
    while (read(fds[0], &k, sizeof k) == (ssize_t)sizeof k) last = k;
    close(fds[0]);
    ck_assert_int_lt(last + 1, CRASH_MAXV);
    while (have <= last + 1) {
      if (have > 0) ck_assert_int_eq(crash_step(&ref, have), OPTIM_OK);
      vhash[have++] = hash_state(ref.opt);
    }
    if (last + 1 > maxv) maxv = last + 1;

    int st = optim_load(chk.opt, target);
    ck_assert_msg(st == OPTIM_OK, "round %d (after save %d): the target does not load: %s", round,
                  last, optim_errmsg(chk.opt));
    /* before the child's first report, the target may still be the
     * previous round's */
    uint64_t h = hash_state(chk.opt), before_first = last ? vhash[last] : on_disk;
    ck_assert_msg(h == before_first || h == vhash[last + 1],
                  "round %d: the target is neither version %d (or the previous round's) nor %d",
                  round, last, last + 1);
    kills_in_flight += h != before_first;
    kills_before_first += last == 0;
    on_disk = h;

    DIR *dd = opendir(tmpdir);
    ck_assert_ptr_nonnull(dd);
    struct dirent *de;
    while ((de = readdir(dd)) != NULL) {
      if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
          strcmp(de->d_name, "state.ckpt") == 0)
        continue;
      ck_assert_msg(strncmp(de->d_name, "state.ckpt.tmp.", 15) == 0, "unexpected file %s",
                    de->d_name);
      char tp[800];
      snprintf(tp, sizeof tp, "%s/%s", tmpdir, de->d_name);
      struct stat sb;
      ck_assert_int_eq(stat(tp, &sb), 0);
      uint64_t before = hash_state(chk.opt);
      st = optim_load(chk.opt, tp);
      if (st == OPTIM_OK) {
        ck_assert_msg(hash_state(chk.opt) == vhash[last + 1],
                      "round %d: a complete temporary file is not version %d", round, last + 1);
        tmp_complete++;
      } else {
        ck_assert_msg(st == (sb.st_size == 0 ? OPTIM_EFORMAT : OPTIM_ETRUNCATED),
                      "round %d: temporary file of %lld bytes: %d (%s)", round,
                      (long long)sb.st_size, st, optim_errmsg(chk.opt));
        ck_assert_uint_eq(hash_state(chk.opt), before);
        if (sb.st_size == 0) tmp_empty++;
        else tmp_partial++;
      }
      /* leftovers are the caller's to remove (optim_save(3)) */
      ck_assert_int_eq(unlink(tp), 0);
    }
    closedir(dd);
  }
  fprintf(stderr,
          "checkpoint: %d SIGKILLs during saves (first save %.1f ms, cycle %.1f ms, up to version %d, %d before the "
          "first save ended): target always complete (%d times the version being saved); leftover temporary files: %d partial "
          "(ETRUNCATED), %d empty (EFORMAT), %d complete; %.1f s\n",
          CRASH_ROUNDS, first_us / 1000, cycle_us / 1000, maxv, kills_before_first, kills_in_flight, tmp_partial, tmp_empty,
          tmp_complete, (now_us() - start_us) / 1e6);
  crash_free(&ref);
  crash_free(&chk);
  unlink(target);
  rmdir(tmpdir);
}
END_TEST

int main(void)
{
  snprintf(dir, sizeof dir, "/tmp/optim-ckpt-XXXXXX");
  if (!mkdtemp(dir)) return 99;
  Suite *s = suite_create("checkpoint");
  TCase *tc = tcase_create("checkpoint");
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, test_resume_bit_identical, 0, 2 * NCONFIGS);
  tcase_add_test(tc, test_bad_files);
  tcase_add_test(tc, test_save_errors);
  tcase_add_test(tc, test_load_params);
  tcase_add_test(tc, test_load_ranges);
  tcase_add_test(tc, test_reads_format_1);
  tcase_add_test(tc, test_every_bit_and_length);
  tcase_add_test(tc, test_meta_flips_behind_crc);
  tcase_add_test(tc, test_foreign_headers);
  tcase_add_test(tc, test_partial_load_validates);
  tcase_add_test(tc, test_crash_kill);
  suite_add_tcase(s, tc);
  int failed = run_suite(s);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) return 99;
  return failed ? 1 : 0;
}
