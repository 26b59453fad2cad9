/* The shared file helpers: mkdir -p (nested, idempotent; a file in the way,
 * a directory without write permission and an overlong path fail with one
 * message), files written whole or not at all (replaced atomically, no
 * temporary left behind, the old file kept when the write fails), and the
 * growable text buffer behind JSON, SVG and CSV output. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "core/textbuf.h"
#include "io/jsonw.h"
#include "testutil.h"

static char root[64];

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static char *slurp(const char *p)
{
    FILE *f = fopen(p, "rb");
    if (!f)
        return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void put_file(const char *p, const char *text)
{
    FILE *f = fopen(p, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* Entries of dir whose name contains ".tmp". */
static int temporaries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *de; d && (de = readdir(d));)
        n += strstr(de->d_name, ".tmp") != NULL;
    if (d)
        closedir(d);
    return n;
}

static void test_mkdir_p(ol_ctx *ctx)
{
    char p[512], q[512];
    snprintf(p, sizeof p, "%s/a/b//c/", root);
    ASSERT_OK(ol__mkdir_p(ctx, p), ctx);
    snprintf(q, sizeof q, "%s/a/b/c", root);
    ASSERT_TRUE(is_dir(q));
    ASSERT_OK(ol__mkdir_p(ctx, q), ctx); /* already there */
    /* a file where a directory is wanted: as the last part and in the middle */
    snprintf(p, sizeof p, "%s/file", root);
    put_file(p, "x");
    ASSERT_EQ_INT(ol__mkdir_p(ctx, p), OL_EIO);
    ASSERT_TRUE(strstr(ol_ctx_errmsg(ctx), "in the way") != NULL);
    snprintf(q, sizeof q, "%s/file/sub/dir", root);
    ASSERT_EQ_INT(ol__mkdir_p(ctx, q), OL_EIO);
    ASSERT_TRUE(strstr(ol_ctx_errmsg(ctx), "/file") != NULL);
    ASSERT_TRUE(!is_dir(q));
    /* no write permission (root ignores permissions: nothing to check then) */
    snprintf(p, sizeof p, "%s/ro", root);
    ASSERT_OK(ol__mkdir_p(ctx, p), ctx);
    chmod(p, 0555);
    snprintf(q, sizeof q, "%s/ro/new", root);
    if (geteuid() != 0) {
        ASSERT_EQ_INT(ol__mkdir_p(ctx, q), OL_EIO);
        ASSERT_TRUE(strstr(ol_ctx_errmsg(ctx), "cannot create") && strstr(ol_ctx_errmsg(ctx), "/ro/new"));
    }
    /* a directory nobody may write to, root included */
    if (is_dir("/proc/self")) {
        ASSERT_EQ_INT(ol__mkdir_p(ctx, "/proc/self/optimlab-test/sub"), OL_EIO);
        ASSERT_TRUE(strstr(ol_ctx_errmsg(ctx), "cannot create /proc/self/optimlab-test") != NULL);
    }
    /* an overlong path and an empty one */
    char *longp = malloc(OL__PATH_MAX + 10);
    memset(longp, 'x', OL__PATH_MAX + 9);
    longp[OL__PATH_MAX + 9] = '\0';
    ASSERT_EQ_INT(ol__mkdir_p(ctx, longp), OL_EINVAL);
    ASSERT_EQ_INT(ol__mkdir_p(ctx, ""), OL_EINVAL);
    free(longp);
}

