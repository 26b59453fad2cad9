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

/* What bench train builds, freed in one place by bench_train. */
typedef struct {
    ol_ctx *ctx;
    ol_model *m;
    ol_optim *opt;
    float *x;
    int32_t *y;
    double *times; /* forward, backward, update of timed step i at 3 i.. */
    ol_model_params mp;
    ol_optim_params op;
    long long batch, steps, warmup, threads, classes;
    int lm, c, h, w;
    size_t rows;  /* labels per sample */
    uint64_t est; /* the planned bytes */
} bench_job;

/* Model, sizes and the input shape (a language model: seq_len token ids per
 * sample). Returns OL_EXIT_OK or the status of the failure it reported. */
static int parse_bench(cli_values *v, bench_job *j)
{
    char err[512];
    char tail;
    if (bench_model(v, &j->mp, &j->lm) || cli_int(v, "batch-size", 1, 1 << 16, &j->batch) ||
        cli_int(v, "steps", 1, 1000000, &j->steps) || cli_int(v, "warmup", 0, 1000000, &j->warmup) ||
        cli_int(v, "threads", 0, 1024, &j->threads) || cli_int(v, "classes", 2, 100000, &j->classes))
        return cli_fail(OL_EXIT_USAGE, v->err);
    if (j->lm) { /* seq_len token ids per sample, one target per token */
        j->c = j->mp.seq_len;
        j->h = j->w = 1;
        if (!cli_given(v, "classes")) /* byte-level text, or GPT-2's BPE for the 124M preset */
            j->classes = strcmp(cli_str(v, "model"), "gpt2-124m") == 0 ? j->mp.num_classes : 256;
        j->mp.num_classes = (int)j->classes;
    } else if (sscanf(cli_str(v, "input"), "%dx%dx%d%c", &j->c, &j->h, &j->w, &tail) != 3 || j->c < 1 ||
               j->h < 1 || j->w < 1 || j->c > 64 || j->h > 4096 || j->w > 4096) {
        snprintf(err, sizeof err, "--input: expected CxHxW such as 1x28x28, got '%s'", cli_str(v, "input"));
        return cli_fail(OL_EXIT_USAGE, err);
    }
    return OL_EXIT_OK;
}

/* Context, model, optimizer and the random batch, the planned sizes checked
 * before anything is allocated. Returns OL_EXIT_OK or the status reported. */
static int build_bench(cli_values *v, bench_job *j)
{
    char err[512];
    int rc = cli_ctx_new(v, (int)j->threads, &j->ctx);
    if (rc != OL_EXIT_OK)
        return rc;
    ol_model_params *mp = &j->mp;
    mp->in_c = j->c;
    mp->in_h = j->h;
    mp->in_w = j->w;
    mp->num_classes = (int)j->classes;
    mp->max_batch = (int)j->batch;
    ol_optim_params *op = &j->op;
    *op = ol_optim_default_params(j->lm ? OL_OPT_ADAMW : OL_OPT_SGD);
    if (j->lm) { /* GPT-2's (nanoGPT's) AdamW, as bench/torch_gpt.py */
        op->lr = 6e-4;
        op->beta1 = 0.9;
        op->beta2 = 0.95;
        op->eps = 1e-8;
        op->weight_decay = 0.1;
    } else {
        op->lr = 0.01;
        op->momentum = 0.9;
    }
    j->rows = j->lm ? (size_t)mp->seq_len : 1; /* labels per sample */
    /* the planned sizes, checked before anything is allocated */
    ol_model_memory mm;
    int st = cli_memory_limit(v, j->ctx);
    if (st < 0)
        return cli_fail(OL_EXIT_USAGE, v->err);
    st = ol_model_memory_estimate(j->ctx, mp, (int)j->batch, &mm);
    int slots = st >= 0 ? ol_optim_state_slots(j->ctx, op) : st;
    j->est = (uint64_t)slots * mm.params + mm.total +
             (uint64_t)j->batch * ((uint64_t)j->c * j->h * j->w * sizeof(float) + j->rows * sizeof(int32_t));
    if (slots >= 0 && cli_check_memory(j->ctx, j->est, "this benchmark", err, sizeof err) < 0)
        return cli_fail(OL_EXIT_FAIL, err);
    if (slots >= 0)
        st = ol_model_create(j->ctx, mp, &j->m);
    if (st >= 0)
        st = ol_optim_create(j->ctx, op, ol_model_paramset(j->m), &j->opt);
    if (st < 0)
        return cli_fail_ctx(j->ctx, cli_exit_for(st));
    size_t nin = (size_t)j->batch * j->c * j->h * j->w;
    j->x = malloc(nin * sizeof(float));
    j->y = malloc((size_t)j->batch * j->rows * sizeof(int32_t));
    j->times = calloc((size_t)j->steps * 3, sizeof(double));
    if (!j->x || !j->y || !j->times)
        return cli_fail(OL_EXIT_FAIL, "out of memory");
    fill_random(j->x, nin, j->y, (size_t)j->batch * j->rows, j->classes, j->lm);
    return OL_EXIT_OK;
}

