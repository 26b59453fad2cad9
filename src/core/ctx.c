#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/internal.h"
#include "nn/backend.h"

static const char *const ol_err_text[] = {
#define OL__ERR_TEXT(name, text) text,
    OL_ERRNO_MAP(OL__ERR_TEXT)
#undef OL__ERR_TEXT
};

const char *ol_strerror(int status)
{
    if (status == OL_OK)
        return "success";
    if (status > OL__ERR_FIRST && status < OL__ERR_END)
        return ol_err_text[status - OL__ERR_FIRST - 1];
    return "unknown error";
}

/* Length of the valid UTF-8 sequence of printable text at s (1 for ASCII
 * 0x20..0x7e), or 0: a control character, a stray or overlong byte. */
static int utf8_len(const unsigned char *s)
{
    if (s[0] >= 0x20 && s[0] < 0x7f)
        return 1;
    int n = s[0] >= 0xc2 && s[0] <= 0xdf ? 2 : (s[0] & 0xf0) == 0xe0 ? 3 : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((n == 3 && ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0))) ||
        (n == 4 && ((s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))))
        return 0; /* overlong, surrogate, beyond U+10FFFF */
    return n;
}

void ol_text_escape(const char *src, char *dst, size_t cap)
{
    size_t o = 0;
    if (!cap)
        return;
    for (const unsigned char *s = (const unsigned char *)src; *s;) {
        int n = utf8_len(s);
        if (n == 0) {
            if (o + 4 >= cap)
                break;
            snprintf(dst + o, 5, "\\x%02x", *s);
            o += 4;
            s++;
            continue;
        }
        if (o + (size_t)n >= cap)
            break;
        memcpy(dst + o, s, (size_t)n);
        o += (size_t)n;
        s += n;
    }
    dst[o] = '\0';
}

int ol__err(ol_ctx *ctx, int code, const char *fmt, ...)
{
    if (ctx) {
        char raw[sizeof ctx->errmsg];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(raw, sizeof raw, fmt, ap);
        va_end(ap);
        /* names and values from corrupt files reach messages: never raw bytes on a terminal */
        ol_text_escape(raw, ctx->errmsg, sizeof ctx->errmsg);
        ctx->errcode = code;
    }
    return code;
}

void *ol__alloc(size_t bytes)
{
    if (bytes == 0)
        bytes = 64;
    size_t n = ol__align_up(bytes, 64);
    void *p = aligned_alloc(64, n);
    if (p)
        memset(p, 0, n);
    return p;
}

void ol__free(void *p) { free(p); }

double ol__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double ol_now(void) { return ol__now(); }

ol_ctx *ol_ctx_new(int threads)
{
    ol_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return NULL;
    ctx->backend = OL_BACKEND_AUTO;
    ol_ctx_set_threads(ctx, threads);
    ol_ctx_set_backend(ctx, OL_BACKEND_AUTO);
    return ctx;
}

void ol_ctx_free(ol_ctx *ctx)
{
    if (!ctx)
        return;
    ol__backend_release(ctx);
    ol__registry_free(ctx->reg);
    free(ctx);
}

const char *ol_ctx_errmsg(const ol_ctx *ctx) { return ctx ? ctx->errmsg : ""; }

void ol_ctx_clear_error(ol_ctx *ctx)
{
    ctx->errcode = 0;
    ctx->errmsg[0] = '\0';
}

void ol_ctx_set_error(ol_ctx *ctx, int code, const char *msg) { ol__err(ctx, code, "%s", msg ? msg : ""); }

int ol_ctx_threads(const ol_ctx *ctx) { return ctx->threads; }

int ol_ctx_set_threads(ol_ctx *ctx, int threads)
{
    if (threads > 1024)
        return ol__err(ctx, OL_ERANGE, "threads must be between 1 and 1024, got %d", threads);
    if (threads <= 0) { /* leave the process's OpenMP setting alone */
        ctx->threads = omp_get_max_threads();
        return OL_OK;
    }
    /* OpenMP's thread count is process state (oneDNN reads it too) */
    ctx->threads = threads;
    omp_set_num_threads(threads);
    ol__blas_set_threads(threads);
    return OL_OK;
}

ol_backend ol_ctx_backend(const ol_ctx *ctx) { return ctx->backend; }

static const char *const ol_backend_names[OL_BACKEND_COUNT] = {"auto", "ref", "blas", "onednn"};

const char *ol_backend_name(ol_backend b)
{
    return (b >= 0 && b < OL_BACKEND_COUNT) ? ol_backend_names[b] : "?";
}

int ol_backend_from_name(const char *name, ol_backend *out)
{
    for (int i = 0; i < OL_BACKEND_COUNT; i++)
        if (strcmp(name, ol_backend_names[i]) == 0) {
            *out = (ol_backend)i;
            return OL_OK;
        }
    return OL_ENAME;
}

int ol_ctx_set_backend(ol_ctx *ctx, ol_backend backend)
{
    if (backend == OL_BACKEND_AUTO)
        backend = ol__backend_have_onednn() ? OL_BACKEND_ONEDNN : OL_BACKEND_BLAS;
    if (backend == OL_BACKEND_ONEDNN && !ol__backend_have_onednn())
        return ol__err(ctx, OL_ENOTSUP, "this build of optimlab has no oneDNN support (install libdnnl-dev and rebuild)");
    if (backend < 0 || backend >= OL_BACKEND_COUNT)
        return ol__err(ctx, OL_EINVAL, "invalid backend %d", (int)backend);
    ctx->backend = backend;
    if (backend == OL_BACKEND_ONEDNN)
        return ol__backend_acquire(ctx);
    return OL_OK;
}
