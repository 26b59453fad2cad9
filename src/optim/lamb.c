/* LAMB (You et al. 2019), as timm's Lamb (and apex FusedLAMB, see
 * docs/optimizers.md for the differences):
 *   max_grad_norm > 0: g /= max(1, ||g_all|| / max_grad_norm)   (global norm, all tensors)
 *   m = b1 m + b3 g (b3 = 1-b1 with grad averaging, else 1);  v = b2 v + (1-b2) g^2
 *   u = (m/(1-b1^t)) / (sqrt(v)/sqrt(1-b2^t) + eps) + wd p
 *   tr = ||p|| / ||u|| per tensor (1 if a norm is 0), trust_clip: min(tr, 1)
 *   p -= lr * tr * u
 * decoupled_wd (timm decoupled_decay): p *= 1 - lr*wd first and u has no wd term.
 * A tensor is adapted when its kind has adaptation and a nonzero weight decay,
 * or always_adapt is set.
 *
 * Passes: the global gradient norm (read g, only with clipping); pass A reads
 * g, m, v, p, writes m and v and the per-chunk partial norms of u and p (and p
 * itself for tensors without adaptation); pass B recomputes u from m, v, p
 * (bitwise the same) and writes p. */
#include <math.h>

#include "optim/optim_internal.h"

enum { M = 0, V = 1 };

typedef struct {
    float b1, b3, b2, c2, eps, rbc1, rbc2s; /* reciprocals of the bias corrections */
    int averaging;
} lamb_consts;

/* One element: moments (m lerps towards g with grad averaging, as timm's
 * exp_avg.lerp_(grad, 1-b1)) and the unscaled update u. */
#define LAMB_ELEM(i, pi, u)                                                                                         \
    do {                                                                                                            \
        float g_ = (gs * gr[i]) * ga;                                                                               \
        float m_ = avg > 0.0f ? ol__lerp(m[i], g_, b3) : m[i] * b1 + b3 * g_;                                       \
        float v_ = v[i] * b2 + c2 * g_ * g_;                                                                        \
        m[i] = m_;                                                                                                  \
        v[i] = v_;                                                                                                  \
        u = (m_ * rbc1) / (sqrtf(v_) * rbc2s + eps) + wd * (pi);                                                    \
    } while (0)

/* The step's scalar constants in float, from the optimizer's step count. */
static lamb_consts lamb_consts_for(const ol_optim *o)
{
    const ol_optim_params *op = &o->p;
    const double t = (double)(o->t + 1), beta1 = o->mom, beta2 = op->beta2;
    lamb_consts k;
    k.b1 = (float)beta1;
    k.averaging = op->grad_averaging;
    k.b3 = op->grad_averaging ? (float)(1.0 - beta1) : 1.0f;
    k.b2 = (float)beta2;
    k.c2 = (float)(1.0 - beta2);
    k.eps = (float)op->eps;
    /* multiplying by the reciprocals (timm divides) leaves one division and one
     * root per element and pass, which keeps LAMB's two passes memory-bound */
    k.rbc1 = op->bias_correction ? (float)(1.0 / (1.0 - pow(beta1, t))) : 1.0f;
    k.rbc2s = op->bias_correction ? (float)(1.0 / sqrt(1.0 - pow(beta2, t))) : 1.0f;
    return k;
}

/* Per tensor: adapted or not, the global-norm clip factor, the decoupled
 * decay's shrink. */
static void lamb_prepare(ol_optim *o, ol_paramset *ps)
{
    const ol_optim_params *op = &o->p;
    double *nrm = o->tnorm;
    double clip = 1.0;
    if (op->max_grad_norm > 0.0) {
        ol__optim_tensor_sumsq(o, ps->grads, NULL, nrm);
        double ss = 0.0;
        for (int i = 0; i < ps->n; i++)
            ss += nrm[2 * i];
        clip = fmax(sqrt(ss) / op->max_grad_norm, 1.0);
    }
    for (int i = 0; i < ps->n; i++) {
        ol__tcoef *tc = &o->tc[i];
        tc->adapt = op->always_adapt || (op->adapt[ps->t[i].kind] && tc->wd != 0.0);
        tc->ga = 1.0 / clip;
        tc->shrink = op->decoupled_wd ? 1.0 - tc->lr * tc->wd : 1.0;
    }
}

