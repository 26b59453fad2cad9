/* AdaGrad, RMSprop and AdaDelta: per-coordinate scaling by accumulated squared
 * gradients, as torch.optim 1.13 (float32, same order of operations):
 *
 *   AdaGrad   clr = lr / (1 + (t-1) lr_decay);  s += g^2;  p -= clr g / (sqrt(s) + eps)
 *             s starts at initial_accumulator_value.
 *   RMSprop   v = a v + (1-a) g^2;  centered: gbar = a gbar + (1-a) g, d = sqrt(v - gbar^2) + eps,
 *             else d = sqrt(v) + eps;  momentum: buf = m buf + g/d, p -= lr buf;  else p -= lr g/d.
 *   AdaDelta  v = rho v + (1-rho) g^2;  delta = sqrt(u + eps)/sqrt(v + eps) g;
 *             u = rho u + (1-rho) delta^2;  p -= lr delta.
 * Weight decay is L2 (g += wd p) unless decoupled_wd; eps_inside_sqrt puts eps
 * under the root for AdaGrad and RMSprop (the course slides' form). */
#include <math.h>

#include "optim/optim_internal.h"

#define TC_FLOATS(tc)                                                                                               \
    const float gs = (float)(tc)->gs, gp = (float)(tc)->gp, ga = (float)(tc)->ga, shrink = (float)(tc)->shrink

static void adagrad_init(ol_optim *o)
{
    const float init = (float)o->p.initial_accumulator_value;
    float *s = o->slot[0];
    for (size_t i = 0; i < o->numel; i++)
        s[i] = init;
}

static int adagrad_step(ol_ctx *ctx, ol_optim *o, ol_paramset *ps, const ol_optim_hyper *h)
{
    (void)ctx;
    (void)h;
    const double t = (double)(o->t + 1);
    const double decay = 1.0 + (t - 1.0) * o->p.lr_decay;
    const float eps = (float)o->p.eps;
    const int inside = o->p.eps_inside_sqrt;
    float *sb = o->slot[0];
#pragma omp parallel for schedule(static) if (o->par)
    for (int c = 0; c < o->nchunks; c++) {
        const ol__chunk ch = o->chunks[c];
        const ol__tcoef *tc = &o->tc[ch.tensor];
        TC_FLOATS(tc);
        const float clr = (float)(tc->lr / decay);
        float *restrict p = ps->params, *restrict s = sb;
        const float *restrict gr = ps->grads;
#pragma omp simd
        for (size_t i = ch.begin; i < ch.end; i++) {
            float pi = p[i];
            float g = (gs * gr[i] + gp * pi) * ga;
            float si = s[i] + g * g;
            s[i] = si;
            float d = inside ? sqrtf(si + eps) : sqrtf(si) + eps;
            p[i] = pi * shrink - clr * (g / d);
        }
    }
    return OL_OK;
}

static double adagrad_bytes(const ol_optim_params *op)
{
    (void)op;
    return 20.0;
}

static void adagrad_defaults(ol_optim_params *op)
{
    op->lr = 1e-2;
    op->eps = 1e-10;
}

static const ol__optim_impl adagrad_impl = {.type = OL_OPT_ADAGRAD, .init = adagrad_init, .step = adagrad_step};

const ol_optim_algo ol__optim_adagrad = {
    .name = "adagrad",
    .summary = "AdaGrad (torch.optim.Adagrad)",
    .n_slots = 1,
    .slot_names = {"sum"},
    .wd_style = OL_WD_COUPLED,
    .options = OL_OPTION_DECOUPLED_WD | OL_OPTION_EPS | OL_OPTION_EPS_INSIDE_SQRT | OL_OPTION_LR_DECAY |
               OL_OPTION_INITIAL_ACCUMULATOR,
    .defaults = adagrad_defaults,
    .bytes_per_param = adagrad_bytes,
    .impl = &adagrad_impl,
};

/* ---- RMSprop ------------------------------------------------------------ */

enum { SQ = 0, BUF = 1, GAVG = 2 };

static inline void rmsprop_chunk(const ol__tcoef *tc, float alpha, float ca, float mom, float eps, float *restrict p,
                                 const float *restrict gr, float *restrict sq, float *restrict buf,
                                 float *restrict gavg, size_t lo, size_t hi, const int use_mom, const int centered,
                                 const int inside)
{
    TC_FLOATS(tc);
    const float lr = (float)tc->lr;
#pragma omp simd
    for (size_t i = lo; i < hi; i++) {
        float pi = p[i];
        float g = (gs * gr[i] + gp * pi) * ga;
        pi = pi * shrink;
        float v = sq[i] * alpha + ca * g * g;
        sq[i] = v;
        if (centered) {
            float a = gavg[i] * alpha + ca * g;
            gavg[i] = a;
            v = v - a * a;
        }
        float d = inside ? sqrtf(v + eps) : sqrtf(v) + eps;
        if (use_mom) {
            float b = buf[i] * mom + g / d;
            buf[i] = b;
            p[i] = pi - lr * b;
        } else {
            p[i] = pi - lr * (g / d);
        }
    }
}

