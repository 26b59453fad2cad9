/* The deck's exponential-moving-average momentum as a user optimizer:
 *   m_1 = (1 - b) g;  m_t = b m_{t-1} + (1 - b) g_t;  p -= lr m_t
 * (torch's SGD momentum starts its buffer at g and does not damp it). The
 * buffer starts at zero, so the first update is already (1 - b) g. With
 * --opt-param bias_correction=1 the step divides by 1 - b^t, as Adam does.
 *
 * Build: cc -shared -fPIC ema_momentum.c $(pkg-config --cflags --libs optimlab) -o ema_momentum.so
 * Run:   optimlab train --plugin ./ema_momentum.so --optimizer ema-momentum --lr 0.1 ... */
#include <math.h>

#include <optimlab/optim_algo.h>

enum { BIAS_CORRECTION = 0 }; /* index into the hyperparameters below */

static int ema_step(ol_ctx *ctx, const ol_optim_step_args *a)
{
    (void)ctx;
    const float b = (float)a->mom, c = (float)(1.0 - a->mom);
    /* t counts completed steps: this is step t + 1 */
    const double bc = a->hparam[BIAS_CORRECTION] != 0.0 ? 1.0 - pow(a->mom, (double)(a->t + 1)) : 1.0;
    float *m = a->slot[0];
#pragma omp parallel for schedule(static) if (a->par)
    for (int k = 0; k < a->nchunks; k++) {
        const ol_optim_chunk ch = a->chunks[k];
        const ol_optim_tcoef *tc = &a->tc[ch.tensor]; /* lr, weight decay, maximize, LARC of this tensor */
        const float lr = (float)(tc->lr / bc), shrink = (float)tc->shrink;
        const float gs = (float)tc->gs, gp = (float)tc->gp, ga = (float)tc->ga;
        float *p = a->params;
        const float *gr = a->grads;
#pragma omp simd
        for (size_t i = ch.begin; i < ch.end; i++) {
            float g = (gs * gr[i] + gp * p[i]) * ga;
            float mi = b * m[i] + c * g;
            m[i] = mi;
            p[i] = p[i] * shrink - lr * mi;
        }
    }
    return OL_OK;
}

static void ema_defaults(ol_optim_params *op)
{
    op->lr = 0.1;
    op->momentum = 0.9;
}

static int ema_validate(ol_ctx *ctx, const ol_optim_params *op)
{
    if (!(op->momentum < 1.0))
        return ol_optim_error(ctx, OL_ERANGE, "ema-momentum: momentum must be < 1");
    return OL_OK;
}

/* bench optimizer's accounting: read p, g, m; write p, m */
static double ema_bytes(const ol_optim_params *op)
{
    (void)op;
    return 20.0;
}

static const ol_optim_algo ema_momentum = {
    .name = "ema-momentum",
    .summary = "momentum as an exponential moving average: m = b m + (1-b) g, p -= lr m",
    .n_slots = 1,
    .slot_names = {"ema_buffer"},
    .wd_style = OL_WD_COUPLED,     /* L2 through tc->gp; --decoupled-wd gives tc->shrink */
    .mom_kind = OL_MOM_MOMENTUM,   /* a one-cycle momentum schedule replaces b */
    .options = OL_OPTION_MOMENTUM | OL_OPTION_DECOUPLED_WD,
    .n_hparams = 1,
    .hparams = {{"bias_correction", 0.0, 0.0, 1.0, "1: divide the step by 1 - b^t"}},
    .defaults = ema_defaults,
    .validate = ema_validate,
    .bytes_per_param = ema_bytes,
    .step = ema_step,
};

int optimlab_plugin_init(ol_ctx *ctx);
int optimlab_plugin_init(ol_ctx *ctx) { return ol_optim_register(ctx, &ema_momentum); }
