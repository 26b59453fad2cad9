/* optimlab lr-find: learning-rate range test (Smith 2017, fast.ai) or an lr
 * sweep of short independent trainings. Takes train's model, data, optimizer
 * and training flags (and accepts its schedule flags, so one config file
 * serves both; the schedule is not used here). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "core/textbuf.h"
#include "optimlab/lrfind.h"

const cli_opt cli_lrfind_opts[] = {
    {"mode", CLI_VALUE, "range", "MODE", "LR finder",
     "range: one run with the lr growing every step; sweep: one short training per candidate lr"},
    {"start-lr", CLI_VALUE, "1e-7", "LR", "LR finder", "first lr of the range (sweep: first candidate)"},
    {"end-lr", CLI_VALUE, "10", "LR", "LR finder", "last lr of the range (sweep: last candidate)"},
    {"num-iter", CLI_VALUE, "100", "N", "LR finder", "range: iterations"},
    {"linear", CLI_FLAG, "0", NULL, "LR finder", "range: grow the lr linearly instead of exponentially"},
    {"smooth", CLI_VALUE, "0.98", "BETA", "LR finder", "range: EMA factor of the loss (bias-corrected)"},
    {"diverge-factor", CLI_VALUE, "4", "F", "LR finder", "range: stop when the smoothed loss exceeds F x the best; sweep: a candidate has diverged (and stops) when the mean loss of its last tenth of steps exceeds F x its first loss"},
    {"sweep-lrs", CLI_VALUE, "", "LR1,...", "LR finder", "sweep: candidate lrs [per decade from --start-lr to --end-lr]"},
    {"sweep-per-decade", CLI_VALUE, "1", "K", "LR finder", "sweep: candidates per decade"},
    {"sweep-steps", CLI_VALUE, "50", "N", "LR finder", "sweep: optimizer steps per candidate"},
    {"csv", CLI_VALUE, "", "FILE", "LR finder", "results as CSV [OUT/lr_find.csv]"},
    {"plot", CLI_VALUE, "", "FILE", "LR finder", "plot [OUT/lr_find.svg]"},
    {NULL, 0, NULL, NULL, NULL, NULL}};

static const char *const lrfind_usage =
    "usage: optimlab lr-find [--mode range|sweep] [model, data, optimizer and training options]\n"
    "\n"
    "range: trains for --num-iter steps while the lr grows from --start-lr to --end-lr, smooths the loss,\n"
    "stops when it diverges, and suggests learning rates (steepest descent of the smoothed loss, minimum/10)\n"
    "and the base/max lr of cyclic and one-cycle schedules. The model and optimizer are restored afterwards.\n"
    "sweep: from the same initial weights, trains --sweep-steps steps with a fresh optimizer for each\n"
    "candidate lr and plots the final loss against the lr (robust for large batches).\n"
    "Writes OUT/lr_find.csv and OUT/lr_find.svg (see --csv, --plot).\n"
    "\n"
    "example: optimlab lr-find --model resnet20 --dataset fashion-mnist --optimizer sgd --momentum 0.9 \\\n"
    "           --start-lr 1e-6 --end-lr 10 --num-iter 100 --out runs/lrf";

/* Columns of doubles with `digits` significant digits, as a file written whole or not at all. */
static int write_csv(ol_ctx *ctx, const char *path, const char *header, const double *const *cols, int ncol, int n,
                     int digits, char *err, size_t cap)
{
    ol__tb b = {0};
    ol__tb_printf(&b, "%s\n", header);
    for (int i = 0; i < n; i++)
        for (int c = 0; c < ncol; c++)
            ol__tb_printf(&b, "%.*g%c", digits, cols[c][i], c + 1 < ncol ? ',' : '\n');
    const char *text = ol__tb_text(&b);
    int rc = text ? cli_write_file(ctx, path, text, b.len, err, cap) : -1;
    if (!text)
        snprintf(err, cap, "out of memory writing %.900s", path);
    ol__tb_free(&b);
    return rc;
}

/* lr sweep: the most candidates one run takes */
enum { MAX_CAND = 1024 };

