/* optimlab plan-scaling: predictions for every worker count and method, as a
 * table, JSON and an efficiency plot. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"

static void variant_label(const ol_plan_variant *v, char *buf, size_t cap)
{
    if (v->method == OL_PLAN_POWERSGD)
        snprintf(buf, cap, "PowerSGD r=%d", v->param);
    else if (v->method == OL_PLAN_DILOCO)
        snprintf(buf, cap, "DiLoCo H=%d", v->param);
    else
        snprintf(buf, cap, "exact all-reduce");
}

static const char *method_key(ol_plan_method m)
{
    return m == OL_PLAN_POWERSGD ? "powersgd" : m == OL_PLAN_DILOCO ? "diloco" : "exact";
}

static double per_worker(const plan_inputs *in, int n) { return in->global ? in->batch / n : in->batch; }

/* The worker count from which variant j's throughput beats the exact
 * all-reduce's by more than the fraction `gain` at every larger count of the
 * list (0: never). */
static int break_even(const plan_inputs *in, const ol_plan_point *pt, int j, double gain)
{
    int from = 0;
    for (int i = in->nworkers - 1; i >= 0; i--) {
        if (pt[i * in->nvar + j].throughput <= (1.0 + gain) * pt[i * in->nvar].throughput)
            break;
        from = in->workers[i];
    }
    return from;
}

static void print_summary(FILE *f, const plan_inputs *in, const ol_plan_point *pt)
{
    int last90 = 0, first50 = 0, best = 0;
    for (int i = 0; i < in->nworkers; i++) {
        const ol_plan_point *p = &pt[i * in->nvar];
        if (p->efficiency >= 0.9 && last90 == i)
            last90 = i + 1;
        if (p->efficiency < 0.5 && !first50)
            first50 = in->workers[i];
        if (p->throughput > pt[best * in->nvar].throughput)
            best = i;
    }
    fprintf(f, "\nexact all-reduce: efficiency >= 90%% up to %d workers", last90 ? in->workers[last90 - 1] : 0);
    if (first50)
        fprintf(f, ", below 50%% from %d", first50);
    fprintf(f, "; most throughput at %d workers of those listed\n", in->workers[best]);
    for (int j = 1; j < in->nvar; j++) {
        char lab[64];
        variant_label(&in->var[j], lab, sizeof lab);
        const int from = break_even(in, pt, j, 0.0), from10 = break_even(in, pt, j, 0.1);
        const int last = in->nworkers - 1;
        const double g = pt[last * in->nvar + j].throughput / pt[last * in->nvar].throughput - 1.0;
        if (from)
            fprintf(f, "%s: more throughput than the exact all-reduce from %d workers on", lab, from);
        else
            fprintf(f, "%s: never more throughput than the exact all-reduce at the listed counts", lab);
        if (from10)
            fprintf(f, ", 10%% more from %d", from10);
        fprintf(f, "; %+.1f%% at %d\n", 100.0 * g, in->workers[last]);
    }
}

static void print_table(const plan_inputs *in, const ol_plan_point *pt)
{
    printf("plan-scaling: %s, %zu parameters (%.3f MB of gradients per exact all-reduce, in %d buckets)\n",
           in->model_name, in->nparams, in->w.grad_bytes / 1e6, in->w.nbuckets);
    printf("batch: %s %.0f\n", in->global ? "global" : "per worker", in->batch);
    printf("compute: %s\n", in->compute_note);
    printf("network: %s\n", in->net_desc);
    if (in->run_bytes >= 0)
        printf("run: %.0f bytes sent per step and rank (median of the step records)\n", in->run_bytes);
    for (int j = 0; j < in->nvar; j++) {
        const ol_plan_variant *v = &in->var[j];
        if (v->method == OL_PLAN_POWERSGD)
            printf("PowerSGD r=%d: %.0f bytes per step in 2 all-reduces (%.1f x less), compression %.3f ms (%s)\n",
                   v->param, v->sent_bytes, in->w.grad_bytes / (v->sent_bytes > 0 ? v->sent_bytes : 1),
                   v->compression * 1e3, in->psgd_note);
        else if (v->method == OL_PLAN_DILOCO)
            printf("DiLoCo H=%d: %.0f bytes per sync, one sync every %d steps\n", v->param, in->w.diloco_bytes,
                   v->param);
    }
    printf("\n%8s  %-18s %10s %10s %10s %10s %12s %12s\n", "workers", "method", "batch/wkr", "compute ms",
           "comm ms", "step ms", "efficiency", "samples/s");
    for (int i = 0; i < in->nworkers; i++)
        for (int j = 0; j < in->nvar; j++) {
            const ol_plan_point *p = &pt[i * in->nvar + j];
            char lab[64];
            variant_label(&in->var[j], lab, sizeof lab);
            printf("%8d  %-18s %10.6g %10.3f %10.3f %10.3f %11.1f%% %12.1f\n", in->workers[i], lab,
                   per_worker(in, in->workers[i]), p->compute * 1e3, p->comm * 1e3, p->step * 1e3,
                   100.0 * p->efficiency, p->throughput);
        }
    print_summary(stdout, in, pt);
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            putchar('\\');
        if ((unsigned char)*s >= 0x20)
            putchar(*s);
    }
    putchar('"');
}

