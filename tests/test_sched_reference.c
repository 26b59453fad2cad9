/* Replays PyTorch scheduler reference vectors against the closed-form schedules:
 * fixtures/reference/sched_*.json and the lr/momentum arrays of the optim_*
 * cases that have a scheduler, the fixtures/sched cases (tests/gen), and every
 * schedule case in the directory $OPTIMLAB_EXTRA_REFERENCE when set. A case
 * that cannot be parsed or uses an unsupported scheduler is a failure. */
#include <dirent.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "optimlab.h"
#include "optimlab/sched.h"
#include "testutil.h"

#define REL_TOL 1e-7
#define ZERO_TOL 1e-12

static double num(json_t *o, const char *key, double def)
{
    json_t *x = o ? json_object_get(o, key) : NULL;
    if (json_is_number(x))
        return json_number_value(x);
    if (json_is_true(x))
        return 1.0;
    if (json_is_false(x))
        return 0.0;
    return def;
}

static const char *str(json_t *o, const char *key, const char *def)
{
    json_t *x = json_object_get(o, key);
    return json_is_string(x) ? json_string_value(x) : def;
}

static const char *short_class(json_t *spec)
{
    const char *c = str(spec, "class", "");
    const char *dot = strrchr(c, '.');
    return dot ? dot + 1 : c;
}

/* PyTorch scheduler description -> parameters (defaults as in PyTorch 1.13).
 * Returns 0, or -1 with why set. */
