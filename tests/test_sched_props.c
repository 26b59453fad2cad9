/* Closed-form and property checks of the schedules, batch-size schedules,
 * LR scaling rules and reduce-on-plateau, and the validation errors. */
#include <string.h>

#include "optimlab.h"
#include "optimlab/sched.h"
#include "testutil.h"

#define REL(a, b) ASSERT_NEAR((a), (b), 1e-12 * fabs((double)(b)) + 1e-15)

static void test_warmup(void)
{
    ol_sched_params s = ol_sched_default_params(OL_SCHED_COSINE);
    s.base_lr = 0.4;
    s.total_steps = 1000;
    s.warmup_steps = 50;
    s.warmup_start_factor = 0.1;
    REL(ol_sched_lr(&s, 0), 0.04);
    REL(ol_sched_lr(&s, 25), 0.04 + 0.36 * 0.5);
    REL(ol_sched_lr(&s, 50), 0.4); /* the cosine starts at its peak */
    for (int t = 1; t <= 50; t++)
        ASSERT_TRUE(ol_sched_lr(&s, t) > ol_sched_lr(&s, t - 1));
    /* the cosine then spans the remaining 950 steps */
    REL(ol_sched_lr(&s, 50 + 475), 0.2);
    ASSERT_NEAR(ol_sched_lr(&s, 1000), 0.0, 1e-15);

    s.warmup_exponential = 1;
    s.warmup_start_factor = 1e-3;
    REL(ol_sched_lr(&s, 0), 0.4e-3);
    double r = ol_sched_lr(&s, 1) / ol_sched_lr(&s, 0);
    for (int t = 2; t < 50; t++)
        REL(ol_sched_lr(&s, t) / ol_sched_lr(&s, t - 1), r);
    REL(ol_sched_lr(&s, 50), 0.4);
    REL(pow(r, 50), 1000.0);
    /* momentum of a non-cycling schedule */
    ASSERT_TRUE(ol_sched_momentum(&s, 10) < 0.0);
}

static void test_onecycle(void)
{
    ol_sched_params s = ol_sched_default_params(OL_SCHED_ONECYCLE);
    s.base_lr = 0.8;
    s.total_steps = 200;
    s.pct_start = 0.25;
    int argmax = 0;
    for (int t = 0; t < 200; t++)
        if (ol_sched_lr(&s, t) > ol_sched_lr(&s, argmax))
            argmax = t;
    ASSERT_EQ_INT(argmax, 49); /* end of phase 1: pct_start * T - 1 */
    REL(ol_sched_lr(&s, 49), 0.8);
    REL(ol_sched_lr(&s, 0), 0.8 / 25.0);
    REL(ol_sched_lr(&s, 199), 0.8 / 25.0 / 1e4);
    REL(ol_sched_momentum(&s, 49), 0.85); /* inverse to the lr */
    REL(ol_sched_momentum(&s, 0), 0.95);
    REL(ol_sched_momentum(&s, 199), 0.95);
    for (int t = 1; t < 200; t++) /* lr up <=> momentum down */
        ASSERT_TRUE((ol_sched_lr(&s, t) - ol_sched_lr(&s, t - 1)) * (ol_sched_momentum(&s, t) - ol_sched_momentum(&s, t - 1)) <= 0.0);
    REL(ol_sched_lr(&s, 5000), 0.8 / 25.0 / 1e4); /* held past the end */
    s.max_lr = 1.6;                                 /* explicit peak wins over base_lr */
    REL(ol_sched_lr(&s, 49), 1.6);
    s.max_lr = 0.0;
    s.three_phase = 1;
    s.anneal_linear = 1;
    REL(ol_sched_lr(&s, 49), 0.8);
    REL(ol_sched_lr(&s, 98), 0.8 / 25.0); /* back at the start after 2 * pct_start */
    REL(ol_sched_momentum(&s, 150), 0.95);
    s.cycle_momentum = 0;
    ASSERT_TRUE(ol_sched_momentum(&s, 10) < 0.0);
}

