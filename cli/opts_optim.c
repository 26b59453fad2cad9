/* Optimizer options. An empty default means "the optimizer's own default"
 * (PyTorch's, or the reference implementation's); plain SGD gets the CIFAR
 * ResNet recipe's momentum 0.9 and weight decay 5e-4 unless told otherwise. */
#include <string.h>

#include "common.h"

const cli_opt cli_optim_opts[] = {
    {"optimizer", CLI_VALUE, "sgd", "NAME", "Optimizer",
     "sgd, momentum, nesterov, adam, adamw, adagrad, rmsprop, adadelta, nadam, radam, lars, larc, lamb, "
     "fusedlamb, lion, sfsgd, sfadamw"},
    {"lr", CLI_VALUE, "", "LR", "Optimizer", "peak learning rate [sgd 0.1, adam/adamw 1e-3, ...]"},
    {"momentum", CLI_VALUE, "", "M", "Optimizer", "momentum (SGD, LARS, RMSprop, Schedule-Free SGD) [sgd 0.9]"},
    {"dampening", CLI_VALUE, "", "D", "Optimizer", "SGD dampening; = momentum gives the EMA form m = b m + (1-b) g"},
    {"nesterov", CLI_FLAG, "0", NULL, "Optimizer", "Nesterov momentum"},
    {"maximize", CLI_FLAG, "0", NULL, "Optimizer", "maximise the objective instead"},
    {"weight-decay", CLI_VALUE, "", "WD", "Optimizer", "weight decay [sgd 5e-4, adamw 0.01, ...]"},
    {"decoupled-wd", CLI_FLAG, "0", NULL, "Optimizer",
     "decoupled weight decay p -= lr*wd*p (AdamW-style) for optimizers that couple it by default"},
    {"no-decay-on", CLI_VALUE, "bias,norm", "KINDS", "Optimizer",
     "tensor kinds without weight decay (and without LARS/LAMB adaptation): any of weight,bias,norm, or none"},
    {"clip-grad-norm", CLI_VALUE, "0", "N", "Optimizer", "clip the global gradient norm to N (0 = off)"},
    {NULL, 0, NULL, NULL, NULL, NULL}};

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

int cli_build_optim(cli_values *v, ol_optim_params *op)
{
    const char *name = cli_str(v, "optimizer");
    ol_optim_type t;
    if (ol_optim_from_name(name, &t) < 0) {
        snprintf(v->err, sizeof v->err,
                 "--optimizer: unknown optimizer '%s' (sgd, momentum, nesterov, adam, adamw, adagrad, rmsprop, "
                 "adadelta, nadam, radam, lars, larc, lamb, fusedlamb, lion, sfsgd, sfadamw)",
                 name);
        return -1;
    }
    *op = ol_optim_default_params(t);
    if (t == OL_OPT_SGD) { /* the CIFAR ResNet recipe */
        op->momentum = 0.9;
        op->weight_decay = 5e-4;
    }
    if (strcmp(name, "nesterov") == 0)
        op->nesterov = 1;
    if (strcmp(name, "larc") == 0)
        op->larc = 1;
    if (opt_double(v, "lr", 0.0, 1e6, &op->lr) || opt_double(v, "momentum", 0.0, 1.0, &op->momentum) ||
        opt_double(v, "dampening", 0.0, 1.0, &op->dampening) ||
        opt_double(v, "weight-decay", 0.0, 1e6, &op->weight_decay))
        return -1;
    if (cli_flag(v, "nesterov"))
        op->nesterov = 1;
    if (cli_flag(v, "maximize"))
        op->maximize = 1;
    if (cli_flag(v, "decoupled-wd"))
        op->decoupled_wd = 1;
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
