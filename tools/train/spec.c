/* spec.c - parse optim-train's --optim strings (see spec.h). */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "spec.h"

/* [b, e) without surrounding spaces */
static void trim(const char **b, const char **e)
{
  while (*b < *e && isspace((unsigned char)**b)) (*b)++;
  while (*e > *b && isspace((unsigned char)(*e)[-1])) (*e)--;
}

static int is_name(const char *b, const char *e)
{
  if (b == e) return 0;
  for (const char *c = b; c < e; c++)
    if (!isalnum((unsigned char)*c) && *c != '_' && *c != '-') return 0;
  return 1;
}

/* One "name=value" item into out (appended with a comma). */
static int item(const char *b, const char *e, spec_group *g, char *err, size_t errlen)
{
  trim(&b, &e);
  const char *eq = memchr(b, '=', (size_t)(e - b));
  if (eq == NULL) {
    snprintf(err, errlen, "'%.*s': expected name=value", (int)(e - b), b);
    return -1;
  }
  const char *nb = b, *ne = eq, *vb = eq + 1, *ve = e;
  trim(&nb, &ne);
  trim(&vb, &ve);
  if (!is_name(nb, ne)) {
    snprintf(err, errlen, "'%.*s': bad hyperparameter name", (int)(e - b), b);
    return -1;
  }
  if (vb == ve || memchr(vb, '=', (size_t)(ve - vb))) {
    snprintf(err, errlen, "'%.*s': bad value", (int)(e - b), b);
    return -1;
  }
  size_t used = strlen(g->options), need = (size_t)(ne - nb) + (size_t)(ve - vb) + 2;
  if (used + need + 1 > sizeof g->options) {
    snprintf(err, errlen, "options of '%s' are too long", g->algorithm);
    return -1;
  }
  snprintf(g->options + used, sizeof g->options - used, "%s%.*s=%.*s", used ? "," : "",
           (int)(ne - nb), nb, (int)(ve - vb), vb);
  return 0;
}

int spec_parse(const char *text, spec_group *out, int max, char *err, size_t errlen)
{
  if (text == NULL) {
    snprintf(err, errlen, "no optimizer given");
    return -1;
  }
  int n = 0;
  const char *p = text;
  for (;;) {
    const char *end = strchr(p, ';');
    if (end == NULL) end = p + strlen(p);
    const char *b = p, *e = end;
    trim(&b, &e);
    if (b == e) {
      snprintf(err, errlen, "empty group in '%s'", text);
      return -1;
    }
    if (n == max) {
      snprintf(err, errlen, "more than %d groups in '%s'", max, text);
      return -1;
    }
    spec_group *g = &out[n];
    memset(g, 0, sizeof *g);
    const char *colon = memchr(b, ':', (size_t)(e - b));
    const char *ab = b, *ae = colon ? colon : e;
    trim(&ab, &ae);
    if (!is_name(ab, ae) || (size_t)(ae - ab) >= sizeof g->algorithm) {
      snprintf(err, errlen, "'%.*s': bad algorithm name", (int)(ae - ab), ab);
      return -1;
    }
    memcpy(g->algorithm, ab, (size_t)(ae - ab));
    if (colon) {
      const char *q = colon + 1;
      for (;;) {
        const char *c = memchr(q, ',', (size_t)(e - q));
        const char *ie = c ? c : e;
        if (item(q, ie, g, err, errlen) != 0) return -1;
        if (!c) break;
        q = c + 1;
      }
    }
    n++;
    if (*end == '\0') break;
    p = end + 1;
  }
  return n;
}
