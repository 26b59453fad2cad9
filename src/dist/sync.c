/* The trainer's gradient synchronisation: exact all-reduce, PowerSGD or DiLoCo. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/sync.h"

#define XNAME 64

struct ol__dsync {
    ol_comm *c;
    int W, R;
    ol_ddp *ddp;
    ol_powersgd *psgd;
    int64_t psgd_start;
    ol_diloco *dl;
    int h;
    int64_t synced_at; /* DiLoCo: step count of the last sync */
    size_t numel;
    double dense_step_bytes;
    /* checkpoint state: rank 0 gathers every rank's part */
    float *gather; /* W numel floats per gathered buffer */
    int ngather;
    ol_checkpoint_tensor *xt;
    char (*xn)[XNAME];
    int nx, xcap;
    char *meta;
    ol_checkpoint_extra extra;
};

void ol__dsync_free(ol__dsync *ds)
{
    if (!ds)
        return;
    ol_ddp_free(ds->ddp);
    ol_powersgd_free(ds->psgd);
    ol_diloco_free(ds->dl);
    ol__free(ds->gather);
    free(ds->xt);
    free(ds->xn);
    free(ds->meta);
    free(ds);
}

static void x_add(ol__dsync *ds, const char *name, size_t numel, float *data)
{
    if (ds->nx >= ds->xcap)
        return; /* sized at creation */
    snprintf(ds->xn[ds->nx], XNAME, "%s", name);
    ds->xt[ds->nx] = (ol_checkpoint_tensor){ds->xn[ds->nx], numel, data};
    ds->nx++;
}

static int load_state(ol_ctx *ctx, ol__dsync *ds, ol_optim *opt, const char *path);

int ol__dsync_create(ol_ctx *ctx, const ol_train_params *tp, ol_model *m, ol_optim *opt, ol__dsync **out)
{
    *out = NULL;
    ol_paramset *ps = ol_model_paramset(m);
    const int psgd = tp->powersgd.rank > 0, dl = tp->diloco.h > 0;
    if (tp->powersgd.rank < 0 || tp->diloco.h < 0)
        return ol__err(ctx, OL_EINVAL, "negative PowerSGD rank or DiLoCo H");
    if (psgd && dl)
        return ol__err(ctx, OL_EINVAL, "PowerSGD and DiLoCo cannot be combined (DiLoCo sends no gradients)");
    if (dl && ol_optim_has_eval_mode(opt))
        return ol__err(ctx, OL_ENOTSUP, "DiLoCo with a Schedule-Free inner optimizer is not supported");
    ol__dsync *ds = calloc(1, sizeof *ds);
    if (!ds)
        return ol__err(ctx, OL_ENOMEM, "out of memory");
    ds->c = tp->comm;
    ds->W = ol_comm_size(tp->comm);
    ds->R = ol_comm_rank(tp->comm);
    ds->numel = ps->numel;
    ds->synced_at = tp->resume ? tp->resume->step : 0;
    ds->dense_step_bytes = ds->W > 1 ? 2.0 * (ds->W - 1) / ds->W * (double)ps->numel * sizeof(float) : 0.0;
    int rc = OL_OK;
    /* the exact all-reduce overlapped with backward, also for PowerSGD's first steps */
    if (ds->W > 1 && !dl && (!psgd || tp->powersgd.start_step > 0))
        rc = ol_ddp_create(ctx, tp->comm, m, tp->bucket_bytes ? tp->bucket_bytes : 256 * 1024,
                           tp->deterministic_reduce, &ds->ddp);
    if (rc >= 0 && psgd) {
        ol_powersgd_params pp = tp->powersgd;
        pp.seed = tp->seed;
        ds->psgd_start = pp.start_step;
        rc = ol_powersgd_create(ctx, tp->comm, ps, &pp, &ds->psgd);
        ds->ngather = 1;
        ds->xcap = 1 + ds->W;
    }
    if (rc >= 0 && dl) {
        ds->h = tp->diloco.h;
        rc = ol_diloco_create(ctx, tp->comm, ps, &tp->diloco, &ds->dl);
        ds->ngather = ol_optim_num_slots(opt);
        ds->xcap = (rc >= 0 ? ol_optim_num_slots(ol_diloco_outer(ds->dl)) : 0) + ds->W * ds->ngather;
    }
    if (rc >= 0 && ds->xcap > 0) {
        ds->xt = calloc((size_t)ds->xcap, sizeof *ds->xt);
        ds->xn = calloc((size_t)ds->xcap, sizeof *ds->xn);
        if (ds->R == 0 && ds->W > 1 && ds->ngather > 0)
            ds->gather = ol__alloc((size_t)ds->W * ds->numel * (size_t)ds->ngather * sizeof(float));
        if (!ds->xt || !ds->xn || (ds->R == 0 && ds->W > 1 && ds->ngather > 0 && !ds->gather))
            rc = ol__err(ctx, OL_ENOMEM, "out of memory for the checkpoint state of the data-parallel mode");
    }
    if (rc >= 0 && tp->resume && tp->resume_path && (psgd || dl))
        rc = load_state(ctx, ds, opt, tp->resume_path);
    if (rc < 0) {
        ol__dsync_free(ds);
        return rc;
    }
    *out = ds;
    return OL_OK;
}

