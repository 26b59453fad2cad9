/* Training diagnostics: the gradient noise scale estimators against closed
 * forms (a Gaussian gradient source; an MLP whose exact per-sample gradients
 * give tr(Sigma) and |G|^2), --gns and layer statistics leave the weights
 * bitwise unchanged, layer statistics against a hand computation, bad
 * parameters rejected. */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "optimlab.h"
#include "testutil.h"
#include "train/diag.h"

/* ---- a Gaussian gradient source: g = G + sigma * z ------------------------ */

typedef struct {
    uint64_t s;
} rng;

static double uniform(rng *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return ((double)(r->s >> 11) + 0.5) / 9007199254740992.0;
}

static double gauss(rng *r) { return sqrt(-2.0 * log(uniform(r))) * cos(6.283185307179586 * uniform(r)); }

enum { D = 40 };

typedef struct {
    double n, sum, sumsq;
} stat;

static void stat_add(stat *s, double x)
{
    s->n += 1;
    s->sum += x;
    s->sumsq += x * x;
}
static double stat_mean(const stat *s) { return s->sum / s->n; }
static double stat_se(const stat *s)
{
    const double m = stat_mean(s);
    return sqrt(fmax(s->sumsq / s->n - m * m, 0.0) / s->n);
}

/* Steps of B samples cut into the given micro-batch sizes: the per-step
 * estimates average to |G|^2 and tr(Sigma) within 4 standard errors. harmonic
 * 0 uses the arithmetic mean of the sizes instead (biased for unequal sizes:
 * the test must see it). Returns the larger deviation in standard errors. */
static double gaussian_source(const int *sizes, int nmb, int harmonic, int steps, double *b_simple_run)
{
    double G[D], sig[D], g2 = 0.0, tr = 0.0;
    for (int j = 0; j < D; j++) {
        G[j] = 0.3 * sin(1.0 + j);
        sig[j] = 0.5 + 0.05 * j;
        g2 += G[j] * G[j];
        tr += sig[j] * sig[j];
    }
    rng r = {0x9E3779B97F4A7C15ULL};
    stat sg = {0}, st = {0};
    ol__gns_ema e;
    ol__gns_ema_init(&e, 0.9);
    double ema_g = 0.0, ema_s = 0.0, decay = 1.0;
    int B = 0;
    for (int i = 0; i < nmb; i++)
        B += sizes[i];
    for (int t = 0; t < steps; t++) {
        double big[D] = {0}, small_sq = 0.0, inv_b = 0.0, sum_b = 0.0;
        for (int i = 0; i < nmb; i++) {
            double mb[D] = {0};
            for (int k = 0; k < sizes[i]; k++)
                for (int j = 0; j < D; j++) {
                    const double g = G[j] + sig[j] * gauss(&r);
                    mb[j] += g;
                    big[j] += g;
                }
            double sq = 0.0;
            for (int j = 0; j < D; j++)
                sq += (mb[j] / sizes[i]) * (mb[j] / sizes[i]);
            small_sq += sq;
            inv_b += 1.0 / sizes[i];
            sum_b += sizes[i];
        }
        double big_sq = 0.0;
        for (int j = 0; j < D; j++)
            big_sq += (big[j] / B) * (big[j] / B);
        const double b_small = harmonic ? nmb / inv_b : sum_b / nmb;
        double eg, es;
        ol__gns_estimate(b_small, small_sq / nmb, B, big_sq, &eg, &es);
        stat_add(&sg, eg);
        stat_add(&st, es);
        ol__gns_ema_push(&e, eg, es);
        ema_g = 0.9 * ema_g + 0.1 * eg;
        ema_s = 0.9 * ema_s + 0.1 * es;
        decay *= 0.9;
    }
    /* the smoothing: separate averages of numerator and denominator */
    double vg, vs;
    const double v = ol__gns_ema_value(&e, &vg, &vs);
    ASSERT_NEAR(vg, ema_g / (1.0 - decay), 1e-9 * fabs(vg));
    ASSERT_NEAR(vs, ema_s / (1.0 - decay), 1e-9 * fabs(vs));
    if (vg > 0)
        ASSERT_NEAR(v, vs / vg, 1e-12 * fabs(v));
    else /* no noise scale while the |G|^2 estimate is not positive */
        ASSERT_TRUE(isnan(v));
    if (sg.sum > 0)
        ASSERT_NEAR(ol__gns_run_value(&e), st.sum / sg.sum, 1e-9 * fabs(st.sum / sg.sum));
    else
        ASSERT_TRUE(isnan(ol__gns_run_value(&e)));
    *b_simple_run = ol__gns_run_value(&e);
    const double zg = fabs(stat_mean(&sg) - g2) / stat_se(&sg), zt = fabs(stat_mean(&st) - tr) / stat_se(&st);
    printf("  micro-batches of");
    for (int i = 0; i < nmb; i++)
        printf(" %d", sizes[i]);
    printf(" (%s mean): |G|^2 %.4f vs %.4f (%.1f SE), tr(Sigma) %.3f vs %.3f (%.1f SE); B_simple %.2f vs %.2f\n",
           harmonic ? "harmonic" : "arithmetic", stat_mean(&sg), g2, zg, stat_mean(&st), tr, zt, *b_simple_run,
           tr / g2);
    return fmax(zg, zt);
}

