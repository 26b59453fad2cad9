/* Checkpoints: exact round trip of model, optimizer and training state;
 * corrupt, truncated, wrong-version and wrong-model files are rejected without
 * touching the model; a failed write (file-size limit standing in for a full
 * disk) leaves the previous checkpoint intact; latest/prune; weight export and
 * import; hostile safetensors headers. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/safetensors.h"
#include "optimlab.h"
#include "testutil.h"

static char dir[] = "/tmp/optimlab-ckpt-XXXXXX";

static ol_model *model(ol_ctx *ctx, const char *arch, uint64_t seed)
{
    ol_model_params mp = ol_model_default_params();
    ol_model_params_set_arch(ctx, &mp, arch);
    mp.in_h = mp.in_w = 12;
    mp.max_batch = 8;
    mp.seed = seed;
    ol_model *m = NULL;
    ASSERT_OK(ol_model_create(ctx, &mp, &m), ctx);
    return m;
}

/* a few training steps so the optimizer state and BN statistics are non-trivial */
static void train_some(ol_ctx *ctx, ol_model *m, ol_optim *o, int steps)
{
    float x[8 * 144];
    int32_t y[8];
    for (int s = 0; s < steps; s++) {
        for (int i = 0; i < 8 * 144; i++)
            x[i] = (float)((i * 37 + s * 11) % 17) / 8.0f - 1.0f;
        for (int i = 0; i < 8; i++)
            y[i] = (i + s) % 10;
        ol_train_params tp = ol_train_default_params();
        ol_optim_hyper h = {.lr = 0.05, .momentum = -1};
        ol_step_result r;
        ASSERT_OK(ol_train_step(ctx, &tp, m, o, x, y, 8, &h, &r), ctx);
    }
}

static long file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static void corrupt_byte(const char *path, long off)
{
    FILE *f = fopen(path, "r+b");
    fseek(f, off, SEEK_SET);
    int c = fgetc(f);
    fseek(f, off, SEEK_SET);
    fputc(c ^ 0x5a, f);
    fclose(f);
}

static void copy_file(const char *from, const char *to, long len)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    for (long i = 0; i < len; i++) {
        int c = fgetc(a);
        if (c == EOF)
            break;
        fputc(c, b);
    }
    fclose(a);
    fclose(b);
}

