/* Grid files of optimlab sweep (format in sweep.h), read with libyaml's
 * document API so every error names its line. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "sweep.h"

typedef struct {
    yaml_document_t *doc;
    const char *path;
    char *err;
    size_t cap;
} parse;

static int fail(parse *P, const yaml_node_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(parse *P, const yaml_node_t *n, const char *fmt, ...)
{
    int len = n ? snprintf(P->err, P->cap, "%s:%zu: ", P->path, n->start_mark.line + 1)
                : snprintf(P->err, P->cap, "%s: ", P->path);
    va_list ap;
    va_start(ap, fmt);
    if (len >= 0 && (size_t)len < P->cap)
        vsnprintf(P->err + len, P->cap - (size_t)len, fmt, ap);
    va_end(ap);
    return -1;
}

/* Scalar text; a plain null (`key:`, `~`, `null`) is "" (the option's default). NULL: not a scalar. */
static const char *scalar(const yaml_node_t *n)
{
    if (!n || n->type != YAML_SCALAR_NODE)
        return NULL;
    const char *s = (const char *)n->data.scalar.value;
    if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
        (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL")))
        return "";
    return s;
}

/* An option value: a scalar, or a list of scalars joined with commas (list options). */
static int value_text(parse *P, yaml_node_t *v, const char *key, char *out, size_t cap)
{
    const char *s = scalar(v);
    if (s) {
        if (strlen(s) >= cap)
            return fail(P, v, "the value of '%s' is too long", key);
        snprintf(out, cap, "%s", s);
        return 0;
    }
    if (!v || v->type != YAML_SEQUENCE_NODE)
        return fail(P, v, "'%s' must be a value or a list of values", key);
    size_t len = 0;
    *out = '\0';
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        const char *e = scalar(yaml_document_get_node(P->doc, *it));
        if (!e)
            return fail(P, v, "'%s' must be a list of values, not of lists or mappings", key);
        if (len + strlen(e) + 2 >= cap)
            return fail(P, v, "the value of '%s' is too long", key);
        len += (size_t)snprintf(out + len, cap - len, "%s%s", len ? "," : "", e);
    }
    return 0;
}

static int conf_set(sweep_conf *c, const char *key, const char *val)
{
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->kv[i].key, key)) {
            char *v = strdup(val);
            if (!v)
                return -1;
            free(c->kv[i].val);
            c->kv[i].val = v;
            return 0;
        }
    if (c->n == c->cap) {
        int nc = c->cap ? 2 * c->cap : 16;
        sweep_kv *kv = realloc(c->kv, (size_t)nc * sizeof *kv);
        if (!kv)
            return -1;
        c->kv = kv;
        c->cap = nc;
    }
    c->kv[c->n].key = strdup(key);
    c->kv[c->n].val = strdup(val);
    if (!c->kv[c->n].key || !c->kv[c->n].val)
        return -1;
    c->n++;
    return 0;
}

const char *sweep_conf_get(const sweep_conf *c, const char *key)
{
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->kv[i].key, key))
            return c->kv[i].val;
    return NULL;
}

static void conf_free(sweep_conf *c)
{
    for (int i = 0; i < c->n; i++) {
        free(c->kv[i].key);
        free(c->kv[i].val);
    }
    free(c->kv);
    memset(c, 0, sizeof *c);
}

static sweep_conf *new_conf(sweep_grid *g, const sweep_conf *base, int line)
{
    sweep_conf *nc = realloc(g->conf, (size_t)(g->nconf + 1) * sizeof *nc);
    if (!nc)
        return NULL;
    g->conf = nc;
    sweep_conf *c = &g->conf[g->nconf++];
    memset(c, 0, sizeof *c);
    c->line = line;
    for (int i = 0; base && i < base->n; i++)
        if (conf_set(c, base->kv[i].key, base->kv[i].val) < 0)
            return NULL;
    return c;
}

/* Train options the sweep sets itself for every run (its directory, resuming). */
static int set_by_sweep(const char *key)
{
    return !strcmp(key, "out") || !strcmp(key, "resume") || !strcmp(key, "overwrite");
}

/* A mapping of option: value into c; keys must be unique. name_out: where a `name:` key goes (NULL: not allowed). */
static int read_options(parse *P, yaml_node_t *map, const char *what, sweep_conf *c, char *name_out, size_t ncap)
{
    if (!map || map->type != YAML_MAPPING_NODE)
        return fail(P, map, "%s must be a mapping of option: value", what);
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(P->doc, p->key), *v = yaml_document_get_node(P->doc, p->value);
        const char *key = scalar(k);
        if (!key || !*key)
            return fail(P, k, "%s: keys must be option names", what);
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++)
            if (!strcmp(scalar(yaml_document_get_node(P->doc, q->key)), key))
                return fail(P, k, "%s: duplicate key '%s'", what, key);
        if (name_out && !strcmp(key, "name")) {
            const char *s = scalar(v);
            if (!s || !*s || strlen(s) >= ncap)
                return fail(P, v, "name: expected a run name");
            snprintf(name_out, ncap, "%s", s);
            continue;
        }
        if (set_by_sweep(key))
            return fail(P, k, "%s: '%s' is set by the sweep (each run goes to OUT/<its name>)", what, key);
        char val[4096];
        if (value_text(P, v, key, val, sizeof val) < 0)
            return -1;
        if (conf_set(c, key, val) < 0)
            return fail(P, k, "out of memory");
    }
    return 0;
}

