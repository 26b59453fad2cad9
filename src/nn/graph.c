/* Graph building, memory planning and the forward/backward executor. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/backend.h"
#include "nn/graph.h"

/* The layer types, in ol__op order (graph.h's OL__LAYERS). */
static const ol__layer_ops *const layer_table[OL__OP_COUNT] = {
#define OL__X(e, ops) [OL__OP_##e] = &ops,
    OL__LAYERS(OL__X)
#undef OL__X
};

const ol__layer_ops *ol__layer_ops_of(ol__op op) { return layer_table[op]; }

static int grow(ol_ctx *ctx, void **arr, int *cap, int need, size_t elsz)
{
    if (need <= *cap)
        return OL_OK;
    int nc = *cap ? *cap * 2 : 32;
    while (nc < need)
        nc *= 2;
    void *na = realloc(*arr, (size_t)nc * elsz);
    if (!na)
        return ol__err(ctx, OL_ENOMEM, "out of memory building the network");
    memset((char *)na + (size_t)*cap * elsz, 0, (size_t)(nc - *cap) * elsz);
    *arr = na;
    *cap = nc;
    return OL_OK;
}

int ol__graph_new_value(ol_ctx *ctx, ol_model *m, int c, int h, int w, int blk, int producer)
{
    if (c <= 0 || h <= 0 || w <= 0)
        return ol__err(ctx, OL_ESHAPE, "layer output would be empty (%dx%dx%d): input too small for this model", c, h,
                       w);
    OL__TRY(grow(ctx, (void **)&m->vals, &m->vals_cap, m->nvals + 1, sizeof(ol__value)));
    ol__value *v = &m->vals[m->nvals];
    memset(v, 0, sizeof *v);
    v->c = c;
    v->h = h;
    v->w = w;
    v->blk = (blk > 1 && c % blk == 0 && (blk <= 64 || blk == c)) ? blk : 1; /* blk == c: rows */
    v->numel = (size_t)c * (size_t)h * (size_t)w;
    v->producer = producer;
    v->grad_slot = -1;
    return m->nvals++;
}

int ol__graph_new_node(ol_ctx *ctx, ol_model *m, ol__op op, const char *name, int in0, int in1)
{
    OL__TRY(grow(ctx, (void **)&m->nodes, &m->nodes_cap, m->nnodes + 1, sizeof(ol__node)));
    ol__node *nd = &m->nodes[m->nnodes];
    memset(nd, 0, sizeof *nd);
    nd->op = op;
    snprintf(nd->name, sizeof nd->name, "%s", name ? name : "");
    nd->in[0] = in0;
    nd->in[1] = in1;
    nd->out = -1;
    nd->p_w = nd->p_b = nd->b_mean = nd->b_var = -1;
    return m->nnodes++;
}

int ol__graph_check_value(ol_ctx *ctx, const ol_model *m, int v)
{
    if (v < 0 || v >= m->nvals)
        return ol__err(ctx, OL_EINVAL, "graph: invalid value index %d", v);
    return OL_OK;
}

int ol__graph_channel_block(const ol_model *m)
{
    int b = m->mp.channel_block;
    return b > 0 ? b : ol__native_channel_block();
}

int ol__graph_input(ol_ctx *ctx, ol_model *m, int c, int h, int w)
{
    if (m->nvals != 0)
        return ol__err(ctx, OL_ESTATE, "graph: the input must be the first value");
    return ol__graph_new_value(ctx, m, c, h, w, 1, -1);
}

int ol__graph_add_param(ol_ctx *ctx, ol_model *m, const char *prefix, const char *suffix, ol_kind kind, int ndim,
                        const int64_t *shape)
{
    char name[OL_NAME_MAX];
    if (snprintf(name, sizeof name, "%s.%s", prefix, suffix) >= (int)sizeof name)
        return ol__err(ctx, OL_EINVAL, "parameter name too long: %s.%s", prefix, suffix);
    return ol_paramset_add(ctx, &m->ps, name, kind, ndim, shape);
}

