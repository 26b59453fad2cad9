/* Optimizers over the flat parameter store.
 *
 * Intended usage:
 *   ol_optim_params op = ol_optim_default_params(OL_OPT_ADAMW);
 *   op.lr = 1e-3; op.weight_decay = 0.05;
 *   ol_optim *o; ol_optim_create(ctx, &op, ps, &o);
 *   each step: gradients in ps->grads, then
 *     ol_optim_hyper h = {.lr = lr_t, .momentum = -1};   (momentum < 0: keep op.momentum / beta1)
 *     ol_optim_step(ctx, o, ps, &h);
 *   ol_optim_free(o);
 * State lives in one float buffer per slot, the size of ps->params, so it is
 * checkpointed, all-reduced or inspected like the parameters themselves. */
#ifndef OPTIMLAB_OPTIM_H
#define OPTIMLAB_OPTIM_H

#include <stdint.h>

#include "optimlab/core.h"
#include "optimlab/params.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The built-in algorithms, one line each: X(ENUM, name). The enum, the
 * registry and every listing derive from this list; each algorithm's
 * metadata and kernel live in src/optim/<family>.c as ol__optim_<name>. */
#define OL_OPTIM_BUILTINS(X)                                                                                        \
    X(SGD, sgd)           /* SGD, momentum, Nesterov (PyTorch semantics) */                                         \
    X(ADAM, adam)                                                                                                   \
    X(ADAMW, adamw)                                                                                                 \
    X(ADAGRAD, adagrad)                                                                                             \
    X(RMSPROP, rmsprop)                                                                                             \
    X(ADADELTA, adadelta)                                                                                           \
    X(NADAM, nadam)                                                                                                 \
    X(RADAM, radam)                                                                                                 \
    X(LARS, lars)         /* timm Lars */                                                                           \
    X(LAMB, lamb)         /* timm Lamb */                                                                           \
    X(LION, lion)                                                                                                   \
    X(SFSGD, sfsgd)       /* Schedule-Free SGD */                                                                   \
    X(SFADAMW, sfadamw)   /* Schedule-Free AdamW */

typedef enum {
#define OL__OPT_ENUM(e, n) OL_OPT_##e,
    OL_OPTIM_BUILTINS(OL__OPT_ENUM)
#undef OL__OPT_ENUM
    OL_OPT_COUNT,
    OL_OPT_USER = 100 /* a registered algorithm: ol_optim_params.algo (optimlab/optim_algo.h) */
} ol_optim_type;

/* Name of a built-in ("?" for others; ol_optim_params_name covers all). */
const char *ol_optim_name(ol_optim_type t);
/* Built-in names in lower case, plus aliases ("momentum", "nesterov",
 * "fusedlamb", "sgd-schedulefree", "adamw-schedulefree", ...). An alias may
 * also adjust params (e.g. "nesterov" sets momentum 0.9 and nesterov).
 * Registered algorithms: ol_optim_algo_find / ol_optim_params_for. */
int ol_optim_from_name(const char *name, ol_optim_type *out);

#define OL_OPTIM_MAX_SLOTS 4
#define OL_OPTIM_MAX_HPARAMS 8

typedef struct ol_optim_algo ol_optim_algo;

typedef struct {
    ol_optim_type type;
    const ol_optim_algo *algo; /* type OL_OPT_USER: the registered algorithm (owned by its ctx) */
    double hparam[OL_OPTIM_MAX_HPARAMS]; /* values of algo->hparams (registered algorithms) */
    double lr;
    /* SGD family, LARS, RMSprop, Schedule-Free SGD */
    double momentum;
    double dampening;
    int nesterov;
    int maximize;
    /* weight decay: coupled (L2 added to the gradient) unless decoupled_wd is
     * set (then p *= 1 - lr*wd before the update). AdamW, Lion and
     * Schedule-Free AdamW are decoupled by definition. LAMB adds wd*p to the
     * update before the trust ratio (timm default, apex adam_w_mode=True);
     * decoupled_wd there selects timm's decoupled_decay=True. */
    double weight_decay;
    int decoupled_wd;
    /* Adam family, LAMB, Lion (beta1, beta2) */
    double beta1, beta2, eps;
    int amsgrad;
    int eps_inside_sqrt; /* course-slide variant: sqrt(v_hat + eps) (Adam, AdamW, AdaGrad, RMSprop) */
    /* AdaGrad */
    double lr_decay, initial_accumulator_value;
    /* RMSprop */
    double alpha;
    int centered;
    /* AdaDelta */
    double rho;
    /* NAdam */
    double momentum_decay;
    /* LARS / LAMB trust ratio */
    double trust_coefficient;
    int trust_clip;   /* clip the ratio at 1 (LARC clip mode) */
    int always_adapt; /* adapt tensors that have no weight decay too */
    /* LAMB */
    int bias_correction;
    int grad_averaging;
    double max_grad_norm; /* LAMB's own global-norm clipping, 0 = off */
    /* LARC wrapper around any optimizer (apex LARC) */
    int larc;
    int larc_clip; /* 1: clip mode, 0: scale mode */
    double larc_trust_coefficient;
    double larc_eps;
    /* Schedule-Free */
    int64_t warmup_steps;
    double r;
    double weight_lr_power;
    /* parameter groups by tensor kind (weight / bias / norm) */
    double lr_mult[OL_KIND_COUNT];
    double wd_mult[OL_KIND_COUNT];   /* 0 excludes that kind from weight decay */
    int adapt[OL_KIND_COUNT];        /* LARS/LAMB/LARC trust-ratio adaptation per kind */
} ol_optim_params;

