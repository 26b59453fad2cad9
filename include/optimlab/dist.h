/* Data-parallel training over MPI.
 *
 * A communicator is MPI_COMM_WORLD when the process was started by mpirun or
 * srun (and optimlab was built with MPI), else a single-process stand-in with
 * the same API, so the trainer has one code path. Gradients are summed with
 * non-blocking all-reduces of contiguous buckets of the flat gradient buffer,
 * started during backward as soon as a bucket's gradients are final. */
#ifndef OPTIMLAB_DIST_H
#define OPTIMLAB_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "optimlab/core.h"
#include "optimlab/model.h"
#include "optimlab/optim.h"
#include "optimlab/params.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ol_comm ol_comm;

/* 1 when this process was launched as part of an MPI job (mpirun, srun). */
int ol_comm_launched_by_mpi(void);
/* Join the job (MPI_Init_thread when launched by MPI), or a 1-process stand-in. */
int ol_comm_init(ol_ctx *ctx, int *argc, char ***argv, ol_comm **out);
/* MPI_Finalize when ol_comm_init initialised MPI. NULL-safe. */
void ol_comm_finalize(ol_comm *c);
int ol_comm_rank(const ol_comm *c);
int ol_comm_size(const ol_comm *c);
int ol_comm_is_mpi(const ol_comm *c);
int ol_comm_built_with_mpi(void);
/* End the whole job at once (MPI_Abort), for a rank that cannot go on. */
void ol_comm_abort(ol_comm *c, int status);

/* Sum over ranks, in place. */
int ol_comm_allreduce(ol_ctx *ctx, ol_comm *c, float *buf, size_t n);
int ol_comm_allreduce_f64(ol_ctx *ctx, ol_comm *c, double *buf, size_t n);
int ol_comm_allreduce_max_f64(ol_ctx *ctx, ol_comm *c, double *buf, size_t n);
int ol_comm_bcast(ol_ctx *ctx, ol_comm *c, void *buf, size_t bytes, int root);
/* Gather n floats from every rank into recv (size * n floats, rank order) on root. */
int ol_comm_gather(ol_ctx *ctx, ol_comm *c, const float *send, size_t n, float *recv, int root);
int ol_comm_barrier(ol_ctx *ctx, ol_comm *c);

/* Collective error agreement: every rank passes its status; all return the
 * first failing rank's status, and ctx's message becomes that rank's message
 * ("rank R: " in front when R > 0) on every rank. OL_OK when all succeeded. */
int ol_comm_agree(ol_ctx *ctx, ol_comm *c, int status);
/* Fail on every rank when some rank's text differs from rank 0's (mismatched
 * binaries or configurations); what names the text in the message. */
int ol_comm_check_same(ol_ctx *ctx, ol_comm *c, const char *text, const char *what);

/* Communication accounting. bytes_sent counts what each rank sends, with a
 * ring all-reduce of N bytes over W ranks sending 2 (W-1)/W N. */
typedef struct {
    double bytes_sent;
    double seconds;      /* inside blocking collectives and waits */
    int64_t collectives;
} ol_comm_stats;
void ol_comm_get_stats(const ol_comm *c, ol_comm_stats *s);
void ol_comm_reset_stats(ol_comm *c);

/* Bucketed gradient all-reduce overlapped with backward.
 * Usage per step: ol_ddp_arm(d) before the backward of the last micro-batch;
 * ol_ddp_finish(ctx, d) after it: every gradient then holds the sum over
 * ranks. deterministic: gather the buckets and sum them in rank order, so the
 * result is bitwise the single-process accumulation of the same shards. */
typedef struct ol_ddp ol_ddp;
/* The buckets ol_ddp_create makes: contiguous float ranges [lo[k], hi[k]) of
 * the flat gradient buffer at tensor boundaries, each at least bucket_bytes
 * (1024 floats at least), listed from the end of the buffer (the order in
 * which backward finishes them). lo and hi hold ps->n entries; returns the count. */
int ol_ddp_bucket_layout(const ol_paramset *ps, size_t bucket_bytes, size_t *lo, size_t *hi);
int ol_ddp_create(ol_ctx *ctx, ol_comm *c, ol_model *m, size_t bucket_bytes, int deterministic, ol_ddp **out);
void ol_ddp_free(ol_ddp *d);
void ol_ddp_arm(ol_ddp *d);
int ol_ddp_finish(ol_ctx *ctx, ol_ddp *d);
/* measure 1: each bucket's squared norm is taken just before its all-reduce
 * starts, so after ol_ddp_finish ol_ddp_local_sq is the squared norm of this
 * rank's own gradient (the gradient noise scale's small batch); 0 when off. */
