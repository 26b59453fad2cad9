/* optimlab bench optimizer: time one optimizer step on N parameters split into
 * T tensors, next to a memory-bandwidth probe run in the same process with the
 * same threads over buffers of the same total size. The optimizer steps and the
 * probe alternate, so both see the same machine load; medians are reported. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

static const cli_opt bench_optim_opts[] = {
    {"params", CLI_VALUE, "10000000", "N", "Benchmark", "number of parameters"},
    {"tensors", CLI_VALUE, "1", "T", "Benchmark", "split the parameters into T tensors of equal size"},
    {"steps", CLI_VALUE, "20", "N", "Benchmark", "timed steps (and probe repetitions)"},
    {"warmup", CLI_VALUE, "3", "N", "Benchmark", "untimed steps and probe runs first (page faults, caches)"},
    {"json", CLI_FLAG, "0", NULL, "Benchmark", "print one JSON object instead of text"},
    {NULL, 0, NULL, NULL, NULL, NULL}};

static const char *const bench_usage =
    "usage: optimlab bench optimizer [options]\n"
    "\n"
    "Time one optimizer step over N parameters and compare the effective memory traffic\n"
    "(the bytes the algorithm reads and writes per parameter) with a bandwidth probe: an\n"
    "in-place triad a[i] += s*b[i] (the same read-modify-write pattern as the optimizers)\n"
    "over buffers as large as the optimizer's, with the same threads.\n"
    "\n"
    "example: optimlab bench optimizer --optimizer adamw --params 10000000 --threads 2 --json";

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, long long n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* a[i] += s*b[i]: 2 reads and 1 write per element, no write-allocate traffic
 * (a is read first), like the in-place optimizer updates. */
static void triad(float *restrict a, const float *restrict b, size_t n, float s)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        a[i] += s * b[i];
}

static void fill(float *x, size_t n, uint64_t seed, float scale)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (size_t i = 0; i < n; i++) { /* xorshift: uniform in [-scale, scale) */
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        x[i] = scale * (float)((double)(s >> 11) * 0x1.0p-52 - 1.0);
    }
}

/* What bench optimizer builds, freed in one place by bench_optim. */
typedef struct {
    ol_ctx *ctx;
    ol_optim *opt;
    ol_paramset ps;
    float *pa, *pb;        /* the probe's buffers of pn floats */
    double *topt, *tprobe; /* seconds per timed step */
    ol_optim_params op;
    long long n, nt, steps, warmup, threads;
    size_t pn;
} bench_job;

/* Returns OL_EXIT_OK or the status of the failure it reported. */
static int parse_bench(cli_values *v, bench_job *j)
{
    if (cli_build_optim(v, &j->op) || cli_int(v, "params", 1, 2000000000LL, &j->n) ||
        cli_int(v, "tensors", 1, 100000, &j->nt) || cli_int(v, "steps", 1, 100000, &j->steps) ||
        cli_int(v, "warmup", 0, 100000, &j->warmup) || cli_int(v, "threads", 0, 1024, &j->threads))
        return cli_fail(OL_EXIT_USAGE, v->err);
    if (j->nt > j->n) {
        char msg[128];
        snprintf(msg, sizeof msg, "--tensors %lld is more than --params %lld", j->nt, j->n);
        return cli_fail(OL_EXIT_USAGE, msg);
    }
    return OL_EXIT_OK;
}

/* Context, parameters in nt tensors, optimizer and the probe's buffers, the
 * memory checked first. Returns OL_EXIT_OK or the status reported. */
