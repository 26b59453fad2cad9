/* Schedule internals: the hooks of a built-in schedule that reads the named
 * fields of ol_sched_params, and the helpers the families share. */
#ifndef OL_SCHED_INTERNAL_H
#define OL_SCHED_INTERNAL_H

#include <stddef.h>

#include "core/internal.h"
#include "optimlab/sched.h"

/* u is the unit of the main schedule (a step, or an epoch with per_epoch)
 * after the warm-up, length that part's length in the same units. */
typedef struct ol__sched_impl {
    double (*lr)(const ol_sched_params *s, int64_t u, int64_t length);
    double (*momentum)(const ol_sched_params *s, int64_t u, int64_t length); /* optional: cycles momentum */
    void (*defaults)(ol_sched_params *s);                                    /* optional: its own defaults */
    int (*validate)(ol_ctx *ctx, const ol_sched_params *s);                  /* optional, after the common checks */
    void (*resolve)(ol_sched_params *s, int64_t length);                     /* optional: see ol_sched_resolve */
} ol__sched_impl;

/* The built-ins, one per line of OL_SCHED_BUILTINS (defined in their family's file). */
#define OL__SCHED_DECL(e, n) extern const ol_sched_algo ol__sched_##n;
OL_SCHED_BUILTINS(OL__SCHED_DECL)
#undef OL__SCHED_DECL

/* The floor of the decaying schedules: min_lr_ratio * base_lr, else eta_min. */
double ol__sched_floor(const ol_sched_params *s);

/* Option table entries shared by several families. */
#define OL__SOPT(field) offsetof(ol_sched_params, field)
#define OL__SOPT_MIN_LR_RATIO                                                                                      \
    {"min-lr-ratio", OL_SOPT_NUMBER, OL__SOPT(min_lr_ratio), 0.0, 1.0, "0", "R",                                  \
     "floor as a fraction of the peak lr", NULL, NULL, 0}
#define OL__SOPT_ETA_MIN                                                                                           \
    {"eta-min", OL_SOPT_NUMBER, OL__SOPT(eta_min), 0.0, 1e6, "0", "LR", "the same floor as an absolute lr", NULL,  \
     NULL, 0}

#endif
