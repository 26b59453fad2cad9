/* The training loop: any model, any optimizer, any schedule.
 *
 * ol_train runs epochs (or a step budget) over the training set, evaluates on
 * the test set every epoch (or several times per epoch), writes
 * OUT/metrics.jsonl when out_dir is set, and reports progress through hooks.
 * Same seed and same thread count give bitwise-identical losses, accuracies
 * and parameters. */
#ifndef OPTIMLAB_TRAIN_H
#define OPTIMLAB_TRAIN_H

#include <stdint.h>

#include <signal.h>

#include "optimlab/checkpoint.h"
#include "optimlab/core.h"
#include "optimlab/data.h"
#include "optimlab/dist.h"
#include "optimlab/model.h"
#include "optimlab/optim.h"
#include "optimlab/sched.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int epochs;             /* 0 with max_steps > 0: train by steps only */
    int64_t max_steps;      /* stop after this many optimizer steps (0 = no limit) */
    int batch_size;
    int eval_batch_size;    /* 0: batch_size */
    int evals_per_epoch;    /* >= 1 */
    int log_every;          /* steps between step records (0: 50) */
    float label_smoothing;
    double clip_grad_norm;  /* 0 = off */
    int skip_grad_norm;     /* with clip_grad_norm 0: no gradient-norm pass (grad_norm reported as 0; a
                               non-finite gradient shows in the next loss). Benchmarks: PyTorch's step has none */
    int drop_last;
    ol_augment aug;
    uint64_t seed;
    const char *out_dir;    /* NULL: no files */
    int prefetch;
    int bn_recompute_batches; /* Schedule-Free: batches used to recompute BN statistics at x (0: 50) */
    int micro_batch_size;   /* gradient accumulation: forward/backward in pieces of this size (0: whole batch) */
    int freeze_bn;          /* BatchNorm uses and keeps its running statistics while training */

    /* large batches: the global batch of each step and the lr rule that follows it */
    const ol_batch_sched_params *batch_sched; /* NULL: every step takes batch_size samples */
    ol_lr_scaling lr_scaling;
    int64_t base_batch; /* B0 the lr was tuned for (0: batch_size) */
    double lr_knee;     /* linear-then-sqrt knee in multiples of B0 */

    /* snapshot ensembles (Huang et al. 2017): at each end of a learning-rate
     * cycle (a local minimum of the schedule: warm restarts, cyclic) write
     * out_dir/snapshot-<step>.safetensors; at the end evaluate the ensemble of
     * the last M snapshots (averaged softmax). 0 = off. */
    int snapshot_ensemble;

    /* checkpoints (written to out_dir as ckpt-<step>.safetensors) */
    int64_t checkpoint_every_steps; /* 0 = off */
    int checkpoint_every_epochs;    /* 0 = off */
    int keep_last;                  /* keep the newest K checkpoints (0 = all) */
    int final_checkpoint;           /* write one when the run ends (1 by default) */
    const char *config_json;        /* stored in every checkpoint */
    const ol_train_state *resume;   /* continue from this state (model and optimizer already loaded) */

    /* data parallelism: NULL or a 1-rank communicator trains in this process
     * alone. Each global batch is split into contiguous per-rank shards;
     * metrics, hooks and checkpoints are rank 0's. */
    struct ol_comm *comm;
    size_t bucket_bytes;      /* gradient all-reduce buckets (0: 256 KiB) */
    int deterministic_reduce; /* gather and sum in rank order: bitwise the single-process accumulation */
    int check_replicas;       /* verify after every step that all ranks hold identical parameters */
    volatile double *heartbeat; /* set to ol_now() after every step and evaluation (watchdogs) */
    /* instead of the exact all-reduce (docs/distributed.md); both also run in one process */
    ol_powersgd_params powersgd; /* rank > 0: PowerSGD compression (seeded with seed) */
    ol_diloco_params diloco;     /* h > 0: DiLoCo; checkpoints and stops wait for the next sync */
    const char *resume_path;     /* the checkpoint resume came from: PowerSGD's or DiLoCo's state */

    /* stopping early: all end with a checkpoint and OL_EINTR */
    volatile sig_atomic_t *stop_flag; /* set asynchronously (SIGTERM, SIGINT): stop after the current step */
    double time_limit;              /* seconds from the start of ol_train; stop with a margin before it (0 = none) */
    int64_t stop_after_steps;       /* stop as if preempted once this many steps are done (0 = off; for tests) */

    /* divergence guard */
    int max_bad_steps;     /* stop after more than this many consecutive skipped steps (default 0: first one stops) */
    double spike_zscore;   /* skip a step whose loss is this many standard deviations above the recent mean (0 = off) */
    double divergence_factor; /* stop (OL_ENONFINITE) when the mean loss of the last 16 steps exceeds this many times
                                 the larger of the lowest loss so far and ln(classes) (default 10; 0 = off) */

    /* diagnostics (docs/diagnostics.md); neither changes the trained weights */
    int gns;              /* gradient noise scale from the micro-batches (one rank) or the per-rank gradients */
    double gns_smoothing; /* its EMA decay per step (default 0.99) */
    int log_layer_stats;  /* every this many steps a "layers" record: per-tensor norms (0 = off) */
} ol_train_params;

