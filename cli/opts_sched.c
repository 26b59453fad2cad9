/* Learning-rate, momentum and batch-size schedule options. Lengths are given
 * in epochs (fractions allowed) or steps, and converted to optimizer steps
 * here; a per-epoch schedule keeps its own lengths in epochs. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define SCHED_NAMES                                                                                                 \
    "constant, step, multistep, exponential, polynomial, linear, cosine, cosine-restarts (sgdr), cyclic, onecycle, " \
    "wsd, sequential, plateau"

const cli_opt cli_sched_opts[] = {
    {"schedule", CLI_VALUE, "cosine", "NAME", "Schedule", SCHED_NAMES ", or one a --plugin registers"},
    {"sched-param", CLI_VALUE, "", "K=V,...", "Schedule", "parameters of a registered schedule, by name"},
    {"per-epoch", CLI_FLAG, "0", NULL, "Schedule",
     "change the lr only at epoch boundaries (lengths below count whole epochs; warm-up stays per step)"},
    {"warmup-epochs", CLI_VALUE, "0", "E", "Schedule", "warm-up length in epochs (fractions allowed)"},
    {"warmup-steps", CLI_VALUE, "0", "N", "Schedule", "warm-up length in steps (overrides --warmup-epochs)"},
    {"warmup-ratio", CLI_VALUE, "0", "R", "Schedule",
     "warm-up length as a fraction of the training steps, when --warmup-steps and --warmup-epochs are 0"},
    {"warmup", CLI_VALUE, "linear", "SHAPE", "Schedule", "warm-up shape: linear or exponential"},
    {"warmup-start-factor", CLI_VALUE, "", "F", "Schedule",
     "warm-up starts at F * lr [linear 0, exponential 0.01]; auto: 1/(lr scaling factor), Goyal et al."},
    {"step-size", CLI_VALUE, "", "E", "Schedule", "step: decay every E epochs"},
    {"gamma", CLI_VALUE, "", "G", "Schedule", "step/multistep/exponential decay factor [0.1; exponential 0.95]"},
    {"milestones", CLI_VALUE, "", "E1,E2,...", "Schedule",
     "multistep: decay at these epochs [50% and 75% of training]"},
    {"min-lr-ratio", CLI_VALUE, "0", "R", "Schedule",
     "floor of cosine, SGDR, polynomial, linear and WSD as a fraction of the peak lr"},
    {"eta-min", CLI_VALUE, "0", "LR", "Schedule", "the same floor as an absolute lr"},
    {"power", CLI_VALUE, "1", "P", "Schedule", "polynomial decay power"},
    {"start-factor", CLI_VALUE, "1", "F", "Schedule", "linear: start at F * lr"},
    {"end-factor", CLI_VALUE, "", "F", "Schedule", "linear: end at F * lr [the floor ratio, 0]"},
    {"decay-epochs", CLI_VALUE, "", "E", "Schedule",
     "cosine T_max, linear/polynomial length in epochs [the rest of training after warm-up]"},
    {"t0", CLI_VALUE, "", "E", "Schedule", "cosine-restarts: first period in epochs [1/5 of training]"},
    {"t-mult", CLI_VALUE, "1", "M", "Schedule", "cosine-restarts: period multiplier (integer)"},
    {"max-lr", CLI_VALUE, "", "LR", "Schedule", "cyclic: upper lr (--lr is the lower); onecycle: peak [--lr]"},
    {"cycle-epochs", CLI_VALUE, "", "X", "Schedule",
     "cyclic: half-cycle (step size) of X epochs, 2 <= X <= 10 as Smith (2017) recommends [4]"},
    {"step-size-up", CLI_VALUE, "", "N", "Schedule", "cyclic: steps of the rising half (overrides --cycle-epochs)"},
    {"step-size-down", CLI_VALUE, "", "N", "Schedule", "cyclic: steps of the falling half [= rising]"},
    {"cyclic-mode", CLI_VALUE, "triangular", "MODE", "Schedule", "cyclic: triangular, triangular2 or exp_range"},
    {"cyclic-gamma", CLI_VALUE, "1", "G", "Schedule", "cyclic exp_range: amplitude factor per step"},
    {"pct-start", CLI_VALUE, "0.3", "F", "Schedule", "onecycle: fraction of training spent rising"},
    {"div-factor", CLI_VALUE, "25", "D", "Schedule", "onecycle: start at peak / D"},
    {"final-div-factor", CLI_VALUE, "1e4", "D", "Schedule", "onecycle: end at peak / (div-factor * D)"},
    {"anneal", CLI_VALUE, "cos", "SHAPE", "Schedule", "onecycle: cos or linear"},
    {"three-phase", CLI_FLAG, "0", NULL, "Schedule", "onecycle: up, down to the start, then annihilate (Smith 2018)"},
    {"no-cycle-momentum", CLI_FLAG, "0", NULL, "Schedule",
     "cyclic/onecycle: keep momentum (Adam beta1) fixed instead of cycling it against the lr"},
    {"base-momentum", CLI_VALUE, "", "M", "Schedule", "cyclic/onecycle: momentum at the lr peak [0.8 / 0.85]"},
    {"max-momentum", CLI_VALUE, "", "M", "Schedule", "cyclic/onecycle: momentum at the lr minimum [0.9 / 0.95]"},
    {"decay-frac", CLI_VALUE, "0.1", "F", "Schedule", "wsd: fraction of training (after warm-up) spent decaying"},
    {"wsd-decay", CLI_VALUE, "linear", "SHAPE", "Schedule", "wsd: decay shape linear, cosine or sqrt (1 - sqrt)"},
    {"sequence", CLI_VALUE, "", "SPECS", "Schedule",
     "sequential: parts 'NAME key=value ...; NAME ...' with keys from this group, e.g. "
     "'linear start-factor=0.1 end-factor=1; cosine eta-min=1e-4'"},
    {"sequence-milestones", CLI_VALUE, "", "E1,...", "Schedule", "sequential: epochs (after warm-up) where each next part starts"},
    {"plateau-mode", CLI_VALUE, "min", "MODE", "Schedule", "plateau: min (loss) or max (accuracy) of the validation metric"},
    {"plateau-factor", CLI_VALUE, "0.1", "F", "Schedule", "plateau: multiply the lr by F on a plateau"},
    {"plateau-patience", CLI_VALUE, "10", "N", "Schedule", "plateau: evaluations without improvement before a cut"},
    {"plateau-threshold", CLI_VALUE, "1e-4", "T", "Schedule", "plateau: smallest improvement that counts"},
    {"plateau-threshold-mode", CLI_VALUE, "rel", "MODE", "Schedule", "plateau: rel or abs threshold"},
    {"plateau-cooldown", CLI_VALUE, "0", "N", "Schedule", "plateau: evaluations to wait after a cut"},
    {"plateau-min-lr", CLI_VALUE, "0", "LR", "Schedule", "plateau: lower bound of the lr"},
    {NULL, 0, NULL, NULL, NULL, NULL}};

const cli_opt cli_batch_opts[] = {
    {"batch-schedule", CLI_VALUE, "constant", "NAME", "Batch size",
     "constant; milestones: multiply the batch at --batch-milestones instead of decaying the lr (Smith et al. "
     "2018); ramp: grow the global batch linearly over --batch-ramp-samples samples (BLOOM)"},
    {"batch-milestones", CLI_VALUE, "", "E1,E2,...", "Batch size", "milestones: epochs where the batch grows"},
    {"batch-factor", CLI_VALUE, "2", "F", "Batch size", "milestones: batch multiplier at each milestone"},
    {"batch-ramp-samples", CLI_VALUE, "", "N", "Batch size", "ramp: samples over which the batch reaches --max-batch-size"},
    {"batch-ramp-ratio", CLI_VALUE, "", "R", "Batch size",
     "ramp: the same as a fraction of the run's samples (epochs x training samples), without --batch-ramp-samples"},
    {"batch-ramp-increment", CLI_VALUE, "", "N", "Batch size", "ramp: the batch grows N samples at a time [--batch-size]"},
    {"max-batch-size", CLI_VALUE, "0", "B", "Batch size", "milestones: cap (0 = none); ramp: final global batch"},
    {"micro-batch-size", CLI_VALUE, "0", "M", "Batch size",
     "accumulate gradients over micro-batches of M samples (0 = the whole batch at once)"},
    {"lr-scaling", CLI_VALUE, "none", "RULE", "Batch size",
     "scale the lr with the global batch B: none, linear (B/B0, Goyal et al.), sqrt, linear-then-sqrt"},
    {"base-batch-size", CLI_VALUE, "", "B0", "Batch size", "batch size the lr was tuned for [--batch-size]"},
    {"lr-scaling-knee", CLI_VALUE, "8", "K", "Batch size", "linear-then-sqrt: linear up to K * B0, square root beyond"},
    {NULL, 0, NULL, NULL, NULL, NULL}};

const cli_opt cli_config_opts[] = {
    {"config", CLI_VALUE, "", "FILE", "Configuration",
     "read options from a YAML mapping (keys = long option names); command-line flags win"},
    {"recipe", CLI_VALUE, "", "NAME", "Configuration",
     "preset of optimizer, schedule and batch options (optimlab recipes); config files and flags win"},
    {NULL, 0, NULL, NULL, NULL, NULL}};

/* A length of e epochs in optimizer steps: whole epochs for a per-epoch
 * schedule; else the steps the first e epochs of data take (under a batch
 * schedule they are not e x steps_per_epoch). */
