/* check_data.c - the data readers of optim-train (tools/train/data.c):
 * IDX (plain and gzip), LIBSVM and CSV files with their error reports,
 * label mapping, dimension matching, the split and the synthetic set. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "../tools/train/data.h"

/* ---- one temporary directory for the suite -------------------------------------
 * (an unchecked fixture: run by the parent, so removed even when a test fails) */

static char tmpdir[4096];

static void setup(void)
{
  const char *base = getenv("TMPDIR");
  if (!base || !*base)
    base = "/tmp";
  snprintf(tmpdir, sizeof tmpdir, "%s/check_data.XXXXXX", base);
  ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
  DIR *dir = opendir(tmpdir);
  if (dir) {
    struct dirent *e;
    char p[8192];
    while ((e = readdir(dir)) != NULL) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
        continue;
      snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
      unlink(p);
    }
    closedir(dir);
  }
  rmdir(tmpdir);
}

/* The path of name in the temporary directory (a static buffer per slot). */
static const char *tpath(int slot, const char *name)
{
  static char paths[4][8192];
  snprintf(paths[slot], sizeof paths[slot], "%s/%s", tmpdir, name);
  return paths[slot];
}

static const char *write_bytes(int slot, const char *name, const void *data, size_t len)
{
  const char *p = tpath(slot, name);
  FILE *f = fopen(p, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(data, 1, len, f), len);
  ck_assert_int_eq(fclose(f), 0);
  return p;
}

static const char *write_text(int slot, const char *name, const char *text)
{
  return write_bytes(slot, name, text, strlen(text));
}

