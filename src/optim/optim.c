/* Optimizer API common to all algorithms: names, defaults, validation, state
 * slots, the chunk table, gradient clipping. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/reduce.h"
#include "optim/optim_internal.h"

static const char *const opt_names[OL_OPT_COUNT] = {"sgd",   "adam",     "adamw", "adagrad", "rmsprop",
                                                    "adadelta", "nadam", "radam", "lars",    "lamb",
                                                    "lion",  "sfsgd",    "sfadamw"};

const char *ol_optim_name(ol_optim_type t) { return (t >= 0 && t < OL_OPT_COUNT) ? opt_names[t] : "?"; }

int ol_optim_from_name(const char *name, ol_optim_type *out)
{
    static const struct {
        const char *alias;
        ol_optim_type t;
    } aliases[] = {{"momentum", OL_OPT_SGD},          {"nesterov", OL_OPT_SGD},
                   {"sgd-schedulefree", OL_OPT_SFSGD}, {"schedulefree-sgd", OL_OPT_SFSGD},
                   {"adamw-schedulefree", OL_OPT_SFADAMW}, {"schedulefree-adamw", OL_OPT_SFADAMW},
                   {"fusedlamb", OL_OPT_LAMB},         {"larc", OL_OPT_SGD}};
    for (int i = 0; i < OL_OPT_COUNT; i++)
        if (strcmp(name, opt_names[i]) == 0) {
            *out = (ol_optim_type)i;
            return OL_OK;
        }
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcmp(name, aliases[i].alias) == 0) {
            *out = aliases[i].t;
            return OL_OK;
        }
    return OL_ENAME;
}

ol_optim_params ol_optim_default_params(ol_optim_type t)
{
    ol_optim_params p;
    memset(&p, 0, sizeof p);
    p.type = t;
    p.lr = 1e-3;
    p.beta1 = 0.9;
    p.beta2 = 0.999;
    p.eps = 1e-8;
    p.alpha = 0.99;
    p.rho = 0.9;
    p.momentum_decay = 4e-3;
    p.trust_coefficient = 0.001;
    p.bias_correction = 1;
    p.grad_averaging = 1;
    p.larc_trust_coefficient = 0.02;
    p.larc_clip = 1;
    p.larc_eps = 1e-8;
    p.weight_lr_power = 2.0;
    for (int k = 0; k < OL_KIND_COUNT; k++) {
        p.lr_mult[k] = 1.0;
        p.wd_mult[k] = 1.0;
        p.adapt[k] = 1;
    }
    switch (t) {
    case OL_OPT_SGD: p.lr = 0.1; break;
    case OL_OPT_ADAMW: p.weight_decay = 1e-2; p.decoupled_wd = 1; break;
    case OL_OPT_ADAGRAD: p.lr = 1e-2; p.eps = 1e-10; break;
    case OL_OPT_RMSPROP: p.lr = 1e-2; break;
    case OL_OPT_ADADELTA: p.lr = 1.0; p.eps = 1e-6; break;
    case OL_OPT_NADAM: p.lr = 2e-3; break;
    case OL_OPT_LARS: p.lr = 1.0; p.momentum = 0.9; break;
    case OL_OPT_LAMB: p.eps = 1e-6; p.weight_decay = 1e-2; p.decoupled_wd = 1; p.max_grad_norm = 1.0; break;
    case OL_OPT_LION: p.lr = 1e-4; p.beta2 = 0.99; p.decoupled_wd = 1; break;
    case OL_OPT_SFSGD: p.lr = 1.0; p.momentum = 0.9; break;
    case OL_OPT_SFADAMW: p.lr = 2.5e-3; p.decoupled_wd = 1; break;
    default: break;
    }
    return p;
}

const ol__optim_vt *ol__optim_lookup(ol_optim_type t)
{
    static const ol__optim_vt *const table[] = {&ol__optim_sgd};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i]->type == t)
            return table[i];
    return NULL;
}

int ol_optim_validate(ol_ctx *ctx, const ol_optim_params *op)
{
    if (op->type < 0 || op->type >= OL_OPT_COUNT)
        return ol__err(ctx, OL_ENAME, "unknown optimizer type %d", (int)op->type);
    const ol__optim_vt *vt = ol__optim_lookup(op->type);
    if (!vt)
        return ol__err(ctx, OL_ENOTSUP, "optimizer %s is not implemented", ol_optim_name(op->type));
#define NONNEG(f, name)                                                                                             \
    if (!(op->f >= 0.0 && isfinite(op->f)))                                                                         \
        return ol__err(ctx, OL_ERANGE, "%s must be >= 0, got %g", name, op->f);
#define UNIT(f, name)                                                                                               \
    if (!(op->f >= 0.0 && op->f < 1.0))                                                                             \
        return ol__err(ctx, OL_ERANGE, "%s must be in [0, 1), got %g", name, op->f);
    NONNEG(lr, "learning rate");
    NONNEG(weight_decay, "weight decay");
    NONNEG(eps, "eps");
    NONNEG(momentum, "momentum");
    NONNEG(dampening, "dampening");
    UNIT(beta1, "beta1");
    UNIT(beta2, "beta2");
    if (op->momentum > 1.0)
        return ol__err(ctx, OL_ERANGE, "momentum must be in [0, 1], got %g", op->momentum);
    if (op->dampening > 1.0)
        return ol__err(ctx, OL_ERANGE, "dampening must be in [0, 1], got %g", op->dampening);
    if (op->nesterov && (op->momentum <= 0.0 || op->dampening != 0.0) &&
        (op->type == OL_OPT_SGD || op->type == OL_OPT_LARS))
        return ol__err(ctx, OL_EINVAL, "Nesterov momentum requires a momentum > 0 and zero dampening");
    for (int k = 0; k < OL_KIND_COUNT; k++)
        if (!(op->lr_mult[k] >= 0.0) || !(op->wd_mult[k] >= 0.0))
            return ol__err(ctx, OL_ERANGE, "per-kind multipliers must be >= 0");
#undef NONNEG
#undef UNIT
    return vt->validate ? vt->validate(ctx, op) : OL_OK;
}

int ol_optim_create(ol_ctx *ctx, const ol_optim_params *op, const ol_paramset *ps, ol_optim **out)
{
    *out = NULL;
    OL__TRY(ol_optim_validate(ctx, op));
    ol_optim *o = calloc(1, sizeof *o);
    if (!o)
        return ol__err(ctx, OL_ENOMEM, "out of memory");
    o->vt = ol__optim_lookup(op->type);
    o->p = *op;
    o->numel = ps->numel;
    o->ntensors = ps->n;
    size_t nch = 0;
    for (int i = 0; i < ps->n; i++)
        nch += (ps->t[i].numel + OL__OPT_CHUNK - 1) / OL__OPT_CHUNK;
    size_t nt = ps->n > 0 ? (size_t)ps->n : 1;
    if (nch == 0)
        nch = 1;
    o->chunks = malloc(nch * sizeof(ol__chunk));
    o->tnorm = calloc(nt * 4, sizeof(double));
    o->cpart = calloc(nch * 4, sizeof(double));
    int ok = o->chunks && o->tnorm && o->cpart;
    for (int s = 0; ok && s < o->vt->n_slots; s++) {
        o->slot[s] = ol__alloc(ps->numel * sizeof(float));
        ok = o->slot[s] != NULL;
    }
    if (!ok) {
        ol_optim_free(o);
        return ol__err(ctx, OL_ENOMEM, "out of memory for optimizer state (%zu parameters)", ps->numel);
    }
    for (int i = 0; i < ps->n; i++)
        for (size_t b = 0; b < ps->t[i].numel; b += OL__OPT_CHUNK) {
            size_t e = b + OL__OPT_CHUNK < ps->t[i].numel ? b + OL__OPT_CHUNK : ps->t[i].numel;
            o->chunks[o->nchunks++] = (ol__chunk){i, ps->t[i].offset + b, ps->t[i].offset + e};
        }
    *out = o;
    return OL_OK;
}

void ol_optim_free(ol_optim *o)
{
    if (!o)
        return;
    for (int s = 0; s < OL_OPTIM_MAX_SLOTS; s++)
        ol__free(o->slot[s]);
    free(o->chunks);
    free(o->tnorm);
    free(o->cpart);
    free(o);
}

int ol_optim_step(ol_ctx *ctx, ol_optim *o, ol_paramset *ps, const ol_optim_hyper *h)
{
    if (ps->numel != o->numel)
        return ol__err(ctx, OL_ESHAPE, "optimizer was created for %zu parameters, got %zu", o->numel, ps->numel);
    if (!(h->lr >= 0.0 && isfinite(h->lr)))
        return ol__err(ctx, OL_ERANGE, "learning rate must be >= 0, got %g", h->lr);
    if (o->eval_mode)
        return ol__err(ctx, OL_ESTATE, "optimizer step while parameters are in eval mode (call train mode first)");
    OL__TRY(o->vt->step(ctx, o, ps, h));
    o->t++;
    return OL_OK;
}

const ol_optim_params *ol_optim_get_params(const ol_optim *o) { return &o->p; }
int64_t ol_optim_steps(const ol_optim *o) { return o->t; }
void ol_optim_set_steps(ol_optim *o, int64_t steps) { o->t = steps; }
int ol_optim_num_slots(const ol_optim *o) { return o->vt->n_slots; }
const char *ol_optim_slot_name(const ol_optim *o, int i)
{
    return (i >= 0 && i < o->vt->n_slots) ? o->vt->slot_names[i] : NULL;
}
float *ol_optim_slot(ol_optim *o, int i) { return (i >= 0 && i < o->vt->n_slots) ? o->slot[i] : NULL; }
int ol_optim_num_scalars(const ol_optim *o) { return o->vt->n_scalars; }
const char *ol_optim_scalar_name(const ol_optim *o, int i)
{
    return (i >= 0 && i < o->vt->n_scalars) ? o->vt->scalar_names[i] : NULL;
}
double *ol_optim_scalar(ol_optim *o, int i) { return (i >= 0 && i < o->vt->n_scalars) ? &o->scalar[i] : NULL; }

int ol_optim_eval_mode(ol_ctx *ctx, ol_optim *o, ol_paramset *ps)
{
    if (o->eval_mode || !o->vt->to_eval)
        return OL_OK;
    OL__TRY(o->vt->to_eval(ctx, o, ps));
    o->eval_mode = 1;
    return OL_OK;
}

int ol_optim_train_mode(ol_ctx *ctx, ol_optim *o, ol_paramset *ps)
{
    if (!o->eval_mode || !o->vt->to_train)
        return OL_OK;
    OL__TRY(o->vt->to_train(ctx, o, ps));
    o->eval_mode = 0;
    return OL_OK;
}

int ol_optim_is_eval_mode(const ol_optim *o) { return o->eval_mode; }
int ol_optim_has_eval_mode(const ol_optim *o) { return o->vt->to_eval != NULL; }

double ol_clip_grad_norm(ol_paramset *ps, double max_norm)
{
    double norm = sqrt(ol__sumsq(ps->grads, ps->numel));
    if (max_norm > 0.0 && norm > max_norm) {
        const float coef = (float)(max_norm / (norm + 1e-6));
        float *g = ps->grads;
        const size_t n = ps->numel;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++)
            g[i] *= coef;
    }
    return norm;
}
