/* Hessian tools: for a one-hidden-layer ReLU MLP the exact Hessian is built
 * column by column from an analytic Hessian-vector product (Pearlmutter's
 * R-operator written out by hand for this network, in double), then
 *   - every finite-difference column ol_hessian_vector_product returns is
 *     compared with it,
 *   - the top eigenvalue by power iteration against the exact matrix's (Jacobi),
 *     within 1e-3 relative,
 *   - v'Hu = u'Hv, the gradient equals the analytic one,
 *   - Hutchinson's trace against the exact trace within its statistical error,
 *   - the batch size does not change the product, the weights come back bitwise;
 * power iteration with deflation and Hutchinson on quadratics with known spectra. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "optimlab.h"
#include "optimlab/hessian.h"
#include "testutil.h"

enum { D = 9, HID = 6, K = 3, NS = 24 };

typedef struct {
    const float *w1, *b1, *w2, *b2; /* fc1 [HID][D], fc2 [K][HID] */
    size_t o_w1, o_b1, o_w2, o_b2;  /* offsets in the flat buffer */
    float x[NS * D];
    int32_t y[NS];
} mlp_ref;

static void ref_init(ol_model *m, const ol_dataset *d, mlp_ref *r)
{
    ol_paramset *ps = ol_model_paramset(m);
    const char *names[4] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
    size_t *offs[4] = {&r->o_w1, &r->o_b1, &r->o_w2, &r->o_b2};
    for (int i = 0; i < 4; i++) {
        int t = ol_paramset_find(ps, names[i]);
        ASSERT_TRUE(t >= 0);
        *offs[i] = t >= 0 ? ps->t[t].offset : 0;
    }
    r->w1 = ps->params + r->o_w1, r->b1 = ps->params + r->o_b1;
    r->w2 = ps->params + r->o_w2, r->b2 = ps->params + r->o_b2;
    int64_t idx[NS];
    for (int i = 0; i < NS; i++)
        idx[i] = i;
    ol_dataset_fill(d, idx, NS, NULL, 0, 0, r->x, r->y);
}

/* Mean loss gradient (g) and, for direction v, H v (hv), analytically in
 * double: z = W1 x + b1, a = relu(z), o = W2 a + b2, p = softmax(o), r = p - e_y;
 * R{.} is the directional derivative along v. */
static void ref_grad_hvp_mask(const mlp_ref *r, const unsigned char *mask, const double *v, double *g, double *hv,
                              size_t n)
{
    memset(g, 0, n * sizeof(double));
    memset(hv, 0, n * sizeof(double));
    const double *V1 = v + r->o_w1, *c1 = v + r->o_b1, *V2 = v + r->o_w2, *c2 = v + r->o_b2;
    for (int s = 0; s < NS; s++) {
        const float *x = r->x + s * D;
        double z[HID], a[HID], Rz[HID], Ra[HID], o[K], Ro[K], p[K], res[K], Rr[K], da[HID], Rda[HID];
        for (int h = 0; h < HID; h++) {
            z[h] = r->b1[h], Rz[h] = c1[h];
            for (int i = 0; i < D; i++)
                z[h] += (double)r->w1[h * D + i] * x[i], Rz[h] += V1[h * D + i] * x[i];
            const int on = mask ? mask[s * HID + h] : z[h] > 0; /* a frozen pattern, or the ReLU's own */
            a[h] = on ? z[h] : 0.0;
            Ra[h] = on ? Rz[h] : 0.0;
            z[h] = on ? 1.0 : -1.0; /* only its sign is used below */
        }
        double mx = -INFINITY, se = 0.0, pRo = 0.0;
        for (int k = 0; k < K; k++) {
            o[k] = r->b2[k], Ro[k] = c2[k];
            for (int h = 0; h < HID; h++)
                o[k] += (double)r->w2[k * HID + h] * a[h], Ro[k] += V2[k * HID + h] * a[h] + r->w2[k * HID + h] * Ra[h];
            mx = fmax(mx, o[k]);
        }
        for (int k = 0; k < K; k++)
            se += exp(o[k] - mx);
        for (int k = 0; k < K; k++)
            p[k] = exp(o[k] - mx) / se, pRo += p[k] * Ro[k];
        for (int k = 0; k < K; k++)
            res[k] = p[k] - (k == r->y[s]), Rr[k] = p[k] * (Ro[k] - pRo);
        for (int h = 0; h < HID; h++) {
            da[h] = 0.0, Rda[h] = 0.0;
            for (int k = 0; k < K; k++)
                da[h] += r->w2[k * HID + h] * res[k], Rda[h] += V2[k * HID + h] * res[k] + r->w2[k * HID + h] * Rr[k];
        }
        for (int k = 0; k < K; k++) {
            g[r->o_b2 + k] += res[k] / NS, hv[r->o_b2 + k] += Rr[k] / NS;
            for (int h = 0; h < HID; h++) {
                g[r->o_w2 + k * HID + h] += res[k] * a[h] / NS;
                hv[r->o_w2 + k * HID + h] += (Rr[k] * a[h] + res[k] * Ra[h]) / NS;
            }
        }
        for (int h = 0; h < HID; h++) {
            const double dz = z[h] > 0 ? da[h] : 0.0, Rdz = z[h] > 0 ? Rda[h] : 0.0;
            g[r->o_b1 + h] += dz / NS, hv[r->o_b1 + h] += Rdz / NS;
            for (int i = 0; i < D; i++)
                g[r->o_w1 + h * D + i] += dz * x[i] / NS, hv[r->o_w1 + h * D + i] += Rdz * x[i] / NS;
        }
    }
}

