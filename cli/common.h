/* Shared pieces of the optimlab commands: option tables per concern and the
 * builders that turn option values into library parameter structs. */
#ifndef OL_CLI_COMMON_H
#define OL_CLI_COMMON_H

#include "optimlab.h"
#include "optimlab/data.h"
#include "optimlab/optim.h"
#include "optimlab/optim_algo.h"
#include "optimlab/sched.h"
#include "optimlab/train.h"
#include "options.h"

/* Exit statuses (documented in the README). */
enum {
    OL_EXIT_OK = 0,
    OL_EXIT_FAIL = 1,     /* runtime failure: out of memory, I/O error */
    OL_EXIT_USAGE = 2,    /* bad input: options, files, data */
    OL_EXIT_DIVERGED = 3, /* training diverged (non-finite loss) */
    OL_EXIT_STOPPED = 4,  /* stopped early by a signal or --time-limit; a checkpoint was written */
};

/* Print "optimlab: msg" on one line and return the exit status for status. */
int cli_fail(int status, const char *msg);
int cli_env_rank(void);
/* Data-parallel runs: every rank passes its exit status (0 = fine) and
 * message; all return the first failing rank's status with its message in
 * err ("rank R: ..."). A single process gets its status back unchanged. */
int cli_agree(ol_ctx *ctx, ol_comm *comm, int status, char *err, size_t cap);
int cli_fail_ctx(ol_ctx *ctx, int status);
/* mkdir -p and a file written whole or not at all (temporary, fsync, rename:
 * the library's src/core/fsutil.h); 0, or -1 with ctx's one-line message in err. */
int cli_mkdir_p(ol_ctx *ctx, const char *dir, char *err, size_t cap);
int cli_mkdir_p_check(ol_ctx *ctx, const char *dir, char *err, size_t cap);
int cli_write_file(ol_ctx *ctx, const char *path, const char *text, size_t len, char *err, size_t cap);
/* A file composed with stdio in memory, then written by cli_write_file:
 *   cli_memfile m; FILE *f = cli_memfile_open(&m); ...fprintf(f, ...)...;
 *   cli_memfile_save(&m, path, err, cap);   (0, or -1 with the message in err)
 * save closes and frees in every case (cli_memfile_open's NULL included). */
typedef struct {
    FILE *f;
    char *buf;
    size_t len;
} cli_memfile;
FILE *cli_memfile_open(cli_memfile *m);
void cli_memfile_discard(cli_memfile *m); /* close and free without writing */
int cli_memfile_save(cli_memfile *m, const char *path, char *err, size_t cap);
int cli_exit_for(int status);

extern const cli_opt cli_model_opts[];
extern const cli_opt cli_data_opts[];
extern const cli_opt cli_optim_opts[];
extern const cli_opt cli_sched_opts[];
extern const cli_opt cli_batch_opts[];  /* batch schedule, micro-batch, lr scaling */
extern const cli_opt cli_config_opts[]; /* --config, --recipe */
extern const cli_opt cli_train_opts[];
extern const cli_opt cli_run_opts[]; /* threads, backend, seed */
extern const cli_opt cli_dist_opts[];
extern const cli_opt *const cli_train_tables[]; /* every option of train, NULL-terminated */
extern const cli_opt cli_lrfind_opts[];         /* lr-find's own options */

int cli_build_model(cli_values *v, ol_model_params *mp);
/* The context length of the language model v's --model and --seq-len build;
 * 0 when v has no model options or the model is not a language model. */
int cli_model_context(cli_values *v);
/* v's --backend; -1 with v->err for an unknown name. */
int cli_backend(cli_values *v, ol_backend *be);
/* A context of threads compute threads (0: all cores) on v's --backend (where
 * v has the option). Returns an exit status, the one-line message printed;
 * *ctx (NULL when out of memory) is the caller's to free, on failure too. */
int cli_ctx_new(cli_values *v, int threads, ol_ctx **ctx);
/* --max-memory onto ctx (ol_ctx_set_memory_limit); -1 with v->err. */
int cli_memory_limit(cli_values *v, ol_ctx *ctx);
/* ol_ctx_check_memory: 0, or -1 with its message and how to override the
 * check (--max-memory) in err. */
