/* Finite-difference gradient checks of the language-model layers: each case is
 * tokens -> embedding (wte + wpe) -> [layers under test] -> LM head tied to
 * wte -> softmax cross-entropy at every position. Every parameter coordinate
 * (up to a cap per tensor) is checked against central differences, on the
 * reference and the oneDNN backends; the layers' input gradients are checked
 * through the parameters upstream of them (wte, wpe and the projections).
 * Also: the gradients are bitwise the same on 1 and 2 threads, a token id
 * outside the vocabulary is an error, and the tied weight's gradient is final
 * only after the embedding's backward (the backward hook). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "gradcheck.h"
#include "nn/graph.h"
#include "optimlab.h"
#include "testutil.h"

enum { V = 11, C = 8, T = 5, NB = 2, HEADS = 2 };

typedef int (*build_fn)(ol_ctx *ctx, ol_model *m, int x);

static int b_none(ol_ctx *c, ol_model *m, int x)
{
    (void)c;
    (void)m;
    return x;
}
static int b_layernorm(ol_ctx *c, ol_model *m, int x) { return ol__graph_layernorm(c, m, "ln", x); }
static int b_gelu(ol_ctx *c, ol_model *m, int x)
{
    return ol__graph_linear(c, m, "proj", ol__graph_gelu(c, m, ol__graph_linear(c, m, "fc", x, 2 * C, 0)), C, 0);
}
static int b_linear_rows(ol_ctx *c, ol_model *m, int x) { return ol__graph_linear(c, m, "proj", x, C, 0); }
static int b_attention(ol_ctx *c, ol_model *m, int x)
{
    return ol__graph_attention(c, m, ol__graph_linear(c, m, "qkv", x, 3 * C, 0), HEADS);
}
static int b_attention1(ol_ctx *c, ol_model *m, int x)
{
    return ol__graph_attention(c, m, ol__graph_linear(c, m, "qkv", x, 3 * C, 0), 1);
}
static int b_residual(ol_ctx *c, ol_model *m, int x)
{
    return ol__graph_add(c, m, x, ol__graph_gelu(c, m, ol__graph_linear(c, m, "fc", x, C, 0)), 0);
}
/* one pre-LayerNorm GPT-2 block and the final LayerNorm */
static int b_block(ol_ctx *c, ol_model *m, int x)
{
    int a = ol__graph_layernorm(c, m, "h.0.ln_1", x);
    a = ol__graph_attention(c, m, ol__graph_linear(c, m, "h.0.attn.c_attn", a, 3 * C, 0), HEADS);
    a = ol__graph_linear(c, m, "h.0.attn.c_proj", a, C, 0);
    int r = ol__graph_add(c, m, x, a, 0);
    a = ol__graph_layernorm(c, m, "h.0.ln_2", r);
    a = ol__graph_gelu(c, m, ol__graph_linear(c, m, "h.0.mlp.c_fc", a, 4 * C, 0));
    a = ol__graph_linear(c, m, "h.0.mlp.c_proj", a, C, 0);
    r = ol__graph_add(c, m, r, a, 0);
    return ol__graph_layernorm(c, m, "ln_f", r);
}

typedef struct {
    const char *label;
    build_fn build;
    float smoothing;
} gpt_case;

static const gpt_case cases[] = {
    {"embedding + tied head", b_none, 0.0f},
    {"embedding + tied head (smoothing)", b_none, 0.1f},
    {"layernorm", b_layernorm, 0.0f},
    {"linear over rows", b_linear_rows, 0.0f},
    {"gelu (tanh)", b_gelu, 0.0f},
    {"attention, 2 heads", b_attention, 0.0f},
    {"attention, 1 head", b_attention1, 0.0f},
    {"residual add", b_residual, 0.0f},
    {"GPT-2 block + ln_f", b_block, 0.0f},
    {"tiny GPT, ol_model_create", NULL, 0.1f}, /* 2 layers, 2 heads, end to end */
};

typedef struct {
    ol_ctx *ctx;
    ol_model *m;
    float *x;
    int32_t *y;
    float smoothing;
} prob;

