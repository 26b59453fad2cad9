/* optimlab eval: loss and accuracy of a checkpoint, without training. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "evalrun.h"

static const cli_opt eval_opts[] = {
    {"set", CLI_VALUE, "train,test", "LIST", "Eval", "sets to evaluate: train, test, val (the run's --val-split)"},
    {"train-subset", CLI_VALUE, "0", "N", "Eval", "the first N training samples (0 = all)"},
    {"test-subset", CLI_VALUE, "0", "N", "Eval", "the first N test (and validation) samples (0 = all)"},
    {"batch-size", CLI_VALUE, "0", "B", "Eval", "evaluation batch size (0 = the run's)"},
    {"data-dir", CLI_VALUE, "", "DIR", "Eval", "dataset directory (default: the run's)"},
    {"json", CLI_FLAG, "0", NULL, "Eval", "print the result as JSON"},
    {"out", CLI_VALUE, "", "FILE", "Eval", "also write the result as JSON to FILE"},
    {"threads", CLI_VALUE, "0", "T", "Run", "compute threads (0 = all cores)"},
    {"backend", CLI_VALUE, "auto", "NAME", "Run", "auto, onednn, blas, ref"},
    {NULL, 0, NULL, NULL, NULL, NULL}};

static const char *const eval_usage =
    "usage: optimlab eval RUN_DIR|CHECKPOINT [--set train,test] [--train-subset N] [--test-subset N] [--json]\n"
    "\n"
    "Mean loss and top-1 accuracy of a run's newest valid checkpoint (or the given checkpoint) on its\n"
    "training and/or test set, with BatchNorm in eval mode (running statistics), as training evaluates.\n"
    "The data options (dataset, directory, subsets, validation split) and the evaluation batch size\n"
    "come from the configuration stored in the checkpoint; normalisation uses the run's training\n"
    "statistics. The run directory is only read.";

/* Parse --set into want[0..2] = train, test, val. */
static int parse_sets(const char *list, int want[3], char *err, size_t cap)
{
    static const char *const names[3] = {"train", "test", "val"};
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    want[0] = want[1] = want[2] = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int k = -1;
        for (int i = 0; i < 3; i++)
            if (strcmp(t, names[i]) == 0)
                k = i;
        if (k < 0) {
            snprintf(err, cap, "--set: unknown set '%.100s' (train, test, val)", t);
            return -1;
        }
        want[k] = 1;
    }
    if (!want[0] && !want[1] && !want[2]) {
        snprintf(err, cap, "--set: no set given (train, test, val)");
        return -1;
    }
    return 0;
}

typedef struct {
    long long ntrain, ntest, batch, threads;
    int want[3];
} eval_opts_t;

static int eval_parse(cli_values *v, void *opts, char *err, size_t cap)
{
    eval_opts_t *o = opts;
    if (cli_int(v, "train-subset", 0, INT64_MAX, &o->ntrain) || cli_int(v, "test-subset", 0, INT64_MAX, &o->ntest) ||
        cli_int(v, "batch-size", 0, 1 << 20, &o->batch) || cli_int(v, "threads", 0, 1024, &o->threads)) {
        snprintf(err, cap, "%s", v->err);
        return -1;
    }
    return parse_sets(cli_str(v, "set"), o->want, err, cap);
}

/* Evaluate the wanted sets into a JSON object. */
static int eval_sets(ol_ctx *ctx, cli_run *r, const eval_opts_t *o, int batch, json_t *res, char *err, size_t cap)
{
    static const char *const names[3] = {"train", "test", "val"};
    const ol_dataset *sets[3] = {&r->data.train, r->data.has_val ? &r->data.real_test : &r->data.test,
                                 r->data.has_val ? &r->data.test : NULL};
    for (int i = 0; i < 3; i++) {
        if (!o->want[i])
            continue;
        if (!sets[i]) {
            snprintf(err, cap, "--set val: the run held out no validation set (--val-split)");
            return OL_EXIT_USAGE;
        }
        double loss, acc, t0 = ol_now();
        int s = ol_evaluate(ctx, r->m, sets[i], batch, &loss, &acc);
        if (s < 0) {
            snprintf(err, cap, "%s", ol_ctx_errmsg(ctx));
            return cli_exit_for(s);
        }
        json_t *one = json_pack("{s:f,s:f,s:I,s:f}", "loss", loss, "acc", acc, "n", (json_int_t)sets[i]->n,
                                "seconds", ol_now() - t0);
        if (one && sets[i]->tokens) { /* a language model: perplexity, bits per token (per byte at vocabulary 256) */
            json_object_set_new(one, "ppl", json_real(exp(loss)));
            json_object_set_new(one, "bits_per_token", json_real(loss / log(2.0)));
            if (sets[i]->num_classes == 256)
                json_object_set_new(one, "bpb", json_real(loss / log(2.0)));
        }
        json_object_set_new(res, names[i], one);
    }
    return OL_EXIT_OK;
}

