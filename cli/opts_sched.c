/* Learning-rate, momentum and batch-size schedule options. Lengths are given
 * in epochs (fractions allowed) or steps, and converted to optimizer steps
 * here; a per-epoch schedule keeps its own lengths in epochs. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* The options of every schedule; each schedule's own options come from its
 * descriptor (ol_sched_algo.options) in place of the CLI_EXPAND entry. */
const cli_opt cli_sched_opts[] = {
    {"schedule", CLI_VALUE, "cosine", "NAME", "Schedule", "a built-in or one a --plugin registers:"},
    {"sched-param", CLI_VALUE, "", "K=V,...", "Schedule", "parameters of a schedule that has them, by name"},
    {"per-epoch", CLI_FLAG, "0", NULL, "Schedule",
     "change the lr only at epoch boundaries (lengths below count whole epochs; warm-up stays per step)"},
    {"warmup-epochs", CLI_VALUE, "0", "E", "Schedule", "warm-up length in epochs (fractions allowed)"},
    {"warmup-steps", CLI_VALUE, "0", "N", "Schedule", "warm-up length in steps (overrides --warmup-epochs)"},
    {"warmup-ratio", CLI_VALUE, "0", "R", "Schedule",
     "warm-up length as a fraction of the training steps, when --warmup-steps and --warmup-epochs are 0"},
    {"warmup-tokens", CLI_VALUE, "", "N", "Schedule",
     "language models: warm-up until N tokens have been consumed (N / --seq-len samples, rounded up, converted to "
     "steps through the batch schedule), when --warmup-steps and --warmup-epochs are 0"},
    {"decay-tokens", CLI_VALUE, "", "N", "Schedule",
     "language models: the length --decay-epochs sets, in tokens (the steps of the first N tokens; polynomial, "
     "linear, cosine)"},
    {"warmup-samples-ratio", CLI_VALUE, "", "R", "Schedule",
     "warm-up until the fraction R of the run's samples (a language model's tokens) has been consumed, through "
     "the batch schedule; instead of --warmup-ratio (BLOOM: 375M of 450B tokens, 0.000833)"},
    {"decay-samples-ratio", CLI_VALUE, "", "R", "Schedule",
     "the decay (where --decay-epochs applies) ends once the fraction R of the run's samples has been consumed, "
     "warm-up included (Megatron-LM's --lr-decay-tokens; BLOOM: 410B of 450B tokens, 0.911)"},
    {"warmup", CLI_VALUE, "linear", "SHAPE", "Schedule", "warm-up shape: linear or exponential"},
    {"warmup-start-factor", CLI_VALUE, "", "F", "Schedule",
     "warm-up starts at F * lr [linear 0, exponential 0.01]; auto: 1/(lr scaling factor), Goyal et al."},
    {"sequence", CLI_VALUE, "", "SPECS", "Schedule",
     "sequential: parts 'NAME key=value ...; NAME ...' with keys from this group, e.g. "
     "'linear start-factor=0.1 end-factor=1; cosine eta-min=1e-4'"},
    {"sequence-milestones", CLI_VALUE, "", "E1,...", "Schedule", "sequential: epochs (after warm-up) where each next part starts"},
    {"schedule-options", CLI_EXPAND, NULL, NULL, "Schedule", NULL},
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
    {"batch-ramp-tokens", CLI_VALUE, "", "N", "Batch size",
     "ramp: language models: the ramp's length in tokens (N / --seq-len samples, rounded up), instead of "
     "--batch-ramp-samples"},
    {"batch-ramp-increment", CLI_VALUE, "", "N", "Batch size", "ramp: the batch grows N samples at a time [--batch-size]"},
    {"max-batch-size", CLI_VALUE, "0", "B", "Batch size", "milestones: cap (0 = none); ramp: final global batch"},
    {"batch-tokens", CLI_VALUE, "", "N", "Batch size",
     "language models: the (starting) global batch in tokens, batch size x --seq-len, instead of --batch-size (a "
     "multiple of --seq-len)"},
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

/* The tokens of one sample: the language model's context (commands with
 * model options), or optimlab schedule's --seq-len; 0 when there is none. */
static int64_t tokens_per_sample(cli_values *v)
{
    long long t;
    if (cli_find(v, "model") >= 0)
        return cli_model_context(v);
    if (*cli_str(v, "seq-len") && cli_int(v, "seq-len", 1, 1 << 20, &t) == 0)
        return t;
    return 0;
}

static int no_tokens(cli_values *v, const char *name)
{
    if (cli_find(v, "model") >= 0)
        return fail(v, "--%s does not apply to --model %s (only language models: gpt, gpt-mini, gpt2-124m)", name,
                    cli_str(v, "model"));
    return fail(v, "--%s needs --seq-len T (the tokens of one sample)", name);
}

/* Option `name`, a count of tokens, as the samples that hold them (rounded up). */
static int tokens_to_samples(cli_values *v, const char *name, int64_t *samples)
{
    const int64_t T = tokens_per_sample(v);
    long long x;
    if (T <= 0)
        return no_tokens(v, name);
    if (cli_int(v, name, 1, INT64_MAX / 2, &x))
        return -1;
    *samples = (x + T - 1) / T;
    return 0;
}

int cli_batch_tokens(cli_values *v)
{
    if (!*cli_str(v, "batch-tokens"))
        return 0;
    const int64_t T = tokens_per_sample(v);
    long long x;
    if (T <= 0)
        return no_tokens(v, "batch-tokens");
    if (cli_int(v, "batch-tokens", 1, INT64_MAX / 2, &x))
        return -1;
    if (x % T != 0)
        return fail(v, "--batch-tokens %lld is not a multiple of --seq-len %lld (a batch holds whole sequences)", x,
                    (long long)T);
    if (cli_given(v, "batch-size"))
        return fail(v, "--batch-tokens and --batch-size both set the batch: give one");
    char b[32];
    snprintf(b, sizeof b, "%lld", x / (long long)T);
    return cli_set(v, "batch-size", b, CLI_RESOLVED) < 0 ? fail(v, "out of memory") : 0;
}

/* A length in samples as optimizer steps of the run (through its batch schedule). */
static int samples_to_steps(cli_values *v, const cli_epochs *ep, int per_epoch, const char *name, int64_t samples,
                            int64_t *steps)
{
    if (per_epoch)
        return fail(v, "--%s: lengths in tokens need a per-step schedule (not --per-epoch)", name);
    if (ep->tp)
        *steps = ol_train_sample_steps(ep->tp, ep->n, samples);
    else /* epochs of steps_per_epoch batches of unknown size: no conversion */
        return fail(v, "--%s: lengths in tokens are not available here", name);
    return 0;
}

/* Descriptor length options that a token option gives in tokens: the token
 * option applies where the length option does. */
static const char *const length_tokens[][3] = {{"decay-epochs", "decay-tokens", "decay-samples-ratio"}};

static const char *tokens_form(const char *name)
{
    for (size_t i = 0; i < sizeof length_tokens / sizeof length_tokens[0]; i++)
        if (strcmp(name, length_tokens[i][0]) == 0)
            return length_tokens[i][1];
    return NULL;
}

static const char *ratio_form(const char *name)
{
    for (size_t i = 0; i < sizeof length_tokens / sizeof length_tokens[0]; i++)
        if (strcmp(name, length_tokens[i][0]) == 0)
            return length_tokens[i][2];
    return NULL;
}

/* Option `name`, a fraction of the run's samples, as the steps taken until
 * that many samples (at least 1) have been consumed. */
static int ratio_to_steps(cli_values *v, const cli_epochs *ep, int per_epoch, const char *name, int64_t *steps)
{
    double r;
    if (cli_double(v, name, 0.0, 1.0, &r))
        return -1;
    if (!ep->tp || ep->samples <= 0)
        return fail(v, "--%s: fractions of the run's samples are not available here", name);
    int64_t s = llround(r * (double)ep->samples);
    return samples_to_steps(v, ep, per_epoch, name, s > 0 ? s : 1, steps);
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

/* Names of the options a --sequence part may set: the schedule options
 * (derived ones included), less those of the whole sequence. */
static int part_key_ok(const cli_values *v, const char *key)
{
    static const char *const banned[] = {"schedule",      "sequence",     "sequence-milestones", "per-epoch",
                                         "warmup-epochs", "warmup-steps", "warmup-ratio",        "warmup",
                                         "warmup-start-factor", "warmup-tokens", "warmup-samples-ratio",
                                         "decay-samples-ratio"};
    for (size_t i = 0; i < sizeof banned / sizeof banned[0]; i++)
        if (strcmp(key, banned[i]) == 0)
            return 0;
    int i = cli_find(v, key);
    return i >= 0 && strcmp(v->opts[i]->group, "Schedule") == 0;
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
        cli_set(&c, "warmup-tokens", "", 1);
        cli_set(&c, "warmup-samples-ratio", "", 1);
        cli_set(&c, "decay-samples-ratio", "", 1); /* counted from the run's start: the whole run's */
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
            if (!part_key_ok(v, tok)) {
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

/* ---- options from the schedule descriptors -------------------------------- */

_Static_assert(sizeof(ol_cyclic_mode) == sizeof(int) && sizeof(ol_wsd_shape) == sizeof(int),
               "choices are stored as int");

void cli_expand(cli_values *v, const char *name)
{
    if (strcmp(name, "schedule-options") != 0)
        return;
    for (int i = 0; i < OL_SCHED_COUNT; i++) {
        const ol_sched_algo *a = ol_sched_algo_at(NULL, i);
        for (const ol_sched_option *o = a->options; o < a->options + OL_SCHED_MAX_OPTIONS && o->name; o++) {
            const int flag = o->kind == OL_SOPT_FLAG || o->kind == OL_SOPT_NOT_FLAG;
            cli_opt c = {o->name, flag ? CLI_FLAG : CLI_VALUE, o->def, o->metavar, "Schedule", ""};
            cli_add(v, &c);
        }
    }
}

/* Help of a derived option: "step, multistep: decay factor [0.1]; exponential: ..." */
static void option_help(FILE *f, const char *name)
{
    const ol_sched_option *seen[OL_SCHED_COUNT];
    int nseen = 0;
    for (int i = 0; i < OL_SCHED_COUNT; i++) {
        const ol_sched_algo *a = ol_sched_algo_at(NULL, i);
        for (const ol_sched_option *o = a->options; o < a->options + OL_SCHED_MAX_OPTIONS && o->name; o++) {
            if (strcmp(o->name, name) != 0)
                continue;
            int dup = 0;
            for (int k = 0; k < nseen && !dup; k++)
                dup = strcmp(seen[k]->help, o->help) == 0;
            if (dup)
                break;
            seen[nseen] = o;
            fprintf(f, "%s%s", nseen++ ? "; " : "", a->name);
            for (int j = i + 1; j < OL_SCHED_COUNT; j++) { /* the others with the same text */
                const ol_sched_algo *b = ol_sched_algo_at(NULL, j);
                for (const ol_sched_option *q = b->options; q < b->options + OL_SCHED_MAX_OPTIONS && q->name; q++)
                    if (strcmp(q->name, name) == 0 && strcmp(q->help, o->help) == 0)
                        fprintf(f, ", %s", b->name);
            }
            fprintf(f, ": %s", o->help);
        }
    }
}

/* "a, b (alias), ..." of every schedule of reg (NULL: the built-ins). */
static void sched_names(const ol_ctx *reg, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < ol_sched_algo_count(reg) && len < cap; i++) {
        const ol_sched_algo *a = ol_sched_algo_at(reg, i);
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? ", " : "", a->name);
        for (int k = 0; k < OL_SCHED_MAX_ALIASES && a->aliases[k] && len < cap; k++)
            len += (size_t)snprintf(buf + len, cap - len, "%s%s%s", k ? ", " : " (", a->aliases[k],
                                    k + 1 < OL_SCHED_MAX_ALIASES && a->aliases[k + 1] ? "" : ")");
    }
}

void cli_sched_help_more(FILE *f, const cli_values *v, const char *name)
{
    char buf[2048];
    if (strcmp(name, "schedule") == 0) {
        sched_names(v ? v->reg : NULL, buf, sizeof buf);
        fprintf(f, " %s", buf);
        return;
    }
    int i = v ? cli_find(v, name) : -1;
    if (i >= 0 && strcmp(v->opts[i]->group, "Schedule") == 0 && v->opts[i]->help && !*v->opts[i]->help)
        option_help(f, name);
}

void cli_print_schedules(FILE *f, const ol_ctx *reg)
{
    for (int i = 0; i < ol_sched_algo_count(reg); i++) {
        const ol_sched_algo *a = ol_sched_algo_at(reg, i);
        fprintf(f, "%-16s %s%s\n", a->name, a->summary ? a->summary : "", i < OL_SCHED_COUNT ? "" : " (registered)");
        for (int k = 0; k < OL_SCHED_MAX_ALIASES && a->aliases[k]; k++)
            fprintf(f, "%-16s   also --schedule %s\n", "", a->aliases[k]);
        for (const ol_sched_option *o = a->options; o < a->options + OL_SCHED_MAX_OPTIONS && o->name; o++)
            fprintf(f, "%-16s   --%s%s%s: %s\n", "", o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "",
                    o->help);
        for (int k = 0; k < a->n_params; k++)
            fprintf(f, "%-16s   --sched-param %s=X: %s [%g, in %g..%g]\n", "", a->params[k].name,
                    a->params[k].help ? a->params[k].help : "", a->params[k].def, a->params[k].lo, a->params[k].hi);
    }
}

/* A value from the comma-separated list choices: its index. */
static int pick_text(cli_values *v, const char *name, const char *text, const char *choices, int *out)
{
    int k = 0;
    char all[256] = "";
    for (const char *c = choices; *c; k++) {
        size_t n = strcspn(c, ",");
        if (strlen(text) == n && strncmp(text, c, n) == 0) {
            *out = k;
            return 0;
        }
        snprintf(all + strlen(all), sizeof all - strlen(all), "%s%.*s", k ? ", " : "", (int)n, c);
        c += n + (c[n] == ',');
    }
    return fail(v, "--%s: unknown value '%s' (%s)", name, text, all);
}

/* Option o into its field of sp; an empty option keeps the schedule's value. */
static int apply_option(cli_values *v, const cli_epochs *ep, const ol_sched_option *o, ol_sched_params *sp)
{
    char *field = (char *)sp + o->field;
    const char *name = o->name, *text = cli_str(v, o->name);
    if (o->kind == OL_SOPT_FLAG || o->kind == OL_SOPT_NOT_FLAG) {
        int x = cli_flag(v, name) == (o->kind == OL_SOPT_FLAG);
        memcpy(field, &x, sizeof x);
        return 0;
    }
    const char *tok = o->kind == OL_SOPT_EPOCHS ? tokens_form(name) : NULL;
    if (tok && *cli_str(v, tok)) { /* the same length in tokens */
        int64_t samples = 0, steps = 0;
        if (*text)
            return fail(v, "--%s and --%s give the same length: give one", name, tok);
        if (tokens_to_samples(v, tok, &samples) || samples_to_steps(v, ep, sp->per_epoch, tok, samples, &steps))
            return -1;
        steps = steps > 0 ? steps : 1;
        memcpy(field, &steps, sizeof steps);
        return 0;
    }
    const char *ratio = o->kind == OL_SOPT_EPOCHS ? ratio_form(name) : NULL;
    if (ratio && *cli_str(v, ratio) && *text && cli_given(v, ratio))
        return fail(v, "--%s and --%s give the same length: give one", name, ratio);
    if (ratio && *cli_str(v, ratio) && !*text) { /* ends at that fraction, warm-up included */
        int64_t end = 0;
        if (ratio_to_steps(v, ep, sp->per_epoch, ratio, &end))
            return -1;
        if (end <= sp->warmup_steps)
            return fail(v, "--%s: the decay would end (step %lld) before the warm-up does (step %lld)", ratio,
                        (long long)end, (long long)sp->warmup_steps);
        end -= sp->warmup_steps;
        memcpy(field, &end, sizeof end);
        return 0;
    }
    if (!*text && o->if_unset) /* a default of its own, or another option's value */
        text = strncmp(o->if_unset, "--", 2) == 0 ? cli_str(v, o->if_unset + 2) : o->if_unset;
    if (!*text)
        return o->required ? fail(v, "--schedule %s needs --%s: %s", cli_str(v, "schedule"), name, o->help) : 0;
    double x;
    long long n;
    int k = 0;
    int64_t steps;
    switch (o->kind) {
    case OL_SOPT_NUMBER:
        if (cli_double_text(v, name, text, o->lo, o->hi, &x))
            return -1;
        memcpy(field, &x, sizeof x);
        return 0;
    case OL_SOPT_INT:
    case OL_SOPT_STEPS:
        if (cli_int_text(v, name, text, (long long)o->lo, (long long)o->hi, &n))
            return -1;
        k = (int)n;
        steps = n;
        if (o->kind == OL_SOPT_INT)
            memcpy(field, &k, sizeof k);
        else
            memcpy(field, &steps, sizeof steps);
        return 0;
    case OL_SOPT_EPOCHS:
        if (cli_double_text(v, name, text, o->lo, o->hi, &x))
            return -1;
        steps = epochs_to_steps(ep, sp->per_epoch, x);
        steps = steps > 0 ? steps : 1;
        memcpy(field, &steps, sizeof steps);
        return 0;
    case OL_SOPT_EPOCH_LIST: {
        double ms[OL_SCHED_MAX_MILESTONES];
        int nm = 0;
        if (cli_double_list(v, name, o->lo, o->hi, ms, OL_SCHED_MAX_MILESTONES, &nm))
            return -1;
        for (int i = 0; i < nm; i++)
            sp->milestones[i] = epochs_to_steps(ep, sp->per_epoch, ms[i]);
        sp->nmilestones = nm;
        return 0;
    }
    case OL_SOPT_CHOICE:
        if (pick_text(v, name, text, o->choices, &k))
            return -1;
        memcpy(field, &k, sizeof k);
        return 0;
    default: return fail(v, "--%s: option of unknown kind %d", name, (int)o->kind);
    }
}

/* The options of sp's schedule; the other schedules' options are checked
 * too when given (a bad value is an error even where it has no effect). */
static int apply_options(cli_values *v, const cli_epochs *ep, ol_sched_params *sp)
{
    const ol_sched_algo *own = ol_sched_params_algo(sp);
    for (const ol_sched_option *o = own->options; o < own->options + OL_SCHED_MAX_OPTIONS && o->name; o++)
        if (apply_option(v, ep, o, sp))
            return -1;
    for (int i = 0; i < OL_SCHED_COUNT; i++) {
        const ol_sched_algo *a = ol_sched_algo_at(NULL, i);
        for (const ol_sched_option *o = a->options; a != own && o < a->options + OL_SCHED_MAX_OPTIONS && o->name;
             o++) {
            ol_sched_params scratch = *sp;
            ol_sched_option given = *o;
            given.if_unset = NULL;
            given.required = 0;
            if (apply_option(v, ep, &given, &scratch))
                return -1;
        }
    }
    return 0;
}

/* --sched-param NAME=VALUE[,...] into the parameters of a schedule that has them. */
static int set_sched_param(ol_ctx *reg, void *sp, const char *name, double value)
{
    return ol_sched_param_set(reg, sp, name, value);
}

/* Whether schedule a reads option `name` (its own, or another option's value
 * it falls back to). */
static int algo_reads(const ol_sched_algo *a, const char *name)
{
    for (const ol_sched_option *o = a->options; o < a->options + OL_SCHED_MAX_OPTIONS && o->name; o++)
        if (strcmp(o->name, name) == 0 || (o->if_unset && strncmp(o->if_unset, "--", 2) == 0 &&
                                            strcmp(o->if_unset + 2, name) == 0))
            return 1;
    return 0;
}

/* An option only other schedules read, given (on the command line or in a
 * config file), would be ignored: an error naming the schedules that read it.
 * A recipe's presets are left alone; a sequence's parts inherit the options,
 * so for one the parts' schedules count. Derived from the registry. */
int cli_is_sched_option(const char *name)
{
    for (const cli_opt *o = cli_sched_opts; o->name; o++)
        if (strcmp(o->name, name) == 0)
            return 1;
    for (int i = 0; i < OL_SCHED_COUNT; i++)
        if (algo_reads(ol_sched_algo_at(NULL, i), name))
            return 1;
    return 0;
}

static int check_sched_applies(cli_values *v, const ol_sched_params *sp)
{
    ol_ctx *reg = cli_registry(v);
    const ol_sched_algo *have[33];
    int nh = 0;
    have[nh++] = ol_sched_params_algo(sp);
    for (int i = 0; sp->type == OL_SCHED_SEQUENTIAL && i < sp->nparts && nh < 33; i++)
        have[nh++] = ol_sched_params_algo(&sp->parts[i]);
    int user = 0;
    for (int i = 0; i < nh; i++)
        user |= have[i] && have[i]->n_params > 0;
    if (cli_given(v, "sched-param") && !user)
        return fail(v, "--sched-param does not apply to --schedule %s (only schedules with parameters)",
                    cli_str(v, "schedule"));
    if (sp->type != OL_SCHED_SEQUENTIAL)
        for (const char *const *q = (const char *const[]){"sequence", "sequence-milestones", NULL}; *q; q++)
            if (cli_given(v, *q))
                return fail(v, "--%s does not apply to --schedule %s (only sequential)", *q, cli_str(v, "schedule"));
    for (size_t k = 0; k < sizeof length_tokens / sizeof length_tokens[0]; k++) {
        int reads = 0;
        for (int j = 0; j < nh && !reads; j++)
            reads = have[j] && algo_reads(have[j], length_tokens[k][0]);
        for (int f = 1; f < 3; f++)
            if (cli_given(v, length_tokens[k][f]) && !reads)
                return fail(v, "--%s does not apply to --schedule %s (only schedules with --%s)", length_tokens[k][f],
                            cli_str(v, "schedule"), length_tokens[k][0]);
    }
    for (int i = 0; ol_sched_algo_at(reg, i); i++) {
        const ol_sched_algo *a = ol_sched_algo_at(reg, i);
        for (const ol_sched_option *o = a->options; o < a->options + OL_SCHED_MAX_OPTIONS && o->name; o++) {
            if (!cli_given(v, o->name))
                continue;
            int reads = 0;
            for (int j = 0; j < nh && !reads; j++)
                reads = have[j] && algo_reads(have[j], o->name);
            if (reads)
                continue;
            char which[512] = "";
            size_t len = 0;
            for (int j = 0; ol_sched_algo_at(reg, j) && len < sizeof which; j++)
                if (algo_reads(ol_sched_algo_at(reg, j), o->name))
                    len += (size_t)snprintf(which + len, sizeof which - len, "%s%s", len ? ", " : "",
                                            ol_sched_algo_at(reg, j)->name);
            return fail(v, "--%s does not apply to --schedule %s (only %s)", o->name, cli_str(v, "schedule"), which);
        }
    }
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
        char names[2048];
        sched_names(reg, names, sizeof names);
        return fail(v, "--schedule: unknown schedule '%s' (%s)", name, names);
    }
    const ol_sched_type t = sp->type;
    if (nested && t == OL_SCHED_SEQUENTIAL)
        return fail(v, "sequential schedules cannot be nested");
    if (nested && t == OL_SCHED_PLATEAU)
        return fail(v, "reduce-on-plateau cannot be part of a sequence");
    if (cli_named_values(v, "sched-param", reg, sp, set_sched_param))
        return -1;
    sp->base_lr = base_lr;
    sp->steps_per_epoch = spe;
    sp->total_steps = total;
    sp->per_epoch = cli_flag(v, "per-epoch");
    double we, wr;
    long long ws;
    static const char *const warm_shapes[] = {"linear", "exponential"};
    if (cli_double(v, "warmup-epochs", 0.0, 1e6, &we) || cli_int(v, "warmup-steps", 0, INT64_MAX / 2, &ws) ||
        cli_double(v, "warmup-ratio", 0.0, 1.0, &wr) || pick(v, "warmup", warm_shapes, 2, &sp->warmup_exponential))
        return -1;
    /* the warm-up is per step also in per-epoch schedules */
    sp->warmup_steps = ws > 0 ? ws : we > 0.0 ? epochs_to_steps(ep, 0, we) : (int64_t)llround(wr * (double)total);
    if (ws == 0 && !(we > 0.0) && *cli_str(v, "warmup-tokens")) {
        int64_t samples;
        if (tokens_to_samples(v, "warmup-tokens", &samples) ||
            samples_to_steps(v, ep, 0, "warmup-tokens", samples, &sp->warmup_steps))
            return -1;
    } else if (ws == 0 && !(we > 0.0) && *cli_str(v, "warmup-samples-ratio")) {
        /* with --warmup-ratio too, the one given (not a recipe's) wins */
        const int gs = cli_given(v, "warmup-samples-ratio"), gr = cli_given(v, "warmup-ratio");
        if (wr > 0.0 && gs == gr)
            return fail(v, "--warmup-ratio and --warmup-samples-ratio give the same length: give one");
        if (!(wr > 0.0 && gr) && ratio_to_steps(v, ep, 0, "warmup-samples-ratio", &sp->warmup_steps))
            return -1;
    }
    sp->warmup_start_factor = sp->warmup_exponential ? 0.01 : 0.0;
    if (strcmp(cli_str(v, "warmup-start-factor"), "auto") == 0) {
        if (auto_start_factor(v, &sp->warmup_start_factor))
            return -1;
    } else if (opt_double(v, "warmup-start-factor", 0.0, 1.0, &sp->warmup_start_factor))
        return -1;
    if (apply_options(v, ep, sp))
        return -1;
    if (t == OL_SCHED_SEQUENTIAL && build_sequence(v, base_lr, ep, sp) < 0) {
        cli_free_sched(sp);
        return -1;
    }
    if (!nested && check_sched_applies(v, sp) < 0) {
        cli_free_sched(sp);
        return -1;
    }
    ol_sched_resolve(sp); /* defaults that are parts of the training length */
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
    cli_epochs ep = {spe, NULL, 0, 0};
    return build_sched(v, base_lr, &ep, total, sp, 0);
}

/* Samples the first `steps` optimizer steps of `walk` consume over a training
 * set of n (its batch schedule walked; buf holds `steps` batches). */
static int64_t walk_samples(const ol_train_params *walk, int64_t n, int64_t steps, int64_t *buf)
{
    int64_t s = 0;
    for (int64_t k = ol_train_step_batches(walk, n, buf, steps), i = 0; i < k; i++)
        s += buf[i];
    return s;
}

int cli_build_sched_run(cli_values *v, double base_lr, const ol_train_params *tp, int64_t n, int64_t total,
                        ol_sched_params *sp)
{
    if (total < 0)
        return fail(v, "the training length must be >= 0 steps, got %lld", (long long)total);
    int64_t spe = tp->drop_last ? n / tp->batch_size : (n + tp->batch_size - 1) / tp->batch_size;
    cli_epochs ep = {spe > 0 ? spe : 1, tp, n, 0};
    if (!*cli_str(v, "warmup-samples-ratio") && !*cli_str(v, "decay-samples-ratio"))
        return build_sched(v, base_lr, &ep, total, sp, 0);
    /* the run's samples, for fractions of them: those of its `total` steps */
    if (!tp->batch_sched) { /* whole epochs of n (drop_last: of the full batches), then full batches */
        const int64_t B = tp->batch_size, full = tp->drop_last ? ep.steps_per_epoch * B : n;
        ep.samples = total / ep.steps_per_epoch * full + total % ep.steps_per_epoch * B;
    } else {
        ol_train_params walk = *tp;
        walk.epochs = 0;
        walk.max_steps = total;
        int64_t *b = malloc(sizeof *b * (size_t)(total > 0 ? total : 1));
        if (!b)
            return fail(v, "out of memory");
        ep.samples = walk_samples(&walk, n, total, b);
        free(b);
    }
    /* as --batch-ramp-ratio's: epochs x training samples, unless the steps end earlier */
    if (tp->epochs > 0 && (double)tp->epochs * (double)n < (double)ep.samples)
        ep.samples = (int64_t)tp->epochs * n;
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
        {"batch-ramp-tokens", 1u << OL_BATCH_RAMP, "--batch-schedule ramp"},
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

/* Samples that the run's steps consume when the ramp is `ramp` samples long. */
static int64_t run_samples_with_ramp(const ol_train_params *tp, int64_t n, ol_batch_sched_params *b, int64_t ramp,
                                     int64_t *buf)
{
    ol_train_params walk = *tp;
    walk.batch_sched = b;
    b->ramp_samples = ramp;
    return walk_samples(&walk, n, tp->max_steps, buf);
}

/* R S samples, at least one */
static int64_t ramp_of(double ratio, int64_t S)
{
    const int64_t x = llround(ratio * (double)S);
    return x > 0 ? x : 1;
}

/* --batch-ramp-ratio R: a ramp over the fraction R of the run's samples. By
 * epochs the run has epochs x n of them; by steps the samples depend on the
 * ramp itself (a longer ramp, smaller batches, fewer samples), so S is the
 * fixed point S = samples(ramp R*S), the smallest S with samples(R*S) <= S,
 * found by bisection (samples() does not grow with the ramp's length). */
static int ramp_by_ratio(const ol_train_params *tp, int64_t n, double ratio, ol_batch_sched_params *b)
{
    if (tp->max_steps <= 0) {
        b->ramp_samples = ramp_of(ratio, (int64_t)tp->epochs * n);
        return 0;
    }
    int64_t *buf = malloc(sizeof *buf * (size_t)tp->max_steps);
    if (!buf)
        return -1;
    int64_t lo = 1, hi = run_samples_with_ramp(tp, n, b, 1, buf);
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (run_samples_with_ramp(tp, n, b, ramp_of(ratio, mid), buf) <= mid)
            hi = mid;
        else
            lo = mid + 1;
    }
    b->ramp_samples = ramp_of(ratio, lo);
    free(buf);
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
        const int by_tokens = *cli_str(v, "batch-ramp-tokens") != '\0';
        if (by_tokens && *cli_str(v, "batch-ramp-samples"))
            return fail(v, "--batch-ramp-tokens and --batch-ramp-samples give the same length: give one");
        const int by_ratio = !*cli_str(v, "batch-ramp-samples") && !by_tokens && *cli_str(v, "batch-ramp-ratio");
        if ((!*cli_str(v, "batch-ramp-samples") && !by_ratio && !by_tokens) || b->max_batch == 0)
            return fail(v, "--batch-schedule ramp needs --batch-ramp-samples (or --batch-ramp-ratio) and "
                           "--max-batch-size (the final batch)");
        double ratio = 0.0;
        if (*cli_str(v, "batch-ramp-ratio") && cli_double(v, "batch-ramp-ratio", 1e-9, 1e6, &ratio))
            return -1;
        if (by_tokens) {
            if (tokens_to_samples(v, "batch-ramp-tokens", &b->ramp_samples))
                return -1;
        } else if (by_ratio) { /* a fraction of the run's samples: set below, once the increment is known */
            b->ramp_samples = 1;
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
        if (by_ratio && ramp_by_ratio(tp, n, ratio, b) < 0)
            return fail(v, "out of memory");
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

void cli_batch_apply(const cli_batch_config *bc, ol_train_params *tp)
{
    tp->batch_sched = bc->sched.type != OL_BATCH_CONSTANT ? &bc->sched : NULL;
    tp->lr_scaling = bc->lr_scaling;
    tp->base_batch = bc->base_batch;
    tp->lr_knee = bc->knee;
    tp->micro_batch_size = (int)bc->micro_batch;
}

int cli_build_run_plan(cli_values *v, double base_lr, ol_train_params *tp, int64_t n, cli_batch_config *bc,
                       ol_sched_params *sp, int64_t *total)
{
    *total = 0;
    if (cli_build_batch_sched(v, tp, n, bc))
        return -1;
    cli_batch_apply(bc, tp);
    *total = ol_train_count_steps(tp, n);
    if (*total <= 0)
        return fail(v, "no training step fits: %lld samples, batch %d%s", (long long)n, tp->batch_size,
                    tp->drop_last ? " with --drop-last" : "");
    return cli_build_sched_run(v, base_lr, tp, n, *total, sp);
}
