/* ReLU, add, shortcut option A, pooling and flatten, on any channel-blocked
 * layout (see graph.h). */
#include <float.h>
#include <stdint.h>
#include <string.h>

#include "nn/graph.h"

static size_t total(const ol__value *v, int N) { return (size_t)N * v->numel; }

static int relu_forward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N, int train)
{
    (void)ctx;
    (void)train;
    const float *x = m->vals[nd->in[0]].data;
    float *y = m->vals[nd->out].data;
    size_t n = total(&m->vals[nd->out], N);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
    return OL_OK;
}

static int relu_backward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N)
{
    (void)ctx;
    if (!nd->need_dx[0])
        return OL_OK;
    const ol__value *yv = &m->vals[nd->out];
    float *dx = m->vals[nd->in[0]].grad;
    const float *dy = yv->grad, *y = yv->data;
    size_t n = total(yv, N);
    const int acc = nd->acc_dx[0];
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float g = y[i] != 0.0f ? dy[i] : 0.0f; /* y >= 0, or a frozen pattern's pre-activation */
        dx[i] = acc ? dx[i] + g : g;
    }
    return OL_OK;
}

static int add_forward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N, int train)
{
    (void)ctx;
    (void)train;
    const float *a = m->vals[nd->in[0]].data, *b = m->vals[nd->in[1]].data;
    float *y = m->vals[nd->out].data;
    size_t n = total(&m->vals[nd->out], N);
    const int relu = nd->relu;
#pragma omp parallel for schedule(static) if (n >= OL__PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float v = a[i] + b[i];
        y[i] = relu ? (v > 0.0f ? v : 0.0f) : v;
    }
    return OL_OK;
}

static int add_backward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N)
{
    (void)ctx;
    const ol__value *yv = &m->vals[nd->out];
    const float *dy = yv->grad, *y = yv->data;
    size_t n = total(yv, N);
    const int relu = nd->relu;
    for (int j = 0; j < 2; j++) {
        if (!nd->need_dx[j])
            continue;
        float *dx = m->vals[nd->in[j]].grad;
        const int acc = nd->acc_dx[j];
#pragma omp parallel for schedule(static) if (n >= OL__PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            float g = (!relu || y[i] != 0.0f) ? dy[i] : 0.0f;
            dx[i] = acc ? dx[i] + g : g;
        }
    }
    return OL_OK;
}

/* Option A (He et al. 2016, CIFAR): y = zero-pad channels (x[:, :, ::s, ::s]),
 * (cout - cin) / 2 zero channels in front, the rest behind. */
static int shortcut_a_forward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N, int train)
{
    (void)ctx;
    (void)train;
    const ol__value *xv = &m->vals[nd->in[0]], *yv = &m->vals[nd->out];
    const int s = nd->stride, pad = (yv->c - xv->c) / 2;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < yv->c; c++) {
            int ci = c - pad;
            for (int h = 0; h < yv->h; h++)
                for (int w = 0; w < yv->w; w++)
                    yv->data[ol__lidx(yv, n, c, h, w)] =
                        (ci >= 0 && ci < xv->c) ? xv->data[ol__lidx(xv, n, ci, h * s, w * s)] : 0.0f;
        }
    return OL_OK;
}

static int shortcut_a_backward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N)
{
    (void)ctx;
    if (!nd->need_dx[0])
        return OL_OK;
    const ol__value *xv = &m->vals[nd->in[0]], *yv = &m->vals[nd->out];
    const int s = nd->stride, pad = (yv->c - xv->c) / 2, acc = nd->acc_dx[0];
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        if (!acc)
            memset(xv->grad + (size_t)n * xv->numel, 0, xv->numel * sizeof(float));
        for (int ci = 0; ci < xv->c; ci++)
            for (int h = 0; h < yv->h; h++)
                for (int w = 0; w < yv->w; w++)
                    xv->grad[ol__lidx(xv, n, ci, h * s, w * s)] += yv->grad[ol__lidx(yv, n, ci + pad, h, w)];
    }
    return OL_OK;
}

