/* Error reporting shared by the commands. */
#include <stdio.h>
#include <stdlib.h>

#include "common.h"
#include "core/fsutil.h"

/* The MPI rank from the launcher's environment: only rank 0 reports errors
 * (ranks agree on them first, see cli_agree). */
int cli_env_rank(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *s = getenv(vars[i]);
        if (s)
            return atoi(s);
    }
    return 0;
}

int cli_fail(int status, const char *msg)
{
    if (cli_env_rank() == 0) { /* a value from a corrupt file or a config is never echoed raw */
        char safe[2048];
        ol_text_escape(msg && *msg ? msg : "failed", safe, sizeof safe);
        fprintf(stderr, "optimlab: %s\n", safe);
    }
    return status;
}

int cli_agree(ol_ctx *ctx, ol_comm *comm, int status, char *err, size_t cap)
{
    if (ol_comm_size(comm) <= 1)
        return status;
    ol_ctx_set_error(ctx, status ? -status : 0, err);
    int rc = ol_comm_agree(ctx, comm, status ? -status : 0);
    if (rc == 0)
        return 0;
    snprintf(err, cap, "%s", ol_ctx_errmsg(ctx));
    return -rc;
}

int cli_exit_for(int st)
{
    switch (st) {
    case OL_EINVAL:
    case OL_ENOENT:
    case OL_EFORMAT:
    case OL_ESHAPE:
    case OL_ENAME:
    case OL_ERANGE:
    case OL_ENOTSUP: return OL_EXIT_USAGE;
    case OL_ENONFINITE: return OL_EXIT_DIVERGED;
    case OL_EINTR: return OL_EXIT_STOPPED;
    default: return OL_EXIT_FAIL;
    }
}

int cli_fail_ctx(ol_ctx *ctx, int status) { return cli_fail(status, ol_ctx_errmsg(ctx)); }

/* The library's file helpers (src/core/fsutil.h), with the commands' error
 * convention: one line in err. */
static int fs_result(ol_ctx *ctx, int rc, char *err, size_t cap)
{
    if (rc < 0)
        snprintf(err, cap, "%s", ol_ctx_errmsg(ctx));
    return rc < 0 ? -1 : 0;
}

int cli_mkdir_p(ol_ctx *ctx, const char *dir, char *err, size_t cap)
{
    return fs_result(ctx, ol__mkdir_p(ctx, dir), err, cap);
}

int cli_mkdir_p_check(ol_ctx *ctx, const char *dir, char *err, size_t cap)
{
    return fs_result(ctx, ol__mkdir_p_check(ctx, dir), err, cap);
}

int cli_write_file(ol_ctx *ctx, const char *path, const char *text, size_t len, char *err, size_t cap)
{
    return fs_result(ctx, ol__write_file_atomic(ctx, path, text, len), err, cap);
}

FILE *cli_memfile_open(cli_memfile *m)
{
    m->buf = NULL;
    m->len = 0;
    m->f = open_memstream(&m->buf, &m->len);
    return m->f;
}

void cli_memfile_discard(cli_memfile *m)
{
    if (m->f)
        fclose(m->f);
    m->f = NULL;
    free(m->buf);
    m->buf = NULL;
}

int cli_memfile_save(cli_memfile *m, const char *path, char *err, size_t cap)
{
    int bad = !m->f || ferror(m->f);
    if (m->f && fclose(m->f) != 0)
        bad = 1;
    m->f = NULL;
    ol_ctx *ctx = bad ? NULL : ol_ctx_new(1);
    int rc = -1;
    if (bad || !ctx)
        snprintf(err, cap, "out of memory composing %.900s", path);
    else
        rc = cli_write_file(ctx, path, m->buf ? m->buf : "", m->len, err, cap);
    ol_ctx_free(ctx);
    free(m->buf);
    m->buf = NULL;
    return rc;
}
