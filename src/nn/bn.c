/* BatchNorm2d with an optional fused residual add and ReLU:
 *   y = relu?( gamma * (x - mean) * invstd + beta (+ r) )
 * Statistics are summed per (sample, channel block) in double and combined in
 * sample order, so results do not depend on the thread count. Running
 * statistics follow PyTorch: momentum 0.1, unbiased variance. */
#include <math.h>
#include <string.h>

#include "nn/graph.h"

#define OL__INLINE static inline __attribute__((always_inline))
/* Rows summed in float before they are added to the double totals: short float
 * runs vectorise, the double totals keep long reductions accurate. */
#define OL__ROWS 32

OL__INLINE void stats_task(const float *restrict x, int HW, int B, double *restrict out /* [2B] */)
{
    double s[64], ss[64];
    for (int j = 0; j < B; j++)
        s[j] = ss[j] = 0.0;
    for (int i0 = 0; i0 < HW; i0 += OL__ROWS) {
        int i1 = i0 + OL__ROWS < HW ? i0 + OL__ROWS : HW;
        float fs[64], fss[64];
        for (int j = 0; j < B; j++)
            fs[j] = fss[j] = 0.0f;
        for (int i = i0; i < i1; i++) {
#pragma omp simd
            for (int j = 0; j < B; j++) {
                float v = x[(size_t)i * B + j];
                fs[j] += v;
                fss[j] += v * v;
            }
        }
        for (int j = 0; j < B; j++) {
            s[j] += fs[j];
            ss[j] += fss[j];
        }
    }
    for (int j = 0; j < B; j++) {
        out[j] = s[j];
        out[B + j] = ss[j];
    }
}

OL__INLINE void norm_task(const float *restrict x, const float *restrict r, float *restrict y, int HW, int B,
                          const float *restrict scale, const float *restrict shift, int relu)
{
    for (int i = 0; i < HW; i++) {
        const size_t o = (size_t)i * B;
        if (r) {
#pragma omp simd
            for (int j = 0; j < B; j++) {
                float v = x[o + j] * scale[j] + shift[j] + r[o + j];
                y[o + j] = relu ? (v > 0.0f ? v : 0.0f) : v;
            }
        } else {
#pragma omp simd
            for (int j = 0; j < B; j++) {
                float v = x[o + j] * scale[j] + shift[j];
                y[o + j] = relu ? (v > 0.0f ? v : 0.0f) : v;
            }
        }
    }
}

/* dz = dy masked by y > 0; writes dr (=/+=) dz; partial sums of dz and dz*(x-mean) */
OL__INLINE void bwd_reduce_task(const float *restrict dy, const float *restrict y, const float *restrict x,
                                float *restrict dr, int acc_r, int HW, int B, const float *restrict mean, int relu,
                                double *restrict out)
{
    double s[64], sx[64];
    for (int j = 0; j < B; j++)
        s[j] = sx[j] = 0.0;
    for (int i0 = 0; i0 < HW; i0 += OL__ROWS) {
        int i1 = i0 + OL__ROWS < HW ? i0 + OL__ROWS : HW;
        float fs[64], fsx[64];
        for (int j = 0; j < B; j++)
            fs[j] = fsx[j] = 0.0f;
        for (int i = i0; i < i1; i++) {
            const size_t o = (size_t)i * B;
#pragma omp simd
            for (int j = 0; j < B; j++) {
                float dz = (!relu || y[o + j] != 0.0f) ? dy[o + j] : 0.0f;
                fs[j] += dz;
                fsx[j] += dz * (x[o + j] - mean[j]);
            }
            if (dr && acc_r) {
#pragma omp simd
                for (int j = 0; j < B; j++)
                    dr[o + j] += (!relu || y[o + j] != 0.0f) ? dy[o + j] : 0.0f;
            } else if (dr) {
#pragma omp simd
                for (int j = 0; j < B; j++)
                    dr[o + j] = (!relu || y[o + j] != 0.0f) ? dy[o + j] : 0.0f;
            }
        }
        for (int j = 0; j < B; j++) {
            s[j] += fs[j];
            sx[j] += fsx[j];
        }
    }
    for (int j = 0; j < B; j++) {
        out[j] = s[j];
        out[B + j] = sx[j];
    }
}

OL__INLINE void bwd_dx_task(const float *restrict dy, const float *restrict y, const float *restrict x,
                            float *restrict dx, int acc, int HW, int B, const float *restrict a,
                            const float *restrict b, const float *restrict c, int relu)
{
    for (int i = 0; i < HW; i++) {
        const size_t o = (size_t)i * B;
        if (acc) {
#pragma omp simd
            for (int j = 0; j < B; j++) {
                float dz = (!relu || y[o + j] != 0.0f) ? dy[o + j] : 0.0f;
                dx[o + j] += a[j] * dz + b[j] * x[o + j] + c[j];
            }
        } else {
#pragma omp simd
            for (int j = 0; j < B; j++) {
                float dz = (!relu || y[o + j] != 0.0f) ? dy[o + j] : 0.0f;
                dx[o + j] = a[j] * dz + b[j] * x[o + j] + c[j];
            }
        }
    }
}

