/* The Adam family, as torch.optim 1.13 computes it (float32, same order of
 * operations, so trajectories agree to a few ulps):
 *
 *   Adam / AdamW   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  [amsgrad: vmax = max(vmax, v)]
 *                  p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
 *                  Adam: g += wd p (L2);  AdamW: p *= 1 - lr wd first.
 *                  eps_inside_sqrt (course slides): m / sqrt(v/(1-b2^t) + eps).
 *   NAdam          mu_t = b1 (1 - 0.5 * 0.96^(t psi)), mu_prod *= mu_t (a float32 value),
 *                  p -= lr (1-mu_t)/(1-mu_prod) g/d + lr mu_{t+1}/(1-mu_prod mu_{t+1}) m/d,
 *                  d = sqrt(v)/sqrt(1-b2^t) + eps (the foreach path; see docs/optimizers.md).
 *   RAdam          rho_t = rho_inf - 2 t b2^t/(1-b2^t); if rho_t > 5:
 *                  p -= lr m/(1-b1^t) * rect * sqrt(1-b2^t)/(sqrt(v) + eps), else p -= lr m/(1-b1^t). */
#include <math.h>

#include "optim/optim_internal.h"

enum { M = 0, V = 1, VMAX = 2 };

typedef struct {
    float b1, c1, b2, c2, eps, bc2s, bc2;
} adam_consts;

static adam_consts consts(const ol_optim *o, double t)
{
    const double b1 = o->mom, b2 = o->p.beta2;
    adam_consts k = {(float)b1, (float)(1.0 - b1), (float)b2, (float)(1.0 - b2), (float)o->p.eps,
                     (float)sqrt(1.0 - pow(b2, t)), (float)(1.0 - pow(b2, t))};
    return k;
}

/* One chunk of Adam/AdamW; amsgrad and inside are constants at each call site,
 * so the compiler emits four branch-free loops. */
static inline void adam_chunk(const ol__tcoef *tc, const adam_consts *k, float ss, float *restrict p,
                              const float *restrict gr, float *restrict m, float *restrict v,
                              float *restrict vmax, size_t lo, size_t hi, const int amsgrad, const int inside)
{
    const float gs = (float)tc->gs, gp = (float)tc->gp, ga = (float)tc->ga, shrink = (float)tc->shrink;
#pragma omp simd
    for (size_t i = lo; i < hi; i++) {
        float pi = p[i];
        float g = (gs * gr[i] + gp * pi) * ga;
        pi = pi * shrink;
        float mi = m[i] * k->b1 + k->c1 * g;
        float vi = v[i] * k->b2 + k->c2 * g * g;
        m[i] = mi;
        v[i] = vi;
        if (amsgrad) {
            vi = vmax[i] > vi ? vmax[i] : vi;
            vmax[i] = vi;
        }
        float denom = inside ? sqrtf(vi / k->bc2 + k->eps) : sqrtf(vi) / k->bc2s + k->eps;
        p[i] = pi - ss * (mi / denom);
    }
}

static int adam_step(ol_ctx *ctx, ol_optim *o, ol_paramset *ps, const ol_optim_hyper *h)
{
    (void)ctx;
    (void)h;
    const double t = (double)(o->t + 1);
    const adam_consts k = consts(o, t);
    const double bc1 = 1.0 - pow(o->mom, t);
    const int ams = o->p.amsgrad, inside = o->p.eps_inside_sqrt;
    float *mb = o->slot[M], *vb = o->slot[V], *xb = o->slot[VMAX];
#pragma omp parallel for schedule(static) if (o->par)
    for (int c = 0; c < o->nchunks; c++) {
        const ol__chunk ch = o->chunks[c];
        const ol__tcoef *tc = &o->tc[ch.tensor];
        const float ss = (float)(tc->lr / bc1);
        if (ams && inside)
            adam_chunk(tc, &k, ss, ps->params, ps->grads, mb, vb, xb, ch.begin, ch.end, 1, 1);
        else if (ams)
            adam_chunk(tc, &k, ss, ps->params, ps->grads, mb, vb, xb, ch.begin, ch.end, 1, 0);
        else if (inside)
            adam_chunk(tc, &k, ss, ps->params, ps->grads, mb, vb, xb, ch.begin, ch.end, 0, 1);
        else
            adam_chunk(tc, &k, ss, ps->params, ps->grads, mb, vb, xb, ch.begin, ch.end, 0, 0);
    }
    return OL_OK;
}

