/* check_finitesum.c - adasvrg and the finite-sum interface (optim_snapshot,
 * optim_param_bind_snapshot_grad) on least squares
 * f(x) = 1/N sum_i (a_i . x - b_i)^2 / 2, against the update rule written
 * out here in double; the adaptive step size from the secant estimate
 * (the first one against the probe point the callback is given);
 * convergence; bad input; checkpoints; the golden trajectories of
 * tests/golden/adasvrg.txt (tests/golden/gen_adasvrg.py, format in
 * tests/golden/README). */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

enum { N = 24, D = 5 };
static double A[N][D], B[N];

static void problem(void)
{
  for (int i = 0; i < N; i++) {
    for (int j = 0; j < D; j++) A[i][j] = golden_noise((uint64_t)(i * D + j), 1, 2, 3) + (i % D == j);
    B[i] = golden_noise((uint64_t)i, 4, 5, 6);
  }
}

/* gradient over samples [s, s + m) (mod N) at x */
static void grad_at(const double *x, int s, int m, double *g)
{
  for (int j = 0; j < D; j++) g[j] = 0;
  for (int k = 0; k < m; k++) {
    int i = (s + k) % N;
    double r = -B[i];
    for (int j = 0; j < D; j++) r += A[i][j] * x[j];
    for (int j = 0; j < D; j++) g[j] += r * A[i][j] / m;
  }
}

typedef struct cb {
  int calls, fail;
  double last_point[D];
} cb;

static int full_grad(void *ud, int count, const int *params, const void *const *points,
                     void *const *grads)
{
  cb *c = ud;
  c->calls++;
  if (c->fail) return 7;
  ck_assert_int_eq(count, 1);
  ck_assert_int_eq(params[0], 0);
  memcpy(c->last_point, points[0], sizeof c->last_point);
  grad_at(points[0], 0, N, grads[0]);
  return 0;
}

static optim_optimizer *make(const char *opts, double *x, double *g, double *gs)
{
  optim_optimizer *o;
  ck_assert_int_eq(optim_create(&o), OPTIM_OK);
  ck_assert_int_eq(optim_add_group(o, "adasvrg", NULL), OPTIM_OK);
  if (opts) ck_assert_msg(optim_configure(o, 0, opts) == OPTIM_OK, "%s", optim_errmsg(o));
  int64_t shape[1] = {D};
  ck_assert_int_eq(optim_add_param(o, 0, "x", OPTIM_FLOAT64, 1, shape, x, g, NULL), OPTIM_OK);
  ck_assert_int_eq(optim_param_bind_snapshot_grad(o, 0, gs), OPTIM_OK);
  return o;
}

/* Fixed lr, scalar and diagonal, two outer loops of 6 minibatch steps. */
START_TEST(test_rule)
{
  problem();
  for (int diag = 0; diag < 2; diag++) {
    double x[D] = {0.5, -0.5, 1, 0, 0.25}, g[D], gs[D], e[D], snap[D], mu[D], G2[D], S = 0;
    memcpy(e, x, sizeof e);
    cb c = {0};
    optim_optimizer *o = make(diag ? "lr=0.3,diagonal=true" : "lr=0.3", x, g, gs);
    for (int outer = 0; outer < 2; outer++) {
      ck_assert_int_eq(optim_snapshot(o, full_grad, &c), OPTIM_OK);
      memcpy(snap, e, sizeof snap);
      grad_at(snap, 0, N, mu);
      S = 0;
      for (int j = 0; j < D; j++) G2[j] = 1e-8;
      for (int t = 0; t < 6; t++) {
        int s = (7 * t + 3 * outer) % N;
        grad_at(x, s, 4, g);
        grad_at(snap, s, 4, gs);
        double v[D], nv = 0;
        for (int j = 0; j < D; j++) {
          v[j] = (g[j] - gs[j]) + mu[j];
          nv += v[j] * v[j];
        }
        S += nv;
        for (int j = 0; j < D; j++) {
          if (diag) {
            G2[j] += v[j] * v[j];
            e[j] -= 0.3 * v[j] / sqrt(G2[j]);
          } else {
            e[j] += (-0.3 / sqrt(S)) * v[j];
          }
        }
        ck_assert_msg(optim_step(o) == OPTIM_OK, "%s", optim_errmsg(o));
        for (int j = 0; j < D; j++) ck_assert_double_eq_tol(x[j], e[j], 1e-13);
      }
    }
    ck_assert_int_eq(c.calls, 2); /* fixed lr: no probe */
    int64_t k;
    ck_assert_int_eq(optim_state_scalar(o, 0, "snapshots", &k), OPTIM_OK);
    ck_assert_int_eq(k, 2);
    optim_destroy(o);
  }
}
END_TEST

