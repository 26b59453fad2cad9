/* optimlab report: one self-contained HTML page (inline SVG plots, no
 * scripts, no network) and a markdown summary comparing run directories.
 *
 * Hostile input: a path that is not a run directory (no directory, no
 * config.json, malformed config.json, no metrics.jsonl) is skipped with a
 * warning line while other runs are fine; when none is left the command
 * fails with exit status 2. Malformed metrics lines, and a cut last line of
 * a run being written, are skipped (a warning says how many). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "runs.h"
#include "tools/svg.h"

static const cli_opt report_opts[] = {
    {"out", CLI_VALUE, "", "DIR", "Output", "directory for report.html, report.md and the plots as SVG files (required)"},
    {"group-by", CLI_VALUE, "", "KEY", "Output",
     "one table section and one set of plots per value of this option (a config.json key)"},
    {"title", CLI_VALUE, "optimlab report", "TEXT", "Output", "page title"},
    {NULL, 0, NULL, NULL, NULL, NULL}};

static const char *const report_usage =
    "usage: optimlab report RUN_DIR... --out DIR [--group-by KEY] [--title TEXT]\n"
    "\n"
    "Compare runs: DIR/report.html (one page, inline SVG, no scripts or network) and DIR/report.md\n"
    "(the table, linking the plots written beside it as SVG files). Each run is labelled by the options\n"
    "in which the runs differ. A path that is not a run directory is skipped with a warning; with no\n"
    "run left the status is 2. A run still being written is shown as it stands (status 'running').\n"
    "\n"
    "example: optimlab report runs/sgd runs/adamw --out runs/cmp";

/* Options that say how a run was carried out, not what was trained. */
static int bookkeeping(const char *k)
{
    static const char *const skip[] = {"out", "resume", "overwrite", "quiet", "log-every", "threads", "time-limit",
                                       "stop-after", "checkpoint-every", "keep-last", "comm-timeout", "config",
                                       "recipe", "resolved", "no-prefetch", "data-dir", "backend", NULL};
    for (int i = 0; skip[i]; i++)
        if (!strcmp(k, skip[i]))
            return 1;
    return 0;
}

typedef struct {
    double *lr, *batch;
    int64_t n;
    double peak; /* the largest lr of the run's plan; NaN: not recomputed */
} run_sched;

typedef struct {
    run_data *runs;
    int n;
    char **keys; /* options whose values differ between the runs (all of them) */
    int nkeys;
    char **label; /* per run */
    int *group;   /* per run: index into gname */
    char **gname;
    int ngroups;
    const char *group_by;
    ol_ctx *ctx;
    run_sched *sched; /* per run: lr and batch of every step (n 0: the logged steps only) */
} report;

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d) {
        fprintf(stderr, "optimlab: out of memory\n");
        exit(OL_EXIT_FAIL); /* the CLI, not the library: nothing to clean up that the OS does not */
    }
    return d;
}

/* 1 when config.json says the value of key came from a default. */
static int resolved(const run_data *r, const char *key)
{
    json_t *a = json_object_get(r->config, "resolved");
    for (size_t i = 0; i < json_array_size(a); i++) {
        const char *s = json_string_value(json_array_get(a, i));
        if (s && !strcmp(s, key))
            return 1;
    }
    return 0;
}

/* The options set in some run of group g (g < 0: all) whose values differ between its runs. */
static int varying(const report *R, int g, const char *except, char ***out)
{
    int cap = 0, n = 0;
    char **keys = NULL, b0[512], b1[512];
    for (int i = 0; i < R->n; i++) {
        const char *k;
        json_t *val;
        json_object_foreach(R->runs[i].config, k, val)
        {
            (void)val;
            if (bookkeeping(k) || (except && !strcmp(k, except)))
                continue;
            int known = 0;
            for (int j = 0; j < n && !known; j++)
                known = !strcmp(keys[j], k);
            if (known)
                continue;
            int first = -1, differs = 0;
            for (int j = 0; j < R->n && !differs; j++) {
                if (g >= 0 && R->group[j] != g)
                    continue;
                if (first < 0)
                    first = j;
                else
                    differs = strcmp(run_cfg(&R->runs[first], k, b0, sizeof b0), run_cfg(&R->runs[j], k, b1, sizeof b1));
            }
            /* defaults that follow from another choice (Adam's betas) do not label a run */
            int chosen = 0;
            for (int j = 0; j < R->n && !chosen; j++)
                chosen = (g < 0 || R->group[j] == g) && !resolved(&R->runs[j], k) &&
                         *run_cfg(&R->runs[j], k, b0, sizeof b0);
            if (!differs || !chosen)
                continue;
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                char **nk = realloc(keys, (size_t)cap * sizeof *nk);
                if (!nk)
                    exit(OL_EXIT_FAIL);
                keys = nk;
            }
            keys[n++] = xstrdup(k);
        }
    }
    *out = keys;
    return n;
}