static void ref_grad_hvp(const mlp_ref *r, const double *v, double *g, double *hv, size_t n)
{
    ref_grad_hvp_mask(r, NULL, v, g, hv, n);
}

/* Eigenvalues of the symmetric m x m matrix a (destroyed) by cyclic Jacobi. */
static void jacobi(double *a, int m, double *ev)
{
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0.0;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < m; j++)
                off += i != j ? a[i * m + j] * a[i * m + j] : 0.0;
        if (off < 1e-26)
            break;
        for (int p = 0; p < m; p++)
            for (int q = p + 1; q < m; q++) {
                if (a[p * m + q] == 0.0)
                    continue;
                double th = (a[q * m + q] - a[p * m + p]) / (2.0 * a[p * m + q]);
                double t = (th >= 0 ? 1.0 : -1.0) / (fabs(th) + sqrt(th * th + 1.0));
                double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
                for (int k = 0; k < m; k++) {
                    double akp = a[k * m + p], akq = a[k * m + q];
                    a[k * m + p] = c * akp - s * akq, a[k * m + q] = s * akp + c * akq;
                }
                for (int k = 0; k < m; k++) {
                    double apk = a[p * m + k], aqk = a[q * m + k];
                    a[p * m + k] = c * apk - s * aqk, a[q * m + k] = s * apk + c * aqk;
                }
            }
    }
    for (int i = 0; i < m; i++)
        ev[i] = a[i * m + i];
}

static int by_magnitude(const void *x, const void *y)
{
    double a = fabs(*(const double *)x), b = fabs(*(const double *)y);
    return (a < b) - (a > b);
}

typedef struct {
    ol_ctx *ctx;
    ol_model *m;
    ol_dataset data;
    mlp_ref ref;
    size_t n;
    int *real;     /* indices of the real (unpadded) parameters */
    int nreal;
    double *H;     /* exact Hessian on the real parameters, nreal x nreal */
} fixture;

static void fixture_init(fixture *f)
{
    memset(f, 0, sizeof *f);
    f->ctx = ol_ctx_new(1);
    ASSERT_OK(ol_dataset_synthetic(f->ctx, NS, 1, 3, 3, K, 5, &f->data), f->ctx);
    ol_model_params mp = ol_model_default_params();
    ol_model_params_set_arch(f->ctx, &mp, "mlp");
    mp.in_c = 1, mp.in_h = mp.in_w = 3, mp.num_classes = K;
    mp.widths[0] = HID, mp.nwidths = 1;
    mp.seed = 3;
    ASSERT_OK(ol_model_create(f->ctx, &mp, &f->m), f->ctx);
    ref_init(f->m, &f->data, &f->ref);
    ol_paramset *ps = ol_model_paramset(f->m);
    f->n = ps->numel;
    f->real = malloc(f->n * sizeof(int));
    for (int t = 0; t < ps->n; t++)
        for (size_t k = 0; k < ps->t[t].numel; k++)
            f->real[f->nreal++] = (int)(ps->t[t].offset + k);
    ASSERT_EQ_INT(f->nreal, HID * D + HID + K * HID + K);
    /* exact Hessian, column by column */
    double *e = calloc(f->n, sizeof(double)), *g = malloc(f->n * sizeof(double)), *hv = malloc(f->n * sizeof(double));
    f->H = malloc((size_t)f->nreal * f->nreal * sizeof(double));
    for (int j = 0; j < f->nreal; j++) {
        e[f->real[j]] = 1.0;
        ref_grad_hvp(&f->ref, e, g, hv, f->n);
        e[f->real[j]] = 0.0;
        for (int i = 0; i < f->nreal; i++)
            f->H[(size_t)i * f->nreal + j] = hv[f->real[i]];
    }
    free(e), free(g), free(hv);
}

static void fixture_free(fixture *f)
{
    free(f->H);
    free(f->real);
    ol_model_free(f->m);
    ol_dataset_free(&f->data);
    ol_ctx_free(f->ctx);
}

static ol_hessian *hessian(fixture *f, int batch)
{
    ol_hessian_params hp = ol_hessian_default_params();
    hp.data = &f->data;
    hp.batch = batch;
    ol_hessian *h = NULL;
    ASSERT_OK(ol_hessian_create(f->ctx, f->m, &hp, &h), f->ctx);
    return h;
}