/* What lr-find builds, freed in one place by cmd_lrfind. */
typedef struct {
    ol_ctx *ctx;
    ol_model *m;
    ol_optim *opt;
    cli_data data;
    ol_lrfind_result res;
    ol_model_params mp;
    ol_optim_params op;
    ol_train_params tp;
    ol_lrfind_params lp;
    long long threads;
    int sweep, ncand, sweep_steps, explicit_lrs; /* explicit_lrs: the candidates came from --sweep-lrs */
    /* sweep: the candidates, their final losses and the steps each ran (fewer when it diverged;
     * doubles, as the CSV's columns), one allocation of 3 x MAX_CAND owned by lrs */
    double *lrs, *final, *steps;
    char csv[4096], svg[4096];
} lrfind_job;

/* Sweep candidates: --sweep-lrs, or --sweep-per-decade from --start-lr to
 * --end-lr. Returns OL_EXIT_OK or the status of the failure it reported. */
static int parse_sweep(cli_values *v, lrfind_job *j)
{
    long long per, ss;
    if (cli_int(v, "sweep-per-decade", 1, 100, &per) || cli_int(v, "sweep-steps", 1, 10000000, &ss))
        return cli_fail(OL_EXIT_USAGE, v->err);
    j->sweep_steps = (int)ss;
    j->lrs = malloc(sizeof(double) * 3 * MAX_CAND);
    if (!j->lrs)
        return cli_fail(OL_EXIT_FAIL, "out of memory");
    j->final = j->lrs + MAX_CAND;
    j->steps = j->lrs + 2 * MAX_CAND;
    if (*cli_str(v, "sweep-lrs")) {
        j->explicit_lrs = 1;
        if (cli_double_list(v, "sweep-lrs", 1e-30, 1e6, j->lrs, 64, &j->ncand))
            return cli_fail(OL_EXIT_USAGE, v->err);
    } else {
        double decades = log10(j->lp.end_lr / j->lp.start_lr);
        int k = (int)floor(decades * (double)per + 1e-9);
        if (k + 1 > MAX_CAND)
            return cli_fail(OL_EXIT_USAGE, "--sweep-per-decade: too many candidates (at most 1024)");
        for (int i = 0; i <= k; i++)
            j->lrs[j->ncand++] = j->lp.start_lr * pow(10.0, (double)i / (double)per);
    }
    return OL_EXIT_OK;
}

/* Mode, model, optimizer and training flags into j's parameters. Returns
 * OL_EXIT_OK or the status of the failure it reported. */
static int parse_job(cli_values *v, lrfind_job *j)
{
    char err[1024] = "";
    ol_lrfind_params *lp = &j->lp;
    const ol_train_params *tp = &j->tp;
    long long x;
    *lp = ol_lrfind_default_params();
    const char *mode = cli_str(v, "mode");
    if (strcmp(mode, "range") == 0)
        j->sweep = 0;
    else if (strcmp(mode, "sweep") == 0)
        j->sweep = 1;
    else {
        snprintf(err, sizeof err, "--mode: unknown mode '%s' (range, sweep)", mode);
        return cli_fail(OL_EXIT_USAGE, err);
    }
    if (cli_build_model(v, &j->mp) || cli_build_optim(v, &j->op) || cli_build_train(v, &j->tp) ||
        cli_int(v, "threads", 0, 1024, &j->threads) || cli_double(v, "start-lr", 1e-30, 1e6, &lp->start_lr) ||
        cli_double(v, "end-lr", 1e-30, 1e6, &lp->end_lr) || cli_int(v, "num-iter", 2, 1000000, &x))
        return cli_fail(OL_EXIT_USAGE, v->err);
    lp->num_iter = (int)x;
    lp->linear = cli_flag(v, "linear");
    lp->batch_size = tp->batch_size;
    if (cli_int(v, "micro-batch-size", 0, tp->batch_size, &x))
        return cli_fail(OL_EXIT_USAGE, v->err);
    lp->micro_batch_size = (int)x;
    lp->label_smoothing = tp->label_smoothing;
    lp->clip_grad_norm = tp->clip_grad_norm;
    lp->aug = tp->aug;
    lp->seed = tp->seed;
    if (cli_double(v, "smooth", 0.0, 0.9999, &lp->smooth_beta) ||
        cli_double(v, "diverge-factor", 1.000001, 1e9, &lp->diverge_factor))
        return cli_fail(OL_EXIT_USAGE, v->err);
    if (!(lp->end_lr > lp->start_lr)) {
        snprintf(err, sizeof err, "--end-lr (%g) must be larger than --start-lr (%g)", lp->end_lr, lp->start_lr);
        return cli_fail(OL_EXIT_USAGE, err);
    }
    return j->sweep ? parse_sweep(v, j) : OL_EXIT_OK;
}

