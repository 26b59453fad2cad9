/* Causal multi-head self-attention core (llm.c's attention_forward/backward):
 * qkv [N][T][3C] holds the queries, keys and values of every position, C/NH
 * features per head; y [N][T][C]. For each (sample, head) and position t:
 *   a[t][t2] = softmax_{t2 <= t}(q_t . k_t2 / sqrt(hs)),  y_t = sum_{t2 <= t} a[t][t2] v_t2
 * Softmax fused with the scores; the probabilities a ([N][NH][T][T]) stay in
 * the workspace for backward. OpenMP over sample x head: each task owns its
 * head's columns, so there are no races and no thread-count dependence. */
#include <math.h>
#include <string.h>

#include "nn/graph.h"

static int attention_forward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N, int train)
{
    (void)ctx;
    (void)train;
    const ol__value *xv = &m->vals[nd->in[0]], *yv = &m->vals[nd->out];
    const int T = yv->h, C = yv->c, NH = nd->heads, hs = C / NH, C3 = 3 * C;
    const float scale = 1.0f / sqrtf((float)hs);
    float *att_all = nd->ws;
#pragma omp parallel for schedule(static)
    for (int task = 0; task < N * NH; task++) {
        const int n = task / NH, h = task % NH;
        const float *qkv = xv->data + (size_t)n * T * C3;
        float *y = yv->data + (size_t)n * T * C;
        for (int t = 0; t < T; t++) {
            const float *q = qkv + (size_t)t * C3 + h * hs;
            float *a = att_all + ((size_t)task * T + t) * T;
            float mx = -INFINITY;
            for (int t2 = 0; t2 <= t; t2++) {
                const float *k = qkv + (size_t)t2 * C3 + C + h * hs;
                float s = 0.0f;
                for (int i = 0; i < hs; i++)
                    s += q[i] * k[i];
                a[t2] = s * scale;
                mx = a[t2] > mx ? a[t2] : mx;
            }
            float sum = 0.0f;
            for (int t2 = 0; t2 <= t; t2++) {
                a[t2] = expf(a[t2] - mx);
                sum += a[t2];
            }
            const float inv = 1.0f / sum;
            for (int t2 = 0; t2 < T; t2++)
                a[t2] = t2 <= t ? a[t2] * inv : 0.0f;
            float *yo = y + (size_t)t * C + h * hs;
            for (int i = 0; i < hs; i++)
                yo[i] = 0.0f;
            for (int t2 = 0; t2 <= t; t2++) {
                const float *v = qkv + (size_t)t2 * C3 + 2 * C + h * hs;
                for (int i = 0; i < hs; i++)
                    yo[i] += a[t2] * v[i];
            }
        }
    }
    return OL_OK;
}

static int attention_backward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N)
{
    (void)ctx;
    if (!nd->need_dx[0])
        return OL_OK;
    const ol__value *xv = &m->vals[nd->in[0]], *yv = &m->vals[nd->out];
    const int T = yv->h, C = yv->c, NH = nd->heads, hs = C / NH, C3 = 3 * C, acc = nd->acc_dx[0];
    const float scale = 1.0f / sqrtf((float)hs);
    const float *att_all = nd->ws;
    float *datt_all = (float *)nd->ws + (size_t)N * NH * T * T;
#pragma omp parallel for schedule(static)
    for (int task = 0; task < N * NH; task++) {
        const int n = task / NH, h = task % NH;
        const float *qkv = xv->data + (size_t)n * T * C3, *dy = yv->grad + (size_t)n * T * C;
        float *dqkv = xv->grad + (size_t)n * T * C3, *da = datt_all + (size_t)task * T;
        if (!acc)
            for (int t = 0; t < T; t++)
                for (int part = 0; part < 3; part++)
                    memset(dqkv + (size_t)t * C3 + part * C + h * hs, 0, (size_t)hs * sizeof(float));
        for (int t = 0; t < T; t++) {
            const float *a = att_all + ((size_t)task * T + t) * T, *dyo = dy + (size_t)t * C + h * hs;
            const float *q = qkv + (size_t)t * C3 + h * hs;
            float *dq = dqkv + (size_t)t * C3 + h * hs;
            float dot = 0.0f;
            for (int t2 = 0; t2 <= t; t2++) { /* through y = a v */
                const float *v = qkv + (size_t)t2 * C3 + 2 * C + h * hs;
                float *dv = dqkv + (size_t)t2 * C3 + 2 * C + h * hs;
                float s = 0.0f;
                for (int i = 0; i < hs; i++) {
                    s += v[i] * dyo[i];
                    dv[i] += a[t2] * dyo[i];
                }
                da[t2] = s;
                dot += a[t2] * s;
            }
            for (int t2 = 0; t2 <= t; t2++) { /* through the softmax, then the scores */
                const float dpre = a[t2] * (da[t2] - dot) * scale;
                const float *k = qkv + (size_t)t2 * C3 + C + h * hs;
                float *dk = dqkv + (size_t)t2 * C3 + C + h * hs;
                for (int i = 0; i < hs; i++) {
                    dq[i] += dpre * k[i];
                    dk[i] += dpre * q[i];
                }
            }
        }
    }
    return OL_OK;
}

/* probabilities [N][NH][T][T] and one row of their gradient per (sample, head) */
static size_t attention_workspace(const ol_model *m, const ol__node *nd, int N)
{
    const size_t T = (size_t)m->vals[nd->out].h;
    return (size_t)N * (size_t)nd->heads * T * (T + 1) * sizeof(float);
}

int ol__graph_attention(ol_ctx *ctx, ol_model *m, int qkv, int heads)
{
    OL__TRY(ol__graph_check_value(ctx, m, qkv));
    const ol__value v = m->vals[qkv];
    if (v.blk != v.c || v.w != 1 || v.c % 3 != 0)
        return ol__err(ctx, OL_ESHAPE, "attention: input must be a sequence of 3C query, key and value features");
    const int C = v.c / 3;
    if (heads < 1 || C % heads != 0)
        return ol__err(ctx, OL_EINVAL, "attention: %d heads do not divide %d features", heads, C);
    int id = ol__graph_simple_node(ctx, m, OL__OP_ATTENTION, qkv, -1, C, v.h, 1, C);
    OL__TRY(id);
    m->nodes[id].heads = heads;
    return m->nodes[id].out;
}

const ol__layer_ops ol__layer_attention = {.name = "attention",
                                           .forward = attention_forward,
                                           .backward = attention_backward,
                                           .workspace_bytes = attention_workspace};