static void test_columns_and_gradient(fixture *f)
{
    ol_hessian *h = hessian(f, 8);
    const size_t n = f->n;
    const int nr = f->nreal;
    double *e = calloc(n, sizeof(double)), *hv = malloc(n * sizeof(double)), *g = malloc(n * sizeof(double));
    double *g_ref = malloc(n * sizeof(double)), loss = 0;
    double hmax = 0.0, worst = 0.0, gworst = 0.0, gmax = 0.0;
    for (int i = 0; i < nr * nr; i++)
        hmax = fmax(hmax, fabs(f->H[i]));
    for (int j = 0; j < nr; j++) {
        e[f->real[j]] = 1.0;
        ASSERT_OK(ol_hessian_vector_product(f->ctx, h, e, hv, 0), f->ctx);
        e[f->real[j]] = 0.0;
        for (int i = 0; i < nr; i++)
            worst = fmax(worst, fabs(hv[f->real[i]] - f->H[(size_t)i * nr + j]));
    }
    ASSERT_OK(ol_hessian_gradient(f->ctx, h, g, &loss), f->ctx);
    ref_grad_hvp(&f->ref, e, g_ref, hv, n);
    for (int i = 0; i < nr; i++)
        gworst = fmax(gworst, fabs(g[f->real[i]] - g_ref[f->real[i]])), gmax = fmax(gmax, fabs(g_ref[f->real[i]]));
    printf("exact Hessian %dx%d, max |H_ij| %.4f: finite-difference columns off by at most %.2e (%.2e relative); "
           "gradient off by %.2e of %.3f; loss %.4f\n",
           nr, nr, hmax, worst, worst / hmax, gworst, gmax, loss);
    ASSERT_TRUE(worst <= 1e-3 * hmax);
    ASSERT_TRUE(gworst <= 1e-5 * gmax);
    ASSERT_EQ_INT(ol_hessian_passes(h), 2 * nr + 1);
    free(e), free(hv), free(g), free(g_ref);
    ol_hessian_free(h);
}

static void test_top_eigen_and_trace(fixture *f)
{
    const int nr = f->nreal;
    double *a = malloc((size_t)nr * nr * sizeof(double)), *ev = malloc((size_t)nr * sizeof(double)), tr = 0.0;
    memcpy(a, f->H, (size_t)nr * nr * sizeof(double));
    for (int i = 0; i < nr; i++)
        tr += f->H[(size_t)i * nr + i];
    jacobi(a, nr, ev);
    qsort(ev, (size_t)nr, sizeof(double), by_magnitude);
    ol_hessian *h = hessian(f, 8);
    ol_linop op = ol_hessian_linop(h);
    ol_eigen_params ep = ol_eigen_default_params();
    ep.max_iter = 1000, ep.tol = 1e-6, ep.seed = 11; /* the products carry ~1e-4 relative error */
    double lam[2], lam2[2];
    ol_eigen_info info;
    ASSERT_OK(ol_eigen_power(f->ctx, &op, 2, &ep, lam, NULL, &info), f->ctx);
    printf("top eigenvalues exact %.6f %.6f (third %.6f), power iteration %.6f (%d products) %.6f (%d)\n", ev[0],
           ev[1], ev[2], lam[0], info.iters[0], lam[1], info.iters[1]);
    ASSERT_TRUE(fabs(lam[0] - ev[0]) <= 1e-3 * fabs(ev[0]));
    ASSERT_TRUE(fabs(lam[1] - ev[1]) <= 1e-3 * fabs(ev[0]));
    ASSERT_TRUE(info.converged[0]);
    /* same seed: bitwise the same */
    ASSERT_OK(ol_eigen_power(f->ctx, &op, 2, &ep, lam2, NULL, NULL), f->ctx);
    ASSERT_TRUE(memcmp(lam, lam2, sizeof lam) == 0);
    /* Hutchinson against the exact trace */
    ol_trace_params tp = ol_trace_default_params();
    tp.max_samples = 300, tp.tol = 0, tp.seed = 5;
    ol_trace_result t;
    ASSERT_OK(ol_trace_hutchinson(f->ctx, &op, &tp, &t, NULL), f->ctx);
    /* Rademacher variance of z'Hz: 2 * sum_{i != j} H_ij^2 */
    double var = 0.0;
    for (int i = 0; i < nr; i++)
        for (int j = 0; j < nr; j++)
            var += i != j ? 2.0 * f->H[(size_t)i * nr + j] * f->H[(size_t)i * nr + j] : 0.0;
    printf("trace exact %.5f, Hutchinson %.5f +- %.5f (%d samples; predicted standard error %.5f)\n", tr, t.trace,
           t.std_err, t.samples, sqrt(var / t.samples));
    ASSERT_EQ_INT(t.samples, 300);
    ASSERT_TRUE(fabs(t.trace - tr) <= 4.0 * t.std_err);
    ASSERT_TRUE(t.std_err > 0.7 * sqrt(var / t.samples) && t.std_err < 1.3 * sqrt(var / t.samples));
    free(a), free(ev);
    ol_hessian_free(h);
}

static void fill_random(const ol_paramset *ps, uint64_t seed, double *v)
{
    memset(v, 0, ps->numel * sizeof(double));
    srand((unsigned)seed);
    for (int t = 0; t < ps->n; t++)
        for (size_t k = ps->t[t].offset; k < ps->t[t].offset + ps->t[t].numel; k++)
            v[k] = (double)rand() / RAND_MAX - 0.5;
}

