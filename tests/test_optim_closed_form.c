/* Optimizer properties with closed-form answers: single steps computed by
 * hand, invariants (Lion's step size, AdamW's gradient-free decay, the
 * Schedule-Free x/y/z relations), trust ratios, per-kind groups, clipping,
 * determinism across thread counts, state round trips, and the validation of
 * every hyperparameter. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "optimlab.h"
#include "optimlab/optim.h"
#include "testutil.h"

/* A paramset of tensors with the given kinds and sizes. */
static void make_ps(ol_ctx *ctx, ol_paramset *ps, int n, const ol_kind *kinds, const int64_t *sizes)
{
    memset(ps, 0, sizeof *ps);
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "t%d", i);
        ASSERT_OK(ol_paramset_add(ctx, ps, name, kinds[i], 1, &sizes[i]), ctx);
    }
    ASSERT_OK(ol_paramset_finalize(ctx, ps), ctx);
}

static float *P(ol_paramset *ps, int t) { return ps->params + ps->t[t].offset; }
static float *G(ol_paramset *ps, int t) { return ps->grads + ps->t[t].offset; }

static int step(ol_ctx *ctx, ol_optim *o, ol_paramset *ps, double lr)
{
    ol_optim_hyper h = {.lr = lr, .momentum = -1.0};
    return ol_optim_step(ctx, o, ps, &h);
}

static ol_optim_params params_for(ol_optim_type t, double lr)
{
    ol_optim_params op = ol_optim_default_params(t);
    op.lr = lr;
    return op;
}

/* SGD on f = a/2 (p - c)^2: one step is p - lr a (p - c), exactly in float. */
static void test_sgd_quadratic(ol_ctx *ctx)
{
    ol_paramset ps;
    const ol_kind k[] = {OL_KIND_WEIGHT};
    const int64_t n[] = {5};
    make_ps(ctx, &ps, 1, k, n);
    const float a = 3.0f, c = 0.25f, lr = 0.125f;
    float p0[5];
    for (int i = 0; i < 5; i++) {
        p0[i] = P(&ps, 0)[i] = 0.1f * (float)i - 0.2f;
        G(&ps, 0)[i] = a * (p0[i] - c);
    }
    ol_optim *o;
    ol_optim_params op = params_for(OL_OPT_SGD, lr);
    ASSERT_OK(ol_optim_create(ctx, &op, &ps, &o), ctx);
    ASSERT_OK(step(ctx, o, &ps, lr), ctx);
    for (int i = 0; i < 5; i++)
        ASSERT_TRUE(P(&ps, 0)[i] == p0[i] - lr * (a * (p0[i] - c)));
    ol_optim_free(o);
    /* maximize climbs: the same step with the opposite sign */
    op.maximize = 1;
    for (int i = 0; i < 5; i++)
        P(&ps, 0)[i] = p0[i];
    ASSERT_OK(ol_optim_create(ctx, &op, &ps, &o), ctx);
    ASSERT_OK(step(ctx, o, &ps, lr), ctx);
    for (int i = 0; i < 5; i++)
        ASSERT_TRUE(P(&ps, 0)[i] == p0[i] + lr * (a * (p0[i] - c)));
    ol_optim_free(o);
    /* momentum 0.9, dampening 0.9 (the EMA form after step 1): buf = g, then 0.9 buf + 0.1 g */
    op = params_for(OL_OPT_SGD, lr);
    op.momentum = 0.9;
    op.dampening = 0.9;
    for (int i = 0; i < 5; i++)
        P(&ps, 0)[i] = p0[i];
    ASSERT_OK(ol_optim_create(ctx, &op, &ps, &o), ctx);
    ASSERT_OK(step(ctx, o, &ps, lr), ctx);
    for (int i = 0; i < 5; i++)
        G(&ps, 0)[i] = 1.0f;
    ASSERT_OK(step(ctx, o, &ps, lr), ctx);
    float *buf = ol_optim_slot(o, 0);
    for (int i = 0; i < 5; i++)
        ASSERT_NEAR(buf[i], 0.9 * (a * (p0[i] - c)) + 0.1, 1e-6);
    ol_optim_free(o);
    ol_paramset_free(&ps);
}

