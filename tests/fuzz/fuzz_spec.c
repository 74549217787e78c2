/* fuzz_spec.c - libFuzzer harness for every text parser: optim_set_option
 * (each hyperparameter of each registered algorithm), optim_configure,
 * optim_schedule_eval, optim_set_schedule, optim_set_decay_mask,
 * optim_scale_batch_size's rule, and optim-train's spec_parse
 * (tools/train/spec.c) feeding optim_add_group/optim_configure as
 * optim-train does.
 *
 * Input: byte 0 picks the parser, byte 1 the algorithm (registry order),
 * byte 2 the hyperparameter or a number, the rest is the text (cut at the
 * first NUL).  Asserted: statuses are OPTIM_OK or negative; a refused call
 * leaves the group's hyperparameters unchanged (compared through the
 * getters); values accepted are finite where the type says so. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "optim.h"
#include "spec.h"

static int nalgs(void)
{
  static int n;
  if (!n)
    while (optim_algorithm_name(n)) n++;
  return n;
}

/* Text of every hyperparameter of group g, concatenated (a snapshot to
 * compare before and after a refused call). */
static char *snapshot(optim_optimizer *o, int g, const char *alg)
{
  size_t cap = 4096, len = 0;
  char *s = malloc(cap);
  if (!s) abort();
  s[0] = 0;
  int n = optim_hparam_count(alg);
  for (int i = 0; i < n; i++) {
    const char *name;
    int type;
    char buf[256] = "";
    if (optim_hparam_info(alg, i, &name, &type, NULL, NULL)) abort();
    double dv;
    int64_t iv;
    int bv;
    if (optim_get_double(o, g, name, &dv) == OPTIM_OK) {
      if (isnan(dv)) abort();
      memcpy(buf, &dv, sizeof dv);
      buf[sizeof dv] = 1;
    } else if (optim_get_int(o, g, name, &iv) == OPTIM_OK) {
      memcpy(buf, &iv, sizeof iv);
      buf[sizeof iv] = 2;
    } else if (optim_get_bool(o, g, name, &bv) == OPTIM_OK) {
      buf[0] = (char)(bv ? 'T' : 'F');
    } else if (optim_get_string(o, g, name, buf, sizeof buf) != OPTIM_OK) {
      buf[0] = '?';
    }
    size_t add = sizeof buf;
    if (len + add + 1 > cap) {
      cap = 2 * (len + add + 1);
      s = realloc(s, cap);
      if (!s) abort();
    }
    memcpy(s + len, buf, add);
    len += add;
  }
  s = realloc(s, len + 1);
  return s;
}

static void check_unchanged(optim_optimizer *o, int g, const char *alg, const char *before,
                            int st)
{
  if (st > 0) abort();
  if (st == OPTIM_OK) return;
  char *after = snapshot(o, g, alg);
  size_t n = (size_t)optim_hparam_count(alg) * 256;
  if (memcmp(before, after, n) != 0) abort();
  free(after);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 3) return 0;
  char *text = malloc(size - 2);
  if (!text) return 0;
  memcpy(text, data + 3, size - 3);
  text[size - 3] = 0;
  const char *alg = optim_algorithm_name(data[1] % nalgs());
  optim_optimizer *o = NULL;
  int g = -1;
  float w[6] = {0}, gw[6] = {0}, b[2] = {0}, gb[2] = {0};
  const int64_t sw[2] = {2, 3}, sb[1] = {2};
  if (optim_create(&o) || optim_add_group(o, alg, &g)) abort();
  /* parameters only where the algorithm takes them (decay masks need them) */
  optim_add_param(o, g, "layer.w", OPTIM_FLOAT32, 2, sw, w, gw, NULL);
  optim_add_param(o, g, "layer.bias", OPTIM_FLOAT32, 1, sb, b, gb, NULL);
  char *before = snapshot(o, g, alg);
  int st;
  switch (data[0] % 7) {
  case 0: { /* one hyperparameter from text */
    const char *name = NULL;
    if (optim_hparam_info(alg, data[2] % optim_hparam_count(alg), &name, NULL, NULL, NULL))
      abort();
    st = optim_set_option(o, g, name, text);
    check_unchanged(o, g, alg, before, st);
    break;
  }
  case 1: /* "name=value,..." all or nothing */
    st = optim_configure(o, g, text);
    check_unchanged(o, g, alg, before, st);
    break;
  case 2: { /* a schedule, evaluated */
    double f = -1;
    st = optim_schedule_eval(text, (int64_t)data[2] * 37, &f);
    if (st > 0 || (st == OPTIM_OK && !isfinite(f))) abort();
    break;
  }
  case 3: /* a schedule attached to a hyperparameter */
    st = optim_set_schedule(o, g, data[2] & 1 ? "lr" : "weight_decay", text);
    check_unchanged(o, g, alg, before, st);
    if (st == OPTIM_OK) {
      double v;
      if (optim_get_double(o, g, "lr", &v) == OPTIM_OK && !isfinite(v)) abort();
    }
    break;
  case 4: { /* fnmatch patterns of a decay mask */
    int matched = -1;
    st = optim_set_decay_mask(o, text, data[2] / 255.0, &matched);
    if (st > 0 || (st == OPTIM_OK && (matched < 1 || matched > 2))) abort();
    break;
  }
  case 5: { /* a batch-size rule */
    st = optim_scale_batch_size(o, g, 0.25 + data[2] / 16.0, text);
    check_unchanged(o, g, alg, before, st);
    break;
  }
  default: { /* optim-train's optimizer spec, applied as optim-train does */
    spec_group groups[SPEC_MAX_GROUPS];
    char err[256];
    memset(err, 'x', sizeof err);
    int n = spec_parse(text, groups, SPEC_MAX_GROUPS, err, sizeof err);
    if (n == 0 || n < -1 || n > SPEC_MAX_GROUPS) abort();
    if (n < 0 && memchr(err, 0, sizeof err) == NULL) abort();
    for (int i = 0; i < n; i++) {
      if (!memchr(groups[i].algorithm, 0, sizeof groups[i].algorithm) ||
          !memchr(groups[i].options, 0, sizeof groups[i].options))
        abort();
      int gi;
      if (optim_add_group(o, groups[i].algorithm, &gi) == OPTIM_OK && groups[i].options[0]) {
        st = optim_configure(o, gi, groups[i].options);
        if (st > 0) abort();
      }
    }
    break;
  }
  }
  free(before);
  free(text);
  optim_destroy(o);
  return 0;
}
