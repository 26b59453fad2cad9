/* optimlab bench train: time full training steps (forward, loss, backward,
 * update) on random data: the library's step, ol_train_step. Image models
 * take an SGD-momentum update; language models (gpt, gpt-mini, gpt2-124m)
 * take random token ids and targets and an AdamW update. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "common.h"

static const cli_opt bench_train_opts[] = {
    {"batch-size", CLI_VALUE, "128", "B", "Benchmark", "batch size"},
    {"steps", CLI_VALUE, "20", "N", "Benchmark", "timed steps"},
    {"warmup", CLI_VALUE, "3", "N", "Benchmark", "untimed steps first (primitive creation, page faults)"},
    {"input", CLI_VALUE, "1x28x28", "CxHxW", "Benchmark", "input shape (Fashion-MNIST: 1x28x28, CIFAR-10: 3x32x32)"},
    {"classes", CLI_VALUE, "10", "K", "Benchmark",
     "number of classes (language models: vocabulary, default 256 bytes; gpt2-124m: 50257)"},
    {"json", CLI_FLAG, "0", NULL, "Benchmark", "print one JSON object instead of text"},
    {NULL, 0, NULL, NULL, NULL, NULL}};

static const char *const bench_usage =
    "usage: optimlab bench train [options]\n"
    "\n"
    "Time full training steps (forward, loss, backward, update) on random data and print samples/s\n"
    "(language models: also tokens/s), the time per phase, peak memory and the kernels that ran.\n"
    "Image models take an SGD-momentum update, language models (gpt-mini, gpt2-124m) AdamW.\n"
    "\n"
    "example: optimlab bench train --model resnet20 --batch-size 128 --steps 20 --threads 2 --json\n"
    "         optimlab bench train --model gpt2-124m --seq-len 256 --batch-size 4 --threads 2";

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Images: x uniform in [-1, 1), label i % classes. Tokens (rows > 0 labels
 * per sample): x and y uniform token ids in [0, classes). */
static void fill_random(float *x, size_t nin, int32_t *y, size_t nlabels, long long classes, int tokens)
{
    uint64_t s = 88172645463325252ULL;
    for (size_t i = 0; i < nin; i++)
        x[i] = tokens ? (float)(xorshift(&s) % (uint64_t)classes)
                      : (float)((double)(xorshift(&s) >> 11) * 0x1.0p-52 - 1.0);
    for (size_t i = 0; i < nlabels; i++)
        y[i] = tokens ? (int32_t)(xorshift(&s) % (uint64_t)classes) : (int32_t)(i % (size_t)classes);
}

/* The model's parameters from the shared model options (--seq-len, --n-layer,
 * ... for a language model); *lm: a language model. */
static int bench_model(cli_values *v, ol_model_params *mp, int *lm)
{
    if (cli_build_model(v, mp) < 0)
        return -1;
    *lm = mp->arch == OL_ARCH_GPT;
    return 0;
}

typedef struct {
    const char *model, *update, *backend;
    size_t params, rows; /* rows: tokens per sample of a language model, 0 for images */
    long long batch, steps, classes;
    int c, h, w, threads;
    double mean, median, phase[3]; /* seconds per step: mean, median, mean per phase */
    double rss, model_mb, est_mb;
    char kinfo[512];
} bench_report;