static int64_t epochs_to_steps(const cli_epochs *ep, int per_epoch, double e)
{
    if (per_epoch)
        return (int64_t)llround(e);
    if (ep->tp)
        return ol_train_epoch_steps(ep->tp, ep->n, e);
    return (int64_t)llround(e * (double)ep->steps_per_epoch);
}

static int fail(cli_values *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(cli_values *v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->err, sizeof v->err, fmt, ap);
    va_end(ap);
    return -1;
}

/* Parse only when given (empty keeps *out). */
static int opt_double(cli_values *v, const char *name, double lo, double hi, double *out)
{
    return *cli_str(v, name) ? cli_double(v, name, lo, hi, out) : 0;
}

/* A name from a fixed list; the error lists the choices. */
static int pick(cli_values *v, const char *name, const char *const *choices, int n, int *out)
{
    const char *s = cli_str(v, name);
    char all[256] = "";
    for (int i = 0; i < n; i++) {
        if (strcmp(s, choices[i]) == 0) {
            *out = i;
            return 0;
        }
        snprintf(all + strlen(all), sizeof all - strlen(all), "%s%s", i ? ", " : "", choices[i]);
    }
    return fail(v, "--%s: unknown value '%s' (%s)", name, s, all);
}

/* Goyal et al.: the warm-up starts at the unscaled lr, i.e. 1/k of the scaled one. */
static int auto_start_factor(cli_values *v, double *out)
{
    static const char *const rules[] = {"none", "linear", "sqrt", "linear-then-sqrt"};
    int r = 0;
    long long b = 0, b0 = 0;
    double knee = 8.0;
    if (cli_find(v, "lr-scaling") < 0 || cli_find(v, "batch-size") < 0)
        return fail(v, "--warmup-start-factor auto needs --lr-scaling and --batch-size");
    if (pick(v, "lr-scaling", rules, 4, &r) || cli_int(v, "batch-size", 1, 1LL << 40, &b))
        return -1;
    b0 = b;
    if (*cli_str(v, "base-batch-size") && cli_int(v, "base-batch-size", 1, 1LL << 40, &b0))
        return -1;
    if (cli_double(v, "lr-scaling-knee", 1.0, 1e9, &knee))
        return -1;
    double k = ol_lr_scale((ol_lr_scaling)r, (double)b, (double)b0, knee);
    *out = k > 1.0 ? 1.0 / k : 1.0;
    return 0;
}

