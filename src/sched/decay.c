/* The decaying schedules of torch.optim.lr_scheduler as closed forms of the
 * step: constant, step, multistep, exponential, polynomial and linear. The
 * recursive PyTorch schedulers agree with these to ~1e-15 relative. */
#include <math.h>

#include "sched/sched_internal.h"

#define GAMMA(help)                                                                                                \
    {"gamma", OL_SOPT_NUMBER, OL__SOPT(gamma), 1e-12, 1e6, "", "G", help, NULL, NULL, 0}
#define DECAY_EPOCHS(field)                                                                                        \
    {"decay-epochs", OL_SOPT_EPOCHS, OL__SOPT(field), 1e-9, 1e9, "", "E",                                         \
     "length in epochs [the rest of training after warm-up]", NULL, NULL, 0}

/* The length of a decay: total_iters, else the whole main part. */
static void fill_total_iters(ol_sched_params *s, int64_t length)
{
    if (s->total_iters == 0)
        s->total_iters = length;
}

/* ---- constant ------------------------------------------------------------ */

static double constant_lr(const ol_sched_params *s, int64_t u, int64_t length)
{
    (void)u;
    (void)length;
    return s->base_lr;
}

static const ol__sched_impl constant_impl = {.lr = constant_lr};

const ol_sched_algo ol__sched_constant = {
    .name = "constant",
    .summary = "the lr of the optimizer throughout",
    .impl = &constant_impl,
};

/* ---- step: lr * gamma^floor(u / step_size) (StepLR) ----------------------- */

static double step_lr(const ol_sched_params *s, int64_t u, int64_t length)
{
    (void)length;
    return s->base_lr * pow(s->gamma, (double)(u / s->step_size));
}

static int step_validate(ol_ctx *ctx, const ol_sched_params *s)
{
    if (s->step_size <= 0)
        return ol__err(ctx, OL_ERANGE, "step schedule needs a step size > 0");
    return OL_OK;
}

static const ol__sched_impl step_impl = {.lr = step_lr, .validate = step_validate};

const ol_sched_algo ol__sched_step = {
    .name = "step",
    .summary = "multiply the lr by gamma every step size (StepLR)",
    .options = {{"step-size", OL_SOPT_EPOCHS, OL__SOPT(step_size), 1e-9, 1e9, "", "E", "decay every E epochs", NULL,
                 NULL, 1},
                GAMMA("decay factor [0.1]")},
    .impl = &step_impl,
};

/* ---- multistep: lr * gamma^(milestones passed) (MultiStepLR) ------------- */

static double multistep_lr(const ol_sched_params *s, int64_t u, int64_t length)
{
    (void)length;
    int k = 0;
    while (k < s->nmilestones && u >= s->milestones[k])
        k++;
    return s->base_lr * pow(s->gamma, (double)k);
}

/* No milestones: at 50% and 75% of the main part. */
static void multistep_resolve(ol_sched_params *s, int64_t length)
{
    if (s->nmilestones > 0)
        return;
    s->milestones[0] = length / 2;
    s->milestones[1] = length * 3 / 4;
    s->nmilestones = 2;
}

static const ol__sched_impl multistep_impl = {.lr = multistep_lr, .resolve = multistep_resolve};

const ol_sched_algo ol__sched_multistep = {
    .name = "multistep",
    .summary = "multiply the lr by gamma at each milestone (MultiStepLR)",
    .options = {{"milestones", OL_SOPT_EPOCH_LIST, OL__SOPT(milestones), 0.0, 1e9, "", "E1,E2,...",
                 "decay at these epochs [50% and 75% of training]", NULL, NULL, 0},
                GAMMA("decay factor [0.1]")},
    .impl = &multistep_impl,
};

/* ---- exponential: lr * gamma^u (ExponentialLR) ---------------------------- */

static double exponential_lr(const ol_sched_params *s, int64_t u, int64_t length)
{
    (void)length;
    return s->base_lr * pow(s->gamma, (double)u);
}

static void exponential_defaults(ol_sched_params *s) { s->gamma = 0.95; }

static const ol__sched_impl exponential_impl = {.lr = exponential_lr, .defaults = exponential_defaults};

const ol_sched_algo ol__sched_exponential = {
    .name = "exponential",
    .summary = "multiply the lr by gamma every step (ExponentialLR)",
    .options = {GAMMA("decay factor per step (per epoch with --per-epoch) [0.95]")},
    .impl = &exponential_impl,
};

/* ---- polynomial: floor + (lr - floor)(1 - u/T)^power (PolynomialLR) ------- */

static double polynomial_lr(const ol_sched_params *s, int64_t u, int64_t length)
{
    int64_t T = s->total_iters > 0 ? s->total_iters : length;
    double lo = ol__sched_floor(s);
    if (T <= 0 || u >= T)
        return lo;
    return lo + (s->base_lr - lo) * pow(1.0 - (double)u / (double)T, s->power);
}

static int polynomial_validate(ol_ctx *ctx, const ol_sched_params *s)
{
    if (!(s->power >= 0.0 && isfinite(s->power)))
        return ol__err(ctx, OL_ERANGE, "polynomial power must be >= 0, got %g", s->power);
    return OL_OK;
}

static const ol__sched_impl polynomial_impl = {
    .lr = polynomial_lr, .validate = polynomial_validate, .resolve = fill_total_iters};

const ol_sched_algo ol__sched_polynomial = {
    .name = "polynomial",
    .summary = "polynomial decay to the floor (PolynomialLR)",
    .aliases = {"poly"},
    .options = {{"power", OL_SOPT_NUMBER, OL__SOPT(power), 0.0, 1e3, "1", "P", "decay power", NULL, NULL, 0},
                DECAY_EPOCHS(total_iters), OL__SOPT_MIN_LR_RATIO, OL__SOPT_ETA_MIN},
    .impl = &polynomial_impl,
};

/* ---- linear: lr * (start_factor -> end_factor over T) (LinearLR) --------- */

static double linear_lr(const ol_sched_params *s, int64_t u, int64_t length)
{
    const double lr = s->base_lr;
    int64_t T = s->total_iters > 0 ? s->total_iters : length;
    if (T <= 0 || u >= T)
        return lr * s->end_factor;
    return lr * (s->start_factor + (s->end_factor - s->start_factor) * (double)u / (double)T);
}

static int linear_validate(ol_ctx *ctx, const ol_sched_params *s)
{
    if (!(s->start_factor >= 0.0 && s->end_factor >= 0.0 && isfinite(s->start_factor) && isfinite(s->end_factor)))
        return ol__err(ctx, OL_ERANGE, "linear schedule factors must be >= 0");
    return OL_OK;
}

static const ol__sched_impl linear_impl = {.lr = linear_lr, .validate = linear_validate, .resolve = fill_total_iters};

const ol_sched_algo ol__sched_linear = {
    .name = "linear",
    .summary = "linear change from start factor to end factor (LinearLR)",
    .options = {{"start-factor", OL_SOPT_NUMBER, OL__SOPT(start_factor), 0.0, 1e6, "1", "F", "start at F * lr", NULL,
                 NULL, 0},
                {"end-factor", OL_SOPT_NUMBER, OL__SOPT(end_factor), 0.0, 1e6, "", "F",
                 "end at F * lr [--min-lr-ratio, 0]", NULL, "--min-lr-ratio", 0},
                DECAY_EPOCHS(total_iters),
                {"min-lr-ratio", OL_SOPT_NUMBER, OL__SOPT(min_lr_ratio), 0.0, 1.0, "0", "R",
                 "the default of --end-factor", NULL, NULL, 0}},
    .impl = &linear_impl,
};
