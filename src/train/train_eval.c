/* Evaluation: test loss and accuracy, snapshot ensembles, BatchNorm statistics
 * recomputed at new weights. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "optimlab/train.h"

int ol_evaluate(ol_ctx *ctx, ol_model *m, const ol_dataset *d, int batch, double *loss, double *acc)
{
    if (batch <= 0)
        return ol__err(ctx, OL_EINVAL, "evaluation batch size must be > 0, got %d", batch);
    if (d->num_classes > ol_model_num_classes(m))
        return ol__err(ctx, OL_ESHAPE, "dataset has %d classes, the model %d", d->num_classes,
                       ol_model_num_classes(m));
    const int P = ol_model_outputs_per_sample(m);
    if (ol_dataset_outputs_per_sample(d) != P)
        return ol__err(ctx, OL_ESHAPE, "evaluation data has %d labels per sample, the model %d outputs",
                       ol_dataset_outputs_per_sample(d), P);
    const ol_model_params *mp = ol_model_get_params(m);
    if (d->c != mp->in_c || d->h != mp->in_h || d->w != mp->in_w) /* the model would read past a smaller image */
        return ol__err(ctx, OL_ESHAPE, "evaluation images are %dx%dx%d but the model expects %dx%dx%d", d->c, d->h,
                       d->w, mp->in_c, mp->in_h, mp->in_w);
    if (batch > d->n && d->n > 0)
        batch = (int)d->n; /* buffers no larger than the data set */
    const size_t per = (size_t)d->c * d->h * d->w;
    float *x = ol__alloc((size_t)batch * per * sizeof(float));
    int32_t *y = ol__alloc((size_t)batch * P * sizeof(int32_t));
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
    *loss = total / ((double)d->n * P);
    *acc = (double)correct / ((double)d->n * P);
    return OL_OK;
}

int ol_evaluate_ensemble(ol_ctx *ctx, ol_model *m, const char *const *files, int nf, const ol_dataset *d, int batch,
                         double *loss, double *acc)
{
    if (nf <= 0 || batch <= 0)
        return ol__err(ctx, OL_EINVAL, "ensemble of %d models, batch %d", nf, batch);
    if (ol_model_outputs_per_sample(m) != 1 || d->tokens)
        return ol__err(ctx, OL_ENOTSUP, "snapshot ensembles of language models are not supported");
    if (batch > d->n && d->n > 0)
        batch = (int)d->n;
    ol_paramset *ps = ol_model_paramset(m);
    const int K = ol_model_num_classes(m);
    const size_t per = (size_t)d->c * d->h * d->w;
    float *keep_p = malloc(ps->numel * sizeof(float)), *keep_b = malloc((ps->bnumel ? ps->bnumel : 1) * sizeof(float));
    double *prob = calloc((size_t)d->n * (size_t)K, sizeof(double));
    float *x = ol__alloc((size_t)batch * per * sizeof(float));
    int32_t *y = ol__alloc((size_t)batch * sizeof(int32_t)), *labels = malloc((size_t)d->n * sizeof(int32_t));
    int64_t *idx = malloc((size_t)batch * sizeof(int64_t));
    int rc = keep_p && keep_b && prob && x && y && labels && idx ? OL_OK : ol__err(ctx, OL_ENOMEM, "out of memory");
    const float *probs = ol_model_probs(m);
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
                    prob[(size_t)(s + i) * K + k] += probs[(size_t)i * K + k] / nf;
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
    for (int i = 0; i < ps->nb; i++) { /* reset: running_mean 0, running_var 1 */
        float v = strstr(ps->b[i].name, "running_var") ? 1.0f : 0.0f;
        for (size_t j = 0; j < ps->b[i].numel; j++)
            ps->buffers[ps->b[i].offset + j] = v;
    }
    const float saved_mom = ol_model_bn_momentum(m);
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
        ol_model_set_bn_momentum(m, 1.0f / (float)(b + 1)); /* cumulative average */
        rc = ol_model_forward(ctx, m, x, n, 1);
    }
    ol_model_set_bn_momentum(m, saved_mom);
    ol_loader_free(l);
    return rc < 0 ? rc : OL_OK;
}
