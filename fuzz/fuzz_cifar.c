/* libFuzzer target: the CIFAR-10 binary parser (one batch file). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/readers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    const char *label = "batch";
    ol_ctx *ctx = ol_ctx_new(1);
    ol_dataset d;
    if (ol__cifar_from_buffers(ctx, &label, &copy, &size, 1, &d) >= 0) {
        volatile unsigned s = 0;
        for (int64_t i = 0; i < d.n; i++)
            s += (unsigned)d.labels[i] + d.images[(size_t)i * 3072 + 3071];
        ol_dataset_free(&d);
    }
    free(copy);
    ol_ctx_free(ctx);
    return 0;
}
