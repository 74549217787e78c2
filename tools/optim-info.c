/* optim-info - describe liboptim's algorithms and the BLAS it runs on. */
#include <cblas.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optim.h"

static const char *type_name(int t)
{
  switch (t) {
  case OPTIM_TYPE_DOUBLE: return "double";
  case OPTIM_TYPE_INT: return "int";
  case OPTIM_TYPE_BOOL: return "bool";
  default: return "string";
  }
}

static int show_algorithm(const char *alg)
{
  int n = optim_hparam_count(alg);
  if (n < 0) {
    fprintf(stderr, "optim-info: unknown algorithm '%s' (optim-info --list lists them)\n", alg);
    return 1;
  }
  printf("%s - %s\n", alg, optim_algorithm_doc(alg));
  for (int i = 0; i < n; i++) {
    const char *name, *def, *doc;
    int type;
    optim_hparam_info(alg, i, &name, &type, &def, &doc);
    printf("  %-26s %-6s %-9s %s\n", name, type_name(type), def, doc);
  }
  return 0;
}

/* OpenBLAS cores that use no AVX2 or AVX-512 kernels. */
static int fallback_core(const char *core)
{
  static const char *const slow[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem",
                                     "Atom", "Katmai", "Coppermine", "Northwood", "Banias",
                                     "Opteron", "Barcelona", "Bobcat", "Sandybridge",
                                     "Bulldozer", "Piledriver", "Steamroller", "Excavator",
                                     "generic", "Generic", NULL};
  for (int i = 0; slow[i]; i++)
    if (strcmp(core, slow[i]) == 0) return 1;
  return 0;
}

static void show_blas(void)
{
  const char *core = openblas_get_corename();
  printf("OpenBLAS: %s\n", openblas_get_config());
  printf("OpenBLAS core: %s, threads: %d\n", core, openblas_get_num_threads());
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  int avx512 = __builtin_cpu_supports("avx512f");
  int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  printf("CPU: AVX2+FMA %s, AVX-512F %s\n", avx2 ? "yes" : "no", avx512 ? "yes" : "no");
  fflush(stdout);
  if ((avx2 || avx512) && fallback_core(core))
    fprintf(stderr,
            "optim-info: warning: OpenBLAS runs the fallback core '%s' although this CPU "
            "has %s;\n  its matrix kernels (which BLAS-based optimizers depend on) run several "
            "times slower than they can.\n  Remedy: export OPENBLAS_CORETYPE=%s\n",
            core, avx512 ? "AVX-512" : "AVX2", avx512 ? "SkylakeX" : "Haswell");
#endif
}

static void usage(FILE *f)
{
  fprintf(f,
          "Usage: optim-info [OPTION]...\n"
          "Describe liboptim's algorithms, their hyperparameters and defaults, and the\n"
          "BLAS library it runs on.\n\n"
          "  -a, --algorithm NAME  describe one algorithm\n"
          "  -l, --list            list algorithm names only\n"
          "  -b, --blas            report the BLAS core and threads only\n"
          "  -h, --help            show this help and exit\n"
          "  -V, --version         show the library version and exit\n");
}

int main(int argc, char **argv)
{
  static const struct option opts[] = {
    {"algorithm", required_argument, 0, 'a'}, {"list", no_argument, 0, 'l'},
    {"blas", no_argument, 0, 'b'},           {"help", no_argument, 0, 'h'},
    {"version", no_argument, 0, 'V'},         {0, 0, 0, 0}};
  const char *alg = NULL;
  int list = 0, blas = 0, c;
  while ((c = getopt_long(argc, argv, "a:lbhV", opts, NULL)) != -1) {
    switch (c) {
    case 'a': alg = optarg; break;
    case 'l': list = 1; break;
    case 'b': blas = 1; break;
    case 'h': usage(stdout); return 0;
    case 'V': printf("optim-info (liboptim) %s\n", optim_version()); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "optim-info: unexpected argument '%s'\n", argv[optind]);
    usage(stderr);
    return 2;
  }
  if (alg) return show_algorithm(alg);
  if (list) {
    for (int i = 0; i < optim_algorithm_count(); i++) puts(optim_algorithm_name(i));
    return 0;
  }
  if (blas) {
    show_blas();
    return 0;
  }
  printf("liboptim %s\n", optim_version());
  show_blas();
  printf("\nAlgorithms (name, type, default, description):\n");
  for (int i = 0; i < optim_algorithm_count(); i++) {
    putchar('\n');
    show_algorithm(optim_algorithm_name(i));
  }
  return 0;
}
