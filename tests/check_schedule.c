/* check_schedule.c - learning-rate schedules (lib/schedule.c, compiled in:
 * the internal interface has hidden symbols): every kind against its
 * closed form written out here, parse errors and their statuses and
 * messages, canonical specs, tables, the refined schedule's properties,
 * the Step Law at points worked out by hand, and the golden values of
 * tests/golden/sched.txt (torch.optim.lr_scheduler, transformers' lambdas,
 * our numpy/scipy refined schedule). */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optim.h"
#include "schedule.h"
#include "testutil.h"

#ifndef GOLDEN_DIR
#define GOLDEN_DIR "tests/golden"
#endif

static const double pi = 3.14159265358979323846;

/* |got - want| <= 1e-12 |want|, or 1e-15 where want is 0 (or nearly). */
static int close12(double got, double want)
{
  return fabs(got - want) <= 1e-12 * fabs(want) + 1e-15;
}

static double eval(const char *spec, int64_t t)
{
  double f = NAN;
  int st = optim_schedule_eval(spec, t, &f);
  ck_assert_msg(st == OPTIM_OK, "%s at %lld: status %d", spec, (long long)t, st);
  return f;
}

#define CHECK_AT(spec, t, want)                                                          \
  do {                                                                                   \
    double got_ = eval(spec, t), want_ = (want);                                         \
    ck_assert_msg(close12(got_, want_), "%s at t=%lld: got %.17g, want %.17g", spec,     \
                  (long long)(t), got_, want_);                                          \
  } while (0)

/* ---- every kind against its closed form ------------------------------------------------- */

START_TEST(test_closed_forms)
{
  for (int64_t t = 0; t < 300; t += 7) {
    CHECK_AT("constant", t, 1.0);
    /* StepLR: gamma^floor(t/S) as repeated multiplication */
    double g = 1;
    for (int64_t k = 0; k < t / 4; k++) g *= 0.5;
    CHECK_AT("step:size=4,gamma=0.5", t, g);
    CHECK_AT("step:size=100", t, t < 100 ? 1 : t < 200 ? 0.1 : 0.1 * 0.1);
    CHECK_AT("exponential:gamma=0.99", t, exp((double)t * log(0.99)));
    /* linear: the straight line through (0, start) and (T, end), then end */
    double x = t < 120 ? (double)t / 120 : 1;
    CHECK_AT("linear:total=120", t, 1 - x);
    CHECK_AT("linear:total=120,start=0.2,end=0.8", t, 0.2 * (1 - x) + 0.8 * x);
    /* cosine: min + (1-min) cos^2(pi t / 2T), periodic with period 2T */
    double c = cos(pi * (double)t / 100 / 2);
    CHECK_AT("cosine:total=100", t, c * c);
    CHECK_AT("cosine:total=100,min=0.1", t, 0.1 + 0.9 * c * c);
  }
  /* hf warmup + cosine / linear: W = 20, T = 200 */
  for (int64_t t = 0; t < 260; t += 3) {
    /* 0.5 (1 + cos(pi p)) = cos^2(pi p / 2), p = (t - W)/(T - W); past T it
     * rises again, as transformers' lambda does */
    double c = cos(pi * (t - 20) / 180.0 / 2);
    double want = t < 20 ? t / 20.0 : c * c;
    CHECK_AT("warmup_cosine:warmup=20,total=200", t, want);
    want = t < 20 ? t / 20.0 : t < 200 ? (200 - t) / 180.0 : 0;
    CHECK_AT("warmup_linear:warmup=20,total=200", t, want);
    /* torch forms: warmup from 1/3 (LinearLR's default), then cosine to min
     * or a line to 0 */
    double s = 1.0 / 3;
    want = t < 20 ? s + (1 - s) * t / 20.0 : 0.05 + 0.95 * c * c;
    CHECK_AT("warmup_cosine:warmup=20,total=200,form=torch,min=0.05", t, want);
    want = t < 20 ? s + (1 - s) * t / 20.0 : t < 200 ? 1 - (t - 20) / 180.0 : 0;
    CHECK_AT("warmup_linear:warmup=20,total=200,form=torch", t, want);
  }
  /* hf cosine with 1.5 cycles: 0 at p = 1/3, 1 at p = 2/3 (W = 0) */
  CHECK_AT("warmup_cosine:warmup=0,total=300,cycles=1.5", 0, 1);
  CHECK_AT("warmup_cosine:warmup=0,total=300,cycles=1.5", 100, 0);
  CHECK_AT("warmup_cosine:warmup=0,total=300,cycles=1.5", 200, 1);
  /* wsd: warmup t/W, stable 1, decay over D steps with three shapes, min */
  for (int64_t t = 0; t < 130; t++) {
    double x = (t - 80) / 20.0, want_lin, want_cos, want_sqrt;
    if (t < 10) want_lin = want_cos = want_sqrt = t / 10.0;
    else if (t < 80) want_lin = want_cos = want_sqrt = 1;
    else if (t < 100) {
      want_lin = 1 - 0.9 * x;
      want_cos = 0.1 + 0.9 * (0.5 + 0.5 * cos(pi * x));
      want_sqrt = 1 - 0.9 * sqrt(x);
    } else want_lin = want_cos = want_sqrt = 0.1;
    CHECK_AT("wsd:warmup=10,total=100,decay=20,min=0.1", t, want_lin);
    CHECK_AT("wsd:warmup=10,total=100,decay=20,min=0.1,shape=cosine", t, want_cos);
    CHECK_AT("wsd:warmup=10,total=100,decay_fraction=0.2,min=0.1,shape=sqrt", t, want_sqrt);
  }
  /* W = 0 and no decay */
  CHECK_AT("wsd:warmup=0,total=10,decay=0", 0, 1);
  CHECK_AT("wsd:warmup=0,total=10,decay=0", 9, 1);
  CHECK_AT("wsd:warmup=0,total=10,decay=0,min=0.5", 10, 0.5);
  /* decay_fraction rounds half away from zero: 0.25 * 10 = 2.5 -> 3 */
  CHECK_AT("wsd:warmup=0,total=10,decay_fraction=0.25", 6, 1);
  CHECK_AT("wsd:warmup=0,total=10,decay_fraction=0.25", 7, 1);
  CHECK_AT("wsd:warmup=0,total=10,decay_fraction=0.25", 8, 2.0 / 3);
  /* white space is allowed around kinds, keys and values */
  CHECK_AT(" cosine : total = 100 , min = 0.1 ", 50, 0.55);
}
END_TEST

