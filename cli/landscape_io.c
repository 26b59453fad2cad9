/* optimlab landscape: grid files and plots. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "landscape_io.h"
#include "tools/contour.h"
#include "tools/svg.h"

static const char *const val_names[4] = {"loss", "acc", "loss", "acc"};

int ls_grid_alloc(ls_grid *g, int nx, int ny)
{
    g->nx = nx;
    g->ny = ny;
    const size_t n = (size_t)nx * ny;
    g->x = calloc((size_t)nx, sizeof(double));
    g->y = calloc((size_t)ny, sizeof(double));
    g->val = calloc(4 * n, sizeof(double));
    g->done = calloc(n, 1);
    return g->x && g->y && g->val && g->done ? 0 : -1;
}

void ls_grid_free(ls_grid *g)
{
    free(g->x);
    free(g->y);
    free(g->val);
    free(g->done);
    free(g->tx);
    free(g->ty);
    free(g->tstep);
    g->x = g->y = g->val = g->tx = g->ty = NULL;
    g->done = NULL;
    g->tstep = NULL;
}

int64_t ls_grid_done(const ls_grid *g)
{
    int64_t k = 0;
    for (int64_t p = 0; p < (int64_t)g->nx * g->ny; p++)
        k += g->done[p];
    return k;
}

/* Finite values as numbers (17 digits: read back bitwise), others as "nan", "inf", "-inf". */
static json_t *jnum(double v)
{
    if (isfinite(v))
        return json_real(v);
    return json_string(isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
}

static int jget(json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 0;
    }
    const char *s = json_string_value(v);
    if (!s)
        return -1;
    *out = strcmp(s, "nan") == 0 ? NAN : strcmp(s, "inf") == 0 ? INFINITY : strcmp(s, "-inf") == 0 ? -INFINITY : 0;
    return strcmp(s, "nan") == 0 || strcmp(s, "inf") == 0 || strcmp(s, "-inf") == 0 ? 0 : -1;
}

static json_t *jarray(const double *v, int n, int stride)
{
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++)
        json_array_append_new(a, jnum(v[(size_t)i * stride]));
    return a;
}

int ls_save(const char *path, const ls_grid *g, int complete, char *err, size_t cap)
{
    const int n = g->nx * g->ny;
    json_t *o = json_object(), *done = json_array();
    json_object_set_new(o, "format", json_string("optimlab-landscape-1"));
    json_object_set_new(o, "settings", json_string(g->settings));
    json_object_set_new(o, "complete", json_boolean(complete));
    json_object_set_new(o, "dims", json_integer(g->dims));
    json_object_set_new(o, "nx", json_integer(g->nx));
    json_object_set_new(o, "ny", json_integer(g->ny));
    json_object_set_new(o, "x", jarray(g->x, g->nx, 1));
    if (g->dims == 2)
        json_object_set_new(o, "y", jarray(g->y, g->ny, 1));
    for (int p = 0; p < n; p++)
        json_array_append_new(done, json_integer(g->done[p]));
    json_object_set_new(o, "done", done);
    for (int s = 0; s < 2; s++) /* the values of points not done are 0 */
        for (int k = 0; g->set[s] && k < 2; k++) {
            char key[64];
            snprintf(key, sizeof key, "%s_%s", g->set[s], val_names[2 * s + k]);
            json_object_set_new(o, key, jarray(g->val + 2 * s + k, n, 4));
        }
    if (g->ntraj > 0) {
        json_t *t = json_object(), *steps = json_array();
        for (int i = 0; i < g->ntraj; i++)
            json_array_append_new(steps, json_integer(g->tstep[i]));
        json_object_set_new(t, "steps", steps);
        json_object_set_new(t, "x", jarray(g->tx, g->ntraj, 1));
        json_object_set_new(t, "y", jarray(g->ty, g->ntraj, 1));
        json_object_set_new(t, "explained_variance_ratio", jarray(g->ratio, 2, 1));
        json_object_set_new(o, "trajectory", t);
    }
    cli_memfile m;
    FILE *f = cli_memfile_open(&m);
    const int dumped = f && json_dumpf(o, f, JSON_REAL_PRECISION(17) | JSON_COMPACT) == 0;
    json_decref(o);
    if (!dumped) {
        cli_memfile_discard(&m);
        snprintf(err, cap, "out of memory composing %.900s", path);
        return -1;
    }
    return cli_memfile_save(&m, path, err, cap);
}

