/* Optimizer API common to all algorithms: names, defaults, validation, state
 * slots, the per-step prologue (kind multipliers, maximize, weight decay, the
 * LARC wrapper), the chunk table, state save/restore, gradient clipping. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/reduce.h"
#include "optim/optim_internal.h"

/* Flags that only some algorithms understand: setting one elsewhere is a
 * mistake, not something to ignore. */
static int check_flag(ol_ctx *ctx, const ol_optim_algo *a, int set, const char *what, unsigned option)
{
    if (set && !(a->options & option))
        return ol__err(ctx, OL_EINVAL, "%s does not apply to %s", what, a->name);
    return OL_OK;
}

int ol_optim_validate(ol_ctx *ctx, const ol_optim_params *op)
{
    const ol_optim_algo *vt = ol_optim_params_algo(op);
    if (!vt)
        return ol__err(ctx, OL_ENAME, "unknown optimizer type %d (no algorithm)", (int)op->type);
    if (!vt->impl && !vt->step)
        return ol__err(ctx, OL_EINVAL, "optimizer %s has no step function", vt->name);
#define NONNEG(f, name)                                                                                             \
    if (!(op->f >= 0.0 && isfinite(op->f)))                                                                         \
        return ol__err(ctx, OL_ERANGE, "%s must be >= 0, got %g", name, op->f);
#define UNIT(f, name)                                                                                               \
    if (!(op->f >= 0.0 && op->f < 1.0))                                                                             \
        return ol__err(ctx, OL_ERANGE, "%s must be in [0, 1), got %g", name, op->f);
#define CLOSED(f, name)                                                                                             \
    if (!(op->f >= 0.0 && op->f <= 1.0))                                                                            \
        return ol__err(ctx, OL_ERANGE, "%s must be in [0, 1], got %g", name, op->f);
    NONNEG(lr, "learning rate");
    NONNEG(weight_decay, "weight decay");
    NONNEG(eps, "eps");
    NONNEG(lr_decay, "lr_decay");
    NONNEG(initial_accumulator_value, "initial_accumulator_value");
    NONNEG(momentum_decay, "momentum_decay");
    NONNEG(max_grad_norm, "max_grad_norm");
    NONNEG(larc_eps, "LARC eps");
    NONNEG(r, "Schedule-Free r");
    NONNEG(weight_lr_power, "weight_lr_power");
    CLOSED(momentum, "momentum");
    CLOSED(dampening, "dampening");
    CLOSED(alpha, "alpha");
    CLOSED(rho, "rho");
    UNIT(beta1, "beta1");
    UNIT(beta2, "beta2");
    if (!(op->trust_coefficient > 0.0 && isfinite(op->trust_coefficient)))
        return ol__err(ctx, OL_ERANGE, "trust coefficient must be > 0, got %g", op->trust_coefficient);
    if (op->larc && !(op->larc_trust_coefficient > 0.0 && isfinite(op->larc_trust_coefficient)))
        return ol__err(ctx, OL_ERANGE, "LARC trust coefficient must be > 0, got %g", op->larc_trust_coefficient);
    if (op->warmup_steps < 0)
        return ol__err(ctx, OL_ERANGE, "Schedule-Free warmup steps must be >= 0, got %lld",
                       (long long)op->warmup_steps);
    if (op->nesterov && (op->momentum <= 0.0 || op->dampening != 0.0) && (vt->options & OL_OPTION_NESTEROV))
        return ol__err(ctx, OL_EINVAL, "Nesterov momentum requires a momentum > 0 and zero dampening (momentum %g, "
                                       "dampening %g)", op->momentum, op->dampening);
    for (int k = 0; k < OL_KIND_COUNT; k++)
        if (!(op->lr_mult[k] >= 0.0 && isfinite(op->lr_mult[k])) ||
            !(op->wd_mult[k] >= 0.0 && isfinite(op->wd_mult[k])))
            return ol__err(ctx, OL_ERANGE, "per-kind multipliers must be >= 0");
    for (int i = 0; i < vt->n_hparams; i++)
        if (!(op->hparam[i] >= vt->hparams[i].lo && op->hparam[i] <= vt->hparams[i].hi))
            return ol__err(ctx, OL_ERANGE, "%s: %s must be in [%g, %g], got %g", vt->name, vt->hparams[i].name,
                           vt->hparams[i].lo, vt->hparams[i].hi, op->hparam[i]);
    OL__TRY(check_flag(ctx, vt, op->amsgrad, "amsgrad", OL_OPTION_AMSGRAD));
    OL__TRY(check_flag(ctx, vt, op->eps_inside_sqrt, "eps inside the square root", OL_OPTION_EPS_INSIDE_SQRT));
    OL__TRY(check_flag(ctx, vt, op->centered, "centered", OL_OPTION_CENTERED));
    OL__TRY(check_flag(ctx, vt, op->nesterov, "nesterov", OL_OPTION_NESTEROV));
    OL__TRY(check_flag(ctx, vt, op->trust_clip || op->always_adapt, "trust clipping / always_adapt",
                       OL_OPTION_TRUST_CLIP));
    if (op->larc && (vt->options & OL_OPTION_NO_LARC))
        return ol__err(ctx, OL_EINVAL, "LARC cannot wrap %s, which has its own trust ratio", vt->name);
#undef NONNEG
#undef UNIT
#undef CLOSED
    return vt->validate ? vt->validate(ctx, op) : OL_OK;
}