int ol__graph_add_buffer(ol_ctx *ctx, ol_model *m, const char *prefix, const char *suffix, int64_t n)
{
    char name[OL_NAME_MAX];
    if (snprintf(name, sizeof name, "%s.%s", prefix, suffix) >= (int)sizeof name)
        return ol__err(ctx, OL_EINVAL, "buffer name too long: %s.%s", prefix, suffix);
    return ol_paramset_add_buffer(ctx, &m->ps, name, 1, &n);
}

int ol__graph_simple_node(ol_ctx *ctx, ol_model *m, ol__op op, int a, int b, int c, int h, int w, int blk)
{
    int id = ol__graph_new_node(ctx, m, op, "", a, b);
    OL__TRY(id);
    int out = ol__graph_new_value(ctx, m, c, h, w, blk, id);
    OL__TRY(out);
    m->nodes[id].out = out;
    return id;
}

/* ---- memory planning ------------------------------------------------------ */

/* Decide which backward writer overwrites a gradient and which accumulate, and
 * assign gradient slots by liveness. Backward time t = nnodes-1-k for node k;
 * the logits' gradient is born at t = -1 (the loss). */
static int plan_grads(ol_ctx *ctx, ol_model *m, int **slot_of_out, int *nslots_out)
{
    int nv = m->nvals, nn = m->nnodes;
    int *first_writer = malloc((size_t)nv * sizeof(int)); /* largest consumer node index */
    int *seen = calloc((size_t)nv, sizeof(int));
    if (!first_writer || !seen) {
        free(first_writer);
        free(seen);
        return ol__err(ctx, OL_ENOMEM, "out of memory planning the network");
    }
    for (int v = 0; v < nv; v++)
        first_writer[v] = -1;
    for (int k = nn - 1; k >= 0; k--) {
        ol__node *nd = &m->nodes[k];
        for (int j = 0; j < 2; j++) {
            int v = nd->in[j];
            if (v < 0)
                continue;
            nd->need_dx[j] = v != 0 || m->input_grad; /* the input's gradient only on request */
            nd->acc_dx[j] = seen[v];
            if (!seen[v])
                first_writer[v] = k;
            seen[v] = 1;
        }
    }
    /* slots: greedy interval assignment in order of birth */
    int *slot_of = malloc((size_t)nv * sizeof(int));
    int *slot_free_after = malloc((size_t)nv * sizeof(int)); /* death time of the current occupant */
    size_t *slot_cap = calloc((size_t)nv, sizeof(size_t));
    int nslots = 0;
    if (!slot_of || !slot_free_after || !slot_cap) {
        free(first_writer);
        free(seen);
        free(slot_of);
        free(slot_free_after);
        free(slot_cap);
        return ol__err(ctx, OL_ENOMEM, "out of memory planning the network");
    }
    /* values in birth order: logits first, then by decreasing first writer */
    for (int v = 0; v < nv; v++)
        slot_of[v] = -1;
    for (int t = -1; t < nn; t++) {
        for (int v = m->input_grad ? 0 : 1; v < nv; v++) {
            int birth = v == m->logits ? -1 : (first_writer[v] >= 0 ? nn - 1 - first_writer[v] : -2);
            if (birth != t)
                continue;
            int death = nn - 1 - m->vals[v].producer;
            size_t need = m->vals[v].numel;
            int best = -1;
            for (int s = 0; s < nslots; s++) {
                if (slot_free_after[s] >= birth)
                    continue;
                if (best < 0)
                    best = s;
                else if (slot_cap[s] >= need && (slot_cap[best] < need || slot_cap[s] < slot_cap[best]))
                    best = s;
                else if (slot_cap[best] < need && slot_cap[s] > slot_cap[best])
                    best = s;
            }
            if (best < 0)
                best = nslots++;
            if (slot_cap[best] < need)
                slot_cap[best] = need;
            slot_free_after[best] = death;
            slot_of[v] = best;
        }
    }
    for (int v = 0; v < nv; v++)
        m->vals[v].grad_slot = slot_of[v];
    free(first_writer);
    free(seen);
    free(slot_free_after);
    free(slot_cap);
    *slot_of_out = slot_of;
    *nslots_out = nslots;
    return OL_OK;
}

