/* optimlab schedule: the learning rate, momentum and batch size of every step,
 * from the same schedule, optimizer and batch flags as train. */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "tools/svg.h"

static const cli_opt schedule_opts[] = {
    {"steps", CLI_VALUE, "", "N", "Output", "training length in optimizer steps (required)"},
    {"steps-per-epoch", CLI_VALUE, "1", "S", "Output", "steps per epoch, for lengths given in epochs"},
    {"batch-size", CLI_VALUE, "128", "B", "Output", "(starting) global batch size"},
    {"seq-len", CLI_VALUE, "", "T", "Output",
     "tokens of one sample (a language model's context), for --batch-tokens and lengths in tokens"},
    {"json", CLI_FLAG, "0", NULL, "Output", "print {\"lr\": [...], \"momentum\": [...], \"batch_size\": [...]}"},
    {"plot", CLI_VALUE, "", "FILE.svg", "Output", "also plot lr, momentum and batch size"},
    {"title", CLI_VALUE, "", "TEXT", "Output", "plot title [the schedule's name]"},
    {"list", CLI_FLAG, "0", NULL, "Output",
     "list the schedules (with --plugin, its too): names, aliases and options, then exit"},
    {NULL, 0, NULL, NULL, NULL, NULL}};

static const char *const schedule_usage =
    "usage: optimlab schedule --steps N [--steps-per-epoch S] [schedule, optimizer and batch options] [--json]\n"
    "                         [--plot FILE.svg]\n"
    "       optimlab schedule --list [--plugin FILE.so]\n"
    "\n"
    "Print step,lr,momentum,batch_size for every optimizer step (CSV, or JSON with --json) as train would\n"
    "use them over epochs of S x B samples (an epoch's last step takes the samples left): the lr includes\n"
    "--lr-scaling for each step's batch size; momentum is the cycled value, or the\n"
    "optimizer's momentum (Adam beta1) when the schedule does not cycle it. reduce-on-plateau has no\n"
    "validation metric here and shows its starting lr.\n"
    "\n"
    "example: optimlab schedule --schedule onecycle --lr 0.1 --steps 1000 --plot onecycle.svg";

/* Momentum-like hyperparameter of the optimizer when the schedule keeps it fixed. */
static double fixed_momentum(const ol_optim_params *op)
{
    switch (op->type) {
    case OL_OPT_ADAM:
    case OL_OPT_ADAMW:
    case OL_OPT_NADAM:
    case OL_OPT_RADAM:
    case OL_OPT_LAMB:
    case OL_OPT_LION:
    case OL_OPT_SFADAMW: return op->beta1;
    case OL_OPT_ADAGRAD:
    case OL_OPT_ADADELTA: return 0.0;
    default: return op->momentum;
    }
}

static int plot(ol_ctx *ctx, const char *path, const char *title, const double *lr, const double *mom,
                const double *bs, int64_t n, int64_t warmup)
{
    double *x = malloc(sizeof(double) * (size_t)n);
    if (!x)
        return ol__err(ctx, OL_ENOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++)
        x[i] = (double)i;
    const double *ys[3] = {lr, mom, bs};
    const char *labels[3] = {"learning rate", "momentum / beta1", "batch size"};
    const int W = 900, H = 760, top = 40, ph = 185, gap = 45;
    ol__svg s;
    double lo, hi;
    int rc = OL_OK;
    for (int p = 0; p < 3 && rc >= 0; p++) {
        if (!ol__range(ys[p], (int)n, 0, &lo, &hi))
            lo = hi = 0.0;
        if (p > 0 && lo > 0.0 && p != 1) /* batch axis from 0 */
            lo = 0.0;
        if (p == 0) {
            if (lo > 0.0)
                lo = 0.0;
            rc = ol__svg_begin(ctx, &s, W, H, 0.0, (double)(n > 1 ? n - 1 : 1), lo, hi * 1.05 + 1e-300, 0, 0);
            if (rc < 0)
                break;
        } else {
            double pad = hi > lo ? 0.05 * (hi - lo) : (hi != 0.0 ? 0.05 * hi : 0.5);
            s.y0 = lo - (p == 1 ? pad : 0.0);
            s.y1 = hi + pad;
        }
        s.mt = top + p * (ph + gap);
        s.mb = H - (s.mt + ph);
        ol__svg_axes(&s, p == 0 ? title : NULL, p == 2 ? "optimizer step" : NULL, labels[p]);
        ol__svg_polyline(&s, x, ys[p], (int)n, ol__svg_color(p), 2.0, 0);
        if (warmup > 0 && p == 0)
            ol__svg_vline(&s, (double)warmup, "#888", "end of warm-up");
    }
    if (rc >= 0)
        rc = ol__svg_save(ctx, &s, path);
    ol__svg_free(&s);
    free(x);
    return rc;
}

