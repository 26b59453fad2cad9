/* Loss landscapes: filter-normalized random directions, PCA directions of a
 * trajectory, and grid points evaluated by model replicas in parallel. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "core/rng.h"
#include "optimlab/landscape.h"
#include "optimlab/train.h"

#define LANDSCAPE_RNG_STREAM 0x4c414e44ULL /* "LAND" */

void ol_landscape_filter_normalize(const ol_paramset *ps, const float *weights, float *dir, int include_bn_bias)
{
    for (int t = 0; t < ps->n; t++) {
        const ol_tensor_desc *d = &ps->t[t];
        float *dt = dir + d->offset;
        const float *wt = weights + d->offset;
        if (d->ndim <= 1) {
            for (size_t k = 0; k < d->numel; k++)
                dt[k] = include_bn_bias ? wt[k] : 0.0f;
            continue;
        }
        const size_t nf = (size_t)d->shape[0], per = d->numel / nf;
        for (size_t f = 0; f < nf; f++) {
            double wn = 0.0, dn = 0.0;
            for (size_t k = f * per; k < (f + 1) * per; k++) {
                wn += (double)wt[k] * wt[k];
                dn += (double)dt[k] * dt[k];
            }
            const double s = sqrt(wn) / (sqrt(dn) + 1e-10);
            for (size_t k = f * per; k < (f + 1) * per; k++)
                dt[k] = (float)(dt[k] * s);
        }
    }
}

void ol_landscape_random_direction(const ol_paramset *ps, const float *weights, uint64_t seed, int index,
                                   int include_bn_bias, float *dir)
{
    memset(dir, 0, ps->numel * sizeof(float));
    for (int t = 0; t < ps->n; t++) {
        ol__rng r; /* one stream per (direction, tensor): independent of the tensor order of other models */
        ol__rng_seed(&r, seed, LANDSCAPE_RNG_STREAM + (uint64_t)index, (uint64_t)t);
        float *dt = dir + ps->t[t].offset;
        for (size_t k = 0; k < ps->t[t].numel; k++)
            dt[k] = (float)ol__rng_normal(&r);
    }
    ol_landscape_filter_normalize(ps, weights, dir, include_bn_bias);
}

/* Eigen-decomposition of the symmetric m x m matrix a (destroyed) by cyclic
 * Jacobi rotations: eigenvalues in ev, eigenvectors in the columns of v. */
static void jacobi_eigen(double *a, int m, double *ev, double *v)
{
    for (int i = 0; i < m * m; i++)
        v[i] = (i / m == i % m) ? 1.0 : 0.0;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0.0, diag = 0.0;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < m; j++) {
                if (i == j)
                    diag += a[i * m + j] * a[i * m + j];
                else
                    off += a[i * m + j] * a[i * m + j];
            }
        if (off <= 1e-30 * (diag + 1e-300))
            break;
        for (int p = 0; p < m; p++)
            for (int q = p + 1; q < m; q++) {
                double apq = a[p * m + q];
                if (apq == 0.0)
                    continue;
                double theta = (a[q * m + q] - a[p * m + p]) / (2.0 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
                for (int k = 0; k < m; k++) { /* A <- A J */
                    double akp = a[k * m + p], akq = a[k * m + q];
                    a[k * m + p] = c * akp - s * akq;
                    a[k * m + q] = s * akp + c * akq;
                }
                for (int k = 0; k < m; k++) { /* A <- J^T A */
                    double apk = a[p * m + k], aqk = a[q * m + k];
                    a[p * m + k] = c * apk - s * aqk;
                    a[q * m + k] = s * apk + c * aqk;
                }
                for (int k = 0; k < m; k++) {
                    double vkp = v[k * m + p], vkq = v[k * m + q];
                    v[k * m + p] = c * vkp - s * vkq;
                    v[k * m + q] = s * vkp + c * vkq;
                }
            }
    }
    for (int i = 0; i < m; i++)
        ev[i] = a[i * m + i];
}

