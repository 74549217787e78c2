/* data.c - data sets for optim-train: IDX, LIBSVM and CSV readers, the
 * synthetic generator, label mapping, dimension matching and the split.
 * See data.h.  Nothing here prints, aborts or keeps global state. */
#define _POSIX_C_SOURCE 200809L
#include "data.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <zlib.h>

/* ---- helpers ------------------------------------------------------------ */

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
  if (!err || errlen == 0)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static void clearerr_msg(char *err, size_t errlen)
{
  if (err && errlen > 0)
    err[0] = '\0';
}

/* The text of errno value e (thread-safe XSI strerror_r). */
static const char *errtext(int e, char *buf, size_t len)
{
  if (e == 0)
    snprintf(buf, len, "unknown error");
  else if (strerror_r(e, buf, len) != 0)
    snprintf(buf, len, "error %d", e);
  return buf;
}

/* malloc of count elements of size bytes; NULL on overflow or failure.
 * Never malloc(0): an empty array gets one byte. */
static void *alloc_array(uint64_t count, size_t size, int zero)
{
  if (size != 0 && count > SIZE_MAX / size)
    return NULL;
  size_t bytes = (size_t)count * size;
  if (bytes == 0)
    bytes = 1;
  return zero ? calloc(1, bytes) : malloc(bytes);
}

/* Grows an array p of *cap elements to hold at least need; returns the new
 * array (p is then no longer valid) or NULL (p is untouched). */
static void *grow(void *p, size_t *cap, size_t need, size_t elsize)
{
  size_t nc = *cap ? *cap : 64;
  while (nc < need) {
    if (nc > SIZE_MAX / 2 / elsize)
      return NULL;
    nc *= 2;
  }
  if (nc > SIZE_MAX / elsize)
    return NULL;
  void *q = realloc(p, nc * elsize);
  if (q)
    *cap = nc;
  return q;
}

/* Parses a whole token as a number: 0 ok, 1 not a number, 2 not finite (or
 * beyond the float range when as_float). */
static int parse_number(const char *tok, int as_float, double *v)
{
  char *end;
  errno = 0;
  double d = strtod(tok, &end);
  if (end == tok || *end != '\0')
    return 1;
  if (!isfinite(d) || (as_float && fabs(d) > FLT_MAX))
    return 2;
  *v = d;
  return DATA_OK;
}

static int open_text(const char *path, FILE **fp, char *err, size_t errlen)
{
  char eb[128];
  errno = 0;
  *fp = fopen(path, "r");
  if (!*fp) {
    int e = errno;
    seterr(err, errlen, "%s: cannot open: %s", path, errtext(e, eb, sizeof eb));
    return e == ENOMEM ? DATA_ENOMEM : DATA_EIO;
  }
  return DATA_OK;
}

/* Status after getline returned -1 with errno e: end of file or an error. */
static int getline_end(FILE *fp, int e, const char *path, char *err, size_t errlen)
{
  char eb[128];
  if (!ferror(fp) && feof(fp))
    return DATA_OK;
  if (e == ENOMEM) {
    seterr(err, errlen, "%s: out of memory", path);
    return DATA_ENOMEM;
  }
  seterr(err, errlen, "%s: read error: %s", path, errtext(e, eb, sizeof eb));
  return DATA_EIO;
}

/* The next line of fp into *line: its length, -1 at the end of the file,
 * -2 on an error (*st and err set).  Counts lines in *lineno and refuses
 * NUL bytes, which would cut the line short. */
static ssize_t next_line(FILE *fp, char **line, size_t *cap, const char *path, int64_t *lineno,
                         int *st, char *err, size_t errlen)
{
  errno = 0;
  ssize_t len = getline(line, cap, fp);
  if (len < 0) {
    *st = getline_end(fp, errno, path, err, errlen);
    return *st == DATA_OK ? -1 : -2;
  }
  (*lineno)++;
  if ((size_t)len != strlen(*line)) {
    seterr(err, errlen, "%s:%" PRId64 ": NUL byte in the line", path, *lineno);
    *st = DATA_EFORMAT;
    return -2;
  }
  return len;
}

/* ---- IDX -------------------------------------------------------------------- */

