/* muon.c - Muon: momentum orthogonalized by Newton-Schulz, for matrices
 * (KellerJordan/Muon semantics, NS in float32 or float64 instead of bf16),
 * with the reference's auxiliary AdamW for tensors that are not matrices
 * (MuonWithAuxAdam) when nonmatrix=adamw. */
#include <math.h>
#include <stdio.h>

#include "matrix.h"
#include "ns.h"

enum { LR, MOMENTUM, NESTEROV, WEIGHT_DECAY, NS_STEPS, NS_COEFFICIENTS, LR_ADJUST,
       NS_PRECISION, NONMATRIX, A_LR, A_BETA1, A_BETA2, A_EPS, A_WEIGHT_DECAY };
enum { ADJ_REFERENCE = 0, ADJ_MATCH_ADAMW = 1 };
enum { NONMATRIX_ERROR = 0, NONMATRIX_ADAMW = 1 };

static const hp_desc hps[] = {
  {"lr", OPTIM_TYPE_DOUBLE, 0.02, "0.02", 0, INFINITY, 0, 0,
   "learning rate, in units of spectral norm per update"},
  {"momentum", OPTIM_TYPE_DOUBLE, 0.95, "0.95", 0, 1, HP_HI_OPEN, 0,
   "EMA momentum: M = lerp(M, G, 1 - momentum)"},
  {"nesterov", OPTIM_TYPE_BOOL, 1, "true", 0, 1, 0, 0,
   "orthogonalize lerp(G, M, momentum) instead of M"},
  {"weight_decay", OPTIM_TYPE_DOUBLE, 0, "0", 0, INFINITY, 0, 0,
   "decoupled weight decay: param *= 1 - lr * weight_decay"},
  {"ns_steps", OPTIM_TYPE_INT, 5, "5", 1, 100, 0, 0, "Newton-Schulz iterations"},
  {"ns_coefficients", OPTIM_TYPE_STRING, 0, "muon", 0, 0, 0, NS_COEF_CHOICES,
   "Newton-Schulz coefficients: muon (3.4445, -4.775, 2.0315), polar_express "
   "(per-iteration), root (ROOT's per-shape table, muon elsewhere)"},
  {"lr_adjust", OPTIM_TYPE_STRING, 0, "reference", 0, 0, 0, "reference|match_adamw",
   "update scale: reference sqrt(max(1, rows/cols)) of the parameter's last two "
   "dims, or match_adamw 0.2*sqrt(max(rows, cols)) of the orthogonalized matrix"},
  NS_PRECISION_HP,
  {"nonmatrix", OPTIM_TYPE_STRING, 0, "error", 0, 0, HP_LAYOUT, "error|adamw",
   "tensors of fewer than 2 dims: error (refused) or adamw (the auxiliary AdamW)"},
  AUX_ADAMW_HPS,
};

static int is_matrix(const optim_group *g, const optim_param *p)
{
  (void)g;
  return p->ndim >= 2;
}

static int accept(const optim_group *g, const optim_param *p, char *msg, size_t size)
{
  return optim__matrix_accept(p, p->ndim >= 2, hp_i(g, NONMATRIX) == NONMATRIX_ADAMW, "muon",
                              "matrices (2-D, 3-D batches, 4-D convolutions)", msg, size);
}

static void layout(const optim_group *g, const optim_param *p, state_layout *out)
{
  (void)g;
  if (p->ndim < 2) optim__aux_layout(out);
  else optim__momentum_layout(out);
}

static int ns_prec(const optim_group *g, const optim_param *p)
{
  return optim__ns_prec(hp_i(g, NS_PRECISION), p->dtype);
}

static size_t workspace(const optim_group *g, const optim_param *p)
{
  int64_t batch, rows, cols;
  optim__matrix_view(p, &batch, &rows, &cols);
  size_t ns = optim__ns_workspace(rows, cols, ns_prec(g, p));
  if (p->len != p->numel) { /* a row block: also the distributed form */
    size_t d = optim__ns_rows_workspace((int64_t)p->len / cols, cols, ns_prec(g, p));
    if (d > ns) ns = d;
  }
  return p->numel * optim__dtype_size(p->dtype) + 64 + ns;
}

