/* The GPT's fast kernels: the attention keeps no T x T matrix per head (a
 * model's memory at context 2T is at most twice that at T), forward, loss and
 * backward give the same bits on 1, 2 and 3 threads (heads and positions that
 * do not divide the thread count or the SIMD width, sizes where every layer
 * runs its parallel loops), micro-batches accumulate each one's gradient
 * summed apart (the bits of ranks under --deterministic-reduce), and the
 * vectorised exp and tanh (nn/vmath.h) stay within their stated error. Values against
 * PyTorch: test_model_golden; gradients: test_gradcheck_gpt. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/vmath.h"
#include "optimlab.h"
#include "testutil.h"

static ol_model_params gpt(ol_ctx *ctx, int T, int C)
{
    ol_model_params mp = ol_model_default_params();
    ASSERT_OK(ol_model_params_set_arch(ctx, &mp, "gpt"), ctx);
    mp.n_layer = 2;
    mp.n_head = 3;
    mp.n_embd = C;
    mp.seq_len = T;
    mp.num_classes = 37;
    mp.max_batch = 3;
    mp.seed = 11;
    return mp;
}

/* An old attention kept N x heads x T x (T+1) floats: at T = 512 that alone is
 * 4.7x the rest of this model's activations, so doubling T more than doubled
 * the memory. */
static void check_memory_linear_in_t(ol_ctx *ctx)
{
    size_t bytes[2];
    for (int i = 0; i < 2; i++) {
        ol_model_params mp = gpt(ctx, 256 << i, 24);
        ol_model *m = NULL;
        ASSERT_OK(ol_model_create(ctx, &mp, &m), ctx);
        bytes[i] = m ? ol_model_memory_bytes(m) : 0;
        ol_model_free(m);
    }
    if (!(bytes[1] <= 2 * bytes[0] + 4096))
        TU_FAIL("model memory at T = 512 is %zu bytes, at T = 256 %zu: grows faster than T", bytes[1], bytes[0]);
    ASSERT_TRUE(bytes[0] > 0);
}

/* forward, loss and backward on `threads` threads: logits and gradients */
static void run(int threads, int T, float **logits, float **grads, size_t *nl, size_t *ng, double *loss)
{
    ol_ctx *ctx = ol_ctx_new(threads);
    ASSERT_TRUE(ctx != NULL);
    if (!ctx)
        return;
    ol_model_params mp = gpt(ctx, T, 96);
    mp.num_classes = 300; /* the embedding's token sort takes two passes */
    ol_model *m = NULL;
    ASSERT_OK(ol_model_create(ctx, &mp, &m), ctx);
    if (!m) {
        ol_ctx_free(ctx);
        return;
    }
    const int N = 3;
    float *x = malloc((size_t)N * T * sizeof(float));
    int32_t *y = malloc((size_t)N * T * sizeof(int32_t));
    for (int i = 0; i < N * T; i++) {
        x[i] = (float)((i * 7 + 3) % mp.num_classes);
        y[i] = (i * 5 + 1) % mp.num_classes;
    }
    ol_paramset *ps = ol_model_paramset(m);
    ol_paramset_zero_grads(ps);
    int correct = 0;
    ASSERT_OK(ol_model_forward(ctx, m, x, N, 1), ctx);
    ASSERT_OK(ol_model_loss(ctx, m, y, N, 0.0f, 1.0f / (float)(N * T), loss, &correct), ctx);
    ASSERT_OK(ol_model_backward(ctx, m), ctx);
    *nl = (size_t)N * T * mp.num_classes;
    *ng = ps->numel;
    *logits = malloc(*nl * sizeof(float));
    *grads = malloc(*ng * sizeof(float));
    memcpy(*logits, ol_model_logits(m), *nl * sizeof(float));
    memcpy(*grads, ps->grads, *ng * sizeof(float));
    free(x);
    free(y);
    ol_model_free(m);
    ol_ctx_free(ctx);
}

static void check_thread_determinism(void)
{
    /* T not a multiple of 16 or of 2 or 3 threads; 3 x T rows of 96 features
     * are above OL__PAR_MIN, so every layer runs its parallel loops */
    const int T = 515;
    float *l1 = NULL, *g1 = NULL;
    size_t nl1 = 0, ng1 = 0;
    double loss1 = 0.0;
    run(1, T, &l1, &g1, &nl1, &ng1, &loss1);
    ASSERT_TRUE(isfinite(loss1) && loss1 > 0.0);
    for (int th = 2; th <= 3; th++) {
        float *l = NULL, *g = NULL;
        size_t nl = 0, ng = 0;
        double loss = 0.0;
        run(th, T, &l, &g, &nl, &ng, &loss);
        ASSERT_TRUE(l && g && l1 && g1 && nl == nl1 && ng == ng1);
        if (l && g && l1 && g1 && nl == nl1 && ng == ng1) {
            if (memcmp(l, l1, nl * sizeof(float)) != 0)
                TU_FAIL("logits on %d threads differ from 1 thread", th);
            if (memcmp(g, g1, ng * sizeof(float)) != 0)
                TU_FAIL("gradients on %d threads differ from 1 thread", th);
            if (memcmp(&loss, &loss1, sizeof loss) != 0)
                TU_FAIL("loss on %d threads %.17g, on 1 thread %.17g", th, loss, loss1);
        }
        free(l);
        free(g);
    }
    free(l1);
    free(g1);
}

