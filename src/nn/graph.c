/* Graph building, memory planning and the forward/backward executor. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/backend.h"
#include "nn/graph.h"

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

static int new_value(ol_ctx *ctx, ol_model *m, int c, int h, int w, int blk, int producer)
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
    v->blk = (blk > 1 && blk <= 64 && c % blk == 0) ? blk : 1;
    v->numel = (size_t)c * (size_t)h * (size_t)w;
    v->producer = producer;
    v->grad_slot = -1;
    return m->nvals++;
}

static int new_node(ol_ctx *ctx, ol_model *m, ol__op op, const char *name, int in0, int in1)
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

static int check_value(ol_ctx *ctx, const ol_model *m, int v)
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
    return new_value(ctx, m, c, h, w, 1, -1);
}

static int add_param(ol_ctx *ctx, ol_model *m, const char *prefix, const char *suffix, ol_kind kind, int ndim,
                     const int64_t *shape)
{
    char name[OL_NAME_MAX];
    if (snprintf(name, sizeof name, "%s.%s", prefix, suffix) >= (int)sizeof name)
        return ol__err(ctx, OL_EINVAL, "parameter name too long: %s.%s", prefix, suffix);
    return ol_paramset_add(ctx, &m->ps, name, kind, ndim, shape);
}

static int add_buffer(ol_ctx *ctx, ol_model *m, const char *prefix, const char *suffix, int64_t n)
{
    char name[OL_NAME_MAX];
    if (snprintf(name, sizeof name, "%s.%s", prefix, suffix) >= (int)sizeof name)
        return ol__err(ctx, OL_EINVAL, "buffer name too long: %s.%s", prefix, suffix);
    return ol_paramset_add_buffer(ctx, &m->ps, name, 1, &n);
}

int ol__graph_conv(ol_ctx *ctx, ol_model *m, const char *name, int x, int cout, int k, int stride, int pad, int bias)
{
    OL__TRY(check_value(ctx, m, x));
    if (k <= 0 || stride <= 0 || pad < 0 || cout <= 0)
        return ol__err(ctx, OL_EINVAL, "conv %s: invalid geometry k=%d stride=%d pad=%d cout=%d", name, k, stride, pad,
                       cout);
    int cin = m->vals[x].c, h = m->vals[x].h, w = m->vals[x].w;
    int oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
    if (h + 2 * pad < k || w + 2 * pad < k)
        return ol__err(ctx, OL_ESHAPE, "conv %s: %dx%d input is smaller than the %dx%d kernel", name, h, w, k, k);
    int id = new_node(ctx, m, OL__OP_CONV2D, name, x, -1);
    OL__TRY(id);
    int64_t wshape[4] = {cout, cin, k, k};
    int pw = add_param(ctx, m, name, "weight", OL_KIND_WEIGHT, 4, wshape);
    OL__TRY(pw);
    int pb = -1;
    if (bias) {
        int64_t bshape[1] = {cout};
        pb = add_param(ctx, m, name, "bias", OL_KIND_BIAS, 1, bshape);
        OL__TRY(pb);
    }
    int out = new_value(ctx, m, cout, oh, ow, ol__graph_channel_block(m), id);
    OL__TRY(out);
    ol__node *nd = &m->nodes[id];
    nd->out = out;
    nd->k = k;
    nd->stride = stride;
    nd->pad = pad;
    nd->p_w = pw;
    nd->p_b = pb;
    return out;
}

int ol__graph_bn(ol_ctx *ctx, ol_model *m, const char *name, int x, int residual, int relu)
{
    OL__TRY(check_value(ctx, m, x));
    const ol__value *xv = &m->vals[x];
    if (residual >= 0) {
        OL__TRY(check_value(ctx, m, residual));
        const ol__value *r = &m->vals[residual];
        if (r->c != xv->c || r->h != xv->h || r->w != xv->w || r->blk != xv->blk)
            return ol__err(ctx, OL_ESHAPE, "bn %s: residual %dx%dx%d does not match %dx%dx%d", name, r->c, r->h,
                           r->w, xv->c, xv->h, xv->w);
    }
    int c = xv->c, h = xv->h, w = xv->w, blk = xv->blk;
    int id = new_node(ctx, m, OL__OP_BATCHNORM2D, name, x, residual);
    OL__TRY(id);
    int64_t cs[1] = {c};
    int pw = add_param(ctx, m, name, "weight", OL_KIND_NORM, 1, cs);
    OL__TRY(pw);
    int pb = add_param(ctx, m, name, "bias", OL_KIND_NORM, 1, cs);
    OL__TRY(pb);
    int bm = add_buffer(ctx, m, name, "running_mean", c);
    OL__TRY(bm);
    int bv = add_buffer(ctx, m, name, "running_var", c);
    OL__TRY(bv);
    int out = new_value(ctx, m, c, h, w, blk, id);
    OL__TRY(out);
    ol__node *nd = &m->nodes[id];
    nd->out = out;
    nd->relu = relu;
    nd->p_w = pw;
    nd->p_b = pb;
    nd->b_mean = bm;
    nd->b_var = bv;
    nd->bn_momentum = m->mp.bn_momentum;
    nd->bn_eps = m->mp.bn_eps;
    return out;
}

static int simple_node(ol_ctx *ctx, ol_model *m, ol__op op, int a, int b, int c, int h, int w, int blk)
{
    int id = new_node(ctx, m, op, "", a, b);
    OL__TRY(id);
    int out = new_value(ctx, m, c, h, w, blk, id);
    OL__TRY(out);
    m->nodes[id].out = out;
    return id;
}

int ol__graph_relu(ol_ctx *ctx, ol_model *m, int x)
{
    OL__TRY(check_value(ctx, m, x));
    const ol__value v = m->vals[x];
    int id = simple_node(ctx, m, OL__OP_RELU, x, -1, v.c, v.h, v.w, v.blk);
    OL__TRY(id);
    return m->nodes[id].out;
}

int ol__graph_add(ol_ctx *ctx, ol_model *m, int a, int b, int relu)
{
    OL__TRY(check_value(ctx, m, a));
    OL__TRY(check_value(ctx, m, b));
    const ol__value va = m->vals[a], vb = m->vals[b];
    if (va.c != vb.c || va.h != vb.h || va.w != vb.w || va.blk != vb.blk)
        return ol__err(ctx, OL_ESHAPE, "add: shapes %dx%dx%d and %dx%dx%d differ", va.c, va.h, va.w, vb.c, vb.h,
                       vb.w);
    int id = simple_node(ctx, m, OL__OP_ADD, a, b, va.c, va.h, va.w, va.blk);
    OL__TRY(id);
    m->nodes[id].relu = relu;
    return m->nodes[id].out;
}

int ol__graph_shortcut_a(ol_ctx *ctx, ol_model *m, int x, int cout, int stride)
{
    OL__TRY(check_value(ctx, m, x));
    const ol__value v = m->vals[x];
    if (cout < v.c || stride < 1)
        return ol__err(ctx, OL_EINVAL, "shortcut A: cannot map %d to %d channels", v.c, cout);
    int oh = (v.h - 1) / stride + 1, ow = (v.w - 1) / stride + 1;
    int id = simple_node(ctx, m, OL__OP_SHORTCUT_A, x, -1, cout, oh, ow, ol__graph_channel_block(m));
    OL__TRY(id);
    m->nodes[id].stride = stride;
    return m->nodes[id].out;
}

int ol__graph_maxpool(ol_ctx *ctx, ol_model *m, int x, int k, int stride, int pad)
{
    OL__TRY(check_value(ctx, m, x));
    const ol__value v = m->vals[x];
    if (k <= 0 || stride <= 0 || pad < 0 || 2 * pad > k)
        return ol__err(ctx, OL_EINVAL, "maxpool: invalid geometry k=%d stride=%d pad=%d", k, stride, pad);
    int oh = (v.h + 2 * pad - k) / stride + 1, ow = (v.w + 2 * pad - k) / stride + 1;
    int id = simple_node(ctx, m, OL__OP_MAXPOOL2D, x, -1, v.c, oh, ow, v.blk);
    OL__TRY(id);
    ol__node *nd = &m->nodes[id];
    nd->k = k;
    nd->stride = stride;
    nd->pad = pad;
    return nd->out;
}

int ol__graph_gap(ol_ctx *ctx, ol_model *m, int x)
{
    OL__TRY(check_value(ctx, m, x));
    int id = simple_node(ctx, m, OL__OP_AVGPOOL_GLOBAL, x, -1, m->vals[x].c, 1, 1, 1);
    OL__TRY(id);
    return m->nodes[id].out;
}

int ol__graph_flatten(ol_ctx *ctx, ol_model *m, int x)
{
    OL__TRY(check_value(ctx, m, x));
    const ol__value v = m->vals[x];
    int id = simple_node(ctx, m, OL__OP_FLATTEN, x, -1, (int)v.numel, 1, 1, 1);
    OL__TRY(id);
    return m->nodes[id].out;
}

int ol__graph_linear(ol_ctx *ctx, ol_model *m, const char *name, int x, int out_features, int relu)
{
    OL__TRY(check_value(ctx, m, x));
    const ol__value v = m->vals[x];
    if (v.h != 1 || v.w != 1 || v.blk != 1)
        return ol__err(ctx, OL_ESHAPE, "linear %s: input must be flat features (flatten or pool first)", name);
    if (out_features <= 0)
        return ol__err(ctx, OL_EINVAL, "linear %s: %d output features", name, out_features);
    int id = new_node(ctx, m, OL__OP_LINEAR, name, x, -1);
    OL__TRY(id);
    int64_t ws[2] = {out_features, v.c}, bs[1] = {out_features};
    int pw = add_param(ctx, m, name, "weight", OL_KIND_WEIGHT, 2, ws);
    OL__TRY(pw);
    int pb = add_param(ctx, m, name, "bias", OL_KIND_BIAS, 1, bs);
    OL__TRY(pb);
    int out = new_value(ctx, m, out_features, 1, 1, 1, id);
    OL__TRY(out);
    ol__node *nd = &m->nodes[id];
    nd->out = out;
    nd->relu = relu;
    nd->p_w = pw;
    nd->p_b = pb;
    return out;
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

static void free_arenas(ol_model *m)
{
    ol__free(m->act_arena);
    ol__free(m->grad_arena);
    ol__free(m->idx_arena);
    ol__free(m->probs);
    ol__free(m->sample_loss);
    m->act_arena = m->grad_arena = m->probs = NULL;
    m->sample_loss = NULL;
    m->idx_arena = NULL;
    for (int k = 0; k < m->nnodes; k++) {
        ol__free(m->nodes[k].partials);
        m->nodes[k].partials = NULL;
        m->nodes[k].argmax = NULL;
    }
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
    int *slot_of = NULL, nslots = 0;
    OL__TRY(plan_grads(ctx, m, &slot_of, &nslots));
    size_t act = 0, idx = 0;
    for (int v = 0; v < m->nvals; v++)
        act += ol__align_up(m->vals[v].numel * (size_t)n, OL__ALIGN_FLOATS);
    size_t *slot_cap = calloc((size_t)nslots + 1, sizeof(size_t));
    size_t *slot_off = calloc((size_t)nslots + 1, sizeof(size_t));
    if (!slot_cap || !slot_off) {
        free(slot_of);
        free(slot_cap);
        free(slot_off);
        return ol__err(ctx, OL_ENOMEM, "out of memory planning the network");
    }
    for (int v = 0; v < m->nvals; v++)
        if (slot_of[v] >= 0 && slot_cap[slot_of[v]] < m->vals[v].numel * (size_t)n)
            slot_cap[slot_of[v]] = m->vals[v].numel * (size_t)n;
    size_t gsz = 0;
    for (int s = 0; s < nslots; s++) {
        slot_off[s] = gsz;
        gsz += ol__align_up(slot_cap[s], OL__ALIGN_FLOATS);
    }
    for (int k = 0; k < m->nnodes; k++)
        if (m->nodes[k].op == OL__OP_MAXPOOL2D)
            idx += ol__align_up(m->vals[m->nodes[k].out].numel * (size_t)n, OL__ALIGN_FLOATS);
    m->act_bytes = act * sizeof(float);
    m->grad_bytes = gsz * sizeof(float);
    m->idx_bytes = idx * sizeof(int32_t);
    m->loss_bytes = (size_t)n * (size_t)m->num_classes * sizeof(float) + (size_t)n * sizeof(double);
    for (int k = 0; k < m->nnodes; k++)
        if (m->nodes[k].op == OL__OP_BATCHNORM2D)
            m->loss_bytes += (size_t)n * (size_t)m->vals[m->nodes[k].out].c * 2 * sizeof(double);
    if (m->meta) { /* a size query: plan, allocate nothing */
        free(slot_of);
        free(slot_cap);
        free(slot_off);
        m->max_batch = n;
        return OL_OK;
    }
    m->act_arena = ol__alloc(m->act_bytes);
    m->grad_arena = ol__alloc(m->grad_bytes);
    m->idx_arena = ol__alloc(m->idx_bytes ? m->idx_bytes : 64);
    m->probs = ol__alloc((size_t)n * (size_t)m->num_classes * sizeof(float));
    m->sample_loss = ol__alloc((size_t)n * sizeof(double));
    int ok = m->act_arena && m->grad_arena && m->idx_arena && m->probs && m->sample_loss;
    size_t off = 0, ioff = 0;
    for (int v = 0; ok && v < m->nvals; v++) {
        m->vals[v].data = m->act_arena + off;
        off += ol__align_up(m->vals[v].numel * (size_t)n, OL__ALIGN_FLOATS);
        m->vals[v].grad = slot_of[v] >= 0 ? m->grad_arena + slot_off[slot_of[v]] : NULL;
    }
    for (int k = 0; ok && k < m->nnodes; k++) {
        ol__node *nd = &m->nodes[k];
        if (nd->op == OL__OP_MAXPOOL2D) {
            nd->argmax = m->idx_arena + ioff;
            ioff += ol__align_up(m->vals[nd->out].numel * (size_t)n, OL__ALIGN_FLOATS);
        }
        if (nd->op == OL__OP_BATCHNORM2D) {
            nd->partials = ol__alloc((size_t)n * (size_t)m->vals[nd->out].c * 2 * sizeof(double));
            ok = nd->partials != NULL;
        }
    }
    free(slot_of);
    free(slot_cap);
    free(slot_off);
    if (!ok) {
        free_arenas(m);
        m->max_batch = 0;
        return ol__err(ctx, OL_ENOMEM, "out of memory: activations for batch %d need %.1f MB", n,
                       (double)(m->act_bytes + m->grad_bytes) / 1e6);
    }
    m->max_batch = n;
    return OL_OK;
}

