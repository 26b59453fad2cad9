/* optimlab trajectory: run optimizers on 2-D test functions, print the path
 * (CSV or JSON) and draw it on a contour map. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "tools/trajectory.h"

static const cli_opt traj_opts[] = {
    {"function", CLI_VALUE, "rosenbrock", "NAME", "Trajectory", "rosenbrock, beale, himmelblau, saddle, quadratic"},
    {"start", CLI_VALUE, "", "X,Y", "Trajectory",
     "start point [rosenbrock -1.2,1; beale 1,1.5; himmelblau 0,0; saddle -1.5,0.01; quadratic -4,1]"},
    {"steps", CLI_VALUE, "200", "N", "Trajectory", "optimizer steps"},
    {"condition", CLI_VALUE, "", "K", "Trajectory", "quadratic (x^2 + K y^2)/2: condition number K [10]"},
    {"compare", CLI_VALUE, "", "LIST", "Trajectory",
     "several optimizers on one plot: NAME[:LR],... e.g. sgd:0.01,momentum:0.01,adam:0.1 (instead of --optimizer)"},
    {"json", CLI_FLAG, "0", NULL, "Output", "print JSON instead of CSV"},
    {"plot", CLI_VALUE, "", "FILE", "Output", "draw the contour map with the path(s) to FILE (SVG)"},
    {"box", CLI_VALUE, "", "X0,X1,Y0,Y1", "Output", "plot range [per function]"},
    {NULL, 0, NULL, NULL, NULL, NULL}};

static const char *const traj_usage =
    "usage: optimlab trajectory [options]\n"
    "\n"
    "Run an optimizer (the same kernels and options as training) on a 2-D test function and\n"
    "print the path as CSV (step,x,y,f,lr; with --compare an optimizer column first) or JSON.\n"
    "The two coordinates are one float32 tensor; the schedule options apply per step.\n"
    "\n"
    "examples: optimlab trajectory --function rosenbrock --optimizer adam --lr 0.05 --steps 500\n"
    "          optimlab trajectory --function quadratic --condition 25 --steps 60 \\\n"
    "              --compare sgd:0.07,momentum:0.07,nesterov:0.07 --plot momentum.svg\n"
    "          optimlab trajectory --function saddle --steps 100 --compare sgd:0.05,adam:0.05 --plot saddle.svg";

#define MAX_RUNS 10

typedef struct {
    char name[32];
    char label[64];
    ol_optim_params op;
    ol_sched_params sp;
    ol__traj tr;
} traj_run;

static int parse_pair(cli_values *v, const char *name, double *out, int want)
{
    int n = 0;
    if (cli_double_list(v, name, -1e12, 1e12, out, want, &n))
        return -1;
    if (n != want) {
        snprintf(v->err, sizeof v->err, "--%s: expected %d comma-separated numbers, got '%s'", name, want,
                 cli_str(v, name));
        return -1;
    }
    return 0;
}

/* --compare entries NAME[:LR]; without --compare, the one --optimizer. */
static int build_runs(cli_values *v, int64_t steps, traj_run *runs, int *nruns)
{
    const char *list = cli_str(v, "compare");
    *nruns = 0;
    if (!*list && cli_is_set(v, "compare")) {
        snprintf(v->err, sizeof v->err, "--compare: empty list");
        return -1;
    }
    if (!*list) {
        traj_run *r = &runs[0];
        snprintf(r->name, sizeof r->name, "%s", cli_str(v, "optimizer"));
        if (cli_optim_from(v, r->name, 0, 1, &r->op))
            return -1;
        *nruns = 1;
    } else {
        if (cli_is_set(v, "optimizer")) {
            snprintf(v->err, sizeof v->err, "give either --optimizer or --compare, not both");
            return -1;
        }
        char buf[512];
        snprintf(buf, sizeof buf, "%s", list);
        char *save = NULL;
        for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (*nruns == MAX_RUNS) {
                snprintf(v->err, sizeof v->err, "--compare: at most %d optimizers", MAX_RUNS);
                return -1;
            }
            traj_run *r = &runs[*nruns];
            char *colon = strchr(tok, ':');
            if (colon)
                *colon = '\0';
            snprintf(r->name, sizeof r->name, "%s", tok);
            if (cli_optim_from(v, r->name, 0, 0, &r->op))
                return -1;
            if (colon) {
                char *end;
                double lr = strtod(colon + 1, &end);
                if (!colon[1] || *end || !(lr >= 0.0 && lr <= 1e6)) {
                    snprintf(v->err, sizeof v->err, "--compare: bad learning rate '%s' for %s", colon + 1, tok);
                    return -1;
                }
                r->op.lr = lr;
            }
            (*nruns)++;
        }
        if (*nruns == 0) {
            snprintf(v->err, sizeof v->err, "--compare: empty list");
            return -1;
        }
    }
    for (int i = 0; i < *nruns; i++) {
        snprintf(runs[i].label, sizeof runs[i].label, "%.31s lr=%g", runs[i].name, runs[i].op.lr);
        if (cli_build_sched(v, runs[i].op.lr, 1, steps, &runs[i].sp))
            return -1;
    }
    return 0;
}

