/* Gradient synchronisation of the trainer: one object that picks the exact
 * all-reduce (DDP buckets during backward), PowerSGD or DiLoCo for each step,
 * and keeps their state in checkpoints. Internal to the library. */
#ifndef OL_DIST_SYNC_H
#define OL_DIST_SYNC_H

#include "core/internal.h"
#include "optimlab/checkpoint.h"
#include "optimlab/dist.h"
#include "optimlab/train.h"

/* Modified Gram-Schmidt on the r columns of the row-major n x r matrix a, in
 * double precision (scr: n r doubles). A column that is zero, not finite, or
 * numerically inside the span of the previous ones becomes zero. Returns the
 * number of zero columns. */
int ol__psgd_orthogonalize(float *a, int64_t n, int r, double *scr);

/* PowerSGD's committed state, for checkpoints. */
typedef struct {
    float *q;     /* all Q's, identical on every rank */
    size_t nq;
    float *err;   /* this rank's error, numel floats */
    size_t nerr;
    int *have_q;  /* Q holds a previous step's result (warm start) */
} ol__psgd_state;
void ol__powersgd_state(ol_powersgd *p, ol__psgd_state *s);

typedef struct ol__dsync ol__dsync;

/* After every rank holds rank 0's parameters. Loads the mode's state from
 * tp->resume_path when resuming. */
int ol__dsync_create(ol_ctx *ctx, const ol_train_params *tp, ol_model *m, ol_optim *opt, ol__dsync **out);
void ol__dsync_free(ol__dsync *ds);
/* The DDP object to arm before the last backward of this step, or NULL. */
ol_ddp *ol__dsync_ddp(ol__dsync *ds, int64_t step);
/* DiLoCo: gradients stay on the rank (mean over its own shard). */
int ol__dsync_local(const ol__dsync *ds);
/* After backward, on every rank (a failing one too): compressed reduction. */
int ol__dsync_reduce(ol_ctx *ctx, ol__dsync *ds, ol_paramset *ps, int64_t step);
/* After an accepted update that made `step` steps: commit PowerSGD's state;
 * DiLoCo's outer step when a round ends (every H steps, and at step total).
 * *synced tells whether all ranks now hold the same parameters. */
int ol__dsync_update(ol_ctx *ctx, ol__dsync *ds, ol_paramset *ps, int64_t step, int64_t total, int *synced);
/* Whether the state after `step` steps can be checkpointed (or the run
 * stopped): always, except inside a DiLoCo round. */
int ol__dsync_boundary(const ol__dsync *ds, int64_t step);
/* Steps until the next such boundary (>= 1). */
int64_t ol__dsync_steps_to_boundary(const ol__dsync *ds, int64_t step, int64_t total);
/* DiLoCo: exchange the model with the global model of the last sync (no-op otherwise). */
void ol__dsync_swap_global(ol__dsync *ds, ol_paramset *ps);
/* Collective: gather the per-rank state; on rank 0 *extra is what the
 * checkpoint stores beside the model (NULL when nothing). */
int ol__dsync_checkpoint(ol_ctx *ctx, ol__dsync *ds, ol_optim *opt, const ol_checkpoint_extra **extra);

typedef struct {
    double dense_step_bytes; /* an exact all-reduce of the gradients, per step and rank */
    double early_bytes, total_bytes; /* DDP: gradient bytes started during backward, all */
    int64_t syncs;           /* DiLoCo rounds */
} ol__dsync_stats;
void ol__dsync_get_stats(const ol__dsync *ds, ol__dsync_stats *s);

#endif