ol_train_params ol_train_default_params(void);

typedef struct {
    int64_t step;      /* optimizer steps done */
    double epoch;      /* fractional epoch */
    int64_t total_steps;
    double lr, momentum;
    double loss, acc;  /* of this step's batch */
    double grad_norm;
    double samples_per_s; /* over the last logging window, evaluation excluded */
    double elapsed;
    int batch;
    double comm_bytes, comm_time; /* this step, this rank */
} ol_step_info;

typedef struct {
    int64_t step;
    double epoch;
    int end_of_epoch;
    double train_loss, train_acc; /* running means since the start of the epoch */
    double test_loss, test_acc;
    double elapsed;
} ol_eval_info;

typedef struct {
    void (*on_step)(void *user, const ol_step_info *s); /* every step */
    void (*on_eval)(void *user, const ol_eval_info *e);
    void *user;
} ol_train_hooks;

typedef struct {
    int64_t steps;
    int epochs_done;
    double best_test_acc, best_epoch;
    double final_test_acc, final_test_loss;
    double final_train_loss, final_train_acc;
    double elapsed, train_time, eval_time;
    double samples_per_s; /* training throughput, evaluation excluded */
    int64_t bad_steps;    /* skipped: non-finite loss or gradient, or loss spike */
    int snapshots;        /* snapshots in the ensemble (0: none evaluated) */
    /* communication (data-parallel runs): per rank */
    double comm_bytes;    /* sent by this rank */
    double comm_time;     /* waiting for collectives */
    double overlap;       /* fraction of gradient bytes whose all-reduce started during backward */
    double comm_dense_bytes; /* what an exact all-reduce of every step's gradients would have sent */
    double step_comm_bytes;  /* sent inside training steps (comm_bytes less evaluations, checkpoints) */
    double step_comm_time;   /* communication inside training steps (exposed: not hidden behind compute) */
    int64_t syncs;           /* DiLoCo outer steps */
    double ensemble_test_acc, ensemble_test_loss;
    /* gradient noise scale B_simple (tp->gns; NaN when none was measured):
     * smoothed at the end and at the first step record, and over the whole run */
    double gns_final, gns_first, gns_run;
    int64_t gns_steps; /* steps measured */
    char checkpoint[4096]; /* the last checkpoint written ("" when none) */
} ol_train_result;

typedef struct {
    double loss_sum; /* summed over the batch (a sequence model: of each sample's mean over its positions) */
    int correct;     /* top-1 correct predictions (a sequence model: counted over the n * positions) */
    double grad_norm; /* before clipping */
    /* wall time of the step's parts, in seconds: forward and loss; backward,
     * gradient reduction and clipping; the update (0 when skipped) */
    double forward_s, backward_s, update_s;
} ol_step_result;

/* One optimizer step on the batch x[0..n): forward and backward in micro-batches
 * of tp->micro_batch_size, gradients accumulated with the loss scaled by 1/n
 * (so any micro-batch size gives the gradient of the mean loss over the whole
 * batch, up to float rounding), gradient clipping, then the update. With
 * BatchNorm in train mode, statistics are per micro-batch. Returns
 * OL_ENONFINITE (parameters untouched) when the loss or the gradient norm is
 * not finite. The step ol_train takes on every rank (there with the gradient
 * reduction of tp->comm); this one runs in this process alone. */
int ol_train_step(ol_ctx *ctx, const ol_train_params *tp, ol_model *m, ol_optim *opt, const float *x,
                  const int32_t *y, int n, const ol_optim_hyper *h, ol_step_result *out);
/* The first half of ol_train_step: forward, backward and clipping, no update. */
int ol_train_grads(ol_ctx *ctx, const ol_train_params *tp, ol_model *m, const float *x, const int32_t *y, int n,
                   ol_step_result *out);

/* The learning rate ol_train uses for step `step` (from 0) whose global batch
 * is `batch`: the schedule's value (its warm-up included; with plateau, the
 * reduce-on-plateau state's lr) times tp's batch-size rule (tp->lr_scaling
 * from tp->base_batch, or batch_size, with tp->lr_knee). optimlab schedule
 * prints these values. */
double ol_train_lr(const ol_train_params *tp, const ol_sched_params *sched, const ol_plateau *plateau, int64_t step,
                   int64_t batch);