/* ---- parse errors ------------------------------------------------------------------------------ */

static void parse_fails(const char *spec, int status, const char *needle)
{
  char msg[256] = "untouched";
  optim_sched *s = (optim_sched *)&msg; /* must become NULL */
  int st = optim__sched_parse(spec, &s, msg, sizeof msg);
  ck_assert_msg(st == status, "'%s': status %d, want %d (%s)", spec, st, status, msg);
  ck_assert_ptr_null(s);
  ck_assert_msg(strstr(msg, needle) != NULL, "'%s': message '%s' lacks '%s'", spec, msg, needle);
  double f = 42;
  ck_assert_int_eq(optim_schedule_eval(spec, 0, &f), status);
  ck_assert(f == 42); /* untouched on error */
}

START_TEST(test_parse_errors)
{
  parse_fails("", OPTIM_EINVAL, "empty schedule kind");
  parse_fails("poly:total=10", OPTIM_EUNKNOWN, "unknown schedule kind 'poly'");
  parse_fails("Cosine:total=10", OPTIM_EUNKNOWN, "'Cosine'");
  parse_fails("cosine:total=10,eta_min=0.1", OPTIM_EUNKNOWN, "cosine has no key 'eta_min'");
  parse_fails("constant:total=3", OPTIM_EUNKNOWN, "constant has no key 'total'");
  parse_fails("cosine", OPTIM_EINVAL, "cosine needs total=");
  parse_fails("cosine:min=0.1", OPTIM_EINVAL, "needs total=");
  parse_fails("linear:start=1", OPTIM_EINVAL, "needs total=");
  parse_fails("step:gamma=0.5", OPTIM_EINVAL, "needs size=");
  parse_fails("exponential", OPTIM_EINVAL, "needs gamma=");
  parse_fails("warmup_cosine:total=10", OPTIM_EINVAL, "needs warmup=");
  parse_fails("step:size=-2", OPTIM_ERANGE, "size = -2");
  parse_fails("step:size=0", OPTIM_ERANGE, "size = 0");
  parse_fails("exponential:gamma=-0.5", OPTIM_ERANGE, "gamma = -0.5 must not be negative");
  parse_fails("linear:total=10,end=-1", OPTIM_ERANGE, "end = -1");
  parse_fails("warmup_linear:warmup=-1,total=10", OPTIM_ERANGE, "warmup = -1");
  parse_fails("cosine:total=10,min=1.5", OPTIM_ERANGE, "min = 1.5 is outside [0, 1]");
  parse_fails("cosine:total=10,min=nan", OPTIM_ERANGE, "finite");
  parse_fails("cosine:total=1e3", OPTIM_EINVAL, "'1e3' is not an integer");
  parse_fails("cosine:total=99999999999999999999", OPTIM_ERANGE, "total");
  parse_fails("cosine:total=ten", OPTIM_EINVAL, "not an integer");
  parse_fails("cosine:total=10,min=low", OPTIM_EINVAL, "'low' is not a number");
  parse_fails("cosine:total=10,min=", OPTIM_EINVAL, "min: empty value");
  parse_fails("cosine:total=10,total=20", OPTIM_EINVAL, "total given twice");
  parse_fails("cosine:total=10,", OPTIM_EINVAL, "empty KEY=VALUE");
  parse_fails("cosine:total", OPTIM_EINVAL, "'total' is not KEY=VALUE");
  parse_fails("warmup_cosine:warmup=5,total=50,min=0.1", OPTIM_EINVAL, "form=hf");
  /* growing schedules: finite while they fit a double, then refused (the
   * fuzzer found optim_schedule_eval returning OK with inf;
   * tests/fuzz/regressions/spec) */
  double g = 42;
  ck_assert_int_eq(optim_schedule_eval("step:size=3,gamma=22", 660, &g), OPTIM_OK);
  ck_assert(isfinite(g) && g > 1e290); /* 22^220 */
  g = 42;
  ck_assert_int_eq(optim_schedule_eval("step:size=3,gamma=22", 1850, &g), OPTIM_ERANGE);
  ck_assert(g == 42);
  ck_assert_int_eq(optim_schedule_eval("exponential:gamma=2", 1024, &g), OPTIM_ERANGE);
  ck_assert(g == 42);
  parse_fails("warmup_cosine:warmup=5,total=50,form=hf,start=0.1", OPTIM_EINVAL, "min and start must be 0");
  parse_fails("warmup_linear:warmup=5,total=50,start=0.5", OPTIM_EINVAL, "form=hf");
  parse_fails("warmup_cosine:warmup=5,total=50,form=torch,cycles=2", OPTIM_EINVAL, "cycles is for form=hf");
  parse_fails("warmup_cosine:warmup=5,total=50,form=keras", OPTIM_EINVAL, "'keras' is not one of hf|torch");
  parse_fails("warmup_cosine:warmup=60,total=50", OPTIM_ERANGE, "warmup = 60 exceeds total = 50");
  parse_fails("warmup_linear:warmup=50,total=50,form=torch", OPTIM_ERANGE, "warmup < total");
  parse_fails("warmup_linear:warmup=5,total=50,form=torch,start=2", OPTIM_ERANGE, "start = 2");
  parse_fails("wsd:warmup=5,total=50", OPTIM_EINVAL, "exactly one of decay");
  parse_fails("wsd:warmup=5,total=50,decay=5,decay_fraction=0.1", OPTIM_EINVAL, "exactly one");
  parse_fails("wsd:warmup=30,total=50,decay=30", OPTIM_ERANGE, "plus decay = 30 exceeds total");
  parse_fails("wsd:warmup=5,total=50,decay_fraction=1.5", OPTIM_ERANGE, "decay_fraction");
  parse_fails("wsd:warmup=5,total=50,decay=5,shape=exp", OPTIM_EINVAL, "linear|cosine|sqrt");
  /* NULL and small buffers */
  optim_sched *s;
  char small[8];
  ck_assert_int_eq(optim__sched_parse(NULL, &s, small, sizeof small), OPTIM_EINVAL);
  ck_assert_ptr_null(s);
  ck_assert_int_eq(optim__sched_parse("cosine", &s, small, sizeof small), OPTIM_EINVAL);
  ck_assert_uint_eq(strlen(small), sizeof small - 1);
  ck_assert_int_eq(optim__sched_parse("cosine", &s, NULL, 0), OPTIM_EINVAL);
  ck_assert_int_eq(optim__sched_parse("cosine", NULL, NULL, 0), OPTIM_EINVAL);
  double f;
  ck_assert_int_eq(optim_schedule_eval(NULL, 0, &f), OPTIM_EINVAL);
  ck_assert_int_eq(optim_schedule_eval("constant", 0, NULL), OPTIM_EINVAL);
  ck_assert_int_eq(optim_schedule_eval("constant", -1, &f), OPTIM_ERANGE);
  char big[2048];
  memset(big, ' ', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  memcpy(big, "constant", 8);
  ck_assert_int_eq(optim_schedule_eval(big, 0, &f), OPTIM_EINVAL);
}
END_TEST

/* ---- canonical specs ----------------------------------------------------------------------------- */

static void canonical_is(const char *spec, const char *want)
{
  optim_sched *s = NULL, *again = NULL;
  char msg[256];
  ck_assert_msg(optim__sched_parse(spec, &s, msg, sizeof msg) == OPTIM_OK, "%s: %s", spec, msg);
  const char *canon = optim__sched_spec(s);
  ck_assert_ptr_nonnull(canon);
  if (want) ck_assert_str_eq(canon, want);
  ck_assert_ptr_null(optim__sched_values(s, NULL));
  /* round trip: the same text, the same factors */
  ck_assert_int_eq(optim__sched_parse(canon, &again, msg, sizeof msg), OPTIM_OK);
  ck_assert_str_eq(optim__sched_spec(again), canon);
  for (int64_t t = 0; t < 500; t += 13)
    ck_assert(optim__sched_factor(s, t) == optim__sched_factor(again, t));
  double f;
  ck_assert_int_eq(optim_schedule_eval(canon, 77, &f), OPTIM_OK);
  ck_assert(f == optim__sched_factor(s, 77));
  optim__sched_free(again);
  optim__sched_free(s);
}

START_TEST(test_canonical)
{
  canonical_is("constant", "constant");
  canonical_is("constant:", "constant");
  canonical_is("step:size=3", "step:size=3,gamma=0.1");
  canonical_is("exponential:gamma=0.95", "exponential:gamma=0.95");
  canonical_is("linear:total=10", "linear:total=10,start=1,end=0");
  canonical_is("linear:end=0.1,start=0.3333333333333333,total=5",
               "linear:total=5,start=0.3333333333333333,end=0.1");
  canonical_is("cosine:min=1e-3,total=1000", "cosine:total=1000,min=0.001");
  canonical_is("warmup_cosine:warmup=5,total=40",
               "warmup_cosine:warmup=5,total=40,form=hf,cycles=0.5,min=0,start=0");
  canonical_is("warmup_cosine:warmup=5,total=40,form=torch",
               "warmup_cosine:warmup=5,total=40,form=torch,cycles=0.5,min=0,"
               "start=0.3333333333333333");
  canonical_is("warmup_linear:total=40,warmup=5", "warmup_linear:warmup=5,total=40,form=hf,start=0");
  canonical_is("warmup_linear:total=40,warmup=5,form=torch,start=0.1",
               "warmup_linear:warmup=5,total=40,form=torch,start=0.1");
  canonical_is("wsd:warmup=10,total=1000,decay_fraction=0.1",
               "wsd:warmup=10,total=1000,decay=100,shape=linear,min=0");
  canonical_is("wsd:warmup=0,total=10,decay=3,shape=sqrt,min=0.01",
               "wsd:warmup=0,total=10,decay=3,shape=sqrt,min=0.01");
  /* doubles keep every bit */
  canonical_is("exponential:gamma=0.1234567890123456789", NULL);
  canonical_is("cosine:total=9223372036854775807,min=4.9406564584124654e-324", NULL);
}
END_TEST

/* Numbers are read and written with a decimal point under any LC_NUMERIC
 * (the canonical text uses commas between keys). */
START_TEST(test_locale)
{
  const char *names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "ru_RU.UTF-8"};
  int found = 0;
  for (int i = 0; i < 4 && !found; i++) found = setlocale(LC_NUMERIC, names[i]) != NULL;
  if (!found || localeconv()->decimal_point[0] != ',') {
    setlocale(LC_NUMERIC, "C");
    printf("schedule: no decimal-comma locale installed: locale test skipped\n");
    return;
  }
  CHECK_AT("cosine:total=100,min=0.1", 50, 0.55);
  canonical_is("cosine:total=100,min=0.25", "cosine:total=100,min=0.25");
  ck_assert_int_eq(optim_schedule_eval("cosine:total=100,min=0,25", 0, &(double){0}),
                   OPTIM_EINVAL);
  ck_assert_int_eq(localeconv()->decimal_point[0], ','); /* restored */
  setlocale(LC_NUMERIC, "C");
}
END_TEST