static double norm2(const double *a, const double *b)
{
  double s = 0;
  for (int j = 0; j < D; j++) s += (a[j] - (b ? b[j] : 0)) * (a[j] - (b ? b[j] : 0));
  return sqrt(s);
}

/* Adaptive lr: eta = ||mu|| / (sqrt(2) Lmax), the first L against the
 * probe point, later ones against the previous snapshot; the method
 * converges to the least-squares solution. */
START_TEST(test_adaptive_and_convergence)
{
  problem();
  double x[D] = {0}, g[D], gs[D], mu[D], mu0[D], pmu[D], x0[D], const_probe[D];
  cb c = {0};
  optim_optimizer *o = make("seed=5", x, g, gs);
  ck_assert_int_eq(optim_snapshot(o, full_grad, &c), OPTIM_OK);
  ck_assert_int_eq(c.calls, 2);
  memcpy(const_probe, c.last_point, sizeof const_probe);
  ck_assert(norm2(const_probe, x) > 0 && norm2(const_probe, x) < 0.2);
  grad_at(x, 0, N, mu);
  grad_at(const_probe, 0, N, pmu);
  double L = norm2(mu, pmu) / norm2(x, const_probe), lmax = L;
  const void *d;
  ck_assert_int_eq(optim_state_buffer(o, 0, "eta", &d, NULL), OPTIM_OK);
  ck_assert_double_eq_tol(*(const double *)d, norm2(mu, NULL) / (sqrt(2.0) * L), 1e-12);
  double best = 1e9;
  for (int outer = 0; outer < 40; outer++) {
    if (outer > 0) {
      memcpy(mu0, mu, sizeof mu);
      memcpy(x0, c.last_point, sizeof x0);
      ck_assert_int_eq(optim_snapshot(o, full_grad, &c), OPTIM_OK);
      grad_at(x, 0, N, mu);
      double l = norm2(mu, mu0) / norm2(x, x0);
      if (l > lmax) lmax = l;
      ck_assert_int_eq(optim_state_buffer(o, 0, "eta", &d, NULL), OPTIM_OK);
      ck_assert_double_eq_tol(*(const double *)d, norm2(mu, NULL) / (sqrt(2.0) * lmax), 1e-12);
      ck_assert_int_eq(optim_state_buffer(o, 0, "lmax", &d, NULL), OPTIM_OK);
      ck_assert_double_eq_tol(*(const double *)d, lmax, 1e-12);
    }
    memcpy(c.last_point, x, sizeof x);
    for (int t = 0; t < N / 4; t++) {
      grad_at(x, 4 * t, 4, g);
      const double *snap;
      ck_assert_int_eq(optim_state_buffer(o, 0, "snapshot", &d, NULL), OPTIM_OK);
      snap = d;
      grad_at(snap, 4 * t, 4, gs);
      ck_assert_int_eq(optim_step(o), OPTIM_OK);
    }
    grad_at(x, 0, N, g);
    best = norm2(g, NULL);
  }
  ck_assert_msg(best < 1e-6, "full gradient norm %g after 40 outer loops", best);
  optim_destroy(o);
}
END_TEST