static int build_bench(cli_values *v, bench_job *j)
{
    const long long n = j->n, nt = j->nt;
    j->ctx = ol_ctx_new((int)j->threads);
    if (!j->ctx)
        return cli_fail(OL_EXIT_FAIL, "out of memory");
    /* parameters, gradients, state slots and the bandwidth probe's two buffers of the same bytes */
    int st = cli_memory_limit(v, j->ctx) < 0 ? -1 : ol_optim_state_slots(j->ctx, &j->op);
    if (st < 0 && *v->err)
        return cli_fail(OL_EXIT_USAGE, v->err);
    char msg[700];
    if (st >= 0 && cli_check_memory(j->ctx, (uint64_t)n * sizeof(float) * 2 * (2 + (uint64_t)st), "this benchmark",
                                    msg, sizeof msg) < 0)
        return cli_fail(OL_EXIT_FAIL, msg);
    for (long long i = 0; i < nt && st >= 0; i++) {
        char name[32];
        snprintf(name, sizeof name, "t%lld", i);
        int64_t len = n / nt + (i == nt - 1 ? n % nt : 0);
        st = ol_paramset_add(j->ctx, &j->ps, name, OL_KIND_WEIGHT, 1, &len);
    }
    if (st >= 0)
        st = ol_paramset_finalize(j->ctx, &j->ps);
    if (st >= 0)
        st = ol_optim_create(j->ctx, &j->op, &j->ps, &j->opt);
    if (st < 0)
        return cli_fail_ctx(j->ctx, cli_exit_for(st));
    fill(j->ps.params, j->ps.numel, 1, 1.0f);
    fill(j->ps.grads, j->ps.numel, 2, 1e-2f);
    /* the probe covers as many bytes as the optimizer's buffers: params, grads, state */
    const size_t nbuf = 2 + (size_t)ol_optim_num_slots(j->opt);
    j->pn = nbuf * j->ps.numel / 2;
    const size_t pbytes = (j->pn * sizeof(float) + 63) / 64 * 64;
    j->pa = aligned_alloc(64, pbytes);
    j->pb = aligned_alloc(64, pbytes);
    j->topt = calloc((size_t)j->steps, sizeof *j->topt);
    j->tprobe = calloc((size_t)j->steps, sizeof *j->tprobe);
    if (!j->pa || !j->pb || !j->topt || !j->tprobe)
        return cli_fail(OL_EXIT_FAIL, "out of memory");
    fill(j->pa, j->pn, 3, 1.0f);
    fill(j->pb, j->pn, 4, 1.0f);
    return OL_EXIT_OK;
}

/* The medians as text or one JSON object. */
static void print_bench(cli_values *v, bench_job *j)
{
    const long long n = j->n, nt = j->nt, steps = j->steps;
    const size_t pn = j->pn;
    const double t_opt = median(j->topt, steps), t_probe = median(j->tprobe, steps);
    const double bpp = ol_optim_bytes_per_param(j->opt);
    const double gp = (double)n / t_opt / 1e9, gb = bpp * (double)n / t_opt / 1e9;
    const double probe_gb = 12.0 * (double)pn / t_probe / 1e9;
    const char *name = cli_str(v, "optimizer");
    if (cli_flag(v, "json")) {
        printf("{\"benchmark\":\"optimizer\",\"optimizer\":\"%s\",\"params\":%lld,\"tensors\":%lld,\"threads\":%d,"
               "\"steps\":%lld,\"ms_per_step\":%.4f,\"gparams_per_s\":%.4f,\"bytes_per_param\":%.1f,"
               "\"gbytes_per_s\":%.3f,\"stream_gbytes_per_s\":%.3f,\"probe_bytes\":%zu,\"fraction_of_probe\":%.4f}\n",
               name, n, nt, ol_ctx_threads(j->ctx), steps, t_opt * 1e3, gp, bpp, gb, probe_gb, 2 * pn * sizeof(float),
               gb / probe_gb);
    } else {
        printf("bench optimizer: %s, %lld parameters in %lld tensor%s, %d threads, median of %lld steps\n", name, n,
               nt, nt == 1 ? "" : "s", ol_ctx_threads(j->ctx), steps);
        printf("step: %.3f ms, %.3f G parameters/s, %.2f GB/s effective (%.0f bytes read+written per parameter)\n",
               t_opt * 1e3, gp, gb, bpp);
        printf("bandwidth probe (a[i] += s*b[i] over %.0f MB, same threads): %.2f GB/s\n",
               2.0 * (double)pn * sizeof(float) / 1e6, probe_gb);
        printf("optimizer at %.1f%% of the probe\n", 100.0 * gb / probe_gb);
    }
}

/* Optimizer steps and probe runs alternate, so both see the same load.
 * Returns an exit status. */
static int run_bench(cli_values *v, bench_job *j)
{
    int st = OL_OK;
    ol_optim_hyper hyp = {.lr = j->op.lr, .momentum = -1.0};
    for (long long it = -j->warmup; it < j->steps && st >= 0; it++) {
        double t0 = ol_now();
        st = ol_optim_step(j->ctx, j->opt, &j->ps, &hyp);
        double t1 = ol_now();
        triad(j->pa, j->pb, j->pn, it % 2 ? 1e-3f : -1e-3f);
        double t2 = ol_now();
        if (it >= 0) {
            j->topt[it] = t1 - t0;
            j->tprobe[it] = t2 - t1;
        }
    }
    if (st < 0)
        return cli_fail_ctx(j->ctx, OL_EXIT_FAIL);
    print_bench(v, j);
    return OL_EXIT_OK;
}

int bench_optim(int argc, char **argv)
{
    const cli_opt *const tables[] = {cli_optim_opts, bench_optim_opts, cli_run_opts, NULL};
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
    free(job.pa);
    free(job.pb);
    free(job.topt);
    free(job.tprobe);
    ol_optim_free(job.opt);
    ol_paramset_free(&job.ps);
    ol_ctx_free(job.ctx);
    cli_free(&v);
    return rc;
}
