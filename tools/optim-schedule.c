/* optim-schedule - print (and plot) a learning-rate schedule as CSV: one
 * given by a spec string, or the refined schedule computed from a logged
 * series of gradient norms.  See optim-schedule(1).
 *
 * lib/schedule.c is compiled in: the tool reports parse errors with the
 * library's own messages (the internal parser's), which the public
 * optim_schedule_eval does not return. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "optim.h"
#include "schedule.h"

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };
#define MAX_STEPS ((int64_t)1 << 40)

typedef struct options {
  const char *spec, *refined, *plot;
  int64_t steps;
  int column, norm, have_lr;
  double lr;
} options;

static void complain(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fputs("optim-schedule: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static void usage(FILE *f)
{
  fprintf(f,
          "Usage: optim-schedule --spec SPEC --steps N [OPTION]...\n"
          "  or:  optim-schedule --refined FILE --steps N [OPTION]...\n"
          "Print a learning-rate schedule as CSV (step,factor[,lr]), one row per step\n"
          "t = 0 .. N-1 (t counts the steps applied before).\n\n"
          "  -s, --spec SPEC          the schedule, \"kind\" or \"kind:key=value,...\": constant,\n"
          "                           step, exponential, linear, cosine, warmup_cosine,\n"
          "                           warmup_linear, wsd (see optim_schedule_eval(3))\n"
          "  -r, --refined FILE       instead, the refined schedule (max 1, last 0) from the\n"
          "                           gradient norms of a CSV file (- for standard input)\n"
          "  -c, --column N           the CSV column (1-based) holding the norms (default 1)\n"
          "      --norm 1|2           the norm the column holds: 2 (default; weights G^-2)\n"
          "                           or 1 (weights G^-1)\n"
          "  -n, --steps N            number of steps (at least 2 with --refined)\n"
          "      --lr BASE            add a column lr = BASE * factor\n"
          "      --plot FILE.png      also draw the schedule with gnuplot\n"
          "  -h, --help               show this help and exit\n"
          "  -V, --version            show the version and exit\n\n"
          "Exit status: 0 on success, 1 on a runtime error (unreadable or bad input\n"
          "file, gnuplot missing or failing), 2 on a usage error (options, spec).\n");
}

/* The shortest text that reads back as v. */
static void shortest(double v, char *buf, size_t size)
{
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, size, "%.*g", prec, v);
    if (strtod(buf, NULL) == v) return;
  }
}

static void row(FILE *f, int64_t t, double factor, const options *o)
{
  char a[32], b[32];
  shortest(factor, a, sizeof a);
  if (o->have_lr) {
    shortest(o->lr * factor, b, sizeof b);
    fprintf(f, "%lld,%s,%s\n", (long long)t, a, b);
  } else {
    fprintf(f, "%lld,%s\n", (long long)t, a);
  }
}

/* ---- reading gradient norms ----------------------------------------------------------- */

typedef struct series {
  double *v;
  int64_t n, cap, skipped;
} series;

/* Field number col (1-based) of a CSV line, white space and double quotes
 * around it removed; NULL when the line has fewer fields. */
static char *field(char *line, int col)
{
  char *p = line;
  for (int k = 1; k < col; k++) {
    p = strchr(p, ',');
    if (!p) return NULL;
    p++;
  }
  char *e = p + strcspn(p, ",\r\n");
  while (p < e && (*p == ' ' || *p == '\t')) p++;
  while (e > p && (e[-1] == ' ' || e[-1] == '\t')) e--;
  if (e - p >= 2 && *p == '"' && e[-1] == '"') p++, e--;
  *e = '\0';
  return p;
}

/* Read column col of a CSV file: a first line whose field is not a number
 * is a header; empty lines and lines starting with '#' are skipped, and so
 * are non-finite values (counted), as the authors' code drops them. */