static uint32_t be32(const unsigned char *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static int gz_fail(gzFile f, const char *path, char *err, size_t errlen)
{
  int e = errno, zerr = Z_OK;
  char eb[128];
  const char *msg = gzerror(f, &zerr);
  if (zerr == Z_ERRNO) {
    seterr(err, errlen, "%s: read error: %s", path, errtext(e, eb, sizeof eb));
    return DATA_EIO;
  }
  if (zerr == Z_MEM_ERROR) {
    seterr(err, errlen, "%s: out of memory", path);
    return DATA_ENOMEM;
  }
  seterr(err, errlen, "%s: corrupt gzip data (%s)", path, msg && *msg ? msg : "unknown error");
  return DATA_EFORMAT;
}

static int gz_open(const char *path, gzFile *f, char *err, size_t errlen)
{
  char eb[128];
  errno = 0;
  *f = gzopen(path, "rb");
  if (!*f) {
    int e = errno;
    if (e == ENOMEM) {
      seterr(err, errlen, "%s: out of memory", path);
      return DATA_ENOMEM;
    }
    seterr(err, errlen, "%s: cannot open: %s", path, errtext(e, eb, sizeof eb));
    return DATA_EIO;
  }
  gzbuffer(*f, 1u << 17);
  return DATA_OK;
}

/* Reads up to len bytes; *got < len only at the end of the data (for a
 * truncated gzip stream too: zlib then returns what it could decompress). */
static int gz_read_upto(gzFile f, const char *path, void *buf, size_t len, size_t *got,
                        char *err, size_t errlen)
{
  unsigned char *p = buf;
  size_t done = 0;
  while (done < len) {
    size_t chunk = len - done;
    if (chunk > (size_t)1 << 30)
      chunk = (size_t)1 << 30;
    int r = gzread(f, p + done, (unsigned)chunk);
    if (r < 0) {
      *got = done;
      return gz_fail(f, path, err, errlen);
    }
    if (r == 0)
      break;
    done += (size_t)r;
  }
  *got = done;
  return DATA_OK;
}

/* After the last expected byte: the data must end there, and a gzip stream
 * must end cleanly (a missing trailer is a truncation; a bad check value
 * comes back from gzread as Z_DATA_ERROR). */
static int gz_finish(gzFile f, const char *path, const char *what, char *err, size_t errlen)
{
  unsigned char c;
  int r = gzread(f, &c, 1);
  if (r < 0)
    return gz_fail(f, path, err, errlen);
  if (r > 0) {
    seterr(err, errlen, "%s: unexpected data after the %s", path, what);
    return DATA_EFORMAT;
  }
  int zerr = Z_OK;
  gzerror(f, &zerr);
  if (zerr == Z_BUF_ERROR) {
    seterr(err, errlen, "%s: truncated gzip stream (unexpected end of file after the %s)", path,
           what);
    return DATA_EFORMAT;
  }
  if (zerr != Z_OK)
    return gz_fail(f, path, err, errlen);
  return DATA_OK;
}

/* Reads and checks an IDX header: magic 0x000008<ndims>, then ndims
 * nonzero big-endian u32 dimensions. */
static int idx_header(gzFile f, const char *path, int ndims, const char *kind, uint32_t *dims,
                      char *err, size_t errlen)
{
  unsigned char h[4 * 4];
  size_t got;
  uint32_t want = 0x00000800u | (uint32_t)ndims;
  int st = gz_read_upto(f, path, h, 4, &got, err, errlen);
  if (st != DATA_OK)
    return st;
  int zerr = Z_OK;
  gzerror(f, &zerr);
  if (got == 0 && zerr != Z_BUF_ERROR) {
    seterr(err, errlen, "%s: empty file (expected IDX %s, magic 0x%08" PRIX32 ")", path, kind, want);
    return DATA_EFORMAT;
  }
  if (got < 4) {
    seterr(err, errlen, "%s: truncated: expected 4 bytes of header, got %zu", path, got);
    return DATA_EFORMAT;
  }
  uint32_t magic = be32(h);
  if (h[0] != 0 || h[1] != 0 || h[3] != ndims) {
    seterr(err, errlen, "%s: bad IDX magic: expected 0x%08" PRIX32 " (%s), found 0x%08" PRIX32, path,
           want, kind, magic);
    return DATA_EFORMAT;
  }
  if (h[2] != 0x08) {
    seterr(err, errlen,
           "%s: unsupported IDX element type 0x%02X (magic 0x%08" PRIX32
           "): only unsigned bytes (0x08) are supported",
           path, (unsigned)h[2], magic);
    return DATA_EFORMAT;
  }
  size_t need = 4 * (size_t)ndims;
  st = gz_read_upto(f, path, h, need, &got, err, errlen);
  if (st != DATA_OK)
    return st;
  if (got < need) {
    seterr(err, errlen, "%s: truncated: expected %zu bytes of header, got %zu", path, 4 + need,
           4 + got);
    return DATA_EFORMAT;
  }
  for (int i = 0; i < ndims; i++) {
    dims[i] = be32(h + 4 * i);
    if (dims[i] == 0) {
      seterr(err, errlen, "%s: IDX dimension %d is zero", path, i + 1);
      return DATA_EFORMAT;
    }
  }
  return DATA_OK;
}

int data_load_idx(const char *images, const char *labels, train_data *out, char *err,
                  size_t errlen)
{
  enum { CHUNK = 1 << 16 };
  gzFile fi = NULL, fl = NULL;
  unsigned char *buf = NULL;
  train_data d = {0};
  uint32_t idims[3], ldims[1];
  int st;

  clearerr_msg(err, errlen);
  if (out)
    memset(out, 0, sizeof *out);
  if (!images || !labels || !out) {
    seterr(err, errlen, "data_load_idx: missing argument");
    return DATA_EFORMAT;
  }
  if ((st = gz_open(images, &fi, err, errlen)) != DATA_OK)
    goto fail;
  if ((st = idx_header(fi, images, 3, "u8 images", idims, err, errlen)) != DATA_OK)
    goto fail;
  uint64_t n = idims[0], dim = (uint64_t)idims[1] * idims[2];
  if (dim > (uint64_t)DATA_MAX_ELEMS || n > (uint64_t)DATA_MAX_ELEMS / dim) {
    seterr(err, errlen,
           "%s: %" PRIu32 " images of %" PRIu32 "x%" PRIu32
           " pixels exceed the limit of 2^31 values",
           images, idims[0], idims[1], idims[2]);
    st = DATA_ELIMIT;
    goto fail;
  }
  if ((st = gz_open(labels, &fl, err, errlen)) != DATA_OK)
    goto fail;
  if ((st = idx_header(fl, labels, 1, "u8 labels", ldims, err, errlen)) != DATA_OK)
    goto fail;
  if (ldims[0] != idims[0]) {
    seterr(err, errlen, "%s has %" PRIu32 " images but %s has %" PRIu32 " labels", images,
           idims[0], labels, ldims[0]);
    st = DATA_EFORMAT;
    goto fail;
  }

  d.n = (int64_t)n;
  d.dim = (int64_t)dim;
  /* The arrays grow with the data actually read, so that a damaged header
   * (up to 2^31 values claimed by a 16-byte file) costs no more memory
   * than the file holds; the labels are allocated once the images are in
   * (n <= the pixel bytes read). */
  uint64_t total = n * dim, done = 0;
  size_t cap = 0;
  buf = malloc(CHUNK);
  if (!buf) {
    seterr(err, errlen, "%s: out of memory for %" PRIu64 " images", images, n);
    st = DATA_ENOMEM;
    goto fail;
  }
  while (done < total) {
    size_t want = total - done < CHUNK ? (size_t)(total - done) : (size_t)CHUNK, got;
    if (done + want > cap) {
      float *nx = grow(d.x, &cap, (size_t)(done + want), sizeof *d.x);
      if (!nx) {
        seterr(err, errlen, "%s: out of memory for %" PRIu64 " images", images, n);
        st = DATA_ENOMEM;
        goto fail;
      }
      if (cap > total) cap = (size_t)total; /* (grow may round past the end) */
      d.x = nx;
    }
    if ((st = gz_read_upto(fi, images, buf, want, &got, err, errlen)) != DATA_OK)
      goto fail;
    for (size_t i = 0; i < got; i++)
      d.x[done + i] = (float)buf[i] / 255.0f;
    done += got;
    if (got < want) {
      seterr(err, errlen, "%s: truncated: expected %" PRIu64 " bytes of pixel data, got %" PRIu64,
             images, total, done);
      st = DATA_EFORMAT;
      goto fail;
    }
  }
  if ((st = gz_finish(fi, images, "pixel data", err, errlen)) != DATA_OK)
    goto fail;
  if (!d.x && !(d.x = alloc_array(0, sizeof *d.x, 0))) { /* (no pixels: n * dim = 0) */
    st = DATA_ENOMEM;
    goto fail;
  }
  d.raw = alloc_array(n, sizeof *d.raw, 0);
  if (!d.raw) {
    seterr(err, errlen, "%s: out of memory for %" PRIu64 " labels", labels, n);
    st = DATA_ENOMEM;
    goto fail;
  }

  done = 0;
  while (done < n) {
    size_t want = n - done < CHUNK ? (size_t)(n - done) : (size_t)CHUNK, got;
    if ((st = gz_read_upto(fl, labels, buf, want, &got, err, errlen)) != DATA_OK)
      goto fail;
    for (size_t i = 0; i < got; i++)
      d.raw[done + i] = buf[i];
    done += got;
    if (got < want) {
      seterr(err, errlen, "%s: truncated: expected %" PRIu64 " bytes of label data, got %" PRIu64,
             labels, n, done);
      st = DATA_EFORMAT;
      goto fail;
    }
  }
  if ((st = gz_finish(fl, labels, "label data", err, errlen)) != DATA_OK)
    goto fail;

  free(buf);
  gzclose(fi);
  gzclose(fl);
  *out = d;
  return DATA_OK;

fail:
  free(buf);
  if (fi)
    gzclose(fi);
  if (fl)
    gzclose(fl);
  data_free(&d);
  return st;
}

/* ---- LIBSVM ---------------------------------------------------------------- */

int data_load_libsvm(const char *path, train_data *out, char *err, size_t errlen)
{
  static const char ws[] = " \t\r\n\v\f";
  FILE *fp = NULL;
  char *line = NULL;
  size_t lcap = 0;
  double *raw = NULL;
  int64_t *rowptr = NULL; /* rowptr[i]: first nonzero of sample i */
  int32_t *fidx = NULL;
  float *fval = NULL;
  size_t rawcap = 0, rpcap = 0, icap = 0, vcap = 0, nnz = 0;
  int64_t n = 0, lineno = 0, maxidx = 0;
  train_data d = {0};
  int st;

  clearerr_msg(err, errlen);
  if (out)
    memset(out, 0, sizeof *out);
  if (!path || !out) {
    seterr(err, errlen, "data_load_libsvm: missing argument");
    return DATA_EFORMAT;
  }
  if ((st = open_text(path, &fp, err, errlen)) != DATA_OK)
    return st;

  for (;;) {
    ssize_t len = next_line(fp, &line, &lcap, path, &lineno, &st, err, errlen);
    if (len == -2)
      goto fail;
    if (len < 0)
      break;
    char *hash = strchr(line, '#');
    if (hash)
      *hash = '\0';
    char *save = NULL;
    char *tok = strtok_r(line, ws, &save);
    if (!tok)
      continue; /* blank or comment-only line */

    double lab = 0;
    int pr = parse_number(tok, 0, &lab);
    if (pr != 0) {
      seterr(err, errlen, "%s:%" PRId64 ": %s label '%.64s'", path, lineno,
             pr == 1 ? "non-numeric" : "non-finite", tok);
      st = DATA_EFORMAT;
      goto fail;
    }
    if ((size_t)n + 2 > rawcap) {
      void *q = grow(raw, &rawcap, (size_t)n + 2, sizeof *raw);
      if (!q)
        goto nomem;
      raw = q;
    }
    if ((size_t)n + 2 > rpcap) {
      void *q = grow(rowptr, &rpcap, (size_t)n + 2, sizeof *rowptr);
      if (!q)
        goto nomem;
      rowptr = q;
    }
    raw[n] = lab;
    rowptr[n] = (int64_t)nnz;

    int64_t prev = 0;
    while ((tok = strtok_r(NULL, ws, &save)) != NULL) {
      if (strncmp(tok, "qid:", 4) == 0)
        continue;
      char *colon = strchr(tok, ':'), *end;
      if (!colon) {
        seterr(err, errlen, "%s:%" PRId64 ": expected index:value, found '%.64s'", path, lineno,
               tok);
        st = DATA_EFORMAT;
        goto fail;
      }
      errno = 0;
      long long ix = strtoll(tok, &end, 10);
      int range = errno == ERANGE;
      if (end == tok || end != colon) {
        seterr(err, errlen, "%s:%" PRId64 ": non-numeric feature index in '%.64s'", path, lineno,
               tok);
        st = DATA_EFORMAT;
        goto fail;
      }
      if (ix <= 0) {
        seterr(err, errlen,
               "%s:%" PRId64 ": feature index %.*s in '%.64s' (indices start at 1)", path,
               lineno, (int)(colon - tok > 32 ? 32 : colon - tok), tok, tok);
        st = DATA_EFORMAT;
        goto fail;
      }
      if (range || ix > DATA_MAX_INDEX) {
        seterr(err, errlen, "%s:%" PRId64 ": feature index %.*s exceeds the limit %" PRId64, path,
               lineno, (int)(colon - tok > 32 ? 32 : colon - tok), tok, DATA_MAX_INDEX);
        st = DATA_ELIMIT;
        goto fail;
      }
      if (ix <= prev) {
        seterr(err, errlen,
               "%s:%" PRId64 ": feature indices must be increasing (%lld after %" PRId64 ")", path,
               lineno, ix, prev);
        st = DATA_EFORMAT;
        goto fail;
      }
      double v = 0;
      pr = parse_number(colon + 1, 1, &v);
      if (pr != 0) {
        seterr(err, errlen, "%s:%" PRId64 ": %s value in '%.64s'", path, lineno,
               pr == 1 ? "non-numeric" : "non-finite or out-of-range", tok);
        st = DATA_EFORMAT;
        goto fail;
      }
      if (nnz + 1 > icap) {
        void *q = grow(fidx, &icap, nnz + 1, sizeof *fidx);
        if (!q)
          goto nomem;
        fidx = q;
      }
      if (nnz + 1 > vcap) {
        void *q = grow(fval, &vcap, nnz + 1, sizeof *fval);
        if (!q)
          goto nomem;
        fval = q;
      }
      fidx[nnz] = (int32_t)(ix - 1);
      fval[nnz] = (float)v;
      nnz++;
      prev = ix;
      if (ix > maxidx)
        maxidx = ix;
    }
    n++;
  }

  if (n == 0) {
    seterr(err, errlen, "%s: no samples", path);
    st = DATA_EFORMAT;
    goto fail;
  }
  if (maxidx == 0) {
    seterr(err, errlen, "%s: no features (every sample is empty)", path);
    st = DATA_EFORMAT;
    goto fail;
  }
  if (n > DATA_MAX_ELEMS / maxidx) {
    seterr(err, errlen,
           "%s: %" PRId64 " samples x %" PRId64 " features exceed the limit of 2^31 values", path,
           n, maxidx);
    st = DATA_ELIMIT;
    goto fail;
  }
  rowptr[n] = (int64_t)nnz;
  d.n = n;
  d.dim = maxidx;
  d.x = alloc_array((uint64_t)n * (uint64_t)maxidx, sizeof *d.x, 1);
  if (!d.x)
    goto nomem;
  for (int64_t i = 0; i < n; i++) {
    float *row = d.x + i * maxidx;
    for (int64_t k = rowptr[i]; k < rowptr[i + 1]; k++)
      row[fidx[k]] = fval[k];
  }
  d.raw = raw;
  raw = NULL;
  free(rowptr);
  free(fidx);
  free(fval);
  free(line);
  fclose(fp);
  *out = d;
  return DATA_OK;

nomem:
  seterr(err, errlen, "%s:%" PRId64 ": out of memory", path, lineno);
  st = DATA_ENOMEM;
fail:
  free(raw);
  free(rowptr);
  free(fidx);
  free(fval);
  free(line);
  fclose(fp);
  data_free(&d);
  return st;
}

/* ---- CSV -------------------------------------------------------------------- */

int data_load_csv(const char *path, int label_col, int header, train_data *out, char *err,
                  size_t errlen)
{
  FILE *fp = NULL;
  char *line = NULL;
  size_t lcap = 0;
  double *row = NULL, *raw = NULL;
  float *x = NULL;
  size_t rowcap = 0, rawcap = 0, xcap = 0;
  int64_t n = 0, lineno = 0, ncols = 0, dim = 0, lc = 0;
  train_data d = {0};
  int st;

  clearerr_msg(err, errlen);
  if (out)
    memset(out, 0, sizeof *out);
  if (!path || !out) {
    seterr(err, errlen, "data_load_csv: missing argument");
    return DATA_EFORMAT;
  }
  if (label_col < -1) {
    seterr(err, errlen, "%s: invalid label column %d", path, label_col);
    return DATA_EFORMAT;
  }
  if ((st = open_text(path, &fp, err, errlen)) != DATA_OK)
    return st;

  for (;;) {
    ssize_t len = next_line(fp, &line, &lcap, path, &lineno, &st, err, errlen);
    if (len == -2)
      goto fail;
    if (len < 0)
      break;
    if (len > 0 && line[len - 1] == '\n')
      line[--len] = '\0';
    if (len > 0 && line[len - 1] == '\r')
      line[--len] = '\0';
    if (header && lineno == 1)
      continue;
    size_t lead = strspn(line, " \t");
    if (line[lead] == '\0')
      continue; /* blank line */

    int64_t col = 0;
    char *p = line;
    for (;;) {
      char *field = p, *end, *q;
      while (*p == ' ' || *p == '\t')
        p++;
      errno = 0;
      double v = strtod(p, &end);
      q = end;
      while (*q == ' ' || *q == '\t')
        q++;
      if (end == p || (*q != ',' && *q != '\0') || !isfinite(v)) {
        size_t flen = strcspn(field, ",");
        const char *what =
            end != p && (*q == ',' || *q == '\0') ? "non-finite field" : "non-numeric field";
        if (*p == ',' || *p == '\0')
          seterr(err, errlen, "%s:%" PRId64 ": column %" PRId64 ": empty field", path, lineno,
                 col + 1);
        else
          seterr(err, errlen, "%s:%" PRId64 ": column %" PRId64 ": %s '%.*s'", path, lineno,
                 col + 1, what, (int)(flen > 64 ? 64 : flen), field);
        st = DATA_EFORMAT;
        goto fail;
      }
      if ((size_t)col + 1 > rowcap) {
        void *nr = grow(row, &rowcap, (size_t)col + 1, sizeof *row);
        if (!nr)
          goto nomem;
        row = nr;
      }
      row[col++] = v;
      if (*q == '\0')
        break;
      p = q + 1;
    }

    if (n == 0) {
      ncols = col;
      if (ncols < 2) {
        seterr(err, errlen,
               "%s:%" PRId64 ": need at least 2 columns (a label and a feature), found %" PRId64,
               path, lineno, ncols);
        st = DATA_EFORMAT;
        goto fail;
      }
      if (label_col >= ncols) {
        seterr(err, errlen, "%s: label column %d out of range (the file has %" PRId64 " columns)",
               path, label_col, ncols);
        st = DATA_EFORMAT;
        goto fail;
      }
      lc = label_col < 0 ? ncols - 1 : label_col;
      dim = ncols - 1;
    } else if (col != ncols) {
      seterr(err, errlen, "%s:%" PRId64 ": expected %" PRId64 " columns, found %" PRId64, path,
             lineno, ncols, col);
      st = DATA_EFORMAT;
      goto fail;
    }
    if (n + 1 > DATA_MAX_ELEMS / dim) {
      seterr(err, errlen, "%s:%" PRId64 ": more than 2^31 values (%" PRId64 " features a sample)",
             path, lineno, dim);
      st = DATA_ELIMIT;
      goto fail;
    }
    if ((size_t)n + 1 > rawcap) {
      void *q = grow(raw, &rawcap, (size_t)n + 1, sizeof *raw);
      if (!q)
        goto nomem;
      raw = q;
    }
    if ((size_t)((n + 1) * dim) > xcap) {
      void *q = grow(x, &xcap, (size_t)((n + 1) * dim), sizeof *x);
      if (!q)
        goto nomem;
      x = q;
    }
    float *xr = x + n * dim;
    for (int64_t j = 0; j < ncols; j++) {
      if (j == lc)
        continue;
      if (fabs(row[j]) > FLT_MAX) {
        seterr(err, errlen, "%s:%" PRId64 ": column %" PRId64 ": value %g out of float range",
               path, lineno, j + 1, row[j]);
        st = DATA_EFORMAT;
        goto fail;
      }
      *xr++ = (float)row[j];
    }
    raw[n] = row[lc];
    n++;
  }

  if (n == 0) {
    seterr(err, errlen, "%s: no samples", path);
    st = DATA_EFORMAT;
    goto fail;
  }
  /* Give back the unused capacity (keeping the buffers if that fails). */
  void *q = realloc(x, (size_t)(n * dim) * sizeof *x);
  if (q)
    x = q;
  q = realloc(raw, (size_t)n * sizeof *raw);
  if (q)
    raw = q;
  d.n = n;
  d.dim = dim;
  d.x = x;
  d.raw = raw;
  free(row);
  free(line);
  fclose(fp);
  *out = d;
  return DATA_OK;

nomem:
  seterr(err, errlen, "%s:%" PRId64 ": out of memory", path, lineno);
  st = DATA_ENOMEM;
fail:
  free(row);
  free(raw);
  free(x);
  free(line);
  fclose(fp);
  return st;
}

/* ---- random numbers (splitmix64) -------------------------------------------- */

static uint64_t sm64(uint64_t *s)
{
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Uniform in [0, bound), unbiased (bound > 0). */
static uint64_t rng_below(uint64_t *s, uint64_t bound)
{
  uint64_t threshold = (0 - bound) % bound;
  for (;;) {
    uint64_t r = sm64(s);
    if (r >= threshold)
      return r % bound;
  }
}

typedef struct {
  uint64_t s;
  int have;
  double spare;
} gauss_rng;

static void gauss_seed(gauss_rng *g, uint64_t seed, uint64_t stream)
{
  g->s = seed ^ (stream * 0xd1b54a32d192ed03ull);
  sm64(&g->s);
  g->have = 0;
  g->spare = 0;
}

/* Standard normal (Box-Muller, both values used). */
static double gauss(gauss_rng *g)
{
  static const double two_pi = 6.283185307179586476925286766559;
  if (g->have) {
    g->have = 0;
    return g->spare;
  }
  double u1 = ((double)(sm64(&g->s) >> 11) + 0.5) * 0x1.0p-53; /* (0,1) */
  double u2 = (double)(sm64(&g->s) >> 11) * 0x1.0p-53;
  double r = sqrt(-2.0 * log(u1));
  g->spare = r * sin(two_pi * u2);
  g->have = 1;
  return r * cos(two_pi * u2);
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* ---- synthetic ---------------------------------------------------------------- */

/* Target accuracy of the Bayes (nearest true mean, a linear) classifier. */
#define SYNTH_ACCURACY 0.85

int data_synthetic(int64_t n, int64_t dim, int nclass, uint64_t seed, train_data *out)
{
  if (!out)
    return DATA_EFORMAT;
  memset(out, 0, sizeof *out);
  if (n < 1 || dim < 1 || nclass < 2 || nclass > DATA_MAX_CLASSES)
    return DATA_EFORMAT;
  if (n > DATA_MAX_ELEMS / dim)
    return DATA_ELIMIT;

  const int64_t K = nclass;
  /* Pilot samples to calibrate the noise: fewer when K*dim is large. */
  int64_t P = ((int64_t)1 << 26) / (K * dim);
  if (P > 4096)
    P = 4096;
  if (P < 256)
    P = 256;

  train_data d = {0};
  double *mu = alloc_array((uint64_t)K * (uint64_t)dim, sizeof *mu, 0);
  double *z = alloc_array((uint64_t)dim, sizeof *z, 0);
  double *t = alloc_array((uint64_t)P, sizeof *t, 0);
  d.x = alloc_array((uint64_t)n * (uint64_t)dim, sizeof *d.x, 0);
  d.raw = alloc_array((uint64_t)n, sizeof *d.raw, 0);
  d.y = alloc_array((uint64_t)n, sizeof *d.y, 0);
  if (!mu || !z || !t || !d.x || !d.raw || !d.y) {
    free(mu);
    free(z);
    free(t);
    data_free(&d);
    return DATA_ENOMEM;
  }

  gauss_rng g;
  gauss_seed(&g, seed, 1);
  for (int64_t i = 0; i < K * dim; i++)
    mu[i] = gauss(&g);

  /* A sample mu_c + sigma*z is classified correctly by the nearest true
   * mean iff |mu_c - mu_k|^2 + sigma * 2<mu_c - mu_k, z> > 0 for every
   * k != c, i.e. iff sigma < t = min over k with b < 0 of a/(-b).  So the
   * accuracy at sigma is the fraction of pilot t above sigma: sigma is the
   * (1 - SYNTH_ACCURACY) quantile of t. */
  gauss_seed(&g, seed, 2);
  for (int64_t p = 0; p < P; p++) {
    int64_t c = p % K;
    const double *mc = mu + c * dim;
    for (int64_t j = 0; j < dim; j++)
      z[j] = gauss(&g);
    double tp = INFINITY;
    for (int64_t k = 0; k < K; k++) {
      if (k == c)
        continue;
      const double *mk = mu + k * dim;
      double a = 0, b = 0;
      for (int64_t j = 0; j < dim; j++) {
        double dlt = mc[j] - mk[j];
        a += dlt * dlt;
        b += dlt * z[j];
      }
      b *= 2;
      if (b < 0 && a / -b < tp)
        tp = a / -b;
    }
    t[p] = tp;
  }
  qsort(t, (size_t)P, sizeof *t, cmp_double);
  double sigma = t[(int64_t)((1.0 - SYNTH_ACCURACY) * (double)P)];
  if (!isfinite(sigma) || sigma <= 0)
    sigma = 1.0;
  /* Scale so that the features have about unit variance (this changes
   * nothing for a linear classifier). */
  double scale = 1.0 / sqrt(1.0 + sigma * sigma);

  uint64_t ls = seed ^ 0x6a09e667f3bcc909ull;
  gauss_seed(&g, seed, 3);
  for (int64_t i = 0; i < n; i++) {
    int64_t c = (int64_t)rng_below(&ls, (uint64_t)K);
    const double *mc = mu + c * dim;
    float *xr = d.x + i * dim;
    for (int64_t j = 0; j < dim; j++)
      xr[j] = (float)((mc[j] + sigma * gauss(&g)) * scale);
    d.raw[i] = (double)c;
    d.y[i] = (int32_t)c;
  }
  d.n = n;
  d.dim = dim;
  d.nclass = nclass;
  free(mu);
  free(z);
  free(t);
  *out = d;
  return DATA_OK;
}

/* ---- dims, labels, split ------------------------------------------------------ */

int data_match_dims(train_data *a, train_data *b, char *err, size_t errlen)
{
  clearerr_msg(err, errlen);
  if (!a) {
    seterr(err, errlen, "data_match_dims: missing data set");
    return DATA_EFORMAT;
  }
  if (!b || b == a || a->dim == b->dim)
    return DATA_OK;
  train_data *s = a->dim < b->dim ? a : b;
  int64_t w = a->dim < b->dim ? b->dim : a->dim;
  if (s->n == 0) {
    s->dim = w;
    return DATA_OK;
  }
  if (s->n > DATA_MAX_ELEMS / w) {
    seterr(err, errlen, "%" PRId64 " samples x %" PRId64 " features exceed the limit of 2^31 values",
           s->n, w);
    return DATA_ELIMIT;
  }
  float *nx = alloc_array((uint64_t)s->n * (uint64_t)w, sizeof *nx, 1);
  if (!nx) {
    seterr(err, errlen, "out of memory widening %" PRId64 " samples to %" PRId64 " features", s->n,
           w);
    return DATA_ENOMEM;
  }
  if (s->dim > 0)
    for (int64_t i = 0; i < s->n; i++)
      memcpy(nx + i * w, s->x + i * s->dim, (size_t)s->dim * sizeof *nx);
  free(s->x);
  s->x = nx;
  s->dim = w;
  return DATA_OK;
}

/* Index of v in the sorted distinct values u[0..k). */
static int32_t label_index(const double *u, int64_t k, double v)
{
  int64_t lo = 0, hi = k - 1;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    if (u[mid] < v)
      lo = mid + 1;
    else
      hi = mid;
  }
  return (int32_t)lo;
}

int data_map_labels(train_data *a, train_data *b, char *err, size_t errlen)
{
  clearerr_msg(err, errlen);
  if (!a) {
    seterr(err, errlen, "data_map_labels: missing data set");
    return DATA_EFORMAT;
  }
  if (b == a)
    b = NULL;
  train_data *sets[2] = {a, b};
  uint64_t total = 0;
  for (int s = 0; s < 2; s++) {
    if (!sets[s])
      continue;
    if (sets[s]->n > 0 && !sets[s]->raw) {
      seterr(err, errlen, "data_map_labels: no raw labels");
      return DATA_EFORMAT;
    }
    total += (uint64_t)sets[s]->n;
  }
  double *u = alloc_array(total, sizeof *u, 0);
  if (!u) {
    seterr(err, errlen, "out of memory mapping %" PRIu64 " labels", total);
    return DATA_ENOMEM;
  }
  int64_t m = 0;
  for (int s = 0; s < 2; s++) {
    if (!sets[s])
      continue;
    for (int64_t i = 0; i < sets[s]->n; i++) {
      double v = sets[s]->raw[i];
      if (isnan(v)) {
        seterr(err, errlen, "%s set, sample %" PRId64 ": the label is NaN",
               s == 0 ? "first" : "second", i);
        free(u);
        return DATA_EFORMAT;
      }
      u[m++] = v;
    }
  }
  qsort(u, (size_t)m, sizeof *u, cmp_double);
  int64_t k = 0;
  for (int64_t i = 0; i < m; i++)
    if (k == 0 || u[i] != u[k - 1])
      u[k++] = u[i];
  if (k < 2) {
    if (k == 0)
      seterr(err, errlen, "no labels: at least 2 classes are needed");
    else
      seterr(err, errlen, "only one distinct label (%g): at least 2 classes are needed", u[0]);
    free(u);
    return DATA_EFORMAT;
  }
  if (k > DATA_MAX_CLASSES) {
    seterr(err, errlen,
           "%" PRId64 " distinct labels: at most %d classes are supported (is the label column "
           "right?)",
           k, DATA_MAX_CLASSES);
    free(u);
    return DATA_ELIMIT;
  }
  int32_t *ys[2] = {NULL, NULL};
  for (int s = 0; s < 2; s++) {
    if (!sets[s])
      continue;
    ys[s] = alloc_array((uint64_t)sets[s]->n, sizeof *ys[s], 0);
    if (!ys[s]) {
      free(ys[0]);
      free(u);
      seterr(err, errlen, "out of memory mapping %" PRIu64 " labels", total);
      return DATA_ENOMEM;
    }
  }
  for (int s = 0; s < 2; s++) {
    if (!sets[s])
      continue;
    for (int64_t i = 0; i < sets[s]->n; i++)
      ys[s][i] = label_index(u, k, sets[s]->raw[i]);
    free(sets[s]->y);
    sets[s]->y = ys[s];
    sets[s]->nclass = (int)k;
  }
  free(u);
  return DATA_OK;
}

int data_split(train_data *all, double fraction, uint64_t seed, train_data *train,
               train_data *test, char *err, size_t errlen)
{
  clearerr_msg(err, errlen);
  if (train)
    memset(train, 0, sizeof *train);
  if (test)
    memset(test, 0, sizeof *test);
  if (!all || !train || !test || train == test || train == all || test == all) {
    seterr(err, errlen, "data_split: bad arguments");
    return DATA_EFORMAT;
  }
  if (!(fraction > 0 && fraction < 1)) {
    seterr(err, errlen, "test fraction %g is not in (0, 1)", fraction);
    return DATA_EFORMAT;
  }
  int64_t n = all->n, dim = all->dim;
  int64_t ntest = (int64_t)llround((double)n * fraction), ntrain = n - ntest;
  if (ntest < 1 || ntrain < 1) {
    seterr(err, errlen,
           "cannot split %" PRId64 " samples with test fraction %g: both parts must be non-empty",
           n, fraction);
    return DATA_EFORMAT;
  }

  int64_t *perm = alloc_array((uint64_t)n, sizeof *perm, 0);
  train_data parts[2] = {{0}, {0}};
  int64_t counts[2] = {ntrain, ntest};
  int ok = perm != NULL;
  for (int s = 0; s < 2 && ok; s++) {
    parts[s].n = counts[s];
    parts[s].dim = dim;
    parts[s].nclass = all->nclass;
    parts[s].x = alloc_array((uint64_t)counts[s] * (uint64_t)dim, sizeof *parts[s].x, 0);
    parts[s].raw = alloc_array((uint64_t)counts[s], sizeof *parts[s].raw, 0);
    if (all->y)
      parts[s].y = alloc_array((uint64_t)counts[s], sizeof *parts[s].y, 0);
    ok = parts[s].x && parts[s].raw && (!all->y || parts[s].y);
  }
  if (!ok) {
    free(perm);
    data_free(&parts[0]);
    data_free(&parts[1]);
    seterr(err, errlen, "out of memory splitting %" PRId64 " samples", n);
    return DATA_ENOMEM;
  }

  for (int64_t i = 0; i < n; i++)
    perm[i] = i;
  uint64_t s = seed ^ 0x3c6ef372fe94f82bull;
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = (int64_t)rng_below(&s, (uint64_t)i + 1);
    int64_t tmp = perm[i];
    perm[i] = perm[j];
    perm[j] = tmp;
  }
  for (int64_t i = 0; i < n; i++) {
    train_data *dst = i < ntrain ? &parts[0] : &parts[1];
    int64_t r = i < ntrain ? i : i - ntrain, src = perm[i];
    if (dim > 0)
      memcpy(dst->x + r * dim, all->x + src * dim, (size_t)dim * sizeof *dst->x);
    dst->raw[r] = all->raw ? all->raw[src] : 0.0;
    if (all->y)
      dst->y[r] = all->y[src];
  }
  free(perm);
  *train = parts[0];
  *test = parts[1];
  return DATA_OK;
}

void data_free(train_data *d)
{
  if (!d)
    return;
  free(d->x);
  free(d->raw);
  free(d->y);
  memset(d, 0, sizeof *d);
}
