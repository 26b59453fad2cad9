/* optimlab histogram: weight distributions of a run's checkpoints, one curve
 * per checkpoint, one panel per tensor or layer group. */
#include <jansson.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "evalrun.h"
#include "tools/svg.h"

#define HIST_MAX_PANELS 36

static const cli_opt hist_opts[] = {
    {"tensors", CLI_VALUE, "", "REGEX", "Histogram",
     "one panel per parameter tensor whose name matches (POSIX extended regex, e.g. 'conv.*weight')"},
    {"per-layer", CLI_FLAG, "0", NULL, "Histogram",
     "one panel per top-level layer (conv1, layer1, layer2, ..., fc): its conv/linear weights"},
    {"bins", CLI_VALUE, "60", "N", "Histogram", "bins per histogram"},
    {"max-checkpoints", CLI_VALUE, "8", "N", "Histogram",
     "curves per panel: N checkpoints evenly spread from the first to the last (0 = all)"},
    {"log-y", CLI_FLAG, "0", NULL, "Histogram", "logarithmic density axis (shows the tails)"},
    {"out", CLI_VALUE, "", "FILE.svg", "Histogram", "the plot (required)"},
    {"json", CLI_VALUE, "", "FILE", "Histogram", "also write the counts as JSON"},
    {NULL, 0, NULL, NULL, NULL, NULL}};

static const char *const hist_usage =
    "usage: optimlab histogram RUN_DIR [--tensors REGEX | --per-layer] [--bins N] [--max-checkpoints N]\n"
    "                          --out FILE.svg [--json FILE]\n"
    "\n"
    "Weight distributions over training: for each checkpoint of the run (ckpt-<step>.safetensors) a\n"
    "histogram of the weights, drawn as one curve per checkpoint (density: counts / (values x bin width)),\n"
    "all checkpoints of a panel on the same bins. Without --tensors or --per-layer one panel holds all\n"
    "conv/linear weights (biases and BatchNorm parameters left out); --per-layer groups those weights by\n"
    "top-level layer; --tensors picks any tensors, one panel each. The run directory is only read.";

typedef struct {
    char name[OL_NAME_MAX];
    int tensors[512]; /* indices into the parameter set */
    int nt;
    size_t count; /* values per checkpoint */
    double lo, hi;
    double *counts; /* [checkpoints][bins] */
} panel;

typedef struct {
    long long bins, maxck;
    panel *p;
    int np;
    long long *steps;
    int nck;
    ol_model *m;
} hist_job;

static int add_to_panel(hist_job *j, const char *name, int t, char *err, size_t cap)
{
    int k = 0;
    while (k < j->np && strcmp(j->p[k].name, name) != 0)
        k++;
    if (k == j->np) {
        if (j->np == HIST_MAX_PANELS) {
            snprintf(err, cap, "more than %d panels: narrow --tensors", HIST_MAX_PANELS);
            return -1;
        }
        memset(&j->p[k], 0, sizeof j->p[k]);
        snprintf(j->p[k].name, sizeof j->p[k].name, "%s", name);
        j->np++;
    }
    panel *p = &j->p[k];
    if (p->nt == (int)(sizeof p->tensors / sizeof p->tensors[0])) {
        snprintf(err, cap, "layer group %.64s has too many tensors", name);
        return -1;
    }
    p->tensors[p->nt++] = t;
    p->count += ol_model_paramset(j->m)->t[t].numel;
    return 0;
}

/* Panels from the options: the whole weight set, top-level layers, or matching tensors. */
static int make_panels(hist_job *j, cli_values *v, char *err, size_t cap)
{
    const ol_paramset *ps = ol_model_paramset(j->m);
    const char *re = cli_str(v, "tensors");
    const int per_layer = cli_flag(v, "per-layer");
    regex_t rx;
    if (*re && per_layer) {
        snprintf(err, cap, "--tensors and --per-layer exclude each other");
        return -1;
    }
    if (*re && regcomp(&rx, re, REG_EXTENDED | REG_NOSUB) != 0) {
        snprintf(err, cap, "--tensors: invalid regular expression '%.200s'", re);
        return -1;
    }
    int rc = 0;
    for (int t = 0; t < ps->n && rc == 0; t++) {
        char group[OL_NAME_MAX];
        const char *name = ps->t[t].name;
        if (*re) {
            if (regexec(&rx, name, 0, NULL, 0) == 0)
                rc = add_to_panel(j, name, t, err, cap);
            continue;
        }
        if (ps->t[t].kind != OL_KIND_WEIGHT)
            continue;
        snprintf(group, sizeof group, "%s", per_layer ? name : "conv/linear weights");
        if (per_layer && strchr(group, '.'))
            *strchr(group, '.') = '\0';
        rc = add_to_panel(j, group, t, err, cap);
    }
    if (*re)
        regfree(&rx);
    if (rc == 0 && j->np == 0) {
        snprintf(err, cap, "--tensors '%.200s' matches no parameter (e.g. %.64s, %.64s)", re, ps->t[0].name,
                 ps->t[ps->n - 1].name);
        rc = -1;
    }
    return rc;
}

