/* optimlab: command-line front end of liboptimlab. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "evalrun.h"
#include "runs.h"

/* Debian's OpenBLAS 0.3.21 falls back to its generic kernel on CPUs newer than
 * it knows, and picks its kernel when it is loaded, before main runs. Re-run
 * ourselves once with OPENBLAS_CORETYPE set so every path gets full speed. */
static void fix_openblas(char **argv)
{
    const char *suggest = NULL;
    if (getenv("OPENBLAS_CORETYPE") || getenv("OPTIMLAB_NO_REEXEC") || !ol_openblas_misdetected(&suggest))
        return;
    setenv("OPENBLAS_CORETYPE", suggest, 1);
    setenv("OPTIMLAB_NO_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the generic kernel (oneDNN does the heavy GEMMs) */
}

static int cmd_version(int argc, char **argv);

/* The commands; each takes the whole argv (its name is argv[1]). */
static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"train", cmd_train, "train a model (optimlab train --help)"},
    {"bench", cmd_bench, "benchmarks: train, optimizer, allreduce (optimlab bench --help)"},
    {"export", cmd_export, "write a run's weights as a plain safetensors file (PyTorch names)"},
    {"import", cmd_import, "check and convert a safetensors state_dict for train --init-from"},
    {"verify", cmd_verify, "check a run's newest checkpoint (or a checkpoint file) and print its step"},
    {"schedule", cmd_schedule, "print or plot a learning-rate/momentum/batch schedule (optimlab schedule --help)"},
    {"lr-find", cmd_lrfind, "learning-rate range test (optimlab lr-find --help)"},
    {"recipes", cmd_recipes, "list the recipes (--recipe NAME presets)"},
    {"trajectory", cmd_trajectory, "optimizer paths on 2-D test functions, with contour plots"},
    {"plan-scaling", cmd_plan, "predict data-parallel scaling, PowerSGD and DiLoCo at cluster scale"},
    {"eval", cmd_eval, "loss and accuracy of a checkpoint on the train/test set (optimlab eval --help)"},
    {"sample", cmd_sample, "generate text with a trained language model (optimlab sample --help)"},
    {"landscape", cmd_landscape, "loss landscapes: interpolation, 2-D filter-normalized and PCA planes"},
    {"sharpness", cmd_sharpness, "top Hessian eigenvalues and Hessian trace of a checkpoint's training loss"},
    {"histogram", cmd_histogram, "weight distributions of a run's checkpoints, per tensor or layer (SVG)"},
    {"report", cmd_report, "compare run directories: an HTML page with plots and a markdown table"},
    {"sweep", cmd_sweep, "run a grid of configurations from a YAML file (optimlab sweep --help)"},
    {"version", cmd_version, "print the version and the compute kernels in use"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: optimlab <command> [options]\n\n"
               "Train neural networks with the optimizers, schedules and large-batch techniques of the\n"
               "Optimized Deep Learning course.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\nexit status: 0 success, 1 runtime failure, 2 bad input (options, files, data),\n"
               "             3 training diverged, 4 stopped early by a signal or --time-limit (checkpoint written;\n"
               "             continue with --resume)\n");
}

static int cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    ol_ctx *ctx = ol_ctx_new(0);
    char info[512];
    if (!ctx)
        return cli_fail(OL_EXIT_FAIL, "out of memory");
    ol_ctx_kernel_info(ctx, info, sizeof info);
    printf("optimlab %s\n%s\n", OL_VERSION_STRING, info);
    ol_ctx_free(ctx);
    return OL_EXIT_OK;
}

int main(int argc, char **argv)
{
    fix_openblas(argv);
    unsetenv("OPTIMLAB_NO_REEXEC");
    if (argc < 2) {
        usage(stderr);
        return OL_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return OL_EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0)
        return cmd_version(argc, argv);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(cmd, commands[i].name) == 0)
            return commands[i].fn(argc, argv);
    char msg[256];
    snprintf(msg, sizeof msg, "unknown command '%s' (see optimlab --help)", cmd);
    return cli_fail(OL_EXIT_USAGE, msg);
}
