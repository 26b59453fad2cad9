/* Reading run directories (config.json + metrics.jsonl) for optimlab report
 * and optimlab sweep, and the two commands' entry points. */
#ifndef OL_CLI_RUNS_H
#define OL_CLI_RUNS_H

#include <jansson.h>
#include <stdint.h>

typedef struct {
    double step, epoch, lr, loss, grad_norm, batch;
    double gns; /* --gns: the gradient noise scale (NaN when not logged) */
} run_step;

typedef struct {
    double step, epoch, test_acc, test_loss;
    double train_loss; /* the epoch's mean training loss (NaN: a mid-epoch evaluation) */
} run_eval;

typedef enum {
    RUN_FINISHED = 0, /* the summary record is there */
    RUN_RUNNING,      /* another process holds the run directory's lock */
    RUN_STOPPED,      /* no summary and nobody writing: interrupted (or diverged) */
} run_status;

typedef struct {
    char dir[4096];
    char name[256]; /* the directory's last component */
    json_t *config; /* config.json (owned) */
    run_step *steps;
    int nsteps;
    run_eval *evals; /* evaluations (mid-epoch and end of epoch) */
    int nevals;
    run_status status;
    int bad_lines;   /* metrics.jsonl lines that were not JSON objects (skipped) */
    int has_val;     /* the evaluations are on a validation split */
    double best_acc, final_acc, final_loss;
    double elapsed, train_time; /* NAN when unknown */
    double comm_bytes;          /* data sent by rank 0; NAN: not a data-parallel run */
    double n_train;             /* training samples per epoch (for samples seen); NAN when unknown */
    double tokens_per_sample;   /* a language model's tokens per window (from tokens_per_s); NAN: images */
    double epochs_reached, steps_reached;
} run_data;

/* Load DIR. Returns 0; -1 when DIR is not a readable run directory (err: why);
 * malformed metrics lines are skipped and counted in bad_lines. */
int run_load(const char *dir, run_data *r, char *err, size_t cap);
void run_free(run_data *r);
/* The value of config key as text ("" when absent): strings as they are, booleans "true"/"false". */
const char *run_cfg(const run_data *r, const char *key, char *buf, size_t cap);
/* Take the exclusive lock DIR/FILE (a run: .lock) for the process's life: the
 * descriptor, or -1 with *status (0: DIR does not exist; else the exit status)
 * and err ("WHAT DIR in use by pid N (WHY)" when another process holds it). */
int run_lock(const char *dir, const char *file, const char *what, const char *why, int *status, char *err,
             size_t cap);
/* 1 when a live process holds DIR/.lock (a run being written). */
int run_locked(const char *dir);
/* 1 when DIR/metrics.jsonl has a summary record (the run finished). */
int run_finished(const char *dir);
/* 1 when DIR holds a checkpoint ckpt-*.safetensors (--resume can continue it). */
int run_has_checkpoint(const char *dir);
/* The newest step record's step (0 when none yet); for progress. -1: no metrics.jsonl. */
int run_progress(const char *dir, long long *step);

/* r's learning rate and batch size at each of its optimizer steps so far
 * (lr[t], batch[t]: the step that ends as step t + 1), recomputed from its
 * config.json by train's rule over its n_train samples and checked against
 * every logged step, and the largest lr of its whole plan (*peak). Returns 0
 * with *n steps (arrays malloc'd, the caller frees); -1 (*peak NaN) when they
 * cannot be recomputed or disagree with the log (a plugin, reduce-on-plateau,
 * a run resumed with other options). */
int run_schedule(const run_data *r, double **lr, double **batch, int64_t *n, double *peak);

/* optimlab report's work, for the sweep too: runs into outdir/report.html and
 * outdir/report.md. group_by may be NULL. Returns an exit status; warnings
 * and errors are printed. */
int report_write(const char *const *dirs, int ndirs, const char *group_by, const char *outdir);

int cmd_report(int argc, char **argv);
int cmd_sweep(int argc, char **argv);

#endif
