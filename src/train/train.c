/* The training loop, evaluation and metrics. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/internal.h"
#include "io/jsonw.h"
#include "nn/graph.h"
#include "optimlab/train.h"

ol_train_params ol_train_default_params(void)
{
    ol_train_params tp;
    memset(&tp, 0, sizeof tp);
    tp.epochs = 10;
    tp.batch_size = 128;
    tp.evals_per_epoch = 1;
    tp.log_every = 50;
    tp.prefetch = 1;
    tp.bn_recompute_batches = 50;
    return tp;
}

int ol_evaluate(ol_ctx *ctx, ol_model *m, const ol_dataset *d, int batch, double *loss, double *acc)
{
    if (batch <= 0)
        return ol__err(ctx, OL_EINVAL, "evaluation batch size must be > 0, got %d", batch);
    if (d->num_classes > ol_model_num_classes(m))
        return ol__err(ctx, OL_ESHAPE, "dataset has %d classes, the model %d", d->num_classes,
                       ol_model_num_classes(m));
    const size_t per = (size_t)d->c * d->h * d->w;
    float *x = ol__alloc((size_t)batch * per * sizeof(float));
    int32_t *y = ol__alloc((size_t)batch * sizeof(int32_t));
    int64_t *idx = malloc((size_t)batch * sizeof(int64_t));
    if (!x || !y || !idx) {
        ol__free(x);
        ol__free(y);
        free(idx);
        return ol__err(ctx, OL_ENOMEM, "out of memory for evaluation batches");
    }
    double total = 0.0;
    int64_t correct = 0;
    int rc = OL_OK;
    for (int64_t s = 0; s < d->n && rc >= 0; s += batch) {
        int n = (int)(d->n - s < batch ? d->n - s : batch);
        for (int i = 0; i < n; i++)
            idx[i] = s + i;
        ol_dataset_fill(d, idx, n, NULL, 0, 0, x, y);
        double l = 0.0;
        int c = 0;
        rc = ol_model_forward(ctx, m, x, n, 0);
        if (rc >= 0)
            rc = ol_model_loss(ctx, m, y, n, 0.0f, 0.0f, &l, &c);
        total += l;
        correct += c;
    }
    ol__free(x);
    ol__free(y);
    free(idx);
    OL__TRY(rc);
    *loss = total / (double)d->n;
    *acc = (double)correct / (double)d->n;
    return OL_OK;
}

int ol_recompute_bn_stats(ol_ctx *ctx, ol_model *m, const ol_dataset *d, int batch, int batches, uint64_t seed)
{
    ol_paramset *ps = ol_model_paramset(m);
    float *saved_mom = malloc((size_t)(m->nnodes > 0 ? m->nnodes : 1) * sizeof(float));
    if (!saved_mom)
        return ol__err(ctx, OL_ENOMEM, "out of memory");
    for (int i = 0; i < ps->nb; i++) { /* reset: running_mean 0, running_var 1 */
        float v = strstr(ps->b[i].name, "running_var") ? 1.0f : 0.0f;
        for (size_t j = 0; j < ps->b[i].numel; j++)
            ps->buffers[ps->b[i].offset + j] = v;
    }
    for (int k = 0; k < m->nnodes; k++)
        saved_mom[k] = m->nodes[k].bn_momentum;
    ol_loader_params lp = {.shuffle = 1, .seed = seed ^ 0x5bd1e995u, .max_batch = batch};
    ol_loader *l = NULL;
    int rc = ol_loader_create(ctx, d, &lp, &l);
    if (rc >= 0)
        rc = ol_loader_start_epoch(ctx, l, 0, 0);
    for (int b = 0; rc >= 0 && b < batches; b++) {
        const float *x;
        const int32_t *y;
        int n = ol_loader_next(ctx, l, batch, &x, &y);
        if (n <= 0) {
            rc = n;
            break;
        }
        for (int k = 0; k < m->nnodes; k++) /* cumulative average: momentum 1/(b+1) */
            m->nodes[k].bn_momentum = 1.0f / (float)(b + 1);
        rc = ol_model_forward(ctx, m, x, n, 1);
    }
    for (int k = 0; k < m->nnodes; k++)
        m->nodes[k].bn_momentum = saved_mom[k];
    free(saved_mom);
    ol_loader_free(l);
    return rc < 0 ? rc : OL_OK;
}

