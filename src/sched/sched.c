/* The schedule machinery every schedule shares: the common checks, the
 * warm-up in front, per-epoch stepping, sequential composition, and the
 * dispatch to each schedule's function of the step (the built-ins live in
 * decay.c, cosine.c, cyclic.c and plateau.c, registered in registry.c).
 * Batch-size schedules and the lr scaling with the batch size follow. */
#include <math.h>
#include <string.h>

#include "sched/sched_internal.h"

double ol__sched_floor(const ol_sched_params *s)
{
    return s->min_lr_ratio > 0.0 ? s->min_lr_ratio * s->base_lr : s->eta_min;
}

/* The main part's length in its units (steps, or epochs with per_epoch). */
static int64_t main_length(const ol_sched_params *s)
{
    int64_t length = s->total_steps > 0 ? s->total_steps - s->warmup_steps : 0;
    if (s->per_epoch && s->steps_per_epoch > 0)
        length /= s->steps_per_epoch;
    return length;
}

static int validate_one(ol_ctx *ctx, const ol_sched_params *s, int nested);

/* ---- sequential: parts one after the other (SequentialLR) ---------------- */

static int sequential_validate(ol_ctx *ctx, const ol_sched_params *s)
{
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
    return OL_OK;
}

/* Its lr is composed in ol_sched_lr (no function of its own); the CLI builds
 * the parts from --sequence. */
static const ol__sched_impl sequential_impl = {.validate = sequential_validate};

const ol_sched_algo ol__sched_sequential = {
    .name = "sequential",
    .summary = "schedules one after the other, each restarted at its milestone (SequentialLR)",
    .impl = &sequential_impl,
};

/* ---- checks -------------------------------------------------------------- */

static int validate_one(ol_ctx *ctx, const ol_sched_params *s, int nested)
{
    const ol_sched_algo *a = ol_sched_params_algo(s);
    if (s->type == OL_SCHED_USER && !(a && a->lr))
        return ol__err(ctx, OL_ENAME, "registered schedule without a descriptor or lr function");
    if (!a)
        return ol__err(ctx, OL_ENAME, "unknown schedule type %d", (int)s->type);
    const char *nm = a->name;
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
    if (s->total_iters < 0 || s->t_max < 0)
        return ol__err(ctx, OL_ERANGE, "%s: lengths must be >= 0", nm);
    if (nested && s->type == OL_SCHED_SEQUENTIAL)
        return ol__err(ctx, OL_EINVAL, "sequential schedules cannot be nested");
    if (a->impl && a->impl->validate)
        return a->impl->validate(ctx, s);
    return OL_OK;
}

int ol_sched_validate(ol_ctx *ctx, const ol_sched_params *s) { return validate_one(ctx, s, 0); }

void ol_sched_resolve(ol_sched_params *s)
{
    const ol_sched_algo *a = ol_sched_params_algo(s);
    if (a && a->impl && a->impl->resolve)
        a->impl->resolve(s, main_length(s));
}

/* ---- the lr and momentum of a step --------------------------------------- */

/* The main schedule at unit u (steps, or epochs when per_epoch), warm-up excluded. */
static double main_lr(const ol_sched_params *s, int64_t u, int64_t length)
{
    const ol_sched_algo *a = ol_sched_params_algo(s);
    if (a && a->impl && a->impl->lr)
        return a->impl->lr(s, u, length);
    if (a && a->lr)
        return a->lr(s->user_param, u, length, s->base_lr);
    return s->base_lr;
}

static double main_momentum(const ol_sched_params *s, int64_t u, int64_t length)
{
    const ol_sched_algo *a = ol_sched_params_algo(s);
    if (!s->cycle_momentum || !a || !a->impl || !a->impl->momentum)
        return -1.0;
    return a->impl->momentum(s, u, length);
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
    if (s->per_epoch)
        *u /= s->steps_per_epoch;
    *length = main_length(s);
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
    return main_lr(s, 0, main_length(s));
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
        length = main_length(s);
        t = s->warmup_steps;
    }
    if (s->type == OL_SCHED_SEQUENTIAL) {
        int64_t local;
        const ol_sched_params *p = seq_part(s, (t < 0 ? 0 : t) - s->warmup_steps, u, &local);
        return ol_sched_momentum(p, local);
    }
    return main_momentum(s, u, length);
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