/* Pass A: the moments, and per chunk the sums of squares of u and p into
 * o->cpart (adapted tensors), or p itself (the others). */
static void lamb_pass_a(ol_optim *o, ol_paramset *ps, const lamb_consts *kp)
{
    const lamb_consts k = *kp;
    float *mb = o->slot[M], *vb = o->slot[V];
    double *part = o->cpart;
    const int decoupled = o->p.decoupled_wd;
#pragma omp parallel for schedule(static) if (o->par)
    for (int c = 0; c < o->nchunks; c++) {
        const ol__chunk ch = o->chunks[c];
        const ol__tcoef *tc = &o->tc[ch.tensor];
        const float gs = (float)tc->gs, ga = (float)tc->ga, lr = (float)tc->lr, shrink = (float)tc->shrink;
        const float wd = decoupled ? 0.0f : (float)tc->wd;
        const int adapt = tc->adapt;
        const float avg = k.averaging ? 1.0f : 0.0f; /* a float test keeps the loop vectorisable */
        const float b1 = k.b1, b3 = k.b3, b2 = k.b2, c2 = k.c2, rbc1 = k.rbc1, rbc2s = k.rbc2s, eps = k.eps;
        float *restrict p = ps->params, *restrict m = mb, *restrict v = vb;
        const float *restrict gr = ps->grads;
        double su = 0.0, sp = 0.0;
        if (adapt) {
            float au[OL__OPT_LANES] = {0}, ap[OL__OPT_LANES] = {0}; /* float lanes, as ol__sumsq_lanes */
            size_t b = ch.begin;
            for (; b + OL__OPT_LANES <= ch.end; b += OL__OPT_LANES) {
#pragma omp simd
                for (int j = 0; j < OL__OPT_LANES; j++) {
                    const size_t i = b + (size_t)j;
                    float pi = p[i], u;
                    LAMB_ELEM(i, pi, u);
                    au[j] += u * u;
                    ap[j] += pi * pi;
                }
            }
            double tu = 0.0, tp = 0.0; /* the tail apart keeps the lanes in registers */
            for (; b < ch.end; b++) {
                float pi = p[b], u;
                LAMB_ELEM(b, pi, u);
                tu += (double)u * (double)u;
                tp += (double)pi * (double)pi;
            }
            for (int j = 0; j < OL__OPT_LANES; j++) {
                su += au[j];
                sp += ap[j];
            }
            su += tu;
            sp += tp;
        } else {
#pragma omp simd
            for (size_t i = ch.begin; i < ch.end; i++) {
                float pi = p[i], u;
                LAMB_ELEM(i, pi, u);
                p[i] = pi * shrink - lr * u;
            }
        }
        part[2 * c] = su;
        part[2 * c + 1] = sp;
    }
}

/* The chunks' partial norms summed per tensor in chunk order, then the trust
 * ratio of each adapted tensor. Returns whether any tensor is adapted. */
static int lamb_trust_ratios(ol_optim *o, const ol_paramset *ps)
{
    const ol_optim_params *op = &o->p;
    double *nrm = o->tnorm;
    const double *part = o->cpart;
    int any = 0;
    for (int i = 0; i < 2 * ps->n; i++)
        nrm[i] = 0.0;
    for (int c = 0; c < o->nchunks; c++) {
        nrm[2 * o->chunks[c].tensor] += part[2 * c];
        nrm[2 * o->chunks[c].tensor + 1] += part[2 * c + 1];
    }
    for (int i = 0; i < ps->n; i++) {
        ol__tcoef *tc = &o->tc[i];
        if (!tc->adapt)
            continue;
        any = 1;
        /* decoupled: timm takes the norm after p *= shrink */
        double un = sqrt(nrm[2 * i]), pn = sqrt(nrm[2 * i + 1]) * fabs(tc->shrink);
        double tr = (pn > 0.0 && un > 0.0) ? pn / un : 1.0;
        if (op->trust_clip)
            tr = fmin(tr, 1.0);
        tc->ratio = tr;
    }
    return any;
}

