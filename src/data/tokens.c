/* Token streams for language models: byte-level text and llm.c's token files,
 * cut into non-overlapping windows of seq_len + 1 tokens (see data.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/internal.h"
#include "optimlab/data.h"

#define OL__TOKENS_MAGIC 20240520
#define OL__TOKENS_VERSION 1
#define OL__TOKENS_HEADER 256 /* int32 words */

static int check_window(ol_ctx *ctx, int64_t ntokens, int seq_len, const char *what)
{
    if (seq_len < 1 || seq_len > (1 << 20))
        return ol__err(ctx, OL_ERANGE, "context length %d outside 1..%d", seq_len, 1 << 20);
    if (ntokens < (int64_t)seq_len + 1)
        return ol__err(ctx, OL_ERANGE, "%s has %lld tokens, fewer than one window of seq_len + 1 = %d", what,
                       (long long)ntokens, seq_len + 1);
    return OL_OK;
}

/* Takes ownership of tokens (freed on failure too). */
static int adopt(ol_ctx *ctx, uint16_t *tokens, int64_t ntokens, int vocab, int seq_len, const char *what,
                 ol_dataset *out)
{
    memset(out, 0, sizeof *out);
    int rc = check_window(ctx, ntokens, seq_len, what);
    if (rc >= 0 && (vocab < 2 || vocab > 65536))
        rc = ol__err(ctx, OL_ERANGE, "vocabulary of %d outside 2..65536", vocab);
    for (int64_t i = 0; rc >= 0 && i < ntokens; i++)
        if (tokens[i] >= vocab)
            rc = ol__err(ctx, OL_EFORMAT, "%s: token %lld is %u, beyond the vocabulary of %d", what, (long long)i,
                         (unsigned)tokens[i], vocab);
    if (rc < 0) {
        free(tokens);
        return rc;
    }
    out->tokens = tokens;
    out->ntokens = ntokens;
    out->seq_len = seq_len;
    out->n = (ntokens - 1) / seq_len;
    out->c = seq_len;
    out->h = out->w = 1;
    out->num_classes = vocab;
    out->std[0] = 1.0f;
    snprintf(out->name, sizeof out->name, "tokens");
    return OL_OK;
}

int ol_dataset_from_tokens(ol_ctx *ctx, const uint16_t *tokens, int64_t ntokens, int vocab, int seq_len,
                           ol_dataset *out)
{
    memset(out, 0, sizeof *out);
    if (ntokens < 0)
        return ol__err(ctx, OL_EINVAL, "negative token count");
    uint16_t *copy = malloc((size_t)(ntokens > 0 ? ntokens : 1) * sizeof(uint16_t));
    if (!copy)
        return ol__err(ctx, OL_ENOMEM, "out of memory for %lld tokens", (long long)ntokens);
    if (ntokens > 0)
        memcpy(copy, tokens, (size_t)ntokens * sizeof(uint16_t));
    return adopt(ctx, copy, ntokens, vocab, seq_len, "the token stream", out);
}

/* path opened for reading (*st its stat), refused unless a regular file. */
static int open_regular(ol_ctx *ctx, const char *path, struct stat *st, FILE **f)
{
    if (stat(path, st) != 0)
        return ol__err(ctx, OL_ENOENT, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st->st_mode))
        return ol__err(ctx, OL_EIO, "%s: not a regular file", path);
    if (!(*f = fopen(path, "rb")))
        return ol__err(ctx, OL_EIO, "%s: cannot open: %s", path, strerror(errno));
    return OL_OK;
}

/* The whole of a regular file (its size from stat, checked against the memory budget by the caller). */
static int read_file(ol_ctx *ctx, const char *path, uint8_t **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    struct stat st;
    FILE *f = NULL;
    OL__TRY(open_regular(ctx, path, &st, &f));
    uint8_t *b = malloc((size_t)st.st_size + 1);
    if (!b) {
        fclose(f);
        return ol__err(ctx, OL_ENOMEM, "out of memory reading %s", path);
    }
    size_t got = fread(b, 1, (size_t)st.st_size + 1, f); /* one more: a file that grew is caught */
    int bad = ferror(f);
    fclose(f);
    if (bad || got != (size_t)st.st_size) {
        free(b);
        return ol__err(ctx, OL_EIO, "%s: read %zu bytes of %lld", path, got, (long long)st.st_size);
    }
    *buf = b;
    *len = got;
    return OL_OK;
}

