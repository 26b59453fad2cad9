/* The registry of optimizers: the built-ins (a static table, consulted
 * first) and the algorithms a context's user or plugins registered; the
 * context's storage of registered schedules; plugins.
 * Adding a built-in optimizer is its file plus one line in OL_OPTIM_BUILTINS. */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optim/optim_internal.h"

struct ol__registry {
    ol_optim_algo *optim;
    int n_optim, cap_optim;
    ol_sched_algo *sched;
    int n_sched, cap_sched;
    void **plugins;
    int n_plugins, cap_plugins;
};

static const ol_optim_algo *const builtins[OL_OPT_COUNT] = {
#define OL__OPT_REF(e, n) &ol__optim_##n,
    OL_OPTIM_BUILTINS(OL__OPT_REF)
#undef OL__OPT_REF
};

const ol_optim_algo *ol__optim_builtin(ol_optim_type t)
{
    return (t >= 0 && t < OL_OPT_COUNT) ? builtins[t] : NULL;
}

void ol__registry_free(struct ol__registry *r)
{
    if (!r)
        return;
    free(r->optim);
    free(r->sched);
    for (int i = r->n_plugins - 1; i >= 0; i--)
        dlclose(r->plugins[i]);
    free(r->plugins);
    free(r);
}

static struct ol__registry *registry(ol_ctx *ctx)
{
    if (!ctx->reg)
        ctx->reg = calloc(1, sizeof *ctx->reg);
    return ctx->reg;
}

/* Grow *arr (of elem-byte items) to hold n + 1. */
static int grow(void **arr, int n, int *cap, size_t elem)
{
    if (n < *cap)
        return 0;
    int nc = *cap ? 2 * *cap : 8;
    void *p = realloc(*arr, (size_t)nc * elem);
    if (!p)
        return -1;
    *arr = p;
    *cap = nc;
    return 0;
}

/* ---- optimizers ----------------------------------------------------------- */

int ol_optim_algo_count(const ol_ctx *ctx) { return OL_OPT_COUNT + (ctx && ctx->reg ? ctx->reg->n_optim : 0); }

const ol_optim_algo *ol_optim_algo_at(const ol_ctx *ctx, int i)
{
    if (i >= 0 && i < OL_OPT_COUNT)
        return builtins[i];
    i -= OL_OPT_COUNT;
    return (ctx && ctx->reg && i >= 0 && i < ctx->reg->n_optim) ? &ctx->reg->optim[i] : NULL;
}

/* The algorithm called name, and the alias matched (NULL for the name itself). */
static const ol_optim_algo *find_optim(const ol_ctx *ctx, const char *name, const ol_optim_alias **alias)
{
    int n = ol_optim_algo_count(ctx);
    *alias = NULL;
    for (int i = 0; i < n; i++) {
        const ol_optim_algo *a = ol_optim_algo_at(ctx, i);
        if (strcmp(a->name, name) == 0)
            return a;
        for (int k = 0; k < OL_OPTIM_MAX_ALIASES && a->aliases[k].name; k++)
            if (strcmp(a->aliases[k].name, name) == 0) {
                *alias = &a->aliases[k];
                return a;
            }
    }
    return NULL;
}

int ol_optim_algo_find(const ol_ctx *ctx, const char *name, const ol_optim_algo **out)
{
    const ol_optim_alias *al;
    *out = find_optim(ctx, name, &al);
    return *out ? OL_OK : OL_ENAME;
}

int ol__valid_algo_name(const char *s)
{
    if (!s || !*s || strlen(s) >= OL_OPTIM_NAME_MAX)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
            return 0;
    return 1;
}

static int check_hparams(ol_ctx *ctx, const char *algo, const ol_optim_hparam *hp, int n)
{
    if (n < 0 || n > OL_OPTIM_MAX_HPARAMS)
        return ol__err(ctx, OL_EINVAL, "optimizer %s: %d hyperparameters (at most %d)", algo, n, OL_OPTIM_MAX_HPARAMS);
    for (int i = 0; i < n; i++) {
        if (!ol__valid_algo_name(hp[i].name))
            return ol__err(ctx, OL_EINVAL, "%s: hyperparameter %d has no valid name", algo, i);
        if (!(hp[i].lo <= hp[i].def && hp[i].def <= hp[i].hi))
            return ol__err(ctx, OL_EINVAL, "%s: default %g of %s is outside [%g, %g]", algo, hp[i].def, hp[i].name,
                           hp[i].lo, hp[i].hi);
        for (int j = 0; j < i; j++)
            if (strcmp(hp[i].name, hp[j].name) == 0)
                return ol__err(ctx, OL_EINVAL, "%s: hyperparameter %s given twice", algo, hp[i].name);
    }
    return OL_OK;
}

