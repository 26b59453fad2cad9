/* Gradient all-reduce in buckets, started from the backward hook. */
#include <stdlib.h>
#include <string.h>

#include "core/reduce.h"
#include "dist/dist_internal.h"
#include "optimlab/params.h"

typedef struct {
    size_t lo, hi; /* float offsets in the flat gradient buffer */
    int started;
    float *gather; /* deterministic mode: size * (hi - lo) floats */
#ifdef OL_HAVE_MPI
    MPI_Request req;
#endif
} bucket;

struct ol_ddp {
    ol_comm *c;
    ol_model *m;
    ol_paramset *ps;
    int deterministic;
    bucket *b;
    int nb;
    int armed;
    int backward_done;
    int measure;
    double local_sq; /* this rank's gradient before the all-reduce (measure) */
    double early_bytes, total_bytes;
};

static void start_bucket(ol_ddp *d, bucket *b)
{
    b->started = 1;
    d->total_bytes += (double)(b->hi - b->lo) * sizeof(float);
    if (!d->backward_done)
        d->early_bytes += (double)(b->hi - b->lo) * sizeof(float);
    if (d->measure)
        d->local_sq += ol__sumsq(d->ps->grads + b->lo, b->hi - b->lo);
#ifdef OL_HAVE_MPI
    float *g = d->ps->grads + b->lo;
    int n = (int)(b->hi - b->lo);
    if (d->deterministic)
        MPI_Iallgather(g, n, MPI_FLOAT, b->gather, n, MPI_FLOAT, d->c->comm, &b->req);
    else
        MPI_Iallreduce(MPI_IN_PLACE, g, n, MPI_FLOAT, MPI_SUM, d->c->comm, &b->req);
#endif
}

static void hook(void *user, size_t final_from)
{
    ol_ddp *d = user;
    if (!d->armed)
        return;
    for (int i = 0; i < d->nb; i++)
        if (!d->b[i].started && d->b[i].lo >= final_from)
            start_bucket(d, &d->b[i]);
#ifdef OL_HAVE_MPI
    /* Open MPI progresses non-blocking collectives only inside MPI calls */
    for (int i = 0; i < d->nb; i++)
        if (d->b[i].started && d->b[i].req != MPI_REQUEST_NULL) {
            int flag;
            MPI_Test(&d->b[i].req, &flag, MPI_STATUS_IGNORE);
        }
#endif
}

int ol_ddp_bucket_layout(const ol_paramset *ps, size_t bucket_bytes, size_t *lo, size_t *hi)
{
    size_t per = bucket_bytes / sizeof(float);
    if (per < 1024)
        per = 1024;
    /* contiguous ranges at tensor boundaries, from the end of the buffer (the
     * last layers finish backward first) */
    int nb = 0;
    size_t h = ps->numel;
    for (int i = ps->n - 1; i >= 0; i--) {
        size_t l = i == 0 ? 0 : ps->t[i].offset;
        if (h - l >= per || i == 0) {
            lo[nb] = l;
            hi[nb] = h;
            nb++;
            h = l;
        }
    }
    return nb;
}

int ol_ddp_create(ol_ctx *ctx, ol_comm *c, ol_model *m, size_t bucket_bytes, int deterministic, ol_ddp **out)
{
    *out = NULL;
    ol_ddp *d = calloc(1, sizeof *d);
    if (!d)
        return ol__err(ctx, OL_ENOMEM, "out of memory");
    d->c = c;
    d->m = m;
    d->ps = ol_model_paramset(m);
    d->deterministic = deterministic;
    const ol_paramset *ps = d->ps;
    const size_t nt = (size_t)(ps->n > 0 ? ps->n : 1);
    d->b = calloc(nt, sizeof(bucket));
    size_t *lo = malloc(2 * nt * sizeof *lo);
    if (!d->b || !lo) {
        free(d->b);
        free(lo);
        free(d);
        return ol__err(ctx, OL_ENOMEM, "out of memory");
    }
    d->nb = ol_ddp_bucket_layout(ps, bucket_bytes, lo, lo + nt);
    for (int i = 0; i < d->nb; i++) {
        d->b[i].lo = lo[i];
        d->b[i].hi = lo[nt + (size_t)i];
    }
    free(lo);
    if (deterministic && c->size > 1)
        for (int i = 0; i < d->nb; i++) {
            d->b[i].gather = malloc((d->b[i].hi - d->b[i].lo) * (size_t)c->size * sizeof(float));
            if (!d->b[i].gather) {
                ol_ddp_free(d);
                return ol__err(ctx, OL_ENOMEM, "out of memory for deterministic reduction buffers");
            }
        }
    if (c->mpi && c->size > 1)
        ol_model_set_backward_hook(m, hook, d);
    *out = d;
    return OL_OK;
}

