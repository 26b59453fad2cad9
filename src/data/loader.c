/* Dataset utilities and the batch loader: deterministic shuffling, per-sample
 * augmentation keyed by (seed, epoch, index), background prefetch. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "core/rng.h"
#include "optimlab/data.h"

int ol_dataset_truncate(ol_ctx *ctx, ol_dataset *d, int64_t n)
{
    if (n <= 0)
        return ol__err(ctx, OL_EINVAL, "subset size must be > 0, got %lld", (long long)n);
    if (n < d->n)
        d->n = n; /* arrays keep their allocation */
    return OL_OK;
}

int ol_dataset_split(ol_ctx *ctx, ol_dataset *d, double val_fraction, uint64_t seed, ol_dataset *val)
{
    memset(val, 0, sizeof *val);
    if (d->tokens) /* a random split of windows would leak text between the sets */
        return ol__err(ctx, OL_EINVAL, "a token stream is split into training and validation text when loaded");
    if (!(val_fraction > 0.0 && val_fraction < 1.0))
        return ol__err(ctx, OL_ERANGE, "validation fraction must be in (0, 1), got %g", val_fraction);
    int64_t nv = (int64_t)(val_fraction * (double)d->n + 0.5);
    if (nv < 1 || nv >= d->n)
        return ol__err(ctx, OL_ERANGE, "validation split of %g leaves an empty set (%lld samples)", val_fraction,
                       (long long)d->n);
    size_t per = (size_t)d->c * d->h * d->w;
    uint8_t *mark = calloc((size_t)d->n, 1);
    int64_t *perm = malloc((size_t)d->n * sizeof(int64_t));
    val->images = malloc((size_t)nv * per);
    val->labels = malloc((size_t)nv * sizeof(int32_t));
    if (!mark || !perm || !val->images || !val->labels) {
        free(mark);
        free(perm);
        ol_dataset_free(val);
        return ol__err(ctx, OL_ENOMEM, "out of memory splitting the dataset");
    }
    ol__rng r;
    ol__rng_seed(&r, seed, OL__RNG_SPLIT, 0);
    for (int64_t i = 0; i < d->n; i++)
        perm[i] = i;
    for (int64_t i = d->n - 1; i > 0; i--) {
        int64_t j = (int64_t)(ol__rng_uniform(&r) * (double)(i + 1));
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int64_t i = 0; i < nv; i++)
        mark[perm[i]] = 1;
    int64_t kv = 0, kt = 0;
    for (int64_t i = 0; i < d->n; i++) {
        if (mark[i]) {
            memcpy(val->images + (size_t)kv * per, d->images + (size_t)i * per, per);
            val->labels[kv++] = d->labels[i];
        } else {
            if (kt != i) {
                memmove(d->images + (size_t)kt * per, d->images + (size_t)i * per, per);
                d->labels[kt] = d->labels[i];
            }
            kt++;
        }
    }
    val->n = nv;
    val->c = d->c;
    val->h = d->h;
    val->w = d->w;
    val->num_classes = d->num_classes;
    snprintf(val->name, sizeof val->name, "%.27s-val", d->name);
    d->n = kt;
    ol_dataset_copy_stats(val, d);
    free(mark);
    free(perm);
    return OL_OK;
}

void ol_dataset_compute_stats(const ol_dataset *d, float *mean, float *std)
{
    if (d->tokens) { /* token ids are not normalised */
        mean[0] = 0.0f;
        std[0] = 1.0f;
        return;
    }
    size_t hw = (size_t)d->h * d->w;
    for (int c = 0; c < d->c; c++) {
        double s = 0.0, ss = 0.0;
        for (int64_t i = 0; i < d->n; i++) {
            const uint8_t *p = d->images + ((size_t)i * d->c + c) * hw;
            uint64_t a = 0, aa = 0;
            for (size_t j = 0; j < hw; j++) {
                a += p[j];
                aa += (uint64_t)p[j] * p[j];
            }
            s += (double)a;
            ss += (double)aa;
        }
        double cnt = (double)d->n * (double)hw * 255.0;
        double mu = s / cnt;
        double var = ss / (cnt * 255.0) - mu * mu;
        mean[c] = (float)mu;
        std[c] = (float)(var > 1e-12 ? __builtin_sqrt(var) : 1.0);
    }
}

