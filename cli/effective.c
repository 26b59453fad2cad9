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

/* The value of a schedule option o as its field of sp holds it; 0 when it
 * has no such text (an option with a default of its own is never empty). */
static int option_text(const ol_sched_params *sp, const ol_train_params *tp, const ol_sched_option *o, char *b,
                       size_t cap)
{
    const char *field = (const char *)sp + o->field;
    double x;
    int k;
    int64_t n;
    switch (o->kind) {
    case OL_SOPT_NUMBER:
        memcpy(&x, field, sizeof x);
        fmt(b, cap, x);
        return 1;
    case OL_SOPT_INT:
        memcpy(&k, field, sizeof k);
        snprintf(b, cap, "%d", k);
        return 1;
    case OL_SOPT_STEPS:
        memcpy(&n, field, sizeof n);
        snprintf(b, cap, "%lld", (long long)n);
        return n > 0;
    case OL_SOPT_EPOCHS:
        memcpy(&n, field, sizeof n);
        return n > 0 && epochs_text(sp, tp, n, b, cap);
    case OL_SOPT_EPOCH_LIST: {
        size_t len = 0;
        for (int i = 0; i < sp->nmilestones; i++) {
            char e[64];
            if (!epochs_text(sp, tp, sp->milestones[i], e, sizeof e) || len + strlen(e) + 2 >= cap)
                return 0;
            len += (size_t)snprintf(b + len, cap - len, "%s%s", i ? "," : "", e);
        }
        return sp->nmilestones > 0;
    }
    default: return 0;
    }
}

/* The options of the schedule's descriptor, as resolved (ol_sched_resolve). */
static int sched_values(cli_values *v, const ol_sched_params *sp, const ol_train_params *tp)
{
    char b[1024];
    int rc = 0;
    if (sp->warmup_steps > 0)
        rc |= put_num(v, "warmup-start-factor", sp->warmup_start_factor);
    const ol_sched_algo *a = ol_sched_params_algo(sp);
    for (const ol_sched_option *o = a ? a->options : NULL; o && o < a->options + OL_SCHED_MAX_OPTIONS && o->name; o++)
        if (option_text(sp, tp, o, b, sizeof b))
            rc |= put(v, o->name, b);
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

/* A language model's batch and ramp in tokens (exact: samples x sequence length). */
static int token_values(cli_values *v, const cli_batch_config *bc, const ol_train_params *tp)
{
    const int64_t T = cli_model_context(v);
    char b[64];
    int rc = 0;
    if (T <= 0)
        return 0;
    snprintf(b, sizeof b, "%lld", (long long)tp->batch_size * (long long)T);
    rc |= put(v, "batch-tokens", b);
    if (bc->sched.type == OL_BATCH_RAMP) {
        snprintf(b, sizeof b, "%lld", (long long)(bc->sched.ramp_samples * T));
        rc |= put(v, "batch-ramp-tokens", b);
    }
    return rc;
}

int cli_effective_values(cli_values *out, const cli_values *v, const ol_optim_params *op, const ol_sched_params *sp,
                         const cli_batch_config *bc, const ol_train_params *tp)
{
    if (cli_copy(out, v) < 0)
        return -1;
    if (optim_values(out, op) != 0 || sched_values(out, sp, tp) != 0 || batch_values(out, bc) != 0 ||
        token_values(out, bc, tp) != 0) {
        cli_free(out);
        return -1;
    }
    return 0;
}
