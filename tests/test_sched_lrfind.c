/* LR finder: the model and optimizer come back bit-identical, the range
 * test and the sweep behave on a small problem, and the suggestions land
 * where a known curve puts them. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "optimlab.h"
#include "optimlab/lrfind.h"
#include "testutil.h"

static void test_suggest(void)
{
    enum { N = 141 };
    ol_lrfind_result r;
    memset(&r, 0, sizeof r);
    double lr[N], sm[N];
    for (int i = 0; i < N; i++) { /* log10 lr from -6 to 1 */
        double x = -6.0 + 0.05 * i;
        lr[i] = pow(10.0, x);
        /* a sigmoid drop centred at 1e-3, then a rise after 10^-0.5 */
        sm[i] = 2.0 - 1.0 / (1.0 + exp(-3.0 * (x + 3.0))) + (x > -0.5 ? 4.0 * (x + 0.5) * (x + 0.5) : 0.0);
    }
    r.n = N;
    r.lr = lr;
    r.smooth = sm;
    ol_lrfind_suggest(&r);
    ASSERT_NEAR(log10(r.lr_steepest), -3.0, 0.051);
    ASSERT_TRUE(r.i_min > 0 && sm[r.i_min] <= sm[r.i_min - 1] && sm[r.i_min] <= sm[r.i_min + 1]);
    ASSERT_NEAR(r.lr_min10, r.lr_at_min / 10.0, 1e-18);
    ASSERT_NEAR(r.cyclic_base_lr, r.cyclic_max_lr / 4.0, 1e-18);
    ASSERT_NEAR(r.onecycle_max_lr, r.lr_min10, 1e-18);
    /* a start-up wobble of the bias-corrected EMA, steeper than the real descent, is skipped */
    sm[2] -= 0.3;
    ol_lrfind_suggest(&r);
    ASSERT_NEAR(log10(r.lr_steepest), -3.0, 0.051);
}

