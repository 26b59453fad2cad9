/* Learning-rate (and momentum) schedules: pure functions of the step.
 *
 * A schedule is parsed once into ol_sched_params; ol_sched_lr(s, t) is the
 * learning rate of optimizer step t (t = 0 for the first step), with no state.
 * Parameters given in epochs are converted with steps_per_epoch. With
 * per_epoch set, the main schedule changes only at epoch boundaries (PyTorch's
 * scheduler.step() once per epoch) while a warm-up stays per step (Goyal et al.).
 * A warm-up of warmup_steps runs from warmup_start_factor times the main
 * schedule's first value up to that value; the main schedule then starts at 0
 * and lasts total_steps - warmup_steps (SequentialLR([LinearLR, X], [W])). */
#ifndef OPTIMLAB_SCHED_H
#define OPTIMLAB_SCHED_H

#include <stdint.h>

#include "optimlab/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The built-in schedules, one line each: X(ENUM, name). The enum and the
 * registry derive from this list; each schedule's descriptor (name, aliases,
 * defaults, checks, the function of the step and its command-line options)
 * lives beside that function in src/sched/<family>.c as ol__sched_<name>.
 * New entries go at the end. */
#define OL_SCHED_BUILTINS(X)                                                                                        \
    X(CONSTANT, constant)                                                                                           \
    X(STEP, step)               /* lr * gamma^floor(t / step_size) */                                               \
    X(MULTISTEP, multistep)     /* lr * gamma^(number of milestones passed) */                                      \
    X(EXPONENTIAL, exponential) /* lr * gamma^t */                                                                  \
    X(POLYNOMIAL, polynomial)   /* lr * (1 - t/total)^power */                                                      \
    X(LINEAR, linear)           /* lr * (start_factor -> end_factor over total_iters) */                            \
    X(COSINE, cosine)           /* eta_min + (lr - eta_min)(1 + cos(pi t / t_max)) / 2 */                           \
    X(COSINE_RESTARTS, cosine_restarts) /* SGDR: t_0, t_mult */                                                     \
    X(CYCLIC, cyclic)           /* Smith 2017: triangular, triangular2, exp_range */                                \
    X(ONECYCLE, onecycle)       /* Smith 2018 */                                                                    \
    X(WSD, wsd)                 /* warmup-stable-decay */                                                           \
    X(SEQUENTIAL, sequential)   /* parts[i] from milestone i-1 on, each restarted at 0 (PyTorch SequentialLR) */    \
    X(PLATEAU, plateau)         /* constant here; ol_plateau lowers it from a validation metric */

typedef enum {
#define OL__SCHED_ENUM(e, n) OL_SCHED_##e,
    OL_SCHED_BUILTINS(OL__SCHED_ENUM)
#undef OL__SCHED_ENUM
    OL_SCHED_COUNT,
    OL_SCHED_USER = 100 /* a registered schedule: ol_sched_params.user */
} ol_sched_type;

#define OL_SCHED_MAX_PARAMS 8
#define OL_SCHED_MAX_ALIASES 4
#define OL_SCHED_MAX_OPTIONS 12

struct ol_sched_params;

/* A parameter of a schedule: ol_sched_params.user_param[i]. */
typedef struct {
    const char *name;
    double def, lo, hi; /* default and the closed range accepted */
    const char *help;
} ol_sched_param;

/* How the text of a schedule's command-line option becomes a field of
 * ol_sched_params (the CLI converts epochs with the run's steps per epoch). */
typedef enum {
    OL_SOPT_NUMBER = 0, /* double in [lo, hi] */
    OL_SOPT_INT,        /* int in [lo, hi] */
    OL_SOPT_STEPS,      /* int64_t count of steps in [lo, hi] */
    OL_SOPT_EPOCHS,     /* int64_t length given in epochs in [lo, hi] (fractions allowed), stored in steps, >= 1 */
    OL_SOPT_EPOCH_LIST, /* milestones[] and nmilestones: epochs, comma-separated */
    OL_SOPT_CHOICE,     /* int (or enum): the index of the value in choices ("a,b,c") */
    OL_SOPT_FLAG,       /* int set to 1 by the flag */
    OL_SOPT_NOT_FLAG    /* int set to 0 by the flag */
} ol_sched_opt_kind;

/* A command-line option of a built-in schedule. Several schedules may list
 * the same option (--gamma: step, multistep, exponential); they agree on its
 * kind, default and value name, and the CLI's help joins their help texts. */
