/* libFuzzer target: the IDX parser. Input: 2 bytes giving the split point,
 * then an images file followed by a labels file. */
#include <stdint.h>
#include <stdlib.h>

#include "data/readers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t split = ((size_t)data[0] << 8 | data[1]) % (size - 1);
    const uint8_t *rest = data + 2;
    size_t n = size - 2;
    if (split > n)
        split = n;
    ol_ctx *ctx = ol_ctx_new(1);
    ol_dataset d;
    if (ol__idx_from_buffers(ctx, "images", rest, split, "labels", rest + split, n - split, &d) >= 0) {
        /* touch everything the parser promised */
        volatile unsigned s = 0;
        for (int64_t i = 0; i < d.n; i++)
            s += (unsigned)d.labels[i] + d.images[(size_t)i * d.h * d.w];
        ol_dataset_free(&d);
    }
    ol_ctx_free(ctx);
    return 0;
}
