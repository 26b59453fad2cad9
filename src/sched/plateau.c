/* Reduce-on-plateau (PyTorch ReduceLROnPlateau), the one schedule with
 * state. Its descriptor is the lr before any cut: a constant. The cuts
 * depend on validation metrics, so they live in ol_plateau, which the
 * trainer feeds after each evaluation and saves in its checkpoints. */
#include <math.h>
#include <string.h>

#include "sched/sched_internal.h"

#define PLATEAU_OPT(name, kind, field, lo, hi, def, metavar, help, choices)                                       \
    {name, kind, OL__SOPT(field), lo, hi, def, metavar, help, choices, NULL, 0}

static double plateau_start_lr(const ol_sched_params *s, int64_t u, int64_t length)
{
    (void)u;
    (void)length;
    return s->base_lr;
}

static int plateau_validate(ol_ctx *ctx, const ol_sched_params *s)
{
    if (!(s->plateau_factor > 0.0 && s->plateau_factor < 1.0))
        return ol__err(ctx, OL_ERANGE, "plateau: factor must be in (0, 1), got %g", s->plateau_factor);
    if (s->plateau_patience < 0 || s->plateau_cooldown < 0)
        return ol__err(ctx, OL_ERANGE, "plateau: patience and cooldown must be >= 0");
    if (!(s->plateau_threshold >= 0.0) || !(s->plateau_min_lr >= 0.0) || !(s->plateau_eps >= 0.0))
        return ol__err(ctx, OL_ERANGE, "plateau: threshold, min lr and eps must be >= 0");
    return OL_OK;
}

static const ol__sched_impl plateau_impl = {.lr = plateau_start_lr, .validate = plateau_validate};

const ol_sched_algo ol__sched_plateau = {
    .name = "plateau",
    .summary = "cut the lr when the validation metric stops improving (ReduceLROnPlateau; has state)",
    .aliases = {"reduce-on-plateau"},
    .options = {PLATEAU_OPT("plateau-mode", OL_SOPT_CHOICE, plateau_maximize, 0, 0, "min", "MODE",
                            "min (loss) or max (accuracy) of the validation metric", "min,max"),
                PLATEAU_OPT("plateau-factor", OL_SOPT_NUMBER, plateau_factor, 1e-9, 0.999999, "0.1", "F",
                            "multiply the lr by F on a plateau", NULL),
                PLATEAU_OPT("plateau-patience", OL_SOPT_INT, plateau_patience, 0, 1000000, "10", "N",
                            "evaluations without improvement before a cut", NULL),
                PLATEAU_OPT("plateau-threshold", OL_SOPT_NUMBER, plateau_threshold, 0.0, 1e9, "1e-4", "T",
                            "smallest improvement that counts", NULL),
                PLATEAU_OPT("plateau-threshold-mode", OL_SOPT_CHOICE, plateau_threshold_abs, 0, 0, "rel", "MODE",
                            "rel or abs threshold", "rel,abs"),
                PLATEAU_OPT("plateau-cooldown", OL_SOPT_INT, plateau_cooldown, 0, 1000000, "0", "N",
                            "evaluations to wait after a cut", NULL),
                PLATEAU_OPT("plateau-min-lr", OL_SOPT_NUMBER, plateau_min_lr, 0.0, 1e6, "0", "LR",
                            "lower bound of the lr", NULL)},
    .impl = &plateau_impl,
};

void ol_plateau_init(ol_plateau *p, const ol_sched_params *s)
{
    memset(p, 0, sizeof *p);
    p->lr = s->base_lr;
    p->best = s->plateau_maximize ? -INFINITY : INFINITY;
}

static int plateau_better(const ol_sched_params *s, double a, double best)
{
    const double th = s->plateau_threshold;
    if (s->plateau_maximize)
        return s->plateau_threshold_abs ? a > best + th : a > best * (th + 1.0);
    return s->plateau_threshold_abs ? a < best - th : a < best * (1.0 - th);
}

int ol_plateau_update(ol_plateau *p, const ol_sched_params *s, double metric)
{
    if (!isfinite(metric))
        return OL_ERANGE;
    p->evals++;
    if (plateau_better(s, metric, p->best)) {
        p->best = metric;
        p->num_bad = 0;
    } else {
        p->num_bad++;
    }
    if (p->cooldown_left > 0) {
        p->cooldown_left--;
        p->num_bad = 0;
    }
    if (p->num_bad > s->plateau_patience) {
        int cut = 0;
        double nl = p->lr * s->plateau_factor;
        if (nl < s->plateau_min_lr)
            nl = s->plateau_min_lr;
        if (p->lr - nl > s->plateau_eps) {
            p->lr = nl;
            p->reductions++;
            cut = 1;
        }
        p->cooldown_left = s->plateau_cooldown;
        p->num_bad = 0;
        return cut;
    }
    return 0;
}

double ol_plateau_lr(const ol_plateau *p, const ol_sched_params *s, int64_t t)
{
    if (s->warmup_steps > 0 && t < s->warmup_steps && s->base_lr > 0.0)
        return ol_sched_lr(s, t) * (p->lr / s->base_lr);
    return p->lr;
}