int ls_load(const char *path, ls_grid *g, int *found, char *err, size_t cap)
{
    *found = 0;
    if (access(path, F_OK) != 0)
        return 0;
    json_error_t je;
    json_t *o = json_load_file(path, 0, &je);
    const char *st = json_string_value(json_object_get(o, "settings"));
    if (!st) {
        json_decref(o);
        snprintf(err, cap, "%.900s: not a landscape file (--overwrite replaces it)", path);
        return -1;
    }
    if (strcmp(st, g->settings) != 0) {
        json_decref(o);
        snprintf(err, cap, "%.900s holds a landscape with other settings: the same command resumes it, "
                           "--overwrite replaces it",
                 path);
        return -1;
    }
    const int n = g->nx * g->ny;
    json_t *done = json_object_get(o, "done");
    int bad = (int)json_array_size(done) != n;
    json_t *arr[4] = {NULL, NULL, NULL, NULL};
    for (int s = 0; s < 2; s++)
        for (int k = 0; g->set[s] && k < 2; k++) {
            char key[64];
            snprintf(key, sizeof key, "%s_%s", g->set[s], val_names[2 * s + k]);
            arr[2 * s + k] = json_object_get(o, key);
            bad |= (int)json_array_size(arr[2 * s + k]) != n;
        }
    for (int p = 0; !bad && p < n; p++) {
        g->done[p] = json_integer_value(json_array_get(done, p)) == 1;
        for (int k = 0; k < 4; k++) {
            g->val[4 * p + k] = NAN;
            if (arr[k] && g->done[p])
                bad |= jget(json_array_get(arr[k], p), &g->val[4 * p + k]) < 0;
        }
    }
    json_decref(o);
    if (bad) {
        memset(g->done, 0, (size_t)n);
        snprintf(err, cap, "%.900s: damaged landscape file (--overwrite replaces it)", path);
        return -1;
    }
    *found = 1;
    return 0;
}

static int write_csv(const char *path, const ls_grid *g, char *err, size_t cap)
{
    cli_memfile m;
    FILE *f = cli_memfile_open(&m);
    if (!f)
        return cli_memfile_save(&m, path, err, cap);
    fprintf(f, g->dims == 2 ? "x,y" : "x");
    for (int s = 0; s < 2; s++)
        if (g->set[s])
            fprintf(f, ",%s_loss,%s_acc", g->set[s], g->set[s]);
    fprintf(f, "\n");
    for (int j = 0; j < g->ny; j++)
        for (int i = 0; i < g->nx; i++) {
            const double *v = g->val + 4 * ((size_t)j * g->nx + i);
            if (g->dims == 2)
                fprintf(f, "%.10g,%.10g", g->x[i], g->y[j]);
            else
                fprintf(f, "%.10g", g->x[i]);
            for (int s = 0; s < 2; s++)
                if (g->set[s])
                    fprintf(f, ",%.10g,%.10g", v[2 * s], v[2 * s + 1]);
            fprintf(f, "\n");
        }
    return cli_memfile_save(&m, path, err, cap);
}

/* VTK legacy structured grid: height = loss of the first set (non-finite
 * values at the largest finite one), every loss and accuracy as point data. */