static const char *write_gz(int slot, const char *name, const void *data, size_t len)
{
  const char *p = tpath(slot, name);
  gzFile f = gzopen(p, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(gzwrite(f, data, (unsigned)len), (int)len);
  ck_assert_int_eq(gzclose(f), Z_OK);
  return p;
}

static long file_size(const char *p)
{
  FILE *f = fopen(p, "rb");
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
  long n = ftell(f);
  fclose(f);
  return n;
}

/* Truncates the file at p to len bytes. */
static void chop(const char *p, long len)
{
  ck_assert_int_eq(truncate(p, (off_t)len), 0);
  ck_assert_int_eq(file_size(p), len);
}

/* A train_data full of garbage, to see that a failing call zeroes it. */
static void garbage(train_data *d)
{
  memset(d, 0x5a, sizeof *d);
}

static void assert_zeroed(const train_data *d)
{
  ck_assert_int_eq(d->n, 0);
  ck_assert_int_eq(d->dim, 0);
  ck_assert_ptr_null(d->x);
  ck_assert_ptr_null(d->raw);
  ck_assert_ptr_null(d->y);
  ck_assert_int_eq(d->nclass, 0);
}

#define assert_has(msg, needle) \
  ck_assert_msg(strstr((msg), (needle)) != NULL, "'%s' not in message '%s'", (needle), (msg))

/* ---- IDX ----------------------------------------------------------------------- */

static void put32(unsigned char *p, uint32_t v)
{
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

/* An IDX images file of n images of r x c pixels, pixel k = (k*37+11)%256
 * (or a hash when scramble, which compresses badly); returns its size. */
static size_t idx_images(unsigned char *buf, uint32_t magic, uint32_t n, uint32_t r, uint32_t c,
                         int scramble)
{
  put32(buf, magic);
  put32(buf + 4, n);
  put32(buf + 8, r);
  put32(buf + 12, c);
  size_t total = (size_t)n * r * c;
  uint32_t h = 2166136261u;
  for (size_t k = 0; k < total; k++) {
    h = (h ^ (uint32_t)k) * 16777619u;
    buf[16 + k] = scramble ? (unsigned char)(h >> 13) : (unsigned char)((k * 37 + 11) % 256);
  }
  return 16 + total;
}

static size_t idx_labels(unsigned char *buf, uint32_t magic, uint32_t n)
{
  put32(buf, magic);
  put32(buf + 4, n);
  for (uint32_t i = 0; i < n; i++)
    buf[8 + i] = (unsigned char)((i * 7) % 10);
  return 8 + n;
}

static void check_idx_contents(const train_data *d, uint32_t n, uint32_t r, uint32_t c)
{
  ck_assert_int_eq(d->n, n);
  ck_assert_int_eq(d->dim, (int64_t)r * c);
  ck_assert_ptr_null(d->y);
  for (size_t k = 0; k < (size_t)n * r * c; k++)
    ck_assert_float_eq(d->x[k], (float)((k * 37 + 11) % 256) / 255.0f);
  for (uint32_t i = 0; i < n; i++)
    ck_assert_double_eq(d->raw[i], (i * 7) % 10);
  float lo = 1, hi = 0;
  for (size_t k = 0; k < (size_t)n * r * c; k++) {
    lo = d->x[k] < lo ? d->x[k] : lo;
    hi = d->x[k] > hi ? d->x[k] : hi;
  }
  ck_assert(lo >= 0.0f && hi <= 1.0f);
}

START_TEST(test_idx_roundtrip_plain)
{
  static unsigned char img[16 + 6 * 4 * 3], lab[8 + 6];
  size_t ni = idx_images(img, 0x00000803, 6, 4, 3, 0), nl = idx_labels(lab, 0x00000801, 6);
  const char *pi = write_bytes(0, "img.idx", img, ni), *pl = write_bytes(1, "lab.idx", lab, nl);
  train_data d;
  char err[256] = "stale";
  garbage(&d);
  ck_assert_int_eq(data_load_idx(pi, pl, &d, err, sizeof err), DATA_OK);
  ck_assert_str_eq(err, "");
  check_idx_contents(&d, 6, 4, 3);
  ck_assert_float_eq(d.x[0], 11.0f / 255.0f);
  data_free(&d);
  assert_zeroed(&d);
}
END_TEST

START_TEST(test_idx_roundtrip_gzip)
{
  static unsigned char img[16 + 50 * 28 * 28], lab[8 + 50];
  size_t ni = idx_images(img, 0x00000803, 50, 28, 28, 0), nl = idx_labels(lab, 0x00000801, 50);
  const char *pi = write_gz(0, "img.idx.gz", img, ni), *pl = write_gz(1, "lab.idx.gz", lab, nl);
  ck_assert_int_lt(file_size(pi), (long)ni); /* really compressed */
  train_data d;
  char err[256];
  ck_assert_int_eq(data_load_idx(pi, pl, &d, err, sizeof err), DATA_OK);
  check_idx_contents(&d, 50, 28, 28);
  data_free(&d);
  /* Mixed: gzip images, plain labels. */
  pl = write_bytes(1, "lab.idx", lab, nl);
  ck_assert_int_eq(data_load_idx(pi, pl, &d, err, sizeof err), DATA_OK);
  check_idx_contents(&d, 50, 28, 28);
  data_free(&d);
}
END_TEST

START_TEST(test_idx_bad_magic)
{
  static unsigned char img[16 + 2 * 2 * 2], lab[8 + 2];
  size_t nl = idx_labels(lab, 0x00000801, 2);
  const char *pl = write_bytes(1, "lab.idx", lab, nl);
  train_data d;
  char err[512];

  /* The labels file given as images. */
  garbage(&d);
  ck_assert_int_eq(data_load_idx(pl, pl, &d, err, sizeof err), DATA_EFORMAT);
  assert_zeroed(&d);
  assert_has(err, pl);
  assert_has(err, "expected 0x00000803");
  assert_has(err, "found 0x00000801");

  /* Images given as labels. */
  size_t ni = idx_images(img, 0x00000803, 2, 2, 2, 0);
  const char *pi = write_bytes(0, "img.idx", img, ni);
  garbage(&d);
  ck_assert_int_eq(data_load_idx(pi, pi, &d, err, sizeof err), DATA_EFORMAT);
  assert_zeroed(&d);
  assert_has(err, "expected 0x00000801");
  assert_has(err, "found 0x00000803");

  /* Not IDX at all. */
  pi = write_text(0, "text.idx", "hello world, this is no IDX file");
  ck_assert_int_eq(data_load_idx(pi, pl, &d, err, sizeof err), DATA_EFORMAT);
  assert_has(err, "text.idx");
  assert_has(err, "bad IDX magic");

  /* Float images (type 0x0D): a valid IDX type that is not supported. */
  ni = idx_images(img, 0x00000D03, 2, 2, 2, 0);
  pi = write_bytes(0, "float.idx", img, ni);
  ck_assert_int_eq(data_load_idx(pi, pl, &d, err, sizeof err), DATA_EFORMAT);
  assert_has(err, "unsupported IDX element type 0x0D");

  /* A zero dimension. */
  ni = idx_images(img, 0x00000803, 2, 0, 2, 0);
  pi = write_bytes(0, "zero.idx", img, ni);
  ck_assert_int_eq(data_load_idx(pi, pl, &d, err, sizeof err), DATA_EFORMAT);
  assert_has(err, "zero");

  /* Missing files: an I/O error naming the file. */
  ck_assert_int_eq(data_load_idx(tpath(2, "nope.idx"), pl, &d, err, sizeof err), DATA_EIO);
  assert_has(err, "nope.idx");
  ck_assert_int_eq(data_load_idx(pl, tpath(2, "nope2.idx"), &d, err, sizeof err), DATA_EFORMAT);
  ni = idx_images(img, 0x00000803, 2, 2, 2, 0);
  pi = write_bytes(0, "img.idx", img, ni);
  ck_assert_int_eq(data_load_idx(pi, tpath(2, "nope2.idx"), &d, err, sizeof err), DATA_EIO);
  assert_has(err, "nope2.idx");
  assert_zeroed(&d);
}
END_TEST

START_TEST(test_idx_count_mismatch)
{
  static unsigned char img[16 + 5 * 3 * 3], lab[8 + 6];
  size_t ni = idx_images(img, 0x00000803, 5, 3, 3, 0), nl = idx_labels(lab, 0x00000801, 6);
  const char *pi = write_bytes(0, "img.idx", img, ni), *pl = write_bytes(1, "lab.idx", lab, nl);
  train_data d;
  char err[512];
  garbage(&d);
  ck_assert_int_eq(data_load_idx(pi, pl, &d, err, sizeof err), DATA_EFORMAT);
  assert_zeroed(&d);
  assert_has(err, "5 images");
  assert_has(err, "6 labels");
  /* More images than labels. */
  ni = idx_images(img, 0x00000803, 5, 3, 3, 0);
  nl = idx_labels(lab, 0x00000801, 4);
  pi = write_bytes(0, "img.idx", img, ni);
  pl = write_bytes(1, "lab.idx", lab, nl);
  garbage(&d);
  ck_assert_int_eq(data_load_idx(pi, pl, &d, err, sizeof err), DATA_EFORMAT);
  assert_zeroed(&d);
  assert_has(err, "5 images");
  assert_has(err, "4 labels");
}
END_TEST

START_TEST(test_idx_limits)
{
  /* 65536 images of 65536 x 65536: refused from the header alone. */
  static unsigned char img[16];
  put32(img, 0x00000803);
  put32(img + 4, 65536);
  put32(img + 8, 65536);
  put32(img + 12, 65536);
  const char *pi = write_bytes(0, "huge.idx", img, 16);
  static unsigned char lab[8 + 4];
  size_t nl = idx_labels(lab, 0x00000801, 4);
  const char *pl = write_bytes(1, "lab.idx", lab, nl);
  train_data d;
  char err[512];
  garbage(&d);
  ck_assert_int_eq(data_load_idx(pi, pl, &d, err, sizeof err), DATA_ELIMIT);
  assert_zeroed(&d);
  assert_has(err, "huge.idx");
  /* 2^31 + 1 elements: just over. */
  put32(img + 4, 2);
  put32(img + 8, 32768);
  put32(img + 12, 32769);
  pi = write_bytes(0, "huge.idx", img, 16);
  ck_assert_int_eq(data_load_idx(pi, pl, &d, err, sizeof err), DATA_ELIMIT);
}
END_TEST

/* Peak virtual memory of this process, in KiB (/proc/self/status). */
static long vm_peak_kib(void)
{
  FILE *f = fopen("/proc/self/status", "r");
  ck_assert_ptr_nonnull(f);
  char line[256];
  long kib = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmPeak: %ld kB", &kib) == 1) break;
  fclose(f);
  ck_assert_int_ge(kib, 0);
  return kib;
}

/* A damaged header claiming 2^31 pixels in a file of a few bytes is refused
 * as truncated without allocating for the claim: the reader once asked
 * for 8 GiB first (found by tests/fuzz/fuzz_data.c; the input is in
 * tests/fuzz/regressions/data). */
START_TEST(test_idx_huge_header)
{
  unsigned char img[16 + 100], lab[8 + 10];
  put32(img, 0x00000803);
  put32(img + 4, 32768);
  put32(img + 8, 256);
  put32(img + 12, 256);
  memset(img + 16, 7, 100);
  put32(lab, 0x00000801);
  put32(lab + 4, 32768);
  memset(lab + 8, 1, 10);
  const char *pi = write_bytes(0, "img.idx", img, sizeof img);
  const char *pl = write_bytes(1, "lab.idx", lab, sizeof lab);
  train_data d;
  char err[512];
  garbage(&d);
  long before = vm_peak_kib();
  ck_assert_int_eq(data_load_idx(pi, pl, &d, err, sizeof err), DATA_EFORMAT);
  assert_zeroed(&d);
  assert_has(err, "truncated: expected 2147483648 bytes of pixel data, got 100");
  long grew = vm_peak_kib() - before;
  ck_assert_msg(grew < 64 * 1024, "peak virtual memory grew by %ld KiB", grew);
}
END_TEST

START_TEST(test_idx_truncated)
{
  static unsigned char img[16 + 40 * 16 * 16], lab[8 + 40];
  size_t ni = idx_images(img, 0x00000803, 40, 16, 16, 1), nl = idx_labels(lab, 0x00000801, 40);
  const char *pl = write_bytes(1, "lab.idx", lab, nl);
  train_data d;
  char err[512];

  /* Plain file, pixel data cut short. */
  const char *pi = write_bytes(0, "img.idx", img, ni - 100);
  garbage(&d);
  ck_assert_int_eq(data_load_idx(pi, pl, &d, err, sizeof err), DATA_EFORMAT);
  assert_zeroed(&d);
  assert_has(err, "img.idx: truncated: expected 10240 bytes of pixel data, got 10140");
  /* Plain file, header cut short. */
  pi = write_bytes(0, "img.idx", img, 10);
  ck_assert_int_eq(data_load_idx(pi, pl, &d, err, sizeof err), DATA_EFORMAT);
  assert_has(err, "truncated");
  /* Labels cut short. */
  pi = write_bytes(0, "img.idx", img, ni);
  pl = write_bytes(1, "lab.idx", lab, nl - 1);
  ck_assert_int_eq(data_load_idx(pi, pl, &d, err, sizeof err), DATA_EFORMAT);
  assert_has(err, "expected 40 bytes of label data, got 39");
  pl = write_bytes(1, "lab.idx", lab, nl);
  /* Trailing data after the pixels. */
  static unsigned char more[sizeof img + 3];
  memcpy(more, img, ni);
  pi = write_bytes(0, "img.idx", more, ni + 3);
  ck_assert_int_eq(data_load_idx(pi, pl, &d, err, sizeof err), DATA_EFORMAT);
  assert_has(err, "unexpected data");

  /* Gzip: the whole file loads; chopped anywhere (inside the deflate data,
   * or only the CRC/size trailer), it is a format error. */
  pi = write_gz(0, "img.idx.gz", img, ni);
  ck_assert_int_eq(data_load_idx(pi, pl, &d, err, sizeof err), DATA_OK);
  data_free(&d);
  long full = file_size(pi);
  ck_assert_int_gt(full, 2000);
  long cuts[] = {full - 1, full - 4, full - 8, full - 9, full / 2, 30};
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
    pi = write_gz(0, "img.idx.gz", img, ni);
    chop(pi, cuts[i]);
    garbage(&d);
    err[0] = '\0';
    ck_assert_msg(data_load_idx(pi, pl, &d, err, sizeof err) == DATA_EFORMAT,
                  "cut at %ld of %ld: %s", cuts[i], full, err);
    assert_zeroed(&d);
    assert_has(err, "img.idx.gz");
    assert_has(err, "truncated");
  }
  /* The pixel data cut in the middle says how much arrived. */
  pi = write_gz(0, "img.idx.gz", img, ni);
  chop(pi, full / 2);
  ck_assert_int_eq(data_load_idx(pi, pl, &d, err, sizeof err), DATA_EFORMAT);
  assert_has(err, "expected 10240 bytes of pixel data, got ");

  /* A corrupted byte in the middle of the stream. */
  pi = write_gz(0, "img.idx.gz", img, ni);
  FILE *f = fopen(pi, "r+b");
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(fseek(f, full / 2, SEEK_SET), 0);
  int c = fgetc(f);
  ck_assert_int_eq(fseek(f, full / 2, SEEK_SET), 0);
  fputc(c ^ 0x55, f);
  fclose(f);
  garbage(&d);
  ck_assert_int_eq(data_load_idx(pi, pl, &d, err, sizeof err), DATA_EFORMAT);
  assert_zeroed(&d);
}
END_TEST

/* ---- LIBSVM ---------------------------------------------------------------------- */

START_TEST(test_libsvm_good)
{
  const char *p = write_text(0, "a.svm",
                             "# a LIBSVM file\n"
                             "+1 1:0.5 3:-2 # trailing comment\n"
                             "\n"
                             "   \t\n"
                             "-1 qid:7 2:1.25e1\t4:3\r\n"
                             "# only a comment\n"
                             "2\n"
                             "0 1:1 2:2 3:3 4:4"); /* no final newline */
  train_data d;
  char err[256];
  ck_assert_int_eq(data_load_libsvm(p, &d, err, sizeof err), DATA_OK);
  ck_assert_int_eq(d.n, 4);
  ck_assert_int_eq(d.dim, 4);
  ck_assert_ptr_null(d.y);
  static const float want[4][4] = {
      {0.5f, 0, -2, 0}, {0, 12.5f, 0, 3}, {0, 0, 0, 0}, {1, 2, 3, 4}};
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++)
      ck_assert_float_eq(d.x[i * 4 + j], want[i][j]);
  ck_assert_double_eq(d.raw[0], 1);
  ck_assert_double_eq(d.raw[1], -1);
  ck_assert_double_eq(d.raw[2], 2);
  ck_assert_double_eq(d.raw[3], 0);
  data_free(&d);
}
END_TEST