static void test_sgdr_cyclic(void)
{
    ol_sched_params s = ol_sched_default_params(OL_SCHED_COSINE_RESTARTS);
    s.base_lr = 0.1;
    s.t_0 = 10;
    s.t_mult = 2;
    s.eta_min = 0.001;
    const int restarts[] = {0, 10, 30, 70, 150};
    for (int i = 0; i < 5; i++) {
        REL(ol_sched_lr(&s, restarts[i]), 0.1);
        if (restarts[i] > 0)
            ASSERT_TRUE(ol_sched_lr(&s, restarts[i] - 1) < 0.1 * 0.05);
    }
    REL(ol_sched_lr(&s, 10 + 10), 0.001 + 0.099 * 0.5); /* middle of the 20-step period */
    s.t_mult = 1;
    REL(ol_sched_lr(&s, 40), 0.1);
    REL(ol_sched_lr(&s, 45), ol_sched_lr(&s, 5));

    ol_sched_params c = ol_sched_default_params(OL_SCHED_CYCLIC);
    c.base_lr = 0.01;
    c.max_lr = 0.1;
    c.step_size_up = 8;
    c.cyclic_mode = OL_CYCLIC_TRIANGULAR2;
    REL(ol_sched_lr(&c, 0), 0.01);
    REL(ol_sched_lr(&c, 8), 0.1);
    REL(ol_sched_lr(&c, 16), 0.01);
    REL(ol_sched_lr(&c, 24), 0.01 + 0.09 / 2); /* second cycle at half amplitude */
    REL(ol_sched_momentum(&c, 8), 0.8);
    REL(ol_sched_momentum(&c, 16), 0.9);
    c.step_size_down = 24; /* asymmetric cycle of 32 */
    REL(ol_sched_lr(&c, 20), 0.01 + 0.09 * 0.5);
    REL(ol_sched_lr(&c, 32), 0.01);
}

static void test_wsd_seq_epoch(void)
{
    ol_sched_params s = ol_sched_default_params(OL_SCHED_WSD);
    s.base_lr = 1.0;
    s.total_steps = 1100;
    s.warmup_steps = 100;
    s.decay_frac = 0.2; /* of the 1000 post-warm-up steps */
    s.min_lr_ratio = 0.1;
    REL(ol_sched_lr(&s, 100), 1.0);
    REL(ol_sched_lr(&s, 100 + 799), 1.0);
    REL(ol_sched_lr(&s, 100 + 900), 0.55);
    REL(ol_sched_lr(&s, 1100), 0.1);
    s.wsd_shape = OL_WSD_SQRT;
    REL(ol_sched_lr(&s, 100 + 850), 0.1 + 0.9 * (1.0 - 0.5));

    ol_sched_params parts[2] = {ol_sched_default_params(OL_SCHED_CONSTANT), ol_sched_default_params(OL_SCHED_EXPONENTIAL)};
    parts[0].base_lr = 0.05;
    parts[1].base_lr = 0.2;
    parts[1].gamma = 0.5;
    ol_sched_params q = ol_sched_default_params(OL_SCHED_SEQUENTIAL);
    q.parts = parts;
    q.nparts = 2;
    q.milestones[0] = 7;
    q.nmilestones = 1;
    REL(ol_sched_lr(&q, 6), 0.05);
    REL(ol_sched_lr(&q, 7), 0.2); /* the second part restarts at its own step 0 */
    REL(ol_sched_lr(&q, 9), 0.05);
    ol_ctx *ctx = ol_ctx_new(1);
    ASSERT_OK(ol_sched_validate(ctx, &q), ctx);
    q.nmilestones = 0;
    ASSERT_TRUE(ol_sched_validate(ctx, &q) < 0);

    ol_sched_params e = ol_sched_default_params(OL_SCHED_STEP);
    e.base_lr = 1.0;
    e.step_size = 2;
    e.gamma = 0.5;
    e.per_epoch = 1;
    e.steps_per_epoch = 10;
    for (int t = 0; t < 20; t++)
        REL(ol_sched_lr(&e, t), 1.0);
    REL(ol_sched_lr(&e, 20), 0.5);
    REL(ol_sched_lr(&e, 39), 0.5);
    ol_ctx_free(ctx);
}

