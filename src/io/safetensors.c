#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/fsutil.h"
#include "io/safetensors.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this code assumes a little-endian host"
#endif

#define OL__ST_MAX_HEADER ((size_t)100 << 20)

static const struct {
    const char *name;
    size_t size;
} dtypes[OL__ST_NDTYPES] = {{"F32", 4}, {"F64", 8}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"U8", 1},
                            {"BOOL", 1}, {"I8", 1}, {"I16", 2}, {"U16", 2}, {"U32", 4}, {"U64", 8}};

size_t ol__st_dtype_size(ol__st_dtype d) { return (d >= 0 && d < OL__ST_NDTYPES) ? dtypes[d].size : 0; }
const char *ol__st_dtype_name(ol__st_dtype d) { return (d >= 0 && d < OL__ST_NDTYPES) ? dtypes[d].name : "?"; }

void ol__st_free(ol__st_file *f)
{
    if (!f)
        return;
    free(f->buf);
    free(f->e);
    for (int i = 0; i < f->nmeta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->meta_keys);
    free(f->meta_vals);
    memset(f, 0, sizeof *f);
}

static int cmp_begin(const void *a, const void *b)
{
    const ol__st_entry *x = a, *y = b;
    return (x->begin > y->begin) - (x->begin < y->begin);
}

