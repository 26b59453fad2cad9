/* 2-D convolution on oneDNN: forward, backward-data and backward-weights
 * primitives on the graph's activation layout (nChw16c on AVX-512), weights
 * reordered from the flat OIHW parameters into the primitive's blocked format
 * each forward, weight gradients reordered back and accumulated into the flat
 * gradient buffer. Primitives are created once per batch size and cached. */
#ifdef OL_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#include <stdlib.h>
#include <string.h>

#include "nn/graph.h"

#define CONV_CACHE 4

typedef struct {
    int N;
    uint64_t used;
    dnnl_primitive_t fwd, bwd_d, bwd_w, w_to_fwd, w_to_bwd, dw_to_user;
    dnnl_memory_t src, dst, w_user, w_fwd, w_bwd, bias, diff_dst, diff_src, diff_w, dw_user, diff_bias, scr_fwd,
        scr_bwd_d, scr_bwd_w;
    size_t scr_bytes;
    float *w_fwd_buf, *w_bwd_buf, *dw_buf, *dbias_buf;
} conv_inst;

struct ol__conv_impl {
    conv_inst inst[CONV_CACHE];
    int n;
    uint64_t clock;
};

#define DN(call, what)                                                                                              \
    do {                                                                                                            \
        dnnl_status_t st_ = (call);                                                                                 \
        if (st_ != dnnl_success) {                                                                                  \
            rc = ol__err(ctx, OL_EBACKEND, "oneDNN %s failed for conv %s (status %d)", what, nd->name, (int)st_); \
            goto fail;                                                                                              \
        }                                                                                                           \
    } while (0)

static dnnl_format_tag_t act_tag(const ol__value *v)
{
    if (v->blk == 1)
        return dnnl_nchw;
    if (v->blk == 16)
        return dnnl_nChw16c;
    if (v->blk == 8)
        return dnnl_nChw8c;
    if (v->blk == v->c)
        return dnnl_nhwc;
    return dnnl_format_tag_undef;
}

static void inst_destroy(conv_inst *in)
{
    dnnl_primitive_t *prims[] = {&in->fwd, &in->bwd_d, &in->bwd_w, &in->w_to_fwd, &in->w_to_bwd, &in->dw_to_user};
    for (size_t i = 0; i < sizeof prims / sizeof prims[0]; i++)
        if (*prims[i])
            dnnl_primitive_destroy(*prims[i]);
    dnnl_memory_t *mems[] = {&in->src,      &in->dst,      &in->w_user,    &in->w_fwd,   &in->w_bwd,
                             &in->bias,     &in->diff_dst, &in->diff_src,  &in->diff_w,  &in->dw_user,
                             &in->diff_bias, &in->scr_fwd, &in->scr_bwd_d, &in->scr_bwd_w};
    for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++)
        if (*mems[i])
            dnnl_memory_destroy(*mems[i]);
    ol__free(in->w_fwd_buf);
    ol__free(in->w_bwd_buf);
    ol__free(in->dw_buf);
    ol__free(in->dbias_buf);
    memset(in, 0, sizeof *in);
}

void ol__conv_onednn_free(ol__conv_impl *impl)
{
    for (int i = 0; i < impl->n; i++)
        inst_destroy(&impl->inst[i]);
    free(impl);
}

static dnnl_status_t mem(dnnl_memory_t *out, const dnnl_memory_desc_t *md, dnnl_engine_t eng)
{
    return dnnl_memory_create(out, md, eng, DNNL_MEMORY_NONE);
}

static int make_reorder(ol_ctx *ctx, const ol__node *nd, dnnl_primitive_t *out, const dnnl_memory_desc_t *from,
                        const dnnl_memory_desc_t *to, int accumulate)
{
    int rc = OL_OK;
    dnnl_engine_t eng = ctx->dnnl_engine;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    DN(dnnl_primitive_attr_create(&attr), "attr");
    if (accumulate) {
        DN(dnnl_post_ops_create(&po), "post-ops");
        DN(dnnl_post_ops_append_sum(po, 1.0f), "sum post-op");
        DN(dnnl_primitive_attr_set_post_ops(attr, po), "set post-ops");
    }
    DN(dnnl_reorder_primitive_desc_create(&pd, from, eng, to, eng, attr), "reorder desc");
    DN(dnnl_primitive_create(out, pd), "reorder");
fail:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (po)
        dnnl_post_ops_destroy(po);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    return rc;
}

static size_t scratch_size(const_dnnl_primitive_desc_t pd)
{
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    return md ? dnnl_memory_desc_get_size(md) : 0;
}