typedef struct {
    const char *name;       /* long option, without "--" */
    ol_sched_opt_kind kind;
    size_t field;           /* offsetof(ol_sched_params, ...) it sets */
    double lo, hi;          /* the values accepted */
    const char *def;        /* default text ("": the schedule's own value, see help) */
    const char *metavar;
    const char *help;       /* what it means for this schedule */
    const char *choices;    /* OL_SOPT_CHOICE */
    const char *if_unset;   /* parsed when the option is empty: a value, or "--NAME" for that option's value */
    int required;           /* the schedule needs it */
} ol_sched_option;

struct ol__sched_impl; /* built-ins only */

/* A schedule: a pure function of the step. step counts from 0 after the
 * warm-up (which the library puts in front, as for every schedule) and
 * total_steps is the length of that main part; base_lr is the optimizer's lr.
 * Intended usage (a plugin, see examples/inv_sqrt_sched.c):
 *   static double my_lr(const double *p, int64_t step, int64_t total, double base_lr) {...}
 *   static const ol_sched_algo algo = {.name = "my-sched", .n_params = 1,
 *       .params = {{"decay", 0.5, 0.0, 1.0, "..."}}, .lr = my_lr};
 *   int optimlab_plugin_init(ol_ctx *ctx) { return ol_sched_register(ctx, &algo); }
 * Built-in schedules are described by the same struct (src/sched/): those
 * that read ol_sched_params' named fields (gamma, milestones, ...) do it
 * through impl; `options` are their command-line options (the command line
 * is built before plugins load: registered schedules take --sched-param). */
typedef struct ol_sched_algo {
    const char *name;
    const char *summary;
    const char *aliases[OL_SCHED_MAX_ALIASES]; /* other names ("sgdr"), NULL-terminated */
    int n_params;
    ol_sched_param params[OL_SCHED_MAX_PARAMS];
    double (*lr)(const double *params, int64_t step, int64_t total_steps, double base_lr);
    ol_sched_option options[OL_SCHED_MAX_OPTIONS]; /* built-ins: up to the first without a name */
    const struct ol__sched_impl *impl;            /* built-ins only: leave NULL */
} ol_sched_algo;

/* Register a schedule in ctx (copied; strings and function must outlive ctx).
 * OL_EINVAL for a malformed descriptor (no lr function, bad parameters, impl
 * or options set); OL_ENAME when the name or an alias is taken. */
int ol_sched_register(ol_ctx *ctx, const ol_sched_algo *algo);
/* A schedule by name or alias: built-ins, then ctx's (ctx may be NULL). OL_ENAME when none. */
int ol_sched_algo_find(const ol_ctx *ctx, const char *name, const ol_sched_algo **out);
/* All schedules: the OL_SCHED_COUNT built-ins (index = ol_sched_type), then
 * ctx's in registration order. */
int ol_sched_algo_count(const ol_ctx *ctx);
const ol_sched_algo *ol_sched_algo_at(const ol_ctx *ctx, int i);
/* Defaults for a name or alias of any schedule (parameters at their defaults). */
int ol_sched_params_for(const ol_ctx *ctx, const char *name, struct ol_sched_params *out);
/* Set a schedule's named parameter (params[]): OL_ENAME unknown, OL_ERANGE outside [lo, hi]. */
int ol_sched_param_set(ol_ctx *ctx, struct ol_sched_params *sp, const char *name, double value);
/* The schedule sp selects (NULL for an unknown type), and its name. */
const ol_sched_algo *ol_sched_params_algo(const struct ol_sched_params *sp);
const char *ol_sched_params_name(const struct ol_sched_params *sp);

typedef enum { OL_CYCLIC_TRIANGULAR = 0, OL_CYCLIC_TRIANGULAR2, OL_CYCLIC_EXP_RANGE } ol_cyclic_mode;
/* Shape of the WSD decay phase (MiniCPM / Hagele et al. 2024). */
typedef enum { OL_WSD_LINEAR = 0, OL_WSD_COSINE, OL_WSD_SQRT } ol_wsd_shape;

#define OL_SCHED_MAX_MILESTONES 32