static int from_spec(json_t *spec, double lr, int64_t spe, ol_sched_params *sp, ol_sched_params *parts, char *why,
                     size_t cap)
{
    const char *cls = short_class(spec);
    ol_sched_type t;
    if (!strcmp(cls, "StepLR"))
        t = OL_SCHED_STEP;
    else if (!strcmp(cls, "MultiStepLR"))
        t = OL_SCHED_MULTISTEP;
    else if (!strcmp(cls, "ExponentialLR"))
        t = OL_SCHED_EXPONENTIAL;
    else if (!strcmp(cls, "PolynomialLR"))
        t = OL_SCHED_POLYNOMIAL;
    else if (!strcmp(cls, "LinearLR"))
        t = OL_SCHED_LINEAR;
    else if (!strcmp(cls, "CosineAnnealingLR"))
        t = OL_SCHED_COSINE;
    else if (!strcmp(cls, "CosineAnnealingWarmRestarts"))
        t = OL_SCHED_COSINE_RESTARTS;
    else if (!strcmp(cls, "CyclicLR"))
        t = OL_SCHED_CYCLIC;
    else if (!strcmp(cls, "OneCycleLR"))
        t = OL_SCHED_ONECYCLE;
    else if (!strcmp(cls, "SequentialLR"))
        t = OL_SCHED_SEQUENTIAL;
    else if (!strcmp(cls, "ReduceLROnPlateau"))
        t = OL_SCHED_PLATEAU;
    else if (!strcmp(cls, "ConstantLR") && num(spec, "factor", 1.0 / 3.0) == 1.0)
        t = OL_SCHED_CONSTANT;
    else {
        snprintf(why, cap, "unsupported scheduler class '%s'", cls);
        return -1;
    }
    *sp = ol_sched_default_params(t);
    sp->base_lr = lr;
    sp->steps_per_epoch = spe;
    sp->per_epoch = spe > 1;
    json_t *ms = json_object_get(spec, "milestones");
    if (json_is_array(ms)) {
        if (json_array_size(ms) > OL_SCHED_MAX_MILESTONES) {
            snprintf(why, cap, "too many milestones");
            return -1;
        }
        sp->nmilestones = (int)json_array_size(ms);
        for (int i = 0; i < sp->nmilestones; i++)
            sp->milestones[i] = (int64_t)json_integer_value(json_array_get(ms, (size_t)i));
    }
    switch (t) {
    case OL_SCHED_STEP:
        sp->step_size = (int64_t)num(spec, "step_size", 0);
        sp->gamma = num(spec, "gamma", 0.1);
        break;
    case OL_SCHED_MULTISTEP: sp->gamma = num(spec, "gamma", 0.1); break;
    case OL_SCHED_EXPONENTIAL: sp->gamma = num(spec, "gamma", 0.1); break;
    case OL_SCHED_POLYNOMIAL:
        sp->total_iters = (int64_t)num(spec, "total_iters", 5);
        sp->power = num(spec, "power", 1.0);
        break;
    case OL_SCHED_LINEAR:
        sp->start_factor = num(spec, "start_factor", 1.0 / 3.0);
        sp->end_factor = num(spec, "end_factor", 1.0);
        sp->total_iters = (int64_t)num(spec, "total_iters", 5);
        break;
    case OL_SCHED_COSINE:
        sp->t_max = (int64_t)num(spec, "T_max", 0);
        sp->eta_min = num(spec, "eta_min", 0.0);
        break;
    case OL_SCHED_COSINE_RESTARTS:
        sp->t_0 = (int64_t)num(spec, "T_0", 0);
        sp->t_mult = (int)num(spec, "T_mult", 1);
        sp->eta_min = num(spec, "eta_min", 0.0);
        break;
    case OL_SCHED_CYCLIC: {
        const char *mode = str(spec, "mode", "triangular");
        sp->base_lr = num(spec, "base_lr", lr);
        sp->max_lr = num(spec, "max_lr", 0);
        sp->step_size_up = (int64_t)num(spec, "step_size_up", 2000);
        sp->step_size_down = (int64_t)num(spec, "step_size_down", 0);
        sp->cyclic_gamma = num(spec, "gamma", 1.0);
        sp->cycle_momentum = (int)num(spec, "cycle_momentum", 1);
        sp->base_momentum = num(spec, "base_momentum", 0.8);
        sp->max_momentum = num(spec, "max_momentum", 0.9);
        if (!strcmp(mode, "triangular"))
            sp->cyclic_mode = OL_CYCLIC_TRIANGULAR;
        else if (!strcmp(mode, "triangular2"))
            sp->cyclic_mode = OL_CYCLIC_TRIANGULAR2;
        else if (!strcmp(mode, "exp_range"))
            sp->cyclic_mode = OL_CYCLIC_EXP_RANGE;
        else {
            snprintf(why, cap, "unsupported CyclicLR mode '%s'", mode);
            return -1;
        }
        if (json_object_get(spec, "scale_fn") && !json_is_null(json_object_get(spec, "scale_fn"))) {
            snprintf(why, cap, "custom CyclicLR scale_fn");
            return -1;
        }
        break;
    }
    case OL_SCHED_ONECYCLE:
        sp->max_lr = num(spec, "max_lr", lr);
        sp->total_steps = (int64_t)num(spec, "total_steps", 0);
        if (sp->total_steps == 0)
            sp->total_steps = (int64_t)(num(spec, "epochs", 0) * num(spec, "steps_per_epoch", 0));
        sp->pct_start = num(spec, "pct_start", 0.3);
        sp->anneal_linear = !strcmp(str(spec, "anneal_strategy", "cos"), "linear");
        sp->cycle_momentum = (int)num(spec, "cycle_momentum", 1);
        sp->base_momentum = num(spec, "base_momentum", 0.85);
        sp->max_momentum = num(spec, "max_momentum", 0.95);
        sp->div_factor = num(spec, "div_factor", 25.0);
        sp->final_div_factor = num(spec, "final_div_factor", 1e4);
        sp->three_phase = (int)num(spec, "three_phase", 0);
        break;
    case OL_SCHED_PLATEAU:
        sp->plateau_maximize = !strcmp(str(spec, "mode", "min"), "max");
        sp->plateau_factor = num(spec, "factor", 0.1);
        sp->plateau_patience = (int)num(spec, "patience", 10);
        sp->plateau_threshold = num(spec, "threshold", 1e-4);
        sp->plateau_threshold_abs = !strcmp(str(spec, "threshold_mode", "rel"), "abs");
        sp->plateau_cooldown = (int)num(spec, "cooldown", 0);
        sp->plateau_min_lr = num(spec, "min_lr", 0.0);
        sp->plateau_eps = num(spec, "eps", 1e-8);
        break;
    case OL_SCHED_SEQUENTIAL: {
        json_t *subs = json_object_get(spec, "schedulers");
        if (!parts || !json_is_array(subs) || json_array_size(subs) < 1 ||
            json_array_size(subs) > OL_SCHED_MAX_MILESTONES) {
            snprintf(why, cap, "bad or nested SequentialLR");
            return -1;
        }
        sp->nparts = (int)json_array_size(subs);
        for (int i = 0; i < sp->nparts; i++)
            if (from_spec(json_array_get(subs, (size_t)i), lr, spe, &parts[i], NULL, why, cap) < 0)
                return -1;
        sp->parts = parts;
        break;
    }
    default: break;
    }
    return 0;
}

