/* Cosine-shaped schedules: cosine annealing (CosineAnnealingLR's closed
 * form), SGDR warm restarts (CosineAnnealingWarmRestarts) and
 * warmup-stable-decay (MiniCPM; Hagele et al. 2024). */
#include <math.h>

#include "sched/sched_internal.h"

/* ---- cosine: floor + (lr - floor)(1 + cos(pi u / T)) / 2 ------------------ */

static double cosine_lr(const ol_sched_params *s, int64_t u, int64_t length)
{
    const double lr = s->base_lr;
    int64_t T = s->t_max > 0 ? s->t_max : length;
    double lo = ol__sched_floor(s);
    if (T <= 0)
        return lr;
    if (s->hold_floor && u >= T)
        return lo;
    /* keeps following the cosine past T, as PyTorch's CosineAnnealingLR */
    return lo + (lr - lo) * (1.0 + cos(OL__PI * (double)u / (double)T)) / 2.0;
}

static void cosine_resolve(ol_sched_params *s, int64_t length)
{
    if (s->t_max == 0)
        s->t_max = length;
}

static const ol__sched_impl cosine_impl = {.lr = cosine_lr, .resolve = cosine_resolve};

const ol_sched_algo ol__sched_cosine = {
    .name = "cosine",
    .summary = "cosine annealing from the lr to the floor (CosineAnnealingLR)",
    .options = {{"decay-epochs", OL_SOPT_EPOCHS, OL__SOPT(t_max), 1e-9, 1e9, "", "E",
                 "T_max in epochs [the rest of training after warm-up]", NULL, NULL, 0},
                OL__SOPT_MIN_LR_RATIO, OL__SOPT_ETA_MIN,
                {"hold-floor", OL_SOPT_FLAG, OL__SOPT(hold_floor), 0, 1, "0", NULL,
                 "after T_max stay at the floor (Megatron-LM, BLOOM) instead of following the cosine back up "
                 "(PyTorch)",
                 NULL, NULL, 0}},
    .impl = &cosine_impl,
};

/* ---- SGDR: the cosine restarted after periods T0, T0 Tmult, ... ---------- */

/* Position inside the current restart period. */
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

static double restarts_lr(const ol_sched_params *s, int64_t u, int64_t length)
{
    (void)length;
    int64_t tc, ti;
    double lo = ol__sched_floor(s);
    sgdr_position(s, u, &tc, &ti);
    return lo + (s->base_lr - lo) * (1.0 + cos(OL__PI * (double)tc / (double)ti)) / 2.0;
}

static int restarts_validate(ol_ctx *ctx, const ol_sched_params *s)
{
    if (s->t_0 < 1 || s->t_mult < 1)
        return ol__err(ctx, OL_ERANGE, "cosine-restarts needs T0 >= 1 step and an integer Tmult >= 1 (T0 %lld, Tmult %d)",
                       (long long)s->t_0, s->t_mult);
    return OL_OK;
}

/* No first period: 1/5 of the main part. */
static void restarts_resolve(ol_sched_params *s, int64_t length)
{
    if (s->t_0 == 0)
        s->t_0 = length / 5 > 0 ? length / 5 : 1;
}

static const ol__sched_impl restarts_impl = {
    .lr = restarts_lr, .validate = restarts_validate, .resolve = restarts_resolve};

const ol_sched_algo ol__sched_cosine_restarts = {
    .name = "cosine-restarts",
    .summary = "SGDR: cosine annealing with warm restarts (CosineAnnealingWarmRestarts)",
    .aliases = {"sgdr"},
    .options = {{"t0", OL_SOPT_EPOCHS, OL__SOPT(t_0), 1e-9, 1e9, "", "E", "first period in epochs [1/5 of training]",
                 NULL, NULL, 0},
                {"t-mult", OL_SOPT_INT, OL__SOPT(t_mult), 1, 1000, "1", "M", "period multiplier (integer)", NULL, NULL,
                 0},
                OL__SOPT_MIN_LR_RATIO, OL__SOPT_ETA_MIN},
    .impl = &restarts_impl,
};

/* ---- warmup-stable-decay: the lr, then a decay over the last fraction ---- */

static double wsd_lr(const ol_sched_params *s, int64_t u, int64_t length)
{
    const double lr = s->base_lr;
    double lo = ol__sched_floor(s);
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

static int wsd_validate(ol_ctx *ctx, const ol_sched_params *s)
{
    if (!(s->decay_frac >= 0.0 && s->decay_frac <= 1.0))
        return ol__err(ctx, OL_ERANGE, "wsd: decay fraction must be in [0, 1], got %g", s->decay_frac);
    if (s->wsd_shape < OL_WSD_LINEAR || s->wsd_shape > OL_WSD_SQRT)
        return ol__err(ctx, OL_ENAME, "wsd: unknown decay shape %d", (int)s->wsd_shape);
    return OL_OK;
}

static const ol__sched_impl wsd_impl = {.lr = wsd_lr, .validate = wsd_validate};

const ol_sched_algo ol__sched_wsd = {
    .name = "wsd",
    .summary = "warmup-stable-decay: the lr, then a decay over the last part of training",
    .options = {{"decay-frac", OL_SOPT_NUMBER, OL__SOPT(decay_frac), 0.0, 1.0, "0.1", "F",
                 "fraction of training (after warm-up) spent decaying", NULL, NULL, 0},
                {"wsd-decay", OL_SOPT_CHOICE, OL__SOPT(wsd_shape), 0, 0, "linear", "SHAPE",
                 "decay shape linear, cosine or sqrt (1 - sqrt)", "linear,cosine,sqrt", NULL, 0},
                OL__SOPT_MIN_LR_RATIO, OL__SOPT_ETA_MIN},
    .impl = &wsd_impl,
};
