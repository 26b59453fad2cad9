/* Loss landscapes: filter-wise normalization checked filter by filter (biases
 * and BatchNorm zeroed, or the weights with include_bn_bias), deterministic
 * random directions, PCA directions of a trajectory with known principal axes,
 * marching squares on a circle, and grid points: the centre equals
 * ol_evaluate, the interpolation's ends equal the two models, and the values
 * do not depend on the number of replicas. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "optimlab.h"
#include "optimlab/landscape.h"
#include "testutil.h"
#include "tools/contour.h"

static ol_model *model(ol_ctx *ctx, const char *arch, uint64_t seed)
{
    ol_model_params mp = ol_model_default_params();
    ol_model_params_set_arch(ctx, &mp, arch);
    mp.in_h = mp.in_w = 12;
    mp.max_batch = 16;
    mp.seed = seed;
    ol_model *m = NULL;
    ASSERT_OK(ol_model_create(ctx, &mp, &m), ctx);
    return m;
}

static void test_filter_normalization(ol_ctx *ctx)
{
    ol_model *m = model(ctx, "resnet8", 1);
    ol_paramset *ps = ol_model_paramset(m);
    float *d = calloc(ps->numel, sizeof(float)), *d2 = calloc(ps->numel, sizeof(float));
    ol_landscape_random_direction(ps, ps->params, 7, 0, 0, d);
    int filters = 0, zeroed = 0;
    double worst = 0;
    for (int t = 0; t < ps->n; t++) {
        const ol_tensor_desc *td = &ps->t[t];
        if (td->ndim <= 1) {
            for (size_t k = 0; k < td->numel; k++)
                zeroed += d[td->offset + k] == 0.0f;
            ASSERT_TRUE(td->kind != OL_KIND_WEIGHT);
            continue;
        }
        const size_t per = td->numel / (size_t)td->shape[0];
        for (int64_t f = 0; f < td->shape[0]; f++, filters++) {
            double wn = 0, dn = 0;
            for (size_t k = td->offset + f * per; k < td->offset + (f + 1) * per; k++)
                wn += (double)ps->params[k] * ps->params[k], dn += (double)d[k] * d[k];
            worst = fmax(worst, fabs(sqrt(dn) - sqrt(wn)) / sqrt(wn));
        }
    }
    size_t n1d = 0;
    for (int t = 0; t < ps->n; t++)
        n1d += ps->t[t].ndim <= 1 ? ps->t[t].numel : 0;
    printf("filter normalization: %d filters, worst relative norm difference %.2e; %zu bias/BN entries zero\n",
           filters, worst, n1d);
    ASSERT_TRUE(filters > 50);
    ASSERT_TRUE(worst < 1e-5);
    ASSERT_EQ_INT(zeroed, n1d);
    ASSERT_TRUE(n1d > 0);
    /* the padding between tensors stays zero */
    size_t end = 0;
    for (int t = 0; t < ps->n; t++) {
        for (size_t k = end; k < ps->t[t].offset; k++)
            ASSERT_TRUE(d[k] == 0.0f);
        end = ps->t[t].offset + ps->t[t].numel;
    }
    /* same seed and index: the same direction; another index: another one */
    ol_landscape_random_direction(ps, ps->params, 7, 0, 0, d2);
    ASSERT_TRUE(memcmp(d, d2, ps->numel * sizeof(float)) == 0);
    ol_landscape_random_direction(ps, ps->params, 7, 1, 0, d2);
    ASSERT_TRUE(memcmp(d, d2, ps->numel * sizeof(float)) != 0);
    /* include_bn_bias: the direction is the weights themselves on 1-D tensors */
    ol_landscape_random_direction(ps, ps->params, 7, 0, 1, d2);
    int same = 0;
    for (int t = 0; t < ps->n; t++)
        for (size_t k = ps->t[t].offset; ps->t[t].ndim <= 1 && k < ps->t[t].offset + ps->t[t].numel; k++)
            same += d2[k] == ps->params[k];
    ASSERT_EQ_INT(same, n1d);
    free(d);
    free(d2);
    ol_model_free(m);
}

/* Trajectory c + a_i u + b_i v with orthonormal u, v: the PCA directions are
 * +-u and +-v and the rows project to +-(a_i, b_i). */