static int build_sched(cli_values *v, double base_lr, const cli_epochs *ep, int64_t total, ol_sched_params *sp,
                       int nested);

/* Names of the options a --sequence part may set. */
static int part_key_ok(const char *key)
{
    static const char *const banned[] = {"schedule",      "sequence",     "sequence-milestones", "per-epoch",
                                         "warmup-epochs", "warmup-steps", "warmup-ratio",        "warmup",
                                         "warmup-start-factor"};
    for (size_t i = 0; i < sizeof banned / sizeof banned[0]; i++)
        if (strcmp(key, banned[i]) == 0)
            return 0;
    for (const cli_opt *o = cli_sched_opts; o->name; o++)
        if (strcmp(o->name, key) == 0)
            return 1;
    return 0;
}

/* --schedule sequential --sequence 'NAME k=v ...; NAME ...' --sequence-milestones E1,... */
static int build_sequence(cli_values *v, double base_lr, const cli_epochs *ep, ol_sched_params *sp)
{
    char buf[2048];
    const char *spec = cli_str(v, "sequence");
    if (!*spec)
        return fail(v, "--schedule sequential needs --sequence 'NAME key=value ...; NAME ...'");
    if (strlen(spec) >= sizeof buf)
        return fail(v, "--sequence: too long");
    snprintf(buf, sizeof buf, "%s", spec);
    char *texts[OL_SCHED_MAX_MILESTONES];
    int n = 0;
    for (char *save = NULL, *p = strtok_r(buf, ";", &save); p; p = strtok_r(NULL, ";", &save)) {
        if (n == OL_SCHED_MAX_MILESTONES)
            return fail(v, "--sequence: at most %d parts", OL_SCHED_MAX_MILESTONES);
        texts[n++] = p;
    }
    double ms[OL_SCHED_MAX_MILESTONES];
    int nm = 0;
    if (cli_double_list(v, "sequence-milestones", 0.0, 1e9, ms, OL_SCHED_MAX_MILESTONES, &nm))
        return -1;
    if (n < 1 || nm != n - 1)
        return fail(v, "--sequence has %d parts: --sequence-milestones needs %d epochs, got %d", n, n > 0 ? n - 1 : 0,
                    nm);
    const int64_t to_steps = sp->per_epoch ? ep->steps_per_epoch : 1;
    const int64_t main_len = sp->total_steps > 0 ? sp->total_steps - sp->warmup_steps : 0;
    ol_sched_params *parts = calloc((size_t)n, sizeof *parts);
    if (!parts)
        return fail(v, "out of memory");
    sp->parts = parts;
    sp->nparts = n;
    for (int i = 0; i < nm; i++)
        sp->milestones[i] = epochs_to_steps(ep, sp->per_epoch, ms[i]);
    sp->nmilestones = nm;
    for (int i = 0; i < n; i++) {
        cli_values c;
        if (cli_copy(&c, v) < 0)
            return fail(v, "out of memory");
        cli_set(&c, "warmup-epochs", "0", 1);
        cli_set(&c, "warmup-steps", "0", 1);
        cli_set(&c, "warmup-ratio", "0", 1);
        cli_set(&c, "warmup-start-factor", "", 1);
        cli_set(&c, "sequence", "", 1);
        int rc = 0, k = 0;
        for (char *save = NULL, *tok = strtok_r(texts[i], " \t\n", &save); tok && rc == 0;
             tok = strtok_r(NULL, " \t\n", &save), k++) {
            char *eq = strchr(tok, '=');
            if (k == 0 && !eq) {
                rc = cli_set(&c, "schedule", tok, 1);
                continue;
            }
            if (k == 0 || !eq) {
                rc = fail(v, "--sequence part %d: expected 'NAME key=value ...', got '%s'", i + 1, tok);
                break;
            }
            *eq = '\0';
            if (!part_key_ok(tok)) {
                rc = fail(v, "--sequence part %d: '%s' is not a schedule option a part can set", i + 1, tok);
                break;
            }
            rc = cli_set(&c, tok, eq + 1, 1);
        }
        if (k == 0 && rc == 0)
            rc = fail(v, "--sequence part %d is empty", i + 1);
        int64_t start = i > 0 ? sp->milestones[i - 1] * to_steps : 0;
        int64_t end = i < nm ? sp->milestones[i] * to_steps : main_len;
        if (rc == 0 && main_len > 0 && end <= start)
            rc = fail(v, "--sequence-milestones must increase and lie inside training");
        if (rc == 0 && build_sched(&c, base_lr, ep, end - start, &parts[i], 1) < 0)
            rc = fail(v, "--sequence part %d: %s", i + 1, c.err);
        cli_free(&c);
        if (rc < 0)
            return -1;
    }
    return 0;
}

