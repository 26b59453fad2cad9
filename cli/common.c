/* Error reporting shared by the commands. */
#include <stdio.h>

#include "common.h"

int cli_fail(int status, const char *msg)
{
    fprintf(stderr, "optimlab: %s\n", msg && *msg ? msg : "failed");
    return status;
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