START_TEST(test_libsvm_order)
{
  train_data d;
  char err[256];
  const char *p = write_text(0, "o.svm", "1 1:1 2:1\n# c\n-1 3:1 9:2 7:1\n");
  garbage(&d);
  ck_assert_int_eq(data_load_libsvm(p, &d, err, sizeof err), DATA_EFORMAT);
  assert_zeroed(&d);
  assert_has(err, "o.svm:3: feature indices must be increasing (7 after 9)");
  p = write_text(0, "o.svm", "1 1:1 2:1\n1 2:1\n-1 4:1 4:2\n");
  ck_assert_int_eq(data_load_libsvm(p, &d, err, sizeof err), DATA_EFORMAT);
  assert_has(err, "o.svm:3: feature indices must be increasing (4 after 4)");
}
END_TEST

START_TEST(test_libsvm_index0)
{
  train_data d;
  char err[256];
  const char *p = write_text(0, "z.svm", "1 1:1\n1 0:3 2:1\n");
  garbage(&d);
  ck_assert_int_eq(data_load_libsvm(p, &d, err, sizeof err), DATA_EFORMAT);
  assert_zeroed(&d);
  assert_has(err, "z.svm:2:");
  assert_has(err, "0:3");
  p = write_text(0, "z.svm", "1 1:1\n\n1 -5:3\n");
  ck_assert_int_eq(data_load_libsvm(p, &d, err, sizeof err), DATA_EFORMAT);
  assert_has(err, "z.svm:3:");
  assert_has(err, "-5");
}
END_TEST