static int write_vtk(const char *path, const ls_grid *g, char *err, size_t cap)
{
    const int n = g->nx * g->ny, s0 = g->set[0] ? 0 : 1;
    double top = 0;
    for (int p = 0; p < n; p++)
        if (isfinite(g->val[4 * p + 2 * s0]))
            top = fmax(top, g->val[4 * p + 2 * s0]);
    cli_memfile m;
    FILE *f = cli_memfile_open(&m);
    if (!f)
        return cli_memfile_save(&m, path, err, cap);
    fprintf(f, "# vtk DataFile Version 3.0\noptimlab loss landscape: %s loss\nASCII\nDATASET STRUCTURED_GRID\n"
               "DIMENSIONS %d %d 1\nPOINTS %d double\n",
            g->set[s0], g->nx, g->ny, n);
    for (int j = 0; j < g->ny; j++)
        for (int i = 0; i < g->nx; i++) {
            double z = g->val[4 * ((size_t)j * g->nx + i) + 2 * s0];
            fprintf(f, "%.9g %.9g %.9g\n", g->x[i], g->y[j], isfinite(z) ? z : top);
        }
    fprintf(f, "POINT_DATA %d\n", n);
    for (int k = 0; k < 4; k++) {
        if (!g->set[k / 2])
            continue;
        fprintf(f, "SCALARS %s_%s double 1\nLOOKUP_TABLE default\n", g->set[k / 2], val_names[k]);
        for (int p = 0; p < n; p++)
            fprintf(f, "%.9g\n", isfinite(g->val[4 * p + k]) ? g->val[4 * p + k] : top);
    }
    return cli_memfile_save(&m, path, err, cap);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* 1-D: loss (or accuracy, k = 1) of each set along the line. Far from the
 * minimum the loss grows by orders of magnitude: the axis stops at 5x the
 * median loss (values above drawn at the top), as the reference's loss_max. */
static int plot_line(ol_ctx *ctx, const char *path, const ls_grid *g, int k)
{
    double *y = malloc(sizeof(double) * 4 * (size_t)g->nx), *sorted = y + 2 * g->nx, lo = INFINITY, hi = -INFINITY;
    int nf = 0;
    if (!y)
        return ol__err(ctx, OL_ENOMEM, "out of memory");
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < g->nx; i++) {
            double v = g->set[s] ? g->val[4 * i + 2 * s + k] * (k ? 100.0 : 1.0) : NAN;
            y[s * g->nx + i] = v;
            if (isfinite(v)) {
                lo = fmin(lo, v);
                hi = fmax(hi, v);
                sorted[nf++] = v;
            }
        }
    qsort(sorted, (size_t)nf, sizeof(double), cmp_double);
    const double cap = nf > 0 && !k ? 5.0 * sorted[nf / 2] : INFINITY;
    const int clipped = hi > cap && cap > lo;
    if (clipped) {
        hi = cap;
        for (int i = 0; i < 2 * g->nx; i++)
            y[i] = fmin(y[i], cap);
    }
    ol__svg s;
    int rc = isfinite(lo) ? ol__svg_begin(ctx, &s, 760, 480, g->x[0], g->x[g->nx - 1], lo - (hi - lo) * 0.03,
                                          hi + (hi - lo) * 0.05, 0, 0)
                          : ol__err(ctx, OL_EINVAL, "no finite value to plot");
    if (rc < 0) {
        free(y);
        return rc;
    }
    char ylabel[64];
    snprintf(ylabel, sizeof ylabel, k ? "accuracy (%%)" : clipped ? "loss (axis cut at %.3g)" : "loss", cap);
    ol__svg_axes(&s, g->title, g->xlabel, ylabel);
    const char *labels[2], *colors[2];
    int nl = 0;
    for (int t = 0; t < 2; t++)
        if (g->set[t]) {
            ol__svg_polyline(&s, g->x, y + t * g->nx, g->nx, ol__svg_color(t), 2.0, t == 1);
            labels[nl] = g->set[t];
            colors[nl++] = ol__svg_color(t);
        }
    for (int m = 0; m < g->nmark; m++) { /* the checkpoints, labelled at the bottom (the legend is at the top) */
        ol__svg_vline(&s, g->mark[m], "#555555", NULL);
        ol__svg_text(&s, ol__svg_px(&s, g->mark[m]) + 4, s.H - s.mb - 6, "start", 12, "#555555", g->mark_label[m]);
    }
    ol__svg_legend(&s, labels, colors, nl);
    free(y);
    rc = ol__svg_save(ctx, &s, path);
    ol__svg_free(&s);
    return rc;
}

static int plot_plane(ol_ctx *ctx, const char *path, const ls_grid *g, int k)
{
    const int n = g->nx * g->ny;
    double *z = malloc(sizeof(double) * (size_t)n);
    if (!z)
        return ol__err(ctx, OL_ENOMEM, "out of memory");
    for (int p = 0; p < n; p++)
        z[p] = g->val[4 * p + k] * (k % 2 ? 100.0 : 1.0);
    char title[700];
    snprintf(title, sizeof title, "%s: %s %s", g->title, g->set[k / 2], k % 2 ? "accuracy (%)" : "loss");
    ol__contour c = {.x = g->x, .y = g->y, .nx = g->nx, .ny = g->ny, .z = z, .px = g->tx, .py = g->ty,
                     .pn = g->ntraj, .title = title, .xlabel = g->xlabel, .ylabel = g->ylabel, .nlevels = g->levels,
                     .mark = g->x[0] <= 0 && g->x[g->nx - 1] >= 0 && g->y[0] <= 0 && g->y[g->ny - 1] >= 0};
    int rc = ol__contour_plot(ctx, &c, path);
    free(z);
    return rc;
}

int ls_write_outputs(ol_ctx *ctx, const char *dir, const ls_grid *g, int vtk, char *err, size_t cap)
{
    char path[4200];
    snprintf(path, sizeof path, "%.4000s/landscape.csv", dir);
    if (write_csv(path, g, err, cap) < 0)
        return -1;
    if (vtk && g->dims == 2) {
        snprintf(path, sizeof path, "%.4000s/surface.vtk", dir);
        if (write_vtk(path, g, err, cap) < 0)
            return -1;
    }
    for (int k = 0; k < 4; k++) {
        if (g->dims == 1 && k < 2)
            snprintf(path, sizeof path, "%.4000s/%s.svg", dir, k ? "acc" : "loss");
        else if (g->dims == 2 && g->set[k / 2])
            snprintf(path, sizeof path, "%.4000s/%s_%s.svg", dir, g->set[k / 2], val_names[k]);
        else
            continue;
        int rc = g->dims == 1 ? plot_line(ctx, path, g, k) : plot_plane(ctx, path, g, k);
        if (rc < 0) {
            snprintf(err, cap, "%s", ol_ctx_errmsg(ctx));
            return -1;
        }
    }
    return 0;
}