static int rmsprop_step(ol_ctx *ctx, ol_optim *o, ol_paramset *ps, const ol_optim_hyper *h)
{
    (void)h;
    const int use_mom = o->mom > 0.0, centered = o->p.centered, inside = o->p.eps_inside_sqrt;
    if (use_mom && !o->slot[BUF])
        return ol__err(ctx, OL_ESTATE, "momentum %g scheduled, but the optimizer was created without momentum",
                       o->mom);
    /* torch passes alpha and 1-alpha computed in double */
    const float alpha = (float)o->p.alpha, ca = (float)(1.0 - o->p.alpha), mom = (float)o->mom;
    const float eps = (float)o->p.eps;
    float *sq = o->slot[SQ], *buf = o->slot[BUF], *gavg = o->slot[GAVG];
#pragma omp parallel for schedule(static) if (o->par)
    for (int c = 0; c < o->nchunks; c++) {
        const ol__chunk ch = o->chunks[c];
        const ol__tcoef *tc = &o->tc[ch.tensor];
        float *p = ps->params;
        const float *gr = ps->grads;
        /* eight specialised loops keep the inner loop branch-free */
#define RMS(m, ce, in) rmsprop_chunk(tc, alpha, ca, mom, eps, p, gr, sq, buf, gavg, ch.begin, ch.end, m, ce, in)
        switch (use_mom * 4 + centered * 2 + inside) {
        case 0: RMS(0, 0, 0); break;
        case 1: RMS(0, 0, 1); break;
        case 2: RMS(0, 1, 0); break;
        case 3: RMS(0, 1, 1); break;
        case 4: RMS(1, 0, 0); break;
        case 5: RMS(1, 0, 1); break;
        case 6: RMS(1, 1, 0); break;
        default: RMS(1, 1, 1); break;
        }
#undef RMS
    }
    return OL_OK;
}

static int rmsprop_slots(const ol_optim_params *op)
{
    return (1 << SQ) | (op->momentum > 0.0 ? 1 << BUF : 0) | (op->centered ? 1 << GAVG : 0);
}
static double rmsprop_bytes(const ol_optim_params *op)
{
    return 20.0 + (op->momentum > 0.0 ? 8.0 : 0.0) + (op->centered ? 8.0 : 0.0);
}

static void rmsprop_defaults(ol_optim_params *op)
{
    op->lr = 1e-2;
}

static const ol__optim_impl rmsprop_impl = {.type = OL_OPT_RMSPROP, .step = rmsprop_step};

const ol_optim_algo ol__optim_rmsprop = {
    .name = "rmsprop",
    .summary = "RMSprop, optionally centered and with momentum (torch.optim.RMSprop)",
    .n_slots = 3,
    .slot_names = {"square_avg", "momentum_buffer", "grad_avg"},
    .wd_style = OL_WD_COUPLED,
    .mom_kind = OL_MOM_MOMENTUM,
    .options = OL_OPTION_MOMENTUM | OL_OPTION_DECOUPLED_WD | OL_OPTION_EPS | OL_OPTION_EPS_INSIDE_SQRT |
               OL_OPTION_ALPHA | OL_OPTION_CENTERED,
    .defaults = rmsprop_defaults,
    .slots_used = rmsprop_slots,
    .bytes_per_param = rmsprop_bytes,
    .impl = &rmsprop_impl,
};

/* ---- AdaDelta ----------------------------------------------------------- */

static int adadelta_step(ol_ctx *ctx, ol_optim *o, ol_paramset *ps, const ol_optim_hyper *h)
{
    (void)ctx;
    (void)h;
    const float rho = (float)o->p.rho, crho = (float)(1.0 - o->p.rho), eps = (float)o->p.eps;
    float *sb = o->slot[0], *ub = o->slot[1];
#pragma omp parallel for schedule(static) if (o->par)
    for (int c = 0; c < o->nchunks; c++) {
        const ol__chunk ch = o->chunks[c];
        const ol__tcoef *tc = &o->tc[ch.tensor];
        TC_FLOATS(tc);
        const float lr = (float)tc->lr;
        float *restrict p = ps->params, *restrict s = sb, *restrict u = ub;
        const float *restrict gr = ps->grads;
#pragma omp simd
        for (size_t i = ch.begin; i < ch.end; i++) {
            float pi = p[i];
            float g = (gs * gr[i] + gp * pi) * ga;
            float v = s[i] * rho + crho * g * g;
            s[i] = v;
            float delta = sqrtf(u[i] + eps) / sqrtf(v + eps) * g;
            u[i] = u[i] * rho + crho * delta * delta;
            p[i] = pi * shrink - lr * delta;
        }
    }
    return OL_OK;
}

static double adadelta_bytes(const ol_optim_params *op)
{
    (void)op;
    return 28.0;
}

static void adadelta_defaults(ol_optim_params *op)
{
    op->lr = 1.0;
    op->eps = 1e-6;
}

static const ol__optim_impl adadelta_impl = {.type = OL_OPT_ADADELTA, .step = adadelta_step};

const ol_optim_algo ol__optim_adadelta = {
    .name = "adadelta",
    .summary = "AdaDelta (torch.optim.Adadelta)",
    .n_slots = 2,
    .slot_names = {"square_avg", "acc_delta"},
    .wd_style = OL_WD_COUPLED,
    .options = OL_OPTION_DECOUPLED_WD | OL_OPTION_EPS | OL_OPTION_RHO,
    .defaults = adadelta_defaults,
    .bytes_per_param = adadelta_bytes,
    .impl = &adadelta_impl,
};