static void test_validate(void)
{
    ol_ctx *ctx = ol_ctx_new(1);
    ol_sched_params s = ol_sched_default_params(OL_SCHED_COSINE);
    s.total_steps = 100;
    s.warmup_steps = 100;
    ASSERT_EQ_INT(ol_sched_validate(ctx, &s), OL_ERANGE);
    ASSERT_TRUE(strstr(ol_ctx_errmsg(ctx), "warm-up") != NULL);
    s.warmup_steps = -1;
    ASSERT_EQ_INT(ol_sched_validate(ctx, &s), OL_ERANGE);
    s = ol_sched_default_params(OL_SCHED_CYCLIC);
    s.base_lr = 0.1;
    s.max_lr = 0.05;
    s.step_size_up = 4;
    ASSERT_EQ_INT(ol_sched_validate(ctx, &s), OL_ERANGE);
    ASSERT_TRUE(strstr(ol_ctx_errmsg(ctx), "max lr") != NULL);
    s.max_lr = 0.2;
    ASSERT_OK(ol_sched_validate(ctx, &s), ctx);
    s = ol_sched_default_params(OL_SCHED_ONECYCLE);
    s.total_steps = 0;
    ASSERT_TRUE(ol_sched_validate(ctx, &s) < 0);
    s.total_steps = 10;
    s.warmup_steps = 2;
    s.warmup_exponential = 1;
    ASSERT_TRUE(ol_sched_validate(ctx, &s) < 0); /* exponential warm-up from 0 */
    ol_sched_type t;
    ASSERT_EQ_INT(ol_sched_from_name("sgdr", &t), OL_OK);
    ASSERT_EQ_INT(t, OL_SCHED_COSINE_RESTARTS);
    ASSERT_EQ_INT(ol_sched_from_name("cosine-annealing-xyz", &t), OL_ENAME);
    for (int i = 0; i < OL_SCHED_COUNT; i++) { /* names round-trip */
        ASSERT_EQ_INT(ol_sched_from_name(ol_sched_name((ol_sched_type)i), &t), OL_OK);
        ASSERT_EQ_INT(t, i);
    }
    ol_ctx_free(ctx);
}

static void test_batch(void)
{
    ol_ctx *ctx = ol_ctx_new(1);
    /* BLOOM: 16 -> 2048 in increments of 16 over the first 20M samples */
    ol_batch_sched_params b = ol_batch_sched_default_params(OL_BATCH_RAMP);
    b.batch = 16;
    b.max_batch = 2048;
    b.ramp_increment = 16;
    b.ramp_samples = 20000000;
    ASSERT_OK(ol_batch_sched_validate(ctx, &b), ctx);
    ASSERT_EQ_INT(ol_batch_sched_batch(&b, 0, 0), 16);
    const double per_inc = 20000000.0 / 127.0;
    ASSERT_EQ_INT(ol_batch_sched_batch(&b, 0, (int64_t)per_inc - 1), 16);
    ASSERT_EQ_INT(ol_batch_sched_batch(&b, 0, (int64_t)per_inc + 1), 32);
    ASSERT_EQ_INT(ol_batch_sched_batch(&b, 0, 19999999), 2032); /* the last increment lands at the end */
    ASSERT_EQ_INT(ol_batch_sched_batch(&b, 0, 20000000), 2048);
    int64_t samples = 0, prev = 16, steps = 0, changes = 0;
    while (samples < 21000000) {
        int64_t B = ol_batch_sched_batch(&b, steps, samples);
        ASSERT_TRUE(B == prev || B == prev + 16); /* one increment at a time */
        changes += B != prev;
        prev = B;
        samples += B;
        steps++;
    }
    ASSERT_EQ_INT(prev, 2048);
    ASSERT_EQ_INT(changes, 127);
    ASSERT_EQ_INT(ol_batch_sched_samples_before(&b, 3), 48);
    b.max_batch = 2040; /* not a whole number of increments */
    ASSERT_EQ_INT(ol_batch_sched_validate(ctx, &b), OL_ERANGE);

    ol_batch_sched_params m = ol_batch_sched_default_params(OL_BATCH_MILESTONES);
    m.batch = 128;
    m.factor = 5.0;
    m.milestones[0] = 10;
    m.milestones[1] = 20;
    m.nmilestones = 2;
    m.max_batch = 2000;
    ASSERT_OK(ol_batch_sched_validate(ctx, &m), ctx);
    ASSERT_EQ_INT(ol_batch_sched_batch(&m, 9, 0), 128);
    ASSERT_EQ_INT(ol_batch_sched_batch(&m, 10, 0), 640);
    ASSERT_EQ_INT(ol_batch_sched_batch(&m, 25, 0), 2000);
    m.factor = 0.5;
    ASSERT_TRUE(ol_batch_sched_validate(ctx, &m) < 0);
    ol_batch_sched_params c = ol_batch_sched_default_params(OL_BATCH_CONSTANT);
    ASSERT_EQ_INT(ol_batch_sched_batch(&c, 1000, 1 << 30), 128);

    /* LR scaling */
    REL(ol_lr_scale(OL_LR_SCALING_NONE, 1024, 256, 0), 1.0);
    REL(ol_lr_scale(OL_LR_SCALING_LINEAR, 1024, 256, 0), 4.0);
    REL(ol_lr_scale(OL_LR_SCALING_SQRT, 1024, 256, 0), 2.0);
    REL(ol_lr_scale(OL_LR_SCALING_LINEAR_THEN_SQRT, 512, 256, 4), 2.0);
    REL(ol_lr_scale(OL_LR_SCALING_LINEAR_THEN_SQRT, 1024, 256, 4), 4.0);
    REL(ol_lr_scale(OL_LR_SCALING_LINEAR_THEN_SQRT, 4096, 256, 4), 8.0);
    REL(ol_lr_scale(OL_LR_SCALING_LINEAR, 64, 256, 0), 0.25);
    ol_lr_scaling r;
    ASSERT_EQ_INT(ol_lr_scaling_from_name("linear-then-sqrt", &r), OL_OK);
    ASSERT_EQ_INT(r, OL_LR_SCALING_LINEAR_THEN_SQRT);
    ASSERT_EQ_INT(ol_lr_scaling_from_name("cubic", &r), OL_ENAME);
    ol_ctx_free(ctx);
}

