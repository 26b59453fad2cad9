/* Checkpoint integrity (issue 10): a single-bit flip anywhere in the
 * safetensors header is detected; latest and prune rank checkpoints by the
 * step recorded inside the file, never by its name, never count a file that
 * does not verify, never delete a protected file; a FIFO named like a
 * checkpoint never blocks; a live process's temporary file survives pruning;
 * a version-1 checkpoint (data-only checksum) still loads. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/safetensors.h"
#include "optimlab.h"
#include "testutil.h"

static char dir[] = "/tmp/optimlab-integ-XXXXXX";

static ol_model *mlp(ol_ctx *ctx)
{
    ol_model_params mp = ol_model_default_params();
    ol_model_params_set_arch(ctx, &mp, "mlp");
    mp.nwidths = 1;
    mp.widths[0] = 4;
    mp.in_c = 1;
    mp.in_h = mp.in_w = 4;
    mp.num_classes = 3;
    mp.max_batch = 4;
    ol_model *m = NULL;
    ASSERT_OK(ol_model_create(ctx, &mp, &m), ctx);
    return m;
}

static void save_at(ol_ctx *ctx, ol_model *m, ol_optim *o, const char *path, int64_t step)
{
    ol_train_state st;
    memset(&st, 0, sizeof st);
    st.step = step;
    st.seed = 7;
    ASSERT_OK(ol_checkpoint_save(ctx, path, m, o, &st, "{\"batch-size\":\"32\"}"), ctx);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*len);
    if (b && fread(b, 1, *len, f) != *len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    return b;
}

static void spit(const char *path, const uint8_t *b, size_t len)
{
    FILE *f = fopen(path, "wb");
    ASSERT_TRUE(f && fwrite(b, 1, len, f) == len);
    if (f)
        fclose(f);
}

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* Every byte of the header (length prefix included), one bit each. */
static void test_header_sweep(ol_ctx *ctx, ol_model *m, ol_optim *o)
{
    char sub[512], good[600], bad[600], latest[600];
    snprintf(sub, sizeof sub, "%s/sweep", dir);
    mkdir(sub, 0777);
    ol_checkpoint_path(sub, 4, good, sizeof good);
    ol_checkpoint_path(sub, 8, bad, sizeof bad);
    save_at(ctx, m, o, good, 4);
    save_at(ctx, m, o, bad, 8);
    size_t len;
    uint8_t *b = slurp(bad, &len);
    ASSERT_TRUE(b != NULL);
    if (!b)
        return;
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++)
        hl |= (uint64_t)b[i] << (8 * i);
    int detected = 0, total = 0, fallback = 0;
    for (size_t i = 0; i < 8 + hl; i++) {
        b[i] ^= (uint8_t)(1u << (i % 8));
        spit(bad, b, len);
        b[i] ^= (uint8_t)(1u << (i % 8));
        total++;
        if (ol_checkpoint_verify(ctx, bad) < 0)
            detected++;
        else
            fprintf(stderr, "header flip at byte %zu bit %zu passes verify\n", i, i % 8);
        /* the fallback takes the same full check: the older valid one */
        if (i % 97 == 0) {
            fallback++;
            ASSERT_OK(ol_checkpoint_latest(ctx, sub, latest, sizeof latest), ctx);
            ASSERT_TRUE(strcmp(latest, good) == 0);
        }
    }
    printf("  header sweep: %d of %d single-bit flips detected; %d fallbacks checked\n", detected, total, fallback);
    ASSERT_EQ_INT(detected, total);
    spit(bad, b, len);
    ASSERT_OK(ol_checkpoint_verify(ctx, bad), ctx);
    free(b);
}

/* A version-1 file (checksum of the tensor data, key crc32) still loads. */
static void test_v1_compat(ol_ctx *ctx, ol_model *m, ol_optim *o)
{
    char p2[600], p1[600];
    snprintf(p2, sizeof p2, "%s/v2.safetensors", dir);
    snprintf(p1, sizeof p1, "%s/v1.safetensors", dir);
    save_at(ctx, m, o, p2, 3);
    ol__st_file f;
    ASSERT_OK(ol__st_read(ctx, p2, &f), ctx);
    ol__st_tensor *t = calloc((size_t)f.n, sizeof *t);
    for (int i = 0; i < f.n; i++)
        t[i] = (ol__st_tensor){f.e[i].name, f.e[i].dtype, f.e[i].ndim, f.e[i].shape, ol__st_data(&f, &f.e[i])};
    const char *keys[16], *vals[16];
    char crc[16];
    snprintf(crc, sizeof crc, "%08x", ol__st_data_crc(&f));
    int nm = 0;
    for (int i = 0; i < f.nmeta && nm < 15; i++) {
        if (strcmp(f.meta_keys[i], "file_crc32") == 0)
            continue;
        keys[nm] = f.meta_keys[i];
        vals[nm++] = strcmp(f.meta_keys[i], "format_version") == 0 ? "1" : f.meta_vals[i];
    }
    keys[nm] = "crc32";
    vals[nm++] = crc;
    ASSERT_OK(ol__st_write(ctx, p1, t, f.n, keys, vals, nm), ctx);
    free(t);
    ol__st_free(&f);
    ASSERT_OK(ol_checkpoint_verify(ctx, p1), ctx);
    ol_train_state st;
    ASSERT_OK(ol_checkpoint_load(ctx, p1, m, o, &st), ctx);
    ASSERT_EQ_INT(st.step, 3);
}

