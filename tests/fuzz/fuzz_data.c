/* fuzz_data.c - libFuzzer harness for optim-train's data readers
 * (tools/train/data.c): IDX images + labels (plain or gzip), LIBSVM and
 * CSV, then label mapping and the train/test split on what loaded.
 *
 * Input: byte 0 picks the reader, byte 1 its options (CSV: label column
 * and header; IDX: where the rest is cut into the images file and the
 * labels file), the rest is the file(s).  Asserted: the documented return
 * codes; a loaded set is consistent (n >= 1, dim >= 1, x and raw present,
 * every value finite for CSV/LIBSVM, pixels in [0, 1] for IDX); a failed
 * call leaves its output zeroed. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data.h"

static char pa[64], pb[64];

static void put(const char *path, const uint8_t *d, size_t n)
{
  FILE *f = fopen(path, "wb");
  if (!f) abort();
  if (n && fwrite(d, 1, n, f) != n) abort();
  if (fclose(f) != 0) abort();
}

static int zeroed(const train_data *d)
{
  return d->n == 0 && d->dim == 0 && !d->x && !d->raw && !d->y && d->nclass == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 2) return 0;
  if (!pa[0]) {
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(pa, sizeof pa, "%s/optim-fuzz-%ld.a", dir, (long)getpid());
    snprintf(pb, sizeof pb, "%s/optim-fuzz-%ld.b", dir, (long)getpid());
  }
  const uint8_t *rest = data + 2;
  size_t n = size - 2;
  train_data d;
  memset(&d, 0xa5, sizeof d); /* the loaders must zero it on failure */
  char err[128];
  int st, idx = 0;
  switch (data[0] % 3) {
  case 0: {
    size_t cut = n * data[1] / 255;
    put(pa, rest, cut);
    put(pb, rest + cut, n - cut);
    st = data_load_idx(pa, pb, &d, err, sizeof err);
    idx = 1;
    break;
  }
  case 1:
    put(pa, rest, n);
    st = data_load_libsvm(pa, &d, err, sizeof err);
    break;
  default:
    put(pa, rest, n);
    st = data_load_csv(pa, (int)(data[1] % 6) - 1, data[1] & 0x80, &d, err, sizeof err);
    break;
  }
  if (st < DATA_OK || st > DATA_ELIMIT) abort();
  if (st != DATA_OK) {
    if (!zeroed(&d) || !memchr(err, 0, sizeof err)) abort();
  } else if (d.n * d.dim > ((int64_t)1 << 22)) {
    /* Up to DATA_MAX_ELEMS is legitimate (a few LIBSVM lines naming a
     * feature near 2^24 describe gigabytes of dense data): checked for
     * shape only, not scanned or copied by the split. */
    if (d.n < 1 || d.dim < 1 || !d.x || !d.raw || d.n * d.dim > DATA_MAX_ELEMS) abort();
  } else {
    if (d.n < 1 || d.dim < 1 || !d.x || !d.raw) abort();
    for (int64_t i = 0; i < d.n * d.dim; i++)
      if (!isfinite(d.x[i]) || (idx && (d.x[i] < 0 || d.x[i] > 1))) abort();
    for (int64_t i = 0; i < d.n; i++)
      if (!isfinite(d.raw[i])) abort();
    if (data_map_labels(&d, NULL, err, sizeof err) == DATA_OK) {
      if (d.nclass < 2 || !d.y) abort();
      for (int64_t i = 0; i < d.n; i++)
        if (d.y[i] < 0 || d.y[i] >= d.nclass) abort();
      train_data tr, te;
      if (data_split(&d, 0.25, data[1], &tr, &te, err, sizeof err) == DATA_OK) {
        if (tr.n + te.n != d.n || tr.dim != d.dim) abort();
        data_free(&tr);
        data_free(&te);
      }
    }
  }
  data_free(&d);
  unlink(pa);
  unlink(pb);
  return 0;
}