static void print_text(const json_t *res, const cli_run *r)
{
    char arch[64];
    ol_model_params_name(ol_model_get_params(r->m), arch, sizeof arch);
    printf("%s: step %lld, epoch %lld (%s, %zu parameters, %s)\n", r->ckpt, (long long)r->ts.step,
           (long long)r->ts.epoch, arch, ol_paramset_count(ol_model_paramset(r->m)), r->dataset);
    static const char *const names[3] = {"train", "test", "val"};
    for (int i = 0; i < 3; i++) {
        json_t *s = json_object_get(res, names[i]);
        if (s && json_object_get(s, "ppl"))
            printf("%-5s loss %.4f  perplexity %.2f  %.3f bits per token  acc %.2f%%  (%lld windows, %.1f s)\n",
                   names[i], json_real_value(json_object_get(s, "loss")), json_real_value(json_object_get(s, "ppl")),
                   json_real_value(json_object_get(s, "bits_per_token")),
                   100.0 * json_real_value(json_object_get(s, "acc")),
                   (long long)json_integer_value(json_object_get(s, "n")),
                   json_real_value(json_object_get(s, "seconds")));
        else if (s)
            printf("%-5s loss %.4f  acc %.2f%%  (%lld samples, %.1f s)\n", names[i],
                   json_real_value(json_object_get(s, "loss")), 100.0 * json_real_value(json_object_get(s, "acc")),
                   (long long)json_integer_value(json_object_get(s, "n")),
                   json_real_value(json_object_get(s, "seconds")));
    }
}

int cmd_eval(int argc, char **argv)
{
    const cli_opt *const tables[] = {eval_opts, NULL};
    cli_values v;
    cli_init(&v, tables);
    int rc;
    ol_ctx *ctx = NULL;
    cli_run r;
    memset(&r, 0, sizeof r);
    json_t *res = NULL;
    char err[1400] = "";
    eval_opts_t o;
    if ((rc = cli_run_args(&v, argc, argv, eval_usage, eval_parse, &o)) >= 0)
        goto done;
    if ((rc = cli_run_ctx(&v, argv[2], (int)o.threads, 1, o.ntrain, o.ntest, &ctx, &r)) != OL_EXIT_OK)
        goto done;
    const int batch = o.batch > 0 ? (int)o.batch : r.batch;
    char arch[64];
    ol_model_params_name(ol_model_get_params(r.m), arch, sizeof arch);
    res = json_pack("{s:s,s:I,s:I,s:s,s:I,s:s,s:i,s:i}", "checkpoint", r.ckpt, "step", (json_int_t)r.ts.step,
                    "epoch", (json_int_t)r.ts.epoch, "model", arch,
                    "parameters", (json_int_t)ol_paramset_count(ol_model_paramset(r.m)), "dataset", r.dataset,
                    "batch_size", batch, "threads", ol_ctx_threads(ctx));
    if (!res) {
        rc = cli_fail(OL_EXIT_FAIL, "out of memory");
        goto done;
    }
    rc = eval_sets(ctx, &r, &o, batch, res, err, sizeof err);
    if (rc != OL_EXIT_OK) {
        rc = cli_fail(rc, err);
        goto done;
    }
    char *text = json_dumps(res, JSON_REAL_PRECISION(17) | JSON_INDENT(2));
    if (!text) {
        rc = cli_fail(OL_EXIT_FAIL, "out of memory");
        goto done;
    }
    size_t tlen = strlen(text);
    text[tlen] = '\n'; /* json_dumps' terminator: the file ends with a newline */
    int wrote = !*cli_str(&v, "out") || cli_write_file(ctx, cli_str(&v, "out"), text, tlen + 1, err, sizeof err) == 0;
    text[tlen] = '\0';
    if (!wrote)
        rc = cli_fail(OL_EXIT_FAIL, err);
    else if (cli_flag(&v, "json"))
        printf("%s\n", text);
    else
        print_text(res, &r);
    free(text);
done:
    json_decref(res);
    cli_run_close(&r);
    ol_ctx_free(ctx);
    cli_free(&v);
    return rc;
}
