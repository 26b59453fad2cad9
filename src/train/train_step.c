/* One training step (forward, loss, backward over micro-batches, gradient
 * reduction, clipping, update) and the learning-rate rule: written once, used
 * by ol_train, lr-find, bench train and optimlab schedule. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/internal.h"
#include "dist/sync.h"
#include "optimlab/dist.h"
#include "optimlab/train.h"
#include "train/diag.h"
#include "train/train_internal.h"

double ol_train_lr(const ol_train_params *tp, const ol_sched_params *sched, const ol_plateau *plateau, int64_t step,
                   int64_t batch)
{
    const double lr = plateau ? ol_plateau_lr(plateau, sched, step) : ol_sched_lr(sched, step);
    return lr * ol_lr_scale(tp->lr_scaling, (double)batch,
                            (double)(tp->base_batch > 0 ? tp->base_batch : tp->batch_size), tp->lr_knee);
}

/* The global gradient norm before clipping, and the clipping (0: skipped). */
static double clip_norm(const ol_train_params *tp, ol_paramset *ps)
{
    if (tp->skip_grad_norm && !(tp->clip_grad_norm > 0.0))
        return 0.0;
    return ol_clip_grad_norm(ps, tp->clip_grad_norm);
}

/* Gradients of a global batch of n samples, of which this rank holds x[0..k),
 * summed over ranks with the bucketed all-reduce started during the backward
 * of the last micro-batch (or PowerSGD after backward; DiLoCo: the mean over
 * the rank's own k samples, not summed). A rank that fails still joins every
 * collective; then all ranks agree on the first failure. Loss and accuracy are
 * summed over ranks too; nonfinite is set when the loss is not finite anywhere.
 * ds NULL: this process alone (k == n). */
static int train_grads(ol_ctx *ctx, const ol_train_params *tp, ol_model *m, ol__dsync *ds, ol__diag *dg,
                       int64_t step, const float *x, const int32_t *y, int k, int n, ol_step_result *out,
                       int *nonfinite)
{
    ol_ddp *ddp = ds ? ol__dsync_ddp(ds, step) : NULL;
    const int local = ds && ol__dsync_local(ds);
    /* --gns: the per-rank gradients when all-reduced, else the micro-batches */
    ol__gns_meas *gm = ol__diag_gns(dg);
    const int gns_ranks = gm && ddp && ol_comm_size(tp->comm) > 1, gns_micro = gm && !gns_ranks;
    if (gns_ranks)
        ol_ddp_measure_local(ddp, 1);
    memset(out, 0, sizeof *out);
    double t = ol__now();
    const ol_model_params *mp = ol_model_get_params(m);
    const size_t per = (size_t)mp->in_c * mp->in_h * mp->in_w;
    const int P = ol_model_outputs_per_sample(m); /* labels per sample: the loss is the mean over n*P positions */
    const int mb = tp->micro_batch_size > 0 && tp->micro_batch_size < k ? tp->micro_batch_size : (k > 0 ? k : 1);
    ol_paramset *ps = ol_model_paramset(m);
    ol_model_zero_grads(m);
    int rc = OL_OK, armed = 0, local_bad = 0;
    for (int lo = 0; lo < k && rc >= 0; lo += mb) {
        int kk = k - lo < mb ? k - lo : mb;
        double l = 0.0;
        int c = 0;
        rc = ol_model_forward(ctx, m, x + (size_t)lo * per, kk, !tp->freeze_bn);
        if (rc >= 0)
            rc = ol_model_loss(ctx, m, y + (size_t)lo * P, kk, tp->label_smoothing,
                               1.0f / ((float)(local ? k : n) * (float)P), &l, &c);
        out->loss_sum += P > 1 ? l / P : l;
        out->correct += c;
        local_bad |= !isfinite(l);
        const double t1 = ol__now();
        out->forward_s += t1 - t;
        if (rc >= 0 && lo + kk >= k && ddp) {
            ol_ddp_arm(ddp);
            armed = 1;
        }
        if (rc >= 0)
            rc = ol_model_backward(ctx, m);
        if (rc >= 0 && gns_micro)
            ol__gns_after_micro(gm, ps, kk, local ? k : n);
        t = ol__now();
        out->backward_s += t - t1;
    }
    if (rc >= 0 && gns_micro && k > 0)
        ol__gns_local_big(gm, ps, k, local ? k : n);
    if (ddp) {
        if (!armed) /* no samples here, or a failure: still take part */
            ol_ddp_arm(ddp);
        int rc2 = ol_ddp_finish(ctx, ddp);
        if (rc >= 0)
            rc = rc2;
    }
    int rc2 = ds ? ol__dsync_reduce(ctx, ds, ps, step) : OL_OK;
    if (rc >= 0)
        rc = rc2;
    OL__TRY(ol_comm_agree(ctx, tp->comm, rc));
    if (dg && ol__diag_layers_due(dg, step))
        ol__diag_layer_grads(dg, ps); /* before clipping */
    if (gns_ranks) {
        ol_ddp_measure_local(ddp, 0);
        ol__gns_reduced_big(gm, ps, n);
    }
    /* DiLoCo clips each rank's own gradient; every rank must learn of a bad one */
    const double norm = local ? clip_norm(tp, ps) : 0.0;
    const double rscale = k > 0 ? (double)n / k : 0.0; /* this rank's mean gradient from its part of the sum */
    double s[6] = {out->loss_sum, (double)out->correct, (double)(local_bad || !isfinite(norm)), norm * norm};
    int ns = local ? 4 : 3;
    if (gns_ranks) {
        s[ns++] = ol_ddp_local_sq(ddp) * rscale * rscale;
        s[ns++] = k > 0 ? 1.0 / k : 0.0;
    }
    OL__TRY(ol_comm_allreduce_f64(ctx, tp->comm, s, (size_t)ns));
    if (gns_ranks) {
        gm->small_sq = s[ns - 2];
        gm->small_inv_b = s[ns - 1];
        gm->nsmall = ol_comm_size(tp->comm);
    }
    out->loss_sum = s[0];
    out->correct = (int)s[1];
    out->grad_norm = local ? sqrt(s[3] / ol_comm_size(tp->comm)) : clip_norm(tp, ps);
    *nonfinite = s[2] > 0 || !isfinite(out->loss_sum) || !isfinite(out->grad_norm);
    out->backward_s += ol__now() - t;
    return OL_OK;
}

