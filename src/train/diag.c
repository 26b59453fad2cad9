/* The gradient noise scale and per-tensor statistics (diag.h). Nothing here
 * writes to the gradients or parameters: the training result is bitwise the
 * same with the diagnostics on or off. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/reduce.h"
#include "core/textbuf.h"
#include "train/diag.h"

void ol__gns_estimate(double b_small, double sq_small, double b_big, double sq_big, double *grad_sq, double *trace)
{
    /* E|G_b|^2 = |G|^2 + tr(Sigma)/b at both sizes, solved for the two unknowns */
    *grad_sq = (b_big * sq_big - b_small * sq_small) / (b_big - b_small);
    *trace = (sq_small - sq_big) / (1.0 / b_small - 1.0 / b_big);
}

void ol__gns_ema_init(ol__gns_ema *e, double beta)
{
    memset(e, 0, sizeof *e);
    e->beta = beta;
    e->decay = 1.0;
}

void ol__gns_ema_push(ol__gns_ema *e, double grad_sq, double trace)
{
    e->ema_g = e->beta * e->ema_g + (1.0 - e->beta) * grad_sq;
    e->ema_s = e->beta * e->ema_s + (1.0 - e->beta) * trace;
    e->decay *= e->beta;
    e->sum_g += grad_sq;
    e->sum_s += trace;
    e->steps++;
}

double ol__gns_ema_value(const ol__gns_ema *e, double *grad_sq, double *trace)
{
    const double c = 1.0 - e->decay; /* 0 before the first step */
    const double g = c > 0 ? e->ema_g / c : NAN, s = c > 0 ? e->ema_s / c : NAN;
    if (grad_sq)
        *grad_sq = g;
    if (trace)
        *trace = s;
    return g > 0 ? s / g : NAN;
}

double ol__gns_run_value(const ol__gns_ema *e) { return e->steps > 0 && e->sum_g > 0 ? e->sum_s / e->sum_g : NAN; }

struct ol__diag {
    int gns;
    ol__gns_meas meas;
    ol__gns_ema ema;
    double first; /* the noise scale at the first logged step (NaN: none yet) */
    int layer_every;          /* 0: off */
    int ntensors;
    int64_t layers_step;      /* the step (count after it) the arrays hold; -1: none */
    float *wprev;             /* numel floats: the weights before the step */
    double *gsq, *wsq, *dsq;  /* per tensor */
};

int ol__diag_check(ol_ctx *ctx, const ol_train_params *tp, int world)
{
    if (tp->log_layer_stats < 0)
        return ol__err(ctx, OL_EINVAL, "layer statistics every %d steps: must be >= 0", tp->log_layer_stats);
    if (!tp->gns)
        return OL_OK;
    if (!(tp->gns_smoothing >= 0.0 && tp->gns_smoothing < 1.0))
        return ol__err(ctx, OL_EINVAL, "gradient noise scale smoothing must be in [0, 1), got %g", tp->gns_smoothing);
    if (world > 1 && (tp->powersgd.rank > 0 || tp->diloco.h > 0))
        return ol__err(ctx, OL_EINVAL,
                       "the gradient noise scale needs the exact all-reduce over several ranks (not PowerSGD or "
                       "DiLoCo)");
    if (world <= 1 && !(tp->micro_batch_size > 0 && tp->micro_batch_size < tp->batch_size))
        return ol__err(ctx, OL_EINVAL,
                       "the gradient noise scale needs a second batch size: micro-batches smaller than the batch "
                       "(--micro-batch-size) or several ranks");
    return OL_OK;
}

int ol_train_check_diag(ol_ctx *ctx, const ol_train_params *tp, int world) { return ol__diag_check(ctx, tp, world); }

void ol__diag_free(ol__diag *d)
{
    if (!d)
        return;
    free(d->meas.prev);
    free(d->wprev);
    free(d->gsq);
    free(d->wsq);
    free(d->dsq);
    free(d);
}

int ol__diag_create(ol_ctx *ctx, const ol_train_params *tp, const ol_paramset *ps, ol__diag **out)
{
    *out = NULL;
    if (!tp->gns && tp->log_layer_stats <= 0)
        return OL_OK;
    ol__diag *d = calloc(1, sizeof *d);
    if (!d)
        return ol__err(ctx, OL_ENOMEM, "out of memory");
    d->gns = tp->gns;
    d->first = NAN;
    d->layers_step = -1;
    ol__gns_ema_init(&d->ema, tp->gns_smoothing);
    const size_t nt = (size_t)(ps->n > 0 ? ps->n : 1);
    int bad = 0;
    if (tp->gns && ol_comm_size(tp->comm) <= 1) /* per-rank gradients need no copy */
        bad |= !(d->meas.prev = malloc(ps->numel * sizeof(float)));
    if (tp->log_layer_stats > 0) {
        d->layer_every = tp->log_layer_stats;
        d->ntensors = ps->n;
        bad |= !(d->wprev = malloc(ps->numel * sizeof(float)));
        bad |= !(d->gsq = calloc(nt, sizeof(double))) || !(d->wsq = calloc(nt, sizeof(double))) ||
               !(d->dsq = calloc(nt, sizeof(double)));
    }
    if (bad) {
        ol__diag_free(d);
        return ol__err(ctx, OL_ENOMEM, "out of memory for the training diagnostics");
    }
    *out = d;
    return OL_OK;
}

