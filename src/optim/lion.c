/* Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"),
 * as timm's Lion:
 *   p *= 1 - lr*wd;  p -= lr * sign(b1 m + (1-b1) g);  m = b2 m + (1-b2) g
 * Every coordinate moves by exactly lr (plus the decay): the update has the
 * magnitude of a sign, so lr is typically 3-10x smaller than AdamW's. */
#include "optim/optim_internal.h"

static int lion_step(ol_ctx *ctx, ol_optim *o, ol_paramset *ps, const ol_optim_hyper *h)
{
    (void)ctx;
    (void)h;
    const float b1 = (float)o->mom, c1 = (float)(1.0 - o->mom);
    const float b2 = (float)o->p.beta2, c2 = (float)(1.0 - o->p.beta2);
    float *mb = o->slot[0];
#pragma omp parallel for schedule(static) if (o->par)
    for (int c = 0; c < o->nchunks; c++) {
        const ol__chunk ch = o->chunks[c];
        const ol__tcoef *tc = &o->tc[ch.tensor];
        const float lr = (float)tc->lr, shrink = (float)tc->shrink;
        const float gs = (float)tc->gs, gp = (float)tc->gp, ga = (float)tc->ga;
        float *restrict p = ps->params, *restrict m = mb;
        const float *restrict gr = ps->grads;
#pragma omp simd
        for (size_t i = ch.begin; i < ch.end; i++) {
            float pi = p[i];
            float g = (gs * gr[i] + gp * pi) * ga;
            float mi = m[i];
            float u = mi * b1 + c1 * g;
            float sign = (float)((u > 0.0f) - (u < 0.0f));
            m[i] = mi * b2 + c2 * g;
            p[i] = pi * shrink - lr * sign;
        }
    }
    return OL_OK;
}

static double lion_bytes(const ol_optim_params *op)
{
    (void)op;
    return 20.0; /* read p, g, m; write p, m */
}

static void lion_defaults(ol_optim_params *op)
{
    op->lr = 1e-4;
    op->beta2 = 0.99;
    op->decoupled_wd = 1;
}

static const ol__optim_impl lion_impl = {.type = OL_OPT_LION, .step = lion_step};

const ol_optim_algo ol__optim_lion = {
    .name = "lion",
    .summary = "Lion: sign of an interpolated momentum (timm Lion)",
    .n_slots = 1,
    .slot_names = {"exp_avg"},
    .wd_style = OL_WD_DECOUPLED,
    .mom_kind = OL_MOM_BETA1,
    .options = OL_OPTION_BETAS,
    .defaults = lion_defaults,
    .bytes_per_param = lion_bytes,
    .impl = &lion_impl,
};