START_TEST(test_libsvm_limits)
{
  train_data d;
  char err[256];
  const char *p = write_text(0, "h.svm", "1 1:1\n1 2:1\n1 3:1 16777217:1\n");
  garbage(&d);
  ck_assert_int_eq(data_load_libsvm(p, &d, err, sizeof err), DATA_ELIMIT);
  assert_zeroed(&d);
  assert_has(err, "h.svm:3:");
  assert_has(err, "16777217");
  p = write_text(0, "h.svm", "1 99999999999999999999999:1\n");
  ck_assert_int_eq(data_load_libsvm(p, &d, err, sizeof err), DATA_ELIMIT);
  assert_has(err, "h.svm:1:");

  /* 16777216 is allowed, but 129 such samples are over 2^31 values. */
  size_t cap = 129 * 20 + 1, len = 0;
  char *text = malloc(cap);
  ck_assert_ptr_nonnull(text);
  for (int i = 0; i < 129; i++)
    len += (size_t)snprintf(text + len, cap - len, "%d 16777216:1\n", i % 2);
  p = write_text(0, "h.svm", text);
  free(text);
  ck_assert_int_eq(data_load_libsvm(p, &d, err, sizeof err), DATA_ELIMIT);
  assert_has(err, "h.svm");
  assert_has(err, "129 samples");
  /* One of them is fine (64 MiB). */
  p = write_text(0, "h.svm", "1 16777216:0.25\n");
  ck_assert_int_eq(data_load_libsvm(p, &d, err, sizeof err), DATA_OK);
  ck_assert_int_eq(d.n, 1);
  ck_assert_int_eq(d.dim, 16777216);
  ck_assert_float_eq(d.x[16777215], 0.25f);
  ck_assert_float_eq(d.x[0], 0.0f);
  data_free(&d);
}
END_TEST

START_TEST(test_libsvm_nonnumeric)
{
  train_data d;
  char err[256];
  const char *p = write_text(0, "n.svm", "1 1:1\nabc 1:2\n");
  garbage(&d);
  ck_assert_int_eq(data_load_libsvm(p, &d, err, sizeof err), DATA_EFORMAT);
  assert_zeroed(&d);
  assert_has(err, "n.svm:2:");
  assert_has(err, "'abc'");
  p = write_text(0, "n.svm", "1 1:1\n1 2:1\n\n-1 3:x1\n");
  ck_assert_int_eq(data_load_libsvm(p, &d, err, sizeof err), DATA_EFORMAT);
  assert_has(err, "n.svm:4:");
  assert_has(err, "'3:x1'");
  p = write_text(0, "n.svm", "1 a:1\n");
  ck_assert_int_eq(data_load_libsvm(p, &d, err, sizeof err), DATA_EFORMAT);
  assert_has(err, "n.svm:1:");
  assert_has(err, "'a:1'");
  p = write_text(0, "n.svm", "1 5\n");
  ck_assert_int_eq(data_load_libsvm(p, &d, err, sizeof err), DATA_EFORMAT);
  assert_has(err, "'5'");
  p = write_text(0, "n.svm", "1 1:nan\n");
  ck_assert_int_eq(data_load_libsvm(p, &d, err, sizeof err), DATA_EFORMAT);
  p = write_text(0, "n.svm", "1 1:1e300\n");
  ck_assert_int_eq(data_load_libsvm(p, &d, err, sizeof err), DATA_EFORMAT);
  p = write_text(0, "n.svm", "1 1:2 3:\n");
  ck_assert_int_eq(data_load_libsvm(p, &d, err, sizeof err), DATA_EFORMAT);
  assert_has(err, "'3:'");
}
END_TEST

START_TEST(test_libsvm_empty)
{
  train_data d;
  char err[256];
  const char *p = write_text(0, "e.svm", "");
  garbage(&d);
  ck_assert_int_eq(data_load_libsvm(p, &d, err, sizeof err), DATA_EFORMAT);
  assert_zeroed(&d);
  assert_has(err, "e.svm: no samples");
  p = write_text(0, "e.svm", "# nothing\n\n  \n");
  ck_assert_int_eq(data_load_libsvm(p, &d, err, sizeof err), DATA_EFORMAT);
  assert_has(err, "e.svm: no samples");
  ck_assert_int_eq(data_load_libsvm(tpath(1, "missing.svm"), &d, err, sizeof err), DATA_EIO);
  assert_has(err, "missing.svm");
}
END_TEST

