/* Hessian-vector products by central differences of gradients, power
 * iteration with deflation and Hutchinson's trace estimator. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "core/rng.h"
#include "optimlab/hessian.h"

#define EIGEN_RNG_STREAM 0x45494730ULL /* "EIG0" */
#define TRACE_RNG_STREAM 0x54524330ULL /* "TRC0" */
#define SLQ_RNG_STREAM 0x534c5130ULL   /* "SLQ0" */
#define EIGEN_MAX_K 16

/* LAPACK (in OpenBLAS): eigenvalues and eigenvectors of a symmetric tridiagonal matrix; the
 * trailing argument is the Fortran length of jobz. */
extern void dstev_(const char *jobz, const int *n, double *d, double *e, double *z, const int *ldz, double *work,
                   int *info, size_t jobz_len);

static double dot(const double *a, const double *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* v /= |v|; returns |v| (v untouched when 0). */
static double normalize(double *v, size_t n)
{
    const double s = sqrt(dot(v, v, n));
    if (s > 0.0)
        for (size_t i = 0; i < n; i++)
            v[i] /= s;
    return s;
}

/* Random vector: N(0,1) or +-1 entries, one stream per (purpose + vector,
 * tensor), so a vector does not depend on how many were drawn before. */
static void draw(const ol_linop *op, uint64_t seed, uint64_t stream, int rademacher, double *v)
{
    const ol_paramset *ps = op->layout;
    memset(v, 0, op->n * sizeof(double));
    const int nt = ps ? ps->n : 1;
    for (int t = 0; t < nt; t++) {
        const size_t off = ps ? ps->t[t].offset : 0, cnt = ps ? ps->t[t].numel : op->n;
        ol__rng r;
        ol__rng_seed(&r, seed, stream, (uint64_t)t);
        for (size_t k = off; k < off + cnt; k++)
            v[k] = rademacher ? ((ol__rng_u64(&r) >> 63) ? 1.0 : -1.0) : ol__rng_normal(&r);
    }
}

ol_eigen_params ol_eigen_default_params(void)
{
    ol_eigen_params ep = {.max_iter = 100, .tol = 1e-3, .seed = 0};
    return ep;
}

ol_slq_params ol_slq_default_params(void)
{
    ol_slq_params p = {.steps = 100, .runs = 1, .seed = 0};
    return p;
}

/* v minus its projections on the rows of q (m rows of n, orthonormal), one after the other. */
static void project_out(double *v, const double *q, int m, size_t n)
{
    for (int j = 0; j < m; j++) {
        const double *e = q + (size_t)j * n;
        const double c = dot(v, e, n);
        for (size_t i = 0; i < n; i++)
            v[i] -= c * e[i];
    }
}

/* v minus its projections on the rows of q, then normalised. */
static void orthonormalize(double *v, const double *q, int m, size_t n)
{
    project_out(v, q, m, n);
    normalize(v, n);
}

/* Lanczos's full reorthogonalisation: twice ("twice is enough": the second pass removes what the
 * rounding of the first left). */
static void reorthogonalize(double *w, const double *q, int m, size_t n)
{
    project_out(w, q, m, n);
    project_out(w, q, m, n);
}

/* One Lanczos run into alpha[0..k), beta[0..k-1) with the basis in q; returns k, the steps done. */
static int lanczos(ol_ctx *ctx, const ol_linop *op, const ol_slq_params *p, int run, double *q, double *w,
                   double *alpha, double *beta)
{
    const size_t n = op->n;
    draw(op, p->seed, SLQ_RNG_STREAM + (uint64_t)run, 1, q);
    normalize(q, n);
    double scale = 0.0;
    for (int j = 0; j < p->steps; j++) {
        const double *v = q + (size_t)j * n;
        OL__TRY(op->apply(ctx, op->user, v, w));
        alpha[j] = dot(w, v, n);
        scale = fmax(scale, fabs(alpha[j]));
        if (j + 1 == p->steps)
            return j + 1;
        const double *prev = j ? q + (size_t)(j - 1) * n : NULL;
        for (size_t i = 0; i < n; i++)
            w[i] -= alpha[j] * v[i] + (prev ? beta[j - 1] * prev[i] : 0.0);
        reorthogonalize(w, q, j + 1, n);
        beta[j] = sqrt(dot(w, w, n));
        /* an invariant subspace: the spectrum seen from v is complete */
        if (!(beta[j] > 1e-10 * (scale > 0.0 ? scale : 1.0)))
            return j + 1;
        double *next = q + (size_t)(j + 1) * n;
        for (size_t i = 0; i < n; i++)
            next[i] = w[i] / beta[j];
    }
    return p->steps;
}

int ol_eigen_slq(ol_ctx *ctx, const ol_linop *op, const ol_slq_params *p, double *nodes, double *weights,
                 int *used)
{
    if (!op || !op->apply || !p || !nodes || !weights)
        return ol__err(ctx, OL_EINVAL, "stochastic Lanczos: missing operator, parameters or output");
    if (p->steps < 1 || (size_t)p->steps > op->n || p->runs < 1)
        return ol__err(ctx, OL_EINVAL, "stochastic Lanczos: %d steps must be 1 to %zu (the dimension), %d runs at least 1",
                       p->steps, op->n, p->runs);
    const size_t n = op->n, m = (size_t)p->steps;
    OL__TRY(ol_ctx_check_memory(ctx, (uint64_t)((m + 1) * n * sizeof(double)), "the Lanczos vectors"));
    double *q = malloc(m * n * sizeof(double)), *w = malloc(n * sizeof(double));
    double *alpha = malloc(m * sizeof(double)), *beta = malloc(m * sizeof(double));
    double *z = malloc(m * m * sizeof(double)), *work = malloc(2 * m * sizeof(double));
    int rc = q && w && alpha && beta && z && work ? OL_OK : ol__err(ctx, OL_ENOMEM, "out of memory for %zu Lanczos vectors", m);
    for (int r = 0; r < p->runs && rc >= 0; r++) {
        rc = lanczos(ctx, op, p, r, q, w, alpha, beta);
        if (rc < 0)
            break;
        const int k = rc;
        int info = 0;
        rc = OL_OK;
        if (k > 1)
            dstev_("V", &k, alpha, beta, z, &k, work, &info, 1);
        else
            z[0] = 1.0;
        if (info != 0) {
            rc = ol__err(ctx, OL_EBACKEND, "stochastic Lanczos: the tridiagonal eigensolver failed (LAPACK info %d)", info);
            break;
        }
        double *nr = nodes + (size_t)r * m, *wr = weights + (size_t)r * m;
        for (size_t j = 0; j < m; j++) {
            const size_t jj = j < (size_t)k ? j : (size_t)k - 1;
            nr[j] = alpha[jj];
            wr[j] = j < (size_t)k ? z[j * (size_t)k] * z[j * (size_t)k] : 0.0;
        }
        if (used)
            used[r] = k;
    }
    free(q);
    free(w);
    free(alpha);
    free(beta);
    free(z);
    free(work);
    return rc < 0 ? rc : OL_OK;
}

int ol_slq_density(ol_ctx *ctx, const double *nodes, const double *weights, int runs, int steps, int nbins,
                   double sigma2, double *grid, double *density)
{
    if (runs < 1 || steps < 1 || nbins < 2 || !(sigma2 > 0.0) || !nodes || !weights || !grid || !density)
        return ol__err(ctx, OL_EINVAL, "eigenvalue density: %d runs, %d steps, %d bins, variance %g", runs, steps,
                       nbins, sigma2);
    double lo = 0.0, hi = 0.0;
    for (int r = 0; r < runs; r++) {
        double mn = INFINITY, mx = -INFINITY;
        for (int j = 0; j < steps; j++) {
            const double x = nodes[(size_t)r * steps + j];
            mn = fmin(mn, x), mx = fmax(mx, x);
        }
        lo += mn / runs, hi += mx / runs;
    }
    lo -= 0.01, hi += 0.01;
    const double var = sigma2 * fmax(1.0, hi - lo), dx = (hi - lo) / (nbins - 1);
    const double norm = 1.0 / sqrt(2.0 * 3.14159265358979323846 * var);
    double total = 0.0;
    for (int b = 0; b < nbins; b++) {
        const double x = lo + b * dx;
        double d = 0.0;
        for (size_t j = 0; j < (size_t)runs * steps; j++) {
            const double t = x - nodes[j];
            d += weights[j] * norm * exp(-t * t / (2.0 * var));
        }
        grid[b] = x;
        density[b] = d / runs;
        total += density[b];
    }
    if (!(total > 0.0))
        return ol__err(ctx, OL_ENONFINITE, "eigenvalue density: no mass on the grid");
    for (int b = 0; b < nbins; b++)
        density[b] /= total * dx;
    return OL_OK;
}

ol_trace_params ol_trace_default_params(void)
{
    ol_trace_params tp = {.max_samples = 100, .min_samples = 10, .tol = 0.01, .seed = 0};
    return tp;
}

/* One eigenpair by power iteration, orthogonal to the m rows of q; v holds the start vector. */
static int power_one(ol_ctx *ctx, const ol_linop *op, const ol_eigen_params *ep, const double *q, int m, double *v,
                     double *hv, double *lambda, int *iters, int *converged)
{
    const size_t n = op->n;
    double prev = 0.0, lam = 0.0;
    *iters = 0;
    *converged = 0;
    for (int it = 0; it < ep->max_iter; it++) {
        orthonormalize(v, q, m, n);
        OL__TRY(op->apply(ctx, op->user, v, hv));
        lam = dot(v, hv, n);
        if (!isfinite(lam))
            return ol__err(ctx, OL_ENONFINITE, "power iteration: non-finite Rayleigh quotient at iteration %d", it + 1);
        *iters = it + 1;
        if (normalize(hv, n) == 0.0) { /* v in the null space: eigenvalue 0 */
            *converged = 1;
            break;
        }
        memcpy(v, hv, n * sizeof(double));
        if (it > 0 && fabs(lam - prev) / (fabs(prev) + 1e-6) < ep->tol) {
            *converged = 1;
            break;
        }
        prev = lam;
    }
    orthonormalize(v, q, m, n);
    *lambda = lam;
    return OL_OK;
}

int ol_eigen_power(ol_ctx *ctx, const ol_linop *op, int k, const ol_eigen_params *ep, double *eigvals,
                   double *eigvecs, ol_eigen_info *info)
{
    if (k < 1 || k > EIGEN_MAX_K)
        return ol__err(ctx, OL_EINVAL, "top-k eigenvalues: k must be in 1..%d, got %d", EIGEN_MAX_K, k);
    if (ep->max_iter < 1 || !(ep->tol >= 0.0))
        return ol__err(ctx, OL_EINVAL, "power iteration: max_iter %d must be >= 1 and tol %g >= 0", ep->max_iter,
                       ep->tol);
    if ((size_t)k > op->n)
        return ol__err(ctx, OL_EINVAL, "%d eigenvalues asked of a %zu-dimensional operator", k, op->n);
    const size_t n = op->n;
    double *q = eigvecs ? eigvecs : malloc((size_t)k * n * sizeof(double));
    double *hv = malloc(n * sizeof(double));
    if (!q || !hv) {
        if (!eigvecs)
            free(q);
        free(hv);
        return ol__err(ctx, OL_ENOMEM, "out of memory for %d vectors of %zu", k + 1, n);
    }
    if (info)
        memset(info, 0, sizeof *info);
    int rc = OL_OK;
    for (int i = 0; i < k && rc >= 0; i++) {
        double *v = q + (size_t)i * n;
        int it = 0, conv = 0;
        draw(op, ep->seed, EIGEN_RNG_STREAM + (uint64_t)i, 0, v);
        rc = power_one(ctx, op, ep, q, i, v, hv, &eigvals[i], &it, &conv);
        if (info) {
            info->iters[i] = it;
            info->converged[i] = conv;
        }
    }
    if (!eigvecs)
        free(q);
    free(hv);
    return rc;
}

int ol_trace_hutchinson(ol_ctx *ctx, const ol_linop *op, const ol_trace_params *tp, ol_trace_result *out,
                        double *values)
{
    memset(out, 0, sizeof *out);
    if (tp->max_samples < 1 || tp->min_samples < 1 || !(tp->tol >= 0.0))
        return ol__err(ctx, OL_EINVAL, "Hutchinson trace: max_samples %d and min_samples %d must be >= 1, tol %g >= 0",
                       tp->max_samples, tp->min_samples, tp->tol);
    const size_t n = op->n;
    double *z = malloc(n * sizeof(double)), *hz = malloc(n * sizeof(double));
    if (!z || !hz) {
        free(z);
        free(hz);
        return ol__err(ctx, OL_ENOMEM, "out of memory for 2 vectors of %zu", n);
    }
    double mean = 0.0, m2 = 0.0; /* Welford's running mean and sum of squared deviations */
    int rc = OL_OK;
    for (int s = 0; s < tp->max_samples; s++) {
        draw(op, tp->seed, TRACE_RNG_STREAM + (uint64_t)s, 1, z);
        rc = op->apply(ctx, op->user, z, hz);
        if (rc < 0)
            break;
        const double x = dot(z, hz, n);
        if (!isfinite(x)) {
            rc = ol__err(ctx, OL_ENONFINITE, "Hutchinson trace: non-finite z'Hz at sample %d", s + 1);
            break;
        }
        if (values)
            values[s] = x;
        const double d = x - mean;
        mean += d / (s + 1);
        m2 += d * (x - mean);
        out->samples = s + 1;
        out->trace = mean;
        out->std_err = s > 0 ? sqrt(m2 / s / (s + 1)) : INFINITY;
        if (tp->tol > 0.0 && s + 1 >= tp->min_samples && s > 0 && out->std_err <= tp->tol * fabs(mean))
            break;
    }
    free(z);
    free(hz);
    return rc;
}

struct ol_hessian {
    ol_model *m;
    ol_paramset *ps;
    const ol_dataset *data;
    int batch;
    double fd_step;
    float *x;
    int32_t *y;
    int64_t *idx;
    float *w0;   /* the weights, kept while a product perturbs them */
    double *gm;  /* the gradient at w - t v */
    unsigned char *pattern; /* the ReLU pattern at the weights of creation, [samples][relu units]; NULL: free */
    size_t units;
    int64_t passes;
    int outs; /* labels per sample */
};

/* Batch b's samples into h->x, h->y; returns the batch's size. */
static int load_batch(ol_hessian *h, int64_t s)
{
    const ol_dataset *d = h->data;
    const int b = (int)(d->n - s < h->batch ? d->n - s : h->batch);
    for (int i = 0; i < b; i++)
        h->idx[i] = s + i;
    ol_dataset_fill(d, h->idx, b, NULL, 0, 0, h->x, h->y);
    return b;
}

/* One eval-mode forward over the samples, recording which ReLU outputs are positive. */
static int record_pattern(ol_ctx *ctx, ol_hessian *h)
{
    const ol_dataset *d = h->data;
    h->units = ol_model_relu_units(h->m);
    const uint64_t bytes = (uint64_t)d->n * h->units;
    if (h->units == 0)
        return OL_OK;
    OL__TRY(ol_ctx_check_memory(ctx, bytes, "the ReLU pattern of the Hessian's samples"));
    h->pattern = malloc((size_t)bytes);
    if (!h->pattern)
        return ol__err(ctx, OL_ENOMEM, "out of memory for the ReLU pattern (%llu bytes)", (unsigned long long)bytes);
    int rc = OL_OK;
    for (int64_t s = 0; s < d->n && rc >= 0; s += h->batch) {
        const int b = load_batch(h, s);
        ol_model_set_relu_pattern(h->m, OL_RELU_RECORD, h->pattern + (size_t)s * h->units);
        rc = ol_model_forward(ctx, h->m, h->x, b, 0);
    }
    ol_model_set_relu_pattern(h->m, OL_RELU_FREE, NULL);
    return rc;
}

ol_hessian_params ol_hessian_default_params(void)
{
    ol_hessian_params hp = {.data = NULL, .batch = 256, .fd_step = 1e-4, .freeze_relu = 1};
    return hp;
}

void ol_hessian_free(ol_hessian *h)
{
    if (!h)
        return;
    ol__free(h->x);
    ol__free(h->y);
    free(h->idx);
    free(h->w0);
    free(h->gm);
    free(h->pattern);
    free(h);
}

static int check_params(ol_ctx *ctx, ol_model *m, const ol_hessian_params *hp)
{
    const ol_dataset *d = hp->data;
    if (!d || d->n < 1)
        return ol__err(ctx, OL_EINVAL, "the Hessian needs at least one sample");
    if (hp->batch < 1 || !(hp->fd_step > 0.0 && hp->fd_step < 1.0))
        return ol__err(ctx, OL_EINVAL, "Hessian: batch %d must be >= 1 and fd_step %g in (0, 1)", hp->batch,
                       hp->fd_step);
    if (ol_dataset_outputs_per_sample(d) != ol_model_outputs_per_sample(m))
        return ol__err(ctx, OL_ESHAPE, "the data has %d labels per sample, the model %d outputs",
                       ol_dataset_outputs_per_sample(d), ol_model_outputs_per_sample(m));
    const ol_model_params *mp = ol_model_get_params(m);
    if (d->c != mp->in_c || d->h != mp->in_h || d->w != mp->in_w)
        return ol__err(ctx, OL_ESHAPE, "images are %dx%dx%d but the model expects %dx%dx%d", d->c, d->h, d->w,
                       mp->in_c, mp->in_h, mp->in_w);
    if (d->num_classes > mp->num_classes)
        return ol__err(ctx, OL_ESHAPE, "dataset has %d classes, the model %d", d->num_classes, mp->num_classes);
    return OL_OK;
}

int ol_hessian_create(ol_ctx *ctx, ol_model *m, const ol_hessian_params *hp, ol_hessian **out)
{
    *out = NULL;
    OL__TRY(check_params(ctx, m, hp));
    ol_hessian *h = calloc(1, sizeof *h);
    if (!h)
        return ol__err(ctx, OL_ENOMEM, "out of memory");
    h->m = m;
    h->ps = ol_model_paramset(m);
    h->data = hp->data;
    h->batch = hp->batch < hp->data->n ? hp->batch : (int)hp->data->n;
    h->fd_step = hp->fd_step;
    const size_t per = (size_t)hp->data->c * hp->data->h * hp->data->w, n = h->ps->numel;
    h->x = ol__alloc((size_t)h->batch * per * sizeof(float));
    h->outs = ol_model_outputs_per_sample(m); /* a language model: a label per position */
    h->y = ol__alloc((size_t)h->batch * (size_t)h->outs * sizeof(int32_t));
    h->idx = malloc((size_t)h->batch * sizeof(int64_t));
    h->w0 = malloc(n * sizeof(float));
    h->gm = malloc(n * sizeof(double));
    int rc = h->x && h->y && h->idx && h->w0 && h->gm ? OL_OK : ol__err(ctx, OL_ENOMEM, "out of memory");
    if (rc >= 0)
        rc = ol_model_reserve(ctx, m, h->batch);
    if (rc >= 0 && hp->freeze_relu)
        rc = record_pattern(ctx, h);
    if (rc < 0) {
        ol_hessian_free(h);
        return rc;
    }
    *out = h;
    return OL_OK;
}

size_t ol_hessian_dim(const ol_hessian *h)
{
    return h->ps->numel;
}

int64_t ol_hessian_passes(const ol_hessian *h)
{
    return h->passes;
}

int ol_hessian_gradient(ol_ctx *ctx, ol_hessian *h, double *g, double *loss)
{
    const ol_dataset *d = h->data;
    const size_t n = h->ps->numel;
    const float *grads = h->ps->grads;
    double total = 0.0;
    memset(g, 0, n * sizeof(double));
    int rc = OL_OK;
    for (int64_t s = 0; s < d->n && rc >= 0; s += h->batch) {
        const int b = load_batch(h, s);
        ol_model_zero_grads(h->m);
        double l = 0.0;
        int c = 0;
        if (h->pattern)
            ol_model_set_relu_pattern(h->m, OL_RELU_APPLY, h->pattern + (size_t)s * h->units);
        rc = ol_model_forward(ctx, h->m, h->x, b, 0); /* eval mode: running statistics, nothing updated */
        if (rc >= 0)
            rc = ol_model_loss(ctx, h->m, h->y, b, 0.0f, 1.0f / ((float)b * (float)h->outs), &l, &c);
        if (rc >= 0)
            rc = ol_model_backward(ctx, h->m);
        ol_model_set_relu_pattern(h->m, OL_RELU_FREE, NULL);
        if (rc < 0)
            break;
        const double wgt = (double)b / (double)d->n; /* batch mean -> mean over all samples */
        for (size_t i = 0; i < n; i++)
            g[i] += wgt * (double)grads[i];
        total += l;
    }
    if (rc < 0)
        return rc;
    h->passes++;
    if (loss)
        *loss = total / ((double)d->n * h->outs);
    return OL_OK;
}

/* params = w0 + t v on the tensors (padding stays zero). */
static void set_params(ol_hessian *h, const double *v, double t)
{
    const ol_paramset *ps = h->ps;
    for (int k = 0; k < ps->n; k++)
        for (size_t i = ps->t[k].offset; i < ps->t[k].offset + ps->t[k].numel; i++)
            ps->params[i] = (float)((double)h->w0[i] + t * v[i]);
}

int ol_hessian_vector_product(ol_ctx *ctx, ol_hessian *h, const double *v, double *hv, double fd_step)
{
    const ol_paramset *ps = h->ps;
    const size_t n = ps->numel;
    const double delta = fd_step > 0.0 ? fd_step : h->fd_step;
    double wn = 0.0;
    for (size_t i = 0; i < n; i++)
        wn += (double)ps->params[i] * ps->params[i];
    const double vn = sqrt(dot(v, v, n));
    if (vn == 0.0) {
        memset(hv, 0, n * sizeof(double));
        return OL_OK;
    }
    if (!isfinite(vn))
        return ol__err(ctx, OL_ENONFINITE, "Hessian-vector product of a non-finite vector");
    const double t = delta * fmax(sqrt(wn), 1.0) / vn;
    memcpy(h->w0, ps->params, n * sizeof(float));
    set_params(h, v, t);
    int rc = ol_hessian_gradient(ctx, h, hv, NULL);
    if (rc >= 0) {
        set_params(h, v, -t);
        rc = ol_hessian_gradient(ctx, h, h->gm, NULL);
    }
    memcpy(ps->params, h->w0, n * sizeof(float)); /* bitwise the weights we started from */
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        hv[i] = (hv[i] - h->gm[i]) / (2.0 * t);
    return OL_OK;
}

static int hvp_apply(ol_ctx *ctx, void *user, const double *v, double *out)
{
    return ol_hessian_vector_product(ctx, (ol_hessian *)user, v, out, 0.0);
}

ol_linop ol_hessian_linop(ol_hessian *h)
{
    ol_linop op = {.n = h->ps->numel, .apply = hvp_apply, .user = h, .layout = h->ps};
    return op;
}

ol_eps_sharpness_params ol_eps_sharpness_default_params(void)
{
    ol_eps_sharpness_params p = {.eps = 1e-3, .iters = 20, .step = 0.25};
    return p;
}

int ol_hessian_eps_sharpness(ol_ctx *ctx, ol_hessian *h, const ol_eps_sharpness_params *p,
                             ol_eps_sharpness_result *out)
{
    if (!(p->eps > 0.0 && p->eps < 1.0) || p->iters < 1 || !(p->step > 0.0 && p->step <= 2.0))
        return ol__err(ctx, OL_EINVAL, "epsilon-sharpness: eps %g must be in (0, 1), iters %d >= 1, step %g in (0, 2]",
                       p->eps, p->iters, p->step);
    const ol_paramset *ps = h->ps;
    const size_t n = ps->numel;
    double *y = calloc(n, sizeof(double)), *g = h->gm;
    if (!y)
        return ol__err(ctx, OL_ENOMEM, "out of memory");
    unsigned char *pattern = h->pattern; /* the true loss: no frozen ReLUs */
    h->pattern = NULL;
    memcpy(h->w0, ps->params, n * sizeof(float));
    double f0 = 0.0, best = 0.0, f = 0.0;
    int best_iter = 0;
    int rc = ol_hessian_gradient(ctx, h, g, &f0);
    best = f0;
    for (int k = 1; rc >= 0 && k <= p->iters; k++) {
        for (int t = 0; t < ps->n; t++)
            for (size_t i = ps->t[t].offset; i < ps->t[t].offset + ps->t[t].numel; i++) {
                const double r = p->eps * (fabs((double)h->w0[i]) + 1.0);
                const double s = g[i] > 0.0 ? 1.0 : g[i] < 0.0 ? -1.0 : 0.0;
                y[i] = fmin(r, fmax(-r, y[i] + p->step * r * s));
                ps->params[i] = (float)((double)h->w0[i] + y[i]);
            }
        rc = ol_hessian_gradient(ctx, h, g, &f);
        if (rc >= 0 && !isfinite(f))
            rc = ol__err(ctx, OL_ENONFINITE, "epsilon-sharpness: the loss is not finite inside the box");
        if (rc >= 0 && f > best)
            best = f, best_iter = k;
    }
    memcpy(ps->params, h->w0, n * sizeof(float)); /* bitwise the weights we started from */
    h->pattern = pattern;
    free(y);
    if (rc < 0)
        return rc;
    out->loss = f0;
    out->max_loss = best;
    out->sharpness = 100.0 * (best - f0) / (1.0 + f0);
    out->best_iter = best_iter;
    return OL_OK;
}
