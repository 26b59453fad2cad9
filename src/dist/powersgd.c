/* PowerSGD gradient compression (include/optimlab/dist.h has the maths). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "dist/sync.h"
#include "nn/backend.h"

#define PSGD_STREAM 0x5053474451ULL /* random streams of the initial Q's */

typedef struct {
    int idx;         /* parameter tensor */
    int64_t n, m;    /* rows (O) and columns (I kh kw) */
    int r;
    size_t off;      /* of the tensor in the flat buffers */
    size_t p_off, q_off;
} cmat;

struct ol_powersgd {
    ol_comm *c;
    ol_powersgd_params p;
    size_t numel;
    int ntensors;
    unsigned char *is_c; /* per parameter tensor */
    cmat *cm;
    int ncm;
    int *unc; /* uncompressed tensors */
    int nunc;
    const ol_tensor_desc *t;
    size_t unc_total, p_total, q_total, dense;
    float *msg;  /* one all-reduce: [uncompressed tensors | all P's] */
    float *q[2]; /* committed Q's and this step's */
    float *qwork;
    float *e[2]; /* committed error and this step's */
    double *scr;
    int cur, have_q, pending;
};

ol_powersgd_params ol_powersgd_default_params(void)
{
    ol_powersgd_params p = {.rank = 1, .start_step = 0, .min_compression = 2.0, .error_feedback = 1, .warm_start = 1};
    return p;
}

int ol__psgd_orthogonalize(float *a, int64_t n, int r, double *scr)
{
    int zeros = 0;
    for (int j = 0; j < r; j++)
        for (int64_t i = 0; i < n; i++)
            scr[(size_t)j * n + i] = a[i * r + j];
    for (int j = 0; j < r; j++) {
        double *dj = scr + (size_t)j * n, before = 0.0, nrm = 0.0;
        for (int64_t i = 0; i < n; i++)
            before += dj[i] * dj[i];
        for (int k = 0; k < j; k++) {
            const double *dk = scr + (size_t)k * n;
            double dot = 0.0;
            for (int64_t i = 0; i < n; i++)
                dot += dk[i] * dj[i];
            for (int64_t i = 0; i < n; i++)
                dj[i] -= dot * dk[i];
        }
        for (int64_t i = 0; i < n; i++)
            nrm += dj[i] * dj[i];
        /* what is left of a column inside the span of the others is rounding
         * noise (float products): normalising it would invent a direction */
        if (nrm > 1e-10 * before && nrm > 0.0 && isfinite(nrm)) {
            const double inv = 1.0 / sqrt(nrm);
            for (int64_t i = 0; i < n; i++)
                dj[i] *= inv;
        } else {
            memset(dj, 0, (size_t)n * sizeof(double));
            zeros++;
        }
    }
    for (int j = 0; j < r; j++)
        for (int64_t i = 0; i < n; i++)
            a[i * r + j] = (float)scr[(size_t)j * n + i];
    return zeros;
}

void ol_powersgd_free(ol_powersgd *p)
{
    if (!p)
        return;
    free(p->is_c);
    free(p->cm);
    free(p->unc);
    ol__free(p->msg);
    for (int i = 0; i < 2; i++) {
        ol__free(p->q[i]);
        ol__free(p->e[i]);
    }
    ol__free(p->qwork);
    free(p->scr);
    free(p);
}