void ol_dataset_copy_stats(ol_dataset *dst, const ol_dataset *src)
{
    memcpy(dst->mean, src->mean, sizeof dst->mean);
    memcpy(dst->std, src->std, sizeof dst->std);
}

static void fill_one(const ol_dataset *d, int64_t idx, const ol_augment *aug, uint64_t seed, int64_t epoch, float *x)
{
    const int C = d->c, H = d->h, W = d->w;
    const uint8_t *img = d->images + (size_t)idx * C * H * W;
    int dy = 0, dx = 0, flip = 0;
    if (aug && (aug->crop_pad > 0 || aug->hflip)) {
        ol__rng r;
        ol__rng_seed(&r, seed, OL__RNG_AUGMENT, ol__mix64((uint64_t)epoch) ^ (uint64_t)idx);
        if (aug->crop_pad > 0) {
            dy = (int)ol__rng_below(&r, (uint32_t)(2 * aug->crop_pad + 1)) - aug->crop_pad;
            dx = (int)ol__rng_below(&r, (uint32_t)(2 * aug->crop_pad + 1)) - aug->crop_pad;
        }
        if (aug->hflip)
            flip = (int)(ol__rng_u64(&r) >> 63);
    }
    for (int c = 0; c < C; c++) {
        const float scale = 1.0f / (255.0f * d->std[c]), shift = -d->mean[c] / d->std[c];
        const uint8_t *src = img + (size_t)c * H * W;
        float *dst = x + (size_t)c * H * W;
        if (!dy && !dx && !flip) {
            for (int i = 0; i < H * W; i++)
                dst[i] = (float)src[i] * scale + shift;
            continue;
        }
        /* crop window offset by (dy, dx) into the zero-padded image */
        for (int h = 0; h < H; h++) {
            int sh = h + dy;
            for (int w = 0; w < W; w++) {
                int sw = (flip ? W - 1 - w : w) + dx;
                uint8_t v = (sh >= 0 && sh < H && sw >= 0 && sw < W) ? src[sh * W + sw] : 0;
                dst[h * W + w] = (float)v * scale + shift;
            }
        }
    }
}

void ol_dataset_fill(const ol_dataset *d, const int64_t *idx, int n, const ol_augment *aug, uint64_t seed,
                     int64_t epoch, float *x, int32_t *y)
{
    if (d->tokens) {
        const int T = d->seq_len;
        for (int i = 0; i < n; i++) {
            const uint16_t *t = d->tokens + (size_t)idx[i] * T;
            for (int j = 0; j < T; j++) {
                x[(size_t)i * T + j] = (float)t[j];
                y[(size_t)i * T + j] = t[j + 1];
            }
        }
        return;
    }
    const size_t per = (size_t)d->c * d->h * d->w;
    for (int i = 0; i < n; i++) {
        fill_one(d, idx[i], aug, seed, epoch, x + (size_t)i * per);
        y[i] = d->labels[idx[i]];
    }
}

/* ---- loader --------------------------------------------------------------- */

typedef struct {
    float *x;
    int32_t *y;
    int64_t epoch, pos;
    int n;      /* samples in the global batch, -1 when empty */
    int lo, hi; /* the part of it held here */
} ol__batchbuf;

struct ol_loader {
    const ol_dataset *d;
    ol_loader_params p;
    int64_t *perm;
    int64_t epoch, pos;
    ol__batchbuf buf[2];
    int cur; /* buffer handed out last */
    /* prefetch worker */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int have_thread, quit, job_pending, job_done;
    int job_buf, job_n, job_lo, job_hi;
    int64_t job_epoch, job_pos;
};