static void test_estimator(void)
{
    const int equal[4] = {16, 16, 16, 16}, unequal[3] = {30, 30, 4};
    double bs;
    ASSERT_TRUE(gaussian_source(equal, 4, 1, 3000, &bs) < 4.0);
    ASSERT_TRUE(gaussian_source(unequal, 3, 1, 3000, &bs) < 4.0);
    /* the test can fail: the arithmetic mean of unequal sizes is far off */
    ASSERT_TRUE(gaussian_source(unequal, 3, 0, 3000, &bs) > 10.0);
    /* two ranks of 32 (the per-rank mode has the same form) */
    const int ranks[2] = {32, 32};
    ASSERT_TRUE(gaussian_source(ranks, 2, 1, 3000, &bs) < 4.0);
}

/* ---- an MLP on a fixed data set: per-sample gradients in closed form ------ */

static ol_model *make_mlp(ol_ctx *ctx, int batch, int width)
{
    ol_model_params mp = ol_model_default_params();
    ol_model_params_set_arch(ctx, &mp, "mlp");
    mp.in_c = 1;
    mp.in_h = 8;
    mp.in_w = 8;
    mp.widths[0] = width;
    mp.nwidths = 1;
    mp.max_batch = batch;
    mp.seed = 5;
    ol_model *m = NULL;
    ASSERT_OK(ol_model_create(ctx, &mp, &m), ctx);
    return m;
}

static json_t *read_records(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "r");
    json_t *a = json_array();
    char *line = NULL;
    size_t cap = 0;
    while (f && getline(&line, &cap, f) > 0) {
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        ASSERT_TRUE(o != NULL);
        if (o)
            json_array_append_new(a, o);
    }
    free(line);
    if (f)
        fclose(f);
    return a;
}

static const char *type_of(const json_t *o) { return json_string_value(json_object_get(o, "type")); }

/* The run's per-step estimates (smoothing 0: each step record holds the raw
 * estimate of its step) against the exact |G|^2 and tr(Sigma) of the data
 * set at the (fixed) weights. Sampling without replacement from N samples:
 * E|G_b|^2 = |G|^2 + tr(S)/b (N-b)/(N-1), S the population covariance, so the
 * two-size estimators give tr(S) N/(N-1) and |G|^2 - tr(S)/(N-1). */