int ol_powersgd_create(ol_ctx *ctx, ol_comm *c, const ol_paramset *ps, const ol_powersgd_params *pp,
                       ol_powersgd **out)
{
    *out = NULL;
    if (pp->rank < 1 || pp->start_step < 0 || !(pp->min_compression >= 0.0))
        return ol__err(ctx, OL_EINVAL, "PowerSGD: rank %d, start step %lld, minimum compression %g", pp->rank,
                       (long long)pp->start_step, pp->min_compression);
    ol_powersgd *p = calloc(1, sizeof *p);
    if (!p)
        return ol__err(ctx, OL_ENOMEM, "out of memory");
    p->c = c;
    p->p = *pp;
    p->numel = ps->numel;
    p->ntensors = ps->n;
    p->t = ps->t;
    size_t nt = ps->n > 0 ? (size_t)ps->n : 1, scr = 1;
    p->is_c = calloc(nt, 1);
    p->cm = calloc(nt, sizeof *p->cm);
    p->unc = calloc(nt, sizeof *p->unc);
    int ok = p->is_c && p->cm && p->unc;
    for (int i = 0; ok && i < ps->n; i++) {
        const ol_tensor_desc *d = &ps->t[i];
        p->dense += d->numel;
        int64_t n = d->ndim >= 2 ? d->shape[0] : 1, m = n > 0 ? (int64_t)d->numel / n : 0;
        int64_t r = pp->rank < n ? pp->rank : n;
        r = r < m ? r : m;
        /* PyTorch's rule: worth it when the factors are min_compression times smaller */
        if (d->ndim >= 2 && r > 0 && (double)(n + m) * (double)r * pp->min_compression < (double)n * (double)m) {
            cmat *cm = &p->cm[p->ncm++];
            *cm = (cmat){i, n, m, (int)r, d->offset, p->p_total, p->q_total};
            p->p_total += (size_t)(n * r);
            p->q_total += (size_t)(m * r);
            p->is_c[i] = 1;
            size_t s = (size_t)((n > m ? n : m) * r);
            scr = s > scr ? s : scr;
        } else {
            p->unc[p->nunc++] = i;
            p->unc_total += d->numel;
        }
    }
    if (ok) {
        p->msg = ol__alloc((p->unc_total + p->p_total + 1) * sizeof(float));
        p->qwork = ol__alloc((p->q_total + 1) * sizeof(float));
        p->scr = malloc(scr * sizeof(double));
        ok = p->msg && p->qwork && p->scr;
        for (int i = 0; ok && i < 2; i++) {
            p->q[i] = ol__alloc((p->q_total + 1) * sizeof(float));
            p->e[i] = ol__alloc((ps->numel + 1) * sizeof(float)); /* zero: no error yet */
            ok = p->q[i] && p->e[i];
        }
    }
    if (!ok) {
        ol_powersgd_free(p);
        return ol__err(ctx, OL_ENOMEM, "out of memory for PowerSGD buffers");
    }
    *out = p;
    return OL_OK;
}

/* The starting Q's of this step, orthonormal: the last Q's (warm start) or
 * random ones, the same on every rank; a column that collapsed to zero (a
 * zero gradient) is drawn again so it cannot stay zero for ever. */
static void start_q(ol_powersgd *p, int64_t step)
{
    ol__rng rng;
    const int warm = p->p.warm_start && p->have_q;
    if (warm) {
        memcpy(p->qwork, p->q[p->cur], p->q_total * sizeof(float));
    } else {
        ol__rng_seed(&rng, p->p.seed, PSGD_STREAM, (uint64_t)step);
        for (size_t i = 0; i < p->q_total; i++)
            p->qwork[i] = (float)ol__rng_normal(&rng);
    }
    for (int k = 0; k < p->ncm; k++) {
        const cmat *cm = &p->cm[k];
        float *q = p->qwork + cm->q_off;
        for (int attempt = 0; attempt < 4 && ol__psgd_orthogonalize(q, cm->m, cm->r, p->scr) > 0; attempt++) {
            ol__rng_seed(&rng, p->p.seed, PSGD_STREAM + 1 + (uint64_t)attempt,
                         (uint64_t)step * (uint64_t)p->ntensors + (uint64_t)cm->idx);
            for (int j = 0; j < cm->r; j++) {
                int zero = 1;
                for (int64_t i = 0; i < cm->m && zero; i++)
                    zero = q[i * cm->r + j] == 0.0f;
                for (int64_t i = 0; zero && i < cm->m; i++)
                    q[i * cm->r + j] = (float)ol__rng_normal(&rng);
            }
        }
    }
}

