/* The effective configuration of a run: options left at an empty default
 * ("the optimizer's own", "50% of training", ...) get the value the run
 * actually uses, for config.json. Options that do not apply to the chosen
 * optimizer or schedule stay empty, and the resolved ones are marked, so that
 * --resume treats them as defaults again (no "does not apply", and a longer
 * resumed run still derives its lengths from its own length). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* The shortest text that reads back as exactly x. */
static void fmt(char *b, size_t cap, double x)
{
    for (int p = 1; p <= 17; p++) {
        snprintf(b, cap, "%.*g", p, x);
        if (strtod(b, NULL) == x)
            return;
    }
}

static int put(cli_values *v, const char *name, const char *text)
{
    int i = cli_find(v, name);
    if (i < 0 || v->set[i] || *v->val[i])
        return 0; /* given, or not an option of this command */
    return cli_set(v, name, text, CLI_RESOLVED);
}

static int put_num(cli_values *v, const char *name, double x)
{
    char b[64];
    fmt(b, sizeof b, x);
    return put(v, name, b);
}

/* Steps as the epochs that convert back to them (the run's rule:
 * round(E x steps per epoch)); 0 when no such text exists (a batch schedule). */
static int epochs_text(const ol_sched_params *sp, const ol_train_params *tp, int64_t steps, char *b, size_t cap)
{
    if (sp->per_epoch) {
        snprintf(b, cap, "%lld", (long long)steps);
        return 1;
    }
    if (tp->batch_sched || sp->steps_per_epoch < 1)
        return 0;
    fmt(b, cap, (double)steps / (double)sp->steps_per_epoch);
    return llround(strtod(b, NULL) * (double)sp->steps_per_epoch) == steps;
}

static int optim_values(cli_values *v, const ol_optim_params *op)
{
    static const struct {
        const char *name;
        size_t off;
    } nums[] = {
        {"lr", offsetof(ol_optim_params, lr)},
        {"momentum", offsetof(ol_optim_params, momentum)},
        {"dampening", offsetof(ol_optim_params, dampening)},
        {"weight-decay", offsetof(ol_optim_params, weight_decay)},
        {"eps", offsetof(ol_optim_params, eps)},
        {"alpha", offsetof(ol_optim_params, alpha)},
        {"rho", offsetof(ol_optim_params, rho)},
        {"lr-decay", offsetof(ol_optim_params, lr_decay)},
        {"initial-accumulator-value", offsetof(ol_optim_params, initial_accumulator_value)},
        {"momentum-decay", offsetof(ol_optim_params, momentum_decay)},
        {"trust-coefficient", offsetof(ol_optim_params, trust_coefficient)},
        {"max-grad-norm", offsetof(ol_optim_params, max_grad_norm)},
        {"larc-trust-coefficient", offsetof(ol_optim_params, larc_trust_coefficient)},
        {"larc-eps", offsetof(ol_optim_params, larc_eps)},
        {"sf-r", offsetof(ol_optim_params, r)},
        {"weight-lr-power", offsetof(ol_optim_params, weight_lr_power)},
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof nums / sizeof nums[0] && rc == 0; i++) {
        double x;
        memcpy(&x, (const char *)op + nums[i].off, sizeof x);
        if (cli_optim_option_applies(op, nums[i].name))
            rc = put_num(v, nums[i].name, x);
    }
    char b[128], b1[48], b2[48];
    if (rc == 0 && cli_optim_option_applies(op, "betas")) {
        fmt(b1, sizeof b1, op->beta1);
        fmt(b2, sizeof b2, op->beta2);
        snprintf(b, sizeof b, "%s,%s", b1, b2);
        rc = put(v, "betas", b);
    }
    if (rc == 0 && cli_optim_option_applies(op, "sf-warmup-steps")) {
        snprintf(b, sizeof b, "%lld", (long long)op->warmup_steps);
        rc = put(v, "sf-warmup-steps", b);
    }
    return rc;
}

