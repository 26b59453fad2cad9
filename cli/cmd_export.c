/* optimlab export / import: weights to and from plain safetensors files with
 * PyTorch state_dict names. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"

static const cli_opt export_opts[] = {
    {"out", CLI_VALUE, "", "FILE", "Export", "weight file to write (.safetensors)"},
    {NULL, 0, NULL, NULL, NULL, NULL}};

static const cli_opt import_opts[] = {
    {"input", CLI_VALUE, "1x28x28", "CxHxW", "Import", "input shape of the model"},
    {"classes", CLI_VALUE, "10", "K", "Import", "number of classes"},
    {"out", CLI_VALUE, "", "FILE", "Import", "optimlab weight file to write (use with train --init-from)"},
    {NULL, 0, NULL, NULL, NULL, NULL}};

static const char *const export_usage =
    "usage: optimlab export RUN_DIR|CHECKPOINT --out FILE.safetensors\n"
    "\n"
    "Write the model weights and BatchNorm statistics of a run's newest checkpoint (or of the given\n"
    "checkpoint) under PyTorch state_dict names, with num_batches_tracked, loadable with\n"
    "model.load_state_dict(safetensors.torch.load_file(FILE)). Schedule-Free runs export x.";

static const char *const import_usage =
    "usage: optimlab import FILE.safetensors --model NAME [model options] --out OUT.safetensors\n"
    "\n"
    "Check a safetensors file (e.g. a PyTorch-initialised state_dict) against the model: every\n"
    "parameter and BatchNorm statistic present with its shape, floating-point (F32, F64, F16, BF16).\n"
    "Writes an optimlab weight file for train --init-from (which also reads such files directly).";

/* The export would overwrite the source or a run's checkpoint (compared by
 * inode, so links and other spellings of the path count too). */
static int export_target_is_checkpoint(ol_ctx *ctx, const char *src, const char *out, char *why, size_t cap)
{
    struct stat so, ss;
    if (stat(out, &so) != 0)
        return 0; /* a new file */
    if (stat(src, &ss) == 0 && so.st_dev == ss.st_dev && so.st_ino == ss.st_ino) {
        snprintf(why, cap, "export: --out %.500s is the checkpoint being exported", out);
        return 1;
    }
    if (S_ISREG(so.st_mode) && ol_checkpoint_verify(ctx, out) >= 0) {
        snprintf(why, cap, "export: --out %.500s is a checkpoint of a run: choose another file", out);
        return 1;
    }
    return 0;
}

int cmd_export(int argc, char **argv)
{
    const cli_opt *const tables[] = {export_opts, NULL};
    cli_values v;
    cli_init(&v, tables);
    int help = 0, rc = OL_EXIT_OK;
    ol_ctx *ctx = NULL;
    ol_model *m = NULL;
    if (argc < 3 || strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0) {
        FILE *f = argc < 3 ? stderr : stdout;
        fprintf(f, "%s\n", export_usage);
        cli_free(&v);
        return argc < 3 ? OL_EXIT_USAGE : OL_EXIT_OK;
    }
    const char *src = argv[2];
    if (cli_parse(&v, argc, argv, 3, &help) != 0 || (!help && !*cli_str(&v, "out"))) {
        rc = cli_fail(OL_EXIT_USAGE, v.err[0] ? v.err : "export: --out FILE is required");
        goto done;
    }
    if (help) {
        cli_print_help(stdout, &v, export_usage);
        goto done;
    }
    ctx = ol_ctx_new(0);
    if (!ctx) {
        rc = cli_fail(OL_EXIT_FAIL, "out of memory");
        goto done;
    }
    char path[4096];
    struct stat st;
    int s = stat(src, &st) == 0 && S_ISDIR(st.st_mode) ? ol_checkpoint_latest(ctx, src, path, sizeof path)
                                                         : (snprintf(path, sizeof path, "%s", src), OL_OK);
    ol_model_params mp;
    if (s >= 0)
        s = ol_checkpoint_model_params(ctx, path, &mp);
    if (s >= 0)
        s = ol_model_create(ctx, &mp, &m);
    if (s >= 0)
        s = ol_checkpoint_load(ctx, path, m, NULL, NULL);
    char why[1200];
    if (s >= 0 && export_target_is_checkpoint(ctx, path, cli_str(&v, "out"), why, sizeof why)) {
        rc = cli_fail(OL_EXIT_USAGE, why);
        goto done;
    }
    if (s >= 0)
        s = ol_weights_export(ctx, cli_str(&v, "out"), m, NULL);
    if (s < 0) {
        rc = cli_fail_ctx(ctx, cli_exit_for(s));
        goto done;
    }
    char arch[64];
    ol_model_params_name(&mp, arch, sizeof arch);
    printf("exported %s (%zu parameters) from %s to %s\n", arch, ol_paramset_count(ol_model_paramset(m)), path,
           cli_str(&v, "out"));
done:
    ol_model_free(m);
    ol_ctx_free(ctx);
    cli_free(&v);
    return rc;
}

