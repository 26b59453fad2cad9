/* In-memory parsers behind the dataset readers (also the fuzzing entry points). */
#ifndef OL_DATA_READERS_H
#define OL_DATA_READERS_H

#include <stddef.h>
#include <stdint.h>

#include "core/internal.h"
#include "optimlab/data.h"

/* An IDX images file and an IDX labels file, already decompressed. */
int ol__idx_from_buffers(ol_ctx *ctx, const char *images_label, const uint8_t *ib, size_t il, const char *labels_label,
                         const uint8_t *lb, size_t ll, ol_dataset *out);
/* CIFAR-10 binary batch files. */
int ol__cifar_from_buffers(ol_ctx *ctx, const char *const *labels, uint8_t *const *bufs, const size_t *lens, int nfiles,
                           ol_dataset *out);

#endif