/* Lion moves every coordinate by exactly lr (wd = 0); coordinates whose
 * interpolated momentum is 0 do not move. */
static void test_lion_step_size(ol_ctx *ctx)
{
    ol_paramset ps;
    const ol_kind k[] = {OL_KIND_WEIGHT, OL_KIND_BIAS};
    const int64_t n[] = {100, 7};
    make_ps(ctx, &ps, 2, k, n);
    const double lr = 1.0 / 1024; /* p in [1, 2): p +- lr is exact */
    ol_optim_params op = params_for(OL_OPT_LION, lr);
    op.weight_decay = 0.0;
    ol_optim *o;
    ASSERT_OK(ol_optim_create(ctx, &op, &ps, &o), ctx);
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < (int)n[t]; i++)
            P(&ps, t)[i] = 1.25f + 0.005f * (float)i;
    int exact = 1, still = 1;
    for (int s = 0; s < 5; s++) {
        for (int t = 0; t < 2; t++)
            for (int i = 0; i < (int)n[t]; i++)
                G(&ps, t)[i] = (i == 3) ? 0.0f : (float)sin(1.0 + i * 0.7 + s * 1.3) * (float)(1 + i % 9);
        float before[107];
        for (int i = 0; i < 100; i++)
            before[i] = P(&ps, 0)[i];
        ASSERT_OK(step(ctx, o, &ps, lr), ctx);
        for (int i = 0; i < 100; i++) {
            float d = fabsf(P(&ps, 0)[i] - before[i]);
            if (i == 3)
                still &= d == 0.0f;
            else
                exact &= d == (float)lr;
        }
    }
    ASSERT_TRUE(exact);
    ASSERT_TRUE(still);
    ol_optim_free(o);
    ol_paramset_free(&ps);
}

/* AdamW: with a zero gradient the step is p *= 1 - lr*wd exactly; with any
 * gradient the decay part does not depend on it. */
static void test_adamw_decay(ol_ctx *ctx)
{
    ol_paramset ps, ps2;
    const ol_kind k[] = {OL_KIND_WEIGHT, OL_KIND_BIAS};
    const int64_t n[] = {33, 4};
    make_ps(ctx, &ps, 2, k, n);
    make_ps(ctx, &ps2, 2, k, n);
    const double lr = 0.01, wd = 0.1;
    ol_optim_params op = params_for(OL_OPT_ADAMW, lr);
    op.weight_decay = wd;
    op.wd_mult[OL_KIND_BIAS] = 0.0; /* per-kind group: no decay on biases */
    ol_optim *o, *o2;
    ASSERT_OK(ol_optim_create(ctx, &op, &ps, &o), ctx);
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < (int)n[t]; i++)
            P(&ps, t)[i] = (float)cos(i + 3.0 * t);
    float w0[33], b0[4];
    memcpy(w0, P(&ps, 0), sizeof w0);
    memcpy(b0, P(&ps, 1), sizeof b0);
    ASSERT_OK(step(ctx, o, &ps, lr), ctx);
    const float shrink = (float)(1.0 - lr * wd);
    int ok = 1;
    for (int i = 0; i < 33; i++)
        ok &= P(&ps, 0)[i] == w0[i] * shrink;
    for (int i = 0; i < 4; i++)
        ok &= P(&ps, 1)[i] == b0[i];
    ASSERT_TRUE(ok);
    ol_optim_free(o);

    /* same gradients, wd 0.1 vs wd 0: the difference is p0 (shrink - 1) */
    op.wd_mult[OL_KIND_BIAS] = 1.0;
    ol_optim_params op0 = op;
    op0.weight_decay = 0.0;
    ASSERT_OK(ol_optim_create(ctx, &op, &ps, &o), ctx);
    ASSERT_OK(ol_optim_create(ctx, &op0, &ps2, &o2), ctx);
    memcpy(P(&ps, 0), w0, sizeof w0);
    memcpy(P(&ps2, 0), w0, sizeof w0);
    for (int i = 0; i < 33; i++)
        G(&ps, 0)[i] = G(&ps2, 0)[i] = (float)(5.0 * sin(0.3 * i));
    ASSERT_OK(step(ctx, o, &ps, lr), ctx);
    ASSERT_OK(step(ctx, o2, &ps2, lr), ctx);
    double worst = 0.0;
    for (int i = 0; i < 33; i++)
        worst = fmax(worst, fabs((P(&ps, 0)[i] - P(&ps2, 0)[i]) - w0[i] * (shrink - 1.0)));
    ASSERT_NEAR(worst, 0.0, 1e-7);
    ol_optim_free(o);
    ol_optim_free(o2);
    ol_paramset_free(&ps);
    ol_paramset_free(&ps2);
}

