/* Minimal assertion helpers: every failure prints both values and the test
 * exits non-zero at the end (libuv-style ASSERT_*). */
#ifndef OL_TESTUTIL_H
#define OL_TESTUTIL_H

#include <math.h>
#include <stdio.h>

extern int tu_failures;
extern int tu_checks;

#define TU_FAIL(...)                                                                                                \
    do {                                                                                                            \
        tu_failures++;                                                                                              \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                                            \
        fprintf(stderr, __VA_ARGS__);                                                                               \
        fputc('\n', stderr);                                                                                        \
    } while (0)

#define ASSERT_TRUE(cond)                                                                                           \
    do {                                                                                                            \
        tu_checks++;                                                                                                \
        if (!(cond))                                                                                                \
            TU_FAIL("assertion failed: %s", #cond);                                                                 \
    } while (0)

#define ASSERT_EQ_INT(a, b)                                                                                         \
    do {                                                                                                            \
        long long a_ = (long long)(a), b_ = (long long)(b);                                                         \
        tu_checks++;                                                                                                \
        if (a_ != b_)                                                                                               \
            TU_FAIL("%s == %s: %lld != %lld", #a, #b, a_, b_);                                                      \
    } while (0)

#define ASSERT_OK(expr, ctx)                                                                                        \
    do {                                                                                                            \
        int rc_ = (expr);                                                                                           \
        tu_checks++;                                                                                                \
        if (rc_ < 0)                                                                                                \
            TU_FAIL("%s returned %d: %s", #expr, rc_, ol_ctx_errmsg(ctx));                                          \
    } while (0)

#define ASSERT_NEAR(a, b, tol)                                                                                      \
    do {                                                                                                            \
        double a_ = (double)(a), b_ = (double)(b);                                                                  \
        tu_checks++;                                                                                                \
        if (!(fabs(a_ - b_) <= (tol)))                                                                              \
            TU_FAIL("%s ~ %s: %.9g vs %.9g (diff %.3g > %.3g)", #a, #b, a_, b_, fabs(a_ - b_), (double)(tol));     \
    } while (0)

/* Print a summary; return the process exit status. */
int tu_finish(const char *name);

#endif