/* lr, momentum and batch of each step as train takes them: the step plan over
 * epochs of n samples and the lr rule (ol_train_lr). bs is followed by room
 * for steps int64_t. */
static int fill(const ol_train_params *tp, const ol_sched_params *sp, const ol_optim_params *op, int64_t n,
                int64_t steps, double *lr, double *mom, double *bs)
{
    int64_t *batches = (int64_t *)(bs + steps);
    ol_train_params by_steps = *tp; /* all --steps steps, whatever the epochs */
    by_steps.epochs = 0;
    if (ol_train_step_batches(&by_steps, n, batches, steps) != steps)
        return -1;
    const double m0 = fixed_momentum(op);
    ol_plateau pl; /* reduce-on-plateau: train's starting state (no metric here) */
    if (sp->type == OL_SCHED_PLATEAU)
        ol_plateau_init(&pl, sp);
    for (int64_t t = 0; t < steps; t++) {
        double m = ol_sched_momentum(sp, t);
        lr[t] = ol_train_lr(tp, sp, sp->type == OL_SCHED_PLATEAU ? &pl : NULL, t, batches[t]);
        mom[t] = m < 0.0 ? m0 : m;
        bs[t] = (double)batches[t];
    }
    return 0;
}

/* A run of --steps steps as train would take it; tp.batch_sched points into bc. */
typedef struct {
    ol_train_params tp;
    ol_sched_params sp;
    ol_optim_params op;
    cli_batch_config bc;
    long long steps;
    int64_t n; /* samples per epoch */
} schedule_job;

/* Length, batch, optimizer and schedule flags into j. Returns OL_EXIT_OK or
 * the status of the failure it reported. */
static int parse_run(cli_values *v, schedule_job *j)
{
    if (!*cli_str(v, "steps"))
        return cli_fail(OL_EXIT_USAGE, "--steps N is required (the training length in optimizer steps)");
    long long spe, batch;
    long long seq = 0;
    if (cli_int(v, "steps", 1, 100000000, &j->steps) || cli_int(v, "steps-per-epoch", 1, 1LL << 40, &spe) ||
        (*cli_str(v, "seq-len") && cli_int(v, "seq-len", 1, 1 << 20, &seq)) || cli_batch_tokens(v) ||
        cli_int(v, "batch-size", 1, 1 << 30, &batch) || cli_build_optim(v, &j->op))
        return cli_fail(OL_EXIT_USAGE, v->err);
    /* a run of --steps steps over epochs of steps-per-epoch x batch samples */
    ol_train_params *tp = &j->tp;
    *tp = ol_train_default_params();
    tp->batch_size = (int)batch;
    tp->max_steps = j->steps;
    tp->epochs = (int)((j->steps + spe - 1) / spe);
    j->n = spe * batch;
    if (cli_build_batch_sched(v, tp, j->n, &j->bc))
        return cli_fail(OL_EXIT_USAGE, v->err);
    cli_batch_apply(&j->bc, tp);
    if (cli_build_sched_run(v, j->op.lr, tp, j->n, j->steps, &j->sp))
        return cli_fail(OL_EXIT_USAGE, v->err);
    return OL_EXIT_OK;
}