void cli_free_sched(ol_sched_params *sp)
{
    if (sp->type == OL_SCHED_SEQUENTIAL)
        free((void *)sp->parts);
    sp->parts = NULL;
    sp->nparts = 0;
}

/* --sched-param NAME=VALUE[,...] into a registered schedule's parameters. */
static int set_user_params(cli_values *v, ol_ctx *reg, ol_sched_params *sp)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", cli_str(v, "sched-param"));
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '='), *end = NULL;
        double x = eq ? strtod(eq + 1, &end) : 0.0;
        if (!eq || end == eq + 1 || *end || !isfinite(x))
            return fail(v, "--sched-param: expected NAME=VALUE, got '%s'", tok);
        *eq = '\0';
        if (ol_sched_param_set(reg, sp, tok, x) < 0)
            return fail(v, "--sched-param: %s", ol_ctx_errmsg(reg));
    }
    return 0;
}

/* Options that only some schedules read: given (on the command line or in a
 * config file) for another, they would be ignored, so they are an error. A
 * recipe's presets are left alone; a sequence's parts inherit the options, so
 * for one the parts' schedules count. */
#define SB(t) (1u << (t))
#define SB_USER (1u << 31)
#define SB_FLOOR (SB(OL_SCHED_POLYNOMIAL) | SB(OL_SCHED_COSINE) | SB(OL_SCHED_COSINE_RESTARTS) | SB(OL_SCHED_WSD))
#define SB_CYC (SB(OL_SCHED_CYCLIC) | SB(OL_SCHED_ONECYCLE))
static const struct {
    const char *name;
    unsigned types;
    const char *which;
} sched_applies[] = {
    {"sched-param", SB_USER, "a registered schedule"},
    {"step-size", SB(OL_SCHED_STEP), "step"},
    {"gamma", SB(OL_SCHED_STEP) | SB(OL_SCHED_MULTISTEP) | SB(OL_SCHED_EXPONENTIAL), "step, multistep, exponential"},
    {"milestones", SB(OL_SCHED_MULTISTEP), "multistep"},
    {"min-lr-ratio", SB_FLOOR | SB(OL_SCHED_LINEAR), "polynomial, linear, cosine, cosine-restarts, wsd"},
    {"eta-min", SB_FLOOR, "polynomial, cosine, cosine-restarts, wsd"},
    {"power", SB(OL_SCHED_POLYNOMIAL), "polynomial"},
    {"start-factor", SB(OL_SCHED_LINEAR), "linear"},
    {"end-factor", SB(OL_SCHED_LINEAR), "linear"},
    {"decay-epochs", SB(OL_SCHED_COSINE) | SB(OL_SCHED_LINEAR) | SB(OL_SCHED_POLYNOMIAL), "cosine, linear, polynomial"},
    {"t0", SB(OL_SCHED_COSINE_RESTARTS), "cosine-restarts"},
    {"t-mult", SB(OL_SCHED_COSINE_RESTARTS), "cosine-restarts"},
    {"max-lr", SB_CYC, "cyclic, onecycle"},
    {"cycle-epochs", SB(OL_SCHED_CYCLIC), "cyclic"},
    {"step-size-up", SB(OL_SCHED_CYCLIC), "cyclic"},
    {"step-size-down", SB(OL_SCHED_CYCLIC), "cyclic"},
    {"cyclic-mode", SB(OL_SCHED_CYCLIC), "cyclic"},
    {"cyclic-gamma", SB(OL_SCHED_CYCLIC), "cyclic"},
    {"pct-start", SB(OL_SCHED_ONECYCLE), "onecycle"},
    {"div-factor", SB(OL_SCHED_ONECYCLE), "onecycle"},
    {"final-div-factor", SB(OL_SCHED_ONECYCLE), "onecycle"},
    {"anneal", SB(OL_SCHED_ONECYCLE), "onecycle"},
    {"three-phase", SB(OL_SCHED_ONECYCLE), "onecycle"},
    {"no-cycle-momentum", SB_CYC, "cyclic, onecycle"},
    {"base-momentum", SB_CYC, "cyclic, onecycle"},
    {"max-momentum", SB_CYC, "cyclic, onecycle"},
    {"decay-frac", SB(OL_SCHED_WSD), "wsd"},
    {"wsd-decay", SB(OL_SCHED_WSD), "wsd"},
    {"sequence", SB(OL_SCHED_SEQUENTIAL), "sequential"},
    {"sequence-milestones", SB(OL_SCHED_SEQUENTIAL), "sequential"},
    {"plateau-mode", SB(OL_SCHED_PLATEAU), "plateau"},
    {"plateau-factor", SB(OL_SCHED_PLATEAU), "plateau"},
    {"plateau-patience", SB(OL_SCHED_PLATEAU), "plateau"},
    {"plateau-threshold", SB(OL_SCHED_PLATEAU), "plateau"},
    {"plateau-threshold-mode", SB(OL_SCHED_PLATEAU), "plateau"},
    {"plateau-cooldown", SB(OL_SCHED_PLATEAU), "plateau"},
    {"plateau-min-lr", SB(OL_SCHED_PLATEAU), "plateau"},
};

