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
int ol_ddp_create(ol_ctx *ctx, ol_comm *c, ol_model *m, size_t bucket_bytes, int deterministic, ol_ddp **out);
void ol_ddp_free(ol_ddp *d);
void ol_ddp_arm(ol_ddp *d);
int ol_ddp_finish(ol_ctx *ctx, ol_ddp *d);
/* Fraction of the all-reduced bytes whose all-reduce was started before the
 * backward pass finished (overlap), since the last reset. */
double ol_ddp_overlap(const ol_ddp *d);
void ol_ddp_reset_stats(ol_ddp *d);

#ifdef __cplusplus
}
#endif
#endif
