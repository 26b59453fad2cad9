/* Schedule-Free SGD and AdamW (Defazio et al. 2024, "The Road Less
 * Scheduled"), as facebookresearch/schedule_free. Three sequences: z (the
 * base optimizer's iterate), x (the weighted average of z, used for
 * evaluation) and y = (1-b) z + b x (where gradients are taken). ps->params
 * holds y in train mode and x in eval mode; z lives in slot 0.
 *
 * Step k (0-based): sched = (k+1)/warmup_steps during warm-up, else 1;
 *   lr_k = lr * sched;  lr_max = max(lr_max, lr_k);  w = (k+1)^r * lr_max^weight_lr_power
 *   W += w;  c = w / W
 *   SGD:    gh = g + wd*y  (L2 at y)
 *   AdamW:  v = b2 v + (1-b2) g^2;  gh = g / (sqrt(v/(1-b2^(k+1))) + eps) + wd*y
 *   y = lerp(y, z, c) + lr_k (b (1-c) - 1) gh;   z -= lr_k gh
 * (b = momentum for SGD, beta1 for AdamW). Eval: x = lerp(y, z, 1 - 1/b);
 * train: y = lerp(x, z, 1 - b). The scheduled momentum of ol_optim_hyper is
 * ignored: b must stay fixed for the y <-> x maps to be inverse. */
#include <math.h>

#include "optim/optim_internal.h"

enum { Z = 0, V = 1 };
enum { WEIGHT_SUM = 0, LR_MAX = 1 };

static void sf_init(ol_optim *o)
{
    o->scalar[WEIGHT_SUM] = 0.0;
    o->scalar[LR_MAX] = -1.0;
}

static double sf_beta(const ol_optim *o) { return o->p.type == OL_OPT_SFSGD ? o->p.momentum : o->p.beta1; }

static int sf_step(ol_ctx *ctx, ol_optim *o, ol_paramset *ps, const ol_optim_hyper *h)
{
    (void)ctx;
    const ol_optim_params *op = &o->p;
    const double k = (double)o->t;
    const double sched = o->t < op->warmup_steps ? (k + 1.0) / (double)op->warmup_steps : 1.0;
    const double lr = h->lr * sched;
    const double lr_max = o->scalar[LR_MAX] = fmax(lr, o->scalar[LR_MAX]);
    const double w = pow(k + 1.0, op->r) * pow(lr_max, op->weight_lr_power);
    const double wsum = o->scalar[WEIGHT_SUM] += w;
    const double ck = wsum != 0.0 ? w / wsum : 0.0;
    const double beta = sf_beta(o);
    const int adam = op->type == OL_OPT_SFADAMW, first = o->t == 0;
    const float fck = (float)ck, b2 = (float)op->beta2, c2 = (float)(1.0 - op->beta2), eps = (float)op->eps;
    const float bc2 = (float)(1.0 - pow(op->beta2, k + 1.0));
    float *zb = o->slot[Z], *vb = o->slot[V];
#pragma omp parallel for schedule(static) if (o->par)
    for (int c = 0; c < o->nchunks; c++) {
        const ol__chunk ch = o->chunks[c];
        const ol__tcoef *tc = &o->tc[ch.tensor];
        const double lr_t = tc->lr * sched;
        const float flr = (float)lr_t, ycoef = (float)(lr_t * (beta * (1.0 - ck) - 1.0));
        const float gs = (float)tc->gs, gp = (float)tc->gp, ga = (float)tc->ga, wd = (float)tc->wd;
        float *restrict y = ps->params, *restrict z = zb, *restrict v = vb;
        const float *restrict gr = ps->grads;
        if (adam) {
#pragma omp simd
            for (size_t i = ch.begin; i < ch.end; i++) {
                float yi = y[i], zi = first ? yi : z[i];
                float g = (gs * gr[i] + gp * yi) * ga;
                float vi = v[i] * b2 + c2 * g * g;
                v[i] = vi;
                float gh = g / (sqrtf(vi / bc2) + eps) + wd * yi;
                y[i] = ol__lerp(yi, zi, fck) + ycoef * gh;
                z[i] = zi - flr * gh;
            }
        } else {
#pragma omp simd
            for (size_t i = ch.begin; i < ch.end; i++) {
                float yi = y[i], zi = first ? yi : z[i];
                float gh = (gs * gr[i] + gp * yi) * ga;
                y[i] = ol__lerp(yi, zi, fck) + ycoef * gh;
                z[i] = zi - flr * gh;
            }
        }
    }
    return OL_OK;
}

