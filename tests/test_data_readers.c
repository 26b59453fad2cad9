/* Dataset readers and the batch loader.
 *
 * Readers: small IDX and CIFAR-10 files are written to a fresh temporary
 * directory at test time (raw, and gzip through zlib), valid ones and every
 * kind of broken one. Each broken file must give the right negative code and
 * a message that names the file; nothing may allocate by the header's word.
 *
 * Utilities and loader: truncate, split, statistics and normalisation,
 * deterministic crop/flip keyed by (seed, epoch, index), per-epoch shuffles,
 * resuming an epoch mid-way, prefetch on/off equivalence and drop_last. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "optimlab.h"
#include "testutil.h"

static char g_dir[256];
static ol_ctx *g_ctx;

/* ---- file helpers ----------------------------------------------------------- */

static void path_of(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", g_dir, name); }

static void write_raw(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
        TU_FAIL("cannot write %s", path);
        exit(1);
    }
}

static void write_gz(const char *path, const void *data, size_t len)
{
    gzFile f = gzopen(path, "wb");
    if (!f || (len && gzwrite(f, data, (unsigned)len) != (int)len) || gzclose(f) != Z_OK) {
        TU_FAIL("cannot write %s", path);
        exit(1);
    }
}

static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* IDX: magic 00 00 type ndims, big-endian dims, data. Returns the length. */
static size_t idx_build(uint8_t *buf, uint8_t type, int ndims, const uint32_t *dims, const uint8_t *data,
                        size_t ndata)
{
    buf[0] = 0;
    buf[1] = 0;
    buf[2] = type;
    buf[3] = (uint8_t)ndims;
    size_t o = 4;
    for (int i = 0; i < ndims; i++) {
        buf[o++] = (uint8_t)(dims[i] >> 24);
        buf[o++] = (uint8_t)(dims[i] >> 16);
        buf[o++] = (uint8_t)(dims[i] >> 8);
        buf[o++] = (uint8_t)dims[i];
    }
    if (ndata)
        memcpy(buf + o, data, ndata);
    return o + ndata;
}

enum { NIMG = 5, IH = 3, IW = 4 };
static uint8_t g_pix[NIMG * IH * IW];
static uint8_t g_lab[NIMG] = {3, 0, 9, 1, 7};
static uint8_t g_ibuf[4096], g_lbuf[4096];
static size_t g_ilen, g_llen;

static void good_idx(void)
{
    for (int i = 0; i < NIMG * IH * IW; i++)
        g_pix[i] = (uint8_t)(i * 37 + 11);
    uint32_t idims[3] = {NIMG, IH, IW}, ldims[1] = {NIMG};
    g_ilen = idx_build(g_ibuf, 0x08, 3, idims, g_pix, sizeof g_pix);
    g_llen = idx_build(g_lbuf, 0x08, 1, ldims, g_lab, sizeof g_lab);
}

/* Expect ol_dataset_load_idx(images, labels) to fail with code, naming `names`. */
static void expect_idx_fail(const char *label, const char *ip, const char *lp, int code, const char *names)
{
    ol_dataset d;
    ol_ctx_clear_error(g_ctx);
    int rc = ol_dataset_load_idx(g_ctx, ip, lp, &d);
    tu_checks++;
    if (rc != code)
        TU_FAIL("%s: ol_dataset_load_idx returned %d (%s), expected %d (%s); message: %s", label, rc,
                ol_strerror(rc), code, ol_strerror(code), ol_ctx_errmsg(g_ctx));
    tu_checks++;
    if (!strstr(ol_ctx_errmsg(g_ctx), names))
        TU_FAIL("%s: message does not name %s: '%s'", label, names, ol_ctx_errmsg(g_ctx));
    tu_checks++;
    if (strchr(ol_ctx_errmsg(g_ctx), '\n'))
        TU_FAIL("%s: message is not one line: '%s'", label, ol_ctx_errmsg(g_ctx));
    tu_checks++;
    if (rc >= 0 || d.images || d.labels || d.n)
        TU_FAIL("%s: output dataset not left empty", label);
    if (rc >= 0)
        ol_dataset_free(&d);
}

/* Write images as `iname` (gz when gz) and the good labels, and expect failure. */
static void case_images(const char *label, const uint8_t *img, size_t ilen, int gz, int code)
{
    char ip[512], lp[512];
    path_of(ip, sizeof ip, gz ? "case-images.gz" : "case-images");
    path_of(lp, sizeof lp, "case-labels");
    if (gz)
        write_gz(ip, img, ilen);
    else
        write_raw(ip, img, ilen);
    write_raw(lp, g_lbuf, g_llen);
    expect_idx_fail(label, ip, lp, code, ip);
}

static void case_labels(const char *label, const uint8_t *lab, size_t llen, int code)
{
    char ip[512], lp[512];
    path_of(ip, sizeof ip, "case-images");
    path_of(lp, sizeof lp, "case-labels");
    write_raw(ip, g_ibuf, g_ilen);
    write_raw(lp, lab, llen);
    expect_idx_fail(label, ip, lp, code, lp);
}

static void check_good_dataset(const char *label, const ol_dataset *d)
{
    ASSERT_EQ_INT(d->n, NIMG);
    ASSERT_EQ_INT(d->c, 1);
    ASSERT_EQ_INT(d->h, IH);
    ASSERT_EQ_INT(d->w, IW);
    ASSERT_EQ_INT(d->num_classes, 10);
    tu_checks++;
    if (!d->images || memcmp(d->images, g_pix, sizeof g_pix) != 0)
        TU_FAIL("%s: pixels differ", label);
    for (int i = 0; i < NIMG && d->labels; i++)
        ASSERT_EQ_INT(d->labels[i], g_lab[i]);
    double s = 0.0, ss = 0.0;
    for (size_t i = 0; i < sizeof g_pix; i++) {
        s += g_pix[i] / 255.0;
        ss += (g_pix[i] / 255.0) * (g_pix[i] / 255.0);
    }
    double mu = s / sizeof g_pix;
    ASSERT_NEAR(d->mean[0], mu, 1e-6);
    ASSERT_NEAR(d->std[0], sqrt(ss / sizeof g_pix - mu * mu), 1e-6);
}

