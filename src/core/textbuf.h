/* A growable text buffer: printf-style appends, one allocation failure
 * remembered (and later appends skipped) so writers check once at the end. */
#ifndef OL_CORE_TEXTBUF_H
#define OL_CORE_TEXTBUF_H

#include <stddef.h>

#include "core/internal.h"

typedef struct {
    char *buf;  /* NUL-terminated once anything was appended; NULL before */
    size_t len; /* bytes of text, without the NUL */
    size_t cap;
    int failed; /* out of memory (or a formatting error): the text is incomplete */
} ol__tb;

/* Zero-initialised (ol__tb b = {0}) is an empty buffer. */
void ol__tb_printf(ol__tb *b, const char *fmt, ...) OL__PRINTF(2, 3);
void ol__tb_puts(ol__tb *b, const char *s);
/* Empty it again, keeping the memory (and clearing failed). */
void ol__tb_reset(ol__tb *b);
void ol__tb_free(ol__tb *b);
/* The text ("" when empty), or NULL when an append failed. */
const char *ol__tb_text(const ol__tb *b);

#endif
