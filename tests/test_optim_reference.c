/* Replays the optimizer reference vectors (tests/fixtures/reference/optim_*.json,
 * see its README.md) through the real kernels and compares every recorded
 * step within |x - ref| <= max(1e-6, 1e-5 |ref|). Also replays every optimizer
 * case in $OPTIMLAB_EXTRA_REFERENCE when set. A case whose implementation or
 * hyperparameters this library does not support fails: no key is ignored
 * unless it has no effect on the numbers. */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optimlab.h"
#include "optimlab/optim.h"
#include "testutil.h"

#define MAX_T 16

typedef struct {
    ol_optim_params op;
    ol_paramset ps;
    int idx[MAX_T]; /* paramset index of tensor k */
    char names[MAX_T][64];
    int nt;
    float *center, *curv; /* flat, like ps->params */
    double noise;
    int steps;
    double *lr, *mom; /* per step, or NULL */
} ref_case;

/* ---- hyperparameter mapping ------------------------------------------- */

typedef enum { K_DOUBLE, K_INT, K_BOOL, K_BETAS, K_OPT_DOUBLE, K_FALSE, K_IGNORE } key_kind;

typedef struct {
    const char *key;
    key_kind kind;
    size_t off; /* into ol_optim_params */
} key_map;

#define D(k, f) {k, K_DOUBLE, offsetof(ol_optim_params, f)}
#define B(k, f) {k, K_BOOL, offsetof(ol_optim_params, f)}
#define END {NULL, 0, 0}
/* keys that select code paths without changing the arithmetic */
#define NOOPS {"foreach", K_IGNORE, 0}, {"differentiable", K_FALSE, 0}, {"capturable", K_FALSE, 0}, {"fused", K_FALSE, 0}

static const key_map k_sgd[] = {D("lr", lr), D("momentum", momentum), D("dampening", dampening),
                                D("weight_decay", weight_decay), B("nesterov", nesterov), B("maximize", maximize),
                                NOOPS, END};
static const key_map k_adam[] = {D("lr", lr), {"betas", K_BETAS, 0}, D("eps", eps), D("weight_decay", weight_decay),
                                 B("amsgrad", amsgrad), B("maximize", maximize), NOOPS, END};
static const key_map k_adagrad[] = {D("lr", lr), D("lr_decay", lr_decay), D("eps", eps),
                                    D("weight_decay", weight_decay),
                                    D("initial_accumulator_value", initial_accumulator_value),
                                    B("maximize", maximize), NOOPS, END};
static const key_map k_rmsprop[] = {D("lr", lr), D("momentum", momentum), D("alpha", alpha), D("eps", eps),
                                    B("centered", centered), D("weight_decay", weight_decay),
                                    B("maximize", maximize), NOOPS, END};
static const key_map k_adadelta[] = {D("lr", lr), D("rho", rho), D("eps", eps), D("weight_decay", weight_decay),
                                     B("maximize", maximize), NOOPS, END};
static const key_map k_nadam[] = {D("lr", lr), {"betas", K_BETAS, 0}, D("eps", eps), D("weight_decay", weight_decay),
                                  D("momentum_decay", momentum_decay), B("decoupled_weight_decay", decoupled_wd),
                                  B("maximize", maximize), NOOPS, END};
static const key_map k_radam[] = {D("lr", lr), {"betas", K_BETAS, 0}, D("eps", eps), D("weight_decay", weight_decay),
                                  B("decoupled_weight_decay", decoupled_wd), B("maximize", maximize), NOOPS, END};
static const key_map k_lamb[] = {D("lr", lr), B("bias_correction", bias_correction), {"betas", K_BETAS, 0},
                                 D("eps", eps), D("weight_decay", weight_decay), B("grad_averaging", grad_averaging),
                                 {"max_grad_norm", K_OPT_DOUBLE, offsetof(ol_optim_params, max_grad_norm)},
                                 B("trust_clip", trust_clip), B("always_adapt", always_adapt),
                                 {"caution", K_FALSE, 0}, B("decoupled_decay", decoupled_wd),
                                 {"corrected_weight_decay", K_FALSE, 0}, {"foreach", K_IGNORE, 0}, END};
