/* Learning-rate range test and lr sweep, with model/optimizer snapshots. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "optimlab/lrfind.h"
#include "optimlab/train.h"
#include "tools/svg.h"

/* The optimizer's part is its public state blob (ol_optim_state_save), the
 * same one checkpoints hold: optional slots, scalars, step and mode included. */
struct ol_snapshot {
    float *params, *buffers;
    size_t numel, bnumel;
    void *optim;
    size_t optim_bytes;
};

void ol_snapshot_free(ol_snapshot *s)
{
    if (!s)
        return;
    ol__free(s->params);
    ol__free(s->buffers);
    free(s->optim);
    free(s);
}

static float *dup_floats(const float *src, size_t n)
{
    float *d = ol__alloc((n ? n : 1) * sizeof(float));
    if (d && n)
        memcpy(d, src, n * sizeof(float));
    return d;
}

int ol_snapshot_take(ol_ctx *ctx, ol_model *m, ol_optim *o, ol_snapshot **out)
{
    *out = NULL;
    const ol_paramset *ps = ol_model_paramset(m);
    ol_snapshot *s = calloc(1, sizeof *s);
    if (!s)
        return ol__err(ctx, OL_ENOMEM, "out of memory for a snapshot");
    s->numel = ps->numel;
    s->bnumel = ps->bnumel;
    s->params = dup_floats(ps->params, ps->numel);
    s->buffers = dup_floats(ps->buffers, ps->bnumel);
    int rc = !s->params || !s->buffers ? ol__err(ctx, OL_ENOMEM, "out of memory for a snapshot") : OL_OK;
    if (o && rc >= 0) {
        s->optim_bytes = ol_optim_state_size(o);
        s->optim = malloc(s->optim_bytes);
        rc = s->optim ? ol_optim_state_save(ctx, o, s->optim, s->optim_bytes)
                      : ol__err(ctx, OL_ENOMEM, "out of memory for a snapshot");
    }
    if (rc < 0) {
        ol_snapshot_free(s);
        return rc;
    }
    *out = s;
    return OL_OK;
}

int ol_snapshot_restore(ol_ctx *ctx, const ol_snapshot *s, ol_model *m, ol_optim *o)
{
    ol_paramset *ps = ol_model_paramset(m);
    if (ps->numel != s->numel || ps->bnumel != s->bnumel)
        return ol__err(ctx, OL_ESHAPE, "snapshot of %zu parameters does not fit a model of %zu", s->numel, ps->numel);
    if (o && !s->optim)
        return ol__err(ctx, OL_ESHAPE, "snapshot holds no state for this optimizer");
    if (o) /* checks the algorithm and sizes before it changes anything */
        OL__TRY(ol_optim_state_load(ctx, o, s->optim, s->optim_bytes));
    memcpy(ps->params, s->params, s->numel * sizeof(float));
    if (s->bnumel)
        memcpy(ps->buffers, s->buffers, s->bnumel * sizeof(float));
    return OL_OK;
}

ol_lrfind_params ol_lrfind_default_params(void)
{
    ol_lrfind_params p;
    memset(&p, 0, sizeof p);
    p.start_lr = 1e-7;
    p.end_lr = 10.0;
    p.num_iter = 100;
    p.smooth_beta = 0.98;
    p.diverge_factor = 4.0;
    p.batch_size = 128;
    return p;
}