static void free_keys(char **k, int n)
{
    for (int i = 0; i < n; i++)
        free(k[i]);
    free(k);
}

enum { MAX_LABEL_KEYS = 3 };

/* Labels: the differing options within the run's group, else the directory name. */
static void make_labels(report *R)
{
    R->label = calloc((size_t)R->n, sizeof *R->label);
    if (!R->label)
        exit(OL_EXIT_FAIL);
    for (int g = 0; g < R->ngroups; g++) {
        char **keys;
        int nk = varying(R, g, R->group_by, &keys);
        for (int i = 0; i < R->n; i++) {
            if (R->group[i] != g)
                continue;
            char lab[1024] = "", b[256];
            /* beyond MAX_LABEL_KEYS options a label is unreadable: the directory name (a sweep's
             * names say what varies) */
            for (int k = 0; k < nk && nk <= MAX_LABEL_KEYS; k++) {
                size_t len = strlen(lab);
                const char *val = run_cfg(&R->runs[i], keys[k], b, sizeof b);
                snprintf(lab + len, sizeof lab - len, "%s%s=%s", k ? " " : "", keys[k], *val ? val : "(default)");
            }
            R->label[i] = xstrdup(*lab ? lab : R->runs[i].name);
        }
        free_keys(keys, nk);
    }
    /* identical configurations get their directory name too */
    for (int i = 0; i < R->n; i++)
        for (int j = i + 1; j < R->n; j++)
            if (!strcmp(R->label[i], R->label[j]) && strcmp(R->label[j], R->runs[j].name)) {
                char lab[1400];
                snprintf(lab, sizeof lab, "%s (%s)", R->label[j], R->runs[j].name);
                free(R->label[j]);
                R->label[j] = xstrdup(lab);
            }
}

static void make_groups(report *R)
{
    R->group = calloc((size_t)R->n, sizeof *R->group);
    R->gname = calloc((size_t)R->n + 1, sizeof *R->gname);
    if (!R->group || !R->gname)
        exit(OL_EXIT_FAIL);
    for (int i = 0; i < R->n; i++) {
        char b[512];
        const char *v = R->group_by ? run_cfg(&R->runs[i], R->group_by, b, sizeof b) : "";
        int g = 0;
        while (g < R->ngroups && strcmp(R->gname[g], v))
            g++;
        if (g == R->ngroups)
            R->gname[R->ngroups++] = xstrdup(v);
        R->group[i] = g;
    }
}

/* ---- cells ---------------------------------------------------------------- */

