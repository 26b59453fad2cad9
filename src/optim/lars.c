/* LARS (You et al. 2017), as timm's Lars: per tensor
 *   tr = trust_coefficient * ||p|| / (||g|| + wd*||p|| + eps)    (1 if a norm is 0)
 *   trust_clip (LARC clipping): tr = min(tr/lr, 1)
 *   g' = (g + wd*p) * tr, then SGD momentum on g' (buf = g' at step 1), p -= lr*buf.
 * A tensor is adapted when its kind has adaptation and a nonzero weight decay,
 * or always_adapt is set; otherwise it takes plain SGD (with L2 if it decays).
 * One extra read pass (p and g) gives the norms, per-chunk partials combined
 * per tensor in fixed order. */
#include <math.h>

#include "optim/optim_internal.h"

static int lars_step(ol_ctx *ctx, ol_optim *o, ol_paramset *ps, const ol_optim_hyper *h)
{
    (void)h;
    const ol_optim_params *op = &o->p;
    int any = 0;
    for (int i = 0; i < ps->n; i++) {
        ol__tcoef *tc = &o->tc[i];
        tc->adapt = op->always_adapt || (op->adapt[ps->t[i].kind] && tc->wd != 0.0);
        tc->gp = tc->wd; /* maximize flips g only: the decay still shrinks p */
        any |= tc->adapt;
    }
    if (any) {
        double *nrm = o->tnorm;
        ol__optim_tensor_sumsq(o, ps->params, ps->grads, nrm);
        for (int i = 0; i < ps->n; i++) {
            ol__tcoef *tc = &o->tc[i];
            if (!tc->adapt)
                continue;
            double pn = sqrt(nrm[2 * i]), gn = sqrt(nrm[2 * i + 1]);
            double tr = 1.0;
            if (pn > 0.0 && gn > 0.0)
                tr = op->trust_coefficient * pn / (gn + pn * tc->wd + op->eps);
            if (op->trust_clip)
                tr = fmin(tr / tc->lr, 1.0);
            tc->ga = tr;
        }
    }
    return ol__sgd_update(ctx, o, ps);
}

static int lars_slots(const ol_optim_params *op) { return op->momentum > 0.0 ? 1 : 0; }
/* the norm pass (read p, g) runs when some tensor can be adapted */
static double lars_bytes(const ol_optim_params *op)
{
    return (op->weight_decay > 0.0 || op->always_adapt ? 8.0 : 0.0) + (op->momentum > 0.0 ? 20.0 : 12.0);
}

static void lars_defaults(ol_optim_params *op)
{
    op->lr = 1.0;
    op->momentum = 0.9;
}

static const ol__optim_impl lars_impl = {.type = OL_OPT_LARS, .step = lars_step};

const ol_optim_algo ol__optim_lars = {
    .name = "lars",
    .summary = "LARS: SGD momentum with a per-tensor trust ratio (timm Lars)",
    .n_slots = 1,
    .slot_names = {"momentum_buffer"},
    .wd_style = OL_WD_SELF,
    .mom_kind = OL_MOM_MOMENTUM,
    .options = OL_OPTION_MOMENTUM | OL_OPTION_DAMPENING | OL_OPTION_NESTEROV | OL_OPTION_EPS |
               OL_OPTION_TRUST_COEFFICIENT | OL_OPTION_TRUST_CLIP | OL_OPTION_NO_LARC,
    .defaults = lars_defaults,
    .slots_used = lars_slots,
    .bytes_per_param = lars_bytes,
    .impl = &lars_impl,
};