static int check_params(ol_ctx *ctx, const ol_lrfind_params *p)
{
    if (!(p->start_lr > 0.0 && p->end_lr > p->start_lr && isfinite(p->end_lr)))
        return ol__err(ctx, OL_ERANGE, "lr range test needs 0 < start lr < end lr (got %g, %g)", p->start_lr,
                       p->end_lr);
    if (p->num_iter < 2)
        return ol__err(ctx, OL_ERANGE, "lr range test needs at least 2 iterations, got %d", p->num_iter);
    if (!(p->smooth_beta >= 0.0 && p->smooth_beta < 1.0))
        return ol__err(ctx, OL_ERANGE, "loss smoothing must be in [0, 1), got %g", p->smooth_beta);
    if (!(p->diverge_factor > 1.0))
        return ol__err(ctx, OL_ERANGE, "divergence factor must be > 1, got %g", p->diverge_factor);
    if (p->batch_size < 1)
        return ol__err(ctx, OL_ERANGE, "batch size must be >= 1, got %d", p->batch_size);
    if (p->micro_batch_size < 0 || p->micro_batch_size > p->batch_size)
        return ol__err(ctx, OL_ERANGE, "micro-batch size must be in [0, %d], got %d", p->batch_size,
                       p->micro_batch_size);
    return OL_OK;
}

/* One training step at lr on the next batch (a new epoch when one ends), the
 * library's step: micro-batches, clipping, update. A non-finite loss or
 * gradient leaves *loss NaN and the parameters untouched; the caller stops. */
static int train_step(ol_ctx *ctx, const ol_lrfind_params *p, ol_model *m, ol_optim *o, ol_loader *l, int64_t *epoch,
                      double lr, double *loss)
{
    const float *x;
    const int32_t *y;
    int n = ol_loader_next(ctx, l, p->batch_size, &x, &y);
    if (n == 0) {
        OL__TRY(ol_loader_start_epoch(ctx, l, ++*epoch, 0));
        n = ol_loader_next(ctx, l, p->batch_size, &x, &y);
    }
    if (n <= 0)
        return n < 0 ? n : ol__err(ctx, OL_EINVAL, "lr range test: the training set is empty");
    ol_train_params tp = ol_train_default_params();
    tp.label_smoothing = p->label_smoothing;
    tp.clip_grad_norm = p->clip_grad_norm;
    tp.micro_batch_size = p->micro_batch_size;
    ol_optim_hyper h = {.lr = lr, .momentum = -1.0};
    ol_step_result sr;
    int rc = ol_train_step(ctx, &tp, m, o, x, y, n, &h, &sr);
    *loss = rc == OL_ENONFINITE ? NAN : sr.loss_sum / n;
    return rc == OL_ENONFINITE ? OL_OK : rc;
}

static int make_loader(ol_ctx *ctx, const ol_lrfind_params *p, const ol_dataset *d, ol_loader **l)
{
    ol_loader_params lp = {.shuffle = 1, .drop_last = d->n >= p->batch_size, .aug = p->aug,
                           .seed = p->seed ^ 0x9e3779b97f4a7c15ull, .max_batch = p->batch_size};
    OL__TRY(ol_loader_create(ctx, d, &lp, l));
    return ol_loader_start_epoch(ctx, *l, 0, 0);
}

void ol_lrfind_result_free(ol_lrfind_result *r)
{
    free(r->lr);
    memset(r, 0, sizeof *r);
}

void ol_lrfind_suggest(ol_lrfind_result *r)
{
    const int n = r->n;
    r->i_min = 0;
    for (int i = 1; i < n; i++)
        if (r->smooth[i] < r->smooth[r->i_min])
            r->i_min = i;
    r->best_loss = n > 0 ? r->smooth[r->i_min] : NAN;
    r->lr_at_min = n > 0 ? r->lr[r->i_min] : NAN;
    r->lr_min10 = r->lr_at_min / 10.0;
    /* steepest descent per log(lr) before the minimum (central differences). The first points
     * are skipped (fast.ai's skip_start = 10): the bias-corrected EMA of a few noisy losses
     * moves more per step there than the real descent does. */
    r->i_steep = -1;
    double best_g = 0.0;
    int skip = n / 20 > 10 ? n / 20 : 10;
    if (skip > r->i_min / 2)
        skip = r->i_min / 2;
    for (int i = skip > 1 ? skip : 1; i <= r->i_min && i < n; i++) {
        int a = i - 1, b = i + 1 < n ? i + 1 : i;
        double dx = log(r->lr[b]) - log(r->lr[a]);
        if (!(dx > 0.0))
            continue;
        double g = (r->smooth[b] - r->smooth[a]) / dx;
        if (g < best_g) {
            best_g = g;
            r->i_steep = i;
        }
    }
    r->lr_steepest = r->i_steep >= 0 ? r->lr[r->i_steep] : r->lr_min10;
    r->onecycle_max_lr = r->lr_min10;
    r->cyclic_max_lr = r->lr_min10;
    r->cyclic_base_lr = r->lr_min10 / 4.0;
}