static unsigned sched_bit(const ol_sched_params *sp)
{
    return sp->type == OL_SCHED_USER ? SB_USER : sp->type < OL_SCHED_COUNT ? SB(sp->type) : 0u;
}

static int check_sched_applies(cli_values *v, const ol_sched_params *sp)
{
    unsigned have = sched_bit(sp);
    for (int i = 0; sp->type == OL_SCHED_SEQUENTIAL && i < sp->nparts; i++)
        have |= sched_bit(&sp->parts[i]);
    for (size_t i = 0; i < sizeof sched_applies / sizeof sched_applies[0]; i++)
        if (cli_given(v, sched_applies[i].name) && !(sched_applies[i].types & have))
            return fail(v, "--%s does not apply to --schedule %s (only %s)", sched_applies[i].name,
                        cli_str(v, "schedule"), sched_applies[i].which);
    return 0;
}

static int build_sched(cli_values *v, double base_lr, const cli_epochs *ep, int64_t total, ol_sched_params *sp,
                       int nested)
{
    const int64_t spe = ep->steps_per_epoch;
    const char *name = cli_str(v, "schedule");
    ol_ctx *reg = cli_registry(v);
    if (!reg)
        return -1;
    if (ol_sched_params_for(reg, name, sp) < 0) {
        char names[512] = "";
        for (int i = 0; i < ol_sched_algo_count(reg); i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), ", %s", ol_sched_algo_at(reg, i)->name);
        return fail(v, "--schedule: unknown schedule '%s' (%s%s)", name, SCHED_NAMES, names);
    }
    const ol_sched_type t = sp->type;
    if (nested && t == OL_SCHED_SEQUENTIAL)
        return fail(v, "sequential schedules cannot be nested");
    if (nested && t == OL_SCHED_PLATEAU)
        return fail(v, "reduce-on-plateau cannot be part of a sequence");
    if (set_user_params(v, reg, sp))
        return -1;
    sp->base_lr = base_lr;
    sp->steps_per_epoch = spe;
    sp->total_steps = total;
    sp->per_epoch = cli_flag(v, "per-epoch");
    const int pe = sp->per_epoch; /* per-epoch schedules count in epochs, per-iteration ones in steps */
    double we, wr, x;
    long long ws, n;
    int k = 0;
    static const char *const warm_shapes[] = {"linear", "exponential"};
    if (cli_double(v, "warmup-epochs", 0.0, 1e6, &we) || cli_int(v, "warmup-steps", 0, INT64_MAX / 2, &ws) ||
        cli_double(v, "warmup-ratio", 0.0, 1.0, &wr) || pick(v, "warmup", warm_shapes, 2, &sp->warmup_exponential))
        return -1;
    /* the warm-up is per step also in per-epoch schedules */
    sp->warmup_steps = ws > 0 ? ws : we > 0.0 ? epochs_to_steps(ep, 0, we) : (int64_t)llround(wr * (double)total);
    sp->warmup_start_factor = sp->warmup_exponential ? 0.01 : 0.0;
    if (strcmp(cli_str(v, "warmup-start-factor"), "auto") == 0) {
        if (auto_start_factor(v, &sp->warmup_start_factor))
            return -1;
    } else if (opt_double(v, "warmup-start-factor", 0.0, 1.0, &sp->warmup_start_factor))
        return -1;
    if (opt_double(v, "gamma", 1e-12, 1e6, &sp->gamma) || cli_double(v, "min-lr-ratio", 0.0, 1.0, &sp->min_lr_ratio) ||
        cli_double(v, "eta-min", 0.0, 1e6, &sp->eta_min) || cli_double(v, "power", 0.0, 1e3, &sp->power))
        return -1;
    const int64_t length = total > 0 ? (total - sp->warmup_steps) / (sp->per_epoch ? spe : 1) : 0;
    if (*cli_str(v, "step-size")) {
        if (cli_double(v, "step-size", 1e-9, 1e9, &x))
            return -1;
        sp->step_size = epochs_to_steps(ep, pe, x) > 0 ? epochs_to_steps(ep, pe, x) : 1;
    } else if (t == OL_SCHED_STEP) {
        return fail(v, "--schedule step needs --step-size (epochs)");
    }
    if (t == OL_SCHED_MULTISTEP) {
        double ms[OL_SCHED_MAX_MILESTONES];
        int nm = 0;
        if (cli_double_list(v, "milestones", 0.0, 1e9, ms, OL_SCHED_MAX_MILESTONES, &nm))
            return -1;
        if (nm == 0) { /* 50% and 75% of training, after warm-up */
            sp->milestones[0] = length / 2;
            sp->milestones[1] = length * 3 / 4;
            sp->nmilestones = 2;
        } else {
            for (int i = 0; i < nm; i++)
                sp->milestones[i] = epochs_to_steps(ep, pe, ms[i]);
            sp->nmilestones = nm;
        }
    }
    /* linear: a decay from start-factor to the floor by default */
    sp->end_factor = sp->min_lr_ratio;
    if (cli_double(v, "start-factor", 0.0, 1e6, &sp->start_factor) ||
        opt_double(v, "end-factor", 0.0, 1e6, &sp->end_factor))
        return -1;
    if (*cli_str(v, "decay-epochs")) {
        if (cli_double(v, "decay-epochs", 1e-9, 1e9, &x))
            return -1;
        int64_t len = epochs_to_steps(ep, pe, x) > 0 ? epochs_to_steps(ep, pe, x) : 1;
        sp->t_max = len;
        sp->total_iters = t == OL_SCHED_ONECYCLE ? 0 : len;
    }
    if (t == OL_SCHED_COSINE_RESTARTS) {
        if (*cli_str(v, "t0")) {
            if (cli_double(v, "t0", 1e-9, 1e9, &x))
                return -1;
            sp->t_0 = epochs_to_steps(ep, pe, x);
        } else {
            sp->t_0 = length / 5;
        }
        if (sp->t_0 < 1)
            sp->t_0 = 1;
        if (cli_int(v, "t-mult", 1, 1000, &n))
            return -1;
        sp->t_mult = (int)n;
    }
    if (t == OL_SCHED_CYCLIC || t == OL_SCHED_ONECYCLE) {
        if (opt_double(v, "max-lr", 0.0, 1e6, &sp->max_lr))
            return -1;
        sp->cycle_momentum = !cli_flag(v, "no-cycle-momentum");
        if (opt_double(v, "base-momentum", 0.0, 1.0, &sp->base_momentum) ||
            opt_double(v, "max-momentum", 0.0, 1.0, &sp->max_momentum))
            return -1;
    }
    if (t == OL_SCHED_CYCLIC) {
        static const char *const modes[] = {"triangular", "triangular2", "exp_range"};
        if (!*cli_str(v, "max-lr"))
            return fail(v, "--schedule cyclic needs --max-lr (the upper lr; --lr is the lower)");
        double ce = 4.0;
        if (*cli_str(v, "cycle-epochs") && cli_double(v, "cycle-epochs", 2.0, 10.0, &ce))
            return -1;
        sp->step_size_up = epochs_to_steps(ep, pe, ce);
        if (*cli_str(v, "step-size-up")) { /* overrides --cycle-epochs */
            if (cli_int(v, "step-size-up", 1, INT64_MAX / 4, &n))
                return -1;
            sp->step_size_up = n;
        }
        if (*cli_str(v, "step-size-down")) {
            if (cli_int(v, "step-size-down", 1, INT64_MAX / 4, &n))
                return -1;
            sp->step_size_down = n;
        }
        if (pick(v, "cyclic-mode", modes, 3, &k) || cli_double(v, "cyclic-gamma", 1e-9, 1.0, &sp->cyclic_gamma))
            return -1;
        sp->cyclic_mode = (ol_cyclic_mode)k;
    }
    if (t == OL_SCHED_ONECYCLE) {
        static const char *const shapes[] = {"cos", "linear"};
        if (cli_double(v, "pct-start", 1e-9, 0.999999, &sp->pct_start) ||
            cli_double(v, "div-factor", 1.0, 1e12, &sp->div_factor) ||
            cli_double(v, "final-div-factor", 1.0, 1e12, &sp->final_div_factor) || pick(v, "anneal", shapes, 2, &k))
            return -1;
        sp->anneal_linear = k;
        sp->three_phase = cli_flag(v, "three-phase");
    }
    if (t == OL_SCHED_WSD) {
        static const char *const shapes[] = {"linear", "cosine", "sqrt"};
        if (cli_double(v, "decay-frac", 0.0, 1.0, &sp->decay_frac) || pick(v, "wsd-decay", shapes, 3, &k))
            return -1;
        sp->wsd_shape = (ol_wsd_shape)k;
    }
    if (t == OL_SCHED_PLATEAU) {
        static const char *const modes[] = {"min", "max"}, *const th[] = {"rel", "abs"};
        long long pat, cd;
        if (pick(v, "plateau-mode", modes, 2, &sp->plateau_maximize) ||
            cli_double(v, "plateau-factor", 1e-9, 0.999999, &sp->plateau_factor) ||
            cli_int(v, "plateau-patience", 0, 1000000, &pat) ||
            cli_double(v, "plateau-threshold", 0.0, 1e9, &sp->plateau_threshold) ||
            pick(v, "plateau-threshold-mode", th, 2, &sp->plateau_threshold_abs) ||
            cli_int(v, "plateau-cooldown", 0, 1000000, &cd) ||
            cli_double(v, "plateau-min-lr", 0.0, 1e6, &sp->plateau_min_lr))
            return -1;
        sp->plateau_patience = (int)pat;
        sp->plateau_cooldown = (int)cd;
    }
    if (t == OL_SCHED_SEQUENTIAL && build_sequence(v, base_lr, ep, sp) < 0) {
        cli_free_sched(sp);
        return -1;
    }
    if (!nested && check_sched_applies(v, sp) < 0) {
        cli_free_sched(sp);
        return -1;
    }
    ol_ctx *tmp = ol_ctx_new(0);
    int rc = tmp ? ol_sched_validate(tmp, sp) : -1;
    if (rc < 0) {
        snprintf(v->err, sizeof v->err, "%s", tmp ? ol_ctx_errmsg(tmp) : "out of memory");
        cli_free_sched(sp);
    }
    ol_ctx_free(tmp);
    return rc < 0 ? -1 : 0;
}