static void test_pca(ol_ctx *ctx)
{
    ol_model *m = model(ctx, "mlp", 2);
    ol_paramset *ps = ol_model_paramset(m);
    const size_t n = ps->numel;
    float *u = calloc(n, sizeof(float)), *v = calloc(n, sizeof(float)), *d1 = calloc(n, sizeof(float));
    float *d2 = calloc(n, sizeof(float));
    const ol_tensor_desc *w0 = &ps->t[0]; /* a 2-D weight: 1-D tensors are left out of the PCA */
    ASSERT_TRUE(w0->ndim == 2 && w0->numel >= 8);
    for (int k = 0; k < 4; k++) {
        u[w0->offset + k] = 0.5f;     /* unit: 4 x 0.25 */
        v[w0->offset + 4 + k] = 0.5f; /* orthogonal to u */
    }
    enum { M = 6 };
    /* centred and uncorrelated coefficients, so the principal axes are u and v themselves */
    const double a[M] = {2.0, 1.0, 0.0, -1.0, -2.0, 0.0}, b[M] = {0.0, 0.0, 0.5, 0.0, 0.0, -0.5};
    float *traj[M];
    for (int i = 0; i < M; i++) {
        traj[i] = malloc(n * sizeof(float));
        for (size_t k = 0; k < n; k++)
            traj[i][k] = (float)(ps->params[k] + a[i] * u[k] + b[i] * v[k]);
    }
    double xy[2 * M], ratio[2];
    ASSERT_OK(ol_landscape_pca(ctx, ps, ps->params, (const float *const *)traj, M, 0, d1, d2, xy, ratio), ctx);
    double du = 0, dv = 0, n1 = 0;
    for (size_t k = 0; k < n; k++)
        du += (double)d1[k] * u[k], dv += (double)d2[k] * v[k], n1 += (double)d1[k] * d1[k];
    printf("pca: <d1,u> %.6f, <d2,v> %.6f, |d1| %.6f, explained %.4f + %.4f\n", du, dv, sqrt(n1), ratio[0], ratio[1]);
    ASSERT_NEAR(fabs(du), 1.0, 1e-5);
    ASSERT_NEAR(fabs(dv), 1.0, 1e-5);
    ASSERT_NEAR(ratio[0] + ratio[1], 1.0, 1e-6);
    for (int i = 0; i < M; i++) {
        ASSERT_NEAR(xy[2 * i], a[i] * (du > 0 ? 1 : -1), 2e-5 * (1 + fabs(a[i])) + 1e-6);
        ASSERT_NEAR(xy[2 * i + 1], b[i] * (dv > 0 ? 1 : -1), 2e-5 * (1 + fabs(a[i])) + 1e-6);
    }
    /* two rows cannot span a plane */
    ASSERT_TRUE(ol_landscape_pca(ctx, ps, ps->params, (const float *const *)traj, 2, 0, d1, d2, xy, ratio) ==
                OL_EINVAL);
    for (int i = 0; i < M; i++)
        free(traj[i]);
    free(u), free(v), free(d1), free(d2);
    ol_model_free(m);
}

static void test_contours(void)
{
    enum { N = 41 };
    double x[N], z[N * N], seg[4 * 4096];
    for (int i = 0; i < N; i++)
        x[i] = -2.0 + 4.0 * i / (N - 1);
    for (int j = 0; j < N; j++)
        for (int i = 0; i < N; i++)
            z[j * N + i] = x[i] * x[i] + x[j] * x[j];
    int ns = ol__contour_segments(x, x, N, N, z, 1.0, seg, 4096);
    double worst = 0, len = 0;
    for (int s = 0; s < ns; s++) {
        for (int e = 0; e < 2; e++)
            worst = fmax(worst, fabs(hypot(seg[4 * s + 2 * e], seg[4 * s + 2 * e + 1]) - 1.0));
        len += hypot(seg[4 * s + 2] - seg[4 * s], seg[4 * s + 3] - seg[4 * s + 1]);
    }
    printf("contour of x^2+y^2 = 1: %d segments, length %.4f (2 pi = %.4f), radius error %.2e\n", ns, len, 2 * OL__PI,
           worst);
    ASSERT_TRUE(ns > 40 && ns < 4096);
    ASSERT_TRUE(worst < 0.01); /* linear interpolation of x^2 along a cell edge of width 0.1 */
    ASSERT_NEAR(len, 2 * OL__PI, 0.01);
    double lev[64];
    int nl = ol__contour_levels(z, N * N, 10, lev, 64);
    ASSERT_TRUE(nl >= 5 && nl <= 15);
    for (int k = 1; k < nl; k++)
        ASSERT_TRUE(lev[k] > lev[k - 1]);
}

