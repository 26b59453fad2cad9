/* The training loop, ol_train, in named phases: guard, setup, step, log,
 * evaluate, checkpoint, finish. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "core/internal.h"
#include "dist/sync.h"
#include "io/jsonw.h"
#include "optimlab/dist.h"
#include "optimlab/train.h"
#include "train/diag.h"
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
    tp.gns_smoothing = 0.99;
    return tp;
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
        if (ol_model_has_batchnorm(m)) { /* keep the running statistics of y; recompute them at x */
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
    OL__TRY(ol__mkdir_p(ctx, tp->out_dir));
    return ol__metrics_open(ctx, tp->out_dir, tp->resume ? st : NULL, mt);
}

/* Collective (the data-parallel mode's per-rank state goes to rank 0); rank 0 writes. */
static int save_checkpoint(ol_ctx *ctx, const ol_train_params *tp, ol_model *m, ol_optim *opt, ol__dsync *ds,
                           ol_train_state *st, metrics *mt, ol_train_result *res, char *sane, char *pending,
                           int64_t *pending_step)
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
    *pending_step = st->step;
    /* never the file just written, nor the last one taken before a loss explosion */
    const char *protect[2] = {path, sane};
    return ol_checkpoint_prune_except(ctx, tp->out_dir, tp->keep_last, protect, sane[0] ? 2 : 1);
}

/* The traffic counters of st as of now: this process's (since its start-up)
 * on top of what the run had sent before it was resumed (early0, grad0,
 * total0); ep_early0/ep_total0: the overlap counters where the epoch began;
 * stop_sent >= 0: what had been sent when a stop began (a resumed run redoes
 * the stop's step, so its agreement and checkpoint count as nothing). */