static const key_map k_lars[] = {D("lr", lr), D("momentum", momentum), D("dampening", dampening),
                                 D("weight_decay", weight_decay), B("nesterov", nesterov),
                                 D("trust_coeff", trust_coefficient), D("eps", eps), B("trust_clip", trust_clip),
                                 B("always_adapt", always_adapt), END};
static const key_map k_lion[] = {D("lr", lr), {"betas", K_BETAS, 0}, D("weight_decay", weight_decay),
                                 {"caution", K_FALSE, 0}, B("maximize", maximize), {"foreach", K_IGNORE, 0}, END};
static const key_map k_sfadamw[] = {D("lr", lr), {"betas", K_BETAS, 0}, D("eps", eps), D("r", r),
                                    {"warmup_steps", K_INT, offsetof(ol_optim_params, warmup_steps)},
                                    D("weight_lr_power", weight_lr_power), D("weight_decay", weight_decay),
                                    {"foreach", K_IGNORE, 0}, END};
static const key_map k_sfsgd[] = {D("lr", lr), D("momentum", momentum), D("r", r),
                                  {"warmup_steps", K_INT, offsetof(ol_optim_params, warmup_steps)},
                                  D("weight_lr_power", weight_lr_power), D("weight_decay", weight_decay),
                                  {"foreach", K_IGNORE, 0}, END};

static const struct {
    const char *cls;
    ol_optim_type type;
    const key_map *keys;
} classes[] = {{"SGD", OL_OPT_SGD, k_sgd},
               {"Adam", OL_OPT_ADAM, k_adam},
               {"AdamW", OL_OPT_ADAMW, k_adam},
               {"Adagrad", OL_OPT_ADAGRAD, k_adagrad},
               {"RMSprop", OL_OPT_RMSPROP, k_rmsprop},
               {"Adadelta", OL_OPT_ADADELTA, k_adadelta},
               {"NAdam", OL_OPT_NADAM, k_nadam},
               {"RAdam", OL_OPT_RADAM, k_radam},
               {"Lamb", OL_OPT_LAMB, k_lamb},
               {"Lars", OL_OPT_LARS, k_lars},
               {"Lion", OL_OPT_LION, k_lion},
               {"AdamWScheduleFree", OL_OPT_SFADAMW, k_sfadamw},
               {"SGDScheduleFree", OL_OPT_SFSGD, k_sfsgd}};

static int fail(char *err, size_t cap, const char *fmt, const char *a, const char *b)
{
    snprintf(err, cap, fmt, a, b);
    return -1;
}

static int map_keys(const char *cls, json_t *hyper, ol_optim_params *op, char *err, size_t cap)
{
    const key_map *keys = NULL;
    for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++)
        if (strcmp(classes[i].cls, cls) == 0) {
            keys = classes[i].keys;
            *op = ol_optim_default_params(classes[i].type);
        }
    if (!keys)
        return fail(err, cap, "unsupported optimizer class '%s'%s", cls, "");
    if (!json_is_object(hyper))
        return fail(err, cap, "%s: 'hyper' is not an object%s", cls, "");
    if (op->type == OL_OPT_LAMB)
        op->max_grad_norm = 1.0; /* timm's default, overridden below when listed */
    const char *key;
    json_t *val;
    json_object_foreach(hyper, key, val)
    {
        const key_map *km = NULL;
        for (const key_map *k = keys; k->key; k++)
            if (strcmp(k->key, key) == 0)
                km = k;
        if (!km)
            return fail(err, cap, "%s: unsupported hyperparameter '%s'", cls, key);
        char *f = (char *)op + km->off;
        switch (km->kind) {
        case K_DOUBLE:
            if (!json_is_number(val))
                return fail(err, cap, "%s: '%s' is not a number", cls, key);
            *(double *)f = json_number_value(val);
            break;
        case K_INT:
            if (!json_is_integer(val))
                return fail(err, cap, "%s: '%s' is not an integer", cls, key);
            *(int64_t *)f = json_integer_value(val);
            break;
        case K_OPT_DOUBLE:
            if (json_is_null(val))
                *(double *)f = 0.0;
            else if (json_is_number(val))
                *(double *)f = json_number_value(val);
            else
                return fail(err, cap, "%s: '%s' is not a number or null", cls, key);
            break;
        case K_BOOL:
            if (!json_is_boolean(val))
                return fail(err, cap, "%s: '%s' is not a boolean", cls, key);
            *(int *)f = json_is_true(val);
            break;
        case K_BETAS:
            if (!json_is_array(val) || json_array_size(val) != 2 || !json_is_number(json_array_get(val, 0)) ||
                !json_is_number(json_array_get(val, 1)))
                return fail(err, cap, "%s: '%s' is not a pair of numbers", cls, key);
            op->beta1 = json_number_value(json_array_get(val, 0));
            op->beta2 = json_number_value(json_array_get(val, 1));
            break;
        case K_FALSE:
            if (!json_is_false(val) && !json_is_null(val))
                return fail(err, cap, "%s: '%s' other than false is not supported", cls, key);
            break;
        case K_IGNORE: break;
        }
    }
    return 0;
}

