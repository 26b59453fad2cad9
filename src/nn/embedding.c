/* Token plus position embedding (GPT-2's wte + wpe):
 *   y[n][t][:] = wte[x[n][t]][:] + wpe[t][:]
 * x holds token ids as floats, T per sample; y is [N][T][C]. Backward adds
 * each row's gradient into the token's and the position's rows: split over
 * column blocks, rows in order within each, so no two threads write the same
 * element and the sums do not depend on the thread count. */
#include <math.h>
#include <string.h>

#include "nn/graph.h"

#define OL__EMB_COLS 64

static int embedding_forward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N, int train)
{
    (void)train;
    const ol__value *xv = &m->vals[nd->in[0]], *yv = &m->vals[nd->out];
    const int T = yv->h, C = yv->c;
    const int64_t V = m->ps.t[nd->p_w].shape[0];
    const float *wte = ol__P(m, nd->p_w), *wpe = ol__P(m, nd->p_b);
    for (int64_t i = 0; i < (int64_t)N * T; i++) {
        float tok = xv->data[i];
        if (!(tok >= 0.0f && tok < (float)V) || tok != floorf(tok))
            return ol__err(ctx, OL_ERANGE, "embedding %s: token %g at position %lld is not an id in [0, %lld)",
                           nd->name, (double)tok, (long long)(i % T), (long long)V);
    }
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)T * (size_t)C >= OL__PAR_MIN)
    for (int64_t i = 0; i < (int64_t)N * T; i++) {
        const float *te = wte + (size_t)xv->data[i] * (size_t)C, *pe = wpe + (size_t)(i % T) * (size_t)C;
        float *y = yv->data + (size_t)i * (size_t)C;
        for (int c = 0; c < C; c++)
            y[c] = te[c] + pe[c];
    }
    return OL_OK;
}

static int embedding_backward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N)
{
    (void)ctx;
    const ol__value *xv = &m->vals[nd->in[0]], *yv = &m->vals[nd->out];
    const int T = yv->h, C = yv->c, nblk = (C + OL__EMB_COLS - 1) / OL__EMB_COLS;
    float *dwte = ol__G(m, nd->p_w), *dwpe = ol__G(m, nd->p_b);
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)T * (size_t)C >= OL__PAR_MIN)
    for (int b = 0; b < nblk; b++) {
        const int c0 = b * OL__EMB_COLS, c1 = c0 + OL__EMB_COLS < C ? c0 + OL__EMB_COLS : C;
        for (int64_t i = 0; i < (int64_t)N * T; i++) {
            const float *dy = yv->grad + (size_t)i * (size_t)C;
            float *te = dwte + (size_t)xv->data[i] * (size_t)C, *pe = dwpe + (size_t)(i % T) * (size_t)C;
            for (int c = c0; c < c1; c++) {
                te[c] += dy[c];
                pe[c] += dy[c];
            }
        }
    }
    if (nd->need_dx[0] && !nd->acc_dx[0]) /* token ids: no gradient */
        memset(xv->grad, 0, (size_t)N * xv->numel * sizeof(float));
    return OL_OK;
}

int ol__graph_embedding(ol_ctx *ctx, ol_model *m, const char *wte, const char *wpe, int x, int vocab, int C)
{
    OL__TRY(ol__graph_check_value(ctx, m, x));
    const ol__value v = m->vals[x];
    if (v.h != 1 || v.w != 1)
        return ol__err(ctx, OL_ESHAPE, "embedding %s: input must be flat token ids", wte);
    if (vocab < 1 || C < 1)
        return ol__err(ctx, OL_EINVAL, "embedding %s: vocabulary %d and width %d must be positive", wte, vocab, C);
    const int T = v.c;
    int id = ol__graph_new_node(ctx, m, OL__OP_EMBEDDING, wte, x, -1);
    OL__TRY(id);
    int64_t ts[2] = {vocab, C}, ps[2] = {T, C};
    int pw = ol__graph_add_param(ctx, m, wte, "weight", OL_KIND_WEIGHT, 2, ts);
    OL__TRY(pw);
    int pb = ol__graph_add_param(ctx, m, wpe, "weight", OL_KIND_WEIGHT, 2, ps);
    OL__TRY(pb);
    int out = ol__graph_new_value(ctx, m, C, T, 1, C, id);
    OL__TRY(out);
    ol__node *nd = &m->nodes[id];
    nd->out = out;
    nd->p_w = pw;
    nd->p_b = pb;
    return out;
}

const ol__layer_ops ol__layer_embedding = {
    .name = "embedding", .forward = embedding_forward, .backward = embedding_backward};