/* Ranking by recorded step; pruning after a fallback past a corrupt newest. */
static void test_prune_by_content(ol_ctx *ctx, ol_model *m, ol_optim *o)
{
    char sub[512], p[8][600], latest[600];
    snprintf(sub, sizeof sub, "%s/prune", dir);
    mkdir(sub, 0777);
    for (int s = 1; s <= 7; s++)
        ol_checkpoint_path(sub, s, p[s], sizeof p[s]);
    /* a step-2 checkpoint named ckpt-9 is not preferred over the real newest (step 5) */
    char misnamed[600];
    ol_checkpoint_path(sub, 9, misnamed, sizeof misnamed);
    save_at(ctx, m, o, misnamed, 2);
    save_at(ctx, m, o, p[5], 5);
    ASSERT_OK(ol_checkpoint_latest(ctx, sub, latest, sizeof latest), ctx);
    ASSERT_TRUE(strcmp(latest, p[5]) == 0);
    ASSERT_OK(ol_checkpoint_prune(ctx, sub, 1), ctx);
    ASSERT_TRUE(exists(p[5]) && !exists(misnamed));
    /* newest (step 6) corrupt: resume falls back to 5, then writes 6 again and 7;
     * with keep 1 each prune keeps the file just written and never counts the corrupt one */
    save_at(ctx, m, o, p[6], 6);
    size_t len;
    uint8_t *b = slurp(p[6], &len);
    b[len - 5] ^= 0x10;
    spit(p[6], b, len);
    free(b);
    char c9[600];
    ol_checkpoint_path(sub, 90, c9, sizeof c9); /* a corrupt file with a newer name */
    spit(c9, (const uint8_t *)"garbage", 7);
    ASSERT_OK(ol_checkpoint_latest(ctx, sub, latest, sizeof latest), ctx);
    ASSERT_TRUE(strcmp(latest, p[5]) == 0);
    save_at(ctx, m, o, p[7], 7);
    const char *prot[1] = {p[7]};
    ASSERT_OK(ol_checkpoint_prune_except(ctx, sub, 1, prot, 1), ctx);
    ASSERT_TRUE(exists(p[7]) && !exists(p[5]));
    ASSERT_OK(ol_checkpoint_latest(ctx, sub, latest, sizeof latest), ctx);
    ASSERT_TRUE(strcmp(latest, p[7]) == 0);
    /* a protected older checkpoint survives pruning */
    save_at(ctx, m, o, p[1], 1); /* older than 7 */
    const char *prot2[1] = {p[1]};
    ASSERT_OK(ol_checkpoint_prune_except(ctx, sub, 1, prot2, 1), ctx);
    ASSERT_TRUE(exists(p[1]) && exists(p[7]));
}

/* A FIFO named like the newest checkpoint: skipped, never opened for blocking reads. */
static void test_fifo(ol_ctx *ctx, ol_model *m, ol_optim *o)
{
    char sub[512], fifo[600], good[600], latest[600];
    snprintf(sub, sizeof sub, "%s/fifo", dir);
    mkdir(sub, 0777);
    ol_checkpoint_path(sub, 3, good, sizeof good);
    ol_checkpoint_path(sub, 99, fifo, sizeof fifo);
    save_at(ctx, m, o, good, 3);
    ASSERT_TRUE(mkfifo(fifo, 0644) == 0);
    alarm(20); /* a blocking open would hang the test: end it instead */
    ASSERT_TRUE(ol_checkpoint_verify(ctx, fifo) == OL_EFORMAT);
    ASSERT_OK(ol_checkpoint_latest(ctx, sub, latest, sizeof latest), ctx);
    ASSERT_TRUE(strcmp(latest, good) == 0);
    ASSERT_OK(ol_checkpoint_prune(ctx, sub, 1), ctx);
    alarm(0);
}

/* Temporary files: a live process's stays, a dead one's goes. */
static void test_tmp_of_live_process(ol_ctx *ctx)
{
    char sub[512], live[700], dead[700];
    snprintf(sub, sizeof sub, "%s/tmp", dir);
    mkdir(sub, 0777);
    pid_t child = fork();
    if (child == 0) {
        pause();
        _exit(0);
    }
    pid_t gone = fork();
    if (gone == 0)
        _exit(0);
    waitpid(gone, NULL, 0);
    snprintf(live, sizeof live, "%s/ckpt-00000001.safetensors.tmp.%ld", sub, (long)child);
    snprintf(dead, sizeof dead, "%s/ckpt-00000001.safetensors.tmp.%ld", sub, (long)gone);
    spit(live, (const uint8_t *)"x", 1);
    spit(dead, (const uint8_t *)"x", 1);
    ASSERT_OK(ol_checkpoint_prune(ctx, sub, 0), ctx);
    ASSERT_TRUE(exists(live));
    ASSERT_TRUE(!exists(dead));
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
}

int main(void)
{
    ol_ctx *ctx = ol_ctx_new(1);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    ol_model *m = mlp(ctx);
    ol_optim_params op = ol_optim_default_params(OL_OPT_ADAM);
    ol_optim *o = NULL;
    ASSERT_OK(ol_optim_create(ctx, &op, ol_model_paramset(m), &o), ctx);
    test_header_sweep(ctx, m, o);
    test_v1_compat(ctx, m, o);
    test_prune_by_content(ctx, m, o);
    test_fifo(ctx, m, o);
    test_tmp_of_live_process(ctx);
    ol_optim_free(o);
    ol_model_free(m);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    ol_ctx_free(ctx);
    return tu_finish("test_ckpt_integrity");
}