/* Equal as text, or as numbers however written (0.1 and 0.10, 1e-3 and 0.001): the same run twice. */
static int same_value(const char *a, const char *b)
{
    if (!strcmp(a, b))
        return 1;
    char *ea, *eb;
    double x = strtod(a, &ea), y = strtod(b, &eb);
    return ea != a && eb != b && !*ea && !*eb && x == y;
}

/* Every combination of the grid's lists on top of the fixed options. */
static int expand_grid(parse *P, yaml_node_t *grid, const sweep_conf *fixed, sweep_grid *g)
{
    if (grid->type != YAML_MAPPING_NODE)
        return fail(P, grid, "grid must be a mapping of option: [values]");
    int nk = (int)(grid->data.mapping.pairs.top - grid->data.mapping.pairs.start);
    if (nk == 0)
        return fail(P, grid, "grid is empty");
    if (nk > 64)
        return fail(P, grid, "the grid varies more than 64 options");
    yaml_node_pair_t *pairs = grid->data.mapping.pairs.start;
    long long total = 1;
    for (int i = 0; i < nk; i++) {
        yaml_node_t *k = yaml_document_get_node(P->doc, pairs[i].key), *v = yaml_document_get_node(P->doc, pairs[i].value);
        const char *key = scalar(k);
        if (!key || !*key)
            return fail(P, k, "grid: keys must be option names");
        for (int j = 0; j < i; j++)
            if (!strcmp(scalar(yaml_document_get_node(P->doc, pairs[j].key)), key))
                return fail(P, k, "grid: duplicate key '%s'", key);
        if (set_by_sweep(key) || !strcmp(key, "name"))
            return fail(P, k, "grid: '%s' cannot vary", key);
        if (sweep_conf_get(fixed, key))
            return fail(P, k, "'%s' is both fixed and in the grid", key);
        if (!v || v->type != YAML_SEQUENCE_NODE)
            return fail(P, v, "grid: '%s' must be a list of values (one value goes under fixed:)", key);
        long long len = v->data.sequence.items.top - v->data.sequence.items.start;
        if (len == 0)
            return fail(P, v, "grid: the list of '%s' is empty", key);
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
            const char *a = scalar(yaml_document_get_node(P->doc, *it));
            if (!a)
                return fail(P, v, "grid: '%s' must be a list of values (write a list option's value as \"a,b\")", key);
            for (yaml_node_item_t *jt = v->data.sequence.items.start; jt < it; jt++) {
                const char *b = scalar(yaml_document_get_node(P->doc, *jt));
                if (same_value(a, b))
                    return fail(P, v, "grid: the list of '%s' has the same value twice ('%s' and '%s')", key, b, a);
            }
        }
        total *= len;
        if (total > 10000)
            return fail(P, grid, "the grid has more than 10000 configurations");
    }
    for (long long idx = 0; idx < total; idx++) {
        sweep_conf *c = new_conf(g, fixed, (int)grid->start_mark.line + 1);
        if (!c)
            return fail(P, grid, "out of memory");
        long long rest = idx, pick[64] = {0};
        for (int i = nk - 1; i >= 0; i--) { /* the last key varies fastest */
            yaml_node_t *v = yaml_document_get_node(P->doc, pairs[i].value);
            long long len = v->data.sequence.items.top - v->data.sequence.items.start;
            pick[i] = rest % len;
            rest /= len;
        }
        for (int i = 0; i < nk; i++) { /* set in the file's order: names follow it */
            yaml_node_t *v = yaml_document_get_node(P->doc, pairs[i].value);
            yaml_node_t *e = yaml_document_get_node(P->doc, v->data.sequence.items.start[pick[i]]);
            if (conf_set(c, scalar(yaml_document_get_node(P->doc, pairs[i].key)), scalar(e)) < 0)
                return fail(P, grid, "out of memory");
        }
    }
    return 0;
}

