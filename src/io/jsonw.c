#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/jsonw.h"

#define put(w, ...) ol__tb_printf(&(w)->tb, __VA_ARGS__)

static void key(ol__jw *w, const char *k)
{
    put(w, "%s\"%s\":", w->first ? "" : ",", k);
    w->first = 0;
}

void ol__jw_begin(ol__jw *w)
{
    ol__tb_reset(&w->tb);
    w->first = 1;
    put(w, "{");
}

void ol__jw_end(ol__jw *w) { put(w, "}"); }

void ol__jw_free(ol__jw *w)
{
    ol__tb_free(&w->tb);
    memset(w, 0, sizeof *w);
}

const char *ol__jw_text(const ol__jw *w) { return ol__tb_text(&w->tb); }

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