/* Context, data, model and optimizer, the memory checked first. Returns
 * OL_EXIT_OK or the status of the failure it reported. */
static int build_job(cli_values *v, lrfind_job *j)
{
    char err[1024] = "";
    int rc = cli_ctx_new(v, (int)j->threads, &j->ctx);
    if (rc != OL_EXIT_OK)
        return rc;
    if (cli_memory_limit(v, j->ctx) < 0)
        return cli_fail(OL_EXIT_USAGE, v->err);
    int lst = cli_load_data(j->ctx, v, &j->data, err, sizeof err);
    if (lst != 0)
        return cli_fail(lst, err);
    const ol_dataset *tr = &j->data.train;
    j->mp.in_c = tr->c;
    j->mp.in_h = tr->h;
    j->mp.in_w = tr->w;
    j->mp.num_classes = tr->num_classes;
    j->mp.max_batch = j->tp.batch_size < tr->n ? j->tp.batch_size : (int)tr->n;
    ol_train_memory tm;
    int st = ol_train_memory_estimate(j->ctx, &j->tp, &j->mp, &j->op, tr, NULL, &tm);
    if (st >= 0 && cli_check_memory(j->ctx, tm.total, "this range test", err, sizeof err) < 0)
        return cli_fail(OL_EXIT_FAIL, err);
    if (st >= 0)
        st = ol_model_create(j->ctx, &j->mp, &j->m);
    if (st >= 0)
        st = ol_optim_create(j->ctx, &j->op, ol_model_paramset(j->m), &j->opt);
    if (st < 0)
        return cli_fail_ctx(j->ctx, cli_exit_for(st));
    return OL_EXIT_OK;
}

/* The sweep's CSV and plot, then its table on stdout. */
static int write_sweep(lrfind_job *j)
{
    char err[1024] = "";
    const double *lrs = j->lrs, *final = j->final;
    const int ncand = j->ncand;
    const double *cols[3] = {lrs, final, j->steps};
    if (write_csv(j->ctx, j->csv, "lr,final_loss,steps", cols, 3, ncand, 10, err, sizeof err) < 0)
        return cli_fail(OL_EXIT_FAIL, err);
    if (ol_lrfind_sweep_plot(j->ctx, lrs, final, ncand, j->svg, NULL) < 0)
        return cli_fail_ctx(j->ctx, OL_EXIT_FAIL);
    printf("lr sweep: %d candidates x %d steps (batch %d, %s)\n", ncand, j->sweep_steps, j->lp.batch_size,
           ol_optim_params_name(&j->op));
    for (int i = 0; i < ncand; i++) {
        if (isfinite(final[i]))
            printf("  lr %-10.3g final loss %.4f\n", lrs[i], final[i]);
        else if (j->steps[i] < j->sweep_steps)
            printf("  lr %-10.3g diverged (stopped after %d steps)\n", lrs[i], (int)j->steps[i]);
        else
            printf("  lr %-10.3g diverged\n", lrs[i]);
    }
    int b = ol_lrfind_sweep_best(final, ncand);
    if (b >= 0)
        printf("best lr: %.3g (final loss %.4f)\n", lrs[b], final[b]);
    else
        printf("best lr: none (every candidate diverged)\n");
    /* a best at the end of the candidates says nothing about the lrs past it */
    int lo = 0, hi = 0;
    for (int i = 0; b >= 0 && i < ncand; i++) {
        lo += lrs[i] < lrs[b];
        hi += lrs[i] > lrs[b];
    }
    if (b >= 0 && ncand > 1 && (!lo || !hi))
        printf("note: the best lr is the %s candidate; a %s lr may be better (extend %s)\n", hi ? "smallest" : "largest",
               hi ? "smaller" : "larger", j->explicit_lrs ? "--sweep-lrs" : hi ? "--start-lr" : "--end-lr");
    return OL_EXIT_OK;
}