static void print_report(const bench_report *r, int json)
{
    const double sps = (double)r->batch / r->mean, tps = sps * (double)r->rows;
    if (json) {
        printf("{\"benchmark\":\"train\",\"model\":\"%s\",\"params\":%zu,\"batch_size\":%lld,\"input\":\"%dx%dx%d\","
               "\"seq_len\":%zu,\"update\":\"%s\",\"threads\":%d,\"backend\":\"%s\",\"steps\":%lld,"
               "\"samples_per_s\":%.1f,\"tokens_per_s\":%.1f,\"ms_per_step\":%.3f,\"median_ms_per_step\":%.3f,"
               "\"forward_ms\":%.3f,\"backward_ms\":%.3f,\"update_ms\":%.3f,\"peak_rss_mb\":%.1f,"
               "\"model_memory_mb\":%.1f,\"estimated_memory_mb\":%.1f,\"openblas_core\":\"%s\",\"kernels\":\"%s\"}\n",
               r->model, r->params, r->batch, r->c, r->h, r->w, r->rows, r->update, r->threads, r->backend, r->steps,
               sps, tps, r->mean * 1e3, r->median * 1e3, r->phase[0] * 1e3, r->phase[1] * 1e3, r->phase[2] * 1e3,
               r->rss, r->model_mb, r->est_mb, ol_openblas_corename(), r->kinfo);
        return;
    }
    if (r->rows)
        printf("bench train: %s (%zu parameters), batch %lld, %zu tokens per sample, vocabulary %lld, %d threads, "
               "%s update\n",
               r->model, r->params, r->batch, r->rows, r->classes, r->threads, r->update);
    else
        printf("bench train: %s (%zu parameters), batch %lld, input %dx%dx%d, %d threads, %s update\n", r->model,
               r->params, r->batch, r->c, r->h, r->w, r->threads, r->update);
    printf("kernels: %s\n", r->kinfo);
    printf("time per step: %.2f ms mean, %.2f ms median (forward+loss %.2f, backward %.2f, update %.2f) over "
           "%lld steps\n",
           r->mean * 1e3, r->median * 1e3, r->phase[0] * 1e3, r->phase[1] * 1e3, r->phase[2] * 1e3, r->steps);
    if (r->rows)
        printf("throughput: %.1f tokens/s (%.2f samples/s)\n", tps, sps);
    else
        printf("throughput: %.1f samples/s\n", sps);
    printf("peak memory: %.1f MB resident (activations, gradients and scratch: %.1f MB; estimated before the "
           "run: %.1f MB)\n",
           r->rss, r->model_mb, r->est_mb);
}

/* warmup untimed steps, then steps timed ones: forward, backward, update per step in times[3 i..]. */
static int time_steps(ol_ctx *ctx, ol_model *m, ol_optim *opt, const float *x, const int32_t *y, int batch,
                      long long warmup, long long steps, double *times, double lr)
{
    ol_optim_hyper hyp = {.lr = lr, .momentum = -1};
    ol_train_params tp = ol_train_default_params(); /* the whole batch at once, no clipping */
    tp.skip_grad_norm = 1;                          /* as PyTorch's step (bench/torch_train.py) */
    int st = OL_OK;
    for (long long it = -warmup; it < steps && st >= 0; it++) {
        ol_step_result sr;
        st = ol_train_step(ctx, &tp, m, opt, x, y, batch, &hyp, &sr); /* the step train takes */
        if (it >= 0) {
            times[it * 3] = sr.forward_s;
            times[it * 3 + 1] = sr.backward_s;
            times[it * 3 + 2] = sr.update_s;
        }
    }
    return st;
}

