/* Contour plots of a function sampled on a rectangular grid: filled bands and
 * contour lines (marching squares on a bilinear refinement of the grid, lines
 * chained and labelled with their level), with an optional path on top (a
 * trajectory projected onto the plane). Used by the loss-landscape tool. */
#ifndef OL_TOOLS_CONTOUR_H
#define OL_TOOLS_CONTOUR_H

#include "core/internal.h"

typedef struct {
    const double *x, *y; /* grid coordinates, strictly increasing */
    int nx, ny;          /* >= 2 each */
    const double *z;     /* z[j * nx + i] at (x[i], y[j]); non-finite: no band and no line there */
    const double *px, *py; /* path drawn on top (NULL: none) */
    int pn;
    const char *title, *xlabel, *ylabel;
    int nlevels; /* about this many levels (0: 10) */
    int mark;    /* draw a white dot at (mx, my): the checkpoint */
    double mx, my;
} ol__contour;

/* Contour levels for the finite values of z[0..n): "nice" linear steps, or
 * 1-2-5 steps per decade when the positive values span more than a factor
 * 20. Returns how many were written to lev (at most cap). */
int ol__contour_levels(const double *z, int n, int want, double *lev, int cap);

/* Marching squares for one level on the grid: segments as (x0, y0, x1, y1)
 * quadruples into seg (capacity cap segments). Returns the segment count
 * (may exceed cap: then only cap were written). */
int ol__contour_segments(const double *x, const double *y, int nx, int ny, const double *z, double level,
                         double *seg, int cap);

/* Draw the plot and write it atomically to path (SVG). */
int ol__contour_plot(ol_ctx *ctx, const ol__contour *c, const char *path);

#endif
