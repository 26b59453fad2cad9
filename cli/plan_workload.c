/* optimlab plan-scaling: one worker's compute and PowerSGD's bytes, measured
 * here, read from a run directory, or given for another device. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"

#define ERR(...) (snprintf(v->err, sizeof v->err, __VA_ARGS__), -1)

void plan_inputs_free(plan_inputs *in)
{
    ol_scaling_profile_free(&in->prof);
    free(in->own_buckets);
    in->own_buckets = NULL;
    if (in->have_shapes)
        ol_paramset_free(&in->shapes);
    in->have_shapes = 0;
    ol_model_free(in->m);
    in->m = NULL;
    ol_comm_finalize(in->comm);
    in->comm = NULL;
    ol_ctx_free(in->ctx);
    in->ctx = NULL;
}

/* --shapes: comma-separated tensors [K*]D1[xD2[xD3[xD4]]]; K copies of each. */
static int build_shapes(cli_values *v, plan_inputs *in)
{
    const char *spec = cli_str(v, "shapes");
    char buf[4096], name[OL_NAME_MAX];
    if (strlen(spec) >= sizeof buf)
        return ERR("--shapes: the list is too long");
    snprintf(buf, sizeof buf, "%s", spec);
    memset(&in->shapes, 0, sizeof in->shapes);
    in->have_shapes = 1;
    int t = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *end, *p = tok;
        long k = 1;
        if (strchr(tok, '*')) {
            k = strtol(tok, &end, 10);
            if (end == tok || *end != '*' || k < 1 || k > 100000)
                return ERR("--shapes: bad repeat count in '%s' (expected K*D1xD2)", tok);
            p = end + 1;
        }
        int64_t shape[OL_MAX_DIMS];
        int nd = 0;
        for (;;) {
            long long d = strtoll(p, &end, 10);
            if (end == p || d < 1 || d > (1LL << 31) || nd >= OL_MAX_DIMS)
                return ERR("--shapes: expected dimensions such as 768x3072 or 768, got '%s'", tok);
            shape[nd++] = d;
            if (*end == '\0')
                break;
            if (*end != 'x')
                return ERR("--shapes: expected dimensions such as 768x3072 or 768, got '%s'", tok);
            p = end + 1;
        }
        for (long i = 0; i < k; i++) {
            snprintf(name, sizeof name, "t%d", t++);
            if (ol_paramset_add(in->ctx, &in->shapes, name, nd >= 2 ? OL_KIND_WEIGHT : OL_KIND_BIAS, nd, shape) < 0)
                return ERR("--shapes: %s", ol_ctx_errmsg(in->ctx));
        }
    }
    if (t == 0)
        return ERR("--shapes: no tensors in '%s'", spec);
    if (ol_paramset_finalize(in->ctx, &in->shapes) < 0)
        return ERR("--shapes: %s", ol_ctx_errmsg(in->ctx));
    in->nparams = ol_paramset_count(&in->shapes);
    snprintf(in->model_name, sizeof in->model_name, "%d tensors of --shapes", t);
    return 0;
}

/* The shapes' workload: the target's step split 1:2 between forward and
 * backward (their usual FLOP ratio), gradients final uniformly along backward. */
static int shapes_workload(cli_values *v, plan_inputs *in)
{
    const ol_paramset *ps = &in->shapes;
    const size_t nt = (size_t)ps->n;
    size_t *lo = malloc(2 * nt * sizeof *lo);
    in->own_buckets = calloc(nt, sizeof *in->own_buckets);
    if (!lo || !in->own_buckets) {
        free(lo);
        return ERR("out of memory");
    }
    int nb = ol_ddp_bucket_layout(ps, in->bucket_bytes, lo, lo + nt);
    for (int k = 0; k < nb; k++)
        in->own_buckets[k] = (ol_scaling_bucket){(double)(ps->numel - lo[k]) / (double)ps->numel,
                                                 (double)(lo[nt + (size_t)k] - lo[k]) * 4.0};
    free(lo);
    memset(&in->w, 0, sizeof in->w);
    in->w.fwd_per_sample = 1.0 / 3.0 / in->target_sps;
    in->w.bwd_per_sample = 2.0 / 3.0 / in->target_sps;
    in->w.buckets = in->own_buckets;
    in->w.nbuckets = nb;
    in->w.grad_bytes = (double)ps->numel * 4.0;
    in->w.diloco_bytes = in->w.grad_bytes;
    snprintf(in->compute_note, sizeof in->compute_note,
             "%.6g samples/s per worker (--samples-per-s), forward:backward 1:2, gradients ready uniformly along "
             "backward", in->target_sps);
    return 0;
}

