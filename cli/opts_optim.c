/* Optimizer options, named after PyTorch's arguments where PyTorch has the
 * optimizer. An empty default means "the optimizer's own default" (PyTorch's,
 * or the reference implementation's); plain SGD gets the CIFAR ResNet
 * recipe's momentum 0.9 and weight decay 5e-4 unless told otherwise. An option
 * given for an optimizer that has no such setting is an error, not ignored. */
#define _XOPEN_SOURCE 700 /* realpath */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

const cli_opt cli_optim_opts[] = {
    {"optimizer", CLI_VALUE, "sgd", "NAME", "Optimizer", "a built-in or one a --plugin registers:"},
    {"plugin", CLI_LIST, "", "FILE.so", "Optimizer",
     "load optimizers and schedules from a shared library (its optimlab_plugin_init); repeatable, or comma-separated"},
    {"opt-param", CLI_VALUE, "", "K=V,...", "Optimizer", "hyperparameters of a registered optimizer, by name"},
    {"lr", CLI_VALUE, "", "LR", "Optimizer", "peak learning rate [sgd 0.1, adam/adamw 1e-3, lion 1e-4, ...]"},
    {"momentum", CLI_VALUE, "", "M", "Optimizer", "momentum (sgd, rmsprop, lars, sfsgd) [sgd, lars, sfsgd 0.9]"},
    {"dampening", CLI_VALUE, "", "D", "Optimizer",
     "SGD/LARS dampening; = momentum gives the EMA form m = b m + (1-b) g"},
    {"nesterov", CLI_FLAG, "0", NULL, "Optimizer", "Nesterov momentum (sgd, lars)"},
    {"maximize", CLI_FLAG, "0", NULL, "Optimizer", "maximise the objective instead"},
    {"weight-decay", CLI_VALUE, "", "WD", "Optimizer",
     "weight decay [sgd 5e-4, adamw/lamb 0.01, others 0]; L2 for sgd, adam, adagrad, rmsprop, adadelta, nadam, "
     "radam; decoupled for adamw, lion; LAMB adds it to the update"},
    {"decoupled-wd", CLI_FLAG, "0", NULL, "Optimizer",
     "decoupled weight decay p *= 1 - lr*wd for optimizers that couple it (lamb: timm's decoupled_decay)"},
    {"betas", CLI_VALUE, "", "B1,B2", "Optimizer",
     "moment coefficients (adam, adamw, nadam, radam, lamb, lion, sfadamw) [0.9,0.999; lion 0.9,0.99]"},
    {"eps", CLI_VALUE, "", "EPS", "Optimizer", "denominator epsilon [1e-8; adagrad 1e-10, adadelta/lamb 1e-6]"},
    {"amsgrad", CLI_FLAG, "0", NULL, "Optimizer", "AMSGrad: divide by the running maximum of v (adam, adamw)"},
    {"eps-inside-sqrt", CLI_FLAG, "0", NULL, "Optimizer",
     "course-slide form sqrt(v_hat + eps) instead of sqrt(v_hat) + eps (adam, adamw, adagrad, rmsprop)"},
    {"alpha", CLI_VALUE, "", "A", "Optimizer", "RMSprop smoothing constant [0.99]"},
    {"centered", CLI_FLAG, "0", NULL, "Optimizer", "centered RMSprop (divide by the estimated variance)"},
    {"rho", CLI_VALUE, "", "RHO", "Optimizer", "AdaDelta decay [0.9]"},
    {"lr-decay", CLI_VALUE, "", "D", "Optimizer", "AdaGrad: lr / (1 + (t-1) D) [0]"},
    {"initial-accumulator-value", CLI_VALUE, "", "V", "Optimizer", "AdaGrad: start of the squared-gradient sum [0]"},
    {"momentum-decay", CLI_VALUE, "", "PSI", "Optimizer", "NAdam momentum decay [0.004]"},
    {"trust-coefficient", CLI_VALUE, "", "C", "Optimizer", "LARS trust coefficient [0.001]"},
    {"trust-clip", CLI_FLAG, "0", NULL, "Optimizer",
     "clip the trust ratio: LARS min(ratio/lr, 1), LAMB min(ratio, 1)"},
    {"always-adapt", CLI_FLAG, "0", NULL, "Optimizer",
     "LARS/LAMB: adapt also tensors without weight decay (and kinds in --no-decay-on)"},
    {"no-bias-correction", CLI_FLAG, "0", NULL, "Optimizer", "LAMB without Adam's bias correction"},
    {"no-grad-averaging", CLI_FLAG, "0", NULL, "Optimizer", "LAMB: m = b1 m + g instead of b1 m + (1-b1) g"},
    {"max-grad-norm", CLI_VALUE, "", "N", "Optimizer",
     "LAMB's own global gradient-norm clipping, 0 = off [1.0]"},
    {"larc", CLI_FLAG, "0", NULL, "Optimizer", "wrap the optimizer in LARC (apex; not lars/lamb)"},
    {"larc-mode", CLI_VALUE, "clip", "MODE", "Optimizer", "LARC: clip (lr_local = min(alr, lr)) or scale (alr * lr)"},
    {"larc-trust-coefficient", CLI_VALUE, "", "C", "Optimizer", "LARC trust coefficient [0.02]"},
    {"larc-eps", CLI_VALUE, "", "EPS", "Optimizer", "LARC epsilon [1e-8]"},
    {"sf-warmup-steps", CLI_VALUE, "", "N", "Optimizer", "Schedule-Free linear warm-up steps [0]"},
    {"sf-r", CLI_VALUE, "", "R", "Optimizer", "Schedule-Free polynomial averaging power r [0]"},
    {"weight-lr-power", CLI_VALUE, "", "P", "Optimizer", "Schedule-Free: averaging weight lr_max^P [2]"},
    {"no-decay-on", CLI_VALUE, "bias,norm", "KINDS", "Optimizer",
     "tensor kinds without weight decay (and without LARS/LAMB/LARC adaptation): any of weight,bias,norm, or none"},
    {"clip-grad-norm", CLI_VALUE, "0", "N", "Optimizer", "clip the global gradient norm to N before the step (0 = off)"},
    {NULL, 0, NULL, NULL, NULL, NULL}};

