/* The loss history: spikes to skip, and the divergence rule (a loss explosion
 * relative to the run's own history). */
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

/* Is the loss a spike against the recent history? */
int ol__loss_spike(const ol_train_state *st, double loss, double z)
{
    if (z <= 0.0 || st->loss_hist_n < 16)
        return 0;
    double mu = 0.0, var = 0.0;
    for (int i = 0; i < st->loss_hist_n; i++)
        mu += st->loss_hist[i];
    mu /= st->loss_hist_n;
    for (int i = 0; i < st->loss_hist_n; i++)
        var += (st->loss_hist[i] - mu) * (st->loss_hist[i] - mu);
    double sd = sqrt(var / (st->loss_hist_n - 1));
    return sd > 0.0 && (loss - mu) / sd > z;
}

void ol__push_loss(ol_train_state *st, double loss)
{
    st->loss_hist[st->loss_hist_pos] = loss;
    st->loss_hist_pos = (st->loss_hist_pos + 1) % 64;
    if (st->loss_hist_n < 64)
        st->loss_hist_n++;
    if (loss < st->loss_min)
        st->loss_min = loss;
}