static void test_idx(void)
{
    good_idx();
    char ip[512], lp[512];
    ol_dataset d;

    /* valid, raw */
    path_of(ip, sizeof ip, "good-images");
    path_of(lp, sizeof lp, "good-labels");
    write_raw(ip, g_ibuf, g_ilen);
    write_raw(lp, g_lbuf, g_llen);
    ASSERT_OK(ol_dataset_load_idx(g_ctx, ip, lp, &d), g_ctx);
    check_good_dataset("raw", &d);
    ol_dataset_free(&d);
    /* valid, gzip (and one of each) */
    path_of(ip, sizeof ip, "good-images.gz");
    path_of(lp, sizeof lp, "good-labels.gz");
    write_gz(ip, g_ibuf, g_ilen);
    write_gz(lp, g_lbuf, g_llen);
    ASSERT_OK(ol_dataset_load_idx(g_ctx, ip, lp, &d), g_ctx);
    check_good_dataset("gzip", &d);
    ol_dataset_free(&d);
    path_of(lp, sizeof lp, "good-labels");
    ASSERT_OK(ol_dataset_load_idx(g_ctx, ip, lp, &d), g_ctx);
    check_good_dataset("gzip+raw", &d);
    ol_dataset_free(&d);
    /* a label of 12 gives 13 classes */
    {
        uint8_t lab[NIMG], lb[64];
        memcpy(lab, g_lab, sizeof lab);
        lab[2] = 12;
        uint32_t ld[1] = {NIMG};
        size_t n = idx_build(lb, 0x08, 1, ld, lab, sizeof lab);
        path_of(lp, sizeof lp, "labels-13");
        write_raw(lp, lb, n);
        path_of(ip, sizeof ip, "good-images");
        ASSERT_OK(ol_dataset_load_idx(g_ctx, ip, lp, &d), g_ctx);
        ASSERT_EQ_INT(d.num_classes, 13);
        ol_dataset_free(&d);
    }

    uint8_t b[4096];
    size_t n;
    /* count mismatch: 5 images, 4 labels (the message names both files) */
    {
        uint32_t ld[1] = {NIMG - 1};
        n = idx_build(b, 0x08, 1, ld, g_lab, NIMG - 1);
        path_of(ip, sizeof ip, "case-images");
        path_of(lp, sizeof lp, "case-labels");
        write_raw(ip, g_ibuf, g_ilen);
        write_raw(lp, b, n);
        expect_idx_fail("count mismatch (images)", ip, lp, OL_EFORMAT, ip);
        expect_idx_fail("count mismatch (labels)", ip, lp, OL_EFORMAT, lp);
    }
    /* wrong magic */
    memcpy(b, g_ibuf, g_ilen);
    b[0] = 0x50;
    b[1] = 0x4b; /* "PK": a zip file */
    case_images("bad magic", b, g_ilen, 0, OL_EFORMAT);
    case_images("bad magic (gz)", b, g_ilen, 1, OL_EFORMAT);
    /* wrong element type: 0x0D = float */
    memcpy(b, g_ibuf, g_ilen);
    b[2] = 0x0D;
    case_images("element type", b, g_ilen, 0, OL_EFORMAT);
    /* wrong number of dims: images with 2, labels with 2 */
    {
        uint32_t d2[2] = {NIMG, IH * IW};
        n = idx_build(b, 0x08, 2, d2, g_pix, sizeof g_pix);
        case_images("images with 2 dims", b, n, 0, OL_EFORMAT);
        uint32_t l2[2] = {NIMG, 1};
        n = idx_build(b, 0x08, 2, l2, g_lab, sizeof g_lab);
        case_labels("labels with 2 dims", b, n, OL_EFORMAT);
    }
    /* dimension 0 */
    {
        uint32_t d0[3] = {NIMG, 0, IW};
        n = idx_build(b, 0x08, 3, d0, NULL, 0);
        case_images("dimension 0", b, n, 0, OL_EFORMAT);
        uint32_t l0[1] = {0};
        n = idx_build(b, 0x08, 1, l0, NULL, 0);
        case_labels("0 labels", b, n, OL_EFORMAT);
    }
    /* truncated header: magic + 1.5 dims; and fewer than 4 bytes; and empty */
    case_images("truncated header", g_ibuf, 10, 0, OL_EFORMAT);
    case_images("truncated header (gz)", g_ibuf, 10, 1, OL_EFORMAT);
    case_images("3-byte file", g_ibuf, 3, 0, OL_EFORMAT);
    case_images("empty file", g_ibuf, 0, 0, OL_EFORMAT);
    case_labels("truncated label header", g_lbuf, 6, OL_EFORMAT);
    /* truncated data */
    case_images("truncated data", g_ibuf, g_ilen - 7, 0, OL_EFORMAT);
    case_images("truncated data (gz)", g_ibuf, g_ilen - 1, 1, OL_EFORMAT);
    case_labels("truncated labels", g_lbuf, g_llen - 1, OL_EFORMAT);
    /* trailing bytes */
    memcpy(b, g_ibuf, g_ilen);
    memset(b + g_ilen, 0, 3);
    case_images("trailing bytes", b, g_ilen + 3, 0, OL_EFORMAT);
    case_images("trailing bytes (gz)", b, g_ilen + 3, 1, OL_EFORMAT);
    memcpy(b, g_lbuf, g_llen);
    b[g_llen] = 1;
    case_labels("trailing label byte", b, g_llen + 1, OL_EFORMAT);

    /* truncated gzip streams: cut inside the deflate data, and just the trailer */
    {
        char gp[512];
        path_of(gp, sizeof gp, "good-images.gz");
        size_t glen = 0;
        uint8_t *g = read_all(gp, &glen);
        ASSERT_TRUE(g != NULL && glen > 30);
        if (g) {
            const size_t cuts[] = {glen / 2, glen - 8, glen - 4, glen - 1, 12};
            for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
                path_of(ip, sizeof ip, "cut-images.gz");
                path_of(lp, sizeof lp, "good-labels");
                write_raw(ip, g, cuts[k]);
                char what[64];
                snprintf(what, sizeof what, "gzip cut to %zu of %zu bytes", cuts[k], glen);
                expect_idx_fail(what, ip, lp, OL_EFORMAT, ip);
            }
            /* corrupt: flip bits in the deflate data, then in the CRC */
            const size_t flips[] = {glen / 2, glen - 6, 3 /* gzip flags: reserved bits */};
            for (size_t k = 0; k < sizeof flips / sizeof flips[0]; k++) {
                uint8_t *c = malloc(glen);
                memcpy(c, g, glen);
                c[flips[k]] ^= flips[k] == 3 ? 0xe0 : 0x5a;
                path_of(ip, sizeof ip, "corrupt-images.gz");
                write_raw(ip, c, glen);
                char what[64];
                snprintf(what, sizeof what, "gzip corrupted at byte %zu of %zu", flips[k], glen);
                expect_idx_fail(what, ip, lp, OL_EFORMAT, ip);
                free(c);
            }
            /* a gzip header and nothing else */
            path_of(ip, sizeof ip, "header-only.gz");
            write_raw(ip, g, 10);
            expect_idx_fail("gzip header only", ip, lp, OL_EFORMAT, ip);
            free(g);
        }
    }

    /* missing file, directory instead of file */
    path_of(ip, sizeof ip, "no-such-images");
    path_of(lp, sizeof lp, "good-labels");
    expect_idx_fail("missing images", ip, lp, OL_ENOENT, ip);
    path_of(ip, sizeof ip, "good-images");
    path_of(lp, sizeof lp, "no-such-labels.gz");
    expect_idx_fail("missing labels", ip, lp, OL_ENOENT, lp);
    path_of(ip, sizeof ip, "a-directory");
    mkdir(ip, 0755);
    path_of(lp, sizeof lp, "good-labels");
    expect_idx_fail("directory", ip, lp, OL_EIO, ip);

    /* huge declared dims: fail fast, without allocating by the header's word */
    {
        struct rusage r0, r1;
        getrusage(RUSAGE_SELF, &r0);
        double t0 = ol_now();
        const uint32_t huge[][3] = {{0xffffffffu, 0xffffffffu, 0xffffffffu},
                                    {60000000u, 28, 28},
                                    {1000000u, 28, 28},
                                    {NIMG, 100000, 100000},
                                    {NIMG, 5000, 2}};
        for (size_t k = 0; k < sizeof huge / sizeof huge[0]; k++) {
            n = idx_build(b, 0x08, 3, huge[k], g_pix, sizeof g_pix);
            char what[96];
            snprintf(what, sizeof what, "huge dims %ux%ux%u", huge[k][0], huge[k][1], huge[k][2]);
            case_images(what, b, n, 0, OL_EFORMAT);
            case_images(what, b, n, 1, OL_EFORMAT);
        }
        uint32_t hl[1] = {0xfffffff0u};
        n = idx_build(b, 0x08, 1, hl, g_lab, sizeof g_lab);
        case_labels("huge label count", b, n, OL_EFORMAT);
        double dt = ol_now() - t0;
        getrusage(RUSAGE_SELF, &r1);
        tu_checks++;
        if (dt > 2.0)
            TU_FAIL("huge-dims cases took %.2f s", dt);
        tu_checks++;
        if (r1.ru_maxrss - r0.ru_maxrss > 64 * 1024)
            TU_FAIL("huge-dims cases grew the peak RSS by %ld kB", r1.ru_maxrss - r0.ru_maxrss);
    }
    /* the reverse: a small header followed by a huge file (a wrong file, a gzip
     * bomb) must not be read whole before the trailing bytes are noticed */
    {
        char zp[512];
        path_of(zp, sizeof zp, "huge-file-images.gz");
        path_of(ip, sizeof ip, "huge-file-images");
        path_of(lp, sizeof lp, "good-labels");
        gzFile f = gzopen(zp, "wb1");
        size_t zlen = (size_t)1 << 20;
        uint8_t *z = calloc(zlen, 1);
        int ok = f && z && gzwrite(f, g_ibuf, (unsigned)g_ilen) == (int)g_ilen;
        for (int k = 0; k < 48 && ok; k++) /* 48 MiB of zeros */
            ok = gzwrite(f, z, (unsigned)zlen) == (int)zlen;
        ok = ok && gzclose(f) == Z_OK;
        free(z);
        write_raw(ip, g_ibuf, g_ilen);
        ok = ok && truncate(ip, (off_t)1 << 30) == 0; /* sparse: 1 GiB of zeros, no disk */
        tu_checks++;
        if (!ok)
            TU_FAIL("cannot write %s or %s", zp, ip);
        /* peak RSS only grows: the smaller case first */
        const char *paths[2] = {zp, ip};
        for (int k = 0; k < 2; k++) {
            struct rusage r0, r1;
            getrusage(RUSAGE_SELF, &r0);
            double t0 = ol_now();
            expect_idx_fail(k ? "header + 1 GiB of zeros" : "gzip of header + 48 MiB of zeros", paths[k], lp,
                            OL_EFORMAT, paths[k]);
            double dt = ol_now() - t0;
            getrusage(RUSAGE_SELF, &r1);
            tu_checks++;
            if (r1.ru_maxrss - r0.ru_maxrss > 16 * 1024)
                TU_FAIL("%s: peak RSS grew by %ld kB", paths[k], r1.ru_maxrss - r0.ru_maxrss);
            tu_checks++;
            if (dt > 1.0)
                TU_FAIL("%s: took %.2f s", paths[k], dt);
        }
        unlink(ip);
        unlink(zp);
    }
    /* label out of range */
    {
        uint8_t lab[NIMG];
        memcpy(lab, g_lab, sizeof lab);
        lab[4] = 200;
        uint32_t ld[1] = {NIMG};
        n = idx_build(b, 0x08, 1, ld, lab, sizeof lab);
        case_labels("label 200", b, n, OL_EFORMAT);
    }
}