ol_ddp *ol__dsync_ddp(ol__dsync *ds, int64_t step)
{
    return ds->ddp && (!ds->psgd || step < ds->psgd_start) ? ds->ddp : NULL;
}

int ol__dsync_local(const ol__dsync *ds) { return ds->dl != NULL; }

int ol__dsync_reduce(ol_ctx *ctx, ol__dsync *ds, ol_paramset *ps, int64_t step)
{
    if (ds->psgd && !ol__dsync_ddp(ds, step))
        return ol_powersgd_reduce(ctx, ds->psgd, ps, step);
    return OL_OK;
}

int ol__dsync_update(ol_ctx *ctx, ol__dsync *ds, ol_paramset *ps, int64_t step, int64_t total, int *synced)
{
    *synced = ds->dl == NULL;
    if (ds->psgd)
        ol_powersgd_commit(ds->psgd);
    if (ds->dl && (step % ds->h == 0 || step >= total)) {
        OL__TRY(ol_diloco_sync(ctx, ds->dl, ps));
        ds->synced_at = step;
        *synced = 1;
    }
    return OL_OK;
}

int ol__dsync_boundary(const ol__dsync *ds, int64_t step) { return !ds->dl || ds->synced_at == step; }

int64_t ol__dsync_steps_to_boundary(const ol__dsync *ds, int64_t step, int64_t total)
{
    if (!ds->dl)
        return 1;
    int64_t k = ds->h - step % ds->h;
    return total - step < k && total > step ? total - step : k;
}

void ol__dsync_swap_global(ol__dsync *ds, ol_paramset *ps)
{
    if (ds->dl)
        ol_diloco_swap_global(ds->dl, ps);
}

/* Every rank's copy of buf (numel floats) as tensors "dist.rank<r>.<what>" on
 * rank 0; from_rank 1 leaves rank 0's own out (stored elsewhere). */
static int gather_ranks(ol_ctx *ctx, ol__dsync *ds, float *buf, int slot, const char *what, int from_rank)
{
    float *g = ds->gather ? ds->gather + (size_t)slot * ds->W * ds->numel : NULL;
    if (ds->W > 1)
        OL__TRY(ol_comm_gather(ctx, ds->c, buf, ds->numel, g, 0));
    char name[XNAME];
    for (int r = from_rank; ds->R == 0 && r < ds->W; r++) {
        snprintf(name, sizeof name, "dist.rank%d.%s", r, what);
        x_add(ds, name, ds->numel, r == 0 ? buf : g + (size_t)r * ds->numel);
    }
    return OL_OK;
}

int ol__dsync_checkpoint(ol_ctx *ctx, ol__dsync *ds, ol_optim *opt, const ol_checkpoint_extra **extra)
{
    *extra = NULL;
    if (!ds->psgd && !ds->dl)
        return OL_OK;
    ds->nx = 0;
    json_t *meta = json_pack("{s:s, s:i}", "mode", ds->dl ? "diloco" : "powersgd", "world", ds->W);
    char name[XNAME];
    if (ds->dl) {
        ol_optim *outer = ol_diloco_outer(ds->dl);
        for (int s = 0; s < ol_optim_num_slots(outer); s++) {
            snprintf(name, sizeof name, "dist.outer.%s", ol_optim_slot_name(outer, s));
            x_add(ds, name, ds->numel, ol_optim_slot(outer, s));
        }
        for (int s = 0; s < ol_optim_num_slots(opt); s++) { /* rank 0's are the checkpoint's optim.* */
            int rc = gather_ranks(ctx, ds, ol_optim_slot(opt, s), s, ol_optim_slot_name(opt, s), 1);
            if (rc < 0) {
                json_decref(meta);
                return rc;
            }
        }
        json_t *sc = json_object();
        for (int i = 0; i < ol_optim_num_scalars(outer); i++)
            json_object_set_new(sc, ol_optim_scalar_name(outer, i), json_real(*ol_optim_scalar(outer, i)));
        json_object_set_new(meta, "outer_steps", json_integer(ol_optim_steps(outer)));
        json_object_set_new(meta, "outer_scalars", sc);
        json_object_set_new(meta, "syncs", json_integer(ol_diloco_syncs(ds->dl)));
        json_object_set_new(meta, "h", json_integer(ds->h));
    } else {
        ol__psgd_state s;
        ol__powersgd_state(ds->psgd, &s);
        x_add(ds, "dist.powersgd.q", s.nq, s.q);
        int rc = gather_ranks(ctx, ds, s.err, 0, "powersgd_error", 0);
        if (rc < 0) {
            json_decref(meta);
            return rc;
        }
        json_object_set_new(meta, "have_q", json_integer(*s.have_q));
    }
    free(ds->meta);
    ds->meta = meta ? json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(meta);
    if (!ds->meta)
        return ol__err(ctx, OL_ENOMEM, "out of memory");
    if (ds->R != 0)
        return OL_OK;
    ds->extra = (ol_checkpoint_extra){ds->xt, ds->nx, "dist", ds->meta};
    *extra = &ds->extra;
    return OL_OK;
}

