/* schedule.c - learning-rate schedules: spec strings and tables
 * (lib/schedule.h), the refined schedule of Defazio, Cutkosky, Mehta and
 * Mishchenko, and the Step Law.  The formulas, with their sources, are in
 * optim_schedule_eval(3); the expressions below keep the operation order of
 * the references (torch.optim.lr_scheduler closed forms, transformers'
 * lambdas, numpy/scipy for the refined schedule) so that the golden data
 * of tests/golden/sched.txt agree to the last bits. */
#define _POSIX_C_SOURCE 200809L /* newlocale, uselocale */
#include <ctype.h>
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schedule.h"

#if defined(__GNUC__)
#define SCHED_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SCHED_PRINTF(a, b)
#endif

#define SCHED_PI 3.141592653589793 /* math.pi, the double nearest pi */
#define SPEC_MAX 1024              /* longest spec text accepted */
#define CANON_MAX 384              /* longest canonical text (about 200 used) */

/* ---- kinds and keys --------------------------------------------------------------------- */

enum kind {
  K_CONSTANT, K_STEP, K_EXPONENTIAL, K_LINEAR, K_COSINE, K_WARMUP_COSINE, K_WARMUP_LINEAR,
  K_WSD, K_TABLE
};
enum key {
  KEY_SIZE, KEY_GAMMA, KEY_WARMUP, KEY_TOTAL, KEY_DECAY, KEY_DECAY_FRACTION, KEY_FORM,
  KEY_SHAPE, KEY_CYCLES, KEY_START, KEY_END, KEY_MIN, NKEYS
};
enum ktype { T_INT, T_REAL, T_WORD };
enum form { FORM_HF, FORM_TORCH };
enum shape { SHAPE_LINEAR, SHAPE_COSINE, SHAPE_SQRT };

typedef struct key_desc {
  const char *name;
  int type;
  double lo, hi;        /* T_REAL range (closed); T_INT: lo only, hi is INT64_MAX */
  const char *words;    /* T_WORD: the choices, '|' separated, index = value */
} key_desc;

static const key_desc keys[NKEYS] = {
  [KEY_SIZE] = {"size", T_INT, 1, 0, NULL},
  [KEY_GAMMA] = {"gamma", T_REAL, 0, HUGE_VAL, NULL},
  [KEY_WARMUP] = {"warmup", T_INT, 0, 0, NULL},
  [KEY_TOTAL] = {"total", T_INT, 1, 0, NULL},
  [KEY_DECAY] = {"decay", T_INT, 0, 0, NULL},
  [KEY_DECAY_FRACTION] = {"decay_fraction", T_REAL, 0, 1, NULL},
  [KEY_FORM] = {"form", T_WORD, 0, 0, "hf|torch"},
  [KEY_SHAPE] = {"shape", T_WORD, 0, 0, "linear|cosine|sqrt"},
  [KEY_CYCLES] = {"cycles", T_REAL, 0, HUGE_VAL, NULL},
  [KEY_START] = {"start", T_REAL, 0, HUGE_VAL, NULL},
  [KEY_END] = {"end", T_REAL, 0, HUGE_VAL, NULL},
  [KEY_MIN] = {"min", T_REAL, 0, 1, NULL},
};

/* A key of a kind: its default, or none (REQUIRED: the caller must give
 * it; LATER: resolved after parsing, from other keys). */
#define REQUIRED (-1.0)
#define LATER (-2.0)
#define END_KEYS {-1, 0}
typedef struct kind_key {
  int key;
  double def;
} kind_key;

typedef struct kind_desc {
  const char *name;
  kind_key keys[8];     /* in canonical order, ended by key -1 */
} kind_desc;