/* Adam's first step: m_hat = g, v_hat = g^2, so |dp| = lr |g|/(|g| + eps) ~ lr;
 * the slides' eps inside the root gives lr |g|/sqrt(g^2 + eps). */
static void test_adam_first_step(ol_ctx *ctx)
{
    ol_paramset ps;
    const ol_kind k[] = {OL_KIND_WEIGHT};
    const int64_t n[] = {50};
    make_ps(ctx, &ps, 1, k, n);
    for (int inside = 0; inside < 2; inside++) {
        ol_optim_params op = params_for(OL_OPT_ADAM, 0.01);
        op.eps_inside_sqrt = inside;
        op.eps = inside ? 1e-4 : 1e-8;
        ol_optim *o;
        ASSERT_OK(ol_optim_create(ctx, &op, &ps, &o), ctx);
        for (int i = 0; i < 50; i++) {
            P(&ps, 0)[i] = 0.5f;
            G(&ps, 0)[i] = (float)((i + 1) * 0.01 * (i % 2 ? -1 : 1));
        }
        ASSERT_OK(step(ctx, o, &ps, op.lr), ctx);
        double worst = 0.0;
        for (int i = 0; i < 50; i++) {
            double g = G(&ps, 0)[i];
            double expect = inside ? 0.01 * fabs(g) / sqrt(g * g + op.eps) : 0.01;
            worst = fmax(worst, fabs(fabs(P(&ps, 0)[i] - 0.5) - expect) / expect);
        }
        ASSERT_NEAR(worst, 0.0, 1e-4);
        ol_optim_free(o);
    }
    ol_paramset_free(&ps);
}

/* LARS: p = (3, 4), g = (0.6, 0.8): ||p|| = 5, ||g|| = 1;
 * tr = 0.001 * 5 / (1 + 0.1 * 5 + eps). A bias tensor with no decay and no
 * adaptation takes plain SGD; trust_clip caps tr/lr at 1. */
static void test_lars_trust_ratio(ol_ctx *ctx)
{
    ol_paramset ps;
    const ol_kind k[] = {OL_KIND_WEIGHT, OL_KIND_BIAS};
    const int64_t n[] = {2, 2};
    make_ps(ctx, &ps, 2, k, n);
    for (int clip = 0; clip < 2; clip++) {
        const double lr = clip ? 0.001 : 1.0, wd = 0.1;
        ol_optim_params op = params_for(OL_OPT_LARS, lr);
        op.momentum = 0.0;
        op.weight_decay = wd;
        op.trust_clip = clip;
        op.wd_mult[OL_KIND_BIAS] = 0.0;
        op.adapt[OL_KIND_BIAS] = 0;
        ol_optim *o;
        ASSERT_OK(ol_optim_create(ctx, &op, &ps, &o), ctx);
        const float p0[2] = {3, 4}, g0[2] = {0.6f, 0.8f};
        for (int t = 0; t < 2; t++)
            for (int i = 0; i < 2; i++) {
                P(&ps, t)[i] = p0[i];
                G(&ps, t)[i] = g0[i];
            }
        ASSERT_OK(step(ctx, o, &ps, lr), ctx);
        double tr = 0.001 * 5.0 / (1.0 + 0.1 * 5.0 + 1e-8);
        if (clip)
            tr = fmin(tr / lr, 1.0);
        for (int i = 0; i < 2; i++) {
            ASSERT_NEAR(P(&ps, 0)[i], p0[i] - lr * tr * (g0[i] + wd * p0[i]), 1e-6);
            ASSERT_NEAR(P(&ps, 1)[i], p0[i] - lr * g0[i], 1e-6);
        }
        ol_optim_free(o);
    }
    ol_paramset_free(&ps);
}

