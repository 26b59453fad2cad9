/* mkdir -p and write-temporary-then-rename, shared by checkpoints, plots,
 * run directories and the CLI's files. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "core/internal.h"

/* mkdir one level; an existing directory is fine, anything else there is not.
 * create = 0: only look, as mkdir would meet it (a missing level is fine). */
static int mkdir_one(ol_ctx *ctx, const char *dir, int create)
{
    int e = EEXIST;
    if (create) {
        if (mkdir(dir, 0777) == 0)
            return OL_OK;
        e = errno;
    }
    struct stat st;
    if (e == EEXIST) {
        int there = stat(dir, &st) == 0;
        if (there ? S_ISDIR(st.st_mode) : !create)
            return OL_OK;
        return ol__err(ctx, OL_EIO, "cannot create %s: a file of that name is in the way", dir);
    }
    return ol__err(ctx, OL_EIO, "cannot create %s: %s", dir, strerror(e));
}

static int mkdir_walk(ol_ctx *ctx, const char *dir, int create)
{
    char tmp[OL__PATH_MAX];
    if (!dir || !*dir)
        return ol__err(ctx, OL_EINVAL, "no directory name");
    if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp)
        return ol__err(ctx, OL_EINVAL, "path too long: %.200s...", dir);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/' && p[-1] != '/') {
            *p = '\0';
            OL__TRY(mkdir_one(ctx, tmp, create));
            *p = '/';
        }
    return mkdir_one(ctx, tmp, create);
}

int ol__mkdir_p(ol_ctx *ctx, const char *dir)
{
    return mkdir_walk(ctx, dir, 1);
}

int ol__mkdir_p_check(ol_ctx *ctx, const char *dir)
{
    return mkdir_walk(ctx, dir, 0);
}

int ol__atomic_open(ol_ctx *ctx, ol__atomic_file *a, const char *path)
{
    a->f = NULL;
    if (snprintf(a->path, sizeof a->path, "%s", path) >= (int)sizeof a->path)
        return ol__err(ctx, OL_EINVAL, "path too long: %.200s...", path);
    snprintf(a->tmp, sizeof a->tmp, "%s.tmp.%ld", path, (long)getpid());
    a->f = fopen(a->tmp, "wb");
    if (!a->f)
        return ol__err(ctx, OL_EIO, "cannot write %s: %s", a->tmp, strerror(errno));
    return OL_OK;
}

void ol__atomic_abort(ol__atomic_file *a)
{
    if (a->f)
        fclose(a->f);
    a->f = NULL;
    unlink(a->tmp);
}

/* fsync the directory holding path, so that the rename itself is durable. */
static void sync_dir(const char *path)
{
    char dir[OL__PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0'; /* "/file": the root */
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd); /* best effort: some file systems refuse it for directories */
        close(fd);
    }
}

int ol__atomic_commit(ol_ctx *ctx, ol__atomic_file *a)
{
    if (!a->f)
        return ol__err(ctx, OL_EINVAL, "%s: not open", a->path);
    int bad = ferror(a->f) || fflush(a->f) != 0 || fsync(fileno(a->f)) != 0;
    int e = errno;
    if (fclose(a->f) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    a->f = NULL;
    if (!bad && rename(a->tmp, a->path) != 0) {
        bad = 1;
        e = errno;
    }
    if (bad) {
        unlink(a->tmp);
        return ol__err(ctx, OL_EIO, "cannot write %s: %s", a->path, strerror(e ? e : EIO));
    }
    sync_dir(a->path);
    return OL_OK;
}

int ol__write_file_atomic(ol_ctx *ctx, const char *path, const void *data, size_t len)
{
    ol__atomic_file a;
    OL__TRY(ol__atomic_open(ctx, &a, path));
    if (len > 0 && fwrite(data, 1, len, a.f) != len) {
        int e = errno;
        ol__atomic_abort(&a);
        return ol__err(ctx, OL_EIO, "cannot write %s: %s", path, strerror(e ? e : EIO));
    }
    return ol__atomic_commit(ctx, &a);
}