static const kind_desc kinds[] = {
  [K_CONSTANT] = {"constant", {END_KEYS}},
  [K_STEP] = {"step", {{KEY_SIZE, REQUIRED}, {KEY_GAMMA, 0.1}, END_KEYS}},
  [K_EXPONENTIAL] = {"exponential", {{KEY_GAMMA, REQUIRED}, END_KEYS}},
  [K_LINEAR] = {"linear", {{KEY_TOTAL, REQUIRED}, {KEY_START, 1}, {KEY_END, 0}, END_KEYS}},
  [K_COSINE] = {"cosine", {{KEY_TOTAL, REQUIRED}, {KEY_MIN, 0}, END_KEYS}},
  [K_WARMUP_COSINE] = {"warmup_cosine",
                       {{KEY_WARMUP, REQUIRED}, {KEY_TOTAL, REQUIRED}, {KEY_FORM, FORM_HF},
                        {KEY_CYCLES, 0.5}, {KEY_MIN, 0}, {KEY_START, LATER}, END_KEYS}},
  [K_WARMUP_LINEAR] = {"warmup_linear",
                       {{KEY_WARMUP, REQUIRED}, {KEY_TOTAL, REQUIRED}, {KEY_FORM, FORM_HF},
                        {KEY_START, LATER}, END_KEYS}},
  [K_WSD] = {"wsd",
             {{KEY_WARMUP, REQUIRED}, {KEY_TOTAL, REQUIRED}, {KEY_DECAY, LATER},
              {KEY_DECAY_FRACTION, LATER}, {KEY_SHAPE, SHAPE_LINEAR}, {KEY_MIN, 0}, END_KEYS}},
};
#define NKINDS ((int)(sizeof kinds / sizeof kinds[0]))

struct optim_sched {
  int kind;
  int form, shape;
  int64_t size, warmup, total, decay;
  double gamma, cycles, start, end, min;
  double *table;        /* K_TABLE */
  int64_t n;
  char spec[CANON_MAX]; /* canonical text; "" for a table */
};

/* ---- messages and parsing helpers ----------------------------------------------------------- */

static int SCHED_PRINTF(4, 5) fail(char *msg, size_t size, int status, const char *fmt, ...)
{
  if (msg && size) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, size, fmt, ap);
    va_end(ap);
  }
  return status;
}

/* Trim white space at both ends of [*b, *e). */
static void trim(const char **b, const char **e)
{
  while (*b < *e && isspace((unsigned char)**b)) (*b)++;
  while (*e > *b && isspace((unsigned char)(*e)[-1])) (*e)--;
}

/* Index of the word [b, e) in a '|' list, or -1. */
static int word_index(const char *words, const char *b, const char *e)
{
  size_t n = (size_t)(e - b);
  int idx = 0;
  for (const char *s = words;; idx++) {
    const char *bar = strchr(s, '|');
    size_t len = bar ? (size_t)(bar - s) : strlen(s);
    if (len == n && strncmp(s, b, n) == 0) return idx;
    if (!bar) return -1;
    s = bar + 1;
  }
}

/* Copy choice idx of a '|' list into buf. */
static void word_at(const char *words, int idx, char *buf, size_t size)
{
  const char *s = words;
  for (int k = 0; k < idx; k++) s = strchr(s, '|') + 1;
  const char *bar = strchr(s, '|');
  size_t len = bar ? (size_t)(bar - s) : strlen(s);
  snprintf(buf, size, "%.*s", (int)len, s);
}

/* A double in its shortest form that reads back to the same value. */
static void fmt_real(double v, char *buf, size_t size)
{
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, size, "%.*g", prec, v);
    if (strtod(buf, NULL) == v) return;
  }
}

/* Parse the value [b, e) of key k into ival/rval. */
static int parse_value(int k, const char *b, const char *e, int64_t *ival, double *rval,
                       char *msg, size_t size)
{
  const key_desc *d = &keys[k];
  char text[64];
  if (e == b) return fail(msg, size, OPTIM_EINVAL, "%s: empty value", d->name);
  if ((size_t)(e - b) >= sizeof text)
    return fail(msg, size, OPTIM_EINVAL, "%s: value '%.*s...' is too long", d->name, 20, b);
  memcpy(text, b, (size_t)(e - b));
  text[e - b] = '\0';
  char *end;
  if (d->type == T_WORD) {
    int w = word_index(d->words, b, e);
    if (w < 0)
      return fail(msg, size, OPTIM_EINVAL, "%s: '%s' is not one of %s", d->name, text, d->words);
    *ival = w;
  } else if (d->type == T_INT) {
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end != '\0')
      return fail(msg, size, OPTIM_EINVAL, "%s: '%s' is not an integer", d->name, text);
    if (errno == ERANGE || v < (long long)d->lo)
      return fail(msg, size, OPTIM_ERANGE, "%s = %s is outside [%.0f, %lld]", d->name, text, d->lo,
                  (long long)INT64_MAX);
    *ival = v;
  } else {
    double v = strtod(text, &end);
    if (end == text || *end != '\0')
      return fail(msg, size, OPTIM_EINVAL, "%s: '%s' is not a number", d->name, text);
    if (!isfinite(v)) return fail(msg, size, OPTIM_ERANGE, "%s must be finite, not '%s'", d->name, text);
    if (v < d->lo || v > d->hi) {
      if (d->hi == HUGE_VAL)
        return fail(msg, size, OPTIM_ERANGE, "%s = %s must not be negative", d->name, text);
      return fail(msg, size, OPTIM_ERANGE, "%s = %s is outside [%g, %g]", d->name, text, d->lo,
                  d->hi);
    }
    *rval = v;
  }
  return OPTIM_OK;
}

