/* Data options and loading. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"

const cli_opt cli_data_opts[] = {
    {"dataset", CLI_VALUE, "fashion-mnist", "NAME", "Data",
     "fashion-mnist, mnist, cifar10, synthetic; for language models: text (bytes of --text-file, default the "
     "fortunes corpus), tokens (llm.c token files --train-bin, --val-bin)"},
    {"text-file", CLI_VALUE, "", "FILE", "Data",
     "--dataset text: byte-level text, its last --val-split (default 0.1) held out for validation [the files of "
     "/usr/share/games/fortunes, Debian package fortunes]"},
    {"train-bin", CLI_VALUE, "", "FILE", "Data",
     "--dataset tokens: training tokens (llm.c format: 256 x int32 header, uint16 ids)"},
    {"val-bin", CLI_VALUE, "", "FILE", "Data", "--dataset tokens: validation tokens (same format)"},
    {"vocab-size", CLI_VALUE, "50257", "V", "Data",
     "--dataset tokens: vocabulary (GPT-2's 50257); larger ids are an error"},
    {"data-dir", CLI_VALUE, "", "DIR", "Data",
     "dataset directory [fashion-mnist: /usr/share/datasets/fashion-mnist, cifar10: data/cifar-10-batches-bin]"},
    {"train-subset", CLI_VALUE, "0", "N", "Data", "use only the first N training samples (0 = all)"},
    {"test-subset", CLI_VALUE, "0", "N", "Data", "use only the first N test samples (0 = all)"},
    {"val-split", CLI_VALUE, "0", "F", "Data",
     "hold out this fraction of the training set for validation; the test set is evaluated once at the end"},
    {"augment", CLI_VALUE, "auto", "LIST", "Data",
     "none, crop, flip or crop,flip (auto: crop,flip for cifar10, none otherwise)"},
    {"crop-pad", CLI_VALUE, "4", "P", "Data", "zero padding of the random crop"},
    {"synthetic-size", CLI_VALUE, "2048", "N", "Data", "training samples of the synthetic dataset (test: N/4)"},
    {"no-prefetch", CLI_FLAG, "0", NULL, "Data", "assemble batches on the main thread"},
    {NULL, 0, NULL, NULL, NULL, NULL}};

void cli_free_data(cli_data *d)
{
    ol_dataset_free(&d->train);
    ol_dataset_free(&d->test);
    ol_dataset_free(&d->real_test);
}

/* A library failure: out of memory (also a refused declared size) is a
 * runtime failure, everything else bad input. */
static int lib_err(ol_ctx *ctx, int rc, char *err, size_t cap)
{
    snprintf(err, cap, "%s", ol_ctx_errmsg(ctx));
    return rc == OL_ENOMEM ? OL_EXIT_FAIL : OL_EXIT_USAGE;
}

#define CLI_FORTUNES_DIR "/usr/share/games/fortunes"

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The default corpus: the plain-text files of the fortunes package (no
 * dot in the name: not the .dat indexes nor the .u8 links), by name. */
static int fortunes_files(char ***out, int *n, char *err, size_t cap)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(CLI_FORTUNES_DIR);
    if (!d) {
        snprintf(err, cap,
                 "--dataset text: no --text-file and the default corpus %s is missing (apt-get install fortunes, "
                 "or scripts/deps.sh run)",
                 CLI_FORTUNES_DIR);
        return OL_EXIT_USAGE;
    }
    char **files = NULL;
    int k = 0, st = 0;
    for (struct dirent *e; st == 0 && (e = readdir(d));) {
        char path[600];
        struct stat sb;
        if (e->d_name[0] == '.' || strchr(e->d_name, '.') || strlen(e->d_name) > 200)
            continue;
        snprintf(path, sizeof path, "%s/%s", CLI_FORTUNES_DIR, e->d_name);
        if (lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
            continue;
        char **g = realloc(files, (size_t)(k + 1) * sizeof *files);
        char *dup = g ? strdup(path) : NULL;
        if (g)
            files = g;
        if (!dup)
            st = OL_EXIT_FAIL;
        else
            files[k++] = dup;
    }
    closedir(d);
    if (st == 0 && k == 0) {
        snprintf(err, cap, "--dataset text: %s holds no text file", CLI_FORTUNES_DIR);
        st = OL_EXIT_USAGE;
    } else if (st != 0)
        snprintf(err, cap, "out of memory");
    if (st != 0) {
        for (int i = 0; i < k; i++)
            free(files[i]);
        free(files);
        return st;
    }
    qsort(files, (size_t)k, sizeof *files, cmp_str);
    *out = files;
    *n = k;
    return 0;
}