/* The options only some algorithms read: each maps to an OL_OPTION_* bit of
 * the algorithm descriptors, so the lists in messages come from the registry. */
#define LARC_ONLY 0u /* applies when LARC is on */
static const struct {
    const char *name;
    unsigned option;
    const char *hint; /* where to look instead */
} applies[] = {
    {"momentum", OL_OPTION_MOMENTUM, ""},
    {"dampening", OL_OPTION_DAMPENING, ""},
    {"nesterov", OL_OPTION_NESTEROV, ""},
    {"decoupled-wd", OL_OPTION_DECOUPLED_WD, "; adamw and lion decouple already"},
    {"betas", OL_OPTION_BETAS, ""},
    {"eps", OL_OPTION_EPS, ""},
    {"amsgrad", OL_OPTION_AMSGRAD, ""},
    {"eps-inside-sqrt", OL_OPTION_EPS_INSIDE_SQRT, ""},
    {"alpha", OL_OPTION_ALPHA, ""},
    {"centered", OL_OPTION_CENTERED, ""},
    {"rho", OL_OPTION_RHO, ""},
    {"lr-decay", OL_OPTION_LR_DECAY, ""},
    {"initial-accumulator-value", OL_OPTION_INITIAL_ACCUMULATOR, ""},
    {"momentum-decay", OL_OPTION_MOMENTUM_DECAY, ""},
    {"trust-coefficient", OL_OPTION_TRUST_COEFFICIENT, "; LARC: --larc-trust-coefficient"},
    {"trust-clip", OL_OPTION_TRUST_CLIP, ""},
    {"always-adapt", OL_OPTION_TRUST_CLIP, ""},
    {"no-bias-correction", OL_OPTION_LAMB, ""},
    {"no-grad-averaging", OL_OPTION_LAMB, ""},
    {"max-grad-norm", OL_OPTION_LAMB, "; all optimizers: --clip-grad-norm"},
    {"larc-mode", LARC_ONLY, ""},
    {"larc-trust-coefficient", LARC_ONLY, ""},
    {"larc-eps", LARC_ONLY, ""},
    {"sf-warmup-steps", OL_OPTION_SCHEDULE_FREE, ""},
    {"sf-r", OL_OPTION_SCHEDULE_FREE, ""},
    {"weight-lr-power", OL_OPTION_SCHEDULE_FREE, ""},
};