/* The checkpoints to draw: all, or maxck of them evenly spread (first and last included). */
static int pick_checkpoints(hist_job *j, const char *dir, char *err, size_t cap)
{
    long long *all = NULL;
    int n = 0;
    if (cli_run_list_steps(dir, INT64_MAX, &all, &n) < 0) {
        free(all);
        snprintf(err, cap, "%.1000s: cannot list the checkpoints", dir);
        return -1;
    }
    if (n == 0) {
        snprintf(err, cap, "%.1000s: no checkpoint (ckpt-<step>.safetensors)", dir);
        return -1;
    }
    const int want = j->maxck == 0 || j->maxck >= n ? n : (int)j->maxck;
    j->steps = malloc(sizeof(long long) * (size_t)want);
    if (!j->steps) {
        free(all);
        snprintf(err, cap, "out of memory");
        return -1;
    }
    for (int i = 0; i < want; i++)
        j->steps[i] = all[want == 1 ? n - 1 : (int)llround((double)i * (n - 1) / (want - 1))];
    j->nck = want;
    free(all);
    return 0;
}

/* Pass 1 (counts == NULL): each panel's range over all checkpoints; pass 2: the counts. */
static int scan(ol_ctx *ctx, hist_job *j, const char *dir, int pass, char *err, size_t cap)
{
    const ol_paramset *ps = ol_model_paramset(j->m);
    for (int c = 0; c < j->nck; c++) {
        char path[4200];
        ol_checkpoint_path(dir, (int64_t)j->steps[c], path, sizeof path);
        int s = ol_checkpoint_load(ctx, path, j->m, NULL, NULL);
        if (s < 0) {
            snprintf(err, cap, "%s", ol_ctx_errmsg(ctx));
            return cli_exit_for(s);
        }
        for (int k = 0; k < j->np; k++) {
            panel *p = &j->p[k];
            double *cnt = pass ? p->counts + (size_t)c * j->bins : NULL;
            for (int q = 0; q < p->nt; q++) {
                const float *w = ps->params + ps->t[p->tensors[q]].offset;
                for (size_t i = 0; i < ps->t[p->tensors[q]].numel; i++) {
                    const double x = w[i];
                    if (!isfinite(x)) {
                        snprintf(err, cap, "%.1000s: %.64s holds a non-finite weight", path,
                                 ps->t[p->tensors[q]].name);
                        return OL_EXIT_USAGE;
                    }
                    if (!pass) {
                        p->lo = (c == 0 && q == 0 && i == 0) || x < p->lo ? x : p->lo;
                        p->hi = (c == 0 && q == 0 && i == 0) || x > p->hi ? x : p->hi;
                        continue;
                    }
                    long long b = p->hi > p->lo ? (long long)((x - p->lo) / (p->hi - p->lo) * (double)j->bins) : 0;
                    cnt[b < j->bins ? b : j->bins - 1] += 1.0;
                }
            }
        }
    }
    return OL_EXIT_OK;
}

/* Sequential colour of checkpoint i of n (viridis anchors): early dark blue, late yellow-green. */
static void seq_color(int i, int n, char *buf, size_t cap)
{
    static const double a[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {200, 200, 30}};
    const double t = n > 1 ? 4.0 * i / (n - 1) : 4.0;
    const int k = t >= 4.0 ? 3 : (int)t;
    const double f = t - k;
    snprintf(buf, cap, "#%02x%02x%02x", (int)lround(a[k][0] + f * (a[k + 1][0] - a[k][0])),
             (int)lround(a[k][1] + f * (a[k + 1][1] - a[k][1])), (int)lround(a[k][2] + f * (a[k + 1][2] - a[k][2])));
}