static void list_keys(const kind_desc *kd, char *buf, size_t size)
{
  buf[0] = '\0';
  for (int i = 0; kd->keys[i].key >= 0; i++)
    snprintf(buf + strlen(buf), size - strlen(buf), "%s%s", i ? ", " : "", keys[kd->keys[i].key].name);
  if (!buf[0]) snprintf(buf, size, "none");
}

/* ---- the kinds' own rules -------------------------------------------------------------------------- */

/* Checks across keys and the values resolved from others; s holds every
 * key (given or default), given[k] says which were given. */
static int check_kind(optim_sched *s, const int *given, double fraction, char *msg, size_t size)
{
  const char *name = kinds[s->kind].name;
  switch (s->kind) {
  case K_WARMUP_COSINE:
  case K_WARMUP_LINEAR:
    if (s->warmup > s->total)
      return fail(msg, size, OPTIM_ERANGE, "%s: warmup = %lld exceeds total = %lld", name,
                  (long long)s->warmup, (long long)s->total);
    if (s->form == FORM_HF) {
      if ((given[KEY_MIN] && s->min != 0) || (given[KEY_START] && s->start != 0))
        return fail(msg, size, OPTIM_EINVAL,
                    "%s: form=hf starts at 0 and decays to 0: min and start must be 0 "
                    "(use form=torch)", name);
      s->start = 0;
    } else {
      if (s->warmup == s->total)
        return fail(msg, size, OPTIM_ERANGE,
                    "%s: form=torch needs warmup < total (warmup = total = %lld)", name,
                    (long long)s->total);
      if (s->kind == K_WARMUP_COSINE && s->cycles != 0.5)
        return fail(msg, size, OPTIM_EINVAL, "%s: cycles is for form=hf only", name);
      if (!given[KEY_START]) s->start = 1.0 / 3.0;
      if (s->start > 1)
        return fail(msg, size, OPTIM_ERANGE, "%s: start = %g is outside [0, 1]", name, s->start);
    }
    break;
  case K_WSD:
    if (given[KEY_DECAY] == given[KEY_DECAY_FRACTION])
      return fail(msg, size, OPTIM_EINVAL, "wsd needs exactly one of decay=STEPS and decay_fraction=F");
    if (given[KEY_DECAY_FRACTION]) s->decay = (int64_t)round(fraction * (double)s->total);
    if (s->warmup > s->total || s->decay > s->total - s->warmup)
      return fail(msg, size, OPTIM_ERANGE,
                  "wsd: warmup = %lld plus decay = %lld exceeds total = %lld",
                  (long long)s->warmup, (long long)s->decay, (long long)s->total);
    break;
  default:
    break;
  }
  return OPTIM_OK;
}

static void store(optim_sched *s, int k, int64_t ival, double rval)
{
  switch (k) {
  case KEY_SIZE: s->size = ival; break;
  case KEY_WARMUP: s->warmup = ival; break;
  case KEY_TOTAL: s->total = ival; break;
  case KEY_DECAY: s->decay = ival; break;
  case KEY_FORM: s->form = (int)ival; break;
  case KEY_SHAPE: s->shape = (int)ival; break;
  case KEY_GAMMA: s->gamma = rval; break;
  case KEY_CYCLES: s->cycles = rval; break;
  case KEY_START: s->start = rval; break;
  case KEY_END: s->end = rval; break;
  case KEY_MIN: s->min = rval; break;
  default: break; /* decay_fraction: resolved into decay */
  }
}

/* Write the canonical text: every key of the kind but decay_fraction
 * (resolved into decay). */