/* The range test's CSV and plot, then its suggestions on stdout. */
static int write_range(lrfind_job *j)
{
    char err[1024] = "";
    const ol_lrfind_result *res = &j->res;
    const ol_lrfind_params *lp = &j->lp;
    const double *cols[3] = {res->lr, res->loss, res->smooth};
    if (write_csv(j->ctx, j->csv, "lr,loss,smoothed_loss", cols, 3, res->n, 10, err, sizeof err) < 0)
        return cli_fail(OL_EXIT_FAIL, err);
    if (ol_lrfind_plot(j->ctx, res, j->svg, NULL) < 0)
        return cli_fail_ctx(j->ctx, OL_EXIT_FAIL);
    char micro[48] = "";
    if (lp->micro_batch_size > 0 && lp->micro_batch_size < lp->batch_size)
        snprintf(micro, sizeof micro, " in micro-batches of %d", lp->micro_batch_size);
    printf("lr range test: %d iterations from %.3g to %.3g (%s, batch %d%s, %s)%s\n", res->n, lp->start_lr,
           res->lr[res->n - 1], lp->linear ? "linear" : "exponential", lp->batch_size, micro,
           ol_optim_params_name(&j->op), res->diverged ? ", stopped: the loss diverged" : "");
    printf("smallest smoothed loss %.4f at lr %.3g\n", res->best_loss, res->lr_at_min);
    printf("suggested lr: %.3g (steepest descent), %.3g (minimum / 10)\n", res->lr_steepest, res->lr_min10);
    printf("one-cycle:    --schedule onecycle --lr %.3g   (starts at %.3g with --div-factor 25)\n",
           res->onecycle_max_lr, res->onecycle_max_lr / 25.0);
    printf("cyclic:       --schedule cyclic --lr %.3g --max-lr %.3g\n", res->cyclic_base_lr, res->cyclic_max_lr);
    return OL_EXIT_OK;
}

/* The command's identity for CSV.partial: its arguments and the thread count
 * (results are bitwise the same only for the same threads), FNV-1a. */
static unsigned long long sweep_key(int argc, char **argv, long long threads)
{
    unsigned long long h = 1469598103934665603ULL;
    for (int i = 2; i < argc; i++)
        for (const char *c = argv[i];; c++) {
            h = (h ^ (unsigned char)*c) * 1099511628211ULL;
            if (!*c)
                break;
        }
    long long t = threads > 0 ? threads : sysconf(_SC_NPROCESSORS_ONLN);
    return (h ^ (unsigned long long)t) * 1099511628211ULL;
}

/* The candidates a killed run of the same command finished: read from the
 * partial file in order, up to the first that does not match. */
static int sweep_load_partial(const char *path, unsigned long long key, lrfind_job *j)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    unsigned long long k = 0;
    int done = 0;
    char line[256];
    if (fgets(line, sizeof line, f) && sscanf(line, "key %llx", &k) == 1 && k == key)
        while (done < j->ncand && fgets(line, sizeof line, f)) {
            double lr, loss;
            int ran;
            if (sscanf(line, "%lf,%lf,%d", &lr, &loss, &ran) != 3 || lr != j->lrs[done] || ran < 1 ||
                ran > j->sweep_steps)
                break;
            j->final[done] = loss;
            j->steps[done++] = ran;
        }
    fclose(f);
    return done;
}

/* The sweep one candidate at a time, each finished one recorded in CSV.partial
 * with the command's key: run again after a kill, the same command continues at
 * the first unfinished candidate with the same results (every candidate starts
 * from the same weights and data order with a fresh optimizer). */
