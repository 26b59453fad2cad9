/* Causal multi-head self-attention core (llm.c's attention_forward/backward):
 * qkv [N][T][3C] holds the queries, keys and values of every position, C/NH
 * features per head; y [N][T][C]. For each (sample, head) and position t:
 *   a[t][t2] = softmax_{t2 <= t}(q_t . k_t2 / sqrt(hs)),  y_t = sum_{t2 <= t} a[t][t2] v_t2
 * Tiled: blocks of ATT_R query rows against the keys up to the block's last
 * row, through the head's keys and values transposed once per (sample, head)
 * (KT, VT: [hs][Tp], Tp = T rounded up to the tile), so that a loaded key
 * tile serves ATT_R rows and the scores of a tile stay in registers across
 * the head's features (the register blocking of a GEMM micro-kernel). The
 * probabilities never form a T x T matrix: forward keeps each row's maximum
 * and 1/sum (2T floats per head) and backward recomputes the block's scores,
 * getting the very probabilities forward used, then
 *   da = v . dy,  ds = a (da - sum_t2 a da) / sqrt(hs),  dq += ds k,  dk += ds q,  dv += a dy.
 * OpenMP over sample x head: each task owns its head's columns and its own
 * buffers, so there are no races and no thread-count dependence; summation
 * orders are fixed for a given build. */
#include <math.h>
#include <string.h>

#include "nn/graph.h"
#include "nn/vmath.h"

#define ATT_R 4  /* query rows per block */
#define ATT_J 16 /* keys per register tile (one AVX-512 vector) */
_Static_assert(ATT_R == 4, "rows_dot_t and accum_rows spell out ATT_R = 4 rows");

typedef struct {
    int T, Tp, C, C3, hs;
    float scale;
} att_dims;

static att_dims dims_of(const ol__value *yv, int NH)
{
    att_dims d = {.T = yv->h, .C = yv->c, .C3 = 3 * yv->c, .hs = yv->c / NH};
    d.Tp = (d.T + ATT_J - 1) / ATT_J * ATT_J;
    d.scale = 1.0f / sqrtf((float)d.hs);
    return d;
}

/* Per (sample, head) in the workspace: the row maxima and 1/sums [T] each
 * (kept from forward to backward), KT and VT [hs][Tp] (written by forward,
 * read by backward), two block buffers [ATT_R][Tp] (scores/probabilities and
 * their gradients) and three [ATT_R][hs] (the block's queries, output or
 * output gradients, and dq). */
static size_t task_floats(const att_dims *d)
{
    return 2 * (size_t)d->T + 2 * (size_t)d->hs * d->Tp + 2 * (size_t)ATT_R * d->Tp + 3 * (size_t)ATT_R * d->hs;
}

typedef struct {
    float *mx, *rinv, *kt, *vt, *s, *dp, *qb, *ob, *ob2;
} att_ws;

static att_ws ws_of(const ol__node *nd, const att_dims *d, int task)
{
    att_ws w;
    w.mx = (float *)nd->ws + (size_t)task * task_floats(d);
    w.rinv = w.mx + d->T;
    w.kt = w.rinv + d->T;
    w.vt = w.kt + (size_t)d->hs * d->Tp;
    w.s = w.vt + (size_t)d->hs * d->Tp;
    w.dp = w.s + (size_t)ATT_R * d->Tp;
    w.qb = w.dp + (size_t)ATT_R * d->Tp;
    w.ob = w.qb + (size_t)ATT_R * d->hs;
    w.ob2 = w.ob + (size_t)ATT_R * d->hs;
    return w;
}

/* rows t0 .. t0+nr-1 of src (stride ld) into out [ATT_R][hs], zero rows past nr */
static void pack_rows(const float *src, size_t ld, int nr, int hs, float *out)
{
    for (int r = 0; r < ATT_R; r++) {
        if (r < nr)
            memcpy(out + (size_t)r * hs, src + (size_t)r * ld, (size_t)hs * sizeof(float));
        else
            memset(out + (size_t)r * hs, 0, (size_t)hs * sizeof(float));
    }
}

/* out[i][t2] = src[t2][i] for the head's hs features, zero for T <= t2 < Tp */
static void transpose_head(const float *src, const att_dims *d, float *out)
{
    for (int i = 0; i < d->hs; i++) {
        float *o = out + (size_t)i * d->Tp;
        for (int t2 = 0; t2 < d->T; t2++)
            o[t2] = src[(size_t)t2 * d->C3 + i];
        for (int t2 = d->T; t2 < d->Tp; t2++)
            o[t2] = 0.0f;
    }
}