/* Row i of the PCA matrix, element k: traj[i] - centre, zero on 1-D tensors unless kept. */
static double *pca_rows(const ol_paramset *ps, const float *centre, const float *const *traj, int m, int keep1d)
{
    double *x = malloc((size_t)m * ps->numel * sizeof(double));
    if (!x)
        return NULL;
    for (int i = 0; i < m; i++) {
        double *xi = x + (size_t)i * ps->numel;
        memset(xi, 0, ps->numel * sizeof(double));
        for (int t = 0; t < ps->n; t++) {
            if (ps->t[t].ndim <= 1 && !keep1d)
                continue;
            for (size_t k = ps->t[t].offset; k < ps->t[t].offset + ps->t[t].numel; k++)
                xi[k] = (double)traj[i][k] - (double)centre[k];
        }
    }
    return x;
}

int ol_landscape_pca(ol_ctx *ctx, const ol_paramset *ps, const float *centre, const float *const *traj, int m,
                     int include_bn_bias, float *dir1, float *dir2, double *xy, double ratio[2])
{
    if (m < 3)
        return ol__err(ctx, OL_EINVAL, "PCA directions need at least 3 checkpoints, got %d", m);
    const size_t n = ps->numel;
    double *r = pca_rows(ps, centre, traj, m, include_bn_bias);
    double *g = calloc((size_t)m * m * 2 + (size_t)m, sizeof(double));
    double *mu = malloc(n * sizeof(double));
    if (!r || !g || !mu) {
        free(r);
        free(g);
        free(mu);
        return ol__err(ctx, OL_ENOMEM, "out of memory for the PCA of %d checkpoints", m);
    }
    double *v = g + (size_t)m * m, *ev = v + (size_t)m * m;
    /* Gram matrix of the centred rows: <r_i - mu, r_j - mu> */
    for (size_t k = 0; k < n; k++) {
        double s = 0.0;
        for (int i = 0; i < m; i++)
            s += r[(size_t)i * n + k];
        mu[k] = s / m;
        for (int i = 0; i < m; i++)
            for (int j = i; j < m; j++)
                g[i * m + j] += (r[(size_t)i * n + k] - mu[k]) * (r[(size_t)j * n + k] - mu[k]);
    }
    for (int i = 0; i < m; i++)
        for (int j = 0; j < i; j++)
            g[i * m + j] = g[j * m + i];
    jacobi_eigen(g, m, ev, v);
    int top[2] = {-1, -1};
    double total = 0.0;
    for (int i = 0; i < m; i++) {
        total += fmax(ev[i], 0.0);
        if (top[0] < 0 || ev[i] > ev[top[0]]) {
            top[1] = top[0];
            top[0] = i;
        } else if (top[1] < 0 || ev[i] > ev[top[1]])
            top[1] = i;
    }
    if (!(ev[top[0]] > 0.0) || !(ev[top[1]] > 1e-12 * ev[top[0]])) {
        free(r);
        free(g);
        free(mu);
        return ol__err(ctx, OL_EINVAL, "the %d checkpoints do not span two dimensions: no second PCA direction", m);
    }
    float *dirs[2] = {dir1, dir2};
    for (int p = 0; p < 2; p++) {
        const int e = top[p];
        int big = 0; /* svd_flip: the largest |u| entry positive */
        for (int i = 1; i < m; i++)
            if (fabs(v[i * m + e]) > fabs(v[big * m + e]))
                big = i;
        const double scale = (v[big * m + e] < 0 ? -1.0 : 1.0) / sqrt(ev[e]);
        for (size_t k = 0; k < n; k++) { /* component = X^T u / sqrt(lambda), a unit vector */
            double s = 0.0;
            for (int i = 0; i < m; i++)
                s += (r[(size_t)i * n + k] - mu[k]) * v[i * m + e];
            dirs[p][k] = (float)(s * scale);
        }
        ratio[p] = total > 0 ? ev[e] / total : 0.0;
    }
    for (int i = 0; i < m; i++) { /* project_2D 'cos': <r_i, d> / |d| */
        double dot[2] = {0, 0}, nn[2] = {0, 0};
        for (size_t k = 0; k < n; k++)
            for (int p = 0; p < 2; p++) {
                dot[p] += r[(size_t)i * n + k] * dirs[p][k];
                nn[p] += (double)dirs[p][k] * dirs[p][k];
            }
        xy[2 * i] = dot[0] / sqrt(nn[0]);
        xy[2 * i + 1] = dot[1] / sqrt(nn[1]);
    }
    free(r);
    free(g);
    free(mu);
    return OL_OK;
}

