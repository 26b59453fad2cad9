/* Learning-rate schedule options. Lengths are given in epochs (fractions
 * allowed) or steps, and converted to optimizer steps here. */
#include <math.h>
#include <string.h>

#include "common.h"

const cli_opt cli_sched_opts[] = {
    {"schedule", CLI_VALUE, "cosine", "NAME", "Schedule",
     "constant, step, multistep, exponential, polynomial, linear, cosine"},
    {"per-epoch", CLI_FLAG, "0", NULL, "Schedule", "change the lr only at epoch boundaries"},
    {"warmup-epochs", CLI_VALUE, "0", "E", "Schedule", "linear warm-up length in epochs (fractions allowed)"},
    {"warmup-steps", CLI_VALUE, "0", "N", "Schedule", "linear warm-up length in steps (overrides --warmup-epochs)"},
    {"warmup-start-factor", CLI_VALUE, "0", "F", "Schedule", "warm-up starts at F * lr"},
    {"step-size", CLI_VALUE, "", "E", "Schedule", "step: decay every E epochs"},
    {"gamma", CLI_VALUE, "0.1", "G", "Schedule", "step/multistep/exponential decay factor"},
    {"milestones", CLI_VALUE, "", "E1,E2,...", "Schedule",
     "multistep: decay at these epochs [50% and 75% of training]"},
    {"min-lr-ratio", CLI_VALUE, "0", "R", "Schedule", "cosine floor as a fraction of the peak lr"},
    {"eta-min", CLI_VALUE, "0", "LR", "Schedule", "cosine floor as an absolute lr"},
    {"power", CLI_VALUE, "1", "P", "Schedule", "polynomial decay power"},
    {NULL, 0, NULL, NULL, NULL, NULL}};

static int64_t epochs_to_steps(double e, int64_t spe) { return (int64_t)llround(e * (double)spe); }

int cli_build_sched(cli_values *v, double base_lr, int64_t spe, int64_t total, ol_sched_params *sp)
{
    ol_sched_type t;
    const char *name = cli_str(v, "schedule");
    if (ol_sched_from_name(name, &t) < 0) {
        snprintf(v->err, sizeof v->err,
                 "--schedule: unknown schedule '%s' (constant, step, multistep, exponential, polynomial, linear, "
                 "cosine)",
                 name);
        return -1;
    }
    *sp = ol_sched_default_params(t);
    sp->base_lr = base_lr;
    sp->steps_per_epoch = spe;
    sp->total_steps = total;
    sp->per_epoch = cli_flag(v, "per-epoch");
    /* per-epoch schedules count in epochs, per-iteration ones in steps */
    const int64_t unit = sp->per_epoch ? 1 : spe;
    double we, x;
    long long ws;
    if (cli_double(v, "warmup-epochs", 0.0, 1e6, &we) || cli_int(v, "warmup-steps", 0, INT64_MAX / 2, &ws) ||
        cli_double(v, "warmup-start-factor", 0.0, 1.0, &sp->warmup_start_factor) ||
        cli_double(v, "gamma", 1e-12, 1e6, &sp->gamma) || cli_double(v, "min-lr-ratio", 0.0, 1.0, &sp->min_lr_ratio) ||
        cli_double(v, "eta-min", 0.0, 1e6, &sp->eta_min) || cli_double(v, "power", 0.0, 1e3, &sp->power))
        return -1;
    sp->warmup_steps = ws > 0 ? ws : epochs_to_steps(we, spe);
    if (*cli_str(v, "step-size")) {
        if (cli_double(v, "step-size", 1e-9, 1e9, &x))
            return -1;
        sp->step_size = epochs_to_steps(x, unit) > 0 ? epochs_to_steps(x, unit) : 1;
    } else if (t == OL_SCHED_STEP) {
        snprintf(v->err, sizeof v->err, "--schedule step needs --step-size (epochs)");
        return -1;
    }
    double ms[OL_SCHED_MAX_MILESTONES];
    int nm = 0;
    if (cli_double_list(v, "milestones", 0.0, 1e9, ms, OL_SCHED_MAX_MILESTONES, &nm))
        return -1;
    if (nm == 0 && t == OL_SCHED_MULTISTEP) { /* 50% and 75% of training, after warm-up */
        int64_t len = (total - sp->warmup_steps) / (sp->per_epoch ? spe : 1);
        sp->milestones[0] = len / 2;
        sp->milestones[1] = len * 3 / 4;
        sp->nmilestones = 2;
    } else {
        for (int i = 0; i < nm; i++)
            sp->milestones[i] = epochs_to_steps(ms[i], unit);
        sp->nmilestones = nm;
    }
    ol_ctx *tmp = ol_ctx_new(0);
    int rc = tmp ? ol_sched_validate(tmp, sp) : -1;
    if (rc < 0)
        snprintf(v->err, sizeof v->err, "%s", tmp ? ol_ctx_errmsg(tmp) : "out of memory");
    ol_ctx_free(tmp);
    return rc < 0 ? -1 : 0;
}
