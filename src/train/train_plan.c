/* The step plan of a run: the global batch of each step under a batch
 * schedule, and the number of steps over epochs of data. */
#include <math.h>
#include <string.h>

#include "core/internal.h"
#include "optimlab/dist.h"
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
typedef struct {
    int world;           /* > 1: stop at the first step whose global batch it does not divide */
    int64_t step, batch; /* that step and its batch; step -1 when none */
} walk_divides;

/* With stop_samples >= 0 the walk also stops at the first step that starts
 * once that many samples have been consumed; *seen (NULL: none) receives the
 * samples consumed when it ended. */
typedef struct {
    int64_t stop_samples;
    int64_t seen;
} walk_samples;

static int64_t walk_steps_div(const ol_train_params *tp, int64_t n, double stop, double *reached, int64_t *last,
                              int64_t *batches, walk_divides *div, walk_samples *ws)
{
    int64_t step = 0, seen = 0;
    *reached = 0.0;
    *last = ol__train_batch_for(tp, 0, 0);
    for (int e = 0; tp->epochs == 0 || e < tp->epochs; e++) {
        int64_t pos = 0;
        for (;;) {
            *reached = (double)e + (double)pos / (double)n;
            if (ws)
                ws->seen = seen;
            if ((tp->max_steps > 0 && step >= tp->max_steps) || (stop >= 0.0 && *reached >= stop) ||
                (ws && seen >= ws->stop_samples) || (tp->epochs == 0 && tp->max_steps == 0))
                return step;
            int64_t b = ol__train_batch_for(tp, step, seen), left = n - pos;
            if (left <= 0 || (tp->drop_last && left < b))
                break;
            if (div && div->world > 1 && b % div->world != 0 && div->step < 0) {
                div->step = step;
                div->batch = b;
                return step;
            }
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

static int64_t walk_steps(const ol_train_params *tp, int64_t n, double stop, double *reached, int64_t *last,
                          int64_t *batches)
{
    return walk_steps_div(tp, n, stop, reached, last, batches, NULL, NULL);
}

int ol_train_check_world(ol_ctx *ctx, const ol_train_params *tp, int64_t n, int world)
{
    if (world <= 1)
        return OL_OK;
    if (tp->batch_size % world != 0)
        return ol__err(ctx, OL_EINVAL, "the %d ranks do not divide the global batch %d", world, tp->batch_size);
    if (!tp->batch_sched || n <= 0)
        return OL_OK;
    walk_divides div = {world, -1, 0};
    double reached;
    int64_t last;
    walk_steps_div(tp, n, -1.0, &reached, &last, NULL, &div, NULL);
    if (div.step >= 0)
        return ol__err(ctx, OL_EINVAL,
                       "the %d ranks do not divide the global batch %lld of step %lld (the batch schedule's first "
                       "such batch): choose batches that are multiples of %d",
                       world, (long long)div.batch, (long long)div.step, world);
    return OL_OK;
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

int64_t ol_train_sample_steps(const ol_train_params *tp, int64_t n, int64_t samples)
{
    if (n <= 0 || tp->batch_size <= 0 || samples <= 0)
        return 0;
    int64_t b = tp->batch_size, steps = 0, seen = 0;
    if (tp->batch_sched) {
        double reached;
        walk_samples ws = {samples, 0};
        steps = walk_steps_div(tp, n, -1.0, &reached, &b, NULL, NULL, &ws);
        seen = ws.seen;
        if (seen >= samples)
            return steps;
    }
    /* a constant batch b from here on (past the training length: the last
     * batch): whole epochs, then the steps of the last one that start before
     * the remaining samples are consumed */
    const int64_t per = tp->drop_last ? n / b : (n + b - 1) / b, left = samples - seen;
    const int64_t in_epoch = (left % n + b - 1) / b;
    return steps + left / n * (per > 0 ? per : 1) + (in_epoch < per ? in_epoch : per);
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
    if (last > b)
        b = last;
    return b < n || n <= 0 ? b : n; /* a step never takes more than the whole data set */
}

int ol_train_memory_estimate(ol_ctx *ctx, const ol_train_params *tp, const ol_model_params *mp,
                             const ol_optim_params *op, const ol_dataset *train, const ol_dataset *test,
                             ol_train_memory *out)
{
    memset(out, 0, sizeof *out);
    if (tp->batch_size <= 0 || train->n <= 0)
        return ol__err(ctx, OL_EINVAL, "memory estimate: batch %d, %lld samples", tp->batch_size,
                       (long long)train->n);
    const int W = ol_comm_size(tp->comm);
    const int64_t maxb = ol__train_max_batch(tp, train->n), shard = (maxb + W - 1) / W;
    int64_t mb = tp->micro_batch_size > 0 && tp->micro_batch_size < shard ? tp->micro_batch_size : shard;
    int64_t eb = tp->eval_batch_size > 0 ? tp->eval_batch_size : tp->batch_size;
    if (test && eb > test->n)
        eb = test->n;
    out->batch = maxb;
    OL__TRY(ol_model_memory_estimate(ctx, mp, (int)(eb > mb ? eb : mb), &out->model));
    int slots = ol_optim_state_slots(ctx, op);
    OL__TRY(slots);
    out->optimizer = (uint64_t)slots * out->model.params;
    const uint64_t per = (uint64_t)train->c * (uint64_t)train->h * (uint64_t)train->w;
    /* the loader's two batch buffers and its permutation, one evaluation batch */
    const uint64_t ylen = (uint64_t)ol_dataset_outputs_per_sample(train) * sizeof(int32_t);
    out->batches = 2 * (uint64_t)maxb * (per * sizeof(float) + ylen) + (uint64_t)train->n * sizeof(int64_t) +
                   (uint64_t)eb * (per * sizeof(float) + ylen + sizeof(int64_t));
    out->data = ol_dataset_memory_bytes(train);
    if (test)
        out->data += ol_dataset_memory_bytes(test);
    /* a checkpoint is read back whole to verify it (and to resume) */
    out->checkpoint = out->model.params + out->optimizer + out->model.buffers;
    out->total = out->model.total + out->optimizer + out->batches + out->data + out->checkpoint;
    return OL_OK;
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