/* Every step's values as CSV, or one JSON object. */
static void print_values(const schedule_job *j, const double *lr, const double *mom, const double *bs, int json)
{
    const long long steps = j->steps;
    if (json) {
        const char *names[3] = {"lr", "momentum", "batch_size"};
        const double *arr[3] = {lr, mom, bs};
        printf("{\"schedule\": \"%s\", \"steps\": %lld", ol_sched_params_name(&j->sp), steps);
        for (int k = 0; k < 3; k++) {
            printf(", \"%s\": [", names[k]);
            for (int64_t t = 0; t < steps; t++)
                printf(k == 2 ? "%s%.0f" : "%s%.17g", t ? ", " : "", arr[k][t]);
            printf("]");
        }
        printf("}\n");
    } else {
        printf("step,lr,momentum,batch_size\n");
        for (int64_t t = 0; t < steps; t++)
            printf("%lld,%.17g,%.17g,%.0f\n", (long long)t, lr[t], mom[t], bs[t]);
    }
}

/* Computes the values, plots them (first: a bad path fails before anything
 * is printed) and prints them. Returns an exit status. */
static int run_schedule(cli_values *v, schedule_job *j, ol_ctx **ctx, double **buf)
{
    const long long steps = j->steps;
    *ctx = ol_ctx_new(1);
    *buf = malloc((sizeof(double) * 3 + sizeof(int64_t)) * (size_t)steps);
    if (!*ctx || !*buf)
        return cli_fail(OL_EXIT_FAIL, "out of memory");
    double *lr = *buf, *mom = lr + steps, *bs = mom + steps;
    if (fill(&j->tp, &j->sp, &j->op, j->n, steps, lr, mom, bs) < 0)
        return cli_fail(OL_EXIT_USAGE, "the batch schedule gives fewer than --steps steps");
    /* the plot first: a bad path fails before anything is printed */
    const char *plot_path = cli_str(v, "plot");
    if (*plot_path) {
        char title[256];
        if (*cli_str(v, "title"))
            snprintf(title, sizeof title, "%s", cli_str(v, "title"));
        else
            snprintf(title, sizeof title, "%s schedule, %lld steps", cli_str(v, "schedule"), steps);
        if (plot(*ctx, plot_path, title, lr, mom, bs, steps, j->sp.warmup_steps) < 0)
            return cli_fail_ctx(*ctx, OL_EXIT_FAIL);
    }
    print_values(j, lr, mom, bs, cli_flag(v, "json"));
    if (fflush(stdout) != 0 || ferror(stdout))
        return cli_fail(OL_EXIT_FAIL, "cannot write to standard output");
    return OL_EXIT_OK;
}

int cmd_schedule(int argc, char **argv)
{
    const cli_opt *const tables[] = {cli_sched_opts, cli_batch_opts, cli_optim_opts, schedule_opts, cli_config_opts,
                                     NULL};
    cli_values v;
    cli_init(&v, tables);
    int help = 0, rc = OL_EXIT_OK;
    schedule_job job;
    memset(&job, 0, sizeof job);
    double *lr = NULL;
    ol_ctx *ctx = NULL;
    if (cli_apply_presets(&v, argc, argv, 2) != 0 || cli_parse(&v, argc, argv, 2, &help) != 0) {
        rc = cli_fail(OL_EXIT_USAGE, v.err);
        goto done;
    }
    if ((help || cli_flag(&v, "list")) && *cli_str(&v, "plugin") && !cli_registry(&v)) {
        rc = cli_fail(OL_EXIT_USAGE, v.err); /* the plugins' schedules are listed too */
        goto done;
    }
    if (help) {
        cli_print_help(stdout, &v, schedule_usage);
        goto done;
    }
    if (cli_flag(&v, "list")) {
        cli_print_schedules(stdout, v.reg);
        goto done;
    }
    if ((rc = parse_run(&v, &job)) == OL_EXIT_OK)
        rc = run_schedule(&v, &job, &ctx, &lr);
done:
    free(lr);
    cli_free_sched(&job.sp);
    ol_ctx_free(ctx);
    cli_free(&v);
    return rc;
}