static int has_bn(const ol_model *m)
{
    for (int k = 0; k < m->nnodes; k++)
        if (m->nodes[k].op == OL__OP_BATCHNORM2D)
            return 1;
    return 0;
}

static int mkdir_p(ol_ctx *ctx, const char *dir)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp)
        return ol__err(ctx, OL_EINVAL, "output path too long");
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
                return ol__err(ctx, OL_EIO, "cannot create %s: %s", tmp, strerror(errno));
            *p = '/';
        }
    if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
        return ol__err(ctx, OL_EIO, "cannot create %s: %s", tmp, strerror(errno));
    struct stat st;
    if (stat(tmp, &st) != 0 || !S_ISDIR(st.st_mode))
        return ol__err(ctx, OL_EIO, "%s is not a directory", tmp);
    return OL_OK;
}

int ol_train_step(ol_ctx *ctx, const ol_train_params *tp, ol_model *m, ol_optim *opt, const float *x,
                  const int32_t *y, int n, const ol_optim_hyper *h, ol_step_result *out)
{
    memset(out, 0, sizeof *out);
    if (n <= 0)
        return ol__err(ctx, OL_EINVAL, "empty batch");
    const ol_model_params *mp = ol_model_get_params(m);
    const size_t per = (size_t)mp->in_c * mp->in_h * mp->in_w;
    const int mb = tp->micro_batch_size > 0 && tp->micro_batch_size < n ? tp->micro_batch_size : n;
    ol_paramset *ps = ol_model_paramset(m);
    ol_paramset_zero_grads(ps);
    for (int lo = 0; lo < n; lo += mb) {
        int k = n - lo < mb ? n - lo : mb;
        double l = 0.0;
        int c = 0;
        OL__TRY(ol_model_forward(ctx, m, x + (size_t)lo * per, k, !tp->freeze_bn));
        OL__TRY(ol_model_loss(ctx, m, y + lo, k, tp->label_smoothing, 1.0f / (float)n, &l, &c));
        out->loss_sum += l;
        out->correct += c;
        if (!isfinite(l))
            return ol__err(ctx, OL_ENONFINITE, "loss is %g", l);
        OL__TRY(ol_model_backward(ctx, m));
    }
    out->grad_norm = ol_clip_grad_norm(ps, tp->clip_grad_norm);
    if (!isfinite(out->grad_norm))
        return ol__err(ctx, OL_ENONFINITE, "gradient norm is %g", out->grad_norm);
    return ol_optim_step(ctx, opt, ps, h);
}

typedef struct {
    FILE *f;
    ol__jw w;
} metrics;

static int metrics_line(ol_ctx *ctx, metrics *mt)
{
    if (!mt->f)
        return OL_OK;
    if (mt->w.failed)
        return ol__err(ctx, OL_ENOMEM, "out of memory writing metrics");
    if (fprintf(mt->f, "%s\n", mt->w.buf) < 0 || fflush(mt->f) != 0)
        return ol__err(ctx, OL_EIO, "writing metrics.jsonl: %s", strerror(errno));
    return OL_OK;
}

