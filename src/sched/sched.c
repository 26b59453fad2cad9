/* Learning-rate schedules as closed-form functions of the step.
 *
 * Where PyTorch has a closed form (CyclicLR, OneCycleLR) the arithmetic below
 * follows it operation by operation; the recursive schedulers (StepLR,
 * CosineAnnealingLR, ...) agree with these closed forms to ~1e-15 relative. */
#include <math.h>
#include <string.h>

#include "core/internal.h"
#include "optimlab/sched.h"

static const char *const sched_names[OL_SCHED_COUNT] = {
    "constant", "step",     "multistep", "exponential", "polynomial", "linear",    "cosine",
    "cosine-restarts", "cyclic", "onecycle", "wsd", "sequential", "plateau"};

const char *ol_sched_name(ol_sched_type t) { return (t >= 0 && t < OL_SCHED_COUNT) ? sched_names[t] : "?"; }

int ol_sched_from_name(const char *name, ol_sched_type *out)
{
    for (int i = 0; i < OL_SCHED_COUNT; i++)
        if (strcmp(name, sched_names[i]) == 0) {
            *out = (ol_sched_type)i;
            return OL_OK;
        }
    /* common spellings from the literature */
    static const struct {
        const char *alias;
        ol_sched_type t;
    } aliases[] = {{"sgdr", OL_SCHED_COSINE_RESTARTS}, {"one-cycle", OL_SCHED_ONECYCLE},
                   {"1cycle", OL_SCHED_ONECYCLE},      {"clr", OL_SCHED_CYCLIC},
                   {"poly", OL_SCHED_POLYNOMIAL},      {"reduce-on-plateau", OL_SCHED_PLATEAU}};
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcmp(name, aliases[i].alias) == 0) {
            *out = aliases[i].t;
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
    s.cycle_momentum = (t == OL_SCHED_CYCLIC || t == OL_SCHED_ONECYCLE);
    s.base_momentum = t == OL_SCHED_CYCLIC ? 0.8 : 0.85;
    s.max_momentum = t == OL_SCHED_CYCLIC ? 0.9 : 0.95;
    s.warmup_start_factor = 0.0;
    s.decay_frac = 0.1;
    s.plateau_factor = 0.1;
    s.plateau_patience = 10;
    s.plateau_threshold = 1e-4;
    s.plateau_eps = 1e-8;
    if (t == OL_SCHED_EXPONENTIAL)
        s.gamma = 0.95;
    return s;
}

