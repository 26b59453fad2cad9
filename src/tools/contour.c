/* Contour plots: bands, marching-squares lines with labels, a path on top. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/contour.h"
#include "tools/svg.h"

int ol__contour_levels(const double *z, int n, int want, double *lev, int cap)
{
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < n; i++)
        if (isfinite(z[i])) {
            lo = fmin(lo, z[i]);
            hi = fmax(hi, z[i]);
        }
    if (!(hi > lo))
        return 0;
    want = want > 0 ? want : 10;
    int k = 0;
    if (lo > 0 && hi / lo > 20) { /* 1-2-5 per decade (1-10 when that is too many) */
        static const double m125[3] = {1, 2, 5};
        const int sparse = log10(hi / lo) * 3 > 1.6 * want;
        for (int e = (int)floor(log10(lo)); e <= (int)ceil(log10(hi)); e++)
            for (int j = 0; j < (sparse ? 1 : 3); j++) {
                double v = m125[j] * pow(10.0, e);
                if (v > lo && v < hi && k < cap)
                    lev[k++] = v;
            }
        return k;
    }
    double raw = (hi - lo) / want, mag = pow(10.0, floor(log10(raw))), r = raw / mag;
    double step = (r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10) * mag;
    for (double v = ceil(lo / step) * step; v < hi && k < cap; v += step)
        if (v > lo)
            lev[k++] = fabs(v) < step * 1e-9 ? 0.0 : v;
    return k;
}

/* Where level crosses the edge from value a at t = 0 to b at t = 1. */
static double cross(double a, double b, double level) { return (level - a) / (b - a); }

/* Marching squares. Segment s joins edges ids[2s], ids[2s+1] (edge ids: the
 * horizontal edge right of node (i, j) is j*(nx-1)+i, the vertical one above
 * it ny*(nx-1) + j*nx+i), so segments sharing an edge chain exactly. */
static int march(const double *x, const double *y, int nx, int ny, const double *z, double level, double *seg,
                 int *ids, int cap)
{
    const int H = ny * (nx - 1);
    int ns = 0;
    for (int j = 0; j + 1 < ny; j++)
        for (int i = 0; i + 1 < nx; i++) {
            /* corners counter-clockwise from bottom-left; edges 0 bottom, 1 right, 2 top, 3 left */
            const double v[4] = {z[j * nx + i], z[j * nx + i + 1], z[(j + 1) * nx + i + 1], z[(j + 1) * nx + i]};
            if (!isfinite(v[0]) || !isfinite(v[1]) || !isfinite(v[2]) || !isfinite(v[3]))
                continue;
            int c = 0;
            for (int q = 0; q < 4; q++)
                c |= (v[q] >= level) << q;
            if (c == 0 || c == 15)
                continue;
            double ex[4], ey[4];
            int eid[4];
            ex[0] = x[i] + cross(v[0], v[1], level) * (x[i + 1] - x[i]), ey[0] = y[j], eid[0] = j * (nx - 1) + i;
            ex[1] = x[i + 1], ey[1] = y[j] + cross(v[1], v[2], level) * (y[j + 1] - y[j]), eid[1] = H + j * nx + i + 1;
            ex[2] = x[i] + cross(v[3], v[2], level) * (x[i + 1] - x[i]), ey[2] = y[j + 1];
            eid[2] = (j + 1) * (nx - 1) + i;
            ex[3] = x[i], ey[3] = y[j] + cross(v[0], v[3], level) * (y[j + 1] - y[j]), eid[3] = H + j * nx + i;
            int pairs[4], np = 0; /* edges crossed, paired into segments */
            const int crossed[4] = {(c & 1) != ((c >> 1) & 1), ((c >> 1) & 1) != ((c >> 2) & 1),
                                    ((c >> 2) & 1) != ((c >> 3) & 1), ((c >> 3) & 1) != (c & 1)};
            if (c == 5 || c == 10) { /* saddle: the centre value decides which corners connect */
                const int centre_high = (v[0] + v[1] + v[2] + v[3]) / 4 >= level;
                const int join_around_0 = (c == 5) != centre_high; /* corner 0 cut off on its own */
                if (join_around_0) {
                    pairs[0] = 3, pairs[1] = 0, pairs[2] = 1, pairs[3] = 2;
                } else {
                    pairs[0] = 0, pairs[1] = 1, pairs[2] = 2, pairs[3] = 3;
                }
                np = 4;
            } else
                for (int e = 0; e < 4; e++)
                    if (crossed[e])
                        pairs[np++] = e;
            for (int p = 0; p + 1 < np; p += 2, ns++) {
                if (ns >= cap)
                    continue;
                const int a = pairs[p], b = pairs[p + 1];
                seg[4 * ns] = ex[a], seg[4 * ns + 1] = ey[a], seg[4 * ns + 2] = ex[b], seg[4 * ns + 3] = ey[b];
                if (ids)
                    ids[2 * ns] = eid[a], ids[2 * ns + 1] = eid[b];
            }
        }
    return ns;
}

