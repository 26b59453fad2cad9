/* The divergence rule: a loss explosion relative to the run's own history. */
#include <math.h>

#include "train/train_internal.h"

/* Lowest step loss so far, but never below chance level: a run that learned
 * well is not stopped by an ordinary rise (warm restarts, a new phase). */
static double reference(const ol_train_state *st, int classes)
{
    double chance = log(classes > 1 ? (double)classes : 2.0);
    return isfinite(st->loss_min) && st->loss_min > chance ? st->loss_min : chance;
}

int ol__diverged(const ol_train_state *st, double factor, int classes, double *mean, double *threshold)
{
    if (factor <= 0.0 || st->loss_hist_n < OL__DIVERGE_WINDOW)
        return 0;
    double sum = 0.0;
    for (int k = 1; k <= OL__DIVERGE_WINDOW; k++)
        sum += st->loss_hist[(st->loss_hist_pos - k + 64) % 64];
    *mean = sum / OL__DIVERGE_WINDOW;
    *threshold = factor * reference(st, classes);
    return !(*mean <= *threshold);
}

int ol__loss_sane(const ol_train_state *st, double factor, int classes)
{
    if (factor <= 0.0 || st->loss_hist_n == 0)
        return 1;
    double last = st->loss_hist[(st->loss_hist_pos + 63) % 64], mean, thr;
    return last <= factor * reference(st, classes) && !ol__diverged(st, factor, classes, &mean, &thr);
}