/* ---- tables ------------------------------------------------------------------------------------------ */

START_TEST(test_table)
{
  double f[4] = {0.25, 1.0, 0.5, 0.125};
  optim_sched *s = optim__sched_table(f, 4);
  ck_assert_ptr_nonnull(s);
  f[0] = 99; /* copied */
  ck_assert(optim__sched_factor(s, 0) == 0.25);
  ck_assert(optim__sched_factor(s, -5) == 0.25);
  ck_assert(optim__sched_factor(s, 2) == 0.5);
  ck_assert(optim__sched_factor(s, 3) == 0.125);
  ck_assert(optim__sched_factor(s, 4) == 0.125);
  ck_assert(optim__sched_factor(s, 1000000) == 0.125);
  ck_assert_ptr_null(optim__sched_spec(s));
  int64_t n = -1;
  const double *v = optim__sched_values(s, &n);
  ck_assert_int_eq(n, 4);
  ck_assert(v[0] == 0.25 && v[3] == 0.125);
  optim__sched_free(s);
  ck_assert_ptr_null(optim__sched_table(f, 0));
  ck_assert_ptr_null(optim__sched_table(NULL, 3));
  optim__sched_free(NULL);
  ck_assert_ptr_null(optim__sched_spec(NULL));
}
END_TEST