static double loss(void *user)
{
    prob *p = user;
    double l = 0.0;
    int c;
    if (ol_model_forward(p->ctx, p->m, p->x, NB, 1) < 0 ||
        ol_model_loss(p->ctx, p->m, p->y, NB, p->smoothing, 1.0f / (NB * T), &l, &c) < 0)
        return NAN;
    return l / (NB * T);
}

static void randomize(ol_model *m, uint64_t seed);

/* tokens -> embedding -> build -> tied head, random parameters; build NULL:
 * the whole model from ol_model_create */
static ol_model *make_gpt(ol_ctx *ctx)
{
    ol_model_params mp = ol_model_default_params();
    ol_model_params_set_arch(ctx, &mp, "gpt");
    mp.n_layer = 2;
    mp.n_head = HEADS;
    mp.n_embd = C;
    mp.seq_len = T;
    mp.num_classes = V;
    mp.max_batch = NB;
    ol_model *m = NULL;
    if (ol_model_create(ctx, &mp, &m) < 0)
        TU_FAIL("tiny GPT: %s", ol_ctx_errmsg(ctx));
    return m;
}

static ol_model *make(ol_ctx *ctx, const gpt_case *gc, uint64_t seed)
{
    if (!gc->build) {
        ol_model *g = make_gpt(ctx);
        if (g)
            randomize(g, seed);
        return g;
    }
    ol_model *m = calloc(1, sizeof *m);
    m->mp = ol_model_default_params();
    m->mp.max_batch = NB;
    int v = ol__graph_input(ctx, m, T, 1, 1);
    if (v >= 0)
        v = ol__graph_embedding(ctx, m, "wte", "wpe", v, V, C);
    if (v >= 0)
        v = gc->build(ctx, m, v);
    if (v >= 0)
        v = ol__graph_lm_head(ctx, m, v, ol_paramset_find(&m->ps, "wte.weight"));
    int rc = v < 0 ? v : ol__graph_finish(ctx, m, v);
    if (rc < 0) {
        TU_FAIL("%s: build failed: %s", gc->label, ol_ctx_errmsg(ctx));
        ol__graph_free(m);
        free(m);
        return NULL;
    }
    randomize(m, seed);
    return m;
}

static void randomize(ol_model *m, uint64_t seed)
{
    ol_paramset *ps = &m->ps;
    ol__rng r;
    ol__rng_seed(&r, 13, seed, 0);
    for (int i = 0; i < ps->n; i++) {
        const ol_tensor_desc *t = &ps->t[i];
        int emb = strstr(t->name, "wte.") != NULL || strstr(t->name, "wpe.") != NULL;
        for (size_t j = 0; j < t->numel; j++) {
            double g = ol__rng_normal(&r);
            float val = t->kind == OL_KIND_NORM ? (strstr(t->name, ".weight") ? (float)(1.0 + 0.3 * g) : (float)(0.3 * g))
                        : emb                   ? (float)(0.7 * g)
                                                : (float)(g / sqrt((double)t->fan_in));
            if (t->kind == OL_KIND_BIAS)
                val = (float)(0.2 * g);
            ps->params[t->offset + j] = val;
        }
    }
}

static void free_model(ol_model *m)
{
    ol__graph_free(m);
    free(m);
}

static void tokens(uint64_t seed, float *x, int32_t *y)
{
    ol__rng r;
    ol__rng_seed(&r, 17, seed, 1);
    for (int i = 0; i < NB * T; i++) {
        x[i] = (float)ol__rng_below(&r, V);
        y[i] = (int32_t)ol__rng_below(&r, V);
    }
}

static void run_case(ol_ctx *ctx, const gpt_case *gc, ol_backend be)
{
    if (ol_ctx_set_backend(ctx, be) < 0)
        return;
    uint64_t seed = (uint64_t)(gc - cases);
    ol_model *m = make(ctx, gc, seed);
    if (!m)
        return;
    ol_paramset *ps = &m->ps;
    float x[NB * T];
    int32_t y[NB * T];
    tokens(seed, x, y);
    prob p = {ctx, m, x, y, gc->smoothing};
    ol_paramset_zero_grads(ps);
    double l0 = loss(&p);
    ASSERT_OK(ol_model_backward(ctx, m), ctx);
    float *g = malloc(ps->numel * sizeof(float));
    memcpy(g, ps->grads, ps->numel * sizeof(float));
    ol__rng r;
    ol__rng_seed(&r, 19, seed, 2);
    char label[128];
    snprintf(label, sizeof label, "%s [%s]", gc->label, ol_backend_name(be));
    int checked = 0;
    double worst = 0.0;
    for (int i = 0; i < ps->n; i++) {
        const ol_tensor_desc *t = &ps->t[i];
        checked += gc_check_values(loss, &p, ps->params + t->offset, g + t->offset, t->numel, 40, &r, l0, label,
                                   t->name, &worst);
    }
    printf("  %-34s %-6s: %4d coordinates, loss %.4f, worst err/tol %.3f\n", gc->label, ol_backend_name(be), checked,
           l0, worst);
    free(g);
    free_model(m);
}

