/* metrics.jsonl: append-only, its prefix checked against the checkpoint on resume. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "train/train_internal.h"

int ol__metrics_line(ol_ctx *ctx, ol__metrics *mt)
{
    if (!mt->f)
        return OL_OK;
    const char *line = ol__jw_text(&mt->w);
    if (!line)
        return ol__err(ctx, OL_ENOMEM, "out of memory writing metrics");
    if (fprintf(mt->f, "%s\n", line) < 0 || fflush(mt->f) != 0)
        return ol__err(ctx, OL_EIO, "writing metrics.jsonl: %s", strerror(errno));
    uLong c = crc32((uLong)mt->crc, (const Bytef *)line, (uInt)strlen(line));
    mt->crc = (uint32_t)crc32(c, (const Bytef *)"\n", 1);
    return OL_OK;
}

/* CRC-32 of the first n bytes of f (from its start); -1 on a short read. */
static int crc_prefix(FILE *f, int64_t n, uint32_t *out)
{
    unsigned char buf[65536];
    uLong c = crc32(0L, Z_NULL, 0);
    if (fseek(f, 0, SEEK_SET) != 0)
        return -1;
    while (n > 0) {
        size_t want = n > (int64_t)sizeof buf ? sizeof buf : (size_t)n;
        size_t got = fread(buf, 1, want, f);
        if (got == 0)
            return -1;
        c = crc32(c, buf, (uInt)got);
        n -= (int64_t)got;
    }
    *out = (uint32_t)c;
    return 0;
}

/* The file does not match the checkpoint: keep every byte, say so, go on. */
static int append_marker(ol_ctx *ctx, ol__metrics *mt, const ol_train_state *st, int64_t size, const char *why)
{
    int last = '\n';
    if (size > 0 && (fseek(mt->f, -1, SEEK_END) != 0 || (last = fgetc(mt->f)) == EOF))
        return ol__err(ctx, OL_EIO, "reading metrics.jsonl: %s", strerror(errno));
    if (crc_prefix(mt->f, size, &mt->crc) != 0 || fseek(mt->f, 0, SEEK_END) != 0)
        return ol__err(ctx, OL_EIO, "reading metrics.jsonl: %s", strerror(errno));
    if (last != '\n') { /* end the cut line so the marker is a line of its own */
        if (fputc('\n', mt->f) == EOF)
            return ol__err(ctx, OL_EIO, "writing metrics.jsonl: %s", strerror(errno));
        mt->crc = (uint32_t)crc32((uLong)mt->crc, (const Bytef *)"\n", 1);
    }
    char msg[400];
    snprintf(msg, sizeof msg,
             "metrics.jsonl does not match the checkpoint (%s: recorded %" PRId64 " bytes, the file has %" PRId64
             "): kept as it was; records before this line may repeat or be missing",
             why, st->metrics_bytes, size);
    ol__jw_begin(&mt->w);
    ol__jw_str(&mt->w, "type", "resume_mismatch");
    ol__jw_int(&mt->w, "step", st->step);
    ol__jw_str(&mt->w, "message", msg);
    ol__jw_end(&mt->w);
    return ol__metrics_line(ctx, mt);
}

int ol__metrics_open(ol_ctx *ctx, const char *dir, const ol_train_state *st, ol__metrics *mt)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    mt->crc = (uint32_t)crc32(0L, Z_NULL, 0);
    if (!st) {
        mt->f = fopen(path, "w");
        if (!mt->f)
            return ol__err(ctx, OL_EIO, "cannot write %s: %s", path, strerror(errno));
        return OL_OK;
    }
    mt->f = fopen(path, "r+");
    if (!mt->f && errno == ENOENT)
        mt->f = fopen(path, "w+");
    if (!mt->f)
        return ol__err(ctx, OL_EIO, "cannot write %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(mt->f), &sb) != 0)
        return ol__err(ctx, OL_EIO, "%s: %s", path, strerror(errno));
    const int64_t size = (int64_t)sb.st_size, want = st->metrics_bytes;
    uint32_t have = 0;
    const char *why = NULL;
    if (want < 0 || size < want)
        why = "shorter";
    else if (crc_prefix(mt->f, want, &have) != 0)
        why = "unreadable";
    else if (st->metrics_crc >= 0 && (int64_t)have != st->metrics_crc)
        why = "different content";
    else if (st->metrics_crc < 0 && want > 0) { /* older checkpoint: no CRC; the cut must fall after a line */
        if (fseek(mt->f, (long)(want - 1), SEEK_SET) != 0 || fgetc(mt->f) != '\n')
            why = "not at a line end";
    }
    if (why)
        return append_marker(ctx, mt, st, size, why);
    /* drop what was logged after the checkpoint: it is about to be redone */
    if (fflush(mt->f) != 0 || ftruncate(fileno(mt->f), (off_t)want) != 0 || fseek(mt->f, 0, SEEK_END) != 0)
        return ol__err(ctx, OL_EIO, "%s: %s", path, strerror(errno));
    mt->crc = have;
    return OL_OK;
}
