/* The training loop, evaluation and metrics. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/internal.h"
#include "dist/sync.h"
#include "io/jsonw.h"
#include "nn/graph.h"
#include "optimlab/dist.h"
#include "optimlab/train.h"
#include "train/train_internal.h"

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
    tp.final_checkpoint = 1;
    tp.divergence_factor = 10.0;
    tp.powersgd = ol_powersgd_default_params();
    tp.powersgd.rank = 0;
    tp.diloco = ol_diloco_default_params();
    return tp;
}

int ol_evaluate(ol_ctx *ctx, ol_model *m, const ol_dataset *d, int batch, double *loss, double *acc)
{
    if (batch <= 0)
        return ol__err(ctx, OL_EINVAL, "evaluation batch size must be > 0, got %d", batch);
    if (d->num_classes > ol_model_num_classes(m))
        return ol__err(ctx, OL_ESHAPE, "dataset has %d classes, the model %d", d->num_classes,
                       ol_model_num_classes(m));
    const ol_model_params *mp = ol_model_get_params(m);
    if (d->c != mp->in_c || d->h != mp->in_h || d->w != mp->in_w) /* the model would read past a smaller image */
        return ol__err(ctx, OL_ESHAPE, "evaluation images are %dx%dx%d but the model expects %dx%dx%d", d->c, d->h,
                       d->w, mp->in_c, mp->in_h, mp->in_w);
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

int ol_evaluate_ensemble(ol_ctx *ctx, ol_model *m, const char *const *files, int nf, const ol_dataset *d, int batch,
                         double *loss, double *acc)
{
    if (nf <= 0 || batch <= 0)
        return ol__err(ctx, OL_EINVAL, "ensemble of %d models, batch %d", nf, batch);
    ol_paramset *ps = ol_model_paramset(m);
    const int K = ol_model_num_classes(m);
    const size_t per = (size_t)d->c * d->h * d->w;
    float *keep_p = malloc(ps->numel * sizeof(float)), *keep_b = malloc((ps->bnumel ? ps->bnumel : 1) * sizeof(float));
    double *prob = calloc((size_t)d->n * (size_t)K, sizeof(double));
    float *x = ol__alloc((size_t)batch * per * sizeof(float));
    int32_t *y = ol__alloc((size_t)batch * sizeof(int32_t)), *labels = malloc((size_t)d->n * sizeof(int32_t));
    int64_t *idx = malloc((size_t)batch * sizeof(int64_t));
    int rc = keep_p && keep_b && prob && x && y && labels && idx ? OL_OK : ol__err(ctx, OL_ENOMEM, "out of memory");
    if (rc >= 0) {
        memcpy(keep_p, ps->params, ps->numel * sizeof(float));
        memcpy(keep_b, ps->buffers, ps->bnumel * sizeof(float));
    }
    for (int f = 0; rc >= 0 && f < nf; f++) {
        rc = ol_weights_import(ctx, files[f], m);
        for (int64_t s = 0; rc >= 0 && s < d->n; s += batch) {
            int n = (int)(d->n - s < batch ? d->n - s : batch);
            for (int i = 0; i < n; i++)
                idx[i] = s + i;
            ol_dataset_fill(d, idx, n, NULL, 0, 0, x, y);
            rc = ol_model_forward(ctx, m, x, n, 0);
            if (rc >= 0)
                rc = ol_model_loss(ctx, m, y, n, 0.0f, 0.0f, NULL, NULL); /* fills the softmax */
            for (int i = 0; rc >= 0 && i < n; i++) {
                labels[s + i] = y[i];
                for (int k = 0; k < K; k++)
                    prob[(size_t)(s + i) * K + k] += m->probs[(size_t)i * K + k] / nf;
            }
        }
    }
    if (rc >= 0) {
        double total = 0.0;
        int64_t correct = 0;
        for (int64_t i = 0; i < d->n; i++) {
            const double *p = prob + (size_t)i * K;
            int arg = 0;
            for (int k = 1; k < K; k++)
                if (p[k] > p[arg])
                    arg = k;
            correct += arg == labels[i];
            total += -log(p[labels[i]] > 1e-300 ? p[labels[i]] : 1e-300);
        }
        *loss = total / (double)d->n;
        *acc = (double)correct / (double)d->n;
    }
    if (keep_p && keep_b) {
        memcpy(ps->params, keep_p, ps->numel * sizeof(float));
        memcpy(ps->buffers, keep_b, ps->bnumel * sizeof(float));
    }
    free(keep_p);
    free(keep_b);
    free(prob);
    ol__free(x);
    ol__free(y);
    free(labels);
    free(idx);
    return rc;
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

int ol_train_grads(ol_ctx *ctx, const ol_train_params *tp, ol_model *m, const float *x, const int32_t *y, int n,
                   ol_step_result *out)
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
    return OL_OK;
}

/* Gradients of a global batch of n samples, of which this rank holds [lo, lo+k),
 * summed over ranks with the bucketed all-reduce started during the backward
 * of the last micro-batch (or PowerSGD after backward; DiLoCo: the mean over
 * the rank's own k samples, not summed). A rank that fails still joins every
 * collective; then all ranks agree on the first failure. Loss and accuracy are
 * summed over ranks too; nonfinite is set when the loss is not finite anywhere. */