/* LAMB step 1: m_hat = g, v_hat = g^2, so u = g/(|g| + eps) + wd p; with
 * p = (3, 4), g = (1, -2), wd = 0.1: u = (1.3, -0.6), tr = 5/||u||. Global
 * clipping leaves step 1 unchanged (u only sees the sign of g). */
static void test_lamb_trust_ratio(ol_ctx *ctx)
{
    ol_paramset ps;
    const ol_kind k[] = {OL_KIND_WEIGHT};
    const int64_t n[] = {2};
    make_ps(ctx, &ps, 1, k, n);
    for (int clip = 0; clip < 2; clip++)
        for (int tclip = 0; tclip < 2; tclip++) {
            ol_optim_params op = params_for(OL_OPT_LAMB, 0.01);
            op.weight_decay = 0.1;
            op.max_grad_norm = clip ? 1.0 : 0.0;
            op.trust_clip = tclip;
            ol_optim *o;
            ASSERT_OK(ol_optim_create(ctx, &op, &ps, &o), ctx);
            P(&ps, 0)[0] = 3;
            P(&ps, 0)[1] = 4;
            G(&ps, 0)[0] = 1;
            G(&ps, 0)[1] = -2;
            ASSERT_OK(step(ctx, o, &ps, op.lr), ctx);
            const double u[2] = {1.3, -0.6};
            double tr = 5.0 / sqrt(1.3 * 1.3 + 0.6 * 0.6);
            if (tclip)
                tr = fmin(tr, 1.0);
            ASSERT_NEAR(P(&ps, 0)[0], 3 - 0.01 * tr * u[0], 2e-6);
            ASSERT_NEAR(P(&ps, 0)[1], 4 - 0.01 * tr * u[1], 2e-6);
            ol_optim_free(o);
        }
    ol_paramset_free(&ps);
}

/* LARC (clip mode) around SGD: alr = min(0.02 ||p|| / (||g|| + wd ||p|| + eps) / lr, 1),
 * g <- (g + wd p) alr, and SGD runs without its own decay. */
static void test_larc(ol_ctx *ctx)
{
    ol_paramset ps;
    const ol_kind k[] = {OL_KIND_WEIGHT};
    const int64_t n[] = {2};
    make_ps(ctx, &ps, 1, k, n);
    for (int clip = 0; clip < 2; clip++) {
        const double lr = 0.5, wd = 0.01;
        ol_optim_params op = params_for(OL_OPT_SGD, lr);
        op.weight_decay = wd;
        op.larc = 1;
        op.larc_clip = clip;
        ol_optim *o;
        ASSERT_OK(ol_optim_create(ctx, &op, &ps, &o), ctx);
        P(&ps, 0)[0] = 3;
        P(&ps, 0)[1] = 4;
        G(&ps, 0)[0] = 0.06f;
        G(&ps, 0)[1] = 0.08f;
        ASSERT_OK(step(ctx, o, &ps, lr), ctx);
        double alr = 0.02 * 5 / (0.1 + wd * 5 + 1e-8);
        if (clip)
            alr = fmin(alr / lr, 1.0);
        ASSERT_NEAR(P(&ps, 0)[0], 3 - lr * alr * (0.06 + wd * 3), 1e-6);
        ASSERT_NEAR(P(&ps, 0)[1], 4 - lr * alr * (0.08 + wd * 4), 1e-6);
        ol_optim_free(o);
    }
    ol_paramset_free(&ps);
}

/* Schedule-Free: y = (1-b) z + b x at every step; after step 1, x = y = z;
 * with constant lr and r = 0, x is the running mean of the z iterates. */
