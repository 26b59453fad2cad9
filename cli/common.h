/* Shared pieces of the optimlab commands: option tables per concern and the
 * builders that turn option values into library parameter structs. */
#ifndef OL_CLI_COMMON_H
#define OL_CLI_COMMON_H

#include "optimlab.h"
#include "optimlab/data.h"
#include "optimlab/optim.h"
#include "optimlab/sched.h"
#include "optimlab/train.h"
#include "options.h"

/* Exit statuses (documented in the README). */
enum {
    OL_EXIT_OK = 0,
    OL_EXIT_FAIL = 1,     /* runtime failure: out of memory, I/O error */
    OL_EXIT_USAGE = 2,    /* bad input: options, files, data */
    OL_EXIT_DIVERGED = 3, /* training diverged (non-finite loss) */
};

/* Print "optimlab: msg" on one line and return the exit status for status. */
int cli_fail(int status, const char *msg);
int cli_fail_ctx(ol_ctx *ctx, int status);
int cli_exit_for(int status);

extern const cli_opt cli_model_opts[];
extern const cli_opt cli_data_opts[];
extern const cli_opt cli_optim_opts[];
extern const cli_opt cli_sched_opts[];
extern const cli_opt cli_train_opts[];
extern const cli_opt cli_run_opts[]; /* threads, backend, seed */

int cli_build_model(cli_values *v, ol_model_params *mp);
int cli_build_optim(cli_values *v, ol_optim_params *op);
/* The optimizer called name (or alias) with the option values applied. recipe:
 * SGD gets momentum 0.9 and weight decay 5e-4 by default (training); strict:
 * an option the optimizer does not have is an error (otherwise it is left out,
 * for --compare lists). */
int cli_optim_from(cli_values *v, const char *name, int recipe, int strict, ol_optim_params *op);
/* steps_per_epoch and total_steps come from the data and the training length. */
int cli_build_sched(cli_values *v, double base_lr, int64_t steps_per_epoch, int64_t total_steps,
                    ol_sched_params *sp);
int cli_build_train(cli_values *v, ol_train_params *tp);

typedef struct {
    ol_dataset train, test;
    int has_val; /* test holds a validation split of the training data */
    ol_dataset real_test;
} cli_data;
/* Load the dataset named by --dataset with --data-dir, subsets and split.
 * Returns 0, or -1 with a one-line message in err. */
int cli_load_data(ol_ctx *ctx, cli_values *v, cli_data *d, char *err, size_t cap);
void cli_free_data(cli_data *d);

int cmd_train(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int bench_train(int argc, char **argv);
int bench_optim(int argc, char **argv);
int cmd_trajectory(int argc, char **argv);

#endif
