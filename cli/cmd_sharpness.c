/* optimlab sharpness: top Hessian eigenvalues and the Hessian trace of a
 * checkpoint's training loss. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evalrun.h"
#include "optimlab/hessian.h"
#include "tools/svg.h"

static const cli_opt sharp_opts[] = {
    {"top-k", CLI_VALUE, "1", "K", "Sharpness", "eigenvalues of largest magnitude to compute (1..16)"},
    {"iters", CLI_VALUE, "100", "N", "Sharpness", "power iterations per eigenvalue at most"},
    {"tol", CLI_VALUE, "1e-3", "X", "Sharpness",
     "stop an eigenvalue when it changes by less than X relative between iterations"},
    {"trace", CLI_FLAG, "0", NULL, "Sharpness", "also estimate the Hessian trace (Hutchinson)"},
    {"trace-samples", CLI_VALUE, "100", "N", "Sharpness", "Rademacher vectors for the trace at most"},
    {"trace-tol", CLI_VALUE, "0.01", "X", "Sharpness",
     "stop the trace when its standard error is below X times its value (0: all samples)"},
    {"eps-sharpness", CLI_VALUE, "", "E[,E...]", "Sharpness",
     "also Keskar et al.'s epsilon-sharpness for each box size E (e.g. 1e-3,5e-4)"},
    {"eps-iters", CLI_VALUE, "20", "N", "Sharpness", "ascent steps of the epsilon-sharpness"},
    {"density", CLI_FLAG, "0", NULL, "Sharpness",
     "also the eigenvalue density by stochastic Lanczos quadrature (PyHessian's density; with --out, DIR/density.svg)"},
    {"density-steps", CLI_VALUE, "100", "M", "Sharpness", "Lanczos steps per run of the density (memory: M vectors)"},
    {"density-runs", CLI_VALUE, "1", "R", "Sharpness", "random start vectors of the density, averaged"},
    {"fd-step", CLI_VALUE, "1e-4", "X", "Sharpness",
     "finite-difference step relative to the weights: t = X max(|w|,1) / |v|"},
    {"train-subset", CLI_VALUE, "1000", "N", "Sharpness",
     "the first N training samples (the loss is their mean; by default at most the whole set)"},
    {"batch-size", CLI_VALUE, "0", "B", "Sharpness", "samples per pass (0 = the run's evaluation batch)"},
    {"seed", CLI_VALUE, "0", "S", "Sharpness", "seed of the start and Rademacher vectors"},
    {"data-dir", CLI_VALUE, "", "DIR", "Sharpness", "dataset directory (default: the run's)"},
    {"json", CLI_FLAG, "0", NULL, "Sharpness", "print the result as JSON"},
    {"out", CLI_VALUE, "", "DIR", "Sharpness", "also write DIR/sharpness.json"},
    {"threads", CLI_VALUE, "0", "T", "Run", "compute threads (0 = all cores)"},
    {"backend", CLI_VALUE, "auto", "NAME", "Run", "auto, onednn, blas, ref"},
    {NULL, 0, NULL, NULL, NULL, NULL}};

static const char *const sharp_usage =
    "usage: optimlab sharpness RUN_DIR|CHECKPOINT [--top-k K] [--trace] [--eps-sharpness E[,E...]] [--iters N]\n"
    "                          [--tol X] [--train-subset N] [--batch-size B] [--seed S] [--json] [--out DIR]\n"
    "\n"
    "Curvature of the mean training loss at a run's newest valid checkpoint (or the given checkpoint) on\n"
    "its first N training samples, with BatchNorm in eval mode (running statistics), as PyHessian does:\n"
    "the K Hessian eigenvalues of largest magnitude by power iteration with deflation, and with --trace\n"
    "the Hessian trace by Hutchinson's estimator with its standard error. Hessian-vector products are\n"
    "central differences of gradients; the output includes an estimate of their error (v'Hv and Hv along\n"
    "the top eigenvector at the step and at a quarter of it). --eps-sharpness E: the largest rise of the\n"
    "loss within the box |y_i| <= E (|w_i| + 1), relative to 1 + loss, in percent (Keskar et al. 2017),\n"
    "by projected sign-gradient ascent. --density: the density of the Hessian's eigenvalues by stochastic\n"
    "Lanczos quadrature, with its extreme eigenvalues and the weight on negative ones (PyHessian's\n"
    "density; --out DIR also plots it). See docs/landscape.md. The run directory is only read.";

typedef struct {
    long long topk, iters, trace_samples, ntrain, batch, seed, threads, eps_iters, dsteps, druns;
    double tol, trace_tol, fd_step, eps[8];
    int neps, density;
} sharp_opts_t;

/* The density's quadrature as ol_eigen_slq returns it (runs rows of steps), kept for the plot. */
typedef struct {
    double *nodes, *w;
    int runs, steps;
} density_res;

