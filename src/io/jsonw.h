/* A small JSON object writer for metrics lines and saved configurations. */
#ifndef OL_IO_JSONW_H
#define OL_IO_JSONW_H

#include <stddef.h>
#include <stdint.h>

#include "core/textbuf.h"

typedef struct {
    ol__tb tb;
    int first;
} ol__jw;

void ol__jw_begin(ol__jw *w);          /* starts "{" */
void ol__jw_end(ol__jw *w);            /* appends "}" */
void ol__jw_free(ol__jw *w);
void ol__jw_str(ol__jw *w, const char *key, const char *val);
void ol__jw_int(ol__jw *w, const char *key, int64_t val);
void ol__jw_num(ol__jw *w, const char *key, double val); /* %.17g; null for NaN/Inf */
void ol__jw_bool(ol__jw *w, const char *key, int val);
void ol__jw_raw(ol__jw *w, const char *key, const char *json); /* pre-formatted value */
const char *ol__jw_text(const ol__jw *w); /* the object so far; NULL when out of memory */

#endif