/* ---- MNIST directory --------------------------------------------------------- */

static void write_set(const char *dir, const char *pre, int gz, int nimg, uint8_t first_label)
{
    uint8_t ib[2048], lb[64], pix[16 * 28], lab[16];
    for (int i = 0; i < nimg * 28 && i < (int)sizeof pix; i++)
        pix[i] = (uint8_t)(i + first_label);
    for (int i = 0; i < nimg; i++)
        lab[i] = (uint8_t)((first_label + i) % 10);
    uint32_t idims[3] = {(uint32_t)nimg, 4, 7}, ldims[1] = {(uint32_t)nimg};
    size_t il = idx_build(ib, 0x08, 3, idims, pix, (size_t)nimg * 28);
    size_t ll = idx_build(lb, 0x08, 1, ldims, lab, (size_t)nimg);
    char p[512];
    snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte%s", dir, pre, gz ? ".gz" : "");
    gz ? write_gz(p, ib, il) : write_raw(p, ib, il);
    snprintf(p, sizeof p, "%s/%s-labels-idx1-ubyte%s", dir, pre, gz ? ".gz" : "");
    gz ? write_gz(p, lb, ll) : write_raw(p, lb, ll);
}

static void test_mnist_dir(void)
{
    char dgz[512], draw[512], dempty[512], p[600];
    path_of(dgz, sizeof dgz, "mnist-gz");
    path_of(draw, sizeof draw, "mnist-raw");
    path_of(dempty, sizeof dempty, "mnist-empty");
    mkdir(dgz, 0755);
    mkdir(draw, 0755);
    mkdir(dempty, 0755);
    write_set(dgz, "train", 1, 6, 1);
    write_set(dgz, "t10k", 1, 3, 5);
    write_set(draw, "train", 0, 7, 2);
    write_set(draw, "t10k", 0, 2, 4);
    ol_dataset d;
    ASSERT_OK(ol_dataset_load_mnist_dir(g_ctx, dgz, 1, &d), g_ctx);
    ASSERT_EQ_INT(d.n, 6);
    ASSERT_EQ_INT(d.h, 4);
    ASSERT_EQ_INT(d.w, 7);
    if (d.labels)
        ASSERT_EQ_INT(d.labels[2], 3);
    ol_dataset_free(&d);
    ASSERT_OK(ol_dataset_load_mnist_dir(g_ctx, dgz, 0, &d), g_ctx);
    ASSERT_EQ_INT(d.n, 3);
    if (d.labels)
        ASSERT_EQ_INT(d.labels[0], 5);
    ol_dataset_free(&d);
    ASSERT_OK(ol_dataset_load_mnist_dir(g_ctx, draw, 1, &d), g_ctx);
    ASSERT_EQ_INT(d.n, 7);
    ol_dataset_free(&d);
    ASSERT_OK(ol_dataset_load_mnist_dir(g_ctx, draw, 0, &d), g_ctx);
    ASSERT_EQ_INT(d.n, 2);
    if (d.images)
        ASSERT_EQ_INT(d.images[1], 5);
    ol_dataset_free(&d);

    /* no files, missing directory, a file instead of a directory */
    ol_ctx_clear_error(g_ctx);
    ASSERT_EQ_INT(ol_dataset_load_mnist_dir(g_ctx, dempty, 1, &d), OL_ENOENT);
    ASSERT_TRUE(strstr(ol_ctx_errmsg(g_ctx), dempty) != NULL);
    ASSERT_TRUE(strstr(ol_ctx_errmsg(g_ctx), "train-images-idx3-ubyte") != NULL);
    snprintf(p, sizeof p, "%s/nope", g_dir);
    ASSERT_EQ_INT(ol_dataset_load_mnist_dir(g_ctx, p, 1, &d), OL_ENOENT);
    ASSERT_TRUE(strstr(ol_ctx_errmsg(g_ctx), p) != NULL);
    snprintf(p, sizeof p, "%s/good-images", g_dir);
    ASSERT_EQ_INT(ol_dataset_load_mnist_dir(g_ctx, p, 1, &d), OL_ENOENT);
    ASSERT_TRUE(strstr(ol_ctx_errmsg(g_ctx), p) != NULL);
    /* labels missing */
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte", draw);
    unlink(p);
    ASSERT_EQ_INT(ol_dataset_load_mnist_dir(g_ctx, draw, 0, &d), OL_ENOENT);
    ASSERT_TRUE(strstr(ol_ctx_errmsg(g_ctx), "t10k-labels-idx1-ubyte") != NULL);
    /* a corrupt file inside the directory is reported by its full path */
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", dgz);
    write_raw(p, "\x1f\x8b\x08\x00garbage-garbage-garbage", 27);
    ASSERT_EQ_INT(ol_dataset_load_mnist_dir(g_ctx, dgz, 1, &d), OL_EFORMAT);
    ASSERT_TRUE(strstr(ol_ctx_errmsg(g_ctx), p) != NULL);
}

