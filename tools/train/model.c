/* model.c - MLP forward/backward with cross-entropy, on cblas_sgemm. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

static uint64_t splitmix64(uint64_t *s)
{
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* uniform in [-1, 1) with 24 random bits */
static float unit(uint64_t *s)
{
  return (float)(splitmix64(s) >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

void model_free(model *m)
{
  if (!m) return;
  free(m->params);
  free(m->grads);
  for (int l = 0; l <= MODEL_MAX_LAYERS; l++) {
    free(m->act[l]);
    free(m->delta[l]);
  }
  memset(m, 0, sizeof *m);
}

int model_init(model *m, int nlayers, const int64_t *widths, int64_t batch_cap, uint64_t seed)
{
  memset(m, 0, sizeof *m);
  if (nlayers < 1 || nlayers > MODEL_MAX_LAYERS || batch_cap < 1) return -1;
  m->nlayers = nlayers;
  m->cap = batch_cap;
  size_t total = 0;
  for (int l = 0; l <= nlayers; l++) {
    if (widths[l] < 1 || widths[l] > (1 << 24)) return -1;
    m->n[l] = widths[l];
  }
  for (int l = 0; l < nlayers; l++) {
    m->w_off[l] = total;
    total += (size_t)(m->n[l + 1] * m->n[l]);
    m->b_off[l] = total;
    total += (size_t)m->n[l + 1];
  }
  m->nparams = total;
  m->params = malloc(total * sizeof(float));
  m->grads = calloc(total, sizeof(float));
  int ok = m->params && m->grads;
  for (int l = 1; ok && l <= nlayers; l++) {
    m->act[l] = malloc((size_t)(batch_cap * m->n[l]) * sizeof(float));
    m->delta[l] = malloc((size_t)(batch_cap * m->n[l]) * sizeof(float));
    ok = m->act[l] && m->delta[l];
  }
  if (!ok) {
    model_free(m);
    return -1;
  }
  uint64_t s = seed * 0x2545f4914f6cdd1dull + 0x1234567ull;
  for (int l = 0; l < nlayers; l++) {
    float bound = 1.0f / sqrtf((float)m->n[l]);
    float *w = m->params + m->w_off[l], *b = m->params + m->b_off[l];
    for (int64_t i = 0; i < m->n[l + 1] * m->n[l]; i++) w[i] = bound * unit(&s);
    for (int64_t i = 0; i < m->n[l + 1]; i++) b[i] = bound * unit(&s);
  }
  return 0;
}

/* act[1..L] for a batch of b samples; act[L] holds the logits. */
static void forward(model *m, const float *x, int64_t b)
{
  const float *in = x;
  for (int l = 0; l < m->nlayers; l++) {
    int64_t n0 = m->n[l], n1 = m->n[l + 1];
    float *z = m->act[l + 1];
    const float *w = m->params + m->w_off[l], *bias = m->params + m->b_off[l];
    for (int64_t i = 0; i < b; i++) memcpy(z + i * n1, bias, (size_t)n1 * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)b, (int)n1, (int)n0, 1.0f, in,
                (int)n0, w, (int)n0, 1.0f, z, (int)n1);
    if (l + 1 < m->nlayers)
      for (int64_t i = 0; i < b * n1; i++) z[i] = z[i] > 0 ? z[i] : 0;
    in = z;
  }
}

/* Cross-entropy of the logits against y: loss sum, correct count, and (if
 * delta is not NULL) delta = scale * (softmax - onehot). */
static double xent(const float *z, int64_t c, const int32_t *y, int64_t b, float scale,
                   float *delta, int64_t *correct)
{
  double loss = 0;
  int64_t ok = 0;
  for (int64_t i = 0; i < b; i++) {
    const float *zi = z + i * c;
    int64_t arg = 0;
    float mx = zi[0];
    for (int64_t k = 1; k < c; k++)
      if (zi[k] > mx) {
        mx = zi[k];
        arg = k;
      }
    ok += arg == y[i];
    double sum = 0;
    for (int64_t k = 0; k < c; k++) sum += exp((double)(zi[k] - mx));
    loss += log(sum) - (double)(zi[y[i]] - mx);
    if (delta) {
      float *di = delta + i * c;
      float inv = (float)(1.0 / sum);
      for (int64_t k = 0; k < c; k++) di[k] = scale * (expf(zi[k] - mx) * inv);
      di[y[i]] -= scale;
    }
  }
  if (correct) *correct = ok;
  return loss;
}

double model_eval_batch(model *m, const float *x, const int32_t *y, int64_t b, int64_t *correct)
{
  double loss = 0;
  int64_t ok = 0;
  for (int64_t at = 0; at < b; at += m->cap) {
    int64_t take = b - at < m->cap ? b - at : m->cap, c = 0;
    forward(m, x + at * m->n[0], take);
    loss += xent(m->act[m->nlayers], m->n[m->nlayers], y + at, take, 0, NULL, &c);
    ok += c;
  }
  if (correct) *correct = ok;
  return loss;
}

double model_train_batch(model *m, const float *x, const int32_t *y, int64_t b, float scale,
                         int64_t *correct)
{
  const int L = m->nlayers;
  forward(m, x, b);
  double loss = xent(m->act[L], m->n[L], y, b, scale, m->delta[L], correct);
  for (int l = L - 1; l >= 0; l--) {
    int64_t n0 = m->n[l], n1 = m->n[l + 1];
    const float *in = l == 0 ? x : m->act[l], *d = m->delta[l + 1];
    const float *w = m->params + m->w_off[l];
    float *gw = m->grads + m->w_off[l], *gb = m->grads + m->b_off[l];
    /* dW = delta^T in; db = column sums of delta */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n1, (int)n0, (int)b, 1.0f, d,
                (int)n1, in, (int)n0, 0.0f, gw, (int)n0);
    memset(gb, 0, (size_t)n1 * sizeof(float));
    for (int64_t i = 0; i < b; i++)
      for (int64_t k = 0; k < n1; k++) gb[k] += d[i * n1 + k];
    if (l == 0) break;
    /* delta_l = (delta_{l+1} W) masked by ReLU' of layer l's output */
    float *dl = m->delta[l];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)b, (int)n0, (int)n1, 1.0f, d,
                (int)n1, w, (int)n0, 0.0f, dl, (int)n0);
    const float *a = m->act[l];
    for (int64_t i = 0; i < b * n0; i++) dl[i] = a[i] > 0 ? dl[i] : 0;
  }
  return loss;
}
