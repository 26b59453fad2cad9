/* The GPT model (--model gpt): nanoGPT's parameter names and shapes with the
 * LM head tied to transformer.wte, GPT-2 initialisation (std 0.02, residual
 * projections 0.02/sqrt(2 n_layer), biases 0, LayerNorm 1/0), the presets,
 * its architecture stored in a checkpoint and read back exactly (a model of
 * another shape refuses the file), the memory estimate, and bad
 * configurations refused. The forward/backward against PyTorch is
 * test_model_golden's gpt case; finite differences, test_gradcheck_gpt. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "optimlab.h"
#include "testutil.h"

static ol_model_params tiny(ol_ctx *ctx)
{
    ol_model_params mp = ol_model_default_params();
    ASSERT_OK(ol_model_params_set_arch(ctx, &mp, "gpt"), ctx);
    mp.n_layer = 3;
    mp.n_head = 4;
    mp.n_embd = 64;
    mp.seq_len = 32;
    mp.num_classes = 256;
    mp.max_batch = 2;
    mp.seed = 7;
    return mp;
}

static void stats(const ol_paramset *ps, const char *name, double *mean, double *std)
{
    int i = ol_paramset_find(ps, name);
    *mean = *std = NAN;
    if (i < 0) {
        TU_FAIL("no parameter %s", name);
        return;
    }
    const float *p = ps->params + ps->t[i].offset;
    double s = 0.0, ss = 0.0;
    size_t n = ps->t[i].numel;
    for (size_t j = 0; j < n; j++) {
        s += p[j];
        ss += (double)p[j] * p[j];
    }
    *mean = s / (double)n;
    *std = sqrt(ss / (double)n - *mean * *mean);
}

static void check_structure_and_init(ol_ctx *ctx)
{
    ol_model_params mp = tiny(ctx);
    ol_model *m = NULL;
    ASSERT_OK(ol_model_create(ctx, &mp, &m), ctx);
    if (!m)
        return;
    const ol_paramset *ps = ol_model_paramset(m);
    const size_t C = 64, L = 3, V = 256, T = 32;
    /* wte, wpe, per layer ln_1, c_attn, c_proj, ln_2, c_fc, c_proj (weight and bias each), ln_f; no lm_head */
    ASSERT_EQ_INT(ps->n, 2 + 12 * (int)L + 2);
    ASSERT_EQ_INT(ol_paramset_count(ps),
                  V * C + T * C + L * (4 * C + 3 * C * C + 3 * C + C * C + C + 4 * C * C + 4 * C + 4 * C * C + C) + 2 * C);
    ASSERT_TRUE(ol_paramset_find(ps, "lm_head.weight") < 0);
    static const char *const names[] = {"transformer.wte.weight",        "transformer.wpe.weight",
                                        "transformer.h.0.ln_1.weight",    "transformer.h.2.attn.c_attn.weight",
                                        "transformer.h.1.attn.c_proj.bias", "transformer.h.2.mlp.c_fc.weight",
                                        "transformer.h.0.mlp.c_proj.weight", "transformer.ln_f.bias"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (ol_paramset_find(ps, names[i]) < 0)
            TU_FAIL("no parameter %s", names[i]);
    int qkv = ol_paramset_find(ps, "transformer.h.2.attn.c_attn.weight");
    if (qkv >= 0) {
        ASSERT_EQ_INT(ps->t[qkv].shape[0], 3 * C);
        ASSERT_EQ_INT(ps->t[qkv].shape[1], C);
        ASSERT_EQ_INT(ps->t[qkv].kind, OL_KIND_WEIGHT);
    }
    double mu, sd;
    stats(ps, "transformer.wte.weight", &mu, &sd);
    ASSERT_NEAR(sd, 0.02, 0.001);
    ASSERT_NEAR(mu, 0.0, 0.001);
    stats(ps, "transformer.wpe.weight", &mu, &sd);
    ASSERT_NEAR(sd, 0.02, 0.002);
    stats(ps, "transformer.h.1.mlp.c_fc.weight", &mu, &sd);
    ASSERT_NEAR(sd, 0.02, 0.001);
    stats(ps, "transformer.h.1.attn.c_proj.weight", &mu, &sd); /* residual projections: 0.02 / sqrt(2 * 3) */
    ASSERT_NEAR(sd, 0.02 / sqrt(6.0), 0.0008);
    stats(ps, "transformer.h.2.mlp.c_proj.weight", &mu, &sd);
    ASSERT_NEAR(sd, 0.02 / sqrt(6.0), 0.0005);
    stats(ps, "transformer.h.0.attn.c_attn.bias", &mu, &sd);
    ASSERT_TRUE(mu == 0.0 && sd == 0.0);
    stats(ps, "transformer.h.0.ln_2.weight", &mu, &sd);
    ASSERT_TRUE(mu == 1.0 && sd == 0.0);
    stats(ps, "transformer.ln_f.bias", &mu, &sd);
    ASSERT_TRUE(mu == 0.0 && sd == 0.0);
    ASSERT_EQ_INT(ol_model_num_classes(m), 256);
    ol_model_free(m);
}

