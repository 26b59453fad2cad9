/* ol_model_memory_estimate: from the layer graph alone it predicts exactly
 * what a model built from the same parameters allocates at that batch, it
 * matches a closed form for a small MLP, and it answers for a model far too
 * large to allocate without allocating it. */
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "optimlab.h"
#include "testutil.h"

static void check_matches_model(ol_ctx *ctx, const char *arch, char shortcut, int batch)
{
    ol_model_params mp = ol_model_default_params();
    ASSERT_OK(ol_model_params_set_arch(ctx, &mp, arch), ctx);
    mp.shortcut = shortcut;
    mp.widths[0] = 64;
    mp.widths[1] = 32;
    mp.max_batch = batch;
    ol_model_memory est;
    ASSERT_OK(ol_model_memory_estimate(ctx, &mp, batch, &est), ctx);
    ol_model *m = NULL;
    ASSERT_OK(ol_model_create(ctx, &mp, &m), ctx);
    if (!m)
        return;
    ol_paramset *ps = ol_model_paramset(m);
    ASSERT_EQ_INT(est.params, ps->numel * sizeof(float));
    ASSERT_EQ_INT(est.grads, ps->numel * sizeof(float));
    ASSERT_EQ_INT(est.buffers, (ps->bnumel ? ps->bnumel : 16) * sizeof(float));
    ASSERT_EQ_INT(est.num_params, ol_paramset_count(ps));
    /* no pass has run: no backend scratch, the model holds exactly its arenas */
    ASSERT_EQ_INT(est.activations + est.activation_grads + est.workspace + est.loss, ol_model_memory_bytes(m));
    ASSERT_EQ_INT(est.total, est.params + est.grads + est.buffers + est.activations + est.activation_grads +
                                 est.workspace + est.loss);
    printf("  %-9s shortcut %c batch %3d: %zu bytes (activations %zu, gradients %zu, workspace %zu)\n", arch,
           shortcut, batch, est.total, est.activations, est.activation_grads, est.workspace);
    ol_model_free(m);
}

/* mlp 784 -> 64 -> 32 -> 10 at batch 5, counted by hand: values input,
 * flatten, fc1..fc3 at 16-float alignment; parameters at 16-float offsets. */
static void check_closed_form(ol_ctx *ctx)
{
    ol_model_params mp = ol_model_default_params();
    ASSERT_OK(ol_model_params_set_arch(ctx, &mp, "mlp"), ctx);
    mp.widths[0] = 64;
    mp.widths[1] = 32;
    ol_model_memory est;
    ASSERT_OK(ol_model_memory_estimate(ctx, &mp, 5, &est), ctx);
    ASSERT_EQ_INT(est.activations, (3920 + 3920 + 320 + 160 + 64) * 4);
    ASSERT_EQ_INT(est.num_params, 784 * 64 + 64 + 64 * 32 + 32 + 32 * 10 + 10);
    ASSERT_EQ_INT(est.params, 52656 * 4);
    ASSERT_EQ_INT(est.workspace, 0);
    ASSERT_EQ_INT(est.loss, 5 * 10 * 4 + 5 * 8);
}

static long max_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void check_huge_not_allocated(ol_ctx *ctx)
{
    ol_model_params mp = ol_model_default_params();
    ASSERT_OK(ol_model_params_set_arch(ctx, &mp, "mlp"), ctx);
    mp.widths[0] = 50000;
    mp.widths[1] = 50000;
    long before = max_rss_kb();
    ol_model_memory est;
    ASSERT_OK(ol_model_memory_estimate(ctx, &mp, 1048576, &est), ctx);
    ASSERT_EQ_INT(est.num_params, (size_t)784 * 50000 + 50000 + (size_t)50000 * 50000 + 50000 + 50000 * 10 + 10);
    ASSERT_TRUE(est.params >= est.num_params * 4 && est.params < est.num_params * 4 + 1024);
    ASSERT_TRUE(est.activations >= (size_t)1048576 * (784 * 2 + 100010) * 4);
    ASSERT_TRUE(max_rss_kb() - before < 64 * 1024); /* described, not allocated */
}

static void check_errors(ol_ctx *ctx)
{
    ol_model_params mp = ol_model_default_params();
    ol_model_memory est;
    ASSERT_TRUE(ol_model_memory_estimate(ctx, &mp, 0, &est) == OL_EINVAL);
    mp.num_classes = 1;
    ASSERT_TRUE(ol_model_memory_estimate(ctx, &mp, 4, &est) < 0);
    ASSERT_EQ_INT(est.total, 0);
    mp = ol_model_default_params();
    ASSERT_OK(ol_model_params_set_arch(ctx, &mp, "mlp"), ctx);
    mp.widths[1] = 0; /* found by the layer builder */
    ASSERT_TRUE(ol_model_memory_estimate(ctx, &mp, 4, &est) < 0);
}

int main(void)
{
    ol_ctx *ctx = ol_ctx_new(1);
    ol_ctx_set_backend(ctx, OL_BACKEND_REF);
    check_matches_model(ctx, "mlp", 'A', 5);
    check_matches_model(ctx, "resnet8", 'A', 7);
    check_matches_model(ctx, "resnet8", 'B', 32);
    check_matches_model(ctx, "resnet18", 'B', 3);
    check_closed_form(ctx);
    check_huge_not_allocated(ctx);
    check_errors(ctx);
    ol_ctx_free(ctx);
    return tu_finish("test_model_memory");
}