static unsigned slot_mask(const ol_optim_algo *vt, const ol_optim_params *op)
{
    return vt->slots_used ? (unsigned)vt->slots_used(op) : (1u << vt->n_slots) - 1u;
}

int ol_optim_state_slots(ol_ctx *ctx, const ol_optim_params *op)
{
    const ol_optim_algo *vt = ol_optim_params_algo(op);
    if (!vt)
        return ol__err(ctx, OL_ENAME, "unknown optimizer type %d (no algorithm)", (int)op->type);
    return __builtin_popcount(slot_mask(vt, op) & ((1u << vt->n_slots) - 1u));
}

/* What a registered algorithm's kernel sees (the same buffers and
 * coefficients the built-in kernels read from the ol_optim). */
static void step_args(ol_optim *o, ol_paramset *ps, double lr, ol_optim_step_args *a)
{
    memset(a, 0, sizeof *a);
    a->params = ps->params;
    a->grads = ps->grads;
    a->numel = o->numel;
    for (int s = 0; s < OL_OPTIM_MAX_SLOTS; s++)
        a->slot[s] = o->slot[s];
    a->scalar = o->scalar;
    a->chunks = o->chunks;
    a->nchunks = o->nchunks;
    a->tc = o->tc;
    a->ps = ps;
    a->t = o->t;
    a->lr = lr;
    a->mom = o->mom;
    a->par = o->par;
    a->hparam = o->p.hparam;
    a->op = &o->p;
    a->optim = o;
}