/* One panel as its own SVG document (embedded by the caller). */
static int draw_panel(ol_ctx *ctx, const hist_job *j, const panel *p, int legend, int logy, int W, int H, ol__svg *s)
{
    const int B = (int)j->bins;
    const double bw = p->hi > p->lo ? (p->hi - p->lo) / B : 1.0;
    double *x = malloc(sizeof(double) * (size_t)B), *y = malloc(sizeof(double) * (size_t)B * j->nck);
    if (!x || !y) {
        free(x);
        free(y);
        ol_ctx_set_error(ctx, OL_ENOMEM, "out of memory");
        return OL_ENOMEM;
    }
    double ymax = 0.0, ymin = INFINITY;
    for (int b = 0; b < B; b++)
        x[b] = p->lo + (b + 0.5) * bw;
    for (int c = 0; c < j->nck; c++)
        for (int b = 0; b < B; b++) {
            double d = p->counts[(size_t)c * B + b] / ((double)p->count * bw);
            y[(size_t)c * B + b] = logy && d <= 0.0 ? NAN : d;
            ymax = fmax(ymax, d);
            ymin = d > 0.0 ? fmin(ymin, d) : ymin;
        }
    int rc = ol__svg_begin(ctx, s, W, H, p->lo, p->hi, logy ? ymin : 0.0, ymax * 1.05, 0, logy);
    if (rc >= 0) {
        char title[160], lbl[32][32], col[32][16];
        const char *labels[32], *colors[32];
        snprintf(title, sizeof title, "%.64s (%zu values)", p->name, p->count);
        ol__svg_axes(s, title, "weight", "density");
        for (int c = 0; c < j->nck; c++) {
            char color[16];
            seq_color(c, j->nck, color, sizeof color);
            ol__svg_polyline(s, x, y + (size_t)c * B, B, color, 1.8, 0);
            if (c < 32) {
                snprintf(lbl[c], sizeof lbl[c], "step %lld", j->steps[c]);
                snprintf(col[c], sizeof col[c], "%s", color);
                labels[c] = lbl[c], colors[c] = col[c];
            }
        }
        if (legend)
            ol__svg_legend(s, labels, colors, j->nck < 32 ? j->nck : 32);
        rc = ol__svg_end(ctx, s);
    }
    free(x);
    free(y);
    return rc;
}

/* The legend alone, in the top left of an empty cell. */
static int draw_legend_cell(ol_ctx *ctx, const hist_job *j, int W, int H, ol__svg *s)
{
    char lbl[32][32], col[32][16];
    const char *labels[32], *colors[32];
    const int n = j->nck < 32 ? j->nck : 32;
    int rc = ol__svg_begin(ctx, s, W, H, 0.0, 1.0, 0.0, 1.0, 0, 0);
    if (rc < 0)
        return rc;
    for (int c = 0; c < n; c++) {
        snprintf(lbl[c], sizeof lbl[c], "step %lld", j->steps[c]);
        seq_color(c, j->nck, col[c], sizeof col[c]);
        labels[c] = lbl[c], colors[c] = col[c];
    }
    s->mr = W - 78 - 170 - 24; /* ol__svg_legend sits 170 px left of the right margin */
    ol__svg_legend(s, labels, colors, n);
    return ol__svg_end(ctx, s);
}

/* All panels in a grid of up to three columns, each a nested <svg>. */
static int write_svg(ol_ctx *ctx, const hist_job *j, int logy, const char *path, char *err, size_t cap)
{
    const int W = 520, H = 340, cols = j->np < 3 ? j->np : 3, rows = (j->np + cols - 1) / cols;
    ol__tb doc = {0};
    ol__tb_printf(&doc,
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">\n"
                  "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
                  W * cols, H * rows, W * cols, H * rows);
    int rc = OL_OK;
    const int free_cell = j->np % cols != 0; /* the legend goes there, off the curves */
    for (int k = 0; k < j->np + free_cell && rc >= 0; k++) {
        ol__svg s;
        rc = k < j->np ? draw_panel(ctx, j, &j->p[k], k == 0 && !free_cell, logy, W, H, &s)
                       : draw_legend_cell(ctx, j, W, H, &s);
        if (rc >= 0) /* "<svg " -> "<svg x=.. y=.. " */
            ol__tb_printf(&doc, "<svg x=\"%d\" y=\"%d\" %s", W * (k % cols), H * (k / cols), s.tb.buf + 5);
        ol__svg_free(&s);
    }
    ol__tb_puts(&doc, "</svg>\n");
    if (rc >= 0 && doc.failed)
        rc = OL_ENOMEM, ol_ctx_set_error(ctx, OL_ENOMEM, "out of memory drawing the histograms");
    if (rc >= 0)
        rc = cli_write_file(ctx, path, doc.buf, doc.len, err, cap);
    else
        snprintf(err, cap, "%s", ol_ctx_errmsg(ctx)), rc = cli_exit_for(rc);
    ol__tb_free(&doc);
    return rc;
}

