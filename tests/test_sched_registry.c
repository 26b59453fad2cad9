/* Built-in schedules are descriptors in the same registry as registered
 * ones: names and aliases resolve both ways, the command-line options of the
 * descriptors are consistent where several schedules share one, registered
 * schedules cannot take a built-in's name or alias, and ol_sched_resolve
 * only writes down values the schedule already used. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "optimlab/sched.h"
#include "testutil.h"

#define EACH_OPTION(a, o)                                                                                          \
    for (const ol_sched_option *o = (a)->options; o < (a)->options + OL_SCHED_MAX_OPTIONS && o->name; o++)

static int same_text(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }

static void test_names(void)
{
    ASSERT_TRUE(ol_sched_algo_count(NULL) == OL_SCHED_COUNT);
    for (int i = 0; i < OL_SCHED_COUNT; i++) {
        const ol_sched_algo *a = ol_sched_algo_at(NULL, i), *found = NULL;
        ol_sched_type t = OL_SCHED_COUNT;
        ASSERT_TRUE(a && a->name && a->summary && (a->impl || a->lr));
        ASSERT_TRUE(strcmp(ol_sched_name((ol_sched_type)i), a->name) == 0);
        ASSERT_OK(ol_sched_from_name(a->name, &t), NULL);
        ASSERT_EQ_INT(t, i);
        for (int k = 0; k < OL_SCHED_MAX_ALIASES && a->aliases[k]; k++) {
            ol_sched_params sp;
            ASSERT_OK(ol_sched_algo_find(NULL, a->aliases[k], &found), NULL);
            ASSERT_TRUE(found == a);
            ASSERT_OK(ol_sched_params_for(NULL, a->aliases[k], &sp), NULL);
            ASSERT_EQ_INT(sp.type, i);
            ASSERT_TRUE(ol_sched_params_algo(&sp) == a);
        }
    }
    ol_sched_type t;
    ASSERT_OK(ol_sched_from_name("sgdr", &t), NULL);
    ASSERT_EQ_INT(t, OL_SCHED_COSINE_RESTARTS);
    ASSERT_EQ_INT(ol_sched_from_name("cosine-restart", &t), OL_ENAME);
}

/* Options that several schedules list are one command-line option: the same
 * kind, default and value name; each option is well formed. */
static void test_options(void)
{
    for (int i = 0; i < OL_SCHED_COUNT; i++) {
        const ol_sched_algo *a = ol_sched_algo_at(NULL, i);
        EACH_OPTION(a, o) {
            ASSERT_TRUE(o->help && *o->help && o->def);
            ASSERT_TRUE(o->field < sizeof(ol_sched_params));
            if (o->kind == OL_SOPT_CHOICE)
                ASSERT_TRUE(o->choices && strstr(o->choices, o->def) == o->choices); /* the default is the first */
            if (o->kind == OL_SOPT_EPOCH_LIST)
                ASSERT_TRUE(o->field == offsetof(ol_sched_params, milestones));
            ASSERT_TRUE((o->kind == OL_SOPT_FLAG || o->kind == OL_SOPT_NOT_FLAG) == (o->metavar == NULL));
            for (int j = 0; j < OL_SCHED_COUNT; j++) {
                const ol_sched_algo *b = ol_sched_algo_at(NULL, j);
                EACH_OPTION(b, q) {
                    if (strcmp(o->name, q->name) != 0)
                        continue;
                    if (o->kind != q->kind || !same_text(o->def, q->def) || !same_text(o->metavar, q->metavar))
                        TU_FAIL("--%s differs between %s and %s", o->name, a->name, b->name);
                }
            }
        }
    }
}

/* A numeric option's default is the schedule's own default value. */
static void test_option_defaults(void)
{
    for (int i = 0; i < OL_SCHED_COUNT; i++) {
        const ol_sched_algo *a = ol_sched_algo_at(NULL, i);
        ol_sched_params sp = ol_sched_default_params((ol_sched_type)i);
        EACH_OPTION(a, o) {
            /* the CLI's linear schedule decays from the lr itself, PyTorch's LinearLR starts at 1/3 */
            if (!*o->def || strcmp(o->name, "start-factor") == 0)
                continue;
            const char *field = (const char *)&sp + o->field;
            double want = strtod(o->def, NULL), got;
            int k;
            if (o->kind == OL_SOPT_NUMBER) {
                memcpy(&got, field, sizeof got);
            } else if (o->kind == OL_SOPT_INT || o->kind == OL_SOPT_CHOICE) {
                memcpy(&k, field, sizeof k);
                got = k;
                if (o->kind == OL_SOPT_CHOICE)
                    want = 0.0;
            } else {
                continue;
            }
            if (got != want)
                TU_FAIL("%s --%s: default text %s, default value %g", a->name, o->name, o->def, got);
        }
    }
}

