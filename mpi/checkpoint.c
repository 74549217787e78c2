/* checkpoint.c - distributed checkpoints: every rank writes its optimizer
 * (a core checkpoint; only the state it owns or replicates is meaningful)
 * to PREFIX.shardR, and rank 0 then writes the manifest PREFIX: the rank
 * count, each shard's size and FNV-1a hash, every parameter's owner and,
 * for a parameter stepped by ranges (shard_state, blockwise), the range of
 * elements each rank kept state for.  The manifest is written last,
 * atomically, so its presence commits the checkpoint.  Loading on any
 * number of ranks re-plans ownership: each rank restores settings, counters
 * and replicated state from one shard, the state of the matrices it now
 * owns from their old owners' shards, and the state of its (new) range of
 * each ranged parameter from every old shard whose range overlaps it. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpi-internal.h"

#define MANIFEST_MAGIC "liboptim-mpi-checkpoint 1"

static void shard_name(char *buf, size_t size, const char *prefix, int r)
{
  snprintf(buf, size, "%s.shard%d", prefix, r);
}

/* FNV-1a over a file's bytes; -1 on error. */
static int file_hash(const char *path, uint64_t *hash, uint64_t *bytes)
{
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  unsigned char buf[1 << 16];
  uint64_t h = 1469598103934665603ull, n = 0;
  size_t got;
  while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
    for (size_t i = 0; i < got; i++) h = (h ^ buf[i]) * 1099511628211ull;
    n += got;
  }
  int err = ferror(f);
  fclose(f);
  if (err) return -1;
  *hash = h;
  *bytes = n;
  return 0;
}

int optim_mpi_save(optim_mpi *d, const char *prefix)
{
  if (d == NULL || d->magic != OPTIM_MPI_MAGIC) return OPTIM_EINVAL;
  d->errmsg[0] = '\0';
  int st = OPTIM_OK;
  char path[4096];
  uint64_t mine[2] = {0, 0};
  if (prefix == NULL || prefix[0] == '\0' || strlen(prefix) > sizeof path - 32) {
    st = optim_mpi__fail(d, OPTIM_EINVAL, "bad checkpoint prefix");
  } else {
    shard_name(path, sizeof path, prefix, d->rank);
    st = optim_save(d->opt, path);
    if (st) optim_mpi__fail(d, st, "%s", optim_errmsg(d->opt));
    else if (file_hash(path, &mine[0], &mine[1]) != 0)
      st = optim_mpi__fail(d, OPTIM_EIO, "cannot read back %s", path);
  }
  st = optim_mpi__agree(d, st);
  if (st) return st;
  uint64_t *all = d->rank == 0 ? malloc(sizeof *all * 2 * (size_t)d->size) : NULL;
  if (d->rank == 0 && all == NULL) st = optim_mpi__fail(d, OPTIM_ENOMEM, "out of memory");
  MPI_Gather(mine, 2, MPI_UINT64_T, all, 2, MPI_UINT64_T, 0, d->comm);
  if (d->rank == 0 && st == OPTIM_OK) {
    char tmp[4128];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", prefix, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
      st = optim_mpi__fail(d, OPTIM_EIO, "cannot create %s: %s", tmp, strerror(errno));
    } else {
      fprintf(f, "%s\nranks %d\nsteps %lld\n", MANIFEST_MAGIC, d->size, (long long)d->steps);
      for (int r = 0; r < d->size; r++)
        fprintf(f, "shard %d %llu %016llx\n", r, (unsigned long long)all[2 * r + 1],
                (unsigned long long)all[2 * r]);
      fprintf(f, "params %d\n", d->nparams);
      for (int i = 0; i < d->nparams; i++) {
        const char *name;
        int ndim;
        int64_t shape[OPTIM_MAX_DIMS], n = 1;
        optim_param_info(d->opt, i, &name, NULL, NULL, &ndim, shape);
        for (int k = 0; k < ndim; k++) n *= shape[k];
        int ranged = optim_mpi__ranged(d, i);
        fprintf(f, "param %d %d %s %d", i, d->owner[i], name, ranged ? d->size : 0);
        for (int r = 0; ranged && r < d->size; r++) {
          size_t lo, hi;
          optim_mpi__range(d, i, (size_t)n, r, &lo, &hi);
          fprintf(f, " %zu %zu", lo, hi);
        }
        fputc('\n', f);
      }
      int ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
      ok = fclose(f) == 0 && ok;
      if (!ok || rename(tmp, prefix) != 0) {
        unlink(tmp);
        st = optim_mpi__fail(d, OPTIM_EIO, "cannot write %s: %s", prefix, strerror(errno));
      } else {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", prefix);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = '\0';
        else snprintf(dir, sizeof dir, ".");
        int dfd = open(dir, O_RDONLY | O_DIRECTORY);
        if (dfd >= 0) {
          fsync(dfd);
          close(dfd);
        }
      }
    }
  }
  free(all);
  return optim_mpi__agree(d, st);
}