/* ---- CIFAR-10 ------------------------------------------------------------------ */

enum { CREC = 3073 };

static void cifar_file(const char *dir, const char *name, int nrec, int label0, size_t extra)
{
    size_t len = (size_t)nrec * CREC + extra;
    uint8_t *b = calloc(len + 1, 1);
    for (int r = 0; r < nrec; r++) {
        b[(size_t)r * CREC] = (uint8_t)((label0 + r) % 10);
        for (int j = 1; j < CREC; j++)
            b[(size_t)r * CREC + j] = (uint8_t)(j * 7 + r * 13 + label0);
    }
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    write_raw(p, b, len);
    free(b);
}

static void expect_cifar_fail(const char *label, const char *dir, int train, int code, const char *names)
{
    ol_dataset d;
    ol_ctx_clear_error(g_ctx);
    int rc = ol_dataset_load_cifar10(g_ctx, dir, train, &d);
    tu_checks++;
    if (rc != code)
        TU_FAIL("%s: ol_dataset_load_cifar10 returned %d, expected %d; message: %s", label, rc, code,
                ol_ctx_errmsg(g_ctx));
    tu_checks++;
    if (!strstr(ol_ctx_errmsg(g_ctx), names))
        TU_FAIL("%s: message does not name %s: '%s'", label, names, ol_ctx_errmsg(g_ctx));
    tu_checks++;
    if (rc >= 0 || d.images || d.labels || d.n)
        TU_FAIL("%s: output dataset not left empty", label);
    if (rc >= 0)
        ol_dataset_free(&d);
}

static void test_cifar(void)
{
    char dir[512], name[64], p[700];
    path_of(dir, sizeof dir, "cifar");
    mkdir(dir, 0755);
    for (int f = 1; f <= 5; f++) {
        snprintf(name, sizeof name, "data_batch_%d.bin", f);
        cifar_file(dir, name, f == 3 ? 1 : 2, f, 0);
    }
    cifar_file(dir, "test_batch.bin", 3, 0, 0);
    ol_dataset d;
    ASSERT_OK(ol_dataset_load_cifar10(g_ctx, dir, 1, &d), g_ctx);
    ASSERT_EQ_INT(d.n, 9);
    ASSERT_EQ_INT(d.c, 3);
    ASSERT_EQ_INT(d.h, 32);
    ASSERT_EQ_INT(d.w, 32);
    ASSERT_EQ_INT(d.num_classes, 10);
    if (d.labels && d.images) {
        /* file order, record order: batch 1 (labels 1, 2), 2 (2, 3), 3 (3), 4 (4, 5), 5 (5, 6) */
        const int want[9] = {1, 2, 2, 3, 3, 4, 5, 5, 6};
        for (int i = 0; i < 9; i++)
            ASSERT_EQ_INT(d.labels[i], want[i]);
        /* sample 5 = batch 4, record 0: pixel j (1-based in the record) = j*7 + 4 */
        for (int j = 1; j < CREC; j += 301)
            ASSERT_EQ_INT(d.images[5 * 3072 + (j - 1)], (uint8_t)(j * 7 + 4));
        ASSERT_EQ_INT(d.images[6 * 3072 + 3071], (uint8_t)(3072 * 7 + 13 + 4));
    }
    ol_dataset_free(&d);
    ASSERT_OK(ol_dataset_load_cifar10(g_ctx, dir, 0, &d), g_ctx);
    ASSERT_EQ_INT(d.n, 3);
    ol_dataset_free(&d);

    /* size not a multiple of 3073, empty file, label > 9, missing file, missing dir */
    snprintf(p, sizeof p, "%s/data_batch_2.bin", dir);
    cifar_file(dir, "data_batch_2.bin", 2, 2, 5);
    expect_cifar_fail("size not a multiple", dir, 1, OL_EFORMAT, p);
    cifar_file(dir, "data_batch_2.bin", 2, 2, 0);
    snprintf(p, sizeof p, "%s/test_batch.bin", dir);
    cifar_file(dir, "test_batch.bin", 0, 0, 0);
    expect_cifar_fail("empty file", dir, 0, OL_EFORMAT, p);
    cifar_file(dir, "test_batch.bin", 1, 0, CREC - 1);
    expect_cifar_fail("truncated record", dir, 0, OL_EFORMAT, p);
    {
        size_t len = 3 * CREC;
        uint8_t *b = calloc(len, 1);
        b[2 * CREC] = 10;
        write_raw(p, b, len);
        free(b);
        expect_cifar_fail("label 10", dir, 0, OL_EFORMAT, p);
    }
    snprintf(p, sizeof p, "%s/data_batch_4.bin", dir);
    unlink(p);
    expect_cifar_fail("missing data_batch_4", dir, 1, OL_ENOENT, p);
    snprintf(p, sizeof p, "%s/nope", dir);
    expect_cifar_fail("missing directory", p, 1, OL_ENOENT, p);
    snprintf(p, sizeof p, "%s/data_batch_1.bin", dir);
    expect_cifar_fail("file instead of directory", p, 1, OL_ENOENT, p);
}