static void print_array(const char *key, const double *a, int64_t n, int last)
{
    printf("\"%s\":[", key);
    for (int64_t i = 0; i < n; i++)
        printf(isfinite(a[i]) ? "%s%.9g" : "%snull", i ? "," : "", a[i]);
    printf("]%s", last ? "" : ",");
}

static void print_json(ol__testfn fn, double cond, const traj_run *runs, int n, int compare)
{
    printf("{\"function\":\"%s\",", ol__testfn_name(fn));
    if (fn == OL__FN_QUADRATIC)
        printf("\"condition\":%.9g,", cond);
    if (compare)
        printf("\"runs\":[");
    for (int r = 0; r < n; r++) {
        const ol__traj *t = &runs[r].tr;
        if (compare)
            printf("%s{", r ? "," : "");
        printf("\"optimizer\":\"%s\",\"lr0\":%.9g,\"steps\":%lld,\"diverged\":%s,", runs[r].name, runs[r].op.lr,
               (long long)(t->n - 1), t->diverged ? "true" : "false");
        print_array("x", t->x, t->n, 0);
        print_array("y", t->y, t->n, 0);
        print_array("f", t->f, t->n, 0);
        print_array("lr", t->lr, t->n, 1);
        if (compare)
            printf("}");
    }
    printf(compare ? "]}\n" : "}\n");
}

static void print_csv(const traj_run *runs, int n, int compare)
{
    printf(compare ? "optimizer,step,x,y,f,lr\n" : "step,x,y,f,lr\n");
    for (int r = 0; r < n; r++)
        for (int64_t t = 0; t < runs[r].tr.n; t++) {
            if (compare)
                printf("%s,", runs[r].name);
            printf("%lld,%.9g,%.9g,%.9g,%.9g\n", (long long)t, runs[r].tr.x[t], runs[r].tr.y[t], runs[r].tr.f[t],
                   runs[r].tr.lr[t]);
        }
}

/* The schedule options of training, with a constant rate as the default. */
static void traj_sched_opts(cli_opt sched[64])
{
    int ns = 0;
    for (const cli_opt *o = cli_sched_opts; o->name && ns < 63; o++, ns++) {
        sched[ns] = *o;
        if (strcmp(o->name, "schedule") == 0)
            sched[ns].def = "constant";
    }
    sched[ns] = (cli_opt){NULL, 0, NULL, NULL, NULL, NULL};
}

/* The test function and where to start, how long and what to plot. Returns
 * OL_EXIT_OK or the status of the failure it reported. */
static int parse_problem(cli_values *v, ol__testfn *fn, double box[4], double start[2], double *cond,
                         long long *steps)
{
    if (ol__testfn_from_name(cli_str(v, "function"), fn) < 0) {
        snprintf(v->err, sizeof v->err, "--function: unknown function '%s' (rosenbrock, beale, himmelblau, saddle, "
                                        "quadratic)", cli_str(v, "function"));
        return cli_fail(OL_EXIT_USAGE, v->err);
    }
    *cond = 10.0;
    ol__testfn_defaults(*fn, box, start);
    if (cli_int(v, "steps", 0, 10000000, steps) || (*cli_str(v, "start") && parse_pair(v, "start", start, 2)) ||
        (*cli_str(v, "box") && parse_pair(v, "box", box, 4)) ||
        (*cli_str(v, "condition") && cli_double(v, "condition", 1.0, 1e12, cond)))
        return cli_fail(OL_EXIT_USAGE, v->err);
    if (cli_is_set(v, "condition") && *fn != OL__FN_QUADRATIC)
        return cli_fail(OL_EXIT_USAGE, "--condition applies to --function quadratic only");
    if (!(box[1] > box[0] && box[3] > box[2]))
        return cli_fail(OL_EXIT_USAGE, "--box: expected X0,X1,Y0,Y1 with X0 < X1 and Y0 < Y1");
    return OL_EXIT_OK;
}