/* "a, b, c" of the registered algorithms that read option (all of them: NULL). */
static void algo_list(const ol_ctx *reg, unsigned option, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < ol_optim_algo_count(reg); i++) {
        const ol_optim_algo *a = ol_optim_algo_at(reg, i);
        if (option && !(a->options & option))
            continue;
        int w = snprintf(buf + len, cap - len, "%s%s", len ? ", " : "", a->name);
        if (w < 0 || (size_t)w >= cap - len)
            return;
        len += (size_t)w;
        for (int k = 0; !option && k < OL_OPTIM_MAX_ALIASES && a->aliases[k].name; k++) {
            w = snprintf(buf + len, cap - len, ", %s", a->aliases[k].name);
            if (w < 0 || (size_t)w >= cap - len)
                return;
            len += (size_t)w;
        }
    }
}

void cli_help_more(FILE *f, const cli_values *v, const char *name)
{
    char buf[1024];
    if (strcmp(name, "optimizer") == 0) {
        algo_list(v ? v->reg : NULL, 0, buf, sizeof buf);
        fprintf(f, " %s", buf);
    }
    cli_sched_help_more(f, v, name);
}

ol_ctx *cli_registry(cli_values *v)
{
    if (v->reg)
        return v->reg;
    v->reg = ol_ctx_new(0);
    if (!v->reg) {
        snprintf(v->err, sizeof v->err, "out of memory");
        return NULL;
    }
    char list[4096], abs_list[8192] = "";
    snprintf(list, sizeof list, "%s", cli_str(v, "plugin"));
    size_t len = 0;
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char abs[4096];
        /* absolute, so config.json reloads the same file from anywhere on --resume */
        if (!realpath(tok, abs)) {
            snprintf(v->err, sizeof v->err, "--plugin %s: %s", tok, strerror(errno));
            return NULL;
        }
        if (ol_plugin_load(v->reg, abs) < 0) {
            snprintf(v->err, sizeof v->err, "%s", ol_ctx_errmsg(v->reg));
            return NULL;
        }
        int w = snprintf(abs_list + len, sizeof abs_list - len, "%s%s", len ? "," : "", abs);
        if (w > 0 && (size_t)w < sizeof abs_list - len)
            len += (size_t)w;
    }
    int idx = cli_find(v, "plugin");
    if (len && cli_set(v, "plugin", abs_list, v->set[idx] ? v->set[idx] : 1)) {
        snprintf(v->err, sizeof v->err, "out of memory");
        return NULL;
    }
    return v->reg;
}

/* --opt-param NAME=VALUE[,NAME=VALUE...] into op's hyperparameters. */
static int set_hparam(ol_ctx *reg, void *op, const char *name, double value)
{
    return ol_optim_hparam_set(reg, op, name, value);
}

static int opt_double(cli_values *v, const char *name, double lo, double hi, double *out)
{
    if (!*cli_str(v, name))
        return 0; /* keep the default */
    return cli_double(v, name, lo, hi, out);
}

static int parse_kinds(cli_values *v, const char *name, int *mask)
{
    const char *s = cli_str(v, name);
    *mask = 0;
    if (!*s || strcmp(s, "none") == 0)
        return 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        ol_kind k;
        if (ol_kind_from_name(tok, &k) < 0) {
            snprintf(v->err, sizeof v->err, "--%s: unknown tensor kind '%s' (weight, bias, norm)", name, tok);
            return -1;
        }
        *mask |= 1 << k;
    }
    return 0;
}

