/* Pieces of the training loop kept out of train.c: the metrics file and the
 * divergence rule. */
#ifndef OL_TRAIN_INTERNAL_H
#define OL_TRAIN_INTERNAL_H

#include <stdint.h>
#include <stdio.h>

#include "core/internal.h"
#include "io/jsonw.h"
#include "optimlab/checkpoint.h"

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