static void fill_buf(struct ol_loader *l, ol__batchbuf *b, int64_t epoch, int64_t pos, int n, int lo, int hi)
{
    ol_dataset_fill(l->d, l->perm + pos + lo, hi - lo, &l->p.aug, l->p.seed, epoch, b->x, b->y);
    b->epoch = epoch;
    b->pos = pos;
    b->n = n;
    b->lo = lo;
    b->hi = hi;
}

static void *worker(void *arg)
{
    struct ol_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->quit && !l->job_pending)
            pthread_cond_wait(&l->cv, &l->mu);
        if (l->quit)
            break;
        int b = l->job_buf, n = l->job_n, lo = l->job_lo, hi = l->job_hi;
        int64_t e = l->job_epoch, pos = l->job_pos;
        pthread_mutex_unlock(&l->mu);
        fill_buf(l, &l->buf[b], e, pos, n, lo, hi);
        pthread_mutex_lock(&l->mu);
        l->job_pending = 0;
        l->job_done = 1;
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static void wait_job(struct ol_loader *l)
{
    if (!l->have_thread)
        return;
    pthread_mutex_lock(&l->mu);
    while (l->job_pending)
        pthread_cond_wait(&l->cv, &l->mu);
    pthread_mutex_unlock(&l->mu);
}

int ol_loader_create(ol_ctx *ctx, const ol_dataset *d, const ol_loader_params *lp, ol_loader **out)
{
    *out = NULL;
    if (lp->max_batch <= 0)
        return ol__err(ctx, OL_EINVAL, "loader: batch size must be > 0, got %d", lp->max_batch);
    if (d->n <= 0)
        return ol__err(ctx, OL_EINVAL, "loader: the dataset is empty");
    if (d->tokens && (lp->aug.crop_pad || lp->aug.hflip))
        return ol__err(ctx, OL_EINVAL, "image augmentation does not apply to a token stream");
    if (lp->aug.crop_pad < 0 || lp->aug.crop_pad > d->h || lp->aug.crop_pad > d->w)
        return ol__err(ctx, OL_ERANGE, "random-crop padding must be in [0, %d], got %d", d->h, lp->aug.crop_pad);
    struct ol_loader *l = calloc(1, sizeof *l);
    if (!l)
        return ol__err(ctx, OL_ENOMEM, "out of memory");
    l->d = d;
    l->p = *lp;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    if (l->p.max_batch > d->n)
        l->p.max_batch = (int)d->n; /* a batch never holds more than the data set */
    size_t per = (size_t)d->c * d->h * d->w;
    l->perm = malloc((size_t)d->n * sizeof(int64_t));
    int ok = l->perm != NULL;
    for (int b = 0; b < 2 && ok; b++) {
        l->buf[b].x = ol__alloc((size_t)l->p.max_batch * per * sizeof(float));
        l->buf[b].y = ol__alloc((size_t)l->p.max_batch * ol_dataset_outputs_per_sample(d) * sizeof(int32_t));
        l->buf[b].n = -1;
        ok = l->buf[b].x && l->buf[b].y;
    }
    if (!ok) {
        ol_loader_free(l);
        return ol__err(ctx, OL_ENOMEM, "out of memory for batch buffers");
    }
    if (lp->prefetch && pthread_create(&l->thread, NULL, worker, l) == 0)
        l->have_thread = 1;
    l->epoch = -1;
    *out = l;
    return OL_OK;
}

void ol_loader_free(ol_loader *l)
{
    if (!l)
        return;
    if (l->have_thread) {
        pthread_mutex_lock(&l->mu);
        l->quit = 1;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
    }
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    for (int b = 0; b < 2; b++) {
        ol__free(l->buf[b].x);
        ol__free(l->buf[b].y);
    }
    free(l->perm);
    free(l);
}

