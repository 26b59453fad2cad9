#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "optimlab/core.h"
#include "options.h"

static void add_ptr(cli_values *v, const cli_opt *o)
{
    if (v->n < CLI_MAX_OPTS) {
        v->opts[v->n] = o;
        v->val[v->n] = strdup(o->def ? o->def : "");
        v->n++;
    }
}

void cli_init(cli_values *v, const cli_opt *const *tables)
{
    memset(v, 0, sizeof *v);
    for (int t = 0; tables[t]; t++)
        for (const cli_opt *o = tables[t]; o->name; o++) {
            if (o->kind == CLI_EXPAND)
                cli_expand(v, o->name);
            else
                add_ptr(v, o);
        }
}

int cli_add(cli_values *v, const cli_opt *o)
{
    int i = cli_find(v, o->name);
    if (i >= 0)
        return i;
    if (v->n_own == CLI_MAX_OWN || v->n == CLI_MAX_OPTS)
        return -1;
    v->own[v->n_own] = *o;
    add_ptr(v, &v->own[v->n_own++]);
    return v->n - 1;
}

void cli_free(cli_values *v)
{
    for (int i = 0; i < v->n; i++)
        free(v->val[i]);
    if (!v->reg_borrowed)
        ol_ctx_free(v->reg);
    memset(v, 0, sizeof *v);
}

int cli_copy(cli_values *dst, const cli_values *src)
{
    *dst = *src;
    dst->reg_borrowed = src->reg != NULL; /* src's registry, freed with src */
    int bad = 0;
    for (int i = 0; i < src->n; i++) {
        for (int k = 0; k < src->n_own; k++) /* derived options: point into dst's own copy */
            if (src->opts[i] == &src->own[k])
                dst->opts[i] = &dst->own[k];
        bad |= !(dst->val[i] = strdup(src->val[i]));
    }
    if (bad) {
        cli_free(dst);
        return -1;
    }
    return 0;
}

int cli_find(const cli_values *v, const char *name)
{
    for (int i = 0; i < v->n; i++)
        if (strcmp(v->opts[i]->name, name) == 0)
            return i;
    return -1;
}

int cli_set(cli_values *v, const char *name, const char *value, int how)
{
    int i = cli_find(v, name);
    if (i < 0)
        return -1;
    char *nv = strdup(value);
    if (!nv)
        return -1;
    free(v->val[i]);
    v->val[i] = nv;
    v->set[i] = how;
    return 0;
}

const char *cli_str(const cli_values *v, const char *name)
{
    int i = cli_find(v, name);
    return i >= 0 ? v->val[i] : "";
}

int cli_given(const cli_values *v, const char *name)
{
    int i = cli_find(v, name);
    return i >= 0 && (v->set[i] == 1 || v->set[i] == 2);
}

int cli_is_set(const cli_values *v, const char *name)
{
    int i = cli_find(v, name);
    return i >= 0 && v->set[i];
}