/* Max pooling with implicit -inf padding (PyTorch); argmax saved per output. */
static int maxpool_forward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N, int train)
{
    (void)ctx;
    (void)train;
    const ol__value *xv = &m->vals[nd->in[0]], *yv = &m->vals[nd->out];
    const int k = nd->k, s = nd->stride, p = nd->pad;
    int32_t *argmax = nd->ws;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < yv->c; c++)
            for (int oh = 0; oh < yv->h; oh++)
                for (int ow = 0; ow < yv->w; ow++) {
                    float best = -FLT_MAX;
                    int32_t arg = -1;
                    for (int kh = 0; kh < k; kh++) {
                        int ih = oh * s - p + kh;
                        if (ih < 0 || ih >= xv->h)
                            continue;
                        for (int kw = 0; kw < k; kw++) {
                            int iw = ow * s - p + kw;
                            if (iw < 0 || iw >= xv->w)
                                continue;
                            size_t xi = ol__lidx(xv, n, c, ih, iw);
                            float v = xv->data[xi];
                            /* first maximum wins, NaN propagates as in PyTorch */
                            if (v > best || arg < 0 || v != v) {
                                best = v;
                                arg = (int32_t)(xi - (size_t)n * xv->numel);
                                if (v != v)
                                    goto done;
                            }
                        }
                    }
                done:;
                    size_t yi = ol__lidx(yv, n, c, oh, ow);
                    yv->data[yi] = best;
                    argmax[yi] = arg;
                }
    return OL_OK;
}

static int maxpool_backward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N)
{
    (void)ctx;
    if (!nd->need_dx[0])
        return OL_OK;
    const ol__value *xv = &m->vals[nd->in[0]], *yv = &m->vals[nd->out];
    const int acc = nd->acc_dx[0];
    const int32_t *argmax = nd->ws;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *dx = xv->grad + (size_t)n * xv->numel;
        if (!acc)
            memset(dx, 0, xv->numel * sizeof(float));
        size_t base = (size_t)n * yv->numel;
        for (size_t i = 0; i < yv->numel; i++)
            dx[argmax[base + i]] += yv->grad[base + i];
    }
    return OL_OK;
}

/* Global average pooling to flat features [N][C]. */
static int gap_forward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N, int train)
{
    (void)ctx;
    (void)train;
    const ol__value *xv = &m->vals[nd->in[0]], *yv = &m->vals[nd->out];
    const int C = xv->c, B = xv->blk, CB = C / B, HW = xv->h * xv->w;
    const float inv = 1.0f / (float)HW;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < N * CB; t++) {
        int n = t / CB, cb = t % CB;
        const float *x = xv->data + (size_t)t * HW * B;
        float acc[64];
        for (int j = 0; j < B; j++)
            acc[j] = 0.0f;
        for (int i = 0; i < HW; i++)
            for (int j = 0; j < B; j++)
                acc[j] += x[(size_t)i * B + j];
        for (int j = 0; j < B; j++)
            yv->data[(size_t)n * C + cb * B + j] = acc[j] * inv;
    }
    return OL_OK;
}

static int gap_backward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N)
{
    (void)ctx;
    if (!nd->need_dx[0])
        return OL_OK;
    const ol__value *xv = &m->vals[nd->in[0]], *yv = &m->vals[nd->out];
    const int C = xv->c, B = xv->blk, CB = C / B, HW = xv->h * xv->w, acc = nd->acc_dx[0];
    const float inv = 1.0f / (float)HW;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < N * CB; t++) {
        int n = t / CB, cb = t % CB;
        float *dx = xv->grad + (size_t)t * HW * B;
        const float *dy = yv->grad + (size_t)n * C + cb * B;
        for (int i = 0; i < HW; i++)
            for (int j = 0; j < B; j++) {
                float g = dy[j] * inv;
                dx[(size_t)i * B + j] = acc ? dx[(size_t)i * B + j] + g : g;
            }
    }
    return OL_OK;
}

/* Flatten to PyTorch's (c, h, w) feature order. */
static int flatten_forward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N, int train)
{
    (void)ctx;
    (void)train;
    const ol__value *xv = &m->vals[nd->in[0]], *yv = &m->vals[nd->out];
    if (xv->blk == 1) {
        memcpy(yv->data, xv->data, (size_t)N * xv->numel * sizeof(float));
        return OL_OK;
    }
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < xv->c; c++)
            for (int h = 0; h < xv->h; h++)
                for (int w = 0; w < xv->w; w++)
                    yv->data[(size_t)n * yv->numel + ((size_t)c * xv->h + h) * xv->w + w] =
                        xv->data[ol__lidx(xv, n, c, h, w)];
    return OL_OK;
}

static int flatten_backward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N)
{
    (void)ctx;
    if (!nd->need_dx[0])
        return OL_OK;
    const ol__value *xv = &m->vals[nd->in[0]], *yv = &m->vals[nd->out];
    const int acc = nd->acc_dx[0];
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < xv->c; c++)
            for (int h = 0; h < xv->h; h++)
                for (int w = 0; w < xv->w; w++) {
                    size_t xi = ol__lidx(xv, n, c, h, w);
                    float g = yv->grad[(size_t)n * yv->numel + ((size_t)c * xv->h + h) * xv->w + w];
                    xv->grad[xi] = acc ? xv->grad[xi] + g : g;
                }
    return OL_OK;
}