int ol_dataset_load_text(ol_ctx *ctx, const char *const *paths, int npaths, int seq_len, double val_fraction,
                         ol_dataset *train, ol_dataset *val)
{
    memset(train, 0, sizeof *train);
    memset(val, 0, sizeof *val);
    if (npaths < 1)
        return ol__err(ctx, OL_EINVAL, "no text file");
    if (!(val_fraction > 0.0 && val_fraction < 1.0))
        return ol__err(ctx, OL_ERANGE, "validation fraction must be in (0, 1), got %g", val_fraction);
    uint64_t bytes = 0; /* each byte: read once, then a uint16 token */
    for (int i = 0; i < npaths; i++) {
        struct stat st;
        if (stat(paths[i], &st) != 0)
            return ol__err(ctx, OL_ENOENT, "%s: %s", paths[i], strerror(errno));
        if (!S_ISREG(st.st_mode))
            return ol__err(ctx, OL_EIO, "%s: not a regular file", paths[i]);
        bytes += (uint64_t)st.st_size;
    }
    OL__TRY(ol_ctx_check_memory(ctx, 3 * bytes, "the text (one byte read, two as a token, for each character)"));
    uint16_t *all = NULL;
    int64_t total = 0;
    for (int i = 0; i < npaths; i++) {
        uint8_t *b;
        size_t len;
        int rc = read_file(ctx, paths[i], &b, &len);
        if (rc >= 0 && len == 0)
            rc = ol__err(ctx, OL_EFORMAT, "%s: empty text file", paths[i]);
        uint16_t *grown = rc >= 0 ? realloc(all, (size_t)(total + (int64_t)len) * sizeof(uint16_t)) : NULL;
        if (rc >= 0 && !grown)
            rc = ol__err(ctx, OL_ENOMEM, "out of memory for the text");
        if (rc < 0) {
            free(b);
            free(all);
            return rc;
        }
        all = grown;
        for (size_t k = 0; k < len; k++)
            all[total + (int64_t)k] = b[k];
        total += (int64_t)len;
        free(b);
    }
    const int64_t nval = (int64_t)(val_fraction * (double)total + 0.5), ntrain = total - nval;
    uint16_t *vt = malloc((size_t)(nval > 0 ? nval : 1) * sizeof(uint16_t));
    if (!vt) {
        free(all);
        return ol__err(ctx, OL_ENOMEM, "out of memory for the text");
    }
    memcpy(vt, all + ntrain, (size_t)nval * sizeof(uint16_t));
    int rc = adopt(ctx, all, ntrain, 256, seq_len, "the training text", train);
    if (rc < 0) {
        free(vt);
        return rc;
    }
    rc = adopt(ctx, vt, nval, 256, seq_len, "the validation text", val);
    if (rc < 0) {
        ol_dataset_free(train);
        return rc;
    }
    snprintf(train->name, sizeof train->name, "text");
    snprintf(val->name, sizeof val->name, "text-val");
    return OL_OK;
}

static int32_t le32(const uint8_t *p)
{
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

/* The header, checked against the file's size before any of the body is read. */
static int tokens_header(ol_ctx *ctx, const char *path, FILE *f, int64_t *n)
{
    struct stat st;
    uint8_t h[OL__TOKENS_HEADER * 4];
    const size_t hdr = sizeof h;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode))
        return ol__err(ctx, OL_EIO, "%s: not a regular file", path);
    const uint64_t size = (uint64_t)st.st_size;
    if (size < hdr || fread(h, 1, hdr, f) != hdr)
        return ol__err(ctx, OL_EFORMAT, "%s: %llu bytes, shorter than the 1024-byte header of a token file", path,
                       (unsigned long long)size);
    if (le32(h) != OL__TOKENS_MAGIC)
        return ol__err(ctx, OL_EFORMAT, "%s: magic %d, expected %d (llm.c token file)", path, le32(h),
                       OL__TOKENS_MAGIC);
    if (le32(h + 4) != OL__TOKENS_VERSION)
        return ol__err(ctx, OL_EFORMAT, "%s: version %d, expected %d (uint16 tokens)", path, le32(h + 4),
                       OL__TOKENS_VERSION);
    *n = le32(h + 8);
    if (*n < 0 || size - hdr != (uint64_t)*n * sizeof(uint16_t))
        return ol__err(ctx, OL_EFORMAT,
                       "%s: the header declares %lld tokens (%lld bytes) but the body has %llu bytes%s", path,
                       (long long)*n, (long long)*n * 2, (unsigned long long)(size - hdr),
                       *n >= 0 && size - hdr < (uint64_t)*n * 2 ? ": truncated" : "");
    char what[600];
    snprintf(what, sizeof what, "%.500s (%lld tokens)", path, (long long)*n);
    return ol_ctx_check_memory(ctx, (uint64_t)*n * sizeof(uint16_t), what);
}

int ol_dataset_load_tokens(ol_ctx *ctx, const char *path, int vocab, int seq_len, ol_dataset *out)
{
    memset(out, 0, sizeof *out);
    struct stat st;
    FILE *f = NULL;
    OL__TRY(open_regular(ctx, path, &st, &f));
    int64_t n = 0;
    int rc = tokens_header(ctx, path, f, &n);
    uint16_t *t = rc >= 0 ? malloc((size_t)(n > 0 ? n : 1) * sizeof(uint16_t)) : NULL;
    if (rc >= 0 && !t)
        rc = ol__err(ctx, OL_ENOMEM, "out of memory for %lld tokens", (long long)n);
    if (rc >= 0 && fread(t, sizeof(uint16_t), (size_t)n, f) != (size_t)n)
        rc = ol__err(ctx, OL_EIO, "%s: read error", path);
    fclose(f);
    if (rc < 0) {
        free(t);
        return rc;
    }
    for (int64_t i = 0; i < n; i++) { /* stored little-endian */
        const uint8_t *b = (const uint8_t *)(t + i);
        t[i] = (uint16_t)(b[0] | b[1] << 8);
    }
    char what[600];
    snprintf(what, sizeof what, "%.500s", path);
    OL__TRY(adopt(ctx, t, n, vocab, seq_len, what, out));
    snprintf(out->name, sizeof out->name, "tokens");
    return OL_OK;
}

int ol_dataset_outputs_per_sample(const ol_dataset *d) { return d->tokens ? d->seq_len : 1; }

uint64_t ol_dataset_memory_bytes(const ol_dataset *d)
{
    if (d->tokens)
        return (uint64_t)d->ntokens * sizeof(uint16_t);
    return (uint64_t)d->n * ((uint64_t)d->c * d->h * d->w + sizeof(int32_t));
}
