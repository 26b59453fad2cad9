/* Causal multi-head self-attention core (llm.c's attention_forward/backward):
 * qkv [N][T][3C] holds the queries, keys and values of every position, C/NH
 * features per head; y [N][T][C]. For each (sample, head) and position t:
 *   a[t][t2] = softmax_{t2 <= t}(q_t . k_t2 / sqrt(hs)),  y_t = sum_{t2 <= t} a[t][t2] v_t2
 * Scores, softmax and the weighted sum fused, one query row at a time: the
 * probabilities never form a T x T matrix. Forward keeps each row's maximum
 * and 1/sum (2T floats per head); backward recomputes the row's scores and
 * gets the very probabilities forward used, then
 *   da = v . dy,  ds = a (da - sum_t2 a da) / sqrt(hs),  dq += ds k,  dk += ds q,  dv += a dy.
 * Memory grows with T per head, not T^2. OpenMP over sample x head: each task
 * owns its head's columns and its own row buffers, so there are no races and
 * no thread-count dependence. Dot products are SIMD reductions over the head's
 * features (a fixed order for a given build). */
#include <math.h>
#include <string.h>

#include "nn/graph.h"
#include "nn/vmath.h"

/* per (sample, head) in the workspace: row max, 1/sum, and two row buffers */
#define OL__ATT_WS_ROWS 4

static inline float dot(const float *a, const float *b, int n)
{
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* s[t2] = exp(q . k_t2 * scale - mx) for t2 <= t; returns their sum with mx set to the row's maximum */
static float row_scores(const float *q, const float *kbase, int C3, int hs, int t, float scale, float *s, float *mx)
{
    float m = -INFINITY;
    for (int t2 = 0; t2 <= t; t2++) {
        s[t2] = dot(q, kbase + (size_t)t2 * C3, hs) * scale;
        m = s[t2] > m ? s[t2] : m;
    }
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int t2 = 0; t2 <= t; t2++) {
        s[t2] = ol__expf(s[t2] - m);
        sum += s[t2];
    }
    *mx = m;
    return sum;
}

static int attention_forward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N, int train)
{
    (void)ctx;
    (void)train;
    const ol__value *xv = &m->vals[nd->in[0]], *yv = &m->vals[nd->out];
    const int T = yv->h, C = yv->c, NH = nd->heads, hs = C / NH, C3 = 3 * C;
    const float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)T * (size_t)T * (size_t)C >= 2 * OL__PAR_MIN)
    for (int task = 0; task < N * NH; task++) {
        const int n = task / NH, h = task % NH;
        const float *qkv = xv->data + (size_t)n * T * C3;
        float *y = yv->data + (size_t)n * T * C;
        float *mx = (float *)nd->ws + (size_t)task * OL__ATT_WS_ROWS * T, *rinv = mx + T, *a = rinv + T;
        for (int t = 0; t < T; t++) {
            const float inv = 1.0f / row_scores(qkv + (size_t)t * C3 + h * hs, qkv + C + h * hs, C3, hs, t, scale, a,
                                                &mx[t]);
            rinv[t] = inv;
            float *yo = y + (size_t)t * C + h * hs;
            for (int i = 0; i < hs; i++)
                yo[i] = 0.0f;
            for (int t2 = 0; t2 <= t; t2++) {
                const float *v = qkv + (size_t)t2 * C3 + 2 * C + h * hs, p = a[t2] * inv;
#pragma omp simd
                for (int i = 0; i < hs; i++)
                    yo[i] += p * v[i];
            }
        }
    }
    return OL_OK;
}

/* a[t2] = the probabilities of row t exactly as forward computed them */
static void row_probs(const float *q, const float *kbase, int C3, int hs, int t, float scale, float mx, float inv,
                      float *a)
{
    for (int t2 = 0; t2 <= t; t2++)
        a[t2] = dot(q, kbase + (size_t)t2 * C3, hs) * scale;
#pragma omp simd
    for (int t2 = 0; t2 <= t; t2++)
        a[t2] = ol__expf(a[t2] - mx) * inv;
}

static int attention_backward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N)
{
    (void)ctx;
    if (!nd->need_dx[0])
        return OL_OK;
    const ol__value *xv = &m->vals[nd->in[0]], *yv = &m->vals[nd->out];
    const int T = yv->h, C = yv->c, NH = nd->heads, hs = C / NH, C3 = 3 * C, acc = nd->acc_dx[0];
    const float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)T * (size_t)T * (size_t)C >= 2 * OL__PAR_MIN)
    for (int task = 0; task < N * NH; task++) {
        const int n = task / NH, h = task % NH;
        const float *qkv = xv->data + (size_t)n * T * C3, *dy = yv->grad + (size_t)n * T * C;
        float *dqkv = xv->grad + (size_t)n * T * C3;
        const float *mx = (const float *)nd->ws + (size_t)task * OL__ATT_WS_ROWS * T, *rinv = mx + T;
        float *a = (float *)nd->ws + (size_t)task * OL__ATT_WS_ROWS * T + 2 * (size_t)T, *da = a + T;
        if (!acc)
            for (int t = 0; t < T; t++)
                for (int part = 0; part < 3; part++)
                    memset(dqkv + (size_t)t * C3 + part * C + h * hs, 0, (size_t)hs * sizeof(float));
        for (int t = 0; t < T; t++) {
            const float *dyo = dy + (size_t)t * C + h * hs, *q = qkv + (size_t)t * C3 + h * hs;
            float *dq = dqkv + (size_t)t * C3 + h * hs;
            row_probs(q, qkv + C + h * hs, C3, hs, t, scale, mx[t], rinv[t], a);
            float sum = 0.0f;
            for (int t2 = 0; t2 <= t; t2++) { /* through y = a v */
                const float *v = qkv + (size_t)t2 * C3 + 2 * C + h * hs;
                float *dv = dqkv + (size_t)t2 * C3 + 2 * C + h * hs;
                const float p = a[t2];
#pragma omp simd
                for (int i = 0; i < hs; i++)
                    dv[i] += p * dyo[i];
                da[t2] = dot(v, dyo, hs);
                sum += p * da[t2];
            }
            for (int t2 = 0; t2 <= t; t2++) { /* through the softmax, then the scores */
                const float ds = a[t2] * (da[t2] - sum) * scale;
                const float *k = qkv + (size_t)t2 * C3 + C + h * hs;
                float *dk = dqkv + (size_t)t2 * C3 + C + h * hs;
#pragma omp simd
                for (int i = 0; i < hs; i++) {
                    dq[i] += ds * k[i];
                    dk[i] += ds * q[i];
                }
            }
        }
    }
    return OL_OK;
}

/* per (sample, head): row maxima, row 1/sums and two row buffers of T floats */
static size_t attention_workspace(const ol_model *m, const ol__node *nd, int N)
{
    const size_t T = (size_t)m->vals[nd->out].h;
    return (size_t)N * (size_t)nd->heads * OL__ATT_WS_ROWS * T * sizeof(float);
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
