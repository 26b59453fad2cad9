/* Optimizer trajectories on 2-D test functions (the course's pictures of
 * momentum, saddle points and adaptive methods). The two coordinates are one
 * 2-element tensor of an ol_paramset, so the real optimizer kernels run. */
#ifndef OL_TOOLS_TRAJECTORY_H
#define OL_TOOLS_TRAJECTORY_H

#include <stdint.h>

#include "core/internal.h"
#include "optimlab/optim.h"
#include "optimlab/sched.h"

typedef enum {
    OL__FN_ROSENBROCK = 0, /* (1-x)^2 + 100 (y-x^2)^2, minimum (1, 1) */
    OL__FN_BEALE,          /* minimum (3, 0.5) */
    OL__FN_HIMMELBLAU,     /* four minima, e.g. (3, 2) */
    OL__FN_SADDLE,         /* x^2 - y^2 */
    OL__FN_QUADRATIC,      /* (x^2 + K y^2) / 2, condition number K */
    OL__FN_COUNT
} ol__testfn;

const char *ol__testfn_name(ol__testfn f);
int ol__testfn_from_name(const char *name, ol__testfn *out);
/* f(x, y) and its gradient; cond is K for the quadratic. */
double ol__testfn_eval(ol__testfn f, double cond, double x, double y, double *gx, double *gy);
/* Default plot box {x0, x1, y0, y1} and start point. */
void ol__testfn_defaults(ol__testfn f, double box[4], double start[2]);

typedef struct {
    int64_t n; /* points recorded: start + steps taken (fewer if it diverged) */
    double *x, *y, *f, *lr;
    int diverged; /* stopped early: non-finite value or |x|, |y| > 1e8 */
} ol__traj;

/* Run steps optimizer steps from start. sp may be NULL (constant op->lr).
 * Point 0 is the start; point t the parameters after t steps (the training
 * sequence y for Schedule-Free); lr[t] is the rate of step t+1. */
int ol__traj_run(ol_ctx *ctx, ol__testfn fn, double cond, const ol_optim_params *op, const ol_sched_params *sp,
                 const double start[2], int64_t steps, ol__traj *out);
void ol__traj_free(ol__traj *t);

/* Contour bands of the function over box with the paths on top, written
 * atomically to path (SVG). */
int ol__traj_plot(ol_ctx *ctx, ol__testfn fn, double cond, const double box[4], const ol__traj *runs,
                  const char *const *labels, int n, const char *title, const char *path);

#endif
