/* 2-D convolution: dispatch and the portable reference (direct loops, double
 * accumulation) that every other backend is checked against. Weights are OIHW. */
#include <string.h>

#include "nn/graph.h"

void ol__conv_ref_fwd(const ol__value *x, const ol__value *y, const float *w, const float *b, int k, int stride,
                      int pad, int N, const float *xd, float *yd)
{
    const int C = x->c, O = y->c;
#pragma omp parallel for schedule(static) collapse(2)
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++)
            for (int oh = 0; oh < y->h; oh++)
                for (int ow = 0; ow < y->w; ow++) {
                    double acc = b ? b[o] : 0.0;
                    for (int c = 0; c < C; c++)
                        for (int kh = 0; kh < k; kh++) {
                            int ih = oh * stride - pad + kh;
                            if (ih < 0 || ih >= x->h)
                                continue;
                            for (int kw = 0; kw < k; kw++) {
                                int iw = ow * stride - pad + kw;
                                if (iw < 0 || iw >= x->w)
                                    continue;
                                acc += (double)xd[ol__lidx(x, n, c, ih, iw)] *
                                       (double)w[(((size_t)o * C + c) * k + kh) * k + kw];
                            }
                        }
                    yd[ol__lidx(y, n, o, oh, ow)] = (float)acc;
                }
}

void ol__conv_ref_bwd_data(const ol__value *x, const ol__value *y, const float *w, int k, int stride, int pad, int N,
                           const float *dy, float *dx, int acc)
{
    const int C = x->c, O = y->c;
#pragma omp parallel for schedule(static) collapse(2)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int ih = 0; ih < x->h; ih++)
                for (int iw = 0; iw < x->w; iw++) {
                    double s = 0.0;
                    for (int kh = 0; kh < k; kh++) {
                        int th = ih + pad - kh;
                        if (th < 0 || th % stride)
                            continue;
                        int oh = th / stride;
                        if (oh >= y->h)
                            continue;
                        for (int kw = 0; kw < k; kw++) {
                            int tw = iw + pad - kw;
                            if (tw < 0 || tw % stride)
                                continue;
                            int ow = tw / stride;
                            if (ow >= y->w)
                                continue;
                            for (int o = 0; o < O; o++)
                                s += (double)dy[ol__lidx(y, n, o, oh, ow)] *
                                     (double)w[(((size_t)o * C + c) * k + kh) * k + kw];
                        }
                    }
                    size_t i = ol__lidx(x, n, c, ih, iw);
                    dx[i] = acc ? dx[i] + (float)s : (float)s;
                }
}

void ol__conv_ref_bwd_weights(const ol__value *x, const ol__value *y, int k, int stride, int pad, int N,
                              const float *xd, const float *dy, float *dw, float *db)
{
    const int C = x->c, O = y->c;
#pragma omp parallel for schedule(static) collapse(2)
    for (int o = 0; o < O; o++)
        for (int c = 0; c < C; c++)
            for (int kh = 0; kh < k; kh++)
                for (int kw = 0; kw < k; kw++) {
                    double s = 0.0;
                    for (int n = 0; n < N; n++)
                        for (int oh = 0; oh < y->h; oh++) {
                            int ih = oh * stride - pad + kh;
                            if (ih < 0 || ih >= x->h)
                                continue;
                            for (int ow = 0; ow < y->w; ow++) {
                                int iw = ow * stride - pad + kw;
                                if (iw < 0 || iw >= x->w)
                                    continue;
                                s += (double)dy[ol__lidx(y, n, o, oh, ow)] * (double)xd[ol__lidx(x, n, c, ih, iw)];
                            }
                        }
                    dw[(((size_t)o * C + c) * k + kh) * k + kw] += (float)s;
                }
    if (db) {
#pragma omp parallel for schedule(static)
        for (int o = 0; o < O; o++) {
            double s = 0.0;
            for (int n = 0; n < N; n++)
                for (int oh = 0; oh < y->h; oh++)
                    for (int ow = 0; ow < y->w; ow++)
                        s += dy[ol__lidx(y, n, o, oh, ow)];
            db[o] += (float)s;
        }
    }
}