static void test_end_to_end(ol_ctx *ctx, const char *dir)
{
    enum { N = 256, B = 64, MB = 16 };
    ol_dataset d;
    ASSERT_OK(ol_dataset_synthetic(ctx, N, 1, 8, 8, 10, 21, &d), ctx);
    ol_model *m = make_mlp(ctx, B, 16);
    ol_paramset *ps = ol_model_paramset(m);
    const size_t P = ps->numel;
    double *mean = calloc(P, sizeof(double)), *gi = malloc(N * P * sizeof(double));
    float *x = malloc(64 * sizeof(float));
    ol_train_params tg = ol_train_default_params();
    for (int64_t i = 0; i < N; i++) {
        int32_t y;
        ol_dataset_fill(&d, &i, 1, NULL, 0, 0, x, &y);
        ol_step_result r;
        ASSERT_OK(ol_train_grads(ctx, &tg, m, x, &y, 1, &r), ctx);
        for (size_t j = 0; j < P; j++) {
            gi[(size_t)i * P + j] = ps->grads[j];
            mean[j] += ps->grads[j] / (double)N;
        }
    }
    double g2 = 0.0, trs = 0.0;
    for (size_t j = 0; j < P; j++)
        g2 += mean[j] * mean[j];
    for (int i = 0; i < N; i++)
        for (size_t j = 0; j < P; j++)
            trs += (gi[(size_t)i * P + j] - mean[j]) * (gi[(size_t)i * P + j] - mean[j]) / N;
    const double want_tr = trs * N / (N - 1.0), want_g2 = g2 - trs / (N - 1.0);

    ol_optim_params op = ol_optim_default_params(OL_OPT_SGD);
    op.lr = 1e-30; /* the weights stay put: a stationary gradient distribution */
    ol_optim *o = NULL;
    ASSERT_OK(ol_optim_create(ctx, &op, ps, &o), ctx);
    ol_sched_params sp = ol_sched_default_params(OL_SCHED_CONSTANT);
    sp.base_lr = op.lr;
    ol_train_params tp = ol_train_default_params();
    tp.epochs = 100;
    tp.batch_size = B;
    tp.micro_batch_size = MB;
    tp.log_every = 1;
    tp.gns = 1;
    tp.gns_smoothing = 0.0;
    tp.final_checkpoint = 0;
    tp.out_dir = dir;
    ol_train_result res;
    ASSERT_OK(ol_train(ctx, &tp, m, o, &sp, &d, &d, NULL, &res), ctx);
    json_t *recs = read_records(dir);
    stat sg = {0}, st = {0};
    size_t i;
    json_t *r;
    json_array_foreach(recs, i, r)
    {
        if (!type_of(r) || strcmp(type_of(r), "step") != 0)
            continue;
        ASSERT_TRUE(json_is_number(json_object_get(r, "gns")));
        stat_add(&sg, json_number_value(json_object_get(r, "gns_grad_sq")));
        stat_add(&st, json_number_value(json_object_get(r, "gns_trace")));
    }
    json_decref(recs);
    ASSERT_EQ_INT((int64_t)sg.n, 400);
    ASSERT_EQ_INT(res.gns_steps, 400);
    const double zg = fabs(stat_mean(&sg) - want_g2) / stat_se(&sg), zt = fabs(stat_mean(&st) - want_tr) / stat_se(&st);
    printf("  MLP, %d samples, batch %d in micro-batches of %d, 400 steps: |G|^2 %.5g vs exact %.5g (%.1f SE), "
           "tr(Sigma) %.5g vs %.5g (%.1f SE); B_simple over the run %.2f vs %.2f\n",
           N, B, MB, stat_mean(&sg), want_g2, zg, stat_mean(&st), want_tr, zt, res.gns_run, want_tr / want_g2);
    ASSERT_TRUE(zg < 4.0);
    ASSERT_TRUE(zt < 4.0);
    ASSERT_NEAR(res.gns_run, want_tr / want_g2, 0.25 * want_tr / want_g2);
    ol_optim_free(o);
    ol_model_free(m);
    ol_dataset_free(&d);
    free(mean);
    free(gi);
    free(x);
}

/* ---- the weights do not change; layer statistics by hand ----------------- */

