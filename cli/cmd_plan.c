/* optimlab plan-scaling: predict data-parallel step time, efficiency and
 * throughput at cluster scale from one worker's measurements (the model is
 * in include/optimlab/scaling.h, the inputs and outputs in docs/scaling.md). */
#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optimlab/scaling.h"
#include "plan.h"

static const cli_opt plan_opts[] = {
    {"run", CLI_VALUE, "", "DIR", "Workload",
     "a run directory: its model (config.json) and its measured compute per sample (metrics.jsonl)"},
    {"shapes", CLI_VALUE, "", "SPEC", "Workload",
     "a model given by its parameter tensors, e.g. 12*768x3072,12*3072 (needs --samples-per-s)"},
    {"input", CLI_VALUE, "1x28x28", "CxHxW", "Workload", "input shape for --model (CIFAR-10: 3x32x32)"},
    {"classes", CLI_VALUE, "10", "K", "Workload", "number of classes for --model"},
    {"per-worker-batch", CLI_VALUE, "", "B", "Workload", "samples per worker and step (weak scaling; default 128)"},
    {"global-batch", CLI_VALUE, "", "B", "Workload", "samples per step over all workers (strong scaling)"},
    {"samples-per-s", CLI_VALUE, "", "X", "Workload",
     "one worker's training throughput on the target device, at the per-worker batch (else measured here)"},
    {"profile-batch", CLI_VALUE, "128", "B", "Workload", "batch of the measurement here when --global-batch is given"},
    {"profile-steps", CLI_VALUE, "5", "N", "Workload", "timed steps of the measurement here (medians)"},
    {"bucket-size", CLI_VALUE, "256", "KB", "Workload", "gradient bucket size of the exact all-reduce (train's)"},
    {"workers", CLI_VALUE, "1-1024", "LIST", "Cluster", "worker counts: 1,2,4 or ranges A-B (powers of 2 between)"},
    {"network", CLI_VALUE, "", "PRESET", "Cluster",
     "link preset: 10gbe, 25gbe, 100gbe, edr, hdr, ndr, nvlink3, nvlink4, pcie4"},
    {"link-bandwidth", CLI_VALUE, "", "BW", "Cluster", "per-worker link (hier: per node), e.g. 100Gb/s, 12.5GB/s"},
    {"latency", CLI_VALUE, "", "T", "Cluster", "per-message latency, e.g. 1.5us (default: the preset's, else 5us)"},
    {"topology", CLI_VALUE, "ring", "NAME", "Cluster", "ring, tree (binomial reduce + broadcast), hier (nodes x GPUs)"},
    {"gpus-per-node", CLI_VALUE, "4", "G", "Cluster", "hier: workers per node"},
    {"intra-network", CLI_VALUE, "nvlink3", "PRESET", "Cluster", "hier: preset of the links inside a node"},
    {"intra-bandwidth", CLI_VALUE, "", "BW", "Cluster", "hier: bandwidth inside a node (overrides the preset)"},
    {"intra-latency", CLI_VALUE, "", "T", "Cluster", "hier: latency inside a node (overrides the preset)"},
    {"powersgd", CLI_VALUE, "2,4", "R,...", "Methods", "PowerSGD ranks to plan (empty: none)"},
    {"diloco", CLI_VALUE, "50", "H,...", "Methods", "DiLoCo H values to plan (empty: none)"},
    {"powersgd-compute", CLI_VALUE, "", "S", "Methods",
     "PowerSGD's compression seconds per step on the target (else measured here, scaled to the target)"},
    {"json", CLI_FLAG, "0", NULL, "Output", "print one JSON object instead of the table"},
    {"svg", CLI_VALUE, "", "PATH", "Output", "plot efficiency against workers"},
    {"title", CLI_VALUE, "", "TEXT", "Output", "plot title"},
    {NULL, 0, NULL, NULL, NULL, NULL}};

