#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/jsonw.h"

static void put(ol__jw *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(ol__jw *w, const char *fmt, ...)
{
    if (w->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(w->buf ? w->buf + w->len : NULL, w->buf ? w->cap - w->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            w->failed = 1;
            return;
        }
        if (w->buf && w->len + (size_t)n < w->cap) {
            w->len += (size_t)n;
            return;
        }
        size_t nc = w->cap ? w->cap * 2 : 256;
        while (nc < w->len + (size_t)n + 1)
            nc *= 2;
        char *nb = realloc(w->buf, nc);
        if (!nb) {
            w->failed = 1;
            return;
        }
        w->buf = nb;
        w->cap = nc;
    }
}

static void key(ol__jw *w, const char *k)
{
    put(w, "%s\"%s\":", w->first ? "" : ",", k);
    w->first = 0;
}

void ol__jw_begin(ol__jw *w)
{
    w->len = 0;
    w->first = 1;
    w->failed = 0;
    put(w, "{");
}

void ol__jw_end(ol__jw *w) { put(w, "}"); }

void ol__jw_free(ol__jw *w)
{
    free(w->buf);
    memset(w, 0, sizeof *w);
}

void ol__jw_str(ol__jw *w, const char *k, const char *v)
{
    key(w, k);
    put(w, "\"");
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\')
            put(w, "\\%c", *p);
        else if (*p < 0x20)
            put(w, "\\u%04x", *p);
        else
            put(w, "%c", *p);
    }
    put(w, "\"");
}

void ol__jw_int(ol__jw *w, const char *k, int64_t v)
{
    key(w, k);
    put(w, "%lld", (long long)v);
}

void ol__jw_num(ol__jw *w, const char *k, double v)
{
    key(w, k);
    if (isfinite(v))
        put(w, "%.17g", v);
    else
        put(w, "null");
}

void ol__jw_bool(ol__jw *w, const char *k, int v)
{
    key(w, k);
    put(w, "%s", v ? "true" : "false");
}

void ol__jw_raw(ol__jw *w, const char *k, const char *json)
{
    key(w, k);
    put(w, "%s", json);
}