static int sharp_parse(cli_values *v, void *opts, char *err, size_t cap)
{
    sharp_opts_t *o = opts;
    if (cli_int(v, "top-k", 1, 16, &o->topk) || cli_int(v, "iters", 1, 100000, &o->iters) ||
        cli_int(v, "trace-samples", 2, 1000000, &o->trace_samples) ||
        cli_int(v, "train-subset", 1, INT64_MAX, &o->ntrain) || cli_int(v, "batch-size", 0, 1 << 20, &o->batch) ||
        cli_int(v, "seed", 0, INT64_MAX, &o->seed) || cli_int(v, "threads", 0, 1024, &o->threads) ||
        cli_double(v, "tol", 0.0, 1.0, &o->tol) || cli_double(v, "trace-tol", 0.0, 1.0, &o->trace_tol) ||
        cli_double(v, "fd-step", 1e-7, 0.1, &o->fd_step) || cli_int(v, "eps-iters", 1, 100000, &o->eps_iters) ||
        cli_double_list(v, "eps-sharpness", 1e-12, 0.5, o->eps, 8, &o->neps) ||
        cli_int(v, "density-steps", 2, 1000000, &o->dsteps) || cli_int(v, "density-runs", 1, 1000, &o->druns)) {
        snprintf(err, cap, "%s", v->err);
        return -1;
    }
    if ((cli_given(v, "density-steps") || cli_given(v, "density-runs")) && !cli_flag(v, "density")) {
        snprintf(err, cap, "--density-steps and --density-runs apply only with --density");
        return -1;
    }
    o->density = cli_flag(v, "density");
    return 0;
}

/* The eigenvalue density (stochastic Lanczos quadrature) into d and res: nodes and weights per
 * run, the extreme nodes and the weight on negative eigenvalues. */
static int add_density(ol_ctx *ctx, const ol_linop *op, const sharp_opts_t *o, json_t *res, density_res *d)
{
    ol_slq_params sp = {.steps = (int)o->dsteps, .runs = (int)o->druns, .seed = (uint64_t)o->seed};
    const size_t m = (size_t)sp.steps * (size_t)sp.runs;
    double *nodes = d->nodes = malloc(m * sizeof(double)), *w = d->w = malloc(m * sizeof(double));
    d->runs = sp.runs, d->steps = sp.steps;
    int *used = malloc((size_t)sp.runs * sizeof(int));
    int s = nodes && w && used ? ol_eigen_slq(ctx, op, &sp, nodes, w, used)
                               : (ol_ctx_set_error(ctx, OL_ENOMEM, "out of memory"), OL_ENOMEM);
    if (s >= 0) {
        json_t *jn = json_array(), *jw = json_array(), *ju = json_array();
        double lo = INFINITY, hi = -INFINITY, neg = 0.0;
        for (int r = 0; r < sp.runs; r++)
            for (int j = 0; j < used[r]; j++)
                lo = fmin(lo, nodes[(size_t)r * sp.steps + j]), hi = fmax(hi, nodes[(size_t)r * sp.steps + j]);
        /* the bulk near 0 straddles it by the products' error: count only clearly negative nodes */
        const double thr = -1e-3 * fmax(fabs(lo), fabs(hi));
        for (int r = 0; r < sp.runs; r++) {
            json_t *rn = json_array(), *rw = json_array();
            for (int j = 0; j < used[r]; j++) {
                const double x = nodes[(size_t)r * sp.steps + j], wx = w[(size_t)r * sp.steps + j];
                json_array_append_new(rn, json_real(x));
                json_array_append_new(rw, json_real(wx));
                neg += x < thr ? wx / sp.runs : 0.0;
            }
            json_array_append_new(jn, rn);
            json_array_append_new(jw, rw);
            json_array_append_new(ju, json_integer(used[r]));
        }
        json_object_set_new(res, "density",
                            json_pack("{s:i,s:i,s:o,s:f,s:f,s:f,s:f,s:o,s:o}", "steps", sp.steps, "runs", sp.runs,
                                      "used", ju, "lambda_min", lo, "lambda_max", hi, "negative_threshold", thr,
                                      "negative_weight", neg, "nodes", jn, "weights", jw));
    }
    free(used);
    return s;
}