static int sched_values(cli_values *v, const ol_sched_params *sp, const ol_train_params *tp)
{
    const ol_sched_type t = sp->type;
    char b[1024];
    int rc = 0;
    if (sp->warmup_steps > 0)
        rc |= put_num(v, "warmup-start-factor", sp->warmup_start_factor);
    if (t == OL_SCHED_STEP || t == OL_SCHED_MULTISTEP || t == OL_SCHED_EXPONENTIAL)
        rc |= put_num(v, "gamma", sp->gamma);
    if (t == OL_SCHED_LINEAR)
        rc |= put_num(v, "end-factor", sp->end_factor);
    if ((t == OL_SCHED_CYCLIC || t == OL_SCHED_ONECYCLE) && sp->cycle_momentum) {
        rc |= put_num(v, "base-momentum", sp->base_momentum);
        rc |= put_num(v, "max-momentum", sp->max_momentum);
    }
    if (t == OL_SCHED_CYCLIC) { /* in steps: exact for any batch schedule */
        snprintf(b, sizeof b, "%lld", (long long)sp->step_size_up);
        rc |= put(v, "step-size-up", b);
        snprintf(b, sizeof b, "%lld", (long long)(sp->step_size_down > 0 ? sp->step_size_down : sp->step_size_up));
        rc |= put(v, "step-size-down", b);
    }
    if (t == OL_SCHED_CYCLIC && epochs_text(sp, tp, sp->step_size_up, b, sizeof b))
        rc |= put(v, "cycle-epochs", b);
    if (t == OL_SCHED_ONECYCLE) /* the peak: --lr unless given */
        rc |= put_num(v, "max-lr", sp->max_lr > 0.0 ? sp->max_lr : sp->base_lr);
    if (t == OL_SCHED_COSINE_RESTARTS && epochs_text(sp, tp, sp->t_0, b, sizeof b))
        rc |= put(v, "t0", b);
    if (t == OL_SCHED_MULTISTEP) {
        size_t len = 0;
        int ok = 1;
        for (int i = 0; i < sp->nmilestones && ok; i++) {
            char e[64];
            ok = epochs_text(sp, tp, sp->milestones[i], e, sizeof e) && len + strlen(e) + 2 < sizeof b;
            if (ok)
                len += (size_t)snprintf(b + len, sizeof b - len, "%s%s", i ? "," : "", e);
        }
        if (ok && sp->nmilestones > 0)
            rc |= put(v, "milestones", b);
    }
    /* the decay length when it is the rest of training after warm-up */
    const int64_t rest = sp->total_steps - sp->warmup_steps;
    const int64_t len = t == OL_SCHED_COSINE ? sp->t_max : sp->total_iters;
    if ((t == OL_SCHED_COSINE || t == OL_SCHED_LINEAR || t == OL_SCHED_POLYNOMIAL) && rest > 0 &&
        epochs_text(sp, tp, len > 0 ? len : rest, b, sizeof b))
        rc |= put(v, "decay-epochs", b);
    return rc;
}

static int batch_values(cli_values *v, const cli_batch_config *bc)
{
    char b[64];
    int rc = 0;
    if (bc->lr_scaling != OL_LR_SCALING_NONE) {
        snprintf(b, sizeof b, "%lld", (long long)bc->base_batch);
        rc |= put(v, "base-batch-size", b);
    }
    if (bc->sched.type == OL_BATCH_RAMP) {
        snprintf(b, sizeof b, "%lld", (long long)bc->sched.ramp_samples);
        rc |= put(v, "batch-ramp-samples", b);
        snprintf(b, sizeof b, "%lld",
                 (long long)(bc->sched.ramp_increment > 0 ? bc->sched.ramp_increment : bc->sched.batch));
        rc |= put(v, "batch-ramp-increment", b);
    }
    return rc;
}

int cli_effective_values(cli_values *out, const cli_values *v, const ol_optim_params *op, const ol_sched_params *sp,
                         const cli_batch_config *bc, const ol_train_params *tp)
{
    if (cli_copy(out, v) < 0)
        return -1;
    if (optim_values(out, op) != 0 || sched_values(out, sp, tp) != 0 || batch_values(out, bc) != 0) {
        cli_free(out);
        return -1;
    }
    return 0;
}