void ol_ddp_free(ol_ddp *d)
{
    if (!d)
        return;
    if (d->c->mpi && d->c->size > 1)
        ol_model_set_backward_hook(d->m, NULL, NULL);
    for (int i = 0; i < d->nb; i++)
        free(d->b[i].gather);
    free(d->b);
    free(d);
}

void ol_ddp_arm(ol_ddp *d)
{
    d->armed = d->c->mpi && d->c->size > 1;
    d->backward_done = 0;
    d->local_sq = 0.0;
    for (int i = 0; i < d->nb; i++) {
        d->b[i].started = 0;
#ifdef OL_HAVE_MPI
        d->b[i].req = MPI_REQUEST_NULL;
#endif
    }
}

int ol_ddp_finish(ol_ctx *ctx, ol_ddp *d)
{
    if (!d->armed)
        return OL_OK;
    d->backward_done = 1;
    d->armed = 0;
#ifdef OL_HAVE_MPI
    double t0 = ol__now();
    size_t bytes = 0;
    for (int i = 0; i < d->nb; i++) {
        if (!d->b[i].started)
            start_bucket(d, &d->b[i]);
        bytes += (d->b[i].hi - d->b[i].lo) * sizeof(float);
    }
    int err = MPI_SUCCESS;
    for (int i = 0; i < d->nb; i++) {
        int e = MPI_Wait(&d->b[i].req, MPI_STATUS_IGNORE);
        if (e != MPI_SUCCESS)
            err = e;
    }
    if (err != MPI_SUCCESS) {
        char s[MPI_MAX_ERROR_STRING];
        int l = 0;
        MPI_Error_string(err, s, &l);
        return ol__err(ctx, OL_EIO, "MPI gradient all-reduce failed on rank %d: %s", d->c->rank, s);
    }
    if (d->deterministic) { /* sum in rank order: ((g0 + g1) + g2) + ... */
        const int W = d->c->size;
        for (int i = 0; i < d->nb; i++) {
            const size_t n = d->b[i].hi - d->b[i].lo;
            float *g = d->ps->grads + d->b[i].lo;
            const float *src = d->b[i].gather;
#pragma omp parallel for schedule(static)
            for (size_t j = 0; j < n; j++) {
                float s = src[j];
                for (int r = 1; r < W; r++)
                    s += src[(size_t)r * n + j];
                g[j] = s;
            }
        }
        /* an all-gather sends (W-1) N per rank: twice what the ring all-reduce model counts */
        bytes *= (size_t)W;
        bytes /= 2;
    }
    ol__comm_account(d->c, bytes, ol__now() - t0);
#else
    (void)ctx;
#endif
    return OL_OK;
}

void ol_ddp_measure_local(ol_ddp *d, int measure) { d->measure = measure; }

double ol_ddp_local_sq(const ol_ddp *d) { return d->local_sq; }

double ol_ddp_overlap(const ol_ddp *d) { return d->total_bytes > 0 ? d->early_bytes / d->total_bytes : 0.0; }

void ol_ddp_overlap_bytes(const ol_ddp *d, double *early, double *total)
{
    *early = d->early_bytes;
    *total = d->total_bytes;
}

void ol_ddp_reset_stats(ol_ddp *d)
{
    d->early_bytes = 0.0;
    d->total_bytes = 0.0;
}