static int inst_create(ol_ctx *ctx, ol_model *m, ol__node *nd, conv_inst *in, int N)
{
    int rc = OL_OK;
    dnnl_engine_t eng = ctx->dnnl_engine;
    const ol__value *x = &m->vals[nd->in[0]], *y = &m->vals[nd->out];
    const int with_bias = nd->p_b >= 0;
    dnnl_memory_desc_t src_md, dst_md, w_any, w_user_md, b_md;
    dnnl_dims_t sd = {N, x->c, x->h, x->w}, dd = {N, y->c, y->h, y->w}, wd = {y->c, x->c, nd->k, nd->k},
                bd = {y->c};
    dnnl_dims_t strides = {nd->stride, nd->stride}, pl = {nd->pad, nd->pad};
    /* right padding so that the output size matches floor division */
    dnnl_dims_t pr = {(y->h - 1) * nd->stride + nd->k - x->h - nd->pad, (y->w - 1) * nd->stride + nd->k - x->w - nd->pad};
    dnnl_convolution_desc_t cf, cbd, cbw;
    dnnl_primitive_desc_t pf = NULL, pbd = NULL, pbw = NULL;
    dnnl_primitive_attr_t attr = NULL;

    memset(in, 0, sizeof *in);
    in->N = N;
    if (act_tag(x) == dnnl_format_tag_undef || act_tag(y) == dnnl_format_tag_undef)
        return ol__err(ctx, OL_ENOTSUP, "conv %s: layout not supported by oneDNN", nd->name);
    DN(dnnl_memory_desc_init_by_tag(&src_md, 4, sd, dnnl_f32, act_tag(x)), "src desc");
    DN(dnnl_memory_desc_init_by_tag(&dst_md, 4, dd, dnnl_f32, act_tag(y)), "dst desc");
    DN(dnnl_memory_desc_init_by_tag(&w_any, 4, wd, dnnl_f32, dnnl_format_tag_any), "weights desc");
    DN(dnnl_memory_desc_init_by_tag(&w_user_md, 4, wd, dnnl_f32, dnnl_oihw), "weights desc");
    DN(dnnl_memory_desc_init_by_tag(&b_md, 1, bd, dnnl_f32, dnnl_a), "bias desc");
    DN(dnnl_primitive_attr_create(&attr), "attr");
    DN(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "scratchpad mode");

    DN(dnnl_convolution_forward_desc_init(&cf, dnnl_forward_training, dnnl_convolution_direct, &src_md, &w_any,
                                          with_bias ? &b_md : NULL, &dst_md, strides, pl, pr),
       "forward desc");
    DN(dnnl_primitive_desc_create(&pf, &cf, attr, eng, NULL), "forward primitive desc");
    DN(dnnl_convolution_backward_data_desc_init(&cbd, dnnl_convolution_direct, &src_md, &w_any, &dst_md, strides, pl,
                                                pr),
       "backward-data desc");
    DN(dnnl_primitive_desc_create(&pbd, &cbd, attr, eng, pf), "backward-data primitive desc");
    DN(dnnl_convolution_backward_weights_desc_init(&cbw, dnnl_convolution_direct, &src_md, &w_any,
                                                   with_bias ? &b_md : NULL, &dst_md, strides, pl, pr),
       "backward-weights desc");
    DN(dnnl_primitive_desc_create(&pbw, &cbw, attr, eng, pf), "backward-weights primitive desc");

    DN(dnnl_primitive_create(&in->fwd, pf), "forward primitive");
    DN(dnnl_primitive_create(&in->bwd_d, pbd), "backward-data primitive");
    DN(dnnl_primitive_create(&in->bwd_w, pbw), "backward-weights primitive");

    const dnnl_memory_desc_t *wf = dnnl_primitive_desc_query_md(pf, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *wb = dnnl_primitive_desc_query_md(pbd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *dwf = dnnl_primitive_desc_query_md(pbw, dnnl_query_diff_weights_md, 0);
    DN(mem(&in->src, &src_md, eng), "memory");
    DN(mem(&in->dst, &dst_md, eng), "memory");
    DN(mem(&in->diff_src, &src_md, eng), "memory");
    DN(mem(&in->diff_dst, &dst_md, eng), "memory");
    DN(mem(&in->w_user, &w_user_md, eng), "memory");
    DN(mem(&in->dw_user, &w_user_md, eng), "memory");
    DN(mem(&in->w_fwd, wf, eng), "memory");
    DN(mem(&in->w_bwd, wb, eng), "memory");
    DN(mem(&in->diff_w, dwf, eng), "memory");
    if (with_bias) {
        DN(mem(&in->bias, &b_md, eng), "memory");
        DN(mem(&in->diff_bias, &b_md, eng), "memory");
        in->dbias_buf = ol__alloc((size_t)y->c * sizeof(float));
    }
    in->w_fwd_buf = ol__alloc(dnnl_memory_desc_get_size(wf));
    in->dw_buf = ol__alloc(dnnl_memory_desc_get_size(dwf));
    if (!dnnl_memory_desc_equal(wf, wb))
        in->w_bwd_buf = ol__alloc(dnnl_memory_desc_get_size(wb));
    if (!in->w_fwd_buf || !in->dw_buf || (with_bias && !in->dbias_buf)) {
        rc = ol__err(ctx, OL_ENOMEM, "out of memory for conv %s", nd->name);
        goto fail;
    }
    if ((rc = make_reorder(ctx, nd, &in->w_to_fwd, &w_user_md, wf, 0)) < 0)
        goto fail;
    if (in->w_bwd_buf && (rc = make_reorder(ctx, nd, &in->w_to_bwd, &w_user_md, wb, 0)) < 0)
        goto fail;
    if ((rc = make_reorder(ctx, nd, &in->dw_to_user, dwf, &w_user_md, 1)) < 0)
        goto fail;

    const dnnl_memory_desc_t *sp[3] = {dnnl_primitive_desc_query_md(pf, dnnl_query_scratchpad_md, 0),
                                       dnnl_primitive_desc_query_md(pbd, dnnl_query_scratchpad_md, 0),
                                       dnnl_primitive_desc_query_md(pbw, dnnl_query_scratchpad_md, 0)};
    dnnl_memory_t *spm[3] = {&in->scr_fwd, &in->scr_bwd_d, &in->scr_bwd_w};
    size_t sizes[3] = {scratch_size(pf), scratch_size(pbd), scratch_size(pbw)};
    for (int i = 0; i < 3; i++) {
        if (sp[i])
            DN(mem(spm[i], sp[i], eng), "scratchpad memory");
        if (sizes[i] > in->scr_bytes)
            in->scr_bytes = sizes[i];
    }
fail:
    if (pf)
        dnnl_primitive_desc_destroy(pf);
    if (pbd)
        dnnl_primitive_desc_destroy(pbd);
    if (pbw)
        dnnl_primitive_desc_destroy(pbw);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    if (rc < 0)
        inst_destroy(in);
    return rc;
}

static int get_inst(ol_ctx *ctx, ol_model *m, ol__node *nd, int N, conv_inst **out)
{
    if (!nd->impl) {
        nd->impl = calloc(1, sizeof(ol__conv_impl));
        if (!nd->impl)
            return ol__err(ctx, OL_ENOMEM, "out of memory");
    }
    ol__conv_impl *impl = nd->impl;
    impl->clock++;
    for (int i = 0; i < impl->n; i++)
        if (impl->inst[i].N == N) {
            impl->inst[i].used = impl->clock;
            *out = &impl->inst[i];
            return OL_OK;
        }
    int slot = impl->n;
    if (slot == CONV_CACHE) { /* evict the least recently used batch size */
        slot = 0;
        for (int i = 1; i < CONV_CACHE; i++)
            if (impl->inst[i].used < impl->inst[slot].used)
                slot = i;
        inst_destroy(&impl->inst[slot]);
    } else {
        impl->n++;
    }
    int rc = inst_create(ctx, m, nd, &impl->inst[slot], N);
    if (rc < 0) {
        /* keep the cache dense */
        impl->inst[slot] = impl->inst[impl->n - 1];
        memset(&impl->inst[impl->n - 1], 0, sizeof(conv_inst));
        impl->n--;
        return rc;
    }
    impl->inst[slot].used = impl->clock;
    *out = &impl->inst[slot];
    return OL_OK;
}

static int exec(ol_ctx *ctx, ol__node *nd, dnnl_primitive_t p, int nargs, const dnnl_exec_arg_t *args)
{
    dnnl_status_t st = dnnl_primitive_execute(p, ctx->dnnl_stream, nargs, args);
    if (st == dnnl_success)
        st = dnnl_stream_wait(ctx->dnnl_stream);
    if (st != dnnl_success)
        return ol__err(ctx, OL_EBACKEND, "oneDNN execution failed for conv %s (status %d)", nd->name, (int)st);
    return OL_OK;
}

static int reorder(ol_ctx *ctx, ol__node *nd, dnnl_primitive_t p, dnnl_memory_t from, dnnl_memory_t to)
{
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    return exec(ctx, nd, p, 2, a);
}

int ol__conv_onednn_forward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N)
{
    conv_inst *in;
    OL__TRY(get_inst(ctx, m, nd, N, &in));
    void *scr = NULL;
    OL__TRY(ol__graph_scratch(ctx, m, in->scr_bytes, &scr));
    const ol__value *x = &m->vals[nd->in[0]], *y = &m->vals[nd->out];
    dnnl_memory_set_data_handle(in->w_user, ol__P(m, nd->p_w));
    dnnl_memory_set_data_handle(in->w_fwd, in->w_fwd_buf);
    OL__TRY(reorder(ctx, nd, in->w_to_fwd, in->w_user, in->w_fwd));
    dnnl_memory_set_data_handle(in->src, x->data);
    dnnl_memory_set_data_handle(in->dst, y->data);
    dnnl_exec_arg_t a[5] = {{DNNL_ARG_SRC, in->src}, {DNNL_ARG_WEIGHTS, in->w_fwd}, {DNNL_ARG_DST, in->dst}};
    int na = 3;
    if (in->scr_fwd) {
        dnnl_memory_set_data_handle(in->scr_fwd, scr);
        a[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, in->scr_fwd};
    }
    if (nd->p_b >= 0) {
        dnnl_memory_set_data_handle(in->bias, ol__P(m, nd->p_b));
        a[na++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, in->bias};
    }
    return exec(ctx, nd, in->fwd, na, a);
}

int ol__conv_onednn_backward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N)
{
    conv_inst *in;
    OL__TRY(get_inst(ctx, m, nd, N, &in));
    void *scr = NULL;
    OL__TRY(ol__graph_scratch(ctx, m, in->scr_bytes, &scr));
    const ol__value *x = &m->vals[nd->in[0]], *y = &m->vals[nd->out];

    /* weights gradient: into the blocked buffer, then accumulated into OIHW grads */
    dnnl_memory_set_data_handle(in->src, x->data);
    dnnl_memory_set_data_handle(in->diff_dst, y->grad);
    dnnl_memory_set_data_handle(in->diff_w, in->dw_buf);
    dnnl_exec_arg_t a[5] = {{DNNL_ARG_SRC, in->src}, {DNNL_ARG_DIFF_DST, in->diff_dst}, {DNNL_ARG_DIFF_WEIGHTS, in->diff_w}};
    int na = 3;
    if (in->scr_bwd_w) {
        dnnl_memory_set_data_handle(in->scr_bwd_w, scr);
        a[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, in->scr_bwd_w};
    }
    if (nd->p_b >= 0) {
        dnnl_memory_set_data_handle(in->diff_bias, in->dbias_buf);
        a[na++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_BIAS, in->diff_bias};
    }
    OL__TRY(exec(ctx, nd, in->bwd_w, na, a));
    dnnl_memory_set_data_handle(in->dw_user, ol__G(m, nd->p_w));
    OL__TRY(reorder(ctx, nd, in->dw_to_user, in->diff_w, in->dw_user));
    if (nd->p_b >= 0) {
        float *db = ol__G(m, nd->p_b);
        for (int o = 0; o < y->c; o++)
            db[o] += in->dbias_buf[o];
    }
    if (!nd->need_dx[0])
        return OL_OK;

    /* data gradient; accumulation goes through a temporary */
    dnnl_memory_t wmem = in->w_fwd;
    if (in->w_bwd_buf) {
        dnnl_memory_set_data_handle(in->w_user, ol__P(m, nd->p_w));
        dnnl_memory_set_data_handle(in->w_bwd, in->w_bwd_buf);
        OL__TRY(reorder(ctx, nd, in->w_to_bwd, in->w_user, in->w_bwd));
        wmem = in->w_bwd;
    } else {
        dnnl_memory_set_data_handle(in->w_fwd, in->w_fwd_buf);
    }
    const size_t nx = (size_t)N * x->numel;
    float *dst = x->grad;
    if (nd->acc_dx[0])
        OL__TRY(ol__graph_tmp(ctx, m, nx, &dst));
    dnnl_memory_set_data_handle(in->diff_src, dst);
    dnnl_exec_arg_t b[4] = {{DNNL_ARG_DIFF_DST, in->diff_dst}, {DNNL_ARG_WEIGHTS, wmem}, {DNNL_ARG_DIFF_SRC, in->diff_src}};
    int nb = 3;
    if (in->scr_bwd_d) {
        dnnl_memory_set_data_handle(in->scr_bwd_d, scr);
        b[nb++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, in->scr_bwd_d};
    }
    OL__TRY(exec(ctx, nd, in->bwd_d, nb, b));
    if (nd->acc_dx[0]) {
        float *g = x->grad;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < nx; i++)
            g[i] += dst[i];
    }
    return OL_OK;
}
#else
typedef int ol__conv_onednn_unused; /* ISO C: no empty translation unit */
#endif
