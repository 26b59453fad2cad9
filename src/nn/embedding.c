/* Token plus position embedding (GPT-2's wte + wpe):
 *   y[n][t][:] = wte[x[n][t]][:] + wpe[t][:]
 * x holds token ids as floats, T per sample; y is [N][T][C].
 *
 * Backward: each batch's share of a gradient row is summed from zero in
 * position order and added to the row once, so a process that accumulates
 * micro-batches gets the bits of ranks that each sum theirs from zero and
 * add the sums whole (--deterministic-reduce). The positions are sorted by
 * token (a stable radix sort, O(N T) with no O(vocab) pass), one thread sums
 * each distinct token, one each position: the same bits on any thread count.
 * wte is tied to the LM head, whose backward adds its product into the same
 * rows first: before any backward, the rows of this batch's tokens are saved
 * and zeroed, so the head's share and ours are summed apart from what the
 * rows held and added to it once. */
#include <math.h>
#include <string.h>

#include "nn/graph.h"

#define OL__EMB_COLS 64

/* The workspace at R = N*T positions of C features. */
typedef struct {
    int *ngroups;   /* distinct tokens of the batch */
    int32_t *tok;   /* [R] token id of each position */
    int32_t *order; /* [R] positions sorted by token, in position order within one */
    int32_t *tmp;   /* [R] the sort's second buffer */
    int32_t *start; /* [R + 1] where each distinct token's positions start in order */
    float *saved;   /* [R][C] the token rows of wte's gradient before this backward */
} emb_ws;

static size_t ints_up(size_t n) { return ol__align_up(n, 16); } /* 64-byte blocks */

static emb_ws emb_ws_at(void *ws, size_t R)
{
    int32_t *p = ws;
    emb_ws w;
    w.ngroups = (int *)p;
    w.tok = p + 16;
    w.order = w.tok + ints_up(R);
    w.tmp = w.order + ints_up(R);
    w.start = w.tmp + ints_up(R);
    w.saved = (float *)(w.start + ints_up(R + 1));
    return w;
}

static size_t embedding_workspace(const ol_model *m, const ol__node *nd, int N)
{
    const ol__value *yv = &m->vals[nd->out];
    const size_t R = (size_t)N * (size_t)yv->h;
    return (16 + 3 * ints_up(R) + ints_up(R + 1)) * sizeof(int32_t) + R * (size_t)yv->c * sizeof(float);
}

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

/* Sorts positions 0..R-1 by tok (ids below V), stably, by bytes from the
 * lowest; returns the buffer that holds the result (order or tmp). */
static int32_t *sort_by_token(const int32_t *tok, int32_t *order, int32_t *tmp, int64_t R, int64_t V)
{
    for (int64_t i = 0; i < R; i++)
        order[i] = (int32_t)i;
    int32_t *src = order, *dst = tmp;
    for (int shift = 0; shift == 0 || ((V - 1) >> shift) > 0; shift += 8) {
        int64_t at[257] = {0};
        for (int64_t i = 0; i < R; i++)
            at[((tok[src[i]] >> shift) & 255) + 1]++;
        for (int d = 0; d < 256; d++)
            at[d + 1] += at[d];
        for (int64_t i = 0; i < R; i++)
            dst[at[(tok[src[i]] >> shift) & 255]++] = src[i];
        int32_t *s = src;
        src = dst;
        dst = s;
    }
    return src;
}

/* Before any node's backward: group the positions by token, save the tokens'
 * rows of wte's gradient and zero them (the LM head then adds into zeros). */
static int embedding_backward_begin(ol_ctx *ctx, ol_model *m, ol__node *nd, int N)
{
    (void)ctx;
    const ol__value *xv = &m->vals[nd->in[0]], *yv = &m->vals[nd->out];
    const int C = yv->c;
    const int64_t R = (int64_t)N * yv->h, V = m->ps.t[nd->p_w].shape[0];
    emb_ws w = emb_ws_at(nd->ws, (size_t)R);
    for (int64_t i = 0; i < R; i++)
        w.tok[i] = (int32_t)xv->data[i]; /* ids checked by the forward */
    const int32_t *s = sort_by_token(w.tok, w.order, w.tmp, R, V);
    if (s != w.order)
        memcpy(w.order, s, (size_t)R * sizeof(int32_t));
    int ng = 0;
    for (int64_t j = 0; j < R; j++)
        if (j == 0 || w.tok[w.order[j]] != w.tok[w.order[j - 1]])
            w.start[ng++] = (int32_t)j;
    w.start[ng] = (int32_t)R;
    *w.ngroups = ng;
    float *dwte = ol__G(m, nd->p_w);
    for (int g = 0; g < ng; g++) {
        float *row = dwte + (size_t)w.tok[w.order[w.start[g]]] * (size_t)C;
        memcpy(w.saved + (size_t)g * (size_t)C, row, (size_t)C * sizeof(float));
        memset(row, 0, (size_t)C * sizeof(float));
    }
    return OL_OK;
}

static int embedding_backward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N)
{
    (void)ctx;
    const ol__value *xv = &m->vals[nd->in[0]], *yv = &m->vals[nd->out];
    const int T = yv->h, C = yv->c;
    const int64_t R = (int64_t)N * T;
    const emb_ws w = emb_ws_at(nd->ws, (size_t)R);
    const int ng = *w.ngroups, par = (size_t)R * (size_t)C >= OL__PAR_MIN;
    float *dwte = ol__G(m, nd->p_w), *dwpe = ol__G(m, nd->p_b);
    const float *dy = yv->grad;
    /* row = saved + (head's share + sum of the token's dy in position order) */
#pragma omp parallel for schedule(dynamic, 4) if (par)
    for (int g = 0; g < ng; g++) {
        const int32_t *pos = w.order + w.start[g], npos = w.start[g + 1] - w.start[g];
        float *row = dwte + (size_t)w.tok[pos[0]] * (size_t)C;
        const float *sv = w.saved + (size_t)g * (size_t)C;
        for (int c0 = 0; c0 < C; c0 += OL__EMB_COLS) {
            const int nc = C - c0 < OL__EMB_COLS ? C - c0 : OL__EMB_COLS;
            float acc[OL__EMB_COLS] = {0.0f};
            for (int32_t j = 0; j < npos; j++) {
                const float *d = dy + (size_t)pos[j] * (size_t)C + c0;
                for (int c = 0; c < nc; c++)
                    acc[c] += d[c];
            }
            for (int c = 0; c < nc; c++)
                row[c0 + c] = sv[c0 + c] + (row[c0 + c] + acc[c]);
        }
    }
    /* position t: the sum over samples in order, added once */
#pragma omp parallel for schedule(static) if (par)
    for (int t = 0; t < T; t++) {
        float *row = dwpe + (size_t)t * (size_t)C;
        for (int c0 = 0; c0 < C; c0 += OL__EMB_COLS) {
            const int nc = C - c0 < OL__EMB_COLS ? C - c0 : OL__EMB_COLS;
            float acc[OL__EMB_COLS] = {0.0f};
            for (int n = 0; n < N; n++) {
                const float *d = dy + ((size_t)n * (size_t)T + (size_t)t) * (size_t)C + c0;
                for (int c = 0; c < nc; c++)
                    acc[c] += d[c];
            }
            for (int c = 0; c < nc; c++)
                row[c0 + c] += acc[c];
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

const ol__layer_ops ol__layer_embedding = {.name = "embedding",
                                           .forward = embedding_forward,
                                           .backward = embedding_backward,
                                           .backward_begin = embedding_backward_begin,
                                           .workspace_bytes = embedding_workspace};
