/* Optimizer internals: a small vtable per algorithm and a chunk table that
 * splits the flat buffers into pieces for one OpenMP loop per step. */
#ifndef OL_OPTIM_INTERNAL_H
#define OL_OPTIM_INTERNAL_H

#include "core/internal.h"
#include "optimlab/optim.h"

#define OL__OPT_CHUNK 16384
#define OL__OPT_MAX_SCALARS 4

typedef struct {
    int tensor;        /* index into ps->t */
    size_t begin, end; /* absolute float offsets */
} ol__chunk;

typedef struct ol__optim_vt {
    ol_optim_type type;
    const char *name;
    int n_slots;
    const char *slot_names[OL_OPTIM_MAX_SLOTS];
    int n_scalars;
    const char *scalar_names[OL__OPT_MAX_SCALARS];
    int (*validate)(ol_ctx *ctx, const ol_optim_params *op); /* optional, after the common checks */
    int (*step)(ol_ctx *ctx, ol_optim *o, ol_paramset *ps, const ol_optim_hyper *h);
    int (*to_eval)(ol_ctx *ctx, ol_optim *o, ol_paramset *ps);  /* optional */
    int (*to_train)(ol_ctx *ctx, ol_optim *o, ol_paramset *ps); /* optional */
} ol__optim_vt;

struct ol_optim {
    const ol__optim_vt *vt;
    ol_optim_params p;
    float *slot[OL_OPTIM_MAX_SLOTS];
    double scalar[OL__OPT_MAX_SCALARS];
    int64_t t; /* completed steps */
    int eval_mode;
    size_t numel;
    ol__chunk *chunks;
    int nchunks;
    int ntensors;
    double *tnorm; /* per-tensor scratch for trust ratios: [ntensors * 4] */
    double *cpart; /* per-chunk scratch: [nchunks * 4] */
};

/* Registered algorithms (one per source file). */
extern const ol__optim_vt ol__optim_sgd;
const ol__optim_vt *ol__optim_lookup(ol_optim_type t);

/* Per-tensor hyperparameters after the kind multipliers. */
static inline double ol__opt_lr(const ol_optim *o, const ol_paramset *ps, int ti, double lr)
{
    return lr * o->p.lr_mult[ps->t[ti].kind];
}
static inline double ol__opt_wd(const ol_optim *o, const ol_paramset *ps, int ti)
{
    return o->p.weight_decay * o->p.wd_mult[ps->t[ti].kind];
}

#endif