int cli_build_sched(cli_values *v, double base_lr, int64_t spe, int64_t total, ol_sched_params *sp)
{
    if (total < 0)
        return fail(v, "the training length must be >= 0 steps, got %lld", (long long)total);
    cli_epochs ep = {spe, NULL, 0};
    return build_sched(v, base_lr, &ep, total, sp, 0);
}

int cli_build_sched_run(cli_values *v, double base_lr, const ol_train_params *tp, int64_t n, int64_t total,
                        ol_sched_params *sp)
{
    if (total < 0)
        return fail(v, "the training length must be >= 0 steps, got %lld", (long long)total);
    int64_t spe = tp->drop_last ? n / tp->batch_size : (n + tp->batch_size - 1) / tp->batch_size;
    cli_epochs ep = {spe > 0 ? spe : 1, tp, n};
    return build_sched(v, base_lr, &ep, total, sp, 0);
}

/* Batch milestone k in steps: the steps the first ms[k] data epochs take with
 * the batch grown at the milestones before it. */
static void batch_milestones(const ol_train_params *tp, int64_t n, const double *ms, int nm, ol_batch_sched_params *b)
{
    ol_train_params walk = *tp;
    walk.batch_sched = b;
    for (int k = 0; k < nm; k++) {
        b->nmilestones = k;
        b->milestones[k] = ol_train_epoch_steps(&walk, n, ms[k]);
    }
    b->nmilestones = nm;
}

