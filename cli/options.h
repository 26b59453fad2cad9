/* Command-line options: one table per command with names, defaults and help.
 * The same table drives getopt_long, --help, config-file keys and the saved
 * effective configuration. Values are kept as text and converted by typed
 * getters that name the option in their error messages. */
#ifndef OL_CLI_OPTIONS_H
#define OL_CLI_OPTIONS_H

#include <stdint.h>
#include <stdio.h>

/* CLI_LIST: a value; given several times on the command line, the values are
 * joined with commas (--plugin a.so --plugin b.so = --plugin a.so,b.so).
 * CLI_EXPAND: not an option; cli_init puts the options cli_expand(v, name)
 * adds in its place (options derived from the library's descriptors). */
typedef enum { CLI_VALUE = 0, CLI_FLAG, CLI_LIST, CLI_EXPAND } cli_kind;

typedef struct {
    const char *name;    /* long option, without "--" */
    cli_kind kind;       /* CLI_FLAG takes no argument */
    const char *def;     /* default value as text ("" = unset); flags: "0" or "1" */
    const char *metavar; /* shown in --help */
    const char *group;   /* section in --help */
    const char *help;
} cli_opt;

struct cli_values;
/* Appends to an option's help what a registry knows (the optimizer and
 * schedule names, with v's registered ones; the help of the options derived
 * from schedule descriptors); nothing for other options. */
void cli_help_more(FILE *f, const struct cli_values *v, const char *name);
/* Adds the options of the CLI_EXPAND entry `name` with cli_add (opts_sched.c). */
void cli_expand(struct cli_values *v, const char *name);

#define CLI_MAX_OPTS 192
#define CLI_MAX_OWN 64 /* derived options a cli_values holds itself */
#define CLI_RESOLVED 4

typedef struct cli_values {
    const cli_opt *opts[CLI_MAX_OPTS];
    int n;
    char *val[CLI_MAX_OPTS]; /* current values (owned) */
    int set[CLI_MAX_OPTS];   /* 1: from the command line, 2: from a config file, 3: from a recipe,
                                CLI_RESOLVED: an unset option's effective value (config.json) */
    char err[512];
    struct ol_ctx *reg; /* registered algorithms and loaded plugins (cli_registry), freed by cli_free */
    int reg_borrowed;   /* reg belongs to the cli_values this one was copied from (cli_copy) */
    cli_opt own[CLI_MAX_OWN]; /* derived options (cli_add); opts[] points into it */
    int n_own;
} cli_values;

/* Collect tables (NULL-terminated list of arrays, each ending with {NULL}). */
void cli_init(cli_values *v, const cli_opt *const *tables);
void cli_free(cli_values *v);
/* Add option o (copied) unless one of that name exists; -1 when full. */
int cli_add(cli_values *v, const cli_opt *o);
/* A deep copy of src (free it with cli_free); -1 when out of memory. */
int cli_copy(cli_values *dst, const cli_values *src);
/* Parse argv[first..]; returns 0, or -1 with v->err set; *help set by --help. */
int cli_parse(cli_values *v, int argc, char **argv, int first, int *help);
void cli_print_help(FILE *f, const cli_values *v, const char *usage);

int cli_find(const cli_values *v, const char *name);
const char *cli_str(const cli_values *v, const char *name);
int cli_is_set(const cli_values *v, const char *name);
/* Set by the user: on the command line or in a config file (not by a recipe,
 * not resolved from a default). An option of a feature that is not enabled
 * is an error only when given. */
int cli_given(const cli_values *v, const char *name);
int cli_set(cli_values *v, const char *name, const char *value, int how); /* -1 for unknown */

/* Typed getters: 0 on success, -1 with a one-line message in v->err. */
int cli_int(cli_values *v, const char *name, long long lo, long long hi, long long *out);
int cli_double(cli_values *v, const char *name, double lo, double hi, double *out);
int cli_flag(const cli_values *v, const char *name);
/* The same for a text that stands for option `name` (a default, another option's value). */
int cli_int_text(cli_values *v, const char *name, const char *text, long long lo, long long hi, long long *out);
int cli_double_text(cli_values *v, const char *name, const char *text, double lo, double hi, double *out);
/* Comma-separated lists. */
int cli_int_list(cli_values *v, const char *name, long long lo, long long hi, long long *out, int max, int *n);
int cli_double_list(cli_values *v, const char *name, double lo, double hi, double *out, int max, int *n);

/* NAME=VALUE[,NAME=VALUE...] of option `name` (--opt-param, --sched-param):
 * set(reg, target, NAME, VALUE) for each pair; 0, or -1 with v->err for a
 * malformed pair or with reg's message when set refuses one. */
int cli_named_values(cli_values *v, const char *name, struct ol_ctx *reg, void *target,
                     int (*set)(struct ol_ctx *reg, void *target, const char *key, double value));

/* Write all values as a JSON object (the effective configuration); the
 * options whose value was resolved from a default (CLI_RESOLVED) are also
 * listed under "resolved", so that --resume keeps them defaults. */
int cli_write_json(const cli_values *v, FILE *f);

#endif
