/* Training diagnostics that watch the step without changing it: the gradient
 * noise scale (--gns, McCandlish et al. 2018, "An Empirical Model of
 * Large-Batch Training", Appendix A) and per-tensor statistics
 * (--log-layer-stats). Internal to the library; see docs/diagnostics.md. */
#ifndef OL_TRAIN_DIAG_H
#define OL_TRAIN_DIAG_H

#include <stdint.h>

#include "core/internal.h"
#include "io/jsonw.h"
#include "optimlab/params.h"
#include "optimlab/train.h"

/* The unbiased estimates of |G|^2 (the true gradient's squared norm) and of
 * tr(Sigma) (the per-sample gradient covariance's trace) from two batch sizes:
 * sq_small the mean over small batches of |G_small|^2, each the mean gradient
 * of its batch, with b_small the harmonic mean of their sizes (exact for
 * unequal sizes: E|G_b|^2 = |G|^2 + tr(Sigma)/b); sq_big |G_big|^2 of the
 * gradient over b_big samples. Requires b_big > b_small > 0. */
void ol__gns_estimate(double b_small, double sq_small, double b_big, double sq_big, double *grad_sq, double *trace);

/* The paper's smoothing: exponential moving averages of |G|^2 and tr(Sigma)
 * kept separately (bias-corrected as Adam's moments), the noise scale being
 * the ratio of the averages, never an average of ratios; and the sums over
 * the whole run. */
typedef struct {
    double beta;          /* EMA decay per step */
    double ema_g, ema_s;  /* uncorrected EMAs */
    double decay;         /* beta^steps, for the bias correction */
    double sum_g, sum_s;  /* over every measured step */
    int64_t steps;
} ol__gns_ema;
void ol__gns_ema_init(ol__gns_ema *e, double beta);
void ol__gns_ema_push(ol__gns_ema *e, double grad_sq, double trace);
/* B_simple = tr(Sigma)/|G|^2 of the averages, and the averages themselves
 * (NaN before the first step; B_simple is NaN while |G|^2 <= 0). */
double ol__gns_ema_value(const ol__gns_ema *e, double *grad_sq, double *trace);
/* B_simple of the run's sums: every step weighted alike. */
double ol__gns_run_value(const ol__gns_ema *e);

/* One step's measurement, filled by the training step (train_step.c). */
typedef struct {
    int on;
    float *prev;         /* numel floats: the gradient sum before the micro-batch (one process) */
    double small_sq;     /* sum over small batches of |G_small|^2 */
    double small_inv_b;  /* sum over small batches of 1/b */
    int nsmall;
    double big_sq, b_big;
} ol__gns_meas;

/* Everything ol_train keeps for the diagnostics (NULL: both off). */
typedef struct ol__diag ol__diag;

/* OL_EINVAL with one line when tp asks for a diagnostic this run cannot
 * make (--gns without a second batch size, or with PowerSGD or DiLoCo over
 * several ranks). */
int ol__diag_check(ol_ctx *ctx, const ol_train_params *tp, int world);
/* *out NULL when tp turns both off. */
int ol__diag_create(ol_ctx *ctx, const ol_train_params *tp, const ol_paramset *ps, ol__diag **out);
void ol__diag_free(ol__diag *d);

/* The step about to run as step `step` (from 0): what to measure. */
ol__gns_meas *ol__diag_gns(ol__diag *d);
int ol__diag_layers_due(const ol__diag *d, int64_t step);

/* train_grads: after one micro-batch of kk samples whose loss was scaled by
 * 1/denom, the gradient buffer holding the running sum (one process). */
void ol__gns_after_micro(ol__gns_meas *g, const ol_paramset *ps, int kk, int denom);
/* After backward, the local gradient over k samples, loss scaled by 1/denom,
 * before any reduction: the big batch (one process). */
void ol__gns_local_big(ol__gns_meas *g, const ol_paramset *ps, int k, int denom);
/* After the all-reduce: the reduced gradient, the mean over n samples. */
void ol__gns_reduced_big(ol__gns_meas *g, const ol_paramset *ps, int n);

/* Per-tensor squared gradient norms (reduced, before clipping). */
void ol__diag_layer_grads(ol__diag *d, const ol_paramset *ps);
/* Around the optimizer step: keep the weights; then per-tensor weight norms
 * and parameter changes. */
void ol__diag_layer_before(ol__diag *d, const ol_paramset *ps);
void ol__diag_layer_after(ol__diag *d, const ol_paramset *ps);
/* After an update was made: the step's estimate into the averages. */
void ol__diag_step_done(ol__diag *d);

/* Records: the tensor names (once, when the metrics file opens), the step
 * record's "gns" fields, the "layers" record of a step (nothing unless
 * measured there), the summary's fields and the result's. */
void ol__diag_names(const ol__diag *d, const ol_paramset *ps, ol__jw *w);
void ol__diag_step_fields(ol__diag *d, ol__jw *w);
int ol__diag_layers_record(ol__diag *d, int64_t step, ol__jw *w);
void ol__diag_summary_fields(const ol__diag *d, ol__jw *w);
void ol__diag_result(const ol__diag *d, ol_train_result *res);

#endif