/* ---- the refined schedule ------------------------------------------------------------------------------- */

static double max_of(const double *x, int64_t n, int64_t *at)
{
  double m = -INFINITY;
  for (int64_t i = 0; i < n; i++)
    if (x[i] > m) m = x[i], *at = i;
  return m;
}

START_TEST(test_refined_constant_is_linear)
{
  const double values[] = {1.0, 2.5, 0.7, 1e-150, 3e140};
  const int64_t steps[] = {2, 3, 10, 1000, 10000, 25000};
  double g[777];
  for (int v = 0; v < 5; v++)
    for (int norm = 1; norm <= 2; norm++)
      for (int k = 0; k < 6; k++) {
        int64_t n = steps[k], at = -1;
        int count = k % 2 ? 777 : 1;
        for (int i = 0; i < count; i++) g[i] = values[v];
        double *f = malloc((size_t)n * sizeof *f);
        ck_assert_int_eq(optim_schedule_refined(g, count, norm, n, f), OPTIM_OK);
        ck_assert(max_of(f, n, &at) == 1.0);
        ck_assert_int_eq(at, 0);
        ck_assert(f[n - 1] == 0.0);
        for (int64_t i = 0; i < n; i++)
          ck_assert_msg(fabs(f[i] - (1.0 - (double)i / (double)(n - 1))) <= 1e-12,
                        "G=%g norm %d steps %lld: f[%lld] = %.17g", values[v], norm,
                        (long long)n, (long long)i, f[i]);
        free(f);
      }
}
END_TEST

