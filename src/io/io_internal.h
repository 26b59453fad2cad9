/* In-memory entry points of the file parsers (used by the fuzzing targets). */
#ifndef OL_IO_INTERNAL_H
#define OL_IO_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/internal.h"
#include "optimlab/checkpoint.h"

/* Parse a checkpoint held in memory (takes ownership of buf): safetensors
 * structure, metadata (checksum when check_crc), model description and
 * training state. */
int ol__checkpoint_parse_mem(ol_ctx *ctx, const char *label, uint8_t *buf, size_t len, int check_crc,
                             ol_model_params *mp, ol_train_state *st);

#endif