static int sweep_resumable(cli_values *v, lrfind_job *j, int argc, char **argv, const char *partial)
{
    char err[1024] = "";
    const unsigned long long key = sweep_key(argc, argv, j->threads);
    int done = sweep_load_partial(partial, key, j);
    if (done > 0)
        printf("lr sweep: %d of %d candidates finished before (%s), continuing\n", done, j->ncand, partial);
    char header[32];
    snprintf(header, sizeof header, "key %llx", key);
    const double *cols[3] = {j->lrs, j->final, j->steps};
    for (int c = done; c < j->ncand; c++) {
        int ran;
        int st = ol_lrfind_sweep(j->ctx, &j->lp, j->sweep_steps, &j->lrs[c], 1, j->m, j->opt, &j->data.train,
                                 &j->final[c], &ran);
        if (st < 0)
            return cli_fail_ctx(j->ctx, st == OL_ENONFINITE ? OL_EXIT_DIVERGED : cli_exit_for(st));
        j->steps[c] = ran;
        if (c + 1 == j->ncand)
            break; /* the CSV follows */
        /* the output directory once there is a result to keep */
        if (c == done && !*cli_str(v, "csv") && cli_mkdir_p(j->ctx, cli_str(v, "out"), err, sizeof err) != 0)
            return cli_fail(OL_EXIT_FAIL, err);
        if (write_csv(j->ctx, partial, header, cols, 3, c + 1, 17, err, sizeof err) < 0)
            return cli_fail(OL_EXIT_FAIL, err);
    }
    return OL_EXIT_OK;
}

/* Runs the range test or the sweep, then writes and prints its results. */
static int run_job(cli_values *v, lrfind_job *j, int argc, char **argv)
{
    char err[1024] = "";
    const char *out = cli_str(v, "out");
    if (*cli_str(v, "csv"))
        snprintf(j->csv, sizeof j->csv, "%s", cli_str(v, "csv"));
    else
        snprintf(j->csv, sizeof j->csv, "%s/lr_find.csv", out);
    if (*cli_str(v, "plot"))
        snprintf(j->svg, sizeof j->svg, "%s", cli_str(v, "plot"));
    else
        snprintf(j->svg, sizeof j->svg, "%s/lr_find.svg", out);
    char partial[4200];
    snprintf(partial, sizeof partial, "%s.partial", j->csv);
    if (j->sweep) {
        int rc = sweep_resumable(v, j, argc, argv, partial);
        if (rc != OL_EXIT_OK)
            return rc;
    } else {
        int st = ol_lrfind_run(j->ctx, &j->lp, j->m, j->opt, &j->data.train, &j->res);
        if (st < 0)
            return cli_fail_ctx(j->ctx, st == OL_ENONFINITE ? OL_EXIT_DIVERGED : cli_exit_for(st));
    }
    /* results exist: only now create the output directory */
    if ((!*cli_str(v, "csv") || !*cli_str(v, "plot")) && cli_mkdir_p(j->ctx, out, err, sizeof err) != 0)
        return cli_fail(OL_EXIT_FAIL, err);
    int rc = j->sweep ? write_sweep(j) : write_range(j);
    if (rc != OL_EXIT_OK)
        return rc;
    if (j->sweep)
        unlink(partial); /* the CSV holds it all now */
    printf("csv: %s\nplot: %s\n", j->csv, j->svg);
    return OL_EXIT_OK;
}

int cmd_lrfind(int argc, char **argv)
{
    const cli_opt *const tables[] = {cli_model_opts, cli_data_opts,  cli_optim_opts, cli_lrfind_opts, cli_train_opts,
                                     cli_run_opts,   cli_sched_opts, cli_batch_opts, cli_config_opts, NULL};
    cli_values v;
    cli_init(&v, tables);
    int help = 0, rc = OL_EXIT_OK;
    lrfind_job job;
    memset(&job, 0, sizeof job);
    if (cli_apply_presets(&v, argc, argv, 2) != 0 || cli_parse(&v, argc, argv, 2, &help) != 0)
        rc = cli_fail(OL_EXIT_USAGE, v.err);
    else if (help)
        cli_print_help(stdout, &v, lrfind_usage);
    else if ((rc = parse_job(&v, &job)) == OL_EXIT_OK && (rc = build_job(&v, &job)) == OL_EXIT_OK)
        rc = run_job(&v, &job, argc, argv);
    ol_lrfind_result_free(&job.res);
    free(job.lrs);
    ol_optim_free(job.opt);
    ol_model_free(job.m);
    cli_free_data(&job.data);
    ol_ctx_free(job.ctx);
    cli_free(&v);
    return rc;
}