static int check_descriptor(ol_ctx *ctx, const ol_optim_algo *a)
{
    if (!ol__valid_algo_name(a->name))
        return ol__err(ctx, OL_EINVAL, "optimizer name '%s' is not valid (lower case letters, digits, - _ .)",
                       a->name ? a->name : "");
    if (!a->step || a->impl)
        return ol__err(ctx, OL_EINVAL, "optimizer %s: a step function is required (and impl must be NULL)", a->name);
    if (a->n_slots < 0 || a->n_slots > OL_OPTIM_MAX_SLOTS || a->n_scalars < 0 || a->n_scalars > OL_OPTIM_MAX_SCALARS)
        return ol__err(ctx, OL_EINVAL, "optimizer %s: %d slots and %d scalars (at most %d and %d)", a->name,
                       a->n_slots, a->n_scalars, OL_OPTIM_MAX_SLOTS, OL_OPTIM_MAX_SCALARS);
    for (int s = 0; s < a->n_slots; s++)
        if (!a->slot_names[s] || !*a->slot_names[s])
            return ol__err(ctx, OL_EINVAL, "optimizer %s: slot %d has no name", a->name, s);
    for (int s = 0; s < a->n_scalars; s++)
        if (!a->scalar_names[s] || !*a->scalar_names[s])
            return ol__err(ctx, OL_EINVAL, "optimizer %s: scalar %d has no name", a->name, s);
    if ((unsigned)a->wd_style > OL_WD_SELF || (unsigned)a->mom_kind > OL_MOM_BETA1)
        return ol__err(ctx, OL_EINVAL, "optimizer %s: unknown weight-decay style or momentum kind", a->name);
    return check_hparams(ctx, a->name, a->hparams, a->n_hparams);
}

int ol_optim_register(ol_ctx *ctx, const ol_optim_algo *algo)
{
    if (!algo)
        return ol__err(ctx, OL_EINVAL, "ol_optim_register: no descriptor");
    OL__TRY(check_descriptor(ctx, algo));
    const ol_optim_alias *al;
    const char *names[1 + OL_OPTIM_MAX_ALIASES] = {algo->name};
    for (int k = 0; k < OL_OPTIM_MAX_ALIASES && algo->aliases[k].name; k++) {
        if (!ol__valid_algo_name(algo->aliases[k].name))
            return ol__err(ctx, OL_EINVAL, "optimizer %s: alias '%s' is not a valid name", algo->name,
                           algo->aliases[k].name);
        names[k + 1] = algo->aliases[k].name;
    }
    for (int k = 0; k <= OL_OPTIM_MAX_ALIASES && names[k]; k++)
        if (find_optim(ctx, names[k], &al))
            return ol__err(ctx, OL_ENAME, "optimizer name '%s' is already registered", names[k]);
    struct ol__registry *r = registry(ctx);
    if (!r || grow((void **)&r->optim, r->n_optim, &r->cap_optim, sizeof *r->optim))
        return ol__err(ctx, OL_ENOMEM, "out of memory registering optimizer %s", algo->name);
    r->optim[r->n_optim++] = *algo;
    return OL_OK;
}

const ol_optim_algo *ol_optim_params_algo(const ol_optim_params *op)
{
    if (op->type == OL_OPT_USER)
        return op->algo;
    return ol__optim_builtin(op->type);
}

const char *ol_optim_params_name(const ol_optim_params *op)
{
    const ol_optim_algo *a = ol_optim_params_algo(op);
    return a ? a->name : "?";
}

/* The defaults every algorithm starts from, before its own. */
static void common_defaults(ol_optim_params *p)
{
    memset(p, 0, sizeof *p);
    p->lr = 1e-3;
    p->beta1 = 0.9;
    p->beta2 = 0.999;
    p->eps = 1e-8;
    p->alpha = 0.99;
    p->rho = 0.9;
    p->momentum_decay = 4e-3;
    p->trust_coefficient = 0.001;
    p->bias_correction = 1;
    p->grad_averaging = 1;
    p->larc_trust_coefficient = 0.02;
    p->larc_clip = 1;
    p->larc_eps = 1e-8;
    p->weight_lr_power = 2.0;
    for (int k = 0; k < OL_KIND_COUNT; k++) {
        p->lr_mult[k] = 1.0;
        p->wd_mult[k] = 1.0;
        p->adapt[k] = 1;
    }
}