/* Each rank reads its own part. A checkpoint of another mode (or none) leaves
 * the fresh state: the mode starts at the resumed step. */
static int load_state(ol_ctx *ctx, ol__dsync *ds, ol_optim *opt, const char *path)
{
    ol_checkpoint_extra ex = {NULL, 0, "dist", NULL};
    char *ms = NULL;
    OL__TRY(ol_checkpoint_load_extra(ctx, path, &ex, &ms));
    json_error_t je;
    json_t *meta = ms ? json_loads(ms, 0, &je) : NULL;
    free(ms);
    const char *mode = json_string_value(json_object_get(meta, "mode"));
    int rc = OL_OK;
    if (!mode || strcmp(mode, ds->dl ? "diloco" : "powersgd") != 0) {
        json_decref(meta);
        return OL_OK;
    }
    int world = (int)json_integer_value(json_object_get(meta, "world"));
    if (world != ds->W) {
        rc = ol__err(ctx, OL_EINVAL, "%s holds the %s state of %d ranks; resume it with %d ranks", path,
                     ds->dl ? "DiLoCo" : "PowerSGD", world, world);
        json_decref(meta);
        return rc;
    }
    ds->nx = 0;
    char name[XNAME];
    ol__psgd_state s = {0};
    if (ds->dl) {
        ol_optim *outer = ol_diloco_outer(ds->dl);
        for (int i = 0; i < ol_optim_num_slots(outer); i++) {
            snprintf(name, sizeof name, "dist.outer.%s", ol_optim_slot_name(outer, i));
            x_add(ds, name, ds->numel, ol_optim_slot(outer, i));
        }
        for (int i = 0; ds->R > 0 && i < ol_optim_num_slots(opt); i++) {
            snprintf(name, sizeof name, "dist.rank%d.%s", ds->R, ol_optim_slot_name(opt, i));
            x_add(ds, name, ds->numel, ol_optim_slot(opt, i));
        }
    } else {
        ol__powersgd_state(ds->psgd, &s);
        x_add(ds, "dist.powersgd.q", s.nq, s.q);
        snprintf(name, sizeof name, "dist.rank%d.powersgd_error", ds->R);
        x_add(ds, name, s.nerr, s.err);
    }
    ex.t = ds->xt;
    ex.n = ds->nx;
    rc = ol_checkpoint_load_extra(ctx, path, &ex, NULL);
    if (rc >= 0 && ds->dl) {
        ol_optim *outer = ol_diloco_outer(ds->dl);
        rc = ol_optim_set_steps(ctx, outer, (int64_t)json_integer_value(json_object_get(meta, "outer_steps")));
        json_t *sc = json_object_get(meta, "outer_scalars");
        for (int i = 0; i < ol_optim_num_scalars(outer); i++) {
            json_t *v = json_object_get(sc, ol_optim_scalar_name(outer, i));
            if (json_is_number(v))
                *ol_optim_scalar(outer, i) = json_number_value(v);
        }
        ol_diloco_set_syncs(ds->dl, (int64_t)json_integer_value(json_object_get(meta, "syncs")));
    } else if (rc >= 0) {
        *s.have_q = (int)json_integer_value(json_object_get(meta, "have_q"));
    }
    json_decref(meta);
    return rc;
}

void ol__dsync_get_stats(const ol__dsync *ds, ol__dsync_stats *s)
{
    memset(s, 0, sizeof *s);
    s->dense_step_bytes = ds->dense_step_bytes;
    if (ds->ddp)
        ol_ddp_overlap_bytes(ds->ddp, &s->early_bytes, &s->total_bytes);
    if (ds->dl)
        s->syncs = ol_diloco_syncs(ds->dl);
}
