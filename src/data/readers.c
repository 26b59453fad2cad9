/* Dataset readers: IDX (MNIST, Fashion-MNIST; gzip or raw), CIFAR-10 binary,
 * and synthetic data. Every header field is validated against the bytes that
 * are really there; errors name the file and what is wrong. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "core/internal.h"
#include "core/rng.h"
#include "data/readers.h"
#include "optimlab/data.h"

#define OL__MAX_FILE_BYTES ((size_t)4 << 30)
#define OL__MAX_IMAGE_SIDE 4096

void ol_dataset_free(ol_dataset *d)
{
    if (!d)
        return;
    free(d->images);
    free(d->labels);
    free(d->tokens);
    d->images = NULL;
    d->labels = NULL;
    d->tokens = NULL;
    d->n = d->ntokens = 0;
}

static int file_missing(ol_ctx *ctx, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return ol__err(ctx, OL_ENOENT, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return ol__err(ctx, OL_EIO, "%s: not a regular file", path);
    return OL_OK;
}

/* What a file declares about its size before any of its body is read: a
 * gzip file (magic 1f 8b) records its uncompressed size modulo 2^32 in its
 * last 4 bytes (ISIZE); a raw file's size is its stat size. */
typedef struct {
    int gzip;
    uint64_t size; /* raw: the file's size; gzip: ISIZE */
} declared_size;

static int file_declared(ol_ctx *ctx, const char *path, declared_size *d)
{
    memset(d, 0, sizeof *d);
    struct stat st;
    if (stat(path, &st) != 0)
        return ol__err(ctx, OL_ENOENT, "%s: %s", path, strerror(errno));
    d->size = (uint64_t)st.st_size;
    FILE *f = fopen(path, "rb");
    if (!f)
        return ol__err(ctx, OL_EIO, "%s: cannot open: %s", path, strerror(errno));
    uint8_t magic[2] = {0, 0}, tail[4];
    int rc = OL_OK;
    if (fread(magic, 1, 2, f) == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
        d->gzip = 1;
        if (st.st_size < 18 || fseeko(f, st.st_size - 4, SEEK_SET) != 0 || fread(tail, 1, 4, f) != 4)
            rc = ol__err(ctx, OL_EFORMAT, "%s: truncated gzip file (%lld bytes)", path, (long long)st.st_size);
        else
            d->size = (uint64_t)tail[0] | (uint64_t)tail[1] << 8 | (uint64_t)tail[2] << 16 | (uint64_t)tail[3] << 24;
    }
    fclose(f);
    return rc;
}

/* A gzip stream whose trailer does not record `want` bytes (mod 2^32): a
 * lying header, a truncated stream, or bytes after it (which zlib skips). */
static int check_isize(ol_ctx *ctx, const char *path, const declared_size *d, uint64_t want)
{
    if (!d->gzip || d->size == (want & 0xffffffffu))
        return OL_OK;
    return ol__err(ctx, OL_EFORMAT,
                   "%s: the gzip trailer records %llu uncompressed bytes but the data needs %llu: truncated, corrupt "
                   "or followed by other bytes",
                   path, (unsigned long long)d->size, (unsigned long long)want);
}

/* Read a whole file through zlib (which passes raw files through unchanged);
 * the size it declares is checked against the limits before reading. */