ol__gns_meas *ol__diag_gns(ol__diag *d)
{
    if (!d || !d->gns)
        return NULL;
    float *prev = d->meas.prev;
    memset(&d->meas, 0, sizeof d->meas);
    d->meas.prev = prev;
    d->meas.on = 1;
    return &d->meas;
}

int ol__diag_layers_due(const ol__diag *d, int64_t step)
{
    return d && d->layer_every > 0 && (step + 1) % d->layer_every == 0;
}

/* sum (g - prev)^2 over one chunk (prev NULL: sum g^2), then prev = g; eight
 * independent lanes, so the loop vectorizes without reassociation */
static double chunk_diff_sq(const float *g, float *prev, size_t n)
{
    double lane[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) {
            const double dl = (double)g[i + l] - (double)prev[i + l];
            lane[l] += dl * dl;
            prev[i + l] = g[i + l];
        }
    double s = 0.0;
    for (; i < n; i++) {
        const double dl = (double)g[i] - (double)prev[i];
        s += dl * dl;
        prev[i] = g[i];
    }
    for (int l = 0; l < 8; l++)
        s += lane[l];
    return s;
}

/* |g - prev|^2 in fixed chunks summed in order (the same for any thread
 * count), and prev = g. */
static double diff_sq_copy(const float *g, float *prev, size_t n)
{
    enum { CH = OL__REDUCE_CHUNK, MAXCH = 512 };
    const size_t nch = (n + CH - 1) / CH;
    double part[MAXCH], s = 0.0;
    for (size_t c0 = 0; c0 < nch; c0 += MAXCH) {
        const size_t c1 = nch - c0 < MAXCH ? nch : c0 + MAXCH;
#pragma omp parallel for schedule(static)
        for (size_t c = c0; c < c1; c++) {
            const size_t lo = c * CH, len = n - lo < CH ? n - lo : CH;
            part[c - c0] = chunk_diff_sq(g + lo, prev + lo, len);
        }
        for (size_t c = c0; c < c1; c++)
            s += part[c - c0];
    }
    return s;
}

void ol__gns_after_micro(ol__gns_meas *g, const ol_paramset *ps, int kk, int denom)
{
    /* this micro-batch's part of the sum: the difference to the sum before it
     * (float rounding of the running sum: relative 1e-7, far below the noise) */
    if (g->nsmall == 0) /* the sum before the first micro-batch is zero */
        memset(g->prev, 0, ps->numel * sizeof(float));
    const double s = diff_sq_copy(ps->grads, g->prev, ps->numel);
    const double scale = (double)denom / kk; /* the sum was of loss / denom: the micro-batch's mean gradient */
    g->small_sq += s * scale * scale;
    g->small_inv_b += 1.0 / kk;
    g->nsmall++;
}

void ol__gns_local_big(ol__gns_meas *g, const ol_paramset *ps, int k, int denom)
{
    const double scale = (double)denom / k;
    g->big_sq = ol__sumsq(ps->grads, ps->numel) * scale * scale;
    g->b_big = k;
}

void ol__gns_reduced_big(ol__gns_meas *g, const ol_paramset *ps, int n)
{
    g->big_sq = ol__sumsq(ps->grads, ps->numel);
    g->b_big = n;
}

void ol__diag_layer_grads(ol__diag *d, const ol_paramset *ps)
{
    for (int i = 0; i < ps->n; i++)
        d->gsq[i] = ol__sumsq(ps->grads + ps->t[i].offset, ps->t[i].numel);
}

void ol__diag_layer_before(ol__diag *d, const ol_paramset *ps)
{
    memcpy(d->wprev, ps->params, ps->numel * sizeof(float));
}

