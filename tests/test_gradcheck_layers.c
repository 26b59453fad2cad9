/* Finite-difference gradient checks of every layer on its own: each case is
 * input -> [layers under test] -> flatten -> linear head -> softmax
 * cross-entropy (label smoothing 0.1), and every parameter and input
 * coordinate (up to a cap) is checked against central differences, for the
 * reference and the oneDNN backends and for the plain, 8- and 16-channel
 * blocked activation layouts. Inputs stay away from ReLU kinks and max-pool
 * ties so that the tolerance can be tight. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "gradcheck.h"
#include "nn/graph.h"
#include "optimlab.h"
#include "testutil.h"

void ol__graph_free(ol_model *m);

typedef int (*build_fn)(ol_ctx *ctx, ol_model *m, int x);

static int b_linear(ol_ctx *c, ol_model *m, int x) { return ol__graph_linear(c, m, "lin", ol__graph_flatten(c, m, x), 7, 0); }
static int b_linear_relu(ol_ctx *c, ol_model *m, int x)
{
    return ol__graph_linear(c, m, "lin", ol__graph_flatten(c, m, x), 7, 1);
}
static int b_conv3(ol_ctx *c, ol_model *m, int x) { return ol__graph_conv(c, m, "conv", x, 16, 3, 1, 1, 1); }
static int b_conv3s2(ol_ctx *c, ol_model *m, int x)
{
    int a = ol__graph_conv(c, m, "pre", x, 16, 1, 1, 0, 0);
    return ol__graph_conv(c, m, "conv", a, 16, 3, 2, 1, 0);
}
static int b_conv1s2(ol_ctx *c, ol_model *m, int x)
{
    int a = ol__graph_conv(c, m, "pre", x, 16, 1, 1, 0, 0);
    return ol__graph_conv(c, m, "conv", a, 32, 1, 2, 0, 0);
}
static int b_conv7s2(ol_ctx *c, ol_model *m, int x) { return ol__graph_conv(c, m, "conv", x, 16, 7, 2, 3, 0); }
static int pre16(ol_ctx *c, ol_model *m, int x) { return ol__graph_conv(c, m, "pre", x, 16, 1, 1, 0, 1); }
static int b_bn(ol_ctx *c, ol_model *m, int x) { return ol__graph_bn(c, m, "bn", pre16(c, m, x), -1, 0); }
static int b_bn_relu(ol_ctx *c, ol_model *m, int x) { return ol__graph_bn(c, m, "bn", pre16(c, m, x), -1, 1); }
static int b_bn_res(ol_ctx *c, ol_model *m, int x)
{
    int a = pre16(c, m, x);
    int b = ol__graph_conv(c, m, "conv", a, 16, 3, 1, 1, 0);
    return ol__graph_bn(c, m, "bn", b, a, 1); /* a feeds the conv and the residual */
}
static int b_relu(ol_ctx *c, ol_model *m, int x) { return ol__graph_relu(c, m, x); }
static int b_add_relu(ol_ctx *c, ol_model *m, int x)
{
    int a = pre16(c, m, x);
    int b = ol__graph_conv(c, m, "conv", a, 16, 3, 1, 1, 0);
    return ol__graph_add(c, m, a, b, 1);
}
static int b_shortcut_a(ol_ctx *c, ol_model *m, int x) { return ol__graph_shortcut_a(c, m, pre16(c, m, x), 32, 2); }
static int b_maxpool(ol_ctx *c, ol_model *m, int x) { return ol__graph_maxpool(c, m, x, 3, 2, 1); }
static int b_gap(ol_ctx *c, ol_model *m, int x) { return ol__graph_gap(c, m, pre16(c, m, x)); }
static int b_flatten(ol_ctx *c, ol_model *m, int x) { return ol__graph_flatten(c, m, pre16(c, m, x)); }

typedef struct {
    const char *label;
    build_fn build;
    int c, h, w, n;
    int train_bn;
    int kinks; /* 1: keep inputs away from 0; 2: also distinct values (max-pool) */
} layer_case;

static const layer_case cases[] = {
    {"linear", b_linear, 3, 2, 2, 3, 1, 0},
    {"linear+relu", b_linear_relu, 3, 2, 2, 3, 1, 1},
    {"conv 3x3 s1 p1 +bias", b_conv3, 3, 5, 5, 2, 1, 0},
    {"conv 3x3 s2 p1", b_conv3s2, 3, 6, 6, 2, 1, 0},
    {"conv 1x1 s2 p0", b_conv1s2, 3, 5, 5, 2, 1, 0},
    {"conv 7x7 s2 p3", b_conv7s2, 2, 9, 9, 2, 1, 0},
    {"batchnorm (train)", b_bn, 2, 3, 3, 3, 1, 0},
    {"batchnorm (eval)", b_bn, 2, 3, 3, 3, 0, 0},
    {"batchnorm+relu (train)", b_bn_relu, 2, 3, 3, 3, 1, 0},
    {"batchnorm+residual+relu", b_bn_res, 2, 3, 3, 3, 1, 0},
    {"relu", b_relu, 3, 3, 3, 2, 1, 1},
    {"add+relu", b_add_relu, 2, 3, 3, 2, 1, 0},
    {"shortcut A", b_shortcut_a, 2, 5, 5, 2, 1, 0},
    {"maxpool 3 s2 p1", b_maxpool, 2, 5, 5, 2, 1, 2},
    {"global avgpool", b_gap, 2, 3, 3, 2, 1, 0},
    {"flatten", b_flatten, 2, 3, 3, 2, 1, 0},
};