static void test_schedulefree(ol_ctx *ctx)
{
    ol_paramset ps;
    const ol_kind k[] = {OL_KIND_WEIGHT};
    const int64_t n[] = {6};
    make_ps(ctx, &ps, 1, k, n);
    for (int adam = 0; adam < 2; adam++) {
        ol_optim_params op = params_for(adam ? OL_OPT_SFADAMW : OL_OPT_SFSGD, 0.05);
        const double b = adam ? op.beta1 : op.momentum;
        ol_optim *o;
        ASSERT_OK(ol_optim_create(ctx, &op, &ps, &o), ctx);
        ASSERT_TRUE(ol_optim_has_eval_mode(o));
        ASSERT_EQ_INT(ol_optim_num_scalars(o), 2);
        for (int i = 0; i < 6; i++)
            P(&ps, 0)[i] = (float)i * 0.3f - 0.7f;
        double zsum[6] = {0};
        double worst_rel = 0.0, worst_mean = 0.0;
        for (int t = 1; t <= 20; t++) {
            for (int i = 0; i < 6; i++)
                G(&ps, 0)[i] = 2.0f * P(&ps, 0)[i] - 0.1f * (float)i; /* f = (p - 0.05 i)^2 */
            ASSERT_OK(step(ctx, o, &ps, op.lr), ctx);
            float y[6], *z = ol_optim_slot(o, 0);
            memcpy(y, P(&ps, 0), sizeof y);
            for (int i = 0; i < 6; i++)
                zsum[i] += z[i];
            ASSERT_OK(ol_optim_eval_mode(ctx, o, &ps), ctx);
            ASSERT_TRUE(ol_optim_is_eval_mode(o));
            for (int i = 0; i < 6; i++) {
                double x = P(&ps, 0)[i];
                if (t == 1) {
                    ASSERT_TRUE(y[i] == z[i]);
                    ASSERT_NEAR(x, z[i], 1e-7);
                }
                worst_rel = fmax(worst_rel, fabs(y[i] - ((1 - b) * z[i] + b * x)));
                if (!adam) /* SGD: constant lr, so the averaging weights are equal */
                    worst_mean = fmax(worst_mean, fabs(x - zsum[i] / t));
            }
            /* a step in eval mode is refused */
            ol_optim_hyper h = {.lr = op.lr, .momentum = -1};
            ASSERT_EQ_INT(ol_optim_step(ctx, o, &ps, &h), OL_ESTATE);
            ASSERT_OK(ol_optim_train_mode(ctx, o, &ps), ctx);
            for (int i = 0; i < 6; i++)
                ASSERT_NEAR(P(&ps, 0)[i], y[i], 1e-6);
        }
        ASSERT_NEAR(worst_rel, 0.0, 2e-6);
        ASSERT_NEAR(worst_mean, 0.0, 2e-6);
        ASSERT_NEAR(*ol_optim_scalar(o, 0), 20 * op.lr * op.lr, 1e-12); /* weight_sum = sum of lr^2 */
        ol_optim_free(o);
    }
    ol_paramset_free(&ps);
}

static void test_clip_grad_norm(ol_ctx *ctx)
{
    ol_paramset ps;
    const ol_kind k[] = {OL_KIND_WEIGHT, OL_KIND_BIAS};
    const int64_t n[] = {1, 1};
    make_ps(ctx, &ps, 2, k, n);
    G(&ps, 0)[0] = 3;
    G(&ps, 1)[0] = 4;
    ASSERT_NEAR(ol_clip_grad_norm(&ps, 10.0), 5.0, 1e-12);
    ASSERT_TRUE(G(&ps, 0)[0] == 3.0f && G(&ps, 1)[0] == 4.0f);
    ASSERT_NEAR(ol_clip_grad_norm(&ps, 1.0), 5.0, 1e-12);
    ASSERT_NEAR(G(&ps, 0)[0], 0.6, 1e-6);
    ASSERT_NEAR(G(&ps, 1)[0], 0.8, 1e-6);
    ASSERT_NEAR(ol_paramset_grad_norm(&ps), 1.0, 1e-6);
    ol_paramset_free(&ps);
}

/* A multi-chunk problem: 3 tensors, one spanning several 16384-float chunks. */
static const ol_kind big_kinds[] = {OL_KIND_WEIGHT, OL_KIND_BIAS, OL_KIND_WEIGHT, OL_KIND_NORM};
static const int64_t big_sizes[] = {40000, 37, 70001, 64};

