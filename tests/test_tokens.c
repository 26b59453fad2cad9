/* Token streams: windows of seq_len + 1 tokens (input and next-token labels),
 * an epoch of the shuffled loader visiting every window once, sharded batches
 * equal to the whole batch's rows, byte-level text split into a training head
 * and a validation tail, and the llm.c token-file reader against files it
 * must reject; a GPT's loss and accuracy over every position from ol_evaluate
 * and ol_train_grads, and the gradient scale 1/(n T) whatever the micro-batch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "optimlab.h"
#include "testutil.h"

static char g_dir[64];

static void write_tokens(const char *path, const uint16_t *t, int32_t n, int32_t magic, int32_t version, int32_t count)
{
    int32_t h[256] = {magic, version, count};
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(h, sizeof h, 1, f) != 1 || (n && fwrite(t, sizeof *t, (size_t)n, f) != (size_t)n) ||
        fclose(f) != 0)
        TU_FAIL("cannot write %s", path);
}

static void test_windows(ol_ctx *ctx)
{
    uint16_t t[103];
    for (int i = 0; i < 103; i++)
        t[i] = (uint16_t)i; /* window k starts with token 10 k */
    ol_dataset d;
    ASSERT_OK(ol_dataset_from_tokens(ctx, t, 103, 150, 10, &d), ctx);
    ASSERT_EQ_INT(d.n, 10); /* (103 - 1) / 10 */
    ASSERT_EQ_INT(ol_dataset_outputs_per_sample(&d), 10);
    ASSERT_EQ_INT(d.c * d.h * d.w, 10);
    int64_t idx[2] = {9, 3};
    float x[20];
    int32_t y[20];
    ol_dataset_fill(&d, idx, 2, NULL, 0, 0, x, y);
    int ok = 1;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 10; j++)
            ok &= x[i * 10 + j] == (float)t[idx[i] * 10 + j] && y[i * 10 + j] == t[idx[i] * 10 + j + 1];
    ASSERT_TRUE(ok);
    /* the loader: an epoch visits every window once, whole */
    ol_loader_params lp = {.shuffle = 1, .seed = 5, .max_batch = 4};
    ol_loader *l = NULL;
    ASSERT_OK(ol_loader_create(ctx, &d, &lp, &l), ctx);
    ASSERT_OK(ol_loader_start_epoch(ctx, l, 1, 0), ctx);
    int seen[10] = {0}, n, in_order = 1, k = 0;
    const float *bx;
    const int32_t *by;
    ok = 1;
    while ((n = ol_loader_next(ctx, l, 4, &bx, &by)) > 0)
        for (int i = 0; i < n; i++, k++) {
            const int w = (int)bx[i * 10] / 10;
            ok &= w >= 0 && w < 10 && bx[i * 10 + 9] == (float)(10 * w + 9) && by[i * 10 + 9] == 10 * w + 10;
            if (w >= 0 && w < 10)
                seen[w]++;
            in_order &= w == k;
        }
    for (int w = 0; w < 10; w++)
        ok &= seen[w] == 1;
    ASSERT_TRUE(ok && !in_order);
    ASSERT_OK(ol_loader_start_epoch(ctx, l, 1, 0), ctx);
    float whole[40];
    int32_t wy[40];
    n = ol_loader_next(ctx, l, 4, &bx, &by);
    memcpy(whole, bx, sizeof whole);
    memcpy(wy, by, sizeof wy);
    ASSERT_OK(ol_loader_start_epoch(ctx, l, 1, 0), ctx);
    int lo, sn;
    n = ol_loader_next_shard(ctx, l, 4, 1, 2, &bx, &by, &lo, &sn);
    ASSERT_EQ_INT(lo, 2);
    ASSERT_EQ_INT(sn, 2);
    ASSERT_TRUE(memcmp(bx, whole + 20, 20 * sizeof(float)) == 0 && memcmp(by, wy + 20, 20 * sizeof(int32_t)) == 0);
    ol_loader_free(l);
    /* image-only operations refuse a stream */
    ol_dataset val;
    ASSERT_EQ_INT(ol_dataset_split(ctx, &d, 0.1, 0, &val), OL_EINVAL);
    ol_loader_params aug = {.max_batch = 4, .aug = {.hflip = 1}};
    ASSERT_EQ_INT(ol_loader_create(ctx, &d, &aug, &l), OL_EINVAL);
    ol_dataset_free(&d);
    t[7] = 150;
    ASSERT_EQ_INT(ol_dataset_from_tokens(ctx, t, 103, 150, 10, &d), OL_EFORMAT);
    ASSERT_EQ_INT(ol_dataset_from_tokens(ctx, t, 10, 256, 10, &d), OL_ERANGE); /* shorter than a window */
}

