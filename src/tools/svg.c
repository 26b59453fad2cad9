#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "tools/svg.h"

#define put(s, ...) ol__tb_printf(&(s)->tb, __VA_ARGS__)

static void put_escaped(ol__svg *s, const char *t)
{
    for (; t && *t; t++) {
        switch (*t) {
        case '<': put(s, "&lt;"); break;
        case '>': put(s, "&gt;"); break;
        case '&': put(s, "&amp;"); break;
        case '"': put(s, "&quot;"); break;
        default: put(s, "%c", *t);
        }
    }
}

int ol__svg_begin(ol_ctx *ctx, ol__svg *s, int w, int h, double x0, double x1, double y0, double y1, int logx,
                  int logy)
{
    memset(s, 0, sizeof *s);
    if (!(isfinite(x0) && isfinite(x1) && isfinite(y0) && isfinite(y1)) || w < 100 || h < 100)
        return ol__err(ctx, OL_EINVAL, "plot: invalid range or size");
    if ((logx && !(x0 > 0 && x1 > 0)) || (logy && !(y0 > 0 && y1 > 0)))
        return ol__err(ctx, OL_EINVAL, "plot: a log axis needs positive values");
    if (x1 == x0) {
        x0 -= logx ? x0 * 0.5 : 0.5;
        x1 += logx ? x1 : 0.5;
    }
    if (y1 == y0) {
        y0 -= logy ? y0 * 0.5 : (fabs(y0) > 0 ? fabs(y0) * 0.1 : 0.5);
        y1 += logy ? y1 : (fabs(y1) > 0 ? fabs(y1) * 0.1 : 0.5);
    }
    s->W = w;
    s->H = h;
    s->ml = 78;
    s->mr = 24;
    s->mt = 40;
    s->mb = 56;
    s->x0 = x0;
    s->x1 = x1;
    s->y0 = y0;
    s->y1 = y1;
    s->logx = logx;
    s->logy = logy;
    put(s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
        "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n<rect width=\"100%%\" height=\"100%%\" "
        "fill=\"white\"/>\n",
        w, h, w, h);
    return OL_OK;
}

void ol__svg_free(ol__svg *s)
{
    ol__tb_free(&s->tb);
    memset(s, 0, sizeof *s);
}

static double tr(double v, int lg) { return lg ? log10(v) : v; }

double ol__svg_px(const ol__svg *s, double x)
{
    double a = tr(s->x0, s->logx), b = tr(s->x1, s->logx);
    return s->ml + (tr(x, s->logx) - a) / (b - a) * (s->W - s->ml - s->mr);
}

double ol__svg_py(const ol__svg *s, double y)
{
    double a = tr(s->y0, s->logy), b = tr(s->y1, s->logy);
    return s->H - s->mb - (tr(y, s->logy) - a) / (b - a) * (s->H - s->mt - s->mb);
}

static double nice_step(double range, int target)
{
    double raw = range / target, mag = pow(10.0, floor(log10(raw))), f = raw / mag;
    double nice = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    return nice * mag;
}

static void tick_label(char *buf, size_t cap, double v, double step)
{
    if (fabs(v) < step * 1e-9)
        v = 0.0;
    double a = fabs(v);
    if (a != 0.0 && (a >= 1e5 || a < 1e-3))
        snprintf(buf, cap, "%.3g", v);
    else {
        int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
        if (dec > 6)
            dec = 6;
        snprintf(buf, cap, "%.*f", dec, v);
    }
}

static void axis_ticks(ol__svg *s, int horizontal)
{
    double lo = horizontal ? s->x0 : s->y0, hi = horizontal ? s->x1 : s->y1;
    int lg = horizontal ? s->logx : s->logy;
    double vals[64];
    int nv = 0;
    if (lg) {
        int e0 = (int)floor(log10(lo)), e1 = (int)ceil(log10(hi));
        int stride = (e1 - e0) > 12 ? 2 : 1;
        for (int e = e0; e <= e1 && nv < 64; e += stride) {
            double v = pow(10.0, e);
            if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9))
                vals[nv++] = v;
        }
    } else {
        double step = nice_step(hi - lo, horizontal ? 8 : 6);
        for (double v = ceil(lo / step) * step; v <= hi + step * 1e-9 && nv < 64; v += step)
            vals[nv++] = v;
    }
    double step = lg ? 1 : nice_step(hi - lo, horizontal ? 8 : 6);
    for (int i = 0; i < nv; i++) {
        char lab[32];
        if (lg)
            snprintf(lab, sizeof lab, "1e%d", (int)lround(log10(vals[i])));
        else
            tick_label(lab, sizeof lab, vals[i], step);
        if (horizontal) {
            double px = ol__svg_px(s, vals[i]);
            put(s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>\n", px, s->mt, px,
                s->H - s->mb);
            put(s, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\" fill=\"#333\">%s</text>\n", px,
                s->H - s->mb + 16, lab);
        } else {
            double py = ol__svg_py(s, vals[i]);
            put(s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>\n", s->ml, py,
                s->W - s->mr, py);
            put(s, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"end\" fill=\"#333\">%s</text>\n",
                s->ml - 6, py + 4, lab);
        }
    }
}

