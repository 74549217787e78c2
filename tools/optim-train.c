/* optim-train - train a classifier (softmax regression or an MLP) with
 * liboptim on a real data set (Fashion-MNIST by default), on one process
 * or data-parallel under mpirun.  See optim-train(1). */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "optim.h"
#ifdef OPTIM_TRAIN_MPI
#include "optim_mpi.h"
#endif
#include "common.h"
#include "train/checkpoint.h"
#include "train/data.h"
#include "train/model.h"
#include "train/spec.h"

#define DEFAULT_DATA "/usr/share/datasets/fashion-mnist"
#define DEFAULT_OPTIM "muon:lr=0.02;adamw:lr=1e-3,weight_decay=0.01"
enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

typedef struct options {
  const char *data_dir, *train, *test, *format, *optim, *hidden, *log, *plot, *checkpoint,
      *resume, *reduce;
  int synthetic, header, label_col, quiet, threads;
  double test_fraction;
  int64_t epochs, batch, log_every, checkpoint_every, max_steps;
  double clip_norm;
  const char *schedule;
  uint64_t seed;
} options;

static int rank, nranks = 1;

static void say(const char *fmt, ...)
{
  if (rank != 0) return;
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stdout, fmt, ap);
  va_end(ap);
  fflush(stdout);
}