static int adam_slots(const ol_optim_params *op) { return op->amsgrad ? 7 : 3; }
static double adam_bytes(const ol_optim_params *op) { return op->amsgrad ? 36.0 : 28.0; }
static double moments_bytes(const ol_optim_params *op)
{
    (void)op;
    return 28.0; /* read p, g, m, v; write p, m, v */
}

static const ol__optim_impl adam_impl = {.type = OL_OPT_ADAM, .step = adam_step};

const ol_optim_algo ol__optim_adam = {
    .name = "adam",
    .summary = "Adam (torch.optim.Adam; L2 weight decay)",
    .n_slots = 3,
    .slot_names = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    .wd_style = OL_WD_COUPLED,
    .mom_kind = OL_MOM_BETA1,
    .options = OL_OPTION_DECOUPLED_WD | OL_OPTION_BETAS | OL_OPTION_EPS | OL_OPTION_AMSGRAD | OL_OPTION_EPS_INSIDE_SQRT,
    .slots_used = adam_slots,
    .bytes_per_param = adam_bytes,
    .impl = &adam_impl,
};

static void adamw_defaults(ol_optim_params *op)
{
    op->weight_decay = 1e-2;
    op->decoupled_wd = 1;
}

static const ol__optim_impl adamw_impl = {.type = OL_OPT_ADAMW, .step = adam_step};

const ol_optim_algo ol__optim_adamw = {
    .name = "adamw",
    .summary = "AdamW: Adam with decoupled weight decay (torch.optim.AdamW)",
    .n_slots = 3,
    .slot_names = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    .wd_style = OL_WD_DECOUPLED,
    .mom_kind = OL_MOM_BETA1,
    .options = OL_OPTION_BETAS | OL_OPTION_EPS | OL_OPTION_AMSGRAD | OL_OPTION_EPS_INSIDE_SQRT,
    .defaults = adamw_defaults,
    .slots_used = adam_slots,
    .bytes_per_param = adam_bytes,
    .impl = &adamw_impl,
};

/* ---- NAdam -------------------------------------------------------------- */

enum { MU_PRODUCT = 0 };

static void nadam_init(ol_optim *o) { o->scalar[MU_PRODUCT] = 1.0; }

static int nadam_step(ol_ctx *ctx, ol_optim *o, ol_paramset *ps, const ol_optim_hyper *h)
{
    (void)ctx;
    (void)h;
    const double t = (double)(o->t + 1), b1 = o->mom, psi = o->p.momentum_decay;
    const adam_consts k = consts(o, t);
    const double mu = b1 * (1.0 - 0.5 * pow(0.96, t * psi));
    const double mu_next = b1 * (1.0 - 0.5 * pow(0.96, (t + 1.0) * psi));
    /* PyTorch keeps mu_product in a float32 tensor */
    const double mp = (float)((float)o->scalar[MU_PRODUCT] * (float)mu);
    o->scalar[MU_PRODUCT] = mp;
    float *mb = o->slot[M], *vb = o->slot[V];
#pragma omp parallel for schedule(static) if (o->par)
    for (int c = 0; c < o->nchunks; c++) {
        const ol__chunk ch = o->chunks[c];
        const ol__tcoef *tc = &o->tc[ch.tensor];
        const float sg = (float)(tc->lr * (1.0 - mu) / (1.0 - mp));
        const float sm = (float)(tc->lr * mu_next / (1.0 - mp * mu_next));
        const float gs = (float)tc->gs, gp = (float)tc->gp, ga = (float)tc->ga, shrink = (float)tc->shrink;
        float *restrict p = ps->params, *restrict m = mb, *restrict v = vb;
        const float *restrict gr = ps->grads;
#pragma omp simd
        for (size_t i = ch.begin; i < ch.end; i++) {
            float pi = p[i];
            float g = (gs * gr[i] + gp * pi) * ga;
            pi = pi * shrink;
            float mi = m[i] * k.b1 + k.c1 * g;
            float vi = v[i] * k.b2 + k.c2 * g * g;
            m[i] = mi;
            v[i] = vi;
            float denom = sqrtf(vi) / k.bc2s + k.eps;
            pi = pi - sg * (g / denom);
            p[i] = pi - sm * (mi / denom);
        }
    }
    return OL_OK;
}

