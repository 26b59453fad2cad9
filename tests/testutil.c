#include "testutil.h"

int tu_failures = 0;
int tu_checks = 0;

int tu_finish(const char *name)
{
    if (tu_failures) {
        fprintf(stderr, "%s: %d of %d checks FAILED\n", name, tu_failures, tu_checks);
        return 1;
    }
    printf("%s: all %d checks passed\n", name, tu_checks);
    return 0;
}