/* Times the steps and prints the report. Returns an exit status. */
static int run_bench(cli_values *v, bench_job *j)
{
    const long long steps = j->steps;
    ol_paramset *ps = ol_model_paramset(j->m);
    int st = time_steps(j->ctx, j->m, j->opt, j->x, j->y, (int)j->batch, j->warmup, steps, j->times, j->op.lr);
    if (st < 0)
        return cli_fail_ctx(j->ctx, OL_EXIT_FAIL);
    const double *times = j->times;
    double sum[3] = {0, 0, 0};
    double *tot = malloc((size_t)steps * sizeof(double));
    if (!tot)
        return cli_fail(OL_EXIT_FAIL, "out of memory");
    for (long long i = 0; i < steps; i++) {
        for (int k = 0; k < 3; k++)
            sum[k] += times[i * 3 + k];
        tot[i] = times[i * 3] + times[i * 3 + 1] + times[i * 3 + 2];
    }
    qsort(tot, (size_t)steps, sizeof(double), cmp_double);
    double median = tot[steps / 2];
    free(tot);
    char arch[64];
    ol_model_params_name(&j->mp, arch, sizeof arch);
    bench_report r = {.model = j->lm ? cli_str(v, "model") : arch, .params = ol_paramset_count(ps),
                      .rows = j->lm ? j->rows : 0, .batch = j->batch, .steps = steps, .classes = j->classes,
                      .c = j->c, .h = j->h, .w = j->w, .threads = ol_ctx_threads(j->ctx),
                      .update = j->lm ? "adamw" : "sgd-momentum", .backend = ol_backend_name(ol_ctx_backend(j->ctx)),
                      .median = median, .rss = peak_rss_mb(), .model_mb = (double)ol_model_memory_bytes(j->m) / 1e6,
                      .est_mb = (double)j->est / 1e6};
    for (int k = 0; k < 3; k++)
        r.phase[k] = sum[k] / (double)steps;
    r.mean = r.phase[0] + r.phase[1] + r.phase[2];
    ol_ctx_kernel_info(j->ctx, r.kinfo, sizeof r.kinfo);
    print_report(&r, cli_flag(v, "json"));
    return OL_EXIT_OK;
}

int bench_train(int argc, char **argv)
{
    const cli_opt *const tables[] = {cli_model_opts, bench_train_opts, cli_run_opts, NULL};
    cli_values v;
    cli_init(&v, tables);
    int help = 0, rc = OL_EXIT_OK;
    bench_job job;
    memset(&job, 0, sizeof job);
    if (cli_parse(&v, argc, argv, 3, &help) != 0)
        rc = cli_fail(OL_EXIT_USAGE, v.err);
    else if (help)
        cli_print_help(stdout, &v, bench_usage);
    else if ((rc = parse_bench(&v, &job)) == OL_EXIT_OK && (rc = build_bench(&v, &job)) == OL_EXIT_OK)
        rc = run_bench(&v, &job);
    free(job.x);
    free(job.y);
    free(job.times);
    ol_optim_free(job.opt);
    ol_model_free(job.m);
    ol_ctx_free(job.ctx);
    cli_free(&v);
    return rc;
}
