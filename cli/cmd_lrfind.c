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
    {"diverge-factor", CLI_VALUE, "4", "F", "LR finder", "range: stop when the smoothed loss exceeds F x the best"},
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

/* Two columns (or four) of doubles, as a file written whole or not at all. */
static int write_csv(ol_ctx *ctx, const char *path, const char *header, const double *const *cols, int ncol, int n,
                     char *err, size_t cap)
{
    ol__tb b = {0};
    ol__tb_printf(&b, "%s\n", header);
    for (int i = 0; i < n; i++)
        for (int c = 0; c < ncol; c++)
            ol__tb_printf(&b, "%.10g%c", cols[c][i], c + 1 < ncol ? ',' : '\n');
    const char *text = ol__tb_text(&b);
    int rc = text ? cli_write_file(ctx, path, text, b.len, err, cap) : -1;
    if (!text)
        snprintf(err, cap, "out of memory writing %.900s", path);
    ol__tb_free(&b);
    return rc;
}

int cmd_lrfind(int argc, char **argv)
{
    const cli_opt *const tables[] = {cli_model_opts, cli_data_opts,  cli_optim_opts, cli_lrfind_opts, cli_train_opts,
                                     cli_run_opts,   cli_sched_opts, cli_batch_opts, cli_config_opts, NULL};
    cli_values v;
    cli_init(&v, tables);
    int help = 0, rc = OL_EXIT_OK;
    ol_ctx *ctx = NULL;
    ol_model *m = NULL;
    ol_optim *opt = NULL;
    double *lrs = NULL, *final = NULL;
    ol_lrfind_result res;
    memset(&res, 0, sizeof res);
    cli_data data;
    memset(&data, 0, sizeof data);
    char err[1024] = "";

    if (cli_apply_presets(&v, argc, argv, 2) != 0 || cli_parse(&v, argc, argv, 2, &help) != 0) {
        rc = cli_fail(OL_EXIT_USAGE, v.err);
        goto done;
    }
    if (help) {
        cli_print_help(stdout, &v, lrfind_usage);
        goto done;
    }
    ol_model_params mp;
    ol_optim_params op;
    ol_train_params tp;
    ol_lrfind_params lp = ol_lrfind_default_params();
    long long threads, x;
    int sweep = 0;
    const char *mode = cli_str(&v, "mode");
    if (strcmp(mode, "range") == 0)
        sweep = 0;
    else if (strcmp(mode, "sweep") == 0)
        sweep = 1;
    else {
        snprintf(err, sizeof err, "--mode: unknown mode '%s' (range, sweep)", mode);
        rc = cli_fail(OL_EXIT_USAGE, err);
        goto done;
    }
    if (cli_build_model(&v, &mp) || cli_build_optim(&v, &op) || cli_build_train(&v, &tp) ||
        cli_int(&v, "threads", 0, 1024, &threads) || cli_double(&v, "start-lr", 1e-30, 1e6, &lp.start_lr) ||
        cli_double(&v, "end-lr", 1e-30, 1e6, &lp.end_lr) || cli_int(&v, "num-iter", 2, 1000000, &x)) {
        rc = cli_fail(OL_EXIT_USAGE, v.err);
        goto done;
    }
    lp.num_iter = (int)x;
    lp.linear = cli_flag(&v, "linear");
    lp.batch_size = tp.batch_size;
    if (cli_int(&v, "micro-batch-size", 0, tp.batch_size, &x)) {
        rc = cli_fail(OL_EXIT_USAGE, v.err);
        goto done;
    }
    lp.micro_batch_size = (int)x;
    lp.label_smoothing = tp.label_smoothing;
    lp.clip_grad_norm = tp.clip_grad_norm;
    lp.aug = tp.aug;
    lp.seed = tp.seed;
    if (cli_double(&v, "smooth", 0.0, 0.9999, &lp.smooth_beta) ||
        cli_double(&v, "diverge-factor", 1.000001, 1e9, &lp.diverge_factor)) {
        rc = cli_fail(OL_EXIT_USAGE, v.err);
        goto done;
    }
    if (!(lp.end_lr > lp.start_lr)) {
        snprintf(err, sizeof err, "--end-lr (%g) must be larger than --start-lr (%g)", lp.end_lr, lp.start_lr);
        rc = cli_fail(OL_EXIT_USAGE, err);
        goto done;
    }
    int ncand = 0, sweep_steps = 0;
    if (sweep) {
        long long per, ss;
        if (cli_int(&v, "sweep-per-decade", 1, 100, &per) || cli_int(&v, "sweep-steps", 1, 10000000, &ss)) {
            rc = cli_fail(OL_EXIT_USAGE, v.err);
            goto done;
        }
        sweep_steps = (int)ss;
        lrs = malloc(sizeof(double) * 2 * 1024);
        if (!lrs) {
            rc = cli_fail(OL_EXIT_FAIL, "out of memory");
            goto done;
        }
        final = lrs + 1024;
        if (*cli_str(&v, "sweep-lrs")) {
            if (cli_double_list(&v, "sweep-lrs", 1e-30, 1e6, lrs, 64, &ncand)) {
                rc = cli_fail(OL_EXIT_USAGE, v.err);
                goto done;
            }
        } else {
            double decades = log10(lp.end_lr / lp.start_lr);
            int k = (int)floor(decades * (double)per + 1e-9);
            if (k + 1 > 1024) {
                rc = cli_fail(OL_EXIT_USAGE, "--sweep-per-decade: too many candidates (at most 1024)");
                goto done;
            }
            for (int i = 0; i <= k; i++)
                lrs[ncand++] = lp.start_lr * pow(10.0, (double)i / (double)per);
        }
    }
    if ((rc = cli_ctx_new(&v, (int)threads, &ctx)) != OL_EXIT_OK)
        goto done;
    if (cli_memory_limit(&v, ctx) < 0) {
        rc = cli_fail(OL_EXIT_USAGE, v.err);
        goto done;
    }
    int lst = cli_load_data(ctx, &v, &data, err, sizeof err);
    if (lst != 0) {
        rc = cli_fail(lst, err);
        goto done;
    }
    mp.in_c = data.train.c;
    mp.in_h = data.train.h;
    mp.in_w = data.train.w;
    mp.num_classes = data.train.num_classes;
    mp.max_batch = tp.batch_size < data.train.n ? tp.batch_size : (int)data.train.n;
    ol_train_memory tm;
    int st = ol_train_memory_estimate(ctx, &tp, &mp, &op, &data.train, NULL, &tm);
    if (st >= 0 && cli_check_memory(ctx, tm.total, "this range test", err, sizeof err) < 0) {
        rc = cli_fail(OL_EXIT_FAIL, err);
        goto done;
    }
    if (st >= 0)
        st = ol_model_create(ctx, &mp, &m);
    if (st >= 0)
        st = ol_optim_create(ctx, &op, ol_model_paramset(m), &opt);
    if (st < 0) {
        rc = cli_fail_ctx(ctx, cli_exit_for(st));
        goto done;
    }
    const char *out = cli_str(&v, "out");
    char csv[4096], svg[4096];
    if (*cli_str(&v, "csv"))
        snprintf(csv, sizeof csv, "%s", cli_str(&v, "csv"));
    else
        snprintf(csv, sizeof csv, "%s/lr_find.csv", out);
    if (*cli_str(&v, "plot"))
        snprintf(svg, sizeof svg, "%s", cli_str(&v, "plot"));
    else
        snprintf(svg, sizeof svg, "%s/lr_find.svg", out);

    if (sweep) {
        st = ol_lrfind_sweep(ctx, &lp, sweep_steps, lrs, ncand, m, opt, &data.train, final);
    } else {
        st = ol_lrfind_run(ctx, &lp, m, opt, &data.train, &res);
    }
    if (st < 0) {
        rc = cli_fail_ctx(ctx, st == OL_ENONFINITE ? OL_EXIT_DIVERGED : cli_exit_for(st));
        goto done;
    }
    /* results exist: only now create the output directory */
    if ((!*cli_str(&v, "csv") || !*cli_str(&v, "plot")) && cli_mkdir_p(ctx, out, err, sizeof err) != 0) {
        rc = cli_fail(OL_EXIT_FAIL, err);
        goto done;
    }
    if (sweep) {
        const double *cols[2] = {lrs, final};
        if (write_csv(ctx, csv, "lr,final_loss", cols, 2, ncand, err, sizeof err) < 0) {
            rc = cli_fail(OL_EXIT_FAIL, err);
            goto done;
        }
        if (ol_lrfind_sweep_plot(ctx, lrs, final, ncand, svg, NULL) < 0) {
            rc = cli_fail_ctx(ctx, OL_EXIT_FAIL);
            goto done;
        }
        printf("lr sweep: %d candidates x %d steps (batch %d, %s)\n", ncand, sweep_steps, lp.batch_size,
               ol_optim_params_name(&op));
        for (int i = 0; i < ncand; i++) {
            if (isfinite(final[i]))
                printf("  lr %-10.3g final loss %.4f\n", lrs[i], final[i]);
            else
                printf("  lr %-10.3g diverged\n", lrs[i]);
        }
        int b = ol_lrfind_sweep_best(final, ncand);
        if (b >= 0)
            printf("best lr: %.3g (final loss %.4f)\n", lrs[b], final[b]);
        else
            printf("best lr: none (every candidate diverged)\n");
    } else {
        const double *cols[3] = {res.lr, res.loss, res.smooth};
        if (write_csv(ctx, csv, "lr,loss,smoothed_loss", cols, 3, res.n, err, sizeof err) < 0) {
            rc = cli_fail(OL_EXIT_FAIL, err);
            goto done;
        }
        if (ol_lrfind_plot(ctx, &res, svg, NULL) < 0) {
            rc = cli_fail_ctx(ctx, OL_EXIT_FAIL);
            goto done;
        }
        char micro[48] = "";
        if (lp.micro_batch_size > 0 && lp.micro_batch_size < lp.batch_size)
            snprintf(micro, sizeof micro, " in micro-batches of %d", lp.micro_batch_size);
        printf("lr range test: %d iterations from %.3g to %.3g (%s, batch %d%s, %s)%s\n", res.n, lp.start_lr,
               res.lr[res.n - 1], lp.linear ? "linear" : "exponential", lp.batch_size, micro, ol_optim_params_name(&op),
               res.diverged ? ", stopped: the loss diverged" : "");
        printf("smallest smoothed loss %.4f at lr %.3g\n", res.best_loss, res.lr_at_min);
        printf("suggested lr: %.3g (steepest descent), %.3g (minimum / 10)\n", res.lr_steepest, res.lr_min10);
        printf("one-cycle:    --schedule onecycle --lr %.3g   (starts at %.3g with --div-factor 25)\n",
               res.onecycle_max_lr, res.onecycle_max_lr / 25.0);
        printf("cyclic:       --schedule cyclic --lr %.3g --max-lr %.3g\n", res.cyclic_base_lr, res.cyclic_max_lr);
    }
    printf("csv: %s\nplot: %s\n", csv, svg);
done:
    ol_lrfind_result_free(&res);
    free(lrs);
    ol_optim_free(opt);
    ol_model_free(m);
    cli_free_data(&data);
    ol_ctx_free(ctx);
    cli_free(&v);
    return rc;
}