typedef struct {
    size_t act, grad; /* floats in the activation and activation-gradient arenas */
    size_t ws;        /* bytes of the nodes' workspaces */
    int *slot_of;     /* [nvals] gradient slot of each value, -1: none */
    size_t *slot_off; /* [nslots] offset of each slot in the gradient arena, in floats */
} mem_plan;

static void plan_free(mem_plan *p)
{
    free(p->slot_of);
    free(p->slot_off);
}

static size_t node_ws_bytes(const ol_model *m, const ol__node *nd, int n)
{
    const ol__layer_ops *ops = ol__layer_ops_of(nd->op);
    return ops->workspace_bytes ? ol__align_up(ops->workspace_bytes(m, nd, n), 64) : 0;
}

/* Arena sizes at batch n, from the shapes alone. */
static int plan_memory(ol_ctx *ctx, ol_model *m, int n, mem_plan *p)
{
    memset(p, 0, sizeof *p);
    int nslots = 0;
    OL__TRY(plan_grads(ctx, m, &p->slot_of, &nslots));
    for (int v = 0; v < m->nvals; v++)
        p->act += ol__align_up(m->vals[v].numel * (size_t)n, OL__ALIGN_FLOATS);
    size_t *slot_cap = calloc((size_t)nslots + 1, sizeof(size_t));
    p->slot_off = calloc((size_t)nslots + 1, sizeof(size_t));
    if (!slot_cap || !p->slot_off) {
        free(slot_cap);
        plan_free(p);
        return ol__err(ctx, OL_ENOMEM, "out of memory planning the network");
    }
    for (int v = 0; v < m->nvals; v++)
        if (p->slot_of[v] >= 0 && slot_cap[p->slot_of[v]] < m->vals[v].numel * (size_t)n)
            slot_cap[p->slot_of[v]] = m->vals[v].numel * (size_t)n;
    for (int s = 0; s < nslots; s++) {
        p->slot_off[s] = p->grad;
        p->grad += ol__align_up(slot_cap[s], OL__ALIGN_FLOATS);
    }
    free(slot_cap);
    for (int k = 0; k < m->nnodes; k++)
        p->ws += node_ws_bytes(m, &m->nodes[k], n);
    return OL_OK;
}

static size_t loss_bytes(const ol_model *m, int n)
{
    const size_t rows = (size_t)n * (size_t)(m->out_rows > 0 ? m->out_rows : 1);
    return rows * (size_t)m->num_classes * sizeof(float) + rows * sizeof(double);
}

int ol__graph_plan_bytes(ol_ctx *ctx, ol_model *m, int n, size_t *act, size_t *grad, size_t *ws, size_t *loss)
{
    if (n <= 0)
        return ol__err(ctx, OL_EINVAL, "batch size must be > 0, got %d", n);
    mem_plan p;
    OL__TRY(plan_memory(ctx, m, n, &p));
    *act = p.act * sizeof(float);
    *grad = p.grad * sizeof(float);
    *ws = p.ws;
    *loss = loss_bytes(m, n);
    plan_free(&p);
    return OL_OK;
}

static void free_arenas(ol_model *m)
{
    ol__free(m->act_arena);
    ol__free(m->grad_arena);
    ol__free(m->ws_arena);
    ol__free(m->probs);
    ol__free(m->sample_loss);
    m->act_arena = m->grad_arena = m->probs = NULL;
    m->sample_loss = NULL;
    m->ws_arena = NULL;
    for (int k = 0; k < m->nnodes; k++)
        m->nodes[k].ws = NULL;
}

