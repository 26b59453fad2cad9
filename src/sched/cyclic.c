/* Cyclical schedules of Smith, with the momentum cycled against the lr:
 * CyclicLR (2017) and OneCycleLR (2018). The arithmetic follows PyTorch's
 * get_lr operation by operation, so the values match it to the last bit. */
#include <math.h>

#include "sched/sched_internal.h"

#define MAX_LR(help, req) {"max-lr", OL_SOPT_NUMBER, OL__SOPT(max_lr), 0.0, 1e6, "", "LR", help, NULL, NULL, req}
#define NO_CYCLE_MOMENTUM                                                                                          \
    {"no-cycle-momentum", OL_SOPT_NOT_FLAG, OL__SOPT(cycle_momentum), 0, 0, "0", NULL,                             \
     "keep momentum (Adam beta1) fixed instead of cycling it against the lr", NULL, NULL, 0}
#define BASE_MOMENTUM(help)                                                                                        \
    {"base-momentum", OL_SOPT_NUMBER, OL__SOPT(base_momentum), 0.0, 1.0, "", "M", help, NULL, NULL, 0}
#define MAX_MOMENTUM(help)                                                                                         \
    {"max-momentum", OL_SOPT_NUMBER, OL__SOPT(max_momentum), 0.0, 1.0, "", "M", help, NULL, NULL, 0}

static int momentum_validate(ol_ctx *ctx, const ol_sched_params *s)
{
    if (s->cycle_momentum && !(s->base_momentum >= 0.0 && s->base_momentum <= s->max_momentum && s->max_momentum < 1.0))
        return ol__err(ctx, OL_ERANGE, "momentum cycling needs 0 <= base momentum <= max momentum < 1 (%g, %g)",
                       s->base_momentum, s->max_momentum);
    return OL_OK;
}

/* ---- cyclic (torch.optim.lr_scheduler.CyclicLR.get_lr) ------------------ */

static double cyclic_value(const ol_sched_params *s, int64_t u, double lo, double hi, int momentum)
{
    const double up = (double)s->step_size_up;
    const double down = s->step_size_down > 0 ? (double)s->step_size_down : up;
    const double total_size = up + down;
    const double step_ratio = up / total_size;
    const double cycle = floor(1.0 + (double)u / total_size);
    const double x = 1.0 + (double)u / total_size - cycle;
    const double scale_factor = x <= step_ratio ? x / step_ratio : (x - 1.0) / (step_ratio - 1.0);
    double scale;
    switch (s->cyclic_mode) {
    case OL_CYCLIC_TRIANGULAR2: scale = 1.0 / pow(2.0, cycle - 1.0); break;
    case OL_CYCLIC_EXP_RANGE: scale = pow(s->cyclic_gamma, (double)u); break; /* per iteration */
    default: scale = 1.0; break;
    }
    double base_height = (hi - lo) * scale_factor;
    return momentum ? hi - base_height * scale : lo + base_height * scale;
}

static double cyclic_lr(const ol_sched_params *s, int64_t u, int64_t length)
{
    (void)length;
    return cyclic_value(s, u, s->base_lr, s->max_lr, 0);
}

static double cyclic_momentum(const ol_sched_params *s, int64_t u, int64_t length)
{
    (void)length;
    return cyclic_value(s, u, s->base_momentum, s->max_momentum, 1);
}

static void cyclic_defaults(ol_sched_params *s)
{
    s->cycle_momentum = 1;
    s->base_momentum = 0.8;
    s->max_momentum = 0.9;
}

static int cyclic_validate(ol_ctx *ctx, const ol_sched_params *s)
{
    if (!(s->max_lr >= s->base_lr && isfinite(s->max_lr)))
        return ol__err(ctx, OL_ERANGE, "cyclic: max lr %g must be >= the base lr %g", s->max_lr, s->base_lr);
    if (s->step_size_up < 1 || s->step_size_down < 0)
        return ol__err(ctx, OL_ERANGE, "cyclic: step size must be >= 1 step (up %lld, down %lld)",
                       (long long)s->step_size_up, (long long)s->step_size_down);
    if (s->cyclic_mode < OL_CYCLIC_TRIANGULAR || s->cyclic_mode > OL_CYCLIC_EXP_RANGE)
        return ol__err(ctx, OL_ENAME, "cyclic: unknown mode %d", (int)s->cyclic_mode);
    if (!(s->cyclic_gamma > 0.0 && s->cyclic_gamma <= 1.0))
        return ol__err(ctx, OL_ERANGE, "cyclic: exp_range gamma must be in (0, 1], got %g", s->cyclic_gamma);
    return momentum_validate(ctx, s);
}

