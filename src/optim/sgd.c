/* SGD with momentum, dampening and Nesterov, as torch.optim.SGD:
 *   g = grad (+ wd*p when coupled);  decoupled: p *= 1 - lr*wd
 *   buf = g at the first step, then buf = m*buf + (1-dampening)*g
 *   step = nesterov ? g + m*buf : buf;  p -= lr*step
 * dampening = momentum gives the EMA form buf = m*buf + (1-m)*g (after step 1). */
#include "optim/optim_internal.h"

/* One chunk of the momentum update. first and nesterov are loop-invariant:
 * each combination gets its own loop (no per-element select), so every loop is
 * a straight streaming kernel that vectorises (5 floats moved per element:
 * memory-bound). Same expressions as the single-loop form: bitwise identical
 * (ISO C mode keeps contraction off, so no FMA changes the rounding). */
static void sgd_mom_chunk(float *restrict p, float *restrict b, const float *restrict gr, size_t lo, size_t hi,
                          const ol__tcoef *tc, float m, float damp, int first, int nesterov)
{
    const float lr = (float)tc->lr, shrink = (float)tc->shrink;
    const float gs = (float)tc->gs, gp = (float)tc->gp, ga = (float)tc->ga;
    if (first && nesterov) {
#pragma omp simd
        for (size_t i = lo; i < hi; i++) {
            float g = (gs * gr[i] + gp * p[i]) * ga;
            b[i] = g;
            p[i] = p[i] * shrink - lr * (g + m * g);
        }
    } else if (first) {
#pragma omp simd
        for (size_t i = lo; i < hi; i++) {
            float g = (gs * gr[i] + gp * p[i]) * ga;
            b[i] = g;
            p[i] = p[i] * shrink - lr * g;
        }
    } else if (nesterov) {
#pragma omp simd
        for (size_t i = lo; i < hi; i++) {
            float g = (gs * gr[i] + gp * p[i]) * ga;
            float v = m * b[i] + damp * g;
            b[i] = v;
            p[i] = p[i] * shrink - lr * (g + m * v);
        }
    } else {
#pragma omp simd
        for (size_t i = lo; i < hi; i++) {
            float g = (gs * gr[i] + gp * p[i]) * ga;
            float v = m * b[i] + damp * g;
            b[i] = v;
            p[i] = p[i] * shrink - lr * v;
        }
    }
}

int ol__sgd_update(ol_ctx *ctx, ol_optim *o, ol_paramset *ps)
{
    const float m = (float)o->mom, damp = (float)(1.0 - o->p.dampening);
    const int nesterov = o->p.nesterov, first = o->t == 0, use_mom = o->mom != 0.0;
    float *buf = o->slot[0];
    if (use_mom && !buf)
        return ol__err(ctx, OL_ESTATE, "momentum %g scheduled, but the optimizer was created without momentum",
                       o->mom);
#pragma omp parallel for schedule(static) if (o->par)
    for (int c = 0; c < o->nchunks; c++) {
        const ol__chunk ch = o->chunks[c];
        const ol__tcoef *tc = &o->tc[ch.tensor];
        float *restrict p = ps->params;
        const float *restrict gr = ps->grads;
        if (use_mom) {
            sgd_mom_chunk(p, buf, gr, ch.begin, ch.end, tc, m, damp, first, nesterov);
        } else {
            const float lr = (float)tc->lr, shrink = (float)tc->shrink;
            const float gs = (float)tc->gs, gp = (float)tc->gp, ga = (float)tc->ga;
#pragma omp simd
            for (size_t i = ch.begin; i < ch.end; i++) {
                float g = (gs * gr[i] + gp * p[i]) * ga;
                p[i] = p[i] * shrink - lr * g;
            }
        }
    }
    return OL_OK;
}

static int sgd_step(ol_ctx *ctx, ol_optim *o, ol_paramset *ps, const ol_optim_hyper *h)
{
    (void)h;
    return ol__sgd_update(ctx, o, ps);
}

static int sgd_slots(const ol_optim_params *op) { return op->momentum > 0.0 ? 1 : 0; }
static double sgd_bytes(const ol_optim_params *op) { return op->momentum > 0.0 ? 20.0 : 12.0; }

static void sgd_defaults(ol_optim_params *op) { op->lr = 0.1; }
static void alias_momentum(ol_optim_params *op) { op->momentum = 0.9; }
static void alias_nesterov(ol_optim_params *op)
{
    op->momentum = 0.9;
    op->nesterov = 1;
}
static void alias_larc(ol_optim_params *op)
{
    op->momentum = 0.9;
    op->larc = 1;
}

static const ol__optim_impl sgd_impl = {.type = OL_OPT_SGD, .step = sgd_step};

const ol_optim_algo ol__optim_sgd = {
    .name = "sgd",
    .summary = "SGD with momentum, dampening and Nesterov (torch.optim.SGD)",
    .aliases = {{"momentum", alias_momentum}, {"nesterov", alias_nesterov}, {"larc", alias_larc}},
    .n_slots = 1,
    .slot_names = {"momentum_buffer"},
    .wd_style = OL_WD_COUPLED,
    .mom_kind = OL_MOM_MOMENTUM,
    .options = OL_OPTION_MOMENTUM | OL_OPTION_DAMPENING | OL_OPTION_NESTEROV | OL_OPTION_DECOUPLED_WD,
    .defaults = sgd_defaults,
    .slots_used = sgd_slots,
    .bytes_per_param = sgd_bytes,
    .impl = &sgd_impl,
};