int ol_model_reserve(ol_ctx *ctx, ol_model *m, int n)
{
    if (n <= 0)
        return ol__err(ctx, OL_EINVAL, "batch size must be > 0, got %d", n);
    if (n <= m->max_batch && m->act_arena)
        return OL_OK;
    if (n < m->max_batch)
        n = m->max_batch;
    free_arenas(m);
    mem_plan p;
    OL__TRY(plan_memory(ctx, m, n, &p));
    m->act_bytes = p.act * sizeof(float);
    m->grad_bytes = p.grad * sizeof(float);
    m->ws_bytes = p.ws;
    m->act_arena = ol__alloc(m->act_bytes);
    m->grad_arena = ol__alloc(m->grad_bytes);
    m->ws_arena = ol__alloc(m->ws_bytes ? m->ws_bytes : 64);
    const size_t rows = (size_t)n * (size_t)(m->out_rows > 0 ? m->out_rows : 1);
    m->probs = ol__alloc(rows * (size_t)m->num_classes * sizeof(float));
    m->sample_loss = ol__alloc(rows * sizeof(double));
    int ok = m->act_arena && m->grad_arena && m->ws_arena && m->probs && m->sample_loss;
    size_t off = 0, woff = 0;
    for (int v = 0; ok && v < m->nvals; v++) {
        m->vals[v].data = m->act_arena + off;
        off += ol__align_up(m->vals[v].numel * (size_t)n, OL__ALIGN_FLOATS);
        m->vals[v].grad = p.slot_of[v] >= 0 ? m->grad_arena + p.slot_off[p.slot_of[v]] : NULL;
    }
    for (int k = 0; ok && k < m->nnodes; k++) {
        size_t b = node_ws_bytes(m, &m->nodes[k], n);
        m->nodes[k].ws = b ? m->ws_arena + woff : NULL;
        woff += b;
    }
    plan_free(&p);
    if (!ok) {
        free_arenas(m);
        m->max_batch = 0;
        return ol__err(ctx, OL_ENOMEM, "out of memory: activations for batch %d need %.1f MB", n,
                       (double)(m->act_bytes + m->grad_bytes + m->ws_bytes) / 1e6);
    }
    m->max_batch = n;
    return OL_OK;
}

int ol__graph_set_output(ol_ctx *ctx, ol_model *m, int logits)
{
    OL__TRY(ol__graph_check_value(ctx, m, logits));
    const ol__value *lv = &m->vals[logits];
    if (ol__value_rows(lv) == 0)
        return ol__err(ctx, OL_ESHAPE, "network output must be flat logits or a sequence of logits");
    m->logits = logits;
    m->num_classes = lv->c;
    m->out_rows = ol__value_rows(lv);
    return OL_OK;
}

/* After node k's backward, the gradients at offsets >= final_from are final:
 * the lowest offset among the parameters whose first user (in forward order)
 * is k or later. A tied weight is final only after its first user's backward. */
static int set_final_from(ol_ctx *ctx, ol_model *m)
{
    int *first = malloc(((size_t)m->ps.n + 1) * sizeof(int));
    if (!first)
        return ol__err(ctx, OL_ENOMEM, "out of memory planning the network");
    for (int i = 0; i < m->ps.n; i++)
        first[i] = m->nnodes;
    for (int k = m->nnodes - 1; k >= 0; k--) {
        const ol__node *nd = &m->nodes[k];
        if (nd->p_w >= 0)
            first[nd->p_w] = k;
        if (nd->p_b >= 0)
            first[nd->p_b] = k;
    }
    size_t lowest = m->ps.numel;
    for (int k = m->nnodes - 1; k >= 0; k--) {
        ol__node *nd = &m->nodes[k];
        if (nd->p_w >= 0 && first[nd->p_w] == k && m->ps.t[nd->p_w].offset < lowest)
            lowest = m->ps.t[nd->p_w].offset;
        if (nd->p_b >= 0 && first[nd->p_b] == k && m->ps.t[nd->p_b].offset < lowest)
            lowest = m->ps.t[nd->p_b].offset;
        nd->final_from = lowest;
    }
    free(first);
    return OL_OK;
}

