/* optimlab landscape: the grid of results and its files (JSON with the
 * partial grid for resuming, CSV, SVG plots, VTK surface). */
#ifndef OL_CLI_LANDSCAPE_IO_H
#define OL_CLI_LANDSCAPE_IO_H

#include <stdint.h>

#include "common.h"

typedef struct {
    int dims;       /* 1: a line, 2: a plane */
    int nx, ny;     /* ny = 1 for a line */
    double *x, *y;  /* coordinates along each axis */
    double *val;    /* point p = j*nx+i: val[4p..4p+3] = loss, acc of set 0, loss, acc of set 1 */
    unsigned char *done;
    const char *set[2];  /* names of the evaluated sets ("train", "test"; NULL: none) */
    char settings[4096]; /* everything that determines the values: a resumed grid must match */
    char title[512], xlabel[128], ylabel[128];
    int ntraj;                /* PCA: the checkpoints projected onto the plane */
    double *tx, *ty, ratio[2];
    int64_t *tstep;
    int levels; /* contour levels wanted (0: auto) */
    int nmark;  /* 1-D: positions of the checkpoints on the line */
    double mark[2];
    char mark_label[2][64];
} ls_grid;

int ls_grid_alloc(ls_grid *g, int nx, int ny);
void ls_grid_free(ls_grid *g);
int64_t ls_grid_done(const ls_grid *g);

/* Load OUT/landscape.json when it exists: *found = 0 when there is none; when
 * its settings differ from g's, -1 with a message; otherwise the finished
 * points are marked done with their values. */
int ls_load(const char *path, ls_grid *g, int *found, char *err, size_t cap);
/* Write the grid (finished points, complete or not) atomically. */
int ls_save(const char *path, const ls_grid *g, int complete, char *err, size_t cap);
/* landscape.csv, the plots (1-D: loss.svg and acc.svg; 2-D: <set>_loss.svg and
 * <set>_acc.svg contour plots) and, with vtk, surface.vtk; all in dir. */
int ls_write_outputs(ol_ctx *ctx, const char *dir, const ls_grid *g, int vtk, char *err, size_t cap);

#endif
