/* What the commands that look at a trained run share (eval, landscape): the
 * checkpoint of RUN_DIR or a file, the model with its weights, and the data
 * the run trained on, normalised exactly as in training. */
#ifndef OL_CLI_EVALRUN_H
#define OL_CLI_EVALRUN_H

#include "common.h"

typedef struct {
    char ckpt[4096];   /* the checkpoint file */
    ol_model *m;       /* its architecture and weights */
    ol_train_state ts; /* its training progress */
    cli_data data;     /* train, test (validation when the run held one out), real_test */
    int batch;         /* the run's evaluation batch size */
    char dataset[32];
} cli_run;

/* Path of the checkpoint src names: the newest valid one of a run directory,
 * or src itself. Returns 0 or a negative OL_E* code (message in ctx). */
int cli_run_checkpoint(ol_ctx *ctx, const char *src, char *path, size_t cap);

/* Open src and, with load_data, the run's data (its stored configuration:
 * dataset, data directory, subsets, validation split, seed), then keep the
 * first ntrain / ntest samples (0: all); data_dir ("": the run's) overrides
 * the directory. The normalisation statistics are the training run's (from
 * its whole training set) whatever ntrain is. Returns an exit status with a
 * one-line message in err. */
int cli_run_open(ol_ctx *ctx, const char *src, int load_data, const char *data_dir, int64_t ntrain, int64_t ntest,
                 cli_run *r, char *err, size_t cap);
void cli_run_close(cli_run *r);
/* The start of a command on a run after its options: cli_ctx_new (threads,
 * v's --backend), then src opened into r by cli_run_open with v's --data-dir
 * (options v lacks: the defaults). Returns an exit status, the one-line
 * message printed; *ctx is the caller's to free, r to close, on failure too. */
int cli_run_ctx(cli_values *v, const char *src, int threads, int load_data, int64_t ntrain, int64_t ntest,
                ol_ctx **ctx, cli_run *r);

/* Steps of the checkpoints ckpt-<step>.safetensors in dir, up to max_step,
 * sorted (*steps malloc'd, caller frees). Returns -1 when dir cannot be read
 * or memory runs out. */
int cli_run_list_steps(const char *dir, long long max_step, long long **steps, int *n);

/* The command's own checks of its options in v, into opts: 0, or -1 with a
 * one-line message in err (or v->err). */
typedef int (*cli_run_parse_fn)(cli_values *v, void *opts, char *err, size_t cap);

/* The start shared by the commands on a run (optimlab CMD RUN [options]):
 * without RUN, the usage on stderr (OL_EXIT_USAGE); --help or -h in RUN's
 * place or among the options, the help of v on stdout (OL_EXIT_OK); else the
 * options after RUN into v and parse's checks (NULL: none), a bad one one
 * line on stderr (OL_EXIT_USAGE). Otherwise -1: go on. */
int cli_run_args(cli_values *v, int argc, char **argv, const char *usage, cli_run_parse_fn parse, void *opts);

int cmd_eval(int argc, char **argv);
int cmd_landscape(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_sharpness(int argc, char **argv);
int cmd_histogram(int argc, char **argv);

#endif