static void test_round_trip(ol_ctx *ctx)
{
    ol_model *m = model(ctx, "resnet8", 1), *m2 = model(ctx, "resnet8", 2);
    ol_optim_params op = ol_optim_default_params(OL_OPT_SGD);
    op.momentum = 0.9;
    ol_optim *o = NULL, *o2 = NULL;
    ol_optim_create(ctx, &op, ol_model_paramset(m), &o);
    ol_optim_create(ctx, &op, ol_model_paramset(m2), &o2);
    train_some(ctx, m, o, 3);
    ol_train_state st;
    memset(&st, 0, sizeof st);
    st.step = 3;
    st.epoch = 1;
    st.epoch_pos = 24;
    st.ep_loss = 1.0 / 3.0;
    st.best_test_acc = 0.123456789012345678;
    st.seed = 18446744073709551615ULL;
    st.loss_hist_n = 2;
    st.loss_hist[0] = 2.5;
    st.loss_hist[1] = 0.1;
    char path[512];
    ol_checkpoint_path(dir, 3, path, sizeof path);
    ASSERT_OK(ol_checkpoint_save(ctx, path, m, o, &st, "{\"model\":\"resnet8\"}"), ctx);
    ol_train_state st2;
    ASSERT_OK(ol_checkpoint_load(ctx, path, m2, o2, &st2), ctx);
    ol_paramset *a = ol_model_paramset(m), *b = ol_model_paramset(m2);
    ASSERT_TRUE(memcmp(a->params, b->params, a->numel * sizeof(float)) == 0);
    ASSERT_TRUE(memcmp(a->buffers, b->buffers, a->bnumel * sizeof(float)) == 0);
    ASSERT_TRUE(memcmp(ol_optim_slot(o, 0), ol_optim_slot(o2, 0), a->numel * sizeof(float)) == 0);
    ASSERT_EQ_INT(ol_optim_steps(o2), 3);
    ASSERT_EQ_INT(st2.step, 3);
    ASSERT_EQ_INT(st2.epoch_pos, 24);
    ASSERT_TRUE(st2.ep_loss == st.ep_loss && st2.best_test_acc == st.best_test_acc);
    ASSERT_TRUE(st2.seed == st.seed);
    ASSERT_TRUE(st2.loss_hist_n == 2 && st2.loss_hist[1] == 0.1);
    char *cfg = NULL;
    ASSERT_OK(ol_checkpoint_read_config(ctx, path, &cfg), ctx);
    ASSERT_TRUE(cfg && strcmp(cfg, "{\"model\":\"resnet8\"}") == 0);
    free(cfg);
    /* training on from both gives the same parameters */
    train_some(ctx, m, o, 2);
    train_some(ctx, m2, o2, 2);
    ASSERT_TRUE(memcmp(a->params, b->params, a->numel * sizeof(float)) == 0);

    /* hostile variants: nothing in the model may change */
    char bad[600];
    float *before = malloc(b->numel * sizeof(float));
    memcpy(before, b->params, b->numel * sizeof(float));
    long len = file_size(path);
    snprintf(bad, sizeof bad, "%s/bad.safetensors", dir);
    copy_file(path, bad, len);
    corrupt_byte(bad, len - 5); /* tensor data: checksum */
    ASSERT_EQ_INT(ol_checkpoint_load(ctx, bad, m2, o2, NULL), OL_EFORMAT);
    ASSERT_TRUE(strstr(ol_ctx_errmsg(ctx), "checksum") != NULL);
    copy_file(path, bad, len / 2); /* truncated */
    ASSERT_EQ_INT(ol_checkpoint_load(ctx, bad, m2, o2, NULL), OL_EFORMAT);
    copy_file(path, bad, 5);
    ASSERT_EQ_INT(ol_checkpoint_load(ctx, bad, m2, o2, NULL), OL_EFORMAT);
    copy_file(path, bad, len);
    corrupt_byte(bad, 12); /* header JSON */
    ASSERT_EQ_INT(ol_checkpoint_load(ctx, bad, m2, o2, NULL), OL_EFORMAT);
    ASSERT_EQ_INT(ol_checkpoint_load(ctx, "/nonexistent/x.safetensors", m2, o2, NULL), OL_ENOENT);
    ASSERT_TRUE(memcmp(before, b->params, b->numel * sizeof(float)) == 0);

    /* a different model, a different optimizer */
    ol_model *other = model(ctx, "plain8", 1);
    ASSERT_EQ_INT(ol_checkpoint_load(ctx, path, other, NULL, NULL), OL_ESHAPE);
    ol_model_free(other);
    free(before);
    ol_optim_free(o);
    ol_optim_free(o2);
    ol_model_free(m);
    ol_model_free(m2);
}

static void test_version_and_weights(ol_ctx *ctx)
{
    ol_model *m = model(ctx, "resnet8", 4);
    ol_paramset *ps = ol_model_paramset(m);
    char path[512], wpath[512];
    snprintf(path, sizeof path, "%s/v2.safetensors", dir);
    /* a file with format_version 3 (unknown) */
    ol__st_tensor t = {"x", OL__ST_F32, 1, (int64_t[]){1}, (float[]){1.0f}};
    const char *k[4] = {"format", "format_version", "crc32", "model"}, *v[4] = {"optimlab-checkpoint", "3", "0", "{}"};
    ASSERT_OK(ol__st_write(ctx, path, &t, 1, k, v, 4), ctx);
    ASSERT_EQ_INT(ol_checkpoint_load(ctx, path, m, NULL, NULL), OL_EFORMAT);
    ASSERT_TRUE(strstr(ol_ctx_errmsg(ctx), "version") != NULL);
    /* export / import round trip into a differently initialised model */
    snprintf(wpath, sizeof wpath, "%s/w.safetensors", dir);
    ps->buffers[0] = 0.25f;
    ASSERT_OK(ol_weights_export(ctx, wpath, m, NULL), ctx);
    ol_model *m2 = model(ctx, "resnet8", 5);
    ASSERT_OK(ol_weights_import(ctx, wpath, m2), ctx);
    ASSERT_TRUE(memcmp(ps->params, ol_model_paramset(m2)->params, ps->numel * sizeof(float)) == 0);
    ASSERT_TRUE(ol_model_paramset(m2)->buffers[0] == 0.25f);
    ol__st_file f;
    ASSERT_OK(ol__st_read(ctx, wpath, &f), ctx);
    const ol__st_entry *e = ol__st_find(&f, "bn1.num_batches_tracked");
    ASSERT_TRUE(e && e->dtype == OL__ST_I64 && e->ndim == 0);
    ASSERT_TRUE(ol__st_find(&f, "layer1.0.conv1.weight") != NULL);
    ol__st_free(&f);
    ol_model *wrong = model(ctx, "resnet14", 1);
    ASSERT_TRUE(ol_weights_import(ctx, wpath, wrong) == OL_ESHAPE);
    ol_model_free(wrong);
    ol_model_free(m);
    ol_model_free(m2);
}

