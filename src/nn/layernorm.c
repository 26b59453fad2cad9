/* LayerNorm over the C features of each row (PyTorch nn.LayerNorm(C), eps 1e-5):
 *   y = (x - mean) * rstd * weight + bias,  rstd = 1 / sqrt(var + eps)
 * with the biased variance. Statistics in double per row, kept in the
 * workspace for backward. Backward (llm.c's layernorm_backward):
 *   dnorm = weight * dy,  dx = rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm))
 * rows in parallel; dweight, dbias summed over rows in row order per column
 * block, so results do not depend on the thread count. */
#include <math.h>

#include "nn/graph.h"

#define OL__LN_EPS 1e-5
#define OL__LN_COLS 64

static int layernorm_forward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N, int train)
{
    (void)ctx;
    (void)train;
    const ol__value *xv = &m->vals[nd->in[0]], *yv = &m->vals[nd->out];
    const int C = xv->c;
    const int64_t R = (int64_t)N * ol__value_rows(xv);
    const float *w = ol__P(m, nd->p_w), *b = ol__P(m, nd->p_b);
    float *mean = nd->ws, *rstd = mean + R;
    const int par = (size_t)R * (size_t)C >= OL__PAR_MIN;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t r = 0; r < R; r++) {
        const float *x = xv->data + (size_t)r * (size_t)C;
        float *y = yv->data + (size_t)r * (size_t)C;
        double s = 0.0, ss = 0.0;
        for (int c = 0; c < C; c++)
            s += x[c];
        double mu = s / C;
        for (int c = 0; c < C; c++)
            ss += ((double)x[c] - mu) * ((double)x[c] - mu);
        float mf = (float)mu, rs = (float)(1.0 / sqrt(ss / C + OL__LN_EPS));
        for (int c = 0; c < C; c++)
            y[c] = (x[c] - mf) * rs * w[c] + b[c];
        mean[r] = mf;
        rstd[r] = rs;
    }
    return OL_OK;
}

static int layernorm_backward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N)
{
    (void)ctx;
    const ol__value *xv = &m->vals[nd->in[0]], *yv = &m->vals[nd->out];
    const int C = xv->c, nblk = (C + OL__LN_COLS - 1) / OL__LN_COLS;
    const int64_t R = (int64_t)N * ol__value_rows(xv);
    const float *w = ol__P(m, nd->p_w), *mean = nd->ws, *rstd = mean + R;
    float *dw = ol__G(m, nd->p_w), *db = ol__G(m, nd->p_b);
    const int par = (size_t)R * (size_t)C >= OL__PAR_MIN;
#pragma omp parallel for schedule(static) if (par)
    for (int blk = 0; blk < nblk; blk++) {
        const int c0 = blk * OL__LN_COLS, c1 = c0 + OL__LN_COLS < C ? c0 + OL__LN_COLS : C;
        double sw[OL__LN_COLS] = {0.0}, sb[OL__LN_COLS] = {0.0};
        for (int64_t r = 0; r < R; r++) {
            const float *x = xv->data + (size_t)r * (size_t)C, *dy = yv->grad + (size_t)r * (size_t)C;
            for (int c = c0; c < c1; c++) {
                sw[c - c0] += (double)((x[c] - mean[r]) * rstd[r]) * dy[c];
                sb[c - c0] += dy[c];
            }
        }
        for (int c = c0; c < c1; c++) {
            dw[c] += (float)sw[c - c0];
            db[c] += (float)sb[c - c0];
        }
    }
    if (!nd->need_dx[0])
        return OL_OK;
    const int acc = nd->acc_dx[0];
#pragma omp parallel for schedule(static) if (par)
    for (int64_t r = 0; r < R; r++) {
        const float *x = xv->data + (size_t)r * (size_t)C, *dy = yv->grad + (size_t)r * (size_t)C;
        float *dx = xv->grad + (size_t)r * (size_t)C;
        double dm = 0.0, dnm = 0.0;
        for (int c = 0; c < C; c++) {
            double nrm = (double)((x[c] - mean[r]) * rstd[r]), dn = (double)w[c] * dy[c];
            dm += dn;
            dnm += dn * nrm;
        }
        dm /= C;
        dnm /= C;
        for (int c = 0; c < C; c++) {
            double nrm = (double)((x[c] - mean[r]) * rstd[r]), dn = (double)w[c] * dy[c];
            float g = (float)((dn - dm - nrm * dnm) * rstd[r]);
            dx[c] = acc ? dx[c] + g : g;
        }
    }
    return OL_OK;
}

/* per row: mean and rstd */
static size_t layernorm_workspace(const ol_model *m, const ol__node *nd, int N)
{
    return (size_t)N * (size_t)ol__value_rows(&m->vals[nd->in[0]]) * 2 * sizeof(float);
}

int ol__graph_layernorm(ol_ctx *ctx, ol_model *m, const char *name, int x)
{
    OL__TRY(ol__graph_check_value(ctx, m, x));
    const ol__value v = m->vals[x];
    if (ol__value_rows(&v) == 0)
        return ol__err(ctx, OL_ESHAPE, "layernorm %s: input must be flat features or a sequence", name);
    int id = ol__graph_new_node(ctx, m, OL__OP_LAYERNORM, name, x, -1);
    OL__TRY(id);
    int64_t cs[1] = {v.c};
    int pw = ol__graph_add_param(ctx, m, name, "weight", OL_KIND_NORM, 1, cs);
    OL__TRY(pw);
    int pb = ol__graph_add_param(ctx, m, name, "bias", OL_KIND_NORM, 1, cs);
    OL__TRY(pb);
    int out = ol__graph_new_value(ctx, m, v.c, v.h, v.w, v.blk, id);
    OL__TRY(out);
    ol__node *nd = &m->nodes[id];
    nd->out = out;
    nd->p_w = pw;
    nd->p_b = pb;
    return out;
}

const ol__layer_ops ol__layer_layernorm = {.name = "layernorm",
                                           .forward = layernorm_forward,
                                           .backward = layernorm_backward,
                                           .workspace_bytes = layernorm_workspace};