static uint64_t hash_floats(const float *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n * sizeof(float); i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

int ol__train_step(ol_ctx *ctx, const ol_train_params *tp, ol_model *m, ol_optim *opt, const ol__step_env *env,
                   const float *x, const int32_t *y, int k, int n, const ol_optim_hyper *h, ol_step_result *out,
                   char *why, size_t cap)
{
    ol_paramset *ps = ol_model_paramset(m);
    why[0] = '\0';
    if (env->bn_saved)
        memcpy(env->bn_saved, ps->buffers, ps->bnumel * sizeof(float));
    int nonfinite = 0;
    OL__TRY(train_grads(ctx, tp, m, env->ds, env->diag, env->step, x, y, k, n, out, &nonfinite));
    if (nonfinite)
        snprintf(why, cap, "%s is not finite", isfinite(out->loss_sum) ? "the gradient norm" : "the loss");
    else if (env->st && ol__loss_spike(env->st, out->loss_sum / n, tp->spike_zscore))
        snprintf(why, cap, "loss spike (%.4g)", out->loss_sum / n);
    if (why[0]) { /* skip the update; undo the BN statistics of the bad batch */
        if (env->bn_saved)
            memcpy(ps->buffers, env->bn_saved, ps->bnumel * sizeof(float));
        return OL_OK;
    }
    const double t0 = ol__now();
    const int layers = ol__diag_layers_due(env->diag, env->step);
    if (layers)
        ol__diag_layer_before(env->diag, ps);
    OL__TRY(ol_optim_step(ctx, opt, ps, h));
    if (layers)
        ol__diag_layer_after(env->diag, ps);
    ol__diag_step_done(env->diag);
    int synced = 1; /* DiLoCo: the ranks differ inside a round */
    if (env->ds)
        OL__TRY(ol__dsync_update(ctx, env->ds, ps, env->step + 1, env->total, &synced));
    if (ol_comm_size(tp->comm) > 1 && tp->check_replicas && synced) {
        char hs[32];
        snprintf(hs, sizeof hs, "%016llx", (unsigned long long)hash_floats(ps->params, ps->numel));
        OL__TRY(ol_comm_check_same(ctx, tp->comm, hs, "parameters after the step"));
    }
    out->update_s = ol__now() - t0;
    return OL_OK;
}

/* The public step runs in this process alone: no communicator, no spike rule. */
static int alone(ol_ctx *ctx, const ol_train_params *tp, int n, ol_train_params *copy)
{
    if (n <= 0)
        return ol__err(ctx, OL_EINVAL, "empty batch");
    *copy = *tp;
    copy->comm = NULL;
    return OL_OK;
}

static int nonfinite_err(ol_ctx *ctx, const ol_step_result *r)
{
    if (!isfinite(r->loss_sum))
        return ol__err(ctx, OL_ENONFINITE, "loss is %g", r->loss_sum);
    return ol__err(ctx, OL_ENONFINITE, "gradient norm is %g", r->grad_norm);
}

int ol_train_grads(ol_ctx *ctx, const ol_train_params *tp, ol_model *m, const float *x, const int32_t *y, int n,
                   ol_step_result *out)
{
    ol_train_params t;
    memset(out, 0, sizeof *out);
    OL__TRY(alone(ctx, tp, n, &t));
    int nonfinite = 0;
    OL__TRY(train_grads(ctx, &t, m, NULL, NULL, 0, x, y, n, n, out, &nonfinite));
    return nonfinite ? nonfinite_err(ctx, out) : OL_OK;
}

int ol_train_step(ol_ctx *ctx, const ol_train_params *tp, ol_model *m, ol_optim *opt, const float *x,
                  const int32_t *y, int n, const ol_optim_hyper *h, ol_step_result *out)
{
    ol_train_params t;
    memset(out, 0, sizeof *out);
    OL__TRY(alone(ctx, tp, n, &t));
    const ol__step_env env = {0};
    char why[64];
    OL__TRY(ol__train_step(ctx, &t, m, opt, &env, x, y, n, n, h, out, why, sizeof why));
    return why[0] ? nonfinite_err(ctx, out) : OL_OK;
}
