/* snapshot.c - the finite-sum interface (adasvrg): optim_snapshot takes a
 * snapshot of the parameters of every finite-sum group, with their full
 * gradient from the caller's callback; optim_param_bind_snapshot_grad binds
 * the buffer the caller fills, before each step, with the minibatch's
 * gradient at the snapshot. */
#include <stdlib.h>
#include <string.h>

#include "optim-internal.h"

int optim_param_bind_snapshot_grad(optim_optimizer *opt, int index, const void *grad)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  if (index < 0 || index >= opt->nparams)
    return optim__fail(opt, OPTIM_EINVAL, "parameter %d does not exist", index);
  optim_param *p = &opt->params[index];
  const optim_group *g = &opt->groups[p->group];
  if (grad && !g->alg->finite_sum)
    return optim__fail(opt, OPTIM_EUNSUPPORTED,
                       "%s: %s takes no gradient at a snapshot (finite-sum methods do: adasvrg)",
                       p->name, g->alg->name);
  size_t bytes = p->numel * optim__dtype_size(p->dtype);
  if (grad && ((const char *)grad < (const char *)p->data + bytes &&
               (const char *)p->data < (const char *)grad + bytes))
    return optim__fail(opt, OPTIM_EINVAL, "%s: the snapshot gradient overlaps the parameter",
                       p->name);
  optim__step_cancel(opt);
  p->aux_grad = grad;
  return OPTIM_OK;
}

int optim_snapshot(optim_optimizer *opt, optim_grad_fn full_grad, void *userdata)
{
  if (!optim__valid(opt)) return OPTIM_EINVAL;
  optim__clear(opt);
  if (full_grad == NULL) return optim__fail(opt, OPTIM_EINVAL, "the full-gradient callback is NULL");
  int n = 0;
  for (int i = 0; i < opt->nparams; i++) {
    const optim_param *p = &opt->params[i];
    if (opt->groups[p->group].alg->finite_sum && !p->frozen) n++;
  }
  if (n == 0)
    return optim__fail(opt, OPTIM_ECONFIG, "no parameter of a finite-sum group (adasvrg) to snapshot");
  int st = OPTIM_OK, nprobe = 0;
  void **full = NULL, **probe = NULL, **pgrad = NULL;
  int *idx = calloc((size_t)n, sizeof *idx), *gidx = calloc((size_t)n, sizeof *gidx);
  void **buf = calloc((size_t)n * 4, sizeof *buf); /* full, probe, probe_grad, points */
  void **gb = calloc((size_t)n * 3, sizeof *gb);   /* one group's full, probe, probe_grad */
  if (!idx || !gidx || !buf || !gb) {
    st = optim__fail(opt, OPTIM_ENOMEM, "out of memory for the snapshot");
    goto out;
  }
  full = buf;
  probe = buf + n;
  pgrad = buf + 2 * (size_t)n;
  const void **points = (const void **)(buf + 3 * (size_t)n);
  n = 0;
  for (int i = 0; i < opt->nparams; i++) {
    optim_param *p = &opt->params[i];
    const optim_group *g = &opt->groups[p->group];
    if (!g->alg->finite_sum || p->frozen) continue;
    size_t bytes = p->numel * optim__dtype_size(p->dtype);
    idx[n] = i;
    full[n] = malloc(bytes ? bytes : 1);
    probe[n] = malloc(bytes ? bytes : 1);
    if (!full[n] || !probe[n]) {
      n++;
      st = optim__fail(opt, OPTIM_ENOMEM, "out of memory for the snapshot");
      goto out;
    }
    if (g->alg->snapshot_probe && g->alg->snapshot_probe(g, p, probe[n])) {
      pgrad[n] = malloc(bytes ? bytes : 1);
      if (!pgrad[n]) {
        n++;
        st = optim__fail(opt, OPTIM_ENOMEM, "out of memory for the snapshot");
        goto out;
      }
      nprobe++;
    } else {
      free(probe[n]);
      probe[n] = NULL;
    }
    points[n] = p->data;
    n++;
  }
  /* the full gradient at the current values; then at the probe points */
  int rc = full_grad(userdata, n, idx, points, full);
  if (rc == 0 && nprobe) {
    int *pidx = calloc((size_t)nprobe, sizeof *pidx);
    const void **pp = calloc((size_t)nprobe, sizeof *pp);
    void **pg = calloc((size_t)nprobe, sizeof *pg);
    if (!pidx || !pp || !pg) {
      free(pidx);
      free(pp);
      free(pg);
      st = optim__fail(opt, OPTIM_ENOMEM, "out of memory for the snapshot");
      goto out;
    }
    int m = 0;
    for (int k = 0; k < n; k++)
      if (probe[k]) {
        pidx[m] = idx[k];
        pp[m] = probe[k];
        pg[m++] = pgrad[k];
      }
    rc = full_grad(userdata, m, pidx, pp, pg);
    free(pidx);
    free(pp);
    free(pg);
  }
  if (rc != 0) {
    st = optim__fail(opt, OPTIM_ECALLBACK,
                     "the full-gradient callback failed (returned %d): nothing was changed", rc);
    goto out;
  }
  for (int k = 0; k < n; k++) {
    const optim_param *p = &opt->params[idx[k]];
    if (optim__nonfinite(p->dtype, full[k], 0, p->numel) ||
        (pgrad[k] && optim__nonfinite(p->dtype, pgrad[k], 0, p->numel))) {
      st = optim__fail(opt, OPTIM_ENONFINITE,
                       "the full gradient of '%s' holds NaN or infinity: nothing was changed",
                       p->name);
      goto out;
    }
  }
  optim__step_cancel(opt);
  /* each group takes its parameters' snapshot (cannot fail) */
  for (int gi = 0; gi < opt->ngroups; gi++) {
    optim_group *g = &opt->groups[gi];
    if (!g->alg->finite_sum) continue;
    int m = 0;
    for (int k = 0; k < n; k++) m += opt->params[idx[k]].group == gi;
    if (m == 0) continue;
    /* (a group's parameters need not be contiguous in idx: gathered) */
    int j = 0;
    for (int k = 0; k < n; k++)
      if (opt->params[idx[k]].group == gi) {
        gidx[j] = idx[k];
        gb[j] = full[k];
        gb[m + j] = probe[k];
        gb[2 * m + j] = pgrad[k];
        j++;
      }
    g->alg->snapshot(opt, g, gidx, m, gb, gb + m, gb + 2 * m);
  }
out:
  for (int k = 0; full && k < n; k++) {
    free(full[k]);
    free(probe[k]);
    free(pgrad[k]);
  }
  free(buf);
  free(gb);
  free(idx);
  free(gidx);
  return st;
}