int ol_lrfind_run(ol_ctx *ctx, const ol_lrfind_params *p, ol_model *m, ol_optim *o, const ol_dataset *train,
                  ol_lrfind_result *res)
{
    memset(res, 0, sizeof *res);
    OL__TRY(check_params(ctx, p));
    double *buf = malloc(sizeof(double) * 3 * (size_t)p->num_iter);
    if (!buf)
        return ol__err(ctx, OL_ENOMEM, "out of memory");
    res->lr = buf;
    res->loss = buf + p->num_iter;
    res->smooth = buf + 2 * p->num_iter;
    ol_snapshot *snap = NULL;
    ol_loader *l = NULL;
    int rc = ol_snapshot_take(ctx, m, o, &snap);
    if (rc >= 0) /* Schedule-Free: train at y; the snapshot brings x back */
        rc = ol_optim_train_mode(ctx, o, ol_model_paramset(m));
    if (rc >= 0)
        rc = make_loader(ctx, p, train, &l);
    int64_t epoch = 0;
    double avg = 0.0, best = INFINITY;
    for (int i = 0; rc >= 0 && i < p->num_iter; i++) {
        double f = (double)i / (double)(p->num_iter - 1);
        double lr = p->linear ? p->start_lr + (p->end_lr - p->start_lr) * f
                              : p->start_lr * pow(p->end_lr / p->start_lr, f);
        double loss = NAN;
        rc = train_step(ctx, p, m, o, l, &epoch, lr, &loss);
        if (rc < 0)
            break;
        avg = p->smooth_beta * avg + (1.0 - p->smooth_beta) * loss;
        double sm = avg / (1.0 - pow(p->smooth_beta, (double)(i + 1)));
        res->lr[i] = lr;
        res->loss[i] = loss;
        res->smooth[i] = sm;
        res->n = i + 1;
        if (!isfinite(sm) || (i > 0 && sm > p->diverge_factor * best)) {
            res->diverged = 1;
            if (!isfinite(sm))
                res->n = i; /* keep the plot finite */
            break;
        }
        if (sm < best)
            best = sm;
    }
    ol_loader_free(l);
    if (snap) { /* always put the model and optimizer back */
        int r2 = ol_snapshot_restore(ctx, snap, m, o);
        if (rc >= 0)
            rc = r2;
    }
    ol_snapshot_free(snap);
    if (rc >= 0 && res->n < 2)
        rc = ol__err(ctx, OL_ENONFINITE, "lr range test: the loss is not finite from the first iteration");
    if (rc < 0) {
        ol_lrfind_result_free(res);
        return rc;
    }
    ol_lrfind_suggest(res);
    return OL_OK;
}

