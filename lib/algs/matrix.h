/* matrix.h - pieces shared by the orthogonalizing optimizers (muon.c,
 * normuon.c, root.c): the Muon-style momentum, the update pass, the
 * auxiliary AdamW of MuonWithAuxAdam, and how a tensor is seen as matrices. */
#ifndef OPTIM_ALGS_MATRIX_H
#define OPTIM_ALGS_MATRIX_H

#include "optim-internal.h"

/* torch.lerp: start + w*(end - start) for |w| < 0.5, else
 * end - (end - start)*(1 - w); w1 = 1 - w. */
#define LERP(s, e, w, w1) ((w) < (w1) ? (s) + (w) * ((e) - (s)) : (e) - ((e) - (s)) * (w1))
/* LERP of second moments (s, e >= 0): equal values give e, which LERP gives
 * too when they are finite, while LERP(inf, inf) is inf - inf = NaN: a
 * moment that overflowed to +inf stays +inf instead of turning NaN. */
#define LERP_SQ(s, e, w, w1) ((s) == (e) ? (e) : LERP(s, e, w, w1))

/* The matrices NS runs on: 3-D tensors are a batch over the leading dim,
 * 4-D (conv) ones are (out, in*kh*kw). */
void optim__matrix_view(const optim_param *p, int64_t *batch, int64_t *rows, int64_t *cols);

/* OPTIM_OK, or OPTIM_EUNSUPPORTED with a message when a matrix of p is too
 * large for BLAS's int sizes (2^31 elements or more). */
int optim__matrix_fits(const optim_param *p, const char *alg, char *msg, size_t size);

/* The admission rule of the matrix optimizers: a matrix (as the algorithm
 * defines one: `matrix`) must fit BLAS's int sizes; any other tensor needs
 * nonmatrix=adamw (`routed`).  `what` names what the algorithm takes. */
int optim__matrix_accept(const optim_param *p, int matrix, int routed, const char *alg,
                         const char *what, char *msg, size_t size);

/* Muon's update scale sqrt(max(1, rows/cols)) from the parameter's own last
 * two dims (for a conv weight kh/kw, not the flattened matrix's ratio: the
 * reference's quirk, reproduced). */
double optim__muon_scale(const optim_param *p);

/* Precision of NS for a "ns_precision" choice (0 auto, 1 float32, 2 float64). */
#define NS_PRECISION_HP                                                              \
  {"ns_precision", OPTIM_TYPE_STRING, 0, "auto", 0, 0, HP_LAYOUT, "auto|float32|float64", \
   "precision of the Newton-Schulz iteration (auto: the parameter's)"}
int optim__ns_prec(int64_t choice, int dtype);

/* M = lerp(M, G, 1 - beta); U = nesterov ? lerp(G, M, beta) : M, with G the
 * gradient times gscale.  A NULL gradient counts as zero; zero != 0
 * replaces non-finite entries by 0. */
void optim__momentum_lerp(int dtype, void *m, const void *g, void *u, size_t n, double beta,
                          int nesterov, int zero, double gscale);

/* p = p*decay; p = p + (-lr)*(u*scale). */
void optim__apply_update(int dtype, void *p, const void *u, size_t n, double lr, double decay,
                         double scale);

/* The auxiliary AdamW: its hyperparameters (five table entries, in this
 * order: adamw_lr, adamw_beta1, adamw_beta2, adamw_eps, adamw_weight_decay),
 * per-step coefficients, and element-wise kernel over state[1] (exp_avg)
 * and state[2] (exp_avg_sq):
 *   m = lerp(m, g, 1-b1); v = lerp(v, g^2, 1-b2);
 *   u = (m/bc1) / (sqrt(v/bc2) + eps); p = p*(1 - lr*wd) - lr*u. */
#define AUX_ADAMW_HPS                                                                \
  {"adamw_lr", OPTIM_TYPE_DOUBLE, 3e-4, "3e-4", 0, INFINITY, 0, 0,                   \
   "learning rate of the auxiliary AdamW"},                                         \
  {"adamw_beta1", OPTIM_TYPE_DOUBLE, 0.9, "0.9", 0, 1, HP_HI_OPEN, 0,                \
   "first-moment decay of the auxiliary AdamW"},                                    \
  {"adamw_beta2", OPTIM_TYPE_DOUBLE, 0.95, "0.95", 0, 1, HP_HI_OPEN, 0,              \
   "second-moment decay of the auxiliary AdamW"},                                   \
  {"adamw_eps", OPTIM_TYPE_DOUBLE, 1e-10, "1e-10", 0, INFINITY, 0, 0,                \
   "added to the root of the bias-corrected second moment (auxiliary AdamW)"},      \
  {"adamw_weight_decay", OPTIM_TYPE_DOUBLE, 0, "0", 0, INFINITY, 0, 0,               \
   "decoupled weight decay of the auxiliary AdamW"}
/* decay_needs_grad: no weight decay on a step whose gradient is missing
 * (NorMuonWithAuxAdam; MuonWithAuxAdam decays always). */
void optim__aux_prepare(const optim_group *g, optim_param *p, int first_hp, int64_t step,
                        int decay_needs_grad);
void optim__aux_kernel(const optim_param *p, size_t begin, size_t end);

/* Layout of a tensor handled by an auxiliary AdamW: step, exp_avg, exp_avg_sq. */
void optim__aux_layout(state_layout *out);
/* Layout of a matrix with a momentum buffer: step, momentum_buffer. */
void optim__momentum_layout(state_layout *out);

/* The q-quantile of a[0..n) (n >= 1) with linear interpolation between
 * order statistics (numpy's and torch's default), in the dtype; a is
 * reordered.  Expected O(n). */
float optim__quantile_f32(float *a, size_t n, double q);
double optim__quantile_f64(double *a, size_t n, double q);

#endif