typedef struct ol_sched_params {
    ol_sched_type type;
    const ol_sched_algo *user;              /* type OL_SCHED_USER: the registered schedule */
    double user_param[OL_SCHED_MAX_PARAMS]; /* values of the schedule's params[] */
    double base_lr;          /* the optimizer's lr: initial or peak value */
    int64_t total_steps;     /* length of training in optimizer steps */
    int64_t steps_per_epoch; /* for parameters given in epochs */
    int per_epoch;           /* change only at epoch boundaries */

    /* step / multistep / exponential */
    int64_t step_size; /* steps */
    double gamma;
    int64_t milestones[OL_SCHED_MAX_MILESTONES]; /* steps (epochs with per_epoch); sequential: part starts */
    int nmilestones;
    /* polynomial / linear */
    double power;
    double start_factor, end_factor;
    int64_t total_iters; /* 0: total_steps */
    /* cosine (and the floor of cosine, SGDR, polynomial and WSD) */
    int64_t t_max;    /* 0: total_steps - warmup */
    double eta_min;   /* absolute floor */
    double min_lr_ratio; /* floor as a fraction of base_lr (used when > 0) */
    /* warm restarts */
    int64_t t_0;
    int t_mult;
    /* cyclic: base_lr is the lower bound, max_lr the upper one; one-cycle:
     * max_lr is the peak (0: base_lr) */
    double max_lr;
    int64_t step_size_up, step_size_down; /* step_size_down 0: = step_size_up */
    ol_cyclic_mode cyclic_mode;
    double cyclic_gamma;
    /* one-cycle */
    double pct_start;
    double div_factor, final_div_factor;
    int anneal_linear; /* 0: cosine annealing */
    int three_phase;
    /* momentum cycling (cyclic / one-cycle): inverse to the lr */
    int cycle_momentum;
    double base_momentum, max_momentum;
    /* warm-up in front of any schedule */
    int64_t warmup_steps;
    int warmup_exponential; /* 0: linear */
    double warmup_start_factor;
    /* warmup-stable-decay: fraction of training spent decaying, and its shape */
    double decay_frac;
    ol_wsd_shape wsd_shape;
    /* sequential: nparts schedules (not themselves sequential), part i starts
     * at milestones[i-1]; the caller owns the array */
    const struct ol_sched_params *parts;
    int nparts;
    /* reduce-on-plateau (PyTorch ReduceLROnPlateau defaults) */
    int plateau_maximize;      /* 1: the metric should increase (accuracy) */
    double plateau_factor;     /* 0.1 */
    int plateau_patience;      /* 10 */
    double plateau_threshold;  /* 1e-4 */
    int plateau_threshold_abs; /* 0: relative threshold */
    int plateau_cooldown;      /* 0 */
    double plateau_min_lr;     /* 0 */
    double plateau_eps;        /* 1e-8: smaller reductions are ignored */
    /* cosine: after t_max stay at the floor (Megatron-LM, BLOOM) instead of
     * following the cosine back up (PyTorch's CosineAnnealingLR) */
    int hold_floor;
} ol_sched_params;

/* Name of a built-in ("?" for others; ol_sched_params_name covers all). */
const char *ol_sched_name(ol_sched_type t);
/* A built-in's name or alias ("sgdr", "one-cycle", "poly", ...). */
int ol_sched_from_name(const char *name, ol_sched_type *out);
ol_sched_params ol_sched_default_params(ol_sched_type t);
/* Fill the values left at 0 that default to a part of the training length
 * or to another value, so that sp states every value it uses: cosine T_max
 * and the linear/polynomial length (all of the main part), the falling half
 * of a cycle (the rising one), the one-cycle peak (base_lr) -- these give the
 * same lr before and after -- and the multistep milestones (50% and 75%) and
 * the SGDR period T0 (1/5, at least 1 step), which 0 leaves without meaning.
 * Call after setting base_lr and the lengths (the CLI does). */
void ol_sched_resolve(ol_sched_params *s);
/* Check the parameters against each other (warm-up longer than training,
 * max_lr below base_lr, ...); one-line message on error. */
int ol_sched_validate(ol_ctx *ctx, const ol_sched_params *s);

/* Learning rate of step t (0-based). */
double ol_sched_lr(const ol_sched_params *s, int64_t t);
/* Momentum (or Adam beta1) of step t, or -1 when the schedule does not cycle it. */
double ol_sched_momentum(const ol_sched_params *s, int64_t t);

