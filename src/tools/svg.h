/* A small SVG canvas for plots: data-to-pixel transforms (linear or log axes),
 * axes with readable ticks, polylines, markers, text, legends, filled cells
 * (heat maps, contour bands). Used by the schedule, LR-finder, trajectory and
 * loss-landscape tools. Saved atomically. */
#ifndef OL_TOOLS_SVG_H
#define OL_TOOLS_SVG_H

#include <stddef.h>

#include "core/internal.h"
#include "core/textbuf.h"

typedef struct {
    ol__tb tb;              /* the SVG text */
    double W, H;            /* canvas size in pixels */
    double ml, mr, mt, mb;  /* margins */
    double x0, x1, y0, y1;  /* data range */
    int logx, logy;
} ol__svg;

/* Start a canvas of w x h pixels showing [x0,x1] x [y0,y1] (log axes need
 * positive ranges). Returns OL_EINVAL for empty or invalid ranges. */
int ol__svg_begin(ol_ctx *ctx, ol__svg *s, int w, int h, double x0, double x1, double y0, double y1, int logx,
                  int logy);
void ol__svg_free(ol__svg *s);
double ol__svg_px(const ol__svg *s, double x);
double ol__svg_py(const ol__svg *s, double y);
/* Frame, grid, tick labels, title and axis labels. */
void ol__svg_axes(ol__svg *s, const char *title, const char *xlabel, const char *ylabel);
/* Points with non-finite coordinates break the line. */
void ol__svg_polyline(ol__svg *s, const double *x, const double *y, int n, const char *color, double width,
                      int dashed);
void ol__svg_marker(ol__svg *s, double x, double y, double r, const char *color);
void ol__svg_vline(ol__svg *s, double x, const char *color, const char *label);
void ol__svg_text(ol__svg *s, double px, double py, const char *anchor, int size, const char *color,
                  const char *text);
/* Centred text with a white halo, readable on top of lines and bands (contour labels). */
void ol__svg_label(ol__svg *s, double px, double py, int size, const char *color, const char *text);
/* Filled rectangle in data coordinates (heat maps, contour bands). */
void ol__svg_cell(ol__svg *s, double x0, double y0, double x1, double y1, const char *fill);
void ol__svg_legend(ol__svg *s, const char *const *labels, const char *const *colors, int n);
/* Palette colour i (cycles). */
const char *ol__svg_color(int i);
/* Finish and write to path (temporary file + rename). */
int ol__svg_save(ol_ctx *ctx, ol__svg *s, const char *path);
/* Finish without writing (instead of ol__svg_save): s->tb.buf then holds the
 * s->tb.len bytes of the document, to embed in a page; OL_ENOMEM when drawing
 * ran out of memory. */
int ol__svg_end(ol_ctx *ctx, ol__svg *s);
/* Range of finite values; returns 0 when there are none. */
int ol__range(const double *v, int n, int positive_only, double *lo, double *hi);

#endif