int ol__graph_finish(ol_ctx *ctx, ol_model *m, int logits)
{
    OL__TRY(ol__graph_set_output(ctx, m, logits));
    OL__TRY(ol_paramset_finalize(ctx, &m->ps));
    OL__TRY(set_final_from(ctx, m));
    for (int k = 0; k < m->nnodes; k++) {
        const ol__layer_ops *ops = ol__layer_ops_of(m->nodes[k].op);
        if (ops->setup)
            OL__TRY(ops->setup(ctx, m, &m->nodes[k]));
    }
    int mb = m->mp.max_batch > 0 ? m->mp.max_batch : 1;
    m->max_batch = 0;
    return ol_model_reserve(ctx, m, mb);
}

int ol__graph_scratch(ol_ctx *ctx, ol_model *m, size_t bytes, void **out)
{
    if (bytes > m->scratch_cap) {
        void *p = ol__alloc(bytes);
        if (!p)
            return ol__err(ctx, OL_ENOMEM, "out of memory for %zu bytes of scratch", bytes);
        ol__free(m->scratch);
        m->scratch = p;
        m->scratch_cap = bytes;
    }
    *out = m->scratch;
    return OL_OK;
}

/* Bounds the temporary of ol__graph_sgemm_acc: 4 MB, a few chunks for the largest layers. */
#define OL__ACC_CHUNK_FLOATS ((int64_t)1 << 20)

int ol__graph_sgemm_acc(ol_ctx *ctx, ol_model *m, int param, int transa, int transb, int64_t M, int64_t N,
                        int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb)
{
    float *C = ol__G(m, param);
    const int64_t ldc = N;
    if (M <= 0 || N <= 0)
        return OL_OK;
    if (param < m->grad_zero_cap && m->grad_zero[param]) {
        /* onto zeros, beta 1 gives the bits of a product from zero: no extra pass */
        m->grad_zero[param] = 0;
        ol__sgemm(ctx, transa, transb, M, N, K, 1.0f, A, lda, B, ldb, 1.0f, C, ldc);
        return OL_OK;
    }
    const int64_t rows = N >= OL__ACC_CHUNK_FLOATS ? 1 : (M < OL__ACC_CHUNK_FLOATS / N ? M : OL__ACC_CHUNK_FLOATS / N);
    float *t;
    OL__TRY(ol__graph_tmp(ctx, m, (size_t)(rows * N), &t));
    for (int64_t r0 = 0; r0 < M; r0 += rows) {
        const int64_t r = M - r0 < rows ? M - r0 : rows;
        /* op(A)'s rows r0.. are A's columns when A is transposed */
        ol__sgemm(ctx, transa, transb, r, N, K, 1.0f, transa ? A + r0 : A + r0 * lda, lda, B, ldb, 0.0f, t, N);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < r; i++) {
            float *c = C + (r0 + i) * ldc;
            const float *ti = t + i * N;
#pragma omp simd
            for (int64_t j = 0; j < N; j++)
                c[j] += ti[j];
        }
    }
    return OL_OK;
}

int ol__graph_tmp(ol_ctx *ctx, ol_model *m, size_t floats, float **out)
{
    if (floats > m->tmp_cap) {
        float *p = ol__alloc(floats * sizeof(float));
        if (!p)
            return ol__err(ctx, OL_ENOMEM, "out of memory for %zu floats of temporary storage", floats);
        ol__free(m->tmp);
        m->tmp = p;
        m->tmp_cap = floats;
    }
    *out = m->tmp;
    return OL_OK;
}

void ol__graph_free(ol_model *m)
{
    if (!m)
        return;
    for (int k = 0; k < m->nnodes; k++) {
        const ol__layer_ops *ops = ol__layer_ops_of(m->nodes[k].op);
        if (ops->destroy)
            ops->destroy(&m->nodes[k]);
    }
    free_arenas(m);
    ol__free(m->scratch);
    ol__free(m->tmp);
    free(m->grad_zero);
    free(m->nodes);
    free(m->vals);
    ol_paramset_free(&m->ps);
}

/* ---- execution ------------------------------------------------------------ */

void ol__graph_load_input(ol_model *m, const float *x, int N)
{
    ol__value *v = &m->vals[0];
    memcpy(v->data, x, (size_t)N * v->numel * sizeof(float));
}