START_TEST(test_bad_input)
{
  problem();
  double x[D] = {1, 2, 3, 4, 5}, g[D] = {0}, gs[D] = {0};
  cb c = {0};
  optim_optimizer *o = make("lr=0.1", x, g, gs);
  uint64_t h = hash_state(o);
  ck_assert_int_eq(optim_step(o), OPTIM_ECONFIG); /* no snapshot */
  ck_assert(strstr(optim_errmsg(o), "optim_snapshot") != NULL);
  ck_assert_int_eq(optim_snapshot(o, NULL, &c), OPTIM_EINVAL);
  c.fail = 1;
  ck_assert_int_eq(optim_snapshot(o, full_grad, &c), OPTIM_ECALLBACK);
  ck_assert_uint_eq(hash_state(o), h);
  c.fail = 0;
  ck_assert_int_eq(optim_snapshot(o, full_grad, &c), OPTIM_OK);
  ck_assert_int_eq(optim_param_bind_snapshot_grad(o, 0, NULL), OPTIM_OK);
  ck_assert_int_eq(optim_step(o), OPTIM_ECONFIG); /* no snapshot gradient */
  ck_assert_int_eq(optim_param_bind_snapshot_grad(o, 0, x), OPTIM_EINVAL); /* overlaps */
  ck_assert_int_eq(optim_param_bind_snapshot_grad(o, 1, gs), OPTIM_EINVAL);
  ck_assert_int_eq(optim_param_bind_snapshot_grad(o, 0, gs), OPTIM_OK);
  gs[2] = NAN;
  ck_assert_int_eq(optim_step(o), OPTIM_ENONFINITE);
  ck_assert(x[0] == 1 && x[4] == 5);
  gs[2] = 0;
  ck_assert_int_eq(optim_set_clip_norm(o, 1), OPTIM_OK);
  ck_assert_int_eq(optim_step(o), OPTIM_ECONFIG); /* clipping does not apply */
  ck_assert_int_eq(optim_set_clip_norm(o, 0), OPTIM_OK);
  ck_assert_int_eq(optim_step(o), OPTIM_OK);
  optim_destroy(o);
  /* no finite-sum group; a buffer for another algorithm */
  ck_assert_int_eq(optim_create(&o), OPTIM_OK);
  ck_assert_int_eq(optim_add_group(o, "adam", NULL), OPTIM_OK);
  int64_t shape[1] = {D};
  ck_assert_int_eq(optim_add_param(o, 0, "x", OPTIM_FLOAT64, 1, shape, x, g, NULL), OPTIM_OK);
  ck_assert_int_eq(optim_snapshot(o, full_grad, &c), OPTIM_ECONFIG);
  ck_assert_int_eq(optim_param_bind_snapshot_grad(o, 0, gs), OPTIM_EUNSUPPORTED);
  optim_destroy(o);
}
END_TEST

/* A run saved and resumed mid-loop equals the uninterrupted one. */
START_TEST(test_resume)
{
  problem();
  char path[] = "/tmp/optim-svrg-XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  close(fd);
  double x[2][D] = {{0}, {0}}, g[D], gs[D];
  cb c = {0};
  optim_optimizer *o[2];
  for (int r = 0; r < 2; r++) o[r] = make("diagonal=true,seed=3", x[r], g, gs);
  for (int outer = 0; outer < 3; outer++) {
    for (int r = 0; r < 2; r++) ck_assert_int_eq(optim_snapshot(o[r], full_grad, &c), OPTIM_OK);
    for (int t = 0; t < 5; t++) {
      for (int r = 0; r < 2; r++) {
        const void *d;
        ck_assert_int_eq(optim_state_buffer(o[r], 0, "snapshot", &d, NULL), OPTIM_OK);
        grad_at(x[r], 5 * t, 3, g);
        grad_at(d, 5 * t, 3, gs);
        ck_assert_int_eq(optim_step(o[r]), OPTIM_OK);
      }
      if (outer == 1 && t == 2) {
        ck_assert_int_eq(optim_save(o[1], path), OPTIM_OK);
        optim_destroy(o[1]);
        o[1] = make("diagonal=true", x[1], g, gs);
        ck_assert_int_eq(optim_load(o[1], path), OPTIM_OK);
      }
      ck_assert(memcmp(x[0], x[1], sizeof x[0]) == 0);
    }
  }
  optim_destroy(o[0]);
  optim_destroy(o[1]);
  unlink(path);
}
END_TEST

/* ------------------------------------------------------------------------
 * Golden trajectories: tests/golden/adasvrg.txt.  Each case names a
 * least-squares problem (problem N D PSEED: a_ij, b_i from the golden
 * noise, README "AdaSVRG"), the parameters (their flattened values
 * concatenated are the model vector x), outer loops (a snapshot, then the
 * listed minibatches), and the values after every step and the state after
 * every loop.  Gradients are computed in double in the README's order and
 * rounded once to the dtype, as the generator does; the values are compared
 * tensor-wise (max |got - want| <= rtol * max |want|), rtol 1e-6 (float32)
 * and 1e-12 (float64): every value depends on the group's norms. */

