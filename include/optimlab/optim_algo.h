/* Writing an optimizer: the algorithm descriptor and the arguments of one step.
 *
 * Intended usage (a plugin, see examples/ and docs/extending.md):
 *   static int my_step(ol_ctx *ctx, const ol_optim_step_args *a) { ... loop over a->chunks ... }
 *   static const ol_optim_algo my_algo = {
 *       .name = "my-momentum", .n_slots = 1, .slot_names = {"buf"},
 *       .wd_style = OL_WD_COUPLED, .mom_kind = OL_MOM_MOMENTUM, .options = OL_OPTION_MOMENTUM,
 *       .n_hparams = 1, .hparams = {{"beta", 0.9, 0.0, 1.0, "EMA coefficient"}},
 *       .step = my_step};
 *   int optimlab_plugin_init(ol_ctx *ctx) { return ol_optim_register(ctx, &my_algo); }
 *
 * The library runs the common part of every step before calling `step`: it
 * checks the lr, applies the parameter groups (lr_mult, wd_mult per tensor
 * kind), maximize, weight decay in the algorithm's style and the LARC wrapper,
 * and hands the result to the kernel as one ol_optim_tcoef per tensor. The
 * kernel only reads a->grads through the affine map
 *     g = (tc.gs * grad + tc.gp * p) * tc.ga
 * and shrinks p by tc.shrink (decoupled decay), so every feature reaches it.
 * Built-in optimizers are described by the same struct (one file per family in src/optim/). */
#ifndef OPTIMLAB_OPTIM_ALGO_H
#define OPTIMLAB_OPTIM_ALGO_H

#include <stddef.h>
#include <stdint.h>

#include "optimlab/core.h"
#include "optimlab/optim.h"
#include "optimlab/params.h"