/* out[r][t2] = sum_i a_r[i] bt[i][t2] for t2 < L, rows a_r = a + r * lda (r < ATT_R) */
static void rows_by_t(const float *a, size_t lda, const float *bt, const att_dims *d, int L, float *out)
{
    for (int j0 = 0; j0 < L; j0 += ATT_J) {
        float acc[ATT_R][ATT_J];
        memset(acc, 0, sizeof acc);
        for (int i = 0; i < d->hs; i++) {
            const float *b = bt + (size_t)i * d->Tp + j0;
            for (int r = 0; r < ATT_R; r++) {
                const float ar = a[(size_t)r * lda + i];
#pragma omp simd
                for (int j = 0; j < ATT_J; j++)
                    acc[r][j] += ar * b[j];
            }
        }
        for (int r = 0; r < ATT_R; r++)
            memcpy(out + (size_t)r * d->Tp + j0, acc[r], ATT_J * sizeof(float));
    }
}

/* out_r[i] = sum_{t2 < L} p[r][t2] bt[i][t2], out rows at out + r * ldo */
static void rows_dot_t(const float *p, const float *bt, const att_dims *d, int L, float *out, size_t ldo)
{
    const float *p0 = p, *p1 = p + d->Tp, *p2 = p + 2 * (size_t)d->Tp, *p3 = p + 3 * (size_t)d->Tp;
    for (int i = 0; i < d->hs; i++) {
        const float *b = bt + (size_t)i * d->Tp;
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
        for (int t2 = 0; t2 < L; t2++) {
            s0 += p0[t2] * b[t2];
            s1 += p1[t2] * b[t2];
            s2 += p2[t2] * b[t2];
            s3 += p3[t2] * b[t2];
        }
        out[i] = s0, out[ldo + i] = s1, out[2 * ldo + i] = s2, out[3 * ldo + i] = s3;
    }
}

/* dst[t2][i] += sum_r w[r][t2] a_r[i] for t2 < L (rows of dst at stride C3) */
static void accum_rows(float *dst, const float *w, const float *a, size_t lda, const att_dims *d, int L)
{
    const float *a0 = a, *a1 = a + lda, *a2 = a + 2 * lda, *a3 = a + 3 * lda;
    for (int t2 = 0; t2 < L; t2++) {
        float *o = dst + (size_t)t2 * d->C3;
        const float w0 = w[t2], w1 = w[d->Tp + t2], w2 = w[2 * (size_t)d->Tp + t2], w3 = w[3 * (size_t)d->Tp + t2];
#pragma omp simd
        for (int i = 0; i < d->hs; i++)
            o[i] += w0 * a0[i] + w1 * a1[i] + w2 * a2[i] + w3 * a3[i];
    }
}

/* Scores of rows t0 + r (r < nr; the other rows of the block repeat the last
 * one and are zeroed) into probabilities, in place: the row's maximum and
 * 1/sum into mx, rinv (forward) or from them (backward: the same values). */
static void block_probs(float *s, const att_dims *d, int t0, int nr, int L, float *mx, float *rinv, int forward)
{
    for (int r = 0; r < ATT_R; r++) {
        float *row = s + (size_t)r * d->Tp;
        const int t = t0 + r;
        if (r >= nr) {
            memset(row, 0, (size_t)L * sizeof(float));
            continue;
        }
        for (int t2 = 0; t2 <= t; t2++)
            row[t2] *= d->scale;
        if (forward) {
            float m = -INFINITY;
            for (int t2 = 0; t2 <= t; t2++)
                m = row[t2] > m ? row[t2] : m;
            float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
            for (int t2 = 0; t2 <= t; t2++) {
                row[t2] = ol__expf(row[t2] - m);
                sum += row[t2];
            }
            mx[t] = m;
            rinv[t] = 1.0f / sum;
        } else {
            const float m = mx[t];
#pragma omp simd
            for (int t2 = 0; t2 <= t; t2++)
                row[t2] = ol__expf(row[t2] - m);
        }
        const float inv = rinv[t];
#pragma omp simd
        for (int t2 = 0; t2 <= t; t2++)
            row[t2] *= inv;
        for (int t2 = t + 1; t2 < L; t2++)
            row[t2] = 0.0f;
    }
}