int bench_train(int argc, char **argv)
{
    const cli_opt *const tables[] = {cli_model_opts, bench_train_opts, cli_run_opts, NULL};
    cli_values v;
    cli_init(&v, tables);
    int help = 0, rc = OL_EXIT_OK;
    ol_ctx *ctx = NULL;
    ol_model *m = NULL;
    ol_optim *opt = NULL;
    float *x = NULL;
    int32_t *y = NULL;
    double *times = NULL;
    char err[512];
    if (cli_parse(&v, argc, argv, 3, &help) != 0) {
        rc = cli_fail(OL_EXIT_USAGE, v.err);
        goto done;
    }
    if (help) {
        cli_print_help(stdout, &v, bench_usage);
        goto done;
    }
    ol_model_params mp;
    long long batch, steps, warmup, threads, classes;
    int lm = 0;
    if (bench_model(&v, &mp, &lm) || cli_int(&v, "batch-size", 1, 1 << 16, &batch) ||
        cli_int(&v, "steps", 1, 1000000, &steps) || cli_int(&v, "warmup", 0, 1000000, &warmup) ||
        cli_int(&v, "threads", 0, 1024, &threads) || cli_int(&v, "classes", 2, 100000, &classes)) {
        rc = cli_fail(OL_EXIT_USAGE, v.err);
        goto done;
    }
    int c, h, w;
    char tail;
    if (lm) { /* seq_len token ids per sample, one target per token */
        c = mp.seq_len;
        h = w = 1;
        if (!cli_given(&v, "classes")) /* byte-level text, or GPT-2's BPE for the 124M preset */
            classes = strcmp(cli_str(&v, "model"), "gpt2-124m") == 0 ? mp.num_classes : 256;
        mp.num_classes = (int)classes;
    } else if (sscanf(cli_str(&v, "input"), "%dx%dx%d%c", &c, &h, &w, &tail) != 3 || c < 1 || h < 1 || w < 1 ||
               c > 64 || h > 4096 || w > 4096) {
        snprintf(err, sizeof err, "--input: expected CxHxW such as 1x28x28, got '%s'", cli_str(&v, "input"));
        rc = cli_fail(OL_EXIT_USAGE, err);
        goto done;
    }
    if ((rc = cli_ctx_new(&v, (int)threads, &ctx)) != OL_EXIT_OK)
        goto done;
    mp.in_c = c;
    mp.in_h = h;
    mp.in_w = w;
    mp.num_classes = (int)classes;
    mp.max_batch = (int)batch;
    ol_optim_params op = ol_optim_default_params(lm ? OL_OPT_ADAMW : OL_OPT_SGD);
    if (lm) { /* GPT-2's (nanoGPT's) AdamW, as bench/torch_gpt.py */
        op.lr = 6e-4;
        op.beta1 = 0.9;
        op.beta2 = 0.95;
        op.eps = 1e-8;
        op.weight_decay = 0.1;
    } else {
        op.lr = 0.01;
        op.momentum = 0.9;
    }
    const size_t rows = lm ? (size_t)mp.seq_len : 1; /* labels per sample */
    /* the planned sizes, checked before anything is allocated */
    ol_model_memory mm;
    int st = cli_memory_limit(&v, ctx);
    if (st < 0) {
        rc = cli_fail(OL_EXIT_USAGE, v.err);
        goto done;
    }
    st = ol_model_memory_estimate(ctx, &mp, (int)batch, &mm);
    int slots = st >= 0 ? ol_optim_state_slots(ctx, &op) : st;
    const uint64_t est = (uint64_t)slots * mm.params + mm.total +
                         (uint64_t)batch * ((uint64_t)c * h * w * sizeof(float) + rows * sizeof(int32_t));
    if (slots >= 0 && cli_check_memory(ctx, est, "this benchmark", err, sizeof err) < 0) {
        rc = cli_fail(OL_EXIT_FAIL, err);
        goto done;
    }
    if (slots >= 0)
        st = ol_model_create(ctx, &mp, &m);
    if (st >= 0)
        st = ol_optim_create(ctx, &op, ol_model_paramset(m), &opt);
    if (st < 0) {
        rc = cli_fail_ctx(ctx, cli_exit_for(st));
        goto done;
    }
    size_t nin = (size_t)batch * c * h * w;
    x = malloc(nin * sizeof(float));
    y = malloc((size_t)batch * rows * sizeof(int32_t));
    times = calloc((size_t)steps * 3, sizeof(double));
    if (!x || !y || !times) {
        rc = cli_fail(OL_EXIT_FAIL, "out of memory");
        goto done;
    }
    fill_random(x, nin, y, (size_t)batch * rows, classes, lm);
    ol_paramset *ps = ol_model_paramset(m);
    st = time_steps(ctx, m, opt, x, y, (int)batch, warmup, steps, times, op.lr);
    if (st < 0) {
        rc = cli_fail_ctx(ctx, OL_EXIT_FAIL);
        goto done;
    }
    double sum[3] = {0, 0, 0};
    double *tot = malloc((size_t)steps * sizeof(double));
    if (!tot) {
        rc = cli_fail(OL_EXIT_FAIL, "out of memory");
        goto done;
    }
    for (long long i = 0; i < steps; i++) {
        for (int k = 0; k < 3; k++)
            sum[k] += times[i * 3 + k];
        tot[i] = times[i * 3] + times[i * 3 + 1] + times[i * 3 + 2];
    }
    qsort(tot, (size_t)steps, sizeof(double), cmp_double);
    double median = tot[steps / 2];
    free(tot);
    char arch[64];
    ol_model_params_name(&mp, arch, sizeof arch);
    bench_report r = {.model = lm ? cli_str(&v, "model") : arch, .params = ol_paramset_count(ps),
                      .rows = lm ? rows : 0, .batch = batch, .steps = steps, .classes = classes, .c = c, .h = h,
                      .w = w, .threads = ol_ctx_threads(ctx), .update = lm ? "adamw" : "sgd-momentum",
                      .backend = ol_backend_name(ol_ctx_backend(ctx)), .median = median, .rss = peak_rss_mb(),
                      .model_mb = (double)ol_model_memory_bytes(m) / 1e6, .est_mb = (double)est / 1e6};
    for (int k = 0; k < 3; k++)
        r.phase[k] = sum[k] / (double)steps;
    r.mean = r.phase[0] + r.phase[1] + r.phase[2];
    ol_ctx_kernel_info(ctx, r.kinfo, sizeof r.kinfo);
    print_report(&r, cli_flag(&v, "json"));
done:
    free(x);
    free(y);
    free(times);
    ol_optim_free(opt);
    ol_model_free(m);
    ol_ctx_free(ctx);
    cli_free(&v);
    return rc;
}

