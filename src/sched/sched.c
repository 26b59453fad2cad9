/* Learning-rate schedules as closed-form functions of the step. */
#include <math.h>
#include <string.h>

#include "core/internal.h"
#include "optimlab/sched.h"

static const char *const sched_names[OL_SCHED_COUNT] = {
    "constant", "step", "multistep", "exponential", "polynomial", "linear",
    "cosine",   "cosine-restarts", "cyclic", "onecycle", "wsd"};

const char *ol_sched_name(ol_sched_type t) { return (t >= 0 && t < OL_SCHED_COUNT) ? sched_names[t] : "?"; }

int ol_sched_from_name(const char *name, ol_sched_type *out)
{
    for (int i = 0; i < OL_SCHED_COUNT; i++)
        if (strcmp(name, sched_names[i]) == 0) {
            *out = (ol_sched_type)i;
            return OL_OK;
        }
    return OL_ENAME;
}

ol_sched_params ol_sched_default_params(ol_sched_type t)
{
    ol_sched_params s;
    memset(&s, 0, sizeof s);
    s.type = t;
    s.base_lr = 0.1;
    s.steps_per_epoch = 1;
    s.gamma = 0.1;
    s.power = 1.0;
    s.start_factor = 1.0 / 3.0;
    s.end_factor = 1.0;
    s.t_mult = 1;
    s.cyclic_gamma = 1.0;
    s.pct_start = 0.3;
    s.div_factor = 25.0;
    s.final_div_factor = 1e4;
    s.cycle_momentum = 1;
    s.base_momentum = 0.85;
    s.max_momentum = 0.95;
    s.warmup_start_factor = 0.0;
    s.decay_frac = 0.1;
    if (t == OL_SCHED_EXPONENTIAL)
        s.gamma = 0.95;
    return s;
}

int ol_sched_validate(ol_ctx *ctx, const ol_sched_params *s)
{
    if (s->type < 0 || s->type >= OL_SCHED_COUNT)
        return ol__err(ctx, OL_ENAME, "unknown schedule type %d", (int)s->type);
    if (!(s->base_lr >= 0.0 && isfinite(s->base_lr)))
        return ol__err(ctx, OL_ERANGE, "learning rate must be >= 0, got %g", s->base_lr);
    if (s->total_steps < 0 || s->warmup_steps < 0 || s->steps_per_epoch < 1)
        return ol__err(ctx, OL_ERANGE, "schedule lengths must be positive");
    if (s->total_steps > 0 && s->warmup_steps >= s->total_steps)
        return ol__err(ctx, OL_ERANGE, "warm-up (%lld steps) must be shorter than training (%lld steps)",
                       (long long)s->warmup_steps, (long long)s->total_steps);
    if (!(s->gamma > 0.0))
        return ol__err(ctx, OL_ERANGE, "gamma must be > 0, got %g", s->gamma);
    if (s->type == OL_SCHED_STEP && s->step_size <= 0)
        return ol__err(ctx, OL_ERANGE, "step schedule needs a step size > 0");
    for (int i = 0; i < s->nmilestones; i++)
        if (s->milestones[i] < 0 || (i > 0 && s->milestones[i] <= s->milestones[i - 1]))
            return ol__err(ctx, OL_ERANGE, "milestones must be increasing and >= 0");
    if (!(s->min_lr_ratio >= 0.0 && s->min_lr_ratio <= 1.0))
        return ol__err(ctx, OL_ERANGE, "minimum lr ratio must be in [0, 1], got %g", s->min_lr_ratio);
    if (!(s->warmup_start_factor >= 0.0 && s->warmup_start_factor <= 1.0))
        return ol__err(ctx, OL_ERANGE, "warm-up start factor must be in [0, 1], got %g", s->warmup_start_factor);
    return OL_OK;
}

static double floor_lr(const ol_sched_params *s)
{
    return s->min_lr_ratio > 0.0 ? s->min_lr_ratio * s->base_lr : s->eta_min;
}

/* The main schedule at unit u (steps, or epochs when per_epoch), warm-up excluded. */
static double main_lr(const ol_sched_params *s, int64_t u, int64_t length)
{
    const double lr = s->base_lr;
    switch (s->type) {
    case OL_SCHED_CONSTANT: return lr;
    case OL_SCHED_STEP: return lr * pow(s->gamma, (double)(u / s->step_size));
    case OL_SCHED_MULTISTEP: {
        int k = 0;
        while (k < s->nmilestones && u >= s->milestones[k])
            k++;
        return lr * pow(s->gamma, (double)k);
    }
    case OL_SCHED_EXPONENTIAL: return lr * pow(s->gamma, (double)u);
    case OL_SCHED_POLYNOMIAL: {
        int64_t T = s->total_iters > 0 ? s->total_iters : length;
        if (T <= 0 || u >= T)
            return 0.0;
        return lr * pow(1.0 - (double)u / (double)T, s->power);
    }
    case OL_SCHED_LINEAR: {
        int64_t T = s->total_iters > 0 ? s->total_iters : length;
        if (T <= 0 || u >= T)
            return lr * s->end_factor;
        return lr * (s->start_factor + (s->end_factor - s->start_factor) * (double)u / (double)T);
    }
    case OL_SCHED_COSINE: {
        int64_t T = s->t_max > 0 ? s->t_max : length;
        double lo = floor_lr(s);
        if (T <= 0)
            return lr;
        /* keeps following the cosine past T, as PyTorch's CosineAnnealingLR */
        return lo + (lr - lo) * (1.0 + cos(OL__PI * (double)u / (double)T)) / 2.0;
    }
    default: return lr;
    }
}

double ol_sched_lr(const ol_sched_params *s, int64_t t)
{
    if (t < 0)
        t = 0;
    if (s->warmup_steps > 0 && t < s->warmup_steps) {
        double f = (double)t / (double)s->warmup_steps;
        double start = s->warmup_start_factor;
        if (s->warmup_exponential && start > 0.0)
            return s->base_lr * start * pow(1.0 / start, f);
        return s->base_lr * (start + (1.0 - start) * f);
    }
    int64_t u = t - s->warmup_steps;
    int64_t length = s->total_steps > 0 ? s->total_steps - s->warmup_steps : 0;
    if (s->per_epoch) {
        u /= s->steps_per_epoch;
        length /= s->steps_per_epoch;
    }
    return main_lr(s, u, length);
}

double ol_sched_momentum(const ol_sched_params *s, int64_t t)
{
    (void)s;
    (void)t;
    return -1.0;
}