void ol__diag_layer_after(ol__diag *d, const ol_paramset *ps)
{
    for (int i = 0; i < ps->n; i++) {
        const float *w0 = d->wprev + ps->t[i].offset, *w1 = ps->params + ps->t[i].offset;
        double s = 0.0;
        for (size_t j = 0; j < ps->t[i].numel; j++) {
            const double dl = (double)w1[j] - w0[j];
            s += dl * dl;
        }
        d->wsq[i] = ol__sumsq(w0, ps->t[i].numel);
        d->dsq[i] = s;
    }
    d->layers_step = 0; /* filled; ol__diag_layers_record names the step */
}

void ol__diag_step_done(ol__diag *d)
{
    if (!d || !d->gns)
        return;
    const ol__gns_meas *g = &d->meas;
    if (g->nsmall < 1 || !(g->small_inv_b > 0))
        return;
    const double b_small = g->nsmall / g->small_inv_b;
    if (!(g->b_big > b_small * (1.0 + 1e-9))) /* one piece only (an epoch's short last batch): no second size */
        return;
    double gs, tr;
    ol__gns_estimate(b_small, g->small_sq / g->nsmall, g->b_big, g->big_sq, &gs, &tr);
    if (isfinite(gs) && isfinite(tr))
        ol__gns_ema_push(&d->ema, gs, tr);
}

/* "key":[v0,v1,...] from f(i) for each tensor. */
static void num_array(ol__jw *w, const char *key, const double *v, int n, int sqrt_of, const double *div)
{
    ol__tb b = {0};
    ol__tb_puts(&b, "[");
    for (int i = 0; i < n; i++) {
        double x = sqrt_of ? sqrt(v[i]) : v[i];
        if (div)
            x = div[i] > 0 ? x / sqrt(div[i]) : NAN;
        if (isfinite(x))
            ol__tb_printf(&b, "%s%.6g", i ? "," : "", x);
        else
            ol__tb_printf(&b, "%snull", i ? "," : "");
    }
    ol__tb_puts(&b, "]");
    const char *txt = ol__tb_text(&b);
    if (txt)
        ol__jw_raw(w, key, txt);
    ol__tb_free(&b);
}

void ol__diag_names(const ol__diag *d, const ol_paramset *ps, ol__jw *w)
{
    ol__tb b = {0};
    ol__tb_puts(&b, "[");
    for (int i = 0; i < ps->n; i++)
        ol__tb_printf(&b, "%s\"%s\"", i ? "," : "", ps->t[i].name); /* PyTorch names: no quotes or escapes */
    ol__tb_puts(&b, "]");
    ol__jw_begin(w);
    ol__jw_str(w, "type", "layer_names");
    ol__jw_int(w, "every", d->layer_every);
    const char *txt = ol__tb_text(&b);
    if (txt)
        ol__jw_raw(w, "names", txt);
    ol__jw_end(w);
    ol__tb_free(&b);
}

void ol__diag_step_fields(ol__diag *d, ol__jw *w)
{
    if (!d || !d->gns || d->ema.steps == 0)
        return;
    double gs, tr;
    const double b = ol__gns_ema_value(&d->ema, &gs, &tr);
    ol__jw_num(w, "gns", b);
    ol__jw_num(w, "gns_grad_sq", gs);
    ol__jw_num(w, "gns_trace", tr);
    if (isnan(d->first) && isfinite(b)) /* for the summary */
        d->first = b;
}

int ol__diag_layers_record(ol__diag *d, int64_t step, ol__jw *w)
{
    if (!d || d->layers_step != 0)
        return 0;
    d->layers_step = -1;
    ol__jw_begin(w);
    ol__jw_str(w, "type", "layers");
    ol__jw_int(w, "step", step);
    num_array(w, "grad_norm", d->gsq, d->ntensors, 1, NULL);
    num_array(w, "weight_norm", d->wsq, d->ntensors, 1, NULL);
    num_array(w, "update_ratio", d->dsq, d->ntensors, 1, d->wsq);
    ol__jw_end(w);
    return 1;
}

void ol__diag_summary_fields(const ol__diag *d, ol__jw *w)
{
    if (!d || !d->gns || d->ema.steps == 0)
        return;
    ol__jw_num(w, "gns", ol__gns_ema_value(&d->ema, NULL, NULL));
    ol__jw_num(w, "gns_run", ol__gns_run_value(&d->ema));
    ol__jw_num(w, "gns_first", d->first);
    ol__jw_int(w, "gns_steps", d->ema.steps);
}

void ol__diag_result(const ol__diag *d, ol_train_result *res)
{
    res->gns_steps = 0;
    res->gns_final = res->gns_run = res->gns_first = NAN;
    if (!d || !d->gns || d->ema.steps == 0)
        return;
    res->gns_steps = d->ema.steps;
    res->gns_final = ol__gns_ema_value(&d->ema, NULL, NULL);
    res->gns_run = ol__gns_run_value(&d->ema);
    res->gns_first = d->first;
}
