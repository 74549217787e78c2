/* spec.h - optim-train's optimizer specification strings:
 *
 *   SPEC   := GROUP [';' GROUP]...
 *   GROUP  := ALGORITHM [':' NAME '=' VALUE [',' NAME '=' VALUE]...]
 *
 * e.g. "adamw", "adamw:lr=1e-3,weight_decay=0.01" or
 * "muon:lr=0.02;adamw:lr=3e-4".  Spaces around the separators are
 * ignored.  Parsing checks the syntax only; the algorithms and their
 * hyperparameters are checked by liboptim when the groups are created. */
#ifndef OPTIM_TRAIN_SPEC_H
#define OPTIM_TRAIN_SPEC_H

#include <stddef.h>

#define SPEC_MAX_GROUPS 8
#define SPEC_MAX_TEXT 512

typedef struct spec_group {
  char algorithm[64];
  char options[SPEC_MAX_TEXT]; /* "name=value,..." for optim_configure, or "" */
} spec_group;

/* Parse text into at most max groups; returns the number of groups (>= 1)
 * or -1 with a message in err. */
int spec_parse(const char *text, spec_group *out, int max, char *err, size_t errlen);

#endif