/* --run DIR: the model options of config.json (the command line's model options must be left out). */
static int run_model_options(cli_values *v, const char *dir, char *input, size_t cap)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t je;
    json_t *o = json_load_file(path, 0, &je);
    if (!json_is_object(o)) {
        json_decref(o);
        return ERR("--run: cannot read %.300s (a run directory of optimlab train)", path);
    }
    for (const cli_opt *op = cli_model_opts; op->name; op++) {
        json_t *val = json_object_get(o, op->name);
        const char *sv = json_is_string(val) ? json_string_value(val) : json_is_true(val) ? "1" : "0";
        /* a default stays a default: options that do not apply must stay unset */
        if ((json_is_string(val) || json_is_boolean(val)) && strcmp(sv, op->def ? op->def : "") != 0)
            cli_set(v, op->name, sv, 2);
    }
    const char *ds = json_string_value(json_object_get(o, "dataset"));
    snprintf(input, cap, "%s", ds && strcmp(ds, "cifar10") == 0 ? "3x32x32" : "1x28x28");
    json_decref(o);
    return 0;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One worker's seconds per sample from the step records of metrics.jsonl:
 * data-parallel runs record compute_time (the step less waiting on
 * communication) with the global batch and the ranks; one process records its
 * throughput. *bytes: the median bytes sent per step (-1: none recorded). */
static int run_timing(cli_values *v, const char *dir, double *per_sample, double *bytes, int *ranks)
{
    char path[4200], line[8192];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return ERR("--run: cannot read %.300s", path);
    int n = 0, nb = 0, cap = 1024, old_dp = 0;
    double *t = malloc((size_t)cap * sizeof *t), *b = malloc((size_t)cap * sizeof *b);
    while (t && b && n < cap && fgets(line, sizeof line, f)) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        const char *type = json_string_value(json_object_get(o, "type"));
        json_t *ct = json_object_get(o, "compute_time"), *sps = json_object_get(o, "samples_per_s");
        const double batch = json_number_value(json_object_get(o, "batch"));
        const int r = (int)json_integer_value(json_object_get(o, "ranks"));
        if (type && strcmp(type, "step") == 0 && batch > 0) {
            if (json_is_number(ct) && r >= 1 && json_number_value(ct) > 0) {
                t[n++] = json_number_value(ct) / (batch / r);
                *ranks = r;
                if (json_is_number(json_object_get(o, "comm_bytes")))
                    b[nb++] = json_number_value(json_object_get(o, "comm_bytes"));
            } else if (json_is_number(ct)) {
                old_dp = 1;
            } else if (json_is_number(sps) && json_number_value(sps) > 0) {
                t[n++] = 1.0 / json_number_value(sps);
                *ranks = 1;
            }
        }
        json_decref(o);
    }
    fclose(f);
    int rc = 0;
    if (!t || !b)
        rc = ERR("out of memory");
    else if (n == 0)
        rc = ERR("--run: %.300s has no timing metrics (step records with compute_time and ranks, or samples_per_s)%s",
                 path, old_dp ? "; its data-parallel records lack the rank count (written by an older optimlab)" : "");
    if (rc == 0) {
        qsort(t, (size_t)n, sizeof *t, cmp_d);
        *per_sample = t[n / 2];
        *bytes = -1.0;
        if (nb > 0) {
            qsort(b, (size_t)nb, sizeof *b, cmp_d);
            *bytes = b[nb / 2];
        }
    }
    free(t);
    free(b);
    return rc;
}

/* Build the model of --model (or the run's) and profile one worker here. */
static int profile_here(cli_values *v, plan_inputs *in, const char *input)
{
    ol_model_params mp;
    long long classes;
    int c, h, w;
    char tail;
    if (cli_build_model(v, &mp) || cli_int(v, "classes", 2, 100000, &classes))
        return -1;
    if (sscanf(input, "%dx%dx%d%c", &c, &h, &w, &tail) != 3 || c < 1 || h < 1 || w < 1 || c > 64 || h > 4096 ||
        w > 4096)
        return ERR("--input: expected CxHxW such as 1x28x28, got '%s'", input);
    mp.in_c = c;
    mp.in_h = h;
    mp.in_w = w;
    mp.num_classes = (int)classes;
    mp.max_batch = in->profile_batch;
    if (ol_model_create(in->ctx, &mp, &in->m) < 0 ||
        ol_scaling_profile_model(in->ctx, in->m, in->profile_batch, in->profile_steps, in->bucket_bytes, &in->prof) < 0)
        return ERR("%s", ol_ctx_errmsg(in->ctx));
    char arch[64];
    ol_model_params_name(&mp, arch, sizeof arch);
    in->nparams = ol_paramset_count(ol_model_paramset(in->m));
    snprintf(in->model_name, sizeof in->model_name, "%s", arch);
    in->w = ol_scaling_workload_from_profile(&in->prof);
    return 0;
}