static int conv_forward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N, int train)
{
    (void)train;
#ifdef OL_HAVE_ONEDNN
    if (ctx->backend == OL_BACKEND_ONEDNN)
        return ol__conv_onednn_forward(ctx, m, nd, N);
#else
    (void)ctx;
#endif
    const ol__value *x = &m->vals[nd->in[0]], *y = &m->vals[nd->out];
    ol__conv_ref_fwd(x, y, ol__P(m, nd->p_w), nd->p_b >= 0 ? ol__P(m, nd->p_b) : NULL, nd->k, nd->stride, nd->pad, N,
                     x->data, y->data);
    return OL_OK;
}

static int conv_backward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N)
{
#ifdef OL_HAVE_ONEDNN
    if (ctx->backend == OL_BACKEND_ONEDNN)
        return ol__conv_onednn_backward(ctx, m, nd, N);
#else
    (void)ctx;
#endif
    const ol__value *x = &m->vals[nd->in[0]], *y = &m->vals[nd->out];
    ol__conv_ref_bwd_weights(x, y, nd->k, nd->stride, nd->pad, N, x->data, y->grad, ol__G(m, nd->p_w),
                             nd->p_b >= 0 ? ol__G(m, nd->p_b) : NULL);
    if (nd->need_dx[0])
        ol__conv_ref_bwd_data(x, y, ol__P(m, nd->p_w), nd->k, nd->stride, nd->pad, N, y->grad, x->grad,
                              nd->acc_dx[0]);
    return OL_OK;
}

static void conv_destroy(ol__node *nd)
{
#ifdef OL_HAVE_ONEDNN
    if (nd->impl)
        ol__conv_onednn_free(nd->impl);
#endif
    nd->impl = NULL;
}

int ol__graph_conv(ol_ctx *ctx, ol_model *m, const char *name, int x, int cout, int k, int stride, int pad, int bias)
{
    OL__TRY(ol__graph_check_value(ctx, m, x));
    if (k <= 0 || stride <= 0 || pad < 0 || cout <= 0)
        return ol__err(ctx, OL_EINVAL, "conv %s: invalid geometry k=%d stride=%d pad=%d cout=%d", name, k, stride, pad,
                       cout);
    int cin = m->vals[x].c, h = m->vals[x].h, w = m->vals[x].w;
    int oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
    if (h + 2 * pad < k || w + 2 * pad < k)
        return ol__err(ctx, OL_ESHAPE, "conv %s: %dx%d input is smaller than the %dx%d kernel", name, h, w, k, k);
    int id = ol__graph_new_node(ctx, m, OL__OP_CONV2D, name, x, -1);
    OL__TRY(id);
    int64_t wshape[4] = {cout, cin, k, k};
    int pw = ol__graph_add_param(ctx, m, name, "weight", OL_KIND_WEIGHT, 4, wshape);
    OL__TRY(pw);
    int pb = -1;
    if (bias) {
        int64_t bshape[1] = {cout};
        pb = ol__graph_add_param(ctx, m, name, "bias", OL_KIND_BIAS, 1, bshape);
        OL__TRY(pb);
    }
    int out = ol__graph_new_value(ctx, m, cout, oh, ow, ol__graph_channel_block(m), id);
    OL__TRY(out);
    ol__node *nd = &m->nodes[id];
    nd->out = out;
    nd->k = k;
    nd->stride = stride;
    nd->pad = pad;
    nd->p_w = pw;
    nd->p_b = pb;
    return out;
}

const ol__layer_ops ol__layer_conv2d = {
    .name = "conv2d",
    .forward = conv_forward,
    .backward = conv_backward,
    .destroy = conv_destroy,
};
