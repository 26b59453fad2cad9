/* Config files and presets for any command's option table.
 *
 * Precedence, lowest first: option defaults, a recipe (--recipe, or `recipe:`
 * in the config file), the config file (--config FILE), the command line.
 * The file is a YAML mapping whose keys are long option names; values are
 * scalars, or sequences (joined with commas) for list options. Parsed with
 * libyaml's event API, so every YAML syntax error comes with its line. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "common.h"

typedef struct {
    char *key, *val;
    int line;
} kv_pair;

typedef struct {
    kv_pair *p;
    int n, cap;
} kv_list;

static void kv_free(kv_list *l)
{
    for (int i = 0; i < l->n; i++) {
        free(l->p[i].key);
        free(l->p[i].val);
    }
    free(l->p);
    memset(l, 0, sizeof *l);
}

static int kv_add(kv_list *l, const char *key, const char *val, int line)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 32;
        kv_pair *p = realloc(l->p, (size_t)cap * sizeof *p);
        if (!p)
            return -1;
        l->p = p;
        l->cap = cap;
    }
    l->p[l->n].key = strdup(key);
    l->p[l->n].val = strdup(val);
    l->p[l->n].line = line;
    if (!l->p[l->n].key || !l->p[l->n].val)
        return -1;
    l->n++;
    return 0;
}

static int yaml_fail(cli_values *v, const char *path, const yaml_parser_t *ps)
{
    snprintf(v->err, sizeof v->err, "%s:%zu: %s%s%s", path, ps->problem_mark.line + 1,
             ps->problem ? ps->problem : "invalid YAML", ps->context ? " " : "", ps->context ? ps->context : "");
    return -1;
}

/* A plain null (`key:`, `~`, `null`) reads as "": the option's default. */
static const char *scalar_text(const yaml_event_t *e)
{
    const char *s = (const char *)e->data.scalar.value;
    if (e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
        (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL")))
        return "";
    return s;
}

/* Read the mapping into pairs; path only names the stream in messages. */
static int read_yaml_stream(cli_values *v, FILE *f, const char *path, kv_list *out)
{
    yaml_parser_t ps;
    yaml_event_t e;
    if (!yaml_parser_initialize(&ps)) {
        snprintf(v->err, sizeof v->err, "out of memory");
        return -1;
    }
    yaml_parser_set_input_file(&ps, f);
    enum { TOP, MAP_KEY, MAP_VAL, SEQ, DONE } state = TOP;
    char key[128] = "", seqbuf[4096] = "";
    int key_line = 0, rc = 0, docs = 0;
    for (;;) {
        if (!yaml_parser_parse(&ps, &e)) {
            rc = yaml_fail(v, path, &ps);
            break;
        }
        int line = (int)e.start_mark.line + 1;
        yaml_event_type_t t = e.type;
        if (t == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&e);
            break;
        }
        if (t == YAML_STREAM_START_EVENT || t == YAML_DOCUMENT_END_EVENT) {
            /* nothing */
        } else if (t == YAML_DOCUMENT_START_EVENT) {
            if (++docs > 1) {
                snprintf(v->err, sizeof v->err, "%s:%d: only one YAML document is allowed", path, line);
                rc = -1;
            }
        } else if (t == YAML_ALIAS_EVENT) {
            snprintf(v->err, sizeof v->err, "%s:%d: YAML aliases are not supported", path, line);
            rc = -1;
        } else if (state == TOP) {
            if (t == YAML_MAPPING_START_EVENT)
                state = MAP_KEY;
            else if (t == YAML_SCALAR_EVENT && !*scalar_text(&e))
                state = DONE; /* an empty document */
            else {
                snprintf(v->err, sizeof v->err, "%s:%d: expected a mapping of option: value", path, line);
                rc = -1;
            }
        } else if (state == MAP_KEY) {
            if (t == YAML_MAPPING_END_EVENT)
                state = DONE;
            else if (t == YAML_SCALAR_EVENT && strlen((const char *)e.data.scalar.value) < sizeof key) {
                snprintf(key, sizeof key, "%s", (const char *)e.data.scalar.value);
                key_line = line;
                state = MAP_VAL;
            } else {
                snprintf(v->err, sizeof v->err, "%s:%d: keys must be option names", path, line);
                rc = -1;
            }
        } else if (state == MAP_VAL) {
            if (t == YAML_SCALAR_EVENT) {
                rc = kv_add(out, key, scalar_text(&e), key_line);
                state = MAP_KEY;
            } else if (t == YAML_SEQUENCE_START_EVENT) {
                seqbuf[0] = '\0';
                state = SEQ;
            } else {
                snprintf(v->err, sizeof v->err, "%s:%d: '%s' must be a scalar or a list of scalars", path, line, key);
                rc = -1;
            }
        } else if (state == SEQ) {
            if (t == YAML_SEQUENCE_END_EVENT) {
                rc = kv_add(out, key, seqbuf, key_line);
                state = MAP_KEY;
            } else if (t == YAML_SCALAR_EVENT) {
                size_t len = strlen(seqbuf);
                if (len + strlen((const char *)e.data.scalar.value) + 2 >= sizeof seqbuf) {
                    snprintf(v->err, sizeof v->err, "%s:%d: list '%s' is too long", path, line, key);
                    rc = -1;
                } else
                    snprintf(seqbuf + len, sizeof seqbuf - len, "%s%s", len ? "," : "",
                             (const char *)e.data.scalar.value);
            } else {
                snprintf(v->err, sizeof v->err, "%s:%d: '%s' must be a list of scalars", path, line, key);
                rc = -1;
            }
        } else {
            snprintf(v->err, sizeof v->err, "%s:%d: unexpected content after the mapping", path, line);
            rc = -1;
        }
        yaml_event_delete(&e);
        if (rc < 0)
            break;
    }
    if (rc < 0 && !*v->err)
        snprintf(v->err, sizeof v->err, "out of memory");
    yaml_parser_delete(&ps);
    return rc;
}

static int read_yaml(cli_values *v, const char *path, kv_list *out)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(v->err, sizeof v->err, "--config: cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    int rc = read_yaml_stream(v, f, path, out);
    fclose(f);
    return rc;
}

/* Flags accept YAML booleans. */
static int flag_value(const char *s, const char **out)
{
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes", "on", "1"};
    static const char *const no[] = {"false", "False", "FALSE", "no", "No", "off", "0", ""};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (!strcmp(s, yes[i])) {
            *out = "1";
            return 0;
        }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (!strcmp(s, no[i])) {
            *out = "0";
            return 0;
        }
    return -1;
}

static int apply_pairs(cli_values *v, const char *path, kv_list *l, char *recipe, size_t cap);

int cli_load_config(cli_values *v, const char *path, char *recipe, size_t cap)
{
    kv_list l = {0};
    *v->err = '\0';
    if (read_yaml(v, path, &l) < 0) {
        kv_free(&l);
        return -1;
    }
    return apply_pairs(v, path, &l, recipe, cap);
}

int cli_load_config_stream(cli_values *v, FILE *f, const char *label, char *recipe, size_t cap)
{
    kv_list l = {0};
    *v->err = '\0';
    if (read_yaml_stream(v, f, label, &l) < 0) {
        kv_free(&l);
        return -1;
    }
    return apply_pairs(v, label, &l, recipe, cap);
}

static int apply_pairs(cli_values *v, const char *path, kv_list *lp, char *recipe, size_t cap)
{
    kv_list l = *lp; /* freed here */
    /* check every key before changing anything */
    int rc = 0;
    for (int i = 0; i < l.n && rc == 0; i++) {
        const char *k = l.p[i].key;
        int idx = cli_find(v, k);
        if (idx < 0 || !strcmp(k, "config"))
            rc = -1, snprintf(v->err, sizeof v->err, "%s:%d: unknown key '%s'%s", path, l.p[i].line, k,
                              idx < 0 ? " (keys are the long option names of this command)" : "");
        for (int j = 0; j < i && rc == 0; j++)
            if (!strcmp(l.p[j].key, k))
                rc = -1, snprintf(v->err, sizeof v->err, "%s:%d: duplicate key '%s'", path, l.p[i].line, k);
        const char *fv;
        if (rc == 0 && v->opts[idx]->kind == CLI_FLAG && flag_value(l.p[i].val, &fv) < 0)
            rc = -1, snprintf(v->err, sizeof v->err, "%s:%d: '%s' is a flag: expected true or false, got '%s'", path,
                              l.p[i].line, k, l.p[i].val);
    }
    if (rc == 0 && recipe) {
        *recipe = '\0';
        for (int i = 0; i < l.n; i++)
            if (!strcmp(l.p[i].key, "recipe"))
                snprintf(recipe, cap, "%s", l.p[i].val);
    }
    for (int i = 0; i < l.n && rc == 0; i++) {
        const cli_opt *o = v->opts[cli_find(v, l.p[i].key)];
        const char *val = *l.p[i].val ? l.p[i].val : (o->def ? o->def : ""); /* null: the default */
        if (o->kind == CLI_FLAG)
            flag_value(l.p[i].val, &val);
        /* null leaves the option unset (its default), so it counts as not given */
        if (cli_set(v, l.p[i].key, val, *l.p[i].val ? 2 : 0) < 0)
            rc = -1, snprintf(v->err, sizeof v->err, "out of memory");
    }
    kv_free(&l);
    return rc;
}

/* The value of --NAME in argv (last one wins), or NULL. */
static const char *argv_value(int argc, char **argv, int first, const char *name)
{
    const char *found = NULL;
    size_t len = strlen(name);
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--"))
            break;
        if (strncmp(a, "--", 2) != 0 || strncmp(a + 2, name, len) != 0)
            continue;
        if (a[2 + len] == '=')
            found = a + 3 + len;
        else if (a[2 + len] == '\0' && i + 1 < argc)
            found = argv[++i];
    }
    return found;
}