static void check_presets(ol_ctx *ctx)
{
    ol_model_params mp = ol_model_default_params();
    ASSERT_OK(ol_model_params_set_arch(ctx, &mp, "gpt2-124m"), ctx);
    ASSERT_TRUE(mp.arch == OL_ARCH_GPT && mp.n_layer == 12 && mp.n_head == 12 && mp.n_embd == 768 &&
                mp.seq_len == 1024 && mp.num_classes == 50257);
    ol_model_memory mem;
    ASSERT_OK(ol_model_memory_estimate(ctx, &mp, 4, &mem), ctx);
    ASSERT_EQ_INT(mem.num_params, 124439808); /* GPT-2 small, tied head */
    printf("  gpt2-124m at batch 4 x 1024: %.0f MB (parameters %.0f MB, activations %.0f MB, workspace %.0f MB)\n",
           mem.total / 1e6, mem.params / 1e6, mem.activations / 1e6, mem.workspace / 1e6);
    ASSERT_OK(ol_model_params_set_arch(ctx, &mp, "gpt-mini"), ctx);
    ASSERT_TRUE(mp.arch == OL_ARCH_GPT && mp.n_layer == 4 && mp.n_head == 4 && mp.n_embd == 128 && mp.seq_len == 128);
    char name[32];
    ol_model_params_name(&mp, name, sizeof name);
    ASSERT_TRUE(strcmp(name, "gpt") == 0);
}

static void check_checkpoint_arch(ol_ctx *ctx)
{
    ol_model_params mp = tiny(ctx);
    ol_model *m = NULL;
    ASSERT_OK(ol_model_create(ctx, &mp, &m), ctx);
    if (!m)
        return;
    char path[] = "/tmp/optimlab-gpt-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_TRUE(fd >= 0);
    close(fd);
    ASSERT_OK(ol_checkpoint_save(ctx, path, m, NULL, NULL, NULL), ctx);
    ol_model_params back;
    ASSERT_OK(ol_checkpoint_model_params(ctx, path, &back), ctx);
    ASSERT_TRUE(back.arch == OL_ARCH_GPT);
    ASSERT_EQ_INT(back.n_layer, 3);
    ASSERT_EQ_INT(back.n_head, 4);
    ASSERT_EQ_INT(back.n_embd, 64);
    ASSERT_EQ_INT(back.seq_len, 32);
    ASSERT_EQ_INT(back.num_classes, 256);
    ASSERT_OK(ol_checkpoint_verify(ctx, path), ctx);
    /* a model built from what was read back loads the file, and has the same weights */
    back.max_batch = 1;
    ol_model *m2 = NULL;
    ASSERT_OK(ol_model_create(ctx, &back, &m2), ctx);
    if (m2) {
        ASSERT_OK(ol_checkpoint_load(ctx, path, m2, NULL, NULL), ctx);
        const ol_paramset *a = ol_model_paramset(m), *b = ol_model_paramset(m2);
        ASSERT_TRUE(a->numel == b->numel && memcmp(a->params, b->params, a->numel * sizeof(float)) == 0);
        ol_model_free(m2);
    }
    /* another GPT shape is refused */
    mp.n_head = 2;
    ASSERT_OK(ol_model_create(ctx, &mp, &m2), ctx);
    mp.n_layer = 2;
    ol_model *m3 = NULL;
    ASSERT_OK(ol_model_create(ctx, &mp, &m3), ctx);
    if (m3)
        ASSERT_TRUE(ol_checkpoint_load(ctx, path, m3, NULL, NULL) < 0);
    ol_model_free(m2);
    ol_model_free(m3);
    unlink(path);
    ol_model_free(m);
}