static void defaults_of(const ol_optim_algo *a, ol_optim_params *p)
{
    common_defaults(p);
    p->type = a->impl ? a->impl->type : OL_OPT_USER;
    p->algo = a->impl ? NULL : a;
    for (int i = 0; i < a->n_hparams; i++)
        p->hparam[i] = a->hparams[i].def;
    if (a->defaults)
        a->defaults(p);
}

ol_optim_params ol_optim_default_params(ol_optim_type t)
{
    ol_optim_params p;
    const ol_optim_algo *a = ol__optim_builtin(t);
    if (a) {
        defaults_of(a, &p);
    } else {
        common_defaults(&p);
        p.type = t;
    }
    return p;
}

int ol_optim_params_for(ol_ctx *ctx, const char *name, ol_optim_params *out)
{
    const ol_optim_alias *al;
    const ol_optim_algo *a = find_optim(ctx, name, &al);
    if (!a)
        return ol__err(ctx, OL_ENAME, "unknown optimizer '%s'", name);
    defaults_of(a, out);
    if (al && al->adjust)
        al->adjust(out);
    return OL_OK;
}

const char *ol_optim_name(ol_optim_type t)
{
    const ol_optim_algo *a = ol__optim_builtin(t);
    return a ? a->name : "?";
}

int ol_optim_from_name(const char *name, ol_optim_type *out)
{
    const ol_optim_alias *al;
    const ol_optim_algo *a = find_optim(NULL, name, &al);
    if (!a)
        return OL_ENAME;
    *out = a->impl->type;
    return OL_OK;
}

int ol_optim_params_from_name(const char *name, ol_optim_params *out) { return ol_optim_params_for(NULL, name, out); }

int ol_optim_hparam_set(ol_ctx *ctx, ol_optim_params *op, const char *name, double value)
{
    const ol_optim_algo *a = ol_optim_params_algo(op);
    if (!a)
        return ol__err(ctx, OL_ENAME, "unknown optimizer type %d", (int)op->type);
    for (int i = 0; i < a->n_hparams; i++)
        if (strcmp(a->hparams[i].name, name) == 0) {
            const ol_optim_hparam *h = &a->hparams[i];
            if (!(value >= h->lo && value <= h->hi))
                return ol__err(ctx, OL_ERANGE, "%s: %s must be in [%g, %g], got %g", a->name, name, h->lo, h->hi,
                               value);
            op->hparam[i] = value;
            return OL_OK;
        }
    return ol__err(ctx, OL_ENAME, "%s has no hyperparameter '%s'%s", a->name, name,
                   a->n_hparams ? "" : " (it has none)");
}

/* ---- storage of registered schedules (the API: src/sched/registry.c) ------ */

int ol__registry_sched_count(const ol_ctx *ctx) { return ctx && ctx->reg ? ctx->reg->n_sched : 0; }

const ol_sched_algo *ol__registry_sched_at(const ol_ctx *ctx, int i)
{
    return (i >= 0 && i < ol__registry_sched_count(ctx)) ? &ctx->reg->sched[i] : NULL;
}

int ol__registry_sched_add(ol_ctx *ctx, const ol_sched_algo *a)
{
    struct ol__registry *r = registry(ctx);
    if (!r || grow((void **)&r->sched, r->n_sched, &r->cap_sched, sizeof *r->sched))
        return ol__err(ctx, OL_ENOMEM, "out of memory registering schedule %s", a->name);
    r->sched[r->n_sched++] = *a;
    return OL_OK;
}

/* ---- plugins -------------------------------------------------------------- */

int ol_plugin_load(ol_ctx *ctx, const char *path)
{
    struct ol__registry *r = registry(ctx);
    if (!r || grow((void **)&r->plugins, r->n_plugins, &r->cap_plugins, sizeof *r->plugins))
        return ol__err(ctx, OL_ENOMEM, "out of memory loading plugin %s", path);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        return ol__err(ctx, OL_ENOENT, "plugin %s: %s", path, e ? e : "cannot be loaded");
    }
    int (*init)(ol_ctx *);
    void *sym = dlsym(h, OL_PLUGIN_INIT);
    memcpy(&init, &sym, sizeof init); /* object to function pointer, as POSIX allows */
    if (!sym) {
        dlclose(h);
        return ol__err(ctx, OL_EINVAL, "plugin %s has no %s function", path, OL_PLUGIN_INIT);
    }
    r->plugins[r->n_plugins++] = h; /* kept open: its algorithms may already be registered */
    int rc = init(ctx);
    if (rc < 0) {
        char msg[900];
        snprintf(msg, sizeof msg, "%s", ol_ctx_errmsg(ctx));
        return ol__err(ctx, rc, "plugin %s: %s", path, *msg ? msg : ol_strerror(rc));
    }
    return OL_OK;
}
