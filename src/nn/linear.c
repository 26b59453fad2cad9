/* Fully connected layer y = x W^T + b (W is [out][in] as in PyTorch), with an
 * optional fused ReLU, over flat features [N][in] or rows of a sequence
 * [N][T][in] (applied at every position). Matrix products go through the
 * context's GEMM backend. */
#include "nn/backend.h"
#include "nn/graph.h"

static int linear_forward(ol_ctx *ctx, ol_model *m, ol__node *nd, int Nsamples, int train)
{
    (void)train;
    const ol__value *xv = &m->vals[nd->in[0]], *yv = &m->vals[nd->out];
    const int N = Nsamples * ol__value_rows(xv); /* rows of the product */
    const int I = xv->c, O = yv->c, relu = nd->relu;
    const float *W = ol__P(m, nd->p_w), *b = ol__P(m, nd->p_b);
    ol__sgemm(ctx, 0, 1, N, O, I, 1.0f, xv->data, I, W, I, 0.0f, yv->data, O);
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)O >= 65536)
    for (int n = 0; n < N; n++) {
        float *y = yv->data + (size_t)n * O;
        for (int o = 0; o < O; o++) {
            float v = y[o] + b[o];
            y[o] = relu ? (v > 0.0f ? v : 0.0f) : v;
        }
    }
    return OL_OK;
}

/* With y (a fused ReLU's output): dz[n][o] = 0 where !(y > 0), in place.
 * Then db[o] += sum_n dz[n][o], summed in double in order n = 0..N-1 for each
 * o. One pass over dz, row by row over a block of columns (contiguous loads
 * that vectorise) instead of a masking pass and a walk down each column with
 * stride O; the per-column order, and so the result, is the same. Small layers
 * (the logits) run on one thread: a parallel region costs more than the work. */
#define OL__BIAS_BLOCK 64
static void mask_and_bias_grad(float *dz, const float *y, int N, int O, float *db)
{
    const int nblk = (O + OL__BIAS_BLOCK - 1) / OL__BIAS_BLOCK;
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)O >= 65536)
    for (int blk = 0; blk < nblk; blk++) {
        const int o0 = blk * OL__BIAS_BLOCK, w = O - o0 < OL__BIAS_BLOCK ? O - o0 : OL__BIAS_BLOCK;
        double s[OL__BIAS_BLOCK] = {0.0};
        for (int n = 0; n < N; n++) {
            float *row = dz + (size_t)n * O + o0;
            if (y) {
                const float *yr = y + (size_t)n * O + o0;
                for (int j = 0; j < w; j++) /* a masked store: vectorises, a select into the sum does not */
                    if (yr[j] == 0.0f)
                        row[j] = 0.0f;
            }
#pragma omp simd
            for (int j = 0; j < w; j++)
                s[j] += row[j];
        }
        for (int j = 0; j < w; j++)
            db[o0 + j] += (float)s[j];
    }
}

static int linear_backward(ol_ctx *ctx, ol_model *m, ol__node *nd, int Nsamples)
{
    const ol__value *xv = &m->vals[nd->in[0]], *yv = &m->vals[nd->out];
    const int N = Nsamples * ol__value_rows(xv);
    const int I = xv->c, O = yv->c;
    float *dz = yv->grad; /* this slot dies here, so the ReLU mask is applied in place */
    float *db = ol__G(m, nd->p_b);
    mask_and_bias_grad(dz, nd->relu ? yv->data : NULL, N, O, db);
    OL__TRY(ol__graph_sgemm_acc(ctx, m, nd->p_w, 1, 0, O, I, N, dz, O, xv->data, I));
    if (nd->need_dx[0])
        ol__sgemm(ctx, 0, 0, N, I, O, 1.0f, dz, O, ol__P(m, nd->p_w), I, nd->acc_dx[0] ? 1.0f : 0.0f, xv->grad, I);
    return OL_OK;
}

int ol__graph_linear(ol_ctx *ctx, ol_model *m, const char *name, int x, int out_features, int relu)
{
    OL__TRY(ol__graph_check_value(ctx, m, x));
    const ol__value v = m->vals[x];
    if (ol__value_rows(&v) == 0)
        return ol__err(ctx, OL_ESHAPE, "linear %s: input must be flat features or a sequence (flatten or pool first)",
                       name);
    if (out_features <= 0)
        return ol__err(ctx, OL_EINVAL, "linear %s: %d output features", name, out_features);
    int id = ol__graph_new_node(ctx, m, OL__OP_LINEAR, name, x, -1);
    OL__TRY(id);
    int64_t ws[2] = {out_features, v.c}, bs[1] = {out_features};
    int pw = ol__graph_add_param(ctx, m, name, "weight", OL_KIND_WEIGHT, 2, ws);
    OL__TRY(pw);
    int pb = ol__graph_add_param(ctx, m, name, "bias", OL_KIND_BIAS, 1, bs);
    OL__TRY(pb);
    int seq = v.h * v.w > 1; /* rows of a sequence stay rows */
    int out = ol__graph_new_value(ctx, m, out_features, v.h, v.w, seq ? out_features : 1, id);
    OL__TRY(out);
    ol__node *nd = &m->nodes[id];
    nd->out = out;
    nd->relu = relu;
    nd->p_w = pw;
    nd->p_b = pb;
    return out;
}

const ol__layer_ops ol__layer_linear = {
    .name = "linear",
    .forward = linear_forward,
    .backward = linear_backward,
};
