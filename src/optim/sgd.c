/* SGD with momentum, dampening and Nesterov, as torch.optim.SGD:
 *   g = grad (+ wd*p when coupled);  decoupled: p *= 1 - lr*wd
 *   buf = g at the first step, then buf = m*buf + (1-dampening)*g
 *   step = nesterov ? g + m*buf : buf;  p -= lr*step */
#include "optim/optim_internal.h"

static int sgd_step(ol_ctx *ctx, ol_optim *o, ol_paramset *ps, const ol_optim_hyper *h)
{
    (void)ctx;
    const double mom = h->momentum >= 0.0 ? h->momentum : o->p.momentum;
    const float m = (float)mom, damp = (float)(1.0 - o->p.dampening);
    const int nesterov = o->p.nesterov, first = o->t == 0, use_mom = mom != 0.0;
    const int decoupled = o->p.decoupled_wd, maximize = o->p.maximize;
    float *buf = o->slot[0];
#pragma omp parallel for schedule(static)
    for (int c = 0; c < o->nchunks; c++) {
        const ol__chunk ch = o->chunks[c];
        const float lr = (float)ol__opt_lr(o, ps, ch.tensor, h->lr);
        const float wd = (float)ol__opt_wd(o, ps, ch.tensor);
        float *restrict p = ps->params, *restrict b = buf;
        const float *restrict gr = ps->grads;
        const float shrink = decoupled ? 1.0f - lr * wd : 1.0f, cwd = decoupled ? 0.0f : wd;
#pragma omp simd
        for (size_t i = ch.begin; i < ch.end; i++) {
            float g = maximize ? -gr[i] : gr[i];
            g += cwd * p[i];
            float step = g;
            if (use_mom) {
                float v = first ? g : m * b[i] + damp * g;
                b[i] = v;
                step = nesterov ? g + m * v : v;
            }
            p[i] = p[i] * shrink - lr * step;
        }
    }
    return OL_OK;
}

const ol__optim_vt ol__optim_sgd = {
    .type = OL_OPT_SGD,
    .name = "sgd",
    .n_slots = 1,
    .slot_names = {"momentum_buffer"},
    .step = sgd_step,
};
