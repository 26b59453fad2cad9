/* Optimizer trajectories on 2-D test functions, and their contour plots. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/svg.h"
#include "tools/trajectory.h"

static const char *const fn_names[OL__FN_COUNT] = {"rosenbrock", "beale", "himmelblau", "saddle", "quadratic"};

const char *ol__testfn_name(ol__testfn f) { return (f >= 0 && f < OL__FN_COUNT) ? fn_names[f] : "?"; }

int ol__testfn_from_name(const char *name, ol__testfn *out)
{
    for (int i = 0; i < OL__FN_COUNT; i++)
        if (strcmp(name, fn_names[i]) == 0) {
            *out = (ol__testfn)i;
            return OL_OK;
        }
    return OL_ENAME;
}

double ol__testfn_eval(ol__testfn f, double cond, double x, double y, double *gx, double *gy)
{
    switch (f) {
    case OL__FN_ROSENBROCK: {
        double r = y - x * x;
        *gx = -2.0 * (1.0 - x) - 400.0 * x * r;
        *gy = 200.0 * r;
        return (1.0 - x) * (1.0 - x) + 100.0 * r * r;
    }
    case OL__FN_BEALE: {
        double y2 = y * y, y3 = y2 * y;
        double a = 1.5 - x + x * y, b = 2.25 - x + x * y2, c = 2.625 - x + x * y3;
        *gx = 2.0 * a * (y - 1.0) + 2.0 * b * (y2 - 1.0) + 2.0 * c * (y3 - 1.0);
        *gy = 2.0 * a * x + 4.0 * b * x * y + 6.0 * c * x * y2;
        return a * a + b * b + c * c;
    }
    case OL__FN_HIMMELBLAU: {
        double a = x * x + y - 11.0, b = x + y * y - 7.0;
        *gx = 4.0 * x * a + 2.0 * b;
        *gy = 2.0 * a + 4.0 * y * b;
        return a * a + b * b;
    }
    case OL__FN_SADDLE:
        *gx = 2.0 * x;
        *gy = -2.0 * y;
        return x * x - y * y;
    case OL__FN_QUADRATIC:
    default:
        *gx = x;
        *gy = cond * y;
        return 0.5 * (x * x + cond * y * y);
    }
}

void ol__testfn_defaults(ol__testfn f, double box[4], double start[2])
{
    static const double boxes[OL__FN_COUNT][4] = {
        {-2.0, 2.0, -1.0, 3.0}, {-4.5, 4.5, -4.5, 4.5}, {-5.0, 5.0, -5.0, 5.0}, {-2.0, 2.0, -2.0, 2.0},
        {-5.0, 5.0, -2.5, 2.5}};
    static const double starts[OL__FN_COUNT][2] = {{-1.2, 1.0}, {1.0, 1.5}, {0.0, 0.0}, {-1.5, 0.01}, {-4.0, 1.0}};
    const int i = (f >= 0 && f < OL__FN_COUNT) ? f : 0;
    memcpy(box, boxes[i], sizeof boxes[i]);
    memcpy(start, starts[i], sizeof starts[i]);
}

void ol__traj_free(ol__traj *t)
{
    free(t->x);
    free(t->y);
    free(t->f);
    free(t->lr);
    memset(t, 0, sizeof *t);
}

int ol__traj_run(ol_ctx *ctx, ol__testfn fn, double cond, const ol_optim_params *op, const ol_sched_params *sp,
                 const double start[2], int64_t steps, ol__traj *out)
{
    memset(out, 0, sizeof *out);
    if (steps < 0 || steps > 100000000)
        return ol__err(ctx, OL_ERANGE, "trajectory steps must be in [0, 1e8], got %lld", (long long)steps);
    if (fn == OL__FN_QUADRATIC && !(cond >= 1.0 && isfinite(cond)))
        return ol__err(ctx, OL_ERANGE, "condition number must be >= 1, got %g", cond);
    ol_paramset ps;
    memset(&ps, 0, sizeof ps);
    const int64_t two = 2;
    ol_optim *o = NULL;
    int rc = ol_paramset_add(ctx, &ps, "xy", OL_KIND_WEIGHT, 1, &two);
    if (rc >= 0)
        rc = ol_paramset_finalize(ctx, &ps);
    if (rc >= 0)
        rc = ol_optim_create(ctx, op, &ps, &o);
    const size_t n = (size_t)steps + 1;
    out->x = malloc(n * sizeof(double));
    out->y = malloc(n * sizeof(double));
    out->f = malloc(n * sizeof(double));
    out->lr = malloc(n * sizeof(double));
    if (rc >= 0 && !(out->x && out->y && out->f && out->lr))
        rc = ol__err(ctx, OL_ENOMEM, "out of memory for %lld trajectory points", (long long)n);
    if (rc >= 0) {
        float *p = ps.params + ps.t[0].offset, *g = ps.grads + ps.t[0].offset;
        p[0] = (float)start[0];
        p[1] = (float)start[1];
        for (int64_t t = 0; t <= steps; t++) {
            double gx, gy, x = p[0], y = p[1];
            double f = ol__testfn_eval(fn, cond, x, y, &gx, &gy);
            double lr = sp ? ol_sched_lr(sp, t) : op->lr;
            out->x[t] = x;
            out->y[t] = y;
            out->f[t] = f;
            out->lr[t] = lr;
            out->n = t + 1;
            if (!isfinite(f) || !isfinite(gx) || !isfinite(gy) || fabs(x) > 1e8 || fabs(y) > 1e8) {
                out->diverged = 1;
                break;
            }
            if (t == steps)
                break;
            g[0] = (float)gx;
            g[1] = (float)gy;
            ol_optim_hyper h = {.lr = lr, .momentum = sp ? ol_sched_momentum(sp, t) : -1.0};
            rc = ol_optim_step(ctx, o, &ps, &h);
            if (rc < 0)
                break;
        }
    }
    ol_optim_free(o);
    ol_paramset_free(&ps);
    if (rc < 0)
        ol__traj_free(out);
    return rc < 0 ? rc : OL_OK;
}

/* A light-to-dark blue-green scale for the contour bands (low values light). */
static void band_color(double u, char *buf, size_t cap)
{
    static const double anchors[5][3] = {
        {255, 255, 229}, {199, 233, 180}, {127, 205, 187}, {65, 182, 196}, {34, 94, 168}};
    u = u < 0 ? 0 : (u > 1 ? 1 : u);
    double s = u * 4.0;
    int i = s >= 4.0 ? 3 : (int)s;
    double w = s - i;
    int c[3];
    for (int k = 0; k < 3; k++)
        c[k] = (int)lround(anchors[i][k] * (1 - w) + anchors[i + 1][k] * w);
    snprintf(buf, cap, "#%02x%02x%02x", c[0], c[1], c[2]);
}