static double flat(const double *p, int64_t step, int64_t total, double base_lr)
{
    (void)p;
    (void)step;
    (void)total;
    return base_lr;
}

static void test_register(void)
{
    ol_ctx *ctx = ol_ctx_new(1);
    ol_sched_algo a = {.name = "flat", .summary = "the lr", .aliases = {"level"}, .lr = flat};
    ASSERT_OK(ol_sched_register(ctx, &a), ctx);
    ASSERT_EQ_INT(ol_sched_algo_count(ctx), OL_SCHED_COUNT + 1);
    const ol_sched_algo *found;
    ASSERT_OK(ol_sched_algo_find(ctx, "level", &found), ctx);
    ASSERT_TRUE(found == ol_sched_algo_at(ctx, OL_SCHED_COUNT) && strcmp(found->name, "flat") == 0);
    const ol_sched_algo *none;
    ASSERT_EQ_INT(ol_sched_algo_find(NULL, "flat", &none), OL_ENAME); /* only in ctx */
    ol_sched_algo b = a;
    b.name = "other";
    b.aliases[0] = "sgdr"; /* a built-in's alias */
    ASSERT_EQ_INT(ol_sched_register(ctx, &b), OL_ENAME);
    b.aliases[0] = "level"; /* the first one's alias */
    ASSERT_EQ_INT(ol_sched_register(ctx, &b), OL_ENAME);
    b.aliases[0] = NULL;
    b.options[0] = ol_sched_algo_at(NULL, OL_SCHED_STEP)->options[0]; /* command-line options are the built-ins' */
    ASSERT_EQ_INT(ol_sched_register(ctx, &b), OL_EINVAL);
    b.options[0].name = NULL;
    b.impl = ol_sched_algo_at(NULL, OL_SCHED_COSINE)->impl;
    ASSERT_EQ_INT(ol_sched_register(ctx, &b), OL_EINVAL);
    b.impl = NULL;
    b.aliases[0] = "Bad Name";
    ASSERT_EQ_INT(ol_sched_register(ctx, &b), OL_EINVAL);
    ol_sched_params sp;
    ASSERT_OK(ol_sched_params_for(ctx, "level", &sp), ctx);
    ASSERT_TRUE(sp.type == OL_SCHED_USER && sp.user == found);
    ol_ctx_free(ctx);
}

/* Resolving writes down defaults that depend on the length: the lr of every
 * step stays bitwise the same where the value was already implied. */
static void test_resolve(void)
{
    const ol_sched_type same[] = {OL_SCHED_COSINE, OL_SCHED_POLYNOMIAL, OL_SCHED_LINEAR, OL_SCHED_CYCLIC,
                                  OL_SCHED_ONECYCLE};
    for (int per_epoch = 0; per_epoch <= 1; per_epoch++)
        for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
            ol_sched_params s = ol_sched_default_params(same[i]);
            s.total_steps = 1003;
            s.warmup_steps = 37;
            s.steps_per_epoch = 10;
            s.per_epoch = per_epoch;
            s.max_lr = same[i] == OL_SCHED_CYCLIC ? 0.7 : 0.0;
            s.step_size_up = 41;
            s.min_lr_ratio = 0.01;
            ol_sched_params r = s;
            ol_sched_resolve(&r);
            ASSERT_OK(ol_sched_validate(NULL, &r), NULL);
            for (int64_t t = 0; t < s.total_steps + 5; t++)
                if (ol_sched_lr(&s, t) != ol_sched_lr(&r, t) || ol_sched_momentum(&s, t) != ol_sched_momentum(&r, t)) {
                    TU_FAIL("%s (per_epoch %d): step %lld differs after resolve", ol_sched_name(same[i]), per_epoch,
                            (long long)t);
                    break;
                }
        }
    ol_sched_params m = ol_sched_default_params(OL_SCHED_MULTISTEP);
    m.total_steps = 1000;
    m.warmup_steps = 200;
    ol_sched_resolve(&m);
    ASSERT_EQ_INT(m.nmilestones, 2);
    ASSERT_EQ_INT(m.milestones[0], 400);
    ASSERT_EQ_INT(m.milestones[1], 600);
    ol_sched_params r = ol_sched_default_params(OL_SCHED_COSINE_RESTARTS);
    r.total_steps = 1000;
    ol_sched_resolve(&r);
    ASSERT_EQ_INT(r.t_0, 200);
    r.t_0 = 0;
    r.total_steps = 3; /* never below one step */
    ol_sched_resolve(&r);
    ASSERT_EQ_INT(r.t_0, 1);
}

int main(void)
{
    test_names();
    test_options();
    test_option_defaults();
    test_register();
    test_resolve();
    return tu_finish("sched_registry");
}
