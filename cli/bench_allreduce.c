/* optimlab bench allreduce: achieved MPI all-reduce bandwidth (run under mpirun). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

static const cli_opt bench_ar_opts[] = {
    {"size", CLI_VALUE, "4M", "BYTES", "Benchmark", "message size in bytes; K, M, G suffixes (powers of 1024)"},
    {"iters", CLI_VALUE, "20", "K", "Benchmark", "timed all-reduces"},
    {"warmup", CLI_VALUE, "5", "N", "Benchmark", "untimed all-reduces first (connections, buffers)"},
    {"json", CLI_FLAG, "0", NULL, "Benchmark", "print one JSON object instead of text"},
    {NULL, 0, NULL, NULL, NULL, NULL}};

static const char *const bench_ar_usage =
    "usage: mpirun -np N optimlab bench allreduce [options]\n"
    "\n"
    "Time in-place float all-reduces (sum) of one message size and print the median time over\n"
    "the iterations (the slowest rank's), the algorithm bandwidth bytes/time and the bus bandwidth\n"
    "2(N-1)/N bytes/time, which a ring all-reduce can at best bring to the link speed (as nccl-tests).\n"
    "\n"
    "example: mpirun -np 2 optimlab bench allreduce --size 1M --iters 50 --json";

static int parse_size(const char *s, long long *out)
{
    char *end;
    double v = strtod(s, &end);
    double mult = 1.0;
    if (end == s || !(v >= 0))
        return -1;
    if (*end == 'K' || *end == 'k')
        mult = 1024.0, end++;
    else if (*end == 'M' || *end == 'm')
        mult = 1024.0 * 1024.0, end++;
    else if (*end == 'G' || *end == 'g')
        mult = 1024.0 * 1024.0 * 1024.0, end++;
    if (*end == 'B' || *end == 'b')
        end++;
    v *= mult;
    if (*end || v < 4 || v > 16.0 * 1024 * 1024 * 1024)
        return -1;
    *out = (long long)v;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int bench_allreduce(int argc, char **argv)
{
    const cli_opt *const tables[] = {bench_ar_opts, NULL};
    cli_values v;
    cli_init(&v, tables);
    int help = 0, rc = OL_EXIT_OK;
    ol_ctx *ctx = NULL;
    ol_comm *comm = NULL;
    float *buf = NULL;
    double *times = NULL;
    char err[512];
    long long bytes = 0, iters, warmup;
    if (cli_parse(&v, argc, argv, 3, &help) != 0) {
        rc = cli_fail(OL_EXIT_USAGE, v.err);
        goto done;
    }
    if (help) {
        if (cli_env_rank() == 0)
            cli_print_help(stdout, &v, bench_ar_usage);
        goto done;
    }
    if (parse_size(cli_str(&v, "size"), &bytes) < 0) {
        snprintf(err, sizeof err, "--size: expected bytes from 4 to 16G such as 65536, 256K or 4M, got '%s'",
                 cli_str(&v, "size"));
        rc = cli_fail(OL_EXIT_USAGE, err);
        goto done;
    }
    if (cli_int(&v, "iters", 1, 1000000, &iters) || cli_int(&v, "warmup", 0, 1000000, &warmup)) {
        rc = cli_fail(OL_EXIT_USAGE, v.err);
        goto done;
    }
    if (!ol_comm_built_with_mpi() || !ol_comm_launched_by_mpi()) {
        rc = cli_fail(OL_EXIT_USAGE,
                      ol_comm_built_with_mpi()
                          ? "bench allreduce measures the all-reduce between MPI ranks: run it under mpirun, e.g. "
                            "mpirun -np 2 optimlab bench allreduce --size 4M"
                          : "bench allreduce needs MPI: this optimlab was built without it (install libopenmpi-dev "
                            "and rebuild)");
        goto done;
    }
    ctx = ol_ctx_new(1);
    if (!ctx || ol_comm_init(ctx, &argc, &argv, &comm) < 0) {
        rc = ctx ? cli_fail_ctx(ctx, OL_EXIT_FAIL) : cli_fail(OL_EXIT_FAIL, "out of memory");
        goto done;
    }
    const int W = ol_comm_size(comm), root = ol_comm_rank(comm) == 0;
    if (W < 2) {
        rc = cli_fail(OL_EXIT_USAGE, "bench allreduce needs at least 2 ranks (mpirun -np 2 ...)");
        goto done;
    }
    const size_t n = (size_t)(bytes / (long long)sizeof(float));
    bytes = (long long)(n * sizeof(float));
    buf = calloc(n, sizeof(float)); /* zeros: the sums stay finite however often they run */
    times = calloc((size_t)iters, sizeof(double));
    int st = OL_OK;
    if (!buf || !times) {
        ol_ctx_set_error(ctx, OL_ENOMEM, "out of memory");
        st = OL_ENOMEM;
    }
    st = ol_comm_agree(ctx, comm, st);
    for (long long i = -warmup; st >= 0 && i < iters; i++) {
        st = ol_comm_barrier(ctx, comm);
        double t0 = ol_now();
        if (st >= 0)
            st = ol_comm_allreduce(ctx, comm, buf, n);
        if (i >= 0)
            times[i] = ol_now() - t0;
    }
    if (st >= 0) /* an all-reduce ends when its slowest rank is done */
        st = ol_comm_allreduce_max_f64(ctx, comm, times, (size_t)iters);
    if (st < 0) {
        rc = cli_fail_ctx(ctx, OL_EXIT_FAIL);
        goto done;
    }
    qsort(times, (size_t)iters, sizeof(double), cmp_double);
    const double med = times[iters / 2], algbw = (double)bytes / med, busbw = algbw * 2.0 * (W - 1) / W;
    if (!root)
        goto done;
    if (cli_flag(&v, "json"))
        printf("{\"benchmark\":\"allreduce\",\"bytes\":%lld,\"ranks\":%d,\"iters\":%lld,\"median_s\":%.9g,"
               "\"min_s\":%.9g,\"max_s\":%.9g,\"algbw_gb_per_s\":%.6g,\"busbw_gb_per_s\":%.6g}\n",
               bytes, W, iters, med, times[0], times[iters - 1], algbw / 1e9, busbw / 1e9);
    else
        printf("bench allreduce: %lld bytes (%zu floats, sum in place) over %d ranks, %lld iterations after %lld "
               "warm-up\ntime: median %.3f ms (min %.3f, max %.3f; the slowest rank's)\nbandwidth: algorithm "
               "%.3f GB/s (bytes/time), bus %.3f GB/s (2(N-1)/N bytes/time)\n",
               bytes, n, W, iters, warmup, med * 1e3, times[0] * 1e3, times[iters - 1] * 1e3, algbw / 1e9,
               busbw / 1e9);
done:
    free(buf);
    free(times);
    ol_comm_finalize(comm);
    ol_ctx_free(ctx);
    cli_free(&v);
    return rc;
}