static void test_symmetry_batches_restore(fixture *f)
{
    ol_paramset *ps = ol_model_paramset(f->m);
    const size_t n = f->n;
    double *u = malloc(n * sizeof(double)), *v = malloc(n * sizeof(double)), *hu = malloc(n * sizeof(double));
    double *hv = malloc(n * sizeof(double)), *hv24 = malloc(n * sizeof(double));
    float *w = malloc(n * sizeof(float));
    memcpy(w, ps->params, n * sizeof(float));
    fill_random(ps, 1, u);
    fill_random(ps, 2, v);
    ol_hessian *h = hessian(f, 5), *h24 = hessian(f, NS);
    /* a larger step than the default: this smooth little net allows it, and float rounding then stays
     * below the 1e-5 these checks of structure need (at the default step it is ~1e-4) */
    ASSERT_OK(ol_hessian_vector_product(f->ctx, h, u, hu, 1e-3), f->ctx);
    ASSERT_OK(ol_hessian_vector_product(f->ctx, h, v, hv, 1e-3), f->ctx);
    ASSERT_OK(ol_hessian_vector_product(f->ctx, h24, v, hv24, 1e-3), f->ctx);
    ASSERT_TRUE(memcmp(w, ps->params, n * sizeof(float)) == 0);
    double uhv = 0, vhu = 0, nu = 0, nv = 0, diff = 0, nhv = 0;
    for (size_t i = 0; i < n; i++) {
        uhv += u[i] * hv[i], vhu += v[i] * hu[i], nu += u[i] * u[i], nv += v[i] * v[i];
        diff = fmax(diff, fabs(hv[i] - hv24[i])), nhv = fmax(nhv, fabs(hv[i]));
    }
    printf("symmetry: u'Hv %.8f v'Hu %.8f (|u||v| %.3f); batch 5 vs 24: max difference %.2e of %.3f\n", uhv, vhu,
           sqrt(nu * nv), diff, nhv);
    ASSERT_TRUE(fabs(uhv - vhu) <= 1e-5 * sqrt(nu * nv)); /* |H| < 1: the products' error is ~1e-5 |H| */
    ASSERT_TRUE(diff <= 1e-4 * nhv);
    ol_hessian_free(h);
    ol_hessian_free(h24);
    free(u), free(v), free(hu), free(hv), free(hv24), free(w);
}

/* Keskar's epsilon-sharpness: for a small box the loss is linear in it, so the maximum is the corner
 * sign(g): f + sum r_i |g_i|; for a large box the ascent must beat random corners of it; the weights
 * and the frozen ReLU pattern come back as they were; bad parameters are refused. */
static void test_eps_sharpness(fixture *f)
{
    ol_paramset *ps = ol_model_paramset(f->m);
    const size_t n = f->n;
    float *w = malloc(n * sizeof(float));
    double *g = malloc(n * sizeof(double)), f0 = 0.0;
    memcpy(w, ps->params, n * sizeof(float));
    ol_hessian *h = hessian(f, 8);
    ASSERT_OK(ol_hessian_gradient(f->ctx, h, g, &f0), f->ctx);
    ol_eps_sharpness_params p = ol_eps_sharpness_default_params();
    ol_eps_sharpness_result r, r3;
    p.eps = 1e-4;
    ASSERT_OK(ol_hessian_eps_sharpness(f->ctx, h, &p, &r), f->ctx);
    double lin = 0.0;
    for (int j = 0; j < f->nreal; j++)
        lin += p.eps * (fabs((double)w[f->real[j]]) + 1.0) * fabs(g[f->real[j]]);
    printf("eps-sharpness, eps 1e-4: rise %.6e, linear prediction %.6e (step %d); loss %.6f\n", r.max_loss - r.loss,
           lin, r.best_iter, r.loss);
    ASSERT_TRUE(fabs(r.loss - f0) <= 1e-12 * fabs(f0));
    ASSERT_TRUE(fabs((r.max_loss - r.loss) - lin) <= 0.01 * lin);
    ASSERT_TRUE(fabs(r.sharpness - 100.0 * lin / (1.0 + f0)) <= 0.01 * 100.0 * lin / (1.0 + f0));
    ASSERT_TRUE(memcmp(w, ps->params, n * sizeof(float)) == 0);
    /* the pattern is still applied to the products: same Hv as a fresh Hessian */
    double *v = malloc(n * sizeof(double)), *hv = malloc(n * sizeof(double)), *hv2 = malloc(n * sizeof(double));
    fill_random(ps, 7, v);
    ol_hessian *h2 = hessian(f, 8);
    ASSERT_OK(ol_hessian_vector_product(f->ctx, h, v, hv, 0), f->ctx);
    ASSERT_OK(ol_hessian_vector_product(f->ctx, h2, v, hv2, 0), f->ctx);
    ASSERT_TRUE(memcmp(hv, hv2, n * sizeof(double)) == 0);
    /* a large box: no random corner is higher than what the ascent found */
    p.eps = 0.05;
    ASSERT_OK(ol_hessian_eps_sharpness(f->ctx, h, &p, &r3), f->ctx);
    double corners = f0, fc = 0.0;
    srand(11);
    for (int c = 0; c < 200; c++) {
        for (int j = 0; j < f->nreal; j++) {
            const size_t i = (size_t)f->real[j];
            ps->params[i] = (float)(w[i] + (rand() & 1 ? 1.0 : -1.0) * p.eps * (fabs((double)w[i]) + 1.0));
        }
        ASSERT_OK(ol_hessian_gradient(f->ctx, h2, g, &fc), f->ctx);
        corners = fmax(corners, fc);
    }
    memcpy(ps->params, w, n * sizeof(float));
    printf("eps-sharpness, eps 0.05: ascent %.6f (step %d), best of 200 random corners %.6f, loss %.6f, "
           "sharpness %.3f\n", r3.max_loss, r3.best_iter, corners, r3.loss, r3.sharpness);
    ASSERT_TRUE(r3.max_loss > corners);
    ASSERT_TRUE(r3.sharpness > r.sharpness);
    p.eps = 0.0;
    ASSERT_TRUE(ol_hessian_eps_sharpness(f->ctx, h, &p, &r) == OL_EINVAL);
    p.eps = 1e-3, p.iters = 0;
    ASSERT_TRUE(ol_hessian_eps_sharpness(f->ctx, h, &p, &r) == OL_EINVAL);
    ol_hessian_free(h);
    ol_hessian_free(h2);
    free(w), free(g), free(v), free(hv), free(hv2);
}

