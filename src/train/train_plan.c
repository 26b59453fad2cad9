/* The step plan of a run: the global batch of each step under a batch
 * schedule, and the number of steps over epochs of data. */
#include <math.h>

#include "core/internal.h"
#include "optimlab/train.h"
#include "train/train_internal.h"

int64_t ol__train_batch_for(const ol_train_params *tp, int64_t step, int64_t samples_before)
{
    if (!tp->batch_sched)
        return tp->batch_size;
    int64_t b = ol_batch_sched_batch(tp->batch_sched, step, samples_before);
    return b > 0 ? b : 1;
}

/* The steps ol_train takes over epochs of n samples (batch schedule,
 * drop_last), up to the training length or, with stop >= 0, up to the first
 * step that starts at data epoch `stop` or later (a step starting at sample
 * pos of epoch e starts at epoch e + pos/n). *reached: the data epoch where
 * the walk ended; *last: the batch of its last step; batches (NULL: none)
 * receives the samples of each step (an epoch's last step takes those left). */
static int64_t walk_steps(const ol_train_params *tp, int64_t n, double stop, double *reached, int64_t *last,
                          int64_t *batches)
{
    int64_t step = 0, seen = 0;
    *reached = 0.0;
    *last = ol__train_batch_for(tp, 0, 0);
    for (int e = 0; tp->epochs == 0 || e < tp->epochs; e++) {
        int64_t pos = 0;
        for (;;) {
            *reached = (double)e + (double)pos / (double)n;
            if ((tp->max_steps > 0 && step >= tp->max_steps) || (stop >= 0.0 && *reached >= stop) ||
                (tp->epochs == 0 && tp->max_steps == 0))
                return step;
            int64_t b = ol__train_batch_for(tp, step, seen), left = n - pos;
            if (left <= 0 || (tp->drop_last && left < b))
                break;
            int64_t k = left < b ? left : b;
            if (batches)
                batches[step] = k;
            pos += k;
            seen += k;
            *last = b;
            step++;
        }
        if (pos == 0)
            return step; /* a batch larger than the data with drop_last */
        *reached = (double)(e + 1);
    }
    return step;
}

int64_t ol_train_count_steps(const ol_train_params *tp, int64_t n)
{
    if (n <= 0 || tp->batch_size <= 0)
        return 0;
    if (!tp->batch_sched) {
        int64_t per = tp->drop_last ? n / tp->batch_size : (n + tp->batch_size - 1) / tp->batch_size;
        int64_t total = tp->epochs > 0 ? per * tp->epochs : tp->max_steps;
        return tp->max_steps > 0 && tp->max_steps < total ? tp->max_steps : total;
    }
    double reached;
    int64_t last;
    return walk_steps(tp, n, -1.0, &reached, &last, NULL);
}

int64_t ol_train_epoch_steps(const ol_train_params *tp, int64_t n, double epochs)
{
    if (n <= 0 || tp->batch_size <= 0 || !(epochs > 0.0))
        return 0;
    int64_t b = tp->batch_size, steps = 0;
    double reached = 0.0;
    if (tp->batch_sched)
        steps = walk_steps(tp, n, epochs, &reached, &b, NULL);
    if (reached < epochs) { /* past the training length: on at the last batch */
        int64_t per = tp->drop_last ? n / b : (n + b - 1) / b;
        steps += llround((epochs - reached) * (double)(per > 0 ? per : 1));
    }
    return steps;
}

/* The largest global batch of the run: batch schedules never shrink the batch,
 * so it is the last step's (milestones without a cap grow past --batch-size,
 * and the loader and activations must hold it). */
int64_t ol__train_max_batch(const ol_train_params *tp, int64_t n)
{
    int64_t b = tp->batch_size, last = b;
    double reached;
    if (tp->batch_sched)
        walk_steps(tp, n, -1.0, &reached, &last, NULL);
    return last > b ? last : b;
}

int64_t ol_train_step_batches(const ol_train_params *tp, int64_t n, int64_t *batches, int64_t cap)
{
    if (n <= 0 || tp->batch_size <= 0 || cap <= 0)
        return 0;
    ol_train_params t = *tp;
    if (t.max_steps <= 0 || t.max_steps > cap)
        t.max_steps = cap;
    double reached;
    int64_t last;
    return walk_steps(&t, n, -1.0, &reached, &last, batches);
}
