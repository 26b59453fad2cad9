/* libFuzzer target: the safetensors/checkpoint parser (header, metadata, model
 * description, training state). The checksum is not enforced so that the
 * fuzzer reaches the JSON behind it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/io_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    ol_ctx *ctx = ol_ctx_new(1);
    ol_model_params mp;
    ol_train_state st;
    ol__checkpoint_parse_mem(ctx, "fuzz", copy, size, 0, &mp, &st); /* takes ownership of copy */
    ol_ctx_free(ctx);
    return 0;
}
