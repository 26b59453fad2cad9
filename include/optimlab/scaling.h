/* Scaling planner: the alpha-beta cost model of data-parallel training with
 * optimlab's three gradient modes (exact bucketed all-reduce overlapped with
 * backward, PowerSGD, DiLoCo), fed by measurements of one worker.
 *
 * All-reduce of S bytes over N workers, link bandwidth B (bytes/s), latency a:
 *   ring (Patarasuk & Yuan 2009; bandwidth-optimal):
 *       2 (N-1)/N S/B + 2 (N-1) a
 *   tree: binomial-tree reduce then binomial-tree broadcast (Thakur,
 *       Rabenseifner & Gropp 2005; latency-optimal, not pipelined):
 *       2 ceil(log2 N) (a + S/B)
 *   hier: N = M nodes x G workers; ring reduce-scatter inside each node, ring
 *       all-reduce of the node's S bytes between nodes over one inter-node
 *       link per node (G concurrent rings of S/G bytes sharing it), ring
 *       all-gather inside the node:
 *       2 (G-1)/G S/Bi + 2 (G-1) ai + 2 (M-1)/M S/B + 2 (M-1) a
 * Small control messages (optimlab's per-step agreement, loss sum and stop
 * flag) use the latency-optimal tree, as MPI libraries pick for them.
 *
 * Intended usage:
 *   ol_scaling_profile prof;                 // one worker, measured here
 *   ol_scaling_profile_model(ctx, model, batch, steps, 0, &prof);
 *   ol_scaling_workload w = ol_scaling_workload_from_profile(&prof, batch);
 *   ol_net net = {OL_TOPO_RING, 12.5e9, 5e-6, 1, 0, 0};
 *   ol_net_check(ctx, &net);
 *   ol_plan_variant v = {OL_PLAN_EXACT, 0, 0, 0};
 *   ol_plan_point p;  ol_scaling_predict(ctx, &w, &net, &v, 64, 128.0, &p);
 *   ol_scaling_profile_free(&prof);
 * Times are seconds, sizes bytes, bandwidths bytes per second. */
#ifndef OPTIMLAB_SCALING_H
#define OPTIMLAB_SCALING_H

#include <stddef.h>

#include "optimlab/core.h"
#include "optimlab/dist.h"
#include "optimlab/model.h"
#include "optimlab/params.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { OL_TOPO_RING = 0, OL_TOPO_TREE, OL_TOPO_HIER, OL_TOPO_COUNT } ol_topology;
const char *ol_topology_name(ol_topology t);
int ol_topology_from_name(const char *name, ol_topology *out);

typedef struct {
    ol_topology topo;
    double bandwidth;       /* a worker's link; hier: a node's inter-node link */
    double latency;         /* per message (alpha); hier: between nodes */
    int gpus_per_node;      /* hier: workers per node (G) */
    double intra_bandwidth; /* hier: links inside a node */
    double intra_latency;
} ol_net;

/* OL_EINVAL with a one-line message for a non-positive or non-finite
 * bandwidth, a negative latency, or hier without G >= 1 and intra links. */
int ol_net_check(ol_ctx *ctx, const ol_net *net);
/* OL_EINVAL when net cannot place n workers (hier: n > G not a multiple of G). */
int ol_net_check_workers(ol_ctx *ctx, const ol_net *net, int n);
/* One all-reduce of bytes over n workers with net's topology; 0 for n <= 1. */
double ol_allreduce_time(const ol_net *net, int n, double bytes);
/* The formulas themselves (n >= 1). */
double ol_allreduce_ring(int n, double bytes, double bandwidth, double latency);
double ol_allreduce_tree(int n, double bytes, double bandwidth, double latency);
/* A small message: binomial trees, inside and between nodes for hier. */
double ol_allreduce_small(const ol_net *net, int n, double bytes);

/* A gradient bucket of the exact mode: its bytes, and when backward has made
 * its gradients final (seconds after backward started). */
typedef struct {
    double ready;
    double bytes;
} ol_scaling_bucket;