static const char *const plan_usage =
    "usage: optimlab plan-scaling [--model NAME ... | --run DIR | --shapes SPEC --samples-per-s X] [options]\n"
    "\n"
    "Predict, for each worker count, the step time (compute and exposed communication), scaling\n"
    "efficiency and throughput of the exact all-reduce, PowerSGD and DiLoCo, from the alpha-beta\n"
    "cost model of ring, tree or hierarchical all-reduce and one worker's compute, measured here\n"
    "(forward, backward, update, when each gradient bucket is ready, PowerSGD's compression) or given\n"
    "for another device (--samples-per-s). See docs/scaling.md.\n"
    "\n"
    "example: optimlab plan-scaling --model resnet20 --per-worker-batch 128 --workers 1-256 \\\n"
    "             --topology hier --gpus-per-node 4 --network hdr --svg eff.svg";

/* Nominal figures: bandwidth per direction, typical small-message latency. */
static const struct {
    const char *name;
    double bw, lat;
    const char *what;
} presets[] = {
    {"10gbe", 1.25e9, 30e-6, "10 Gb/s Ethernet (TCP)"},
    {"25gbe", 3.125e9, 20e-6, "25 Gb/s Ethernet (TCP)"},
    {"100gbe", 12.5e9, 10e-6, "100 Gb/s Ethernet (TCP)"},
    {"edr", 12.5e9, 1.5e-6, "InfiniBand EDR, 100 Gb/s"},
    {"hdr", 25e9, 1.5e-6, "InfiniBand HDR, 200 Gb/s"},
    {"ndr", 50e9, 1.5e-6, "InfiniBand NDR, 400 Gb/s"},
    {"nvlink3", 300e9, 3e-6, "NVLink 3 (A100), 300 GB/s per direction"},
    {"nvlink4", 450e9, 3e-6, "NVLink 4 (H100), 450 GB/s per direction"},
    {"pcie4", 32e9, 5e-6, "PCIe 4.0 x16, 32 GB/s"},
};

static int find_preset(const char *name)
{
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (strcmp(name, presets[i].name) == 0)
            return (int)i;
    return -1;
}

/* A number with an optional unit; unit 0: bytes/s, 1: seconds. */
static int parse_unit(const char *s, int kind, double *out)
{
    static const struct {
        const char *u;
        double mult;
        int kind;
    } units[] = {{"GB/s", 1e9, 0},   {"MB/s", 1e6, 0},   {"KB/s", 1e3, 0},   {"B/s", 1, 0},    {"Gb/s", 1e9 / 8, 0},
                 {"Gbps", 1e9 / 8, 0}, {"Gbit/s", 1e9 / 8, 0}, {"Mb/s", 1e6 / 8, 0}, {"s", 1, 1}, {"ms", 1e-3, 1},
                 {"us", 1e-6, 1},    {"ns", 1e-9, 1},    {"", 1, 0},         {"", 1, 1}};
    char *end;
    double x = strtod(s, &end);
    if (end == s || !isfinite(x))
        return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (units[i].kind == kind && strcmp(end, units[i].u) == 0) {
            *out = x * units[i].mult;
            return 0;
        }
    return -1;
}

static int opt_unit(cli_values *v, const char *name, int kind, double *out)
{
    if (parse_unit(cli_str(v, name), kind, out) == 0)
        return 0;
    snprintf(v->err, sizeof v->err, "--%s: expected %s, got '%s'", name,
             kind ? "a time such as 1.5us, 20us or 1e-6" : "a bandwidth such as 100Gb/s, 12.5GB/s or 1.25e10",
             cli_str(v, name));
    return -1;
}

static int cmp_int(const void *a, const void *b)
{
    const int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* "1,2,4" or "1-512" (the powers of two between, ends included). */
static int parse_workers(cli_values *v, int *w, int *n)
{
    const char *s = cli_str(v, "workers");
    *n = 0;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *end;
        long a = strtol(tok, &end, 10), b = a;
        if (*end == '-')
            b = strtol(end + 1, &end, 10);
        if (*end || end == tok || a < 1 || b < a || b > 1 << 20) {
            snprintf(v->err, sizeof v->err, "--workers: expected counts >= 1 such as 1,2,4 or a range 1-512, got '%s'",
                     s);
            return -1;
        }
        if (*n + 2 + 21 > PLAN_MAX_WORKERS) {
            snprintf(v->err, sizeof v->err, "--workers: too many worker counts in '%s'", s);
            return -1;
        }
        w[(*n)++] = (int)a;
        long p = 1;
        while (p <= a)
            p *= 2;
        for (; p < b; p *= 2)
            w[(*n)++] = (int)p;
        if (b > a)
            w[(*n)++] = (int)b;
    }
    if (*n == 0) {
        snprintf(v->err, sizeof v->err, "--workers: the list of worker counts is empty");
        return -1;
    }
    qsort(w, (size_t)*n, sizeof *w, cmp_int);
    int k = 0;
    for (int i = 0; i < *n; i++)
        if (k == 0 || w[i] != w[k - 1])
            w[k++] = w[i];
    *n = k;
    return 0;
}