static void comm_to_state(ol_train_state *st, ol_comm *comm, const ol__dsync *ds, double ep_early0, double ep_total0,
                          double early0, double grad0, double total0, double stop_sent)
{
    ol__dsync_stats s = {0};
    if (ds)
        ol__dsync_get_stats(ds, &s);
    st->comm_ep_early = s.early_bytes - ep_early0;
    st->comm_ep_grad = s.total_bytes - ep_total0;
    st->comm_early = early0 + s.early_bytes;
    st->comm_grad = grad0 + s.total_bytes;
    st->comm_total = total0;
    if (comm) {
        ol_comm_stats cs;
        ol_comm_get_stats(comm, &cs);
        st->comm_total += stop_sent >= 0 ? stop_sent : cs.bytes_sent;
    }
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

static void write_summary(ol_ctx *ctx, metrics *mt, const ol_train_state *st, const ol_train_result *comm,
                          const ol__diag *diag)
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
    ol__diag_summary_fields(diag, &mt->w);
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


/* Everything one ol_train call keeps between its phases. */
typedef struct {
    ol_ctx *ctx;
    ol_train_params tp; /* other ranks than 0 write no files */
    ol_model *m;
    ol_optim *opt;
    const ol_sched_params *sched;
    const ol_dataset *train, *test;
    const ol_train_hooks *hooks;
    ol_train_result *res;
    ol_train_state st;
    metrics mt;
    /* the newest checkpoint whose weights gave a sane loss, and the one just written (on resume: the
     * one resumed from, whose loss the first step shows) */
    char sane[OL__PATH_MAX], pending[OL__PATH_MAX];
    int64_t pending_step;
    ol_loader *loader;
    ol_paramset *ps;
    float *bn_saved; /* a skipped step puts the BN statistics back */
    ol__dsync *ds;
    ol__dsync_stats dst;
    ol__diag *diag; /* --gns, --log-layer-stats (NULL: off) */
    int W, R, root, local, plateau, epochs, log_every, ckpt_pending, stop;
    int P; /* labels per sample: a language model's positions, else 1 */
    int64_t ntrain, total, max_batch;
    double t_begin, t_start, window_time, last_step_time, last_ckpt_time, last_eval_time;
    int64_t window_samples;
    /* communication of the training steps, this epoch and in all (the bytes
     * are in st: they continue across a resume; the times are this process's) */
    double ep_ctime, ep_time, run_ctime, ep_early0, ep_total0;
    double early0, grad0, total0; /* the run's traffic before this process */
    double stop_sent;             /* bytes sent when a stop was agreed (its agreement and checkpoint excluded) */
} trainer;

/* One step as the phases after it see it. */
typedef struct {
    int n;
    double lr, mom;
    ol_step_result sr;
    char why[256];   /* why the step was skipped */
    const char *bad; /* why, or NULL when the update was made */
    double dt, bytes, ctime, epoch_f;
    int end_of_epoch;
} step_rec;

/* Guard: what ol_train cannot run is rejected before anything is written. */
static int check_run(ol_ctx *ctx, const ol_train_params *tp, ol_model *m, const ol_sched_params *sched,
                     const ol_dataset *train, int64_t *max_batch_out)
{
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
    const int P = ol_model_outputs_per_sample(m);
    if (ol_dataset_outputs_per_sample(train) != P)
        return ol__err(ctx, OL_ESHAPE, "the data has %d labels per sample, the model %d outputs (%s)",
                       ol_dataset_outputs_per_sample(train), P,
                       P > 1 ? "a language model needs a token stream of its context"
                             : "a token stream needs a language model");
    if (P > 1 && tp->snapshot_ensemble)
        return ol__err(ctx, OL_ENOTSUP, "snapshot ensembles of language models are not supported");
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
    const int64_t max_batch = ol__train_max_batch(tp, train->n);
    if (max_batch > (1 << 24))
        return ol__err(ctx, OL_ERANGE, "global batch of %lld is too large", (long long)max_batch);
    const int W = ol_comm_size(tp->comm);
    OL__TRY(ol_train_check_world(ctx, tp, train->n, W));
    OL__TRY(ol__diag_check(ctx, tp, W));
    const int64_t shard_max = (max_batch + W - 1) / W;
    OL__TRY(ol_model_reserve(ctx, m, tp->micro_batch_size > 0 && tp->micro_batch_size < shard_max
                                          ? tp->micro_batch_size
                                          : (int)shard_max));
    *max_batch_out = max_batch;
    return OL_OK;
}

/* Setup, first part: the state to start from and the metrics file. */
static int setup_files(trainer *t)
{
    const ol_train_params *tp = &t->tp;
    t->plateau = t->sched->type == OL_SCHED_PLATEAU;
    if (tp->resume) {
        t->st = *tp->resume;
    } else {
        memset(&t->st, 0, sizeof t->st);
        t->st.best_test_acc = -1.0;
        t->st.seed = tp->seed;
        if (t->plateau)
            ol_plateau_init(&t->st.plateau, t->sched);
        t->st.loss_min = INFINITY;
        t->st.sane_step = -1;
    }
    t->pending_step = -1;
    if (tp->resume && tp->out_dir && t->st.sane_step >= 0)
        ol_checkpoint_path(tp->out_dir, t->st.sane_step, t->sane, sizeof t->sane);
    if (tp->resume && tp->resume_path && strlen(tp->resume_path) < sizeof t->pending) {
        snprintf(t->pending, sizeof t->pending, "%s", tp->resume_path);
        t->pending_step = t->st.step;
    }
    OL__TRY(open_metrics(t->ctx, tp, &t->st, &t->mt));
    if (tp->out_dir)
        ol_checkpoint_prune(t->ctx, tp->out_dir, 0); /* clears temporary files of a killed run */
    return OL_OK;
}

/* Setup, second part: loader, buffers, every rank on rank 0's weights, the
 * gradient synchronisation, and the length of the run. A failure here still
 * goes through finish. */
static int setup_run(trainer *t)
{
    ol_ctx *ctx = t->ctx;
    const ol_train_params *tp = &t->tp;
    ol_loader_params lp = {.shuffle = 1,
                           .drop_last = tp->drop_last,
                           .aug = tp->aug,
                           .seed = tp->seed,
                           .prefetch = tp->prefetch,
                           .max_batch = (int)t->max_batch};
    int rc = ol_loader_create(ctx, t->train, &lp, &t->loader);
    t->ps = ol_model_paramset(t->m);
    t->ntrain = t->train->n;
    t->P = ol_model_outputs_per_sample(t->m);
    t->bn_saved = malloc((t->ps->bnumel ? t->ps->bnumel : 1) * sizeof(float));
    if (rc >= 0 && !t->bn_saved)
        rc = ol__err(ctx, OL_ENOMEM, "out of memory");
    if (rc >= 0 && t->W > 1) { /* every rank starts from rank 0's parameters and statistics */
        rc = ol_comm_bcast(ctx, tp->comm, t->ps->params, t->ps->numel * sizeof(float), 0);
        if (rc >= 0)
            rc = ol_comm_bcast(ctx, tp->comm, t->ps->buffers, t->ps->bnumel * sizeof(float), 0);
    }
    if (rc >= 0)
        rc = ol__dsync_create(ctx, tp, t->m, t->opt, &t->ds);
    if (rc >= 0)
        rc = ol__diag_create(ctx, tp, t->ps, &t->diag);
    if (rc >= 0 && t->diag && tp->log_layer_stats > 0 && t->mt.f) { /* the names the "layers" arrays follow */
        ol__diag_names(t->diag, t->ps, &t->mt.w);
        rc = ol__metrics_line(ctx, &t->mt);
    }
    if (t->W > 1) {
        rc = ol_comm_agree(ctx, tp->comm, rc);
        ol_comm_reset_stats(tp->comm);
    }
    t->local = rc >= 0 && ol__dsync_local(t->ds); /* DiLoCo */
    if (rc >= 0)
        ol__dsync_get_stats(t->ds, &t->dst);
    t->ep_early0 = t->dst.early_bytes - t->st.comm_ep_early;
    t->ep_total0 = t->dst.total_bytes - t->st.comm_ep_grad;
    t->early0 = t->st.comm_early;
    t->grad0 = t->st.comm_grad;
    t->total0 = t->st.comm_total;
    t->stop_sent = -1.0;
    t->total = ol_train_count_steps(tp, t->ntrain);
    const int64_t per_epoch =
        tp->batch_sched ? 0 : (rc >= 0 ? ol_loader_batches_per_epoch(t->loader, tp->batch_size) : 1);
    t->epochs =
        tp->epochs > 0 ? tp->epochs : (int)((t->total + per_epoch - 1) / (per_epoch > 0 ? per_epoch : 1));
    t->log_every = tp->log_every > 0 ? tp->log_every : 50;
    t->t_begin = ol__now();
    t->t_start = t->t_begin - t->st.elapsed;
    return rc;
}

/* Guard of every step: a stop request or the time limit, agreed by all ranks
 * (DiLoCo: only at a sync); sets t->stop. */
static int check_stop(trainer *t, int64_t b_t, int64_t next_eval, const ol_comm_stats *cs0)
{
    const ol_train_params *tp = &t->tp;
    const ol_train_state *st = &t->st;
    /* DiLoCo stops only after a sync, so the margin covers the next round */
    const int64_t to_sync = ol__dsync_steps_to_boundary(t->ds, st->step, t->total);
    double margin = (1.0 + (double)to_sync) * t->last_step_time + t->last_ckpt_time + 2.0 +
                    (to_sync > 1 || st->epoch_pos + b_t >= next_eval ? t->last_eval_time : 0.0);
    double want[2] = {
        (tp->stop_flag && *tp->stop_flag) || (tp->stop_after_steps > 0 && st->step >= tp->stop_after_steps),
        tp->time_limit > 0 && ol__now() - t->t_begin + margin > tp->time_limit};
    if (!ol__dsync_boundary(t->ds, st->step))
        want[0] = want[1] = 0.0; /* a request waits for the sync */
    else if (t->W > 1)
        OL__TRY(ol_comm_allreduce_max_f64(t->ctx, tp->comm, want, 2)); /* every rank stops at the same step */
    if (want[0] > 0 || want[1] > 0) {
        t->stop_sent = cs0 ? cs0->bytes_sent : -1.0; /* the stop's own traffic is not the run's */
        t->stop = want[0] > 0 ? STOP_SIGNAL : STOP_TIME;
    }
    return OL_OK;
}

/* A skipped step: its record, and the end of the run after too many in a row.
 * *leave: the loop stops now. */
static int skip_step(trainer *t, const step_rec *r, int *leave)
{
    ol_train_state *st = &t->st;
    const ol_train_params *tp = &t->tp;
    st->bad_steps++;
    st->consecutive_bad++;
    ol__jw_begin(&t->mt.w);
    ol__jw_str(&t->mt.w, "type", "skip");
    ol__jw_int(&t->mt.w, "step", st->step);
    ol__jw_num(&t->mt.w, "epoch", st->epoch + (double)(st->epoch_pos + r->n) / (double)t->ntrain);
    ol__jw_str(&t->mt.w, "reason", r->bad);
    ol__jw_int(&t->mt.w, "consecutive", st->consecutive_bad);
    ol__jw_end(&t->mt.w);
    int rc = ol__metrics_line(t->ctx, &t->mt);
    if (rc >= 0 && st->consecutive_bad > tp->max_bad_steps)
        return ol__err(t->ctx, OL_ENONFINITE,
                       "training diverged at step %lld: %s; %d consecutive bad step%s (lower the learning "
                       "rate)%s%s",
                       (long long)st->step + 1, r->bad, st->consecutive_bad, st->consecutive_bad > 1 ? "s" : "",
                       t->sane[0] ? "; last good checkpoint: " : "", t->sane);
    *leave = 0;
    return rc;
}

/* Step: the lr rule and the library's step, then the divergence guard's
 * bookkeeping. *leave: the loop stops now (failure or divergence). */
static int take_step(trainer *t, const float *x, const int32_t *y, int k, step_rec *r, int *leave)
{
    ol_ctx *ctx = t->ctx;
    const ol_train_params *tp = &t->tp;
    ol_train_state *st = &t->st;
    const int n = r->n;
    r->lr = ol_train_lr(tp, t->sched, t->plateau ? &st->plateau : NULL, st->step, n);
    r->mom = ol_sched_momentum(t->sched, st->step);
    const ol__step_env env = {
        .ds = t->ds, .step = st->step, .total = t->total, .st = st, .bn_saved = t->bn_saved, .diag = t->diag};
    const ol_optim_hyper h = {.lr = r->lr, .momentum = r->mom};
    *leave = 1;
    OL__TRY(ol__train_step(ctx, tp, t->m, t->opt, &env, x, y, k, n, &h, &r->sr, r->why, sizeof r->why));
    r->bad = r->why[0] ? r->why : NULL;
    if (r->bad)
        return skip_step(t, r, leave);
    st->consecutive_bad = 0;
    ol__push_loss(st, r->sr.loss_sum / n);
    if (t->pending[0] && ol__loss_sane(st, tp->divergence_factor, ol_model_num_classes(t->m))) {
        memcpy(t->sane, t->pending, sizeof t->sane);
        st->sane_step = t->pending_step;
    }
    t->pending[0] = '\0';
    double dmean, dthr;
    if (ol__diverged(st, tp->divergence_factor, ol_model_num_classes(t->m), &dmean, &dthr))
        return ol__err(ctx, OL_ENONFINITE,
                       "training diverged at step %lld: the mean loss of the last %d steps, %.4g, exceeds "
                       "%.4g (%g x the lowest loss so far or ln(classes)); last checkpoint before the "
                       "explosion: %s (lower the learning rate)",
                       (long long)st->step + 1, OL__DIVERGE_WINDOW, dmean, dthr, tp->divergence_factor,
                       t->sane[0] ? t->sane : "none");
    st->step++;
    st->ep_loss += r->sr.loss_sum;
    st->ep_correct += r->sr.correct;
    st->ep_seen += n;
    *leave = 0;
    return OL_OK;
}

/* After every step, skipped or not: the position in the epoch, time and traffic. */
static void account(trainer *t, step_rec *r, const ol_comm_stats *cs0, double t0)
{
    ol_train_state *st = &t->st;
    st->epoch_pos += r->n;
    st->batch_in_epoch++;
    st->samples_seen += r->n;
    r->dt = ol__now() - t0;
    if (cs0) {
        ol_comm_stats cs1;
        ol_comm_get_stats(t->tp.comm, &cs1);
        r->bytes = cs1.bytes_sent - cs0->bytes_sent;
        r->ctime = cs1.seconds - cs0->seconds;
    }
    st->comm_ep_bytes += r->bytes;
    t->ep_ctime += r->ctime;
    t->ep_time += r->dt;
    st->comm_ep_dense += t->dst.dense_step_bytes;
    st->comm_run_bytes += r->bytes;
    t->run_ctime += r->ctime;
    st->comm_run_dense += t->dst.dense_step_bytes;
    t->last_step_time = r->dt;
    st->train_time += r->dt;
    t->window_time += r->dt;
    t->window_samples += r->n;
    r->epoch_f = st->epoch + (double)st->epoch_pos / (double)t->ntrain;
    if (t->tp.heartbeat)
        *t->tp.heartbeat = ol__now();
}

/* Log: the step hook, and a step record every log_every steps. */
static int log_step(trainer *t, const step_rec *r)
{
    const ol_train_state *st = &t->st;
    ol__jw *w = &t->mt.w;
    const int n = r->n;
    ol_step_info si = {.step = st->step,
                       .epoch = r->epoch_f,
                       .total_steps = t->total,
                       .lr = r->lr,
                       .momentum = r->mom,
                       .loss = r->sr.loss_sum / n,
                       .acc = (double)r->sr.correct / ((double)n * t->P),
                       .grad_norm = r->sr.grad_norm,
                       .samples_per_s = t->window_time > 0 ? t->window_samples / t->window_time : 0.0,
                       .elapsed = ol__now() - t->t_start,
                       .batch = n,
                       .comm_bytes = r->bytes,
                       .comm_time = r->ctime};
    if (t->hooks && t->hooks->on_step)
        t->hooks->on_step(t->hooks->user, &si);
    if (!(st->step % t->log_every == 0 || st->step == t->total))
        return OL_OK;
    ol__jw_begin(w);
    ol__jw_str(w, "type", "step");
    ol__jw_int(w, "step", st->step);
    ol__jw_num(w, "epoch", r->epoch_f);
    ol__jw_num(w, "lr", r->lr);
    if (r->mom >= 0)
        ol__jw_num(w, "momentum", r->mom);
    ol__jw_num(w, "loss", si.loss);
    ol__jw_num(w, "acc", si.acc);
    ol__jw_num(w, "grad_norm", r->sr.grad_norm);
    ol__jw_int(w, "batch", n);
    if (t->tp.batch_sched || t->tp.lr_scaling != OL_LR_SCALING_NONE)
        ol__jw_num(w, "samples", (double)st->samples_seen);
    if (t->W > 1) {
        ol__jw_int(w, "ranks", t->W);
        ol__jw_num(w, "comm_bytes", si.comm_bytes);
        ol__jw_num(w, "comm_time", si.comm_time);
        ol__jw_num(w, "step_time", r->dt);
        ol__jw_num(w, "compute_time", r->dt - si.comm_time);
    }
    ol__jw_num(w, "samples_per_s", si.samples_per_s);
    if (t->P > 1)
        ol__jw_num(w, "tokens_per_s", si.samples_per_s * t->P);
    ol__jw_num(w, "elapsed", si.elapsed);
    ol__diag_step_fields(t->diag, w);
    ol__jw_end(w);
    int rc = ol__metrics_line(t->ctx, &t->mt);
    t->window_time = 0.0;
    t->window_samples = 0;
    return rc;
}

/* A language model's evaluation in the units of the field: perplexity, bits
 * per token, and bits per byte when a token is a byte (vocabulary 256). */
static void lm_metrics(ol__jw *w, const ol_dataset *test, double loss)
{
    ol__jw_num(w, "test_ppl", exp(loss));
    ol__jw_num(w, "test_bits_per_token", loss / log(2.0));
    if (test->num_classes == 256)
        ol__jw_num(w, "test_bpb", loss / log(2.0));
}

/* Evaluate, second half: best and final values, the plateau rule, the
 * eval/epoch record and the hook. */
static int eval_record(trainer *t, const step_rec *r, double tl, double ta)
{
    ol_train_state *st = &t->st;
    ol__jw *w = &t->mt.w;
    int rc = OL_OK;
    const int eoe = r->end_of_epoch || st->step >= t->total;
    ol_eval_info ei = {.step = st->step,
                       .epoch = r->epoch_f,
                       .end_of_epoch = eoe,
                       .train_loss = st->ep_loss / st->ep_seen,
                       .train_acc = (double)st->ep_correct / ((double)st->ep_seen * t->P),
                       .test_loss = tl,
                       .test_acc = ta,
                       .elapsed = ol__now() - t->t_start};
    if (ta > st->best_test_acc) {
        st->best_test_acc = ta;
        st->best_epoch = r->epoch_f;
    }
    if (t->plateau &&
        ol_plateau_update(&st->plateau, t->sched, t->sched->plateau_maximize ? ta : tl) == 1 && t->mt.f) {
        ol__jw_begin(w);
        ol__jw_str(w, "type", "plateau");
        ol__jw_int(w, "step", st->step);
        ol__jw_num(w, "lr", st->plateau.lr);
        ol__jw_end(w);
        rc = ol__metrics_line(t->ctx, &t->mt);
    }
    st->final_test_acc = ta;
    st->final_test_loss = tl;
    st->final_train_loss = ei.train_loss;
    st->final_train_acc = ei.train_acc;
    ol__jw_begin(w);
    ol__jw_str(w, "type", eoe ? "epoch" : "eval");
    ol__jw_int(w, "step", st->step);
    ol__jw_num(w, "epoch", r->epoch_f);
    ol__jw_num(w, "train_loss", ei.train_loss);
    ol__jw_num(w, "train_acc", ei.train_acc);
    ol__jw_num(w, "test_loss", tl);
    ol__jw_num(w, "test_acc", ta);
    if (t->P > 1) /* language model: loss in nats per token */
        lm_metrics(w, t->test, tl);
    ol__jw_num(w, "elapsed", ei.elapsed);
    if (eoe && t->W > 1)
        epoch_comm(&t->mt, t->ds, st->comm_ep_bytes, t->ep_ctime, t->ep_time, st->comm_ep_dense, t->ep_early0,
                   t->ep_total0);
    ol__jw_end(w);
    rc = ol__metrics_line(t->ctx, &t->mt);
    if (t->hooks && t->hooks->on_eval)
        t->hooks->on_eval(t->hooks->user, &ei);
    return rc;
}

/* Evaluate: rank 0 on the test set (DiLoCo: the global model of the last
 * sync, BN averaged there), the result shared with every rank. */
static int evaluate(trainer *t, const step_rec *r)
{
    ol_ctx *ctx = t->ctx;
    const ol_train_params *tp = &t->tp;
    double te = ol__now(), tl = 0.0, ta = 0.0;
    int rc = t->local ? OL_OK : average_buffers(ctx, tp, t->ps);
    if (rc >= 0 && t->root) {
        ol__dsync_swap_global(t->ds, t->ps);
        rc = run_eval(ctx, tp, t->m, t->opt, t->train, t->test, &tl, &ta);
        ol__dsync_swap_global(t->ds, t->ps);
    }
    if (t->W > 1) { /* rank 0 evaluated: share the result (plateau decisions) */
        double ev[3] = {tl, ta, (double)rc};
        int rc2 = ol_comm_bcast(ctx, tp->comm, ev, sizeof ev, 0);
        if (rc2 < 0)
            rc = rc2;
        else if (!t->root) {
            tl = ev[0];
            ta = ev[1];
            rc = (int)ev[2] < 0 ? ol__err(ctx, (int)ev[2], "evaluation failed on rank 0") : rc;
        }
    }
    t->last_eval_time = ol__now() - te;
    if (tp->heartbeat)
        *tp->heartbeat = ol__now();
    t->st.eval_time += t->last_eval_time;
    t->st.evals_done++;
    OL__TRY(rc);
    return eval_record(t, r, tl, ta);
}

/* Checkpoint: a snapshot at the end of an lr cycle, the end of the epoch, and
 * a checkpoint when one is due (DiLoCo: at the next sync). */
static int checkpoint(trainer *t, const step_rec *r)
{
    ol_ctx *ctx = t->ctx;
    const ol_train_params *tp = &t->tp;
    ol_train_state *st = &t->st;
    /* end of a learning-rate cycle: the schedule has a local minimum here */
    if (!r->bad && tp->snapshot_ensemble > 0 && tp->out_dir && !t->plateau) {
        if (cycle_ends(t->sched, st->step - 1) || st->step == t->total) {
            char path[4096];
            snprintf(path, sizeof path, "%s/snapshot-%08lld.safetensors", tp->out_dir, (long long)st->step);
            OL__TRY(ol_weights_export(ctx, path, t->m, t->opt));
        }
    }
    int ckpt = !r->bad && tp->checkpoint_every_steps > 0 && st->step % tp->checkpoint_every_steps == 0;
    if (r->end_of_epoch) {
        st->epochs_done = (int)st->epoch + 1;
        ckpt = ckpt || (tp->checkpoint_every_epochs > 0 && st->epochs_done % tp->checkpoint_every_epochs == 0);
        st->epoch++;
        st->epoch_pos = 0;
        st->batch_in_epoch = 0;
        st->evals_done = 0;
        st->ep_loss = 0.0;
        st->ep_correct = st->ep_seen = 0;
        st->comm_ep_bytes = st->comm_ep_dense = t->ep_ctime = t->ep_time = 0.0;
        ol__dsync_get_stats(t->ds, &t->dst);
        t->ep_early0 = t->dst.early_bytes;
        t->ep_total0 = t->dst.total_bytes;
    }
    st->elapsed = ol__now() - t->t_start;
    t->ckpt_pending |= ckpt; /* DiLoCo: written at the next sync */
    int rc = OL_OK;
    if (t->ckpt_pending && st->step < t->total && ol__dsync_boundary(t->ds, st->step)) { /* the final one: finish */
        double tc = ol__now();
        t->ckpt_pending = 0;
        rc = t->local ? OL_OK : average_buffers(ctx, tp, t->ps);
        comm_to_state(st, tp->comm, t->ds, t->ep_early0, t->ep_total0, t->early0, t->grad0, t->total0, t->stop_sent);
        if (rc >= 0)
            rc = save_checkpoint(ctx, tp, t->m, t->opt, t->ds, st, &t->mt, t->res, t->sane, t->pending,
                                 &t->pending_step);
        t->last_ckpt_time = ol__now() - tc;
    }
    return rc;
}

/* One pass of the loop: guard, step, log, evaluate, checkpoint. *leave: the
 * inner loop ends (the epoch, a stop, a failure). */
static int iteration(trainer *t, int *leave)
{
    const ol_train_params *tp = &t->tp;
    ol_train_state *st = &t->st;
    *leave = 1;
    /* evaluations at even fractions of the epoch's samples; the last at its end */
    const int64_t b_t = ol__train_batch_for(tp, st->step, st->samples_seen);
    const int64_t next_eval = (t->ntrain * (st->evals_done + 1)) / tp->evals_per_epoch;
    ol_comm_stats cs0; /* the step's traffic: the stop agreement below included */
    if (tp->comm)
        ol_comm_get_stats(tp->comm, &cs0);
    const double t0 = ol__now();
    int rc = check_stop(t, b_t, next_eval, tp->comm ? &cs0 : NULL);
    if (rc < 0 || t->stop)
        return rc;
    const float *x;
    const int32_t *y;
    int shard_lo = 0, k = 0;
    step_rec r;
    memset(&r, 0, sizeof r);
    r.n = ol_loader_next_shard(t->ctx, t->loader, (int)b_t, t->R, t->W, &x, &y, &shard_lo, &k);
    if (r.n <= 0)
        return r.n;
    int leave_now;
    rc = take_step(t, x, y, k, &r, &leave_now);
    if (leave_now)
        return rc;
    account(t, &r, tp->comm ? &cs0 : NULL, t0);
    if (!r.bad)
        rc = log_step(t, &r);
    if (rc >= 0 && !r.bad && ol__diag_layers_record(t->diag, st->step, &t->mt.w))
        rc = ol__metrics_line(t->ctx, &t->mt);
    const int64_t left = t->ntrain - st->epoch_pos, b_next = ol__train_batch_for(tp, st->step, st->samples_seen);
    r.end_of_epoch = left <= 0 || (tp->drop_last && left < b_next);
    if (rc >= 0 && (st->epoch_pos >= next_eval || r.end_of_epoch || st->step >= t->total) && st->ep_seen > 0)
        rc = evaluate(t, &r);
    if (rc < 0)
        return rc;
    rc = checkpoint(t, &r);
    *leave = r.end_of_epoch;
    return rc;
}

/* Finish: the ensemble, the final checkpoint, the summary and the results. */
static int finish(trainer *t, int rc)
{
    ol_ctx *ctx = t->ctx;
    const ol_train_params *tp = &t->tp;
    ol_train_state *st = &t->st;
    ol_train_result *res = t->res;
    if (rc >= 0 && !t->stop && tp->snapshot_ensemble > 0 && tp->out_dir)
        rc = ensemble_eval(ctx, tp, t->m, t->opt, t->test, &t->mt, res);
    st->elapsed = ol__now() - t->t_start;
    if (rc >= 0 && (t->stop || tp->final_checkpoint)) { /* DiLoCo: the last step or the stop follows a sync */
        rc = t->local ? OL_OK : average_buffers(ctx, tp, t->ps);
        comm_to_state(st, tp->comm, t->ds, t->ep_early0, t->ep_total0, t->early0, t->grad0, t->total0, t->stop_sent);
        if (rc >= 0)
            rc = save_checkpoint(ctx, tp, t->m, t->opt, t->ds, st, &t->mt, res, t->sane, t->pending,
                                 &t->pending_step);
    }
    comm_to_state(st, tp->comm, t->ds, t->ep_early0, t->ep_total0, t->early0, t->grad0, t->total0, t->stop_sent);
    if (tp->comm) {
        ol_comm_stats cs;
        ol_comm_get_stats(tp->comm, &cs);
        res->comm_bytes = st->comm_total;
        res->comm_time = cs.seconds;
    }
    if (t->ds) {
        ol__dsync_get_stats(t->ds, &t->dst);
        res->overlap = st->comm_grad > 0 ? st->comm_early / st->comm_grad : 0.0;
        res->syncs = t->dst.syncs;
    }
    res->comm_dense_bytes = st->comm_run_dense;
    res->step_comm_bytes = st->comm_run_bytes;
    res->step_comm_time = t->run_ctime;
    if (rc >= 0 && !t->stop)
        write_summary(ctx, &t->mt, st, t->W > 1 ? res : NULL, t->diag);
    if (rc >= 0 && t->stop)
        rc = ol__err(ctx, OL_EINTR, "%s after step %lld; resume with --resume %s (checkpoint %s)",
                     t->stop == STOP_SIGNAL ? "stopped on request" : "stopped before the time limit",
                     (long long)st->step, tp->out_dir ? tp->out_dir : "?",
                     res->checkpoint[0] ? res->checkpoint : "none");
    res->steps = st->step;
    res->epochs_done = st->epochs_done;
    res->best_test_acc = st->best_test_acc;
    res->best_epoch = st->best_epoch;
    res->final_test_acc = st->final_test_acc;
    res->final_test_loss = st->final_test_loss;
    res->final_train_loss = st->final_train_loss;
    res->final_train_acc = st->final_train_acc;
    res->elapsed = st->elapsed;
    res->train_time = st->train_time;
    res->eval_time = st->eval_time;
    res->bad_steps = st->bad_steps;
    res->samples_per_s = st->train_time > 0 ? (double)st->samples_seen / st->train_time : 0.0;
    ol__diag_result(t->diag, res);
    ol__diag_free(t->diag);
    ol__dsync_free(t->ds);
    free(t->bn_saved);
    ol_loader_free(t->loader);
    if (t->mt.f && fclose(t->mt.f) != 0 && rc >= 0)
        rc = ol__err(ctx, OL_EIO, "closing metrics.jsonl: %s", strerror(errno));
    ol__jw_free(&t->mt.w);
    return rc < 0 ? rc : OL_OK;
}

int ol_train(ol_ctx *ctx, const ol_train_params *tp, ol_model *m, ol_optim *opt, const ol_sched_params *sched,
             const ol_dataset *train, const ol_dataset *test, const ol_train_hooks *hooks, ol_train_result *res)
{
    memset(res, 0, sizeof *res);
    int64_t max_batch = 0;
    OL__TRY(check_run(ctx, tp, m, sched, train, &max_batch));
    trainer *t = calloc(1, sizeof *t);
    if (!t)
        return ol__err(ctx, OL_ENOMEM, "out of memory");
    *t = (trainer){.ctx = ctx, .tp = *tp, .m = m, .opt = opt, .sched = sched, .train = train, .test = test,
                   .hooks = hooks, .res = res, .max_batch = max_batch};
    t->W = ol_comm_size(tp->comm);
    t->R = ol_comm_rank(tp->comm);
    t->root = t->R == 0;
    if (!t->root) { /* ranks other than 0 write no files */
        t->tp.out_dir = NULL;
        t->hooks = NULL;
    }
    int rc = setup_files(t);
    if (rc < 0) {
        free(t);
        return rc;
    }
    rc = setup_run(t);
    while (rc >= 0 && t->st.epoch < t->epochs && t->st.step < t->total && !t->stop) {
        rc = ol_loader_start_epoch(ctx, t->loader, t->st.epoch, t->st.epoch_pos);
        int leave = 0;
        while (rc >= 0 && t->st.step < t->total && !leave)
            rc = iteration(t, &leave);
    }
    rc = finish(t, rc);
    free(t);
    return rc;
}
