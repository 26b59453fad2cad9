/* Schedules by name: the built-ins (one line each in OL_SCHED_BUILTINS,
 * consulted first) and those a context's user or plugins registered (stored
 * with the context's registry, src/optim/registry.c). Adding a built-in is
 * its descriptor beside its function plus one line in that list. */
#include <string.h>

#include "sched/sched_internal.h"

static const ol_sched_algo *const builtins[OL_SCHED_COUNT] = {
#define OL__SCHED_REF(e, n) &ol__sched_##n,
    OL_SCHED_BUILTINS(OL__SCHED_REF)
#undef OL__SCHED_REF
};

int ol_sched_algo_count(const ol_ctx *ctx) { return OL_SCHED_COUNT + ol__registry_sched_count(ctx); }

const ol_sched_algo *ol_sched_algo_at(const ol_ctx *ctx, int i)
{
    if (i >= 0 && i < OL_SCHED_COUNT)
        return builtins[i];
    return ol__registry_sched_at(ctx, i - OL_SCHED_COUNT);
}

/* The index of the schedule called name (or alias), -1 when none. */
static int find(const ol_ctx *ctx, const char *name)
{
    const int n = ol_sched_algo_count(ctx);
    for (int i = 0; i < n; i++) {
        const ol_sched_algo *a = ol_sched_algo_at(ctx, i);
        if (strcmp(a->name, name) == 0)
            return i;
        for (int k = 0; k < OL_SCHED_MAX_ALIASES && a->aliases[k]; k++)
            if (strcmp(a->aliases[k], name) == 0)
                return i;
    }
    return -1;
}

int ol_sched_algo_find(const ol_ctx *ctx, const char *name, const ol_sched_algo **out)
{
    int i = find(ctx, name);
    *out = i >= 0 ? ol_sched_algo_at(ctx, i) : NULL;
    return *out ? OL_OK : OL_ENAME;
}

const char *ol_sched_name(ol_sched_type t) { return (t >= 0 && t < OL_SCHED_COUNT) ? builtins[t]->name : "?"; }

int ol_sched_from_name(const char *name, ol_sched_type *out)
{
    int i = find(NULL, name);
    if (i < 0)
        return OL_ENAME;
    *out = (ol_sched_type)i;
    return OL_OK;
}

static int check_descriptor(ol_ctx *ctx, const ol_sched_algo *a)
{
    if (!a || !ol__valid_algo_name(a->name) || !a->lr)
        return ol__err(ctx, OL_EINVAL, "schedule '%s': a valid name and an lr function are required",
                       a && a->name ? a->name : "");
    if (a->impl || a->options[0].name)
        return ol__err(ctx, OL_EINVAL, "schedule %s: impl and options are for built-ins (use params)", a->name);
    if (a->n_params < 0 || a->n_params > OL_SCHED_MAX_PARAMS)
        return ol__err(ctx, OL_EINVAL, "schedule %s: %d parameters (at most %d)", a->name, a->n_params,
                       OL_SCHED_MAX_PARAMS);
    for (int i = 0; i < a->n_params; i++) {
        const ol_sched_param *p = &a->params[i];
        if (!ol__valid_algo_name(p->name) || !(p->lo <= p->def && p->def <= p->hi))
            return ol__err(ctx, OL_EINVAL, "schedule %s: parameter %d needs a valid name and lo <= default <= hi",
                           a->name, i);
    }
    for (int k = 0; k < OL_SCHED_MAX_ALIASES && a->aliases[k]; k++)
        if (!ol__valid_algo_name(a->aliases[k]))
            return ol__err(ctx, OL_EINVAL, "schedule %s: alias '%s' is not a valid name", a->name, a->aliases[k]);
    return OL_OK;
}