static void fmt_time(double s, char *b, size_t cap)
{
    if (!isfinite(s) || s < 0) {
        snprintf(b, cap, "-");
        return;
    }
    long t = lround(s);
    if (t >= 3600)
        snprintf(b, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(b, cap, "%ld:%02ld", t / 60, t % 60);
}

static void fmt_bytes(double x, char *b, size_t cap)
{
    if (!isfinite(x))
        snprintf(b, cap, "-");
    else if (x >= 1e9)
        snprintf(b, cap, "%.2f GB", x / 1e9);
    else if (x >= 1e6)
        snprintf(b, cap, "%.1f MB", x / 1e6);
    else
        snprintf(b, cap, "%.0f kB", x / 1e3);
}

static void fmt_pct(double x, char *b, size_t cap)
{
    if (isfinite(x))
        snprintf(b, cap, "%.2f %%", 100.0 * x);
    else
        snprintf(b, cap, "-");
}

/* The largest learning rate: that of the recomputed schedule (sched_peak) when there is one;
 * else the configured peak scaled by --lr-scaling for the run's batch (log points can miss a short
 * warm-up's end), or a larger logged one. */
static double peak_lr(const run_data *r, double sched_peak)
{
    if (isfinite(sched_peak))
        return sched_peak;
    char b[64];
    double p = atof(run_cfg(r, "lr", b, sizeof b));
    const char *m = run_cfg(r, "max-lr", b, sizeof b);
    if (*m && atof(m) > p)
        p = atof(m);
    ol_lr_scaling rule;
    if (!ol_lr_scaling_from_name(run_cfg(r, "lr-scaling", b, sizeof b), &rule) && rule != OL_LR_SCALING_NONE) {
        double batch = atof(run_cfg(r, "batch-size", b, sizeof b));
        double base = atof(run_cfg(r, "base-batch-size", b, sizeof b));
        double knee = atof(run_cfg(r, "lr-scaling-knee", b, sizeof b));
        if (batch > 0 && base > 0)
            p *= ol_lr_scale(rule, batch, base, knee >= 1.0 ? knee : 8.0);
    }
    for (int i = 0; i < r->nsteps; i++)
        if (r->steps[i].lr > p)
            p = r->steps[i].lr;
    return p;
}

enum { C_RUN, C_STATUS, C_MODEL, C_OPT, C_BATCH, C_LR, C_SCHED, C_EPOCHS, C_STEPS, C_BEST, C_FINAL, C_LOSS, C_TIME,
       C_RATE, C_SENT, C_COUNT };
static const char *const col_name[C_COUNT] = {"run", "status", "model", "optimizer", "batch", "peak lr",
                                              "schedule", "epochs", "steps", "best acc", "final acc",
                                              "final loss", "wall time", "throughput", "data sent"};

static void cell(const run_data *r, const run_sched *rs, const char *label, int c, char *out, size_t cap)
{
    char b[256], b2[256];
    switch (c) {
    case C_RUN: snprintf(out, cap, "%s", label); break;
    case C_STATUS:
        snprintf(out, cap, "%s%s", r->status == RUN_FINISHED ? "finished" : r->status == RUN_RUNNING ? "running" : "stopped",
                 r->bad_lines ? " (!)" : "");
        break;
    case C_MODEL: {
        char b3[64];
        const char *w = run_cfg(r, "width", b2, sizeof b2);
        snprintf(out, cap, "%s%s%s%s", run_cfg(r, "model", b, sizeof b), strcmp(w, "1") && *w ? " k=" : "",
                 strcmp(w, "1") && *w ? w : "", !strcmp(run_cfg(r, "no-skip", b3, sizeof b3), "true") ? " no-skip" : "");
        break;
    }
    case C_OPT:
        snprintf(out, cap, "%s%s", run_cfg(r, "optimizer", b, sizeof b),
                 !strcmp(run_cfg(r, "larc", b2, sizeof b2), "true") ? "+larc" : "");
        break;
    case C_BATCH: {
        const char *bs = run_cfg(r, "batch-schedule", b2, sizeof b2);
        snprintf(out, cap, "%s%s%s", run_cfg(r, "batch-size", b, sizeof b), *bs && strcmp(bs, "constant") ? " " : "",
                 *bs && strcmp(bs, "constant") ? bs : "");
        break;
    }
    case C_LR: snprintf(out, cap, "%.4g", peak_lr(r, rs->peak)); break;
    case C_SCHED: {
        int warm = atof(run_cfg(r, "warmup-epochs", b, sizeof b)) > 0 || atof(run_cfg(r, "warmup-steps", b, sizeof b)) > 0 ||
                   atof(run_cfg(r, "warmup-ratio", b, sizeof b)) > 0;
        snprintf(out, cap, "%s%s", run_cfg(r, "schedule", b2, sizeof b2), warm ? " +warmup" : "");
        break;
    }
    case C_EPOCHS:
        if (r->status == RUN_FINISHED)
            snprintf(out, cap, "%.4g", r->epochs_reached);
        else
            snprintf(out, cap, "%.3g of %s", r->epochs_reached, run_cfg(r, "epochs", b, sizeof b));
        break;
    case C_STEPS: snprintf(out, cap, "%.0f", r->steps_reached); break;
    case C_BEST:
    case C_FINAL:
        fmt_pct(c == C_BEST ? r->best_acc : r->final_acc, out, cap);
        if (r->has_val && isfinite(r->best_acc))
            snprintf(out + strlen(out), cap - strlen(out), " val");
        break;
    case C_LOSS:
        if (isfinite(r->final_loss))
            snprintf(out, cap, "%.4f", r->final_loss);
        else
            snprintf(out, cap, "-");
        break;
    case C_TIME: fmt_time(r->elapsed, out, cap); break;
    case C_RATE: {
        double rate = r->train_time > 0 ? r->epochs_reached * r->n_train / r->train_time : NAN;
        if (isfinite(rate) && r->tokens_per_sample > 0) /* a language model's samples are windows of tokens */
            snprintf(out, cap, "%.0f tok/s", rate * r->tokens_per_sample);
        else if (isfinite(rate))
            snprintf(out, cap, "%.0f img/s", rate);
        else
            snprintf(out, cap, "-");
        break;
    }
    case C_SENT: fmt_bytes(r->comm_bytes, out, cap); break;
    default: *out = '\0';
    }
}

static void html_esc(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* Markdown table cells: a '|' would end the cell. */
static void md_esc(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputc('\\', f);
        fputc(*s == '\n' ? ' ' : *s, f);
    }
}

static void write_tables(const report *R, FILE *h, FILE *md)
{
    fputs("<div class=\"wide\"><table>\n<tr>", h);
    for (int c = 0; c < C_COUNT; c++)
        fprintf(h, "<th>%s</th>", col_name[c]);
    fputs("</tr>\n", h);
    fputs("|", md);
    for (int c = 0; c < C_COUNT; c++)
        fprintf(md, " %s |", col_name[c]);
    fputs("\n|", md);
    for (int c = 0; c < C_COUNT; c++)
        fputs(c >= C_LR && c != C_SCHED ? " ---: |" : " --- |", md);
    fputs("\n", md);
    char buf[1400];
    for (int g = 0; g < R->ngroups; g++) {
        if (R->group_by) {
            fprintf(h, "<tr class=\"group\"><td colspan=\"%d\">%s = ", C_COUNT, R->group_by);
            html_esc(h, R->gname[g]);
            fputs("</td></tr>\n", h);
            fprintf(md, "| **%s = ", R->group_by);
            md_esc(md, R->gname[g]);
            fputs("** |", md);
            for (int c = 1; c < C_COUNT; c++)
                fputs(" |", md);
            fputs("\n", md);
        }
        for (int i = 0; i < R->n; i++) {
            if (R->group[i] != g)
                continue;
            fputs("<tr>", h);
            fputs("|", md);
            for (int c = 0; c < C_COUNT; c++) {
                cell(&R->runs[i], &R->sched[i], R->label[i], c, buf, sizeof buf);
                if (c == C_RUN)
                    fprintf(h, "<td><span class=\"sw\" style=\"background:%s\"></span>", ol__svg_color(i));
                else
                    fputs(c >= C_LR && c != C_SCHED ? "<td class=\"n\">" : "<td>", h);
                html_esc(h, buf);
                fputs("</td>", h);
                fputc(' ', md);
                md_esc(md, buf);
                fputs(" |", md);
            }
            fputs("</tr>\n", h);
            fputs("\n", md);
        }
    }
    fputs("</table></div>\n", h);
}

/* ---- plots ---------------------------------------------------------------- */

enum { P_ACC_EPOCH, P_LOSS_EPOCH, P_ACC_SAMPLES, P_LOSS_SAMPLES, P_LR, P_BATCH, P_GNORM, P_GNS, P_COUNT };
static const struct {
    const char *file, *title, *xlabel, *ylabel;
} plot_info[P_COUNT] = {
    {"acc-epoch", "test accuracy", "epoch", "accuracy (%)"},
    {"loss-epoch", "training loss (logged steps)", "epoch", "loss"},
    {"acc-samples", "test accuracy", "samples seen", "accuracy (%)"},
    {"loss-samples", "training loss (logged steps)", "samples seen", "loss"},
    {"lr", "learning rate", "optimizer step", "lr"},
    {"batch", "batch size", "optimizer step", "samples per step"},
    {"grad-norm", "gradient norm", "optimizer step", "global gradient norm"},
    {"gns", "gradient noise scale (--gns)", "optimizer step", "B_simple = tr(Sigma) / |G|^2 (samples)"},
};

/* Up to 4 points per bucket of steps (first, lowest, highest, last, in step order):
 * the shape of a long schedule at the plot's resolution, every drop kept. */
static int decimate(const double *x, const double *y, int n, double *xo, double *yo)
{
    const int buckets = 400;
    if (n <= 4 * buckets) {
        memcpy(xo, x, sizeof *x * (size_t)n);
        memcpy(yo, y, sizeof *y * (size_t)n);
        return n;
    }
    int k = 0;
    for (int b = 0; b < buckets; b++) {
        int a = (int)((int64_t)n * b / buckets), e = (int)((int64_t)n * (b + 1) / buckets), lo = a, hi = a;
        for (int i = a; i < e; i++) {
            lo = y[i] < y[lo] ? i : lo;
            hi = y[i] > y[hi] ? i : hi;
        }
        int pick[4] = {a, lo < hi ? lo : hi, lo < hi ? hi : lo, e - 1};
        for (int q = 0; q < 4; q++)
            if (q == 0 || pick[q] != pick[q - 1]) {
                xo[k] = x[pick[q]];
                yo[k++] = y[pick[q]];
            }
    }
    return k;
}

/* 1 when a step of batch b between steps of batches prev and next (last: there is none after it)
 * is an epoch's partial last batch: not the schedule's batch size (nor, with --lr-scaling, its lr). */
static int partial_batch(double prev, double b, double next, int last)
{
    return b < prev && (last || b < next);
}

/* The computed lr or batch of every step of a run (x: the step that ends, as logged). */
static int sched_series(const run_sched *rs, int p, double *x, double *y)
{
    const double *v = p == P_LR ? rs->lr : rs->batch, *b = rs->batch;
    int n = 0;
    for (int64_t t = 0; t < rs->n; t++) {
        if (t > 0 && partial_batch(b[t - 1], b[t], t + 1 < rs->n ? b[t + 1] : 0.0, t + 1 == rs->n))
            continue;
        x[n] = (double)(t + 1);
        y[n++] = v[t];
    }
    return n;
}

/* x and y of run i in plot p (malloc'd; n points). epoch_loss: the training
 * loss plots show the epochs' mean training loss instead of the logged steps. */
static int series(const report *R, int i, int p, double unit, int epoch_loss, double **xo, double **yo)
{
    const run_data *r = &R->runs[i];
    const run_sched *rs = &R->sched[i];
    const int computed = (p == P_LR || p == P_BATCH) && rs->n > 0;
    int evals = p == P_ACC_EPOCH || p == P_ACC_SAMPLES || (epoch_loss && (p == P_LOSS_EPOCH || p == P_LOSS_SAMPLES));
    size_t n = computed ? (size_t)rs->n : (size_t)(evals ? r->nevals : r->nsteps), k = 0;
    double *x = malloc(sizeof(double) * (n + 1)), *y = malloc(sizeof(double) * (n + 1));
    if (!x || !y)
        exit(OL_EXIT_FAIL);
    if (computed) {
        double *tx = malloc(sizeof(double) * n), *ty = malloc(sizeof(double) * n);
        if (!tx || !ty)
            exit(OL_EXIT_FAIL);
        k = (size_t)decimate(tx, ty, sched_series(rs, p, tx, ty), x, y);
        free(tx);
        free(ty);
        *xo = x;
        *yo = y;
        return (int)k;
    }
    double per = p == P_ACC_SAMPLES || p == P_LOSS_SAMPLES ? r->n_train / unit : 1.0;
    for (size_t j = 0; j < n; j++) {
        if (evals) {
            const run_eval *e = &r->evals[j];
            const int loss = p == P_LOSS_EPOCH || p == P_LOSS_SAMPLES;
            if (loss && !isfinite(e->train_loss))
                continue; /* a mid-epoch evaluation */
            x[k] = e->epoch * per;
            y[k] = loss ? e->train_loss : 100.0 * e->test_acc;
        } else {
            const run_step *s = &r->steps[j];
            x[k] = p == P_LOSS_EPOCH || p == P_LOSS_SAMPLES ? s->epoch * per : s->step;
            y[k] = p == P_LR ? s->lr : p == P_BATCH ? s->batch : p == P_GNORM ? s->grad_norm : p == P_GNS ? s->gns : s->loss;
            if (p == P_BATCH && j > 0 &&
                partial_batch(s[-1].batch, s->batch, j + 1 < n ? s[1].batch : 0.0, j + 1 == n))
                continue;
        }
        k++;
    }
    *xo = x;
    *yo = y;
    return (int)k;
}

/* 1 when every run of group g has the mean training loss of at least 3 epochs:
 * one curve per run of the same kind (a logged step's loss is one batch's). */
static int epoch_losses(const report *R, int g)
{
    for (int i = 0; i < R->n; i++) {
        if (R->group[i] != g)
            continue;
        int k = 0;
        for (int j = 0; j < R->runs[i].nevals; j++)
            k += isfinite(R->runs[i].evals[j].train_loss);
        if (k < 3)
            return 0;
    }
    return 1;
}

/* The y range of plot p, and whether its axis is logarithmic (1). */
static int y_scale(int p, double **ys, const int *ns, int m, double *y0, double *y1)
{
    double lo, hi;
    /* losses and gradient norms span decades: log scale when all positive and they do */
    int logy = (p == P_LOSS_EPOCH || p == P_LOSS_SAMPLES || p == P_GNORM || p == P_GNS) && *y0 > 0 && *y1 / *y0 > 20;
    if (p == P_LR) { /* lrs of different magnitudes (SGD and Adam): log, down to 1e-4 of the largest */
        double pmin = INFINITY;
        for (int j = 0; j < m; j++)
            if (ol__range(ys[j], ns[j], 1, &lo, &hi))
                pmin = fmin(pmin, hi);
        logy = isfinite(pmin) && pmin > 0 && *y1 / pmin > 20;
        if (logy) {
            *y0 = fmax(*y0, 1e-4 * *y1);
            for (int j = 0; j < m; j++)
                for (int k = 0; k < ns[j]; k++)
                    if (!(ys[j][k] >= *y0))
                        ys[j][k] = NAN; /* off the scale: the line stops there */
        }
    }
    if (logy) { /* whole decades: every tick labelled */
        *y0 = pow(10.0, floor(log10(*y0) + 1e-9));
        *y1 = pow(10.0, ceil(log10(*y1) - 1e-9));
    } else {
        double pad = 0.05 * (*y1 - *y0);
        *y0 = p == P_BATCH || p == P_LR ? fmin(0.0, *y0) : *y0 - pad;
        *y1 += pad;
    }
    return logy;
}

/* One plot of the runs of group g, as an inline <svg> in h and a file beside the page. */
static int plot(const report *R, int g, int p, FILE *h, FILE *md, const char *outdir)
{
    double *xs[256] = {0}, *ys[256] = {0}, most = 0;
    int ns[256] = {0}, idx[256], m = 0;
    for (int i = 0; i < R->n; i++) /* samples in thousands or millions: readable ticks */
        if (R->group[i] == g && R->runs[i].epochs_reached * R->runs[i].n_train > most)
            most = R->runs[i].epochs_reached * R->runs[i].n_train;
    const double unit = most >= 1e8 ? 1e6 : most >= 1e5 ? 1e3 : 1.0;
    char xlabel[64];
    snprintf(xlabel, sizeof xlabel, "%s%s", plot_info[p].xlabel,
             p != P_ACC_SAMPLES && p != P_LOSS_SAMPLES ? "" : unit == 1e6 ? " (millions)" : unit == 1e3 ? " (thousands)" : "");
    const int eloss = (p == P_LOSS_EPOCH || p == P_LOSS_SAMPLES) && epoch_losses(R, g);
    const char *title = eloss ? "training loss (epoch means)" : plot_info[p].title;
    for (int i = 0; i < R->n && m < 256; i++)
        if (R->group[i] == g) {
            idx[m] = i;
            ns[m] = series(R, i, p, unit, eloss, &xs[m], &ys[m]);
            m++;
        }
    double x0 = 0, x1 = 0, y0 = 0, y1 = 0, lo, hi;
    int anyx = 0, anyy = 0;
    for (int j = 0; j < m; j++) {
        if (ol__range(xs[j], ns[j], 0, &lo, &hi))
            x0 = anyx ? fmin(x0, lo) : lo, x1 = anyx ? fmax(x1, hi) : hi, anyx = 1;
        if (ol__range(ys[j], ns[j], 0, &lo, &hi))
            y0 = anyy ? fmin(y0, lo) : lo, y1 = anyy ? fmax(y1, hi) : hi, anyy = 1;
    }
    int rc = 0;
    if (anyx && anyy) {
        int logy = y_scale(p, ys, ns, m, &y0, &y1);
        ol__svg s;
        const int legend = m <= 12 ? m : 0, lh = 17; /* below the plot: it never hides a curve */
        if ((rc = ol__svg_begin(R->ctx, &s, 560, 340 + lh * legend + 6, fmin(x0, 0.0), x1, y0, y1, 0, logy)) < 0) {
            fprintf(stderr, "optimlab: %s\n", ol_ctx_errmsg(R->ctx));
        } else {
            s.mb += lh * legend + 6;
            ol__svg_axes(&s, title, NULL, plot_info[p].ylabel);
            ol__svg_text(&s, (s.ml + s.W - s.mr) / 2, s.H - s.mb + 40, "middle", 13, "#111", xlabel);
            for (int j = 0; j < legend; j++) {
                double y = s.H - lh * (legend - j) + 4;
                ol__svg_text(&s, s.ml, y, "start", 12, ol__svg_color(idx[j]), (idx[j] / 10) % 2 ? "- - -" : "\u2501\u2501\u2501");
                ol__svg_text(&s, s.ml + 34, y, "start", 12, "#111", R->label[idx[j]]);
            }
            for (int j = 0; j < m; j++) {
                const char *col = ol__svg_color(idx[j]);
                ol__svg_polyline(&s, xs[j], ys[j], ns[j], col, 1.8, (idx[j] / 10) % 2);
                if (p == P_ACC_EPOCH || p == P_ACC_SAMPLES || eloss || ns[j] == 1)
                    for (int k = 0; k < ns[j]; k++)
                        if (ns[j] <= 60 || k == ns[j] - 1)
                            ol__svg_marker(&s, xs[j][k], ys[j][k], 3.0, col);
            }
            char path[4400], fname[128];
            if (R->group_by)
                snprintf(fname, sizeof fname, "g%d-%s.svg", g + 1, plot_info[p].file);
            else
                snprintf(fname, sizeof fname, "%s.svg", plot_info[p].file);
            if ((rc = ol__svg_end(R->ctx, &s)) >= 0) {
                fwrite(s.tb.buf, 1, s.tb.len, h);
                snprintf(path, sizeof path, "%s/%s", outdir, fname);
                char err[1024];
                if ((rc = cli_write_file(R->ctx, path, s.tb.buf, s.tb.len, err, sizeof err)) < 0)
                    fprintf(stderr, "optimlab: %s\n", err);
                fprintf(md, "![%s vs %s](%s)\n", title, plot_info[p].xlabel, fname);
            } else
                fprintf(stderr, "optimlab: %s\n", ol_ctx_errmsg(R->ctx));
        }
        ol__svg_free(&s);
    }
    for (int j = 0; j < m; j++) {
        free(xs[j]);
        free(ys[j]);
    }
    return rc < 0 ? -1 : 0;
}

static const char *const css =
    "body{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;margin:24px;color:#111;background:#fafafa}"
    "h1{font-size:22px;margin:0 0 6px}h2{font-size:17px;margin:26px 0 8px}p{margin:4px 0 10px;max-width:1100px}"
    "table{border-collapse:collapse;font-size:13px;background:white}"
    "th,td{border:1px solid #ccc;padding:4px 8px;white-space:nowrap}th{background:#eee;text-align:left}"
    "td:first-child{white-space:normal;min-width:180px;max-width:340px}.wide{overflow-x:auto}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}tr.group td{background:#f0f4fa;font-weight:bold}"
    ".sw{display:inline-block;width:14px;height:4px;margin:0 6px 3px 0;vertical-align:middle}"
    ".plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,560px));gap:12px}"
    ".plots svg{width:100%;height:auto;border:1px solid #ddd;background:white}"
    ".warn{color:#a40000}.keys code{background:#eee;padding:1px 4px}";

static int write_page(report *R, const char *outdir, const char *title, const char *warnings)
{
    char hp[4200], mp[4200], err[1024];
    snprintf(hp, sizeof hp, "%s/report.html", outdir);
    snprintf(mp, sizeof mp, "%s/report.md", outdir);
    cli_memfile hm, mm;
    FILE *h = cli_memfile_open(&hm), *md = cli_memfile_open(&mm);
    if (!h || !md) {
        cli_memfile_discard(&hm);
        cli_memfile_discard(&mm);
        fprintf(stderr, "optimlab: out of memory writing the report\n");
        return OL_EXIT_FAIL;
    }
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>", h);
    html_esc(h, title);
    fprintf(h, "</title>\n<style>%s</style></head>\n<body>\n<h1>", css);
    html_esc(h, title);
    fprintf(md, "# %s\n\n", title);
    fprintf(h, "</h1>\n<p class=\"keys\">%d run%s", R->n, R->n == 1 ? "" : "s");
    fprintf(md, "%d run%s", R->n, R->n == 1 ? "" : "s");
    if (R->nkeys) {
        fputs("; they differ in ", h);
        fputs("; they differ in ", md);
        for (int k = 0; k < R->nkeys; k++) {
            fprintf(h, "%s<code>", k ? ", " : "");
            html_esc(h, R->keys[k]);
            fputs("</code>", h);
            fprintf(md, "%s`%s`", k ? ", " : "", R->keys[k]);
        }
    }
    fputs(". Accuracy and loss are on the test set (on the validation split where marked val); throughput counts "
          "training images per second of training time.</p>\n", h);
    fputs(".\n\n", md);
    if (*warnings) {
        fputs("<p class=\"warn\">", h);
        html_esc(h, warnings);
        fputs("</p>\n", h);
        fprintf(md, "Warnings: %s\n\n", warnings);
    }
    write_tables(R, h, md);
    int rc = 0;
    for (int g = 0; g < R->ngroups && rc == 0; g++) {
        if (R->group_by) {
            fprintf(h, "<h2>%s = ", R->group_by);
            html_esc(h, R->gname[g]);
            fputs("</h2>\n", h);
            fprintf(md, "\n## %s = %s\n", R->group_by, R->gname[g]);
        } else {
            fputs("<h2>Curves</h2>\n", h);
            fputs("\n## Curves\n", md);
        }
        fputs("<div class=\"plots\">\n", h);
        fputs("\n", md);
        for (int p = 0; p < P_COUNT && rc == 0; p++)
            rc = plot(R, g, p, h, md, outdir);
        fputs("</div>\n", h);
    }
    fputs("\n", md);
    fputs("<p>Written by optimlab report " OL_VERSION_STRING ".</p>\n</body></html>\n", h);
    if (rc) { /* a plot failed (said): write neither page */
        cli_memfile_discard(&hm);
        cli_memfile_discard(&mm);
        return OL_EXIT_FAIL;
    }
    if (cli_memfile_save(&hm, hp, err, sizeof err) < 0 || cli_memfile_save(&mm, mp, err, sizeof err) < 0) {
        fprintf(stderr, "optimlab: %s\n", err);
        cli_memfile_discard(&mm);
        return OL_EXIT_FAIL;
    }
    return 0;
}

static int report_render(const char *const *dirs, int ndirs, const char *group_by, const char *outdir,
                         const char *title)
{
    report R = {.group_by = group_by && *group_by ? group_by : NULL};
    R.runs = calloc((size_t)ndirs + 1, sizeof *R.runs);
    if (!R.runs)
        return cli_fail(OL_EXIT_FAIL, "out of memory");
    char err[1200], warnings[2048] = "";
    for (int i = 0; i < ndirs; i++) {
        if (run_load(dirs[i], &R.runs[R.n], err, sizeof err) < 0) {
            if (ndirs > 1) /* a lone path's reason is the error below: one line */
                fprintf(stderr, "optimlab: warning: %s; skipped\n", err);
            continue;
        }
        run_data *r = &R.runs[R.n++];
        if (r->bad_lines) {
            fprintf(stderr, "optimlab: warning: %s/metrics.jsonl: %d malformed or mismatched line%s skipped\n", r->dir,
                    r->bad_lines, r->bad_lines == 1 ? "" : "s");
            size_t len = strlen(warnings);
            snprintf(warnings + len, sizeof warnings - len, "%s%.300s/metrics.jsonl: %d malformed line(s) skipped.",
                     len ? " " : "", r->name, r->bad_lines);
        }
    }
    int rc = 0;
    if (R.n == 0) {
        rc = cli_fail(OL_EXIT_USAGE, ndirs == 1 ? err : "none of the given paths is a run directory");
    } else if (R.group_by && !json_object_get(R.runs[0].config, R.group_by)) {
        snprintf(err, sizeof err, "--group-by: '%.200s' is not an option in %.800s/config.json", R.group_by,
                 R.runs[0].dir);
        rc = cli_fail(OL_EXIT_USAGE, err);
    } else if (!(R.ctx = ol_ctx_new(0))) {
        rc = cli_fail(OL_EXIT_FAIL, "out of memory");
    } else if (cli_mkdir_p(R.ctx, outdir, err, sizeof err) != 0) {
        rc = cli_fail(OL_EXIT_FAIL, err);
    } else {
        make_groups(&R);
        if (!(R.sched = calloc((size_t)R.n, sizeof *R.sched))) {
            fprintf(stderr, "optimlab: out of memory\n");
            exit(OL_EXIT_FAIL);
        }
        for (int i = 0; i < R.n; i++) /* not recomputable (a plugin, plateau): the logged steps */
            run_schedule(&R.runs[i], &R.sched[i].lr, &R.sched[i].batch, &R.sched[i].n, &R.sched[i].peak);
        R.nkeys = varying(&R, -1, NULL, &R.keys);
        make_labels(&R);
        rc = write_page(&R, outdir, title, warnings);
        if (rc == 0)
            printf("report: %s/report.html, %s/report.md (%d runs)\n", outdir, outdir, R.n);
    }
    for (int i = 0; i < R.n; i++) {
        if (R.sched) {
            free(R.sched[i].lr);
            free(R.sched[i].batch);
        }
        run_free(&R.runs[i]);
        if (R.label)
            free(R.label[i]);
    }
    for (int g = 0; g < R.ngroups; g++)
        free(R.gname[g]);
    free_keys(R.keys, R.nkeys);
    free(R.runs);
    free(R.label);
    free(R.group);
    free(R.gname);
    free(R.sched);
    ol_ctx_free(R.ctx);
    return rc;
}

int report_write(const char *const *dirs, int ndirs, const char *group_by, const char *outdir)
{
    return report_render(dirs, ndirs, group_by, outdir, "optimlab report");
}

int cmd_report(int argc, char **argv)
{
    const cli_opt *const tables[] = {report_opts, NULL};
    cli_values v;
    cli_init(&v, tables);
    /* run directories may come before, between or after the options */
    char **opts = calloc((size_t)argc + 1, sizeof *opts);
    const char **dirs = calloc((size_t)argc + 1, sizeof *dirs);
    if (!opts || !dirs) {
        free(opts);
        free(dirs);
        cli_free(&v);
        return cli_fail(OL_EXIT_FAIL, "out of memory");
    }
    int no = 0, nd = 0, help = 0, rc;
    opts[no++] = argv[0];
    opts[no++] = argv[1];
    for (int i = 2; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1]) {
            opts[no++] = argv[i];
            int k = strncmp(argv[i], "--", 2) == 0 && !strchr(argv[i], '=') ? cli_find(&v, argv[i] + 2) : -1;
            if (k >= 0 && v.opts[k]->kind != CLI_FLAG && i + 1 < argc)
                opts[no++] = argv[++i];
        } else
            dirs[nd++] = argv[i];
    }
    if (cli_parse(&v, no, opts, 2, &help) != 0)
        rc = cli_fail(OL_EXIT_USAGE, v.err);
    else if (help) {
        cli_print_help(stdout, &v, report_usage);
        rc = OL_EXIT_OK;
    } else if (nd == 0)
        rc = cli_fail(OL_EXIT_USAGE, "report: no run directory given (see optimlab report --help)");
    else if (!*cli_str(&v, "out"))
        rc = cli_fail(OL_EXIT_USAGE, "report: --out DIR is required");
    else
        rc = report_render(dirs, nd, cli_str(&v, "group-by"), cli_str(&v, "out"), cli_str(&v, "title"));
    free(opts);
    free(dirs);
    cli_free(&v);
    return rc;
}