static int check_applies(cli_values *v, const ol_ctx *reg, const ol_optim_params *op, const char *name)
{
    const ol_optim_algo *a = ol_optim_params_algo(op);
    for (size_t i = 0; i < sizeof applies / sizeof applies[0]; i++) {
        if (!cli_is_set(v, applies[i].name))
            continue;
        int ok = applies[i].option == LARC_ONLY ? op->larc : (a->options & applies[i].option) != 0;
        if (!ok) {
            char which[1024] = "--larc";
            if (applies[i].option != LARC_ONLY)
                algo_list(reg, applies[i].option, which, sizeof which);
            snprintf(v->err, sizeof v->err, "--%s does not apply to %.64s (only %.300s%s)", applies[i].name, name,
                     which, applies[i].hint);
            return -1;
        }
    }
    return 0;
}

/* The numeric hyperparameters given (the others keep their defaults),
 * --betas and --sf-warmup-steps. */
static int parse_optim_numbers(cli_values *v, ol_optim_params *op)
{
    double betas[2];
    int nb = 0;
    long long ws = 0;
    if (opt_double(v, "lr", 0.0, 1e6, &op->lr) || opt_double(v, "momentum", 0.0, 1.0, &op->momentum) ||
        opt_double(v, "dampening", 0.0, 1.0, &op->dampening) ||
        opt_double(v, "weight-decay", 0.0, 1e6, &op->weight_decay) || opt_double(v, "eps", 0.0, 1.0, &op->eps) ||
        opt_double(v, "alpha", 0.0, 1.0, &op->alpha) || opt_double(v, "rho", 0.0, 1.0, &op->rho) ||
        opt_double(v, "lr-decay", 0.0, 1e6, &op->lr_decay) ||
        opt_double(v, "initial-accumulator-value", 0.0, 1e6, &op->initial_accumulator_value) ||
        opt_double(v, "momentum-decay", 0.0, 1e6, &op->momentum_decay) ||
        opt_double(v, "trust-coefficient", 1e-12, 1e6, &op->trust_coefficient) ||
        opt_double(v, "max-grad-norm", 0.0, 1e12, &op->max_grad_norm) ||
        opt_double(v, "larc-trust-coefficient", 1e-12, 1e6, &op->larc_trust_coefficient) ||
        opt_double(v, "larc-eps", 0.0, 1.0, &op->larc_eps) || opt_double(v, "sf-r", 0.0, 1e3, &op->r) ||
        opt_double(v, "weight-lr-power", 0.0, 1e3, &op->weight_lr_power) ||
        cli_double_list(v, "betas", -1e300, 1e300, betas, 2, &nb) ||
        (*cli_str(v, "sf-warmup-steps") && cli_int(v, "sf-warmup-steps", 0, 1000000000, &ws)))
        return -1;
    if (nb == 1) {
        snprintf(v->err, sizeof v->err, "--betas: expected two values B1,B2, got '%s'", cli_str(v, "betas"));
        return -1;
    }
    if (nb == 2) {
        for (int i = 0; i < 2; i++)
            if (!(betas[i] >= 0.0 && betas[i] < 1.0)) {
                snprintf(v->err, sizeof v->err, "--betas: beta%d must be in [0, 1), got %g", i + 1, betas[i]);
                return -1;
            }
        op->beta1 = betas[0];
        op->beta2 = betas[1];
    }
    if (*cli_str(v, "sf-warmup-steps"))
        op->warmup_steps = ws;
    return 0;
}

/* --larc-mode and the boolean flags (they only switch on; the two --no-*
 * switch off). */
static int parse_optim_flags(cli_values *v, ol_optim_params *op)
{
    const char *mode = cli_str(v, "larc-mode");
    if (strcmp(mode, "clip") != 0 && strcmp(mode, "scale") != 0) {
        snprintf(v->err, sizeof v->err, "--larc-mode: expected clip or scale, got '%s'", mode);
        return -1;
    }
    op->larc_clip = strcmp(mode, "clip") == 0;
    op->nesterov |= cli_flag(v, "nesterov");
    op->maximize |= cli_flag(v, "maximize");
    op->decoupled_wd |= cli_flag(v, "decoupled-wd");
    op->amsgrad |= cli_flag(v, "amsgrad");
    op->eps_inside_sqrt |= cli_flag(v, "eps-inside-sqrt");
    op->centered |= cli_flag(v, "centered");
    op->trust_clip |= cli_flag(v, "trust-clip");
    op->always_adapt |= cli_flag(v, "always-adapt");
    if (cli_flag(v, "no-bias-correction"))
        op->bias_correction = 0;
    if (cli_flag(v, "no-grad-averaging"))
        op->grad_averaging = 0;
    return 0;
}