static void test_text(ol_ctx *ctx)
{
    char p1[128], p2[128];
    snprintf(p1, sizeof p1, "%s/a.txt", g_dir);
    snprintf(p2, sizeof p2, "%s/b.txt", g_dir);
    FILE *f = fopen(p1, "wb");
    for (int i = 0; f && i < 900; i++)
        fputc('a' + i % 26, f);
    if (f)
        fclose(f);
    f = fopen(p2, "wb");
    for (int i = 0; f && i < 100; i++)
        fputc(200 + i % 50, f);
    if (f)
        fclose(f);
    const char *const paths[2] = {p1, p2};
    ol_dataset tr, va;
    ASSERT_OK(ol_dataset_load_text(ctx, paths, 2, 8, 0.1, &tr, &va), ctx);
    ASSERT_EQ_INT(tr.ntokens, 900); /* the last 10% of the 1000 bytes: b.txt */
    ASSERT_EQ_INT(va.ntokens, 100);
    ASSERT_EQ_INT(tr.num_classes, 256);
    ASSERT_EQ_INT(tr.n, 899 / 8);
    ASSERT_TRUE(tr.tokens[0] == 'a' && tr.tokens[899] == 'a' + 899 % 26 && va.tokens[0] == 200 && va.tokens[99] == 249);
    ol_dataset_free(&tr);
    ol_dataset_free(&va);
    char empty[128];
    snprintf(empty, sizeof empty, "%s/empty.txt", g_dir);
    fclose(fopen(empty, "wb"));
    const char *const pe[2] = {p1, empty};
    ASSERT_EQ_INT(ol_dataset_load_text(ctx, pe, 2, 8, 0.1, &tr, &va), OL_EFORMAT);
    ASSERT_TRUE(strstr(ol_ctx_errmsg(ctx), "empty.txt") != NULL);
    ASSERT_EQ_INT(ol_dataset_load_text(ctx, paths, 2, 200, 0.1, &tr, &va), OL_ERANGE); /* 100 bytes < 201 */
    const char *const missing[1] = {"/nonexistent/x.txt"};
    ASSERT_EQ_INT(ol_dataset_load_text(ctx, missing, 1, 8, 0.1, &tr, &va), OL_ENOENT);
    unlink(p1);
    unlink(p2);
    unlink(empty);
}

