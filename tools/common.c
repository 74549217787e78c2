/* common.c - see common.h. */
#define _POSIX_C_SOURCE 200809L
#include "common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int tool_parse_int(const char *s, const char *what, int64_t lo, int64_t hi, int64_t *out,
                   char *msg, size_t size)
{
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || *end != '\0' || v < lo || v > hi) {
    snprintf(msg, size, "invalid %s '%s' (expected an integer in [%lld, %lld])", what, s,
             (long long)lo, (long long)hi);
    return -1;
  }
  *out = v;
  return 0;
}

int gnuplot_available(void)
{
  const char *path = getenv("PATH");
  if (!path) return 0;
  char buf[4096];
  for (const char *p = path; *p;) {
    const char *c = strchr(p, ':');
    size_t n = c ? (size_t)(c - p) : strlen(p);
    snprintf(buf, sizeof buf, "%.*s/gnuplot", (int)n, p);
    if (access(buf, X_OK) == 0) return 1;
    if (!c) break;
    p = c + 1;
  }
  return 0;
}

void gnuplot_quote(FILE *g, const char *s)
{
  fputc('\'', g);
  for (; *s; s++) {
    if (*s == '\'') fputc('\'', g);
    fputc(*s, g);
  }
  fputc('\'', g);
}
