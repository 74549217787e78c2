/* data.h - data sets for optim-train: readers for IDX (MNIST-style, plain
 * or gzip), LIBSVM/SVMlight and CSV files, a synthetic generator, label
 * mapping and a deterministic train/test split.
 *
 * Every function reports through its return value (DATA_OK or one of the
 * DATA_E* codes) and, where it takes one, a message in err (at most errlen
 * bytes, always NUL-terminated; err may be NULL).  Nothing prints, aborts
 * or keeps global state.  On error the output structures are left zeroed
 * (loaders, data_split, data_synthetic) or unchanged (data_match_dims,
 * data_map_labels). */
#ifndef OPTIM_TRAIN_DATA_H
#define OPTIM_TRAIN_DATA_H

#include <stddef.h>
#include <stdint.h>

typedef struct train_data {
  int64_t n;      /* samples */
  int64_t dim;    /* features per sample */
  float *x;       /* n*dim, row-major */
  double *raw;    /* n raw labels as read (before mapping); freed by data_free */
  int32_t *y;     /* n labels in [0, nclass) after data_map_labels; NULL before */
  int nclass;
} train_data;

enum {
  DATA_OK = 0,
  DATA_EIO = 1,     /* cannot open/read */
  DATA_EFORMAT = 2, /* malformed (also: invalid arguments) */
  DATA_ENOMEM = 3,
  DATA_ELIMIT = 4   /* too large */
};

/* Largest dense data set accepted: n*dim floats. */
#define DATA_MAX_ELEMS ((int64_t)1 << 31)
/* Largest LIBSVM feature index accepted. */
#define DATA_MAX_INDEX ((int64_t)1 << 24)
/* Largest number of classes data_map_labels accepts. */
#define DATA_MAX_CLASSES 65536

/* IDX images (magic 0x00000803: u8, n x rows x cols) and labels (magic
 * 0x00000801: u8, n); either file may be gzip-compressed.  Pixels are
 * scaled to [0,1]; dim = rows*cols. */
int data_load_idx(const char *images, const char *labels, train_data *out, char *err,
                  size_t errlen);
/* LIBSVM/SVMlight text: "label idx:val ..." with 1-based increasing
 * indices, '#' comments, optional qid:N.  dim = the largest index. */
int data_load_libsvm(const char *path, train_data *out, char *err, size_t errlen);
/* Comma-separated numbers; label_col is 0-based (-1 = the last column);
 * header != 0 skips the first line.  Blank lines are skipped. */
int data_load_csv(const char *path, int label_col /* 0-based, -1 = last */,
                  int header /* skip first line */, train_data *out, char *err, size_t errlen);
/* Gaussian clusters, deterministic for a seed; y and nclass are filled too.
 * Invalid arguments (n < 1, dim < 1, nclass outside [2, 65536]) give
 * DATA_EFORMAT, n*dim over DATA_MAX_ELEMS DATA_ELIMIT. */
int data_synthetic(int64_t n, int64_t dim, int nclass, uint64_t seed, train_data *out);
/* Make both sets the same width (LIBSVM: the larger max index; zero pad) */
int data_match_dims(train_data *a, train_data *b, char *err, size_t errlen);
/* Map the sorted union of distinct raw labels of a (and b if non-NULL) to 0..K-1; fills y and nclass of both. Error if K < 2 or K > 65536. */
int data_map_labels(train_data *a, train_data *b, char *err, size_t errlen);
/* Split the last `fraction` of a (after a deterministic shuffle with seed) into test. */
int data_split(train_data *all, double fraction, uint64_t seed, train_data *train,
               train_data *test, char *err, size_t errlen);
/* Frees the buffers and zeroes *d (NULL is fine). */
void data_free(train_data *d);

#endif
