/* Checkpoints and weight files, in the safetensors format.
 *
 * A checkpoint holds the model parameters under their PyTorch names
 * ("layer1.0.conv1.weight"), the BatchNorm running statistics, every optimizer
 * state buffer as "optim.<slot>.<parameter name>", and in its metadata the
 * model configuration, optimizer step and scalars, the training progress
 * (step, epoch, position in the epoch, samples seen, running metrics), the
 * effective configuration, and a CRC-32 of the whole file (header included;
 * version-1 files: of the tensor data) that is verified on load. For Schedule-Free optimizers the plain names hold the evaluation
 * sequence x and "optim.train_params.<name>" the training sequence y.
 * Writes are atomic: a crash or full disk leaves the previous file intact. */
#ifndef OPTIMLAB_CHECKPOINT_H
#define OPTIMLAB_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "optimlab/core.h"
#include "optimlab/model.h"
#include "optimlab/optim.h"
#include "optimlab/sched.h"

#ifdef __cplusplus
extern "C" {
#endif

#define OL_CHECKPOINT_VERSION 2

/* Training progress: everything the loop needs to continue bit-exactly. */
typedef struct {
    int64_t step;           /* optimizer steps done */
    int64_t epoch;          /* current epoch, 0-based */
    int64_t epoch_pos;      /* samples of the current epoch consumed */
    int64_t batch_in_epoch; /* steps done in the current epoch */
    int64_t samples_seen;
    int evals_done; /* evaluations done in the current epoch */
    double ep_loss;
    int64_t ep_correct, ep_seen;
    int epochs_done;
    double best_test_acc, best_epoch, final_test_acc, final_test_loss, final_train_loss, final_train_acc;
    double train_time, eval_time, elapsed;
    int64_t metrics_bytes; /* length of metrics.jsonl when the checkpoint was written */
    int64_t metrics_crc;   /* CRC-32 of those bytes; -1: not recorded (version-1 checkpoints) */
    double loss_min;       /* lowest step loss so far (divergence rule); INFINITY: none yet */
    int64_t bad_steps;     /* skipped steps (non-finite or loss spike), total */
    int consecutive_bad;
    double loss_hist[64]; /* recent losses, for loss-spike detection */
    int loss_hist_n, loss_hist_pos;
    uint64_t seed;
    ol_plateau plateau; /* reduce-on-plateau state */
    int64_t sane_step;  /* the newest checkpoint whose weights gave a sane loss (kept from pruning); -1: none */
    /* data-parallel traffic so far, so that a resumed run's records match an uninterrupted one's:
     * training steps' bytes (sent, and what an exact all-reduce would send) in this epoch and in all,
     * gradient bytes all-reduced during backward and in all (overlap), everything sent */
    double comm_ep_bytes, comm_ep_dense, comm_run_bytes, comm_run_dense;
    double comm_ep_early, comm_ep_grad, comm_early, comm_grad, comm_total;
} ol_train_state;

/* config_json may be NULL; it is stored verbatim (the CLI's effective options). */
int ol_checkpoint_save(ol_ctx *ctx, const char *path, ol_model *m, ol_optim *opt, const ol_train_state *st,
                       const char *config_json);
/* Extra state stored beside the model: named 1-D float tensors and one
 * metadata entry (the data-parallel modes keep their per-rank state here,
 * see docs/distributed.md). Loading ignores tensors it is not asked for. */
typedef struct {
    const char *name;
    size_t numel;
    float *data; /* saved from / loaded into */
} ol_checkpoint_tensor;
typedef struct {
    ol_checkpoint_tensor *t;
    int n;
    const char *meta_key; /* NULL: no metadata entry */
    const char *meta;     /* its value, when saving */
} ol_checkpoint_extra;
int ol_checkpoint_save_extra(ol_ctx *ctx, const char *path, ol_model *m, ol_optim *opt, const ol_train_state *st,
                             const char *config_json, const ol_checkpoint_extra *extra);
/* Fill extra's tensors from a checkpoint (OL_ENOENT when one is missing,
 * OL_ESHAPE when its size differs) and return a malloc'd copy of the metadata
 * value in *meta (NULL when absent). Nothing is written unless all succeed. */
int ol_checkpoint_load_extra(ol_ctx *ctx, const char *path, const ol_checkpoint_extra *extra, char **meta);

/* Load into an existing model (and optimizer, and state; each may be NULL).
 * Fails with OL_EFORMAT for corrupt, truncated or wrong-version files and
 * OL_ESHAPE for a checkpoint of a different model or optimizer. Nothing is
 * modified unless the whole file checks out. */
int ol_checkpoint_load(ol_ctx *ctx, const char *path, ol_model *m, ol_optim *opt, ol_train_state *st);
/* The full check that loading does, against the architecture the file
 * records: header, version, checksum (version 2: of the whole file),
 * model description, training and optimizer state, every tensor's name,
 * type and shape. OL_EFORMAT when anything is wrong. */
int ol_checkpoint_verify(ol_ctx *ctx, const char *path);
/* The stored configuration (malloc'd string, caller frees) and model params. */
int ol_checkpoint_read_config(ol_ctx *ctx, const char *path, char **config_json);
/* The architecture a checkpoint was written for (arch, depth, width, skips,
 * shortcut, MLP widths, input shape, classes; a GPT's n_layer, n_head, n_embd,
 * seq_len); other fields get defaults. */
int ol_checkpoint_model_params(ol_ctx *ctx, const char *path, ol_model_params *mp);
/* The checkpoint of dir ("ckpt-<step>.safetensors", regular files only) that
 * passes ol_checkpoint_verify and records the highest step inside it (never
 * judged by its name); OL_ENOENT when there is none, OL_EFORMAT when none verifies. */
int ol_checkpoint_latest(ol_ctx *ctx, const char *dir, char *path, size_t cap);
/* Path of the checkpoint for step in dir. */
void ol_checkpoint_path(const char *dir, int64_t step, char *path, size_t cap);
/* Delete all but the newest keep valid checkpoints in dir (keep 0: all stay),
 * and temporary files left by interrupted writes of processes no longer alive.
 * Checkpoints are ranked by the step recorded inside; a file that does not
 * verify is never counted, and is deleted only when keep valid ones remain. */
int ol_checkpoint_prune(ol_ctx *ctx, const char *dir, int keep);
/* The same, never deleting the nprotect files in protect (compared by inode):
 * the checkpoint just written, the last one before a divergence. */
int ol_checkpoint_prune_except(ol_ctx *ctx, const char *dir, int keep, const char *const *protect, int nprotect);

/* Plain weight files: parameters, BN statistics and num_batches_tracked under
 * PyTorch names, loadable with model.load_state_dict(safetensors.torch.load_file(f)).
 * With a Schedule-Free optimizer, pass it so the evaluation weights x are written. */
int ol_weights_export(ol_ctx *ctx, const char *path, ol_model *m, ol_optim *opt);
/* Load parameters and BN statistics by name (F32, F64, F16 or BF16; extra
 * tensors such as num_batches_tracked or optim.* are ignored). Every model
 * tensor must be present with its shape. */
int ol_weights_import(ol_ctx *ctx, const char *path, ol_model *m);

#ifdef __cplusplus
}
#endif
#endif