static void fill_big(ol_paramset *ps, int s)
{
    for (int t = 0; t < ps->n; t++)
        for (size_t i = 0; i < ps->t[t].numel; i++) {
            if (s == 0)
                P(ps, t)[i] = (float)sin(0.001 * (double)i + t);
            G(ps, t)[i] = (float)(cos(0.37 * (double)i + 0.1 * s + t) * (1.0 + 0.5 * t));
        }
}

static const char *const all_names[] = {"sgd",     "nesterov", "adam",  "adamw", "adagrad",   "rmsprop",
                                        "adadelta", "nadam",    "radam", "lars",  "lamb",      "fusedlamb",
                                        "lion",    "sfsgd",    "sfadamw", "larc"};
#define N_NAMES (int)(sizeof all_names / sizeof all_names[0])

static ol_optim_params named(const char *name)
{
    ol_optim_params op;
    ol_optim_params_from_name(name, &op);
    op.weight_decay = 0.01;
    op.wd_mult[OL_KIND_NORM] = 0.0;
    op.adapt[OL_KIND_NORM] = 0;
    if (op.type == OL_OPT_RMSPROP) {
        op.momentum = 0.9;
        op.centered = 1;
    }
    if (op.type == OL_OPT_ADAM)
        op.amsgrad = 1;
    return op;
}

/* Runs 4 steps with the given thread count; returns params + all slots. */
static float *run_threads(ol_ctx *ctx, const char *name, int threads)
{
    ol_ctx_set_threads(ctx, threads);
    ol_paramset ps;
    make_ps(ctx, &ps, 4, big_kinds, big_sizes);
    ol_optim_params op = named(name);
    ol_optim *o;
    ASSERT_OK(ol_optim_create(ctx, &op, &ps, &o), ctx);
    for (int s = 0; s < 4; s++) {
        fill_big(&ps, s);
        ASSERT_OK(step(ctx, o, &ps, op.lr), ctx);
    }
    int ns = ol_optim_num_slots(o);
    float *out = malloc((size_t)(ns + 1) * ps.numel * sizeof(float));
    memcpy(out, ps.params, ps.numel * sizeof(float));
    for (int i = 0; i < ns; i++)
        memcpy(out + (size_t)(i + 1) * ps.numel, ol_optim_slot(o, i), ps.numel * sizeof(float));
    ol_optim_free(o);
    ol_paramset_free(&ps);
    return out;
}

static void test_determinism(ol_ctx *ctx)
{
    ol_paramset ps;
    make_ps(ctx, &ps, 4, big_kinds, big_sizes);
    for (int i = 0; i < N_NAMES; i++) {
        ol_optim_params op = named(all_names[i]);
        ol_optim *o;
        ASSERT_OK(ol_optim_create(ctx, &op, &ps, &o), ctx);
        size_t bytes = (size_t)(ol_optim_num_slots(o) + 1) * ps.numel * sizeof(float);
        ol_optim_free(o);
        float *a = run_threads(ctx, all_names[i], 1), *b = run_threads(ctx, all_names[i], 2);
        int same = memcmp(a, b, bytes) == 0, finite = 1;
        for (size_t j = 0; j < ps.numel; j++)
            finite &= isfinite(a[j]);
        if (!same || !finite)
            TU_FAIL("%s: 1 and 2 threads differ (%d) or non-finite (%d)", all_names[i], !same, !finite);
        tu_checks++;
        free(a);
        free(b);
    }
    ol_ctx_set_threads(ctx, 2);
    ol_paramset_free(&ps);
}