static int read_runs(parse *P, yaml_node_t *runs, const sweep_conf *fixed, sweep_grid *g)
{
    if (runs->type != YAML_SEQUENCE_NODE)
        return fail(P, runs, "runs must be a list of mappings of option: value");
    if (runs->data.sequence.items.top == runs->data.sequence.items.start)
        return fail(P, runs, "runs is empty");
    for (yaml_node_item_t *it = runs->data.sequence.items.start; it < runs->data.sequence.items.top; it++) {
        yaml_node_t *m = yaml_document_get_node(P->doc, *it);
        sweep_conf *c = new_conf(g, fixed, (int)m->start_mark.line + 1);
        if (!c)
            return fail(P, m, "out of memory");
        if (read_options(P, m, "runs", c, c->name, sizeof c->name) < 0)
            return -1;
    }
    return 0;
}

/* Name characters that need no quoting in a shell or a file name. */
static void put_sanitized(char *out, size_t cap, const char *s)
{
    size_t len = strlen(out);
    for (; *s && len + 1 < cap; s++)
        out[len++] = (strchr("._+-", *s) || (*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z'))
                         ? *s
                         : '_';
    out[len] = '\0';
}

static int name_runs(parse *P, sweep_grid *g)
{
    const char *keys[512];
    int nk = 0;
    for (int i = 0; i < g->nconf; i++)
        for (int k = 0; k < g->conf[i].n; k++) {
            const char *key = g->conf[i].kv[k].key;
            int known = 0, differs = 0;
            for (int j = 0; j < nk && !known; j++)
                known = !strcmp(keys[j], key);
            for (int j = 0; j < g->nconf && !differs && !known; j++) {
                const char *a = sweep_conf_get(&g->conf[i], key), *b = sweep_conf_get(&g->conf[j], key);
                differs = !b || strcmp(a, b) != 0;
            }
            if (differs && nk < 512)
                keys[nk++] = key;
        }
    for (int i = 0; i < g->nconf; i++) {
        sweep_conf *c = &g->conf[i];
        if (*c->name) {
            if (c->name[0] == '.' || strchr(c->name, '/') || !strcmp(c->name, "logs") || !strcmp(c->name, "report"))
                return fail(P, NULL, "run name '%s' (line %d): a plain directory name, not logs or report", c->name, c->line);
            continue;
        }
        char name[1024] = "";
        for (int k = 0; k < nk; k++) {
            const char *v = sweep_conf_get(c, keys[k]);
            if (!v)
                continue;
            size_t len = strlen(name);
            snprintf(name + len, sizeof name - len, "%s%s=", len ? "," : "", keys[k]);
            put_sanitized(name, sizeof name, *v ? v : "default");
        }
        if (!*name)
            snprintf(name, sizeof name, "run");
        if (strlen(name) >= sizeof c->name - 1 || strlen(name) > 200)
            return fail(P, NULL, "run at line %d: its name '%.60s...' is too long: give it a name:", c->line, name);
        snprintf(c->name, sizeof c->name, "%.255s", name);
    }
    for (int i = 0; i < g->nconf; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(g->conf[i].name, g->conf[j].name))
                return fail(P, NULL, "two runs are named '%s' (lines %d and %d): the same configuration twice, or give "
                                     "one a name:",
                            g->conf[i].name, g->conf[j].line, g->conf[i].line);
    return 0;
}

static int read_top(parse *P, yaml_node_t *root, const char *path, sweep_grid *g)
{
    if (!root || root->type != YAML_MAPPING_NODE)
        return fail(P, root, "expected a mapping with fixed:, grid: and runs:");
    yaml_node_t *fixed = NULL, *grid = NULL, *runs = NULL;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(P->doc, p->key), *v = yaml_document_get_node(P->doc, p->value);
        const char *key = scalar(k);
        yaml_node_t **slot = !key ? NULL : !strcmp(key, "fixed") ? &fixed : !strcmp(key, "grid") ? &grid
                                                                  : !strcmp(key, "runs")    ? &runs
                                                                                            : NULL;
        if (key && (!strcmp(key, "out") || !strcmp(key, "group-by"))) {
            const char *s = scalar(v);
            char *dst = !strcmp(key, "out") ? g->out : g->group_by;
            size_t cap = !strcmp(key, "out") ? sizeof g->out : sizeof g->group_by;
            if (!s || !*s || strlen(s) >= cap)
                return fail(P, v, "%s: expected a %s", key, !strcmp(key, "out") ? "directory" : "option name");
            snprintf(dst, cap, "%s", s);
            continue;
        }
        if (key && !strcmp(key, "lr-find")) {
            const char *s = scalar(v);
            int on = s && (!strcmp(s, "true") || !strcmp(s, "yes"));
            if (g->lr_find)
                return fail(P, k, "duplicate key 'lr-find'");
            if (s && !on && strcmp(s, "false") && strcmp(s, "no"))
                return fail(P, v, "lr-find: expected true, false or a mapping of lr-find options");
            if (!s && read_options(P, v, "lr-find", &g->lrfind, NULL, 0) < 0)
                return -1;
            g->lr_find = on || !s;
            continue;
        }
        if (!slot)
            return fail(P, k, "unknown key '%s' (out, group-by, fixed, grid, runs, lr-find)", key ? key : "?");
        if (*slot)
            return fail(P, k, "duplicate key '%s'", key);
        *slot = v;
    }
    sweep_conf base = {0};
    int rc = 0;
    if (fixed && fixed->type == YAML_SCALAR_NODE && !*scalar(fixed))
        fixed = NULL; /* `fixed:` with nothing under it */
    if (fixed)
        rc = read_options(P, fixed, "fixed", &base, NULL, 0);
    if (!rc && grid)
        rc = expand_grid(P, grid, &base, g);
    if (!rc && runs)
        rc = read_runs(P, runs, &base, g);
    if (!rc && !grid && !runs && !new_conf(g, &base, 1))
        rc = fail(P, root, "out of memory");
    conf_free(&base);
    if (!rc && !*g->out) { /* runs/<file name without directory and extension> */
        const char *b = strrchr(path, '/');
        b = b ? b + 1 : path;
        size_t len = strcspn(b, ".");
        snprintf(g->out, sizeof g->out, "runs/%.*s", (int)(len ? len : strlen(b)), b);
    }
    return rc ? rc : name_runs(P, g);
}

int sweep_grid_load_stream(FILE *f, const char *path, sweep_grid *g, char *err, size_t cap)
{
    memset(g, 0, sizeof *g);
    yaml_parser_t ps;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&ps)) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    yaml_parser_set_input_file(&ps, f);
    int rc = 0;
    if (!yaml_parser_load(&ps, &doc)) {
        snprintf(err, cap, "%s:%zu: %s%s%s", path, ps.problem_mark.line + 1, ps.problem ? ps.problem : "invalid YAML",
                 ps.context ? " " : "", ps.context ? ps.context : "");
        rc = -1;
    } else {
        parse P = {&doc, path, err, cap};
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        if (!root)
            rc = fail(&P, NULL, "the grid file is empty");
        else
            rc = read_top(&P, root, path, g);
        yaml_document_delete(&doc);
        if (rc == 0 && yaml_parser_load(&ps, &doc)) { /* a second document would be ignored: refuse it */
            if (yaml_document_get_root_node(&doc))
                rc = fail(&P, yaml_document_get_root_node(&doc), "only one YAML document is allowed");
            yaml_document_delete(&doc);
        }
    }
    yaml_parser_delete(&ps);
    if (rc < 0)
        sweep_grid_free(g);
    return rc;
}

