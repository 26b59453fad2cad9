/* Communicator: MPI_COMM_WORLD or a single-process stand-in. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/dist_internal.h"

#ifdef OL_HAVE_MPI
#define CK(call, what)                                                                                              \
    do {                                                                                                            \
        int e_ = (call);                                                                                            \
        if (e_ != MPI_SUCCESS) {                                                                                    \
            char s_[MPI_MAX_ERROR_STRING];                                                                          \
            int l_ = 0;                                                                                             \
            MPI_Error_string(e_, s_, &l_);                                                                          \
            return ol__err(ctx, OL_EIO, "MPI %s failed on rank %d: %s", what, c->rank, s_);                         \
        }                                                                                                           \
    } while (0)
#endif

int ol_comm_built_with_mpi(void)
{
#ifdef OL_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

int ol_comm_launched_by_mpi(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE",
                                       "MV2_COMM_WORLD_SIZE", "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i]))
            return 1;
    return 0;
}

int ol_comm_init(ol_ctx *ctx, int *argc, char ***argv, ol_comm **out)
{
    *out = NULL;
    ol_comm *c = calloc(1, sizeof *c);
    if (!c)
        return ol__err(ctx, OL_ENOMEM, "out of memory");
    c->size = 1;
#ifdef OL_HAVE_MPI
    if (ol_comm_launched_by_mpi()) {
        int inited = 0, provided = 0;
        MPI_Initialized(&inited);
        if (!inited) {
            if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
                free(c);
                return ol__err(ctx, OL_EIO, "MPI initialisation failed");
            }
            c->owns_mpi = 1;
        }
        c->mpi = 1;
        c->comm = MPI_COMM_WORLD;
        /* errors come back as codes so they can be reported, not abort silently */
        MPI_Comm_set_errhandler(c->comm, MPI_ERRORS_RETURN);
        MPI_Comm_rank(c->comm, &c->rank);
        MPI_Comm_size(c->comm, &c->size);
    }
#else
    (void)argc;
    (void)argv;
#endif
    *out = c;
    return OL_OK;
}

void ol_comm_finalize(ol_comm *c)
{
    if (!c)
        return;
#ifdef OL_HAVE_MPI
    if (c->owns_mpi) {
        int fin = 0;
        MPI_Finalized(&fin);
        if (!fin)
            MPI_Finalize();
    }
#endif
    free(c);
}

int ol_comm_rank(const ol_comm *c) { return c ? c->rank : 0; }
int ol_comm_size(const ol_comm *c) { return c ? c->size : 1; }
int ol_comm_is_mpi(const ol_comm *c) { return c && c->mpi; }

void ol_comm_abort(ol_comm *c, int status)
{
#ifdef OL_HAVE_MPI
    if (c && c->mpi)
        MPI_Abort(c->comm, status);
#else
    (void)c;
#endif
    _Exit(status);
}

void ol__comm_account(ol_comm *c, size_t bytes, double seconds)
{
    if (c->size > 1)
        c->stats.bytes_sent += 2.0 * (double)(c->size - 1) / (double)c->size * (double)bytes;
    c->stats.seconds += seconds;
    c->stats.collectives++;
}

void ol_comm_get_stats(const ol_comm *c, ol_comm_stats *s)
{
    if (c)
        *s = c->stats;
    else
        memset(s, 0, sizeof *s);
}
void ol_comm_reset_stats(ol_comm *c)
{
    if (c)
        memset(&c->stats, 0, sizeof c->stats);
}

int ol_comm_allreduce(ol_ctx *ctx, ol_comm *c, float *buf, size_t n)
{
    if (!c || !c->mpi || c->size == 1 || n == 0)
        return OL_OK;
#ifdef OL_HAVE_MPI
    double t0 = ol__now();
    for (size_t off = 0; off < n; off += (size_t)1 << 30) {
        int k = (int)(n - off < ((size_t)1 << 30) ? n - off : ((size_t)1 << 30));
        CK(MPI_Allreduce(MPI_IN_PLACE, buf + off, k, MPI_FLOAT, MPI_SUM, c->comm), "all-reduce");
    }
    ol__comm_account(c, n * sizeof(float), ol__now() - t0);
#else
    (void)ctx;
    (void)buf;
#endif
    return OL_OK;
}

static int allreduce_f64(ol_ctx *ctx, ol_comm *c, double *buf, size_t n, int max)
{
    if (!c || !c->mpi || c->size == 1 || n == 0)
        return OL_OK;
#ifdef OL_HAVE_MPI
    double t0 = ol__now();
    CK(MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, max ? MPI_MAX : MPI_SUM, c->comm), "all-reduce");
    ol__comm_account(c, n * sizeof(double), ol__now() - t0);