int ol_lrfind_sweep(ol_ctx *ctx, const ol_lrfind_params *p, int steps, const double *lrs, int n, ol_model *m,
                    ol_optim *o, const ol_dataset *train, double *final_loss, int *steps_done)
{
    if (steps < 1 || n < 1)
        return ol__err(ctx, OL_ERANGE, "lr sweep needs >= 1 candidate and >= 1 step (got %d, %d)", n, steps);
    if (p->batch_size < 1)
        return ol__err(ctx, OL_ERANGE, "batch size must be >= 1, got %d", p->batch_size);
    for (int i = 0; i < n; i++)
        if (!(lrs[i] >= 0.0 && isfinite(lrs[i])))
            return ol__err(ctx, OL_ERANGE, "lr sweep: candidate %d is not a valid lr (%g)", i + 1, lrs[i]);
    ol_snapshot *snap = NULL;
    int rc = ol_snapshot_take(ctx, m, o, &snap);
    const int tail = steps / 10 > 1 ? steps / 10 : 1;
    double *win = malloc((size_t)tail * sizeof *win); /* the last `tail` losses, a ring */
    if (rc >= 0 && !win)
        rc = ol__err(ctx, OL_ENOMEM, "lr sweep: out of memory");
    for (int c = 0; rc >= 0 && c < n; c++) {
        ol_optim *fresh = NULL;
        ol_loader *l = NULL;
        rc = ol_snapshot_restore(ctx, snap, m, NULL);
        if (rc >= 0)
            rc = ol_optim_create(ctx, ol_optim_get_params(o), ol_model_paramset(m), &fresh);
        if (rc >= 0)
            rc = make_loader(ctx, p, train, &l);
        int64_t epoch = 0;
        double first = NAN, run = 0.0; /* run: the window's sum, kept as it slides (the check only) */
        int s = 0, diverged = 0;
        while (rc >= 0 && s < steps && !diverged) {
            double loss = NAN;
            rc = train_step(ctx, p, m, fresh, l, &epoch, lrs[c], &loss);
            if (rc < 0)
                break;
            if (s == 0)
                first = loss;
            run += loss - (s >= tail ? win[s % tail] : 0.0);
            win[s % tail] = loss;
            s++;
            /* diverged: a non-finite loss, or the window's mean past diverge_factor x the first loss
             * (the range test's rule); the remaining steps would be spent on a lost candidate */
            diverged = !isfinite(loss) || (s >= tail && !(run / tail <= p->diverge_factor * first));
        }
        double mean = 0.0; /* the final loss: the last `tail` losses summed in order */
        for (int k = 0; k < tail && !diverged; k++)
            mean += win[(s + k) % tail];
        mean /= tail;
        diverged = diverged || !(mean <= p->diverge_factor * first);
        final_loss[c] = diverged ? INFINITY : mean;
        if (steps_done)
            steps_done[c] = s;
        ol_loader_free(l);
        ol_optim_free(fresh);
    }
    free(win);
    if (snap) {
        int r2 = ol_snapshot_restore(ctx, snap, m, o);
        if (rc >= 0)
            rc = r2;
    }
    ol_snapshot_free(snap);
    return rc;
}

int ol_lrfind_sweep_best(const double *final_loss, int n)
{
    int best = -1;
    for (int i = 0; i < n; i++)
        if (isfinite(final_loss[i]) && (best < 0 || final_loss[i] < final_loss[best]))
            best = i;
    return best;
}

/* Finite-value range with a margin; the loss axis starts near the data. */
static void loss_range(const double *a, int na, const double *b, int nb, double *lo, double *hi)
{
    double l1, h1, l2, h2;
    int ok1 = ol__range(a, na, 0, &l1, &h1), ok2 = b ? ol__range(b, nb, 0, &l2, &h2) : 0;
    *lo = ok1 ? l1 : 0.0;
    *hi = ok1 ? h1 : 1.0;
    if (ok2) {
        *lo = ok1 ? fmin(*lo, l2) : l2;
        *hi = ok1 ? fmax(*hi, h2) : h2;
    }
    double pad = *hi > *lo ? 0.05 * (*hi - *lo) : 0.5;
    *lo -= pad;
    *hi += pad;
}