/* PyTorch's (or the reference implementation's) defaults for the type. */
ol_optim_params ol_optim_default_params(ol_optim_type t);
/* Defaults for a name or alias, with the alias's adjustments: "momentum"
 * (momentum 0.9), "nesterov" (0.9, Nesterov), "larc" (SGD 0.9 wrapped in
 * LARC), "fusedlamb" (apex FusedLAMB: eps 1e-6, wd 0.01, global grad-norm
 * clipping at 1.0, decay added to the update). OL_ENAME for unknown names. */
int ol_optim_params_from_name(const char *name, ol_optim_params *out);
/* Check ranges; returns OL_ERANGE / OL_EINVAL with a one-line message. */
int ol_optim_validate(ol_ctx *ctx, const ol_optim_params *op);

typedef struct {
    double lr;       /* learning rate for this step (schedule applied) */
    double momentum; /* < 0: use the configured momentum / beta1; else the schedule's value */
} ol_optim_hyper;

typedef struct ol_optim ol_optim;

int ol_optim_create(ol_ctx *ctx, const ol_optim_params *op, const ol_paramset *ps, ol_optim **out);
/* The number of state slots (each the size of the parameters) ol_optim_create
 * would allocate for op, or a negative code. */
int ol_optim_state_slots(ol_ctx *ctx, const ol_optim_params *op);
void ol_optim_free(ol_optim *o);
/* One update from ps->grads (which it does not modify). OL_ERANGE for a
 * negative lr or a scheduled beta1 >= 1, OL_ESTATE in eval mode or when a
 * schedule asks for momentum from an optimizer created without it. */
int ol_optim_step(ol_ctx *ctx, ol_optim *o, ol_paramset *ps, const ol_optim_hyper *h);
const ol_optim_params *ol_optim_get_params(const ol_optim *o);
/* The algorithm's name (built-in or registered): what checkpoints store. */
const char *ol_optim_get_name(const ol_optim *o);
int64_t ol_optim_steps(const ol_optim *o);

/* State slots for checkpoints: names ("momentum_buffer", "exp_avg", ...),
 * buffers of ps->numel floats laid out like ps->params. Only slots in use are
 * listed (no momentum buffer without momentum, no max_exp_avg_sq without
 * AMSGrad). Scalars: NAdam's mu_product, Schedule-Free's weight_sum and
 * lr_max; the step count is ol_optim_steps. */
int ol_optim_num_slots(const ol_optim *o);
const char *ol_optim_slot_name(const ol_optim *o, int i);
float *ol_optim_slot(ol_optim *o, int i);
int ol_optim_num_scalars(const ol_optim *o);
const char *ol_optim_scalar_name(const ol_optim *o, int i);
double *ol_optim_scalar(ol_optim *o, int i);

/* Restore the step count (bias corrections, Schedule-Free averaging). */
int ol_optim_set_steps(ol_ctx *ctx, ol_optim *o, int64_t t);

/* The whole state (slots, scalars, step count, eval flag) as one byte blob of
 * ol_optim_state_size() bytes in host byte order, for checkpoints. Loading
 * checks that the blob belongs to the same algorithm and parameter count
 * (OL_EFORMAT / OL_ESHAPE otherwise). A Schedule-Free state saved in eval mode
 * loads in eval mode: save and restore ps->params alongside. */
size_t ol_optim_state_size(const ol_optim *o);
int ol_optim_state_save(ol_ctx *ctx, const ol_optim *o, void *buf, size_t cap);
int ol_optim_state_load(ol_ctx *ctx, ol_optim *o, const void *buf, size_t len);

/* Bytes one step reads and writes per parameter (float32 buffers, all passes),
 * for bandwidth accounting in benchmarks. */
double ol_optim_bytes_per_param(const ol_optim *o);

/* Schedule-Free optimizers keep two sequences: training runs at y, evaluation
 * and checkpoints use x. These switch ps->params between them (no-ops for
 * other optimizers). */
int ol_optim_eval_mode(ol_ctx *ctx, ol_optim *o, ol_paramset *ps);
int ol_optim_train_mode(ol_ctx *ctx, ol_optim *o, ol_paramset *ps);
int ol_optim_is_eval_mode(const ol_optim *o);
/* 1 when the optimizer keeps a separate evaluation sequence (Schedule-Free). */
int ol_optim_has_eval_mode(const ol_optim *o);

/* Scale all gradients so that their global L2 norm is at most max_norm
 * (torch.nn.utils.clip_grad_norm_). Returns the norm before clipping. */
double ol_clip_grad_norm(ol_paramset *ps, double max_norm);

#ifdef __cplusplus
}
#endif
#endif