static int read_norms(const char *path, int col, series *s)
{
  FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
  if (!f) {
    complain("cannot read %s: %s", path, strerror(errno));
    return EXIT_RUNTIME;
  }
  char *line = NULL;
  size_t size = 0;
  int64_t lineno = 0;
  int st = 0, data = 0;
  while (st == 0 && getline(&line, &size, f) > 0) {
    lineno++;
    if (line[0] == '#' || line[strspn(line, " \t\r\n")] == '\0') continue;
    char *text = field(line, col);
    if (!text) {
      complain("%s:%lld: no column %d", path, (long long)lineno, col);
      st = EXIT_RUNTIME;
      break;
    }
    char *end;
    double v = strtod(text, &end);
    if (end == text || *end != '\0') {
      if (!data++) continue; /* a header */
      complain("%s:%lld: column %d is not a number: '%s'", path, (long long)lineno, col, text);
      st = EXIT_RUNTIME;
      break;
    }
    data++;
    if (!isfinite(v)) {
      s->skipped++;
      continue;
    }
    if (!(v > 0)) {
      complain("%s:%lld: gradient norm %s is not positive", path, (long long)lineno, text);
      st = EXIT_RUNTIME;
      break;
    }
    if (s->n == s->cap) {
      s->cap = s->cap ? 2 * s->cap : 4096;
      double *nv = realloc(s->v, (size_t)s->cap * sizeof *nv);
      if (!nv) {
        complain("out of memory reading %s", path);
        st = EXIT_RUNTIME;
        break;
      }
      s->v = nv;
    }
    s->v[s->n++] = v;
  }
  if (st == 0 && ferror(f)) {
    complain("error reading %s: %s", path, strerror(errno));
    st = EXIT_RUNTIME;
  }
  free(line);
  if (f != stdin) fclose(f);
  if (st == 0 && s->n == 0) {
    complain("%s: no gradient norms in column %d", path, col);
    st = EXIT_RUNTIME;
  }
  if (st == 0 && s->skipped)
    complain("%s: skipped %lld non-finite values", path, (long long)s->skipped);
  return st;
}

/* ---- plotting --------------------------------------------------------------------------- */

/* Draw the factors (or lr) against the step, with the input norms above
 * them for a refined schedule. */
static int plot(const options *o, const optim_sched *s, const double *f, const series *g)
{
  FILE *p = popen("gnuplot", "w");
  if (!p) return -1;
  fputs("set terminal pngcairo size 900,", p);
  fputs(g ? "700\n" : "450\n", p);
  fputs("set output ", p);
  gnuplot_quote(p, o->plot);
  fputs("\nset grid\nset key off\nset datafile separator ','\n", p);
  if (g) {
    fputs("set multiplot layout 2,1\nset title ", p);
    char title[1200];
    snprintf(title, sizeof title, "gradient norms (l%d) from %s", o->norm, o->refined);
    gnuplot_quote(p, title);
    fputs("\nset xlabel 'logged step'\nset ylabel 'norm'\nplot '-' using 1:2 with lines\n", p);
    for (int64_t i = 0; i < g->n; i++) fprintf(p, "%lld,%.17g\n", (long long)i, g->v[i]);
    fputs("e\nset title 'refined schedule'\n", p);
  } else {
    fputs("set title ", p);
    gnuplot_quote(p, optim__sched_spec(s));
    fputc('\n', p);
  }
  fprintf(p, "set xlabel 'step'\nset ylabel '%s'\nplot '-' using 1:%d with lines lw 2\n",
          o->have_lr ? "lr" : "factor", o->have_lr ? 3 : 2);
  for (int64_t t = 0; t < o->steps; t++) row(p, t, f ? f[t] : optim__sched_factor(s, t), o);
  fputs("e\n", p);
  if (g) fputs("unset multiplot\n", p);
  return pclose(p) == 0 ? 0 : -1;
}

/* ---- main ----------------------------------------------------------------------------------- */