static int same_floats(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

int main(void)
{
    test_suggest();
    ol_ctx *ctx = ol_ctx_new(1);
    ol_dataset d;
    ASSERT_OK(ol_dataset_synthetic(ctx, 512, 1, 8, 8, 4, 7, &d), ctx);
    ol_model_params mp = ol_model_default_params();
    ASSERT_OK(ol_model_params_set_arch(ctx, &mp, "mlp"), ctx);
    mp.widths[0] = 32;
    mp.nwidths = 1;
    mp.in_c = 1;
    mp.in_h = mp.in_w = 8;
    mp.num_classes = 4;
    mp.max_batch = 32;
    ol_model *m = NULL;
    ASSERT_OK(ol_model_create(ctx, &mp, &m), ctx);
    ol_optim_params op = ol_optim_default_params(OL_OPT_SGD);
    op.lr = 0.05;
    op.momentum = 0.9;
    ol_optim *o = NULL;
    ASSERT_OK(ol_optim_create(ctx, &op, ol_model_paramset(m), &o), ctx);
    ol_paramset *ps = ol_model_paramset(m);
    if (!m || !o)
        return tu_finish("sched_lrfind");

    /* a few steps so the momentum buffer is not trivial */
    ol_lrfind_params lp = ol_lrfind_default_params();
    lp.batch_size = 32;
    double warm[1] = {0.05}, fl[1];
    ASSERT_OK(ol_lrfind_sweep(ctx, &lp, 3, warm, 1, m, o, &d, fl, NULL), ctx);
    ASSERT_TRUE(isfinite(fl[0]));
    ol_optim_hyper h = {.lr = 0.05, .momentum = -1};
    for (int i = 0; i < 3; i++) { /* the optimizer's own state: a real gradient step each */
        float *x = malloc(sizeof(float) * 32 * 64);
        int32_t y[32];
        int64_t idx[32];
        for (int k = 0; k < 32; k++)
            idx[k] = k + 32 * i;
        ol_dataset_fill(&d, idx, 32, NULL, 0, 0, x, y);
        double ls;
        int c;
        ol_paramset_zero_grads(ps);
        ASSERT_OK(ol_model_forward(ctx, m, x, 32, 1), ctx);
        ASSERT_OK(ol_model_loss(ctx, m, y, 32, 0.0f, 1.0f / 32, &ls, &c), ctx);
        ASSERT_OK(ol_model_backward(ctx, m), ctx);
        ASSERT_OK(ol_optim_step(ctx, o, ps, &h), ctx);
        free(x);
    }
    float *p0 = malloc(ps->numel * sizeof(float)), *s0 = malloc(ps->numel * sizeof(float));
    memcpy(p0, ps->params, ps->numel * sizeof(float));
    memcpy(s0, ol_optim_slot(o, 0), ps->numel * sizeof(float));
    int64_t t0 = ol_optim_steps(o);

    lp.start_lr = 1e-5;
    lp.end_lr = 1e4;
    lp.num_iter = 80;
    lp.label_smoothing = 0.2f; /* keeps the loss away from 0 so large lrs show */
    ol_lrfind_result r;
    ASSERT_OK(ol_lrfind_run(ctx, &lp, m, o, &d, &r), ctx);
    ASSERT_TRUE(same_floats(ps->params, p0, ps->numel));
    ASSERT_TRUE(same_floats(ol_optim_slot(o, 0), s0, ps->numel));
    ASSERT_EQ_INT(ol_optim_steps(o), t0);
    ASSERT_TRUE(r.n >= 10 && r.n <= 80);
    ASSERT_TRUE(r.diverged); /* lr 1e4 on this problem */
    ASSERT_TRUE(r.lr_min10 > 1e-5 && r.lr_min10 < 1e4);
    ASSERT_TRUE(r.smooth[r.i_min] < r.smooth[0]); /* the loss did go down */
    for (int i = 1; i < r.n; i++)                 /* exponential sweep: constant ratio */
        ASSERT_NEAR(r.lr[i] / r.lr[i - 1], pow(1e9, 1.0 / 79.0), 1e-9);
    /* bias-corrected EMA: the first smoothed value is the first loss */
    ASSERT_NEAR(r.smooth[0], r.loss[0], 1e-12);
    double avg = 0.0;
    for (int i = 0; i < 5; i++)
        avg = 0.98 * avg + 0.02 * r.loss[i];
    ASSERT_NEAR(r.smooth[4], avg / (1.0 - pow(0.98, 5)), 1e-12);
    ASSERT_OK(ol_lrfind_plot(ctx, &r, "/tmp/optimlab_test_lrfind.svg", NULL), ctx);
    ol_lrfind_result_free(&r);

    /* sweep: same start for each candidate, restored afterwards */
    double lrs[3] = {1e-3, 0.1, 1e4}, fin[3], fin2[3];
    int ran[3];
    ASSERT_OK(ol_lrfind_sweep(ctx, &lp, 20, lrs, 3, m, o, &d, fin, ran), ctx);
    ASSERT_TRUE(ran[0] == 20 && ran[1] == 20);
    ASSERT_TRUE(ran[2] >= 2 && ran[2] < 20); /* the diverged candidate stopped early */
    ASSERT_TRUE(same_floats(ps->params, p0, ps->numel));
    ASSERT_TRUE(same_floats(ol_optim_slot(o, 0), s0, ps->numel));
    ASSERT_TRUE(isfinite(fin[0]) && isfinite(fin[1]) && fin[1] < fin[0]);
    ASSERT_TRUE(!isfinite(fin[2])); /* lr 1e4 diverges: non-finite or past 4x its first loss */
    ASSERT_EQ_INT(ol_lrfind_sweep_best(fin, 3), 1);
    ASSERT_OK(ol_lrfind_sweep(ctx, &lp, 20, lrs, 2, m, o, &d, fin2, NULL), ctx); /* deterministic */
    ASSERT_TRUE(fin2[0] == fin[0] && fin2[1] == fin[1]);
    ASSERT_OK(ol_lrfind_sweep_plot(ctx, lrs, fin, 3, "/tmp/optimlab_test_sweep.svg", NULL), ctx);

    /* bad parameters */
    lp.end_lr = lp.start_lr / 2;
    ASSERT_EQ_INT(ol_lrfind_run(ctx, &lp, m, o, &d, &r), OL_ERANGE);
    unlink("/tmp/optimlab_test_lrfind.svg");
    unlink("/tmp/optimlab_test_sweep.svg");
    free(p0);
    free(s0);
    ol_optim_free(o);
    ol_model_free(m);
    ol_dataset_free(&d);
    ol_ctx_free(ctx);
    return tu_finish("sched_lrfind");
}