/* A = Q diag(lambda) Q' with Q a product of Householder reflections. */
typedef struct {
    int n;
    double *a;
} dense;

static int dense_apply(ol_ctx *ctx, void *user, const double *v, double *out)
{
    (void)ctx;
    const dense *d = user;
    for (int i = 0; i < d->n; i++) {
        double s = 0.0;
        for (int j = 0; j < d->n; j++)
            s += d->a[(size_t)i * d->n + j] * v[j];
        out[i] = s;
    }
    return OL_OK;
}

enum { N = 40 }; /* the quadratic tests' dimension */

/* A = Q diag(lam) Q' with Q three Householder reflections: a known spectrum in a dense matrix. */
static double rotated_matrix(const double *lam, double *q, double *a)
{
    double h[N];
    for (int i = 0; i < N * N; i++)
        q[i] = (i / N == i % N);
    for (int r = 0; r < 3; r++) { /* Q <- Q (I - 2 h h') */
        double nn = 0.0;
        for (int i = 0; i < N; i++)
            h[i] = sin(1.7 * i + r) + 0.3 * r, nn += h[i] * h[i];
        for (int i = 0; i < N; i++)
            h[i] /= sqrt(nn);
        for (int i = 0; i < N; i++) {
            double s = 0.0;
            for (int j = 0; j < N; j++)
                s += q[i * N + j] * h[j];
            for (int j = 0; j < N; j++)
                q[i * N + j] -= 2.0 * s * h[j];
        }
    }
    double tr = 0.0;
    for (int i = 0; i < N; i++) {
        tr += lam[i];
        for (int j = 0; j < N; j++) {
            double s = 0.0;
            for (int k = 0; k < N; k++)
                s += q[i * N + k] * lam[k] * q[j * N + k];
            a[i * N + j] = s;
        }
    }
    return tr;
}

static void quadratic_spectrum(double *lam)
{
    for (int i = 0; i < N; i++)
        lam[i] = i == 0 ? 10.0 : i == 1 ? -7.0 : i == 2 ? 5.0 : 3.0 * (double)(N - i) / N;
}

static void test_quadratic(void)
{
    ol_ctx *ctx = ol_ctx_new(1);
    double lam[N], q[N * N], a[N * N];
    quadratic_spectrum(lam);
    const double tr = rotated_matrix(lam, q, a);
    dense d = {N, a};
    ol_linop op = {.n = N, .apply = dense_apply, .user = &d, .layout = NULL};
    ol_eigen_params ep = ol_eigen_default_params();
    ep.max_iter = 2000, ep.tol = 1e-14;
    double ev[3], vec[3 * N];
    ol_eigen_info info;
    ASSERT_OK(ol_eigen_power(ctx, &op, 3, &ep, ev, vec, &info), ctx);
    printf("quadratic: eigenvalues %.10f %.10f %.10f (products %d %d %d)\n", ev[0], ev[1], ev[2], info.iters[0],
           info.iters[1], info.iters[2]);
    for (int k = 0; k < 3; k++) {
        ASSERT_NEAR(ev[k], lam[k], 1e-9);
        double c = 0.0;
        for (int i = 0; i < N; i++)
            c += vec[k * N + i] * q[i * N + k];
        ASSERT_NEAR(fabs(c), 1.0, 1e-6);
    }
    /* Hutchinson: exact with no spread on a diagonal matrix, unbiased on A */
    ol_trace_params tp = ol_trace_default_params();
    ol_trace_result t;
    double vals[100];
    tp.seed = 3;
    ASSERT_OK(ol_trace_hutchinson(ctx, &op, &tp, &t, vals), ctx);
    printf("quadratic: trace %.6f, Hutchinson %.6f +- %.6f (%d samples, tol %.2g)\n", tr, t.trace, t.std_err, t.samples,
           tp.tol);
    ASSERT_TRUE(fabs(t.trace - tr) <= 4.0 * t.std_err);
    ASSERT_TRUE(t.samples >= tp.min_samples);
    ASSERT_TRUE(t.samples == tp.max_samples || t.std_err <= tp.tol * fabs(t.trace));
    double mean = 0.0;
    for (int i = 0; i < t.samples; i++)
        mean += vals[i] / t.samples;
    ASSERT_NEAR(mean, t.trace, 1e-9 * fabs(tr));
    for (int i = 0; i < N * N; i++)
        a[i] = i / N == i % N ? lam[i / N] : 0.0;
    ASSERT_OK(ol_trace_hutchinson(ctx, &op, &tp, &t, NULL), ctx);
    ASSERT_NEAR(t.trace, tr, 1e-12);
    ASSERT_NEAR(t.std_err, 0.0, 1e-12);
    ASSERT_EQ_INT(t.samples, tp.min_samples);
    /* bad arguments */
    ASSERT_TRUE(ol_eigen_power(ctx, &op, 0, &ep, ev, NULL, NULL) == OL_EINVAL);
    ASSERT_TRUE(ol_eigen_power(ctx, &op, 17, &ep, ev, NULL, NULL) == OL_EINVAL);
    tp.max_samples = 0;
    ASSERT_TRUE(ol_trace_hutchinson(ctx, &op, &tp, &t, NULL) == OL_EINVAL);
    ol_ctx_free(ctx);
}