START_TEST(test_refined_shapes)
{
  /* Norms that start large and fall (15 -> 1 over the first 10%, the shape
   * of the authors' synthetic example): the schedule warms up, from well
   * below its peak, reached after the fall, then decays to 0. */
  enum { N = 5000, S = 400 };
  double *g = malloc(N * sizeof *g), *f = malloc(S * sizeof *f);
  for (int i = 0; i < N; i++) {
    double x = (double)i / (N - 1);
    g[i] = x < 0.1 ? 15 - 140 * x : 1;
  }
  int64_t at = -1;
  for (int norm = 1; norm <= 2; norm++) {
    ck_assert_int_eq(optim_schedule_refined(g, N, norm, S, f), OPTIM_OK);
    ck_assert(max_of(f, S, &at) == 1.0);
    ck_assert(f[S - 1] == 0.0);
    ck_assert_msg(f[0] < 0.2, "norm %d: f[0] = %g, no warm-up", norm, f[0]);
    ck_assert_msg(at > S / 20 && at < S / 2, "norm %d: peak at %lld", norm, (long long)at);
    for (int i = 1; i <= at; i++) ck_assert(f[i] >= f[i - 1]); /* rises to the peak */
    for (int i = (int)at + 1; i < S; i++) ck_assert(f[i] <= f[i - 1]); /* then falls */
  }
  /* Norms that rise: no warm-up (peak at 0) and, with weights falling, the
   * decay is front-loaded: below the linear decay everywhere inside. */
  for (int i = 0; i < N; i++) g[i] = 1 + 3.0 * i / (N - 1);
  ck_assert_int_eq(optim_schedule_refined(g, N, 2, S, f), OPTIM_OK);
  ck_assert(max_of(f, S, &at) == 1.0);
  ck_assert_int_eq(at, 0);
  for (int i = 1; i < S - 1; i++) {
    ck_assert(f[i] < f[i - 1]);
    ck_assert(f[i] < 1.0 - (double)i / (S - 1));
  }
  /* The median filter ignores a short spike: 1% of the run at 100x. */
  for (int i = 0; i < N; i++) g[i] = i >= 2000 && i < 2050 ? 100 : 2;
  ck_assert_int_eq(optim_schedule_refined(g, N, 2, S, f), OPTIM_OK);
  for (int i = 0; i < S; i++) ck_assert(fabs(f[i] - (1.0 - (double)i / (S - 1))) <= 1e-12);
  /* Bad input */
  ck_assert_int_eq(optim_schedule_refined(NULL, N, 2, S, f), OPTIM_EINVAL);
  ck_assert_int_eq(optim_schedule_refined(g, N, 2, S, NULL), OPTIM_EINVAL);
  ck_assert_int_eq(optim_schedule_refined(g, 0, 2, S, f), OPTIM_ERANGE);
  ck_assert_int_eq(optim_schedule_refined(g, N, 3, S, f), OPTIM_ERANGE);
  ck_assert_int_eq(optim_schedule_refined(g, N, 0, S, f), OPTIM_ERANGE);
  ck_assert_int_eq(optim_schedule_refined(g, N, 2, 1, f), OPTIM_ERANGE);
  f[0] = 42;
  g[17] = 0;
  ck_assert_int_eq(optim_schedule_refined(g, N, 2, S, f), OPTIM_ERANGE);
  g[17] = -1;
  ck_assert_int_eq(optim_schedule_refined(g, N, 2, S, f), OPTIM_ERANGE);
  g[17] = NAN;
  ck_assert_int_eq(optim_schedule_refined(g, N, 2, S, f), OPTIM_ENONFINITE);
  g[17] = INFINITY;
  ck_assert_int_eq(optim_schedule_refined(g, N, 2, S, f), OPTIM_ENONFINITE);
  /* weights spanning more than the double range */
  g[17] = 1e-200;
  g[18] = 1e200;
  ck_assert_int_eq(optim_schedule_refined(g, N, 2, S, f), OPTIM_ERANGE);
  ck_assert(f[0] == 42); /* untouched on error */
  free(g);
  free(f);
}
END_TEST