/* p = lerp(p, z, w) over all tensors; nothing to do before the first step. */
static void sf_lerp_all(ol_optim *o, ol_paramset *ps, double w)
{
    if (o->t == 0)
        return;
    const float fw = (float)w;
    const float *zb = o->slot[Z];
#pragma omp parallel for schedule(static) if (o->par)
    for (int c = 0; c < o->nchunks; c++) {
        float *restrict p = ps->params;
        const float *restrict z = zb;
#pragma omp simd
        for (size_t i = o->chunks[c].begin; i < o->chunks[c].end; i++)
            p[i] = ol__lerp(p[i], z[i], fw);
    }
}

static int sf_to_eval(ol_ctx *ctx, ol_optim *o, ol_paramset *ps)
{
    (void)ctx;
    sf_lerp_all(o, ps, 1.0 - 1.0 / sf_beta(o));
    return OL_OK;
}

static int sf_to_train(ol_ctx *ctx, ol_optim *o, ol_paramset *ps)
{
    (void)ctx;
    sf_lerp_all(o, ps, 1.0 - sf_beta(o));
    return OL_OK;
}

static int sf_validate(ol_ctx *ctx, const ol_optim_params *op)
{
    double b = op->type == OL_OPT_SFSGD ? op->momentum : op->beta1;
    if (!(b > 0.0 && b < 1.0))
        return ol__err(ctx, OL_ERANGE, "Schedule-Free %s must be in (0, 1), got %g",
                       op->type == OL_OPT_SFSGD ? "momentum" : "beta1", b);
    if (op->decoupled_wd && op->type == OL_OPT_SFSGD)
        return ol__err(ctx, OL_EINVAL, "Schedule-Free SGD takes its weight decay at y (no decoupled form)");
    return OL_OK;
}

static double sfsgd_bytes(const ol_optim_params *op)
{
    (void)op;
    return 20.0; /* read y, g, z; write y, z */
}
static double sfadamw_bytes(const ol_optim_params *op)
{
    (void)op;
    return 28.0; /* read y, g, z, v; write y, z, v */
}

static void sfsgd_defaults(ol_optim_params *op)
{
    op->lr = 1.0;
    op->momentum = 0.9;
}

static const ol__optim_impl sfsgd_impl = {.type = OL_OPT_SFSGD, .init = sf_init, .step = sf_step,
    .to_eval = sf_to_eval, .to_train = sf_to_train};

const ol_optim_algo ol__optim_sfsgd = {
    .name = "sfsgd",
    .summary = "Schedule-Free SGD (Defazio et al. 2024)",
    .aliases = {{"sgd-schedulefree", NULL}, {"schedulefree-sgd", NULL}},
    .n_slots = 1,
    .slot_names = {"z"},
    .n_scalars = 2,
    .scalar_names = {"weight_sum", "lr_max"},
    .wd_style = OL_WD_COUPLED,
    .options = OL_OPTION_MOMENTUM | OL_OPTION_SCHEDULE_FREE,
    .defaults = sfsgd_defaults,
    .validate = sf_validate,
    .bytes_per_param = sfsgd_bytes,
    .impl = &sfsgd_impl,
};

static void sfadamw_defaults(ol_optim_params *op)
{
    op->lr = 2.5e-3;
    op->decoupled_wd = 1;
}

static const ol__optim_impl sfadamw_impl = {.type = OL_OPT_SFADAMW, .init = sf_init, .step = sf_step,
    .to_eval = sf_to_eval, .to_train = sf_to_train};

const ol_optim_algo ol__optim_sfadamw = {
    .name = "sfadamw",
    .summary = "Schedule-Free AdamW (Defazio et al. 2024)",
    .aliases = {{"adamw-schedulefree", NULL}, {"schedulefree-adamw", NULL}},
    .n_slots = 2,
    .slot_names = {"z", "exp_avg_sq"},
    .n_scalars = 2,
    .scalar_names = {"weight_sum", "lr_max"},
    .wd_style = OL_WD_SELF,
    .options = OL_OPTION_BETAS | OL_OPTION_EPS | OL_OPTION_SCHEDULE_FREE,
    .defaults = sfadamw_defaults,
    .validate = sf_validate,
    .bytes_per_param = sfadamw_bytes,
    .impl = &sfadamw_impl,
};