enum { SV_MAXP = 3, SV_MAXN = 64, SV_MAXD = 16, SV_MAXSTEP = 64, SV_MAXLOOP = 16 };
enum { SV_CHECK, SV_STATE, SV_SCALAR, SV_PROBE };

typedef struct sv_line {
  int kind, at, param; /* at: the step (check) or the loop (loopstate) */
  char key[16];
  double *v;
  size_t nv;
  int64_t scalar;
} sv_line;

typedef struct sv_case {
  char name[64], options[256];
  int dtype, np, n, d, pseed, nloops, nsteps;
  char pname[SV_MAXP][32];
  int ndim[SV_MAXP];
  int64_t shape[SV_MAXP][4];
  size_t numel[SV_MAXP], off[SV_MAXP];
  double *init[SV_MAXP];
  int loop_steps[SV_MAXLOOP];
  int batch[SV_MAXSTEP + 1][SV_MAXN], bsize[SV_MAXSTEP + 1];
  sv_line *lines;
  int nlines;
} sv_case;

static sv_case *svc;
static int nsvc;

static int sv_param_index(const sv_case *c, const char *name)
{
  for (int j = 0; j < c->np; j++)
    if (!strcmp(c->pname[j], name)) return j;
  return -1;
}

static void sv_bad(const char *path, int lineno)
{
  fprintf(stderr, "%s:%d: malformed line\n", path, lineno);
  exit(1);
}