static int dist_grads(ol_ctx *ctx, const ol_train_params *tp, ol_model *m, ol__dsync *ds, int64_t step,
                      const float *x, const int32_t *y, int k, int n, ol_step_result *out, int *nonfinite)
{
    ol_ddp *ddp = ol__dsync_ddp(ds, step);
    const int local = ol__dsync_local(ds);
    memset(out, 0, sizeof *out);
    const ol_model_params *mp = ol_model_get_params(m);
    const size_t per = (size_t)mp->in_c * mp->in_h * mp->in_w;
    const int mb = tp->micro_batch_size > 0 && tp->micro_batch_size < k ? tp->micro_batch_size : (k > 0 ? k : 1);
    ol_paramset *ps = ol_model_paramset(m);
    ol_paramset_zero_grads(ps);
    int rc = OL_OK, armed = 0, local_bad = 0;
    for (int lo = 0; lo < k && rc >= 0; lo += mb) {
        int kk = k - lo < mb ? k - lo : mb;
        double l = 0.0;
        int c = 0;
        rc = ol_model_forward(ctx, m, x + (size_t)lo * per, kk, !tp->freeze_bn);
        if (rc >= 0)
            rc = ol_model_loss(ctx, m, y + lo, kk, tp->label_smoothing, 1.0f / (float)(local ? k : n), &l, &c);
        out->loss_sum += l;
        out->correct += c;
        local_bad |= !isfinite(l);
        if (rc >= 0 && lo + kk >= k && ddp) {
            ol_ddp_arm(ddp);
            armed = 1;
        }
        if (rc >= 0)
            rc = ol_model_backward(ctx, m);
    }
    if (ddp) {
        if (!armed) /* no samples here, or a failure: still take part */
            ol_ddp_arm(ddp);
        int rc2 = ol_ddp_finish(ctx, ddp);
        if (rc >= 0)
            rc = rc2;
    }
    int rc2 = ol__dsync_reduce(ctx, ds, ps, step);
    if (rc >= 0)
        rc = rc2;
    OL__TRY(ol_comm_agree(ctx, tp->comm, rc));
    /* DiLoCo clips each rank's own gradient; every rank must learn of a bad one */
    const double norm = local ? ol_clip_grad_norm(ps, tp->clip_grad_norm) : 0.0;
    double s[4] = {out->loss_sum, (double)out->correct, (double)(local_bad || !isfinite(norm)), norm * norm};
    OL__TRY(ol_comm_allreduce_f64(ctx, tp->comm, s, local ? 4 : 3));
    out->loss_sum = s[0];
    out->correct = (int)s[1];
    out->grad_norm = local ? sqrt(s[3] / ol_comm_size(tp->comm)) : ol_clip_grad_norm(ps, tp->clip_grad_norm);
    *nonfinite = s[2] > 0 || !isfinite(out->loss_sum) || !isfinite(out->grad_norm);
    return OL_OK;
}

/* Average the BatchNorm running statistics over ranks (before evaluations and
 * checkpoints), so every rank and every checkpoint holds the same values. */