void ol__svg_axes(ol__svg *s, const char *title, const char *xlabel, const char *ylabel)
{
    axis_ticks(s, 1);
    axis_ticks(s, 0);
    put(s, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333\"/>\n", s->ml, s->mt,
        s->W - s->ml - s->mr, s->H - s->mt - s->mb);
    if (title)
        ol__svg_text(s, s->W / 2, 24, "middle", 15, "#111", title);
    if (xlabel)
        ol__svg_text(s, (s->ml + s->W - s->mr) / 2, s->H - 14, "middle", 13, "#111", xlabel);
    if (ylabel) {
        put(s, "<text transform=\"translate(18,%.1f) rotate(-90)\" font-size=\"13\" text-anchor=\"middle\" "
               "fill=\"#111\">",
            (s->mt + s->H - s->mb) / 2);
        put_escaped(s, ylabel);
        put(s, "</text>\n");
    }
}

static int inside(const ol__svg *s, double x, double y)
{
    return isfinite(x) && isfinite(y) && (!s->logx || x > 0) && (!s->logy || y > 0);
}

void ol__svg_polyline(ol__svg *s, const double *x, const double *y, int n, const char *color, double width,
                      int dashed)
{
    int open = 0;
    put(s, "<g clip-path=\"none\">\n");
    for (int i = 0; i < n; i++) {
        if (!inside(s, x[i], y[i])) {
            if (open)
                put(s, "\"/>\n");
            open = 0;
            continue;
        }
        double px = ol__svg_px(s, x[i]), py = ol__svg_py(s, y[i]);
        /* keep far-away points from producing huge coordinates */
        if (py < -1e4)
            py = -1e4;
        if (py > 1e4)
            py = 1e4;
        if (!open) {
            put(s, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%.2f\"%s points=\"", color, width,
                dashed ? " stroke-dasharray=\"6,4\"" : "");
            open = 1;
        }
        put(s, "%.1f,%.1f ", px, py);
    }
    if (open)
        put(s, "\"/>\n");
    put(s, "</g>\n");
}

void ol__svg_marker(ol__svg *s, double x, double y, double r, const char *color)
{
    if (!inside(s, x, y))
        return;
    put(s, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"%s\" stroke=\"white\" stroke-width=\"1\"/>\n",
        ol__svg_px(s, x), ol__svg_py(s, y), r, color);
}

void ol__svg_vline(ol__svg *s, double x, const char *color, const char *label)
{
    if (!inside(s, x, s->y0)) /* only x matters: the line spans the panel */
        return;
    double px = ol__svg_px(s, x);
    put(s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-dasharray=\"4,3\"/>\n", px,
        s->mt, px, s->H - s->mb, color);
    if (label) { /* near the right edge the label goes left of the line, inside the panel */
        const int left = px > s->ml + 0.85 * (s->W - s->ml - s->mr);
        ol__svg_text(s, left ? px - 4 : px + 4, s->mt + 14, left ? "end" : "start", 12, color, label);
    }
}

void ol__svg_text(ol__svg *s, double px, double py, const char *anchor, int size, const char *color,
                  const char *text)
{
    put(s, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%d\" text-anchor=\"%s\" fill=\"%s\">", px, py, size, anchor,
        color);
    put_escaped(s, text);
    put(s, "</text>\n");
}

void ol__svg_label(ol__svg *s, double px, double py, int size, const char *color, const char *text)
{
    put(s, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%d\" text-anchor=\"middle\" dominant-baseline=\"central\" "
           "fill=\"%s\" stroke=\"white\" stroke-width=\"3\" paint-order=\"stroke\">",
        px, py, size, color);
    put_escaped(s, text);
    put(s, "</text>\n");
}

void ol__svg_cell(ol__svg *s, double x0, double y0, double x1, double y1, const char *fill)
{
    double a = ol__svg_px(s, x0), b = ol__svg_px(s, x1), c = ol__svg_py(s, y0), d = ol__svg_py(s, y1);
    /* crisp edges: anti-aliased neighbours would leave hairlines between cells */
    put(s, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\" shape-rendering=\"crispEdges\"/>\n",
        fmin(a, b), fmin(c, d), fabs(b - a) + 0.3, fabs(d - c) + 0.3, fill);
}

void ol__svg_legend(ol__svg *s, const char *const *labels, const char *const *colors, int n)
{
    double x = s->W - s->mr - 170, y = s->mt + 10;
    put(s, "<rect x=\"%.1f\" y=\"%.1f\" width=\"162\" height=\"%d\" fill=\"white\" fill-opacity=\"0.85\" "
           "stroke=\"#bbb\"/>\n",
        x - 6, y - 4, 18 * n + 6);
    for (int i = 0; i < n; i++) {
        double yy = y + 18 * i + 9;
        put(s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2.5\"/>\n", x, yy,
            x + 22, yy, colors[i]);
        ol__svg_text(s, x + 28, yy + 4, "start", 12, "#111", labels[i]);
    }
}

const char *ol__svg_color(int i)
{
    static const char *const pal[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
    return pal[((i % 10) + 10) % 10];
}

int ol__svg_end(ol_ctx *ctx, ol__svg *s)
{
    put(s, "</svg>\n");
    return s->tb.failed ? ol__err(ctx, OL_ENOMEM, "out of memory drawing a plot") : OL_OK;
}

int ol__svg_save(ol_ctx *ctx, ol__svg *s, const char *path)
{
    put(s, "</svg>\n");
    if (s->tb.failed)
        return ol__err(ctx, OL_ENOMEM, "out of memory drawing %s", path);
    return ol__write_file_atomic(ctx, path, s->tb.buf, s->tb.len);
}

int ol__range(const double *v, int n, int positive_only, double *lo, double *hi)
{
    int any = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(v[i]) || (positive_only && !(v[i] > 0)))
            continue;
        if (!any || v[i] < *lo)
            *lo = v[i];
        if (!any || v[i] > *hi)
            *hi = v[i];
        any = 1;
    }
    return any;
}