int ol_sched_register(ol_ctx *ctx, const ol_sched_algo *algo)
{
    OL__TRY(check_descriptor(ctx, algo));
    if (find(ctx, algo->name) >= 0)
        return ol__err(ctx, OL_ENAME, "schedule name '%s' is already registered", algo->name);
    for (int k = 0; k < OL_SCHED_MAX_ALIASES && algo->aliases[k]; k++)
        if (find(ctx, algo->aliases[k]) >= 0)
            return ol__err(ctx, OL_ENAME, "schedule name '%s' is already registered", algo->aliases[k]);
    return ol__registry_sched_add(ctx, algo);
}

/* The defaults every schedule starts from, before its own. */
static void common_defaults(ol_sched_params *s, ol_sched_type t)
{
    memset(s, 0, sizeof *s);
    s->type = t;
    s->base_lr = 0.1;
    s->steps_per_epoch = 1;
    s->gamma = 0.1;
    s->power = 1.0;
    s->start_factor = 1.0 / 3.0;
    s->end_factor = 1.0;
    s->t_mult = 1;
    s->cyclic_gamma = 1.0;
    s->pct_start = 0.3;
    s->div_factor = 25.0;
    s->final_div_factor = 1e4;
    s->base_momentum = 0.85;
    s->max_momentum = 0.95;
    s->warmup_start_factor = 0.0;
    s->decay_frac = 0.1;
    s->plateau_factor = 0.1;
    s->plateau_patience = 10;
    s->plateau_threshold = 1e-4;
    s->plateau_eps = 1e-8;
}

/* Defaults of schedule i of the registry (built-in or registered a). */
static void defaults_of(int i, const ol_sched_algo *a, ol_sched_params *s)
{
    common_defaults(s, i < OL_SCHED_COUNT ? (ol_sched_type)i : OL_SCHED_USER);
    if (i >= OL_SCHED_COUNT)
        s->user = a;
    for (int k = 0; k < a->n_params; k++)
        s->user_param[k] = a->params[k].def;
    if (a->impl && a->impl->defaults)
        a->impl->defaults(s);
}

ol_sched_params ol_sched_default_params(ol_sched_type t)
{
    ol_sched_params s;
    if (t >= 0 && t < OL_SCHED_COUNT)
        defaults_of((int)t, builtins[t], &s);
    else
        common_defaults(&s, t);
    return s;
}

int ol_sched_params_for(const ol_ctx *ctx, const char *name, ol_sched_params *out)
{
    int i = find(ctx, name);
    if (i < 0)
        return OL_ENAME;
    defaults_of(i, ol_sched_algo_at(ctx, i), out);
    return OL_OK;
}

const ol_sched_algo *ol_sched_params_algo(const ol_sched_params *sp)
{
    if (sp->type == OL_SCHED_USER)
        return sp->user;
    return (sp->type >= 0 && sp->type < OL_SCHED_COUNT) ? builtins[sp->type] : NULL;
}

const char *ol_sched_params_name(const ol_sched_params *sp)
{
    const ol_sched_algo *a = ol_sched_params_algo(sp);
    return a ? a->name : "?";
}

int ol_sched_param_set(ol_ctx *ctx, ol_sched_params *sp, const char *name, double value)
{
    const ol_sched_algo *a = ol_sched_params_algo(sp);
    if (!a || a->n_params == 0)
        return ol__err(ctx, OL_ENAME, "schedule %s has no parameter '%s' (it has none)", ol_sched_params_name(sp),
                       name);
    for (int i = 0; i < a->n_params; i++)
        if (strcmp(a->params[i].name, name) == 0) {
            if (!(value >= a->params[i].lo && value <= a->params[i].hi))
                return ol__err(ctx, OL_ERANGE, "%s: %s must be in [%g, %g], got %g", a->name, name, a->params[i].lo,
                               a->params[i].hi, value);
            sp->user_param[i] = value;
            return OL_OK;
        }
    return ol__err(ctx, OL_ENAME, "schedule %s has no parameter '%s'", a->name, name);
}
