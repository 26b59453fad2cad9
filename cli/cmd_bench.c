/* optimlab bench: dispatch to the benchmarks. */
#include <stdio.h>
#include <string.h>

#include "common.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} benches[] = {
    {"train", bench_train, "time full training steps (forward, backward, update)"},
    {"allreduce", bench_allreduce, "MPI all-reduce bandwidth between ranks (run under mpirun)"},
    {"optimizer", bench_optim, "time one optimizer step against a memory-bandwidth probe"},
};

int cmd_bench(int argc, char **argv)
{
    const size_t nb = sizeof benches / sizeof benches[0];
    if (argc < 3 || strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0) {
        FILE *f = argc < 3 ? stderr : stdout;
        fprintf(f, "usage: optimlab bench <what> [options]\n\n");
        for (size_t i = 0; i < nb; i++)
            fprintf(f, "  %-12s %s\n", benches[i].name, benches[i].help);
        return argc < 3 ? OL_EXIT_USAGE : OL_EXIT_OK;
    }
    for (size_t i = 0; i < nb; i++)
        if (strcmp(argv[2], benches[i].name) == 0)
            return benches[i].fn(argc, argv);
    char msg[256];
    snprintf(msg, sizeof msg, "unknown benchmark '%s' (see optimlab bench --help)", argv[2]);
    return cli_fail(OL_EXIT_USAGE, msg);
}