void ol_ddp_measure_local(ol_ddp *d, int measure);
double ol_ddp_local_sq(const ol_ddp *d);
/* Fraction of the all-reduced bytes whose all-reduce was started before the
 * backward pass finished (overlap), since the last reset. */
double ol_ddp_overlap(const ol_ddp *d);
/* The bytes behind ol_ddp_overlap: started during backward, and all. */
void ol_ddp_overlap_bytes(const ol_ddp *d, double *early, double *total);
void ol_ddp_reset_stats(ol_ddp *d);

/* PowerSGD gradient compression (Vogels et al. 2019; the semantics of
 * PyTorch's powerSGD_hook), in the trainer's sum convention. Each gradient
 * tensor viewed as a matrix [O, I*kh*kw] that compresses well enough becomes
 * M_r = this rank's gradient contribution + this rank's error; then
 *   P = sum_r M_r Q        (one all-reduce for all P's, with the exact sum of
 *                           the uncompressed tensors in the same message)
 *   P^ = Gram-Schmidt(P),  Q = sum_r M_r^T P^   (one all-reduce for all Q's)
 *   gradient = P^ Q^T ~ sum_r M_r,  error e_r = M_r - P^ Q^T / W,
 * so sum_r e_r is the part of the summed gradient not yet applied. Q starts
 * random (same seed on every rank) and is kept between steps (warm start).
 * Vectors (biases, norms) and matrices with O I <= min_compression (O + I) r
 * are summed exactly. */
typedef struct {
    int rank;               /* r > 0; each tensor uses min(r, O, I*kh*kw) */
    int64_t start_step;     /* the exact all-reduce for steps < start_step */
    double min_compression; /* compress when O I > min_compression (O + I) r (PyTorch: 2) */
    int error_feedback;     /* carry the compression error to the next step (1) */
    int warm_start;         /* start each power iteration from the last Q (1) */
    uint64_t seed;          /* initial Q */
} ol_powersgd_params;
ol_powersgd_params ol_powersgd_default_params(void);

typedef struct ol_powersgd ol_powersgd;
int ol_powersgd_create(ol_ctx *ctx, ol_comm *c, const ol_paramset *ps, const ol_powersgd_params *p,
                       ol_powersgd **out);
void ol_powersgd_free(ol_powersgd *p);
/* Collective: replace ps->grads (this rank's contribution) by the compressed
 * sum over ranks. The new error and Q stay pending until ol_powersgd_commit,
 * so a step the trainer skips (non-finite loss) leaves the state unchanged. */
int ol_powersgd_reduce(ol_ctx *ctx, ol_powersgd *p, ol_paramset *ps, int64_t step);
void ol_powersgd_commit(ol_powersgd *p);
/* 1 when parameter tensor i is compressed. */
int ol_powersgd_compressed(const ol_powersgd *p, int i);
/* Floats sent per compressed step (P's, Q's, uncompressed tensors) and the
 * floats of the gradients themselves. */
void ol_powersgd_sizes(const ol_powersgd *p, size_t *sent, size_t *dense);
/* This rank's committed error (ps->numel floats, zero outside compressed tensors). */
const float *ol_powersgd_error(const ol_powersgd *p);

/* DiLoCo (Douillard et al. 2023): every rank trains its own copy for H inner
 * steps on its own shards without communication; then the outer gradient
 * (global parameters of the last sync minus the mean of the ranks'
 * parameters) goes through the outer optimizer, and every rank continues from
 * the new global parameters. BatchNorm statistics are averaged at each sync.
 * Outer SGD with lr 1 and no momentum is Local SGD (parameter averaging). */
typedef struct {
    int h;                 /* inner steps per round; 0 = off */
    ol_optim_params outer; /* outer optimizer (Nesterov SGD, lr 0.7, momentum 0.9) */
} ol_diloco_params;
ol_diloco_params ol_diloco_default_params(void);

typedef struct ol_diloco ol_diloco;
/* The global parameters start as ps->params (identical on every rank). */
int ol_diloco_create(ol_ctx *ctx, ol_comm *c, const ol_paramset *ps, const ol_diloco_params *p, ol_diloco **out);
void ol_diloco_free(ol_diloco *d);
/* Collective: the outer step; afterwards ps->params and ps->buffers are the
 * new global model on every rank (bitwise identical). */
int ol_diloco_sync(ol_ctx *ctx, ol_diloco *d, ol_paramset *ps);
/* Exchange ps's parameters and buffers with the global model of the last
 * sync (evaluation between syncs); a second call undoes it. */
void ol_diloco_swap_global(ol_diloco *d, ol_paramset *ps);
const float *ol_diloco_global(const ol_diloco *d);
ol_optim *ol_diloco_outer(ol_diloco *d);
int64_t ol_diloco_syncs(const ol_diloco *d);
void ol_diloco_set_syncs(ol_diloco *d, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