int sweep_grid_load(const char *path, sweep_grid *g, char *err, size_t cap)
{
    memset(g, 0, sizeof *g);
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0 || S_ISDIR(st.st_mode)) {
        snprintf(err, cap, "cannot read %s: %s", path, !f ? strerror(errno) : "it is a directory");
        if (f)
            fclose(f);
        return -1;
    }
    int rc = sweep_grid_load_stream(f, path, g, err, cap);
    fclose(f);
    return rc;
}

int sweep_grid_set(sweep_grid *g, const char *kv, char *err, size_t cap)
{
    const char *eq = strchr(kv, '=');
    char key[128];
    if (!eq || eq == kv || (size_t)(eq - kv) >= sizeof key || !eq[1]) {
        snprintf(err, cap, "--set '%.200s': expected OPTION=VALUE", kv);
        return -1;
    }
    snprintf(key, sizeof key, "%.*s", (int)(eq - kv), kv);
    if (key[0] == '-') {
        snprintf(err, cap, "--set '%.200s': the option without its dashes (--set %s)", kv, key + strspn(key, "-"));
        return -1;
    }
    if (set_by_sweep(key) || !strcmp(key, "name")) {
        snprintf(err, cap, "--set %s: '%s' is set by the sweep (use --out for the sweep directory)", key, key);
        return -1;
    }
    const char *first = g->nconf ? sweep_conf_get(&g->conf[0], key) : NULL;
    for (int i = 1; i < g->nconf; i++) {
        const char *v = sweep_conf_get(&g->conf[i], key);
        if (!v != !first || (v && strcmp(v, first) != 0)) {
            snprintf(err, cap, "--set %s: '%s' varies between the grid's runs (%s and %s); --set fixes an option they share",
                     key, key, g->conf[0].name, g->conf[i].name);
            return -1;
        }
    }
    for (int i = 0; i < g->nconf; i++)
        if (conf_set(&g->conf[i], key, eq + 1) < 0) {
            snprintf(err, cap, "out of memory");
            return -1;
        }
    return 0;
}

void sweep_grid_free(sweep_grid *g)
{
    for (int i = 0; i < g->nconf; i++)
        conf_free(&g->conf[i]);
    free(g->conf);
    conf_free(&g->lrfind);
    memset(g, 0, sizeof *g);
}