/* Reduce-on-plateau, the one stateful schedule (PyTorch ReduceLROnPlateau):
 * its descriptor gives the lr before any cut (ol_sched_lr), and the state
 * lives in ol_plateau, which the trainer feeds and checkpoints.
 * Intended usage:
 *   ol_plateau p; ol_plateau_init(&p, &sp);            (sp.type OL_SCHED_PLATEAU)
 *   each step: lr = ol_plateau_lr(&p, &sp, t);         (warm-up, then the reduced lr)
 *   after each validation: ol_plateau_update(&p, &sp, val_loss);   (returns 1 when it cut the lr) */
typedef struct {
    double lr;           /* current lr after reductions (starts at base_lr) */
    double best;         /* best metric so far (+-inf before the first) */
    int num_bad;         /* evaluations without improvement */
    int cooldown_left;   /* evaluations left in cooldown */
    int64_t evals;       /* evaluations seen */
    int reductions;      /* number of cuts so far */
} ol_plateau;

void ol_plateau_init(ol_plateau *p, const ol_sched_params *s);
/* Feed one validation metric; returns 1 if the lr was reduced, 0 if not,
 * OL_ERANGE for a non-finite metric (state unchanged). */
int ol_plateau_update(ol_plateau *p, const ol_sched_params *s, double metric);
/* The lr of step t: the warm-up of s scaled by the reductions, then p->lr. */
double ol_plateau_lr(const ol_plateau *p, const ol_sched_params *s, int64_t t);

/* ---- batch-size schedules and large-batch learning-rate scaling ---------- */

typedef enum {
    OL_BATCH_CONSTANT = 0,
    OL_BATCH_MILESTONES, /* multiply the batch by factor at each milestone (Smith et al. 2018) */
    OL_BATCH_RAMP,       /* linear ramp of the global batch over the first ramp_samples samples (BLOOM) */
    OL_BATCH_COUNT
} ol_batch_sched_type;

typedef struct {
    ol_batch_sched_type type;
    int64_t batch;      /* starting (or constant) global batch */
    int64_t max_batch;  /* upper bound (milestones, ramp end) */
    int64_t milestones[OL_SCHED_MAX_MILESTONES]; /* in optimizer steps */
    int nmilestones;
    double factor;          /* batch multiplier at each milestone */
    int64_t ramp_samples;   /* ramp length in samples */
    int64_t ramp_increment; /* the batch grows by this many samples at a time (BLOOM: 16; 0: batch) */
} ol_batch_sched_params;

const char *ol_batch_sched_name(ol_batch_sched_type t);
int ol_batch_sched_from_name(const char *name, ol_batch_sched_type *out);
ol_batch_sched_params ol_batch_sched_default_params(ol_batch_sched_type t);
int ol_batch_sched_validate(ol_ctx *ctx, const ol_batch_sched_params *b);
/* Global batch of optimizer step t, given the samples consumed before it.
 * Milestones: batch * factor^(milestones passed), rounded, capped at
 * max_batch (when > 0). Ramp (Megatron-LM --rampup-batch-size, as BLOOM):
 * batch + increment * floor(samples_before / (ramp_samples / n_increments)),
 * n_increments = (max_batch - batch) / increment, then max_batch. */
int64_t ol_batch_sched_batch(const ol_batch_sched_params *b, int64_t t, int64_t samples_before);
/* Samples consumed before step t when every step takes the scheduled batch
 * (walks the steps; for plots and tests). */
int64_t ol_batch_sched_samples_before(const ol_batch_sched_params *b, int64_t t);

typedef enum {
    OL_LR_SCALING_NONE = 0,
    OL_LR_SCALING_LINEAR,           /* lr * B / B0 (Goyal et al. 2017) */
    OL_LR_SCALING_SQRT,             /* lr * sqrt(B / B0) */
    OL_LR_SCALING_LINEAR_THEN_SQRT, /* linear up to B0 * knee, square root beyond */
    OL_LR_SCALING_COUNT
} ol_lr_scaling;

const char *ol_lr_scaling_name(ol_lr_scaling r);
int ol_lr_scaling_from_name(const char *name, ol_lr_scaling *out);
/* Multiplier of the learning rate for global batch B against base batch B0:
 * none 1, linear B/B0, sqrt sqrt(B/B0), linear-then-sqrt B/B0 up to
 * B = knee*B0 and knee*sqrt(B/(knee*B0)) beyond (continuous at the knee;
 * knee <= 0 means 1). Returns 1 for non-positive batches. */
double ol_lr_scale(ol_lr_scaling rule, double batch, double base_batch, double knee);

#ifdef __cplusplus
}
#endif
#endif
