/* DiLoCo's outer step: with outer SGD lr 1 and no momentum it is parameter
 * averaging (Local SGD), BN statistics averaged too; Nesterov outer momentum
 * follows PyTorch's SGD formula over two rounds; afterwards every rank holds
 * bitwise the same model; swapping in the global model and back is exact.
 * Alone it checks one worker; under mpirun (tests/scripts/test_mpi_compress.sh)
 * each rank trains on its own data between the syncs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optimlab.h"
#include "testutil.h"

static ol_comm *comm;
static int W = 1, R = 0;

static ol_model *model(ol_ctx *ctx)
{
    ol_model_params mp = ol_model_default_params();
    ol_model_params_set_arch(ctx, &mp, "resnet8");
    mp.in_h = mp.in_w = 12;
    mp.max_batch = 8;
    mp.seed = 3;
    ol_model *m = NULL;
    ASSERT_OK(ol_model_create(ctx, &mp, &m), ctx);
    return m;
}

/* inner steps on this rank's own data */
static void inner(ol_ctx *ctx, ol_model *m, ol_optim *o, int steps, int round)
{
    float x[8 * 144];
    int32_t y[8];
    ol_train_params tp = ol_train_default_params();
    for (int s = 0; s < steps; s++) {
        for (int i = 0; i < 8 * 144; i++)
            x[i] = (float)((i * 37 + s * 11 + R * 5 + round * 3) % 17) / 8.0f - 1.0f;
        for (int i = 0; i < 8; i++)
            y[i] = (i + s + R) % 10;
        ol_optim_hyper h = {.lr = 0.05, .momentum = -1};
        ol_step_result r;
        ASSERT_OK(ol_train_step(ctx, &tp, m, o, x, y, 8, &h, &r), ctx);
    }
}

static uint64_t hash(const float *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n * sizeof(float); i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

static void same_on_all_ranks(ol_ctx *ctx, const ol_paramset *ps, const char *what)
{
    char hs[40];
    snprintf(hs, sizeof hs, "%016llx%016llx", (unsigned long long)hash(ps->params, ps->numel),
             (unsigned long long)hash(ps->buffers, ps->bnumel));
    ASSERT_OK(ol_comm_check_same(ctx, comm, hs, what), ctx);
}

/* relative max difference */
static double rel_diff(const float *a, const double *b, size_t n)
{
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs(a[i] - b[i]));
        s = fmax(s, fabs(b[i]));
    }
    return s > 0 ? d / s : d;
}

static void test_local_sgd(ol_ctx *ctx)
{
    ol_model *m = model(ctx);
    ol_paramset *ps = ol_model_paramset(m);
    ol_optim_params op = ol_optim_default_params(OL_OPT_SGD);
    op.lr = 0.05;
    op.momentum = 0.9;
    ol_optim *o = NULL;
    ASSERT_OK(ol_optim_create(ctx, &op, ps, &o), ctx);
    ol_diloco_params dp = ol_diloco_default_params();
    dp.h = 5;
    dp.outer.lr = 1.0;
    dp.outer.momentum = 0.0;
    dp.outer.nesterov = 0;
    ol_diloco *d = NULL;
    ASSERT_OK(ol_diloco_create(ctx, comm, ps, &dp, &d), ctx);
    double *avg = malloc((ps->numel + ps->bnumel) * sizeof(double));
    float *tmp = malloc((ps->numel + ps->bnumel) * sizeof(float));
    for (int round = 0; round < 3; round++) {
        inner(ctx, m, o, dp.h, round);
        /* the explicit average of the ranks' parameters and BN statistics */
        memcpy(tmp, ps->params, ps->numel * sizeof(float));
        memcpy(tmp + ps->numel, ps->buffers, ps->bnumel * sizeof(float));
        ASSERT_OK(ol_comm_allreduce(ctx, comm, tmp, ps->numel + ps->bnumel), ctx);
        for (size_t i = 0; i < ps->numel + ps->bnumel; i++)
            avg[i] = (double)tmp[i] / W;
        if (W > 1) { /* the ranks did drift apart: the check below is not trivial */
            double spread = rel_diff(ps->params, avg, ps->numel);
            ASSERT_TRUE(spread > 1e-4);
        }
        ASSERT_OK(ol_diloco_sync(ctx, d, ps), ctx);
        double dp_ = rel_diff(ps->params, avg, ps->numel), db = rel_diff(ps->buffers, avg + ps->numel, ps->bnumel);
        if (!(dp_ < 1e-6 && db < 1e-6))
            TU_FAIL("round %d: local SGD vs explicit averaging: parameters %.3g, BN statistics %.3g apart", round,
                    dp_, db);
        tu_checks++;
        same_on_all_ranks(ctx, ps, "model after the sync");
        ASSERT_TRUE(memcmp(ps->params, ol_diloco_global(d), ps->numel * sizeof(float)) == 0);
    }
    ASSERT_EQ_INT(ol_diloco_syncs(d), 3);
    free(avg);
    free(tmp);
    ol_diloco_free(d);
    ol_optim_free(o);
    ol_model_free(m);
}