static void check_errors(ol_ctx *ctx)
{
    ol_model_params mp = tiny(ctx);
    ol_model *m = NULL;
    mp.n_head = 5; /* does not divide 64 */
    ASSERT_TRUE(ol_model_create(ctx, &mp, &m) == OL_EINVAL && m == NULL);
    mp = tiny(ctx);
    mp.seq_len = 0;
    ASSERT_TRUE(ol_model_create(ctx, &mp, &m) == OL_EINVAL && m == NULL);
    mp = tiny(ctx);
    mp.n_layer = 0;
    ASSERT_TRUE(ol_model_create(ctx, &mp, &m) == OL_EINVAL && m == NULL);
    mp = tiny(ctx);
    mp.num_classes = 1;
    ASSERT_TRUE(ol_model_create(ctx, &mp, &m) < 0 && m == NULL);
}

/* One micro-batch's gradient, after ol_model_zero_grads (direct) or ol_paramset_zero_grads. */
static void grads_of(ol_ctx *ctx, ol_model *m, const float *x, const int32_t *y, int n, float scale, int direct)
{
    if (direct)
        ol_model_zero_grads(m);
    else
        ol_paramset_zero_grads(ol_model_paramset(m));
    double l;
    int c;
    ASSERT_OK(ol_model_forward(ctx, m, x, n, 1), ctx);
    ASSERT_OK(ol_model_loss(ctx, m, y, n, 0.0f, scale, &l, &c), ctx);
    ASSERT_OK(ol_model_backward(ctx, m), ctx);
}

/* Two micro-batches of 8 x 64 = 512 positions accumulated give bitwise the sum of their
 * gradients computed apart (what --deterministic-reduce sums over ranks): the matrix products
 * of the weight gradients are summed from zero and added once; and a gradient zeroed by
 * ol_paramset_zero_grads (every product added) equals one zeroed by ol_model_zero_grads
 * (the first product written). */
static void check_micro_batch_sums(ol_ctx *ctx)
{
    ol_model_params mp = tiny(ctx);
    mp.seq_len = 64;
    mp.max_batch = 8;
    ol_model *m = NULL;
    ASSERT_OK(ol_model_create(ctx, &mp, &m), ctx);
    const int T = 64, n = 8;
    float *x = malloc(sizeof(float) * 2 * n * T);
    int32_t *y = malloc(sizeof(int32_t) * 2 * n * T);
    ol_paramset *ps = ol_model_paramset(m);
    const size_t N = ps->numel;
    float *acc = malloc(N * sizeof(float)), *g1 = malloc(N * sizeof(float)), *sum = malloc(N * sizeof(float));
    unsigned st = 12345;
    for (int i = 0; i < 2 * n * T; i++) {
        st = st * 1103515245u + 12345u;
        x[i] = (float)((st >> 16) % 256);
        y[i] = (int32_t)((st >> 8) % 256);
    }
    const float scale = 1.0f / (2.0f * n * T);
    /* accumulated: zero once, two backwards */
    grads_of(ctx, m, x, y, n, scale, 1);
    ASSERT_OK(ol_model_forward(ctx, m, x + n * T, n, 1), ctx);
    double l;
    int c;
    ASSERT_OK(ol_model_loss(ctx, m, y + n * T, n, 0.0f, scale, &l, &c), ctx);
    ASSERT_OK(ol_model_backward(ctx, m), ctx);
    memcpy(acc, ps->grads, N * sizeof(float));
    /* apart, then summed in order */
    grads_of(ctx, m, x, y, n, scale, 1);
    memcpy(g1, ps->grads, N * sizeof(float));
    grads_of(ctx, m, x + n * T, y + n * T, n, scale, 1);
    for (size_t i = 0; i < N; i++)
        sum[i] = g1[i] + ps->grads[i];
    ASSERT_TRUE(memcmp(acc, sum, N * sizeof(float)) == 0);
    /* zeroed without the model: the same bits */
    grads_of(ctx, m, x, y, n, scale, 0);
    ASSERT_TRUE(memcmp(g1, ps->grads, N * sizeof(float)) == 0);
    double nz = 0.0;
    for (size_t i = 0; i < N; i++)
        nz += fabs(g1[i]);
    ASSERT_TRUE(nz > 0.0);
    free(x);
    free(y);
    free(acc);
    free(g1);
    free(sum);
    ol_model_free(m);
}

int main(void)
{
    ol_ctx *ctx = ol_ctx_new(2);
    check_structure_and_init(ctx);
    check_presets(ctx);
    check_checkpoint_arch(ctx);
    check_errors(ctx);
    check_micro_batch_sums(ctx);
    ol_ctx_free(ctx);
    return tu_finish("test_gpt");
}
