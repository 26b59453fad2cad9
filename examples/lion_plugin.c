/* The deck's Lion (Chen et al. 2023) written as a plugin, the same float
 * arithmetic as the built-in (src/optim/lion.c), so the two agree bit for bit:
 *   u = b1 m + (1-b1) g;  p = p (1 - lr wd) - lr sign(u);  m = b2 m + (1-b2) g
 *
 * Build: cc -shared -fPIC lion_plugin.c $(pkg-config --cflags --libs optimlab) -o lion_plugin.so
 * Run:   optimlab train --plugin ./lion_plugin.so --optimizer my-lion --lr 1e-4 ... */
#include <optimlab/optim_algo.h>

static int lion_step(ol_ctx *ctx, const ol_optim_step_args *a)
{
    (void)ctx;
    const float b1 = (float)a->mom, c1 = (float)(1.0 - a->mom); /* beta1, or a momentum schedule's value */
    const float b2 = (float)a->op->beta2, c2 = (float)(1.0 - a->op->beta2);
    float *mb = a->slot[0];
#pragma omp parallel for schedule(static) if (a->par)
    for (int c = 0; c < a->nchunks; c++) {
        const ol_optim_chunk ch = a->chunks[c];
        const ol_optim_tcoef *tc = &a->tc[ch.tensor];
        const float lr = (float)tc->lr, shrink = (float)tc->shrink;
        const float gs = (float)tc->gs, gp = (float)tc->gp, ga = (float)tc->ga;
        float *restrict p = a->params, *restrict m = mb;
        const float *restrict gr = a->grads;
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

static void lion_defaults(ol_optim_params *op)
{
    op->lr = 1e-4;
    op->beta2 = 0.99;
}

/* bench optimizer's accounting: read p, g, m; write p, m */
static double lion_bytes(const ol_optim_params *op)
{
    (void)op;
    return 20.0;
}

static const ol_optim_algo my_lion = {
    .name = "my-lion",
    .summary = "Lion as a plugin (bitwise the built-in lion)",
    .n_slots = 1,
    .slot_names = {"exp_avg"},
    .wd_style = OL_WD_DECOUPLED, /* the library sets tc->shrink = 1 - lr*wd */
    .mom_kind = OL_MOM_BETA1,
    .options = OL_OPTION_BETAS,
    .defaults = lion_defaults,
    .bytes_per_param = lion_bytes,
    .step = lion_step,
};

int optimlab_plugin_init(ol_ctx *ctx);
int optimlab_plugin_init(ol_ctx *ctx) { return ol_optim_register(ctx, &my_lion); }
