/* Fully connected layer y = x W^T + b (W is [out][in] as in PyTorch), with an
 * optional fused ReLU. Matrix products go through the context's GEMM backend. */
#include "nn/backend.h"
#include "nn/graph.h"

void ol__linear_forward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N)
{
    const ol__value *xv = &m->vals[nd->in[0]], *yv = &m->vals[nd->out];
    const int I = xv->c, O = yv->c, relu = nd->relu;
    const float *W = ol__P(m, nd->p_w), *b = ol__P(m, nd->p_b);
    ol__sgemm(ctx, 0, 1, N, O, I, 1.0f, xv->data, I, W, I, 0.0f, yv->data, O);
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *y = yv->data + (size_t)n * O;
        for (int o = 0; o < O; o++) {
            float v = y[o] + b[o];
            y[o] = relu ? (v > 0.0f ? v : 0.0f) : v;
        }
    }
}

void ol__linear_backward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N)
{
    const ol__value *xv = &m->vals[nd->in[0]], *yv = &m->vals[nd->out];
    const int I = xv->c, O = yv->c;
    float *dz = yv->grad; /* this slot dies here, so the ReLU mask is applied in place */
    if (nd->relu) {
        const float *y = yv->data;
        size_t n = (size_t)N * O;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++)
            if (!(y[i] > 0.0f))
                dz[i] = 0.0f;
    }
    float *dW = ol__G(m, nd->p_w), *db = ol__G(m, nd->p_b);
    ol__sgemm(ctx, 1, 0, O, I, N, 1.0f, dz, O, xv->data, I, 1.0f, dW, I);
#pragma omp parallel for schedule(static)
    for (int o = 0; o < O; o++) {
        double s = 0.0;
        for (int n = 0; n < N; n++)
            s += dz[(size_t)n * O + o];
        db[o] += (float)s;
    }
    if (nd->need_dx[0])
        ol__sgemm(ctx, 0, 0, N, I, O, 1.0f, dz, O, ol__P(m, nd->p_w), I, nd->acc_dx[0] ? 1.0f : 0.0f, xv->grad, I);
}