static int slurp(ol_ctx *ctx, const char *path, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    OL__TRY(file_missing(ctx, path));
    declared_size ds;
    OL__TRY(file_declared(ctx, path, &ds));
    if (!ds.gzip && ds.size > OL__MAX_FILE_BYTES)
        return ol__err(ctx, OL_EFORMAT, "%s: %llu bytes, larger than %zu bytes", path, (unsigned long long)ds.size,
                       OL__MAX_FILE_BYTES);
    char what[600];
    snprintf(what, sizeof what, "%.500s (declared size)", path);
    OL__TRY(ol_ctx_check_memory(ctx, ds.size, what));
    gzFile f = gzopen(path, "rb");
    if (!f)
        return ol__err(ctx, OL_EIO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 20, n = 0;
    uint8_t *buf = malloc(cap);
    if (!buf) {
        gzclose(f);
        return ol__err(ctx, OL_ENOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (n == cap) {
            if (cap >= OL__MAX_FILE_BYTES) {
                free(buf);
                gzclose(f);
                return ol__err(ctx, OL_EFORMAT, "%s: larger than %zu bytes", path, OL__MAX_FILE_BYTES);
            }
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                gzclose(f);
                return ol__err(ctx, OL_ENOMEM, "%s: out of memory", path);
            }
            buf = nb;
            cap *= 2;
        }
        unsigned want = (unsigned)((cap - n) < (1u << 30) ? (cap - n) : (1u << 30));
        int got = gzread(f, buf + n, want);
        if (got < 0) {
            int zerr = 0;
            const char *msg = gzerror(f, &zerr);
            int rc = ol__err(ctx, OL_EFORMAT, "%s: corrupt compressed data (%s)", path,
                             zerr == Z_ERRNO ? strerror(errno) : msg);
            free(buf);
            gzclose(f);
            return rc;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    /* gzread stops quietly at a truncated gzip stream; gzclose reports it */
    int zerr = 0;
    gzerror(f, &zerr);
    int closed = gzclose(f);
    if (zerr == Z_BUF_ERROR || closed == Z_BUF_ERROR) {
        free(buf);
        return ol__err(ctx, OL_EFORMAT, "%s: truncated compressed data", path);
    }
    int rc = check_isize(ctx, path, &ds, n);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len = n;
    return OL_OK;
}

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/* gzread in chunks that fit its int return value; returns the bytes read
 * (short at the end of the data) or -1 on a zlib error. */
static int64_t gz_read_full(gzFile f, uint8_t *buf, size_t n)
{
    size_t done = 0;
    while (done < n) {
        size_t left = n - done;
        unsigned want = (unsigned)(left < (1u << 30) ? left : (1u << 30));
        int got = gzread(f, buf + done, want);
        if (got < 0)
            return -1;
        if (got == 0)
            break;
        done += (size_t)got;
    }
    return (int64_t)done;
}

/* The error behind a short or failed gzread: corrupt or truncated compressed
 * data, or a read error; OL_OK when zlib saw none (a plain short file). */
static int gz_failure(ol_ctx *ctx, const char *path, gzFile f)
{
    int zerr = 0;
    const char *msg = gzerror(f, &zerr);
    if (zerr == Z_OK || zerr == Z_STREAM_END)
        return OL_OK;
    if (zerr == Z_BUF_ERROR)
        return ol__err(ctx, OL_EFORMAT, "%s: truncated compressed data", path);
    if (zerr == Z_ERRNO)
        return ol__err(ctx, OL_EIO, "%s: read error: %s", path, strerror(errno));
    if (zerr == Z_MEM_ERROR)
        return ol__err(ctx, OL_ENOMEM, "%s: out of memory", path);
    return ol__err(ctx, OL_EFORMAT, "%s: corrupt compressed data (%s)", path, msg);
}

/* Check an IDX header of which `avail` bytes are at hdr: unsigned bytes,
 * want_dims dimensions, none 0, product within limits. */
static int check_idx_header(ol_ctx *ctx, const char *path, const uint8_t *hdr, size_t avail, int want_dims,
                            uint32_t *dims, size_t *total)
{
    if (avail < 4)
        return ol__err(ctx, OL_EFORMAT, "%s: too short for an IDX header (%zu bytes)", path, avail);
    if (hdr[0] != 0 || hdr[1] != 0)
        return ol__err(ctx, OL_EFORMAT, "%s: not an IDX file (bad magic %02x%02x%02x%02x)", path, hdr[0], hdr[1],
                       hdr[2], hdr[3]);
    if (hdr[2] != 0x08)
        return ol__err(ctx, OL_EFORMAT, "%s: IDX element type 0x%02x is not unsigned byte (0x08)", path, hdr[2]);
    if (hdr[3] != want_dims)
        return ol__err(ctx, OL_EFORMAT, "%s: IDX has %d dimensions, expected %d", path, hdr[3], want_dims);
    if (avail < 4 + 4 * (size_t)want_dims)
        return ol__err(ctx, OL_EFORMAT, "%s: truncated IDX header", path);
    *total = 1;
    for (int i = 0; i < want_dims; i++) {
        dims[i] = be32(hdr + 4 + 4 * i);
        if (dims[i] == 0)
            return ol__err(ctx, OL_EFORMAT, "%s: IDX dimension %d is 0", path, i);
        if (*total > OL__MAX_FILE_BYTES / dims[i])
            return ol__err(ctx, OL_EFORMAT, "%s: IDX dimensions are implausibly large", path);
        *total *= dims[i];
    }
    return OL_OK;
}

/* The in-memory variant: the whole file is in buf. */
static int parse_idx(ol_ctx *ctx, const char *path, const uint8_t *buf, size_t len, int want_dims, uint32_t *dims,
                     const uint8_t **data)
{
    size_t total = 0, hdr = 4 + 4 * (size_t)want_dims;
    OL__TRY(check_idx_header(ctx, path, buf, len < hdr ? len : hdr, want_dims, dims, &total));
    if (len - hdr < total)
        return ol__err(ctx, OL_EFORMAT, "%s: truncated: header promises %zu bytes of data, file has %zu", path, total,
                       len - hdr);
    if (len - hdr > total)
        return ol__err(ctx, OL_EFORMAT, "%s: %zu unexpected bytes after the data", path, len - hdr - total);
    *data = buf + hdr;
    return OL_OK;
}

/* Read an IDX file of unsigned bytes with want_dims dimensions, gzip or raw.
 * The header is read and checked first. The data buffer then grows with the
 * bytes that really arrive, never beyond what the header promises, and
 * reading stops one byte past that: neither a lying header nor an oversized
 * file (or a gzip bomb) makes it allocate or read more than it must. */
static int read_idx(ol_ctx *ctx, const char *path, int want_dims, uint32_t *dims, uint8_t **data)
{
    *data = NULL;
    OL__TRY(file_missing(ctx, path));
    struct stat st;
    if (stat(path, &st) != 0)
        return ol__err(ctx, OL_ENOENT, "%s: %s", path, strerror(errno));
    declared_size ds;
    OL__TRY(file_declared(ctx, path, &ds));
    gzFile f = gzopen(path, "rb");
    if (!f)
        return ol__err(ctx, OL_EIO, "%s: cannot open: %s", path, strerror(errno));
    uint8_t hdr[4 + 4 * 4];
    uint8_t *buf = NULL;
    int rc = OL_OK;
    const size_t hlen = 4 + 4 * (size_t)want_dims;
    size_t total = 0;
    int64_t got = gz_read_full(f, hdr, hlen);
    if (got < (int64_t)hlen) {
        rc = gz_failure(ctx, path, f);
        if (rc < 0)
            goto out;
    }
    rc = check_idx_header(ctx, path, hdr, got > 0 ? (size_t)got : 0, want_dims, dims, &total);
    if (rc >= 0 && want_dims == 3 && (dims[1] > OL__MAX_IMAGE_SIDE || dims[2] > OL__MAX_IMAGE_SIDE))
        rc = ol__err(ctx, OL_EFORMAT, "%s: image size %ux%u is implausible (at most %dx%d)", path, dims[1], dims[2],
                     OL__MAX_IMAGE_SIDE, OL__MAX_IMAGE_SIDE);
    if (rc >= 0) /* the body's declared size, before any of it is read */
        rc = check_isize(ctx, path, &ds, hlen + total);
    if (rc >= 0) {
        char what[600];
        snprintf(what, sizeof what, "%.500s (declared size)", path);
        rc = ol_ctx_check_memory(ctx, total, what);
    }
    if (rc < 0)
        goto out;
    if (gzdirect(f)) { /* a raw file: its size says it all before any data is read */
        size_t have = (size_t)st.st_size - hlen;
        if (have < total) {
            rc = ol__err(ctx, OL_EFORMAT, "%s: truncated: header promises %zu bytes of data, file has %zu", path,
                         total, have);
            goto out;
        }
        if (have > total) {
            rc = ol__err(ctx, OL_EFORMAT, "%s: %zu unexpected bytes after the data", path, have - total);
            goto out;
        }
    }
    size_t cap = total < ((size_t)1 << 20) ? total : ((size_t)1 << 20), n = 0;
    buf = malloc(cap);
    if (!buf) {
        rc = ol__err(ctx, OL_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    for (;;) {
        got = gz_read_full(f, buf + n, cap - n);
        if (got < 0)
            break;
        n += (size_t)got;
        if (n < cap || cap == total)
            break;
        size_t ncap = cap * 2 < total ? cap * 2 : total;
        uint8_t *nb = realloc(buf, ncap);
        if (!nb) {
            rc = ol__err(ctx, OL_ENOMEM, "%s: out of memory", path);
            goto out;
        }
        buf = nb;
        cap = ncap;
    }
    uint8_t extra;
    if (got >= 0 && n == total)
        got = gz_read_full(f, &extra, 1); /* also makes zlib check the gzip trailer */
    rc = gz_failure(ctx, path, f);
    if (rc < 0)
        goto out;
    if (n < total)
        rc = ol__err(ctx, OL_EFORMAT, "%s: truncated: header promises %zu bytes of data, file has %zu", path, total, n);
    else if (got > 0)
        rc = ol__err(ctx, OL_EFORMAT, "%s: unexpected bytes after the %zu bytes of data the header promises", path,
                     total);
out:
    if (gzclose(f) == Z_BUF_ERROR && rc >= 0)
        rc = ol__err(ctx, OL_EFORMAT, "%s: truncated compressed data", path);
    if (rc < 0)
        free(buf);
    else
        *data = buf;
    return rc;
}

/* Build the dataset from parsed IDX images (owned, exactly n*h*w bytes) and labels. */
static int idx_dataset(ol_ctx *ctx, const char *images_label, const uint32_t *idims, uint8_t *idata,
                       const char *labels_label, const uint32_t *ldims, const uint8_t *ldata, ol_dataset *out)
{
    if (idims[0] != ldims[0])
        return ol__err(ctx, OL_EFORMAT, "%s has %u images but %s has %u labels", images_label, idims[0], labels_label,
                       ldims[0]);
    if (idims[1] > OL__MAX_IMAGE_SIDE || idims[2] > OL__MAX_IMAGE_SIDE)
        return ol__err(ctx, OL_EFORMAT, "%s: image size %ux%u is implausible", images_label, idims[1], idims[2]);
    int maxl = 0;
    for (uint32_t i = 0; i < ldims[0]; i++)
        if (ldata[i] > maxl)
            maxl = ldata[i];
    if (maxl >= 100)
        return ol__err(ctx, OL_EFORMAT, "%s: label %d is out of range (at most 100 classes)", labels_label, maxl);
    out->labels = malloc((size_t)ldims[0] * sizeof(int32_t));
    if (!out->labels)
        return ol__err(ctx, OL_ENOMEM, "out of memory loading %s", labels_label);
    out->images = idata;
    for (uint32_t i = 0; i < ldims[0]; i++)
        out->labels[i] = ldata[i];
    out->n = idims[0];
    out->c = 1;
    out->h = (int)idims[1];
    out->w = (int)idims[2];
    out->num_classes = maxl < 9 ? 10 : maxl + 1;
    snprintf(out->name, sizeof out->name, "idx");
    ol_dataset_compute_stats(out, out->mean, out->std);
    return OL_OK;
}

int ol_dataset_load_idx(ol_ctx *ctx, const char *images_path, const char *labels_path, ol_dataset *out)
{
    memset(out, 0, sizeof *out);
    uint8_t *idata = NULL, *ldata = NULL;
    uint32_t idims[3] = {0}, ldims[1] = {0};
    int rc = read_idx(ctx, images_path, 3, idims, &idata);
    if (rc >= 0)
        rc = read_idx(ctx, labels_path, 1, ldims, &ldata);
    if (rc >= 0)
        rc = idx_dataset(ctx, images_path, idims, idata, labels_path, ldims, ldata, out);
    if (rc < 0)
        free(idata); /* on success the dataset owns it */
    free(ldata);
    return rc;
}

int ol__idx_from_buffers(ol_ctx *ctx, const char *images_label, const uint8_t *ib, size_t il, const char *labels_label,
                         const uint8_t *lb, size_t ll, ol_dataset *out)
{
    memset(out, 0, sizeof *out);
    uint32_t idims[3] = {0}, ldims[1] = {0};
    const uint8_t *ip = NULL, *lp = NULL;
    OL__TRY(parse_idx(ctx, images_label, ib, il, 3, idims, &ip));
    OL__TRY(parse_idx(ctx, labels_label, lb, ll, 1, ldims, &lp));
    size_t npix = (size_t)idims[0] * idims[1] * idims[2];
    uint8_t *copy = malloc(npix ? npix : 1);
    if (!copy)
        return ol__err(ctx, OL_ENOMEM, "out of memory loading %s", images_label);
    memcpy(copy, ip, npix);
    int rc = idx_dataset(ctx, images_label, idims, copy, labels_label, ldims, lp, out);
    if (rc < 0)
        free(copy);
    return rc;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int ol_dataset_load_mnist_dir(ol_ctx *ctx, const char *dir, int train, ol_dataset *out)
{
    memset(out, 0, sizeof *out);
    struct stat st;
    if (stat(dir, &st) != 0)
        return ol__err(ctx, OL_ENOENT, "data directory %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return ol__err(ctx, OL_ENOENT, "data directory %s is not a directory", dir);
    const char *pre = train ? "train" : "t10k";
    char ip[4096], lp[4096];
    snprintf(ip, sizeof ip, "%s/%s-images-idx3-ubyte.gz", dir, pre);
    if (!exists(ip))
        snprintf(ip, sizeof ip, "%s/%s-images-idx3-ubyte", dir, pre);
    snprintf(lp, sizeof lp, "%s/%s-labels-idx1-ubyte.gz", dir, pre);
    if (!exists(lp))
        snprintf(lp, sizeof lp, "%s/%s-labels-idx1-ubyte", dir, pre);
    if (!exists(ip))
        return ol__err(ctx, OL_ENOENT, "%s: no %s-images-idx3-ubyte[.gz] (is dataset-fashion-mnist installed?)", dir,
                       pre);
    if (!exists(lp))
        return ol__err(ctx, OL_ENOENT, "%s: no %s-labels-idx1-ubyte[.gz]", dir, pre);
    return ol_dataset_load_idx(ctx, ip, lp, out);
}

int ol__cifar_from_buffers(ol_ctx *ctx, const char *const *labels, uint8_t *const *bufs, const size_t *lens, int nfiles,
                           ol_dataset *out)
{
    memset(out, 0, sizeof *out);
    const size_t rec = 1 + 3 * 32 * 32;
    size_t total = 0;
    for (int f = 0; f < nfiles; f++) {
        if (lens[f] == 0 || lens[f] % rec != 0)
            return ol__err(ctx, OL_EFORMAT, "%s: %zu bytes is not a whole number of %zu-byte CIFAR-10 records",
                           labels[f], lens[f], rec);
        for (size_t r = 0; r < lens[f] / rec; r++)
            if (bufs[f][r * rec] > 9)
                return ol__err(ctx, OL_EFORMAT, "%s: record %zu has label %d (CIFAR-10 labels are 0..9)", labels[f],
                               r, bufs[f][r * rec]);
        total += lens[f] / rec;
    }
    out->images = malloc(total * (rec - 1) + 1);
    out->labels = malloc(total * sizeof(int32_t) + 1);
    if (!out->images || !out->labels) {
        ol_dataset_free(out);
        return ol__err(ctx, OL_ENOMEM, "out of memory loading CIFAR-10");
    }
    size_t k = 0;
    for (int f = 0; f < nfiles; f++)
        for (size_t r = 0; r < lens[f] / rec; r++, k++) {
            out->labels[k] = bufs[f][r * rec];
            memcpy(out->images + k * (rec - 1), bufs[f] + r * rec + 1, rec - 1);
        }
    out->n = (int64_t)total;
    out->c = 3;
    out->h = out->w = 32;
    out->num_classes = 10;
    snprintf(out->name, sizeof out->name, "cifar10");
    ol_dataset_compute_stats(out, out->mean, out->std);
    return OL_OK;
}

int ol_dataset_load_cifar10(ol_ctx *ctx, const char *dir, int train, ol_dataset *out)
{
    memset(out, 0, sizeof *out);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return ol__err(ctx, OL_ENOENT, "data directory %s: %s", dir, stat(dir, &st) ? strerror(errno) : "not a directory");
    const int nfiles = train ? 5 : 1;
    uint8_t *bufs[5] = {0};
    size_t lens[5] = {0};
    char paths[5][4096];
    const char *labels[5];
    int rc = OL_OK;
    for (int f = 0; f < nfiles && rc >= 0; f++) {
        if (train)
            snprintf(paths[f], sizeof paths[f], "%s/data_batch_%d.bin", dir, f + 1);
        else
            snprintf(paths[f], sizeof paths[f], "%s/test_batch.bin", dir);
        labels[f] = paths[f];
        rc = slurp(ctx, paths[f], &bufs[f], &lens[f]);
    }
    if (rc >= 0)
        rc = ol__cifar_from_buffers(ctx, labels, bufs, lens, nfiles, out);
    for (int f = 0; f < 5; f++)
        free(bufs[f]);
    return rc;
}

int ol_dataset_synthetic(ol_ctx *ctx, int64_t n, int c, int h, int w, int classes, uint64_t seed, ol_dataset *out)
{
    memset(out, 0, sizeof *out);
    if (n <= 0 || c <= 0 || c > OL_DATA_MAX_CHANNELS || h <= 0 || w <= 0 || classes < 2 || classes > 100)
        return ol__err(ctx, OL_EINVAL, "synthetic dataset: invalid shape n=%lld %dx%dx%d classes=%d", (long long)n, c,
                       h, w, classes);
    size_t per = (size_t)c * h * w;
    OL__TRY(ol_ctx_check_memory(ctx, (uint64_t)n * (per + sizeof(int32_t)), "the synthetic dataset"));
    uint8_t *tmpl = malloc(per * (size_t)classes);
    out->images = malloc(per * (size_t)n);
    out->labels = malloc((size_t)n * sizeof(int32_t));
    if (!tmpl || !out->images || !out->labels) {
        free(tmpl);
        ol_dataset_free(out);
        return ol__err(ctx, OL_ENOMEM, "out of memory for the synthetic dataset");
    }
    ol__rng r;
    ol__rng_seed(&r, seed, OL__RNG_DATA, 0);
    for (size_t i = 0; i < per * (size_t)classes; i++)
        tmpl[i] = (uint8_t)(64 + ol__rng_below(&r, 128));
    for (int64_t i = 0; i < n; i++) {
        ol__rng_seed(&r, seed, OL__RNG_DATA, (uint64_t)i + 1);
        int lab = (int)ol__rng_below(&r, (uint32_t)classes);
        out->labels[i] = lab;
        for (size_t j = 0; j < per; j++) {
            double v = tmpl[(size_t)lab * per + j] + 40.0 * ol__rng_normal(&r);
            out->images[(size_t)i * per + j] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
    free(tmpl);
    out->n = n;
    out->c = c;
    out->h = h;
    out->w = w;
    out->num_classes = classes;
    snprintf(out->name, sizeof out->name, "synthetic");
    ol_dataset_compute_stats(out, out->mean, out->std);
    return OL_OK;
}