int ol__graph_finish(ol_ctx *ctx, ol_model *m, int logits)
{
    OL__TRY(check_value(ctx, m, logits));
    const ol__value *lv = &m->vals[logits];
    if (lv->h != 1 || lv->w != 1)
        return ol__err(ctx, OL_ESHAPE, "network output must be flat logits");
    m->logits = logits;
    m->num_classes = lv->c;
    if (m->meta)
        ol__paramset_layout(&m->ps);
    else
        OL__TRY(ol_paramset_finalize(ctx, &m->ps));
    size_t lowest = m->ps.numel;
    for (int k = m->nnodes - 1; k >= 0; k--) {
        ol__node *nd = &m->nodes[k];
        if (nd->p_w >= 0 && m->ps.t[nd->p_w].offset < lowest)
            lowest = m->ps.t[nd->p_w].offset;
        if (nd->p_b >= 0 && m->ps.t[nd->p_b].offset < lowest)
            lowest = m->ps.t[nd->p_b].offset;
        nd->final_from = lowest;
    }
    for (int k = 0; !m->meta && k < m->nnodes; k++) {
        ol__node *nd = &m->nodes[k];
        if (nd->op == OL__OP_BATCHNORM2D) {
            int c = m->vals[nd->out].c;
            nd->save_mean = ol__alloc((size_t)c * 5 * sizeof(float));
            if (!nd->save_mean)
                return ol__err(ctx, OL_ENOMEM, "out of memory");
            nd->save_invstd = nd->save_mean + c;
            nd->coef = nd->save_mean + 2 * c;
        }
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

void ol__graph_free(ol_model *m);
void ol__graph_free(ol_model *m)
{
    if (!m)
        return;
    for (int k = 0; k < m->nnodes; k++) {
        ol__conv_free_impl(&m->nodes[k]);
        ol__free(m->nodes[k].save_mean);
    }
    free_arenas(m);
    ol__free(m->scratch);
    ol__free(m->tmp);
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

int ol_model_forward(ol_ctx *ctx, ol_model *m, const float *x, int n, int train)
{
    if (!x)
        return ol__err(ctx, OL_EINVAL, "forward: no input");
    OL__TRY(ol_model_reserve(ctx, m, n));
    ol__graph_load_input(m, x, n);
    for (int k = 0; k < m->nnodes; k++) {
        ol__node *nd = &m->nodes[k];
        switch (nd->op) {
        case OL__OP_CONV2D: OL__TRY(ol__conv_forward(ctx, m, nd, n)); break;
        case OL__OP_BATCHNORM2D: ol__bn_forward(m, nd, n, train); break;
        case OL__OP_RELU: ol__relu_forward(m, nd, n); break;
        case OL__OP_ADD: ol__add_forward(m, nd, n); break;
        case OL__OP_SHORTCUT_A: ol__shortcut_a_forward(m, nd, n); break;
        case OL__OP_MAXPOOL2D: ol__maxpool_forward(m, nd, n); break;
        case OL__OP_AVGPOOL_GLOBAL: ol__gap_forward(m, nd, n); break;
        case OL__OP_FLATTEN: ol__flatten_forward(m, nd, n); break;
        case OL__OP_LINEAR: ol__linear_forward(ctx, m, nd, n); break;
        default: return ol__err(ctx, OL_ESTATE, "unknown op %d", (int)nd->op);
        }
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
    const int K = m->num_classes;
    const ol__value *lv = &m->vals[m->logits];
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= K)
            return ol__err(ctx, OL_ERANGE, "label %d of sample %d is outside [0, %d)", (int)labels[i], i, K);
    int ncorrect = 0;
    const double eps = label_smoothing;
#pragma omp parallel for schedule(static) reduction(+ : ncorrect)
    for (int i = 0; i < n; i++) {
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
    for (int i = 0; i < n; i++)
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
    for (int k = m->nnodes - 1; k >= 0; k--) {
        ol__node *nd = &m->nodes[k];
        switch (nd->op) {
        case OL__OP_CONV2D: OL__TRY(ol__conv_backward(ctx, m, nd, n)); break;
        case OL__OP_BATCHNORM2D: ol__bn_backward(m, nd, n); break;
        case OL__OP_RELU: ol__relu_backward(m, nd, n); break;
        case OL__OP_ADD: ol__add_backward(m, nd, n); break;
        case OL__OP_SHORTCUT_A: ol__shortcut_a_backward(m, nd, n); break;
        case OL__OP_MAXPOOL2D: ol__maxpool_backward(m, nd, n); break;
        case OL__OP_AVGPOOL_GLOBAL: ol__gap_backward(m, nd, n); break;
        case OL__OP_FLATTEN: ol__flatten_backward(m, nd, n); break;
        case OL__OP_LINEAR: ol__linear_backward(ctx, m, nd, n); break;
        default: return ol__err(ctx, OL_ESTATE, "unknown op %d", (int)nd->op);
        }
        if (m->bwd_hook)
            m->bwd_hook(m->bwd_hook_user, k == 0 ? 0 : nd->final_from);
    }
    return OL_OK;
}

void ol_model_set_backward_hook(ol_model *m, ol_backward_hook fn, void *user)
{
    m->bwd_hook = fn;
    m->bwd_hook_user = user;
}

uint64_t ol__graph_activation_bytes(const ol_model *m)
{
    return (uint64_t)m->act_bytes + m->grad_bytes + m->idx_bytes + m->loss_bytes;
}

size_t ol_model_memory_bytes(const ol_model *m)
{
    return m->act_bytes + m->grad_bytes + m->idx_bytes + m->scratch_cap + m->tmp_cap * sizeof(float) +
           (size_t)m->max_batch * (size_t)m->num_classes * sizeof(float);
}