/* ---- CSV ----------------------------------------------------------------------------- */

START_TEST(test_csv_good)
{
  const char *p = write_text(0, "g.csv",
                             "f1,label,f2\n"
                             "1.5,3,-2\n"
                             " 4 , 7 ,1e1\n"
                             "\n"
                             "0,3,0.25\n");
  train_data d;
  char err[256];
  ck_assert_int_eq(data_load_csv(p, 1, 1, &d, err, sizeof err), DATA_OK);
  ck_assert_int_eq(d.n, 3);
  ck_assert_int_eq(d.dim, 2);
  static const float want[3][2] = {{1.5f, -2}, {4, 10}, {0, 0.25f}};
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 2; j++)
      ck_assert_float_eq(d.x[i * 2 + j], want[i][j]);
  ck_assert_double_eq(d.raw[0], 3);
  ck_assert_double_eq(d.raw[1], 7);
  ck_assert_double_eq(d.raw[2], 3);
  data_free(&d);
  /* Without skipping the header, its text is an error on line 1. */
  ck_assert_int_eq(data_load_csv(p, 1, 0, &d, err, sizeof err), DATA_EFORMAT);
  assert_has(err, "g.csv:1: column 1");
  assert_has(err, "'f1'");
  /* The last column (-1) as label. */
  p = write_text(0, "g.csv", "1,2,0\n3,4,1\n");
  ck_assert_int_eq(data_load_csv(p, -1, 0, &d, err, sizeof err), DATA_OK);
  ck_assert_int_eq(d.n, 2);
  ck_assert_int_eq(d.dim, 2);
  ck_assert_float_eq(d.x[3], 4.0f);
  ck_assert_double_eq(d.raw[1], 1);
  data_free(&d);
  /* A label column out of range. */
  garbage(&d);
  ck_assert_int_eq(data_load_csv(p, 3, 0, &d, err, sizeof err), DATA_EFORMAT);
  assert_zeroed(&d);
  assert_has(err, "label column 3");
}
END_TEST

START_TEST(test_csv_long_line)
{
  /* 20000 columns on a line: no fixed line length. */
  enum { COLS = 20000 };
  size_t cap = (size_t)COLS * 8 * 2 + 16, len = 0;
  char *text = malloc(cap);
  ck_assert_ptr_nonnull(text);
  for (int r = 0; r < 2; r++)
    for (int j = 0; j < COLS; j++)
      len += (size_t)snprintf(text + len, cap - len, "%d%c", r * 100000 + j,
                              j == COLS - 1 ? '\n' : ',');
  const char *p = write_text(0, "l.csv", text);
  free(text);
  train_data d;
  char err[256];
  ck_assert_int_eq(data_load_csv(p, 0, 0, &d, err, sizeof err), DATA_OK);
  ck_assert_int_eq(d.n, 2);
  ck_assert_int_eq(d.dim, COLS - 1);
  ck_assert_double_eq(d.raw[1], 100000);
  ck_assert_float_eq(d.x[COLS - 2], (float)(COLS - 1));
  ck_assert_float_eq(d.x[(COLS - 1) + COLS - 2], (float)(100000 + COLS - 1));
  data_free(&d);
}
END_TEST

START_TEST(test_csv_ragged)
{
  const char *p = write_text(0, "r.csv", "a,b,c,d,e\n1,2,3,4,5\n6,7,8,9,0\n1,2,3,4\n");
  train_data d;
  char err[256];
  garbage(&d);
  ck_assert_int_eq(data_load_csv(p, 0, 1, &d, err, sizeof err), DATA_EFORMAT);
  assert_zeroed(&d);
  assert_has(err, "r.csv:4: expected 5 columns, found 4");
  p = write_text(0, "r.csv", "1,2,3\n1,2,3,4\n");
  ck_assert_int_eq(data_load_csv(p, 0, 0, &d, err, sizeof err), DATA_EFORMAT);
  assert_has(err, "r.csv:2: expected 3 columns, found 4");
  /* A single column has no features. */
  p = write_text(0, "r.csv", "1\n2\n");
  ck_assert_int_eq(data_load_csv(p, 0, 0, &d, err, sizeof err), DATA_EFORMAT);
  assert_has(err, "r.csv:1:");
}
END_TEST

START_TEST(test_csv_nonnumeric)
{
  const char *p = write_text(0, "n.csv", "1,2,3\n4,x5,6\n");
  train_data d;
  char err[256];
  garbage(&d);
  ck_assert_int_eq(data_load_csv(p, -1, 0, &d, err, sizeof err), DATA_EFORMAT);
  assert_zeroed(&d);
  assert_has(err, "n.csv:2: column 2");
  assert_has(err, "'x5'");
  p = write_text(0, "n.csv", "1,2,3\n4,5 6,6\n");
  ck_assert_int_eq(data_load_csv(p, -1, 0, &d, err, sizeof err), DATA_EFORMAT);
  assert_has(err, "n.csv:2: column 2");
  p = write_text(0, "n.csv", "1,2,3\n4,5,\n");
  ck_assert_int_eq(data_load_csv(p, -1, 0, &d, err, sizeof err), DATA_EFORMAT);
  assert_has(err, "n.csv:2: column 3: empty field");
  p = write_text(0, "n.csv", "1,2,3\n4,inf,6\n");
  ck_assert_int_eq(data_load_csv(p, -1, 0, &d, err, sizeof err), DATA_EFORMAT);
  assert_has(err, "n.csv:2: column 2");
}
END_TEST

START_TEST(test_csv_crlf)
{
  const char *p = write_text(0, "c.csv", "x,y,label\r\n1,2,0\r\n3,4,1\r\n5,6,1"); /* no final EOL */
  train_data d;
  char err[256];
  ck_assert_int_eq(data_load_csv(p, 2, 1, &d, err, sizeof err), DATA_OK);
  ck_assert_int_eq(d.n, 3);
  ck_assert_int_eq(d.dim, 2);
  ck_assert_float_eq(d.x[5], 6.0f);
  ck_assert_double_eq(d.raw[0], 0);
  ck_assert_double_eq(d.raw[2], 1);
  data_free(&d);
  /* CRLF with a ragged row: the message has the line number. */
  p = write_text(0, "c.csv", "1,2,0\r\n3,4\r\n");
  ck_assert_int_eq(data_load_csv(p, 2, 0, &d, err, sizeof err), DATA_EFORMAT);
  assert_has(err, "c.csv:2: expected 3 columns, found 2");
}
END_TEST