static int ascending(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* Stochastic Lanczos quadrature on known spectra: all N steps give every eigenvalue, with weight
 * 1/N each on a diagonal matrix (a normalised Rademacher start has components +-1/sqrt(N)); m
 * steps integrate polynomials of degree < 2m exactly; a spectrum of 3 distinct values stops after
 * 3 steps; the density integrates to 1; the largest node on the MLP's Hessian is its top eigenvalue. */
static void test_slq(fixture *f)
{
    ol_ctx *ctx = ol_ctx_new(1);
    double lam[N], sorted[N], q[N * N], a[N * N], nodes[2 * N], w[2 * N], nodes2[2 * N];
    int used[2];
    quadratic_spectrum(lam);
    memcpy(sorted, lam, sizeof lam);
    qsort(sorted, N, sizeof(double), ascending);
    for (int i = 0; i < N * N; i++)
        a[i] = i / N == i % N ? lam[i / N] : 0.0;
    dense d = {N, a};
    ol_linop op = {.n = N, .apply = dense_apply, .user = &d, .layout = NULL};
    ol_slq_params sp = ol_slq_default_params();
    sp.steps = N, sp.runs = 2, sp.seed = 4;
    ASSERT_OK(ol_eigen_slq(ctx, &op, &sp, nodes, w, used), ctx);
    double err = 0.0, werr = 0.0;
    for (int r = 0; r < 2; r++)
        for (int j = 0; j < N; j++) {
            err = fmax(err, fabs(nodes[r * N + j] - sorted[j]));
            werr = fmax(werr, fabs(w[r * N + j] - 1.0 / N));
        }
    printf("slq, diagonal, %d steps: nodes within %.1e of the eigenvalues, weights within %.1e of 1/N (%d, %d used)\n", N,
           err, werr, used[0], used[1]);
    ASSERT_TRUE(err < 1e-9 && werr < 1e-9 && used[0] == N && used[1] == N);
    /* Gauss quadrature: 6 nodes integrate lambda^p exactly for p < 12 */
    sp.steps = 6, sp.runs = 1;
    ASSERT_OK(ol_eigen_slq(ctx, &op, &sp, nodes, w, NULL), ctx);
    for (int p = 0; p < 12; p++) {
        double exact = 0.0, quad = 0.0;
        for (int i = 0; i < N; i++)
            exact += pow(lam[i], p) / N;
        for (int j = 0; j < 6; j++)
            quad += w[j] * pow(nodes[j], p);
        ASSERT_TRUE(fabs(quad - exact) <= 1e-9 * fmax(1.0, fabs(exact)));
    }
    printf("slq, 6 steps: extreme nodes %.6f %.6f (eigenvalues %.1f %.1f)\n", nodes[0], nodes[5], sorted[0], sorted[N - 1]);
    /* a dense matrix with the same spectrum: the same nodes; the same seed: the same bits */
    rotated_matrix(lam, q, a);
    sp.steps = N, sp.runs = 1;
    ASSERT_OK(ol_eigen_slq(ctx, &op, &sp, nodes, w, NULL), ctx);
    ASSERT_OK(ol_eigen_slq(ctx, &op, &sp, nodes2, w + N, NULL), ctx);
    ASSERT_TRUE(memcmp(nodes, nodes2, N * sizeof(double)) == 0);
    err = 0.0;
    double wsum = 0.0;
    for (int j = 0; j < N; j++)
        err = fmax(err, fabs(nodes[j] - sorted[j])), wsum += w[j];
    ASSERT_TRUE(err < 1e-8);
    ASSERT_NEAR(wsum, 1.0, 1e-12);
    /* three distinct eigenvalues: an invariant subspace after 3 steps */
    for (int i = 0; i < N * N; i++)
        a[i] = i / N == i % N ? (double)(1 + (i / N) % 3) : 0.0;
    sp.steps = 10;
    ASSERT_OK(ol_eigen_slq(ctx, &op, &sp, nodes, w, used), ctx);
    printf("slq, 3 distinct eigenvalues: %d steps used, nodes %.9f %.9f %.9f, weights %.6f %.6f %.6f\n", used[0],
           nodes[0], nodes[1], nodes[2], w[0], w[1], w[2]);
    ASSERT_EQ_INT(used[0], 3);
    for (int j = 0; j < 3; j++) {
        ASSERT_NEAR(nodes[j], 1.0 + j, 1e-9);
        ASSERT_NEAR(w[j], (j == 0 ? 14.0 : 13.0) / N, 1e-9);
    }
    ASSERT_TRUE(w[3] == 0.0 && w[9] == 0.0);
    /* the smoothed density integrates to 1 and peaks at the nodes */
    enum { B = 2001 };
    double *grid = malloc(B * sizeof(double)), *dens = malloc(B * sizeof(double)), total = 0.0;
    ASSERT_OK(ol_slq_density(ctx, nodes, w, 1, 10, B, 1e-3, grid, dens), ctx);
    int peak = 0;
    for (int b = 0; b < B; b++) {
        total += dens[b] * (grid[1] - grid[0]);
        peak = dens[b] > dens[peak] ? b : peak;
    }
    ASSERT_NEAR(total, 1.0, 1e-12);
    ASSERT_NEAR(grid[0], 0.99, 1e-12);
    ASSERT_NEAR(grid[B - 1], 3.01, 1e-12);
    ASSERT_TRUE(fabs(grid[peak] - 1.0) < 2e-3); /* the heaviest node, 14/40 */
    free(grid), free(dens);
    /* bad arguments */
    sp.steps = N + 1;
    ASSERT_TRUE(ol_eigen_slq(ctx, &op, &sp, nodes, w, NULL) == OL_EINVAL);
    sp.steps = 0;
    ASSERT_TRUE(ol_eigen_slq(ctx, &op, &sp, nodes, w, NULL) == OL_EINVAL);
    sp.steps = 5, sp.runs = 0;
    ASSERT_TRUE(ol_eigen_slq(ctx, &op, &sp, nodes, w, NULL) == OL_EINVAL);
    ASSERT_TRUE(ol_slq_density(ctx, nodes, w, 1, 5, 1, 1e-5, nodes2, nodes2) == OL_EINVAL);
    ol_ctx_free(ctx);
    /* the MLP's Hessian (finite-difference products): the largest node is the top eigenvalue */
    const int nr = f->nreal;
    double *ea = malloc((size_t)nr * nr * sizeof(double)), *ev = malloc((size_t)nr * sizeof(double));
    memcpy(ea, f->H, (size_t)nr * nr * sizeof(double));
    jacobi(ea, nr, ev);
    qsort(ev, (size_t)nr, sizeof(double), ascending);
    ol_hessian *h = hessian(f, 8);
    ol_linop hop = ol_hessian_linop(h);
    sp.steps = 20, sp.runs = 1, sp.seed = 2;
    double hn[20], hw[20];
    ASSERT_OK(ol_eigen_slq(f->ctx, &hop, &sp, hn, hw, NULL), f->ctx);
    printf("slq, MLP Hessian, 20 steps: nodes %.6f ... %.6f, exact eigenvalues %.6f ... %.6f\n", hn[0], hn[19], ev[0],
           ev[nr - 1]);
    ASSERT_TRUE(fabs(hn[19] - ev[nr - 1]) <= 1e-3 * fabs(ev[nr - 1]));
    ol_hessian_free(h);
    free(ea), free(ev);
}

/* Gradient of the library at the current weights, with the ReLU pattern given (or free). */
static void lib_grad(fixture *f, unsigned char *pattern, double *g)
{
    ol_paramset *ps = ol_model_paramset(f->m);
    double l;
    int c;
    ol_paramset_zero_grads(ps);
    ol_model_set_relu_pattern(f->m, OL_RELU_APPLY, pattern);
    ASSERT_OK(ol_model_forward(f->ctx, f->m, f->ref.x, NS, 0), f->ctx);
    ASSERT_OK(ol_model_loss(f->ctx, f->m, f->ref.y, NS, 0.0f, 1.0f / NS, &l, &c), f->ctx);
    ASSERT_OK(ol_model_backward(f->ctx, f->m), f->ctx);
    ol_model_set_relu_pattern(f->m, OL_RELU_FREE, NULL);
    for (size_t i = 0; i < f->n; i++)
        g[i] = ps->grads[i];
}

/* The frozen pattern: recorded as the ReLUs' own at w; at weights far from w
 * (hidden units that changed sign) forward and backward follow it, as the
 * double-precision network with the same mask does; free again afterwards. */
static void test_frozen_pattern(fixture *f)
{
    ol_paramset *ps = ol_model_paramset(f->m);
    const size_t n = f->n;
    ASSERT_EQ_INT(ol_model_relu_units(f->m), HID);
    unsigned char pat[NS * HID], own[NS * HID];
    ol_model_set_relu_pattern(f->m, OL_RELU_RECORD, pat);
    ASSERT_OK(ol_model_forward(f->ctx, f->m, f->ref.x, NS, 0), f->ctx);
    ol_model_set_relu_pattern(f->m, OL_RELU_FREE, NULL);
    float *w = malloc(n * sizeof(float));
    double *g = malloc(n * sizeof(double)), *gr = malloc(n * sizeof(double)), *hv = malloc(n * sizeof(double));
    double *zero = calloc(n, sizeof(double));
    memcpy(w, ps->params, n * sizeof(float));
    int flips = 0, same = 1;
    for (int s = 0; s < NS; s++)
        for (int h = 0; h < HID; h++) {
            double z = f->ref.b1[h];
            for (int i = 0; i < D; i++)
                z += (double)f->ref.w1[h * D + i] * f->ref.x[s * D + i];
            own[s * HID + h] = z > 0;
            same &= pat[s * HID + h] == own[s * HID + h];
        }
    ASSERT_TRUE(same);
    for (int i = 0; i < HID * D + HID; i++) /* move the first layer a lot */
        ps->params[f->ref.o_w1 + (size_t)i % (HID * D)] += (float)(0.4 * sin(3.0 * i));
    for (int s = 0; s < NS; s++)
        for (int h = 0; h < HID; h++) {
            double z = f->ref.b1[h];
            for (int i = 0; i < D; i++)
                z += (double)f->ref.w1[h * D + i] * f->ref.x[s * D + i];
            flips += (z > 0) != pat[s * HID + h];
        }
    double worst = 0.0, worst_free = 0.0, gmax = 0.0;
    lib_grad(f, pat, g);
    ref_grad_hvp_mask(&f->ref, pat, zero, gr, hv, n);
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs(g[i] - gr[i])), gmax = fmax(gmax, fabs(gr[i]));
    lib_grad(f, NULL, g); /* free again: the ReLUs' own pattern */
    ref_grad_hvp(&f->ref, zero, gr, hv, n);
    for (size_t i = 0; i < n; i++)
        worst_free = fmax(worst_free, fabs(g[i] - gr[i]));
    printf("frozen ReLU pattern: %d of %d units flipped sign; gradient off by %.2e frozen, %.2e free (of %.3f)\n",
           flips, NS * HID, worst, worst_free, gmax);
    ASSERT_TRUE(flips >= 10);
    ASSERT_TRUE(worst <= 1e-5 * gmax);
    ASSERT_TRUE(worst_free <= 1e-5 * gmax);
    memcpy(ps->params, w, n * sizeof(float));
    free(w), free(g), free(gr), free(hv), free(zero);
}

