/* ReLU, add, shortcut option A, pooling and flatten, on any channel-blocked
 * layout (see graph.h). */
#include <float.h>
#include <string.h>

#include "nn/graph.h"

static size_t total(const ol__value *v, int N) { return (size_t)N * v->numel; }

void ol__relu_forward(ol_model *m, ol__node *nd, int N)
{
    const float *x = m->vals[nd->in[0]].data;
    float *y = m->vals[nd->out].data;
    size_t n = total(&m->vals[nd->out], N);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void ol__relu_backward(ol_model *m, ol__node *nd, int N)
{
    if (!nd->need_dx[0])
        return;
    const ol__value *yv = &m->vals[nd->out];
    float *dx = m->vals[nd->in[0]].grad;
    const float *dy = yv->grad, *y = yv->data;
    size_t n = total(yv, N);
    const int acc = nd->acc_dx[0];
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float g = y[i] > 0.0f ? dy[i] : 0.0f;
        dx[i] = acc ? dx[i] + g : g;
    }
}

void ol__add_forward(ol_model *m, ol__node *nd, int N)
{
    const float *a = m->vals[nd->in[0]].data, *b = m->vals[nd->in[1]].data;
    float *y = m->vals[nd->out].data;
    size_t n = total(&m->vals[nd->out], N);
    const int relu = nd->relu;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float v = a[i] + b[i];
        y[i] = relu ? (v > 0.0f ? v : 0.0f) : v;
    }
}

void ol__add_backward(ol_model *m, ol__node *nd, int N)
{
    const ol__value *yv = &m->vals[nd->out];
    const float *dy = yv->grad, *y = yv->data;
    size_t n = total(yv, N);
    const int relu = nd->relu;
    for (int j = 0; j < 2; j++) {
        if (!nd->need_dx[j])
            continue;
        float *dx = m->vals[nd->in[j]].grad;
        const int acc = nd->acc_dx[j];
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) {
            float g = (!relu || y[i] > 0.0f) ? dy[i] : 0.0f;
            dx[i] = acc ? dx[i] + g : g;
        }
    }
}

/* Option A (He et al. 2016, CIFAR): y = zero-pad channels (x[:, :, ::s, ::s]),
 * (cout - cin) / 2 zero channels in front, the rest behind. */
void ol__shortcut_a_forward(ol_model *m, ol__node *nd, int N)
{
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
}

void ol__shortcut_a_backward(ol_model *m, ol__node *nd, int N)
{
    if (!nd->need_dx[0])
        return;
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
}

/* Max pooling with implicit -inf padding (PyTorch); argmax saved per output. */
void ol__maxpool_forward(ol_model *m, ol__node *nd, int N)
{
    const ol__value *xv = &m->vals[nd->in[0]], *yv = &m->vals[nd->out];
    const int k = nd->k, s = nd->stride, p = nd->pad;
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
                    nd->argmax[yi] = arg;
                }
}

void ol__maxpool_backward(ol_model *m, ol__node *nd, int N)
{
    if (!nd->need_dx[0])
        return;
    const ol__value *xv = &m->vals[nd->in[0]], *yv = &m->vals[nd->out];
    const int acc = nd->acc_dx[0];
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *dx = xv->grad + (size_t)n * xv->numel;
        if (!acc)
            memset(dx, 0, xv->numel * sizeof(float));
        size_t base = (size_t)n * yv->numel;
        for (size_t i = 0; i < yv->numel; i++)
            dx[nd->argmax[base + i]] += yv->grad[base + i];
    }
}

/* Global average pooling to flat features [N][C]. */
void ol__gap_forward(ol_model *m, ol__node *nd, int N)
{
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
}

void ol__gap_backward(ol_model *m, ol__node *nd, int N)
{
    if (!nd->need_dx[0])
        return;
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
}

/* Flatten to PyTorch's (c, h, w) feature order. */
void ol__flatten_forward(ol_model *m, ol__node *nd, int N)
{
    const ol__value *xv = &m->vals[nd->in[0]], *yv = &m->vals[nd->out];
    if (xv->blk == 1) {
        memcpy(yv->data, xv->data, (size_t)N * xv->numel * sizeof(float));
        return;
    }
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < xv->c; c++)
            for (int h = 0; h < xv->h; h++)
                for (int w = 0; w < xv->w; w++)
                    yv->data[(size_t)n * yv->numel + ((size_t)c * xv->h + h) * xv->w + w] =
                        xv->data[ol__lidx(xv, n, c, h, w)];
}

void ol__flatten_backward(ol_model *m, ol__node *nd, int N)
{
    if (!nd->need_dx[0])
        return;
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
}