static void test_full_disk(ol_ctx *ctx)
{
    ol_model *m = model(ctx, "resnet8", 6);
    char path[512];
    snprintf(path, sizeof path, "%s/fd", dir);
    mkdir(path, 0777);
    char ck1[600], ck2[600];
    ol_checkpoint_path(path, 1, ck1, sizeof ck1);
    ol_checkpoint_path(path, 2, ck2, sizeof ck2);
    ASSERT_OK(ol_checkpoint_save(ctx, ck1, m, NULL, NULL, NULL), ctx);
    long size = file_size(ck1);
    /* a file-size limit stands in for a full disk: the write fails part-way */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = (rlim_t)(size / 2);
    setrlimit(RLIMIT_FSIZE, &lim);
    int rc = ol_checkpoint_save(ctx, ck2, m, NULL, NULL, NULL);
    setrlimit(RLIMIT_FSIZE, &old);
    ASSERT_EQ_INT(rc, OL_EIO);
    printf("  full disk: %s\n", ol_ctx_errmsg(ctx));
    ASSERT_TRUE(file_size(ck2) < 0);            /* no partial file under the final name */
    ASSERT_OK(ol_checkpoint_verify(ctx, ck1), ctx); /* the previous one intact */
    char latest[600];
    ASSERT_OK(ol_checkpoint_latest(ctx, path, latest, sizeof latest), ctx);
    ASSERT_TRUE(strcmp(latest, ck1) == 0);
    /* unwritable directory */
    ASSERT_TRUE(ol_checkpoint_save(ctx, "/proc/optimlab/ckpt.safetensors", m, NULL, NULL, NULL) == OL_EIO);
    /* newest corrupt: latest falls back to the previous valid one */
    ASSERT_OK(ol_checkpoint_save(ctx, ck2, m, NULL, NULL, NULL), ctx);
    corrupt_byte(ck2, file_size(ck2) - 3);
    ASSERT_OK(ol_checkpoint_latest(ctx, path, latest, sizeof latest), ctx);
    ASSERT_TRUE(strcmp(latest, ck1) == 0);
    /* prune keeps the newest */
    for (int s = 3; s <= 6; s++) {
        char p[600];
        ol_checkpoint_path(path, s, p, sizeof p);
        ASSERT_OK(ol_checkpoint_save(ctx, p, m, NULL, NULL, NULL), ctx);
    }
    ASSERT_OK(ol_checkpoint_prune(ctx, path, 2), ctx);
    ASSERT_TRUE(file_size(ck1) < 0 && file_size(ck2) < 0);
    char p5[600], p6[600];
    ol_checkpoint_path(path, 5, p5, sizeof p5);
    ol_checkpoint_path(path, 6, p6, sizeof p6);
    ASSERT_TRUE(file_size(p5) > 0 && file_size(p6) > 0);
    ol_model_free(m);
}

/* Headers a hostile file may carry; each must be rejected cleanly. */
static void test_hostile_headers(ol_ctx *ctx)
{
    static const char *const headers[] = {
        "{",
        "[]",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}",
        "{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4000]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[9223372036854775807,9223372036854775807],\"data_offsets\":[0,4]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],"
        "\"data_offsets\":[0,4]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
        "\"data_offsets\":[0,4]}}",
        "{\"__metadata__\":{\"k\":1}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}",
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        size_t hl = strlen(headers[i]);
        size_t len = 8 + hl + 8; /* 8 data bytes: 2 floats */
        uint8_t *buf = calloc(1, len);
        for (int b = 0; b < 8; b++)
            buf[b] = (uint8_t)((uint64_t)hl >> (8 * b));
        memcpy(buf + 8, headers[i], hl);
        ol__st_file f;
        int rc = ol__st_parse(ctx, "hostile", buf, len, &f);
        ASSERT_EQ_INT(rc, OL_EFORMAT);
        if (rc >= 0)
            ol__st_free(&f);
    }
    uint8_t *huge = calloc(1, 16);
    huge[7] = 0x7f; /* header length 2^63-ish */
    ol__st_file f;
    ASSERT_EQ_INT(ol__st_parse(ctx, "huge", huge, 16, &f), OL_EFORMAT);
}

int main(void)
{
    ol_ctx *ctx = ol_ctx_new(2);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip(ctx);
    test_version_and_weights(ctx);
    test_full_disk(ctx);
    test_hostile_headers(ctx);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    ol_ctx_free(ctx);
    return tu_finish("test_checkpoint");
}