/* ---- dataset utilities ------------------------------------------------------------- */

/* A dataset whose pixel 0 of channel 0 encodes the sample index. */
static void make_indexed(ol_dataset *d, int n, int c, int h, int w)
{
    memset(d, 0, sizeof *d);
    d->n = n;
    d->c = c;
    d->h = h;
    d->w = w;
    d->num_classes = 10;
    size_t per = (size_t)c * h * w;
    d->images = malloc((size_t)n * per);
    d->labels = malloc((size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++) {
        for (size_t j = 0; j < per; j++)
            d->images[(size_t)i * per + j] = (uint8_t)(1 + (j * 31 + (size_t)i * 7) % 250);
        d->images[(size_t)i * per] = (uint8_t)i;
        d->labels[i] = i % 10;
    }
    snprintf(d->name, sizeof d->name, "indexed");
    ol_dataset_compute_stats(d, d->mean, d->std);
}

static int decode_index(const ol_dataset *d, const float *x)
{
    return (int)lrint(((double)x[0] * d->std[0] + d->mean[0]) * 255.0);
}

static void test_utils(void)
{
    /* statistics: two 2-channel 1x2 images */
    ol_dataset d;
    memset(&d, 0, sizeof d);
    uint8_t img[8] = {0, 255, 51, 51, /* sample 1 */ 255, 255, 51, 51};
    int32_t lab[2] = {0, 1};
    d.n = 2;
    d.c = 2;
    d.h = 1;
    d.w = 2;
    d.images = img;
    d.labels = lab;
    ol_dataset_compute_stats(&d, d.mean, d.std);
    ASSERT_NEAR(d.mean[0], 0.75, 1e-6);
    ASSERT_NEAR(d.std[0], sqrt(0.75 - 0.5625), 1e-6);
    ASSERT_NEAR(d.mean[1], 0.2, 1e-6);
    ASSERT_NEAR(d.std[1], 1.0, 0); /* constant channel: std 1, not 0 */
    float x[8];
    int32_t y[2];
    int64_t idx[2] = {1, 0};
    ol_dataset_fill(&d, idx, 2, NULL, 0, 0, x, y);
    ASSERT_EQ_INT(y[0], 1);
    ASSERT_EQ_INT(y[1], 0);
    for (int i = 0; i < 2; i++)
        for (int c = 0; c < 2; c++)
            for (int j = 0; j < 2; j++) {
                double want = (img[(idx[i] * 2 + c) * 2 + j] / 255.0 - d.mean[c]) / d.std[c];
                ASSERT_NEAR(x[(i * 2 + c) * 2 + j], want, 1e-5);
            }
    /* copy_stats */
    ol_dataset e;
    memset(&e, 0, sizeof e);
    ol_dataset_copy_stats(&e, &d);
    ASSERT_NEAR(e.mean[0], d.mean[0], 0);
    ASSERT_NEAR(e.std[0], d.std[0], 0);

    /* truncate */
    ol_dataset t;
    make_indexed(&t, 20, 1, 3, 3);
    ASSERT_EQ_INT(ol_dataset_truncate(g_ctx, &t, 0), OL_EINVAL);
    ASSERT_EQ_INT(ol_dataset_truncate(g_ctx, &t, -3), OL_EINVAL);
    ASSERT_OK(ol_dataset_truncate(g_ctx, &t, 100), g_ctx);
    ASSERT_EQ_INT(t.n, 20);
    ASSERT_OK(ol_dataset_truncate(g_ctx, &t, 12), g_ctx);
    ASSERT_EQ_INT(t.n, 12);
    ASSERT_EQ_INT(t.images[11 * 9], 11);
    ol_dataset_free(&t);

    /* split: 25% of 20 -> 5; every sample ends up in exactly one part, the
     * training part keeps its order, the split depends on the seed only */
    ol_dataset a, va, b, vb, c2, vc;
    make_indexed(&a, 20, 1, 3, 3);
    make_indexed(&b, 20, 1, 3, 3);
    make_indexed(&c2, 20, 1, 3, 3);
    a.mean[0] = 0.3f;
    a.std[0] = 0.4f;
    ASSERT_OK(ol_dataset_split(g_ctx, &a, 0.25, 11, &va), g_ctx);
    ASSERT_OK(ol_dataset_split(g_ctx, &b, 0.25, 11, &vb), g_ctx);
    ASSERT_OK(ol_dataset_split(g_ctx, &c2, 0.25, 12, &vc), g_ctx);
    ASSERT_EQ_INT(a.n, 15);
    ASSERT_EQ_INT(va.n, 5);
    ASSERT_EQ_INT(va.c, 1);
    ASSERT_EQ_INT(va.h, 3);
    ASSERT_EQ_INT(va.num_classes, 10);
    ASSERT_NEAR(va.mean[0], 0.3f, 0);
    ASSERT_NEAR(va.std[0], 0.4f, 0);
    int seen[20] = {0};
    int prev = -1, ordered = 1;
    for (int i = 0; i < a.n; i++) {
        int k = a.images[i * 9];
        seen[k]++;
        ordered &= k > prev;
        prev = k;
        ASSERT_EQ_INT(a.labels[i], k % 10);
        ASSERT_EQ_INT(a.images[i * 9 + 4], 1 + (4 * 31 + k * 7) % 250);
    }
    for (int i = 0; i < va.n; i++) {
        int k = va.images[i * 9];
        seen[k]++;
        ASSERT_EQ_INT(va.labels[i], k % 10);
        ASSERT_EQ_INT(va.images[i * 9 + 8], 1 + (8 * 31 + k * 7) % 250);
    }
    ASSERT_TRUE(ordered);
    for (int k = 0; k < 20; k++)
        ASSERT_EQ_INT(seen[k], 1);
    ASSERT_TRUE(memcmp(va.images, vb.images, 5 * 9) == 0);
    ASSERT_TRUE(memcmp(a.images, b.images, 15 * 9) == 0);
    ASSERT_TRUE(memcmp(va.images, vc.images, 5 * 9) != 0);
    ol_dataset_free(&a);
    ol_dataset_free(&va);
    ol_dataset_free(&b);
    ol_dataset_free(&vb);
    ol_dataset_free(&c2);
    ol_dataset_free(&vc);
    /* bad fractions */
    make_indexed(&a, 4, 1, 2, 2);
    ASSERT_EQ_INT(ol_dataset_split(g_ctx, &a, 0.0, 1, &va), OL_ERANGE);
    ASSERT_EQ_INT(ol_dataset_split(g_ctx, &a, 1.0, 1, &va), OL_ERANGE);
    ASSERT_EQ_INT(ol_dataset_split(g_ctx, &a, NAN, 1, &va), OL_ERANGE);
    ASSERT_EQ_INT(ol_dataset_split(g_ctx, &a, 0.05, 1, &va), OL_ERANGE); /* rounds to 0 samples */
    ASSERT_EQ_INT(ol_dataset_split(g_ctx, &a, 0.9, 1, &va), OL_ERANGE);  /* leaves 0 training samples */
    ASSERT_EQ_INT(a.n, 4);
    ASSERT_TRUE(va.images == NULL && va.n == 0);
    ol_dataset_free(&a);
}

/* Is out[c][h][w] == norm(src shifted by (dy, dx), mirrored when flip, zero outside)? */
static int matches_transform(const ol_dataset *d, int64_t i, const float *out, int dy, int dx, int flip)
{
    const int C = d->c, H = d->h, W = d->w;
    const uint8_t *src = d->images + (size_t)i * C * H * W;
    for (int c = 0; c < C; c++)
        for (int h = 0; h < H; h++)
            for (int w = 0; w < W; w++) {
                int sh = h + dy, sw = (flip ? W - 1 - w : w) + dx;
                int v = (sh >= 0 && sh < H && sw >= 0 && sw < W) ? src[(c * H + sh) * W + sw] : 0;
                double want = (v / 255.0 - d->mean[c]) / d->std[c];
                if (fabs(out[(c * H + h) * W + w] - want) > 1e-5)
                    return 0;
            }
    return 1;
}

static void test_augment(void)
{
    ol_dataset d;
    make_indexed(&d, 16, 2, 6, 5);
    const int per = 2 * 6 * 5;
    float *x1 = malloc(16 * per * sizeof(float)), *x2 = malloc(16 * per * sizeof(float));
    int32_t y1[16], y2[16];
    int64_t all[16];
    for (int i = 0; i < 16; i++)
        all[i] = i;

    /* flip only: identity or mirror, both occur; keyed by (seed, epoch, index) */
    ol_augment flip = {0, 1};
    int nflip = 0, nid = 0;
    for (int64_t ep = 0; ep < 8; ep++) {
        ol_dataset_fill(&d, all, 16, &flip, 5, ep, x1, y1);
        for (int i = 0; i < 16; i++) {
            int f = matches_transform(&d, i, x1 + i * per, 0, 0, 1);
            int n0 = matches_transform(&d, i, x1 + i * per, 0, 0, 0);
            ASSERT_TRUE(f || n0);
            nflip += f;
            nid += n0;
        }
    }
    ASSERT_TRUE(nflip > 20 && nid > 20);

    /* crop only: some shift in [-2, 2]^2 with zero fill; several distinct shifts */
    ol_augment crop = {2, 0};
    int shift_seen[5][5] = {{0}};
    for (int64_t ep = 0; ep < 8; ep++) {
        ol_dataset_fill(&d, all, 16, &crop, 5, ep, x1, y1);
        for (int i = 0; i < 16; i++) {
            int found = 0;
            for (int dy = -2; dy <= 2 && !found; dy++)
                for (int dx = -2; dx <= 2 && !found; dx++)
                    if (matches_transform(&d, i, x1 + i * per, dy, dx, 0)) {
                        shift_seen[dy + 2][dx + 2]++;
                        found = 1;
                    }
            ASSERT_TRUE(found);
        }
    }
    int distinct = 0;
    for (int a = 0; a < 5; a++)
        for (int b = 0; b < 5; b++)
            distinct += shift_seen[a][b] > 0;
    ASSERT_TRUE(distinct >= 15);
    int ext[4] = {0, 0, 0, 0}; /* the extreme shifts dy = -2, +2, dx = -2, +2 all occur */
    for (int k = 0; k < 5; k++) {
        ext[0] += shift_seen[0][k];
        ext[1] += shift_seen[4][k];
        ext[2] += shift_seen[k][0];
        ext[3] += shift_seen[k][4];
    }
    ASSERT_TRUE(ext[0] > 0 && ext[1] > 0 && ext[2] > 0 && ext[3] > 0);

    /* crop + flip: same (seed, epoch, index) gives the same pixels, whatever the
     * batch position; another epoch or seed gives different ones */
    ol_augment both = {2, 1};
    for (int i = 0; i < 16; i++) {
        int ok = 0;
        ol_dataset_fill(&d, all, 16, &both, 9, 3, x1, y1);
        for (int dy = -2; dy <= 2; dy++)
            for (int dx = -2; dx <= 2; dx++)
                for (int f = 0; f < 2; f++)
                    ok |= matches_transform(&d, i, x1 + i * per, dy, dx, f);
        ASSERT_TRUE(ok);
    }
    int64_t rev[16];
    for (int i = 0; i < 16; i++)
        rev[i] = 15 - i;
    ol_dataset_fill(&d, rev, 16, &both, 9, 3, x2, y2);
    int same = 1;
    for (int i = 0; i < 16; i++) {
        same &= memcmp(x1 + i * per, x2 + (15 - i) * per, per * sizeof(float)) == 0;
        ASSERT_EQ_INT(y1[i], y2[15 - i]);
    }
    ASSERT_TRUE(same);
    int64_t one = 7;
    ol_dataset_fill(&d, &one, 1, &both, 9, 3, x2, y2);
    ASSERT_TRUE(memcmp(x1 + 7 * per, x2, per * sizeof(float)) == 0);
    ol_dataset_fill(&d, all, 16, &both, 9, 4, x2, y2);
    ASSERT_TRUE(memcmp(x1, x2, 16 * per * sizeof(float)) != 0);
    ol_dataset_fill(&d, all, 16, &both, 10, 3, x2, y2);
    ASSERT_TRUE(memcmp(x1, x2, 16 * per * sizeof(float)) != 0);
    /* no augmentation: aug NULL and aug {0, 0} are the plain normalised image */
    ol_augment none = {0, 0};
    ol_dataset_fill(&d, all, 16, &none, 9, 3, x1, y1);
    ol_dataset_fill(&d, all, 16, NULL, 1, 1, x2, y2);
    ASSERT_TRUE(memcmp(x1, x2, 16 * per * sizeof(float)) == 0);
    for (int i = 0; i < 16; i++)
        ASSERT_TRUE(matches_transform(&d, i, x1 + i * per, 0, 0, 0));
    free(x1);
    free(x2);
    ol_dataset_free(&d);
}

/* ---- loader -------------------------------------------------------------------------- */

#define MAXB 64
typedef struct {
    int nb;          /* batches */
    int size[MAXB];  /* samples per batch */
    int index[1024]; /* decoded sample indices, in order */
    int n;
    float *x; /* all pixels, in order */
    size_t xn;
} epoch_rec;

static void rec_free(epoch_rec *r) { free(r->x); }

/* Run the rest of the current epoch with batch sizes sizes[0], sizes[1], ... (cycled). */
static void run_epoch(ol_loader *l, const ol_dataset *d, const int *sizes, int nsizes, epoch_rec *r, int augmented)
{
    memset(r, 0, sizeof *r);
    const size_t per = (size_t)d->c * d->h * d->w;
    r->x = malloc((size_t)d->n * per * sizeof(float));
    for (int k = 0;; k++) {
        const float *x;
        const int32_t *y;
        int got = ol_loader_next(g_ctx, l, sizes[k % nsizes], &x, &y);
        ASSERT_TRUE(got >= 0);
        if (got <= 0 || r->nb >= MAXB)
            break;
        r->size[r->nb++] = got;
        memcpy(r->x + r->xn, x, (size_t)got * per * sizeof(float));
        r->xn += (size_t)got * per;
        for (int i = 0; i < got; i++) {
            int idx = augmented ? -1 : decode_index(d, x + i * per);
            r->index[r->n++] = idx;
            tu_checks++;
            if (!augmented && (idx < 0 || idx >= d->n))
                TU_FAIL("batch %d sample %d: decoded index %d", r->nb - 1, i, idx);
            else if (!augmented)
                ASSERT_EQ_INT(y[i], d->labels[idx]);
        }
    }
}

static int rec_equal(const epoch_rec *a, const epoch_rec *b)
{
    if (a->nb != b->nb || a->n != b->n || a->xn != b->xn)
        return 0;
    if (memcmp(a->size, b->size, (size_t)a->nb * sizeof(int)) || memcmp(a->index, b->index, (size_t)a->n * sizeof(int)))
        return 0;
    return memcmp(a->x, b->x, a->xn * sizeof(float)) == 0;
}

static void test_loader(void)
{
    ol_dataset d;
    make_indexed(&d, 37, 1, 5, 5);
    const size_t per = 25;
    ol_loader_params lp = {.shuffle = 1, .drop_last = 0, .aug = {0, 0}, .seed = 3, .prefetch = 0, .max_batch = 8};
    ol_loader *l0 = NULL, *l1 = NULL;
    ASSERT_OK(ol_loader_create(g_ctx, &d, &lp, &l0), g_ctx);
    lp.prefetch = 1;
    ASSERT_OK(ol_loader_create(g_ctx, &d, &lp, &l1), g_ctx);
    if (!l0 || !l1)
        return;
    const float *x;
    const int32_t *y;
    ASSERT_EQ_INT(ol_loader_next(g_ctx, l0, 8, &x, &y), OL_ESTATE);
    ASSERT_EQ_INT(ol_loader_start_epoch(g_ctx, l0, -1, 0), OL_ERANGE);
    ASSERT_EQ_INT(ol_loader_start_epoch(g_ctx, l0, 0, 38), OL_ERANGE);
    ASSERT_EQ_INT(ol_loader_start_epoch(g_ctx, l0, 0, -1), OL_ERANGE);
    ASSERT_EQ_INT(ol_loader_batches_per_epoch(l0, 8), 5);
    const int b8[1] = {8};

    /* every epoch is a permutation; reproducible per epoch, different across epochs */
    epoch_rec e[3], again;
    for (int ep = 0; ep < 3; ep++) {
        ASSERT_OK(ol_loader_start_epoch(g_ctx, l0, ep, 0), g_ctx);
        run_epoch(l0, &d, b8, 1, &e[ep], 0);
        ASSERT_EQ_INT(e[ep].nb, 5);
        ASSERT_EQ_INT(e[ep].size[4], 5);
        ASSERT_EQ_INT(ol_loader_position(l0), 37);
        int seen[37] = {0};
        for (int i = 0; i < e[ep].n; i++)
            if (e[ep].index[i] >= 0 && e[ep].index[i] < 37)
                seen[e[ep].index[i]]++;
        for (int i = 0; i < 37; i++)
            ASSERT_EQ_INT(seen[i], 1);
    }
    ASSERT_TRUE(memcmp(e[0].index, e[1].index, sizeof(int) * 37) != 0);
    ASSERT_TRUE(memcmp(e[1].index, e[2].index, sizeof(int) * 37) != 0);
    int identity = 1;
    for (int i = 0; i < 37; i++)
        identity &= e[0].index[i] == i;
    ASSERT_TRUE(!identity);
    ASSERT_OK(ol_loader_start_epoch(g_ctx, l0, 1, 0), g_ctx); /* replay epoch 1 after epoch 2 */
    run_epoch(l0, &d, b8, 1, &again, 0);
    ASSERT_TRUE(rec_equal(&again, &e[1]));
    rec_free(&again);
    /* a new loader with the same seed, and one with another seed */
    {
        ol_loader *l2 = NULL;
        lp.prefetch = 0;
        ASSERT_OK(ol_loader_create(g_ctx, &d, &lp, &l2), g_ctx);
        ASSERT_OK(ol_loader_start_epoch(g_ctx, l2, 2, 0), g_ctx);
        run_epoch(l2, &d, b8, 1, &again, 0);
        ASSERT_TRUE(rec_equal(&again, &e[2]));
        rec_free(&again);
        ol_loader_free(l2);
        lp.seed = 4;
        ASSERT_OK(ol_loader_create(g_ctx, &d, &lp, &l2), g_ctx);
        ASSERT_OK(ol_loader_start_epoch(g_ctx, l2, 2, 0), g_ctx);
        run_epoch(l2, &d, b8, 1, &again, 0);
        ASSERT_TRUE(memcmp(again.index, e[2].index, sizeof(int) * 37) != 0);
        rec_free(&again);
        ol_loader_free(l2);
        lp.seed = 3;
    }

    /* resume mid-epoch: at a batch boundary, and at an odd position */
    const int64_t resume_at[] = {16, 13, 36, 37, 0};
    for (size_t k = 0; k < sizeof resume_at / sizeof resume_at[0]; k++) {
        int64_t pos = resume_at[k];
        ASSERT_OK(ol_loader_start_epoch(g_ctx, l1, 1, pos), g_ctx);
        run_epoch(l1, &d, b8, 1, &again, 0);
        ASSERT_EQ_INT(again.n, 37 - pos);
        tu_checks++;
        if (memcmp(again.index, e[1].index + pos, (size_t)(37 - pos) * sizeof(int)) != 0 ||
            memcmp(again.x, e[1].x + pos * per, (size_t)(37 - pos) * per * sizeof(float)) != 0)
            TU_FAIL("resuming epoch 1 at %lld does not give the rest of the epoch", (long long)pos);
        if (pos % 8 == 0 && pos < 37)
            ASSERT_EQ_INT(again.nb, 5 - pos / 8);
        rec_free(&again);
    }
    /* resume after partial consumption by the prefetching loader (a prefetch is pending) */
    ASSERT_OK(ol_loader_start_epoch(g_ctx, l1, 2, 0), g_ctx);
    ASSERT_EQ_INT(ol_loader_next(g_ctx, l1, 8, &x, &y), 8);
    ASSERT_OK(ol_loader_start_epoch(g_ctx, l1, 1, 24), g_ctx);
    run_epoch(l1, &d, b8, 1, &again, 0);
    ASSERT_TRUE(again.n == 13 && memcmp(again.index, e[1].index + 24, 13 * sizeof(int)) == 0);
    rec_free(&again);
    for (int ep = 0; ep < 3; ep++)
        rec_free(&e[ep]);
    ol_loader_free(l0);
    ol_loader_free(l1);

    /* prefetch on and off give identical batches, with augmentation and mixed batch sizes */
    {
        ol_loader_params q = {.shuffle = 1, .drop_last = 0, .aug = {2, 1}, .seed = 21, .prefetch = 0, .max_batch = 8};
        ol_loader *la = NULL, *lb = NULL;
        ASSERT_OK(ol_loader_create(g_ctx, &d, &q, &la), g_ctx);
        q.prefetch = 1;
        ASSERT_OK(ol_loader_create(g_ctx, &d, &q, &lb), g_ctx);
        const int mixed[3] = {8, 5, 3};
        for (int ep = 0; ep < 3 && la && lb; ep++) {
            epoch_rec ra, rb;
            ASSERT_OK(ol_loader_start_epoch(g_ctx, la, ep, 0), g_ctx);
            ASSERT_OK(ol_loader_start_epoch(g_ctx, lb, ep, 0), g_ctx);
            run_epoch(la, &d, ep == 1 ? mixed : b8, ep == 1 ? 3 : 1, &ra, 1);
            run_epoch(lb, &d, ep == 1 ? mixed : b8, ep == 1 ? 3 : 1, &rb, 1);
            tu_checks++;
            if (!rec_equal(&ra, &rb))
                TU_FAIL("epoch %d: prefetch on and off give different batches", ep);
            rec_free(&ra);
            rec_free(&rb);
        }
        /* augmented loader batches are ol_dataset_fill of the same indices */
        if (lb) {
            float *ref = malloc(8 * per * sizeof(float));
            int32_t yr[8];
            ASSERT_OK(ol_loader_start_epoch(g_ctx, lb, 2, 0), g_ctx);
            ol_loader_params plain = q;
            plain.aug.crop_pad = 0;
            plain.aug.hflip = 0;
            ol_loader *lc = NULL;
            ASSERT_OK(ol_loader_create(g_ctx, &d, &plain, &lc), g_ctx);
            ASSERT_OK(ol_loader_start_epoch(g_ctx, lc, 2, 0), g_ctx);
            const float *xa, *xp;
            const int32_t *ya, *yp;
            for (int k = 0; k < 5; k++) {
                int na = ol_loader_next(g_ctx, lb, 8, &xa, &ya);
                int np = ol_loader_next(g_ctx, lc, 8, &xp, &yp);
                ASSERT_EQ_INT(na, np);
                int64_t idx[8];
                for (int i = 0; i < np; i++)
                    idx[i] = decode_index(&d, xp + i * per);
                ol_dataset_fill(&d, idx, np, &q.aug, q.seed, 2, ref, yr);
                ASSERT_TRUE(np > 0 && memcmp(ref, xa, (size_t)np * per * sizeof(float)) == 0);
            }
            ol_loader_free(lc);
            free(ref);
        }
        ol_loader_free(la);
        ol_loader_free(lb);
    }

    /* drop_last; no shuffle gives the identity order */
    {
        ol_loader_params q = {.shuffle = 0, .drop_last = 1, .aug = {0, 0}, .seed = 1, .prefetch = 1, .max_batch = 8};
        ol_loader *ld = NULL;
        ASSERT_OK(ol_loader_create(g_ctx, &d, &q, &ld), g_ctx);
        if (ld) {
            ASSERT_EQ_INT(ol_loader_batches_per_epoch(ld, 8), 4);
            ASSERT_EQ_INT(ol_loader_batches_per_epoch(ld, 37), 1);
            ASSERT_OK(ol_loader_start_epoch(g_ctx, ld, 5, 0), g_ctx);
            epoch_rec r;
            run_epoch(ld, &d, b8, 1, &r, 0);
            ASSERT_EQ_INT(r.nb, 4);
            ASSERT_EQ_INT(r.n, 32);
            for (int i = 0; i < r.n; i++)
                ASSERT_EQ_INT(r.index[i], i);
            rec_free(&r);
            ASSERT_EQ_INT(ol_loader_next(g_ctx, ld, 8, &x, &y), 0);
            ASSERT_EQ_INT(ol_loader_next(g_ctx, ld, 9, &x, &y), OL_ERANGE);
            ASSERT_EQ_INT(ol_loader_next(g_ctx, ld, 0, &x, &y), OL_ERANGE);
            ol_loader_free(ld);
        }
        ol_loader *bad = NULL;
        q.max_batch = 0;
        ASSERT_EQ_INT(ol_loader_create(g_ctx, &d, &q, &bad), OL_EINVAL);
        q.max_batch = 8;
        q.aug.crop_pad = 6;
        ASSERT_EQ_INT(ol_loader_create(g_ctx, &d, &q, &bad), OL_ERANGE);
        ASSERT_TRUE(bad == NULL);
    }
    ol_dataset_free(&d);
}

static void test_synthetic(void)
{
    ol_dataset a, b;
    ASSERT_OK(ol_dataset_synthetic(g_ctx, 50, 3, 4, 4, 5, 7, &a), g_ctx);
    ASSERT_OK(ol_dataset_synthetic(g_ctx, 50, 3, 4, 4, 5, 7, &b), g_ctx);
    ASSERT_TRUE(a.images && b.images && memcmp(a.images, b.images, 50 * 48) == 0);
    ASSERT_TRUE(a.labels && b.labels && memcmp(a.labels, b.labels, 50 * sizeof(int32_t)) == 0);
    for (int i = 0; i < 50; i++)
        ASSERT_TRUE(a.labels[i] >= 0 && a.labels[i] < 5);
    ASSERT_EQ_INT(a.num_classes, 5);
    ol_dataset_free(&b);
    ASSERT_OK(ol_dataset_synthetic(g_ctx, 50, 3, 4, 4, 5, 8, &b), g_ctx);
    ASSERT_TRUE(memcmp(a.images, b.images, 50 * 48) != 0);
    ol_dataset_free(&a);
    ol_dataset_free(&b);
    ASSERT_EQ_INT(ol_dataset_synthetic(g_ctx, 0, 1, 4, 4, 5, 7, &a), OL_EINVAL);
    ASSERT_EQ_INT(ol_dataset_synthetic(g_ctx, 10, 5, 4, 4, 5, 7, &a), OL_EINVAL);
    ASSERT_EQ_INT(ol_dataset_synthetic(g_ctx, 10, 1, 4, 4, 1, 7, &a), OL_EINVAL);
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "%s/optimlab-test-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    g_ctx = ol_ctx_new(1);
    test_idx();
    test_mnist_dir();
    test_cifar();
    test_utils();
    test_augment();
    test_loader();
    test_synthetic();
    ol_ctx_free(g_ctx);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", g_dir);
    return tu_finish("test_data_readers");
}
