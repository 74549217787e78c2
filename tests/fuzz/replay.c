/* replay.c - runs a fuzz harness's LLVMFuzzerTestOneInput on files, without
 * libFuzzer: make check replays the committed seed corpus and every input
 * that once crashed (tests/fuzz/regressions/), built with the normal
 * compiler.  Arguments are files or directories (their regular files, in
 * name order); without arguments, the directories compiled in as
 * REPLAY_DIRS (colon-separated: the harness's corpus and its regressions,
 * which may not exist yet).  Exit 0 when at least one input ran and every
 * one returned; a failed assertion in the harness aborts. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "replay: cannot open %s\n", path);
    return -1;
  }
  size_t cap = 4096, n = 0;
  uint8_t *buf = malloc(cap);
  size_t got;
  while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) {
      uint8_t *b2 = realloc(buf, cap *= 2);
      if (!b2) free(buf);
      buf = b2;
    }
  }
  fclose(f);
  if (!buf) return -1;
  LLVMFuzzerTestOneInput(buf, n);
  free(buf);
  return 0;
}

static int cmp(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
  int count = 0, deflt = argc < 2;
  char *dirs[8];
  if (deflt) { /* the compiled-in directories */
    static char list[] = REPLAY_DIRS;
    argc = 1;
    for (char *t = strtok(list, ":"); t && argc < 8; t = strtok(NULL, ":")) dirs[argc++] = t;
    argv = dirs;
  }
  for (int i = 1; i < argc; i++) {
    struct stat sb;
    if (stat(argv[i], &sb) != 0) {
      if (deflt) continue; /* no regressions (yet) */
      fprintf(stderr, "replay: %s: no such file or directory\n", argv[i]);
      return 1;
    }
    if (!S_ISDIR(sb.st_mode)) {
      if (run_file(argv[i])) return 1;
      count++;
      continue;
    }
    DIR *dir = opendir(argv[i]);
    if (!dir) return 1;
    char **names = NULL;
    size_t nn = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
      if (e->d_name[0] == '.') continue;
      char **n2 = realloc(names, (nn + 1) * sizeof *names);
      if (!n2) return 1;
      names = n2;
      size_t len = strlen(argv[i]) + strlen(e->d_name) + 2;
      names[nn] = malloc(len);
      if (!names[nn]) return 1;
      snprintf(names[nn++], len, "%s/%s", argv[i], e->d_name);
    }
    closedir(dir);
    qsort(names, nn, sizeof *names, cmp);
    for (size_t k = 0; k < nn; k++) {
      if (run_file(names[k])) return 1;
      count++;
      free(names[k]);
    }
    free(names);
  }
  printf("replay: %d inputs\n", count);
  return count > 0 ? 0 : 1;
}