/* getopt_long accepts unambiguous prefixes (--conf); the presets are read
 * before getopt runs, so they must be spelled out. */
static int abbreviated(cli_values *v, int argc, char **argv, int first)
{
    static const char *const names[] = {"config", "recipe"};
    for (int i = first; i < argc && strcmp(argv[i], "--") != 0; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0)
            continue;
        size_t len = strcspn(a + 2, "=");
        for (int k = 0; k < 2; k++)
            if (len >= 1 && len < strlen(names[k]) && strncmp(a + 2, names[k], len) == 0 && cli_find(v, names[k]) >= 0) {
                char opt[64];
                snprintf(opt, sizeof opt, "%.*s", (int)(len < 60 ? len : 60), a + 2);
                if (cli_find(v, opt) < 0) {
                    snprintf(v->err, sizeof v->err, "write --%s in full (got '--%s')", names[k], opt);
                    return 1;
                }
            }
    }
    return 0;
}

int cli_apply_presets(cli_values *v, int argc, char **argv, int first)
{
    if (abbreviated(v, argc, argv, first))
        return -1;
    const char *cfg = cli_find(v, "config") >= 0 ? argv_value(argc, argv, first, "config") : NULL;
    const char *rec = cli_find(v, "recipe") >= 0 ? argv_value(argc, argv, first, "recipe") : NULL;
    char file_recipe[128] = "";
    if (cfg && *cfg) {
        /* read and check the file first; its values are set again after the recipe */
        cli_values probe;
        const cli_opt *const none[] = {NULL};
        cli_init(&probe, none);
        probe.n = v->n;
        for (int i = 0; i < v->n; i++) {
            probe.opts[i] = v->opts[i];
            probe.val[i] = strdup(v->val[i]);
        }
        int rc = cli_load_config(&probe, cfg, file_recipe, sizeof file_recipe);
        if (rc < 0)
            snprintf(v->err, sizeof v->err, "%s", probe.err);
        cli_free(&probe);
        if (rc < 0)
            return -1;
    }
    const char *recipe = rec ? rec : file_recipe;
    if (*recipe && cli_apply_recipe(v, recipe) < 0)
        return -1;
    if (cfg && *cfg) {
        if (cli_load_config(v, cfg, NULL, 0) < 0)
            return -1;
        cli_set(v, "config", cfg, 2);
    }
    if (rec)
        cli_set(v, "recipe", rec, 1);
    return 0;
}

const char *cli_stored_text(json_t *v)
{
    return json_is_string(v) ? json_string_value(v) : json_is_true(v) ? "1" : json_is_false(v) ? "0" : NULL;
}

int cli_apply_stored(cli_values *v, json_t *cfg, char *err, size_t cap)
{
    const char *key;
    json_t *val;
    const json_t *resolved = json_object_get(cfg, "resolved");
    json_object_foreach(cfg, key, val)
    {
        const char *sv = cli_stored_text(val);
        const int i = cli_find(v, key);
        int from_default = 0; /* resolved from a default: it stays one (options that do not apply stay unset) */
        for (size_t k = 0; k < json_array_size(resolved); k++)
            from_default |= json_is_string(json_array_get(resolved, k)) &&
                            strcmp(json_string_value(json_array_get(resolved, k)), key) == 0;
        if (i < 0 || !sv || from_default || strcmp(sv, v->opts[i]->def ? v->opts[i]->def : "") == 0)
            continue;
        if (cli_set(v, key, sv, 2) < 0) {
            snprintf(err, cap, "stored configuration: bad value for '%.100s'", key);
            return -1;
        }
    }
    return 0;
}
