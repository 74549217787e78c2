/* fixture.h - the optimizer the checkpoint harnesses load into (and that
 * tests/fuzz/mkseed.c saves the seed corpus from): five parameters in four
 * groups (adamw with a schedule and a decay mask, soap, muon, adam_cm),
 * float32 and float64, an optimizer-wide clip norm, so that every section
 * of the version 2 format is present.  Parameter values and gradients are
 * reset by fixture_create, so every run starts from the same numbers. */
#ifndef OPTIM_FUZZ_FIXTURE_H
#define OPTIM_FUZZ_FIXTURE_H
#include <stdint.h>
#include <string.h>

#include "optim.h"

static float fx_w[12], fx_gw[12], fx_m[30], fx_gm[30], fx_k[16], fx_gk[16], fx_c[5], fx_gc[5];
static double fx_b[3], fx_gb[3];
#define FX_NPARAMS 5

static void fx_fill(float *p, float *g, size_t n, float s)
{
  for (size_t i = 0; i < n; i++) {
    p[i] = s * (float)((int)(i * 7 % 11) - 5) / 8;
    g[i] = s * (float)((int)(i * 5 % 13) - 6) / 16;
  }
}

/* NULL when the library refuses any of it (it never does: the replay
 * programs of make check would fail first). */
static optim_optimizer *fixture_create(void)
{
  optim_optimizer *o = NULL;
  int g[4];
  const int64_t sw[2] = {4, 3}, sb[1] = {3}, sm[2] = {6, 5}, sk[2] = {4, 4}, sc[1] = {5};
  fx_fill(fx_w, fx_gw, 12, 1);
  fx_fill(fx_m, fx_gm, 30, 2);
  fx_fill(fx_k, fx_gk, 16, 0.5f);
  fx_fill(fx_c, fx_gc, 5, 3);
  for (int i = 0; i < 3; i++) {
    fx_b[i] = 0.25 * i - 0.3;
    fx_gb[i] = 0.1 * i + 0.05;
  }
  if (optim_create(&o) != OPTIM_OK) return NULL;
  if (optim_add_group(o, "adamw", &g[0]) || optim_add_group(o, "soap", &g[1]) ||
      optim_add_group(o, "muon", &g[2]) || optim_add_group(o, "adam_cm", &g[3]) ||
      optim_configure(o, g[1], "precondition_frequency=2") ||
      optim_add_param(o, g[0], "w", OPTIM_FLOAT32, 2, sw, fx_w, fx_gw, NULL) ||
      optim_add_param(o, g[0], "b.bias", OPTIM_FLOAT64, 1, sb, fx_b, fx_gb, NULL) ||
      optim_add_param(o, g[1], "m", OPTIM_FLOAT32, 2, sm, fx_m, fx_gm, NULL) ||
      optim_add_param(o, g[2], "k", OPTIM_FLOAT32, 2, sk, fx_k, fx_gk, NULL) ||
      optim_add_param(o, g[3], "c", OPTIM_FLOAT32, 1, sc, fx_c, fx_gc, NULL) ||
      optim_set_schedule(o, g[0], "lr", "warmup_cosine:warmup=2,total=10") ||
      optim_set_decay_mask(o, "*.bias", 0, NULL) || optim_set_clip_norm(o, 5)) {
    optim_destroy(o);
    return NULL;
  }
  return o;
}

/* FNV-1a over everything a load may change: every state entry (buffers and
 * scalars), the groups' counters and learning rates, the decay scales. */
static uint64_t fx_mix(uint64_t h, const void *p, size_t n)
{
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 1099511628211ull;
  return h;
}

static uint64_t fixture_hash(optim_optimizer *o)
{
  uint64_t h = 1469598103934665603ull;
  for (int i = 0; i < optim_param_count(o); i++) {
    int n = optim_state_count(o, i);
    for (int k = 0; k < n; k++) {
      const char *name;
      int kind;
      int64_t numel;
      if (optim_state_info(o, i, k, &name, &kind, &numel)) continue;
      h = fx_mix(h, name, strlen(name));
      if (kind == OPTIM_STATE_BUFFER) {
        const void *d;
        int64_t cnt;
        if (optim_state_buffer(o, i, name, &d, &cnt) == OPTIM_OK && d)
          h = fx_mix(h, d, (size_t)cnt * (i == 1 ? sizeof(double) : sizeof(float)));
      } else {
        int64_t v = 0;
        optim_state_scalar(o, i, name, &v);
        h = fx_mix(h, &v, sizeof v);
      }
    }
    double s = 0;
    optim_param_get_decay_scale(o, i, &s);
    h = fx_mix(h, &s, sizeof s);
  }
  static const char *const counters[] = {"steps", "skipped", "failed"};
  for (int g = 0; g < optim_group_count(o); g++) {
    for (int c = 0; c < 3; c++) {
      int64_t v = 0;
      optim_get_counter(o, g, counters[c], &v);
      h = fx_mix(h, &v, sizeof v);
    }
    double lr = 0;
    optim_get_double(o, g, "lr", &lr);
    h = fx_mix(h, &lr, sizeof lr);
  }
  return h;
}
#endif
