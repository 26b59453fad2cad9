/* PowerSGD: rank-r compression of a matrix of rank <= r is exact; with error
 * feedback the applied updates plus the error add up to the true gradients
 * over many steps (also across a skipped step); P^ is orthonormal (zero and
 * dependent columns guarded); which tensors are compressed; warm start turns
 * the per-step power iteration into the best rank-r approximation of a fixed
 * matrix. Run alone it checks the maths in one process; under mpirun (see
 * tests/scripts/test_mpi_compress.sh) every rank holds a different gradient
 * and the checks hold for their sum. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "dist/sync.h"
#include "optimlab.h"
#include "testutil.h"

static ol_comm *comm;
static int W = 1, R = 0;

static void paramset(ol_ctx *ctx, ol_paramset *ps, int n, const int64_t (*shapes)[4], const int *ndims)
{
    memset(ps, 0, sizeof *ps);
    char name[32];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "t%d.weight", i);
        ASSERT_TRUE(ol_paramset_add(ctx, ps, name, ndims[i] == 1 ? OL_KIND_BIAS : OL_KIND_WEIGHT, ndims[i],
                                    shapes[i]) >= 0);
    }
    ASSERT_OK(ol_paramset_finalize(ctx, ps), ctx);
}

static void fill_normal(float *x, size_t n, uint64_t seed, uint64_t idx)
{
    ol__rng r;
    ol__rng_seed(&r, seed, 77, idx);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)ol__rng_normal(&r);
}

/* M (n x m) = sum_k s_k u_k v_k^T with random u, v: rank <= k */
static void low_rank(float *M, int64_t n, int64_t m, int k, uint64_t seed)
{
    float *u = malloc((size_t)(n + m) * sizeof(float)), *v = u + n;
    memset(M, 0, (size_t)(n * m) * sizeof(float));
    for (int j = 0; j < k; j++) {
        fill_normal(u, (size_t)(n + m), seed, (uint64_t)j);
        for (int64_t a = 0; a < n; a++)
            for (int64_t b = 0; b < m; b++)
                M[a * m + b] += u[a] * v[b];
    }
    free(u);
}