/* The same for the batch schedule and lr scaling options. */
static int check_batch_applies(cli_values *v, ol_batch_sched_type t, ol_lr_scaling r)
{
    static const struct {
        const char *name;
        unsigned types;
        const char *which;
    } applies[] = {
        {"batch-milestones", 1u << OL_BATCH_MILESTONES, "--batch-schedule milestones"},
        {"batch-factor", 1u << OL_BATCH_MILESTONES, "--batch-schedule milestones"},
        {"batch-ramp-samples", 1u << OL_BATCH_RAMP, "--batch-schedule ramp"},
        {"batch-ramp-ratio", 1u << OL_BATCH_RAMP, "--batch-schedule ramp"},
        {"batch-ramp-increment", 1u << OL_BATCH_RAMP, "--batch-schedule ramp"},
        {"max-batch-size", 1u << OL_BATCH_MILESTONES | 1u << OL_BATCH_RAMP, "--batch-schedule milestones and ramp"},
    };
    for (size_t i = 0; i < sizeof applies / sizeof applies[0]; i++)
        if (cli_given(v, applies[i].name) && !(applies[i].types & (1u << t)))
            return fail(v, "--%s does not apply to --batch-schedule %s (only %s)", applies[i].name,
                        cli_str(v, "batch-schedule"), applies[i].which);
    if (cli_given(v, "lr-scaling-knee") && r != OL_LR_SCALING_LINEAR_THEN_SQRT)
        return fail(v, "--lr-scaling-knee applies only to --lr-scaling linear-then-sqrt");
    if (cli_given(v, "base-batch-size") && r == OL_LR_SCALING_NONE && strcmp(cli_str(v, "warmup-start-factor"), "auto") != 0)
        return fail(v, "--base-batch-size applies only with --lr-scaling (or --warmup-start-factor auto)");
    return 0;
}