static int attention_forward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N, int train)
{
    (void)ctx;
    (void)train;
    const ol__value *xv = &m->vals[nd->in[0]], *yv = &m->vals[nd->out];
    const int NH = nd->heads;
    const att_dims d = dims_of(yv, NH);
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)d.T * (size_t)d.T * (size_t)d.C >= 2 * OL__PAR_MIN)
    for (int task = 0; task < N * NH; task++) {
        const int n = task / NH, h = task % NH;
        const float *qkv = xv->data + (size_t)n * d.T * d.C3;
        float *y = yv->data + (size_t)n * d.T * d.C + h * d.hs;
        const att_ws w = ws_of(nd, &d, task);
        transpose_head(qkv + d.C + h * d.hs, &d, w.kt);
        transpose_head(qkv + 2 * d.C + h * d.hs, &d, w.vt);
        for (int t0 = 0; t0 < d.T; t0 += ATT_R) {
            const int nr = d.T - t0 < ATT_R ? d.T - t0 : ATT_R, L = t0 + nr;
            pack_rows(qkv + (size_t)t0 * d.C3 + h * d.hs, (size_t)d.C3, nr, d.hs, w.qb);
            rows_by_t(w.qb, (size_t)d.hs, w.kt, &d, L, w.s);
            block_probs(w.s, &d, t0, nr, L, w.mx, w.rinv, 1);
            rows_dot_t(w.s, w.vt, &d, L, w.ob, (size_t)d.hs);
            for (int r = 0; r < nr; r++)
                memcpy(y + (size_t)(t0 + r) * d.C, w.ob + (size_t)r * d.hs, (size_t)d.hs * sizeof(float));
        }
    }
    return OL_OK;
}

/* ds = a (da - sum_t2 a da) * scale in place of da, rows r < nr (the others are zero) */
static void block_dscores(const float *p, float *da, const att_dims *d, int t0, int nr, int L)
{
    for (int r = 0; r < ATT_R; r++) {
        const float *a = p + (size_t)r * d->Tp;
        float *g = da + (size_t)r * d->Tp;
        if (r >= nr) {
            memset(g, 0, (size_t)L * sizeof(float));
            continue;
        }
        const int t = t0 + r;
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int t2 = 0; t2 <= t; t2++)
            sum += a[t2] * g[t2];
#pragma omp simd
        for (int t2 = 0; t2 < L; t2++)
            g[t2] = t2 <= t ? a[t2] * (g[t2] - sum) * d->scale : 0.0f;
    }
}

static int attention_backward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N)
{
    (void)ctx;
    if (!nd->need_dx[0])
        return OL_OK;
    const ol__value *xv = &m->vals[nd->in[0]], *yv = &m->vals[nd->out];
    const int NH = nd->heads, acc = nd->acc_dx[0];
    const att_dims d = dims_of(yv, NH);
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)d.T * (size_t)d.T * (size_t)d.C >= 2 * OL__PAR_MIN)
    for (int task = 0; task < N * NH; task++) {
        const int n = task / NH, h = task % NH;
        const float *qkv = xv->data + (size_t)n * d.T * d.C3, *dy = yv->grad + (size_t)n * d.T * d.C + h * d.hs;
        float *dqkv = xv->grad + (size_t)n * d.T * d.C3 + h * d.hs;
        const att_ws w = ws_of(nd, &d, task); /* kt, vt: forward's */
        if (!acc)
            for (int t = 0; t < d.T; t++)
                for (int part = 0; part < 3; part++)
                    memset(dqkv + (size_t)t * d.C3 + part * d.C, 0, (size_t)d.hs * sizeof(float));
        for (int t0 = 0; t0 < d.T; t0 += ATT_R) {
            const int nr = d.T - t0 < ATT_R ? d.T - t0 : ATT_R, L = t0 + nr;
            pack_rows(qkv + (size_t)t0 * d.C3 + h * d.hs, (size_t)d.C3, nr, d.hs, w.qb);
            pack_rows(dy + (size_t)t0 * d.C, (size_t)d.C, nr, d.hs, w.ob);
            rows_by_t(w.qb, (size_t)d.hs, w.kt, &d, L, w.s); /* the probabilities forward used */
            block_probs(w.s, &d, t0, nr, L, w.mx, w.rinv, 0);
            rows_by_t(w.ob, (size_t)d.hs, w.vt, &d, L, w.dp); /* da = v . dy */
            block_dscores(w.s, w.dp, &d, t0, nr, L);
            rows_dot_t(w.dp, w.kt, &d, L, w.ob2, (size_t)d.hs); /* dq = ds k */
            for (int r = 0; r < nr; r++) {
                float *dq = dqkv + (size_t)(t0 + r) * d.C3;
                const float *g = w.ob2 + (size_t)r * d.hs;
#pragma omp simd
                for (int i = 0; i < d.hs; i++)
                    dq[i] += g[i];
            }
            accum_rows(dqkv + d.C, w.dp, w.qb, (size_t)d.hs, &d, L);    /* dk += ds q */
            accum_rows(dqkv + 2 * d.C, w.s, w.ob, (size_t)d.hs, &d, L); /* dv += a dy */
        }
    }
    return OL_OK;
}

static size_t attention_workspace(const ol_model *m, const ol__node *nd, int N)
{
    const att_dims d = dims_of(&m->vals[nd->out], nd->heads);
    return (size_t)N * (size_t)nd->heads * task_floats(&d) * sizeof(float);
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