static int validate_one(ol_ctx *ctx, const ol_sched_params *s, int nested)
{
    if (s->type == OL_SCHED_USER && !(s->user && s->user->lr))
        return ol__err(ctx, OL_ENAME, "registered schedule without a descriptor or lr function");
    if (s->type != OL_SCHED_USER && (s->type < 0 || s->type >= OL_SCHED_COUNT))
        return ol__err(ctx, OL_ENAME, "unknown schedule type %d", (int)s->type);
    const char *nm = ol_sched_params_name(s);
    if (!(s->base_lr >= 0.0 && isfinite(s->base_lr)))
        return ol__err(ctx, OL_ERANGE, "learning rate must be >= 0, got %g", s->base_lr);
    if (s->total_steps < 0 || s->warmup_steps < 0)
        return ol__err(ctx, OL_ERANGE, "schedule lengths must be >= 0 (total %lld, warm-up %lld steps)",
                       (long long)s->total_steps, (long long)s->warmup_steps);
    if (s->steps_per_epoch < 1)
        return ol__err(ctx, OL_ERANGE, "steps per epoch must be >= 1, got %lld", (long long)s->steps_per_epoch);
    if (s->total_steps > 0 && s->warmup_steps >= s->total_steps)
        return ol__err(ctx, OL_ERANGE, "warm-up (%lld steps) must be shorter than training (%lld steps)",
                       (long long)s->warmup_steps, (long long)s->total_steps);
    if (!(s->gamma > 0.0 && isfinite(s->gamma)))
        return ol__err(ctx, OL_ERANGE, "gamma must be > 0, got %g", s->gamma);
    if (s->type == OL_SCHED_STEP && s->step_size <= 0)
        return ol__err(ctx, OL_ERANGE, "step schedule needs a step size > 0");
    if (s->nmilestones < 0 || s->nmilestones > OL_SCHED_MAX_MILESTONES)
        return ol__err(ctx, OL_ERANGE, "at most %d milestones", OL_SCHED_MAX_MILESTONES);
    for (int i = 0; i < s->nmilestones; i++)
        if (s->milestones[i] < 0 || (i > 0 && s->milestones[i] <= s->milestones[i - 1]))
            return ol__err(ctx, OL_ERANGE, "milestones must be increasing and >= 0");
    if (!(s->min_lr_ratio >= 0.0 && s->min_lr_ratio <= 1.0))
        return ol__err(ctx, OL_ERANGE, "minimum lr ratio must be in [0, 1], got %g", s->min_lr_ratio);
    if (!(s->eta_min >= 0.0 && isfinite(s->eta_min)))
        return ol__err(ctx, OL_ERANGE, "eta_min must be >= 0, got %g", s->eta_min);
    if (!(s->warmup_start_factor >= 0.0 && s->warmup_start_factor <= 1.0))
        return ol__err(ctx, OL_ERANGE, "warm-up start factor must be in [0, 1], got %g", s->warmup_start_factor);
    if (s->warmup_steps > 0 && s->warmup_exponential && !(s->warmup_start_factor > 0.0))
        return ol__err(ctx, OL_ERANGE, "exponential warm-up needs a start factor > 0");
    if (s->type == OL_SCHED_POLYNOMIAL && !(s->power >= 0.0 && isfinite(s->power)))
        return ol__err(ctx, OL_ERANGE, "polynomial power must be >= 0, got %g", s->power);
    if (s->type == OL_SCHED_LINEAR &&
        !(s->start_factor >= 0.0 && s->end_factor >= 0.0 && isfinite(s->start_factor) && isfinite(s->end_factor)))
        return ol__err(ctx, OL_ERANGE, "linear schedule factors must be >= 0");
    if (s->total_iters < 0 || s->t_max < 0)
        return ol__err(ctx, OL_ERANGE, "%s: lengths must be >= 0", nm);
    if (s->type == OL_SCHED_COSINE_RESTARTS && (s->t_0 < 1 || s->t_mult < 1))
        return ol__err(ctx, OL_ERANGE, "cosine-restarts needs T0 >= 1 step and an integer Tmult >= 1 (T0 %lld, Tmult %d)",
                       (long long)s->t_0, s->t_mult);
    if (s->type == OL_SCHED_CYCLIC) {
        if (!(s->max_lr >= s->base_lr && isfinite(s->max_lr)))
            return ol__err(ctx, OL_ERANGE, "cyclic: max lr %g must be >= the base lr %g", s->max_lr, s->base_lr);
        if (s->step_size_up < 1 || s->step_size_down < 0)
            return ol__err(ctx, OL_ERANGE, "cyclic: step size must be >= 1 step (up %lld, down %lld)",
                           (long long)s->step_size_up, (long long)s->step_size_down);
        if (s->cyclic_mode < OL_CYCLIC_TRIANGULAR || s->cyclic_mode > OL_CYCLIC_EXP_RANGE)
            return ol__err(ctx, OL_ENAME, "cyclic: unknown mode %d", (int)s->cyclic_mode);
        if (!(s->cyclic_gamma > 0.0 && s->cyclic_gamma <= 1.0))
            return ol__err(ctx, OL_ERANGE, "cyclic: exp_range gamma must be in (0, 1], got %g", s->cyclic_gamma);
    }
    if (s->type == OL_SCHED_ONECYCLE) {
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
    }
    if ((s->type == OL_SCHED_CYCLIC || s->type == OL_SCHED_ONECYCLE) && s->cycle_momentum &&
        !(s->base_momentum >= 0.0 && s->base_momentum <= s->max_momentum && s->max_momentum < 1.0))
        return ol__err(ctx, OL_ERANGE, "momentum cycling needs 0 <= base momentum <= max momentum < 1 (%g, %g)",
                       s->base_momentum, s->max_momentum);
    if (s->type == OL_SCHED_WSD && !(s->decay_frac >= 0.0 && s->decay_frac <= 1.0))
        return ol__err(ctx, OL_ERANGE, "wsd: decay fraction must be in [0, 1], got %g", s->decay_frac);
    if (s->type == OL_SCHED_WSD && (s->wsd_shape < OL_WSD_LINEAR || s->wsd_shape > OL_WSD_SQRT))
        return ol__err(ctx, OL_ENAME, "wsd: unknown decay shape %d", (int)s->wsd_shape);
    if (s->type == OL_SCHED_PLATEAU) {
        if (!(s->plateau_factor > 0.0 && s->plateau_factor < 1.0))
            return ol__err(ctx, OL_ERANGE, "plateau: factor must be in (0, 1), got %g", s->plateau_factor);
        if (s->plateau_patience < 0 || s->plateau_cooldown < 0)
            return ol__err(ctx, OL_ERANGE, "plateau: patience and cooldown must be >= 0");
        if (!(s->plateau_threshold >= 0.0) || !(s->plateau_min_lr >= 0.0) || !(s->plateau_eps >= 0.0))
            return ol__err(ctx, OL_ERANGE, "plateau: threshold, min lr and eps must be >= 0");
    }
    if (s->type == OL_SCHED_SEQUENTIAL) {
        if (nested)
            return ol__err(ctx, OL_EINVAL, "sequential schedules cannot be nested");
        if (!s->parts || s->nparts < 1 || s->nparts > OL_SCHED_MAX_MILESTONES)
            return ol__err(ctx, OL_EINVAL, "sequential schedule needs 1 to %d parts", OL_SCHED_MAX_MILESTONES);
        if (s->nmilestones != s->nparts - 1)
            return ol__err(ctx, OL_EINVAL, "sequential schedule: %d parts need %d milestones, got %d", s->nparts,
                           s->nparts - 1, s->nmilestones);
        for (int i = 0; i < s->nparts; i++) {
            if (s->parts[i].type == OL_SCHED_PLATEAU)
                return ol__err(ctx, OL_EINVAL, "sequential schedule: reduce-on-plateau cannot be a part");
            OL__TRY(validate_one(ctx, &s->parts[i], 1));
        }
    }
    return OL_OK;
}

