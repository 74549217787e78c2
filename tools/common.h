/* common.h - what several command-line tools share (optim-train,
 * optim-schedule): integer options, finding gnuplot, quoting text for its
 * scripts. */
#ifndef OPTIM_TOOLS_COMMON_H
#define OPTIM_TOOLS_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Parse s as a decimal integer in [lo, hi] into *out: 0, or -1 with
 * "invalid WHAT 'S' (expected an integer in [LO, HI])" in msg. */
int tool_parse_int(const char *s, const char *what, int64_t lo, int64_t hi, int64_t *out,
                   char *msg, size_t size);

/* Non-zero when an executable gnuplot is on PATH. */
int gnuplot_available(void);

/* Write s to a gnuplot script as a single-quoted string ('' doubles a
 * quote inside). */
void gnuplot_quote(FILE *g, const char *s);

#endif
