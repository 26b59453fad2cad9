/* Optimizer internals: a small vtable per algorithm and a chunk table that
 * splits the flat buffers into pieces for one OpenMP loop per step.
 *
 * Before an algorithm's step runs, ol_optim_step fills one ol__tcoef per
 * tensor (learning rate and weight decay after the kind multipliers, and the
 * affine map from the stored gradient to the one the algorithm sees), so every
 * kernel handles maximize, coupled L2 and the LARC wrapper the same way:
 *     g' = (gs * grad + gp * p) * ga                                          */
#ifndef OL_OPTIM_INTERNAL_H
#define OL_OPTIM_INTERNAL_H

#include <math.h>

#include "core/internal.h"
#include "optimlab/optim.h"
#include "optimlab/optim_algo.h"
#include "optimlab/sched.h"

#define OL__OPT_CHUNK 16384
#define OL__OPT_MAX_SCALARS OL_OPTIM_MAX_SCALARS
/* Independent partial sums per chunk in the norm loops: enough lanes to
 * vectorise, a fixed pattern so the result does not depend on threads. */
#define OL__OPT_LANES 16
/* Below this many parameters a step runs on one thread: waking the team
 * costs more than the work (and stalls when cores are shared). */
#define OL__OPT_PAR_MIN 65536

/* The public step types are the ones the built-in kernels use. */
typedef ol_optim_chunk ol__chunk;
typedef ol_optim_tcoef ol__tcoef;

/* A built-in's kernel hooks: they see the whole ol_optim (the public
 * descriptor, ol_optim_algo, holds its metadata). */
typedef struct ol__optim_impl {
    ol_optim_type type;
    void (*init)(ol_optim *o); /* optional: set state at creation (initial accumulator, scalars) */
    int (*step)(ol_ctx *ctx, ol_optim *o, ol_paramset *ps, const ol_optim_hyper *h);
    int (*to_eval)(ol_ctx *ctx, ol_optim *o, ol_paramset *ps);  /* optional */
    int (*to_train)(ol_ctx *ctx, ol_optim *o, ol_paramset *ps); /* optional */
} ol__optim_impl;

struct ol_optim {
    const ol_optim_algo *vt;
    ol_optim_params p;
    float *slot[OL_OPTIM_MAX_SLOTS];
    double scalar[OL__OPT_MAX_SCALARS];
    int64_t t; /* completed steps */
    int eval_mode;
    size_t numel;
    ol__chunk *chunks;
    int nchunks;
    int ntensors;
    int par; /* run the chunk loops in parallel (numel >= OL__OPT_PAR_MIN) */
    ol__tcoef *tc; /* per tensor, filled before each step */
    double mom;    /* momentum / beta1 in effect this step */
    double *tnorm; /* per-tensor scratch for trust ratios: [ntensors * 4] */
    double *cpart; /* per-chunk scratch: [nchunks * 4] */
};

/* The built-ins, one per line of OL_OPTIM_BUILTINS (defined in their family's file). */
#define OL__OPT_DECL(e, n) extern const ol_optim_algo ol__optim_##n;
OL_OPTIM_BUILTINS(OL__OPT_DECL)
#undef OL__OPT_DECL

/* The built-in descriptor of a type (NULL outside 0..OL_OPT_COUNT-1). */
const ol_optim_algo *ol__optim_builtin(ol_optim_type t);

/* The SGD momentum update with the per-tensor coefficients in o->tc, on
 * slot 0 as the momentum buffer (SGD and LARS). */
int ol__sgd_update(ol_ctx *ctx, ol_optim *o, ol_paramset *ps);

/* Per-tensor sums of squares of a and b (b may be NULL): out[2*t] and
 * out[2*t+1]. Per-chunk partials, combined per tensor in chunk order, so the
 * result is the same for any thread count. */
void ol__optim_tensor_sumsq(ol_optim *o, const float *a, const float *b, double *out);

/* Sum of x[i]^2 over [lo, hi) in a fixed pattern: OL__OPT_NORM_LANES float
 * partial sums (as PyTorch, which takes norms in float32; each lane adds at
 * most 256 squares of a chunk), then the tail, combined in double. Double
 * lanes would make the pass compute-bound: the conversions alone cost more
 * than the memory traffic. */
#define OL__OPT_NORM_LANES 64
static inline double ol__sumsq_lanes(const float *restrict x, size_t lo, size_t hi)
{
    float ax[OL__OPT_NORM_LANES] = {0};
    size_t i = lo;
    for (; i + OL__OPT_NORM_LANES <= hi; i += OL__OPT_NORM_LANES) {
#pragma omp simd
        for (int j = 0; j < OL__OPT_NORM_LANES; j++)
            ax[j] += x[i + j] * x[i + j];
    }
    double s = 0.0;
    for (; i < hi; i++) /* the tail apart keeps the lanes in registers */
        s += (double)x[i] * (double)x[i];
    for (int j = 0; j < OL__OPT_NORM_LANES; j++)
        s += ax[j];
    return s;
}

/* torch.lerp for float: exact at both ends for any weight. */
static inline float ol__lerp(float a, float b, float w)
{
    return fabsf(w) < 0.5f ? a + w * (b - a) : b - (b - a) * (1.0f - w);
}

#endif