/* --dataset text or tokens: token streams in windows of the model's context. */
static int load_lm(ol_ctx *ctx, cli_values *v, const char *name, cli_data *d, char *err, size_t cap)
{
    const int T = cli_model_context(v);
    if (T <= 0) {
        snprintf(err, cap, "--dataset %s needs a language model (--model gpt, gpt-mini or gpt2-124m)", name);
        return OL_EXIT_USAGE;
    }
    static const char *const image_only[] = {"data-dir", "augment"};
    for (size_t i = 0; i < sizeof image_only / sizeof *image_only; i++)
        if (cli_given(v, image_only[i]) && strcmp(cli_str(v, image_only[i]), "auto") != 0 &&
            strcmp(cli_str(v, image_only[i]), "none") != 0) {
            snprintf(err, cap, "--%s does not apply to --dataset %s", image_only[i], name);
            return OL_EXIT_USAGE;
        }
    const int text = strcmp(name, "text") == 0;
    static const char *const text_opts[] = {"text-file"}, *const token_opts[] = {"train-bin", "val-bin", "vocab-size"};
    const char *const *other = text ? token_opts : text_opts;
    for (size_t i = 0; i < (text ? 3u : 1u); i++)
        if (cli_given(v, other[i])) {
            snprintf(err, cap, "--%s does not apply to --dataset %s", other[i], name);
            return OL_EXIT_USAGE;
        }
    int rc;
    if (text) {
        double val = 0.1;
        if (strcmp(cli_str(v, "val-split"), "0") != 0 && cli_double(v, "val-split", 0.001, 0.9, &val)) {
            snprintf(err, cap, "%s", v->err);
            return OL_EXIT_USAGE;
        }
        const char *file = cli_str(v, "text-file");
        char **files = NULL;
        int nf = 1, st = 0;
        if (!*file && (st = fortunes_files(&files, &nf, err, cap)) != 0)
            return st;
        rc = ol_dataset_load_text(ctx, files ? (const char *const *)files : &file, nf, T, val, &d->train, &d->test);
        for (int i = 0; files && i < nf; i++)
            free(files[i]);
        free(files);
    } else {
        long long vocab;
        if (cli_int(v, "vocab-size", 2, 65536, &vocab)) {
            snprintf(err, cap, "%s", v->err);
            return OL_EXIT_USAGE;
        }
        if (cli_given(v, "val-split") && strcmp(cli_str(v, "val-split"), "0") != 0) {
            snprintf(err, cap, "--val-split does not apply to --dataset tokens (--val-bin is the validation set)");
            return OL_EXIT_USAGE;
        }
        if (!*cli_str(v, "train-bin") || !*cli_str(v, "val-bin")) {
            snprintf(err, cap, "--dataset tokens needs --train-bin FILE and --val-bin FILE");
            return OL_EXIT_USAGE;
        }
        rc = ol_dataset_load_tokens(ctx, cli_str(v, "train-bin"), (int)vocab, T, &d->train);
        if (rc >= 0)
            rc = ol_dataset_load_tokens(ctx, cli_str(v, "val-bin"), (int)vocab, T, &d->test);
    }
    if (rc < 0) {
        cli_free_data(d);
        return lib_err(ctx, rc, err, cap);
    }
    return 0;
}

/* Synthetic data: one draw of train + test samples from the same class
 * templates, split so the test samples are unseen. */
static int load_synthetic(ol_ctx *ctx, int64_t n, uint64_t seed, cli_data *d)
{
    int64_t nt = n / 4 > 0 ? n / 4 : 1;
    int rc = ol_dataset_synthetic(ctx, n + nt, 1, 28, 28, 10, seed, &d->train);
    if (rc < 0)
        return rc;
    size_t per = 28 * 28;
    d->test = d->train;
    d->test.images = malloc((size_t)nt * per);
    d->test.labels = malloc((size_t)nt * sizeof(int32_t));
    if (!d->test.images || !d->test.labels)
    {
        ol_ctx_set_error(ctx, OL_ENOMEM, "out of memory for the synthetic dataset");
        return OL_ENOMEM;
    }
    memcpy(d->test.images, d->train.images + (size_t)n * per, (size_t)nt * per);
    memcpy(d->test.labels, d->train.labels + n, (size_t)nt * sizeof(int32_t));
    d->test.n = nt;
    d->train.n = n;
    return 0;
}