static int parse_entry(ol_ctx *ctx, const char *label, const char *name, json_t *v, size_t data_len, ol__st_entry *e)
{
    if (strlen(name) >= OL__ST_MAX_NAME)
        return ol__err(ctx, OL_EFORMAT, "%s: tensor name longer than %d bytes", label, OL__ST_MAX_NAME - 1);
    if (!json_is_object(v))
        return ol__err(ctx, OL_EFORMAT, "%s: entry '%s' is not an object", label, name);
    json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape"), *off = json_object_get(v, "data_offsets");
    if (!json_is_string(dt) || !json_is_array(sh) || !json_is_array(off) || json_array_size(off) != 2 ||
        json_object_size(v) != 3)
        return ol__err(ctx, OL_EFORMAT, "%s: entry '%s' needs exactly dtype, shape and data_offsets", label, name);
    memset(e, 0, sizeof *e);
    strcpy(e->name, name);
    e->dtype = OL__ST_NDTYPES;
    for (int d = 0; d < OL__ST_NDTYPES; d++)
        if (strcmp(json_string_value(dt), dtypes[d].name) == 0)
            e->dtype = (ol__st_dtype)d;
    if (e->dtype == OL__ST_NDTYPES)
        return ol__err(ctx, OL_EFORMAT, "%s: tensor '%s' has unsupported dtype '%s'", label, name,
                       json_string_value(dt));
    if (json_array_size(sh) > OL__ST_MAX_DIMS)
        return ol__err(ctx, OL_EFORMAT, "%s: tensor '%s' has more than %d dimensions", label, name, OL__ST_MAX_DIMS);
    e->ndim = (int)json_array_size(sh);
    size_t numel = 1;
    for (int i = 0; i < e->ndim; i++) {
        json_t *d = json_array_get(sh, (size_t)i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return ol__err(ctx, OL_EFORMAT, "%s: tensor '%s' has an invalid shape", label, name);
        e->shape[i] = json_integer_value(d);
        if (e->shape[i] != 0 && numel > data_len / (size_t)e->shape[i])
            return ol__err(ctx, OL_EFORMAT, "%s: tensor '%s' is larger than the file", label, name);
        numel *= (size_t)e->shape[i];
    }
    e->numel = numel;
    json_t *b = json_array_get(off, 0), *en = json_array_get(off, 1);
    if (!json_is_integer(b) || !json_is_integer(en) || json_integer_value(b) < 0 ||
        json_integer_value(en) < json_integer_value(b))
        return ol__err(ctx, OL_EFORMAT, "%s: tensor '%s' has invalid data_offsets", label, name);
    e->begin = (size_t)json_integer_value(b);
    e->end = (size_t)json_integer_value(en);
    if (e->end > data_len)
        return ol__err(ctx, OL_EFORMAT, "%s: tensor '%s' extends past the end of the file (truncated?)", label, name);
    if (e->end - e->begin != numel * dtypes[e->dtype].size)
        return ol__err(ctx, OL_EFORMAT, "%s: tensor '%s': %zu bytes for %zu elements of %s", label, name,
                       e->end - e->begin, numel, dtypes[e->dtype].name);
    return OL_OK;
}

int ol__st_parse(ol_ctx *ctx, const char *label, uint8_t *buf, size_t len, ol__st_file *out)
{
    memset(out, 0, sizeof *out);
    out->buf = buf;
    out->len = len;
    if (len < 8) {
        ol__st_free(out);
        return ol__err(ctx, OL_EFORMAT, "%s: too short for a safetensors header (%zu bytes)", label, len);
    }
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = (hl << 8) | buf[i];
    if (hl < 2 || hl > OL__ST_MAX_HEADER || hl > len - 8) {
        ol__st_free(out);
        return ol__err(ctx, OL_EFORMAT, "%s: header length %llu does not fit the %zu-byte file (truncated or not "
                                        "safetensors)",
                       label, (unsigned long long)hl, len);
    }
    json_error_t jerr;
    json_t *root = json_loadb((const char *)buf + 8, (size_t)hl, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        ol__st_free(out);
        return ol__err(ctx, OL_EFORMAT, "%s: corrupt header (%s)", label, root ? "not an object" : jerr.text);
    }
    out->data_off = 8 + (size_t)hl;
    size_t data_len = len - out->data_off;
    size_t cap = json_object_size(root);
    out->e = calloc(cap ? cap : 1, sizeof *out->e);
    int rc = out->e ? OL_OK : ol__err(ctx, OL_ENOMEM, "out of memory reading %s", label);
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        if (rc < 0)
            break;
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(val)) {
                rc = ol__err(ctx, OL_EFORMAT, "%s: __metadata__ is not an object", label);
                break;
            }
            size_t nm = json_object_size(val);
            out->meta_keys = calloc(nm ? nm : 1, sizeof(char *));
            out->meta_vals = calloc(nm ? nm : 1, sizeof(char *));
            if (!out->meta_keys || !out->meta_vals) {
                rc = ol__err(ctx, OL_ENOMEM, "out of memory reading %s", label);
                break;
            }
            const char *mk;
            json_t *mv;
            json_object_foreach(val, mk, mv)
            {
                if (!json_is_string(mv)) {
                    rc = ol__err(ctx, OL_EFORMAT, "%s: metadata '%s' is not a string", label, mk);
                    break;
                }
                out->meta_keys[out->nmeta] = strdup(mk);
                out->meta_vals[out->nmeta] = strdup(json_string_value(mv));
                if (!out->meta_keys[out->nmeta] || !out->meta_vals[out->nmeta]) {
                    out->nmeta++;
                    rc = ol__err(ctx, OL_ENOMEM, "out of memory reading %s", label);
                    break;
                }
                out->nmeta++;
            }
            continue;
        }
        rc = parse_entry(ctx, label, key, val, data_len, &out->e[out->n]);
        if (rc >= 0)
            out->n++;
    }
    json_decref(root);
    if (rc >= 0 && out->n > 0) { /* the tensors must tile the data section exactly */
        ol__st_entry *sorted = malloc((size_t)out->n * sizeof *sorted);
        if (!sorted)
            rc = ol__err(ctx, OL_ENOMEM, "out of memory reading %s", label);
        else {
            memcpy(sorted, out->e, (size_t)out->n * sizeof *sorted);
            qsort(sorted, (size_t)out->n, sizeof *sorted, cmp_begin);
            size_t pos = 0;
            for (int i = 0; i < out->n && rc >= 0; i++) {
                if (sorted[i].begin != pos)
                    rc = ol__err(ctx, OL_EFORMAT, "%s: tensor data overlaps or leaves a gap at byte %zu", label, pos);
                pos = sorted[i].end;
            }
            if (rc >= 0 && pos != data_len)
                rc = ol__err(ctx, OL_EFORMAT, "%s: %zu bytes after the last tensor", label, data_len - pos);
            free(sorted);
        }
    } else if (rc >= 0 && data_len != 0) {
        rc = ol__err(ctx, OL_EFORMAT, "%s: data without tensors", label);
    }
    if (rc < 0)
        ol__st_free(out);
    return rc;
}