/* Save after 3 steps, run 3 more; restore and run the same 3: bitwise equal. */
static void test_state_roundtrip(ol_ctx *ctx)
{
    ol_paramset ps;
    make_ps(ctx, &ps, 4, big_kinds, big_sizes);
    for (int i = 0; i < N_NAMES; i++) {
        ol_optim_params op = named(all_names[i]);
        ol_optim *o;
        ASSERT_OK(ol_optim_create(ctx, &op, &ps, &o), ctx);
        for (int s = 0; s < 3; s++) {
            fill_big(&ps, s);
            ASSERT_OK(step(ctx, o, &ps, op.lr), ctx);
        }
        ASSERT_OK(ol_optim_eval_mode(ctx, o, &ps), ctx); /* checkpoints of Schedule-Free are taken at x */
        size_t sz = ol_optim_state_size(o);
        char *blob = malloc(sz);
        float *saved = malloc(ps.numel * sizeof(float)), *after = malloc(ps.numel * sizeof(float));
        ASSERT_OK(ol_optim_state_save(ctx, o, blob, sz), ctx);
        memcpy(saved, ps.params, ps.numel * sizeof(float));
        for (int pass = 0; pass < 2; pass++) {
            ol_optim *r = o;
            if (pass == 1) {
                ASSERT_OK(ol_optim_create(ctx, &op, &ps, &r), ctx);
                ASSERT_OK(ol_optim_state_load(ctx, r, blob, sz), ctx);
                ASSERT_EQ_INT(ol_optim_steps(r), 3);
                ASSERT_EQ_INT(ol_optim_is_eval_mode(r), ol_optim_has_eval_mode(r));
                memcpy(ps.params, saved, ps.numel * sizeof(float));
            }
            ASSERT_OK(ol_optim_train_mode(ctx, r, &ps), ctx);
            for (int s = 3; s < 6; s++) {
                fill_big(&ps, s);
                ASSERT_OK(step(ctx, r, &ps, op.lr), ctx);
            }
            if (pass == 0)
                memcpy(after, ps.params, ps.numel * sizeof(float));
            else if (memcmp(after, ps.params, ps.numel * sizeof(float)) != 0)
                TU_FAIL("%s: restored state gives a different trajectory", all_names[i]);
            if (pass == 1)
                ol_optim_free(r);
        }
        /* a blob of another optimizer (or a truncated one) is refused */
        ol_optim_params other = ol_optim_default_params(op.type == OL_OPT_LION ? OL_OPT_ADAM : OL_OPT_LION);
        ol_optim *x;
        ASSERT_OK(ol_optim_create(ctx, &other, &ps, &x), ctx);
        ASSERT_TRUE(ol_optim_state_load(ctx, x, blob, sz) < 0);
        ASSERT_TRUE(ol_optim_state_load(ctx, o, blob, sz - 1) == OL_EFORMAT);
        ol_optim_free(x);
        free(blob);
        free(saved);
        free(after);
        ol_optim_free(o);
    }
    ol_paramset_free(&ps);
}

static int create_rc(ol_ctx *ctx, const ol_paramset *ps, ol_optim_params op)
{
    ol_optim *o = NULL;
    int rc = ol_optim_create(ctx, &op, ps, &o);
    ol_optim_free(o);
    if (rc < 0 && strchr(ol_ctx_errmsg(ctx), '\n'))
        TU_FAIL("error message is not one line: %s", ol_ctx_errmsg(ctx));
    return rc;
}