int ol_optim_create(ol_ctx *ctx, const ol_optim_params *op, const ol_paramset *ps, ol_optim **out)
{
    *out = NULL;
    OL__TRY(ol_optim_validate(ctx, op));
    ol_optim *o = calloc(1, sizeof *o);
    if (!o)
        return ol__err(ctx, OL_ENOMEM, "out of memory");
    o->vt = ol_optim_params_algo(op);
    o->p = *op;
    o->numel = ps->numel;
    o->ntensors = ps->n;
    o->par = ps->numel >= OL__OPT_PAR_MIN;
    size_t nch = 0;
    for (int i = 0; i < ps->n; i++)
        nch += (ps->t[i].numel + OL__OPT_CHUNK - 1) / OL__OPT_CHUNK;
    size_t nt = ps->n > 0 ? (size_t)ps->n : 1;
    if (nch == 0)
        nch = 1;
    o->chunks = malloc(nch * sizeof(ol__chunk));
    o->tc = calloc(nt, sizeof(ol__tcoef));
    o->tnorm = calloc(nt * 4, sizeof(double));
    o->cpart = calloc(nch * 4, sizeof(double));
    int ok = o->chunks && o->tc && o->tnorm && o->cpart;
    unsigned mask = slot_mask(o->vt, op);
    for (int s = 0; ok && s < o->vt->n_slots; s++)
        if (mask & (1u << s)) {
            o->slot[s] = ol__alloc((ps->numel ? ps->numel : 1) * sizeof(float));
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
    if (o->vt->impl && o->vt->impl->init)
        o->vt->impl->init(o);
    else if (!o->vt->impl && o->vt->init) {
        ol_optim_step_args a;
        step_args(o, (ol_paramset *)ps, 0.0, &a);
        o->vt->init(&a);
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
    free(o->tc);
    free(o->tnorm);
    free(o->cpart);
    free(o);
}

void ol__optim_tensor_sumsq(ol_optim *o, const float *a, const float *b, double *out)
{
    double *part = o->cpart;
    const ol__chunk *ch = o->chunks;
#pragma omp parallel for schedule(static) if (o->par)
    for (int c = 0; c < o->nchunks; c++) {
        part[2 * c] = ol__sumsq_lanes(a, ch[c].begin, ch[c].end);
        part[2 * c + 1] = b ? ol__sumsq_lanes(b, ch[c].begin, ch[c].end) : 0.0;
    }
    for (int t = 0; t < 2 * o->ntensors; t++)
        out[t] = 0.0;
    for (int c = 0; c < o->nchunks; c++) {
        out[2 * ch[c].tensor] += part[2 * c];
        out[2 * ch[c].tensor + 1] += part[2 * c + 1];
    }
}

/* apex LARC: per tensor, alr = tc*||p|| / (||g|| + wd*||p|| + eps), clipped to
 * min(alr/lr, 1) in clip mode; g <- (g + wd*p) * alr, and the wrapped
 * optimizer runs without weight decay. Tensors with a zero norm keep g. */
static void larc_prologue(ol_optim *o, const ol_paramset *ps)
{
    double *nrm = o->tnorm;
    ol__optim_tensor_sumsq(o, ps->params, ps->grads, nrm);
    for (int i = 0; i < ps->n; i++) {
        ol__tcoef *tc = &o->tc[i];
        if (!o->p.adapt[ps->t[i].kind])
            continue; /* not wrapped: the optimizer keeps its own weight decay */
        double pn = sqrt(nrm[2 * i]), gn = sqrt(nrm[2 * i + 1]);
        double sign = tc->gs;
        tc->gp = 0.0;
        tc->shrink = 1.0;
        if (pn != 0.0 && gn != 0.0) {
            double alr = o->p.larc_trust_coefficient * pn / (gn + pn * tc->wd + o->p.larc_eps);
            if (o->p.larc_clip)
                alr = fmin(alr / tc->lr, 1.0);
            tc->gp = sign * tc->wd;
            tc->ga = alr;
        }
        tc->wd = 0.0;
    }
}

static void prologue(ol_optim *o, const ol_paramset *ps, const ol_optim_hyper *h)
{
    const ol_optim_params *op = &o->p;
    if (o->vt->mom_kind == OL_MOM_NONE || h->momentum < 0.0)
        o->mom = o->vt->mom_kind == OL_MOM_BETA1 ? op->beta1 : op->momentum;
    else
        o->mom = h->momentum;
    for (int i = 0; i < ps->n; i++) {
        ol_kind k = ps->t[i].kind;
        ol__tcoef *tc = &o->tc[i];
        tc->lr = h->lr * op->lr_mult[k];
        tc->wd = op->weight_decay * op->wd_mult[k];
        tc->gs = op->maximize ? -1.0 : 1.0;
        tc->gp = 0.0;
        tc->ga = 1.0;
        tc->shrink = 1.0;
        tc->ratio = 1.0;
        tc->adapt = 0;
        if (o->vt->wd_style == OL_WD_DECOUPLED || (o->vt->wd_style == OL_WD_COUPLED && op->decoupled_wd))
            tc->shrink = 1.0 - tc->lr * tc->wd;
        else if (o->vt->wd_style == OL_WD_COUPLED)
            tc->gp = tc->wd;
    }
    if (op->larc)
        larc_prologue(o, ps);
}

int ol_optim_step(ol_ctx *ctx, ol_optim *o, ol_paramset *ps, const ol_optim_hyper *h)
{
    if (ps->numel != o->numel || ps->n != o->ntensors)
        return ol__err(ctx, OL_ESHAPE, "optimizer was created for %zu parameters in %d tensors, got %zu in %d",
                       o->numel, o->ntensors, ps->numel, ps->n);
    if (!(h->lr >= 0.0 && isfinite(h->lr)))
        return ol__err(ctx, OL_ERANGE, "learning rate must be >= 0, got %g", h->lr);
    if (o->vt->mom_kind == OL_MOM_BETA1 && h->momentum >= 1.0)
        return ol__err(ctx, OL_ERANGE, "scheduled beta1 must be in [0, 1), got %g", h->momentum);
    if (o->vt->mom_kind == OL_MOM_MOMENTUM && h->momentum > 1.0)
        return ol__err(ctx, OL_ERANGE, "scheduled momentum must be in [0, 1], got %g", h->momentum);
    if (o->eval_mode)
        return ol__err(ctx, OL_ESTATE, "optimizer step while parameters are in eval mode (call train mode first)");
    prologue(o, ps, h);
    if (o->vt->impl) {
        OL__TRY(o->vt->impl->step(ctx, o, ps, h));
    } else {
        ol_optim_step_args a;
        step_args(o, ps, h->lr, &a);
        OL__TRY(o->vt->step(ctx, &a));
    }
    o->t++;
    return OL_OK;
}

const ol_optim_params *ol_optim_get_params(const ol_optim *o) { return &o->p; }
const char *ol_optim_get_name(const ol_optim *o) { return o->vt->name; }

void ol_optim_tensor_sumsq(ol_optim *o, const float *a, const float *b, double *out)
{
    ol__optim_tensor_sumsq(o, a, b, out);
}

int ol_optim_error(ol_ctx *ctx, int code, const char *msg) { return ol__err(ctx, code, "%s", msg ? msg : ""); }
int64_t ol_optim_steps(const ol_optim *o) { return o->t; }

/* Public slot index i -> internal slot number (only allocated slots count). */
static int slot_index(const ol_optim *o, int i)
{
    for (int s = 0, n = 0; s < o->vt->n_slots; s++)
        if (o->slot[s] && n++ == i)
            return s;
    return -1;
}

int ol_optim_num_slots(const ol_optim *o)
{
    int n = 0;
    for (int s = 0; s < o->vt->n_slots; s++)
        n += o->slot[s] != NULL;
    return n;
}
const char *ol_optim_slot_name(const ol_optim *o, int i)
{
    int s = slot_index(o, i);
    return s >= 0 ? o->vt->slot_names[s] : NULL;
}
float *ol_optim_slot(ol_optim *o, int i)
{
    int s = slot_index(o, i);
    return s >= 0 ? o->slot[s] : NULL;
}
int ol_optim_num_scalars(const ol_optim *o) { return o->vt->n_scalars; }
const char *ol_optim_scalar_name(const ol_optim *o, int i)
{
    return (i >= 0 && i < o->vt->n_scalars) ? o->vt->scalar_names[i] : NULL;
}
double *ol_optim_scalar(ol_optim *o, int i) { return (i >= 0 && i < o->vt->n_scalars) ? &o->scalar[i] : NULL; }

int ol_optim_set_steps(ol_ctx *ctx, ol_optim *o, int64_t t)
{
    if (t < 0)
        return ol__err(ctx, OL_ERANGE, "step count must be >= 0, got %lld", (long long)t);
    o->t = t;
    return OL_OK;
}

double ol_optim_bytes_per_param(const ol_optim *o)
{
    double b = o->vt->bytes_per_param ? o->vt->bytes_per_param(&o->p) : 0.0;
    if (o->p.larc) /* the extra read of p and g for the norms */
        b += 8.0;
    return b;
}

/* Schedule-Free's two sequences: built-ins only. */
static int has_eval(const ol_optim *o) { return o->vt->impl && o->vt->impl->to_eval; }

/* ---- state blob --------------------------------------------------------- */

/* Built-ins keep the first format (the type number); a registered algorithm
 * is identified by its name, stored after the header (format 2). */
#define STATE_MAGIC "OLOPTST1"
#define STATE_MAGIC_NAMED "OLOPTST2"

typedef struct {
    char magic[8];
    int32_t type, n_slots, n_scalars, eval_mode;
    int64_t t;
    uint64_t numel;
} state_header;

static size_t name_bytes(const ol_optim *o) { return o->vt->impl ? 0 : OL_OPTIM_NAME_MAX; }

size_t ol_optim_state_size(const ol_optim *o)
{
    return sizeof(state_header) + name_bytes(o) + (size_t)ol_optim_num_slots(o) * o->numel * sizeof(float) +
           (size_t)o->vt->n_scalars * sizeof(double);
}

int ol_optim_state_save(ol_ctx *ctx, const ol_optim *o, void *buf, size_t cap)
{
    size_t need = ol_optim_state_size(o);
    if (cap < need)
        return ol__err(ctx, OL_ERANGE, "optimizer state needs %zu bytes, buffer has %zu", need, cap);
    state_header hd;
    memset(&hd, 0, sizeof hd);
    memcpy(hd.magic, name_bytes(o) ? STATE_MAGIC_NAMED : STATE_MAGIC, 8);
    hd.type = (int32_t)o->p.type;
    hd.n_slots = ol_optim_num_slots(o);
    hd.n_scalars = o->vt->n_scalars;
    hd.eval_mode = o->eval_mode;
    hd.t = o->t;
    hd.numel = o->numel;
    char *p = buf;
    memcpy(p, &hd, sizeof hd);
    p += sizeof hd;
    if (name_bytes(o)) {
        memset(p, 0, OL_OPTIM_NAME_MAX);
        memcpy(p, o->vt->name, strlen(o->vt->name)); /* registration checked the length */
        p += OL_OPTIM_NAME_MAX;
    }
    for (int s = 0; s < o->vt->n_slots; s++)
        if (o->slot[s]) {
            memcpy(p, o->slot[s], o->numel * sizeof(float));
            p += o->numel * sizeof(float);
        }
    memcpy(p, o->scalar, (size_t)o->vt->n_scalars * sizeof(double));
    return OL_OK;
}

int ol_optim_state_load(ol_ctx *ctx, ol_optim *o, const void *buf, size_t len)
{
    state_header hd;
    if (len < sizeof hd)
        return ol__err(ctx, OL_EFORMAT, "optimizer state: %zu bytes is too short", len);
    memcpy(&hd, buf, sizeof hd);
    int named = memcmp(hd.magic, STATE_MAGIC_NAMED, 8) == 0;
    if (!named && memcmp(hd.magic, STATE_MAGIC, 8) != 0)
        return ol__err(ctx, OL_EFORMAT, "optimizer state: bad magic");
    char name[OL_OPTIM_NAME_MAX] = "";
    if (named) {
        if (len < sizeof hd + sizeof name)
            return ol__err(ctx, OL_EFORMAT, "optimizer state: %zu bytes is too short", len);
        memcpy(name, (const char *)buf + sizeof hd, sizeof name);
        name[sizeof name - 1] = '\0';
    } else {
        snprintf(name, sizeof name, "%s", ol_optim_name((ol_optim_type)hd.type));
    }
    if (named != (name_bytes(o) != 0) || strcmp(name, o->vt->name) != 0 || hd.n_slots != ol_optim_num_slots(o) ||
        hd.n_scalars != o->vt->n_scalars || hd.numel != o->numel)
        return ol__err(ctx, OL_ESHAPE,
                       "optimizer state is for %s with %d slots of %llu floats, this optimizer is %s with %d of %zu",
                       name, (int)hd.n_slots, (unsigned long long)hd.numel, o->vt->name, ol_optim_num_slots(o),
                       o->numel);
    if (len != ol_optim_state_size(o))
        return ol__err(ctx, OL_EFORMAT, "optimizer state: %zu bytes, expected %zu", len, ol_optim_state_size(o));
    if (hd.t < 0)
        return ol__err(ctx, OL_EFORMAT, "optimizer state: negative step count");
    const char *p = (const char *)buf + sizeof hd + name_bytes(o);
    for (int s = 0; s < o->vt->n_slots; s++)
        if (o->slot[s]) {
            memcpy(o->slot[s], p, o->numel * sizeof(float));
            p += o->numel * sizeof(float);
        }
    memcpy(o->scalar, p, (size_t)o->vt->n_scalars * sizeof(double));
    o->t = hd.t;
    o->eval_mode = hd.eval_mode != 0 && has_eval(o);
    return OL_OK;
}

/* ---- Schedule-Free modes ------------------------------------------------ */

int ol_optim_eval_mode(ol_ctx *ctx, ol_optim *o, ol_paramset *ps)
{
    if (o->eval_mode || !has_eval(o))
        return OL_OK;
    OL__TRY(o->vt->impl->to_eval(ctx, o, ps));
    o->eval_mode = 1;
    return OL_OK;
}

int ol_optim_train_mode(ol_ctx *ctx, ol_optim *o, ol_paramset *ps)
{
    if (!o->eval_mode || !has_eval(o))
        return OL_OK;
    OL__TRY(o->vt->impl->to_train(ctx, o, ps));
    o->eval_mode = 0;
    return OL_OK;
}

int ol_optim_is_eval_mode(const ol_optim *o) { return o->eval_mode; }
int ol_optim_has_eval_mode(const ol_optim *o) { return has_eval(o); }

double ol_clip_grad_norm(ol_paramset *ps, double max_norm)
{
    double norm = sqrt(ol__sumsq(ps->grads, ps->numel));
    if (max_norm > 0.0 && norm > max_norm) {
        const float coef = (float)(max_norm / (norm + 1e-6));
        float *g = ps->grads;
        const size_t n = ps->numel;
#pragma omp parallel for schedule(static) if (n >= OL__OPT_PAR_MIN)
        for (size_t i = 0; i < n; i++)
            g[i] *= coef;
    }
    return norm;
}