static double max_abs(const float *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

/* Each rank's gradient is its share of a low-rank matrix: the sum has rank <= r. */
static void test_exact_low_rank(ol_ctx *ctx)
{
    const int64_t shapes[4][4] = {{24, 40}, {16, 8, 3, 3}, {16}, {10, 64}};
    const int nd[4] = {2, 4, 1, 2};
    ol_paramset ps;
    paramset(ctx, &ps, 4, shapes, nd);
    for (int r = 1; r <= 3; r++)
        for (int true_rank = 1; true_rank <= r; true_rank++) {
            float *want = malloc(ps.numel * sizeof(float));
            memset(want, 0, ps.numel * sizeof(float));
            for (int i = 0; i < ps.n; i++) {
                const ol_tensor_desc *d = &ps.t[i];
                if (d->ndim == 1)
                    fill_normal(want + d->offset, d->numel, 5, (uint64_t)i);
                else
                    low_rank(want + d->offset, d->shape[0], (int64_t)d->numel / d->shape[0], true_rank,
                             100 + (uint64_t)i);
            }
            /* rank R holds (R + 1) / (W (W + 1) / 2) of it: the shares add up to want */
            const float share = (float)(R + 1) / (float)(W * (W + 1) / 2);
            for (size_t j = 0; j < ps.numel; j++)
                ps.grads[j] = want[j] * share;
            ol_powersgd_params pp = ol_powersgd_default_params();
            pp.rank = r;
            pp.min_compression = 0.0;
            pp.seed = 9;
            ol_powersgd *p = NULL;
            ASSERT_OK(ol_powersgd_create(ctx, comm, &ps, &pp, &p), ctx);
            for (int i = 0; i < ps.n; i++)
                ASSERT_EQ_INT(ol_powersgd_compressed(p, i), ps.t[i].ndim >= 2);
            ASSERT_OK(ol_powersgd_reduce(ctx, p, &ps, 0), ctx);
            ol_powersgd_commit(p);
            float *esum = malloc(ps.numel * sizeof(float)); /* ranks' errors cancel: their sum is the residual */
            memcpy(esum, ol_powersgd_error(p), ps.numel * sizeof(float));
            ASSERT_OK(ol_comm_allreduce(ctx, comm, esum, ps.numel), ctx);
            double err = 0.0, scale = max_abs(want, ps.numel), e_max = max_abs(esum, ps.numel);
            free(esum);
            for (size_t j = 0; j < ps.numel; j++)
                err = fmax(err, fabs(ps.grads[j] - want[j]));
            if (err > 2e-5 * scale || e_max > 2e-5 * scale)
                TU_FAIL("rank %d compression of a rank-%d sum: max error %.3g, residual %.3g (scale %.3g)", r,
                        true_rank, err, e_max, scale);
            tu_checks++;
            ol_powersgd_free(p);
            free(want);
        }
    /* and a full-rank matrix is not reproduced by rank 1 (the check above can fail) */
    fill_normal(ps.grads, ps.numel, 3, (uint64_t)R);
    ol_powersgd_params pp = ol_powersgd_default_params();
    pp.min_compression = 0.0;
    ol_powersgd *p = NULL;
    ASSERT_OK(ol_powersgd_create(ctx, comm, &ps, &pp, &p), ctx);
    ASSERT_OK(ol_powersgd_reduce(ctx, p, &ps, 0), ctx);
    ol_powersgd_commit(p);
    ASSERT_TRUE(max_abs(ol_powersgd_error(p) + ps.t[0].offset, ps.t[0].numel) > 0.1);
    ol_powersgd_free(p);
    ol_paramset_free(&ps);
}

/* sum_t applied_t + sum_r e_r = sum_t sum_r g_r, with a skipped (uncommitted) step in between */
static void test_error_feedback(ol_ctx *ctx, int warm)
{
    const int64_t shapes[3][4] = {{32, 16, 3, 3}, {32}, {10, 128}};
    const int nd[3] = {4, 1, 2};
    ol_paramset ps;
    paramset(ctx, &ps, 3, shapes, nd);
    const size_t n = ps.numel;
    double *applied = calloc(n, sizeof(double)), *truth = calloc(n, sizeof(double));
    float *g = malloc(n * sizeof(float)), *tot = malloc(n * sizeof(float));
    ol_powersgd_params pp = ol_powersgd_default_params();
    pp.rank = 2;
    pp.warm_start = warm;
    pp.start_step = 3; /* the exact all-reduce first */
    ol_powersgd *p = NULL;
    ASSERT_OK(ol_powersgd_create(ctx, comm, &ps, &pp, &p), ctx);
    ASSERT_TRUE(!ol_powersgd_compressed(p, 1));
    const int T = 60;
    for (int t = 0; t < T; t++) {
        fill_normal(g, n, 1000 + (uint64_t)t, (uint64_t)R);
        for (size_t j = 0; j < n; j++)
            g[j] += 0.5f * sinf((float)j * 0.01f); /* a persistent direction too */
        memcpy(ps.grads, g, n * sizeof(float));
        ASSERT_OK(ol_powersgd_reduce(ctx, p, &ps, t), ctx);
        if (t == 20) { /* skipped by the trainer: no commit, nothing applied, nothing counted */
            continue;
        }
        ol_powersgd_commit(p);
        memcpy(tot, g, n * sizeof(float));
        ASSERT_OK(ol_comm_allreduce(ctx, comm, tot, n), ctx);
        for (size_t j = 0; j < n; j++) {
            applied[j] += ps.grads[j];
            truth[j] += tot[j];
        }
    }
    memcpy(tot, ol_powersgd_error(p), n * sizeof(float));
    ASSERT_OK(ol_comm_allreduce(ctx, comm, tot, n), ctx);
    double worst = 0.0, scale = 0.0, resid = 0.0;
    for (size_t j = 0; j < n; j++) {
        worst = fmax(worst, fabs(applied[j] + tot[j] - truth[j]));
        scale = fmax(scale, fabs(truth[j]));
        resid = fmax(resid, fabs(tot[j]));
    }
    if (!(worst <= 1e-4 * scale))
        TU_FAIL("error feedback (warm %d): applied + error - truth = %.3g (scale %.3g)", warm, worst, scale);
    tu_checks++;
    ASSERT_TRUE(resid > 1e-3 * scale); /* rank 2 does leave a residual: the identity is not trivial */
    ol_powersgd_free(p);
    free(applied);
    free(truth);
    free(g);
    free(tot);
    ol_paramset_free(&ps);
}

static void test_orthogonalize(void)
{
    const int64_t n = 50;
    const int r = 4;
    float a[50 * 4];
    double scr[50 * 4];
    fill_normal(a, (size_t)(n * r), 11, 0);
    for (int64_t i = 0; i < n; i++)
        a[i * r + 2] = a[i * r] - 3.0f * a[i * r + 1]; /* column 2 depends on 0 and 1 */
    ASSERT_EQ_INT(ol__psgd_orthogonalize(a, n, r, scr), 1);
    for (int j = 0; j < r; j++)
        for (int k = 0; k < r; k++) {
            double dot = 0;
            for (int64_t i = 0; i < n; i++)
                dot += (double)a[i * r + j] * a[i * r + k];
            ASSERT_NEAR(dot, j == k && j != 2 ? 1.0 : 0.0, 1e-6);
        }
    memset(a, 0, sizeof a);
    ASSERT_EQ_INT(ol__psgd_orthogonalize(a, n, r, scr), r);
    ASSERT_TRUE(max_abs(a, (size_t)(n * r)) == 0.0);
    fill_normal(a, (size_t)(n * r), 12, 0);
    a[5 * r + 1] = NAN;
    ASSERT_EQ_INT(ol__psgd_orthogonalize(a, n, r, scr) >= 1, 1);
}

static void test_selection(ol_ctx *ctx)
{
    /* [10,64] rank 4: (10+64)*4*2 = 592 < 640 compresses, rank 8 does not; [4,4] and [16] never */
    const int64_t shapes[4][4] = {{10, 64}, {16}, {16, 16, 3, 3}, {4, 4}};
    const int nd[4] = {2, 1, 4, 2};
    ol_paramset ps;
    paramset(ctx, &ps, 4, shapes, nd);
    const int want4[4] = {1, 0, 1, 0}, want8[4] = {0, 0, 0, 0}; /* conv rank 8: 2304 < 2 (16+144) 8 */
    for (int k = 0; k < 2; k++) {
        ol_powersgd_params pp = ol_powersgd_default_params();
        pp.rank = k ? 8 : 4;
        ol_powersgd *p = NULL;
        ASSERT_OK(ol_powersgd_create(ctx, comm, &ps, &pp, &p), ctx);
        size_t sent = 0, dense = 0, expect = 0;
        for (int i = 0; i < 4; i++) {
            ASSERT_EQ_INT(ol_powersgd_compressed(p, i), k ? want8[i] : want4[i]);
            const int64_t rows = ps.t[i].ndim >= 2 ? ps.t[i].shape[0] : 1, cols = (int64_t)ps.t[i].numel / rows;
            expect += ol_powersgd_compressed(p, i) ? (size_t)((rows + cols) * pp.rank) : ps.t[i].numel;
        }
        ol_powersgd_sizes(p, &sent, &dense);
        ASSERT_EQ_INT(sent, expect);
        ASSERT_EQ_INT(dense, 640 + 16 + 2304 + 16);
        ol_powersgd_free(p);
    }
    ol_powersgd_params pp = ol_powersgd_default_params();
    pp.rank = 0;
    ol_powersgd *p = NULL;
    ASSERT_TRUE(ol_powersgd_create(ctx, comm, &ps, &pp, &p) == OL_EINVAL);
    ol_paramset_free(&ps);
}

/* A fixed M = U diag(s) V^T: with warm start and no error feedback the
 * approximation converges to the best rank-2 one, error sqrt(sum_{k>2} s_k^2). */
static void test_warm_start(ol_ctx *ctx)
{
    const int64_t shapes[1][4] = {{30, 40}};
    const int nd[1] = {2};
    ol_paramset ps;
    paramset(ctx, &ps, 1, shapes, nd);
    const int64_t n = 30, m = 40;
    const int k = 5;
    const double s[5] = {10, 5, 1, 0.5, 0.1};
    float U[30 * 5], V[40 * 5], *M = malloc((size_t)(n * m) * sizeof(float));
    double scr[40 * 5];
    fill_normal(U, sizeof U / sizeof U[0], 21, 0);
    fill_normal(V, sizeof V / sizeof V[0], 22, 0);
    ol__psgd_orthogonalize(U, n, k, scr);
    ol__psgd_orthogonalize(V, m, k, scr);
    for (int64_t a = 0; a < n; a++)
        for (int64_t b = 0; b < m; b++) {
            double v = 0;
            for (int j = 0; j < k; j++)
                v += s[j] * U[a * k + j] * V[b * k + j];
            M[a * m + b] = (float)v / (float)W; /* every rank the same share */
        }
    const double best = sqrt(1.0 + 0.25 + 0.01);
    for (int warm = 0; warm <= 1; warm++) {
        ol_powersgd_params pp = ol_powersgd_default_params();
        pp.rank = 2;
        pp.warm_start = warm;
        pp.error_feedback = 0;
        ol_powersgd *p = NULL;
        ASSERT_OK(ol_powersgd_create(ctx, comm, &ps, &pp, &p), ctx);
        double fro = 0;
        for (int t = 0; t < 40; t++) {
            memcpy(ps.grads, M, (size_t)(n * m) * sizeof(float));
            ASSERT_OK(ol_powersgd_reduce(ctx, p, &ps, t), ctx);
            ol_powersgd_commit(p);
            fro = 0;
            for (int64_t j = 0; j < n * m; j++) {
                double d = ps.grads[j] - (double)M[j] * W;
                fro += d * d;
            }
            fro = sqrt(fro);
        }
        ASSERT_TRUE(max_abs(ol_powersgd_error(p), ps.numel) == 0.0);
        if (warm)
            ASSERT_NEAR(fro, best, 1e-3 * best);
        else
            ASSERT_TRUE(fro > best * 1.01); /* one power step from a random start is not enough */
        ol_powersgd_free(p);
    }
    free(M);
    ol_paramset_free(&ps);
}

int main(int argc, char **argv)
{
    ol_ctx *ctx = ol_ctx_new(2);
    if (ol_comm_init(ctx, &argc, &argv, &comm) < 0) {
        fprintf(stderr, "%s\n", ol_ctx_errmsg(ctx));
        return 1;
    }
    W = ol_comm_size(comm);
    R = ol_comm_rank(comm);
    test_orthogonalize();
    test_selection(ctx);
    test_exact_low_rank(ctx);
    test_error_feedback(ctx, 1);
    test_error_feedback(ctx, 0);
    test_warm_start(ctx);
    int rc = tu_finish(W > 1 ? "test_powersgd (mpirun)" : "test_powersgd");
    ol_comm_finalize(comm);
    ol_ctx_free(ctx);
    return rc;
}
