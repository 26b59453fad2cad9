#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "core/reduce.h"
#include "optimlab/params.h"

static const char *const kind_names[OL_KIND_COUNT] = {"weight", "bias", "norm"};

const char *ol_kind_name(ol_kind k) { return (k >= 0 && k < OL_KIND_COUNT) ? kind_names[k] : "?"; }

int ol_kind_from_name(const char *name, ol_kind *out)
{
    for (int i = 0; i < OL_KIND_COUNT; i++)
        if (strcmp(name, kind_names[i]) == 0) {
            *out = (ol_kind)i;
            return OL_OK;
        }
    return OL_ENAME;
}

static int add_desc(ol_ctx *ctx, ol_tensor_desc **arr, int *n, int *cap, size_t *numel, const char *name,
                    ol_kind kind, int ndim, const int64_t *shape)
{
    if (ndim < 1 || ndim > OL_MAX_DIMS)
        return ol__err(ctx, OL_EINVAL, "tensor %s: %d dimensions (1..%d allowed)", name, ndim, OL_MAX_DIMS);
    if (strlen(name) >= OL_NAME_MAX)
        return ol__err(ctx, OL_EINVAL, "tensor name too long: %s", name);
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 32;
        ol_tensor_desc *na = realloc(*arr, (size_t)nc * sizeof *na);
        if (!na)
            return ol__err(ctx, OL_ENOMEM, "out of memory registering tensor %s", name);
        *arr = na;
        *cap = nc;
    }
    ol_tensor_desc *d = &(*arr)[*n];
    memset(d, 0, sizeof *d);
    strcpy(d->name, name);
    d->kind = kind;
    d->ndim = ndim;
    size_t ne = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0)
            return ol__err(ctx, OL_EINVAL, "tensor %s: dimension %d is %lld", name, i, (long long)shape[i]);
        d->shape[i] = shape[i];
        ne *= (size_t)shape[i];
    }
    d->numel = ne;
    /* fan_in / fan_out as torch.nn.init._calculate_fan_in_and_fan_out */
    size_t recept = 1;
    for (int i = 2; i < ndim; i++)
        recept *= (size_t)shape[i];
    if (ndim >= 2) {
        d->fan_in = (int)((size_t)shape[1] * recept);
        d->fan_out = (int)((size_t)shape[0] * recept);
    } else {
        d->fan_in = d->fan_out = (int)shape[0];
    }
    d->offset = ol__align_up(*numel, OL__ALIGN_FLOATS);
    *numel = d->offset + ne;
    return (*n)++;
}

int ol_paramset_add(ol_ctx *ctx, ol_paramset *ps, const char *name, ol_kind kind, int ndim, const int64_t *shape)
{
    if (ps->params)
        return ol__err(ctx, OL_ESTATE, "parameter set already finalized");
    return add_desc(ctx, &ps->t, &ps->n, &ps->cap, &ps->numel, name, kind, ndim, shape);
}

int ol_paramset_add_buffer(ol_ctx *ctx, ol_paramset *ps, const char *name, int ndim, const int64_t *shape)
{
    if (ps->params)
        return ol__err(ctx, OL_ESTATE, "parameter set already finalized");
    return add_desc(ctx, &ps->b, &ps->nb, &ps->bcap, &ps->bnumel, name, OL_KIND_NORM, ndim, shape);
}

void ol__paramset_layout(ol_paramset *ps)
{
    ps->numel = ol__align_up(ps->numel, OL__ALIGN_FLOATS);
    ps->bnumel = ol__align_up(ps->bnumel, OL__ALIGN_FLOATS);
}

int ol_paramset_finalize(ol_ctx *ctx, ol_paramset *ps)
{
    ol__paramset_layout(ps);
    ps->params = ol__alloc(ps->numel * sizeof(float));
    ps->grads = ol__alloc(ps->numel * sizeof(float));
    ps->buffers = ol__alloc((ps->bnumel ? ps->bnumel : 1) * sizeof(float));
    if (!ps->params || !ps->grads || !ps->buffers)
        return ol__err(ctx, OL_ENOMEM, "out of memory allocating %zu parameters", ps->numel);
    return OL_OK;
}

void ol_paramset_free(ol_paramset *ps)
{
    if (!ps)
        return;
    free(ps->t);
    free(ps->b);
    ol__free(ps->params);
    ol__free(ps->grads);
    ol__free(ps->buffers);
    memset(ps, 0, sizeof *ps);
}

int ol_paramset_find(const ol_paramset *ps, const char *name)
{
    for (int i = 0; i < ps->n; i++)
        if (strcmp(ps->t[i].name, name) == 0)
            return i;
    return -1;
}

int ol_paramset_find_buffer(const ol_paramset *ps, const char *name)
{
    for (int i = 0; i < ps->nb; i++)
        if (strcmp(ps->b[i].name, name) == 0)
            return i;
    return -1;
}

size_t ol_paramset_count(const ol_paramset *ps)
{
    size_t n = 0;
    for (int i = 0; i < ps->n; i++)
        n += ps->t[i].numel;
    return n;
}

void ol_paramset_zero_grads(ol_paramset *ps) { memset(ps->grads, 0, ps->numel * sizeof(float)); }

double ol_paramset_grad_norm(const ol_paramset *ps)
{
    double s = ol__sumsq(ps->grads, ps->numel);
    return s > 0 ? __builtin_sqrt(s) : 0.0;
}