int ol_powersgd_reduce(ol_ctx *ctx, ol_powersgd *p, ol_paramset *ps, int64_t step)
{
    if (step < p->p.start_step)
        return ol_comm_allreduce(ctx, p->c, ps->grads, ps->numel);
    float *g = ps->grads, *eo = p->e[p->cur], *en = p->e[1 - p->cur];
    const size_t numel = p->numel;
    const int ef = p->p.error_feedback;
    if (ef) { /* M_r = contribution + error; the error is zero outside compressed tensors */
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < numel; i++)
            g[i] += eo[i];
    }
    size_t o = 0;
    for (int k = 0; k < p->nunc; k++) {
        const ol_tensor_desc *d = &p->t[p->unc[k]];
        memcpy(p->msg + o, g + d->offset, d->numel * sizeof(float));
        o += d->numel;
    }
    start_q(p, step);
    float *pm = p->msg + p->unc_total, *qn = p->q[1 - p->cur];
    for (int k = 0; k < p->ncm; k++) { /* P = M Q */
        const cmat *cm = &p->cm[k];
        ol__sgemm(ctx, 0, 0, cm->n, cm->r, cm->m, 1.0f, g + cm->off, cm->m, p->qwork + cm->q_off, cm->r, 0.0f,
                  pm + cm->p_off, cm->r);
    }
    OL__TRY(ol_comm_allreduce(ctx, p->c, p->msg, p->unc_total + p->p_total));
    o = 0;
    for (int k = 0; k < p->nunc; k++) {
        const ol_tensor_desc *d = &p->t[p->unc[k]];
        memcpy(g + d->offset, p->msg + o, d->numel * sizeof(float));
        o += d->numel;
    }
    for (int k = 0; k < p->ncm; k++) { /* Q = M^T P^ */
        const cmat *cm = &p->cm[k];
        ol__psgd_orthogonalize(pm + cm->p_off, cm->n, cm->r, p->scr);
        ol__sgemm(ctx, 1, 0, cm->m, cm->r, cm->n, 1.0f, g + cm->off, cm->m, pm + cm->p_off, cm->r, 0.0f,
                  qn + cm->q_off, cm->r);
    }
    OL__TRY(ol_comm_allreduce(ctx, p->c, qn, p->q_total));
    const float invw = 1.0f / (float)ol_comm_size(p->c);
    for (int k = 0; k < p->ncm; k++) {
        const cmat *cm = &p->cm[k];
        float *a = en + cm->off, *gm = g + cm->off;
        /* the approximation P^ Q^T lands in the new error's place, then one pass
         * splits it into the summed gradient and this rank's residual */
        ol__sgemm(ctx, 0, 1, cm->n, cm->m, cm->r, 1.0f, pm + cm->p_off, cm->r, qn + cm->q_off, cm->r, 0.0f, a, cm->m);
        const size_t nm = (size_t)(cm->n * cm->m);
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < nm; i++) {
            float v = a[i];
            a[i] = ef ? gm[i] - v * invw : 0.0f;
            gm[i] = v;
        }
    }
    p->pending = 1;
    return OL_OK;
}

void ol_powersgd_commit(ol_powersgd *p)
{
    if (!p->pending)
        return;
    p->cur = 1 - p->cur;
    p->have_q = 1;
    p->pending = 0;
}

int ol_powersgd_compressed(const ol_powersgd *p, int i) { return i >= 0 && i < p->ntensors && p->is_c[i]; }

void ol_powersgd_sizes(const ol_powersgd *p, size_t *sent, size_t *dense)
{
    *sent = p->unc_total + p->p_total + p->q_total;
    *dense = p->dense;
}

const float *ol_powersgd_error(const ol_powersgd *p) { return p->e[p->cur]; }

void ol__powersgd_state(ol_powersgd *p, ol__psgd_state *s)
{
    s->q = p->q[p->cur];
    s->nq = p->q_total;
    s->err = p->e[p->cur];
    s->nerr = p->numel;
    s->have_q = &p->have_q;
}