#else
    (void)ctx;
    (void)buf;
    (void)max;
#endif
    return OL_OK;
}

int ol_comm_allreduce_f64(ol_ctx *ctx, ol_comm *c, double *buf, size_t n) { return allreduce_f64(ctx, c, buf, n, 0); }
int ol_comm_allreduce_max_f64(ol_ctx *ctx, ol_comm *c, double *buf, size_t n)
{
    return allreduce_f64(ctx, c, buf, n, 1);
}

int ol_comm_bcast(ol_ctx *ctx, ol_comm *c, void *buf, size_t bytes, int root)
{
    if (!c || !c->mpi || c->size == 1 || bytes == 0)
        return OL_OK;
#ifdef OL_HAVE_MPI
    double t0 = ol__now();
    for (size_t off = 0; off < bytes; off += (size_t)1 << 30) {
        int k = (int)(bytes - off < ((size_t)1 << 30) ? bytes - off : ((size_t)1 << 30));
        CK(MPI_Bcast((char *)buf + off, k, MPI_BYTE, root, c->comm), "broadcast");
    }
    c->stats.seconds += ol__now() - t0;
    c->stats.collectives++;
    if (c->rank == root)
        c->stats.bytes_sent += (double)bytes;
#else
    (void)ctx;
    (void)buf;
    (void)root;
#endif
    return OL_OK;
}

int ol_comm_gather(ol_ctx *ctx, ol_comm *c, const float *send, size_t n, float *recv, int root)
{
    if (!c || !c->mpi || c->size == 1) {
        if (recv != send && n)
            memcpy(recv, send, n * sizeof(float));
        return OL_OK;
    }
#ifdef OL_HAVE_MPI
    if (n > (size_t)1 << 30)
        return ol__err(ctx, OL_ERANGE, "gather of %zu floats is too large", n);
    double t0 = ol__now();
    CK(MPI_Gather(send, (int)n, MPI_FLOAT, recv, (int)n, MPI_FLOAT, root, c->comm), "gather");
    c->stats.seconds += ol__now() - t0;
    c->stats.collectives++;
    if (c->rank != root)
        c->stats.bytes_sent += (double)n * sizeof(float);
#else
    (void)ctx;
    (void)recv;
    (void)root;
#endif
    return OL_OK;
}

int ol_comm_barrier(ol_ctx *ctx, ol_comm *c)
{
    if (!c || !c->mpi || c->size == 1)
        return OL_OK;
#ifdef OL_HAVE_MPI
    CK(MPI_Barrier(c->comm), "barrier");
#else
    (void)ctx;
#endif
    return OL_OK;
}

int ol_comm_agree(ol_ctx *ctx, ol_comm *c, int status)
{
    (void)ctx;
    if (!c || !c->mpi || c->size == 1)
        return status;
#ifdef OL_HAVE_MPI
    /* lowest failing rank, then its status and message */
    int mine = status < 0 ? c->rank : c->size, first = c->size;
    CK(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, c->comm), "agreement");
    if (first == c->size)
        return OL_OK;
    struct {
        int status;
        char msg[sizeof ctx->errmsg];
    } e;
    memset(&e, 0, sizeof e);
    if (c->rank == first) {
        e.status = status;
        snprintf(e.msg, sizeof e.msg, "%s", ctx->errmsg);
    }
    CK(MPI_Bcast(&e, (int)sizeof e, MPI_BYTE, first, c->comm), "agreement");
    char tmp[sizeof ctx->errmsg];
    snprintf(tmp, sizeof tmp, "%s", e.msg);
    if (first == 0)
        return ol__err(ctx, e.status, "%s", tmp);
    return ol__err(ctx, e.status, "rank %d: %s", first, tmp);
#else
    return status;
#endif
}

int ol_comm_check_same(ol_ctx *ctx, ol_comm *c, const char *text, const char *what)
{
    if (!c || !c->mpi || c->size == 1)
        return OL_OK;
#ifdef OL_HAVE_MPI
    /* compare a 64-bit FNV-1a hash of the text with rank 0's */
    uint64_t h = 1469598103934665603ULL, h0;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    h0 = h;
    CK(MPI_Bcast(&h0, 1, MPI_UINT64_T, 0, c->comm), "broadcast");
    int bad = h != h0 ? c->rank : c->size, first = c->size;
    CK(MPI_Allreduce(&bad, &first, 1, MPI_INT, MPI_MIN, c->comm), "agreement");
    if (first < c->size)
        return ol__err(ctx, OL_EINVAL, "rank %d runs with a different %s than rank 0 (mismatched launch)", first, what);
#else
    (void)ctx;
    (void)text;
    (void)what;
#endif
    return OL_OK;
}