/* optimlab's overlap (ol_ddp): each bucket's all-reduce starts when it is
 * ready, one all-reduce at a time on the link in the order they become ready
 * (the order of b); the step waits after backward for the last one. Returns
 * the exposed time: when the last all-reduce ends minus `backward` (>= 0).
 * *busy (optional): the sum of the all-reduce times. */
double ol_scaling_exposed(const ol_net *net, int n, const ol_scaling_bucket *b, int nb, double backward, double *busy);

/* One worker's measured step, for the model of every worker count. */
typedef struct {
    double fwd_per_sample, bwd_per_sample; /* forward+loss and backward, seconds per sample */
    double update;                         /* optimizer step, seconds */
    ol_scaling_bucket *buckets;            /* ready: fraction (0..1] of backward */
    int nbuckets;
    double grad_bytes;   /* what the exact mode all-reduces per step */
    double diloco_bytes; /* DiLoCo's sync message: parameters and BatchNorm statistics */
} ol_scaling_workload;

typedef enum { OL_PLAN_EXACT = 0, OL_PLAN_POWERSGD, OL_PLAN_DILOCO, OL_PLAN_COUNT } ol_plan_method;

typedef struct {
    ol_plan_method method;
    int param;          /* PowerSGD rank r or DiLoCo H */
    double sent_bytes;  /* PowerSGD: both messages of a step (ol_powersgd_sizes x 4) */
    double compression; /* PowerSGD: its compute per step (seconds) */
} ol_plan_variant;

typedef struct {
    double compute;     /* forward, backward, update (+ PowerSGD's compression) */
    double comm;        /* exposed communication (+ DiLoCo's amortised outer step) */
    double step;        /* compute + comm */
    double throughput;  /* samples per second over all workers */
    double efficiency;  /* throughput / (n x one worker's at the same per-worker batch, no communication) */
    double busy;        /* all-reduce time per step, hidden or not */
} ol_plan_point;

/* The predicted step of n workers with batch samples each. */
int ol_scaling_predict(ol_ctx *ctx, const ol_scaling_workload *w, const ol_net *net, const ol_plan_variant *v, int n,
                       double batch, ol_plan_point *out);

/* Measure one worker: forward, backward and an SGD-momentum update of m on
 * random inputs of `batch` samples (medians over `steps` after one warm-up),
 * and the moment within backward at which each of ol_ddp_bucket_layout's
 * buckets is final (the backward hook ol_ddp uses). bucket_bytes 0: the
 * trainer's default, 256 KiB. */
typedef struct {
    double fwd, bwd, update; /* seconds per step at `batch` */
    int batch;
    ol_scaling_bucket *buckets; /* ready as a fraction of bwd */
    int nbuckets;
    size_t numel, bnumel;       /* floats of parameters (padding included) and buffers */
} ol_scaling_profile;
int ol_scaling_profile_model(ol_ctx *ctx, ol_model *m, int batch, int steps, size_t bucket_bytes,
                             ol_scaling_profile *out);
void ol_scaling_profile_free(ol_scaling_profile *p);
/* The workload of p (borrows p's buckets). */
ol_scaling_workload ol_scaling_workload_from_profile(const ol_scaling_profile *p);

/* PowerSGD of rank r on ps's tensors: the bytes one step sends (from
 * ol_powersgd_sizes) and the median time of ol_powersgd_reduce over reps
 * calls on comm, which must be a single process (so the time is the
 * compression's compute alone); reps 0: the bytes only. ps's gradients are
 * overwritten. */
int ol_scaling_measure_powersgd(ol_ctx *ctx, ol_comm *comm, ol_paramset *ps, int r, int reps, double *sent_bytes,
                                double *seconds);

/* Plot efficiency against workers (log2 x axis), one line per series. */
typedef struct {
    const char *label;
    const int *workers;
    const double *efficiency;
    int n;
} ol_plan_series;
int ol_scaling_plot(ol_ctx *ctx, const ol_plan_series *s, int ns, const char *title, const char *path);

#ifdef __cplusplus
}
#endif
#endif