static void test_validation(ol_ctx *ctx)
{
    ol_paramset ps;
    const ol_kind k[] = {OL_KIND_WEIGHT};
    const int64_t n[] = {3};
    make_ps(ctx, &ps, 1, k, n);
    ol_optim_params op;
#define BAD(type, field, value, code)                                                                               \
    do {                                                                                                            \
        op = ol_optim_default_params(type);                                                                         \
        op.field = value;                                                                                           \
        ASSERT_EQ_INT(create_rc(ctx, &ps, op), code);                                                               \
    } while (0)
    BAD(OL_OPT_ADAM, beta1, 1.0, OL_ERANGE);
    BAD(OL_OPT_ADAMW, beta1, -0.1, OL_ERANGE);
    BAD(OL_OPT_ADAM, beta2, 1.0, OL_ERANGE);
    BAD(OL_OPT_LAMB, beta2, 1.5, OL_ERANGE);
    BAD(OL_OPT_LION, beta1, NAN, OL_ERANGE);
    BAD(OL_OPT_SGD, lr, -0.1, OL_ERANGE);
    BAD(OL_OPT_ADAM, lr, INFINITY, OL_ERANGE);
    BAD(OL_OPT_ADAM, eps, -1e-8, OL_ERANGE);
    BAD(OL_OPT_ADAMW, weight_decay, -0.01, OL_ERANGE);
    BAD(OL_OPT_SGD, momentum, 1.5, OL_ERANGE);
    BAD(OL_OPT_SGD, momentum, -0.5, OL_ERANGE);
    BAD(OL_OPT_SGD, dampening, 2.0, OL_ERANGE);
    BAD(OL_OPT_SGD, nesterov, 1, OL_EINVAL); /* momentum 0 */
    BAD(OL_OPT_RMSPROP, alpha, -0.1, OL_ERANGE);
    BAD(OL_OPT_ADADELTA, rho, 1.1, OL_ERANGE);
    BAD(OL_OPT_ADAGRAD, lr_decay, -1.0, OL_ERANGE);
    BAD(OL_OPT_ADAGRAD, initial_accumulator_value, -1.0, OL_ERANGE);
    BAD(OL_OPT_NADAM, momentum_decay, -1.0, OL_ERANGE);
    BAD(OL_OPT_LARS, trust_coefficient, 0.0, OL_ERANGE);
    BAD(OL_OPT_LAMB, max_grad_norm, -1.0, OL_ERANGE);
    BAD(OL_OPT_SFSGD, momentum, 0.0, OL_ERANGE);
    BAD(OL_OPT_SFADAMW, beta1, 0.0, OL_ERANGE);
    BAD(OL_OPT_SFADAMW, warmup_steps, -1, OL_ERANGE);
    BAD(OL_OPT_SGD, amsgrad, 1, OL_EINVAL);
    BAD(OL_OPT_SGD, centered, 1, OL_EINVAL);
    BAD(OL_OPT_LION, eps_inside_sqrt, 1, OL_EINVAL);
    BAD(OL_OPT_ADAMW, trust_clip, 1, OL_EINVAL);
    BAD(OL_OPT_LAMB, larc, 1, OL_EINVAL);
    BAD(OL_OPT_SGD, type, OL_OPT_COUNT, OL_ENAME);
    BAD(OL_OPT_SGD, lr_mult[OL_KIND_BIAS], -1.0, OL_ERANGE);
    op = ol_optim_default_params(OL_OPT_SGD);
    op.larc = 1;
    op.larc_trust_coefficient = -1.0;
    ASSERT_EQ_INT(create_rc(ctx, &ps, op), OL_ERANGE);
    ol_optim_type t;
    ASSERT_EQ_INT(ol_optim_from_name("adamax", &t), OL_ENAME);
    ASSERT_EQ_INT(ol_optim_params_from_name("adamax", &op), OL_ENAME);
    ASSERT_OK(ol_optim_params_from_name("fusedlamb", &op), ctx);
    ASSERT_TRUE(op.type == OL_OPT_LAMB && op.eps == 1e-6 && op.max_grad_norm == 1.0);
    /* per-step values are checked too */
    op = ol_optim_default_params(OL_OPT_ADAM);
    ol_optim *o;
    ASSERT_OK(ol_optim_create(ctx, &op, &ps, &o), ctx);
    ol_optim_hyper h = {.lr = -1.0, .momentum = -1.0};
    ASSERT_EQ_INT(ol_optim_step(ctx, o, &ps, &h), OL_ERANGE);
    h = (ol_optim_hyper){.lr = 0.1, .momentum = 1.0};
    ASSERT_EQ_INT(ol_optim_step(ctx, o, &ps, &h), OL_ERANGE);
    ASSERT_EQ_INT(ol_optim_steps(o), 0);
    ol_optim_free(o);
    ol_paramset_free(&ps);
}

int main(void)
{
    ol_ctx *ctx = ol_ctx_new(2);
    test_sgd_quadratic(ctx);
    test_lion_step_size(ctx);
    test_adamw_decay(ctx);
    test_adam_first_step(ctx);
    test_lars_trust_ratio(ctx);
    test_lamb_trust_ratio(ctx);
    test_larc(ctx);
    test_schedulefree(ctx);
    test_clip_grad_norm(ctx);
    test_determinism(ctx);
    test_state_roundtrip(ctx);
    test_validation(ctx);
    ol_ctx_free(ctx);
    return tu_finish("optim_closed_form");
}