static void test_token_files(ol_ctx *ctx)
{
    uint16_t t[64];
    for (int i = 0; i < 64; i++)
        t[i] = (uint16_t)(i * 3);
    char p[128];
    snprintf(p, sizeof p, "%s/t.bin", g_dir);
    ol_dataset d;
    write_tokens(p, t, 64, 20240520, 1, 64);
    ASSERT_OK(ol_dataset_load_tokens(ctx, p, 200, 7, &d), ctx);
    ASSERT_EQ_INT(d.ntokens, 64);
    ASSERT_EQ_INT(d.n, 9);
    ASSERT_TRUE(memcmp(d.tokens, t, sizeof t) == 0);
    ol_dataset_free(&d);
    ASSERT_EQ_INT(ol_dataset_load_tokens(ctx, p, 189, 7, &d), OL_EFORMAT); /* id 189 */
    const struct {
        int32_t n, magic, version, count;
    } bad[] = {{64, 20240521, 1, 64}, {64, 20240520, 2, 64}, {63, 20240520, 1, 64}, {64, 20240520, 1, 63},
               {64, 20240520, 1, -1}, {64, 20240520, 1, 0x7fffffff}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_tokens(p, t, bad[i].n, bad[i].magic, bad[i].version, bad[i].count);
        int rc = ol_dataset_load_tokens(ctx, p, 256, 7, &d);
        if (rc != OL_EFORMAT)
            TU_FAIL("bad token file %zu: %d, expected OL_EFORMAT (%s)", i, rc, ol_ctx_errmsg(ctx));
        tu_checks++;
    }
    unlink(p);
}

/* A GPT's loss is the mean over n*T positions: ol_evaluate and the step's
 * loss agree, and micro-batches give the same gradient up to rounding. */
static void test_gpt_loss(ol_ctx *ctx)
{
    uint16_t t[400];
    for (int i = 0; i < 400; i++)
        t[i] = (uint16_t)((i * 7 + i / 3) % 32);
    ol_dataset d;
    ASSERT_OK(ol_dataset_from_tokens(ctx, t, 400, 32, 8, &d), ctx);
    ol_model_params mp = ol_model_default_params();
    ASSERT_OK(ol_model_params_set_arch(ctx, &mp, "gpt"), ctx);
    mp.n_layer = 1;
    mp.n_head = 2;
    mp.n_embd = 16;
    mp.seq_len = 8;
    mp.num_classes = 32;
    mp.max_batch = 8;
    ol_model *m = NULL;
    ASSERT_OK(ol_model_create(ctx, &mp, &m), ctx);
    if (!m)
        return;
    int64_t idx[8];
    float x[64];
    int32_t y[64];
    for (int i = 0; i < 8; i++)
        idx[i] = i;
    ol_dataset_fill(&d, idx, 8, NULL, 0, 0, x, y);
    d.n = 8;
    double loss = 0, acc = 0;
    ASSERT_OK(ol_evaluate(ctx, m, &d, 3, &loss, &acc), ctx);
    ASSERT_NEAR(loss, log(32.0), 0.1); /* at initialisation: about uniform */
    ol_train_params tp = ol_train_default_params();
    ol_step_result r1, r2;
    ol_paramset *ps = ol_model_paramset(m);
    ASSERT_OK(ol_train_grads(ctx, &tp, m, x, y, 8, &r1), ctx);
    float *g1 = malloc(ps->numel * sizeof(float));
    if (g1)
        memcpy(g1, ps->grads, ps->numel * sizeof(float));
    tp.micro_batch_size = 3;
    ASSERT_OK(ol_train_grads(ctx, &tp, m, x, y, 8, &r2), ctx);
    ASSERT_NEAR(r1.loss_sum / 8, loss, 1e-5);
    ASSERT_NEAR(r2.loss_sum, r1.loss_sum, 1e-5);
    ASSERT_EQ_INT(r1.correct, r2.correct);
    double maxd = 0, maxg = 0;
    for (size_t i = 0; g1 && i < ps->numel; i++) {
        maxd = fmax(maxd, fabs((double)g1[i] - ps->grads[i]));
        maxg = fmax(maxg, fabs((double)g1[i]));
    }
    ASSERT_TRUE(maxg > 0 && maxd <= 1e-5 * maxg);
    free(g1);
    ol_model_free(m);
    ol_dataset_free(&d);
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/optimlab-tokens-XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    ol_ctx *ctx = ol_ctx_new(1);
    test_windows(ctx);
    test_text(ctx);
    test_token_files(ctx);
    test_gpt_loss(ctx);
    ol_ctx_free(ctx);
    rmdir(g_dir);
    return tu_finish("test_tokens");
}