int cli_parse(cli_values *v, int argc, char **argv, int first, int *help)
{
    struct option lo[CLI_MAX_OPTS + 2];
    int k = 0;
    for (int i = 0; i < v->n; i++)
        lo[k++] = (struct option){v->opts[i]->name, v->opts[i]->kind == CLI_FLAG ? no_argument : required_argument,
                                  NULL, 1000 + i};
    lo[k++] = (struct option){"help", no_argument, NULL, 'h'};
    lo[k] = (struct option){NULL, 0, NULL, 0};
    *help = 0;
    optind = first;
    opterr = 0;
    for (;;) {
        int li = -1;
        int c = getopt_long(argc, argv, "+h", lo, &li);
        if (c == -1)
            break;
        if (c == 'h') {
            *help = 1;
            return 0;
        }
        if (c == '?' || c == ':') {
            const char *bad = argv[optind - 1];
            if (optopt >= 1000)
                snprintf(v->err, sizeof v->err, "option --%s needs a value", v->opts[optopt - 1000]->name);
            else
                snprintf(v->err, sizeof v->err, "unknown option '%s' (see --help)", bad ? bad : "?");
            return -1;
        }
        int i = c - 1000;
        /* an empty value on the command line is a mistake (an unset shell
         * variable, a stray '='), never a request for the default */
        if (v->opts[i]->kind != CLI_FLAG && optarg && !*optarg) {
            snprintf(v->err, sizeof v->err, "option --%s needs a value, got ''", v->opts[i]->name);
            return -1;
        }
        const char *val = v->opts[i]->kind == CLI_FLAG ? "1" : optarg;
        char *joined = NULL;
        if (v->opts[i]->kind == CLI_LIST && v->set[i] == 1 && (joined = malloc(strlen(v->val[i]) + strlen(val) + 2)))
            sprintf(joined, "%s,%s", v->val[i], val);
        int rc = cli_set(v, v->opts[i]->name, joined ? joined : val, 1);
        free(joined);
        if (rc != 0) {
            snprintf(v->err, sizeof v->err, "out of memory");
            return -1;
        }
    }
    if (optind < argc) {
        snprintf(v->err, sizeof v->err, "unexpected argument '%s' (see --help)", argv[optind]);
        return -1;
    }
    return 0;
}

void cli_print_help(FILE *f, const cli_values *v, const char *usage)
{
    fprintf(f, "%s\n", usage);
    const char *group = NULL;
    for (int i = 0; i < v->n; i++) {
        const cli_opt *o = v->opts[i];
        if (!group || strcmp(group, o->group) != 0) {
            group = o->group;
            fprintf(f, "\n%s:\n", group);
        }
        char left[64];
        if (o->kind == CLI_FLAG)
            snprintf(left, sizeof left, "--%s", o->name);
        else
            snprintf(left, sizeof left, "--%s %s", o->name, o->metavar ? o->metavar : "X");
        fprintf(f, "  %-30s %s", left, o->help);
        cli_help_more(f, v, o->name);
        if (o->kind != CLI_FLAG && o->def && *o->def)
            fprintf(f, " [%s]", o->def);
        fputc('\n', f);
    }
    fprintf(f, "\n  %-30s %s\n", "--help", "show this help");
}

static int fail(cli_values *v, const char *name, const char *what, const char *val)
{
    snprintf(v->err, sizeof v->err, "--%s: %s, got '%s'", name, what, val);
    return -1;
}

int cli_int(cli_values *v, const char *name, long long lo, long long hi, long long *out)
{
    return cli_int_text(v, name, cli_str(v, name), lo, hi, out);
}

int cli_int_text(cli_values *v, const char *name, const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (!*s || *end || errno)
        return fail(v, name, "expected an integer", s);
    if (x < lo || x > hi) {
        char what[128];
        snprintf(what, sizeof what, "must be between %lld and %lld", lo, hi);
        return fail(v, name, what, s);
    }
    *out = x;
    return 0;
}

int cli_named_values(cli_values *v, const char *name, ol_ctx *reg, void *target,
                     int (*set)(ol_ctx *reg, void *target, const char *key, double value))
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", cli_str(v, name));
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '='), *end = NULL;
        double x = eq ? strtod(eq + 1, &end) : 0.0;
        if (!eq || end == eq + 1 || *end || !isfinite(x)) {
            snprintf(v->err, sizeof v->err, "--%s: expected NAME=VALUE, got '%s'", name, tok);
            return -1;
        }
        *eq = '\0';
        if (set(reg, target, tok, x) < 0) {
            snprintf(v->err, sizeof v->err, "--%s: %s", name, ol_ctx_errmsg(reg));
            return -1;
        }
    }
    return 0;
}

/* Decimal notation only: strtod also takes hex floats (0x10), inf and nan. */
static int decimal(const char *s)
{
    return s[strspn(s, "0123456789+-.eE")] == '\0';
}