int cli_load_data(ol_ctx *ctx, cli_values *v, cli_data *d, char *err, size_t cap)
{
    memset(d, 0, sizeof *d);
    const char *name = cli_str(v, "dataset");
    const char *dir = cli_str(v, "data-dir");
    long long ntrain, ntest, nsyn, seed;
    double val;
    if (cli_int(v, "train-subset", 0, INT64_MAX, &ntrain) || cli_int(v, "test-subset", 0, INT64_MAX, &ntest) ||
        cli_int(v, "synthetic-size", 8, 100000000, &nsyn) || cli_double(v, "val-split", 0.0, 0.9, &val) ||
        cli_int(v, "seed", 0, INT64_MAX, &seed)) {
        snprintf(err, cap, "%s", v->err);
        return OL_EXIT_USAGE;
    }
    const int synthetic = strcmp(name, "synthetic") == 0;
    if (synthetic ? cli_given(v, "data-dir") : cli_given(v, "synthetic-size")) {
        snprintf(err, cap, "--%s does not apply to --dataset %s", synthetic ? "data-dir" : "synthetic-size", name);
        return OL_EXIT_USAGE;
    }
    int rc;
    if (strcmp(name, "text") == 0 || strcmp(name, "tokens") == 0) {
        int st = load_lm(ctx, v, name, d, err, cap);
        if (st != 0)
            return st;
        snprintf(d->train.name, sizeof d->train.name, "%s", name);
        rc = ntrain > 0 ? ol_dataset_truncate(ctx, &d->train, ntrain) : OL_OK;
        if (rc >= 0 && ntest > 0)
            rc = ol_dataset_truncate(ctx, &d->test, ntest);
        if (rc < 0) {
            cli_free_data(d);
            return lib_err(ctx, rc, err, cap);
        }
        return 0;
    }
    if (cli_model_context(v) > 0) {
        snprintf(err, cap, "--model %s needs a token dataset: --dataset text or tokens", cli_str(v, "model"));
        return OL_EXIT_USAGE;
    }
    for (const char *const *o = (const char *const[]){"text-file", "train-bin", "val-bin", "vocab-size", NULL}; *o; o++)
        if (cli_given(v, *o)) {
            snprintf(err, cap, "--%s does not apply to --dataset %s", *o, name);
            return OL_EXIT_USAGE;
        }
    if (strcmp(name, "fashion-mnist") == 0 || strcmp(name, "mnist") == 0) {
        if (!*dir)
            dir = strcmp(name, "mnist") == 0 ? "/usr/share/datasets/mnist" : "/usr/share/datasets/fashion-mnist";
        rc = ol_dataset_load_mnist_dir(ctx, dir, 1, &d->train);
        if (rc >= 0)
            rc = ol_dataset_load_mnist_dir(ctx, dir, 0, &d->test);
    } else if (strcmp(name, "cifar10") == 0) {
        if (!*dir)
            dir = "data/cifar-10-batches-bin";
        rc = ol_dataset_load_cifar10(ctx, dir, 1, &d->train);
        if (rc >= 0)
            rc = ol_dataset_load_cifar10(ctx, dir, 0, &d->test);
    } else if (strcmp(name, "synthetic") == 0) {
        rc = load_synthetic(ctx, nsyn, (uint64_t)seed, d);
    } else {
        snprintf(err, cap, "--dataset: unknown dataset '%s' (fashion-mnist, mnist, cifar10, synthetic, text, tokens)",
                 name);
        return OL_EXIT_USAGE;
    }
    if (rc >= 0 && ntrain > 0)
        rc = ol_dataset_truncate(ctx, &d->train, ntrain);
    if (rc >= 0 && ntest > 0)
        rc = ol_dataset_truncate(ctx, &d->test, ntest);
    if (rc >= 0 && val > 0.0) {
        d->real_test = d->test;
        memset(&d->test, 0, sizeof d->test);
        rc = ol_dataset_split(ctx, &d->train, val, (uint64_t)seed, &d->test);
        d->has_val = rc >= 0;
    }
    if (rc >= 0) { /* normalise everything with the training statistics */
        ol_dataset_compute_stats(&d->train, d->train.mean, d->train.std);
        ol_dataset_copy_stats(&d->test, &d->train);
        if (d->has_val)
            ol_dataset_copy_stats(&d->real_test, &d->train);
        snprintf(d->train.name, sizeof d->train.name, "%s", name);
    }
    if (rc < 0) {
        cli_free_data(d);
        return lib_err(ctx, rc, err, cap);
    }
    return 0;
}
