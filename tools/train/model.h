/* model.h - the models of optim-train: a multilayer perceptron with ReLU
 * (softmax regression when it has no hidden layer) and the cross-entropy
 * loss, forward and backward on OpenBLAS sgemm.
 *
 * Layer l maps n[l] inputs to n[l+1] outputs: W_l is n[l+1] x n[l]
 * (row-major, torch's nn.Linear layout) and b_l has n[l+1] entries.  All
 * weights and biases lie in one array (params), in the order W_0, b_0,
 * W_1, b_1, ..., and their gradients in another of the same layout
 * (grads), so a data-parallel reduction sees one flat arena. */
#ifndef OPTIM_TRAIN_MODEL_H
#define OPTIM_TRAIN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#define MODEL_MAX_LAYERS 16

typedef struct model {
  int nlayers;                   /* linear layers (hidden layers + 1) */
  int64_t n[MODEL_MAX_LAYERS + 1]; /* widths: inputs, hidden..., classes */
  size_t nparams;                /* floats in params (and grads) */
  size_t w_off[MODEL_MAX_LAYERS], b_off[MODEL_MAX_LAYERS];
  float *params, *grads;
  /* scratch for a batch of up to cap samples */
  int64_t cap;
  float *act[MODEL_MAX_LAYERS + 1]; /* act[0] unused (the input); act[l]: layer l-1 output */
  float *delta[MODEL_MAX_LAYERS + 1];
} model;

/* widths: nlayers+1 entries (inputs, hidden sizes, classes).  Weights and
 * biases are drawn from U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (nn.Linear's
 * default) with a generator seeded by seed.  0 on success, -1 when out of
 * memory or the sizes are invalid. */
int model_init(model *m, int nlayers, const int64_t *widths, int64_t batch_cap, uint64_t seed);
void model_free(model *m);

/* Forward and backward on a batch of b samples (x: b x n[0], labels in
 * [0, classes)): grads = scale * d(sum of the b losses)/d(params).
 * Returns the sum of the b cross-entropy losses; *correct counts the
 * samples whose largest logit is the label. */
double model_train_batch(model *m, const float *x, const int32_t *y, int64_t b, float scale,
                         int64_t *correct);
/* Loss sum and correct count on a batch, forward only. */
double model_eval_batch(model *m, const float *x, const int32_t *y, int64_t b, int64_t *correct);

#endif