/* --compare: the flags back to the defaults where the optimizer has no such option. */
static void drop_foreign_flags(ol_ctx *reg, const char *name, ol_optim_params *op)
{
    ol_optim_params def;
    ol_optim_params_for(reg, name, &def);
    const unsigned has = ol_optim_params_algo(op)->options;
    if (!(has & OL_OPTION_AMSGRAD))
        op->amsgrad = 0;
    if (!(has & OL_OPTION_EPS_INSIDE_SQRT))
        op->eps_inside_sqrt = 0;
    if (!(has & OL_OPTION_CENTERED))
        op->centered = 0;
    if (!(has & OL_OPTION_NESTEROV))
        op->nesterov = def.nesterov;
    if (!(has & OL_OPTION_TRUST_CLIP))
        op->trust_clip = op->always_adapt = 0;
    if (has & OL_OPTION_NO_LARC)
        op->larc = 0;
    if (!(has & OL_OPTION_DECOUPLED_WD))
        op->decoupled_wd = def.decoupled_wd;
}

int cli_optim_from(cli_values *v, const char *name, int recipe, int strict, ol_optim_params *op)
{
    ol_ctx *reg = cli_registry(v);
    if (!reg)
        return -1;
    if (ol_optim_params_for(reg, name, op) < 0) {
        char names[1024];
        algo_list(reg, 0, names, sizeof names);
        snprintf(v->err, sizeof v->err, "--optimizer: unknown optimizer '%.64s' (%.400s)", name, names);
        return -1;
    }
    if (recipe && op->type == OL_OPT_SGD) { /* the CIFAR ResNet recipe */
        op->momentum = 0.9;
        op->weight_decay = 5e-4;
    }
    if (cli_flag(v, "larc"))
        op->larc = 1;
    if (strict && check_applies(v, reg, op, name))
        return -1;
    if (cli_named_values(v, "opt-param", reg, op, set_hparam))
        return -1;
    if (parse_optim_numbers(v, op) || parse_optim_flags(v, op))
        return -1;
    if (!strict) /* --compare: flags only where the optimizer has them */
        drop_foreign_flags(reg, name, op);
    int mask;
    if (parse_kinds(v, "no-decay-on", &mask))
        return -1;
    for (int k = 0; k < OL_KIND_COUNT; k++)
        if (mask & (1 << k)) {
            op->wd_mult[k] = 0.0;
            op->adapt[k] = 0;
        }
    if (op->nesterov && !(op->momentum > 0.0 && op->dampening == 0.0)) {
        snprintf(v->err, sizeof v->err, "--nesterov needs --momentum > 0 and zero dampening (momentum is %g)",
                 op->momentum);
        return -1;
    }
    ol_ctx *tmp = ol_ctx_new(0);
    int rc = tmp ? ol_optim_validate(tmp, op) : -1;
    if (rc < 0)
        snprintf(v->err, sizeof v->err, "%s", tmp ? ol_ctx_errmsg(tmp) : "out of memory");
    ol_ctx_free(tmp);
    return rc < 0 ? -1 : 0;
}

int cli_build_optim(cli_values *v, ol_optim_params *op)
{
    return cli_optim_from(v, cli_str(v, "optimizer"), 1, 1, op);
}

int cli_optim_option_applies(const ol_optim_params *op, const char *name)
{
    for (size_t i = 0; i < sizeof applies / sizeof applies[0]; i++)
        if (strcmp(applies[i].name, name) == 0)
            return applies[i].option == LARC_ONLY ? op->larc
                                                  : (ol_optim_params_algo(op)->options & applies[i].option) != 0;
    return 1; /* lr, weight decay, clipping, ...: every optimizer */
}
