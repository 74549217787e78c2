/* checkpoint.c - optim_save / optim_load.
 *
 * File layout (byte order of the writer, recorded by the endian marker):
 *   header (40 bytes): "OPTIMCKP", u32 version, u32 endian marker 0x01020304,
 *                      u64 meta length, u64 data length, u32 meta CRC-32,
 *                      u32 CRC-32 of the preceding 36 header bytes
 *   meta:  version 2: the optimizer's clip_norm (f64); then
 *          groups (algorithm, counters, every hyperparameter by name,
 *          version 2: its schedules as name, base and spec text or table) and
 *          parameters (name, group, dtype, shape, the stepped range
 *          (optim_param_set_range), version 2: the decay scale (f64),
 *          state entries; buffers
 *          as offset, length and CRC-32 into the data section)
 *   data:  the state buffers, back to back
 * A file is written to a temporary name in the same directory, fsync'ed,
 * renamed over the target, and the directory is fsync'ed.  Loading
 * validates everything (and reads every buffer into new memory) before the
 * optimizer is touched. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "optim-internal.h"
#include "schedule.h"

#define CKP_MAGIC "OPTIMCKP"
#define CKP_VERSION 2u  /* 2 added clip_norm and decay scales; 1 is still read */
#define CKP_ENDIAN 0x01020304u
#define CKP_HEADER 40

static uint32_t crc(const void *data, size_t n)
{
  return (uint32_t)crc32_z(crc32_z(0L, Z_NULL, 0), data, n);
}

/* ---- growable meta buffer ------------------------------------------------------- */

typedef struct wbuf {
  unsigned char *p;
  size_t n, cap;
  int oom;
} wbuf;

static void put(wbuf *b, const void *data, size_t n)
{
  if (b->oom) return;
  if (b->n + n > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->n + n) cap *= 2;
    unsigned char *q = realloc(b->p, cap);
    if (!q) {
      b->oom = 1;
      return;
    }
    b->p = q;
    b->cap = cap;
  }
  memcpy(b->p + b->n, data, n);
  b->n += n;
}
static void put_u32(wbuf *b, uint32_t v) { put(b, &v, sizeof v); }
static void put_u64(wbuf *b, uint64_t v) { put(b, &v, sizeof v); }
static void put_i64(wbuf *b, int64_t v) { put(b, &v, sizeof v); }
static void put_str(wbuf *b, const char *s)
{
  uint32_t n = (uint32_t)strlen(s);
  put_u32(b, n);
  put(b, s, n);
}

/* ---- reader over the meta section ------------------------------------------------- */

typedef struct rbuf {
  const unsigned char *p;
  size_t n, off;
  int bad;
} rbuf;

static void get(rbuf *b, void *out, size_t n)
{
  if (b->bad || n > b->n - b->off) {
    b->bad = 1;
    memset(out, 0, n);
    return;
  }
  memcpy(out, b->p + b->off, n);
  b->off += n;
}
static uint32_t get_u32(rbuf *b) { uint32_t v; get(b, &v, sizeof v); return v; }
static uint64_t get_u64(rbuf *b) { uint64_t v; get(b, &v, sizeof v); return v; }
static int64_t get_i64(rbuf *b) { int64_t v; get(b, &v, sizeof v); return v; }
/* Pointer to a string inside the buffer (not NUL-terminated) and its length. */
static const char *get_str(rbuf *b, uint32_t *len)
{
  *len = get_u32(b);
  if (b->bad || *len > b->n - b->off || *len > 4096) {
    b->bad = 1;
    return "";
  }
  const char *s = (const char *)b->p + b->off;
  b->off += *len;
  return s;
}
static int str_eq(const char *s, uint32_t len, const char *z)
{
  return strlen(z) == len && memcmp(s, z, len) == 0;
}

/* ---- save ----------------------------------------------------------------------------- */

static void put_hp(wbuf *b, const hp_desc *d, hp_value v, int set)
{
  put_str(b, d->name);
  put_u32(b, (uint32_t)d->type);
  put_u32(b, (uint32_t)set);
  if (d->type == OPTIM_TYPE_DOUBLE) put(b, &v.d, sizeof v.d);
  else put_i64(b, v.i);
}