/* The finite-difference error along the top eigenvector v: the relative
 * change of v'Hv and of the vector Hv from the step to a quarter of it. */
static int fd_check(ol_ctx *ctx, ol_hessian *h, const double *v, double fd_step, double *rayleigh, double *vec)
{
    const size_t n = ol_hessian_dim(h);
    double *a = malloc(n * sizeof(double)), *b = malloc(n * sizeof(double));
    int s = a && b ? OL_OK : (ol_ctx_set_error(ctx, OL_ENOMEM, "out of memory"), OL_ENOMEM);
    if (s >= 0)
        s = ol_hessian_vector_product(ctx, h, v, a, fd_step);
    if (s >= 0)
        s = ol_hessian_vector_product(ctx, h, v, b, fd_step / 4.0);
    if (s >= 0) {
        double d = 0.0, na = 0.0, qa = 0.0, qb = 0.0;
        for (size_t i = 0; i < n; i++)
            d += (a[i] - b[i]) * (a[i] - b[i]), na += a[i] * a[i], qa += v[i] * a[i], qb += v[i] * b[i];
        *vec = na > 0.0 ? sqrt(d / na) : 0.0;
        *rayleigh = qa != 0.0 ? fabs(qa - qb) / fabs(qa) : fabs(qb);
    }
    free(a);
    free(b);
    return s;
}

/* Eigenvalues, trace and the check into res. */
static int sharpness(ol_ctx *ctx, cli_run *r, const sharp_opts_t *o, int batch, int want_trace, json_t *res,
                     density_res *dens, char *err, size_t cap)
{
    ol_hessian_params hp = ol_hessian_default_params();
    hp.data = &r->data.train;
    hp.batch = batch;
    hp.fd_step = o->fd_step;
    ol_hessian *h = NULL;
    const int k = (int)o->topk;
    double *vecs = NULL, *g = NULL, lam[16], loss = 0.0, gnorm = 0.0, check[2] = {0.0, 0.0}, t0 = ol_now();
    ol_eigen_info info;
    ol_trace_result tr = {0, 0, 0};
    int s = ol_hessian_create(ctx, r->m, &hp, &h);
    const size_t n = s >= 0 ? ol_hessian_dim(h) : 0;
    if (s >= 0) {
        vecs = malloc((size_t)k * n * sizeof(double));
        g = malloc(n * sizeof(double));
        s = vecs && g ? OL_OK : (ol_ctx_set_error(ctx, OL_ENOMEM, "out of memory"), OL_ENOMEM);
    }
    if (s >= 0)
        s = ol_hessian_gradient(ctx, h, g, &loss);
    for (size_t i = 0; s >= 0 && i < n; i++)
        gnorm += g[i] * g[i];
    ol_linop op = s >= 0 ? ol_hessian_linop(h) : (ol_linop){0, NULL, NULL, NULL};
    ol_eigen_params ep = {.max_iter = (int)o->iters, .tol = o->tol, .seed = (uint64_t)o->seed};
    if (s >= 0)
        s = ol_eigen_power(ctx, &op, k, &ep, lam, vecs, &info);
    if (s >= 0)
        s = fd_check(ctx, h, vecs, o->fd_step, &check[0], &check[1]);
    ol_trace_params tp = {.max_samples = (int)o->trace_samples, .min_samples = 10, .tol = o->trace_tol,
                          .seed = (uint64_t)o->seed};
    if (s >= 0 && want_trace)
        s = ol_trace_hutchinson(ctx, &op, &tp, &tr, NULL);
    if (s >= 0 && o->density)
        s = add_density(ctx, &op, o, res, dens);
    json_t *eps = json_array();
    for (int i = 0; s >= 0 && i < o->neps; i++) {
        ol_eps_sharpness_params epp = ol_eps_sharpness_default_params();
        ol_eps_sharpness_result er;
        epp.eps = o->eps[i], epp.iters = (int)o->eps_iters;
        s = ol_hessian_eps_sharpness(ctx, h, &epp, &er);
        if (s >= 0)
            json_array_append_new(eps, json_pack("{s:f,s:f,s:f,s:i,s:i}", "eps", epp.eps, "sharpness", er.sharpness,
                                                 "max_loss", er.max_loss, "iters", epp.iters, "best_iter",
                                                 er.best_iter));
    }
    if (s >= 0) {
        if (o->neps > 0)
            json_object_set_new(res, "eps_sharpness", json_incref(eps));
        json_t *ev = json_array(), *it = json_array(), *cv = json_array();
        for (int i = 0; i < k; i++) {
            json_array_append_new(ev, json_real(lam[i]));
            json_array_append_new(it, json_integer(info.iters[i]));
            json_array_append_new(cv, json_boolean(info.converged[i]));
        }
        json_object_set_new(res, "loss", json_real(loss));
        json_object_set_new(res, "grad_norm", json_real(sqrt(gnorm)));
        json_object_set_new(res, "eigenvalues", ev);
        json_object_set_new(res, "iterations", it);
        json_object_set_new(res, "converged", cv);
        if (want_trace)
            json_object_set_new(res, "trace", json_pack("{s:f,s:f,s:i}", "mean", tr.trace, "stderr", tr.std_err,
                                                        "samples", tr.samples));
        json_object_set_new(res, "fd_check", json_pack("{s:f,s:f}", "rayleigh", check[0], "vector", check[1]));
        json_object_set_new(res, "gradient_passes", json_integer((json_int_t)ol_hessian_passes(h)));
        json_object_set_new(res, "seconds", json_real(ol_now() - t0));
    } else {
        snprintf(err, cap, "%s", ol_ctx_errmsg(ctx));
    }
    json_decref(eps);
    ol_hessian_free(h);
    free(vecs);
    free(g);
    return s >= 0 ? OL_EXIT_OK : cli_exit_for(s);
}