/* The falling half lasts as long as the rising one unless given. */
static void cyclic_resolve(ol_sched_params *s, int64_t length)
{
    (void)length;
    if (s->step_size_down == 0)
        s->step_size_down = s->step_size_up;
}

static const ol__sched_impl cyclic_impl = {.lr = cyclic_lr,
                                           .momentum = cyclic_momentum,
                                           .defaults = cyclic_defaults,
                                           .validate = cyclic_validate,
                                           .resolve = cyclic_resolve};

const ol_sched_algo ol__sched_cyclic = {
    .name = "cyclic",
    .summary = "cyclical learning rates between the lr and max-lr (CyclicLR)",
    .aliases = {"clr"},
    .options = {MAX_LR("upper lr (--lr is the lower)", 1), NO_CYCLE_MOMENTUM,
                BASE_MOMENTUM("momentum at the lr peak [0.8]"), MAX_MOMENTUM("momentum at the lr minimum [0.9]"),
                {"cycle-epochs", OL_SOPT_EPOCHS, OL__SOPT(step_size_up), 2.0, 10.0, "", "X",
                 "half-cycle (step size) of X epochs, 2 <= X <= 10 as Smith (2017) recommends [4]", NULL, "4", 0},
                {"step-size-up", OL_SOPT_STEPS, OL__SOPT(step_size_up), 1, (double)(INT64_MAX / 4), "", "N",
                 "steps of the rising half (overrides --cycle-epochs)", NULL, NULL, 0},
                {"step-size-down", OL_SOPT_STEPS, OL__SOPT(step_size_down), 1, (double)(INT64_MAX / 4), "", "N",
                 "steps of the falling half [= rising]", NULL, NULL, 0},
                {"cyclic-mode", OL_SOPT_CHOICE, OL__SOPT(cyclic_mode), 0, 0, "triangular", "MODE",
                 "triangular, triangular2 or exp_range", "triangular,triangular2,exp_range", NULL, 0},
                {"cyclic-gamma", OL_SOPT_NUMBER, OL__SOPT(cyclic_gamma), 1e-9, 1.0, "1", "G",
                 "exp_range: amplitude factor per step", NULL, NULL, 0}},
    .impl = &cyclic_impl,
};

/* ---- one-cycle (torch.optim.lr_scheduler.OneCycleLR.get_lr) ------------- */

static double anneal(const ol_sched_params *s, double start, double end, double pct)
{
    if (s->anneal_linear)
        return (end - start) * pct + start;
    double cos_out = cos(OL__PI * pct) + 1.0;
    return end + (start - end) / 2.0 * cos_out;
}

static int64_t onecycle_len(const ol_sched_params *s, int64_t length)
{
    return s->total_iters > 0 ? s->total_iters : length;
}

static double onecycle_value(const ol_sched_params *s, int64_t u, int64_t length, int momentum)
{
    const int64_t T = onecycle_len(s, length);
    const double max_lr = s->max_lr > 0.0 ? s->max_lr : s->base_lr;
    const double initial = max_lr / s->div_factor;
    const double min_lr = initial / s->final_div_factor;
    if (u > T - 1) /* held at the final value (PyTorch raises past the end) */
        u = T - 1;
    /* phase table: end step, lr from/to, momentum from/to */
    double end[3], lr_a[3], lr_b[3], m_a[3], m_b[3];
    int n;
    const double bm = s->base_momentum, mm = s->max_momentum;
    if (s->three_phase) {
        n = 3;
        end[0] = s->pct_start * (double)T - 1.0;
        end[1] = 2.0 * s->pct_start * (double)T - 2.0;
        end[2] = (double)T - 1.0;
        lr_a[0] = initial, lr_b[0] = max_lr, m_a[0] = mm, m_b[0] = bm;
        lr_a[1] = max_lr, lr_b[1] = initial, m_a[1] = bm, m_b[1] = mm;
        lr_a[2] = initial, lr_b[2] = min_lr, m_a[2] = mm, m_b[2] = mm;
    } else {
        n = 2;
        end[0] = s->pct_start * (double)T - 1.0;
        end[1] = (double)T - 1.0;
        lr_a[0] = initial, lr_b[0] = max_lr, m_a[0] = mm, m_b[0] = bm;
        lr_a[1] = max_lr, lr_b[1] = min_lr, m_a[1] = bm, m_b[1] = mm;
    }
    double start = 0.0;
    for (int i = 0; i < n; i++) {
        if ((double)u <= end[i] || i == n - 1) {
            double pct = ((double)u - start) / (end[i] - start);
            return momentum ? anneal(s, m_a[i], m_b[i], pct) : anneal(s, lr_a[i], lr_b[i], pct);
        }
        start = end[i];
    }
    return s->base_lr; /* not reached */
}