static void test_plateau(void)
{
    ol_sched_params s = ol_sched_default_params(OL_SCHED_PLATEAU);
    s.base_lr = 1.0;
    s.plateau_factor = 0.5;
    s.plateau_patience = 2;
    ol_plateau p;
    ol_plateau_init(&p, &s);
    ASSERT_EQ_INT(ol_plateau_update(&p, &s, 1.0), 0);
    ASSERT_EQ_INT(ol_plateau_update(&p, &s, 1.0), 0); /* bad 1 */
    ASSERT_EQ_INT(ol_plateau_update(&p, &s, 0.99995), 0); /* bad 2: below the 1e-4 relative threshold */
    ASSERT_EQ_INT(ol_plateau_update(&p, &s, 1.0), 1);     /* bad 3 > patience: cut */
    REL(ol_plateau_lr(&p, &s, 100), 0.5);
    ASSERT_EQ_INT(ol_plateau_update(&p, &s, 0.5), 0); /* improvement resets */
    ASSERT_EQ_INT(p.num_bad, 0);
    ASSERT_EQ_INT(ol_plateau_update(&p, &s, 0.6), 0);
    ASSERT_EQ_INT(ol_plateau_update(&p, &s, 0.6), 0);
    ASSERT_EQ_INT(ol_plateau_update(&p, &s, 0.6), 1);
    REL(p.lr, 0.25);
    ASSERT_EQ_INT(ol_plateau_update(&p, &s, NAN), OL_ERANGE);

    /* cooldown: no bad epochs are counted for `cooldown` evaluations after a cut */
    s.plateau_patience = 0;
    s.plateau_cooldown = 3;
    s.plateau_min_lr = 0.3;
    ol_plateau_init(&p, &s);
    ASSERT_EQ_INT(ol_plateau_update(&p, &s, 1.0), 0);
    ASSERT_EQ_INT(ol_plateau_update(&p, &s, 1.0), 1);
    REL(p.lr, 0.5);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ_INT(ol_plateau_update(&p, &s, 1.0), 0);
    ASSERT_EQ_INT(ol_plateau_update(&p, &s, 1.0), 1);
    REL(p.lr, 0.3); /* clamped at min_lr */
    for (int i = 0; i < 3; i++)
        ASSERT_EQ_INT(ol_plateau_update(&p, &s, 1.0), 0);
    ASSERT_EQ_INT(ol_plateau_update(&p, &s, 1.0), 0); /* already at min_lr: no cut */
    REL(p.lr, 0.3);

    /* maximise with an absolute threshold */
    s = ol_sched_default_params(OL_SCHED_PLATEAU);
    s.base_lr = 0.1;
    s.plateau_maximize = 1;
    s.plateau_threshold_abs = 1;
    s.plateau_threshold = 0.01;
    s.plateau_patience = 1;
    ol_plateau_init(&p, &s);
    ASSERT_EQ_INT(ol_plateau_update(&p, &s, 0.5), 0);
    ASSERT_EQ_INT(ol_plateau_update(&p, &s, 0.505), 0); /* +0.005 < 0.01: bad */
    ASSERT_EQ_INT(ol_plateau_update(&p, &s, 0.509), 1);
    REL(p.lr, 0.01);
    /* warm-up is scaled by the reductions */
    s.total_steps = 100;
    s.warmup_steps = 10;
    REL(ol_plateau_lr(&p, &s, 5), 0.01 * 0.5);
}

int main(void)
{
    test_warmup();
    test_onecycle();
    test_sgdr_cyclic();
    test_wsd_seq_epoch();
    test_validate();
    test_batch();
    test_plateau();
    return tu_finish("sched_props");
}