/* Optimizer steps that ol_train will take for a training set of n samples
 * (the batch schedule walked through every epoch), for schedules that need
 * the length of training. */
int64_t ol_train_count_steps(const ol_train_params *tp, int64_t n);
/* The global batch of each of the first cap steps ol_train takes over a
 * training set of n samples (the batch schedule; an epoch's last step takes
 * the samples left, or none with drop_last), into batches[0..cap). Returns the
 * steps filled: fewer than cap when training ends first (epochs 0: by steps). */
int64_t ol_train_step_batches(const ol_train_params *tp, int64_t n, int64_t *batches, int64_t cap);
/* OL_EINVAL naming the first step whose global batch (tp->batch_size, or the
 * batch schedule's) `world` ranks do not divide, over the whole run on n
 * training samples; what ol_train checks before its first step. */
int ol_train_check_world(ol_ctx *ctx, const ol_train_params *tp, int64_t n, int world);
/* OL_EINVAL with one line when tp's diagnostics cannot be made over `world`
 * ranks: the gradient noise scale needs a second batch size (micro-batches
 * smaller than the batch, or several ranks) and, over several ranks, the
 * exact all-reduce (not PowerSGD or DiLoCo). ol_train checks it too. */
int ol_train_check_diag(ol_ctx *ctx, const ol_train_params *tp, int world);

/* The memory ol_train would need for this model, optimizer and data, before
 * any of it is created: the model's planned sizes (ol_model_memory_estimate) at
 * the largest batch a rank's forward takes (the batch schedule's largest
 * global batch, never more than the data set, split over tp->comm's ranks, in
 * micro-batches; or the evaluation batch), the optimizer's state slots, the
 * loader's and evaluation's batch buffers, the data sets themselves (test
 * may be NULL) and one checkpoint read back. Compare out->total with ol_ctx_check_memory. */
typedef struct {
    ol_model_memory model;
    uint64_t optimizer; /* state slots */
    uint64_t batches;   /* loader and evaluation batch buffers */
    uint64_t data;      /* the training and test sets in memory */
    uint64_t checkpoint; /* one checkpoint read back whole (verification, resume) */
    uint64_t total;
    int64_t batch;      /* the largest global batch of a step */
} ol_train_memory;
int ol_train_memory_estimate(ol_ctx *ctx, const ol_train_params *tp, const ol_model_params *mp,
                             const ol_optim_params *op, const ol_dataset *train, const ol_dataset *test,
                             ol_train_memory *out);
/* Optimizer steps taken before data epoch `epochs` (fractions allowed)
 * begins, for a training set of n samples: round(epochs * steps per epoch)
 * with a constant batch; under a batch schedule the steps walked until that
 * many epochs of data are consumed (past the training length, continued at
 * the last batch). Converts lengths in epochs (warm-up, milestones) to steps. */
int64_t ol_train_epoch_steps(const ol_train_params *tp, int64_t n, double epochs);
/* The same for a length in samples: the steps taken before `samples` training
 * samples have been consumed, i.e. the first step that starts at or after
 * that many (a step that crosses it counts whole; exact integer arithmetic).
 * Converts lengths in tokens (samples = tokens / sequence length, rounded up). */
int64_t ol_train_sample_steps(const ol_train_params *tp, int64_t n, int64_t samples);

/* ol_train returns OL_EINTR after a stop request or the time limit (a
 * checkpoint was written, res->checkpoint names it) and OL_ENONFINITE when
 * the divergence guard gives up (the last good checkpoint stays the newest). */

int ol_train(ol_ctx *ctx, const ol_train_params *tp, ol_model *m, ol_optim *opt, const ol_sched_params *sched,
             const ol_dataset *train, const ol_dataset *test, const ol_train_hooks *hooks, ol_train_result *res);

/* Mean loss and accuracy of m on d (BatchNorm in eval mode); a language
 * model's over every position of every window (next-token top-1 accuracy). */
int ol_evaluate(ol_ctx *ctx, ol_model *m, const ol_dataset *d, int batch, double *loss, double *acc);

/* Accuracy and loss of the averaged softmax of the models in the given weight
 * files (ol_weights_export format), evaluated with m's architecture; m's own
 * weights are restored afterwards. */
int ol_evaluate_ensemble(ol_ctx *ctx, ol_model *m, const char *const *weight_files, int n, const ol_dataset *d,
                         int batch, double *loss, double *acc);

/* Recompute BatchNorm running statistics with `batches` forward passes over
 * training batches (cumulative average, as timm/schedule_free's BN update). */
int ol_recompute_bn_stats(ol_ctx *ctx, ol_model *m, const ol_dataset *d, int batch, int batches, uint64_t seed);

#ifdef __cplusplus
}
#endif
#endif