static void sv_load(const char *path)
{
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "cannot open %s\n", path);
    exit(1);
  }
  char *line = NULL, word[32], name[64];
  size_t cap = 0;
  ssize_t len;
  int lineno = 0, capc = 0, capl = 0;
  sv_case *c = NULL;
  while ((len = getline(&line, &cap, f)) > 0) {
    lineno++;
    if (line[len - 1] == '\n') line[len - 1] = '\0';
    int off = 0;
    if (line[0] == '#' || sscanf(line, "%31s%n", word, &off) != 1) continue;
    char *rest = line + off;
    if (!strcmp(word, "case")) {
      if (nsvc == capc) svc = realloc(svc, sizeof *svc * (size_t)(capc = capc ? 2 * capc : 32));
      c = &svc[nsvc++];
      memset(c, 0, sizeof *c);
      capl = 0;
      sscanf(rest, "%63s", c->name);
      continue;
    }
    if (!c) sv_bad(path, lineno);
    if (!strcmp(word, "algorithm")) {
      if (sscanf(rest, "%31s", name) != 1 || strcmp(name, "adasvrg")) sv_bad(path, lineno);
    } else if (!strcmp(word, "dtype")) {
      sscanf(rest, "%31s", name);
      c->dtype = !strcmp(name, "f32") ? OPTIM_FLOAT32 : OPTIM_FLOAT64;
    } else if (!strcmp(word, "seed")) {
      /* the initial values are in the file */
    } else if (!strcmp(word, "options")) {
      sscanf(rest, "%255s", c->options);
    } else if (!strcmp(word, "problem")) {
      if (sscanf(rest, "%d %d %d", &c->n, &c->d, &c->pseed) != 3 || c->n > SV_MAXN ||
          c->d > SV_MAXD)
        sv_bad(path, lineno);
    } else if (!strcmp(word, "param")) {
      int j = c->np++, n = 0, m;
      if (j >= SV_MAXP || sscanf(rest, "%31s %d%n", c->pname[j], &c->ndim[j], &n) != 2)
        sv_bad(path, lineno);
      c->numel[j] = 1;
      for (int k = 0; k < c->ndim[j]; k++) {
        if (sscanf(rest + n, "%ld%n", &c->shape[j][k], &m) != 1) sv_bad(path, lineno);
        n += m;
        c->numel[j] *= (size_t)c->shape[j][k];
      }
      c->off[j] = j ? c->off[j - 1] + c->numel[j - 1] : 0;
    } else if (!strcmp(word, "init") || !strcmp(word, "probe") || !strcmp(word, "check") ||
               !strcmp(word, "loopstate") || !strcmp(word, "scalar")) {
      sv_line l = {0};
      int n = 0;
      if (!strcmp(word, "init") || !strcmp(word, "probe")) {
        sscanf(rest, "%63s%n", name, &n);
        l.kind = SV_PROBE;
        l.at = 1; /* the first snapshot */
      } else if (!strcmp(word, "check")) {
        sscanf(rest, "%d %63s%n", &l.at, name, &n);
        l.kind = SV_CHECK;
      } else if (!strcmp(word, "loopstate")) {
        sscanf(rest, "%d %63s %15s%n", &l.at, name, l.key, &n);
        l.kind = SV_STATE;
      } else {
        sscanf(rest, "%63s %15s%n", name, l.key, &n);
        l.kind = SV_SCALAR;
      }
      l.param = sv_param_index(c, name);
      if (l.param < 0 || n == 0) sv_bad(path, lineno);
      if (l.kind == SV_SCALAR) {
        if (sscanf(rest + n, "%ld", &l.scalar) != 1) sv_bad(path, lineno);
      } else {
        l.v = golden_values(rest + n, 0, &l.nv);
        if (l.nv == 0 || (l.kind != SV_STATE && l.nv != c->numel[l.param]))
          sv_bad(path, lineno);
      }
      if (!strcmp(word, "init")) {
        c->init[l.param] = l.v;
        continue;
      }
      if (c->nlines == capl)
        c->lines = realloc(c->lines, sizeof *c->lines * (size_t)(capl = capl ? 2 * capl : 64));
      c->lines[c->nlines++] = l;
    } else if (!strcmp(word, "loop")) {
      int lo, m;
      if (sscanf(rest, "%d %d", &lo, &m) != 2 || lo != c->nloops + 1 || lo > SV_MAXLOOP)
        sv_bad(path, lineno);
      c->loop_steps[c->nloops++] = m;
    } else if (!strcmp(word, "batch")) {
      int t, n = 0, m, i;
      if (sscanf(rest, "%d%n", &t, &n) != 1 || t != c->nsteps + 1 || t > SV_MAXSTEP)
        sv_bad(path, lineno);
      c->nsteps = t;
      while (sscanf(rest + n, "%d%n", &i, &m) == 1) {
        if (c->bsize[t] == SV_MAXN || i < 0 || i >= c->n) sv_bad(path, lineno);
        c->batch[t][c->bsize[t]++] = i;
        n += m;
      }
      if (c->bsize[t] == 0) sv_bad(path, lineno);
    } else if (!strcmp(word, "end")) {
      int total = 0;
      for (int k = 0; k < c->nloops; k++) total += c->loop_steps[k];
      size_t d = 0;
      for (int j = 0; j < c->np; j++) d += c->numel[j];
      if (total != c->nsteps || d != (size_t)c->d || c->np == 0) sv_bad(path, lineno);
      for (int j = 0; j < c->np; j++)
        if (!c->init[j]) sv_bad(path, lineno);
      c = NULL;
    } else {
      sv_bad(path, lineno);
    }
  }
  free(line);
  fclose(f);
}

typedef struct sv_ctx {
  const sv_case *c;
  double A[SV_MAXN][SV_MAXD], B[SV_MAXN];
  int calls;
  double probe[SV_MAXD]; /* the points of the second call */
} sv_ctx;

static double sv_get(int dtype, const void *b, size_t i)
{
  return dtype == OPTIM_FLOAT32 ? (double)((const float *)b)[i] : ((const double *)b)[i];
}

static void sv_put(int dtype, void *b, size_t i, double v)
{
  if (dtype == OPTIM_FLOAT32) ((float *)b)[i] = (float)v;
  else ((double *)b)[i] = v;
}

/* The minibatch gradient at pt in the README's order, in double. */
static void sv_grad(const sv_ctx *x, const double *pt, const int *batch, int m, double *g)
{
  const int d = x->c->d;
  double r[SV_MAXN];
  for (int k = 0; k < m; k++) {
    double acc = -x->B[batch[k]];
    for (int j = 0; j < d; j++) acc = acc + x->A[batch[k]][j] * pt[j];
    r[k] = acc;
  }
  for (int j = 0; j < d; j++) {
    double acc = 0;
    for (int k = 0; k < m; k++) acc = acc + r[k] * x->A[batch[k]][j];
    g[j] = acc / m;
  }
}