typedef struct {
    int cases, values;
} tally;

/* Compare got[] against the reference array; returns the max relative error (inf on a miss). */
static double compare(const char *name, const char *what, const double *got, json_t *ref, int n)
{
    double worst = 0.0;
    int bad = 0;
    for (int i = 0; i < n; i++) {
        double r = json_number_value(json_array_get(ref, (size_t)i)), g = got[i];
        double err = r == 0.0 ? fabs(g) : fabs(g - r) / fabs(r);
        int ok = r == 0.0 ? fabs(g) <= ZERO_TOL : fabs(g - r) <= REL_TOL * fabs(r);
        tu_checks++;
        if (!ok || !isfinite(g)) {
            if (bad++ < 3)
                TU_FAIL("%s: %s[%d] = %.17g, reference %.17g", name, what, i, g, r);
            err = INFINITY;
        }
        if (err > worst)
            worst = err;
    }
    return worst;
}

/* One case; returns 1 if it was replayed, 0 if the file has no schedule, -1 on failure to parse. */
static int replay(const char *path, tally *tl)
{
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    json_error_t jerr;
    json_t *d = json_load_file(path, 0, &jerr);
    if (!d) {
        TU_FAIL("%s: cannot parse: %s (line %d)", name, jerr.text, jerr.line);
        return -1;
    }
    json_t *spec = json_object_get(d, "scheduler");
    json_t *lr = json_object_get(d, "lr");
    int is_sched = !strcmp(str(d, "kind", ""), "schedule");
    if (!json_is_object(spec) || !json_is_array(lr)) {
        json_decref(d);
        if (is_sched) {
            TU_FAIL("%s: schedule case without scheduler or lr array", name);
            return -1;
        }
        return 0;
    }
    json_t *hyper = json_object_get(d, "hyper");
    json_t *betas = json_object_get(hyper, "betas");
    double base_lr = num(hyper, "lr", NAN);
    double host_mom = json_is_array(betas) ? json_number_value(json_array_get(betas, 0))
                                           : num(hyper, "beta1", num(hyper, "momentum", 0.0));
    int64_t spe = (int64_t)num(d, "steps_per_epoch", 1);
    int n = (int)json_array_size(lr);
    ol_sched_params sp, parts[OL_SCHED_MAX_MILESTONES];
    char why[256] = "";
    if (!isfinite(base_lr) || n < 1 || from_spec(spec, base_lr, spe, &sp, parts, why, sizeof why) < 0) {
        TU_FAIL("%s: cannot replay: %s", name, *why ? why : "no lr in hyper");
        json_decref(d);
        return -1;
    }
    ol_ctx *ctx = ol_ctx_new(1);
    if (ol_sched_validate(ctx, &sp) < 0) {
        TU_FAIL("%s: parameters rejected: %s", name, ol_ctx_errmsg(ctx));
        ol_ctx_free(ctx);
        json_decref(d);
        return -1;
    }
    ol_ctx_free(ctx);
    double *got = malloc(sizeof(double) * (size_t)n * 2);
    double *gm = got + n;
    json_t *metrics = json_object_get(d, "metrics");
    if (sp.type == OL_SCHED_PLATEAU) {
        if (!json_is_array(metrics) || (int)json_array_size(metrics) < n) {
            TU_FAIL("%s: ReduceLROnPlateau case without metrics", name);
            free(got);
            json_decref(d);
            return -1;
        }
        ol_plateau p;
        ol_plateau_init(&p, &sp);
        for (int i = 0; i < n; i++) {
            got[i] = ol_plateau_lr(&p, &sp, i);
            gm[i] = host_mom;
            ol_plateau_update(&p, &sp, json_number_value(json_array_get(metrics, (size_t)i)));
        }
    } else {
        for (int i = 0; i < n; i++) {
            got[i] = ol_sched_lr(&sp, i);
            double m = ol_sched_momentum(&sp, i);
            gm[i] = m < 0.0 ? host_mom : m;
        }
    }
    double e_lr = compare(name, "lr", got, lr, n), e_m = 0.0;
    json_t *mom = json_object_get(d, "momentum");
    if (json_is_array(mom) && (int)json_array_size(mom) == n)
        e_m = compare(name, "momentum", gm, mom, n);
    else if (json_is_array(mom))
        TU_FAIL("%s: momentum array has %zu values, lr has %d", name, json_array_size(mom), n);
    tl->values += n;

    /* warm-up followed by X is SequentialLR([LinearLR(f, 1, W), X], [W]): check that form too */
    double e_w = -1.0;
    if (sp.type == OL_SCHED_SEQUENTIAL && sp.nparts == 2 && parts[0].type == OL_SCHED_LINEAR &&
        parts[0].end_factor == 1.0 && parts[0].total_iters == sp.milestones[0] && !sp.per_epoch) {
        ol_sched_params w = parts[1];
        w.warmup_steps = sp.milestones[0];
        w.warmup_start_factor = parts[0].start_factor;
        for (int i = 0; i < n; i++)
            got[i] = ol_sched_lr(&w, i);
        e_w = compare(name, "lr (warm-up form)", got, lr, n);
    }
    printf("  %-40s %-28s %4d steps  max rel err lr %.2e%s", name, short_class(spec), n, e_lr,
           json_is_array(mom) ? "  momentum " : "");
    if (json_is_array(mom))
        printf("%.2e", e_m);
    if (e_w >= 0.0)
        printf("  warm-up form %.2e", e_w);
    printf("\n");
    tl->cases++;
    free(got);
    json_decref(d);
    return 1;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Replay every *.json in dir whose name starts with prefix (NULL: all). */
static int replay_dir(const char *dir, const char *prefix, int must_exist, tally *tl)
{
    DIR *dp = opendir(dir);
    if (!dp) {
        if (must_exist)
            TU_FAIL("cannot open %s", dir);
        return 0;
    }
    char *names[1024];
    int nn = 0;
    struct dirent *e;
    while ((e = readdir(dp)) && nn < 1024) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
            continue;
        if (prefix && strncmp(e->d_name, prefix, strlen(prefix)) != 0)
            continue;
        names[nn++] = strdup(e->d_name);
    }
    closedir(dp);
    qsort(names, (size_t)nn, sizeof names[0], cmp_str);
    int replayed = 0;
    for (int i = 0; i < nn; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        replayed += replay(path, tl) > 0;
        free(names[i]);
    }
    return replayed;
}

int main(void)
{
    tally tl = {0, 0};
    printf("fixtures/reference:\n");
    int a = replay_dir("fixtures/reference", "sched_", 1, &tl);
    int b = replay_dir("fixtures/reference", "optim_", 1, &tl);
    ASSERT_TRUE(a >= 16); /* every shared schedule case */
    ASSERT_TRUE(b >= 4);  /* steplr, warmup_cosine, onecycle, cyclic_triangular2 */
    printf("fixtures/sched (tests/gen/gen_sched_reference.py):\n");
    int c = replay_dir("fixtures/sched", NULL, 1, &tl);
    ASSERT_TRUE(c >= 16);
    const char *extra = getenv("OPTIMLAB_EXTRA_REFERENCE");
    if (extra && *extra) {
        printf("%s:\n", extra);
        DIR *dp = opendir(extra);
        if (!dp)
            TU_FAIL("OPTIMLAB_EXTRA_REFERENCE=%s: cannot open the directory", extra);
        else
            closedir(dp);
        replay_dir(extra, NULL, 1, &tl);
    }
    printf("%d cases, %d values\n", tl.cases, tl.values);
    return tu_finish("sched_reference");
}