int cli_build_batch_sched(cli_values *v, const ol_train_params *tp, int64_t n, cli_batch_config *bc)
{
    const int64_t batch = tp->batch_size;
    static const char *const rules[] = {"none", "linear", "sqrt", "linear-then-sqrt"};
    ol_batch_sched_type t;
    const char *name = cli_str(v, "batch-schedule");
    memset(bc, 0, sizeof *bc);
    if (ol_batch_sched_from_name(name, &t) < 0)
        return fail(v, "--batch-schedule: unknown batch schedule '%s' (constant, milestones, ramp)", name);
    ol_batch_sched_params *b = &bc->sched;
    *b = ol_batch_sched_default_params(t);
    b->batch = batch;
    long long x;
    int r;
    if (cli_int(v, "max-batch-size", 0, 1LL << 40, &x))
        return -1;
    b->max_batch = x;
    if (cli_double(v, "batch-factor", 1.0, 1e6, &b->factor))
        return -1;
    if (t == OL_BATCH_MILESTONES) {
        double ms[OL_SCHED_MAX_MILESTONES];
        int nm = 0;
        if (cli_double_list(v, "batch-milestones", 0.0, 1e9, ms, OL_SCHED_MAX_MILESTONES, &nm))
            return -1;
        if (nm == 0)
            return fail(v, "--batch-schedule milestones needs --batch-milestones (epochs)");
        batch_milestones(tp, n, ms, nm, b);
    }
    if (t == OL_BATCH_RAMP) {
        const int by_ratio = !*cli_str(v, "batch-ramp-samples") && *cli_str(v, "batch-ramp-ratio");
        if ((!*cli_str(v, "batch-ramp-samples") && !by_ratio) || b->max_batch == 0)
            return fail(v, "--batch-schedule ramp needs --batch-ramp-samples (or --batch-ramp-ratio) and "
                           "--max-batch-size (the final batch)");
        double ratio = 0.0;
        if (*cli_str(v, "batch-ramp-ratio") && cli_double(v, "batch-ramp-ratio", 1e-9, 1e6, &ratio))
            return -1;
        if (by_ratio) { /* a fraction of the run's samples */
            if (tp->epochs <= 0)
                return fail(v, "--batch-ramp-ratio needs the run's length in epochs");
            x = llround(ratio * (double)tp->epochs * (double)n);
            b->ramp_samples = x > 0 ? x : 1;
        } else {
            if (cli_int(v, "batch-ramp-samples", 1, INT64_MAX / 4, &x))
                return -1;
            b->ramp_samples = x;
        }
        if (*cli_str(v, "batch-ramp-increment")) {
            if (cli_int(v, "batch-ramp-increment", 1, 1LL << 40, &x))
                return -1;
            b->ramp_increment = x;
        }
    }
    if (pick(v, "lr-scaling", rules, 4, &r))
        return -1;
    bc->lr_scaling = (ol_lr_scaling)r;
    bc->base_batch = batch;
    if (*cli_str(v, "base-batch-size")) {
        if (cli_int(v, "base-batch-size", 1, 1LL << 40, &x))
            return -1;
        bc->base_batch = x;
    }
    if (cli_double(v, "lr-scaling-knee", 1.0, 1e9, &bc->knee) || cli_int(v, "micro-batch-size", 0, 1LL << 40, &x))
        return -1;
    bc->micro_batch = x;
    if (check_batch_applies(v, t, bc->lr_scaling) < 0)
        return -1;
    int64_t biggest = b->max_batch > b->batch ? b->max_batch : b->batch;
    if (bc->micro_batch > biggest)
        return fail(v, "--micro-batch-size %lld is larger than the largest batch %lld", (long long)bc->micro_batch,
                    (long long)biggest);
    ol_ctx *tmp = ol_ctx_new(0);
    int rc = tmp ? ol_batch_sched_validate(tmp, b) : -1;
    if (rc < 0)
        snprintf(v->err, sizeof v->err, "%s", tmp ? ol_ctx_errmsg(tmp) : "out of memory");
    ol_ctx_free(tmp);
    return rc < 0 ? -1 : 0;
}

double cli_batch_lr_scale(const cli_batch_config *bc, int64_t batch)
{
    return ol_lr_scale(bc->lr_scaling, (double)batch, (double)bc->base_batch, bc->knee);
}