static double jreal(const json_t *o, const char *key)
{
    return json_number_value(json_object_get(o, key));
}

static void print_text(const json_t *res, const cli_run *r)
{
    char arch[64];
    ol_model_params_name(ol_model_get_params(r->m), arch, sizeof arch);
    printf("%s: step %lld, epoch %lld (%s, %zu parameters, %s)\n", r->ckpt, (long long)r->ts.step,
           (long long)r->ts.epoch, arch, ol_paramset_count(ol_model_paramset(r->m)), r->dataset);
    printf("mean training loss on %lld samples (BatchNorm in eval mode): %.6f, gradient norm %.4g\n",
           (long long)json_integer_value(json_object_get(res, "samples")), jreal(res, "loss"), jreal(res, "grad_norm"));
    const json_t *ev = json_object_get(res, "eigenvalues"), *it = json_object_get(res, "iterations"),
                 *cv = json_object_get(res, "converged");
    for (size_t i = 0; i < json_array_size(ev); i++)
        printf("eigenvalue %zu: %.6g  (%lld iterations%s)\n", i + 1, json_real_value(json_array_get(ev, i)),
               (long long)json_integer_value(json_array_get(it, i)),
               json_is_true(json_array_get(cv, i)) ? ", converged" : ", NOT converged: raise --iters");
    const json_t *tr = json_object_get(res, "trace");
    if (tr)
        printf("trace: %.6g +- %.3g (standard error, %lld Rademacher vectors)\n", jreal(tr, "mean"),
               jreal(tr, "stderr"), (long long)json_integer_value(json_object_get(tr, "samples")));
    const json_t *es = json_object_get(res, "eps_sharpness");
    for (size_t i = 0; i < json_array_size(es); i++) {
        const json_t *e = json_array_get(es, i);
        printf("epsilon-sharpness (Keskar et al.), eps %g: %.4g %% (highest loss in the box %.6f, %lld ascent steps)\n",
               jreal(e, "eps"), jreal(e, "sharpness"), jreal(e, "max_loss"),
               (long long)json_integer_value(json_object_get(e, "iters")));
    }
    const json_t *dj = json_object_get(res, "density");
    if (dj)
        printf("eigenvalue density (stochastic Lanczos, %lld steps x %lld runs): Ritz values %.6g to %.6g, weight on "
               "negative eigenvalues (below %.3g) %.3g %%\n",
               (long long)json_integer_value(json_object_get(dj, "steps")),
               (long long)json_integer_value(json_object_get(dj, "runs")), jreal(dj, "lambda_min"),
               jreal(dj, "lambda_max"), jreal(dj, "negative_threshold"), 100.0 * jreal(dj, "negative_weight"));
    const json_t *fc = json_object_get(res, "fd_check");
    printf("finite differences (step %g), at a quarter step along the top eigenvector: v'Hv changes by %.1e, "
           "Hv by %.1e (relative)\n",
           jreal(res, "fd_step"), jreal(fc, "rayleigh"), jreal(fc, "vector"));
    printf("%lld gradient passes, %.1f s\n", (long long)json_integer_value(json_object_get(res, "gradient_passes")),
           jreal(res, "seconds"));
}