static void print_json(const plan_inputs *in, const ol_plan_point *pt)
{
    printf("{\"model\":");
    json_str(in->model_name);
    printf(",\"params\":%zu,\"grad_bytes\":%.17g,\"buckets\":%d,\"diloco_bytes\":%.17g,\"batch\":%.17g,"
           "\"batch_kind\":\"%s\",",
           in->nparams, in->w.grad_bytes, in->w.nbuckets, in->w.diloco_bytes, in->batch,
           in->global ? "global" : "per_worker");
    printf("\"compute\":");
    json_str(in->compute_note);
    printf(",\"fwd_s_per_sample\":%.9g,\"bwd_s_per_sample\":%.9g,\"update_s\":%.9g,", in->w.fwd_per_sample,
           in->w.bwd_per_sample, in->w.update);
    printf("\"network\":{\"topology\":\"%s\",\"bandwidth\":%.17g,\"latency\":%.9g,\"gpus_per_node\":%d,"
           "\"intra_bandwidth\":%.17g,\"intra_latency\":%.9g},",
           ol_topology_name(in->net.topo), in->net.bandwidth, in->net.latency, in->net.gpus_per_node,
           in->net.intra_bandwidth, in->net.intra_latency);
    if (in->run_bytes >= 0)
        printf("\"run_bytes_per_step\":%.17g,", in->run_bytes);
    printf("\"points\":[");
    for (int i = 0; i < in->nworkers; i++)
        for (int j = 0; j < in->nvar; j++) {
            const ol_plan_point *p = &pt[i * in->nvar + j];
            const ol_plan_variant *v = &in->var[j];
            printf("%s{\"workers\":%d,\"method\":\"%s\",\"param\":%d,\"batch_per_worker\":%.17g,\"compute_s\":%.9g,"
                   "\"comm_s\":%.9g,\"step_s\":%.9g,\"efficiency\":%.6g,\"samples_per_s\":%.9g,"
                   "\"allreduce_busy_s\":%.9g",
                   i + j ? "," : "", in->workers[i], method_key(v->method), v->param, per_worker(in, in->workers[i]),
                   p->compute, p->comm, p->step, p->efficiency, p->throughput, p->busy);
            if (v->method == OL_PLAN_POWERSGD)
                printf(",\"sent_bytes\":%.17g,\"compression_s\":%.9g", v->sent_bytes, v->compression);
            printf("}");
        }
    printf("],\"break_even\":{");
    for (int j = 1; j < in->nvar; j++)
        printf("%s\"%s%d\":%d", j > 1 ? "," : "", method_key(in->var[j].method), in->var[j].param,
               break_even(in, pt, j, 0.0));
    printf("},\"break_even_10pct\":{");
    for (int j = 1; j < in->nvar; j++)
        printf("%s\"%s%d\":%d", j > 1 ? "," : "", method_key(in->var[j].method), in->var[j].param,
               break_even(in, pt, j, 0.1));
    printf("}}\n");
}

static int write_svg(cli_values *v, const plan_inputs *in, const ol_plan_point *pt)
{
    ol_plan_series s[PLAN_MAX_VARIANTS];
    char labels[PLAN_MAX_VARIANTS][64];
    double *eff = malloc((size_t)in->nvar * (size_t)in->nworkers * sizeof *eff);
    if (!eff)
        return cli_fail(OL_EXIT_FAIL, "out of memory");
    for (int j = 0; j < in->nvar; j++) {
        variant_label(&in->var[j], labels[j], sizeof labels[j]);
        for (int i = 0; i < in->nworkers; i++)
            eff[j * in->nworkers + i] = pt[i * in->nvar + j].efficiency;
        s[j] = (ol_plan_series){labels[j], in->workers, eff + j * in->nworkers, in->nworkers};
    }
    char title[256];
    snprintf(title, sizeof title, "%s: %s", in->model_name, ol_topology_name(in->net.topo));
    int rc = ol_scaling_plot(in->ctx, s, in->nvar, cli_is_set(v, "title") ? cli_str(v, "title") : title,
                             cli_str(v, "svg"));
    free(eff);
    return rc < 0 ? cli_fail_ctx(in->ctx, cli_exit_for(rc)) : OL_EXIT_OK;
}

int plan_report(cli_values *v, plan_inputs *in)
{
    ol_plan_point *pt = calloc((size_t)in->nworkers * (size_t)in->nvar, sizeof *pt);
    if (!pt)
        return cli_fail(OL_EXIT_FAIL, "out of memory");
    for (int i = 0; i < in->nworkers; i++)
        for (int j = 0; j < in->nvar; j++)
            if (ol_scaling_predict(in->ctx, &in->w, &in->net, &in->var[j], in->workers[i],
                                   per_worker(in, in->workers[i]), &pt[i * in->nvar + j]) < 0) {
                free(pt);
                return cli_fail_ctx(in->ctx, OL_EXIT_USAGE);
            }
    int rc = OL_EXIT_OK;
    if (cli_is_set(v, "svg"))
        rc = write_svg(v, in, pt);
    if (rc == OL_EXIT_OK) {
        if (cli_flag(v, "json"))
            print_json(in, pt);
        else
            print_table(in, pt);
    }
    free(pt);
    return rc;
}