/* Evaluate on the test set (at x for Schedule-Free, with BN statistics recomputed there). */
static int run_eval(ol_ctx *ctx, const ol_train_params *tp, ol_model *m, ol_optim *opt, const ol_dataset *train,
                    const ol_dataset *test, double *loss, double *acc)
{
    ol_paramset *ps = ol_model_paramset(m);
    int sf = ol_optim_has_eval_mode(opt);
    int eb = tp->eval_batch_size > 0 ? tp->eval_batch_size : tp->batch_size;
    float *saved = NULL;
    if (sf) {
        OL__TRY(ol_optim_eval_mode(ctx, opt, ps));
        if (has_bn(m)) { /* keep the running statistics of y; recompute them at x */
            saved = malloc(ps->bnumel * sizeof(float));
            if (!saved)
                return ol__err(ctx, OL_ENOMEM, "out of memory");
            memcpy(saved, ps->buffers, ps->bnumel * sizeof(float));
            int rc = ol_recompute_bn_stats(ctx, m, train, tp->batch_size,
                                           tp->bn_recompute_batches > 0 ? tp->bn_recompute_batches : 50, tp->seed);
            if (rc < 0) {
                free(saved);
                return rc;
            }
        }
    }
    int rc = ol_evaluate(ctx, m, test, eb, loss, acc);
    if (sf) {
        if (saved) {
            memcpy(ps->buffers, saved, ps->bnumel * sizeof(float));
            free(saved);
        }
        int rc2 = ol_optim_train_mode(ctx, opt, ps);
        if (rc >= 0)
            rc = rc2;
    }
    return rc;
}

