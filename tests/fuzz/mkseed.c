/* mkseed.c - writes the checkpoint harnesses' seed corpus: the fixture's
 * checkpoint after 0, 1, 2 and 3 steps (soap refreshes every 2 steps), in
 * DIR/step0 ... DIR/step3.  Run by hand (HACKING, "Fuzzing"); the output is
 * committed in tests/fuzz/corpus/checkpoint. */
#include <stdio.h>
#include <stdlib.h>

#include "fixture.h"

int main(int argc, char **argv)
{
  if (argc != 2) {
    fprintf(stderr, "usage: mkseed DIR\n");
    return 2;
  }
  optim_optimizer *o = fixture_create();
  if (!o) return 1;
  for (int s = 0; s <= 3; s++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/step%d", argv[1], s);
    if (s > 0 && optim_step(o) != OPTIM_OK) return 1;
    if (optim_save(o, path) != OPTIM_OK) {
      fprintf(stderr, "mkseed: %s: %s\n", path, optim_errmsg(o));
      return 1;
    }
  }
  optim_destroy(o);
  return 0;
}