/* Gradients of samples [lo, lo + n) of x, y added into ps->grads: forward,
 * loss (the mean over N x T positions) and backward. */
static void accumulate(ol_ctx *ctx, ol_model *m, const float *x, const int32_t *y, int lo, int n, int N, int T)
{
    double loss = 0.0;
    int correct = 0;
    ASSERT_OK(ol_model_forward(ctx, m, x + (size_t)lo * T, n, 1), ctx);
    ASSERT_OK(ol_model_loss(ctx, m, y + (size_t)lo * T, n, 0.0f, 1.0f / (float)(N * T), &loss, &correct), ctx);
    ASSERT_OK(ol_model_backward(ctx, m), ctx);
}

/* Two micro-batches accumulated give, for every parameter, the bits of each
 * micro-batch's gradient from zero added once (what two ranks give under
 * --deterministic-reduce). The embedding's backward used to add position by
 * position into the accumulated gradient, so a second micro-batch continued
 * the first one's sums. A vocabulary over 256 (two passes of the token sort),
 * tokens repeated within and across the micro-batches and rows no token uses
 * (only the tied head adds to them). 256 positions per micro-batch: beyond
 * that the GEMMs of the linear layers' weight gradients add their partial sums
 * over positions into the accumulated gradient one block at a time. */
static void check_micro_batch_sums(void)
{
    const int T = 128, N = 4, half = N / 2;
    ol_ctx *ctx = ol_ctx_new(2);
    ASSERT_TRUE(ctx != NULL);
    if (!ctx)
        return;
    ol_model_params mp = gpt(ctx, T, 96);
    mp.num_classes = 300;
    mp.max_batch = half;
    ol_model *m = NULL;
    ASSERT_OK(ol_model_create(ctx, &mp, &m), ctx);
    float *x = malloc((size_t)N * T * sizeof(float));
    int32_t *y = malloc((size_t)N * T * sizeof(int32_t));
    ol_paramset *ps = m ? ol_model_paramset(m) : NULL;
    float *part = ps ? malloc(2 * ps->numel * sizeof(float)) : NULL;
    if (!m || !x || !y || !part) {
        ASSERT_TRUE(!"setup");
        goto out;
    }
    for (int i = 0; i < N * T; i++) {
        x[i] = (float)((i * 7 + 3) % 200);
        y[i] = (i * 5 + 1) % mp.num_classes;
    }
    for (int h = 0; h < 2; h++) {
        ol_paramset_zero_grads(ps);
        accumulate(ctx, m, x, y, h * half, half, N, T);
        memcpy(part + (size_t)h * ps->numel, ps->grads, ps->numel * sizeof(float));
    }
    ol_paramset_zero_grads(ps);
    for (int h = 0; h < 2; h++)
        accumulate(ctx, m, x, y, h * half, half, N, T);
    for (int i = 0; i < ps->n; i++) {
        const ol_tensor_desc *t = &ps->t[i];
        size_t bad = 0, first = 0;
        for (size_t j = t->offset; j < t->offset + t->numel; j++) {
            float want = part[j] + part[ps->numel + j];
            if (memcmp(&want, &ps->grads[j], sizeof want) != 0 && bad++ == 0)
                first = j;
        }
        if (bad)
            TU_FAIL("%s: %zu of %zu gradients accumulated over 2 micro-batches are not the micro-batches' sums "
                    "added (first at %zu: %.9g vs %.9g)",
                    t->name, bad, t->numel, first - t->offset, (double)ps->grads[first],
                    (double)(part[first] + part[ps->numel + first]));
    }
out:
    free(part);
    free(x);
    free(y);
    ol_model_free(m);
    ol_ctx_free(ctx);
}

static void check_vmath(void)
{
    double worst = 0.0;
    for (float x = -87.0f; x < 88.0f; x += 0.0173f) {
        double r = exp((double)x), e = fabs((double)ol__expf(x) - r) / r;
        worst = e > worst ? e : worst;
    }
    if (!(worst <= 2.0 * 5.97e-8))
        TU_FAIL("ol__expf: relative error %.3g above 2 ulp", worst);
    ASSERT_TRUE(ol__expf(0.0f) == 1.0f);
    ASSERT_TRUE(isinf(ol__expf(100.0f)) && ol__expf(-1000.0f) >= 0.0f && ol__expf(-1000.0f) < 2e-38f);
    ASSERT_TRUE(isnan(ol__expf(NAN)));
    double tw = 0.0;
    for (float u = -20.0f; u < 20.0f; u += 0.00137f) {
        double e = fabs((double)ol__tanhf(u) - tanh((double)u));
        tw = e > tw ? e : tw;
    }
    if (!(tw <= 2.5e-7))
        TU_FAIL("ol__tanhf: absolute error %.3g above 2.5e-7", tw);
    ASSERT_TRUE(ol__tanhf(50.0f) == 1.0f && ol__tanhf(-50.0f) == -1.0f);
}

int main(void)
{
    ol_ctx *ctx = ol_ctx_new(2);
    ASSERT_TRUE(ctx != NULL);
    if (ctx)
        check_memory_linear_in_t(ctx);
    ol_ctx_free(ctx);
    check_thread_determinism();
    check_micro_batch_sums();
    check_vmath();
    return tu_finish("test_gpt_kernels");
}