typedef struct manifest {
  int ranks, nparams;
  long long steps;
  uint64_t *hash, *bytes;
  int *owner;
  unsigned char *ranged; /* per parameter: saved by ranges */
  uint64_t *range;       /* per parameter and rank: lo, hi (when ranged) */
} manifest;

static void manifest_free(manifest *m)
{
  free(m->hash);
  free(m->bytes);
  free(m->owner);
  free(m->ranged);
  free(m->range);
}

static int read_manifest(optim_mpi *d, const char *prefix, manifest *m)
{
  FILE *f = fopen(prefix, "r");
  if (f == NULL)
    return optim_mpi__fail(d, OPTIM_EIO, "cannot open %s: %s", prefix, strerror(errno));
  char line[4096];
  int st = OPTIM_OK;
  memset(m, 0, sizeof *m);
  if (!fgets(line, sizeof line, f) || strncmp(line, MANIFEST_MAGIC, strlen(MANIFEST_MAGIC)) != 0)
    st = optim_mpi__fail(d, OPTIM_EFORMAT, "%s is not a liboptim MPI checkpoint manifest", prefix);
  if (st == OPTIM_OK && (fscanf(f, " ranks %d", &m->ranks) != 1 || m->ranks < 1 || m->ranks > 1 << 24))
    st = optim_mpi__fail(d, OPTIM_ECORRUPT, "%s: bad rank count", prefix);
  if (st == OPTIM_OK && (fscanf(f, " steps %lld", &m->steps) != 1 || m->steps < 0))
    st = optim_mpi__fail(d, OPTIM_ECORRUPT, "%s: bad step count", prefix);
  if (st == OPTIM_OK) {
    m->hash = calloc((size_t)m->ranks, sizeof *m->hash);
    m->bytes = calloc((size_t)m->ranks, sizeof *m->bytes);
    if (!m->hash || !m->bytes) st = optim_mpi__fail(d, OPTIM_ENOMEM, "out of memory");
  }
  for (int r = 0; st == OPTIM_OK && r < m->ranks; r++) {
    int rr;
    unsigned long long b, h;
    if (fscanf(f, " shard %d %llu %llx", &rr, &b, &h) != 3 || rr != r)
      st = optim_mpi__fail(d, OPTIM_ECORRUPT, "%s: bad shard line %d", prefix, r);
    else {
      m->bytes[r] = b;
      m->hash[r] = h;
    }
  }
  if (st == OPTIM_OK && (fscanf(f, " params %d", &m->nparams) != 1 || m->nparams != d->nparams))
    st = optim_mpi__fail(d, OPTIM_EMISMATCH, "%s has %d parameters, the optimizer %d", prefix,
                         m->nparams, d->nparams);
  if (st == OPTIM_OK) {
    size_t np = (size_t)(m->nparams ? m->nparams : 1);
    m->owner = calloc(np, sizeof *m->owner);
    m->ranged = calloc(np, 1);
    m->range = calloc(np * (size_t)m->ranks * 2, sizeof *m->range);
    if (!m->owner || !m->ranged || !m->range)
      st = optim_mpi__fail(d, OPTIM_ENOMEM, "out of memory");
  }
  for (int i = 0; st == OPTIM_OK && i < m->nparams; i++) {
    int ii, ow, k;
    char name[1024];
    const char *mine;
    int ndim;
    int64_t shape[OPTIM_MAX_DIMS];
    uint64_t n = 1, *rg = m->range + (size_t)i * (size_t)m->ranks * 2;
    optim_param_info(d->opt, i, &mine, NULL, NULL, &ndim, shape);
    for (int j = 0; j < ndim; j++) n *= (uint64_t)shape[j];
    if (fscanf(f, " param %d %d %1023s %d", &ii, &ow, name, &k) != 4 || ii != i || ow < -1 ||
        ow >= m->ranks || (k != 0 && k != m->ranks)) {
      st = optim_mpi__fail(d, OPTIM_ECORRUPT, "%s: bad parameter line %d", prefix, i);
      break;
    }
    for (int r = 0; r < k; r++) {
      unsigned long long lo, hi;
      if (fscanf(f, " %llu %llu", &lo, &hi) != 2 || lo > hi || hi > n) {
        st = optim_mpi__fail(d, OPTIM_ECORRUPT, "%s: bad range in parameter line %d", prefix, i);
        break;
      }
      rg[2 * r] = lo;
      rg[2 * r + 1] = hi;
    }
    if (st != OPTIM_OK) break;
    if (strcmp(name, mine) != 0)
      st = optim_mpi__fail(d, OPTIM_EMISMATCH, "%s: parameter %d is '%s', the optimizer's '%s'",
                           prefix, i, name, mine);
    m->owner[i] = ow;
    m->ranged[i] = k != 0;
  }
  fclose(f);
  return st;
}