static int parse_net(cli_values *v, ol_net *net, char *desc, size_t cap)
{
    memset(net, 0, sizeof *net);
    if (ol_topology_from_name(cli_str(v, "topology"), &net->topo) < 0) {
        snprintf(v->err, sizeof v->err, "--topology: expected ring, tree or hier, got '%s'", cli_str(v, "topology"));
        return -1;
    }
    int p = -1, q;
    if (cli_is_set(v, "network") && (p = find_preset(cli_str(v, "network"))) < 0) {
        snprintf(v->err, sizeof v->err, "--network: unknown preset '%s' (10gbe, 25gbe, 100gbe, edr, hdr, ndr, "
                 "nvlink3, nvlink4, pcie4)", cli_str(v, "network"));
        return -1;
    }
    if (p < 0 && !cli_is_set(v, "link-bandwidth")) {
        snprintf(v->err, sizeof v->err, "give the network: --network PRESET or --link-bandwidth BW");
        return -1;
    }
    net->bandwidth = p >= 0 ? presets[p].bw : 0;
    net->latency = p >= 0 ? presets[p].lat : 5e-6;
    if ((cli_is_set(v, "link-bandwidth") && opt_unit(v, "link-bandwidth", 0, &net->bandwidth)) ||
        (cli_is_set(v, "latency") && opt_unit(v, "latency", 1, &net->latency)))
        return -1;
    long long g;
    if (cli_int(v, "gpus-per-node", 1, 1 << 16, &g))
        return -1;
    net->gpus_per_node = (int)g;
    if ((q = find_preset(cli_str(v, "intra-network"))) < 0) {
        snprintf(v->err, sizeof v->err, "--intra-network: unknown preset '%s'", cli_str(v, "intra-network"));
        return -1;
    }
    net->intra_bandwidth = presets[q].bw;
    net->intra_latency = presets[q].lat;
    if ((cli_is_set(v, "intra-bandwidth") && opt_unit(v, "intra-bandwidth", 0, &net->intra_bandwidth)) ||
        (cli_is_set(v, "intra-latency") && opt_unit(v, "intra-latency", 1, &net->intra_latency)))
        return -1;
    int o = snprintf(desc, cap, "%s all-reduce, %.4g GB/s and %.3g us per message%s%s%s",
                     ol_topology_name(net->topo), net->bandwidth / 1e9, net->latency * 1e6, p >= 0 ? " (" : "",
                     p >= 0 ? presets[p].what : "", p >= 0 ? ")" : "");
    if (net->topo == OL_TOPO_HIER && o > 0 && (size_t)o < cap)
        snprintf(desc + o, cap - (size_t)o, " between nodes of %d GPUs linked at %.4g GB/s, %.3g us",
                 net->gpus_per_node, net->intra_bandwidth / 1e9, net->intra_latency * 1e6);
    ol_ctx *tmp = ol_ctx_new(1);
    int rc = tmp ? ol_net_check(tmp, net) : OL_ENOMEM;
    if (rc < 0)
        snprintf(v->err, sizeof v->err, "%s", tmp ? ol_ctx_errmsg(tmp) : "out of memory");
    ol_ctx_free(tmp);
    return rc < 0 ? -1 : 0;
}