int ol__contour_segments(const double *x, const double *y, int nx, int ny, const double *z, double level,
                         double *seg, int cap)
{
    return march(x, y, nx, ny, z, level, seg, NULL, cap);
}

/* Bilinear value at fractional grid indices (u, v); NaN next to a non-finite value. */
static double bilerp(const ol__contour *c, double u, double v)
{
    int i = (int)floor(u), j = (int)floor(v);
    i = i < 0 ? 0 : i > c->nx - 2 ? c->nx - 2 : i;
    j = j < 0 ? 0 : j > c->ny - 2 ? c->ny - 2 : j;
    const double s = u - i, t = v - j, *z = c->z;
    const int n = c->nx;
    return (1 - t) * ((1 - s) * z[j * n + i] + s * z[j * n + i + 1]) +
           t * ((1 - s) * z[(j + 1) * n + i] + s * z[(j + 1) * n + i + 1]);
}

static double coord(const double *x, int n, double u)
{
    int i = (int)floor(u);
    i = i < 0 ? 0 : i > n - 2 ? n - 2 : i;
    return x[i] + (u - i) * (x[i + 1] - x[i]);
}

/* viridis at u in [0, 1] (low values dark) */
static void band_color(double u, char *buf, size_t cap)
{
    static const double a[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
    u = u < 0 ? 0 : (u > 1 ? 1 : u);
    double s = u * 4.0;
    int i = s >= 4.0 ? 3 : (int)s;
    double w = s - i;
    snprintf(buf, cap, "#%02x%02x%02x", (int)lround(a[i][0] * (1 - w) + a[i + 1][0] * w),
             (int)lround(a[i][1] * (1 - w) + a[i + 1][1] * w), (int)lround(a[i][2] * (1 - w) + a[i + 1][2] * w));
}

static int band_of(double v, const double *lev, int nl)
{
    int b = 0;
    while (b < nl && v >= lev[b])
        b++;
    return b;
}

#define CELLS 200

static void draw_bands(ol__svg *s, const ol__contour *c, const double *lev, int nl)
{
    for (int J = 0; J < CELLS; J++) {
        const double v = (J + 0.5) * (c->ny - 1) / CELLS;
        int I = 0;
        while (I < CELLS) {
            double val = bilerp(c, (I + 0.5) * (c->nx - 1) / CELLS, v);
            int band = isfinite(val) ? band_of(val, lev, nl) : -1, E = I + 1;
            while (E < CELLS) {
                double w = bilerp(c, (E + 0.5) * (c->nx - 1) / CELLS, v);
                if ((isfinite(w) ? band_of(w, lev, nl) : -1) != band)
                    break;
                E++;
            }
            char col[16];
            if (band >= 0)
                band_color((band + 0.5) / (nl + 1), col, sizeof col);
            else
                snprintf(col, sizeof col, "#ffffff");
            const double fx = (double)(c->nx - 1) / CELLS, fy = (double)(c->ny - 1) / CELLS;
            ol__svg_cell(s, coord(c->x, c->nx, I * fx), coord(c->y, c->ny, J * fy), coord(c->x, c->nx, E * fx),
                         coord(c->y, c->ny, (J + 1) * fy), col);
            I = E;
        }
    }
}

typedef struct {
    int fx, fy;            /* refined grid */
    double *gx, *gy, *gz;  /* its coordinates and values */
    double *seg;           /* segments of one level */
    int *ids, *adj, *used; /* edge ids per segment end, up to two segments per edge, walked flags */
    double *px, *py;       /* one chain */
    int cap;
} lines_ws;

/* Walk the chain through segment s0 (from its free end when it has one). */
static int chain(lines_ws *w, int s0, int ns)
{
    int s = s0, end = 0, n = 0;
    for (int guard = 0; guard < ns; guard++) { /* back up to an end of the chain */
        int e = w->ids[2 * s + end], o = w->adj[2 * e] == s ? w->adj[2 * e + 1] : w->adj[2 * e];
        if (o < 0 || o == s0)
            break;
        end = w->ids[2 * o] == e ? 1 : 0;
        s = o;
    }
    s0 = s;
    for (;;) {
        w->used[s] = 1;
        if (n == 0) {
            w->px[n] = w->seg[4 * s + 2 * end], w->py[n++] = w->seg[4 * s + 2 * end + 1];
        }
        const int out = 1 - end;
        w->px[n] = w->seg[4 * s + 2 * out], w->py[n++] = w->seg[4 * s + 2 * out + 1];
        int e = w->ids[2 * s + out], o = w->adj[2 * e] == s ? w->adj[2 * e + 1] : w->adj[2 * e];
        if (o < 0 || w->used[o] || n >= 2 * ns + 1)
            break;
        end = w->ids[2 * o] == e ? 0 : 1;
        s = o;
    }
    return n;
}

static void level_label(double v, char *buf, size_t cap)
{
    if (v != 0 && (fabs(v) >= 1e4 || fabs(v) < 1e-3))
        snprintf(buf, cap, "%.1e", v);
    else
        snprintf(buf, cap, "%.4g", v);
}

static void draw_lines(ol__svg *s, lines_ws *w, const double *lev, int nl)
{
    const int nedges = w->fy * (w->fx - 1) + w->fx * (w->fy - 1);
    for (int l = 0; l < nl; l++) {
        int ns = march(w->gx, w->gy, w->fx, w->fy, w->gz, lev[l], w->seg, w->ids, w->cap);
        ns = ns < w->cap ? ns : w->cap;
        for (int e = 0; e < 2 * nedges; e++)
            w->adj[e] = -1;
        for (int k = 0; k < 2 * ns; k++) {
            int e = w->ids[k];
            w->adj[2 * e + (w->adj[2 * e] >= 0)] = k / 2;
        }
        memset(w->used, 0, (size_t)ns * sizeof(int));
        double best_len = 0, lx = 0, ly = 0;
        for (int k = 0; k < ns; k++) {
            if (w->used[k])
                continue;
            int n = chain(w, k, ns);
            ol__svg_polyline(s, w->px, w->py, n, "#222222", 0.8, 0);
            double len = 0; /* label the longest chain, at its middle, in pixels */
            for (int q = 1; q < n; q++)
                len += hypot(ol__svg_px(s, w->px[q]) - ol__svg_px(s, w->px[q - 1]),
                             ol__svg_py(s, w->py[q]) - ol__svg_py(s, w->py[q - 1]));
            if (len > best_len) {
                best_len = len;
                lx = ol__svg_px(s, w->px[n / 2]);
                ly = ol__svg_py(s, w->py[n / 2]);
            }
        }
        if (best_len > 40) {
            char t[32];
            level_label(lev[l], t, sizeof t);
            ol__svg_label(s, lx, ly, 10, "#111", t);
        }
    }
}

static int lines_ws_init(lines_ws *w, const ol__contour *c)
{
    memset(w, 0, sizeof *w);
    int f = (int)ceil(100.0 / (c->nx - 1 > c->ny - 1 ? c->nx - 1 : c->ny - 1));
    f = f < 1 ? 1 : f;
    w->fx = (c->nx - 1) * f + 1;
    w->fy = (c->ny - 1) * f + 1;
    const size_t nodes = (size_t)w->fx * w->fy, nedges = (size_t)w->fy * (w->fx - 1) + (size_t)w->fx * (w->fy - 1);
    w->cap = (int)(2 * nodes);
    w->gx = malloc(sizeof(double) * (size_t)w->fx);
    w->gy = malloc(sizeof(double) * (size_t)w->fy);
    w->gz = malloc(sizeof(double) * nodes);
    w->seg = malloc(sizeof(double) * 4 * (size_t)w->cap);
    w->ids = malloc(sizeof(int) * 2 * (size_t)w->cap);
    w->adj = malloc(sizeof(int) * 2 * nedges);
    w->used = malloc(sizeof(int) * (size_t)w->cap);
    w->px = malloc(sizeof(double) * (2 * (size_t)w->cap + 2));
    w->py = malloc(sizeof(double) * (2 * (size_t)w->cap + 2));
    if (!w->gx || !w->gy || !w->gz || !w->seg || !w->ids || !w->adj || !w->used || !w->px || !w->py)
        return -1;
    for (int i = 0; i < w->fx; i++)
        w->gx[i] = coord(c->x, c->nx, (double)i / f);
    for (int j = 0; j < w->fy; j++)
        w->gy[j] = coord(c->y, c->ny, (double)j / f);
    for (int j = 0; j < w->fy; j++)
        for (int i = 0; i < w->fx; i++)
            w->gz[(size_t)j * w->fx + i] = bilerp(c, (double)i / f, (double)j / f);
    return 0;
}

static void lines_ws_free(lines_ws *w)
{
    free(w->gx);
    free(w->gy);
    free(w->gz);
    free(w->seg);
    free(w->ids);
    free(w->adj);
    free(w->used);
    free(w->px);
    free(w->py);
}

int ol__contour_plot(ol_ctx *ctx, const ol__contour *c, const char *path)
{
    if (c->nx < 2 || c->ny < 2)
        return ol__err(ctx, OL_EINVAL, "contour plot: the grid needs at least 2x2 points, got %dx%d", c->nx, c->ny);
    double lev[64];
    const int nl = ol__contour_levels(c->z, c->nx * c->ny, c->nlevels, lev, 64);
    ol__svg s;
    OL__TRY(ol__svg_begin(ctx, &s, 720, 640, c->x[0], c->x[c->nx - 1], c->y[0], c->y[c->ny - 1], 0, 0));
    lines_ws w;
    if (lines_ws_init(&w, c) < 0) {
        lines_ws_free(&w);
        ol__svg_free(&s);
        return ol__err(ctx, OL_ENOMEM, "out of memory for the contour plot");
    }
    draw_bands(&s, c, lev, nl);
    draw_lines(&s, &w, lev, nl);
    lines_ws_free(&w);
    ol__svg_axes(&s, c->title, c->xlabel, c->ylabel);
    if (c->px && c->pn > 0) {
        ol__svg_polyline(&s, c->px, c->py, c->pn, "#d62728", 2.0, 0);
        for (int i = 0; i < c->pn; i++)
            ol__svg_marker(&s, c->px[i], c->py[i], i == c->pn - 1 ? 5.0 : 3.0, "#d62728");
    }
    if (c->mark)
        ol__svg_marker(&s, c->mx, c->my, 4.5, "#ffffff");
    int rc = ol__svg_save(ctx, &s, path);
    ol__svg_free(&s);
    return rc;
}
