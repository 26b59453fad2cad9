/* Files and directories the way every writer of the library (and the CLI)
 * wants them: directories created with their parents, and files that appear
 * whole or not at all (a crash leaves the old file, never half a new one). */
#ifndef OL_CORE_FSUTIL_H
#define OL_CORE_FSUTIL_H

#include <stddef.h>
#include <stdio.h>

#include "optimlab/core.h"

#define OL__PATH_MAX 4096

/* mkdir -p: dir and its missing parents (mode 0777 less the umask).
 * OL_EIO when a part cannot be created or exists as something other than a
 * directory, OL_EINVAL for a path of OL__PATH_MAX bytes or more. */
int ol__mkdir_p(ol_ctx *ctx, const char *dir);
/* What ol__mkdir_p(dir) would fail on, found without creating anything (a dry
 * run): a part that exists as something other than a directory, or the length. */
int ol__mkdir_p_check(ol_ctx *ctx, const char *dir);

/* A file written through f into a temporary file beside path
 * (path.tmp.<pid>); commit flushes it to disk, renames it over path and
 * syncs the directory, so path holds the old or the new content, whole.
 * Intended usage:
 *   ol__atomic_file a;
 *   OL__TRY(ol__atomic_open(ctx, &a, path));
 *   fprintf(a.f, ...);                       (errors are caught at commit)
 *   return ol__atomic_commit(ctx, &a);       (or ol__atomic_abort(&a))  */
typedef struct {
    FILE *f;
    char path[OL__PATH_MAX];
    char tmp[OL__PATH_MAX + 32];
} ol__atomic_file;

int ol__atomic_open(ol_ctx *ctx, ol__atomic_file *a, const char *path);
/* Closes a; on any failure removes the temporary and returns OL_EIO. */
int ol__atomic_commit(ol_ctx *ctx, ol__atomic_file *a);
/* Closes a and removes the temporary (after an error of the caller's). */
void ol__atomic_abort(ol__atomic_file *a);
/* The whole of data[0..len) as path, atomically. */
int ol__write_file_atomic(ol_ctx *ctx, const char *path, const void *data, size_t len);

#endif