typedef struct {
    ol_ctx *ctx;
    ol_model *m;
    float *x;
    int32_t *y;
    int n, train;
} prob;

static double loss(void *user)
{
    prob *p = user;
    double l = 0.0;
    int c;
    if (ol_model_forward(p->ctx, p->m, p->x, p->n, p->train) < 0 ||
        ol_model_loss(p->ctx, p->m, p->y, p->n, 0.1f, 1.0f / (float)p->n, &l, &c) < 0)
        return NAN;
    return l / p->n;
}

static void run_case(ol_ctx *ctx, const layer_case *lc, ol_backend be, int blk)
{
    if (ol_ctx_set_backend(ctx, be) < 0)
        return;
    ol_model *m = calloc(1, sizeof *m);
    m->mp = ol_model_default_params();
    m->mp.channel_block = blk;
    m->mp.max_batch = lc->n;
    int v = ol__graph_input(ctx, m, lc->c, lc->h, lc->w);
    v = lc->build(ctx, m, v);
    if (v >= 0 && (m->vals[v].h != 1 || m->vals[v].w != 1 || m->vals[v].blk != 1))
        v = ol__graph_flatten(ctx, m, v);
    if (v >= 0)
        v = ol__graph_linear(ctx, m, "head", v, 3, 0);
    int rc = v < 0 ? v : ol__graph_finish(ctx, m, v);
    if (rc >= 0)
        rc = ol_model_enable_input_grad(ctx, m);
    if (rc < 0) {
        TU_FAIL("%s: build failed: %s", lc->label, ol_ctx_errmsg(ctx));
        ol__graph_free(m);
        free(m);
        return;
    }
    ol_paramset *ps = &m->ps;
    ol__rng r;
    ol__rng_seed(&r, 11, (uint64_t)(lc - cases), (uint64_t)blk);
    for (int i = 0; i < ps->n; i++) {
        const ol_tensor_desc *t = &ps->t[i];
        for (size_t j = 0; j < t->numel; j++) {
            double g = ol__rng_normal(&r);
            float val = t->kind == OL_KIND_NORM ? (strstr(t->name, ".weight") ? (float)(1.0 + 0.3 * g) : (float)(0.3 * g))
                                                : (float)(g / sqrt((double)t->fan_in));
            ps->params[t->offset + j] = val;
        }
    }
    for (int i = 0; i < ps->nb; i++)
        for (size_t j = 0; j < ps->b[i].numel; j++)
            ps->buffers[ps->b[i].offset + j] =
                strstr(ps->b[i].name, "running_var") ? (float)(0.5 + ol__rng_uniform(&r)) : (float)(0.3 * ol__rng_normal(&r));
    size_t nin = (size_t)lc->c * lc->h * lc->w * lc->n;
    float *x = malloc(nin * sizeof(float));
    int32_t y[8];
    for (size_t i = 0; i < nin; i++) {
        double u = ol__rng_normal(&r);
        if (lc->kinks == 1)
            u = (u < 0 ? -0.2 : 0.2) + u; /* |x| >= 0.2: no kink within the steps */
        if (lc->kinks == 2)
            u = ((double)ol__rng_below(&r, 1000000) - 500000.0) / 250000.0; /* distinct with high probability */
        x[i] = (float)u;
    }
    if (lc->kinks == 2) /* force distinct values: add a unique ramp */
        for (size_t i = 0; i < nin; i++)
            x[i] += (float)(0.05 * (double)i);
    for (int i = 0; i < lc->n; i++)
        y[i] = (int32_t)ol__rng_below(&r, 3);
    prob p = {ctx, m, x, y, lc->n, lc->train_bn};
    ol_paramset_zero_grads(ps);
    double l0 = loss(&p);
    ASSERT_OK(ol_model_backward(ctx, m), ctx);
    float *g = malloc(ps->numel * sizeof(float));
    memcpy(g, ps->grads, ps->numel * sizeof(float));
    float *gx = malloc(nin * sizeof(float));
    memcpy(gx, ol_model_input_grad(m), nin * sizeof(float));
    char label[128];
    snprintf(label, sizeof label, "%s [%s, block %d]", lc->label, ol_backend_name(be), blk);
    int checked = 0;
    double worst = 0.0;
    for (int i = 0; i < ps->n; i++) {
        const ol_tensor_desc *t = &ps->t[i];
        if (strncmp(t->name, "head.", 5) == 0 || strncmp(t->name, "pre.", 4) == 0)
            continue; /* helpers, checked by their own cases */
        checked += gc_check_values(loss, &p, ps->params + t->offset, g + t->offset, t->numel, 48, &r, l0, label,
                                   t->name, &worst);
    }
    checked += gc_check_values(loss, &p, x, gx, nin, 64, &r, l0, label, "input", &worst);
    printf("  %-26s %-6s block %2d: %3d coordinates, worst err/tol %.3f\n", lc->label, ol_backend_name(be), blk, checked,
           worst);
    free(g);
    free(gx);
    free(x);
    ol__graph_free(m);
    free(m);
}

int main(void)
{
    ol_ctx *ctx = ol_ctx_new(2);
    const ol_backend bes[2] = {OL_BACKEND_REF, OL_BACKEND_ONEDNN};
    const int blks[3] = {1, 8, 16};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int b = 0; b < 2; b++)
            for (int k = 0; k < 3; k++)
                run_case(ctx, &cases[c], bes[b], blks[k]);
    ol_ctx_free(ctx);
    return tu_finish("test_gradcheck_layers");
}