static float *train_copy(ol_ctx *ctx, int gns, int layers, const char *dir, size_t *numel)
{
    ol_dataset d;
    ASSERT_OK(ol_dataset_synthetic(ctx, 512, 1, 8, 8, 10, 4, &d), ctx);
    ol_model *m = make_mlp(ctx, 64, 32);
    ol_optim_params op = ol_optim_default_params(OL_OPT_SGD);
    op.lr = 0.1;
    op.momentum = 0.9;
    op.weight_decay = 1e-3;
    ol_optim *o = NULL;
    ASSERT_OK(ol_optim_create(ctx, &op, ol_model_paramset(m), &o), ctx);
    ol_sched_params sp = ol_sched_default_params(OL_SCHED_COSINE);
    sp.base_lr = op.lr;
    sp.total_steps = 24;
    ol_train_params tp = ol_train_default_params();
    tp.epochs = 3;
    tp.batch_size = 64;
    tp.micro_batch_size = 24; /* unequal pieces: 24, 24, 16 */
    tp.clip_grad_norm = 1.0;
    tp.gns = gns;
    tp.log_layer_stats = layers;
    tp.final_checkpoint = 0;
    tp.out_dir = dir;
    ol_train_result res;
    ASSERT_OK(ol_train(ctx, &tp, m, o, &sp, &d, &d, NULL, &res), ctx);
    ASSERT_TRUE(gns ? res.gns_steps == 24 : res.gns_steps == 0);
    const ol_paramset *ps = ol_model_paramset(m);
    *numel = ps->numel;
    float *p = malloc(ps->numel * sizeof(float));
    memcpy(p, ps->params, ps->numel * sizeof(float));
    ol_optim_free(o);
    ol_model_free(m);
    ol_dataset_free(&d);
    return p;
}

static void test_bitwise(ol_ctx *ctx, const char *dir)
{
    size_t n0, n1;
    float *a = train_copy(ctx, 0, 0, NULL, &n0), *b = train_copy(ctx, 1, 5, dir, &n1);
    const int same = n0 == n1 && memcmp(a, b, n0 * sizeof(float)) == 0;
    printf("  24 steps with and without --gns and layer statistics: %zu parameters %s\n", n0,
           same ? "bitwise identical" : "DIFFER");
    ASSERT_TRUE(same);
    free(a);
    free(b);
}

/* One SGD step on the whole data set: grad_norm = |g| per tensor,
 * weight_norm = |w| before the step, update_ratio = lr |g| / |w|. */
static void test_layer_stats(ol_ctx *ctx, const char *dir)
{
    enum { N = 32 };
    const double lr = 0.25;
    ol_dataset d;
    ASSERT_OK(ol_dataset_synthetic(ctx, N, 1, 8, 8, 10, 9, &d), ctx);
    ol_model *m = make_mlp(ctx, N, 6);
    ol_paramset *ps = ol_model_paramset(m);
    float *x = malloc(N * 64 * sizeof(float));
    int32_t y[N];
    int64_t idx[N];
    for (int i = 0; i < N; i++)
        idx[i] = i;
    ol_dataset_fill(&d, idx, N, NULL, 0, 0, x, y);
    ol_train_params tg = ol_train_default_params();
    ol_step_result r;
    ASSERT_OK(ol_train_grads(ctx, &tg, m, x, y, N, &r), ctx);
    double gn[8], wn[8];
    for (int t = 0; t < ps->n; t++) {
        double g = 0.0, w = 0.0;
        for (size_t j = 0; j < ps->t[t].numel; j++) {
            g += (double)ps->grads[ps->t[t].offset + j] * ps->grads[ps->t[t].offset + j];
            w += (double)ps->params[ps->t[t].offset + j] * ps->params[ps->t[t].offset + j];
        }
        gn[t] = sqrt(g);
        wn[t] = sqrt(w);
    }
    ol_optim_params op = ol_optim_default_params(OL_OPT_SGD);
    op.lr = lr;
    ol_optim *o = NULL;
    ASSERT_OK(ol_optim_create(ctx, &op, ps, &o), ctx);
    ol_sched_params sp = ol_sched_default_params(OL_SCHED_CONSTANT);
    sp.base_lr = lr;
    ol_train_params tp = ol_train_default_params();
    tp.epochs = 1;
    tp.batch_size = N;
    tp.log_layer_stats = 1;
    tp.final_checkpoint = 0;
    tp.out_dir = dir;
    ol_train_result res;
    ASSERT_OK(ol_train(ctx, &tp, m, o, &sp, &d, &d, NULL, &res), ctx);
    json_t *recs = read_records(dir), *names = NULL, *layers = NULL, *rec;
    size_t i;
    json_array_foreach(recs, i, rec)
    {
        if (type_of(rec) && strcmp(type_of(rec), "layer_names") == 0)
            names = json_object_get(rec, "names");
        if (type_of(rec) && strcmp(type_of(rec), "layers") == 0)
            layers = rec;
    }
    ASSERT_TRUE(names && layers && (int)json_array_size(names) == ps->n && ps->n <= 8);
    if (names && layers && (int)json_array_size(names) == ps->n) {
        ASSERT_EQ_INT(json_integer_value(json_object_get(layers, "step")), 1);
        for (int t = 0; t < ps->n; t++) {
            ASSERT_TRUE(strcmp(json_string_value(json_array_get(names, (size_t)t)), ps->t[t].name) == 0);
            const double g = json_number_value(json_array_get(json_object_get(layers, "grad_norm"), (size_t)t));
            const double w = json_number_value(json_array_get(json_object_get(layers, "weight_norm"), (size_t)t));
            const double u = json_number_value(json_array_get(json_object_get(layers, "update_ratio"), (size_t)t));
            printf("  %-12s |g| %.6g (hand %.6g)  |w| %.6g (%.6g)  |dw|/|w| %.6g (lr |g|/|w| %.6g)\n",
                   ps->t[t].name, g, gn[t], w, wn[t], u, wn[t] > 0 ? lr * gn[t] / wn[t] : NAN);
            ASSERT_NEAR(g, gn[t], 1e-5 * gn[t] + 1e-12);
            ASSERT_NEAR(w, wn[t], 1e-5 * wn[t]);
            if (wn[t] > 0) /* zero-initialised biases: the ratio is null */
                ASSERT_NEAR(u, lr * gn[t] / wn[t], 1e-4 * lr * gn[t] / wn[t]);
            else
                ASSERT_TRUE(json_is_null(json_array_get(json_object_get(layers, "update_ratio"), (size_t)t)));
        }
    }
    json_decref(recs);
    ol_optim_free(o);
    ol_model_free(m);
    ol_dataset_free(&d);
    free(x);
}