START_TEST(test_csv_empty)
{
  train_data d;
  char err[256];
  const char *p = write_text(0, "e.csv", "");
  garbage(&d);
  ck_assert_int_eq(data_load_csv(p, 0, 0, &d, err, sizeof err), DATA_EFORMAT);
  assert_zeroed(&d);
  assert_has(err, "e.csv: no samples");
  p = write_text(0, "e.csv", "a,b,c\n");
  ck_assert_int_eq(data_load_csv(p, 0, 1, &d, err, sizeof err), DATA_EFORMAT);
  assert_has(err, "e.csv: no samples");
  ck_assert_int_eq(data_load_csv(tpath(1, "missing.csv"), 0, 0, &d, err, sizeof err), DATA_EIO);
  assert_has(err, "missing.csv");
}
END_TEST

/* ---- labels, dims, split ------------------------------------------------------------- */

/* A data set with the given raw labels and x[i][j] = 10*i + j. */
static void make_set(train_data *d, int64_t n, int64_t dim, const double *labels)
{
  memset(d, 0, sizeof *d);
  d->n = n;
  d->dim = dim;
  d->x = malloc((size_t)(n * dim) * sizeof *d->x);
  d->raw = malloc((size_t)n * sizeof *d->raw);
  ck_assert(d->x && d->raw);
  for (int64_t i = 0; i < n; i++) {
    for (int64_t j = 0; j < dim; j++)
      d->x[i * dim + j] = (float)(10 * i + j);
    d->raw[i] = labels ? labels[i] : (double)(i % 3);
  }
}

START_TEST(test_map_labels_pm1)
{
  static const double l[] = {1, -1, -1, 1, 1};
  train_data d;
  char err[256];
  make_set(&d, 5, 2, l);
  ck_assert_int_eq(data_map_labels(&d, NULL, err, sizeof err), DATA_OK);
  ck_assert_int_eq(d.nclass, 2);
  ck_assert_ptr_nonnull(d.y);
  static const int32_t want[] = {1, 0, 0, 1, 1};
  for (int i = 0; i < 5; i++)
    ck_assert_int_eq(d.y[i], want[i]);
  ck_assert_double_eq(d.raw[1], -1); /* raw kept */
  /* Mapping again replaces y (no leak). */
  ck_assert_int_eq(data_map_labels(&d, NULL, err, sizeof err), DATA_OK);
  ck_assert_int_eq(d.y[0], 1);
  data_free(&d);
}
END_TEST

START_TEST(test_map_labels_union)
{
  static const double la[] = {7, 2, 2.5, 7}, lb[] = {2, 100, 7};
  train_data a, b;
  char err[256];
  make_set(&a, 4, 1, la);
  make_set(&b, 3, 1, lb);
  ck_assert_int_eq(data_map_labels(&a, &b, err, sizeof err), DATA_OK);
  /* Sorted union {2, 2.5, 7, 100}: 100 only in the test set. */
  ck_assert_int_eq(a.nclass, 4);
  ck_assert_int_eq(b.nclass, 4);
  static const int32_t wa[] = {2, 0, 1, 2}, wb[] = {0, 3, 2};
  for (int i = 0; i < 4; i++)
    ck_assert_int_eq(a.y[i], wa[i]);
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq(b.y[i], wb[i]);
  data_free(&a);
  data_free(&b);
}
END_TEST

START_TEST(test_map_labels_errors)
{
  static const double one[] = {3, 3, 3};
  train_data a, b;
  char err[256];
  make_set(&a, 3, 1, one);
  ck_assert_int_eq(data_map_labels(&a, NULL, err, sizeof err), DATA_EFORMAT);
  assert_has(err, "only one distinct label (3)");
  ck_assert_ptr_null(a.y);
  ck_assert_int_eq(a.nclass, 0);
  /* A second class in the test set is enough. */
  static const double other[] = {4};
  make_set(&b, 1, 1, other);
  ck_assert_int_eq(data_map_labels(&a, &b, err, sizeof err), DATA_OK);
  ck_assert_int_eq(a.nclass, 2);
  ck_assert_int_eq(b.y[0], 1);
  data_free(&b);
  /* Too many classes: 65537 distinct labels. */
  train_data c;
  make_set(&c, 65537, 1, NULL);
  for (int64_t i = 0; i < c.n; i++)
    c.raw[i] = (double)i * 0.5;
  ck_assert_int_eq(data_map_labels(&c, NULL, err, sizeof err), DATA_ELIMIT);
  ck_assert_ptr_null(c.y);
  c.raw[0] = c.raw[1]; /* now 65536: allowed */
  ck_assert_int_eq(data_map_labels(&c, NULL, err, sizeof err), DATA_OK);
  ck_assert_int_eq(c.nclass, 65536);
  ck_assert_int_eq(c.y[65536], 65535);
  ck_assert_int_eq(c.y[0], 0);
  data_free(&c);
  data_free(&a);
}
END_TEST

