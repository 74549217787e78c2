/* checkpoint.c - optim-train checkpoints (see checkpoint.h).
 *
 * Layout (native byte order, recorded by the endian marker):
 *   "OPTIMTRN", u32 version 1, u32 0x01020304, u64 payload bytes,
 *   u32 CRC-32 of the payload, then the payload:
 *   u32 layers, i64 widths[layers+1], u64 seed, i64 batch, ntrain, ranks,
 *   step, f64 acc_loss, i64 acc_correct, acc_count, f64 epoch_loss,
 *   i64 epoch_correct, epoch_count, f64 best_acc,
 *   i64 best_epoch, u64 nparams, f32 params[nparams], u64 opt_len,
 *   opt bytes. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "checkpoint.h"

#define MAGIC "OPTIMTRN"
#define VERSION 1u
#define ENDIAN 0x01020304u
#define HEADER 28

typedef struct buf {
  unsigned char *p;
  size_t n, cap;
} buf;

static int put(buf *b, const void *x, size_t n)
{
  if (b->n + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + n) cap *= 2;
    unsigned char *q = realloc(b->p, cap);
    if (!q) return -1;
    b->p = q;
    b->cap = cap;
  }
  memcpy(b->p + b->n, x, n);
  b->n += n;
  return 0;
}

static int write_all(int fd, const void *x, size_t n)
{
  const unsigned char *p = x;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int ckpt_write(const char *path, const model *m, const train_pos *pos, const void *opt_bytes,
               size_t opt_len, char *err, size_t errlen)
{
  buf b = {0};
  uint32_t layers = (uint32_t)m->nlayers;
  uint64_t np = m->nparams, ol = opt_len;
  int bad = put(&b, &layers, 4);
  for (int l = 0; l <= m->nlayers; l++) bad |= put(&b, &m->n[l], 8);
  bad |= put(&b, &pos->seed, 8) | put(&b, &pos->batch, 8) | put(&b, &pos->ntrain, 8);
  bad |= put(&b, &pos->ranks, 8) | put(&b, &pos->step, 8) | put(&b, &pos->acc_loss, 8);
  bad |= put(&b, &pos->acc_correct, 8) | put(&b, &pos->acc_count, 8);
  bad |= put(&b, &pos->epoch_loss, 8) | put(&b, &pos->epoch_correct, 8);
  bad |= put(&b, &pos->epoch_count, 8);
  bad |= put(&b, &pos->best_acc, 8) | put(&b, &pos->best_epoch, 8);
  bad |= put(&b, &np, 8) | put(&b, m->params, m->nparams * sizeof(float));
  bad |= put(&b, &ol, 8);
  if (opt_len) bad |= put(&b, opt_bytes, opt_len);
  if (bad) {
    free(b.p);
    snprintf(err, errlen, "out of memory while writing %s", path);
    return -1;
  }
  unsigned char hdr[HEADER];
  uint32_t u = VERSION, e = ENDIAN, crc = (uint32_t)crc32_z(crc32_z(0L, Z_NULL, 0), b.p, b.n);
  uint64_t len = b.n;
  memcpy(hdr, MAGIC, 8);
  memcpy(hdr + 8, &u, 4);
  memcpy(hdr + 12, &e, 4);
  memcpy(hdr + 16, &len, 8);
  memcpy(hdr + 24, &crc, 4);

  size_t plen = strlen(path);
  char *tmp = malloc(plen + 32), *dir = malloc(plen + 2);
  if (!tmp || !dir) {
    free(tmp);
    free(dir);
    free(b.p);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  int ok = fd >= 0 && write_all(fd, hdr, HEADER) == 0 && write_all(fd, b.p, b.n) == 0 &&
           fsync(fd) == 0;
  int saved = errno;
  if (fd >= 0 && close(fd) != 0) ok = 0;
  if (ok && rename(tmp, path) != 0) {
    saved = errno;
    ok = 0;
  }
  if (!ok) {
    unlink(tmp);
    snprintf(err, errlen, "cannot write %s: %s", path, strerror(saved));
  } else {
    memcpy(dir, path, plen + 1);
    char *slash = strrchr(dir, '/');
    if (slash) slash[slash == dir ? 1 : 0] = '\0';
    else strcpy(dir, ".");
    int dfd = open(dir, O_RDONLY);
    if (dfd >= 0) {
      fsync(dfd);
      close(dfd);
    }
  }
  free(tmp);
  free(dir);
  free(b.p);
  return ok ? 0 : -1;
}

typedef struct rd {
  const unsigned char *p;
  size_t n, at;
  int bad;
} rd;

static void get(rd *r, void *x, size_t n)
{
  if (r->bad || n > r->n - r->at) {
    r->bad = 1;
    memset(x, 0, n);
    return;
  }
  memcpy(x, r->p + r->at, n);
  r->at += n;
}

int ckpt_read(const char *path, model *m, train_pos *pos, void **opt_bytes, size_t *opt_len,
              char *err, size_t errlen)
{
  *opt_bytes = NULL;
  *opt_len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
    return -1;
  }
  unsigned char hdr[HEADER];
  uint32_t u, e, crc;
  uint64_t len;
  if (fread(hdr, 1, HEADER, f) != HEADER || memcmp(hdr, MAGIC, 8) != 0) {
    fclose(f);
    snprintf(err, errlen, "%s is not an optim-train checkpoint", path);
    return -1;
  }
  memcpy(&u, hdr + 8, 4);
  memcpy(&e, hdr + 12, 4);
  memcpy(&len, hdr + 16, 8);
  memcpy(&crc, hdr + 24, 4);
  if (e != ENDIAN || u != VERSION) {
    fclose(f);
    snprintf(err, errlen, "%s: %s", path,
             e != ENDIAN ? "written on a machine of the other byte order" : "unsupported version");
    return -1;
  }
  unsigned char *p = len < ((uint64_t)1 << 40) ? malloc(len ? len : 1) : NULL;
  if (!p || fread(p, 1, len, f) != len || fgetc(f) != EOF) {
    fclose(f);
    free(p);
    snprintf(err, errlen, "%s is truncated or has trailing data", path);
    return -1;
  }
  fclose(f);
  if ((uint32_t)crc32_z(crc32_z(0L, Z_NULL, 0), p, len) != crc) {
    free(p);
    snprintf(err, errlen, "%s is corrupt (checksum mismatch)", path);
    return -1;
  }
  rd r = {p, len, 0, 0};
  uint32_t layers;
  get(&r, &layers, 4);
  int same = layers == (uint32_t)m->nlayers;
  for (int l = 0; same && l <= m->nlayers; l++) {
    int64_t w;
    get(&r, &w, 8);
    same = w == m->n[l];
  }
  if (!same || r.bad) {
    free(p);
    snprintf(err, errlen, "%s was written for another model (layer widths differ)", path);
    return -1;
  }
  train_pos t;
  get(&r, &t.seed, 8);
  get(&r, &t.batch, 8);
  get(&r, &t.ntrain, 8);
  get(&r, &t.ranks, 8);
  get(&r, &t.step, 8);
  get(&r, &t.acc_loss, 8);
  get(&r, &t.acc_correct, 8);
  get(&r, &t.acc_count, 8);
  get(&r, &t.epoch_loss, 8);
  get(&r, &t.epoch_correct, 8);
  get(&r, &t.epoch_count, 8);
  get(&r, &t.best_acc, 8);
  get(&r, &t.best_epoch, 8);
  uint64_t np, ol;
  get(&r, &np, 8);
  if (r.bad || np != m->nparams || np * sizeof(float) > r.n - r.at) {
    free(p);
    snprintf(err, errlen, "%s: bad parameter block", path);
    return -1;
  }
  const unsigned char *params = r.p + r.at;
  r.at += np * sizeof(float);
  get(&r, &ol, 8);
  if (r.bad || ol != r.n - r.at) {
    free(p);
    snprintf(err, errlen, "%s: bad optimizer block", path);
    return -1;
  }
  void *ob = ol ? malloc(ol) : NULL;
  if (ol && !ob) {
    free(p);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  if (ol) memcpy(ob, r.p + r.at, ol);
  memcpy(m->params, params, np * sizeof(float));
  *pos = t;
  *opt_bytes = ob;
  *opt_len = ol;
  free(p);
  return 0;
}