/* ---- the Step Law ------------------------------------------------------------------------------------------ */

START_TEST(test_step_law)
{
  double lr, b;
  /* N = 1e8, D = 1e10: lr = 1.79 * 10^(-0.713*8 + 0.307*10) = 1.79 * 10^-2.634,
   * B = 0.58 * 10^(0.571*10) = 0.58 * 10^5.71 (values to 16 digits from a
   * 40-digit decimal evaluation). */
  ck_assert_int_eq(optim_step_law(1e8, 1e10, &lr, &b), OPTIM_OK);
  ck_assert_msg(close12(lr, 1.79 * pow(10, -2.634)), "lr %.17g", lr);
  ck_assert_msg(close12(lr, 0.004157698865479221), "lr %.17g", lr);
  ck_assert_msg(close12(b, 297459.6027149916), "B %.17g", b);
  /* N = 7e9, D = 2e12 */
  ck_assert_int_eq(optim_step_law(7e9, 2e12, &lr, &b), OPTIM_OK);
  ck_assert_msg(close12(lr, 0.001022620129234217), "lr %.17g", lr);
  ck_assert_msg(close12(b, 6127962.812042688), "B %.17g", b);
  /* either output may be NULL */
  lr = b = 0;
  ck_assert_int_eq(optim_step_law(1e8, 1e10, NULL, &b), OPTIM_OK);
  ck_assert(b > 0);
  ck_assert_int_eq(optim_step_law(1e8, 1e10, &lr, NULL), OPTIM_OK);
  ck_assert(lr > 0);
  ck_assert_int_eq(optim_step_law(0, 1e10, &lr, &b), OPTIM_ERANGE);
  ck_assert_int_eq(optim_step_law(1e8, -1, &lr, &b), OPTIM_ERANGE);
  ck_assert_int_eq(optim_step_law(NAN, 1e10, &lr, &b), OPTIM_ENONFINITE);
  ck_assert_int_eq(optim_step_law(1e8, INFINITY, &lr, &b), OPTIM_ENONFINITE);
}
END_TEST