static int write_json(ol_ctx *ctx, const hist_job *j, const char *path, char *err, size_t cap)
{
    const ol_paramset *ps = ol_model_paramset(j->m);
    json_t *steps = json_array(), *panels = json_array();
    for (int c = 0; c < j->nck; c++)
        json_array_append_new(steps, json_integer(j->steps[c]));
    for (int k = 0; k < j->np; k++) {
        const panel *p = &j->p[k];
        json_t *names = json_array(), *counts = json_array();
        for (int q = 0; q < p->nt; q++)
            json_array_append_new(names, json_string(ps->t[p->tensors[q]].name));
        for (int c = 0; c < j->nck; c++) {
            json_t *row = json_array();
            for (long long b = 0; b < j->bins; b++)
                json_array_append_new(row, json_integer((json_int_t)p->counts[(size_t)c * j->bins + b]));
            json_array_append_new(counts, row);
        }
        json_array_append_new(panels, json_pack("{s:s,s:o,s:I,s:f,s:f,s:o}", "name", p->name, "tensors", names,
                                                "values", (json_int_t)p->count, "lo", p->lo, "hi", p->hi, "counts",
                                                counts));
    }
    json_t *o = json_pack("{s:o,s:I,s:o}", "steps", steps, "bins", (json_int_t)j->bins, "panels", panels);
    char *text = o ? json_dumps(o, JSON_REAL_PRECISION(17) | JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text) {
        snprintf(err, cap, "out of memory");
        return OL_EXIT_FAIL;
    }
    int rc = cli_write_file(ctx, path, text, strlen(text), err, cap);
    free(text);
    return rc;
}

static int histogram(ol_ctx *ctx, cli_values *v, const char *dir, hist_job *j, char *err, size_t cap)
{
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, cap, "%.1000s: no such run directory", dir);
        return OL_EXIT_USAGE;
    }
    if (pick_checkpoints(j, dir, err, cap) < 0)
        return OL_EXIT_USAGE;
    char path[4200];
    ol_model_params mp;
    ol_checkpoint_path(dir, (int64_t)j->steps[j->nck - 1], path, sizeof path);
    int s = ol_checkpoint_model_params(ctx, path, &mp);
    if (s >= 0)
        s = ol_model_create(ctx, &mp, &j->m);
    if (s < 0) {
        snprintf(err, cap, "%s", ol_ctx_errmsg(ctx));
        return cli_exit_for(s);
    }
    j->p = calloc(HIST_MAX_PANELS, sizeof(panel));
    if (!j->p) {
        snprintf(err, cap, "out of memory");
        return OL_EXIT_FAIL;
    }
    if (make_panels(j, v, err, cap) < 0)
        return OL_EXIT_USAGE;
    for (int k = 0; k < j->np; k++)
        if (!(j->p[k].counts = calloc((size_t)j->nck * (size_t)j->bins, sizeof(double)))) {
            snprintf(err, cap, "out of memory");
            return OL_EXIT_FAIL;
        }
    int rc = scan(ctx, j, dir, 0, err, cap);
    if (rc == OL_EXIT_OK)
        rc = scan(ctx, j, dir, 1, err, cap);
    if (rc == OL_EXIT_OK)
        rc = write_svg(ctx, j, cli_flag(v, "log-y"), cli_str(v, "out"), err, cap);
    if (rc == OL_EXIT_OK && *cli_str(v, "json"))
        rc = write_json(ctx, j, cli_str(v, "json"), err, cap);
    if (rc == OL_EXIT_OK)
        printf("%s: %d panel(s), %d checkpoint(s) from step %lld to %lld\n", cli_str(v, "out"), j->np, j->nck,
               j->steps[0], j->steps[j->nck - 1]);
    return rc;
}

static int hist_parse(cli_values *v, void *job, char *err, size_t cap)
{
    hist_job *j = job;
    if (cli_int(v, "bins", 2, 100000, &j->bins) || cli_int(v, "max-checkpoints", 0, 1000000, &j->maxck))
        return -1;
    if (!*cli_str(v, "out")) {
        snprintf(err, cap, "--out FILE.svg is required");
        return -1;
    }
    return 0;
}

int cmd_histogram(int argc, char **argv)
{
    const cli_opt *const tables[] = {hist_opts, NULL};
    cli_values v;
    cli_init(&v, tables);
    int rc;
    char err[1400] = "";
    hist_job j;
    memset(&j, 0, sizeof j);
    ol_ctx *ctx = NULL;
    if ((rc = cli_run_args(&v, argc, argv, hist_usage, hist_parse, &j)) >= 0)
        goto done;
    if (!(ctx = ol_ctx_new(0))) {
        rc = cli_fail(OL_EXIT_FAIL, "out of memory");
        goto done;
    }
    rc = histogram(ctx, &v, argv[2], &j, err, sizeof err);
    if (rc != OL_EXIT_OK)
        cli_fail(rc, err);
done:
    for (int k = 0; j.p && k < j.np; k++)
        free(j.p[k].counts);
    free(j.p);
    free(j.steps);
    ol_model_free(j.m);
    ol_ctx_free(ctx);
    cli_free(&v);
    return rc;
}