/* DIR/density.svg and density.csv: the density smoothed as PyHessian's density_generate, on a log
 * axis with PyHessian's floor of 1e-7, the Ritz values marked along the bottom. */
static int write_density(ol_ctx *ctx, const density_res *d, const char *dir, char *err, size_t cap)
{
    enum { BINS = 10000 }; /* PyHessian's: the narrow Gaussians of a wide spectrum need them */
    const double *nodes = d->nodes, *w = d->w;
    const int runs = d->runs, steps = d->steps;
    double *grid = malloc(BINS * sizeof(double)), *dens = malloc(BINS * sizeof(double));
    int rc = grid && dens ? OL_EXIT_OK : (snprintf(err, cap, "out of memory"), OL_EXIT_FAIL);
    if (rc == OL_EXIT_OK && ol_slq_density(ctx, nodes, w, runs, steps, BINS, 1e-5, grid, dens) < 0)
        rc = OL_EXIT_FAIL, snprintf(err, cap, "%s", ol_ctx_errmsg(ctx));
    char path[4200];
    if (rc == OL_EXIT_OK) {
        cli_memfile csv;
        FILE *f = cli_memfile_open(&csv);
        if (f) {
            fprintf(f, "eigenvalue,density\n");
            for (int b = 0; b < BINS; b++)
                fprintf(f, "%.9g,%.9g\n", grid[b], dens[b]);
        }
        snprintf(path, sizeof path, "%s/density.csv", dir);
        if (cli_memfile_save(&csv, path, err, cap) < 0)
            rc = OL_EXIT_FAIL;
    }
    double top = 0.0;
    for (int b = 0; rc == OL_EXIT_OK && b < BINS; b++)
        top = fmax(top, dens[b] += 1e-7);
    ol__svg sv;
    const double pad = rc == OL_EXIT_OK ? 0.02 * (grid[BINS - 1] - grid[0]) : 0.0; /* peaks clear of the frame */
    if (rc == OL_EXIT_OK &&
        ol__svg_begin(ctx, &sv, 720, 440, grid[0] - pad, grid[BINS - 1] + pad, 1e-7, top * 2.0, 0, 1) >= 0) {
        ol__svg_axes(&sv, "Hessian eigenvalue density (stochastic Lanczos quadrature)", "eigenvalue",
                     "density (log scale)");
        ol__svg_polyline(&sv, grid, dens, BINS, ol__svg_color(0), 1.6, 0);
        for (size_t j = 0; j < (size_t)runs * steps; j++) /* the nodes themselves, as a rug */
            if (w[j] > 0.0)
                ol__svg_marker(&sv, nodes[j], 1.6e-7, 2.0, ol__svg_color(1));
        snprintf(path, sizeof path, "%s/density.svg", dir);
        if (ol__svg_save(ctx, &sv, path) < 0)
            rc = OL_EXIT_FAIL, snprintf(err, cap, "%s", ol_ctx_errmsg(ctx));
        ol__svg_free(&sv);
    } else if (rc == OL_EXIT_OK) {
        rc = OL_EXIT_FAIL, snprintf(err, cap, "%s", ol_ctx_errmsg(ctx));
    }
    free(grid), free(dens);
    return rc;
}