/* Dispatch with a compile-time block size for the common layouts so the inner
 * loop vectorises. */
#define OL__BLK_DISPATCH(B, CALL)                                                                                    \
    do {                                                                                                             \
        if ((B) == 16) {                                                                                             \
            enum { BB = 16 };                                                                                        \
            CALL;                                                                                                    \
        } else if ((B) == 8) {                                                                                       \
            enum { BB = 8 };                                                                                         \
            CALL;                                                                                                    \
        } else if ((B) == 1) {                                                                                       \
            enum { BB = 1 };                                                                                         \
            CALL;                                                                                                    \
        } else {                                                                                                     \
            const int BB = (B);                                                                                      \
            CALL;                                                                                                    \
        }                                                                                                            \
    } while (0)

static int bn_forward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N, int train)
{
    (void)ctx;
    const ol__value *xv = &m->vals[nd->in[0]];
    const ol__value *yv = &m->vals[nd->out];
    const ol__value *rv = nd->in[1] >= 0 ? &m->vals[nd->in[1]] : NULL;
    const int C = xv->c, B = xv->blk, CB = C / B, HW = xv->h * xv->w;
    const float *gamma = ol__P(m, nd->p_w), *beta = ol__P(m, nd->p_b);
    float *rmean = ol__BUF(m, nd->b_mean), *rvar = ol__BUF(m, nd->b_var);
    float *mean = nd->save_mean, *invstd = nd->save_invstd;
    float *scale = nd->coef, *shift = nd->coef + C;
    const size_t blk_elems = (size_t)HW * B;

    if (train) {
        double *part = nd->ws;
#pragma omp parallel for schedule(static)
        for (int t = 0; t < N * CB; t++)
            OL__BLK_DISPATCH(B, stats_task(xv->data + (size_t)t * blk_elems, HW, BB, part + (size_t)t * 2 * B));
        const double M = (double)N * HW;
        for (int c = 0; c < C; c++) {
            int cb = c / B, j = c % B;
            double s = 0.0, ss = 0.0;
            for (int n = 0; n < N; n++) {
                const double *p = part + ((size_t)n * CB + cb) * 2 * B;
                s += p[j];
                ss += p[B + j];
            }
            double mu = s / M;
            double var = ss / M - mu * mu;
            if (var < 0.0)
                var = 0.0;
            mean[c] = (float)mu;
            invstd[c] = (float)(1.0 / sqrt(var + (double)nd->bn_eps));
            double unbiased = M > 1.0 ? var * M / (M - 1.0) : var;
            rmean[c] = (float)((1.0 - nd->bn_momentum) * rmean[c] + nd->bn_momentum * mu);
            rvar[c] = (float)((1.0 - nd->bn_momentum) * rvar[c] + nd->bn_momentum * unbiased);
        }
    } else {
        for (int c = 0; c < C; c++) {
            mean[c] = rmean[c];
            invstd[c] = (float)(1.0 / sqrt((double)rvar[c] + (double)nd->bn_eps));
        }
    }
    for (int c = 0; c < C; c++) {
        scale[c] = gamma[c] * invstd[c];
        shift[c] = beta[c] - mean[c] * scale[c];
    }
    const int relu = nd->relu;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < N * CB; t++) {
        int cb = t % CB;
        size_t off = (size_t)t * blk_elems;
        OL__BLK_DISPATCH(B, norm_task(xv->data + off, rv ? rv->data + off : NULL, yv->data + off, HW, BB,
                                      scale + cb * B, shift + cb * B, relu));
    }
    return OL_OK;
}