int ol_sched_validate(ol_ctx *ctx, const ol_sched_params *s) { return validate_one(ctx, s, 0); }

static double floor_lr(const ol_sched_params *s)
{
    return s->min_lr_ratio > 0.0 ? s->min_lr_ratio * s->base_lr : s->eta_min;
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

/* ---- one-cycle (torch.optim.lr_scheduler.OneCycleLR.get_lr) ------------- */

static double anneal(const ol_sched_params *s, double start, double end, double pct)
{
    if (s->anneal_linear)
        return (end - start) * pct + start;
    double cos_out = cos(OL__PI * pct) + 1.0;
    return end + (start - end) / 2.0 * cos_out;
}

static int64_t onecycle_len(const ol_sched_params *s, int64_t length) { return s->total_iters > 0 ? s->total_iters : length; }

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

/* ---- SGDR: position inside the current restart period ------------------- */

static void sgdr_position(const ol_sched_params *s, int64_t u, int64_t *t_cur, int64_t *t_i)
{
    int64_t T = s->t_0;
    if (s->t_mult == 1) {
        *t_cur = u % T;
        *t_i = T;
        return;
    }
    /* periods grow geometrically: O(log u) iterations */
    while (u >= T) {
        u -= T;
        T *= s->t_mult;
    }
    *t_cur = u;
    *t_i = T;
}

/* The main schedule at unit u (steps, or epochs when per_epoch), warm-up excluded. */
static double main_lr(const ol_sched_params *s, int64_t u, int64_t length)
{
    const double lr = s->base_lr;
    switch (s->type) {
    case OL_SCHED_USER: return s->user->lr(s->user_param, u, length, lr);
    case OL_SCHED_CONSTANT:
    case OL_SCHED_PLATEAU: return lr;
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
        double lo = floor_lr(s);
        if (T <= 0 || u >= T)
            return lo;
        return lo + (lr - lo) * pow(1.0 - (double)u / (double)T, s->power);
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
    case OL_SCHED_COSINE_RESTARTS: {
        int64_t tc, ti;
        double lo = floor_lr(s);
        sgdr_position(s, u, &tc, &ti);
        return lo + (lr - lo) * (1.0 + cos(OL__PI * (double)tc / (double)ti)) / 2.0;
    }
    case OL_SCHED_CYCLIC: return cyclic_value(s, u, s->base_lr, s->max_lr, 0);
    case OL_SCHED_ONECYCLE: return onecycle_value(s, u, length, 0);
    case OL_SCHED_WSD: {
        double lo = floor_lr(s);
        int64_t D = (int64_t)llround(s->decay_frac * (double)length);
        int64_t d0 = length - D;
        if (u < d0)
            return lr;
        if (D <= 0 || u >= length)
            return lo;
        double p = (double)(u - d0) / (double)D;
        double f = s->wsd_shape == OL_WSD_COSINE ? (1.0 + cos(OL__PI * p)) / 2.0
                   : s->wsd_shape == OL_WSD_SQRT ? 1.0 - sqrt(p)
                                                 : 1.0 - p;
        return lo + (lr - lo) * f;
    }
    default: return lr;
    }
}

static double main_momentum(const ol_sched_params *s, int64_t u, int64_t length)
{
    if (!s->cycle_momentum)
        return -1.0;
    if (s->type == OL_SCHED_CYCLIC)
        return cyclic_value(s, u, s->base_momentum, s->max_momentum, 1);
    if (s->type == OL_SCHED_ONECYCLE)
        return onecycle_value(s, u, length, 1);
    return -1.0;
}

/* Locate step t: inside the warm-up (returns 1 with *frac), or at unit *u of
 * the main schedule with *length units. */
static int locate(const ol_sched_params *s, int64_t t, double *frac, int64_t *u, int64_t *length)
{
    if (t < 0)
        t = 0;
    if (s->warmup_steps > 0 && t < s->warmup_steps) {
        *frac = (double)t / (double)s->warmup_steps;
        return 1;
    }
    *u = t - s->warmup_steps;
    *length = s->total_steps > 0 ? s->total_steps - s->warmup_steps : 0;
    if (s->per_epoch) {
        *u /= s->steps_per_epoch;
        *length /= s->steps_per_epoch;
    }
    return 0;
}

/* Sequential: the part active at unit u, and the step inside it. */
static const ol_sched_params *seq_part(const ol_sched_params *s, int64_t t_main, int64_t u, int64_t *local)
{
    int k = 0;
    while (k < s->nmilestones && u >= s->milestones[k])
        k++;
    int64_t start = k > 0 ? s->milestones[k - 1] * (s->per_epoch ? s->steps_per_epoch : 1) : 0;
    *local = t_main - start;
    return &s->parts[k];
}

static double warmup_lr(const ol_sched_params *s, double frac, double target)
{
    const double start = s->warmup_start_factor;
    if (s->warmup_exponential)
        return target * start * pow(1.0 / start, frac);
    return target * (start + (1.0 - start) * frac);
}

/* The warm-up ramps towards the main schedule's first value, so the two join. */
static double first_lr(const ol_sched_params *s)
{
    if (s->type == OL_SCHED_SEQUENTIAL)
        return ol_sched_lr(&s->parts[0], 0);
    int64_t length = s->total_steps > 0 ? s->total_steps - s->warmup_steps : 0;
    if (s->per_epoch)
        length /= s->steps_per_epoch;
    return main_lr(s, 0, length);
}

double ol_sched_lr(const ol_sched_params *s, int64_t t)
{
    double frac;
    int64_t u, length;
    if (locate(s, t, &frac, &u, &length))
        return warmup_lr(s, frac, first_lr(s));
    if (s->type == OL_SCHED_SEQUENTIAL) {
        int64_t local;
        const ol_sched_params *p = seq_part(s, (t < 0 ? 0 : t) - s->warmup_steps, u, &local);
        return ol_sched_lr(p, local);
    }
    return main_lr(s, u, length);
}

double ol_sched_momentum(const ol_sched_params *s, int64_t t)
{
    double frac;
    int64_t u, length;
    if (locate(s, t, &frac, &u, &length)) {
        u = 0; /* hold the first value through the warm-up */
        length = s->total_steps > 0 ? s->total_steps - s->warmup_steps : 0;
        if (s->per_epoch)
            length /= s->steps_per_epoch;
        t = s->warmup_steps;
    }
    if (s->type == OL_SCHED_SEQUENTIAL) {
        int64_t local;
        const ol_sched_params *p = seq_part(s, (t < 0 ? 0 : t) - s->warmup_steps, u, &local);
        return ol_sched_momentum(p, local);
    }
    return main_momentum(s, u, length);
}

/* ---- reduce-on-plateau --------------------------------------------------- */

void ol_plateau_init(ol_plateau *p, const ol_sched_params *s)
{
    memset(p, 0, sizeof *p);
    p->lr = s->base_lr;
    p->best = s->plateau_maximize ? -INFINITY : INFINITY;
}

static int plateau_better(const ol_sched_params *s, double a, double best)
{
    const double th = s->plateau_threshold;
    if (s->plateau_maximize)
        return s->plateau_threshold_abs ? a > best + th : a > best * (th + 1.0);
    return s->plateau_threshold_abs ? a < best - th : a < best * (1.0 - th);
}

int ol_plateau_update(ol_plateau *p, const ol_sched_params *s, double metric)
{
    if (!isfinite(metric))
        return OL_ERANGE;
    p->evals++;
    if (plateau_better(s, metric, p->best)) {
        p->best = metric;
        p->num_bad = 0;
    } else {
        p->num_bad++;
    }
    if (p->cooldown_left > 0) {
        p->cooldown_left--;
        p->num_bad = 0;
    }
    if (p->num_bad > s->plateau_patience) {
        int cut = 0;
        double nl = p->lr * s->plateau_factor;
        if (nl < s->plateau_min_lr)
            nl = s->plateau_min_lr;
        if (p->lr - nl > s->plateau_eps) {
            p->lr = nl;
            p->reductions++;
            cut = 1;
        }
        p->cooldown_left = s->plateau_cooldown;
        p->num_bad = 0;
        return cut;
    }
    return 0;
}

double ol_plateau_lr(const ol_plateau *p, const ol_sched_params *s, int64_t t)
{
    if (s->warmup_steps > 0 && t < s->warmup_steps && s->base_lr > 0.0)
        return ol_sched_lr(s, t) * (p->lr / s->base_lr);
    return p->lr;
}

/* ---- batch-size schedules ------------------------------------------------ */

static const char *const batch_names[OL_BATCH_COUNT] = {"constant", "milestones", "ramp"};

const char *ol_batch_sched_name(ol_batch_sched_type t)
{
    return (t >= 0 && t < OL_BATCH_COUNT) ? batch_names[t] : "?";
}

int ol_batch_sched_from_name(const char *name, ol_batch_sched_type *out)
{
    for (int i = 0; i < OL_BATCH_COUNT; i++)
        if (strcmp(name, batch_names[i]) == 0) {
            *out = (ol_batch_sched_type)i;
            return OL_OK;
        }
    return OL_ENAME;
}

ol_batch_sched_params ol_batch_sched_default_params(ol_batch_sched_type t)
{
    ol_batch_sched_params b;
    memset(&b, 0, sizeof b);
    b.type = t;
    b.batch = 128;
    b.factor = 2.0;
    return b;
}

int ol_batch_sched_validate(ol_ctx *ctx, const ol_batch_sched_params *b)
{
    if (b->type < 0 || b->type >= OL_BATCH_COUNT)
        return ol__err(ctx, OL_ENAME, "unknown batch schedule %d", (int)b->type);
    if (b->batch < 1)
        return ol__err(ctx, OL_ERANGE, "batch size must be >= 1, got %lld", (long long)b->batch);
    if (b->max_batch < 0)
        return ol__err(ctx, OL_ERANGE, "max batch size must be >= 0, got %lld", (long long)b->max_batch);
    if (b->type == OL_BATCH_MILESTONES) {
        if (b->nmilestones < 1 || b->nmilestones > OL_SCHED_MAX_MILESTONES)
            return ol__err(ctx, OL_ERANGE, "batch milestones: need 1 to %d milestones", OL_SCHED_MAX_MILESTONES);
        for (int i = 0; i < b->nmilestones; i++)
            if (b->milestones[i] < 0 || (i > 0 && b->milestones[i] <= b->milestones[i - 1]))
                return ol__err(ctx, OL_ERANGE, "batch milestones must be increasing and >= 0");
        if (!(b->factor >= 1.0 && isfinite(b->factor)))
            return ol__err(ctx, OL_ERANGE, "batch factor must be >= 1, got %g", b->factor);
        if (b->max_batch > 0 && b->max_batch < b->batch)
            return ol__err(ctx, OL_ERANGE, "max batch size %lld is below the starting batch %lld",
                           (long long)b->max_batch, (long long)b->batch);
    }
    if (b->type == OL_BATCH_RAMP) {
        int64_t inc = b->ramp_increment > 0 ? b->ramp_increment : b->batch;
        if (b->max_batch <= b->batch)
            return ol__err(ctx, OL_ERANGE, "batch ramp: the final batch (%lld) must exceed the starting batch (%lld)",
                           (long long)b->max_batch, (long long)b->batch);
        if (b->ramp_increment < 0 || (b->max_batch - b->batch) % inc != 0)
            return ol__err(ctx, OL_ERANGE,
                           "batch ramp: final minus starting batch (%lld) must be a multiple of the increment %lld",
                           (long long)(b->max_batch - b->batch), (long long)inc);
        if (b->ramp_samples < 1)
            return ol__err(ctx, OL_ERANGE, "batch ramp: ramp length must be >= 1 sample");
    }
    return OL_OK;
}

int64_t ol_batch_sched_batch(const ol_batch_sched_params *b, int64_t t, int64_t samples_before)
{
    switch (b->type) {
    case OL_BATCH_MILESTONES: {
        int k = 0;
        while (k < b->nmilestones && t >= b->milestones[k])
            k++;
        double x = (double)b->batch * pow(b->factor, (double)k);
        if (b->max_batch > 0 && x > (double)b->max_batch)
            return b->max_batch;
        return (int64_t)llround(x);
    }
    case OL_BATCH_RAMP: {
        if (samples_before >= b->ramp_samples)
            return b->max_batch;
        int64_t inc = b->ramp_increment > 0 ? b->ramp_increment : b->batch;
        int64_t n_inc = (b->max_batch - b->batch) / inc;
        double per_inc = (double)b->ramp_samples / (double)n_inc;
        int64_t k = (int64_t)((double)(samples_before < 0 ? 0 : samples_before) / per_inc);
        int64_t cur = b->batch + k * inc;
        return cur < b->max_batch ? cur : b->max_batch;
    }
    default: return b->batch;
    }
}

int64_t ol_batch_sched_samples_before(const ol_batch_sched_params *b, int64_t t)
{
    int64_t s = 0;
    for (int64_t i = 0; i < t; i++)
        s += ol_batch_sched_batch(b, i, s);
    return s;
}

/* ---- learning-rate scaling with the batch size --------------------------- */

static const char *const scaling_names[OL_LR_SCALING_COUNT] = {"none", "linear", "sqrt", "linear-then-sqrt"};

const char *ol_lr_scaling_name(ol_lr_scaling r)
{
    return (r >= 0 && r < OL_LR_SCALING_COUNT) ? scaling_names[r] : "?";
}

int ol_lr_scaling_from_name(const char *name, ol_lr_scaling *out)
{
    for (int i = 0; i < OL_LR_SCALING_COUNT; i++)
        if (strcmp(name, scaling_names[i]) == 0) {
            *out = (ol_lr_scaling)i;
            return OL_OK;
        }
    return OL_ENAME;
}

double ol_lr_scale(ol_lr_scaling rule, double batch, double base_batch, double knee)
{
    if (!(batch > 0.0) || !(base_batch > 0.0))
        return 1.0;
    const double r = batch / base_batch;
    switch (rule) {
    case OL_LR_SCALING_LINEAR: return r;
    case OL_LR_SCALING_SQRT: return sqrt(r);
    case OL_LR_SCALING_LINEAR_THEN_SQRT: {
        double k = knee > 0.0 ? knee : 1.0;
        return r <= k ? r : k * sqrt(r / k);
    }
    default: return 1.0;
    }
}