struct ol_landscape {
    ol_landscape_params p;
    const ol_paramset *centre; /* the centre model's parameter set (params and buffers) */
    int workers;
    ol_ctx **ctx;    /* one per replica */
    ol_model **rep;  /* replicas */
    float *w, *bw;   /* the centre's parameters and BatchNorm statistics, copied */
};

ol_landscape_params ol_landscape_default_params(void)
{
    ol_landscape_params p;
    memset(&p, 0, sizeof p);
    p.batch = 256;
    p.workers = 1;
    return p;
}

void ol_landscape_free(ol_landscape *ls)
{
    if (!ls)
        return;
    for (int i = 0; i < ls->workers; i++) {
        if (ls->rep)
            ol_model_free(ls->rep[i]);
        if (ls->ctx)
            ol_ctx_free(ls->ctx[i]);
    }
    free(ls->rep);
    free(ls->ctx);
    ol__free(ls->w);
    ol__free(ls->bw);
    free(ls);
}

size_t ol_landscape_memory_bytes(const ol_landscape *ls)
{
    size_t b = 0;
    for (int i = 0; i < ls->workers; i++) {
        const ol_paramset *ps = ol_model_paramset(ls->rep[i]);
        b += ol_model_memory_bytes(ls->rep[i]) + (2 * ps->numel + ps->bnumel) * sizeof(float);
    }
    return b;
}

/* Replica i on its own thread: a context with one compute thread, and a model
 * of the centre's architecture sized for the evaluation batch. */
static int make_replica(ol_ctx *ctx, ol_landscape *ls, int i, const ol_model_params *mp)
{
    omp_set_num_threads(1); /* this thread's nested regions and oneDNN: one thread */
    ls->ctx[i] = ol_ctx_new(0);
    if (!ls->ctx[i])
        return OL_ENOMEM;
    int rc = ol_ctx_set_backend(ls->ctx[i], ol_ctx_backend(ctx));
    if (rc >= 0)
        rc = ol_model_create(ls->ctx[i], mp, &ls->rep[i]);
    if (rc >= 0)
        rc = ol_model_reserve(ls->ctx[i], ls->rep[i], ls->p.batch);
    return rc;
}

int ol_landscape_create(ol_ctx *ctx, ol_model *m, const ol_landscape_params *lp, ol_landscape **out)
{
    *out = NULL;
    if (lp->batch <= 0 || lp->workers <= 0 || lp->workers > 1024)
        return ol__err(ctx, OL_EINVAL, "landscape: batch %d and workers %d must be positive", lp->batch, lp->workers);
    if (!lp->to_params && !lp->dir[0])
        return ol__err(ctx, OL_EINVAL, "landscape: no direction and no interpolation target");
    ol_landscape *ls = calloc(1, sizeof *ls);
    if (!ls)
        return ol__err(ctx, OL_ENOMEM, "out of memory");
    ls->p = *lp;
    ls->workers = lp->workers;
    ls->ctx = calloc((size_t)lp->workers, sizeof *ls->ctx);
    ls->rep = calloc((size_t)lp->workers, sizeof *ls->rep);
    const ol_paramset *ps = ol_model_paramset(m);
    ls->w = ol__alloc(ps->numel * sizeof(float));
    ls->bw = ol__alloc((ps->bnumel ? ps->bnumel : 1) * sizeof(float));
    if (!ls->ctx || !ls->rep || !ls->w || !ls->bw) {
        ol_landscape_free(ls);
        return ol__err(ctx, OL_ENOMEM, "out of memory for the landscape replicas");
    }
    memcpy(ls->w, ps->params, ps->numel * sizeof(float));
    memcpy(ls->bw, ps->buffers, ps->bnumel * sizeof(float));
    ol_model_params mp = *ol_model_get_params(m);
    mp.max_batch = lp->batch;
    int rc = OL_OK;
    char msg[1024] = "";
#pragma omp parallel num_threads(lp->workers)
    {
        const int i = omp_get_thread_num();
        int r = make_replica(ctx, ls, i, &mp);
#pragma omp critical(ol_landscape_err)
        if (r < 0 && rc >= 0) {
            rc = r;
            snprintf(msg, sizeof msg, "%s", ls->ctx[i] ? ol_ctx_errmsg(ls->ctx[i]) : "out of memory");
        }
    }
    for (int i = 0; rc >= 0 && i < lp->workers; i++)
        if (!ls->rep[i])
            rc = ol__err(ctx, OL_ENOMEM, "landscape: only %d threads started for %d workers", i, lp->workers);
    if (rc < 0) {
        ol_landscape_free(ls);
        return ol__err(ctx, rc, "landscape replica: %s", msg);
    }
    *out = ls;
    return OL_OK;
}