/* The contour map with every run's path, to path. Returns an exit status. */
static int plot_runs(ol_ctx *ctx, ol__testfn fn, double cond, const double box[4], const traj_run *runs, int nruns,
                     long long steps, const char *path)
{
    const char *labels[MAX_RUNS];
    ol__traj tr[MAX_RUNS];
    for (int r = 0; r < nruns; r++) {
        labels[r] = runs[r].label;
        tr[r] = runs[r].tr;
    }
    char title[128];
    if (fn == OL__FN_QUADRATIC)
        snprintf(title, sizeof title, "quadratic, condition number %g, %lld steps", cond, steps);
    else
        snprintf(title, sizeof title, "%s, %lld steps", ol__testfn_name(fn), steps);
    int st = ol__traj_plot(ctx, fn, cond, box, tr, labels, nruns, title, path);
    if (st < 0)
        return cli_fail_ctx(ctx, cli_exit_for(st));
    return OL_EXIT_OK;
}

int cmd_trajectory(int argc, char **argv)
{
    cli_opt sched[64];
    traj_sched_opts(sched);
    const cli_opt *const tables[] = {traj_opts, cli_optim_opts, sched, NULL};
    cli_values v;
    cli_init(&v, tables);
    int help = 0, rc = OL_EXIT_OK, nruns = 0;
    traj_run runs[MAX_RUNS];
    memset(runs, 0, sizeof runs);
    ol_ctx *ctx = NULL;
    if (cli_parse(&v, argc, argv, 2, &help) != 0) {
        rc = cli_fail(OL_EXIT_USAGE, v.err);
        goto done;
    }
    if (help) {
        cli_print_help(stdout, &v, traj_usage);
        goto done;
    }
    ol__testfn fn;
    double box[4], start[2], cond;
    long long steps;
    if ((rc = parse_problem(&v, &fn, box, start, &cond, &steps)) != OL_EXIT_OK)
        goto done;
    if (build_runs(&v, steps, runs, &nruns)) {
        rc = cli_fail(OL_EXIT_USAGE, v.err);
        goto done;
    }
    ctx = ol_ctx_new(1);
    if (!ctx) {
        rc = cli_fail(OL_EXIT_FAIL, "out of memory");
        goto done;
    }
    for (int r = 0; r < nruns; r++) {
        int st = ol__traj_run(ctx, fn, cond, &runs[r].op, &runs[r].sp, start, steps, &runs[r].tr);
        if (st < 0) {
            rc = cli_fail_ctx(ctx, cli_exit_for(st));
            goto done;
        }
        if (runs[r].tr.diverged)
            fprintf(stderr, "optimlab: note: %s stopped at step %lld: a value is non-finite or beyond 1e8\n",
                    runs[r].label, (long long)(runs[r].tr.n - 1));
    }
    const char *plot = cli_str(&v, "plot");
    if (*plot && (rc = plot_runs(ctx, fn, cond, box, runs, nruns, steps, plot)) != OL_EXIT_OK)
        goto done;
    const int compare = *cli_str(&v, "compare") != '\0';
    if (cli_flag(&v, "json"))
        print_json(fn, cond, runs, nruns, compare);
    else
        print_csv(runs, nruns, compare);
    if (fflush(stdout) != 0)
        rc = cli_fail(OL_EXIT_FAIL, "writing to stdout failed");
done:
    for (int r = 0; r < nruns; r++)
        ol__traj_free(&runs[r].tr);
    ol_ctx_free(ctx);
    cli_free(&v);
    return rc;
}
