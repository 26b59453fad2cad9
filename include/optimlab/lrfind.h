/* Learning-rate range test (Smith 2017; fast.ai's lr_find) and the snapshot
 * of a model and optimizer it restores afterwards.
 *
 * Intended usage:
 *   ol_lrfind_params p = ol_lrfind_default_params();
 *   p.start_lr = 1e-7; p.end_lr = 10; p.num_iter = 100; p.batch_size = 128;
 *   ol_lrfind_result r;
 *   ol_lrfind_run(ctx, &p, model, opt, &train, &r);   // model and opt come back unchanged
 *   r.lr_steepest, r.lr_min10, r.onecycle_max_lr, ...
 *   ol_lrfind_plot(ctx, &r, "lr_find.svg", NULL);
 *   ol_lrfind_result_free(&r);
 * The sweep mode trains once per candidate lr from the same weights with a
 * fresh optimizer (robust for large batches, where the range test's single
 * run confounds the lr with the training progress). */
#ifndef OPTIMLAB_LRFIND_H
#define OPTIMLAB_LRFIND_H

#include <stdint.h>

#include "optimlab/core.h"
#include "optimlab/data.h"
#include "optimlab/model.h"
#include "optimlab/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A copy of everything a training step changes: parameters, BatchNorm
 * buffers and (when o is given) the optimizer's state slots, scalars, step
 * count and train/eval mode. Restore it into the same model and optimizer.
 * Also the building block for snapshot ensembles. */
typedef struct ol_snapshot ol_snapshot;
int ol_snapshot_take(ol_ctx *ctx, ol_model *m, ol_optim *o, ol_snapshot **out);
int ol_snapshot_restore(ol_ctx *ctx, const ol_snapshot *s, ol_model *m, ol_optim *o);
void ol_snapshot_free(ol_snapshot *s); /* NULL-safe */

typedef struct {
    double start_lr, end_lr; /* 1e-7 .. 10 */
    int num_iter;            /* 100 */
    int linear;              /* 0: exponential (geometric) sweep */
    double smooth_beta;      /* EMA factor of the loss, bias-corrected: 0.98 */
    double diverge_factor;   /* stop when the smoothed loss exceeds this times the best: 4 */
    int batch_size;          /* 128 */
    int micro_batch_size;    /* 0: the whole batch at once; else accumulate gradients over micro-batches (as ol_train_step) */
    float label_smoothing;
    double clip_grad_norm;   /* 0 = off */
    ol_augment aug;
    uint64_t seed;           /* data order */
} ol_lrfind_params;

ol_lrfind_params ol_lrfind_default_params(void);

typedef struct {
    int n;                /* iterations done (< num_iter after a divergence) */
    double *lr, *loss, *smooth; /* [n]: lr used, batch loss, smoothed loss */
    int diverged;
    int i_min;            /* index of the smallest smoothed loss */
    int i_steep;          /* index of the steepest descent of the smoothed loss (-1: none) */
    double best_loss;     /* smallest smoothed loss */
    double lr_at_min;     /* lr of the smallest smoothed loss */
    double lr_min10;      /* lr_at_min / 10 (fast.ai) */
    double lr_steepest;   /* lr of the steepest descent, per log(lr) (fast.ai) */
    /* schedule suggestions: one-cycle peak = lr_min10 (start at peak/25);
     * cyclic max = lr_min10, base = max/4 (Smith 2017: 1/3 to 1/4 of max) */
    double onecycle_max_lr, cyclic_base_lr, cyclic_max_lr;
} ol_lrfind_result;

/* Run the range test on m and o; both are restored before returning, also on
 * error. Returns 0 (divergence is a result, not an error) or a negative code. */
int ol_lrfind_run(ol_ctx *ctx, const ol_lrfind_params *p, ol_model *m, ol_optim *o, const ol_dataset *train,
                  ol_lrfind_result *res);
/* Fill the suggestion fields of res from res->lr and res->smooth (n > 0). */
void ol_lrfind_suggest(ol_lrfind_result *res);
void ol_lrfind_result_free(ol_lrfind_result *r);
/* Loss (raw and smoothed) against lr on a log axis, suggestions marked. */
int ol_lrfind_plot(ol_ctx *ctx, const ol_lrfind_result *r, const char *path, const char *title);

/* Sweep: for each of the n candidate lrs, `steps` optimizer steps from the
 * weights m has now with a fresh optimizer built from o's parameters; the
 * data order is the same for every candidate. final_loss[i] is the mean batch
 * loss of the last max(1, steps/10) steps, or +inf when the candidate diverged:
 * a non-finite loss, or the mean of the last max(1, steps/10) losses past
 * diverge_factor x the candidate's first loss at any step; a diverged candidate
 * stops there. steps_done[i] (when not NULL) is the steps candidate i ran.
 * m and o are restored afterwards. */
int ol_lrfind_sweep(ol_ctx *ctx, const ol_lrfind_params *p, int steps, const double *lrs, int n, ol_model *m,
                    ol_optim *o, const ol_dataset *train, double *final_loss, int *steps_done);
/* Index of the best candidate (smallest finite final loss), -1 if none. */
int ol_lrfind_sweep_best(const double *final_loss, int n);
int ol_lrfind_sweep_plot(ol_ctx *ctx, const double *lrs, const double *final_loss, int n, const char *path,
                         const char *title);

#ifdef __cplusplus
}
#endif
#endif