/* ---- golden values ------------------------------------------------------------------------------------------- */

/* Append the numbers after the first word of line to *v (growing it). */
static void read_numbers(const char *line, double **v, int64_t *n, int64_t *cap)
{
  const char *p = strchr(line, ' ');
  while (p && *p) {
    char *end;
    double x = strtod(p, &end);
    if (end == p) break;
    if (*n == *cap) {
      *cap = *cap ? 2 * *cap : 1024;
      *v = realloc(*v, (size_t)*cap * sizeof **v);
      ck_assert_ptr_nonnull(*v);
    }
    (*v)[(*n)++] = x;
    p = end;
  }
}

START_TEST(test_golden)
{
  const char *path = GOLDEN_DIR "/sched.txt";
  FILE *fp = fopen(path, "r");
  ck_assert_msg(fp != NULL, "cannot open %s", path);
  char *line = NULL;
  size_t size = 0;
  int evals = 0, cases = 0, norm = 0;
  int64_t steps = 0, count = 0, ng = 0, nf = 0, capg = 0, capf = 0;
  double *g = NULL, *want = NULL, worst = 0;
  char name[64] = "";
  while (getline(&line, &size, fp) > 0) {
    line[strcspn(line, "\n")] = '\0';
    if (!strncmp(line, "eval ", 5)) {
      char spec[256];
      long long t;
      int off = 0;
      ck_assert_int_eq(sscanf(line + 5, "%255s %lld%n", spec, &t, &off), 2);
      double w = strtod(line + 5 + off, NULL), got = eval(spec, t);
      ck_assert_msg(close12(got, w), "%s at %lld: %.17g, torch/ours %.17g", spec, t, got, w);
      if (w != 0 && fabs(got - w) / fabs(w) > worst) worst = fabs(got - w) / fabs(w);
      evals++;
    } else if (!strncmp(line, "refined ", 8)) {
      long long s, c;
      ck_assert_int_eq(sscanf(line + 8, "%63s %d %lld %lld", name, &norm, &s, &c), 4);
      steps = s;
      count = c;
      ng = nf = 0;
    } else if (!strncmp(line, "gnorms ", 7)) {
      read_numbers(line, &g, &ng, &capg);
    } else if (!strncmp(line, "factors ", 8)) {
      read_numbers(line, &want, &nf, &capf);
    } else if (!strcmp(line, "end")) {
      ck_assert_int_eq(ng, count);
      ck_assert_int_eq(nf, steps);
      double *f = malloc((size_t)steps * sizeof *f);
      ck_assert_int_eq(optim_schedule_refined(g, count, norm, steps, f), OPTIM_OK);
      for (int64_t i = 0; i < steps; i++)
        ck_assert_msg(close12(f[i], want[i]), "refined %s: f[%lld] = %.17g, numpy %.17g", name,
                      (long long)i, f[i], want[i]);
      free(f);
      cases++;
    }
  }
  free(line);
  free(g);
  free(want);
  fclose(fp);
  ck_assert_int_gt(evals, 1000);
  ck_assert_int_eq(cases, 7);
  printf("schedule golden: %d values and %d refined schedules, worst relative difference %.1e\n",
         evals, cases, worst);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("schedule");
  TCase *tc = tcase_create("schedule");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_closed_forms);
  tcase_add_test(tc, test_parse_errors);
  tcase_add_test(tc, test_canonical);
  tcase_add_test(tc, test_locale);
  tcase_add_test(tc, test_table);
  tcase_add_test(tc, test_refined_constant_is_linear);
  tcase_add_test(tc, test_refined_shapes);
  tcase_add_test(tc, test_step_law);
  tcase_add_test(tc, test_golden);
  suite_add_tcase(s, tc);
  return run_suite(s);
}