#ifdef __cplusplus
extern "C" {
#endif

#define OL_OPTIM_MAX_SCALARS 4
#define OL_OPTIM_MAX_ALIASES 4
#define OL_OPTIM_NAME_MAX 48 /* longest name + 1 (checkpoints store it) */

/* How the algorithm takes its weight decay. */
typedef enum {
    OL_WD_COUPLED = 0, /* L2 through tc.gp; decoupled (tc.shrink = 1 - lr*wd) when op.decoupled_wd */
    OL_WD_DECOUPLED,   /* always tc.shrink = 1 - lr*wd (AdamW, Lion) */
    OL_WD_SELF         /* the kernel applies tc.wd itself (LARS, LAMB, Schedule-Free) */
} ol_wd_style;

/* Which value a momentum schedule (one-cycle, cyclic) replaces: a->mom. */
typedef enum { OL_MOM_NONE = 0, OL_MOM_MOMENTUM, OL_MOM_BETA1 } ol_mom_kind;

/* Standard options of ol_optim_params an algorithm reads. The CLI refuses an
 * option for an algorithm that does not list it; lr, weight decay, maximize,
 * parameter groups and gradient clipping apply to every algorithm. */
enum {
    OL_OPTION_MOMENTUM = 1u << 0,
    OL_OPTION_DAMPENING = 1u << 1,
    OL_OPTION_NESTEROV = 1u << 2,
    OL_OPTION_DECOUPLED_WD = 1u << 3, /* op.decoupled_wd selects decoupled decay */
    OL_OPTION_BETAS = 1u << 4,
    OL_OPTION_EPS = 1u << 5,
    OL_OPTION_AMSGRAD = 1u << 6,
    OL_OPTION_EPS_INSIDE_SQRT = 1u << 7,
    OL_OPTION_ALPHA = 1u << 8,
    OL_OPTION_CENTERED = 1u << 9,
    OL_OPTION_RHO = 1u << 10,
    OL_OPTION_LR_DECAY = 1u << 11,
    OL_OPTION_INITIAL_ACCUMULATOR = 1u << 12,
    OL_OPTION_MOMENTUM_DECAY = 1u << 13,
    OL_OPTION_TRUST_COEFFICIENT = 1u << 14,
    OL_OPTION_TRUST_CLIP = 1u << 15, /* trust_clip and always_adapt */
    OL_OPTION_LAMB = 1u << 16,       /* bias_correction, grad_averaging, max_grad_norm */
    OL_OPTION_SCHEDULE_FREE = 1u << 17,
    OL_OPTION_NO_LARC = 1u << 18 /* has its own trust ratio: cannot be wrapped in LARC */
};

/* An algorithm's own hyperparameter: op.hparam[i] holds its value. */
typedef struct {
    const char *name; /* [a-z0-9_-], unique within the algorithm */
    double def, lo, hi; /* default and the closed range accepted */
    const char *help;
} ol_optim_hparam;

/* An alternative name; adjust (optional) changes the defaults, e.g. "nesterov". */
typedef struct {
    const char *name;
    void (*adjust)(ol_optim_params *op);
} ol_optim_alias;

/* A piece of one tensor: the kernels loop over chunks, one OpenMP iteration each. */
typedef struct {
    int tensor;        /* index into ps->t and a->tc */
    size_t begin, end; /* absolute float offsets into params, grads and slots */
} ol_optim_chunk;

/* Per-tensor coefficients of this step, set by the library before step(). */
typedef struct {
    double lr;         /* lr * lr_mult of the tensor's kind */
    double wd;         /* weight_decay * wd_mult (0 when LARC took it over) */
    double gs, gp, ga; /* effective gradient (gs*g + gp*p) * ga: maximize, L2, LARC */
    double shrink;     /* decoupled decay factor 1 - lr*wd, 1 otherwise */
    double ratio;      /* trust ratio (LARS/LAMB), 1 otherwise */
    int adapt;         /* trust-ratio kernels: this tensor gets one */
} ol_optim_tcoef;

/* Everything one step of a user kernel sees. Buffers hold numel floats laid
 * out like the parameters; slot[s] is NULL for a slot slots_used left out. */
typedef struct {
    float *params;
    const float *grads;
    size_t numel;
    float *slot[OL_OPTIM_MAX_SLOTS];
    double *scalar; /* n_scalars doubles, checkpointed with the slots */
    const ol_optim_chunk *chunks;
    int nchunks;
    ol_optim_tcoef *tc; /* per tensor; a kernel may set ratio/ga (trust ratios) */
    const ol_paramset *ps; /* tensor names, kinds and offsets */
    int64_t t;             /* completed steps before this one (0 at the first) */
    double lr;             /* the step's lr before the per-kind multipliers */
    double mom;            /* momentum / beta1 in effect (a momentum schedule's value) */
    int par;               /* run the chunk loop in parallel (#pragma omp parallel for if (a->par)) */
    const double *hparam;  /* values of algo->hparams, in order */
    const ol_optim_params *op; /* all settings (beta2, eps, ...) */
    ol_optim *optim;       /* for ol_optim_tensor_sumsq */
} ol_optim_step_args;

struct ol__optim_impl; /* built-ins only */

typedef struct ol_optim_algo {
    const char *name;
    const char *summary; /* one line for listings */
    ol_optim_alias aliases[OL_OPTIM_MAX_ALIASES];
    int n_slots;
    const char *slot_names[OL_OPTIM_MAX_SLOTS];
    int (*slots_used)(const ol_optim_params *op); /* optional: bit mask of slots to allocate */
    int n_scalars;
    const char *scalar_names[OL_OPTIM_MAX_SCALARS];
    ol_wd_style wd_style;
    ol_mom_kind mom_kind;
    unsigned options; /* OL_OPTION_* it reads */
    int n_hparams;
    ol_optim_hparam hparams[OL_OPTIM_MAX_HPARAMS];
    void (*defaults)(ol_optim_params *op);                /* optional: its own lr, betas, ... */
    int (*validate)(ol_ctx *ctx, const ol_optim_params *op); /* optional, after the common checks */
    double (*bytes_per_param)(const ol_optim_params *op);  /* optional: benchmark accounting */
    /* optional: state at creation (slots are zero-filled); a->t is 0 */
    void (*init)(const ol_optim_step_args *a);
    /* the update; return OL_OK or ol_optim_error(ctx, ...) */
    int (*step)(ol_ctx *ctx, const ol_optim_step_args *a);
    const struct ol__optim_impl *impl; /* built-ins only: leave NULL */
} ol_optim_algo;

/* Register an algorithm in ctx (the descriptor is copied; its strings and
 * functions must outlive ctx). OL_EINVAL for a malformed descriptor, OL_ENAME
 * when the name or an alias is taken. */
int ol_optim_register(ol_ctx *ctx, const ol_optim_algo *algo);
/* Built-ins first, then those registered in ctx (ctx may be NULL); matches
 * names and aliases. OL_ENAME when none. */
int ol_optim_algo_find(const ol_ctx *ctx, const char *name, const ol_optim_algo **out);
/* All algorithms: built-ins, then ctx's in registration order. */
int ol_optim_algo_count(const ol_ctx *ctx);
const ol_optim_algo *ol_optim_algo_at(const ol_ctx *ctx, int i);
/* Defaults for a name or alias of any algorithm (hyperparameters at their defaults). */
int ol_optim_params_for(ol_ctx *ctx, const char *name, ol_optim_params *out);
/* The algorithm params select (NULL for an unknown type). */
const ol_optim_algo *ol_optim_params_algo(const ol_optim_params *op);
const char *ol_optim_params_name(const ol_optim_params *op);
/* Set a named hyperparameter: OL_ENAME unknown, OL_ERANGE outside [lo, hi]. */
int ol_optim_hparam_set(ol_ctx *ctx, ol_optim_params *op, const char *name, double value);
/* Per-tensor sums of squares of a and b (b may be NULL) into out[2t], out[2t+1],
 * in a fixed order (the same for any thread count). Call from a step. */
void ol_optim_tensor_sumsq(ol_optim *o, const float *a, const float *b, double *out);
/* Record an error from a kernel: returns code. */
int ol_optim_error(ol_ctx *ctx, int code, const char *msg);

/* Plugins: dlopen path and call its `int optimlab_plugin_init(ol_ctx *ctx)`,
 * which registers algorithms. The library stays loaded until ctx is freed. */
#define OL_PLUGIN_INIT "optimlab_plugin_init"
int ol_plugin_load(ol_ctx *ctx, const char *path);

#ifdef __cplusplus
}
#endif
#endif