START_TEST(test_match_dims)
{
  const char *pa = write_text(0, "a.svm", "1 1:1 5:5\n0 2:2\n");
  const char *pb = write_text(1, "b.svm", "1 3:3\n0 7:7 8:8\n1 1:-1\n");
  train_data a, b;
  char err[256];
  ck_assert_int_eq(data_load_libsvm(pa, &a, err, sizeof err), DATA_OK);
  ck_assert_int_eq(data_load_libsvm(pb, &b, err, sizeof err), DATA_OK);
  ck_assert_int_eq(a.dim, 5);
  ck_assert_int_eq(b.dim, 8);
  ck_assert_int_eq(data_match_dims(&a, &b, err, sizeof err), DATA_OK);
  ck_assert_int_eq(a.dim, 8);
  ck_assert_int_eq(b.dim, 8);
  static const float wa[2][8] = {{1, 0, 0, 0, 5, 0, 0, 0}, {0, 2, 0, 0, 0, 0, 0, 0}};
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 8; j++)
      ck_assert_float_eq(a.x[i * 8 + j], wa[i][j]);
  ck_assert_float_eq(b.x[8 + 7], 8.0f);
  ck_assert_float_eq(b.x[16], -1.0f);
  /* The other way round, and already equal: nothing changes. */
  ck_assert_int_eq(data_match_dims(&b, &a, err, sizeof err), DATA_OK);
  ck_assert_int_eq(a.dim, 8);
  data_free(&a);
  ck_assert_int_eq(data_load_libsvm(pa, &a, err, sizeof err), DATA_OK);
  ck_assert_int_eq(data_match_dims(&b, &a, err, sizeof err), DATA_OK);
  ck_assert_int_eq(a.dim, 8);
  ck_assert_float_eq(a.x[4], 5.0f);
  ck_assert_float_eq(a.x[8 + 1], 2.0f);
  data_free(&a);
  data_free(&b);
}
END_TEST

/* Recovers the source row of a split sample from x[i][0] = 10*i. */
static int64_t source_row(const train_data *d, int64_t r)
{
  return (int64_t)lroundf(d->x[r * d->dim] / 10.0f);
}

START_TEST(test_split)
{
  train_data all, tr, te, tr2, te2;
  char err[256];
  make_set(&all, 100, 3, NULL);
  ck_assert_int_eq(data_map_labels(&all, NULL, err, sizeof err), DATA_OK);
  ck_assert_int_eq(data_split(&all, 0.25, 42, &tr, &te, err, sizeof err), DATA_OK);
  ck_assert_int_eq(tr.n, 75);
  ck_assert_int_eq(te.n, 25);
  ck_assert_int_eq(tr.dim, 3);
  ck_assert_int_eq(te.nclass, 3);
  /* A permutation: every sample once, rows intact, labels follow. */
  int seen[100] = {0};
  int moved = 0;
  for (int s = 0; s < 2; s++) {
    const train_data *p = s ? &te : &tr;
    for (int64_t r = 0; r < p->n; r++) {
      int64_t src = source_row(p, r);
      ck_assert(src >= 0 && src < 100);
      seen[src]++;
      moved += src != (s ? 75 + r : r);
      ck_assert_float_eq(p->x[r * 3 + 2], (float)(10 * src + 2));
      ck_assert_double_eq(p->raw[r], (double)(src % 3));
      ck_assert_int_eq(p->y[r], (int32_t)(src % 3));
    }
  }
  for (int i = 0; i < 100; i++)
    ck_assert_int_eq(seen[i], 1);
  ck_assert_int_gt(moved, 50); /* really shuffled */
  /* Same seed, same split. */
  ck_assert_int_eq(data_split(&all, 0.25, 42, &tr2, &te2, err, sizeof err), DATA_OK);
  ck_assert_mem_eq(tr.x, tr2.x, 75 * 3 * sizeof(float));
  ck_assert_mem_eq(te.x, te2.x, 25 * 3 * sizeof(float));
  data_free(&tr2);
  data_free(&te2);
  /* Another seed, another split. */
  ck_assert_int_eq(data_split(&all, 0.25, 43, &tr2, &te2, err, sizeof err), DATA_OK);
  ck_assert_int_eq(te2.n, 25);
  ck_assert(memcmp(te.x, te2.x, 25 * 3 * sizeof(float)) != 0);
  data_free(&tr2);
  data_free(&te2);
  data_free(&tr);
  data_free(&te);
  /* Rounding: 10 samples at 0.25 -> round(2.5) = 3 test samples. */
  data_free(&all);
  make_set(&all, 10, 1, NULL);
  ck_assert_int_eq(data_split(&all, 0.25, 1, &tr, &te, err, sizeof err), DATA_OK);
  ck_assert_int_eq(tr.n, 7);
  ck_assert_int_eq(te.n, 3);
  ck_assert_ptr_null(tr.y); /* none before mapping */
  data_free(&tr);
  data_free(&te);
  data_free(&all);
}
END_TEST

START_TEST(test_split_errors)
{
  train_data all, tr, te;
  char err[256];
  make_set(&all, 10, 2, NULL);
  const double bad[] = {0, 1, -0.5, 1.5, NAN};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    garbage(&tr);
    garbage(&te);
    ck_assert_int_eq(data_split(&all, bad[i], 1, &tr, &te, err, sizeof err), DATA_EFORMAT);
    assert_zeroed(&tr);
    assert_zeroed(&te);
  }
  /* Parts that round to empty. */
  ck_assert_int_eq(data_split(&all, 0.01, 1, &tr, &te, err, sizeof err), DATA_EFORMAT);
  assert_has(err, "non-empty");
  ck_assert_int_eq(data_split(&all, 0.99, 1, &tr, &te, err, sizeof err), DATA_EFORMAT);
  data_free(&all);
  make_set(&all, 1, 2, NULL);
  ck_assert_int_eq(data_split(&all, 0.5, 1, &tr, &te, err, sizeof err), DATA_EFORMAT);
  data_free(&all);
}
END_TEST

/* ---- synthetic ------------------------------------------------------------------------- */

START_TEST(test_synthetic_deterministic)
{
  train_data a, b, c;
  ck_assert_int_eq(data_synthetic(500, 7, 4, 123, &a), DATA_OK);
  ck_assert_int_eq(data_synthetic(500, 7, 4, 123, &b), DATA_OK);
  ck_assert_int_eq(data_synthetic(500, 7, 4, 124, &c), DATA_OK);
  ck_assert_mem_eq(a.x, b.x, 500 * 7 * sizeof(float));
  ck_assert_mem_eq(a.y, b.y, 500 * sizeof(int32_t));
  ck_assert_mem_eq(a.raw, b.raw, 500 * sizeof(double));
  ck_assert(memcmp(a.x, c.x, 500 * 7 * sizeof(float)) != 0);
  ck_assert(memcmp(a.y, c.y, 500 * sizeof(int32_t)) != 0);
  data_free(&a);
  data_free(&b);
  data_free(&c);
  /* Bad arguments. */
  garbage(&a);
  ck_assert_int_eq(data_synthetic(0, 7, 4, 1, &a), DATA_EFORMAT);
  assert_zeroed(&a);
  ck_assert_int_eq(data_synthetic(10, 0, 4, 1, &a), DATA_EFORMAT);
  ck_assert_int_eq(data_synthetic(10, 7, 1, 1, &a), DATA_EFORMAT);
  ck_assert_int_eq(data_synthetic(10, 7, 65537, 1, &a), DATA_EFORMAT);
  ck_assert_int_eq(data_synthetic((int64_t)1 << 20, (int64_t)1 << 12, 2, 1, &a), DATA_ELIMIT);
  assert_zeroed(&a);
}
END_TEST