static void prepare(const optim_group *g, optim_param *p)
{
  int64_t t = ++optim__state_get(p, "step")->scalar;
  if (p->ndim < 2) optim__aux_prepare(g, p, A_LR, t, 0);
}

/* Only 1-D tensors (routed to the auxiliary AdamW) take the element-wise path. */
static void kernel(const optim_group *g, const optim_param *p, size_t b, size_t e)
{
  (void)g;
  optim__aux_kernel(p, b, e);
}

static double cost(const optim_group *g, const optim_param *p)
{
  int64_t batch, rows, cols;
  optim__matrix_view(p, &batch, &rows, &cols);
  return (double)batch * optim__ns_flops(rows, cols, (int)hp_i(g, NS_STEPS));
}

/* A parameter with a range of rows (blockwise distribution) is stepped as a
 * matrix of its own: momentum, NS and scale of the row block; or, while an
 * optim_set_row_reduce function is set, as part of the whole matrix: NS
 * distributed by rows and the whole matrix's scale. */
static int param_step(const optim_group *g, optim_param *p, void *work)
{
  int64_t batch, rows, cols;
  optim__matrix_view(p, &batch, &rows, &cols);
  int block = p->len != p->numel, dist = block && p->row_reduce != NULL;
  if (block) {
    if (p->len == 0 && !dist) return 0;
    rows = (int64_t)p->len / p->shape[1];
    cols = p->shape[1];
  }
  size_t ubytes = p->len * optim__dtype_size(p->dtype);
  void *u = work;
  void *nswork = (char *)work + ((ubytes + 63) & ~(size_t)63);
  double beta = hp_d(g, MOMENTUM), lr = hp_d(g, LR);
  int nest = (int)hp_i(g, NESTEROV);
  optim__momentum_lerp(p->dtype, p->state[1].buf, p->kgrad, u, p->len, beta, nest,
                       p->zero_nonfinite, p->gscale);
  int failed = 0;
  if (dist) {
    failed = optim__ns_rows(p->dtype, ns_prec(g, p), u, u, rows, p->shape[0], cols,
                            (int)hp_i(g, NS_STEPS), (int)hp_i(g, NS_COEFFICIENTS), nswork,
                            (optim__reduce_fn)p->row_reduce, p->row_reduce_ud) != 0;
    rows = p->shape[0]; /* the scale of the whole matrix */
    block = 0;
  } else {
    optim__ns(p->dtype, ns_prec(g, p), u, u, batch, rows, cols, (int)hp_i(g, NS_STEPS),
              (int)hp_i(g, NS_COEFFICIENTS), nswork);
  }
  double scale;
  if (hp_i(g, LR_ADJUST) != ADJ_REFERENCE) scale = 0.2 * sqrt((double)(rows > cols ? rows : cols));
  else if (block) scale = sqrt(rows > cols ? (double)rows / (double)cols : 1.0);
  else scale = optim__muon_scale(p);
  double decay = 1 - lr * optim__wd(g, p, WEIGHT_DECAY);
  if (failed) return -1; /* a reduction failed: no update (counted as failed) */
  optim__apply_update(p->dtype, p->kdata, u, p->len, lr, decay, scale);
  return 0;
}

const optim_alg optim__alg_muon = {
  .name = "muon",
  .doc = "Muon: Newton-Schulz-orthogonalized momentum for matrices (KellerJordan/Muon)",
  .hp = hps,
  .nhp = (int)(sizeof hps / sizeof hps[0]),
  .accept = accept,
  .layout = layout,
  .prepare = prepare,
  .kernel = kernel,
  .whole = is_matrix,
  .param_step = param_step,
  .workspace = workspace,
  .cost = cost,
  .missing_grad_zero = 1,
  .row_ranges = 1,
};