static void complain(const char *fmt, ...)
{
  if (rank != 0) return;
  va_list ap;
  va_start(ap, fmt);
  fputs("optim-train: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static double now(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void usage(FILE *f)
{
  fprintf(f,
          "Usage: optim-train [OPTION]...\n"
          "Train a classifier with liboptim: softmax regression or an MLP with ReLU,\n"
          "cross-entropy loss, on Fashion-MNIST (the default), IDX, LIBSVM or CSV data.\n"
          "Under mpirun the data is sharded by rank and gradients are averaged with\n"
          "liboptim_mpi.\n\n"
          "Data:\n"
          "      --data DIR           IDX data set directory (train-images-idx3-ubyte[.gz],\n"
          "                           train-labels-idx1-ubyte[.gz], t10k-...; default\n"
          "                           " DEFAULT_DATA ")\n"
          "      --train FILE         training file (with --format libsvm or csv)\n"
          "      --test FILE          test file (default: split with --test-fraction)\n"
          "      --format FMT         idx (default), libsvm or csv\n"
          "      --label-col N        CSV: 1-based label column (default: the last)\n"
          "      --header             CSV: skip the first line\n"
          "      --test-fraction F    held-out fraction without a test file (default 0.1)\n"
          "      --synthetic          use the built-in synthetic data set\n"
          "Model and training:\n"
          "      --hidden LIST        hidden layer widths, e.g. 256,128 (default); 0 or\n"
          "                           an empty list gives softmax regression\n"
          "  -o, --optim SPEC         optimizer groups (default '" DEFAULT_OPTIM "'):\n"
          "                           ALG[:NAME=VALUE,...][;ALG[:...]]; with two groups the\n"
          "                           weight matrices of hidden layers go to the first and\n"
          "                           everything else (biases, output layer) to the second\n"
          "  -e, --epochs N           epochs (default 2)\n"
          "  -b, --batch N            global batch size (default 128)\n"
          "  -s, --seed N             seed of the initialization and shuffling (default 1)\n"
          "      --max-steps N        stop after N optimizer steps in all\n"
          "      --schedule SPEC      learning-rate schedule of every group, e.g.\n"
          "                           warmup_cosine:warmup=200 (total= defaults to the\n"
          "                           run's steps; see optim_schedule_eval(3))\n"
          "      --clip-norm X        clip the global gradient norm to X\n"
          "  -t, --threads N          threads for BLAS and liboptim (default: the libraries'\n"
          "                           own choice; 1 per rank under mpirun)\n"
          "      --reduce MODE        under mpirun: mpi (default) or ordered (bit-identical\n"
          "                           repeated runs)\n"
          "Output:\n"
          "  -q, --quiet              no progress bar: plain lines every --log-every steps\n"
          "      --log FILE.csv       one row per logging interval and per epoch\n"
          "      --log-every N        logging interval in steps (default 50)\n"
          "      --plot FILE.png      plot loss and accuracy with gnuplot\n"
          "      --checkpoint FILE    save model and optimizer state (atomically)\n"
          "      --checkpoint-every N save every N steps (default: at the end only)\n"
          "      --resume FILE        continue a run from its checkpoint\n"
          "  -h, --help               show this help and exit\n"
          "  -V, --version            show the version and exit\n\n"
          "Exit status: 0 on success, 1 on a runtime error, 2 on a usage or data error.\n");
}

static int parse_int(const char *s, const char *what, int64_t lo, int64_t hi, int64_t *out)
{
  char msg[256];
  if (tool_parse_int(s, what, lo, hi, out, msg, sizeof msg) == 0) return 0;
  complain("%s", msg);
  return -1;
}

/* ---- data ------------------------------------------------------------------------ */

static int file_exists(const char *p)
{
  struct stat sb;
  return stat(p, &sb) == 0;
}

/* DIR/NAME, or DIR/NAME.gz when only that exists. */
static void idx_path(char *out, size_t n, const char *dir, const char *name)
{
  snprintf(out, n, "%s/%s", dir, name);
  if (!file_exists(out)) snprintf(out, n, "%s/%s.gz", dir, name);
}

static int load_data(const options *o, train_data *tr, train_data *te)
{
  char err[512] = "";
  int st = DATA_OK;
  memset(tr, 0, sizeof *tr);
  memset(te, 0, sizeof *te);
  const char *fmt = o->format ? o->format : "idx";
  if (strcmp(fmt, "idx") && strcmp(fmt, "libsvm") && strcmp(fmt, "csv")) {
    complain("unknown --format '%s' (idx, libsvm or csv)", fmt);
    return -1;
  }
  if (o->synthetic || (!o->train && !o->data_dir && strcmp(fmt, "idx") == 0 &&
                       !file_exists(DEFAULT_DATA))) {
    if (!o->synthetic)
      say("optim-train: Fashion-MNIST is not installed (%s); using the built-in synthetic "
          "data set. Get the real one with: apt-get install dataset-fashion-mnist\n",
          DEFAULT_DATA);
    if (data_synthetic(7000, 64, 10, o->seed, tr) != DATA_OK) return -1;
    train_data all = *tr;
    st = data_split(&all, 1.0 / 7.0, o->seed, tr, te, err, sizeof err);
    data_free(&all);
    if (st) complain("%s", err);
    return st ? -1 : 0;
  }
  if (strcmp(fmt, "idx") == 0) {
    if (o->train || o->test) {
      complain("--train/--test take LIBSVM or CSV files (--format); IDX sets are read "
               "with --data DIR");
      return -1;
    }
    const char *dir = o->data_dir ? o->data_dir : DEFAULT_DATA;
    char a[4096], b[4096];
    idx_path(a, sizeof a, dir, "train-images-idx3-ubyte");
    idx_path(b, sizeof b, dir, "train-labels-idx1-ubyte");
    st = data_load_idx(a, b, tr, err, sizeof err);
    if (st == DATA_OK) {
      idx_path(a, sizeof a, dir, "t10k-images-idx3-ubyte");
      idx_path(b, sizeof b, dir, "t10k-labels-idx1-ubyte");
      st = data_load_idx(a, b, te, err, sizeof err);
    }
  } else {
    if (!o->train) {
      complain("--format %s needs --train FILE", fmt);
      return -1;
    }
    int csv = strcmp(fmt, "csv") == 0, col = o->label_col > 0 ? o->label_col - 1 : -1;
    st = csv ? data_load_csv(o->train, col, o->header, tr, err, sizeof err)
             : data_load_libsvm(o->train, tr, err, sizeof err);
    if (st == DATA_OK && o->test)
      st = csv ? data_load_csv(o->test, col, o->header, te, err, sizeof err)
               : data_load_libsvm(o->test, te, err, sizeof err);
    if (st == DATA_OK && !o->test) {
      train_data all = *tr;
      memset(tr, 0, sizeof *tr);
      st = data_split(&all, o->test_fraction, o->seed, tr, te, err, sizeof err);
      data_free(&all);
    }
    if (st == DATA_OK && !csv) st = data_match_dims(tr, te, err, sizeof err);
    if (st == DATA_OK && tr->dim != te->dim) {
      snprintf(err, sizeof err, "%s has %lld features, %s %lld", o->train, (long long)tr->dim,
               o->test, (long long)te->dim);
      st = DATA_EFORMAT;
    }
  }
  if (st == DATA_OK && !tr->y) st = data_map_labels(tr, te, err, sizeof err);
  if (st == DATA_OK && tr->dim != te->dim) {
    snprintf(err, sizeof err, "training data has %lld features per sample, test data %lld",
             (long long)tr->dim, (long long)te->dim);
    st = DATA_EFORMAT;
  }
  if (st != DATA_OK) {
    complain("%s", err);
    data_free(tr);
    data_free(te);
    return -1;
  }
  return 0;
}

/* ---- the optimizer ----------------------------------------------------------------- */

typedef struct run {
  options o;
  train_data tr, te;
  model m;
  optim_optimizer *opt;
#ifdef OPTIM_TRAIN_MPI
  optim_mpi *ctx;
#endif
  train_pos pos;
  FILE *log;
  char log_path[4096];
  int tmp_log;
  /* the batch of the step under way, for the Hessian-vector callback */
  const float *bx;
  const int32_t *by;
  int64_t bn;
  float bscale;
  float *hv_save;  /* gradients, g(w) and w: 3 nparams, allocated on first use */
  double *hv_e;    /* per tensor: the finite-difference step */
} run;

/* Hessian-vector products for adahessian, by finite differences of the
 * gradient on this rank's share of the batch under way:
 *   H z ~ (g(w + e z) - g(w)) / e,  e = 1e-3 max(1, |w| / |z|) per tensor,
 * both gradients computed here (the gradient buffers, which may already
 * hold a sum over ranks, and the parameters are restored). */
static int train_hvp(void *ud, int count, const int *params, const void *const *z,
                     void *const *hz)
{
  run *r = ud;
  model *m = &r->m;
  size_t np = m->nparams;
  if (!r->hv_save) r->hv_save = malloc(3 * np * sizeof(float));
  if (!r->hv_e) r->hv_e = malloc(2 * (size_t)m->nlayers * sizeof *r->hv_e);
  if (!r->hv_save || !r->hv_e || count > 2 * m->nlayers) return -1;
  float *save = r->hv_save, *g0 = save + np, *w0 = save + 2 * np;
  double *e = r->hv_e;
  memcpy(save, m->grads, np * sizeof(float));
  model_train_batch(m, r->bx, r->by, r->bn, r->bscale, NULL);
  memcpy(g0, m->grads, np * sizeof(float));
  memcpy(w0, m->params, np * sizeof(float));
  for (int k = 0; k < count; k++) {
    float *w;
    int64_t n;
    optim_param_buffers(r->opt, params[k], (void **)&w, NULL);
    int ndim;
    int64_t shape[OPTIM_MAX_DIMS];
    optim_param_info(r->opt, params[k], NULL, NULL, NULL, &ndim, shape);
    n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    double ww = 0, zz = 0;
    const float *zk = z[k];
    for (int64_t i = 0; i < n; i++) {
      ww += (double)w[i] * w[i];
      zz += (double)zk[i] * zk[i];
    }
    double ratio = zz > 0 ? sqrt(ww / zz) : 0;
    e[k] = 1e-3 * (ratio > 1 ? ratio : 1);
    for (int64_t i = 0; i < n; i++) w[i] += (float)(e[k] * zk[i]);
  }
  model_train_batch(m, r->bx, r->by, r->bn, r->bscale, NULL);
  for (int k = 0; k < count; k++) {
    float *w, *out = hz[k];
    optim_param_buffers(r->opt, params[k], (void **)&w, NULL);
    size_t off = (size_t)(w - m->params);
    int ndim;
    int64_t shape[OPTIM_MAX_DIMS], n = 1;
    optim_param_info(r->opt, params[k], NULL, NULL, NULL, &ndim, shape);
    for (int d = 0; d < ndim; d++) n *= shape[d];
    for (int64_t i = 0; i < n; i++)
      out[i] = (float)(((double)m->grads[off + (size_t)i] - g0[off + (size_t)i]) / e[k]);
  }
  memcpy(m->params, w0, np * sizeof(float));
  memcpy(m->grads, save, np * sizeof(float));
  return 0;
}

static int build_optimizer(run *r)
{
  spec_group g[SPEC_MAX_GROUPS];
  char err[512];
  int ng = spec_parse(r->o.optim, g, SPEC_MAX_GROUPS, err, sizeof err);
  if (ng < 0) {
    complain("--optim: %s", err);
    return EXIT_USAGE;
  }
  if (ng > 2) {
    complain("--optim: %d groups given; optim-train uses one (every parameter) or two "
             "(hidden-layer matrices; the rest)", ng);
    return EXIT_USAGE;
  }
  if (optim_create(&r->opt) != OPTIM_OK) return EXIT_RUNTIME;
  for (int k = 0; k < ng; k++) {
    int gi, st = optim_add_group(r->opt, g[k].algorithm, &gi);
    if (st == OPTIM_EUNKNOWN) {
      char known[1024] = "";
      for (int a = 0; a < optim_algorithm_count(); a++)
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", a ? ", " : "",
                 optim_algorithm_name(a));
      complain("--optim: unknown algorithm '%s' (known: %s)", g[k].algorithm, known);
      return EXIT_USAGE;
    }
    if (st == OPTIM_OK && g[k].options[0]) st = optim_configure(r->opt, gi, g[k].options);
    if (st != OPTIM_OK) {
      complain("--optim: %s: %s", g[k].algorithm, optim_errmsg(r->opt));
      return EXIT_USAGE;
    }
  }
  /* BLAS gets the threads.  A small model's step is a fraction of a
   * millisecond: on more threads it saves little, and the OpenMP team's
   * spinning after it competes with the BLAS threads of the next batch
   * (measured: 2.1x slower epochs for 235k parameters on 2 cores). */
  const model *m = &r->m;
  optim_set_threads(r->opt, m->nparams >= ((size_t)1 << 22) && r->o.threads > 0 ? r->o.threads
                                                                                 : 1);
  for (int l = 0; l < m->nlayers; l++) {
    char name[64];
    int64_t ws[2] = {m->n[l + 1], m->n[l]}, bs = m->n[l + 1];
    int hidden = l + 1 < m->nlayers, gw = ng == 2 && !hidden ? 1 : 0, gb = ng == 2 ? 1 : 0;
    snprintf(name, sizeof name, "layer%d.weight", l);
    int st = optim_add_param(r->opt, gw, name, OPTIM_FLOAT32, 2, ws, m->params + m->w_off[l],
                             m->grads + m->w_off[l], NULL);
    if (st == OPTIM_OK) {
      snprintf(name, sizeof name, "layer%d.bias", l);
      st = optim_add_param(r->opt, gb, name, OPTIM_FLOAT32, 1, &bs, m->params + m->b_off[l],
                           m->grads + m->b_off[l], NULL);
    }
    if (st != OPTIM_OK) {
      complain("--optim: %s%s", optim_errmsg(r->opt),
               st == OPTIM_EUNSUPPORTED ? " (give matrix algorithms nonmatrix=adamw, or a "
                                          "second group for the rest)"
                                        : "");
      return EXIT_USAGE;
    }
  }
  if (r->o.clip_norm > 0 && optim_set_clip_norm(r->opt, r->o.clip_norm) != OPTIM_OK) {
    complain("--clip-norm: %s", optim_errmsg(r->opt));
    return EXIT_USAGE;
  }
  if (r->o.schedule) {
    /* total= defaults to the run's steps for the kinds that take it */
    char spec[512];
    const char *s = r->o.schedule, *colon = strchr(s, ':');
    size_t klen = colon ? (size_t)(colon - s) : strlen(s);
    int takes_total = !(klen == 8 && !strncmp(s, "constant", 8)) &&
                      !(klen == 4 && !strncmp(s, "step", 4)) &&
                      !(klen == 11 && !strncmp(s, "exponential", 11));
    int64_t per_epoch = (r->tr.n + r->o.batch - 1) / r->o.batch, total = per_epoch * r->o.epochs;
    if (r->o.max_steps > 0 && r->o.max_steps < total) total = r->o.max_steps;
    if (takes_total && !strstr(s, "total="))
      snprintf(spec, sizeof spec, "%s%stotal=%lld", s, colon ? "," : ":", (long long)total);
    else
      snprintf(spec, sizeof spec, "%s", s);
    for (int gi = 0; gi < optim_group_count(r->opt); gi++)
      if (optim_set_schedule(r->opt, gi, "lr", spec) != OPTIM_OK) {
        complain("--schedule '%s': %s", spec, optim_errmsg(r->opt));
        return EXIT_USAGE;
      }
  }
  /* (only adahessian groups call it) */
  optim_set_hvp_callback(r->opt, train_hvp, r, r->o.seed);
  int st = optim_validate(r->opt);
  if (st != OPTIM_OK) {
    complain("--optim: %s", optim_errmsg(r->opt));
    return EXIT_USAGE;
  }
  return 0;
}

/* ---- checkpoints -------------------------------------------------------------------- */

static char *opt_tmp_path(const char *path)
{
  size_t n = strlen(path) + 48;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s.optim.%ld", path, (long)getpid());
  return p;
}

static int read_file(const char *path, void **out, size_t *len)
{
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  struct stat sb;
  if (fstat(fileno(f), &sb) != 0) {
    fclose(f);
    return -1;
  }
  *len = (size_t)sb.st_size;
  *out = malloc(*len ? *len : 1);
  int ok = *out && fread(*out, 1, *len, f) == *len;
  fclose(f);
  if (!ok) free(*out);
  return ok ? 0 : -1;
}

static int save_checkpoint(run *r)
{
  const char *path = r->o.checkpoint;
  char err[512] = "";
  void *bytes = NULL;
  size_t len = 0;
  int st = 0;
#ifdef OPTIM_TRAIN_MPI
  if (r->ctx) {
    char prefix[4200];
    snprintf(prefix, sizeof prefix, "%s.mpi", path);
    if (optim_mpi_save(r->ctx, prefix) != OPTIM_OK) {
      complain("cannot save the optimizer state: %s", optim_mpi_errmsg(r->ctx));
      return -1;
    }
    if (rank == 0 && ckpt_write(path, &r->m, &r->pos, NULL, 0, err, sizeof err) != 0) st = -1;
    int all = st;
    MPI_Allreduce(&st, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (st) complain("%s", err);
    return all;
  }
#endif
  char *tmp = opt_tmp_path(path);
  if (!tmp) return -1;
  if (optim_save(r->opt, tmp) != OPTIM_OK) {
    complain("cannot save the optimizer state: %s", optim_errmsg(r->opt));
    st = -1;
  } else if (read_file(tmp, &bytes, &len) != 0) {
    complain("cannot read back %s", tmp);
    st = -1;
  }
  unlink(tmp);
  free(tmp);
  if (st == 0 && ckpt_write(path, &r->m, &r->pos, bytes, len, err, sizeof err) != 0) {
    complain("%s", err);
    st = -1;
  }
  free(bytes);
  return st;
}

static int load_checkpoint(run *r)
{
  const char *path = r->o.resume;
  char err[512];
  void *bytes = NULL;
  size_t len = 0;
  train_pos pos;
  if (ckpt_read(path, &r->m, &pos, &bytes, &len, err, sizeof err) != 0) {
    complain("--resume: %s", err);
    return EXIT_USAGE;
  }
  int64_t ranks = nranks > 1 ? nranks : 0;
  if (pos.seed != r->o.seed || pos.batch != r->o.batch || pos.ntrain != r->tr.n) {
    complain("--resume: %s was written with another seed, batch size or data set (seed %llu, "
             "batch %lld, %lld training samples)",
             path, (unsigned long long)pos.seed, (long long)pos.batch, (long long)pos.ntrain);
    free(bytes);
    return EXIT_USAGE;
  }
  if ((pos.ranks != 0) != (ranks != 0)) {
    complain("--resume: %s was written by a %s run", path,
             pos.ranks ? "distributed (mpirun)" : "single-process");
    free(bytes);
    return EXIT_USAGE;
  }
  int st = OPTIM_OK;
#ifdef OPTIM_TRAIN_MPI
  if (r->ctx) {
    char prefix[4200];
    snprintf(prefix, sizeof prefix, "%s.mpi", path);
    st = optim_mpi_load(r->ctx, prefix);
    if (st) complain("--resume: %s", optim_mpi_errmsg(r->ctx));
  } else
#endif
  {
    char *tmp = opt_tmp_path(path);
    FILE *f = tmp ? fopen(tmp, "wb") : NULL;
    int ok = f && fwrite(bytes, 1, len, f) == len;
    if (f && fclose(f) != 0) ok = 0;
    st = ok ? optim_load(r->opt, tmp) : OPTIM_EIO;
    if (st) complain("--resume: %s: %s", path, ok ? optim_errmsg(r->opt) : "cannot stage it");
    if (tmp) unlink(tmp);
    free(tmp);
  }
  free(bytes);
  if (st) return EXIT_USAGE;
  int64_t steps = 0;
  optim_get_counter(r->opt, 0, "steps", &steps);
  if (steps != pos.step) {
    complain("--resume: the optimizer state of %s is from step %lld, the model's from %lld",
             path, (long long)steps, (long long)pos.step);
    return EXIT_USAGE;
  }
  r->pos = pos;
  r->pos.ranks = ranks;
  return 0;
}

/* ---- output -------------------------------------------------------------------------- */

static const char *log_header =
    "step,epoch,samples,train_loss,train_accuracy,test_loss,test_accuracy,elapsed_s,"
    "samples_per_s\n";

static void log_row(run *r, double epochs, double tl, double ta, double vl, double va,
                    double elapsed, double rate)
{
  if (!r->log) return;
  fprintf(r->log, "%lld,%.6f,%lld,%.6f,%.6f,", (long long)r->pos.step, epochs,
          (long long)(r->pos.step * r->o.batch), tl, ta);
  if (va >= 0) fprintf(r->log, "%.6f,%.6f,", vl, va);
  else fputs(",,", r->log);
  fprintf(r->log, "%.3f,%.1f\n", elapsed, rate);
  fflush(r->log);
}

static void progress(const run *r, int64_t epoch, int64_t s, int64_t per_epoch, double loss,
                     double acc, double rate, double eta, int final)
{
  int width = 24, done = (int)(width * s / (per_epoch ? per_epoch : 1));
  char bar[32];
  for (int i = 0; i < width; i++) bar[i] = i < done ? '#' : '.';
  bar[width] = '\0';
  fprintf(stderr, "\r\033[Kepoch %lld/%lld [%s] %lld/%lld loss %.4f acc %.2f%% %.0f samples/s "
                  "ETA %d:%02d",
          (long long)epoch + 1, (long long)r->o.epochs, bar, (long long)s, (long long)per_epoch,
          loss, 100 * acc, rate, (int)(eta / 60), (int)fmod(eta, 60));
  if (final) fputs("\r\033[K", stderr);
  fflush(stderr);
}

static int plot(const char *csv, const char *png)
{
  FILE *g = popen("gnuplot", "w");
  if (!g) return -1;
  fprintf(g,
          "set datafile separator ','\n"
          "set terminal pngcairo size 1000,420\n"
          "set output '%s'\n"
          "set multiplot layout 1,2 title 'optim-train'\n"
          "set xlabel 'epoch'; set ylabel 'loss'; set grid; set key top right\n"
          "plot '%s' using 2:4 every ::1 with lines title 'train loss', "
          "'' using 2:($6) every ::1 with linespoints title 'test loss'\n"
          "set ylabel 'accuracy (%%)'; set key bottom right\n"
          "plot '%s' using 2:($5*100) every ::1 with lines title 'train', "
          "'' using 2:($7*100) every ::1 with linespoints title 'test'\n"
          "unset multiplot\n",
          png, csv, csv);
  return pclose(g) == 0 ? 0 : -1;
}

/* ---- training ------------------------------------------------------------------------- */

static uint64_t mix(uint64_t *s)
{
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* The sample order of an epoch: a function of the seed and the epoch only,
 * so a resumed run sees the same batches. */
static void shuffle(int64_t *perm, int64_t n, uint64_t seed, int64_t epoch)
{
  uint64_t s = seed ^ (0x5851f42d4c957f2dull * (uint64_t)(epoch + 1));
  for (int64_t i = 0; i < n; i++) perm[i] = i;
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = (int64_t)(mix(&s) % (uint64_t)(i + 1));
    int64_t t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
}

static int do_step(run *r)
{
#ifdef OPTIM_TRAIN_MPI
  if (r->ctx) {
    int st = optim_mpi_step(r->ctx);
    if (st) complain("step %lld: %s", (long long)r->pos.step + 1, optim_mpi_errmsg(r->ctx));
    return st;
  }
#endif
  int st = optim_step(r->opt);
  if (st) complain("step %lld: %s", (long long)r->pos.step + 1, optim_errmsg(r->opt));
  return st;
}

/* Sums across ranks (no-op on one process). */
static void allsum(double *v, int n)
{
#ifdef OPTIM_TRAIN_MPI
  if (nranks > 1) MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
#else
  (void)v;
  (void)n;
#endif
}

static void evaluate(run *r, double *loss, double *acc)
{
  int64_t n = r->te.n, lo = n * rank / nranks, hi = n * (rank + 1) / nranks, c = 0;
  double v[2] = {model_eval_batch(&r->m, r->te.x + lo * r->te.dim, r->te.y + lo, hi - lo, &c),
                 (double)c};
  allsum(v, 2);
  *loss = v[0] / (double)n;
  *acc = v[1] / (double)n;
}

static int train(run *r)
{
  const options *o = &r->o;
  int64_t n = r->tr.n, B = o->batch, per_epoch = (n + B - 1) / B;
  int64_t total = per_epoch * o->epochs;
  if (o->max_steps > 0 && o->max_steps < total) total = o->max_steps;
  int64_t *perm = malloc(sizeof *perm * (size_t)n);
  float *xb = malloc(sizeof *xb * (size_t)(B * r->tr.dim));
  int32_t *yb = malloc(sizeof *yb * (size_t)B);
  if (!perm || !xb || !yb) {
    free(perm);
    free(xb);
    free(yb);
    complain("out of memory");
    return EXIT_RUNTIME;
  }
  int tty = isatty(STDERR_FILENO) && !o->quiet && rank == 0;
  double t0 = now(), tepoch = t0, last_bar = 0, train_s = 0, final_loss = 0, final_acc = 0;
  int64_t epoch_of_perm = -1, step0 = r->pos.step, samples_run = 0;
  int rc = 0;
  while (r->pos.step < total) {
    int64_t epoch = r->pos.step / per_epoch, s = r->pos.step % per_epoch;
    if (epoch != epoch_of_perm) {
      shuffle(perm, n, o->seed, epoch);
      epoch_of_perm = epoch;
      tepoch = now();
    }
    /* this rank's slice of the global batch */
    int64_t b0 = s * B, bn = b0 + B < n ? B : n - b0;
    int64_t lo = bn * rank / nranks, hi = bn * (rank + 1) / nranks;
    for (int64_t i = lo; i < hi; i++) {
      int64_t k = perm[b0 + i];
      memcpy(xb + (i - lo) * r->tr.dim, r->tr.x + k * r->tr.dim, sizeof *xb * (size_t)r->tr.dim);
      yb[i - lo] = r->tr.y[k];
    }
    /* gradient of the batch's mean loss (the MPI step averages the ranks'
     * gradients, so each contributes nranks/bn times its sum) */
    int64_t correct = 0;
    r->bx = xb;
    r->by = yb;
    r->bn = hi - lo;
    r->bscale = (float)((double)nranks / (double)bn);
    double loss = model_train_batch(&r->m, xb, yb, hi - lo, r->bscale, &correct);
    if (do_step(r) != OPTIM_OK) {
      rc = EXIT_RUNTIME;
      break;
    }
    r->pos.step++;
    samples_run += bn;
    r->pos.acc_loss += loss;
    r->pos.acc_correct += correct;
    r->pos.acc_count += hi - lo;
    r->pos.epoch_loss += loss;
    r->pos.epoch_correct += correct;
    r->pos.epoch_count += hi - lo;
    int end_epoch = s + 1 == per_epoch, last = r->pos.step == total;
    double t = now();
    double rate = (double)samples_run / (t - t0 > 0 ? t - t0 : 1e-9);
    if (tty && (t - last_bar > 0.1 || end_epoch || last)) {
      double v[3] = {r->pos.acc_loss, (double)r->pos.acc_correct, (double)r->pos.acc_count};
      progress(r, epoch, s + 1, per_epoch, v[0] / (v[2] ? v[2] : 1), v[1] / (v[2] ? v[2] : 1),
               rate, (double)(total - r->pos.step) * (double)B / rate, 0);
      last_bar = t;
    }
    if (r->pos.step % o->log_every == 0 || end_epoch || last) {
      double v[3] = {r->pos.acc_loss, (double)r->pos.acc_correct, (double)r->pos.acc_count};
      allsum(v, 3);
      double tl = v[0] / v[2], ta = v[1] / v[2], vl = -1, va = -1, epoch_s = now() - tepoch;
      double ev[3] = {r->pos.epoch_loss, (double)r->pos.epoch_correct,
                      (double)r->pos.epoch_count};
      if (end_epoch || last) {
        allsum(ev, 3);
        final_loss = ev[0] / ev[2];
        final_acc = ev[1] / ev[2];
        double te0 = now();
        evaluate(r, &vl, &va);
        t0 += now() - te0; /* evaluation is not training time */
        tepoch += now() - te0;
        if (va > r->pos.best_acc) {
          r->pos.best_acc = va;
          r->pos.best_epoch = epoch + 1;
        }
      }
      if (rank == 0) {
        log_row(r, (double)r->pos.step / (double)per_epoch, tl, ta, vl, va, now() - t0, rate);
        if (tty) fputs("\r\033[K", stderr);
        if (va >= 0)
          say("epoch %lld/%lld: train loss %.4f acc %.2f%%, test loss %.4f acc %.2f%%, "
              "%.2f s, %.0f samples/s\n",
              (long long)epoch + 1, (long long)o->epochs, ev[0] / ev[2], 100 * ev[1] / ev[2], vl,
              100 * va, epoch_s, rate);
        else if (!tty)
          say("  step %lld (epoch %lld, %lld/%lld): loss %.4f acc %.2f%%, %.0f samples/s\n",
              (long long)r->pos.step, (long long)epoch + 1, (long long)s + 1,
              (long long)per_epoch, tl, 100 * ta, rate);
      }
      r->pos.acc_loss = 0;
      r->pos.acc_correct = r->pos.acc_count = 0;
      if (end_epoch) {
        r->pos.epoch_loss = 0;
        r->pos.epoch_correct = r->pos.epoch_count = 0;
      }
    }
    if (o->checkpoint && ((o->checkpoint_every > 0 && r->pos.step % o->checkpoint_every == 0) ||
                          last)) {
      if (save_checkpoint(r) != 0) {
        rc = EXIT_RUNTIME;
        break;
      }
    }
  }
  train_s = now() - t0;
  if (rc == 0 && r->pos.step > step0) {
    double vl, va;
    evaluate(r, &vl, &va);
    say("optim-train: %lld steps (%.2f epochs) in %.2f s, %.0f samples/s; train loss %.4f, "
        "train accuracy %.2f%% (last epoch); test loss %.4f, test accuracy %.2f%% (best %.2f%% "
        "after epoch %lld)\n",
        (long long)(r->pos.step - step0), (double)(r->pos.step - step0) / (double)per_epoch,
        train_s, (double)samples_run / (train_s > 0 ? train_s : 1e-9), final_loss,
        100 * final_acc, vl, 100 * va, 100 * r->pos.best_acc, (long long)r->pos.best_epoch);
  }
  free(perm);
  free(xb);
  free(yb);
  return rc;
}

/* ---- main ------------------------------------------------------------------------------ */

static int parse_hidden(const char *s, int64_t *w, int *nh)
{
  *nh = 0;
  if (s == NULL || s[0] == '\0' || strcmp(s, "0") == 0) return 0;
  const char *p = s;
  while (*p) {
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (end == p || errno || v < 1 || v > 65536 || (*end != ',' && *end != '\0') ||
        *nh == MODEL_MAX_LAYERS - 1) {
      complain("invalid --hidden '%s' (comma-separated widths from 1 to 65536, at most %d)", s,
               MODEL_MAX_LAYERS - 1);
      return -1;
    }
    w[(*nh)++] = v;
    p = *end ? end + 1 : end;
  }
  return 0;
}

#ifdef OPTIM_TRAIN_MPI
/* Started by mpirun/mpiexec (Open MPI, MPICH/PMI or PMIx launchers). */
static int in_mpirun(void)
{
  return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}
#endif

static int real_main(int argc, char **argv, run *r)
{
  enum { O_DATA = 256, O_TRAIN, O_TEST, O_FORMAT, O_LABEL, O_HEADER, O_FRACTION, O_SYNTH,
         O_HIDDEN, O_MAXSTEPS, O_REDUCE, O_LOG, O_LOGEVERY, O_PLOT, O_CKPT, O_CKPTEVERY,
         O_RESUME, O_SCHED, O_CLIP };
  static const struct option longopts[] = {
    {"data", required_argument, 0, O_DATA},         {"train", required_argument, 0, O_TRAIN},
    {"test", required_argument, 0, O_TEST},         {"format", required_argument, 0, O_FORMAT},
    {"label-col", required_argument, 0, O_LABEL},   {"header", no_argument, 0, O_HEADER},
    {"test-fraction", required_argument, 0, O_FRACTION},
    {"synthetic", no_argument, 0, O_SYNTH},         {"hidden", required_argument, 0, O_HIDDEN},
    {"optim", required_argument, 0, 'o'},           {"epochs", required_argument, 0, 'e'},
    {"batch", required_argument, 0, 'b'},           {"seed", required_argument, 0, 's'},
    {"max-steps", required_argument, 0, O_MAXSTEPS},
    {"schedule", required_argument, 0, O_SCHED},    {"clip-norm", required_argument, 0, O_CLIP},
    {"threads", required_argument, 0, 't'},         {"reduce", required_argument, 0, O_REDUCE},
    {"quiet", no_argument, 0, 'q'},                 {"log", required_argument, 0, O_LOG},
    {"log-every", required_argument, 0, O_LOGEVERY},
    {"plot", required_argument, 0, O_PLOT},         {"checkpoint", required_argument, 0, O_CKPT},
    {"checkpoint-every", required_argument, 0, O_CKPTEVERY},
    {"resume", required_argument, 0, O_RESUME},     {"help", no_argument, 0, 'h'},
    {"version", no_argument, 0, 'V'},               {0, 0, 0, 0}};
  options *o = &r->o;
  o->optim = DEFAULT_OPTIM;
  o->hidden = "256,128";
  o->epochs = 2;
  o->batch = 128;
  o->seed = 1;
  o->log_every = 50;
  o->test_fraction = 0.1;
  int c;
  int64_t v;
  opterr = rank == 0;
  while ((c = getopt_long(argc, argv, "o:e:b:s:t:qhV", longopts, NULL)) != -1) {
    switch (c) {
    case O_DATA: o->data_dir = optarg; break;
    case O_TRAIN: o->train = optarg; break;
    case O_TEST: o->test = optarg; break;
    case O_FORMAT: o->format = optarg; break;
    case O_LABEL:
      if (parse_int(optarg, "--label-col", 1, INT_MAX, &v)) return EXIT_USAGE;
      o->label_col = (int)v;
      break;
    case O_HEADER: o->header = 1; break;
    case O_FRACTION: {
      char *end;
      o->test_fraction = strtod(optarg, &end);
      if (end == optarg || *end || !(o->test_fraction > 0 && o->test_fraction < 1)) {
        complain("invalid --test-fraction '%s' (expected a number in (0, 1))", optarg);
        return EXIT_USAGE;
      }
      break;
    }
    case O_SYNTH: o->synthetic = 1; break;
    case O_HIDDEN: o->hidden = optarg; break;
    case 'o': o->optim = optarg; break;
    case 'e':
      if (parse_int(optarg, "--epochs", 1, 1000000, &o->epochs)) return EXIT_USAGE;
      break;
    case 'b':
      if (parse_int(optarg, "--batch", 1, 1 << 20, &o->batch)) return EXIT_USAGE;
      break;
    case 's':
      if (parse_int(optarg, "--seed", 0, INT64_MAX, &v)) return EXIT_USAGE;
      o->seed = (uint64_t)v;
      break;
    case O_MAXSTEPS:
      if (parse_int(optarg, "--max-steps", 1, INT64_MAX, &o->max_steps)) return EXIT_USAGE;
      break;
    case 't':
      if (parse_int(optarg, "--threads", 1, 1024, &v)) return EXIT_USAGE;
      o->threads = (int)v;
      break;
    case O_REDUCE: o->reduce = optarg; break;
    case O_SCHED: o->schedule = optarg; break;
    case O_CLIP: {
      char *end;
      o->clip_norm = strtod(optarg, &end);
      if (end == optarg || *end || !(o->clip_norm > 0) || !isfinite(o->clip_norm)) {
        complain("invalid --clip-norm '%s' (expected a positive number)", optarg);
        return EXIT_USAGE;
      }
      break;
    }
    case 'q': o->quiet = 1; break;
    case O_LOG: o->log = optarg; break;
    case O_LOGEVERY:
      if (parse_int(optarg, "--log-every", 1, INT64_MAX, &o->log_every)) return EXIT_USAGE;
      break;
    case O_PLOT: o->plot = optarg; break;
    case O_CKPT: o->checkpoint = optarg; break;
    case O_CKPTEVERY:
      if (parse_int(optarg, "--checkpoint-every", 1, INT64_MAX, &o->checkpoint_every))
        return EXIT_USAGE;
      break;
    case O_RESUME: o->resume = optarg; break;
    case 'h':
      if (rank == 0) usage(stdout);
      return -1;
    case 'V':
      say("optim-train (liboptim) %s\n", optim_version());
      return -1;
    default:
      if (rank == 0) fputs("Try 'optim-train --help' for more information.\n", stderr);
      return EXIT_USAGE;
    }
  }
  if (optind < argc) {
    complain("unexpected argument '%s'", argv[optind]);
    return EXIT_USAGE;
  }
  if (o->checkpoint_every && !o->checkpoint) {
    complain("--checkpoint-every needs --checkpoint FILE");
    return EXIT_USAGE;
  }
  if (o->reduce && strcmp(o->reduce, "mpi") && strcmp(o->reduce, "ordered")) {
    complain("invalid --reduce '%s' (mpi or ordered)", o->reduce);
    return EXIT_USAGE;
  }
  int64_t widths[MODEL_MAX_LAYERS + 1];
  int nh;
  if (parse_hidden(o->hidden, widths + 1, &nh)) return EXIT_USAGE;
  if (o->plot && !gnuplot_available()) {
    complain("--plot needs gnuplot, which is not installed (apt-get install gnuplot-nox); "
             "training without the plot");
    o->plot = NULL;
  }
  if (o->threads == 0 && nranks > 1) o->threads = 1;
  if (o->threads > 0) openblas_set_num_threads(o->threads);

  if (load_data(o, &r->tr, &r->te) != 0) return EXIT_USAGE;
  if (r->tr.n < nranks) {
    complain("%lld training samples for %d ranks", (long long)r->tr.n, nranks);
    return EXIT_USAGE;
  }
  widths[0] = r->tr.dim;
  widths[nh + 1] = r->tr.nclass;
  if (model_init(&r->m, nh + 1, widths, o->batch > 4096 ? o->batch : 4096, o->seed) != 0) {
    complain("cannot allocate the model");
    return EXIT_RUNTIME;
  }
  int st = build_optimizer(r);
  if (st) return st;
  r->pos.seed = o->seed;
  r->pos.batch = o->batch;
  r->pos.ntrain = r->tr.n;
  r->pos.ranks = nranks > 1 ? nranks : 0;
  r->pos.best_epoch = 0;
#ifdef OPTIM_TRAIN_MPI
  if (in_mpirun()) {
    st = optim_mpi_create(r->opt, MPI_COMM_WORLD, &r->ctx);
    if (st == OPTIM_OK && o->reduce) st = optim_mpi_set_option(r->ctx, "reduce", o->reduce);
    if (st) {
      complain("cannot attach the optimizer to MPI: %s",
               r->ctx ? optim_mpi_errmsg(r->ctx) : optim_strerror(st));
      return EXIT_RUNTIME;
    }
  }
#endif
  if (o->resume && (st = load_checkpoint(r)) != 0) return st;
  if (rank == 0 && (o->log || o->plot)) {
    if (o->log) {
      snprintf(r->log_path, sizeof r->log_path, "%s", o->log);
    } else {
      snprintf(r->log_path, sizeof r->log_path, "%s.csv", o->plot);
      r->tmp_log = 1;
    }
    r->log = fopen(r->log_path, o->resume && o->log ? "a" : "w");
    if (!r->log) {
      complain("cannot write %s: %s", r->log_path, strerror(errno));
      return EXIT_USAGE;
    }
    if (ftell(r->log) == 0) fputs(log_header, r->log);
  }
  char groups[256] = "";
  for (int g = 0; g < optim_group_count(r->opt); g++)
    snprintf(groups + strlen(groups), sizeof groups - strlen(groups), "%s%s", g ? " + " : "",
             optim_group_algorithm(r->opt, g));
  say("optim-train: %lld training and %lld test samples, %lld features, %d classes; model",
      (long long)r->tr.n, (long long)r->te.n, (long long)r->tr.dim, r->tr.nclass);
  for (int l = 0; l <= r->m.nlayers; l++) say("%s%lld", l ? "-" : " ", (long long)r->m.n[l]);
  say(" (%zu parameters); %s; batch %lld%s\n", r->m.nparams, groups, (long long)o->batch,
      nranks > 1 ? "" : "");
  if (nranks > 1) say("optim-train: %d ranks, %lld samples of each batch per rank\n", nranks,
                      (long long)(o->batch / nranks));
  st = train(r);
  if (r->log) {
    fclose(r->log);
    r->log = NULL;
    if (st == 0 && o->plot) {
      if (plot(r->log_path, o->plot) == 0) say("optim-train: plot written to %s\n", o->plot);
      else complain("gnuplot failed to draw %s", o->plot);
    }
    if (r->tmp_log) unlink(r->log_path);
  }
  return st;
}

int main(int argc, char **argv)
{
#ifdef OPTIM_TRAIN_MPI
  int mpi = in_mpirun();
  if (mpi) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
  }
#endif
  run r;
  memset(&r, 0, sizeof r);
  int st = real_main(argc, argv, &r);
  if (st < 0) st = 0; /* --help, --version */
#ifdef OPTIM_TRAIN_MPI
  optim_mpi_destroy(r.ctx);
#endif
  optim_destroy(r.opt);
  free(r.hv_save);
  free(r.hv_e);
  model_free(&r.m);
  data_free(&r.tr);
  data_free(&r.te);
#ifdef OPTIM_TRAIN_MPI
  if (mpi) {
    int all = st;
    MPI_Allreduce(&st, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    st = all;
  }
#endif
  return st;
}
