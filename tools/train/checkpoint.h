/* checkpoint.h - optim-train's checkpoint file: the run's shape (so a
 * resume with other settings is refused), its position, the logging
 * accumulators, the model's parameters and, in a single-process run, the
 * optimizer's own checkpoint (optim_save) embedded as bytes.  Written to a
 * temporary file, fsync'ed, renamed over the target, directory fsync'ed;
 * a CRC-32 covers everything. */
#ifndef OPTIM_TRAIN_CHECKPOINT_H
#define OPTIM_TRAIN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

typedef struct train_pos {
  uint64_t seed;
  int64_t batch, ntrain, ranks; /* ranks: 0 for a single-process run */
  int64_t step;                 /* optimizer steps done */
  double acc_loss;              /* logging interval: loss sum, */
  int64_t acc_correct, acc_count; /* correct predictions, samples */
  double epoch_loss;            /* the epoch so far: loss sum, */
  int64_t epoch_correct, epoch_count; /* correct predictions, samples */
  double best_acc;
  int64_t best_epoch;
} train_pos;

/* 0 on success, -1 with a message in err. */
int ckpt_write(const char *path, const model *m, const train_pos *pos, const void *opt_bytes,
               size_t opt_len, char *err, size_t errlen);
/* Reads a checkpoint into m's parameters and pos; *opt_bytes (malloc'ed,
 * possibly NULL when opt_len is 0) receives the embedded optimizer
 * checkpoint.  Fails (nothing changed) when the file is not a valid
 * checkpoint or its model widths differ from m's. */
int ckpt_read(const char *path, model *m, train_pos *pos, void **opt_bytes, size_t *opt_len,
              char *err, size_t errlen);

#endif
