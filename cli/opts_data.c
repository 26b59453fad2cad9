/* Data options and loading. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

const cli_opt cli_data_opts[] = {
    {"dataset", CLI_VALUE, "fashion-mnist", "NAME", "Data", "fashion-mnist, mnist, cifar10, synthetic"},
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
        snprintf(err, cap, "--dataset: unknown dataset '%s' (fashion-mnist, mnist, cifar10, synthetic)", name);
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
