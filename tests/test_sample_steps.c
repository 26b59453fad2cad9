/* ol_train_sample_steps: a length in samples (tokens / seq_len) as the
 * optimizer steps taken before that many samples have been consumed -- the
 * first step that starts at or after them -- with a constant batch (an
 * epoch's last step takes the samples left, or none with drop_last) and
 * under a batch schedule, checked against a walk of the step batches. */
#include <stdlib.h>

#include "optimlab/train.h"
#include "testutil.h"

/* The first step whose samples before it reach s, from the batches of the run. */
static int64_t by_walk(const ol_train_params *tp, int64_t n, int64_t s)
{
    int64_t b[4096], k = ol_train_step_batches(tp, n, b, 4096), seen = 0;
    for (int64_t t = 0; t < k; t++) {
        if (seen >= s)
            return t;
        seen += b[t];
    }
    return seen >= s ? k : -1;
}

int main(void)
{
    ol_train_params tp = ol_train_default_params();
    tp.batch_size = 32;
    tp.epochs = 3;
    /* n = 100: batches 32, 32, 32, 4 per epoch */
    const int64_t want[][2] = {{0, 0}, {1, 1}, {32, 1}, {33, 2}, {96, 3}, {97, 4}, {100, 4}, {101, 5}, {200, 8}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ASSERT_EQ_INT(ol_train_sample_steps(&tp, 100, want[i][0]), want[i][1]);
    /* past the run's 3 epochs: on at the same batch */
    ASSERT_EQ_INT(ol_train_sample_steps(&tp, 100, 400), 16);
    /* drop_last: 32, 32, 32 per epoch (the last 4 samples skipped) */
    tp.drop_last = 1;
    ASSERT_EQ_INT(ol_train_sample_steps(&tp, 100, 96), 3);
    ASSERT_EQ_INT(ol_train_sample_steps(&tp, 100, 97), 3);
    ASSERT_EQ_INT(ol_train_sample_steps(&tp, 100, 101), 4);
    tp.drop_last = 0;
    /* a ramp 8 -> 64 by 8 over 300 samples, epochs of 1000 */
    ol_batch_sched_params b = ol_batch_sched_default_params(OL_BATCH_RAMP);
    b.batch = 8;
    b.max_batch = 64;
    b.ramp_increment = 8;
    b.ramp_samples = 300;
    tp.batch_size = 8;
    tp.batch_sched = &b;
    for (int64_t s = 0; s <= 2500; s += 7)
        ASSERT_EQ_INT(ol_train_sample_steps(&tp, 1000, s), by_walk(&tp, 1000, s));
    return tu_finish("sample_steps");
}