static void canonicalize(optim_sched *s)
{
  const kind_desc *kd = &kinds[s->kind];
  char *p = s->spec;
  size_t left = sizeof s->spec;
  int n = snprintf(p, left, "%s", kd->name);
  for (int i = 0; kd->keys[i].key >= 0; i++) {
    int k = kd->keys[i].key;
    if (k == KEY_DECAY_FRACTION) continue;
    char val[40];
    switch (k) {
    case KEY_SIZE: snprintf(val, sizeof val, "%lld", (long long)s->size); break;
    case KEY_WARMUP: snprintf(val, sizeof val, "%lld", (long long)s->warmup); break;
    case KEY_TOTAL: snprintf(val, sizeof val, "%lld", (long long)s->total); break;
    case KEY_DECAY: snprintf(val, sizeof val, "%lld", (long long)s->decay); break;
    case KEY_FORM: word_at(keys[k].words, s->form, val, sizeof val); break;
    case KEY_SHAPE: word_at(keys[k].words, s->shape, val, sizeof val); break;
    case KEY_GAMMA: fmt_real(s->gamma, val, sizeof val); break;
    case KEY_CYCLES: fmt_real(s->cycles, val, sizeof val); break;
    case KEY_START: fmt_real(s->start, val, sizeof val); break;
    case KEY_END: fmt_real(s->end, val, sizeof val); break;
    default: fmt_real(s->min, val, sizeof val); break;
    }
    n += snprintf(p + n, left - (size_t)n, "%c%s=%s", i ? ',' : ':', keys[k].name, val);
  }
}

static int parse_spec(const char *spec, optim_sched *s, char *msg, size_t size);

/* Parse spec into *s, numbers read and written in the C locale whatever
 * the thread's LC_NUMERIC (with a decimal comma, "0.1" would not read and
 * the canonical text would hold "0,1"): uselocale is per thread. */
static int parse_into(const char *spec, optim_sched *s, char *msg, size_t size)
{
  locale_t c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
  locale_t old = c ? uselocale(c) : (locale_t)0;
  int st = parse_spec(spec, s, msg, size);
  if (c) {
    uselocale(old);
    freelocale(c);
  }
  return st;
}

static int parse_spec(const char *spec, optim_sched *s, char *msg, size_t size)
{
  if (!spec) return fail(msg, size, OPTIM_EINVAL, "NULL schedule spec");
  size_t len = strlen(spec);
  if (len >= SPEC_MAX)
    return fail(msg, size, OPTIM_EINVAL, "schedule spec longer than %d characters", SPEC_MAX - 1);
  memset(s, 0, sizeof *s);
  const char *colon = strchr(spec, ':');
  const char *kb = spec, *ke = colon ? colon : spec + len;
  trim(&kb, &ke);
  if (kb == ke) return fail(msg, size, OPTIM_EINVAL, "empty schedule kind in '%s'", spec);
  s->kind = -1;
  for (int k = 0; k < NKINDS; k++)
    if (strlen(kinds[k].name) == (size_t)(ke - kb) && !strncmp(kinds[k].name, kb, (size_t)(ke - kb)))
      s->kind = k;
  if (s->kind < 0)
    return fail(msg, size, OPTIM_EUNKNOWN,
                "unknown schedule kind '%.*s' (constant, step, exponential, linear, cosine, "
                "warmup_cosine, warmup_linear, wsd)", (int)(ke - kb), kb);
  const kind_desc *kd = &kinds[s->kind];
  int given[NKEYS] = {0};
  double fraction = 0;
  for (const char *p = colon ? colon + 1 : NULL; p;) {
    const char *comma = strchr(p, ',');
    const char *ie = comma ? comma : p + strlen(p);
    const char *eq = memchr(p, '=', (size_t)(ie - p));
    const char *nb = p, *ne = eq ? eq : ie;
    trim(&nb, &ne);
    if (!eq) {
      if (nb == ne && !comma && p == colon + 1) break; /* "kind:" */
      if (nb == ne) return fail(msg, size, OPTIM_EINVAL, "%s: empty KEY=VALUE item", kd->name);
      return fail(msg, size, OPTIM_EINVAL, "%s: '%.*s' is not KEY=VALUE", kd->name,
                  (int)(ie - p), p);
    }
    int k = -1;
    for (int i = 0; kd->keys[i].key >= 0; i++) {
      const char *kn = keys[kd->keys[i].key].name;
      if (strlen(kn) == (size_t)(ne - nb) && !strncmp(kn, nb, (size_t)(ne - nb))) k = kd->keys[i].key;
    }
    if (k < 0) {
      char list[160];
      list_keys(kd, list, sizeof list);
      return fail(msg, size, OPTIM_EUNKNOWN, "%s has no key '%.*s' (keys: %s)", kd->name,
                  (int)(ne - nb), nb, list);
    }
    if (given[k]) return fail(msg, size, OPTIM_EINVAL, "%s: %s given twice", kd->name, keys[k].name);
    const char *vb = eq + 1, *ve = ie;
    trim(&vb, &ve);
    int64_t ival = 0;
    double rval = 0;
    int st = parse_value(k, vb, ve, &ival, &rval, msg, size);
    if (st) return st;
    given[k] = 1;
    store(s, k, ival, rval);
    if (k == KEY_DECAY_FRACTION) fraction = rval;
    p = comma ? comma + 1 : NULL;
  }
  for (int i = 0; kd->keys[i].key >= 0; i++) {
    int k = kd->keys[i].key;
    if (given[k]) continue;
    if (kd->keys[i].def == REQUIRED)
      return fail(msg, size, OPTIM_EINVAL, "%s needs %s=...", kd->name, keys[k].name);
    if (kd->keys[i].def != LATER) store(s, k, (int64_t)kd->keys[i].def, kd->keys[i].def);
  }
  int st = check_kind(s, given, fraction, msg, size);
  if (st) return st;
  canonicalize(s);
  return OPTIM_OK;
}

