/* GELU, tanh approximation (GPT-2; PyTorch's approximate='tanh'):
 *   y = x/2 (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
 *   dy/dx = (1 + tanh u)/2 + x/2 (1 - tanh^2 u) sqrt(2/pi) (1 + 3 0.044715 x^2)
 * tanh is vmath.h's, which vectorises (glibc's tanhf is a call per element). */
#include "nn/graph.h"
#include "nn/vmath.h"

#define OL__GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define OL__GELU_A 0.044715f

static int gelu_forward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N, int train)
{
    (void)ctx;
    (void)train;
    const float *x = m->vals[nd->in[0]].data;
    float *y = m->vals[nd->out].data;
    const size_t n = (size_t)N * m->vals[nd->out].numel;
#pragma omp parallel for simd schedule(static) if (n >= OL__PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        const float v = x[i];
        y[i] = 0.5f * v * (1.0f + ol__tanhf(OL__GELU_K * (v + OL__GELU_A * v * v * v)));
    }
    return OL_OK;
}

static int gelu_backward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N)
{
    (void)ctx;
    if (!nd->need_dx[0])
        return OL_OK;
    const ol__value *xv = &m->vals[nd->in[0]], *yv = &m->vals[nd->out];
    const size_t n = (size_t)N * yv->numel;
    const int acc = nd->acc_dx[0];
    const float *x = xv->data, *dy = yv->grad;
    float *dx = xv->grad;
#pragma omp parallel for simd schedule(static) if (n >= OL__PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        const float v = x[i], th = ol__tanhf(OL__GELU_K * (v + OL__GELU_A * v * v * v));
        const float d = 0.5f * (1.0f + th) + 0.5f * v * (1.0f - th * th) * OL__GELU_K * (1.0f + 3.0f * OL__GELU_A * v * v);
        const float g = d * dy[i];
        dx[i] = acc ? dx[i] + g : g;
    }
    return OL_OK;
}

int ol__graph_gelu(ol_ctx *ctx, ol_model *m, int x)
{
    OL__TRY(ol__graph_check_value(ctx, m, x));
    const ol__value v = m->vals[x];
    int id = ol__graph_simple_node(ctx, m, OL__OP_GELU, x, -1, v.c, v.h, v.w, v.blk);
    OL__TRY(id);
    return m->nodes[id].out;
}

const ol__layer_ops ol__layer_gelu = {.name = "gelu", .forward = gelu_forward, .backward = gelu_backward};
