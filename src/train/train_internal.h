/* Pieces of the training loop kept out of train.c: the step, the step plan,
 * the metrics file and the divergence rule. */
#ifndef OL_TRAIN_INTERNAL_H
#define OL_TRAIN_INTERNAL_H

#include <stdint.h>
#include <stdio.h>

#include "core/internal.h"
#include "io/jsonw.h"
#include "optimlab/checkpoint.h"
#include "optimlab/train.h"

typedef struct ol__dsync ol__dsync;
typedef struct ol__diag ol__diag;

/* What ol_train adds to a step (all zero: this process alone, as ol_train_step). */
typedef struct {
    ol__dsync *ds;            /* gradient reduction and DiLoCo (NULL: none) */
    int64_t step, total;      /* the step's index; the run's length (DiLoCo's last round) */
    const ol_train_state *st; /* recent losses for tp->spike_zscore (NULL: no spike rule) */
    float *bn_saved;          /* bnumel floats: BN statistics are put back after a skipped step (NULL: kept) */
    ol__diag *diag;           /* --gns, --log-layer-stats (NULL: off) */
} ol__step_env;

/* One step on this rank's x[0..k) of a global batch of n: forward, loss and
 * backward over micro-batches, the reduction of env->ds, clipping; then either
 * a skipped step (a non-finite loss or gradient, or a loss spike: why[] says
 * which, BN statistics restored, no update) or the update: optimizer step,
 * ds's commit or DiLoCo round, the replica check. why[0] == 0 when the update
 * was made. Collective when env->ds is set. */
int ol__train_step(ol_ctx *ctx, const ol_train_params *tp, ol_model *m, ol_optim *opt, const ol__step_env *env,
                   const float *x, const int32_t *y, int k, int n, const ol_optim_hyper *h, ol_step_result *out,
                   char *why, size_t cap);

/* The global batch of step `step` after samples_before samples (batch schedule or batch_size). */
int64_t ol__train_batch_for(const ol_train_params *tp, int64_t step, int64_t samples_before);
/* The largest global batch of a run over n samples (loader and activations hold it). */
int64_t ol__train_max_batch(const ol_train_params *tp, int64_t n);

/* metrics.jsonl, with the CRC-32 of every byte it holds (stored in checkpoints). */
typedef struct {
    FILE *f;
    ol__jw w;
    uint32_t crc;
} ol__metrics;

/* Open dir/metrics.jsonl. Resuming (st non-NULL), its prefix must be what the
 * checkpoint recorded (length and CRC) before it is cut back to it; otherwise
 * the file is kept whole and a marker line (JSON) is appended. */
int ol__metrics_open(ol_ctx *ctx, const char *dir, const ol_train_state *st, ol__metrics *mt);
/* Append the record in mt->w as one line (flushed). */
int ol__metrics_line(ol_ctx *ctx, ol__metrics *mt);

/* Record a finite step loss (ring of the last 64, and the lowest so far). */
void ol__push_loss(ol_train_state *st, double loss);
/* Is loss z standard deviations above the recorded mean (after 16 steps; z 0: never)? */
int ol__loss_spike(const ol_train_state *st, double loss, double z);

/* Divergence rule (docs/checkpoints.md): after 16 finite steps, the mean loss
 * of the last 16 steps above factor x max(lowest step loss so far, ln(classes)).
 * Returns 1 when diverged and fills the threshold and mean. */
#define OL__DIVERGE_WINDOW 16
int ol__diverged(const ol_train_state *st, double factor, int classes, double *mean, double *threshold);
/* Is the latest loss below the threshold (a checkpoint taken now is sane)? */
int ol__loss_sane(const ol_train_state *st, double factor, int classes);

#endif