int ol__st_read(ol_ctx *ctx, const char *path, ol__st_file *out)
{
    memset(out, 0, sizeof *out);
    /* O_NONBLOCK: a FIFO named like a checkpoint must not block the open */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return ol__err(ctx, errno == ENOENT ? OL_ENOENT : OL_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ol__err(ctx, OL_EFORMAT, "%s: not a regular file", path);
    }
    size_t len = (size_t)st.st_size;
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        close(fd);
        return ol__err(ctx, OL_ENOMEM, "%s: out of memory (%zu bytes)", path, len);
    }
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = errno;
            free(buf);
            close(fd);
            return ol__err(ctx, OL_EIO, "%s: read failed: %s", path, r < 0 ? strerror(e) : "file shrank");
        }
        got += (size_t)r;
    }
    close(fd);
    return ol__st_parse(ctx, path, buf, len, out);
}

const ol__st_entry *ol__st_find(const ol__st_file *f, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->e[i].name, name) == 0)
            return &f->e[i];
    return NULL;
}

const uint8_t *ol__st_data(const ol__st_file *f, const ol__st_entry *e) { return f->buf + f->data_off + e->begin; }

const char *ol__st_meta(const ol__st_file *f, const char *key)
{
    for (int i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta_keys[i], key) == 0)
            return f->meta_vals[i];
    return NULL;
}

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0)
            bits = sign;
        else { /* subnormal */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31)
        bits = sign | 0x7f800000u | (man << 13);
    else
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

int ol__st_to_f32(ol_ctx *ctx, const ol__st_file *f, const ol__st_entry *e, float *out)
{
    const uint8_t *p = ol__st_data(f, e);
    for (size_t i = 0; i < e->numel; i++) {
        switch (e->dtype) {
        case OL__ST_F32: memcpy(&out[i], p + 4 * i, 4); break;
        case OL__ST_F64: {
            double d;
            memcpy(&d, p + 8 * i, 8);
            out[i] = (float)d;
            break;
        }
        case OL__ST_F16: {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = half_to_float(h);
            break;
        }
        case OL__ST_BF16: {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            uint32_t bits = (uint32_t)h << 16;
            memcpy(&out[i], &bits, 4);
            break;
        }
        default:
            return ol__err(ctx, OL_EFORMAT, "tensor '%s' is %s, not a floating-point type", e->name,
                           ol__st_dtype_name(e->dtype));
        }
    }
    return OL_OK;
}

uint32_t ol__st_data_crc(const ol__st_file *f)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    const uint8_t *p = f->buf + f->data_off;
    size_t left = f->len - f->data_off;
    while (left > 0) {
        uInt chunk = left > (1u << 30) ? (1u << 30) : (uInt)left;
        crc = crc32(crc, p, chunk);
        p += chunk;
        left -= chunk;
    }
    return (uint32_t)crc;
}

int ol__st_write(ol_ctx *ctx, const char *path, const ol__st_tensor *t, int n, const char *const *meta_keys,
                 const char *const *meta_vals, int nmeta)
{
    return ol__st_write_crc(ctx, path, t, n, meta_keys, meta_vals, nmeta, NULL);
}

/* Where the value of metadata entry crc_key ("key":"xxxxxxxx") sits in the
 * header text, when it occurs exactly once; NULL otherwise. */
static const char *crc_slot(const char *hdr, size_t len, const char *crc_key)
{
    char pat[96];
    int pl = snprintf(pat, sizeof pat, "\"%s\":\"", crc_key);
    if (pl <= 0 || (size_t)pl >= sizeof pat)
        return NULL;
    const char *hit = NULL;
    for (size_t i = 0; i + (size_t)pl + OL__ST_CRC_CHARS < len; i++)
        if (memcmp(hdr + i, pat, (size_t)pl) == 0) {
            if (hit)
                return NULL; /* twice: ambiguous */
            hit = hdr + i + pl;
        }
    return hit && hit[OL__ST_CRC_CHARS] == '"' ? hit : NULL;
}

static uLong crc_bytes(uLong crc, const uint8_t *p, size_t left)
{
    while (left > 0) {
        uInt chunk = left > (1u << 30) ? (1u << 30) : (uInt)left;
        crc = crc32(crc, p, chunk);
        p += chunk;
        left -= chunk;
    }
    return crc;
}

int ol__st_file_crc(const ol__st_file *f, const char *crc_key, uint32_t *crc)
{
    const char *hdr = (const char *)f->buf + 8;
    const char *slot = crc_slot(hdr, f->data_off - 8, crc_key);
    if (!slot)
        return -1;
    size_t at = (size_t)((const uint8_t *)slot - f->buf);
    uLong c = crc_bytes(crc32(0L, Z_NULL, 0), f->buf, at);
    c = crc32(c, (const Bytef *)"00000000", OL__ST_CRC_CHARS);
    c = crc_bytes(c, f->buf + at + OL__ST_CRC_CHARS, f->len - at - OL__ST_CRC_CHARS);
    *crc = (uint32_t)c;
    return 0;
}