int cli_double(cli_values *v, const char *name, double lo, double hi, double *out)
{
    return cli_double_text(v, name, cli_str(v, name), lo, hi, out);
}

int cli_double_text(cli_values *v, const char *name, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (!*s || *end || errno == ERANGE || !isfinite(x) || !decimal(s))
        return fail(v, name, "expected a number", s);
    if (x < lo || x > hi) {
        char what[128];
        snprintf(what, sizeof what, "must be between %g and %g", lo, hi);
        return fail(v, name, what, s);
    }
    *out = x;
    return 0;
}

int cli_flag(const cli_values *v, const char *name)
{
    const char *s = cli_str(v, name);
    return strcmp(s, "1") == 0 || strcmp(s, "true") == 0;
}

static int split_list(cli_values *v, const char *name, int max, char parts[][64], int *n)
{
    const char *s = cli_str(v, name);
    *n = 0;
    if (!*s)
        return 0;
    const char *p = s;
    for (;;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (*n >= max)
            return fail(v, name, "too many values", s);
        if (len == 0 || len >= 64)
            return fail(v, name, "expected a comma-separated list", s);
        memcpy(parts[*n], p, len);
        parts[*n][len] = '\0';
        (*n)++;
        if (!c)
            break;
        p = c + 1;
    }
    return 0;
}

int cli_int_list(cli_values *v, const char *name, long long lo, long long hi, long long *out, int max, int *n)
{
    char parts[64][64];
    if (max > 64)
        max = 64;
    if (split_list(v, name, max, parts, n) != 0)
        return -1;
    for (int i = 0; i < *n; i++) {
        char *end;
        errno = 0;
        long long x = strtoll(parts[i], &end, 10);
        if (*end || errno)
            return fail(v, name, "expected comma-separated integers", cli_str(v, name));
        if (x < lo || x > hi) {
            char what[128];
            snprintf(what, sizeof what, "values must be between %lld and %lld", lo, hi);
            return fail(v, name, what, cli_str(v, name));
        }
        out[i] = x;
    }
    return 0;
}

int cli_double_list(cli_values *v, const char *name, double lo, double hi, double *out, int max, int *n)
{
    char parts[64][64];
    if (max > 64)
        max = 64;
    if (split_list(v, name, max, parts, n) != 0)
        return -1;
    for (int i = 0; i < *n; i++) {
        char *end;
        errno = 0;
        double x = strtod(parts[i], &end);
        if (*end || errno == ERANGE || !isfinite(x) || !decimal(parts[i]))
            return fail(v, name, "expected comma-separated numbers", cli_str(v, name));
        if (x < lo || x > hi) {
            char what[128];
            snprintf(what, sizeof what, "values must be between %g and %g", lo, hi);
            return fail(v, name, what, cli_str(v, name));
        }
        out[i] = x;
    }
    return 0;
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

int cli_write_json(const cli_values *v, FILE *f)
{
    int resolved = 0;
    for (int i = 0; i < v->n; i++)
        resolved += v->set[i] == CLI_RESOLVED;
    fprintf(f, "{\n");
    for (int i = 0; i < v->n; i++) {
        fprintf(f, "  ");
        json_string(f, v->opts[i]->name);
        fprintf(f, ": ");
        if (v->opts[i]->kind == CLI_FLAG)
            fprintf(f, "%s", cli_flag(v, v->opts[i]->name) ? "true" : "false");
        else
            json_string(f, v->val[i]);
        fprintf(f, "%s\n", i + 1 < v->n || resolved ? "," : "");
    }
    if (resolved) {
        fprintf(f, "  \"resolved\": [");
        for (int i = 0, k = 0; i < v->n; i++)
            if (v->set[i] == CLI_RESOLVED) {
                fprintf(f, "%s", k++ ? ", " : "");
                json_string(f, v->opts[i]->name);
            }
        fprintf(f, "]\n");
    }
    fprintf(f, "}\n");
    return ferror(f) ? -1 : 0;
}