static int parse_variants(cli_values *v, plan_inputs *in)
{
    long long r[PLAN_MAX_VARIANTS], h[PLAN_MAX_VARIANTS];
    int nr = 0, nh = 0;
    if (cli_int_list(v, "powersgd", 1, 4096, r, PLAN_MAX_VARIANTS / 2, &nr) ||
        cli_int_list(v, "diloco", 1, 1000000, h, PLAN_MAX_VARIANTS / 2, &nh))
        return -1;
    in->nvar = 0;
    in->var[in->nvar++] = (ol_plan_variant){OL_PLAN_EXACT, 0, 0, 0};
    for (int i = 0; i < nr; i++)
        in->var[in->nvar++] = (ol_plan_variant){OL_PLAN_POWERSGD, (int)r[i], 0, 0};
    for (int i = 0; i < nh; i++)
        in->var[in->nvar++] = (ol_plan_variant){OL_PLAN_DILOCO, (int)h[i], 0, 0};
    in->psgd_given = cli_is_set(v, "powersgd-compute");
    return in->psgd_given ? cli_double(v, "powersgd-compute", 0, 1e6, &in->psgd_compute) : 0;
}

static int parse_batch(cli_values *v, plan_inputs *in)
{
    long long b = 128;
    if (cli_is_set(v, "per-worker-batch") && cli_is_set(v, "global-batch")) {
        snprintf(v->err, sizeof v->err, "give --per-worker-batch or --global-batch, not both");
        return -1;
    }
    in->global = cli_is_set(v, "global-batch");
    const char *which = in->global ? "global-batch" : "per-worker-batch";
    if (cli_is_set(v, which) && cli_int(v, which, 1, 1LL << 40, &b))
        return -1;
    in->batch = (double)b;
    long long pb, ps, bk;
    if (cli_int(v, "profile-batch", 1, 1 << 16, &pb) || cli_int(v, "profile-steps", 1, 10000, &ps) ||
        cli_int(v, "bucket-size", 4, 1 << 22, &bk))
        return -1;
    in->profile_batch = in->global ? (int)pb : (int)(b < (1 << 16) ? b : 1 << 16);
    in->profile_steps = (int)ps;
    in->bucket_bytes = (size_t)bk * 1024;
    for (int i = 0; in->global && i < in->nworkers; i++)
        if ((long long)in->workers[i] > b) {
            snprintf(v->err, sizeof v->err, "--global-batch %lld is smaller than %d workers", b, in->workers[i]);
            return -1;
        }
    if (cli_is_set(v, "samples-per-s")) {
        if (cli_double(v, "samples-per-s", 1e-9, 1e15, &in->target_sps))
            return -1;
        in->compute_from = PLAN_FROM_DEVICE;
    }
    return 0;
}

int cmd_plan(int argc, char **argv)
{
    const cli_opt *const tables[] = {cli_model_opts, plan_opts, cli_run_opts, NULL};
    cli_values v;
    cli_init(&v, tables);
    int help = 0, rc = OL_EXIT_OK;
    plan_inputs in;
    memset(&in, 0, sizeof in);
    if (cli_parse(&v, argc, argv, 2, &help) != 0) {
        rc = cli_fail(OL_EXIT_USAGE, v.err);
        goto done;
    }
    if (help) {
        cli_print_help(stdout, &v, plan_usage);
        goto done;
    }
    if (ol_comm_launched_by_mpi()) {
        rc = cli_fail(OL_EXIT_USAGE, "plan-scaling runs in one process: start it without mpirun");
        goto done;
    }
    if (parse_workers(&v, in.workers, &in.nworkers) || parse_net(&v, &in.net, in.net_desc, sizeof in.net_desc) ||
        parse_batch(&v, &in) || parse_variants(&v, &in)) {
        rc = cli_fail(OL_EXIT_USAGE, v.err);
        goto done;
    }
    ol_ctx *tmp = ol_ctx_new(1);
    for (int i = 0; tmp && i < in.nworkers; i++)
        if (ol_net_check_workers(tmp, &in.net, in.workers[i]) < 0) {
            snprintf(v.err, sizeof v.err, "--workers: %s", ol_ctx_errmsg(tmp));
            ol_ctx_free(tmp);
            rc = cli_fail(OL_EXIT_USAGE, v.err);
            goto done;
        }
    ol_ctx_free(tmp);
    rc = plan_build_workload(&v, &in);
    if (rc == OL_EXIT_OK)
        rc = plan_report(&v, &in);
done:
    plan_inputs_free(&in);
    cli_free(&v);
    return rc;
}