int ol__st_write_crc(ol_ctx *ctx, const char *path, const ol__st_tensor *t, int n, const char *const *meta_keys,
                     const char *const *meta_vals, int nmeta, const char *crc_key)
{
    json_t *root = json_object();
    int rc = root ? OL_OK : ol__err(ctx, OL_ENOMEM, "out of memory");
    size_t off = 0;
    if (rc >= 0 && nmeta > 0) {
        json_t *meta = json_object();
        for (int i = 0; meta && i < nmeta; i++)
            json_object_set_new(meta, meta_keys[i], json_string(meta_vals[i]));
        if (meta && crc_key) /* placeholder, replaced below by the CRC of the whole file */
            json_object_set_new(meta, crc_key, json_string("00000000"));
        if (!meta || json_object_set_new(root, "__metadata__", meta) != 0)
            rc = ol__err(ctx, OL_ENOMEM, "out of memory");
    }
    for (int i = 0; rc >= 0 && i < n; i++) {
        size_t numel = 1;
        json_t *shape = json_array();
        for (int d = 0; shape && d < t[i].ndim; d++) {
            json_array_append_new(shape, json_integer(t[i].shape[d]));
            numel *= (size_t)t[i].shape[d];
        }
        size_t bytes = numel * ol__st_dtype_size(t[i].dtype);
        json_t *ent = json_pack("{s:s, s:o, s:[I,I]}", "dtype", ol__st_dtype_name(t[i].dtype), "shape", shape,
                                "data_offsets", (json_int_t)off, (json_int_t)(off + bytes));
        if (!ent || json_object_set_new(root, t[i].name, ent) != 0)
            rc = ol__err(ctx, OL_ENOMEM, "out of memory");
        off += bytes;
    }
    char *hdr = rc >= 0 ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    if (rc >= 0 && !hdr)
        rc = ol__err(ctx, OL_ENOMEM, "out of memory");
    if (rc < 0) {
        free(hdr);
        return rc;
    }
    size_t hl = strlen(hdr), padded = (hl + 8 + 7) / 8 * 8 - 8; /* data starts 8-byte aligned */
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    if (crc_key) { /* CRC of the file as written, with the placeholder in the slot */
        char *slot = (char *)crc_slot(hdr, hl, crc_key);
        if (!slot) {
            free(hdr);
            return ol__err(ctx, OL_EINVAL, "%s: checksum key %s is not unique in the header", path, crc_key);
        }
        uLong c = crc_bytes(crc32(0L, Z_NULL, 0), len8, 8);
        c = crc_bytes(c, (const uint8_t *)hdr, hl);
        for (size_t i = hl; i < padded; i++)
            c = crc32(c, (const Bytef *)" ", 1);
        for (int i = 0; i < n; i++) {
            size_t numel = 1;
            for (int d = 0; d < t[i].ndim; d++)
                numel *= (size_t)t[i].shape[d];
            c = crc_bytes(c, t[i].data, numel * ol__st_dtype_size(t[i].dtype));
        }
        char hex[16];
        snprintf(hex, sizeof hex, "%08lx", (unsigned long)(c & 0xffffffffUL));
        memcpy(slot, hex, OL__ST_CRC_CHARS);
    }
    ol__atomic_file af;
    rc = ol__atomic_open(ctx, &af, path);
    if (rc < 0) {
        free(hdr);
        return rc;
    }
    int bad = fwrite(len8, 1, 8, af.f) != 8 || fwrite(hdr, 1, hl, af.f) != hl;
    for (size_t i = hl; !bad && i < padded; i++)
        bad = fputc(' ', af.f) == EOF;
    for (int i = 0; !bad && i < n; i++) {
        size_t numel = 1;
        for (int d = 0; d < t[i].ndim; d++)
            numel *= (size_t)t[i].shape[d];
        size_t bytes = numel * ol__st_dtype_size(t[i].dtype);
        bad = fwrite(t[i].data, 1, bytes, af.f) != bytes;
    }
    int err = errno;
    free(hdr);
    if (bad) {
        ol__atomic_abort(&af);
        return ol__err(ctx, OL_EIO, "cannot write %s: %s", path, strerror(err ? err : EIO));
    }
    return ol__atomic_commit(ctx, &af);
}