int ol_train(ol_ctx *ctx, const ol_train_params *tp, ol_model *m, ol_optim *opt, const ol_sched_params *sched,
             const ol_dataset *train, const ol_dataset *test, const ol_train_hooks *hooks, ol_train_result *res)
{
    memset(res, 0, sizeof *res);
    if (tp->batch_size <= 0)
        return ol__err(ctx, OL_EINVAL, "batch size must be > 0, got %d", tp->batch_size);
    if (tp->epochs < 0 || tp->max_steps < 0 || (tp->epochs == 0 && tp->max_steps == 0))
        return ol__err(ctx, OL_EINVAL, "nothing to train: epochs %d, steps %lld", tp->epochs,
                       (long long)tp->max_steps);
    if (tp->evals_per_epoch < 1)
        return ol__err(ctx, OL_EINVAL, "evaluations per epoch must be >= 1, got %d", tp->evals_per_epoch);
    const ol_model_params *mp = ol_model_get_params(m);
    if (train->c != mp->in_c || train->h != mp->in_h || train->w != mp->in_w)
        return ol__err(ctx, OL_ESHAPE, "data is %dx%dx%d but the model expects %dx%dx%d", train->c, train->h,
                       train->w, mp->in_c, mp->in_h, mp->in_w);
    if (train->num_classes > ol_model_num_classes(m))
        return ol__err(ctx, OL_ESHAPE, "data has %d classes, the model %d", train->num_classes,
                       ol_model_num_classes(m));
    OL__TRY(ol_sched_validate(ctx, sched));
    if (tp->micro_batch_size < 0)
        return ol__err(ctx, OL_EINVAL, "micro-batch size must be >= 0, got %d", tp->micro_batch_size);
    OL__TRY(ol_model_reserve(ctx, m, tp->micro_batch_size > 0 && tp->micro_batch_size < tp->batch_size
                                          ? tp->micro_batch_size
                                          : tp->batch_size));

    metrics mt = {0};
    if (tp->out_dir) {
        OL__TRY(mkdir_p(ctx, tp->out_dir));
        char path[4096];
        snprintf(path, sizeof path, "%s/metrics.jsonl", tp->out_dir);
        mt.f = fopen(path, "w");
        if (!mt.f)
            return ol__err(ctx, OL_EIO, "cannot write %s: %s", path, strerror(errno));
    }
    ol_loader_params lp = {.shuffle = 1,
                           .drop_last = tp->drop_last,
                           .aug = tp->aug,
                           .seed = tp->seed,
                           .prefetch = tp->prefetch,
                           .max_batch = tp->batch_size};
    ol_loader *loader = NULL;
    int rc = ol_loader_create(ctx, train, &lp, &loader);
    const int64_t per_epoch = rc >= 0 ? ol_loader_batches_per_epoch(loader, tp->batch_size) : 1;
    int64_t total = tp->epochs > 0 ? per_epoch * tp->epochs : tp->max_steps;
    if (tp->max_steps > 0 && tp->max_steps < total)
        total = tp->max_steps;
    const int epochs = tp->epochs > 0 ? tp->epochs : (int)((total + per_epoch - 1) / per_epoch);
    const int log_every = tp->log_every > 0 ? tp->log_every : 50;
    const double t_start = ol__now();
    double train_time = 0.0, eval_time = 0.0, window_time = 0.0;
    int64_t window_samples = 0, step = 0, samples_total = 0;
    res->best_test_acc = -1.0;

    for (int epoch = 0; rc >= 0 && epoch < epochs && step < total; epoch++) {
        rc = ol_loader_start_epoch(ctx, loader, epoch, 0);
        double ep_loss = 0.0;
        int64_t ep_correct = 0, ep_seen = 0, batch_in_epoch = 0;
        int evals_done = 0;
        for (;;) {
            if (rc < 0 || step >= total)
                break;
            double t0 = ol__now();
            const float *x;
            const int32_t *y;
            int n = ol_loader_next(ctx, loader, tp->batch_size, &x, &y);
            if (n <= 0) {
                rc = n;
                break;
            }
            double lr = ol_sched_lr(sched, step), mom = ol_sched_momentum(sched, step);
            ol_optim_hyper h = {.lr = lr, .momentum = mom};
            ol_step_result sr;
            rc = ol_train_step(ctx, tp, m, opt, x, y, n, &h, &sr);
            if (rc == OL_ENONFINITE) {
                char why[256];
                snprintf(why, sizeof why, "%s", ol_ctx_errmsg(ctx));
                rc = ol__err(ctx, OL_ENONFINITE, "training diverged at step %lld: %s (lower the learning rate)",
                             (long long)step + 1, why);
            }
            double loss = sr.loss_sum, gnorm = sr.grad_norm;
            int correct = sr.correct;
            if (rc < 0)
                break;
            double dt = ol__now() - t0;
            train_time += dt;
            window_time += dt;
            window_samples += n;
            samples_total += n;
            step++;
            batch_in_epoch++;
            ep_loss += loss;
            ep_correct += correct;
            ep_seen += n;
            ol_step_info si = {.step = step,
                               .epoch = epoch + (double)batch_in_epoch / (double)per_epoch,
                               .total_steps = total,
                               .lr = lr,
                               .momentum = mom,
                               .loss = loss / n,
                               .acc = (double)correct / n,
                               .grad_norm = gnorm,
                               .samples_per_s = window_time > 0 ? window_samples / window_time : 0.0,
                               .elapsed = ol__now() - t_start,
                               .batch = n};
            if (hooks && hooks->on_step)
                hooks->on_step(hooks->user, &si);
            if (step % log_every == 0 || step == total) {
                ol__jw_begin(&mt.w);
                ol__jw_str(&mt.w, "type", "step");
                ol__jw_int(&mt.w, "step", step);
                ol__jw_num(&mt.w, "epoch", si.epoch);
                ol__jw_num(&mt.w, "lr", lr);
                if (mom >= 0)
                    ol__jw_num(&mt.w, "momentum", mom);
                ol__jw_num(&mt.w, "loss", si.loss);
                ol__jw_num(&mt.w, "acc", si.acc);
                ol__jw_num(&mt.w, "grad_norm", gnorm);
                ol__jw_int(&mt.w, "batch", n);
                ol__jw_num(&mt.w, "samples_per_s", si.samples_per_s);
                ol__jw_num(&mt.w, "elapsed", si.elapsed);
                ol__jw_end(&mt.w);
                rc = metrics_line(ctx, &mt);
                window_time = 0.0;
                window_samples = 0;
            }
            /* evaluations spread evenly over the epoch; the last one at its end */
            int64_t next_eval = (per_epoch * (evals_done + 1)) / tp->evals_per_epoch;
            int end_of_epoch = batch_in_epoch >= per_epoch;
            if (rc >= 0 && (batch_in_epoch >= next_eval || step >= total)) {
                double te = ol__now(), tl = 0.0, ta = 0.0;
                rc = run_eval(ctx, tp, m, opt, train, test, &tl, &ta);
                eval_time += ol__now() - te;
                evals_done++;
                if (rc < 0)
                    break;
                end_of_epoch = end_of_epoch || step >= total;
                ol_eval_info ei = {.step = step,
                                   .epoch = si.epoch,
                                   .end_of_epoch = end_of_epoch,
                                   .train_loss = ep_loss / ep_seen,
                                   .train_acc = (double)ep_correct / ep_seen,
                                   .test_loss = tl,
                                   .test_acc = ta,
                                   .elapsed = ol__now() - t_start};
                if (ta > res->best_test_acc) {
                    res->best_test_acc = ta;
                    res->best_epoch = si.epoch;
                }
                res->final_test_acc = ta;
                res->final_test_loss = tl;
                res->final_train_loss = ei.train_loss;
                res->final_train_acc = ei.train_acc;
                ol__jw_begin(&mt.w);
                ol__jw_str(&mt.w, "type", end_of_epoch ? "epoch" : "eval");
                ol__jw_int(&mt.w, "step", step);
                ol__jw_num(&mt.w, "epoch", si.epoch);
                ol__jw_num(&mt.w, "train_loss", ei.train_loss);
                ol__jw_num(&mt.w, "train_acc", ei.train_acc);
                ol__jw_num(&mt.w, "test_loss", tl);
                ol__jw_num(&mt.w, "test_acc", ta);
                ol__jw_num(&mt.w, "elapsed", ei.elapsed);
                ol__jw_end(&mt.w);
                rc = metrics_line(ctx, &mt);
                if (hooks && hooks->on_eval)
                    hooks->on_eval(hooks->user, &ei);
                if (end_of_epoch)
                    res->epochs_done = epoch + 1;
            }
        }
    }
    res->steps = step;
    res->elapsed = ol__now() - t_start;
    res->train_time = train_time;
    res->eval_time = eval_time;
    res->samples_per_s = train_time > 0 ? (double)samples_total / train_time : 0.0;
    ol_loader_free(loader);
    if (mt.f) {
        if (rc >= 0) {
            ol__jw_begin(&mt.w);
            ol__jw_str(&mt.w, "type", "summary");
            ol__jw_int(&mt.w, "steps", step);
            ol__jw_int(&mt.w, "epochs", res->epochs_done);
            ol__jw_num(&mt.w, "best_test_acc", res->best_test_acc);
            ol__jw_num(&mt.w, "best_epoch", res->best_epoch);
            ol__jw_num(&mt.w, "final_test_acc", res->final_test_acc);
            ol__jw_num(&mt.w, "final_test_loss", res->final_test_loss);
            ol__jw_num(&mt.w, "final_train_loss", res->final_train_loss);
            ol__jw_num(&mt.w, "final_train_acc", res->final_train_acc);
            ol__jw_num(&mt.w, "train_time", train_time);
            ol__jw_num(&mt.w, "eval_time", eval_time);
            ol__jw_num(&mt.w, "elapsed", res->elapsed);
            ol__jw_end(&mt.w);
            rc = metrics_line(ctx, &mt);
        }
        if (fclose(mt.f) != 0 && rc >= 0)
            rc = ol__err(ctx, OL_EIO, "closing metrics.jsonl: %s", strerror(errno));
    }
    ol__jw_free(&mt.w);
    return rc < 0 ? rc : OL_OK;
}