static void eval_points(ol_ctx *ctx, ol_model *m, const ol_landscape_params *lp, const double *ab, int n, double *res)
{
    ol_landscape *ls = NULL;
    ASSERT_OK(ol_landscape_create(ctx, m, lp, &ls), ctx);
    if (ls)
        ASSERT_OK(ol_landscape_eval(ctx, ls, ab, n, res), ctx);
    ol_landscape_free(ls);
}

static void test_points(ol_ctx *ctx)
{
    ol_dataset d;
    ASSERT_OK(ol_dataset_synthetic(ctx, 40, 1, 12, 12, 10, 3, &d), ctx);
    ol_dataset_compute_stats(&d, d.mean, d.std);
    ol_model *m = model(ctx, "resnet8", 3), *m2 = model(ctx, "resnet8", 4);
    ol_paramset *ps = ol_model_paramset(m), *ps2 = ol_model_paramset(m2);
    for (size_t k = 0; k < ps->bnumel; k++) /* distinct running statistics in each model */
        ps->buffers[k] += 0.01f * (float)(k % 7), ps2->buffers[k] += 0.02f * (float)(k % 5);
    float *d1 = calloc(ps->numel, sizeof(float)), *d2 = calloc(ps->numel, sizeof(float));
    ol_landscape_random_direction(ps, ps->params, 5, 0, 0, d1);
    ol_landscape_random_direction(ps, ps->params, 5, 1, 0, d2);
    ol_landscape_params lp = ol_landscape_default_params();
    lp.dir[0] = d1, lp.dir[1] = d2, lp.data[0] = &d, lp.batch = 16;
    enum { P = 7 };
    const double ab[2 * P] = {0, 0, 0.5, 0, 0, -0.5, 0.25, 0.75, -1, 1, 1, 1, 0.1, -0.2};
    double r1[4 * P], r3[4 * P];
    lp.workers = 1;
    eval_points(ctx, m, &lp, ab, P, r1);
    lp.workers = 3;
    eval_points(ctx, m, &lp, ab, P, r3);
    ASSERT_TRUE(memcmp(r1, r3, sizeof r1) == 0); /* one replica or three: the same bits */
    ASSERT_TRUE(isnan(r1[2]) && isnan(r1[3]));   /* no second set */
    double loss, acc;
    ol_ctx *one = ol_ctx_new(1);
    ASSERT_OK(ol_evaluate(one, m, &d, 16, &loss, &acc), one);
    printf("centre: landscape %.17g / %.4f, ol_evaluate %.17g / %.4f; (0.5, 0): %.6f\n", r1[0], r1[1], loss, acc,
           r1[4]);
    ASSERT_TRUE(r1[0] == loss && r1[1] == acc);
    ASSERT_TRUE(r1[4] != loss);
    /* interpolation: a = 0 is m, a = 1 is m2 with its BatchNorm statistics */
    ol_landscape_params li = ol_landscape_default_params();
    li.to_params = ps2->params, li.to_buffers = ps2->buffers, li.data[1] = &d, li.batch = 16, li.workers = 2;
    const double ends[4] = {0, 0, 1, 0};
    double re[8], loss2, acc2;
    eval_points(ctx, m, &li, ends, 2, re);
    ASSERT_OK(ol_evaluate(one, m2, &d, 16, &loss2, &acc2), one);
    printf("interpolation ends: %.17g, %.17g; models %.17g, %.17g\n", re[2], re[6], loss, loss2);
    ASSERT_TRUE(re[2] == loss && re[3] == acc && re[6] == loss2 && re[7] == acc2);
    ol_ctx_free(one);
    free(d1), free(d2);
    ol_model_free(m), ol_model_free(m2);
    ol_dataset_free(&d);
}

int main(void)
{
    ol_ctx *ctx = ol_ctx_new(2);
    test_filter_normalization(ctx);
    test_pca(ctx);
    test_contours();
    test_points(ctx);
    ol_ctx_free(ctx);
    return tu_finish("test_landscape");
}