static int write_all(int fd, const void *data, size_t n)
{
  const unsigned char *p = data;
  while (n > 0) {
    ssize_t w = write(fd, p, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int optim_save(optim_optimizer *opt, const char *path)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  if (path == NULL || path[0] == '\0') return optim__fail(opt, OPTIM_EINVAL, "path is NULL or empty");

  wbuf m = {0};
  uint64_t data_len = 0;
  put(&m, &opt->clip_norm, sizeof opt->clip_norm);
  put_u32(&m, (uint32_t)opt->ngroups);
  for (int gi = 0; gi < opt->ngroups; gi++) {
    const optim_group *g = &opt->groups[gi];
    put_str(&m, g->alg->name);
    put_i64(&m, g->steps);
    put_i64(&m, g->skipped);
    put_i64(&m, g->failed);
    put_u32(&m, (uint32_t)(g->alg->nhp + OPTIM_NCOMMON));
    for (int i = 0; i < g->alg->nhp; i++) put_hp(&m, &g->alg->hp[i], g->hp[i], g->hp_set[i]);
    for (int k = 0; k < OPTIM_NCOMMON; k++)
      put_hp(&m, &optim__hp_common[k], optim__common_get(g, k), 1);
    uint32_t nsched = 0;
    for (int i = 0; g->sched && i < g->alg->nhp; i++) nsched += g->sched[i] != NULL;
    put_u32(&m, nsched);
    for (int i = 0; nsched && i < g->alg->nhp; i++) {
      if (!g->sched[i]) continue;
      put_str(&m, g->alg->hp[i].name);
      put(&m, &g->sched_base[i], sizeof(double));
      const char *spec = optim__sched_spec(g->sched[i]);
      if (spec) {
        put_u32(&m, 1);
        put_str(&m, spec);
      } else {
        int64_t n = 0;
        const double *v = optim__sched_values(g->sched[i], &n);
        put_u32(&m, 2);
        put_u64(&m, (uint64_t)n);
        put(&m, v, (size_t)n * sizeof *v);
      }
    }
  }
  put_u32(&m, (uint32_t)opt->nparams);
  for (int pi = 0; pi < opt->nparams; pi++) {
    const optim_param *p = &opt->params[pi];
    put_str(&m, p->name);
    put_u32(&m, (uint32_t)p->group);
    put_u32(&m, (uint32_t)p->dtype);
    put_u32(&m, (uint32_t)p->ndim);
    for (int d = 0; d < p->ndim; d++) put_i64(&m, p->shape[d]);
    put_u64(&m, p->off);
    put_u64(&m, p->len);
    put(&m, &p->wd_scale, sizeof p->wd_scale);
    put_u32(&m, (uint32_t)p->nstate);
    for (int k = 0; k < p->nstate; k++) {
      const state_entry *e = &p->state[k];
      put_str(&m, e->name);
      put_u32(&m, (uint32_t)e->kind);
      if (e->kind == OPTIM_STATE_SCALAR) {
        put_i64(&m, e->scalar);
      } else {
        size_t bytes = e->count * optim__dtype_size(p->dtype);
        put_u64(&m, data_len);
        put_u64(&m, bytes);
        put_u32(&m, crc(e->buf, bytes));
        data_len += bytes;
      }
    }
  }
  if (m.oom) {
    free(m.p);
    return optim__fail(opt, OPTIM_ENOMEM, "out of memory while encoding the checkpoint");
  }

  unsigned char hdr[CKP_HEADER];
  uint32_t u32;
  uint64_t u64;
  memcpy(hdr, CKP_MAGIC, 8);
  u32 = CKP_VERSION; memcpy(hdr + 8, &u32, 4);
  u32 = CKP_ENDIAN; memcpy(hdr + 12, &u32, 4);
  u64 = m.n; memcpy(hdr + 16, &u64, 8);
  u64 = data_len; memcpy(hdr + 24, &u64, 8);
  u32 = crc(m.p, m.n); memcpy(hdr + 32, &u32, 4);
  u32 = crc(hdr, 36); memcpy(hdr + 36, &u32, 4);

  size_t plen = strlen(path);
  char *tmp = malloc(plen + 40);
  char *dircopy = malloc(plen + 1);
  if (!tmp || !dircopy) {
    free(tmp);
    free(dircopy);
    free(m.p);
    return optim__fail(opt, OPTIM_ENOMEM, "out of memory");
  }
  memcpy(dircopy, path, plen + 1);
  int st = OPTIM_OK;
  /* A fresh name next to the target, created with mode 0666 so the
   * caller's umask decides the checkpoint's permissions. */
  int fd = -1;
  for (unsigned attempt = 0; fd < 0 && attempt < 100; attempt++) {
    static _Atomic unsigned counter;
    snprintf(tmp, plen + 40, "%s.tmp.%ld.%u", path, (long)getpid(), counter++);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) {
    st = optim__fail(opt, OPTIM_EIO, "cannot create a temporary file next to %s: %s", path,
                     strerror(errno));
    goto done;
  }
  int ok = write_all(fd, hdr, sizeof hdr) == 0 && write_all(fd, m.p, m.n) == 0;
  for (int pi = 0; ok && pi < opt->nparams; pi++) {
    const optim_param *p = &opt->params[pi];
    for (int k = 0; ok && k < p->nstate; k++)
      if (p->state[k].kind == OPTIM_STATE_BUFFER)
        ok = write_all(fd, p->state[k].buf, p->state[k].count * optim__dtype_size(p->dtype)) == 0;
  }
  ok = ok && fsync(fd) == 0;
  int err = errno;
  if (close(fd) != 0 && ok) {
    ok = 0;
    err = errno;
  }
  if (!ok || rename(tmp, path) != 0) {
    if (ok) err = errno;
    unlink(tmp);
    st = optim__fail(opt, OPTIM_EIO, "cannot write %s: %s", path, strerror(err));
    goto done;
  }
  /* Make the rename itself durable. */
  int dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
done:
  free(tmp);
  free(dircopy);
  free(m.p);
  return st;
}

/* ---- load ------------------------------------------------------------------------------ */

typedef struct loaded_param {
  int index;                       /* parameter in the optimizer */
  size_t off, len;                 /* the range the file's state covers */
  double wd_scale;
  int nstate;
  state_entry state[OPTIM_MAX_STATE];
  unsigned char ranged[OPTIM_MAX_STATE]; /* buffer of the range's length */
} loaded_param;

typedef struct loaded_group {
  hp_value *hp;
  unsigned char *hp_set;
  hp_value common[OPTIM_NCOMMON];
  int64_t steps, skipped, failed;
  struct optim_sched **sched;      /* version 2: nhp schedules, or NULL */
  double *sched_base;
} loaded_group;

static int read_exact(FILE *f, void *out, size_t n)
{
  return fread(out, 1, n, f) == n ? 0 : -1;
}

/* Check the CRC-32 of bytes [off, off + n) of f without keeping them:
 * OPTIM_OK, OPTIM_ETRUNCATED (unreadable), OPTIM_ECORRUPT or OPTIM_ENOMEM. */
static int crc_extent(FILE *f, uint64_t off, size_t n, uint32_t want)
{
  enum { CHUNK = 1 << 16 };
  unsigned char *buf = malloc(n < CHUNK ? (n ? n : 1) : CHUNK);
  if (!buf) return OPTIM_ENOMEM;
  uLong c = crc32_z(0L, Z_NULL, 0);
  int st = fseeko(f, (off_t)off, SEEK_SET) == 0 ? OPTIM_OK : OPTIM_ETRUNCATED;
  while (st == OPTIM_OK && n > 0) {
    size_t m = n < CHUNK ? n : CHUNK;
    if (read_exact(f, buf, m) != 0) st = OPTIM_ETRUNCATED;
    else c = crc32_z(c, buf, m);
    n -= m;
  }
  free(buf);
  return st == OPTIM_OK && (uint32_t)c != want ? OPTIM_ECORRUPT : st;
}

static void free_loaded(loaded_group *lg, int ng, loaded_param *lp, int np)
{
  for (int i = 0; lg && i < ng; i++) {
    free(lg[i].hp);
    free(lg[i].hp_set);
    if (lg[i].sched) {
      /* (nhp is not known here: the array is NULL-terminated, one longer) */
      for (int k = 0; lg[i].sched[k] != (optim_sched *)&lg[i]; k++) optim__sched_free(lg[i].sched[k]);
      free(lg[i].sched);
      free(lg[i].sched_base);
    }
  }
  for (int i = 0; lp && i < np; i++)
    for (int k = 0; k < lp[i].nstate; k++) optim__buf_free(lp[i].state[k].buf);
  free(lg);
  free(lp);
}

/* Load everything (select == NULL), or only the state of the parameters
 * with select[i] set, leaving settings, counters and the other parameters
 * as they are. */
static int load(optim_optimizer *opt, const char *path, const unsigned char *select)
{
  if (path == NULL) return optim__fail(opt, OPTIM_EINVAL, "path is NULL");
  FILE *f = fopen(path, "rb");
  if (f == NULL) return optim__fail(opt, OPTIM_EIO, "cannot open %s: %s", path, strerror(errno));

  int st = OPTIM_OK;
  unsigned char *meta = NULL;
  loaded_group *lg = NULL;
  loaded_param *lp = NULL;
  int np_loaded = 0;
  struct stat sb;
  unsigned char hdr[CKP_HEADER];
  uint32_t version, endian, mcrc, hcrc;
  uint64_t mlen, dlen;

  if (fstat(fileno(f), &sb) != 0) {
    st = optim__fail(opt, OPTIM_EIO, "cannot stat %s", path);
    goto out;
  }
  size_t got = fread(hdr, 1, sizeof hdr, f);
  if (got < 8 || memcmp(hdr, CKP_MAGIC, 8) != 0) {
    st = optim__fail(opt, got < 8 && memcmp(hdr, CKP_MAGIC, got) == 0 && got > 0
                              ? OPTIM_ETRUNCATED : OPTIM_EFORMAT,
                     "%s is not a liboptim checkpoint", path);
    goto out;
  }
  if (got < sizeof hdr) {
    st = optim__fail(opt, OPTIM_ETRUNCATED, "%s: header is truncated", path);
    goto out;
  }
  memcpy(&version, hdr + 8, 4);
  memcpy(&endian, hdr + 12, 4);
  memcpy(&mlen, hdr + 16, 8);
  memcpy(&dlen, hdr + 24, 8);
  memcpy(&mcrc, hdr + 32, 4);
  memcpy(&hcrc, hdr + 36, 4);
  if (endian != CKP_ENDIAN) {
    st = endian == 0x04030201u
             ? optim__fail(opt, OPTIM_EENDIAN, "%s was written on a machine of the other byte order", path)
             : optim__fail(opt, OPTIM_ECORRUPT, "%s: header is corrupt (endian marker)", path);
    goto out;
  }
  if (crc(hdr, 36) != hcrc) {
    st = optim__fail(opt, OPTIM_ECORRUPT, "%s: header checksum mismatch", path);
    goto out;
  }
  if (version != CKP_VERSION && version != 1) {
    st = optim__fail(opt, OPTIM_EVERSION, "%s: checkpoint format version %u, this library reads %u",
                     path, version, CKP_VERSION);
    goto out;
  }
  uint64_t want = CKP_HEADER + mlen + dlen;
  if (mlen > (uint64_t)1 << 40 || dlen > (uint64_t)1 << 56 || (uint64_t)sb.st_size < want) {
    st = optim__fail(opt, OPTIM_ETRUNCATED, "%s: %lld bytes, header promises %llu", path,
                     (long long)sb.st_size, (unsigned long long)want);
    goto out;
  }
  if ((uint64_t)sb.st_size > want) {
    st = optim__fail(opt, OPTIM_ECORRUPT, "%s: %llu unexpected trailing bytes", path,
                     (unsigned long long)((uint64_t)sb.st_size - want));
    goto out;
  }
  meta = malloc(mlen ? mlen : 1);
  if (!meta) {
    st = optim__fail(opt, OPTIM_ENOMEM, "out of memory");
    goto out;
  }
  if (read_exact(f, meta, mlen) != 0) {
    st = optim__fail(opt, OPTIM_ETRUNCATED, "%s: meta section is truncated", path);
    goto out;
  }
  if (crc(meta, mlen) != mcrc) {
    st = optim__fail(opt, OPTIM_ECORRUPT, "%s: meta section checksum mismatch", path);
    goto out;
  }

  /* Groups: same count and algorithms; hyperparameters by name. */
  rbuf r = {meta, mlen, 0, 0};
  double clip = 0;
  if (version >= 2) get(&r, &clip, sizeof clip);
  if (!r.bad && (!(clip >= 0) || !isfinite(clip))) {
    st = optim__fail(opt, OPTIM_ECORRUPT, "%s: bad clip_norm", path);
    goto out;
  }
  uint32_t ng = get_u32(&r), len;
  if (r.bad || ng != (uint32_t)opt->ngroups) {
    st = optim__fail(opt, r.bad ? OPTIM_ECORRUPT : OPTIM_EMISMATCH,
                     "%s has %u groups, the optimizer %d", path, ng, opt->ngroups);
    goto out;
  }
  lg = calloc(ng ? ng : 1, sizeof *lg);
  if (!lg) {
    st = optim__fail(opt, OPTIM_ENOMEM, "out of memory");
    goto out;
  }
  for (uint32_t gi = 0; gi < ng; gi++) {
    const optim_group *g = &opt->groups[gi];
    const char *alg = get_str(&r, &len);
    if (!r.bad && !str_eq(alg, len, g->alg->name)) {
      st = optim__fail(opt, OPTIM_EMISMATCH, "%s: group %u runs '%.*s', the optimizer's runs %s",
                       path, gi, (int)len, alg, g->alg->name);
      goto out;
    }
    lg[gi].steps = get_i64(&r);
    lg[gi].skipped = get_i64(&r);
    lg[gi].failed = get_i64(&r);
    if (!r.bad && (lg[gi].steps < 0 || lg[gi].skipped < 0 || lg[gi].failed < 0)) {
      st = optim__fail(opt, OPTIM_ECORRUPT, "%s: group %u has a negative counter", path, gi);
      goto out;
    }
    lg[gi].hp = malloc(sizeof *lg[gi].hp * ((size_t)g->alg->nhp + 1));
    lg[gi].hp_set = calloc((size_t)g->alg->nhp + 1, 1);
    if (!lg[gi].hp || !lg[gi].hp_set) {
      st = optim__fail(opt, OPTIM_ENOMEM, "out of memory");
      goto out;
    }
    memcpy(lg[gi].hp, g->hp, sizeof *g->hp * (size_t)g->alg->nhp);
    for (int k = 0; k < OPTIM_NCOMMON; k++) lg[gi].common[k] = optim__common_get(g, k);
    uint32_t nhp = get_u32(&r);
    /* (files of 0.1.0 have one common option, nonfinite; a missing one
     * keeps its current value) */
    if (!r.bad && (nhp <= (uint32_t)g->alg->nhp || nhp > (uint32_t)(g->alg->nhp + OPTIM_NCOMMON))) {
      st = optim__fail(opt, OPTIM_EMISMATCH, "%s: group %u has %u hyperparameters, %s has %d",
                       path, gi, nhp, g->alg->name, g->alg->nhp + OPTIM_NCOMMON);
      goto out;
    }
    for (uint32_t h = 0; h < nhp && !r.bad; h++) {
      const char *name = get_str(&r, &len);
      uint32_t type = get_u32(&r), set = get_u32(&r);
      hp_value v;
      if (type == OPTIM_TYPE_DOUBLE) get(&r, &v.d, sizeof v.d);
      else v.i = get_i64(&r);
      if (r.bad) break;
      char nm[64];
      snprintf(nm, sizeof nm, "%.*s", (int)(len < 63 ? len : 63), name);
      int idx = len < 63 ? optim__hp_index(g->alg, nm) : HP_NONE;
      const hp_desc *d = idx == HP_NONE ? NULL : optim__hp_desc(g->alg, idx);
      if (idx == HP_NONE || (uint32_t)d->type != type) {
        st = optim__fail(opt, OPTIM_EMISMATCH, "%s: %s has no %s hyperparameter '%s'", path,
                         g->alg->name, idx == HP_NONE ? "such" : "matching", nm);
        goto out;
      }
      if (d->type == OPTIM_TYPE_STRING) {
        char word[64];
        int ok = v.i >= 0 && v.i < 64;
        const char *s = d->choices;
        for (int64_t k = 0; ok && k < v.i; k++) {
          s = strchr(s, '|');
          ok = s != NULL;
          if (s) s++;
        }
        (void)word;
        if (!ok) {
          st = optim__fail(opt, OPTIM_ECORRUPT, "%s: bad value for %s", path, nm);
          goto out;
        }
      } else if (optim__hp_check_value(d, v, opt->errmsg, sizeof opt->errmsg) != OPTIM_OK) {
        st = OPTIM_ECORRUPT;
        goto out;
      }
      if (idx >= 0) {
        lg[gi].hp[idx] = v;
        lg[gi].hp_set[idx] = set != 0;
      } else {
        lg[gi].common[-1 - idx] = v;
      }
    }
    if (version >= 2 && !r.bad) {
      uint32_t nsched = get_u32(&r);
      int nh = g->alg->nhp;
      if (!r.bad && nsched > 0) {
        /* one extra slot holds a sentinel for free_loaded */
        lg[gi].sched = calloc((size_t)nh + 1, sizeof *lg[gi].sched);
        lg[gi].sched_base = calloc((size_t)nh + 1, sizeof *lg[gi].sched_base);
        if (!lg[gi].sched || !lg[gi].sched_base) {
          free(lg[gi].sched);
          free(lg[gi].sched_base);
          lg[gi].sched = NULL;
          st = optim__fail(opt, OPTIM_ENOMEM, "out of memory");
          goto out;
        }
        lg[gi].sched[nh] = (optim_sched *)&lg[gi];
      }
      for (uint32_t k = 0; k < nsched && !r.bad; k++) {
        const char *name = get_str(&r, &len);
        double base = 0;
        get(&r, &base, sizeof base);
        uint32_t kind = get_u32(&r);
        if (r.bad) break;
        char nm[64];
        snprintf(nm, sizeof nm, "%.*s", (int)(len < 63 ? len : 63), name);
        int idx = len < 63 ? optim__hp_index(g->alg, nm) : HP_NONE;
        if (idx < 0 || g->alg->hp[idx].type != OPTIM_TYPE_DOUBLE || lg[gi].sched[idx]) {
          st = optim__fail(opt, OPTIM_EMISMATCH, "%s: %s has no schedulable '%s'", path,
                           g->alg->name, nm);
          goto out;
        }
        optim_sched *s = NULL;
        if (kind == 1) {
          const char *spec = get_str(&r, &len);
          if (r.bad) break;
          char *text = malloc((size_t)len + 1);
          if (!text) {
            st = optim__fail(opt, OPTIM_ENOMEM, "out of memory");
            goto out;
          }
          memcpy(text, spec, len);
          text[len] = '\0';
          char msg[128];
          int ps = optim__sched_parse(text, &s, msg, sizeof msg);
          free(text);
          if (ps == OPTIM_ENOMEM) {
            st = optim__fail(opt, OPTIM_ENOMEM, "out of memory");
            goto out;
          }
          if (ps) {
            st = optim__fail(opt, OPTIM_ECORRUPT, "%s: schedule of %s: %s", path, nm, msg);
            goto out;
          }
        } else if (kind == 2) {
          uint64_t n = get_u64(&r);
          if (r.bad || n == 0 || n > (r.n - r.off) / sizeof(double)) {
            r.bad = 1;
            break;
          }
          double *v = malloc((size_t)n * sizeof *v);
          if (!v) {
            st = optim__fail(opt, OPTIM_ENOMEM, "out of memory");
            goto out;
          }
          get(&r, v, (size_t)n * sizeof *v);
          uint64_t bad = n;
          for (uint64_t q = 0; q < n && !r.bad; q++)
            if (!(isfinite(v[q]) && v[q] >= 0)) bad = q;
          if (bad < n) { /* optim_set_schedule_table takes none of these */
            st = optim__fail(opt, OPTIM_ECORRUPT, "%s: schedule table of %s: factor %llu is %g",
                             path, nm, (unsigned long long)bad, v[bad]);
            free(v);
            goto out;
          }
          s = optim__sched_table(v, (int64_t)n);
          free(v);
          if (!s) {
            st = optim__fail(opt, OPTIM_ENOMEM, "out of memory");
            goto out;
          }
        } else {
          st = optim__fail(opt, OPTIM_ECORRUPT, "%s: unknown schedule kind %u", path, kind);
          goto out;
        }
        lg[gi].sched[idx] = s;
        lg[gi].sched_base[idx] = base;
        /* the base is what a setter accepted, and the value at the loaded
         * step is checked as the stored values are (a file whose schedule
         * leaves the range would load, then fail its save's reload) */
        char msg[128];
        hp_value bv = {.d = base}, sv = {.d = base * optim__sched_factor(s, lg[gi].steps)};
        if (!isfinite(base) || optim__hp_check_value(&g->alg->hp[idx], bv, msg, sizeof msg) ||
            !isfinite(sv.d) || optim__hp_check_value(&g->alg->hp[idx], sv, msg, sizeof msg)) {
          st = optim__fail(opt, OPTIM_ECORRUPT,
                           "%s: schedule of %s: base %g, %g at step %lld: outside its range",
                           path, nm, base, sv.d, (long long)lg[gi].steps);
          goto out;
        }
      }
    }
  }

  /* Parameters: same set of names, each in the same group with the same
   * dtype and shape, state laid out as the file's settings require. */
  uint32_t np = get_u32(&r);
  if (!r.bad && np != (uint32_t)opt->nparams) {
    st = optim__fail(opt, OPTIM_EMISMATCH, "%s has %u parameters, the optimizer %d", path, np,
                     opt->nparams);
    goto out;
  }
  lp = calloc(np ? np : 1, sizeof *lp);
  unsigned char *seen = calloc(np ? np : 1, 1);
  if (!lp || !seen) {
    free(seen);
    st = optim__fail(opt, OPTIM_ENOMEM, "out of memory");
    goto out;
  }
  for (uint32_t i = 0; i < np && !r.bad && st == OPTIM_OK; i++) {
    const char *name = get_str(&r, &len);
    uint32_t group = get_u32(&r), dtype = get_u32(&r), ndim = get_u32(&r);
    if (r.bad) break;
    int pi = -1;
    for (int j = 0; j < opt->nparams; j++)
      if (str_eq(name, len, opt->params[j].name)) pi = j;
    if (pi < 0 || seen[pi]) {
      st = optim__fail(opt, OPTIM_EMISMATCH, "%s: parameter '%.*s' %s", path, (int)len, name,
                       pi < 0 ? "is not in the optimizer" : "appears twice");
      break;
    }
    seen[pi] = 1;
    const optim_param *p = &opt->params[pi];
    lp[np_loaded].index = pi;
    np_loaded++;
    int same = group == (uint32_t)p->group && dtype == (uint32_t)p->dtype &&
               ndim == (uint32_t)p->ndim;
    for (uint32_t d = 0; d < ndim && d < OPTIM_MAX_DIMS; d++) same &= get_i64(&r) == p->shape[d];
    if (ndim > OPTIM_MAX_DIMS) r.bad = 1;
    if (r.bad) break;
    if (!same) {
      st = optim__fail(opt, OPTIM_EMISMATCH,
                       "%s: parameter '%s' differs in group, dtype or shape", path, p->name);
      break;
    }
    uint64_t foff = get_u64(&r), flen = get_u64(&r);
    double wds = 1;
    if (version >= 2) get(&r, &wds, sizeof wds);
    if (r.bad) break;
    if (!(wds >= 0) || !isfinite(wds)) {
      st = optim__fail(opt, OPTIM_ECORRUPT, "%s: bad decay scale for '%s'", path, p->name);
      break;
    }
    lp[np_loaded - 1].wd_scale = wds;
    if (foff > p->numel || flen > p->numel - foff) {
      st = optim__fail(opt, OPTIM_ECORRUPT, "%s: bad range for '%s'", path, p->name);
      break;
    }
    /* Expected layout under the file's hyperparameters. */
    optim_group tmpg = opt->groups[p->group];
    tmpg.hp = lg[p->group].hp;
    state_layout lay;
    memset(&lay, 0, sizeof lay);
    tmpg.alg->layout(&tmpg, p, &lay);
    uint32_t ns = get_u32(&r);
    if (!r.bad && ns != (uint32_t)lay.n) {
      st = optim__fail(opt, OPTIM_EMISMATCH, "%s: '%s' has %u state entries, expected %d", path,
                       p->name, ns, lay.n);
      break;
    }
    loaded_param *L = &lp[np_loaded - 1];
    L->off = (size_t)foff;
    L->len = (size_t)flen;
    for (uint32_t k = 0; k < ns && !r.bad; k++) {
      const char *sname = get_str(&r, &len);
      uint32_t kind = get_u32(&r);
      if (r.bad) break;
      if (!str_eq(sname, len, lay.name[k]) || kind != (uint32_t)lay.kind[k]) {
        st = optim__fail(opt, OPTIM_EMISMATCH, "%s: state '%.*s' of '%s' is not what %s keeps",
                         path, (int)len, sname, p->name, tmpg.alg->name);
        break;
      }
      state_entry *e = &L->state[k];
      e->name = lay.name[k];
      e->kind = (int)kind;
      L->ranged[k] = kind == OPTIM_STATE_BUFFER && lay.count[k] == 0;
      e->count = kind == OPTIM_STATE_BUFFER ? (lay.count[k] ? lay.count[k] : L->len) : 0;
      size_t bytes = e->count * optim__dtype_size(p->dtype);
      L->nstate = (int)k + 1;
      if (kind == OPTIM_STATE_SCALAR) {
        e->scalar = get_i64(&r);
        continue;
      }
      uint64_t off = get_u64(&r), blen = get_u64(&r);
      uint32_t bcrc = get_u32(&r);
      if (r.bad) break;
      if (blen != bytes || off > dlen || blen > dlen - off) {
        st = optim__fail(opt, OPTIM_ECORRUPT, "%s: bad extent for state '%s' of '%s'", path,
                         e->name, p->name);
        break;
      }
      if (select && !select[pi]) {
        /* not wanted: checked, not kept (a partial load validates the
         * whole file, as a full one does) */
        int cs = crc_extent(f, CKP_HEADER + mlen + off, bytes, bcrc);
        if (cs == OPTIM_ENOMEM) st = optim__fail(opt, cs, "out of memory");
        else if (cs == OPTIM_ETRUNCATED)
          st = optim__fail(opt, cs, "%s: data of '%s' is truncated", path, p->name);
        else if (cs != OPTIM_OK)
          st = optim__fail(opt, cs, "%s: checksum mismatch in state '%s' of '%s'", path, e->name,
                           p->name);
        if (st != OPTIM_OK) break;
        continue;
      }
      e->buf = optim__buf_alloc(bytes ? bytes : 1, 0, (int)k);
      if (!e->buf) {
        st = optim__fail(opt, OPTIM_ENOMEM, "out of memory");
        break;
      }
      if (fseeko(f, (off_t)(CKP_HEADER + mlen + off), SEEK_SET) != 0 ||
          read_exact(f, e->buf, bytes) != 0) {
        st = optim__fail(opt, OPTIM_ETRUNCATED, "%s: data of '%s' is truncated", path, p->name);
        break;
      }
      if (crc(e->buf, bytes) != bcrc) {
        st = optim__fail(opt, OPTIM_ECORRUPT, "%s: checksum mismatch in state '%s' of '%s'",
                         path, e->name, p->name);
        break;
      }
    }
  }
  free(seen);
  if (st == OPTIM_OK && (r.bad || r.off != r.n))
    st = optim__fail(opt, OPTIM_ECORRUPT, "%s: meta section is malformed", path);
  if (st != OPTIM_OK) goto out;

  /* State saved for another range of a parameter (a shard of another rank
   * count): its buffers become buffers of this range, holding the file's
   * values where the two ranges overlap and the current values (zero for
   * an entry the parameter does not have yet) elsewhere. */
  for (int i = 0; st == OPTIM_OK && i < np_loaded; i++) {
    loaded_param *L = &lp[i];
    const optim_param *p = &opt->params[L->index];
    if ((select && !select[L->index]) || (L->off == p->off && L->len == p->len)) continue;
    size_t es = optim__dtype_size(p->dtype);
    size_t lo = L->off > p->off ? L->off : p->off;
    size_t hi = L->off + L->len < p->off + p->len ? L->off + L->len : p->off + p->len;
    for (int k = 0; k < L->nstate; k++) {
      state_entry *e = &L->state[k];
      if (!L->ranged[k]) continue;
      void *nb = optim__buf_alloc(p->len ? p->len * es : 1, 1, k);
      if (!nb) {
        st = optim__fail(opt, OPTIM_ENOMEM, "out of memory");
        break;
      }
      for (int c = 0; c < p->nstate; c++)
        if (strcmp(p->state[c].name, e->name) == 0 && p->state[c].kind == OPTIM_STATE_BUFFER &&
            p->state[c].count == p->len)
          memcpy(nb, p->state[c].buf, p->len * es);
      if (lo < hi)
        memcpy((char *)nb + (lo - p->off) * es, (const char *)e->buf + (lo - L->off) * es,
               (hi - lo) * es);
      optim__buf_free(e->buf);
      e->buf = nb;
      e->count = p->len;
    }
  }
  if (st != OPTIM_OK) goto out;

  /* A partial load keeps the optimizer's settings: the selected
   * parameters' state must have the layout those settings give. */
  for (int i = 0; select && st == OPTIM_OK && i < np_loaded; i++) {
    const optim_param *p = &opt->params[lp[i].index];
    if (!select[lp[i].index]) continue;
    int same = p->nstate == lp[i].nstate;
    for (int k = 0; same && k < p->nstate; k++)
      same = strcmp(p->state[k].name, lp[i].state[k].name) == 0 &&
             p->state[k].kind == lp[i].state[k].kind && p->state[k].count == lp[i].state[k].count;
    if (!same)
      st = optim__fail(opt, OPTIM_EMISMATCH,
                       "%s: the state of '%s' was saved under other settings", path, p->name);
  }
  if (st != OPTIM_OK) goto out;

  /* Commit: nothing below can fail. */
  if (!select) opt->clip_norm = clip;
  for (uint32_t gi = 0; !select && gi < ng; gi++) {
    optim_group *g = &opt->groups[gi];
    memcpy(g->hp, lg[gi].hp, sizeof *g->hp * (size_t)g->alg->nhp);
    memcpy(g->hp_set, lg[gi].hp_set, (size_t)g->alg->nhp);
    for (int k = 0; k < OPTIM_NCOMMON; k++) optim__common_set(g, k, lg[gi].common[k]);
    optim__sched_free_all(g); /* the file's schedules replace the group's */
    if (lg[gi].sched) {
      lg[gi].sched[g->alg->nhp] = NULL;
      g->sched = lg[gi].sched;
      g->sched_base = lg[gi].sched_base;
      lg[gi].sched = NULL;
      lg[gi].sched_base = NULL;
    }
    g->steps = lg[gi].steps;
    g->skipped = lg[gi].skipped;
    g->failed = lg[gi].failed;
    optim__sched_apply(g);
  }
  for (int i = 0; i < np_loaded; i++) {
    optim_param *p = &opt->params[lp[i].index];
    if (select && !select[lp[i].index]) continue;
    if (!select) p->wd_scale = lp[i].wd_scale;
    for (int k = 0; k < p->nstate; k++) optim__buf_free(p->state[k].buf);
    memcpy(p->state, lp[i].state, sizeof p->state[0] * (size_t)lp[i].nstate);
    p->nstate = lp[i].nstate;
    lp[i].nstate = 0;
  }

out:
  free_loaded(lg, lg ? (int)opt->ngroups : 0, lp, np_loaded);
  free(meta);
  fclose(f);
  return st;
}

int optim_load(optim_optimizer *opt, const char *path)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  return load(opt, path, NULL);
}

int optim_load_params(optim_optimizer *opt, const char *path, const int *indices, int count)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  if (count < 0 || (count > 0 && indices == NULL))
    return optim__fail(opt, OPTIM_EINVAL, "bad parameter list (count %d)", count);
  unsigned char *select = calloc((size_t)(opt->nparams ? opt->nparams : 1), 1);
  if (select == NULL) return optim__fail(opt, OPTIM_ENOMEM, "out of memory");
  for (int i = 0; i < count; i++) {
    if (indices[i] < 0 || indices[i] >= opt->nparams) {
      free(select);
      return optim__fail(opt, OPTIM_EINVAL, "parameter %d does not exist", indices[i]);
    }
    select[indices[i]] = 1;
  }
  int st = load(opt, path, select);
  free(select);
  return st;
}