/* ---- evaluation -------------------------------------------------------------------------------- */

static double warmup_factor(const optim_sched *s, int64_t t)
{
  if (s->form == FORM_HF) return (double)t / (double)s->warmup;
  return s->start + (1.0 - s->start) * (double)t / (double)s->warmup; /* torch LinearLR */
}

static double factor(const optim_sched *s, int64_t t)
{
  int64_t T = s->total, W = s->warmup;
  double v;
  switch (s->kind) {
  case K_STEP: return pow(s->gamma, (double)(t / s->size));
  case K_EXPONENTIAL: return pow(s->gamma, (double)t);
  case K_LINEAR: return s->start + (s->end - s->start) * (double)(t < T ? t : T) / (double)T;
  case K_COSINE:
    return s->min + (1.0 - s->min) * (1.0 + cos(SCHED_PI * (double)t / (double)T)) / 2.0;
  case K_WARMUP_COSINE:
    if (t < W) return warmup_factor(s, t);
    if (s->form == FORM_HF) {
      double p = (double)(t - W) / (double)(T - W > 1 ? T - W : 1);
      v = 0.5 * (1.0 + cos(SCHED_PI * s->cycles * 2.0 * p));
      return v > 0.0 ? v : 0.0;
    }
    return s->min +
           (1.0 - s->min) * (1.0 + cos(SCHED_PI * (double)(t - W) / (double)(T - W))) / 2.0;
  case K_WARMUP_LINEAR:
    if (t < W) return warmup_factor(s, t);
    v = (double)(T - t) / (double)(T - W > 1 ? T - W : 1);
    return v > 0.0 ? v : 0.0;
  case K_WSD: {
    if (t < W) return (double)t / (double)W;
    if (t >= T) return s->min;
    if (t < T - s->decay) return 1.0;
    double x = (double)(t - (T - s->decay)) / (double)s->decay;
    if (s->shape == SHAPE_COSINE) return s->min + (1.0 - s->min) * (1.0 + cos(SCHED_PI * x)) / 2.0;
    if (s->shape == SHAPE_SQRT) return 1.0 - (1.0 - s->min) * sqrt(x);
    return 1.0 - (1.0 - s->min) * x;
  }
  case K_TABLE: return s->table[t < s->n ? t : s->n - 1];
  default: return 1.0;
  }
}

/* ---- internal interface ---------------------------------------------------------------------------- */

int optim__sched_parse(const char *spec, optim_sched **out, char *msg, size_t size)
{
  if (msg && size) msg[0] = '\0';
  if (!out) return fail(msg, size, OPTIM_EINVAL, "NULL output pointer");
  *out = NULL;
  optim_sched tmp;
  int st = parse_into(spec, &tmp, msg, size);
  if (st) return st;
  optim_sched *s = malloc(sizeof *s);
  if (!s) return fail(msg, size, OPTIM_ENOMEM, "out of memory");
  *s = tmp;
  *out = s;
  return OPTIM_OK;
}