int cli_check_memory(ol_ctx *ctx, uint64_t bytes, const char *what, char *err, size_t cap);
int cli_build_optim(cli_values *v, ol_optim_params *op);
/* The context holding the algorithms of the --plugin files (loaded on the
 * first call; their paths become absolute for config.json). NULL with v->err. */
ol_ctx *cli_registry(cli_values *v);
/* The optimizer called name (or alias) with the option values applied. recipe:
 * SGD gets momentum 0.9 and weight decay 5e-4 by default (training); strict:
 * an option the optimizer does not have is an error (otherwise it is left out,
 * for --compare lists). */
int cli_optim_from(cli_values *v, const char *name, int recipe, int strict, ol_optim_params *op);
/* 1 when option `name` of the optimizer table has an effect on op's optimizer
 * (an option set for one that lacks it is an error). */
int cli_optim_option_applies(const ol_optim_params *op, const char *name);
/* steps_per_epoch and total_steps come from the data and the training length. */
int cli_build_sched(cli_values *v, double base_lr, int64_t steps_per_epoch, int64_t total_steps,
                    ol_sched_params *sp);
int cli_build_train(cli_values *v, ol_train_params *tp);
int cli_build_dist(cli_values *v, ol_train_params *tp);
/* The end-of-run line about communication of a data-parallel run. */
void cli_print_comm(const ol_train_params *tp, const ol_train_result *res);
/* The end-of-run lines of --gns: the noise scale, the batch size and lr knee it suggests. */
void cli_print_gns(const ol_train_params *tp, const ol_train_result *res);
/* The same for a training run: lengths in epochs become the steps that many
 * epochs of tp's n training samples take (ol_train_epoch_steps), which under
 * a batch schedule (tp->batch_sched) differs from epochs x steps per epoch. */
int cli_build_sched_run(cli_values *v, double base_lr, const ol_train_params *tp, int64_t n, int64_t total,
                        ol_sched_params *sp);
typedef struct {
    int64_t steps_per_epoch;
    const ol_train_params *tp; /* NULL: steps_per_epoch converts */
    int64_t n;
    int64_t samples; /* the samples the run's steps consume (fractions of the run's samples); 0: unknown */
} cli_epochs;
/* Frees what cli_build_sched allocated (the parts of a sequential schedule). */
void cli_free_sched(ol_sched_params *sp);
/* The help cli_help_more adds for schedule options: the names of the
 * schedules (v's registered ones too), and the texts of the options derived
 * from the descriptors. */
void cli_sched_help_more(FILE *f, const cli_values *v, const char *name);
/* Whether `name` is a schedule option: of the table or of a built-in
 * schedule's descriptor (derived). */
int cli_is_sched_option(const char *name);
/* Every schedule of reg (NULL: the built-ins): name, summary, aliases, options. */
void cli_print_schedules(FILE *f, const ol_ctx *reg);

/* Batch-size schedule, gradient accumulation and lr scaling. */
typedef struct {
    ol_batch_sched_params sched; /* global batch of each step: ol_batch_sched_batch */
    ol_lr_scaling lr_scaling;
    int64_t base_batch;  /* B0 the lr was tuned for (--base-batch-size, default --batch-size) */
    double knee;         /* linear-then-sqrt knee, in multiples of B0 */
    int64_t micro_batch; /* 0: no accumulation; else micro-batches of this many samples */
} cli_batch_config;
/* tp: the starting global batch (batch_size), drop_last and the length in
 * epochs of a run over n training samples. Milestones are data epochs: each
 * becomes the step where that many epochs of data have been consumed at the
 * batches before it; --batch-ramp-ratio is a fraction of epochs x n samples. */
int cli_build_batch_sched(cli_values *v, const ol_train_params *tp, int64_t n, cli_batch_config *bc);
/* bc into tp as train takes it: the batch schedule (tp->batch_sched points
 * into bc unless constant), lr scaling, base batch, knee, micro-batches. */