int ol__graph_relu(ol_ctx *ctx, ol_model *m, int x)
{
    OL__TRY(ol__graph_check_value(ctx, m, x));
    const ol__value v = m->vals[x];
    int id = ol__graph_simple_node(ctx, m, OL__OP_RELU, x, -1, v.c, v.h, v.w, v.blk);
    OL__TRY(id);
    return m->nodes[id].out;
}

int ol__graph_add(ol_ctx *ctx, ol_model *m, int a, int b, int relu)
{
    OL__TRY(ol__graph_check_value(ctx, m, a));
    OL__TRY(ol__graph_check_value(ctx, m, b));
    const ol__value va = m->vals[a], vb = m->vals[b];
    if (va.c != vb.c || va.h != vb.h || va.w != vb.w || va.blk != vb.blk)
        return ol__err(ctx, OL_ESHAPE, "add: shapes %dx%dx%d and %dx%dx%d differ", va.c, va.h, va.w, vb.c, vb.h,
                       vb.w);
    int id = ol__graph_simple_node(ctx, m, OL__OP_ADD, a, b, va.c, va.h, va.w, va.blk);
    OL__TRY(id);
    m->nodes[id].relu = relu;
    return m->nodes[id].out;
}

int ol__graph_shortcut_a(ol_ctx *ctx, ol_model *m, int x, int cout, int stride)
{
    OL__TRY(ol__graph_check_value(ctx, m, x));
    const ol__value v = m->vals[x];
    if (cout < v.c || stride < 1)
        return ol__err(ctx, OL_EINVAL, "shortcut A: cannot map %d to %d channels", v.c, cout);
    int oh = (v.h - 1) / stride + 1, ow = (v.w - 1) / stride + 1;
    int id = ol__graph_simple_node(ctx, m, OL__OP_SHORTCUT_A, x, -1, cout, oh, ow, ol__graph_channel_block(m));
    OL__TRY(id);
    m->nodes[id].stride = stride;
    return m->nodes[id].out;
}

int ol__graph_maxpool(ol_ctx *ctx, ol_model *m, int x, int k, int stride, int pad)
{
    OL__TRY(ol__graph_check_value(ctx, m, x));
    const ol__value v = m->vals[x];
    if (k <= 0 || stride <= 0 || pad < 0 || 2 * pad > k)
        return ol__err(ctx, OL_EINVAL, "maxpool: invalid geometry k=%d stride=%d pad=%d", k, stride, pad);
    int oh = (v.h + 2 * pad - k) / stride + 1, ow = (v.w + 2 * pad - k) / stride + 1;
    int id = ol__graph_simple_node(ctx, m, OL__OP_MAXPOOL2D, x, -1, v.c, oh, ow, v.blk);
    OL__TRY(id);
    ol__node *nd = &m->nodes[id];
    nd->k = k;
    nd->stride = stride;
    nd->pad = pad;
    return nd->out;
}

int ol__graph_gap(ol_ctx *ctx, ol_model *m, int x)
{
    OL__TRY(ol__graph_check_value(ctx, m, x));
    if (m->vals[x].blk > 64) /* the kernel keeps one block of sums on the stack */
        return ol__err(ctx, OL_ESHAPE, "global average pooling of a sequence");
    int id = ol__graph_simple_node(ctx, m, OL__OP_AVGPOOL_GLOBAL, x, -1, m->vals[x].c, 1, 1, 1);
    OL__TRY(id);
    return m->nodes[id].out;
}

int ol__graph_flatten(ol_ctx *ctx, ol_model *m, int x)
{
    OL__TRY(ol__graph_check_value(ctx, m, x));
    const ol__value v = m->vals[x];
    int id = ol__graph_simple_node(ctx, m, OL__OP_FLATTEN, x, -1, (int)v.numel, 1, 1, 1);
    OL__TRY(id);
    return m->nodes[id].out;
}

static size_t maxpool_workspace(const ol_model *m, const ol__node *nd, int N)
{
    return m->vals[nd->out].numel * (size_t)N * sizeof(int32_t); /* argmax per output */
}

const ol__layer_ops ol__layer_relu = {.name = "relu", .forward = relu_forward, .backward = relu_backward};
const ol__layer_ops ol__layer_add = {.name = "add", .forward = add_forward, .backward = add_backward};
const ol__layer_ops ol__layer_shortcut_a = {
    .name = "shortcut-A", .forward = shortcut_a_forward, .backward = shortcut_a_backward};
const ol__layer_ops ol__layer_maxpool2d = {
    .name = "maxpool", .forward = maxpool_forward, .backward = maxpool_backward, .workspace_bytes = maxpool_workspace};
const ol__layer_ops ol__layer_avgpool = {.name = "avgpool", .forward = gap_forward, .backward = gap_backward};
const ol__layer_ops ol__layer_flatten = {.name = "flatten", .forward = flatten_forward, .backward = flatten_backward};