optim_sched *optim__sched_table(const double *f, int64_t n)
{
  if (!f || n < 1 || (uint64_t)n > SIZE_MAX / sizeof(double)) return NULL;
  optim_sched *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->table = malloc((size_t)n * sizeof(double));
  if (!s->table) {
    free(s);
    return NULL;
  }
  memcpy(s->table, f, (size_t)n * sizeof(double));
  s->kind = K_TABLE;
  s->n = n;
  return s;
}

double optim__sched_factor(const optim_sched *s, int64_t t) { return factor(s, t < 0 ? 0 : t); }

const char *optim__sched_spec(const optim_sched *s)
{
  return s && s->kind != K_TABLE ? s->spec : NULL;
}

const double *optim__sched_values(const optim_sched *s, int64_t *n)
{
  int table = s && s->kind == K_TABLE;
  if (n) *n = table ? s->n : 0;
  return table ? s->table : NULL;
}

void optim__sched_free(optim_sched *s)
{
  if (!s) return;
  free(s->table);
  free(s);
}

/* ---- public: evaluation and the Step Law ------------------------------------------------------------- */

int optim_schedule_eval(const char *spec, int64_t step, double *factor_out)
{
  if (!spec || !factor_out) return OPTIM_EINVAL;
  if (step < 0) return OPTIM_ERANGE;
  optim_sched s;
  int st = parse_into(spec, &s, NULL, 0);
  if (st) return st;
  /* growing schedules (gamma > 1) overflow a double after enough steps */
  double f = factor(&s, step);
  if (!isfinite(f)) return OPTIM_ERANGE;
  *factor_out = f;
  return OPTIM_OK;
}

int optim_step_law(double params, double tokens, double *lr, double *batch_tokens)
{
  if (!isfinite(params) || !isfinite(tokens)) return OPTIM_ENONFINITE;
  if (params <= 0 || tokens <= 0) return OPTIM_ERANGE;
  if (lr) *lr = 1.79 * pow(params, -0.713) * pow(tokens, 0.307);
  if (batch_tokens) *batch_tokens = 0.58 * pow(tokens, 0.571);
  return OPTIM_OK;
}

/* ---- public: the refined schedule ---------------------------------------------------------------------- */

/* The authors' grid (facebookresearch/adaptive_scheduling visual.py: nvals)
 * and their median filter's width, 10% of it, made odd. */
#define REFINE_GRID 10000
#define REFINE_WIDTH (2 * ((int64_t)(0.1 * REFINE_GRID) / 2) + 1)

/* numpy.linspace(0, 1, n)[i]: i * (1/(n-1)), the last exactly 1. */
static double grid_x(int64_t i, int64_t n)
{
  if (n < 2) return 0.0;
  if (i == n - 1) return 1.0;
  return (double)i * (1.0 / (double)(n - 1));
}

/* numpy.interp(linspace(0, 1, m), linspace(0, 1, n), fp), with numpy's
 * rules: a point on a node takes the node's value, others slope*(x - x_j)
 * + f_j with slope = (f_j+1 - f_j) / (x_j+1 - x_j). */
static void resample(const double *fp, int64_t n, double *out, int64_t m)
{
  int64_t j = 0;
  for (int64_t i = 0; i < m; i++) {
    double x = grid_x(i, m);
    if (n == 1) {
      out[i] = fp[0];
      continue;
    }
    while (j + 1 < n && grid_x(j + 1, n) <= x) j++;
    double xj = grid_x(j, n);
    if (j == n - 1 || xj == x) {
      out[i] = fp[j];
      continue;
    }
    double slope = (fp[j + 1] - fp[j]) / (grid_x(j + 1, n) - xj);
    out[i] = slope * (x - xj) + fp[j];
  }
}

