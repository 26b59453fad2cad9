/* The growable text buffer behind JSON lines, SVG plots and CSV files. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/textbuf.h"

/* Room for n more bytes and the NUL; 0, or -1 (and failed) when out of memory. */
static int reserve(ol__tb *b, size_t n)
{
    if (b->buf && b->len + n < b->cap)
        return 0;
    size_t nc = b->cap ? b->cap * 2 : 256;
    while (nc < b->len + n + 1)
        nc *= 2;
    char *nb = realloc(b->buf, nc);
    if (!nb) {
        b->failed = 1;
        return -1;
    }
    b->buf = nb;
    b->cap = nc;
    return 0;
}

void ol__tb_printf(ol__tb *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->buf ? b->buf + b->len : NULL, b->buf ? b->cap - b->len : 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if (b->buf && b->len + (size_t)n < b->cap) { /* it fitted */
        b->len += (size_t)n;
        return;
    }
    if (reserve(b, (size_t)n) < 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void ol__tb_puts(ol__tb *b, const char *s)
{
    size_t n = strlen(s);
    if (b->failed || reserve(b, n) < 0)
        return;
    memcpy(b->buf + b->len, s, n + 1);
    b->len += n;
}

void ol__tb_reset(ol__tb *b)
{
    b->len = 0;
    b->failed = 0;
    if (b->buf)
        b->buf[0] = '\0';
}

void ol__tb_free(ol__tb *b)
{
    free(b->buf);
    memset(b, 0, sizeof *b);
}

const char *ol__tb_text(const ol__tb *b) { return b->failed ? NULL : b->buf ? b->buf : ""; }