int ol_lrfind_plot(ol_ctx *ctx, const ol_lrfind_result *r, const char *path, const char *title)
{
    if (r->n < 2)
        return ol__err(ctx, OL_EINVAL, "lr range test plot: fewer than 2 points");
    double lo, hi;
    /* raw losses can explode at the end: the top of the axis follows the smoothed curve; the
     * bottom also shows the batch losses, which run ahead of their lagging average */
    loss_range(r->smooth, r->n, r->loss, r->i_min + 1, &lo, &hi);
    double slo, shi;
    loss_range(r->smooth, r->n, NULL, 0, &slo, &shi);
    hi = shi;
    ol__svg s;
    OL__TRY(ol__svg_begin(ctx, &s, 900, 520, r->lr[0], r->lr[r->n - 1], lo, hi, r->lr[r->n - 1] > r->lr[0] * 20, 0));
    ol__svg_axes(&s, title ? title : "learning-rate range test", "learning rate", "training loss");
    double *clipped = malloc(sizeof(double) * (size_t)r->n);
    if (clipped) {
        for (int i = 0; i < r->n; i++)
            clipped[i] = r->loss[i] >= lo && r->loss[i] <= hi ? r->loss[i] : NAN;
        ol__svg_polyline(&s, r->lr, clipped, r->n, "#bbbbbb", 1.0, 0);
        free(clipped);
    }
    ol__svg_polyline(&s, r->lr, r->smooth, r->n, ol__svg_color(0), 2.0, 0);
    /* values go in the legend: labels on the lines would collide near the minimum */
    char l_steep[64], l_min10[64], l_min[64];
    snprintf(l_steep, sizeof l_steep, "steepest descent %.3g", r->lr_steepest);
    snprintf(l_min10, sizeof l_min10, "minimum/10 %.3g", r->lr_min10);
    snprintf(l_min, sizeof l_min, "minimum %.3g", r->lr_at_min);
    if (r->i_steep >= 0) {
        ol__svg_vline(&s, r->lr_steepest, ol__svg_color(1), NULL);
        ol__svg_marker(&s, r->lr_steepest, r->smooth[r->i_steep], 5, ol__svg_color(1));
    }
    ol__svg_vline(&s, r->lr_min10, ol__svg_color(2), NULL);
    ol__svg_marker(&s, r->lr_at_min, r->best_loss, 5, ol__svg_color(3));
    const char *labels[] = {"batch loss", "smoothed loss", l_steep, l_min10, l_min};
    const char *colors[] = {"#bbbbbb", ol__svg_color(0), ol__svg_color(1), ol__svg_color(2), ol__svg_color(3)};
    ol__svg_legend(&s, labels, colors, 5);
    int rc = ol__svg_save(ctx, &s, path);
    ol__svg_free(&s);
    return rc;
}

int ol_lrfind_sweep_plot(ol_ctx *ctx, const double *lrs, const double *final_loss, int n, const char *path,
                         const char *title)
{
    double xlo, xhi, lo, hi;
    if (!ol__range(lrs, n, 1, &xlo, &xhi))
        return ol__err(ctx, OL_EINVAL, "lr sweep plot: no positive learning rates");
    loss_range(final_loss, n, NULL, 0, &lo, &hi); /* diverged candidates are +inf: off the axis */
    ol__svg s;
    OL__TRY(ol__svg_begin(ctx, &s, 900, 520, xlo / 2, xhi * 2, lo, hi, 1, 0));
    ol__svg_axes(&s, title ? title : "lr sweep: final training loss per learning rate", "learning rate",
                 "final training loss");
    double *x = malloc(sizeof(double) * (size_t)n);
    if (x) {
        for (int i = 0; i < n; i++)
            x[i] = lrs[i] > 0.0 ? lrs[i] : NAN;
        ol__svg_polyline(&s, x, final_loss, n, ol__svg_color(0), 2.0, 0);
        free(x);
    }
    for (int i = 0; i < n; i++) {
        if (isfinite(final_loss[i]))
            ol__svg_marker(&s, lrs[i], final_loss[i], 4, ol__svg_color(0));
        else
            ol__svg_vline(&s, lrs[i], "#d62728", "diverged");
    }
    int b = ol_lrfind_sweep_best(final_loss, n);
    if (b >= 0) {
        char buf[64];
        snprintf(buf, sizeof buf, "best %.2g", lrs[b]);
        ol__svg_vline(&s, lrs[b], ol__svg_color(2), buf);
    }
    int rc = ol__svg_save(ctx, &s, path);
    ol__svg_free(&s);
    return rc;
}