static double onecycle_lr(const ol_sched_params *s, int64_t u, int64_t length)
{
    return onecycle_value(s, u, length, 0);
}

static double onecycle_momentum(const ol_sched_params *s, int64_t u, int64_t length)
{
    return onecycle_value(s, u, length, 1);
}

static void onecycle_defaults(ol_sched_params *s) { s->cycle_momentum = 1; }

static int onecycle_validate(ol_ctx *ctx, const ol_sched_params *s)
{
    int64_t len = s->total_steps - s->warmup_steps;
    if (s->per_epoch)
        len /= s->steps_per_epoch;
    if (s->total_iters > 0)
        len = s->total_iters;
    if (len < 2)
        return ol__err(ctx, OL_ERANGE, "onecycle needs the training length (>= 2 steps)");
    if (!(s->pct_start > 0.0 && s->pct_start < 1.0))
        return ol__err(ctx, OL_ERANGE, "onecycle: pct_start must be in (0, 1), got %g", s->pct_start);
    if (s->three_phase && !(s->pct_start < 0.5))
        return ol__err(ctx, OL_ERANGE, "onecycle three-phase: pct_start must be < 0.5, got %g", s->pct_start);
    if (!(s->div_factor >= 1.0 && s->final_div_factor >= 1.0))
        return ol__err(ctx, OL_ERANGE, "onecycle: div factors must be >= 1 (%g, %g)", s->div_factor,
                       s->final_div_factor);
    /* PyTorch needs each phase to span at least one step */
    double e1 = s->pct_start * (double)len - 1.0;
    if (!(e1 > 0.0) || (s->three_phase && !(2.0 * s->pct_start * (double)len - 2.0 > e1)) ||
        !((double)(len - 1) > (s->three_phase ? 2.0 * s->pct_start * (double)len - 2.0 : e1)))
        return ol__err(ctx, OL_ERANGE, "onecycle: pct_start %g leaves an empty phase in %lld steps", s->pct_start,
                       (long long)len);
    if (s->max_lr < 0.0 || !isfinite(s->max_lr))
        return ol__err(ctx, OL_ERANGE, "onecycle: max lr must be >= 0, got %g", s->max_lr);
    return momentum_validate(ctx, s);
}

/* The peak is the lr unless given. */
static void onecycle_resolve(ol_sched_params *s, int64_t length)
{
    (void)length;
    if (s->max_lr == 0.0)
        s->max_lr = s->base_lr;
}

static const ol__sched_impl onecycle_impl = {.lr = onecycle_lr,
                                             .momentum = onecycle_momentum,
                                             .defaults = onecycle_defaults,
                                             .validate = onecycle_validate,
                                             .resolve = onecycle_resolve};

const ol_sched_algo ol__sched_onecycle = {
    .name = "onecycle",
    .summary = "one cycle up to max-lr and down far below the start (OneCycleLR)",
    .aliases = {"one-cycle", "1cycle"},
    .options = {MAX_LR("peak [--lr]", 0),
                {"pct-start", OL_SOPT_NUMBER, OL__SOPT(pct_start), 1e-9, 0.999999, "0.3", "F",
                 "fraction of training spent rising", NULL, NULL, 0},
                {"div-factor", OL_SOPT_NUMBER, OL__SOPT(div_factor), 1.0, 1e12, "25", "D", "start at peak / D", NULL,
                 NULL, 0},
                {"final-div-factor", OL_SOPT_NUMBER, OL__SOPT(final_div_factor), 1.0, 1e12, "1e4", "D",
                 "end at peak / (div-factor * D)", NULL, NULL, 0},
                {"anneal", OL_SOPT_CHOICE, OL__SOPT(anneal_linear), 0, 0, "cos", "SHAPE", "cos or linear",
                 "cos,linear", NULL, 0},
                {"three-phase", OL_SOPT_FLAG, OL__SOPT(three_phase), 0, 0, "0", NULL,
                 "up, down to the start, then annihilate (Smith 2018)", NULL, NULL, 0},
                NO_CYCLE_MOMENTUM, BASE_MOMENTUM("momentum at the lr peak [0.85]"),
                MAX_MOMENTUM("momentum at the lr minimum [0.95]")},
    .impl = &onecycle_impl,
};
