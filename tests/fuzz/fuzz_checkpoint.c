/* fuzz_checkpoint.c - libFuzzer harness for the checkpoint loader
 * (optim_load, and optim_load_params for inputs of odd length).
 *
 * The input is a checkpoint file.  CRC-32s guard the header, the meta
 * section and every buffer, so almost every mutation of a valid file is
 * refused by a checksum before the parser behind it runs.  Built with
 * -DFIX_CRC (fuzz_checkpoint_meta) the harness first recomputes the
 * header's and the meta section's CRCs of the mutated input, so that the
 * meta parser itself (names, counts, lengths, offsets, schedules, decay
 * scales) receives the mutations.
 *
 * Asserted (abort, which libFuzzer reports as a crash):
 *   - a refused file leaves the optimizer bit-identical (fixture_hash);
 *   - an accepted file saves, and that save loads again to the same state;
 *   - an optimizer that accepted a file steps with a status (OPTIM_OK or a
 *     refusal: a loaded file may carry any settings and moments). */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "fixture.h"

static char in_path[64], out_path[64];

static void paths(void)
{
  if (in_path[0]) return;
  const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  snprintf(in_path, sizeof in_path, "%s/optim-fuzz-%ld.in", dir, (long)getpid());
  snprintf(out_path, sizeof out_path, "%s/optim-fuzz-%ld.out", dir, (long)getpid());
}

#ifdef FIX_CRC
static void fix_crcs(unsigned char *d, size_t n)
{
  if (n < 40) return;
  uint64_t mlen;
  memcpy(&mlen, d + 16, 8);
  if (mlen <= n - 40) {
    uint32_t c = (uint32_t)crc32(0L, d + 40, (uInt)mlen);
    memcpy(d + 32, &c, 4);
  }
  uint32_t h = (uint32_t)crc32(0L, d, 36);
  memcpy(d + 36, &h, 4);
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  paths();
  unsigned char *d = malloc(size ? size : 1);
  if (!d) return 0;
  memcpy(d, data, size);
#ifdef FIX_CRC
  fix_crcs(d, size);
#endif
  FILE *f = fopen(in_path, "wb");
  if (!f) abort();
  if (size && fwrite(d, 1, size, f) != size) abort();
  if (fclose(f) != 0) abort();
  free(d);

  /* A refused file leaves the optimizer as it was (asserted), so one
   * fixture serves every input until a file is accepted. */
  static optim_optimizer *o;
  static uint64_t before;
  if (!o) {
    if (!(o = fixture_create())) abort();
    before = fixture_hash(o);
  }
  int st = optim_load(o, in_path);
  if (st != OPTIM_OK) {
    if (st >= 0 || fixture_hash(o) != before) abort();
  } else {
    uint64_t loaded = fixture_hash(o);
    optim_optimizer *o2 = fixture_create();
    if (!o2 || optim_save(o, out_path) != OPTIM_OK || optim_load(o2, out_path) != OPTIM_OK ||
        fixture_hash(o2) != loaded)
      abort();
    optim_destroy(o2);
    st = optim_step(o);
    if (st > 0) abort();
    optim_destroy(o);
    o = NULL;
  }
  if (size % 2 == 1) { /* the partial loader: two of the five parameters */
    if (!o) {
      if (!(o = fixture_create())) abort();
      before = fixture_hash(o);
    }
    const int idx[2] = {0, 2};
    st = optim_load_params(o, in_path, idx, 2);
    if (st != OPTIM_OK && (st >= 0 || fixture_hash(o) != before)) abort();
    if (st == OPTIM_OK) {
      optim_destroy(o);
      o = NULL;
    }
  }
  unlink(in_path);
  unlink(out_path);
  return 0;
}
