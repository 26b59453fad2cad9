/* DiLoCo: infrequent synchronisation with an outer optimizer (include/optimlab/dist.h). */
#include <stdlib.h>
#include <string.h>

#include "dist/sync.h"

struct ol_diloco {
    ol_comm *c;
    ol_diloco_params p;
    ol_paramset gps; /* the model's tensor table over the global parameters and the outer gradient */
    float *global;
    float *msg;      /* one all-reduce: [outer gradient (numel) | BN buffers (bnumel)] */
    float *bn_sync;  /* BN statistics of the last sync */
    size_t numel, bnumel;
    ol_optim *outer;
    int64_t syncs;
};

ol_diloco_params ol_diloco_default_params(void)
{
    ol_diloco_params p;
    memset(&p, 0, sizeof p);
    p.outer = ol_optim_default_params(OL_OPT_SGD);
    p.outer.lr = 0.7;
    p.outer.momentum = 0.9;
    p.outer.nesterov = 1;
    p.outer.weight_decay = 0.0;
    return p;
}

void ol_diloco_free(ol_diloco *d)
{
    if (!d)
        return;
    ol_optim_free(d->outer);
    ol__free(d->global);
    ol__free(d->msg);
    ol__free(d->bn_sync);
    free(d);
}

int ol_diloco_create(ol_ctx *ctx, ol_comm *c, const ol_paramset *ps, const ol_diloco_params *p, ol_diloco **out)
{
    *out = NULL;
    if (p->h < 1)
        return ol__err(ctx, OL_EINVAL, "DiLoCo needs H >= 1 inner steps per round, got %d", p->h);
    ol_diloco *d = calloc(1, sizeof *d);
    if (!d)
        return ol__err(ctx, OL_ENOMEM, "out of memory");
    d->c = c;
    d->p = *p;
    d->numel = ps->numel;
    d->bnumel = ps->bnumel;
    d->global = ol__alloc((d->numel + 1) * sizeof(float));
    d->msg = ol__alloc((d->numel + d->bnumel + 1) * sizeof(float));
    d->bn_sync = ol__alloc((d->bnumel + 1) * sizeof(float));
    if (!d->global || !d->msg || !d->bn_sync) {
        ol_diloco_free(d);
        return ol__err(ctx, OL_ENOMEM, "out of memory for DiLoCo buffers");
    }
    memcpy(d->global, ps->params, d->numel * sizeof(float));
    memcpy(d->bn_sync, ps->buffers, d->bnumel * sizeof(float));
    d->gps = *ps; /* shallow: the tensor table stays the model's */
    d->gps.params = d->global;
    d->gps.grads = d->msg;
    d->gps.buffers = d->bn_sync;
    int rc = ol_optim_create(ctx, &p->outer, &d->gps, &d->outer);
    if (rc < 0) {
        ol_diloco_free(d);
        return rc;
    }
    *out = d;
    return OL_OK;
}

int ol_diloco_sync(ol_ctx *ctx, ol_diloco *d, ol_paramset *ps)
{
    const size_t n = d->numel, nb = d->bnumel;
    float *msg = d->msg, *g = d->global, *x = ps->params;
    /* differences, not parameters: small numbers keep more bits through the sum */
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        msg[i] = g[i] - x[i];
    memcpy(msg + n, ps->buffers, nb * sizeof(float));
    OL__TRY(ol_comm_allreduce(ctx, d->c, msg, n + nb));
    const float inv = 1.0f / (float)ol_comm_size(d->c);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n + nb; i++)
        msg[i] *= inv;
    ol_optim_hyper h = {.lr = d->p.outer.lr, .momentum = -1.0};
    OL__TRY(ol_optim_step(ctx, d->outer, &d->gps, &h));
    memcpy(x, g, n * sizeof(float));
    memcpy(ps->buffers, msg + n, nb * sizeof(float));
    memcpy(d->bn_sync, msg + n, nb * sizeof(float));
    d->syncs++;
    return OL_OK;
}

static void swap_floats(float *a, float *b, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float t = a[i];
        a[i] = b[i];
        b[i] = t;
    }
}

void ol_diloco_swap_global(ol_diloco *d, ol_paramset *ps)
{
    swap_floats(ps->params, d->global, d->numel);
    swap_floats(ps->buffers, d->bn_sync, d->bnumel);
}

const float *ol_diloco_global(const ol_diloco *d) { return d->global; }
ol_optim *ol_diloco_outer(ol_diloco *d) { return d->outer; }
int64_t ol_diloco_syncs(const ol_diloco *d) { return d->syncs; }
void ol_diloco_set_syncs(ol_diloco *d, int64_t n) { d->syncs = n; }