/* outer Nesterov (PyTorch SGD): b_1 = D_1, b_k = mu b_{k-1} + D_k, theta -= lr (D_k + mu b_k) */
static void test_nesterov(ol_ctx *ctx)
{
    ol_model *m = model(ctx);
    ol_paramset *ps = ol_model_paramset(m);
    ol_optim_params op = ol_optim_default_params(OL_OPT_SGD);
    op.lr = 0.05;
    ol_optim *o = NULL;
    ASSERT_OK(ol_optim_create(ctx, &op, ps, &o), ctx);
    ol_diloco_params dp = ol_diloco_default_params();
    dp.h = 3;
    ol_diloco *d = NULL;
    ASSERT_OK(ol_diloco_create(ctx, comm, ps, &dp, &d), ctx);
    const size_t n = ps->numel;
    double *theta = malloc(n * sizeof(double)), *buf = calloc(n, sizeof(double));
    float *delta = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        theta[i] = ps->params[i];
    const double mu = dp.outer.momentum, lr = dp.outer.lr;
    ASSERT_NEAR(mu, 0.9, 0);
    ASSERT_NEAR(lr, 0.7, 0);
    for (int round = 0; round < 2; round++) {
        inner(ctx, m, o, dp.h, round);
        for (size_t i = 0; i < n; i++)
            delta[i] = (float)theta[i] - ps->params[i];
        ASSERT_OK(ol_comm_allreduce(ctx, comm, delta, n), ctx);
        for (size_t i = 0; i < n; i++) {
            double D = (double)delta[i] / W;
            buf[i] = round == 0 ? D : mu * buf[i] + D;
            theta[i] -= lr * (D + mu * buf[i]);
        }
        ASSERT_OK(ol_diloco_sync(ctx, d, ps), ctx);
        double diff = rel_diff(ps->params, theta, n);
        if (!(diff < 1e-5))
            TU_FAIL("round %d: outer Nesterov step %.3g away from the formula", round, diff);
        tu_checks++;
        same_on_all_ranks(ctx, ps, "model after the Nesterov sync");
    }
    /* swapping in the global model and back is exact */
    inner(ctx, m, o, 2, 7);
    float *before = malloc(n * sizeof(float));
    memcpy(before, ps->params, n * sizeof(float));
    ol_diloco_swap_global(d, ps);
    ASSERT_TRUE(rel_diff(ps->params, theta, n) < 1e-5);
    ol_diloco_swap_global(d, ps);
    ASSERT_TRUE(memcmp(before, ps->params, n * sizeof(float)) == 0);
    dp.h = 0;
    ol_diloco *bad = NULL;
    ASSERT_TRUE(ol_diloco_create(ctx, comm, ps, &dp, &bad) == OL_EINVAL);
    free(before);
    free(theta);
    free(buf);
    free(delta);
    ol_diloco_free(d);
    ol_optim_free(o);
    ol_model_free(m);
}

int main(int argc, char **argv)
{
    ol_ctx *ctx = ol_ctx_new(1);
    if (ol_comm_init(ctx, &argc, &argv, &comm) < 0) {
        fprintf(stderr, "%s\n", ol_ctx_errmsg(ctx));
        return 1;
    }
    W = ol_comm_size(comm);
    R = ol_comm_rank(comm);
    test_local_sgd(ctx);
    test_nesterov(ctx);
    int rc = tu_finish(W > 1 ? "test_diloco (mpirun)" : "test_diloco");
    ol_comm_finalize(comm);
    ol_ctx_free(ctx);
    return rc;
}