/* Scatter the model-vector gradient g into the parameters' buffers. */
static void sv_scatter(const sv_case *c, const double *g, void *const *bufs)
{
  for (int j = 0; j < c->np; j++)
    for (size_t i = 0; i < c->numel[j]; i++) sv_put(c->dtype, bufs[j], i, g[c->off[j] + i]);
}

static int sv_full(void *ud, int count, const int *params, const void *const *points,
                   void *const *grads)
{
  sv_ctx *x = ud;
  const sv_case *c = x->c;
  double pt[SV_MAXD], g[SV_MAXD];
  int all[SV_MAXN];
  x->calls++;
  ck_assert_int_eq(count, c->np);
  for (int k = 0; k < count; k++) {
    ck_assert_int_eq(params[k], k);
    for (size_t i = 0; i < c->numel[k]; i++) pt[c->off[k] + i] = sv_get(c->dtype, points[k], i);
  }
  if (x->calls == 2) memcpy(x->probe, pt, sizeof pt);
  for (int i = 0; i < c->n; i++) all[i] = i;
  sv_grad(x, pt, all, c->n, g);
  sv_scatter(c, g, grads);
  return 0;
}

static void sv_compare(const sv_case *c, const sv_line *l, const void *got, size_t n,
                       const char *what)
{
  double rtol = c->dtype == OPTIM_FLOAT32 ? 1e-6 : 1e-12, scale = 0, worst = 0;
  size_t at = 0;
  ck_assert_msg(n == l->nv, "%s: %s %s: %zu values, want %zu", c->name, c->pname[l->param],
                what, n, l->nv);
  for (size_t i = 0; i < n; i++)
    if (fabs(l->v[i]) > scale) scale = fabs(l->v[i]);
  for (size_t i = 0; i < n; i++) {
    double d = fabs(sv_get(c->dtype, got, i) - l->v[i]);
    if (d > worst) {
      worst = d;
      at = i;
    }
  }
  ck_assert_msg(worst <= rtol * scale,
                "%s: %s %s %d: element %zu got %.17g want %.17g (max |diff| %.3g, "
                "max |want| %.3g)",
                c->name, c->pname[l->param], what, l->at, at, sv_get(c->dtype, got, at),
                l->v[at], worst, scale);
}