/* The parameters (and BatchNorm statistics) of point (a, b) into replica i. */
static void set_point(const ol_landscape *ls, int i, double a, double b)
{
    ol_paramset *ps = ol_model_paramset(ls->rep[i]);
    const float *w = ls->w, *d1 = ls->p.dir[0], *d2 = ls->p.dir[1], *w2 = ls->p.to_params;
    if (w2) { /* (1 - a) w + a w2: exactly w at a = 0 and w2 at a = 1 */
        for (size_t k = 0; k < ps->numel; k++)
            ps->params[k] = (float)((1.0 - a) * w[k] + a * w2[k]);
        const float *b2 = ls->p.to_buffers;
        for (size_t k = 0; k < ps->bnumel; k++)
            ps->buffers[k] = b2 ? (float)((1.0 - a) * ls->bw[k] + a * b2[k]) : ls->bw[k];
        return;
    }
    if (d2)
        for (size_t k = 0; k < ps->numel; k++)
            ps->params[k] = (float)(w[k] + a * d1[k] + b * d2[k]);
    else
        for (size_t k = 0; k < ps->numel; k++)
            ps->params[k] = (float)(w[k] + a * d1[k]);
    memcpy(ps->buffers, ls->bw, ps->bnumel * sizeof(float)); /* the centre's running statistics */
}

static int eval_point(ol_landscape *ls, int i, double a, double b, double *res)
{
    set_point(ls, i, a, b);
    for (int s = 0; s < 2; s++) {
        res[2 * s] = res[2 * s + 1] = NAN;
        if (!ls->p.data[s])
            continue;
        OL__TRY(ol_evaluate(ls->ctx[i], ls->rep[i], ls->p.data[s], ls->p.batch, &res[2 * s], &res[2 * s + 1]));
    }
    return OL_OK;
}

int ol_landscape_eval(ol_ctx *ctx, ol_landscape *ls, const double *ab, int n, double *res)
{
    int rc = OL_OK;
    char msg[1024] = "";
#pragma omp parallel num_threads(ls->workers)
    {
        const int i = omp_get_thread_num();
        int mine = OL_OK; /* this thread's first failure; the others finish their points */
        omp_set_num_threads(1);
#pragma omp for schedule(dynamic, 1)
        for (int k = 0; k < n; k++)
            if (mine >= 0)
                mine = eval_point(ls, i, ab[2 * k], ab[2 * k + 1], res + 4 * k);
#pragma omp critical(ol_landscape_err)
        if (mine < 0 && rc >= 0) {
            rc = mine;
            snprintf(msg, sizeof msg, "%s", ol_ctx_errmsg(ls->ctx[i]));
        }
    }
    return rc < 0 ? ol__err(ctx, rc, "%s", msg) : OL_OK;
}