size_t ol_model_relu_units(const ol_model *m)
{
    size_t s = 0;
    for (int k = 0; k < m->nnodes; k++)
        if (m->nodes[k].op == OL__OP_RELU || m->nodes[k].relu)
            s += m->vals[m->nodes[k].out].numel;
    return s;
}

void ol_model_set_relu_pattern(ol_model *m, ol_relu_mode mode, unsigned char *pattern)
{
    m->relu_mode = pattern ? (int)mode : OL_RELU_FREE;
    m->relu_pat = pattern;
}

/* A node ending in a ReLU, with the pattern recorded (y > 0) or applied: the
 * node runs without its ReLU, then y = pattern ? y : 0. The backward passes
 * treat y != 0 as active, so they follow the pattern too. */
static int relu_node_pattern(ol_ctx *ctx, ol_model *m, ol__node *nd, int n, int train, unsigned char *pat)
{
    const size_t cnt = (size_t)n * m->vals[nd->out].numel;
    float *y = m->vals[nd->out].data;
    if (m->relu_mode == OL_RELU_RECORD) {
        OL__TRY(ol__layer_ops_of(nd->op)->forward(ctx, m, nd, n, train));
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < cnt; i++)
            pat[i] = y[i] > 0.0f;
        return OL_OK;
    }
    if (nd->op == OL__OP_RELU) {
        const float *x = m->vals[nd->in[0]].data;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < cnt; i++)
            y[i] = pat[i] ? x[i] : 0.0f;
        return OL_OK;
    }
    nd->relu = 0;
    const int rc = ol__layer_ops_of(nd->op)->forward(ctx, m, nd, n, train);
    nd->relu = 1;
    OL__TRY(rc);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < cnt; i++)
        y[i] = pat[i] ? y[i] : 0.0f;
    return OL_OK;
}

int ol_model_forward(ol_ctx *ctx, ol_model *m, const float *x, int n, int train)
{
    if (!x)
        return ol__err(ctx, OL_EINVAL, "forward: no input");
    OL__TRY(ol_model_reserve(ctx, m, n));
    ol__graph_load_input(m, x, n);
    unsigned char *pat = m->relu_pat;
    for (int k = 0; k < m->nnodes; k++) {
        ol__node *nd = &m->nodes[k];
        const int has_relu = nd->op == OL__OP_RELU || nd->relu;
        if (has_relu && m->relu_mode != OL_RELU_FREE) {
            OL__TRY(relu_node_pattern(ctx, m, nd, n, train, pat));
            pat += (size_t)n * m->vals[nd->out].numel;
            continue;
        }
        OL__TRY(ol__layer_ops_of(nd->op)->forward(ctx, m, nd, n, train));
    }
    m->cur_batch = n;
    m->train_bn = train;
    return OL_OK;
}

const float *ol_model_logits(const ol_model *m) { return m->vals[m->logits].data; }

int ol_model_enable_input_grad(ol_ctx *ctx, ol_model *m)
{
    if (m->input_grad)
        return OL_OK;
    m->input_grad = 1;
    int mb = m->max_batch;
    m->max_batch = 0; /* re-plan with a slot for the input */
    return ol_model_reserve(ctx, m, mb > 0 ? mb : 1);
}

const float *ol_model_input_grad(const ol_model *m) { return m->input_grad ? m->vals[0].grad : NULL; }