static void test_invalid(ol_ctx *ctx)
{
    ol_train_params tp = ol_train_default_params();
    tp.gns = 1;
    ASSERT_EQ_INT(ol_train_check_diag(ctx, &tp, 1), OL_EINVAL); /* one batch size only */
    printf("  %s\n", ol_ctx_errmsg(ctx));
    tp.micro_batch_size = tp.batch_size;
    ASSERT_EQ_INT(ol_train_check_diag(ctx, &tp, 1), OL_EINVAL);
    tp.micro_batch_size = 32;
    ASSERT_OK(ol_train_check_diag(ctx, &tp, 1), ctx);
    tp.micro_batch_size = 0;
    ASSERT_OK(ol_train_check_diag(ctx, &tp, 2), ctx); /* the per-rank gradients */
    tp.powersgd.rank = 2;
    ASSERT_EQ_INT(ol_train_check_diag(ctx, &tp, 2), OL_EINVAL);
    printf("  %s\n", ol_ctx_errmsg(ctx));
    tp.powersgd.rank = 0;
    tp.diloco.h = 4;
    ASSERT_EQ_INT(ol_train_check_diag(ctx, &tp, 2), OL_EINVAL);
    tp.diloco.h = 0;
    tp.gns_smoothing = 1.0;
    ASSERT_EQ_INT(ol_train_check_diag(ctx, &tp, 2), OL_EINVAL);
    tp = ol_train_default_params();
    tp.log_layer_stats = -1;
    ASSERT_EQ_INT(ol_train_check_diag(ctx, &tp, 1), OL_EINVAL);
}

int main(void)
{
    ol_ctx *ctx = ol_ctx_new(2);
    char dir[] = "/tmp/optimlab-diag-XXXXXX";
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    char a[300], b[300], c[300];
    snprintf(a, sizeof a, "%s/e2e", dir);
    snprintf(b, sizeof b, "%s/bitwise", dir);
    snprintf(c, sizeof c, "%s/layers", dir);
    test_estimator();
    test_end_to_end(ctx, a);
    test_bitwise(ctx, b);
    test_layer_stats(ctx, c);
    test_invalid(ctx);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ASSERT_EQ_INT(system(cmd), 0);
    ol_ctx_free(ctx);
    return tu_finish("test_diag");
}