int ol_loader_start_epoch(ol_ctx *ctx, ol_loader *l, int64_t epoch, int64_t pos)
{
    if (epoch < 0 || pos < 0 || pos > l->d->n)
        return ol__err(ctx, OL_ERANGE, "loader: invalid epoch %lld / position %lld", (long long)epoch, (long long)pos);
    wait_job(l);
    const int64_t n = l->d->n;
    for (int64_t i = 0; i < n; i++)
        l->perm[i] = i;
    if (l->p.shuffle) {
        ol__rng r;
        ol__rng_seed(&r, l->p.seed, OL__RNG_SHUFFLE, (uint64_t)epoch);
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)ol__rng_below(&r, (uint32_t)(i + 1));
            int64_t t = l->perm[i];
            l->perm[i] = l->perm[j];
            l->perm[j] = t;
        }
    }
    l->epoch = epoch;
    l->pos = pos;
    l->buf[0].n = l->buf[1].n = -1;
    return OL_OK;
}

/* part [n*rank/size, n*(rank+1)/size) of a global batch of n */
static void shard(int n, int rank, int size, int *lo, int *hi)
{
    *lo = (int)((int64_t)n * rank / size);
    *hi = (int)((int64_t)n * (rank + 1) / size);
}

int ol_loader_next_shard(ol_ctx *ctx, ol_loader *l, int batch, int rank, int size, const float **x, const int32_t **y,
                         int *shard_lo, int *shard_n)
{
    if (batch <= 0 || (batch > l->p.max_batch && l->p.max_batch < l->d->n)) /* larger than the data: the data */
        return ol__err(ctx, OL_ERANGE, "loader: batch of %d outside 1..%d", batch, l->p.max_batch);
    if (size < 1 || rank < 0 || rank >= size)
        return ol__err(ctx, OL_EINVAL, "loader: shard %d of %d", rank, size);
    if (l->epoch < 0)
        return ol__err(ctx, OL_ESTATE, "loader: no epoch started");
    int64_t left = l->d->n - l->pos;
    int n = left < batch ? (int)left : batch;
    if (n <= 0 || (l->p.drop_last && n < batch))
        return 0;
    int lo, hi;
    shard(n, rank, size, &lo, &hi);
    wait_job(l);
    int nb = 1 - l->cur;
    ol__batchbuf *b = &l->buf[nb];
    if (!(b->n == n && b->epoch == l->epoch && b->pos == l->pos && b->lo == lo && b->hi == hi))
        fill_buf(l, b, l->epoch, l->pos, n, lo, hi);
    l->cur = nb;
    l->pos += n;
    *x = b->x;
    *y = b->y;
    if (shard_lo)
        *shard_lo = lo;
    if (shard_n)
        *shard_n = hi - lo;
    /* prefetch the next batch of the same size into the other buffer */
    int64_t left2 = l->d->n - l->pos;
    int n2 = left2 < batch ? (int)left2 : batch;
    if (l->have_thread && n2 > 0 && !(l->p.drop_last && n2 < batch)) {
        int lo2, hi2;
        shard(n2, rank, size, &lo2, &hi2);
        pthread_mutex_lock(&l->mu);
        l->job_buf = 1 - nb;
        l->job_n = n2;
        l->job_lo = lo2;
        l->job_hi = hi2;
        l->job_epoch = l->epoch;
        l->job_pos = l->pos;
        l->job_pending = 1;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
    }
    return n;
}

int ol_loader_next(ol_ctx *ctx, ol_loader *l, int batch, const float **x, const int32_t **y)
{
    return ol_loader_next_shard(ctx, l, batch, 0, 1, x, y, NULL, NULL);
}

int64_t ol_loader_position(const ol_loader *l) { return l->pos; }

int64_t ol_loader_batches_per_epoch(const ol_loader *l, int batch)
{
    int64_t n = l->d->n;
    return l->p.drop_last ? n / batch : (n + batch - 1) / batch;
}