START_TEST(test_synthetic_labels)
{
  train_data d;
  ck_assert_int_eq(data_synthetic(3000, 5, 6, 9, &d), DATA_OK);
  ck_assert_int_eq(d.n, 3000);
  ck_assert_int_eq(d.dim, 5);
  ck_assert_int_eq(d.nclass, 6);
  int count[6] = {0};
  for (int64_t i = 0; i < d.n; i++) {
    ck_assert(d.y[i] >= 0 && d.y[i] < 6);
    ck_assert_double_eq(d.raw[i], (double)d.y[i]);
    count[d.y[i]]++;
  }
  for (int k = 0; k < 6; k++) /* about 500 each */
    ck_assert_msg(count[k] > 400 && count[k] < 600, "class %d: %d", k, count[k]);
  for (int64_t i = 0; i < d.n * d.dim; i++)
    ck_assert(isfinite(d.x[i]));
  /* data_map_labels agrees with the labels it filled in. */
  int32_t *y = d.y;
  d.y = NULL;
  char err[256];
  ck_assert_int_eq(data_map_labels(&d, NULL, err, sizeof err), DATA_OK);
  ck_assert_mem_eq(d.y, y, 3000 * sizeof(int32_t));
  free(y);
  data_free(&d);
}
END_TEST

/* Nearest class mean fitted on the first 2/3, scored on the rest. */
static double ncm_accuracy(const train_data *d)
{
  int64_t K = d->nclass, dim = d->dim, ntr = d->n * 2 / 3;
  double *mean = calloc((size_t)(K * dim), sizeof *mean);
  int64_t *cnt = calloc((size_t)K, sizeof *cnt);
  ck_assert(mean && cnt);
  for (int64_t i = 0; i < ntr; i++) {
    cnt[d->y[i]]++;
    for (int64_t j = 0; j < dim; j++)
      mean[d->y[i] * dim + j] += d->x[i * dim + j];
  }
  for (int64_t k = 0; k < K; k++)
    for (int64_t j = 0; j < dim; j++)
      mean[k * dim + j] /= cnt[k] ? (double)cnt[k] : 1.0;
  int64_t right = 0;
  for (int64_t i = ntr; i < d->n; i++) {
    int64_t best = 0;
    double bd = INFINITY;
    for (int64_t k = 0; k < K; k++) {
      double s = 0;
      for (int64_t j = 0; j < dim; j++) {
        double t = d->x[i * dim + j] - mean[k * dim + j];
        s += t * t;
      }
      if (s < bd) {
        bd = s;
        best = k;
      }
    }
    right += best == d->y[i];
  }
  free(mean);
  free(cnt);
  return (double)right / (double)(d->n - ntr);
}

START_TEST(test_synthetic_learnable)
{
  static const struct {
    int64_t n, dim;
    int k;
  } cfg[] = {{3000, 2, 2}, {3000, 20, 5}, {6000, 50, 10}, {3000, 784, 3}};
  for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
    for (uint64_t seed = 1; seed <= 3; seed++) {
      train_data d;
      ck_assert_int_eq(data_synthetic(cfg[c].n, cfg[c].dim, cfg[c].k, seed, &d), DATA_OK);
      double acc = ncm_accuracy(&d);
      ck_assert_msg(acc >= 0.6 && acc <= 0.99, "n=%lld dim=%lld K=%d seed=%llu: accuracy %.3f",
                    (long long)cfg[c].n, (long long)cfg[c].dim, cfg[c].k,
                    (unsigned long long)seed, acc);
      data_free(&d);
    }
  }
}
END_TEST

START_TEST(test_free_null)
{
  data_free(NULL);
  train_data d = {0};
  data_free(&d);
  assert_zeroed(&d);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("data");
  TCase *tc = tcase_create("data");
  tcase_set_timeout(tc, 120);
  tcase_add_unchecked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_idx_roundtrip_plain);
  tcase_add_test(tc, test_idx_roundtrip_gzip);
  tcase_add_test(tc, test_idx_bad_magic);
  tcase_add_test(tc, test_idx_count_mismatch);
  tcase_add_test(tc, test_idx_limits);
  tcase_add_test(tc, test_idx_truncated);
  tcase_add_test(tc, test_idx_huge_header);
  tcase_add_test(tc, test_libsvm_good);
  tcase_add_test(tc, test_libsvm_order);
  tcase_add_test(tc, test_libsvm_index0);
  tcase_add_test(tc, test_libsvm_limits);
  tcase_add_test(tc, test_libsvm_nonnumeric);
  tcase_add_test(tc, test_libsvm_empty);
  tcase_add_test(tc, test_csv_good);
  tcase_add_test(tc, test_csv_long_line);
  tcase_add_test(tc, test_csv_ragged);
  tcase_add_test(tc, test_csv_nonnumeric);
  tcase_add_test(tc, test_csv_crlf);
  tcase_add_test(tc, test_csv_empty);
  tcase_add_test(tc, test_map_labels_pm1);
  tcase_add_test(tc, test_map_labels_union);
  tcase_add_test(tc, test_map_labels_errors);
  tcase_add_test(tc, test_match_dims);
  tcase_add_test(tc, test_split);
  tcase_add_test(tc, test_split_errors);
  tcase_add_test(tc, test_synthetic_deterministic);
  tcase_add_test(tc, test_synthetic_labels);
  tcase_add_test(tc, test_synthetic_learnable);
  tcase_add_test(tc, test_free_null);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