/* Load shard r's state for the listed parameters (all when list is NULL),
 * after checking the shard is the one the manifest describes. */
static int load_shard(optim_mpi *d, const char *prefix, const manifest *m, int r, const int *list,
                      int n)
{
  char path[4096];
  uint64_t h, b;
  shard_name(path, sizeof path, prefix, r);
  if (file_hash(path, &h, &b) != 0)
    return optim_mpi__fail(d, OPTIM_EIO, "cannot read %s", path);
  if (b != m->bytes[r] || h != m->hash[r])
    return optim_mpi__fail(d, OPTIM_ECORRUPT, "%s is not the shard the manifest names", path);
  int st = list ? optim_load_params(d->opt, path, list, n) : optim_load(d->opt, path);
  if (st) optim_mpi__fail(d, st, "%s", optim_errmsg(d->opt));
  return st;
}

/* Whether old shard r holds state this rank needs for parameter i: the
 * old owner's shard for a matrix that had one, every shard whose range
 * overlaps this rank's range for a parameter saved by ranges, and shard
 * s0 (which this rank loads whole) for replicated state.  Nothing is
 * needed for a matrix another rank owns now. */
static int supplies(optim_mpi *d, const manifest *m, int i, int r, int s0)
{
  if (d->owner[i] >= 0 && d->owner[i] != d->rank) return 0;
  if (m->owner[i] >= 0) return m->owner[i] == r;
  if (!m->ranged[i]) return r == s0;
  int64_t lo, hi;
  optim_param_get_range(d->opt, i, &lo, &hi);
  const uint64_t *rg = m->range + ((size_t)i * (size_t)m->ranks + (size_t)r) * 2;
  return rg[0] < rg[1] && rg[0] < (uint64_t)hi && (uint64_t)lo < rg[1];
}

int optim_mpi_load(optim_mpi *d, const char *prefix)
{
  if (d == NULL || d->magic != OPTIM_MPI_MAGIC) return OPTIM_EINVAL;
  d->errmsg[0] = '\0';
  manifest m;
  memset(&m, 0, sizeof m);
  int st = prefix ? read_manifest(d, prefix, &m) : optim_mpi__fail(d, OPTIM_EINVAL, "NULL prefix");
  int *list = st == OPTIM_OK ? malloc(sizeof *list * (size_t)(d->nparams ? d->nparams : 1)) : NULL;
  if (st == OPTIM_OK && list == NULL) st = optim_mpi__fail(d, OPTIM_ENOMEM, "out of memory");
  st = optim_mpi__agree(d, st);
  int s0 = st == OPTIM_OK ? d->rank % m.ranks : 0;
  /* Every shard this rank will read must be the one the manifest names
   * before anything is loaded anywhere (nothing is loaded before every
   * rank has checked its shards). */
  for (int r = 0; st == OPTIM_OK && r < m.ranks; r++) {
    int need = r == s0;
    for (int i = 0; !need && i < d->nparams; i++) need = supplies(d, &m, i, r, s0);
    if (!need) continue;
    char path[4096];
    uint64_t h, b;
    shard_name(path, sizeof path, prefix, r);
    if (file_hash(path, &h, &b) != 0)
      st = optim_mpi__fail(d, OPTIM_EIO, "cannot read %s", path);
    else if (b != m.bytes[r] || h != m.hash[r])
      st = optim_mpi__fail(d, OPTIM_ECORRUPT, "%s is not the shard the manifest names", path);
  }
  st = optim_mpi__agree(d, st);
  /* Settings, counters and replicated state from shard s0 (spreading the
   * reads), then each parameter's state from the shards that supply it. */
  if (st == OPTIM_OK) st = load_shard(d, prefix, &m, s0, NULL, 0);
  for (int r = 0; st == OPTIM_OK && r < m.ranks; r++) {
    int n = 0;
    for (int i = 0; i < d->nparams; i++)
      if (r != s0 && supplies(d, &m, i, r, s0)) list[n++] = i;
    if (n > 0) st = load_shard(d, prefix, &m, r, list, n);
  }
  free(list);
  st = optim_mpi__agree(d, st);
  if (st == OPTIM_OK) d->steps = m.steps; /* (block_period's phase) */
  manifest_free(&m);
  return st;
}