/* Index of the first element >= v in sorted a[0, n). */
static int64_t lower_bound(const double *a, int64_t n, double v)
{
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    if (a[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* scipy.ndimage.median_filter(x, size=w, mode='nearest') for odd w over
 * x[0, len), out[i] for i < m only: a sorted window slides along, each
 * step replacing the value that leaves by the one that enters. */
static void median_filter(const double *x, int64_t len, int64_t w, double *out, int64_t m,
                          double *win)
{
  int64_t h = w / 2;
  for (int64_t k = 0; k < w; k++) {
    int64_t idx = k - h;
    win[k] = x[idx < 0 ? 0 : idx >= len ? len - 1 : idx];
  }
  qsort(win, (size_t)w, sizeof *win, cmp_double);
  for (int64_t i = 0; i < m; i++) {
    out[i] = win[h];
    if (i + 1 == m) break;
    int64_t lo = i - h, hi = i + h + 1;
    double old = x[lo < 0 ? 0 : lo], v = x[hi >= len ? len - 1 : hi];
    int64_t p = lower_bound(win, w, old);
    while (p + 1 < w && win[p + 1] < v) {
      win[p] = win[p + 1];
      p++;
    }
    while (p > 0 && win[p - 1] > v) {
      win[p] = win[p - 1];
      p--;
    }
    win[p] = v;
  }
}

int optim_schedule_refined(const double *gnorms, int64_t count, int norm, int64_t steps,
                           double *factors)
{
  if (!gnorms || !factors) return OPTIM_EINVAL;
  if (count < 1 || steps < 2 || (norm != 1 && norm != 2)) return OPTIM_ERANGE;
  double gmax = 0;
  for (int64_t i = 0; i < count; i++) {
    if (!isfinite(gnorms[i])) return OPTIM_ENONFINITE;
    if (!(gnorms[i] > 0)) return OPTIM_ERANGE;
    if (gnorms[i] > gmax) gmax = gnorms[i];
  }
  /* The schedule does not change when every norm is multiplied by a power
   * of two (every value below scales exactly), so the norms are brought
   * near 1 first: norms of 1e-200 or 1e200 do not overflow G^-2. */
  int e;
  frexp(gmax, &e);
  const int64_t G = REFINE_GRID, w = REFINE_WIDTH, pad = 2 * REFINE_WIDTH;
  int64_t M = count < G ? G : count, len = M + pad;
  if ((uint64_t)M > SIZE_MAX / (4 * sizeof(double))) return OPTIM_ENOMEM;
  double *x = malloc(((size_t)len + (size_t)M + 2 * (size_t)G + (size_t)w) * sizeof(double));
  if (!x) return OPTIM_ENOMEM;
  double *filtered = x + len, *sched = filtered + M, *tail = sched + G, *win = tail + G;

  /* 1. The series on the grid: resampled (linear interpolation) to G
   *    points when shorter, as it is when longer. */
  if (count < G) {
    for (int64_t i = 0; i < count; i++) filtered[i] = ldexp(gnorms[i], -e);
    resample(filtered, count, x, G);
  } else {
    for (int64_t i = 0; i < count; i++) x[i] = ldexp(gnorms[i], -e);
  }
  /* 2. numpy.pad(x, (0, pad), mode='reflect'): the end mirrored about the
   *    last point (M >= G > pad, so one reflection), then the median
   *    filter, and the padded part cropped. */
  for (int64_t j = 0; j < pad; j++) x[M + j] = x[M - 2 - j];
  median_filter(x, len, w, filtered, M, win);
  /* 3. The smoothed norms on the G-point grid, and the weights. */
  double *smooth = x; /* x is no longer needed */
  resample(filtered, M, smooth, G);
  for (int64_t t = 0; t < G; t++)
    smooth[t] = norm == 2 ? pow(smooth[t], -2.0) : 1.0 / smooth[t];
  /* 4. find_closed_form_schedule: w_t * sum_{p > t} w_p / w_{G-1}, the
   *    tail sums accumulated from the end; the last factor 0. */
  tail[G - 1] = smooth[G - 1];
  for (int64_t t = G - 2; t >= 0; t--) tail[t] = tail[t + 1] + smooth[t];
  double mx = 0;
  for (int64_t t = 0; t < G - 1; t++) {
    sched[t] = smooth[t] * tail[t + 1] / tail[G - 1];
    if (sched[t] > mx) mx = sched[t];
  }
  sched[G - 1] = 0;
  /* 5. Normalised by the maximum, resampled to the steps asked for and
   *    normalised again (the maximum may fall between the new points). */
  int st = OPTIM_OK;
  if (!isfinite(mx) || !(mx > 0)) {
    st = OPTIM_ERANGE; /* weights over- or underflowed: norms spanning ~1e150 */
  } else {
    for (int64_t t = 0; t < G; t++) sched[t] = sched[t] / mx;
    resample(sched, G, factors, steps);
    mx = 0;
    for (int64_t t = 0; t < steps; t++)
      if (factors[t] > mx) mx = factors[t];
    for (int64_t t = 0; t < steps; t++) factors[t] = factors[t] / mx;
  }
  free(x);
  return st;
}