/* Mean loss of a resnet8 at its weights with the pattern applied (or free). */
static double resnet_loss(ol_ctx *ctx, ol_model *m, const float *x, const int32_t *y, int n, unsigned char *pat,
                          int backward)
{
    double l = 0;
    int c;
    ol_paramset_zero_grads(ol_model_paramset(m));
    ol_model_set_relu_pattern(m, pat ? OL_RELU_APPLY : OL_RELU_FREE, pat);
    ASSERT_OK(ol_model_forward(ctx, m, x, n, 0), ctx);
    ASSERT_OK(ol_model_loss(ctx, m, y, n, 0.0f, 1.0f / n, &l, &c), ctx);
    if (backward)
        ASSERT_OK(ol_model_backward(ctx, m), ctx);
    ol_model_set_relu_pattern(m, OL_RELU_FREE, NULL);
    return l / n;
}

/* The frozen pattern through BatchNorm+ReLU and residual add+ReLU nodes: far
 * from where it was recorded, the gradient backward computes is the derivative
 * of the loss forward computes (central difference in double along a direction). */
static void test_frozen_resnet(void)
{
    enum { NB = 6 };
    ol_ctx *ctx = ol_ctx_new(1);
    ol_dataset d;
    ol_model_params mp = ol_model_default_params();
    ol_model *m = NULL;
    ASSERT_OK(ol_dataset_synthetic(ctx, NB, 1, 12, 12, 10, 2, &d), ctx);
    ol_model_params_set_arch(ctx, &mp, "resnet8");
    mp.in_c = 1, mp.in_h = mp.in_w = 12, mp.max_batch = NB, mp.seed = 4;
    ASSERT_OK(ol_model_create(ctx, &mp, &m), ctx);
    ol_paramset *ps = ol_model_paramset(m);
    float x[NB * 144];
    int32_t y[NB];
    int64_t idx[NB] = {0, 1, 2, 3, 4, 5};
    ol_dataset_fill(&d, idx, NB, NULL, 0, 0, x, y);
    const size_t units = ol_model_relu_units(m);
    unsigned char *pat = malloc(NB * units), *pat2 = malloc(NB * units);
    ol_model_set_relu_pattern(m, OL_RELU_RECORD, pat);
    ASSERT_OK(ol_model_forward(ctx, m, x, NB, 0), ctx);
    ol_model_set_relu_pattern(m, OL_RELU_FREE, NULL);
    double *v = malloc(ps->numel * sizeof(double));
    for (size_t i = 0; i < ps->numel; i++) {
        v[i] = 0.05 * sin(1.3 * (double)i);
        ps->params[i] += ps->params[i] != 0.0f ? (float)(0.3 * cos(0.7 * (double)i)) * ps->params[i] : 0.0f;
    }
    ol_model_set_relu_pattern(m, OL_RELU_RECORD, pat2); /* how many units the move flipped */
    ASSERT_OK(ol_model_forward(ctx, m, x, NB, 0), ctx);
    size_t flips = 0;
    for (size_t i = 0; i < NB * units; i++)
        flips += pat[i] != pat2[i];
    resnet_loss(ctx, m, x, y, NB, pat, 1);
    double gv = 0.0;
    for (size_t i = 0; i < ps->numel; i++)
        gv += (double)ps->grads[i] * v[i];
    float *w = malloc(ps->numel * sizeof(float));
    memcpy(w, ps->params, ps->numel * sizeof(float));
    const double eps = 1e-2;
    for (size_t i = 0; i < ps->numel; i++)
        ps->params[i] = (float)(w[i] + eps * v[i]);
    const double lp = resnet_loss(ctx, m, x, y, NB, pat, 0);
    for (size_t i = 0; i < ps->numel; i++)
        ps->params[i] = (float)(w[i] - eps * v[i]);
    const double lm = resnet_loss(ctx, m, x, y, NB, pat, 0);
    const double fd = (lp - lm) / (2 * eps);
    printf("frozen pattern in resnet8: %zu of %zu ReLU outputs flipped; g'v %.6f, loss difference %.6f\n", flips,
           NB * units, gv, fd);
    ASSERT_TRUE(flips > NB * units / 50);
    ASSERT_TRUE(fabs(gv - fd) <= 1e-3 * fabs(gv) + 1e-5);
    free(pat), free(pat2), free(v), free(w);
    ol_model_free(m);
    ol_dataset_free(&d);
    ol_ctx_free(ctx);
}

int main(void)
{
    fixture f;
    fixture_init(&f);
    test_columns_and_gradient(&f);
    test_top_eigen_and_trace(&f);
    test_symmetry_batches_restore(&f);
    test_frozen_pattern(&f);
    test_eps_sharpness(&f);
    test_slq(&f);
    fixture_free(&f);
    test_quadratic();
    test_frozen_resnet();
    return tu_finish("test_hessian");
}
