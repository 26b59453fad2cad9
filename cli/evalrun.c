/* Opening a trained run for evaluation: checkpoint, model, and the run's data. */
#include <dirent.h>
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "evalrun.h"

int cli_run_checkpoint(ol_ctx *ctx, const char *src, char *path, size_t cap)
{
    struct stat st;
    if (stat(src, &st) != 0) {
        char msg[1200];
        snprintf(msg, sizeof msg, "%.1000s: no such run directory or checkpoint", src);
        ol_ctx_set_error(ctx, OL_ENOENT, msg);
        return OL_ENOENT;
    }
    if (S_ISDIR(st.st_mode))
        return ol_checkpoint_latest(ctx, src, path, cap);
    snprintf(path, cap, "%s", src);
    return OL_OK;
}

/* The configuration stored in the checkpoint, or the run directory's
 * config.json for checkpoints written without one. NULL: none (defaults). */
static json_t *run_config(ol_ctx *ctx, const char *ckpt)
{
    char *cfg = NULL;
    json_t *o = NULL;
    if (ol_checkpoint_read_config(ctx, ckpt, &cfg) >= 0 && cfg && *cfg)
        o = json_loads(cfg, 0, NULL);
    free(cfg);
    if (json_is_object(o))
        return o;
    json_decref(o);
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s", ckpt);
    snprintf(path, sizeof path, "%s/config.json", dirname(dir));
    o = json_load_file(path, 0, NULL);
    if (json_is_object(o))
        return o;
    json_decref(o);
    return NULL;
}

/* The run's data options (and seed: the validation split) into v; its evaluation batch into *batch. */
static int apply_run_config(json_t *o, cli_values *v, int *batch, char *err, size_t cap)
{
    if (cli_apply_stored(v, o, err, cap) < 0)
        return -1;
    const char *eb = cli_stored_text(json_object_get(o, "eval-batch-size"));
    const char *bs = cli_stored_text(json_object_get(o, "batch-size"));
    long eval_b = eb ? strtol(eb, NULL, 10) : 0, b = bs ? strtol(bs, NULL, 10) : 0;
    *batch = eval_b > 0 && eval_b <= (1 << 20) ? (int)eval_b : b > 0 && b <= (1 << 20) ? (int)b : 128;
    return 0;
}

static int load_run_data(ol_ctx *ctx, cli_run *r, json_t *cfg, const char *data_dir, int64_t ntrain, int64_t ntest,
                         char *err, size_t cap)
{
    const cli_opt *const tables[] = {cli_data_opts, cli_run_opts, cli_model_opts, NULL}; /* model: a GPT's context */
    cli_values v;
    cli_init(&v, tables);
    int rc = 0;
    r->batch = 128;
    if (cfg && apply_run_config(cfg, &v, &r->batch, err, cap) < 0)
        rc = -1;
    if (rc == 0 && *data_dir)
        cli_set(&v, "data-dir", data_dir, 1);
    int exit_code = OL_EXIT_USAGE;
    if (rc == 0 && (exit_code = cli_load_data(ctx, &v, &r->data, err, cap)) != OL_EXIT_OK)
        rc = -1;
    if (rc == 0)
        snprintf(r->dataset, sizeof r->dataset, "%s", cli_str(&v, "dataset"));
    cli_free(&v);
    if (rc < 0)
        return exit_code;
    /* subsets after the statistics: the run's normalisation whatever the subset */
    ol_dataset *sets[3] = {&r->data.train, &r->data.test, &r->data.real_test};
    int64_t keep[3] = {ntrain, ntest, ntest};
    for (int i = 0; i < 3; i++) {
        if (keep[i] <= 0 || (!sets[i]->images && !sets[i]->tokens))
            continue;
        if (keep[i] > sets[i]->n) {
            snprintf(err, cap, "--%s-subset %lld: the %s set has only %lld samples", i == 0 ? "train" : "test",
                     (long long)keep[i], i == 0 ? "training" : "test", (long long)sets[i]->n);
            return OL_EXIT_USAGE;
        }
        if (ol_dataset_truncate(ctx, sets[i], keep[i]) < 0) {
            snprintf(err, cap, "%s", ol_ctx_errmsg(ctx));
            return OL_EXIT_FAIL;
        }
    }
    return OL_EXIT_OK;
}