void cli_batch_apply(const cli_batch_config *bc, ol_train_params *tp);
/* A run's plan over n training samples, the one sequence train, sweep and
 * report share: the batch schedule into bc and tp (cli_batch_apply), the
 * steps it takes into *total, the lr schedule over them into sp. -1 with
 * v->err on a bad option or when no step fits. */
int cli_build_run_plan(cli_values *v, double base_lr, ol_train_params *tp, int64_t n, cli_batch_config *bc,
                       ol_sched_params *sp, int64_t *total);
/* --batch-tokens N of a language model (or of optimlab schedule with --seq-len):
 * sets --batch-size to N / sequence length (marked CLI_RESOLVED); nothing when
 * not given. -1 with v->err when N is not a multiple of the sequence length,
 * --batch-size is given too, or there is no sequence length (image models). */
int cli_batch_tokens(cli_values *v);

/* Presets before the command line: the recipe (--recipe, or `recipe:` in the
 * file), then the YAML file of --config. Scans argv[first..] for both; call
 * before cli_parse. Returns 0, or -1 with v->err ("file:line: ..."). */
int cli_apply_presets(cli_values *v, int argc, char **argv, int first);
/* Set options from a YAML file (how = 2); *recipe receives its `recipe:` value. */
int cli_load_config(cli_values *v, const char *path, char *recipe, size_t cap);
/* The same from an open stream (label names it in messages); the fuzzing entry point. */
int cli_load_config_stream(cli_values *v, FILE *f, const char *label, char *recipe, size_t cap);
/* A run's stored configuration (config.json, or a checkpoint's copy: a JSON
 * object of option name -> text or boolean) into v (how = 2): options v does
 * not have, values equal to the default and values the run resolved from
 * defaults (its "resolved" list) are left alone, so options that do not apply
 * stay unset. Returns 0, or -1 with "stored configuration: ..." in err. */
struct json_t;
int cli_apply_stored(cli_values *v, struct json_t *cfg, char *err, size_t cap);
/* A stored value as option text: strings as they are, booleans "1"/"0"; NULL for anything else. */
const char *cli_stored_text(struct json_t *v);
/* Set the recipe's options that v has (how = 3); -1 for an unknown name. */
int cli_apply_recipe(cli_values *v, const char *name);
/* 0 when every key of recipe i is an option of some command (flags set to
 * "1"); else -1 with "recipe 'NAME': ..." in err. */
int cli_recipe_check(int i, char *err, size_t cap);
int cli_recipe_count(void);
const char *cli_recipe_name(int i);
const char *const *cli_recipe_values(int i); /* key, value, ..., NULL */

/* out: a copy of v where every option left unset that applies to this run
 * holds its effective value (the optimizer's and schedule's defaults
 * resolved), marked CLI_RESOLVED; options that do not apply stay "". tp: the
 * run (its batch schedule); lengths in epochs are filled only where they
 * convert back to the same steps. Returns 0, or -1 when out of memory. */
int cli_effective_values(cli_values *out, const cli_values *v, const ol_optim_params *op, const ol_sched_params *sp,
                         const cli_batch_config *bc, const ol_train_params *tp);

typedef struct {
    ol_dataset train, test;
    int has_val; /* test holds a validation split of the training data */
    ol_dataset real_test;
} cli_data;
/* Load the dataset named by --dataset with --data-dir, subsets and split.
 * Returns 0, or the exit status (OL_EXIT_USAGE, or OL_EXIT_FAIL when out of
 * memory or a declared size exceeds it) with a one-line message in err. */
int cli_load_data(ol_ctx *ctx, cli_values *v, cli_data *d, char *err, size_t cap);
void cli_free_data(cli_data *d);

int cmd_train(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int bench_train(int argc, char **argv);
int bench_allreduce(int argc, char **argv);
int cmd_schedule(int argc, char **argv);
int cmd_lrfind(int argc, char **argv);
int cmd_recipes(int argc, char **argv);
int bench_optim(int argc, char **argv);
int cmd_trajectory(int argc, char **argv);
int cmd_plan(int argc, char **argv);

#endif