static void test_atomic(ol_ctx *ctx)
{
    char p[1024], d[512];
    snprintf(d, sizeof d, "%s/w", root);
    ASSERT_OK(ol__mkdir_p(ctx, d), ctx);
    snprintf(p, sizeof p, "%s/out.txt", d);
    ASSERT_OK(ol__write_file_atomic(ctx, p, "first\n", 6), ctx);
    ASSERT_TRUE(strcmp(slurp(p), "first\n") == 0);
    ASSERT_OK(ol__write_file_atomic(ctx, p, "second", 6), ctx); /* replaced */
    ASSERT_TRUE(strcmp(slurp(p), "second") == 0);
    ASSERT_OK(ol__write_file_atomic(ctx, p, "", 0), ctx);
    ASSERT_TRUE(strcmp(slurp(p), "") == 0);
    ASSERT_EQ_INT(temporaries(d), 0);
    /* through the FILE interface, and an abort leaves nothing */
    ol__atomic_file a;
    ASSERT_OK(ol__atomic_open(ctx, &a, p), ctx);
    fprintf(a.f, "%d,%d\n", 1, 2);
    ASSERT_TRUE(strcmp(slurp(p), "") == 0); /* not there before the commit */
    ASSERT_OK(ol__atomic_commit(ctx, &a), ctx);
    ASSERT_TRUE(strcmp(slurp(p), "1,2\n") == 0);
    ASSERT_OK(ol__atomic_open(ctx, &a, p), ctx);
    fputs("half", a.f);
    ol__atomic_abort(&a);
    ASSERT_TRUE(strcmp(slurp(p), "1,2\n") == 0);
    ASSERT_EQ_INT(temporaries(d), 0);
    /* the target is a directory: the rename fails, the temporary goes */
    char sub[1024];
    snprintf(sub, sizeof sub, "%s/adir", d);
    ASSERT_OK(ol__mkdir_p(ctx, sub), ctx);
    ASSERT_EQ_INT(ol__write_file_atomic(ctx, sub, "x", 1), OL_EIO);
    ASSERT_TRUE(strstr(ol_ctx_errmsg(ctx), "cannot write") != NULL);
    ASSERT_TRUE(is_dir(sub));
    ASSERT_EQ_INT(temporaries(d), 0);
    /* a missing directory, and one without write permission: the old file stays */
    snprintf(sub, sizeof sub, "%s/missing/x.txt", d);
    ASSERT_EQ_INT(ol__write_file_atomic(ctx, sub, "x", 1), OL_EIO);
    if (geteuid() != 0) {
        chmod(d, 0555);
        ASSERT_EQ_INT(ol__write_file_atomic(ctx, p, "new", 3), OL_EIO);
        ASSERT_TRUE(strcmp(slurp(p), "1,2\n") == 0);
        chmod(d, 0755);
    }
    if (is_dir("/proc/self")) { /* not writable, root included */
        ASSERT_EQ_INT(ol__write_file_atomic(ctx, "/proc/self/optimlab-test.txt", "x", 1), OL_EIO);
        ASSERT_TRUE(strstr(ol_ctx_errmsg(ctx), "cannot write /proc/self/optimlab-test.txt.tmp.") != NULL);
    }
    ASSERT_EQ_INT(temporaries(d), 0);
}

static void test_textbuf(void)
{
    ol__tb b = {0};
    ASSERT_TRUE(strcmp(ol__tb_text(&b), "") == 0);
    size_t want = 0;
    for (int i = 0; i < 20000; i++) { /* many reallocations */
        ol__tb_printf(&b, "%d,", i);
        want += (size_t)snprintf(NULL, 0, "%d,", i);
    }
    ASSERT_EQ_INT(b.len, want);
    ASSERT_EQ_INT(strlen(ol__tb_text(&b)), want);
    ASSERT_TRUE(strncmp(b.buf, "0,1,2,", 6) == 0 && strcmp(b.buf + want - 6, "19999,") == 0);
    ol__tb_reset(&b);
    ASSERT_TRUE(strcmp(ol__tb_text(&b), "") == 0 && b.cap > 0);
    char big[3000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ol__tb_puts(&b, "<");
    ol__tb_printf(&b, "%s", big); /* one append larger than the buffer */
    ol__tb_puts(&b, ">");
    ASSERT_EQ_INT(b.len, sizeof big + 1);
    ASSERT_TRUE(b.buf[0] == '<' && b.buf[b.len - 1] == '>' && b.buf[b.len] == '\0');
    b.failed = 1; /* an earlier failure: the text is incomplete and says so */
    ol__tb_puts(&b, "more");
    ASSERT_TRUE(ol__tb_text(&b) == NULL);
    ol__tb_free(&b);
    ASSERT_TRUE(b.buf == NULL && b.len == 0);

    ol__jw w = {0}; /* the JSON writer on top of it */
    ol__jw_begin(&w);
    ol__jw_str(&w, "type", "eval");
    ol__jw_int(&w, "step", 12);
    ol__jw_end(&w);
    ASSERT_TRUE(strcmp(ol__jw_text(&w), "{\"type\":\"eval\",\"step\":12}") == 0);
    ol__jw_begin(&w); /* reused */
    ol__jw_end(&w);
    ASSERT_TRUE(strcmp(ol__jw_text(&w), "{}") == 0);
    ol__jw_free(&w);
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/optimlab_fsutil_XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    ol_ctx *ctx = ol_ctx_new(0);
    test_mkdir_p(ctx);
    test_atomic(ctx);
    test_textbuf();
    ol_ctx_free(ctx);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "chmod -R u+w %s && rm -rf %s", root, root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    return tu_finish("fsutil");
}