static void nadam_defaults(ol_optim_params *op)
{
    op->lr = 2e-3;
}

static const ol__optim_impl nadam_impl = {.type = OL_OPT_NADAM, .init = nadam_init, .step = nadam_step};

const ol_optim_algo ol__optim_nadam = {
    .name = "nadam",
    .summary = "NAdam: Adam with Nesterov momentum (torch.optim.NAdam)",
    .n_slots = 2,
    .slot_names = {"exp_avg", "exp_avg_sq"},
    .n_scalars = 1,
    .scalar_names = {"mu_product"},
    .wd_style = OL_WD_COUPLED,
    .mom_kind = OL_MOM_BETA1,
    .options = OL_OPTION_DECOUPLED_WD | OL_OPTION_BETAS | OL_OPTION_EPS | OL_OPTION_MOMENTUM_DECAY,
    .defaults = nadam_defaults,
    .bytes_per_param = moments_bytes,
    .impl = &nadam_impl,
};

/* ---- RAdam -------------------------------------------------------------- */

static int radam_step(ol_ctx *ctx, ol_optim *o, ol_paramset *ps, const ol_optim_hyper *h)
{
    (void)ctx;
    (void)h;
    const double t = (double)(o->t + 1), b1 = o->mom, b2 = o->p.beta2;
    const adam_consts k = consts(o, t);
    const double bc1 = 1.0 - pow(b1, t), bc2 = 1.0 - pow(b2, t);
    const double rho_inf = 2.0 / (1.0 - b2) - 1.0;
    const double rho_t = rho_inf - 2.0 * t * pow(b2, t) / bc2;
    const int rectified = rho_t > 5.0;
    const double rect =
        rectified ? sqrt((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)) : 0.0;
    const float fbc1 = (float)bc1, fsq = (float)sqrt(bc2), frect = (float)rect;
    float *mb = o->slot[M], *vb = o->slot[V];
#pragma omp parallel for schedule(static) if (o->par)
    for (int c = 0; c < o->nchunks; c++) {
        const ol__chunk ch = o->chunks[c];
        const ol__tcoef *tc = &o->tc[ch.tensor];
        const float lr = (float)tc->lr;
        const float gs = (float)tc->gs, gp = (float)tc->gp, ga = (float)tc->ga, shrink = (float)tc->shrink;
        float *restrict p = ps->params, *restrict m = mb, *restrict v = vb;
        const float *restrict gr = ps->grads;
#pragma omp simd
        for (size_t i = ch.begin; i < ch.end; i++) {
            float pi = p[i];
            float g = (gs * gr[i] + gp * pi) * ga;
            pi = pi * shrink;
            float mi = m[i] * k.b1 + k.c1 * g;
            float vi = v[i] * k.b2 + k.c2 * g * g;
            m[i] = mi;
            v[i] = vi;
            float step = (mi / fbc1) * lr;
            if (rectified) /* PyTorch: sqrt(bc2) / (sqrt(v) + eps) as reciprocal * scalar */
                step = step * ((1.0f / (sqrtf(vi) + k.eps)) * fsq) * frect;
            p[i] = pi - step;
        }
    }
    return OL_OK;
}

static const ol__optim_impl radam_impl = {.type = OL_OPT_RADAM, .step = radam_step};

const ol_optim_algo ol__optim_radam = {
    .name = "radam",
    .summary = "RAdam: rectified Adam (torch.optim.RAdam)",
    .n_slots = 2,
    .slot_names = {"exp_avg", "exp_avg_sq"},
    .wd_style = OL_WD_COUPLED,
    .mom_kind = OL_MOM_BETA1,
    .options = OL_OPTION_DECOUPLED_WD | OL_OPTION_BETAS | OL_OPTION_EPS,
    .bytes_per_param = moments_bytes,
    .impl = &radam_impl,
};