/* The optimizer class named by the implementation string: "(Name)" for
 * repository files, else the first torch.optim.Name. */
static int impl_class(const char *impl, char *cls, size_t cap)
{
    const char *lp = strrchr(impl, '(');
    if (lp && !strchr(lp, '=')) {
        const char *rp = strchr(lp, ')');
        if (rp && (size_t)(rp - lp - 1) < cap) {
            snprintf(cls, cap, "%.*s", (int)(rp - lp - 1), lp + 1);
            return 0;
        }
    }
    for (const char *s = strstr(impl, "torch.optim."); s; s = strstr(s + 1, "torch.optim.")) {
        const char *n = s + strlen("torch.optim.");
        if (strncmp(n, "lr_scheduler", 12) == 0)
            continue;
        size_t len = strspn(n, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
        if (len > 0 && len < cap) {
            snprintf(cls, cap, "%.*s", (int)len, n);
            return 0;
        }
    }
    return -1;
}

static int map_optimizer(json_t *root, ol_optim_params *op, char *err, size_t cap)
{
    const char *impl = json_string_value(json_object_get(root, "implementation"));
    json_t *hyper = json_object_get(root, "hyper");
    char cls[64];
    if (!impl || impl_class(impl, cls, sizeof cls) < 0)
        return fail(err, cap, "no optimizer class in 'implementation'%s%s", "", "");
    if (strcmp(cls, "LARC") == 0) {
        json_t *larc = json_object_get(hyper, "larc"), *inner = json_object_get(hyper, "inner_optimizer");
        if (!json_is_object(larc) || !json_is_object(inner) || json_object_size(hyper) != 2)
            return fail(err, cap, "LARC: expected hyper {larc, inner_optimizer}%s%s", "", "");
        const char *icls = json_string_value(json_object_get(inner, "class"));
        if (!icls || impl_class(icls, cls, sizeof cls) < 0)
            return fail(err, cap, "LARC: inner optimizer class missing%s%s", "", "");
        json_t *ih = json_deep_copy(inner);
        json_object_del(ih, "class");
        int rc = map_keys(cls, ih, op, err, cap);
        json_decref(ih);
        if (rc < 0)
            return rc;
        op->larc = 1;
        const char *key;
        json_t *val;
        json_object_foreach(larc, key, val)
        {
            if (strcmp(key, "trust_coefficient") == 0 && json_is_number(val))
                op->larc_trust_coefficient = json_number_value(val);
            else if (strcmp(key, "clip") == 0 && json_is_boolean(val))
                op->larc_clip = json_is_true(val);
            else if (strcmp(key, "eps") == 0 && json_is_number(val))
                op->larc_eps = json_number_value(val);
            else
                return fail(err, cap, "LARC: unsupported setting '%s'%s", key, "");
        }
        return 0;
    }
    /* torch 1.13's single-tensor NAdam counts mu_t twice (fixed in later releases): only its
     * foreach path, named in the implementation or in hyper, is reproduced */
    if (strcmp(cls, "NAdam") == 0 && strstr(impl, "torch 1.13")) {
        json_t *fe = json_object_get(hyper, "foreach");
        if (json_is_false(fe) || (!json_is_true(fe) && !strstr(impl, "foreach=True")))
            return fail(err, cap, "NAdam: torch 1.13's single-tensor path is not reproduced (use foreach=True)%s%s",
                        "", "");
    }
    return map_keys(cls, hyper, op, err, cap);
}

/* ---- problem ------------------------------------------------------------ */

static void free_case(ref_case *c)
{
    ol_paramset_free(&c->ps);
    free(c->center);
    free(c->curv);
    free(c->lr);
    free(c->mom);
    memset(c, 0, sizeof *c);
}

static double *steps_array(json_t *a, int steps)
{
    if (!json_is_array(a) || (int)json_array_size(a) != steps)
        return NULL;
    double *v = malloc((size_t)steps * sizeof *v);
    for (int i = 0; v && i < steps; i++) {
        json_t *x = json_array_get(a, (size_t)i);
        if (!json_is_number(x)) {
            free(v);
            return NULL;
        }
        v[i] = json_number_value(x);
    }
    return v;
}

/* float32 values listed in the file must equal the formula's */
static int check_listed(json_t *obj, const char *name, const float *v, size_t n, char *err, size_t cap)
{
    json_t *a = json_object_get(obj, name);
    if (!json_is_array(a) || json_array_size(a) != n)
        return fail(err, cap, "problem list for '%s' has the wrong length%s", name, "");
    for (size_t i = 0; i < n; i++)
        if ((float)json_number_value(json_array_get(a, i)) != v[i])
            return fail(err, cap, "problem values of '%s' differ from the README formula%s", name, "");
    return 0;
}

static int build_case(ol_ctx *ctx, json_t *root, ref_case *c, char *err, size_t cap)
{
    memset(c, 0, sizeof *c);
    if (map_optimizer(root, &c->op, err, cap) < 0)
        return -1;
    json_t *prob = json_object_get(root, "problem");
    json_t *shapes = json_object_get(prob, "shapes"), *knum = json_object_get(prob, "tensor_number_k");
    json_t *noise = json_object_get(prob, "noise"), *steps = json_object_get(root, "steps");
    if (!json_is_object(shapes) || !json_is_object(knum) || !json_is_number(noise) || !json_is_integer(steps))
        return fail(err, cap, "problem: shapes, tensor_number_k, noise or steps missing%s%s", "", "");
    c->noise = json_number_value(noise);
    c->steps = (int)json_integer_value(steps);
    c->nt = (int)json_object_size(shapes);
    if (c->nt < 1 || c->nt > MAX_T || json_object_size(knum) != (size_t)c->nt)
        return fail(err, cap, "problem: bad tensor list%s%s", "", "");
    const char *name;
    json_t *kv;
    json_object_foreach(knum, name, kv)
    {
        int k = (int)json_integer_value(kv);
        if (!json_is_integer(kv) || k < 0 || k >= c->nt || c->names[k][0] || strlen(name) >= 64)
            return fail(err, cap, "problem: bad tensor number for '%s'%s", name, "");
        snprintf(c->names[k], sizeof c->names[k], "%s", name);
    }
    for (int k = 0; k < c->nt; k++) {
        json_t *sh = json_object_get(shapes, c->names[k]);
        int64_t dims[OL_MAX_DIMS];
        int nd = json_is_array(sh) ? (int)json_array_size(sh) : 0;
        if (nd < 1 || nd > OL_MAX_DIMS)
            return fail(err, cap, "problem: bad shape for '%s'%s", c->names[k], "");
        for (int d = 0; d < nd; d++)
            dims[d] = json_integer_value(json_array_get(sh, (size_t)d));
        /* kinds by name; every kind decays and adapts here, as in the fixtures' one group */
        ol_kind kind = c->names[k][0] == 'b' ? OL_KIND_BIAS : OL_KIND_WEIGHT;
        c->idx[k] = ol_paramset_add(ctx, &c->ps, c->names[k], kind, nd, dims);
        if (c->idx[k] < 0)
            return fail(err, cap, "%s%s", ol_ctx_errmsg(ctx), "");
    }
    if (ol_paramset_finalize(ctx, &c->ps) < 0)
        return fail(err, cap, "%s%s", ol_ctx_errmsg(ctx), "");
    c->center = calloc(c->ps.numel, sizeof(float));
    c->curv = calloc(c->ps.numel, sizeof(float));
    if (!c->center || !c->curv)
        return fail(err, cap, "out of memory%s%s", "", "");
    for (int k = 0; k < c->nt; k++) {
        const ol_tensor_desc *t = &c->ps.t[c->idx[k]];
        float *p = c->ps.params + t->offset, *ce = c->center + t->offset, *a = c->curv + t->offset;
        for (size_t i = 0; i < t->numel; i++) {
            p[i] = (float)(0.5 * sin(1.0 + 0.37 * (double)i + 1.1 * k));
            ce[i] = (float)(0.3 * cos(0.5 + 0.23 * (double)i + 0.7 * k));
            a[i] = (float)(0.5 + 1.5 * ((double)((i * 7 + (size_t)k * 3) % 5) / 4.0));
        }
        if (check_listed(json_object_get(prob, "init"), c->names[k], p, t->numel, err, cap) < 0 ||
            check_listed(json_object_get(prob, "center"), c->names[k], ce, t->numel, err, cap) < 0 ||
            check_listed(json_object_get(prob, "curvature"), c->names[k], a, t->numel, err, cap) < 0)
            return -1;
    }
    for (int k = 0; k < OL_KIND_COUNT; k++) {
        c->op.wd_mult[k] = 1.0;
        c->op.adapt[k] = 1;
    }
    json_t *sched = json_object_get(root, "scheduler");
    c->lr = steps_array(json_object_get(root, "lr"), c->steps);
    c->mom = steps_array(json_object_get(root, "momentum"), c->steps);
    if (sched && !json_is_null(sched) && !c->lr)
        return fail(err, cap, "the case has a scheduler but no per-step 'lr' array of %s steps%s", "'steps'", "");
    if (json_object_get(root, "momentum") && !c->mom)
        return fail(err, cap, "bad 'momentum' array%s%s", "", "");
    return 0;
}

static void gradient(ref_case *c, int t)
{
    for (int k = 0; k < c->nt; k++) {
        const ol_tensor_desc *td = &c->ps.t[c->idx[k]];
        const float *p = c->ps.params + td->offset, *ce = c->center + td->offset, *a = c->curv + td->offset;
        float *g = c->ps.grads + td->offset;
        for (size_t i = 0; i < td->numel; i++) {
            float d = p[i] - ce[i];
            float gi = a[i] * d;
            if (c->noise != 0.0)
                gi = gi + (float)(c->noise * sin(0.7 * t + 1.3 * (double)i + 0.5 * k));
            g[i] = gi;
        }
    }
}

/* Compare the parameters with rec[name]; returns the max err/tol, or -1. */
static double compare(ref_case *c, json_t *rec, int *count)
{
    double worst = 0.0;
    for (int k = 0; k < c->nt; k++) {
        const ol_tensor_desc *td = &c->ps.t[c->idx[k]];
        json_t *a = json_object_get(rec, c->names[k]);
        if (!json_is_array(a) || json_array_size(a) != td->numel)
            return -1.0;
        for (size_t i = 0; i < td->numel; i++) {
            double ref = json_number_value(json_array_get(a, i)), x = c->ps.params[td->offset + i];
            double tol = fmax(1e-6, 1e-5 * fabs(ref)), r = fabs(x - ref) / tol;
            if (!(r <= worst))
                worst = isnan(r) ? INFINITY : r;
            (*count)++;
        }
    }
    return worst;
}

/* Replays one file; returns max err/tol (<= 1 passes), or -1 with err set. */
static double replay(ol_ctx *ctx, json_t *root, char *err, size_t cap, int *nvals)
{
    ref_case c;
    ol_optim *o = NULL;
    double worst = 0.0;
    *nvals = 0;
    if (build_case(ctx, root, &c, err, cap) < 0 || ol_optim_create(ctx, &c.op, &c.ps, &o) < 0) {
        if (!*err)
            snprintf(err, cap, "%s", ol_ctx_errmsg(ctx));
        free_case(&c);
        return -1.0;
    }
    json_t *rec = json_object_get(root, "record"), *rec_eval = json_object_get(root, "record_eval");
    json_t *rsteps = json_object_get(root, "record_steps");
    int nrec = 0;
    if (!json_is_object(rec) || !json_is_array(rsteps))
        snprintf(err, cap, "record or record_steps missing");
    if (rec_eval && !ol_optim_has_eval_mode(o))
        snprintf(err, cap, "record_eval given for an optimizer without an eval mode");
    if (!rec_eval && ol_optim_has_eval_mode(o))
        snprintf(err, cap, "Schedule-Free case without record_eval");
    if (ol_optim_train_mode(ctx, o, &c.ps) < 0)
        snprintf(err, cap, "%s", ol_ctx_errmsg(ctx));
    for (int t = 1; !*err && t <= c.steps; t++) {
        gradient(&c, t);
        ol_optim_hyper h = {.lr = c.lr ? c.lr[t - 1] : c.op.lr, .momentum = c.mom ? c.mom[t - 1] : -1.0};
        if (ol_optim_step(ctx, o, &c.ps, &h) < 0) {
            snprintf(err, cap, "step %d: %s", t, ol_ctx_errmsg(ctx));
            break;
        }
        int recorded = 0;
        for (size_t i = 0; i < json_array_size(rsteps); i++)
            recorded |= json_integer_value(json_array_get(rsteps, i)) == t;
        if (!recorded)
            continue;
        char key[32];
        snprintf(key, sizeof key, "%d", t);
        double w = compare(&c, json_object_get(rec, key), nvals);
        if (w < 0) {
            snprintf(err, cap, "record of step %d missing or malformed", t);
            break;
        }
        worst = fmax(worst, w);
        if (w > 1.0)
            fprintf(stderr, "    step %d: max err/tol %.3g\n", t, w);
        if (rec_eval) {
            ol_optim_eval_mode(ctx, o, &c.ps);
            w = compare(&c, json_object_get(rec_eval, key), nvals);
            ol_optim_train_mode(ctx, o, &c.ps);
            if (w < 0) {
                snprintf(err, cap, "record_eval of step %d missing or malformed", t);
                break;
            }
            worst = fmax(worst, w);
            if (w > 1.0)
                fprintf(stderr, "    step %d (eval x): max err/tol %.3g\n", t, w);
        }
        nrec++;
    }
    if (!*err && nrec != (int)json_array_size(rsteps))
        snprintf(err, cap, "only %d of %zu recorded steps were replayed", nrec, json_array_size(rsteps));
    ol_optim_free(o);
    free_case(&c);
    return *err ? -1.0 : worst;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Replays the optimizer cases of dir; prefix "" takes every *.json. */
static int run_dir(ol_ctx *ctx, const char *dir, const char *prefix, int *ncases)
{
    DIR *d = opendir(dir);
    if (!d) {
        TU_FAIL("cannot open %s", dir);
        return -1;
    }
    char *files[512];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 512) {
        size_t len = strlen(e->d_name);
        if (len > 5 && strcmp(e->d_name + len - 5, ".json") == 0 && strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            files[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(files, (size_t)n, sizeof files[0], cmp_str);
    for (int i = 0; i < n; i++) {
        char path[4096], err[512] = "";
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        json_error_t jerr;
        json_t *root = json_load_file(path, 0, &jerr);
        const char *kind = root ? json_string_value(json_object_get(root, "kind")) : NULL;
        tu_checks++;
        if (!root || !kind) {
            TU_FAIL("%s: cannot parse (%s)", path, root ? "no 'kind'" : jerr.text);
        } else if (strcmp(kind, "optimizer") != 0) {
            printf("  %-40s skipped (kind '%s')\n", files[i], kind);
        } else {
            int nvals = 0;
            double w = replay(ctx, root, err, sizeof err, &nvals);
            (*ncases)++;
            if (w < 0)
                TU_FAIL("%s: %s", path, err);
            else if (w > 1.0)
                TU_FAIL("%s: max err/tol %.3g > 1", path, w);
            else
                printf("  %-40s max err/tol %.4f over %d values\n", files[i], w, nvals);
        }
        json_decref(root);
        free(files[i]);
    }
    return 0;
}

int main(void)
{
    ol_ctx *ctx = ol_ctx_new(0);
    int ncases = 0;
    run_dir(ctx, "fixtures/reference", "optim_", &ncases);
    ASSERT_TRUE(ncases >= 35);
    const char *extra = getenv("OPTIMLAB_EXTRA_REFERENCE");
    if (extra && *extra) {
        int nextra = 0;
        printf("extra reference cases in %s:\n", extra);
        run_dir(ctx, extra, "", &nextra);
        ASSERT_TRUE(nextra > 0);
    }
    ol_ctx_free(ctx);
    return tu_finish("optim_reference");
}