int cli_run_open(ol_ctx *ctx, const char *src, int load_data, const char *data_dir, int64_t ntrain, int64_t ntest,
                 cli_run *r, char *err, size_t cap)
{
    memset(r, 0, sizeof *r);
    ol_model_params mp;
    int s = cli_run_checkpoint(ctx, src, r->ckpt, sizeof r->ckpt);
    if (s >= 0)
        s = ol_checkpoint_model_params(ctx, r->ckpt, &mp);
    if (s >= 0)
        s = ol_model_create(ctx, &mp, &r->m);
    if (s >= 0)
        s = ol_checkpoint_load(ctx, r->ckpt, r->m, NULL, &r->ts);
    if (s < 0) {
        snprintf(err, cap, "%s", ol_ctx_errmsg(ctx));
        return cli_exit_for(s);
    }
    if (!load_data)
        return OL_EXIT_OK;
    json_t *cfg = run_config(ctx, r->ckpt);
    int rc = load_run_data(ctx, r, cfg, data_dir, ntrain, ntest, err, cap);
    json_decref(cfg);
    if (rc == OL_EXIT_OK) {
        const ol_model_params *p = ol_model_get_params(r->m);
        const ol_dataset *d = &r->data.train;
        if (d->c != p->in_c || d->h != p->in_h || d->w != p->in_w || d->num_classes > p->num_classes) {
            snprintf(err, cap, "%.600s: the model takes %dx%dx%d images and %d classes, the data has %dx%dx%d and %d",
                     r->ckpt, p->in_c, p->in_h, p->in_w, p->num_classes, d->c, d->h, d->w, d->num_classes);
            rc = OL_EXIT_USAGE;
        }
    }
    return rc;
}

int cli_run_ctx(cli_values *v, const char *src, int threads, int load_data, int64_t ntrain, int64_t ntest,
                ol_ctx **ctx, cli_run *r)
{
    int rc = cli_ctx_new(v, threads, ctx);
    if (rc != OL_EXIT_OK)
        return rc;
    char err[1400];
    rc = cli_run_open(*ctx, src, load_data, cli_str(v, "data-dir"), ntrain, ntest, r, err, sizeof err);
    return rc == OL_EXIT_OK ? rc : cli_fail(rc, err);
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

int cli_run_list_steps(const char *dir, long long max_step, long long **steps, int *n)
{
    DIR *d = opendir(dir);
    *n = 0;
    *steps = NULL;
    if (!d)
        return -1;
    int cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        long long st;
        char tail[32];
        if (sscanf(e->d_name, "ckpt-%lld.safetensor%31s", &st, tail) != 2 || strcmp(tail, "s") != 0 || st > max_step)
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            long long *t = realloc(*steps, sizeof(long long) * (size_t)cap);
            if (!t) {
                closedir(d);
                return -1;
            }
            *steps = t;
        }
        (*steps)[(*n)++] = st;
    }
    closedir(d);
    if (*n > 0)
        qsort(*steps, (size_t)*n, sizeof(long long), cmp_ll);
    return 0;
}

int cli_run_args(cli_values *v, int argc, char **argv, const char *usage, cli_run_parse_fn parse, void *opts)
{
    if (argc < 3) {
        fprintf(stderr, "%s\n", usage);
        return OL_EXIT_USAGE;
    }
    int help = strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0;
    if (!help && cli_parse(v, argc, argv, 3, &help) != 0)
        return cli_fail(OL_EXIT_USAGE, v->err);
    if (help) {
        cli_print_help(stdout, v, usage);
        return OL_EXIT_OK;
    }
    char err[1400] = "";
    if (parse && parse(v, opts, err, sizeof err) < 0)
        return cli_fail(OL_EXIT_USAGE, v->err[0] ? v->err : err);
    return -1;
}

void cli_run_close(cli_run *r)
{
    ol_model_free(r->m);
    r->m = NULL;
    cli_free_data(&r->data);
}