int cmd_import(int argc, char **argv)
{
    const cli_opt *const tables[] = {cli_model_opts, import_opts, cli_run_opts, NULL};
    cli_values v;
    cli_init(&v, tables);
    int help = 0, rc = OL_EXIT_OK;
    ol_ctx *ctx = NULL;
    ol_model *m = NULL;
    char err[512];
    if (argc < 3 || strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0) {
        if (argc >= 3) {
            cli_print_help(stdout, &v, import_usage);
            cli_free(&v);
            return OL_EXIT_OK;
        }
        fprintf(stderr, "%s\n", import_usage);
        cli_free(&v);
        return OL_EXIT_USAGE;
    }
    const char *src = argv[2];
    ol_model_params mp;
    long long classes;
    int c, h, w;
    char tail;
    if (cli_parse(&v, argc, argv, 3, &help) != 0) {
        rc = cli_fail(OL_EXIT_USAGE, v.err);
        goto done;
    }
    if (help) {
        cli_print_help(stdout, &v, import_usage);
        goto done;
    }
    if (!*cli_str(&v, "out")) {
        rc = cli_fail(OL_EXIT_USAGE, "import: --out FILE is required");
        goto done;
    }
    if (cli_build_model(&v, &mp) || cli_int(&v, "classes", 2, 100000, &classes)) {
        rc = cli_fail(OL_EXIT_USAGE, v.err);
        goto done;
    }
    if (sscanf(cli_str(&v, "input"), "%dx%dx%d%c", &c, &h, &w, &tail) != 3 || c < 1 || h < 1 || w < 1) {
        snprintf(err, sizeof err, "--input: expected CxHxW such as 1x28x28, got '%s'", cli_str(&v, "input"));
        rc = cli_fail(OL_EXIT_USAGE, err);
        goto done;
    }
    mp.in_c = c;
    mp.in_h = h;
    mp.in_w = w;
    mp.num_classes = (int)classes;
    mp.max_batch = 1;
    ctx = ol_ctx_new(0);
    if (ctx && cli_memory_limit(&v, ctx) < 0) {
        rc = cli_fail(OL_EXIT_USAGE, v.err);
        goto done;
    }
    ol_model_memory mm; /* the model and the file read whole, before either is allocated */
    int s = ctx ? ol_model_memory_estimate(ctx, &mp, 1, &mm) : OL_ENOMEM;
    if (s >= 0 && cli_check_memory(ctx, mm.params + mm.total, "this model", err, sizeof err) < 0) {
        rc = cli_fail(OL_EXIT_FAIL, err);
        goto done;
    }
    if (s >= 0)
        s = ol_model_create(ctx, &mp, &m);
    if (s >= 0)
        s = ol_weights_import(ctx, src, m);
    if (s >= 0)
        s = ol_weights_export(ctx, cli_str(&v, "out"), m, NULL);
    if (s < 0) {
        rc = ctx ? cli_fail_ctx(ctx, cli_exit_for(s)) : cli_fail(OL_EXIT_FAIL, "out of memory");
        goto done;
    }
    printf("imported %zu parameters from %s into %s\n", ol_paramset_count(ol_model_paramset(m)), src,
           cli_str(&v, "out"));
done:
    ol_model_free(m);
    ol_ctx_free(ctx);
    cli_free(&v);
    return rc;
}

static const char *const verify_usage =
    "usage: optimlab verify RUN_DIR|CHECKPOINT\n"
    "\n"
    "Load the newest valid checkpoint of a run (or the given checkpoint): header, version, checksum,\n"
    "and every tensor into a model of the recorded architecture. Prints its step; exit status 2 when\n"
    "there is no valid checkpoint.";

int cmd_verify(int argc, char **argv)
{
    if (argc != 3 || strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0) {
        FILE *f = argc == 3 ? stdout : stderr;
        fprintf(f, "%s\n", verify_usage);
        return argc == 3 ? OL_EXIT_OK : OL_EXIT_USAGE;
    }
    ol_ctx *ctx = ol_ctx_new(0);
    if (!ctx)
        return cli_fail(OL_EXIT_FAIL, "out of memory");
    char path[4096];
    struct stat st;
    int s = stat(argv[2], &st) == 0 && S_ISDIR(st.st_mode) ? ol_checkpoint_latest(ctx, argv[2], path, sizeof path)
                                                              : (snprintf(path, sizeof path, "%s", argv[2]), OL_OK);
    ol_model_params mp;
    ol_model *m = NULL;
    ol_train_state ts;
    if (s >= 0)
        s = ol_checkpoint_model_params(ctx, path, &mp);
    mp.max_batch = 1;
    if (s >= 0)
        s = ol_model_create(ctx, &mp, &m);
    if (s >= 0)
        s = ol_checkpoint_load(ctx, path, m, NULL, &ts);
    int rc = OL_EXIT_OK;
    if (s < 0)
        rc = cli_fail_ctx(ctx, cli_exit_for(s));
    else
        printf("%s: valid, step %lld, epoch %lld\n", path, (long long)ts.step, (long long)ts.epoch);
    ol_model_free(m);
    ol_ctx_free(ctx);
    return rc;
}