static int bn_backward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N)
{
    (void)ctx;
    const ol__value *xv = &m->vals[nd->in[0]];
    const ol__value *yv = &m->vals[nd->out];
    const ol__value *rv = nd->in[1] >= 0 ? &m->vals[nd->in[1]] : NULL;
    const int C = xv->c, B = xv->blk, CB = C / B, HW = xv->h * xv->w;
    const float *gamma = ol__P(m, nd->p_w);
    float *dgamma = ol__G(m, nd->p_w), *dbeta = ol__G(m, nd->p_b);
    const float *mean = nd->save_mean, *invstd = nd->save_invstd;
    float *ca = nd->coef, *cbv = nd->coef + C, *cc = nd->coef + 2 * C;
    const size_t blk_elems = (size_t)HW * B;
    double *part = nd->ws;
    float *dr = (rv && nd->need_dx[1]) ? rv->grad : NULL;
    const int acc_r = nd->acc_dx[1], relu = nd->relu;

#pragma omp parallel for schedule(static)
    for (int t = 0; t < N * CB; t++) {
        int cb = t % CB;
        size_t off = (size_t)t * blk_elems;
        OL__BLK_DISPATCH(B, bwd_reduce_task(yv->grad + off, yv->data + off, xv->data + off, dr ? dr + off : NULL,
                                            acc_r, HW, BB, mean + cb * B, relu, part + (size_t)t * 2 * B));
    }
    const double M = (double)N * HW;
    for (int c = 0; c < C; c++) {
        int cb = c / B, j = c % B;
        double s = 0.0, sx = 0.0;
        for (int n = 0; n < N; n++) {
            const double *p = part + ((size_t)n * CB + cb) * 2 * B;
            s += p[j];
            sx += p[B + j];
        }
        double is = invstd[c];
        dbeta[c] += (float)s;
        dgamma[c] += (float)(sx * is);
        double a = (double)gamma[c] * is;
        if (m->train_bn) {
            /* dx = a*(dz - s/M - (x-mu) * is^2 * sx/M) */
            double b = -a * is * is * sx / M;
            ca[c] = (float)a;
            cbv[c] = (float)b;
            cc[c] = (float)(-a * s / M - b * (double)mean[c]);
        } else { /* statistics were constants */
            ca[c] = (float)a;
            cbv[c] = 0.0f;
            cc[c] = 0.0f;
        }
    }
    if (!nd->need_dx[0])
        return OL_OK;
    const int acc = nd->acc_dx[0];
#pragma omp parallel for schedule(static)
    for (int t = 0; t < N * CB; t++) {
        int cb = t % CB;
        size_t off = (size_t)t * blk_elems;
        OL__BLK_DISPATCH(B, bwd_dx_task(yv->grad + off, yv->data + off, xv->data + off, xv->grad + off, acc, HW, BB,
                                        ca + cb * B, cbv + cb * B, cc + cb * B, relu));
    }
    return OL_OK;
}

int ol__graph_bn(ol_ctx *ctx, ol_model *m, const char *name, int x, int residual, int relu)
{
    OL__TRY(ol__graph_check_value(ctx, m, x));
    const ol__value *xv = &m->vals[x];
    if (xv->blk > 64)
        return ol__err(ctx, OL_ESHAPE, "bn %s: input is a sequence (layernorm normalises those)", name);
    if (residual >= 0) {
        OL__TRY(ol__graph_check_value(ctx, m, residual));
        const ol__value *r = &m->vals[residual];
        if (r->c != xv->c || r->h != xv->h || r->w != xv->w || r->blk != xv->blk)
            return ol__err(ctx, OL_ESHAPE, "bn %s: residual %dx%dx%d does not match %dx%dx%d", name, r->c, r->h,
                           r->w, xv->c, xv->h, xv->w);
    }
    int c = xv->c, h = xv->h, w = xv->w, blk = xv->blk;
    int id = ol__graph_new_node(ctx, m, OL__OP_BATCHNORM2D, name, x, residual);
    OL__TRY(id);
    int64_t cs[1] = {c};
    int pw = ol__graph_add_param(ctx, m, name, "weight", OL_KIND_NORM, 1, cs);
    OL__TRY(pw);
    int pb = ol__graph_add_param(ctx, m, name, "bias", OL_KIND_NORM, 1, cs);
    OL__TRY(pb);
    int bm = ol__graph_add_buffer(ctx, m, name, "running_mean", c);
    OL__TRY(bm);
    int bv = ol__graph_add_buffer(ctx, m, name, "running_var", c);
    OL__TRY(bv);
    int out = ol__graph_new_value(ctx, m, c, h, w, blk, id);
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

/* per (sample, channel block) partial sums: 2 doubles per channel and sample */
static size_t bn_workspace(const ol_model *m, const ol__node *nd, int N)
{
    return (size_t)N * (size_t)m->vals[nd->out].c * 2 * sizeof(double);
}

/* saved statistics and backward coefficients: mean, invstd [C] each, coef [3C] */
static int bn_setup(ol_ctx *ctx, ol_model *m, ol__node *nd)
{
    int c = m->vals[nd->out].c;
    nd->save_mean = ol__alloc((size_t)c * 5 * sizeof(float));
    if (!nd->save_mean)
        return ol__err(ctx, OL_ENOMEM, "out of memory");
    nd->save_invstd = nd->save_mean + c;
    nd->coef = nd->save_mean + 2 * c;
    return OL_OK;
}

static void bn_destroy(ol__node *nd)
{
    ol__free(nd->save_mean);
    nd->save_mean = nd->save_invstd = nd->coef = NULL;
}

static const char *bn_note(const ol__node *nd) { return nd->in[1] >= 0 ? " +residual" : ""; }

const ol__layer_ops ol__layer_batchnorm2d = {
    .name = "batchnorm2d",
    .forward = bn_forward,
    .backward = bn_backward,
    .workspace_bytes = bn_workspace,
    .setup = bn_setup,
    .destroy = bn_destroy,
    .note = bn_note,
};