static int parse_args(int argc, char **argv, options *o)
{
  enum { O_NORM = 256, O_LR, O_PLOT };
  static const struct option longopts[] = {
    {"spec", required_argument, 0, 's'},   {"refined", required_argument, 0, 'r'},
    {"column", required_argument, 0, 'c'}, {"norm", required_argument, 0, O_NORM},
    {"steps", required_argument, 0, 'n'},  {"lr", required_argument, 0, O_LR},
    {"plot", required_argument, 0, O_PLOT}, {"help", no_argument, 0, 'h'},
    {"version", no_argument, 0, 'V'},      {0, 0, 0, 0}};
  int c;
  int64_t v;
  char msg[256];
  o->column = 1;
  o->norm = 2;
  while ((c = getopt_long(argc, argv, "s:r:c:n:hV", longopts, NULL)) != -1) {
    switch (c) {
    case 's': o->spec = optarg; break;
    case 'r': o->refined = optarg; break;
    case 'c':
      if (tool_parse_int(optarg, "--column", 1, 100000, &v, msg, sizeof msg)) {
        complain("%s", msg);
        return EXIT_USAGE;
      }
      o->column = (int)v;
      break;
    case O_NORM:
      if (strcmp(optarg, "1") && strcmp(optarg, "2")) {
        complain("invalid --norm '%s' (1 or 2)", optarg);
        return EXIT_USAGE;
      }
      o->norm = optarg[0] - '0';
      break;
    case 'n':
      if (tool_parse_int(optarg, "--steps", 1, MAX_STEPS, &o->steps, msg, sizeof msg)) {
        complain("%s", msg);
        return EXIT_USAGE;
      }
      break;
    case O_LR: {
      char *end;
      o->lr = strtod(optarg, &end);
      if (end == optarg || *end || !isfinite(o->lr) || !(o->lr > 0)) {
        complain("invalid --lr '%s' (expected a positive number)", optarg);
        return EXIT_USAGE;
      }
      o->have_lr = 1;
      break;
    }
    case O_PLOT: o->plot = optarg; break;
    case 'h': usage(stdout); return -1;
    case 'V': printf("optim-schedule (liboptim) %s\n", OPTIM_VERSION_STRING); return -1;
    default: fputs("Try 'optim-schedule --help' for more information.\n", stderr); return EXIT_USAGE;
    }
  }
  if (optind < argc) {
    complain("unexpected argument '%s'", argv[optind]);
    return EXIT_USAGE;
  }
  if (!o->spec == !o->refined) {
    complain("give exactly one of --spec SPEC and --refined FILE");
    return EXIT_USAGE;
  }
  if (!o->steps) {
    complain("--steps N is required");
    return EXIT_USAGE;
  }
  if (o->refined && o->steps < 2) {
    complain("--steps must be at least 2 with --refined (the schedule ends at 0)");
    return EXIT_USAGE;
  }
  return 0;
}

int main(int argc, char **argv)
{
  options o = {0};
  int st = parse_args(argc, argv, &o);
  if (st) return st < 0 ? 0 : st;
  optim_sched *s = NULL;
  if (o.spec) {
    char msg[512];
    if (optim__sched_parse(o.spec, &s, msg, sizeof msg)) {
      complain("invalid schedule '%s': %s", o.spec, msg);
      return EXIT_USAGE;
    }
  }
  if (o.plot && !gnuplot_available()) {
    complain("--plot needs gnuplot, which is not installed (apt-get install gnuplot-nox)");
    optim__sched_free(s);
    return EXIT_RUNTIME;
  }
  series g = {0};
  double *f = NULL;
  if (o.refined) {
    st = read_norms(o.refined, o.column, &g);
    if (st == 0 && !(f = malloc((size_t)o.steps * sizeof *f))) {
      complain("out of memory for %lld steps", (long long)o.steps);
      st = EXIT_RUNTIME;
    }
    if (st == 0) {
      int rc = optim_schedule_refined(g.v, g.n, o.norm, o.steps, f);
      if (rc) {
        complain("cannot refine the norms of %s: %s", o.refined,
                 rc == OPTIM_ERANGE ? "they span too wide a range (weights overflow)"
                                    : rc == OPTIM_ENOMEM ? "out of memory" : "invalid input");
        st = EXIT_RUNTIME;
      }
    }
  }
  if (st == 0) {
    fputs(o.have_lr ? "step,factor,lr\n" : "step,factor\n", stdout);
    for (int64_t t = 0; t < o.steps; t++) row(stdout, t, f ? f[t] : optim__sched_factor(s, t), &o);
    if (fflush(stdout) || ferror(stdout)) {
      complain("error writing the output: %s", strerror(errno));
      st = EXIT_RUNTIME;
    }
  }
  if (st == 0 && o.plot) {
    if (plot(&o, s, f, o.refined ? &g : NULL) == 0) {
      fprintf(stderr, "optim-schedule: plot written to %s\n", o.plot);
    } else {
      complain("gnuplot failed to draw %s", o.plot);
      st = EXIT_RUNTIME;
    }
  }
  free(f);
  free(g.v);
  optim__sched_free(s);
  return st;
}