START_TEST(test_golden)
{
  const sv_case *c = &svc[_i];
  const size_t es = c->dtype == OPTIM_FLOAT32 ? 4 : 8;
  sv_ctx *ctx = calloc(1, sizeof *ctx);
  ctx->c = c;
  for (int i = 0; i < c->n; i++) {
    for (int j = 0; j < c->d; j++)
      ctx->A[i][j] = golden_noise((uint64_t)(i * c->d + j), 1, 2, (uint64_t)c->pseed) +
                     (i % c->d == j);
    ctx->B[i] = golden_noise((uint64_t)i, 4, 5, (uint64_t)c->pseed);
  }
  optim_optimizer *o;
  void *data[SV_MAXP], *grad[SV_MAXP], *sgrad[SV_MAXP];
  ck_assert_int_eq(optim_create(&o), OPTIM_OK);
  ck_assert_int_eq(optim_add_group(o, "adasvrg", NULL), OPTIM_OK);
  if (strcmp(c->options, "-"))
    ck_assert_msg(optim_configure(o, 0, c->options) == OPTIM_OK, "%s: %s", c->name,
                  optim_errmsg(o));
  for (int j = 0; j < c->np; j++) {
    data[j] = malloc(c->numel[j] * es);
    grad[j] = malloc(c->numel[j] * es);
    sgrad[j] = malloc(c->numel[j] * es);
    for (size_t i = 0; i < c->numel[j]; i++) sv_put(c->dtype, data[j], i, c->init[j][i]);
    ck_assert_int_eq(optim_add_param(o, 0, c->pname[j], c->dtype, c->ndim[j], c->shape[j],
                                     data[j], grad[j], NULL),
                     OPTIM_OK);
    ck_assert_int_eq(optim_param_bind_snapshot_grad(o, j, sgrad[j]), OPTIM_OK);
  }
  int nprobe = 0, used = 0, t = 0;
  for (int k = 0; k < c->nlines; k++) nprobe += c->lines[k].kind == SV_PROBE;
  double x[SV_MAXD], snap[SV_MAXD], g[SV_MAXD];
  for (int lo = 1; lo <= c->nloops; lo++) {
    int calls = ctx->calls;
    for (int j = 0; j < c->np; j++)
      for (size_t i = 0; i < c->numel[j]; i++) snap[c->off[j] + i] = sv_get(c->dtype, data[j], i);
    ck_assert_msg(optim_snapshot(o, sv_full, ctx) == OPTIM_OK, "%s: %s", c->name,
                  optim_errmsg(o));
    /* the adaptive step size's first snapshot also asks at the probe point */
    ck_assert_int_eq(ctx->calls - calls, lo == 1 && nprobe ? 2 : 1);
    for (int k = 0; lo == 1 && k < c->nlines; k++) {
      const sv_line *l = &c->lines[k];
      if (l->kind != SV_PROBE) continue;
      double got[SV_MAXD];
      for (size_t i = 0; i < c->numel[l->param]; i++)
        sv_put(c->dtype, got, i, ctx->probe[c->off[l->param] + i]);
      sv_compare(c, l, got, c->numel[l->param], "probe point of snapshot");
      used++;
    }
    for (int s = 0; s < c->loop_steps[lo - 1]; s++) {
      t++;
      for (int j = 0; j < c->np; j++)
        for (size_t i = 0; i < c->numel[j]; i++) x[c->off[j] + i] = sv_get(c->dtype, data[j], i);
      sv_grad(ctx, x, c->batch[t], c->bsize[t], g);
      sv_scatter(c, g, grad);
      sv_grad(ctx, snap, c->batch[t], c->bsize[t], g);
      sv_scatter(c, g, sgrad);
      ck_assert_msg(optim_step(o) == OPTIM_OK, "%s: %s", c->name, optim_errmsg(o));
      for (int k = 0; k < c->nlines; k++) {
        const sv_line *l = &c->lines[k];
        if (l->kind != SV_CHECK || l->at != t) continue;
        sv_compare(c, l, data[l->param], c->numel[l->param], "values after step");
        used++;
      }
    }
    for (int k = 0; k < c->nlines; k++) {
      const sv_line *l = &c->lines[k];
      if (l->kind != SV_STATE || l->at != lo) continue;
      const void *buf;
      int64_t n;
      ck_assert_msg(optim_state_buffer(o, l->param, l->key, &buf, &n) == OPTIM_OK, "%s: %s",
                    c->name, optim_errmsg(o));
      char what[48];
      snprintf(what, sizeof what, "%s after loop", l->key);
      sv_compare(c, l, buf, (size_t)n, what);
      used++;
    }
  }
  for (int k = 0; k < c->nlines; k++) {
    const sv_line *l = &c->lines[k];
    if (l->kind != SV_SCALAR) continue;
    int64_t v;
    ck_assert_int_eq(optim_state_scalar(o, l->param, l->key, &v), OPTIM_OK);
    ck_assert_msg(v == l->scalar, "%s: %s %s = %ld, want %ld", c->name, c->pname[l->param],
                  l->key, (long)v, (long)l->scalar);
    used++;
  }
  ck_assert_int_eq(used, c->nlines);
  ck_assert_int_eq(t, c->nsteps);
  optim_destroy(o);
  for (int j = 0; j < c->np; j++) {
    free(data[j]);
    free(grad[j]);
    free(sgrad[j]);
  }
  free(ctx);
}
END_TEST

int main(void)
{
  sv_load(GOLDEN_DIR "/adasvrg.txt");
  if (nsvc < 20) {
    fprintf(stderr, "only %d adasvrg golden cases found\n", nsvc);
    return 1;
  }
  Suite *s = suite_create("finitesum");
  TCase *tc = tcase_create("adasvrg");
  tcase_add_test(tc, test_rule);
  tcase_add_test(tc, test_adaptive_and_convergence);
  tcase_add_test(tc, test_bad_input);
  tcase_add_test(tc, test_resume);
  suite_add_tcase(s, tc);
  TCase *tg = tcase_create("golden");
  tcase_add_loop_test(tg, test_golden, 0, nsvc);
  suite_add_tcase(s, tg);
  return run_suite(s);
}