int ol_model_loss(ol_ctx *ctx, ol_model *m, const int32_t *labels, int n, float label_smoothing, float grad_scale,
                  double *loss_sum, int *correct)
{
    if (n != m->cur_batch)
        return ol__err(ctx, OL_ESHAPE, "loss: %d labels for a forward pass of %d samples", n, m->cur_batch);
    if (!(label_smoothing >= 0.0f && label_smoothing < 1.0f))
        return ol__err(ctx, OL_ERANGE, "label smoothing must be in [0, 1), got %g", (double)label_smoothing);
    const int K = m->num_classes, per = m->out_rows;
    const ol__value *lv = &m->vals[m->logits];
    const int rows = n * per; /* one label per sample, or per position of a sequence */
    for (int i = 0; i < rows; i++)
        if (labels[i] < 0 || labels[i] >= K) {
            if (per == 1)
                return ol__err(ctx, OL_ERANGE, "label %d of sample %d is outside [0, %d)", (int)labels[i], i, K);
            return ol__err(ctx, OL_ERANGE, "label %d of sample %d position %d is outside [0, %d)", (int)labels[i],
                           i / per, i % per, K);
        }
    int ncorrect = 0;
    const double eps = label_smoothing;
#pragma omp parallel for schedule(static) reduction(+ : ncorrect)
    for (int i = 0; i < rows; i++) {
        const float *z = lv->data + (size_t)i * K;
        float *p = m->probs + (size_t)i * K;
        float *g = lv->grad + (size_t)i * K;
        double zmax = z[0];
        int arg = 0;
        for (int j = 1; j < K; j++)
            if (z[j] > zmax) {
                zmax = z[j];
                arg = j;
            }
        double se = 0.0, zsum = 0.0;
        for (int j = 0; j < K; j++) {
            se += exp((double)z[j] - zmax);
            zsum += (double)z[j] - zmax;
        }
        double lse = log(se);
        /* loss = -(1-eps) log p_y - eps/K sum_j log p_j */
        m->sample_loss[i] = (1.0 - eps) * (lse - ((double)z[labels[i]] - zmax)) + eps * (lse - zsum / K);
        for (int j = 0; j < K; j++) {
            double pj = exp((double)z[j] - zmax) / se;
            double target = eps / K + (j == labels[i] ? 1.0 - eps : 0.0);
            p[j] = (float)pj;
            g[j] = (float)((double)grad_scale * (pj - target));
        }
        ncorrect += arg == labels[i];
    }
    double total = 0.0; /* summed in sample order: deterministic */
    for (int i = 0; i < rows; i++)
        total += m->sample_loss[i];
    if (loss_sum)
        *loss_sum = total;
    if (correct)
        *correct = ncorrect;
    return OL_OK;
}

int ol_model_backward(ol_ctx *ctx, ol_model *m)
{
    int n = m->cur_batch;
    if (n <= 0)
        return ol__err(ctx, OL_ESTATE, "backward without a forward pass");
    for (int k = 0; k < m->nnodes; k++) {
        const ol__layer_ops *ops = ol__layer_ops_of(m->nodes[k].op);
        if (ops->backward_begin)
            OL__TRY(ops->backward_begin(ctx, m, &m->nodes[k], n));
    }
    int rc = OL_OK;
    for (int k = m->nnodes - 1; k >= 0 && rc >= 0; k--) {
        ol__node *nd = &m->nodes[k];
        rc = ol__layer_ops_of(nd->op)->backward(ctx, m, nd, n);
        if (rc >= 0 && m->bwd_hook)
            m->bwd_hook(m->bwd_hook_user, k == 0 ? 0 : nd->final_from);
    }
    /* every gradient may hold this backward's sums now */
    if (m->grad_zero_cap)
        memset(m->grad_zero, 0, (size_t)m->grad_zero_cap);
    return rc;
}

void ol_model_zero_grads(ol_model *m)
{
    ol_paramset_zero_grads(&m->ps);
    if (m->grad_zero_cap < m->ps.n) {
        unsigned char *z = malloc((size_t)m->ps.n);
        if (!z) /* without the flags every product is added: the same result, one more pass */
            return;
        free(m->grad_zero);
        m->grad_zero = z;
        m->grad_zero_cap = m->ps.n;
    }
    memset(m->grad_zero, 1, (size_t)m->grad_zero_cap);
}

void ol_model_set_backward_hook(ol_model *m, ol_backward_hook fn, void *user)
{
    m->bwd_hook = fn;
    m->bwd_hook_user = user;
}

size_t ol_model_memory_bytes(const ol_model *m)
{
    return m->act_bytes + m->grad_bytes + m->ws_bytes + m->scratch_cap + m->tmp_cap * sizeof(float) +
           loss_bytes(m, m->max_batch);
}