/* gradients of a GPT block bitwise equal on 1 and 2 threads */
static void check_threads(ol_ctx *ctx)
{
    const gpt_case *gc = &cases[sizeof cases / sizeof cases[0] - 2]; /* the block */
    float *g[2] = {NULL, NULL};
    size_t numel = 0;
    for (int k = 0; k < 2; k++) {
        ol_ctx_set_threads(ctx, k + 1);
        ol_model *m = make(ctx, gc, 99);
        if (!m)
            return;
        float x[NB * T];
        int32_t y[NB * T];
        tokens(99, x, y);
        ol_paramset_zero_grads(&m->ps);
        prob p = {ctx, m, x, y, 0.0f};
        loss(&p);
        ASSERT_OK(ol_model_backward(ctx, m), ctx);
        numel = m->ps.numel;
        g[k] = malloc(numel * sizeof(float));
        memcpy(g[k], m->ps.grads, numel * sizeof(float));
        free_model(m);
    }
    ASSERT_TRUE(memcmp(g[0], g[1], numel * sizeof(float)) == 0);
    free(g[0]);
    free(g[1]);
    ol_ctx_set_threads(ctx, 2);
}

typedef struct {
    size_t final_from[64];
    int n;
} hook_log;

static void hook(void *user, size_t final_from)
{
    hook_log *h = user;
    if (h->n < 64)
        h->final_from[h->n++] = final_from;
}

/* wte is the first tensor (offset 0) and is used by the first and the last
 * node: no hook call before the embedding's backward may declare offset 0
 * final; the last one does. A token outside the vocabulary is refused. */
static void check_tied_and_errors(ol_ctx *ctx)
{
    ol_model *m = make(ctx, &cases[2], 5);
    if (!m)
        return;
    float x[NB * T];
    int32_t y[NB * T];
    tokens(5, x, y);
    hook_log h = {{0}, 0};
    ol_model_set_backward_hook(m, hook, &h);
    prob p = {ctx, m, x, y, 0.0f};
    ol_paramset_zero_grads(&m->ps);
    loss(&p);
    ASSERT_OK(ol_model_backward(ctx, m), ctx);
    ASSERT_EQ_INT(h.n, m->nnodes);
    for (int i = 0; i + 1 < h.n; i++)
        if (h.final_from[i] == 0)
            TU_FAIL("hook call %d declared the tied wte final before the embedding's backward", i);
    ASSERT_EQ_INT(h.final_from[h.n - 1], 0);
    x[3] = (float)V;
    ASSERT_TRUE(ol_model_forward(ctx, m, x, NB, 1) == OL_ERANGE);
    x[3] = 1.5f;
    ASSERT_TRUE(ol_model_forward(ctx, m, x, NB, 1) == OL_ERANGE);
    x[3] = 1.0f;
    y[4] = V;
    ASSERT_OK(ol_model_forward(ctx, m, x, NB, 1), ctx);
    ASSERT_TRUE(ol_model_loss(ctx, m, y, NB, 0.0f, 1.0f, NULL, NULL) == OL_ERANGE);
    free_model(m);
}

int main(void)
{
    ol_ctx *ctx = ol_ctx_new(2);
    const ol_backend bes[2] = {OL_BACKEND_REF, OL_BACKEND_ONEDNN};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int b = 0; b < 2; b++)
            run_case(ctx, &cases[c], bes[b]);
    ol_ctx_set_backend(ctx, OL_BACKEND_REF);
    check_threads(ctx);
    check_tied_and_errors(ctx);
    ol_ctx_free(ctx);
    return tu_finish("test_gradcheck_gpt");
}