/* warm and dark colours that stand out on the blue-green bands */
static const char *const path_colors[10] = {"#d62728", "#ff7f0e", "#7b2cbf", "#111111", "#e377c2",
                                            "#8c564b", "#bcbd22", "#f4a261", "#1f77b4", "#9d0208"};

#define GRID_W 200
#define GRID_H 160
#define BANDS 14

int ol__traj_plot(ol_ctx *ctx, ol__testfn fn, double cond, const double box[4], const ol__traj *runs,
                  const char *const *labels, int n, const char *title, const char *path)
{
    if (!(box[1] > box[0] && box[3] > box[2]))
        return ol__err(ctx, OL_EINVAL, "plot box is empty");
    ol__svg s;
    OL__TRY(ol__svg_begin(ctx, &s, 760, 620, box[0], box[1], box[2], box[3], 0, 0));
    double *val = malloc(sizeof(double) * GRID_W * GRID_H);
    double *px = NULL, *py = NULL;
    int64_t maxn = 1;
    for (int r = 0; r < n; r++)
        maxn = runs[r].n > maxn ? runs[r].n : maxn;
    px = malloc((size_t)maxn * sizeof(double));
    py = malloc((size_t)maxn * sizeof(double));
    if (!val || !px || !py) {
        free(val);
        free(px);
        free(py);
        ol__svg_free(&s);
        return ol__err(ctx, OL_ENOMEM, "out of memory for the plot");
    }
    /* band levels: log scale above the grid minimum for functions bounded
     * below (they span orders of magnitude), linear for the saddle */
    const int logscale = fn != OL__FN_SADDLE;
    const double dx = (box[1] - box[0]) / GRID_W, dy = (box[3] - box[2]) / GRID_H;
    double lo = INFINITY, hi = -INFINITY;
    for (int j = 0; j < GRID_H; j++)
        for (int i = 0; i < GRID_W; i++) {
            double gx, gy;
            double f = ol__testfn_eval(fn, cond, box[0] + (i + 0.5) * dx, box[2] + (j + 0.5) * dy, &gx, &gy);
            val[j * GRID_W + i] = f;
            lo = fmin(lo, f);
            hi = fmax(hi, f);
        }
    const double floor_ = logscale ? (hi - lo) * 1e-4 + 1e-12 : 0.0;
    for (int k = 0; k < GRID_W * GRID_H; k++)
        val[k] = logscale ? log10(val[k] - lo + floor_) : val[k];
    const double vlo = logscale ? log10(floor_) : lo, vhi = logscale ? log10(hi - lo + floor_) : hi;
    for (int j = 0; j < GRID_H; j++) { /* one rectangle per run of equal band */
        int i = 0;
        while (i < GRID_W) {
            int band = (int)floor((val[j * GRID_W + i] - vlo) / (vhi - vlo + 1e-300) * BANDS);
            band = band < 0 ? 0 : (band >= BANDS ? BANDS - 1 : band);
            int e = i + 1;
            while (e < GRID_W) {
                int b2 = (int)floor((val[j * GRID_W + e] - vlo) / (vhi - vlo + 1e-300) * BANDS);
                b2 = b2 < 0 ? 0 : (b2 >= BANDS ? BANDS - 1 : b2);
                if (b2 != band)
                    break;
                e++;
            }
            char col[16];
            band_color((band + 0.5) / BANDS, col, sizeof col);
            ol__svg_cell(&s, box[0] + i * dx, box[2] + j * dy, box[0] + e * dx, box[2] + (j + 1) * dy, col);
            i = e;
        }
    }
    ol__svg_axes(&s, title, "x", "y");
    /* the minima (the saddle's critical point) as small dark dots */
    static const double minima[][2] = {{1, 1}, {3, 0.5}, {3, 2}, {-2.805118, 3.131312}, {-3.779310, -3.283186},
                                       {3.584428, -1.848126}, {0, 0}};
    const int m0 = fn == OL__FN_ROSENBROCK ? 0 : fn == OL__FN_BEALE ? 1 : fn == OL__FN_HIMMELBLAU ? 2 : 6;
    const int m1 = fn == OL__FN_HIMMELBLAU ? 6 : m0 + 1;
    for (int m = m0; m < m1; m++)
        ol__svg_marker(&s, minima[m][0], minima[m][1], 3.0, "#333333");
    const char *colors[16];
    for (int r = 0; r < n && r < 16; r++) {
        /* points outside the box break the line instead of running off the canvas */
        for (int64_t t = 0; t < runs[r].n; t++) {
            int in = runs[r].x[t] >= box[0] && runs[r].x[t] <= box[1] && runs[r].y[t] >= box[2] &&
                     runs[r].y[t] <= box[3];
            px[t] = in ? runs[r].x[t] : NAN;
            py[t] = in ? runs[r].y[t] : NAN;
        }
        colors[r] = path_colors[r % 10];
        ol__svg_polyline(&s, px, py, (int)runs[r].n, colors[r], 2.0, 0);
        if (runs[r].n > 0 && isfinite(px[runs[r].n - 1]))
            ol__svg_marker(&s, px[runs[r].n - 1], py[runs[r].n - 1], 4.0, colors[r]);
    }
    if (n > 0 && runs[0].n > 0 && isfinite(runs[0].x[0]) && runs[0].x[0] >= box[0] && runs[0].x[0] <= box[1] &&
        runs[0].y[0] >= box[2] && runs[0].y[0] <= box[3])
        ol__svg_marker(&s, runs[0].x[0], runs[0].y[0], 5.0, "#111");
    ol__svg_legend(&s, labels, colors, n < 16 ? n : 16);
    free(val);
    free(px);
    free(py);
    int rc = ol__svg_save(ctx, &s, path);
    ol__svg_free(&s);
    return rc;
}
