/* safetensors files (https://github.com/huggingface/safetensors): an 8-byte
 * little-endian header length, a JSON header {name: {dtype, shape,
 * data_offsets}, "__metadata__": {string: string}}, then the tensor bytes.
 * The reader validates everything a hostile file could get wrong; the writer
 * is atomic (temporary file in the same directory, fsync, rename, fsync of
 * the directory). */
#ifndef OL_IO_SAFETENSORS_H
#define OL_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/internal.h"

#define OL__ST_MAX_DIMS 8
#define OL__ST_MAX_NAME 256

typedef enum { OL__ST_F32 = 0, OL__ST_F64, OL__ST_F16, OL__ST_BF16, OL__ST_I64, OL__ST_I32, OL__ST_U8, OL__ST_BOOL, OL__ST_I8, OL__ST_I16, OL__ST_U16, OL__ST_U32, OL__ST_U64, OL__ST_NDTYPES } ol__st_dtype;

typedef struct {
    char name[OL__ST_MAX_NAME];
    ol__st_dtype dtype;
    int ndim;
    int64_t shape[OL__ST_MAX_DIMS];
    size_t numel;
    size_t begin, end; /* byte offsets into the data section */
} ol__st_entry;

typedef struct {
    uint8_t *buf; /* the whole file, owned */
    size_t len;
    size_t data_off; /* start of the data section in buf */
    ol__st_entry *e;
    int n;
    char **meta_keys, **meta_vals;
    int nmeta;
} ol__st_file;

/* Tensor to write; data is raw little-endian bytes of numel * dtype size. */
typedef struct {
    const char *name;
    ol__st_dtype dtype;
    int ndim;
    const int64_t *shape;
    const void *data;
} ol__st_tensor;

size_t ol__st_dtype_size(ol__st_dtype d);
const char *ol__st_dtype_name(ol__st_dtype d);

/* Parse a file held in memory; takes ownership of buf (freed by ol__st_free,
 * also on error). label names the file in messages. */
int ol__st_parse(ol_ctx *ctx, const char *label, uint8_t *buf, size_t len, ol__st_file *out);
int ol__st_read(ol_ctx *ctx, const char *path, ol__st_file *out);
void ol__st_free(ol__st_file *f);
const ol__st_entry *ol__st_find(const ol__st_file *f, const char *name);
const uint8_t *ol__st_data(const ol__st_file *f, const ol__st_entry *e);
const char *ol__st_meta(const ol__st_file *f, const char *key);
/* Copy a tensor into float32, converting from F32/F64/F16/BF16. */
int ol__st_to_f32(ol_ctx *ctx, const ol__st_file *f, const ol__st_entry *e, float *out);

/* Write atomically. meta holds nmeta key/value pairs (strings). */
int ol__st_write(ol_ctx *ctx, const char *path, const ol__st_tensor *t, int n, const char *const *meta_keys,
                 const char *const *meta_vals, int nmeta);

/* Write atomically with metadata entry crc_key holding the CRC-32 (8 lowercase
 * hex digits) of the whole file, computed with "00000000" in its place. */
#define OL__ST_CRC_CHARS 8
int ol__st_write_crc(ol_ctx *ctx, const char *path, const ol__st_tensor *t, int n, const char *const *meta_keys,
                     const char *const *meta_vals, int nmeta, const char *crc_key);
/* That CRC recomputed from a file read back; -1 when the entry does not occur
 * exactly once in the header. */
int ol__st_file_crc(const ol__st_file *f, const char *crc_key, uint32_t *crc);

/* CRC-32 (zlib) of the data section, as written into version-1 checkpoints. */
uint32_t ol__st_data_crc(const ol__st_file *f);

#endif