/* Scale the measured step to the target's samples/s (device or run). */
static void apply_target(plan_inputs *in, const char *what)
/* what: at most 400 characters */
{
    const ol_scaling_profile *p = &in->prof;
    const double here = (p->fwd + p->bwd + p->update) / p->batch;
    in->scale = in->target_sps > 0 ? 1.0 / in->target_sps / here : 1.0;
    in->w.fwd_per_sample *= in->scale;
    in->w.bwd_per_sample *= in->scale;
    in->w.update *= in->scale;
    char meas[256];
    snprintf(meas, sizeof meas, "forward %.2f ms, backward %.2f ms, update %.2f ms at batch %d here (%.1f samples/s)",
             p->fwd * 1e3, p->bwd * 1e3, p->update * 1e3, p->batch, 1.0 / here);
    if (in->compute_from == PLAN_FROM_HERE)
        snprintf(in->compute_note, sizeof in->compute_note, "measured here: %s", meas);
    else
        snprintf(in->compute_note, sizeof in->compute_note, "%.6g samples/s per worker (%s), %.3g x this machine's "
                 "time; the split and bucket timing measured here: %s", in->target_sps, what, in->scale, meas);
}

static int powersgd_variants(cli_values *v, plan_inputs *in)
{
    ol_paramset *ps = in->have_shapes ? &in->shapes : ol_model_paramset(in->m);
    const int scaled = !in->have_shapes;
    for (int i = 0; i < in->nvar; i++) {
        ol_plan_variant *var = &in->var[i];
        if (var->method != OL_PLAN_POWERSGD)
            continue;
        double sec;
        if (ol_scaling_measure_powersgd(in->ctx, in->comm, ps, var->param, in->psgd_given ? 0 : 3, &var->sent_bytes,
                                        &sec) < 0)
            return ERR("%s", ol_ctx_errmsg(in->ctx));
        var->compression = in->psgd_given ? in->psgd_compute : sec * (scaled ? in->scale : 1.0);
    }
    snprintf(in->psgd_note, sizeof in->psgd_note, "%s",
             in->psgd_given ? "given (--powersgd-compute)"
             : scaled       ? "optimlab's PowerSGD measured here, scaled like the step"
                            : "optimlab's PowerSGD measured on this machine, not scaled (give --powersgd-compute)");
    return 0;
}

static int check_sources(cli_values *v, plan_inputs *in)
{
    const int run = cli_is_set(v, "run"), shapes = cli_is_set(v, "shapes");
    for (const cli_opt *op = cli_model_opts; (run || shapes) && op->name; op++)
        if (cli_is_set(v, op->name))
            return ERR("--%s: %s", op->name,
                       run ? "--run takes the model from the run's config.json" : "--shapes gives the model");
    if (run && shapes)
        return ERR("give --run or --shapes, not both");
    if (run && in->compute_from == PLAN_FROM_DEVICE)
        return ERR("--samples-per-s and --run both give the compute: choose one");
    if (shapes && in->compute_from != PLAN_FROM_DEVICE)
        return ERR("--shapes needs --samples-per-s (the model cannot run here)");
    return 0;
}

int plan_build_workload(cli_values *v, plan_inputs *in)
{
    long long threads;
    ol_backend be;
    in->run_bytes = -1.0;
    in->scale = 1.0;
    if (check_sources(v, in) || cli_int(v, "threads", 0, 1024, &threads))
        return cli_fail(OL_EXIT_USAGE, v->err);
    if (cli_backend(v, &be) < 0)
        return cli_fail(OL_EXIT_USAGE, v->err);
    in->ctx = ol_ctx_new((int)threads);
    if (!in->ctx || ol_ctx_set_backend(in->ctx, be) < 0 || ol_comm_init(in->ctx, NULL, NULL, &in->comm) < 0)
        return in->ctx ? cli_fail_ctx(in->ctx, OL_EXIT_FAIL) : cli_fail(OL_EXIT_FAIL, "out of memory");
    char input[64];
    snprintf(input, sizeof input, "%s", cli_str(v, "input"));
    int rc = 0;
    if (cli_is_set(v, "shapes")) {
        rc = build_shapes(v, in);
        if (rc == 0)
            rc = shapes_workload(v, in);
    } else {
        int ranks = 1;
        double per_sample = 0.0;
        if (cli_is_set(v, "run")) {
            rc = run_model_options(v, cli_str(v, "run"), input, sizeof input);
            if (rc == 0)
                rc = run_timing(v, cli_str(v, "run"), &per_sample, &in->run_bytes, &ranks);
            in->compute_from = PLAN_FROM_RUN;
            in->target_sps = rc == 0 ? 1.0 / per_sample : 0.0;
        }
        if (rc == 0)
            rc = profile_here(v, in, input);
        if (rc == 0) {
            char what[400];
            snprintf(what, sizeof what, "measured in %.300s on %d rank%s", cli_str(v, "run"), ranks,
                     ranks > 1 ? "s" : "");
            apply_target(in, in->compute_from == PLAN_FROM_RUN ? what : "--samples-per-s");
        }
    }
    if (rc == 0)
        rc = powersgd_variants(v, in);
    return rc == 0 ? OL_EXIT_OK : cli_fail(OL_EXIT_USAGE, v->err);
}