static int emit(ol_ctx *ctx, cli_values *v, const json_t *res, const density_res *dens, const cli_run *r, char *err,
                size_t cap)
{
    char *text = json_dumps(res, JSON_REAL_PRECISION(17) | JSON_INDENT(2));
    if (!text) {
        snprintf(err, cap, "out of memory");
        return OL_EXIT_FAIL;
    }
    int rc = OL_EXIT_OK;
    const char *dir = cli_str(v, "out");
    if (*dir) {
        char path[4200];
        snprintf(path, sizeof path, "%s/sharpness.json", dir);
        /* cli_mkdir_p and cli_write_file return -1, not an exit status */
        if (cli_mkdir_p(ctx, dir, err, cap) != 0 || cli_write_file(ctx, path, text, strlen(text), err, cap) != 0)
            rc = OL_EXIT_FAIL;
        if (rc == OL_EXIT_OK && dens->nodes)
            rc = write_density(ctx, dens, dir, err, cap);
    }
    if (rc == OL_EXIT_OK && cli_flag(v, "json"))
        printf("%s\n", text);
    else if (rc == OL_EXIT_OK)
        print_text(res, r);
    free(text);
    return rc;
}

static json_t *header(const cli_run *r, const sharp_opts_t *o, int batch, const ol_ctx *ctx)
{
    char arch[64];
    ol_model_params_name(ol_model_get_params(r->m), arch, sizeof arch);
    return json_pack("{s:s,s:I,s:I,s:s,s:I,s:s,s:I,s:i,s:f,s:I,s:f,s:s,s:i}", "checkpoint", r->ckpt, "step",
                     (json_int_t)r->ts.step, "epoch", (json_int_t)r->ts.epoch, "model", arch, "parameters",
                     (json_int_t)ol_paramset_count(ol_model_paramset(r->m)), "dataset", r->dataset, "samples",
                     (json_int_t)r->data.train.n, "batch_size", batch, "fd_step", o->fd_step, "seed",
                     (json_int_t)o->seed, "tol", o->tol, "batchnorm", "eval", "threads", ol_ctx_threads(ctx));
}

int cmd_sharpness(int argc, char **argv)
{
    const cli_opt *const tables[] = {sharp_opts, NULL};
    cli_values v;
    cli_init(&v, tables);
    int rc;
    ol_ctx *ctx = NULL;
    cli_run r;
    memset(&r, 0, sizeof r);
    json_t *res = NULL;
    char err[1400] = "";
    sharp_opts_t o;
    density_res dens = {NULL, NULL, 0, 0};
    if ((rc = cli_run_args(&v, argc, argv, sharp_usage, sharp_parse, &o)) >= 0)
        goto done;
    /* the default subset is at most the set; a given one must fit */
    const int given = cli_given(&v, "train-subset");
    if ((rc = cli_run_ctx(&v, argv[2], (int)o.threads, 1, given ? o.ntrain : 0, 0, &ctx, &r)) != OL_EXIT_OK)
        goto done;
    if (!given && r.data.train.n > o.ntrain && ol_dataset_truncate(ctx, &r.data.train, o.ntrain) < 0)
        rc = OL_EXIT_FAIL, snprintf(err, sizeof err, "%s", ol_ctx_errmsg(ctx));
    const int batch = o.batch > 0 ? (int)o.batch : r.batch;
    if (rc == OL_EXIT_OK && !(res = header(&r, &o, batch, ctx)))
        rc = OL_EXIT_FAIL, snprintf(err, sizeof err, "out of memory");
    if (rc == OL_EXIT_OK)
        rc = sharpness(ctx, &r, &o, batch, cli_flag(&v, "trace"), res, &dens, err, sizeof err);
    if (rc == OL_EXIT_OK)
        rc = emit(ctx, &v, res, &dens, &r, err, sizeof err);
    if (rc != OL_EXIT_OK)
        cli_fail(rc, err);
done:
    json_decref(res);
    free(dens.nodes);
    free(dens.w);
    cli_run_close(&r);
    ol_ctx_free(ctx);
    cli_free(&v);
    return rc;
}