static int average_buffers(ol_ctx *ctx, const ol_train_params *tp, ol_paramset *ps)
{
    const int W = ol_comm_size(tp->comm);
    if (W <= 1 || ps->bnumel == 0)
        return OL_OK;
    OL__TRY(ol_comm_allreduce(ctx, tp->comm, ps->buffers, ps->bnumel));
    const float inv = 1.0f / (float)W;
    for (size_t i = 0; i < ps->bnumel; i++)
        ps->buffers[i] *= inv;
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

int ol_train_step(ol_ctx *ctx, const ol_train_params *tp, ol_model *m, ol_optim *opt, const float *x,
                  const int32_t *y, int n, const ol_optim_hyper *h, ol_step_result *out)
{
    OL__TRY(ol_train_grads(ctx, tp, m, x, y, n, out));
    return ol_optim_step(ctx, opt, ol_model_paramset(m), h);
}

typedef ol__metrics metrics;
#define OL__PATH_MAX 4096

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

static int open_metrics(ol_ctx *ctx, const ol_train_params *tp, const ol_train_state *st, metrics *mt)
{
    if (!tp->out_dir)
        return OL_OK;
    OL__TRY(mkdir_p(ctx, tp->out_dir));
    return ol__metrics_open(ctx, tp->out_dir, tp->resume ? st : NULL, mt);
}

/* Collective (the data-parallel mode's per-rank state goes to rank 0); rank 0 writes. */
static int save_checkpoint(ol_ctx *ctx, const ol_train_params *tp, ol_model *m, ol_optim *opt, ol__dsync *ds,
                           ol_train_state *st, metrics *mt, ol_train_result *res, char *sane, char *pending)
{
    const ol_checkpoint_extra *extra = NULL;
    OL__TRY(ol__dsync_checkpoint(ctx, ds, opt, &extra));
    if (!tp->out_dir)
        return OL_OK;
    if (mt->f) {
        if (fflush(mt->f) != 0)
            return ol__err(ctx, OL_EIO, "writing metrics.jsonl: %s", strerror(errno));
        st->metrics_bytes = ftell(mt->f);
        st->metrics_crc = mt->crc;
    }
    char path[4096];
    ol_checkpoint_path(tp->out_dir, st->step, path, sizeof path);
    OL__TRY(ol_checkpoint_save_extra(ctx, path, m, opt, st, tp->config_json, extra));
    snprintf(res->checkpoint, sizeof res->checkpoint, "%s", path);
    /* sane once the next step's loss (of these weights) is: see the loop */
    snprintf(pending, OL__PATH_MAX, "%s", path);
    /* never the file just written, nor the last one taken before a loss explosion */
    const char *protect[2] = {path, sane};
    return ol_checkpoint_prune_except(ctx, tp->out_dir, tp->keep_last, protect, sane[0] ? 2 : 1);
}

/* Traffic of the epoch's training steps on rank 0, in its epoch record. */
static void epoch_comm(metrics *mt, const ol__dsync *ds, double bytes, double ctime, double time, double dense,
                       double early0, double total0)
{
    ol__dsync_stats s;
    ol__dsync_get_stats(ds, &s);
    ol__jw_num(&mt->w, "comm_bytes", bytes);
    ol__jw_num(&mt->w, "comm_time", ctime);
    ol__jw_num(&mt->w, "compute_time", time - ctime);
    ol__jw_num(&mt->w, "comm_dense_bytes", dense);
    if (bytes > 0)
        ol__jw_num(&mt->w, "compression", dense / bytes);
    if (s.total_bytes > total0)
        ol__jw_num(&mt->w, "overlap", (s.early_bytes - early0) / (s.total_bytes - total0));
    if (s.syncs)
        ol__jw_int(&mt->w, "syncs", s.syncs);
}

static void write_summary(ol_ctx *ctx, metrics *mt, const ol_train_state *st, const ol_train_result *comm)
{
    if (!mt->f)
        return;
    ol__jw_begin(&mt->w);
    ol__jw_str(&mt->w, "type", "summary");
    ol__jw_int(&mt->w, "steps", st->step);
    ol__jw_int(&mt->w, "epochs", st->epochs_done);
    ol__jw_num(&mt->w, "best_test_acc", st->best_test_acc);
    ol__jw_num(&mt->w, "best_epoch", st->best_epoch);
    ol__jw_num(&mt->w, "final_test_acc", st->final_test_acc);
    ol__jw_num(&mt->w, "final_test_loss", st->final_test_loss);
    ol__jw_num(&mt->w, "final_train_loss", st->final_train_loss);
    ol__jw_num(&mt->w, "final_train_acc", st->final_train_acc);
    ol__jw_int(&mt->w, "bad_steps", st->bad_steps);
    ol__jw_num(&mt->w, "train_time", st->train_time);
    ol__jw_num(&mt->w, "eval_time", st->eval_time);
    ol__jw_num(&mt->w, "elapsed", st->elapsed);
    if (comm) { /* data-parallel runs: this run's traffic of rank 0 */
        ol__jw_num(&mt->w, "comm_bytes", comm->comm_bytes);
        ol__jw_num(&mt->w, "comm_dense_bytes", comm->comm_dense_bytes);
        ol__jw_num(&mt->w, "step_comm_bytes", comm->step_comm_bytes);
        ol__jw_num(&mt->w, "step_comm_time", comm->step_comm_time);
        ol__jw_num(&mt->w, "overlap", comm->overlap);
    }
    ol__jw_end(&mt->w);
    ol__metrics_line(ctx, mt);
}

enum { STOP_NONE = 0, STOP_SIGNAL, STOP_TIME };

static int cmp_str_desc(const void *a, const void *b) { return -strcmp(*(char *const *)a, *(char *const *)b); }

/* The ensemble of the newest M snapshot files in out_dir. */
static int ensemble_eval(ol_ctx *ctx, const ol_train_params *tp, ol_model *m, ol_optim *opt, const ol_dataset *test,
                         metrics *mt, ol_train_result *res)
{
    DIR *d = opendir(tp->out_dir);
    if (!d)
        return ol__err(ctx, OL_EIO, "%s: %s", tp->out_dir, strerror(errno));
    char *names[4096];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 4096)
        if (strncmp(de->d_name, "snapshot-", 9) == 0 && strstr(de->d_name, ".safetensors") &&
            !strstr(de->d_name, ".tmp"))
            names[n++] = strdup(de->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_str_desc);
    int use = n < tp->snapshot_ensemble ? n : tp->snapshot_ensemble;
    char *paths[4096];
    const char *cpaths[4096];
    int rc = OL_OK;
    for (int i = 0; i < use; i++) {
        size_t len = strlen(tp->out_dir) + strlen(names[i]) + 2;
        paths[i] = malloc(len);
        if (!paths[i] || !names[i]) {
            rc = ol__err(ctx, OL_ENOMEM, "out of memory");
            use = i;
            break;
        }
        snprintf(paths[i], len, "%s/%s", tp->out_dir, names[i]);
        cpaths[i] = paths[i];
    }
    double l = 0.0, a = 0.0;
    int eb = tp->eval_batch_size > 0 ? tp->eval_batch_size : tp->batch_size;
    if (rc >= 0 && use > 0) {
        /* Schedule-Free keeps y in the model during training; snapshots hold x */
        rc = ol_evaluate_ensemble(ctx, m, cpaths, use, test, eb, &l, &a);
        (void)opt;
    }
    if (rc >= 0 && use > 0) {
        res->snapshots = use;
        res->ensemble_test_acc = a;
        res->ensemble_test_loss = l;
        ol__jw_begin(&mt->w);
        ol__jw_str(&mt->w, "type", "ensemble");
        ol__jw_int(&mt->w, "snapshots", use);
        ol__jw_num(&mt->w, "test_acc", a);
        ol__jw_num(&mt->w, "test_loss", l);
        ol__jw_end(&mt->w);
        rc = ol__metrics_line(ctx, mt);
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    for (int i = 0; i < use; i++)
        free(paths[i]);
    return rc;
}

/* Step t ends a learning-rate cycle: the lr is about to rise after having
 * fallen into t (flat stretches skipped). A schedule that rises from step 0
 * (warm-up, cyclic) has not fallen there, so its first steps are no snapshot. */
static int cycle_ends(const ol_sched_params *sched, int64_t t)
{
    const double lt = ol_sched_lr(sched, t);
    if (!(ol_sched_lr(sched, t + 1) > lt))
        return 0;
    int64_t k = t - 1;
    while (k >= 0 && ol_sched_lr(sched, k) == lt)
        k--;
    return k >= 0 && ol_sched_lr(sched, k) > lt;
}

static int64_t batch_for(const ol_train_params *tp, int64_t step, int64_t samples_before)
{
    if (!tp->batch_sched)
        return tp->batch_size;
    int64_t b = ol_batch_sched_batch(tp->batch_sched, step, samples_before);
    return b > 0 ? b : 1;
}

/* The steps ol_train takes over epochs of n samples (batch schedule,
 * drop_last), up to the training length or, with stop >= 0, up to the first
 * step that starts at data epoch `stop` or later (a step starting at sample
 * pos of epoch e starts at epoch e + pos/n). *reached: the data epoch where
 * the walk ended; *last: the batch of its last step. */
static int64_t walk_steps(const ol_train_params *tp, int64_t n, double stop, double *reached, int64_t *last)
{
    int64_t step = 0, seen = 0;
    *reached = 0.0;
    *last = batch_for(tp, 0, 0);
    for (int e = 0; tp->epochs == 0 || e < tp->epochs; e++) {
        int64_t pos = 0;
        for (;;) {
            *reached = (double)e + (double)pos / (double)n;
            if ((tp->max_steps > 0 && step >= tp->max_steps) || (stop >= 0.0 && *reached >= stop) ||
                (tp->epochs == 0 && tp->max_steps == 0))
                return step;
            int64_t b = batch_for(tp, step, seen), left = n - pos;
            if (left <= 0 || (tp->drop_last && left < b))
                break;
            int64_t k = left < b ? left : b;
            pos += k;
            seen += k;
            *last = b;
            step++;
        }
        if (pos == 0)
            return step; /* a batch larger than the data with drop_last */
        *reached = (double)(e + 1);
    }
    return step;
}

int64_t ol_train_count_steps(const ol_train_params *tp, int64_t n)
{
    if (n <= 0 || tp->batch_size <= 0)
        return 0;
    if (!tp->batch_sched) {
        int64_t per = tp->drop_last ? n / tp->batch_size : (n + tp->batch_size - 1) / tp->batch_size;
        int64_t total = tp->epochs > 0 ? per * tp->epochs : tp->max_steps;
        return tp->max_steps > 0 && tp->max_steps < total ? tp->max_steps : total;
    }
    double reached;
    int64_t last;
    return walk_steps(tp, n, -1.0, &reached, &last);
}

int64_t ol_train_epoch_steps(const ol_train_params *tp, int64_t n, double epochs)
{
    if (n <= 0 || tp->batch_size <= 0 || !(epochs > 0.0))
        return 0;
    int64_t b = tp->batch_size, steps = 0;
    double reached = 0.0;
    if (tp->batch_sched)
        steps = walk_steps(tp, n, epochs, &reached, &b);
    if (reached < epochs) { /* past the training length: on at the last batch */
        int64_t per = tp->drop_last ? n / b : (n + b - 1) / b;
        steps += llround((epochs - reached) * (double)(per > 0 ? per : 1));
    }
    return steps;
}

/* The largest global batch of the run: batch schedules never shrink the batch,
 * so it is the last step's (milestones without a cap grow past --batch-size,
 * and the loader and activations must hold it). */
static int64_t max_batch_of(const ol_train_params *tp, int64_t n)
{
    int64_t b = tp->batch_size, last = b;
    double reached;
    if (tp->batch_sched)
        walk_steps(tp, n, -1.0, &reached, &last);
    return last > b ? last : b;
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
    if (tp->micro_batch_size < 0 || tp->max_bad_steps < 0 || tp->spike_zscore < 0 || tp->keep_last < 0 ||
        !(tp->divergence_factor >= 0) ||
        tp->checkpoint_every_steps < 0 || tp->checkpoint_every_epochs < 0 || tp->time_limit < 0)
        return ol__err(ctx, OL_EINVAL, "negative training parameter");
    const ol_model_params *mp = ol_model_get_params(m);
    if (train->c != mp->in_c || train->h != mp->in_h || train->w != mp->in_w)
        return ol__err(ctx, OL_ESHAPE, "data is %dx%dx%d but the model expects %dx%dx%d", train->c, train->h,
                       train->w, mp->in_c, mp->in_h, mp->in_w);
    if (train->num_classes > ol_model_num_classes(m))
        return ol__err(ctx, OL_ESHAPE, "data has %d classes, the model %d", train->num_classes,
                       ol_model_num_classes(m));
    OL__TRY(ol_sched_validate(ctx, sched));
    if (tp->batch_sched)
        OL__TRY(ol_batch_sched_validate(ctx, tp->batch_sched));
    const int64_t max_batch = max_batch_of(tp, train->n);
    if (max_batch > (1 << 24))
        return ol__err(ctx, OL_ERANGE, "global batch of %lld is too large", (long long)max_batch);
    const int W = ol_comm_size(tp->comm), R = ol_comm_rank(tp->comm), root = R == 0;
    if (W > 1 && (tp->batch_size % W != 0 || max_batch % W != 0))
        return ol__err(ctx, OL_EINVAL, "the world size %d does not divide the global batch size %lld", W,
                       (long long)(tp->batch_size % W ? tp->batch_size : max_batch));
    const int64_t shard_max = (max_batch + W - 1) / W;
    OL__TRY(ol_model_reserve(ctx, m, tp->micro_batch_size > 0 && tp->micro_batch_size < shard_max
                                          ? tp->micro_batch_size
                                          : (int)shard_max));
    ol_train_params tlocal = *tp; /* ranks other than 0 write no files */
    if (!root)
        tlocal.out_dir = NULL;
    tp = &tlocal;
    if (!root)
        hooks = NULL;
    ol_train_state st;
    const int plateau = sched->type == OL_SCHED_PLATEAU;
    if (tp->resume) {
        st = *tp->resume;
    } else {
        memset(&st, 0, sizeof st);
        st.best_test_acc = -1.0;
        st.seed = tp->seed;
        if (plateau)
            ol_plateau_init(&st.plateau, sched);
    }
    if (!tp->resume)
        st.loss_min = INFINITY;
    metrics mt = {0};
    /* the newest checkpoint whose weights gave a sane loss, and the one just written */
    char sane[OL__PATH_MAX] = "", pending[OL__PATH_MAX] = "";
    OL__TRY(open_metrics(ctx, tp, &st, &mt));
    if (tp->out_dir)
        ol_checkpoint_prune(ctx, tp->out_dir, 0); /* clears temporary files of a killed run */
    ol_loader_params lp = {.shuffle = 1,
                           .drop_last = tp->drop_last,
                           .aug = tp->aug,
                           .seed = tp->seed,
                           .prefetch = tp->prefetch,
                           .max_batch = (int)max_batch};
    ol_loader *loader = NULL;
    int rc = ol_loader_create(ctx, train, &lp, &loader);
    ol_paramset *ps = ol_model_paramset(m);
    const int64_t ntrain = train->n;
    float *bn_saved = malloc((ps->bnumel ? ps->bnumel : 1) * sizeof(float));
    if (rc >= 0 && !bn_saved)
        rc = ol__err(ctx, OL_ENOMEM, "out of memory");
    ol__dsync *ds = NULL;
    if (rc >= 0 && W > 1) { /* every rank starts from rank 0's parameters and statistics */
        rc = ol_comm_bcast(ctx, tp->comm, ps->params, ps->numel * sizeof(float), 0);
        if (rc >= 0)
            rc = ol_comm_bcast(ctx, tp->comm, ps->buffers, ps->bnumel * sizeof(float), 0);
    }
    if (rc >= 0)
        rc = ol__dsync_create(ctx, tp, m, opt, &ds);
    if (W > 1) {
        rc = ol_comm_agree(ctx, tp->comm, rc);
        ol_comm_reset_stats(tp->comm);
    }
    const int local = rc >= 0 && ol__dsync_local(ds); /* DiLoCo */
    ol__dsync_stats dst = {0};
    if (rc >= 0)
        ol__dsync_get_stats(ds, &dst);
    /* communication of the training steps, this epoch and in all */
    double ep_bytes = 0.0, ep_ctime = 0.0, ep_time = 0.0, ep_dense = 0.0, ep_early0 = 0.0, ep_total0 = 0.0;
    double run_bytes = 0.0, run_ctime = 0.0, run_dense = 0.0;
    int ckpt_pending = 0;
    const int64_t total = ol_train_count_steps(tp, ntrain);
    const int64_t per_epoch = tp->batch_sched ? 0 : (rc >= 0 ? ol_loader_batches_per_epoch(loader, tp->batch_size) : 1);
    const int epochs = tp->epochs > 0 ? tp->epochs : (int)((total + per_epoch - 1) / (per_epoch > 0 ? per_epoch : 1));
    const int log_every = tp->log_every > 0 ? tp->log_every : 50;
    const double t_begin = ol__now(), t_start = t_begin - st.elapsed;
    double window_time = 0.0, last_step_time = 0.0, last_ckpt_time = 0.0, last_eval_time = 0.0;
    int64_t window_samples = 0;
    int stop = STOP_NONE;

    while (rc >= 0 && st.epoch < epochs && st.step < total && !stop) {
        rc = ol_loader_start_epoch(ctx, loader, st.epoch, st.epoch_pos);
        while (rc >= 0 && st.step < total) {
            /* evaluations at even fractions of the epoch's samples; the last at its end */
            const int64_t b_t = batch_for(tp, st.step, st.samples_seen);
            const int64_t next_eval = (ntrain * (st.evals_done + 1)) / tp->evals_per_epoch;
            ol_comm_stats cs0; /* the step's traffic: the stop agreement below included */
            if (tp->comm)
                ol_comm_get_stats(tp->comm, &cs0);
            double t0 = ol__now();
            /* DiLoCo stops only after a sync, so the margin covers the next round */
            const int64_t to_sync = ol__dsync_steps_to_boundary(ds, st.step, total);
            double margin = (1.0 + (double)to_sync) * last_step_time + last_ckpt_time + 2.0 +
                            (to_sync > 1 || st.epoch_pos + b_t >= next_eval ? last_eval_time : 0.0);
            double want[2] = {
                (tp->stop_flag && *tp->stop_flag) || (tp->stop_after_steps > 0 && st.step >= tp->stop_after_steps),
                tp->time_limit > 0 && ol__now() - t_begin + margin > tp->time_limit};
            if (!ol__dsync_boundary(ds, st.step))
                want[0] = want[1] = 0.0; /* a request waits for the sync */
            else if (W > 1 && (rc = ol_comm_allreduce_max_f64(ctx, tp->comm, want, 2)) < 0)
                break; /* every rank stops at the same step */
            if (want[0] > 0 || want[1] > 0) {
                stop = want[0] > 0 ? STOP_SIGNAL : STOP_TIME;
                break;
            }
            const float *x;
            const int32_t *y;
            int shard_lo = 0, k = 0;
            int n = ol_loader_next_shard(ctx, loader, (int)b_t, R, W, &x, &y, &shard_lo, &k);
            if (n <= 0) {
                rc = n;
                break;
            }
            double lr = (plateau ? ol_plateau_lr(&st.plateau, sched, st.step) : ol_sched_lr(sched, st.step)) *
                        ol_lr_scale(tp->lr_scaling, (double)n, (double)(tp->base_batch > 0 ? tp->base_batch : tp->batch_size),
                                    tp->lr_knee);
            double mom = ol_sched_momentum(sched, st.step);
            memcpy(bn_saved, ps->buffers, ps->bnumel * sizeof(float));
            ol_step_result sr;
            int nonfinite = 0;
            rc = dist_grads(ctx, tp, m, ds, st.step, x, y, k, n, &sr, &nonfinite);
            const char *bad = NULL;
            char why[256] = "";
            if (rc >= 0 && nonfinite) {
                snprintf(why, sizeof why, "%s is not finite",
                         isfinite(sr.loss_sum) ? "the gradient norm" : "the loss");
                bad = why;
            } else if (rc >= 0 && ol__loss_spike(&st, sr.loss_sum / n, tp->spike_zscore)) {
                snprintf(why, sizeof why, "loss spike (%.4g)", sr.loss_sum / n);
                bad = why;
            }
            if (rc < 0)
                break;
            if (bad) { /* skip the update; undo the BN statistics of the bad batch */
                memcpy(ps->buffers, bn_saved, ps->bnumel * sizeof(float));
                st.bad_steps++;
                st.consecutive_bad++;
                ol__jw_begin(&mt.w);
                ol__jw_str(&mt.w, "type", "skip");
                ol__jw_int(&mt.w, "step", st.step);
                ol__jw_num(&mt.w, "epoch", st.epoch + (double)(st.epoch_pos + n) / (double)ntrain);
                ol__jw_str(&mt.w, "reason", bad);
                ol__jw_int(&mt.w, "consecutive", st.consecutive_bad);
                ol__jw_end(&mt.w);
                rc = ol__metrics_line(ctx, &mt);
                if (rc >= 0 && st.consecutive_bad > tp->max_bad_steps) {
                    rc = ol__err(ctx, OL_ENONFINITE,
                                 "training diverged at step %lld: %s; %d consecutive bad step%s (lower the learning "
                                 "rate)%s%s",
                                 (long long)st.step + 1, bad, st.consecutive_bad, st.consecutive_bad > 1 ? "s" : "",
                                 sane[0] ? "; last good checkpoint: " : "", sane);
                    break;
                }
            } else {
                ol_optim_hyper h = {.lr = lr, .momentum = mom};
                rc = ol_optim_step(ctx, opt, ps, &h);
                int synced = 1; /* DiLoCo: the ranks differ inside a round */
                if (rc >= 0)
                    rc = ol__dsync_update(ctx, ds, ps, st.step + 1, total, &synced);
                if (rc >= 0 && W > 1 && tp->check_replicas && synced) {
                    char hs[32];
                    snprintf(hs, sizeof hs, "%016llx", (unsigned long long)hash_floats(ps->params, ps->numel));
                    rc = ol_comm_check_same(ctx, tp->comm, hs, "parameters after the step");
                }
                if (rc < 0)
                    break;
                st.consecutive_bad = 0;
                ol__push_loss(&st, sr.loss_sum / n);
                if (pending[0] && ol__loss_sane(&st, tp->divergence_factor, ol_model_num_classes(m)))
                    memcpy(sane, pending, sizeof sane);
                pending[0] = '\0';
                double dmean, dthr;
                if (ol__diverged(&st, tp->divergence_factor, ol_model_num_classes(m), &dmean, &dthr)) {
                    rc = ol__err(ctx, OL_ENONFINITE,
                                 "training diverged at step %lld: the mean loss of the last %d steps, %.4g, exceeds "
                                 "%.4g (%g x the lowest loss so far or ln(classes)); last checkpoint before the "
                                 "explosion: %s (lower the learning rate)",
                                 (long long)st.step + 1, OL__DIVERGE_WINDOW, dmean, dthr, tp->divergence_factor,
                                 sane[0] ? sane : "none");
                    break;
                }
                st.step++;
                st.ep_loss += sr.loss_sum;
                st.ep_correct += sr.correct;
                st.ep_seen += n;
            }
            st.epoch_pos += n;
            st.batch_in_epoch++;
            st.samples_seen += n;
            double dt = ol__now() - t0, step_bytes = 0.0, step_ctime = 0.0;
            if (tp->comm) {
                ol_comm_stats cs1;
                ol_comm_get_stats(tp->comm, &cs1);
                step_bytes = cs1.bytes_sent - cs0.bytes_sent;
                step_ctime = cs1.seconds - cs0.seconds;
            }
            ep_bytes += step_bytes;
            ep_ctime += step_ctime;
            ep_time += dt;
            ep_dense += dst.dense_step_bytes;
            run_bytes += step_bytes;
            run_ctime += step_ctime;
            run_dense += dst.dense_step_bytes;
            last_step_time = dt;
            st.train_time += dt;
            window_time += dt;
            window_samples += n;
            double epoch_f = st.epoch + (double)st.epoch_pos / (double)ntrain;
            if (tp->heartbeat)
                *tp->heartbeat = ol__now();
            if (!bad) {
                ol_step_info si = {.step = st.step,
                                   .epoch = epoch_f,
                                   .total_steps = total,
                                   .lr = lr,
                                   .momentum = mom,
                                   .loss = sr.loss_sum / n,
                                   .acc = (double)sr.correct / n,
                                   .grad_norm = sr.grad_norm,
                                   .samples_per_s = window_time > 0 ? window_samples / window_time : 0.0,
                                   .elapsed = ol__now() - t_start,
                                   .batch = n,
                                   .comm_bytes = step_bytes,
                                   .comm_time = step_ctime};
                if (hooks && hooks->on_step)
                    hooks->on_step(hooks->user, &si);
                if (st.step % log_every == 0 || st.step == total) {
                    ol__jw_begin(&mt.w);
                    ol__jw_str(&mt.w, "type", "step");
                    ol__jw_int(&mt.w, "step", st.step);
                    ol__jw_num(&mt.w, "epoch", epoch_f);
                    ol__jw_num(&mt.w, "lr", lr);
                    if (mom >= 0)
                        ol__jw_num(&mt.w, "momentum", mom);
                    ol__jw_num(&mt.w, "loss", si.loss);
                    ol__jw_num(&mt.w, "acc", si.acc);
                    ol__jw_num(&mt.w, "grad_norm", sr.grad_norm);
                    ol__jw_int(&mt.w, "batch", n);
                    if (tp->batch_sched || tp->lr_scaling != OL_LR_SCALING_NONE)
                        ol__jw_num(&mt.w, "samples", (double)st.samples_seen);
                    if (W > 1) {
                        ol__jw_int(&mt.w, "ranks", W);
                        ol__jw_num(&mt.w, "comm_bytes", si.comm_bytes);
                        ol__jw_num(&mt.w, "comm_time", si.comm_time);
                        ol__jw_num(&mt.w, "step_time", dt);
                        ol__jw_num(&mt.w, "compute_time", dt - si.comm_time);
                    }
                    ol__jw_num(&mt.w, "samples_per_s", si.samples_per_s);
                    ol__jw_num(&mt.w, "elapsed", si.elapsed);
                    ol__jw_end(&mt.w);
                    rc = ol__metrics_line(ctx, &mt);
                    window_time = 0.0;
                    window_samples = 0;
                }
            }
            const int64_t left = ntrain - st.epoch_pos, b_next = batch_for(tp, st.step, st.samples_seen);
            int end_of_epoch = left <= 0 || (tp->drop_last && left < b_next);
            if (rc >= 0 && (st.epoch_pos >= next_eval || end_of_epoch || st.step >= total) && st.ep_seen > 0) {
                double te = ol__now(), tl = 0.0, ta = 0.0;
                /* DiLoCo evaluates the global model of the last sync (BN averaged there) */
                rc = local ? OL_OK : average_buffers(ctx, tp, ps);
                if (rc >= 0 && root) {
                    ol__dsync_swap_global(ds, ps);
                    rc = run_eval(ctx, tp, m, opt, train, test, &tl, &ta);
                    ol__dsync_swap_global(ds, ps);
                }
                if (W > 1) { /* rank 0 evaluated: share the result (plateau decisions) */
                    double ev[3] = {tl, ta, (double)rc};
                    int rc2 = ol_comm_bcast(ctx, tp->comm, ev, sizeof ev, 0);
                    if (rc2 < 0)
                        rc = rc2;
                    else if (!root) {
                        tl = ev[0];
                        ta = ev[1];
                        rc = (int)ev[2] < 0 ? ol__err(ctx, (int)ev[2], "evaluation failed on rank 0") : rc;
                    }
                }
                last_eval_time = ol__now() - te;
                if (tp->heartbeat)
                    *tp->heartbeat = ol__now();
                st.eval_time += last_eval_time;
                st.evals_done++;
                if (rc < 0)
                    break;
                int eoe = end_of_epoch || st.step >= total;
                ol_eval_info ei = {.step = st.step,
                                   .epoch = epoch_f,
                                   .end_of_epoch = eoe,
                                   .train_loss = st.ep_loss / st.ep_seen,
                                   .train_acc = (double)st.ep_correct / st.ep_seen,
                                   .test_loss = tl,
                                   .test_acc = ta,
                                   .elapsed = ol__now() - t_start};
                if (ta > st.best_test_acc) {
                    st.best_test_acc = ta;
                    st.best_epoch = epoch_f;
                }
                if (plateau && ol_plateau_update(&st.plateau, sched, sched->plateau_maximize ? ta : tl) == 1 &&
                    mt.f) {
                    ol__jw_begin(&mt.w);
                    ol__jw_str(&mt.w, "type", "plateau");
                    ol__jw_int(&mt.w, "step", st.step);
                    ol__jw_num(&mt.w, "lr", st.plateau.lr);
                    ol__jw_end(&mt.w);
                    rc = ol__metrics_line(ctx, &mt);
                }
                st.final_test_acc = ta;
                st.final_test_loss = tl;
                st.final_train_loss = ei.train_loss;
                st.final_train_acc = ei.train_acc;
                ol__jw_begin(&mt.w);
                ol__jw_str(&mt.w, "type", eoe ? "epoch" : "eval");
                ol__jw_int(&mt.w, "step", st.step);
                ol__jw_num(&mt.w, "epoch", epoch_f);
                ol__jw_num(&mt.w, "train_loss", ei.train_loss);
                ol__jw_num(&mt.w, "train_acc", ei.train_acc);
                ol__jw_num(&mt.w, "test_loss", tl);
                ol__jw_num(&mt.w, "test_acc", ta);
                ol__jw_num(&mt.w, "elapsed", ei.elapsed);
                if (eoe && W > 1)
                    epoch_comm(&mt, ds, ep_bytes, ep_ctime, ep_time, ep_dense, ep_early0, ep_total0);
                ol__jw_end(&mt.w);
                rc = ol__metrics_line(ctx, &mt);
                if (hooks && hooks->on_eval)
                    hooks->on_eval(hooks->user, &ei);
            }
            if (rc < 0)
                break;
            /* end of a learning-rate cycle: the schedule has a local minimum here */
            if (!bad && tp->snapshot_ensemble > 0 && tp->out_dir && !plateau) {
                if (cycle_ends(sched, st.step - 1) || st.step == total) {
                    char path[4096];
                    snprintf(path, sizeof path, "%s/snapshot-%08lld.safetensors", tp->out_dir, (long long)st.step);
                    rc = ol_weights_export(ctx, path, m, opt);
                    if (rc < 0)
                        break;
                }
            }
            int ckpt = !bad && tp->checkpoint_every_steps > 0 && st.step % tp->checkpoint_every_steps == 0;
            if (end_of_epoch) {
                st.epochs_done = (int)st.epoch + 1;
                ckpt = ckpt || (tp->checkpoint_every_epochs > 0 && st.epochs_done % tp->checkpoint_every_epochs == 0);
                st.epoch++;
                st.epoch_pos = 0;
                st.batch_in_epoch = 0;
                st.evals_done = 0;
                st.ep_loss = 0.0;
                st.ep_correct = st.ep_seen = 0;
                ep_bytes = ep_ctime = ep_time = ep_dense = 0.0;
                ol__dsync_get_stats(ds, &dst);
                ep_early0 = dst.early_bytes;
                ep_total0 = dst.total_bytes;
            }
            st.elapsed = ol__now() - t_start;
            ckpt_pending |= ckpt; /* DiLoCo: written at the next sync */
            if (ckpt_pending && st.step < total && ol__dsync_boundary(ds, st.step)) { /* the final one below */
                double tc = ol__now();
                ckpt_pending = 0;
                rc = local ? OL_OK : average_buffers(ctx, tp, ps);
                if (rc >= 0)
                    rc = save_checkpoint(ctx, tp, m, opt, ds, &st, &mt, res, sane, pending);
                last_ckpt_time = ol__now() - tc;
            }
            if (end_of_epoch)
                break;
        }
    }
    if (rc >= 0 && !stop && tp->snapshot_ensemble > 0 && tp->out_dir)
        rc = ensemble_eval(ctx, tp, m, opt, test, &mt, res);
    st.elapsed = ol__now() - t_start;
    if (rc >= 0 && (stop || tp->final_checkpoint)) { /* DiLoCo: the last step or the stop follows a sync */
        rc = local ? OL_OK : average_buffers(ctx, tp, ps);
        if (rc >= 0)
            rc = save_checkpoint(ctx, tp, m, opt, ds, &st, &mt, res, sane, pending);
    }
    if (tp->comm) {
        ol_comm_stats cs;
        ol_comm_get_stats(tp->comm, &cs);
        res->comm_bytes = cs.bytes_sent;
        res->comm_time = cs.seconds;
    }
    if (ds) {
        ol__dsync_get_stats(ds, &dst);
        res->overlap = dst.total_bytes > 0 ? dst.early_bytes / dst.total_bytes : 0.0;
        res->syncs = dst.syncs;
    }
    res->comm_dense_bytes = run_dense;
    res->step_comm_bytes = run_bytes;
    res->step_comm_time = run_ctime;
    if (rc >= 0 && !stop)
        write_summary(ctx, &mt, &st, W > 1 ? res : NULL);
    if (rc >= 0 && stop)
        rc = ol__err(ctx, OL_EINTR, "%s after step %lld; resume with --resume %s (checkpoint %s)",
                     stop == STOP_SIGNAL ? "stopped on request" : "stopped before the time limit",
                     (long long)st.step, tp->out_dir ? tp->out_dir : "?", res->checkpoint[0] ? res->checkpoint : "none");
    res->steps = st.step;
    res->epochs_done = st.epochs_done;
    res->best_test_acc = st.best_test_acc;
    res->best_epoch = st.best_epoch;
    res->final_test_acc = st.final_test_acc;
    res->final_test_loss = st.final_test_loss;
    res->final_train_loss = st.final_train_loss;
    res->final_train_acc = st.final_train_acc;
    res->elapsed = st.elapsed;
    res->train_time = st.train_time;
    res->eval_time = st.eval_time;
    res->bad_steps = st.bad_steps;
    res->samples_per_s = st.train_time > 0 ? (double)st.samples_seen / st.train_time : 0.0;
    ol__dsync_free(ds);
    free(bn_saved);
    ol_loader_free(loader);
    if (mt.f && fclose(mt.f) != 0 && rc >= 0)
        rc = ol__err(ctx, OL_EIO, "closing metrics.jsonl: %s", strerror(errno));
    ol__jw_free(&mt.w);
    return rc < 0 ? rc : OL_OK;
}