/* Pass B: p of the adapted tensors, u recomputed from m, v, p. */
static void lamb_pass_b(ol_optim *o, ol_paramset *ps, const lamb_consts *kp)
{
    const lamb_consts k = *kp;
    const float *mb = o->slot[M], *vb = o->slot[V];
    const int decoupled = o->p.decoupled_wd;
#pragma omp parallel for schedule(static) if (o->par)
    for (int c = 0; c < o->nchunks; c++) {
        const ol__chunk ch = o->chunks[c];
        const ol__tcoef *tc = &o->tc[ch.tensor];
        if (!tc->adapt)
            continue;
        const float lr = (float)tc->lr, shrink = (float)tc->shrink, tr = (float)tc->ratio;
        const float wd = decoupled ? 0.0f : (float)tc->wd;
        const float rbc1 = k.rbc1, rbc2s = k.rbc2s, eps = k.eps;
        float *restrict p = ps->params;
        const float *restrict m = mb, *restrict v = vb;
        /* the same expression as LAMB_ELEM, so u is bitwise the one normed in pass A */
#pragma omp simd
        for (size_t i = ch.begin; i < ch.end; i++) {
            float pi = p[i];
            float u = (m[i] * rbc1) / (sqrtf(v[i]) * rbc2s + eps) + wd * pi;
            p[i] = pi * shrink - lr * (u * tr);
        }
    }
}

static int lamb_step(ol_ctx *ctx, ol_optim *o, ol_paramset *ps, const ol_optim_hyper *h)
{
    (void)ctx;
    (void)h;
    const lamb_consts k = lamb_consts_for(o);
    lamb_prepare(o, ps);
    lamb_pass_a(o, ps, &k);
    if (lamb_trust_ratios(o, ps))
        lamb_pass_b(o, ps, &k);
    return OL_OK;
}

static double lamb_bytes(const ol_optim_params *op)
{
    /* [clip: read g] + pass A: read g, m, v, p, write m, v + pass B: read m, v, p, write p;
     * without adaptation pass A writes p and there is no pass B */
    const int adapt = op->weight_decay > 0.0 || op->always_adapt;
    return (op->max_grad_norm > 0.0 ? 4.0 : 0.0) + (adapt ? 40.0 : 28.0);
}

static void lamb_defaults(ol_optim_params *op)
{
    op->eps = 1e-6;
    op->weight_decay = 1e-2;
    op->max_grad_norm = 1.0;
}

/* apex FusedLAMB defaults (adam_w_mode=True: the decay goes into the update) */
static void alias_fusedlamb(ol_optim_params *op)
{
    op->eps = 1e-6;
    op->weight_decay = 0.01;
    op->max_grad_norm = 1.0;
    op->decoupled_wd = 0;
    op->trust_clip = 0;
}

static const ol__optim_impl lamb_impl = {.type = OL_OPT_LAMB, .step = lamb_step};

const ol_optim_algo ol__optim_lamb = {
    .name = "lamb",
    .summary = "LAMB: Adam with a per-tensor trust ratio (timm Lamb)",
    .aliases = {{"fusedlamb", alias_fusedlamb}},
    .n_slots = 2,
    .slot_names = {"exp_avg", "exp_avg_sq"},
    .wd_style = OL_WD_SELF,
    .mom_kind = OL_MOM_BETA1,
    .options = OL_OPTION_DECOUPLED_WD | OL_OPTION_BETAS | OL_OPTION_EPS | OL_OPTION_TRUST_CLIP | OL_OPTION_LAMB |
               OL_OPTION_NO_LARC,
    .defaults = lamb_defaults,
    .bytes_per_param = lamb_bytes,
    .impl = &lamb_impl,
};
