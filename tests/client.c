/* client.c - a user program built against an installed liboptim with
 * `pkg-config --cflags --libs optim` (tests/pkgconfig.sh). */
#include <optim.h>
#include <stdio.h>

int main(void)
{
  float w[3] = {1.0f, -2.0f, 0.5f}, g[3];
  int64_t shape[1] = {3};
  optim_optimizer *opt;
  int grp, st;
  if ((st = optim_create(&opt)) != OPTIM_OK) return 1;
  if ((st = optim_add_group(opt, "adamw", &grp)) ||
      (st = optim_configure(opt, grp, "lr=0.1,weight_decay=0")) ||
      (st = optim_add_param(opt, grp, "w", OPTIM_FLOAT32, 1, shape, w, g, NULL))) {
    fprintf(stderr, "client: %s\n", optim_errmsg(opt));
    return 1;
  }
  for (int k = 0; k < 200; k++) { /* minimise |w|^2 / 2 */
    for (int i = 0; i < 3; i++) g[i] = w[i];
    if ((st = optim_step(opt)) != OPTIM_OK) {
      fprintf(stderr, "client: %s\n", optim_errmsg(opt));
      return 1;
    }
  }
  printf("liboptim %s: w = %g %g %g\n", optim_version(), w[0], w[1], w[2]);
  optim_destroy(opt);
  for (int i = 0; i < 3; i++)
    if (w[i] > 0.05f || w[i] < -0.05f) return 1;
  return 0;
}
