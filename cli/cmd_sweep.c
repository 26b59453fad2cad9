/* optimlab sweep GRID.yaml: every configuration of a grid file (sweep.h) in
 * its own run directory OUT/<name>, as child `optimlab train` processes.
 *
 * Rerunning a sweep skips finished runs (a summary record), resumes those
 * with a checkpoint (train --resume) and restarts the others; a run whose
 * options changed since it was started is an error, so a directory never
 * mixes two configurations. OUT/logs/NAME.cmd holds each run's options,
 * NAME.log its output, NAME.status its last exit status (3, diverged, is not
 * retried). Every configuration is checked by the train option parser
 * before anything runs. */
#define _XOPEN_SOURCE 700 /* realpath */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "runs.h"
#include "sweep.h"

static const cli_opt sweep_opts[] = {
    {"jobs", CLI_VALUE, "1", "N", "Sweep", "runs at once; the threads are split between them"},
    {"threads", CLI_VALUE, "0", "T", "Sweep",
     "threads in all (0 = the CPUs of this machine); each run gets T/N unless the grid sets threads"},
    {"out", CLI_VALUE, "", "DIR", "Sweep", "sweep directory [the grid's out:, else runs/<grid file name>]"},
    {"dry-run", CLI_FLAG, "0", NULL, "Sweep", "list the configurations and their train commands, run nothing"},
    {"slurm", CLI_FLAG, "0", NULL, "Sweep",
     "write OUT/sweep.sbatch, a SLURM job array (one task per configuration, requeued on preemption), run nothing"},
    {"retries", CLI_VALUE, "1", "N", "Sweep",
     "a run killed by a signal the sweep did not send (a crash, the OOM killer) is started again from its newest "
     "checkpoint, at most N times"},
    {"set", CLI_LIST, "", "OPTION=VALUE", "Sweep",
     "give every run this train option, in place of the grid file's value (one that does not vary between runs); "
     "repeatable. With another --out: the runs of a sweep directory keep their options"},
    {"no-report", CLI_FLAG, "0", NULL, "Sweep", "do not write OUT/report at the end"},
    {NULL, 0, NULL, NULL, NULL, NULL}};

static const char *const sweep_usage =
    "usage: optimlab sweep GRID.yaml [--jobs N] [--threads T] [--out DIR] [--set OPTION=VALUE]... [--retries N]\n"
    "                      [--dry-run | --slurm]\n"
    "\n"
    "Train every configuration of a grid file (fixed options, lists whose cartesian product is run,\n"
    "explicit extra runs; see docs/experiments.md) into OUT/<name>, named after the options that vary.\n"
    "Finished runs are skipped, interrupted ones resumed from their newest checkpoint; at the end\n"
    "OUT/report/report.html compares them. Exit status: 0 every run finished (or diverged), 1 a run\n"
    "failed, 2 bad grid file or options, 4 stopped by a signal (the runs checkpointed; rerun to continue).\n"
    "\n"
    "example: optimlab sweep experiments/example-mlp.yaml --jobs 2\n"
    "         optimlab sweep experiments/practical.yaml --set dataset=cifar10 --out runs/practical-cifar10";

enum { J_TODO, J_RUNNING, J_DONE, J_DIVERGED, J_FAILED, J_STOPPED, J_LRFIND, J_COUNT };

typedef struct {
    const sweep_conf *c;
    char dir[4400];
    char **args; /* train options of the configuration (without --out), NULL-terminated */
    int nargs;
    int resume;
    int retried; /* times it was started again after dying from a signal */
    int need_lr;  /* the grid's lr-find picks this run's lr */
    char lr[64];  /* the lr it picked ("" = not yet) */
    long long total, step0, step; /* steps: in all, at the start of this sweep, now */
    double batch;                 /* progress weighs steps by their samples */
    int state;
    pid_t pid;
} sweep_job;

typedef struct {
    sweep_grid g;
    sweep_job *jobs;
    char **lrf; /* the grid's lr-find options as arguments */
    int nlrf;
    int threads_each;
    int retries; /* --retries */
    char err[1400];
} sweep;

/* ---- configurations as train options ------------------------------------- */

static int is_true(const char *s, int *out)
{
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes", "on", "1", NULL};
    static const char *const no[] = {"false", "False", "FALSE", "no", "No", "off", "0", NULL};
    for (int i = 0; yes[i]; i++)
        if (!strcmp(s, yes[i]))
            return *out = 1, 0;
    for (int i = 0; no[i]; i++)
        if (!strcmp(s, no[i]))
            return *out = 0, 0;
    return -1;
}

static int push(char ***arr, int *n, const char *a)
{
    char **na = realloc(*arr, (size_t)(*n + 2) * sizeof *na);
    if (!na)
        return -1;
    *arr = na;
    if (!(na[*n] = strdup(a)))
        return -1;
    na[++*n] = NULL;
    return 0;
}

static int add_arg(sweep_job *j, const char *a) { return push(&j->args, &j->nargs, a); }

/* The grid's lr-find: options of lr-find's own table (the rest comes from each run). */
static int lrfind_args(sweep *S)
{
    cli_values lv;
    const cli_opt *const t[] = {cli_lrfind_opts, NULL};
    cli_init(&lv, t);
    int rc = 0;
    for (int i = 0; i < S->g.lrfind.n && rc == 0; i++) {
        const char *k = S->g.lrfind.kv[i].key, *val = S->g.lrfind.kv[i].val;
        char opt[160];
        snprintf(opt, sizeof opt, "--%.150s", k);
        static const char *const sweep_keys[] = {"start-lr", "end-lr", "sweep-lrs", "sweep-per-decade", "sweep-steps", NULL};
        int ok = 0;
        for (int m = 0; sweep_keys[m] && !ok; m++)
            ok = !strcmp(k, sweep_keys[m]);
        if (!ok || cli_find(&lv, k) < 0) { /* the range test's options do not apply to --mode sweep */
            snprintf(S->err, sizeof S->err, "lr-find: '%s' is not an option of the lr sweep (start-lr, end-lr, sweep-lrs, "
                     "sweep-per-decade, sweep-steps)", k);
            rc = -1;
        } else if (*val && (push(&S->lrf, &S->nlrf, opt) < 0 || push(&S->lrf, &S->nlrf, val) < 0)) {
            snprintf(S->err, sizeof S->err, "out of memory");
            rc = -1;
        }
    }
    cli_free(&lv);
    return rc;
}

/* --key value pairs; flags appear when true; "" (null) leaves the default. */
static int build_args(sweep *S, sweep_job *j, const cli_values *tv)
{
    for (int k = 0; k < j->c->n; k++) {
        const char *key = j->c->kv[k].key, *val = j->c->kv[k].val;
        int i = cli_find(tv, key), on;
        char opt[160];
        snprintf(opt, sizeof opt, "--%.150s", key);
        if (i < 0) {
            snprintf(S->err, sizeof S->err, "run %s (line %d): unknown option '%s' (keys are train's long option names)",
                     j->c->name, j->c->line, key);
            return -1;
        }
        if (!*val)
            continue;
        if (tv->opts[i]->kind == CLI_FLAG) {
            if (is_true(val, &on) < 0) {
                snprintf(S->err, sizeof S->err, "run %s (line %d): '%s' is a flag: expected true or false, got '%.200s'",
                         j->c->name, j->c->line, key, val);
                return -1;
            }
            if (on && add_arg(j, opt) < 0)
                return -1;
        } else if (add_arg(j, opt) < 0 || add_arg(j, val) < 0)
            return -1;
    }
    return 0;
}

/* Training samples the run will see per epoch, as the data options say (for the step count). */
static int64_t data_size(cli_values *v)
{
    long long sub = 0, syn = 2048;
    double val = 0;
    cli_int(v, "train-subset", 0, INT64_MAX, &sub);
    cli_int(v, "synthetic-size", 8, 100000000, &syn);
    cli_double(v, "val-split", 0.0, 0.9, &val);
    const char *ds = cli_str(v, "dataset");
    int64_t n = !strcmp(ds, "cifar10") ? 50000 : !strcmp(ds, "synthetic") ? syn : 60000;
    if (sub > 0 && sub < n)
        n = sub;
    return (int64_t)((double)n * (1.0 - val));
}

/* The train parser and builders on one configuration: every option name and
 * value (data files are read when the run starts). Also its length in steps. */
static int check_conf(sweep *S, sweep_job *j)
{
    cli_values v;
    cli_init(&v, cli_train_tables);
    int argc = j->nargs + 2, help = 0, rc = -1;
    char **argv = calloc((size_t)argc + 1, sizeof *argv);
    if (!argv) {
        cli_free(&v);
        snprintf(S->err, sizeof S->err, "out of memory");
        return -1;
    }
    argv[0] = "optimlab";
    argv[1] = "train";
    for (int i = 0; i < j->nargs; i++)
        argv[i + 2] = j->args[i];
    ol_model_params mp;
    ol_optim_params op;
    ol_train_params tp;
    ol_sched_params sp;
    cli_batch_config bc;
    long long threads;
    ol_backend be;
    memset(&sp, 0, sizeof sp);
    if (cli_apply_presets(&v, argc, argv, 2) == 0 && cli_parse(&v, argc, argv, 2, &help) == 0 && !help &&
        !cli_build_model(&v, &mp) && !cli_build_optim(&v, &op) && !cli_build_train(&v, &tp) &&
        !cli_build_dist(&v, &tp) && !cli_int(&v, "threads", 0, 1024, &threads)) {
        int64_t n = data_size(&v);
        if (cli_backend(&v, &be) == 0) {
            int64_t total;
            if (!cli_build_run_plan(&v, op.lr, &tp, n, &bc, &sp, &total))
                rc = 0;
            j->total = total;
            j->batch = tp.batch_size;
            cli_free_sched(&sp);
        }
    } else if (help)
        snprintf(v.err, sizeof v.err, "--help is not an option of a run");
    if (rc < 0)
        snprintf(S->err, sizeof S->err, "run %s (line %d): %s", j->c->name, j->c->line, v.err);
    free(argv);
    cli_free(&v);
    return rc;
}

/* ---- files ----------------------------------------------------------------- */

/* Shell words: plain ones as they are, others single-quoted. */
static void sh_word(FILE *f, const char *s)
{
    if (*s && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._,=+/:@%-") == strlen(s)) {
        fputs(s, f);
        return;
    }
    fputc('\'', f);
    for (; *s; s++)
        if (*s == '\'')
            fputs("'\\''", f);
        else
            fputc(*s, f);
    fputc('\'', f);
}

static char *args_text(const sweep_job *j)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    for (int i = 0; i < j->nargs; i++) {
        sh_word(f, j->args[i]);
        fputc(i + 1 < j->nargs ? ' ' : '\n', f);
    }
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

static void log_path(const sweep *S, const sweep_job *j, const char *ext, char *out, size_t cap)
{
    snprintf(out, cap, "%s/logs/%s.%s", S->g.out, j->c->name, ext);
}

static char *read_small(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = calloc(1, 65537);
    if (buf && fread(buf, 1, 65536, f) == 0 && ferror(f)) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

static int write_small(const char *path, const char *text)
{
    cli_memfile m;
    FILE *f = cli_memfile_open(&m);
    if (f)
        fputs(text, f);
    char err[64];
    return cli_memfile_save(&m, path, err, sizeof err);
}

/* What to do with each run; refuses a run started with other options, or one in use. */
static int classify(sweep *S, int dry)
{
    for (int i = 0; i < S->g.nconf; i++) {
        sweep_job *j = &S->jobs[i];
        char path[4600];
        if (run_locked(j->dir)) {
            snprintf(S->err, sizeof S->err, "%.1000s is being written by another process (another sweep?)", j->dir);
            return -1;
        }
        log_path(S, j, "cmd", path, sizeof path);
        char *was = read_small(path), *now = args_text(j);
        int changed = was && now && strcmp(was, now) != 0;
        free(was);
        free(now);
        if (changed) {
            snprintf(S->err, sizeof S->err,
                     "run %s was started with other options (%.900s): remove its directory, or sweep into another --out",
                     j->c->name, path);
            return -1;
        }
        log_path(S, j, "status", path, sizeof path);
        char *st = read_small(path);
        int last = st ? atoi(st) : -1;
        free(st);
        if (run_finished(j->dir))
            j->state = J_DONE;
        else if (last == OL_EXIT_DIVERGED)
            j->state = J_DIVERGED;
        else
            j->resume = run_has_checkpoint(j->dir);
        log_path(S, j, "lr", path, sizeof path);
        char *lr = j->need_lr ? read_small(path) : NULL;
        if (lr && atof(lr) > 0)
            snprintf(j->lr, sizeof j->lr, "%.*s", (int)strcspn(lr, "\n"), lr);
        free(lr);
        run_progress(j->dir, &j->step0);
        if (j->state == J_DONE)
            j->step0 = j->total;
        if (!j->resume && j->state == J_TODO)
            j->step0 = 0;
        j->step = j->step0;
        if (dry)
            printf("%-40s %s%s%s\n", j->c->name,
                   j->state == J_DONE       ? "finished"
                   : j->state == J_DIVERGED ? "diverged before"
                   : j->resume              ? "to resume"
                                            : "to run",
                   j->state == J_TODO && !j->resume && j->need_lr ? (*j->lr ? ", lr chosen by lr-find: " : ", lr from lr-find") : "",
                   j->state == J_TODO && !j->resume && j->need_lr ? j->lr : "");
    }
    return 0;
}

/* ---- SLURM ------------------------------------------------------------------ */

static char **lrfind_argv(sweep *S, sweep_job *j, char *outp, char *threads);

static int write_slurm(sweep *S, const char *grid_path)
{
    char path[4400], exe[4096];
    snprintf(path, sizeof path, "%s/sweep.sbatch", S->g.out);
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        snprintf(exe, sizeof exe, "optimlab");
    else
        exe[n] = '\0';
    char *abs_out = realpath(S->g.out, NULL);
    FILE *f = abs_out ? fopen(path, "w") : NULL;
    if (!f) {
        free(abs_out);
        snprintf(S->err, sizeof S->err, "cannot write %.900s: %s", path, strerror(errno));
        return OL_EXIT_FAIL;
    }
    fprintf(f, "#!/bin/bash\n# Written by optimlab sweep from %s: one array task per configuration.\n", grid_path);
    fprintf(f, "# Submit with: sbatch %s   (add your partition, account and time limit below)\n", path);
    fprintf(f, "#SBATCH --job-name=optimlab-sweep\n#SBATCH --array=0-%d\n#SBATCH --cpus-per-task=%d\n", S->g.nconf - 1,
            S->threads_each);
    fputs("#SBATCH --signal=B:USR1@120       # SIGUSR1 to the batch shell 2 minutes before the limit\n"
          "#SBATCH --requeue\n#SBATCH --open-mode=append\n", f);
    fprintf(f, "#SBATCH --output=%s/logs/slurm-%%A_%%a.out\n\nOPTIMLAB=", abs_out);
    sh_word(f, exe);
    fputs("\nOUT=", f);
    sh_word(f, abs_out);
    fputs("\ncase \"${SLURM_ARRAY_TASK_ID:?run this script with sbatch}\" in\n", f);
    for (int i = 0; i < S->g.nconf; i++) {
        sweep_job *j = &S->jobs[i];
        fprintf(f, "  %d) NAME=", i);
        sh_word(f, j->c->name);
        fputs("; ARGS=(", f);
        for (int a = 0; a < j->nargs; a++) {
            sh_word(f, j->args[a]);
            if (a + 1 < j->nargs)
                fputc(' ', f);
        }
        fputs(")", f);
        char **lrf = j->need_lr ? lrfind_argv(S, j, NULL, NULL) : NULL;
        if (lrf) {
            fputs("; LRF=(", f);
            for (int a = 2; lrf[a]; a++) {
                sh_word(f, lrf[a]);
                if (lrf[a + 1])
                    fputc(' ', f);
            }
            fputs(")", f);
        } else
            fputs("; LRF=()", f);
        free(lrf);
        fputs(" ;;\n", f);
    }
    fputs("  *) echo \"no configuration $SLURM_ARRAY_TASK_ID\" >&2; exit 2 ;;\nesac\nRUN=\"$OUT/$NAME\"\n\n"
          "if grep -qs '\"type\":\"summary\"' \"$RUN/metrics.jsonl\"; then\n"
          "  echo \"$NAME: finished already\"; exit 0\nfi\n"
          "export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}\n"
          "if ls \"$RUN\"/ckpt-*.safetensors >/dev/null 2>&1; then\n"
          "  ARGS=(--resume \"$RUN\")                    # requeued: continue from the newest checkpoint\n"
          "else\n"
          "  if [ ${#LRF[@]} -gt 0 ]; then            # the lr of lr-find --mode sweep, chosen once\n"
          "    LOG=\"$OUT/logs/$NAME\"\n"
          "    if [ ! -s \"$LOG.lr\" ]; then\n"
          "      # stopped in the finder: it keeps its finished candidates, and the requeued task continues it\n"
          "      STOPPED=\n"
          "      trap 'kill -TERM $PID 2>/dev/null; STOPPED=1' USR1 TERM\n"
          "      \"$OPTIMLAB\" lr-find \"${LRF[@]}\" --out \"$LOG.lrfind\" --threads \"$OMP_NUM_THREADS\" >>\"$LOG.lrfind.log\" 2>&1 &\n"
          "      PID=$!\n"
          "      wait $PID; STATUS=$?\n"
          "      [ $STATUS -gt 128 ] && { wait $PID; STATUS=$?; }\n"
          "      if [ -n \"$STOPPED\" ]; then\n"
          "        echo \"$NAME: stopped in lr-find; requeueing\"\n"
          "        scontrol requeue \"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"; exit 4\n"
          "      fi\n"
          "      [ $STATUS -eq 0 ] || exit $STATUS\n"
          "      sed -n 's/^best lr: \\([0-9][0-9.e+-]*\\).*/\\1/p' \"$LOG.lrfind.log\" | tail -n 1 >\"$LOG.lr\"\n"
          "    fi\n"
          "    LR=$(cat \"$LOG.lr\")\n"
          "    [ -n \"$LR\" ] || { echo \"$NAME: lr-find found no lr (see $LOG.lrfind.log)\" >&2; exit 1; }\n"
          "    ARGS+=(--lr \"$LR\")\n"
          "  fi\n"
          "  ARGS+=(--out \"$RUN\" --overwrite)\nfi\n\n"
          "# preemption or the time limit: optimlab checkpoints and exits with status 4, and the task is requeued\n"
          "trap 'kill -USR1 $PID 2>/dev/null' USR1 TERM\n"
          "\"$OPTIMLAB\" train \"${ARGS[@]}\" --threads \"$OMP_NUM_THREADS\" &\nPID=$!\n"
          "wait $PID; STATUS=$?\n"
          "[ $STATUS -gt 128 ] && { wait $PID; STATUS=$?; }   # wait again after the trap interrupted it\n"
          "if [ $STATUS -eq 4 ]; then\n"
          "  echo \"$NAME: stopped with a checkpoint; requeueing\"\n"
          "  scontrol requeue \"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"\nfi\nexit $STATUS\n",
          f);
    free(abs_out);
    if (fclose(f) != 0) {
        snprintf(S->err, sizeof S->err, "cannot write %.900s: %s", path, strerror(errno));
        return OL_EXIT_FAIL;
    }
    chmod(path, 0755);
    printf("slurm: %s (%d array tasks, %d CPUs each); submit with: sbatch %s\n", path, S->g.nconf, S->threads_each,
           path);
    return OL_EXIT_OK;
}

/* ---- running ---------------------------------------------------------------- */

static volatile sig_atomic_t sweep_stop = 0;

static void on_signal(int sig)
{
    sweep_stop = 1;
    signal(sig, SIG_DFL); /* a second signal ends the sweep at once (the runs still checkpoint) */
}

static pid_t spawn(char **argv, const char *logp);

static pid_t launch(sweep *S, sweep_job *j)
{
    char logp[4600], cmdp[4600], th[32];
    log_path(S, j, "log", logp, sizeof logp);
    log_path(S, j, "cmd", cmdp, sizeof cmdp);
    char *text = args_text(j);
    if (!text || write_small(cmdp, text) < 0) {
        free(text);
        return -1;
    }
    free(text);
    snprintf(th, sizeof th, "%d", S->threads_each);
    const char *extra[10];
    int ne = 0;
    if (j->resume) {
        extra[ne++] = "--resume";
        extra[ne++] = j->dir;
    } else {
        extra[ne++] = "--out";
        extra[ne++] = j->dir;
        extra[ne++] = "--overwrite"; /* a start that never reached a checkpoint */
        if (*j->lr) {
            extra[ne++] = "--lr";
            extra[ne++] = j->lr;
        }
        if (!sweep_conf_get(j->c, "threads")) {
            extra[ne++] = "--threads";
            extra[ne++] = th;
        }
    }
    int nargv = 2 + (j->resume ? 0 : j->nargs) + ne;
    char **argv = calloc((size_t)nargv + 1, sizeof *argv);
    if (!argv)
        return -1;
    int k = 0;
    argv[k++] = "optimlab";
    argv[k++] = "train";
    for (int i = 0; !j->resume && i < j->nargs; i++)
        argv[k++] = j->args[i];
    for (int i = 0; i < ne; i++)
        argv[k++] = (char *)extra[i];
    argv[k] = NULL;
    pid_t pid = spawn(argv, logp);
    free(argv);
    return pid;
}

/* The lr-find command of a run (words borrowed from j and S; free the array):
 * its options but the distributed ones (lr-find has none), then the grid's
 * lr-find options; --out and --threads when given. */
static char **lrfind_argv(sweep *S, sweep_job *j, char *outp, char *threads)
{
    cli_values dv, tv;
    const cli_opt *const dist[] = {cli_dist_opts, NULL};
    cli_init(&dv, dist);
    cli_init(&tv, cli_train_tables);
    char **argv = calloc((size_t)(j->nargs + S->nlrf + 12), sizeof *argv);
    if (argv) {
        int k = 0;
        argv[k++] = "optimlab";
        argv[k++] = "lr-find";
        argv[k++] = "--mode";
        argv[k++] = "sweep";
        for (int i = 0; i < j->nargs; i++) {
            int t = cli_find(&tv, j->args[i] + 2), pair = t >= 0 && tv.opts[t]->kind != CLI_FLAG;
            if (cli_find(&dv, j->args[i] + 2) < 0) {
                argv[k++] = j->args[i];
                if (pair)
                    argv[k++] = j->args[i + 1];
            }
            i += pair;
        }
        for (int i = 0; i < S->nlrf; i++)
            argv[k++] = S->lrf[i];
        if (outp) {
            argv[k++] = "--out";
            argv[k++] = outp;
        }
        if (threads && !sweep_conf_get(j->c, "threads")) {
            argv[k++] = "--threads";
            argv[k++] = threads;
        }
        argv[k] = NULL;
    }
    cli_free(&dv);
    cli_free(&tv);
    return argv;
}

static pid_t launch_lrfind(sweep *S, sweep_job *j)
{
    char logp[4600], outp[4600], th[32];
    log_path(S, j, "lrfind.log", logp, sizeof logp);
    log_path(S, j, "lrfind", outp, sizeof outp);
    snprintf(th, sizeof th, "%d", S->threads_each);
    char **argv = lrfind_argv(S, j, outp, th);
    pid_t pid = argv ? spawn(argv, logp) : -1;
    free(argv);
    return pid;
}

/* Run argv (optimlab's own binary) in its own process group, output appended to logp. */
static pid_t spawn(char **argv, const char *logp)
{
    int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0); /* Ctrl-C reaches the sweep, which stops the runs once, cleanly */
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGUSR1, SIG_DFL);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    close(fd);
    return pid;
}

static void fmt_dur(double s, char *b, size_t cap)
{
    long t = s > 0 && s < 1e8 ? lround(s) : 0;
    if (t >= 3600)
        snprintf(b, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(b, cap, "%ld:%02ld", t / 60, t % 60);
}

/* OUT/logs made with its parents (create), or only checked for what would stop that. */
static int logs_dir(sweep *S, const char *logs, int create)
{
    ol_ctx *ctx = ol_ctx_new(1);
    int rc = !ctx ? -1
             : create ? cli_mkdir_p(ctx, logs, S->err, sizeof S->err)
                      : cli_mkdir_p_check(ctx, logs, S->err, sizeof S->err);
    if (!ctx)
        snprintf(S->err, sizeof S->err, "out of memory");
    ol_ctx_free(ctx);
    return rc;
}

static void progress_line(sweep *S, double t0, int tty)
{
    double all = 0, done = 0, fresh = 0, fresh_total = 0; /* in samples: a large-batch step is worth more */
    int counts[J_COUNT] = {0};
    for (int i = 0; i < S->g.nconf; i++) {
        sweep_job *j = &S->jobs[i];
        if (j->state == J_RUNNING)
            run_progress(j->dir, &j->step);
        long long s = j->state == J_DONE || j->state == J_DIVERGED ? j->total : j->step < j->total ? j->step : j->total;
        all += j->batch * (double)j->total;
        done += j->batch * (double)s;
        if (j->state != J_DIVERGED) {
            fresh += j->batch * (double)(s - j->step0);
            fresh_total += j->batch * (double)(j->total - j->step0);
        }
        counts[j->state]++;
    }
    /* nothing left to run (all finished before, or just now): 0, not unknown */
    double el = ol_now() - t0, left = fresh_total - fresh;
    double eta = left <= 0 ? 0 : fresh > 0 ? el * left / fresh : NAN;
    char e1[32], e2[32] = "?";
    fmt_dur(el, e1, sizeof e1);
    if (isfinite(eta))
        fmt_dur(eta, e2, sizeof e2);
    printf("%ssweep: %5.1f%% of the samples, runs: %d finished, %d running, %d to go%s%s, elapsed %s, eta %s%s",
           tty ? "\r\033[K" : "", all > 0 ? 100.0 * done / all : 100.0, counts[J_DONE], counts[J_RUNNING] + counts[J_LRFIND],
           counts[J_TODO], counts[J_FAILED] ? ", some failed" : "", counts[J_DIVERGED] ? ", some diverged" : "", e1, e2,
           tty ? "" : "\n");
    fflush(stdout);
}

static void reaped(sweep *S, sweep_job *j, int wst, int tty)
{
    int code = WIFEXITED(wst) ? WEXITSTATUS(wst) : 128 + (WIFSIGNALED(wst) ? WTERMSIG(wst) : 0);
    char path[4600], buf[16];
    log_path(S, j, "status", path, sizeof path);
    snprintf(buf, sizeof buf, "%d\n", code);
    write_small(path, buf);
    j->state = code == 0 ? J_DONE : code == OL_EXIT_DIVERGED ? J_DIVERGED : code == OL_EXIT_STOPPED ? J_STOPPED : J_FAILED;
    j->pid = 0;
    if (j->state == J_FAILED && WIFSIGNALED(wst) && !sweep_stop && j->retried < S->retries) {
        /* died, not failed: its newest checkpoint (or a fresh start) carries on */
        j->retried++;
        j->resume = run_has_checkpoint(j->dir);
        j->state = J_TODO;
        log_path(S, j, "log", path, sizeof path);
        printf("%s%s: killed by signal %d (see %s); %s (retry %d of %d)\n", tty ? "\r\033[K" : "", j->c->name,
               WTERMSIG(wst), path, j->resume ? "resuming from its newest checkpoint" : "starting again", j->retried,
               S->retries);
        return;
    }
    const char *what = code == 0 ? "finished" : code == OL_EXIT_DIVERGED ? "diverged" : code == OL_EXIT_STOPPED ? "stopped (checkpoint written)" : "failed";
    log_path(S, j, "log", path, sizeof path);
    printf("%s%s: %s", tty ? "\r\033[K" : "", j->c->name, what);
    if (code != 0 && code != OL_EXIT_STOPPED)
        printf(" (exit status %d; see %s)", code, path);
    printf("\n");
}

/* An lr-find ended: its best lr becomes the run's (OUT/logs/NAME.lr), or the run fails. */
static void lrfind_done(sweep *S, sweep_job *j, int wst, int tty)
{
    char path[4600], *log;
    log_path(S, j, "lrfind.log", path, sizeof path);
    log = WIFEXITED(wst) && WEXITSTATUS(wst) == 0 ? read_small(path) : NULL;
    const char *best = log ? strstr(log, "\nbest lr: ") : NULL;
    double lr = best ? atof(best + 10) : 0.0;
    j->pid = 0;
    if (lr > 0 && isfinite(lr)) {
        snprintf(j->lr, sizeof j->lr, "%.3g", lr);
        char lrp[4600], text[80];
        log_path(S, j, "lr", lrp, sizeof lrp);
        snprintf(text, sizeof text, "%s\n", j->lr);
        write_small(lrp, text);
        j->state = J_TODO;
        static const char note[] = "\nnote: the best lr is the "; /* lr-find's line on a best at an edge */
        const char *edge = strstr(best, note);
        printf("%s%s: lr-find chose lr %s%s\n", tty ? "\r\033[K" : "", j->c->name, j->lr,
               !edge ? "" : strncmp(edge + sizeof note - 1, "largest", 7) == 0 ? " (the largest candidate: a larger lr may be better)"
                                                                  : " (the smallest candidate: a smaller lr may be better)");
    } else {
        j->state = sweep_stop ? J_STOPPED : J_FAILED;
        printf("%s%s: lr-find %s (see %s)\n", tty ? "\r\033[K" : "", j->c->name,
               sweep_stop ? "stopped" : best ? "found no lr: every candidate diverged" : "failed", path);
    }
    free(log);
}

static int run_all(sweep *S, int jobs)
{
    const int tty = isatty(STDOUT_FILENO);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    const double t0 = ol_now();
    double last = 0;
    int running = 0, forwarded = 0, rc = OL_EXIT_OK;
    for (;;) {
        if (sweep_stop && !forwarded) {
            for (int i = 0; i < S->g.nconf; i++)
                if (S->jobs[i].state == J_RUNNING || S->jobs[i].state == J_LRFIND)
                    kill(S->jobs[i].pid, SIGTERM);
            forwarded = 1;
        }
        int todo = 0;
        for (int i = 0; i < S->g.nconf; i++) {
            sweep_job *j = &S->jobs[i];
            if (j->state != J_TODO)
                continue;
            if (sweep_stop || running >= jobs) {
                todo++;
                continue;
            }
            const int lrfind = j->need_lr && !j->resume && !*j->lr;
            if ((j->pid = lrfind ? launch_lrfind(S, j) : launch(S, j)) < 0) {
                fprintf(stderr, "optimlab: cannot start run %s: %s\n", j->c->name, strerror(errno));
                j->state = J_FAILED;
                continue;
            }
            if (!tty)
                printf("%s: %s\n", j->c->name, lrfind ? "lr-find" : j->resume ? "resuming" : "starting");
            j->state = lrfind ? J_LRFIND : J_RUNNING;
            running++;
        }
        int wst;
        pid_t pid;
        while ((pid = waitpid(-1, &wst, WNOHANG)) > 0)
            for (int i = 0; i < S->g.nconf; i++)
                if ((S->jobs[i].state == J_RUNNING || S->jobs[i].state == J_LRFIND) && S->jobs[i].pid == pid) {
                    if (S->jobs[i].state == J_LRFIND)
                        lrfind_done(S, &S->jobs[i], wst, tty);
                    else
                        reaped(S, &S->jobs[i], wst, tty);
                    running--;
                    todo += S->jobs[i].state == J_TODO;
                }
        if (running == 0 && (sweep_stop || todo == 0))
            break;
        double now = ol_now();
        if (now - last >= (tty ? 1.0 : 30.0)) {
            progress_line(S, t0, tty);
            last = now;
        }
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    progress_line(S, t0, 0);
    for (int i = 0; i < S->g.nconf; i++) {
        if (S->jobs[i].state == J_FAILED)
            rc = OL_EXIT_FAIL;
        if (rc == OL_EXIT_OK && (S->jobs[i].state == J_STOPPED || S->jobs[i].state == J_TODO))
            rc = OL_EXIT_STOPPED;
    }
    return sweep_stop ? OL_EXIT_STOPPED : rc;
}

static int final_report(sweep *S)
{
    const char **dirs = calloc((size_t)S->g.nconf + 1, sizeof *dirs);
    int n = 0;
    if (!dirs)
        return OL_EXIT_FAIL;
    for (int i = 0; i < S->g.nconf; i++) {
        char p[4500];
        struct stat st;
        snprintf(p, sizeof p, "%s/config.json", S->jobs[i].dir);
        if (stat(p, &st) == 0)
            dirs[n++] = S->jobs[i].dir;
    }
    char out[4200];
    snprintf(out, sizeof out, "%s/report", S->g.out);
    int rc = n ? report_write(dirs, n, *S->g.group_by ? S->g.group_by : NULL, out) : OL_EXIT_OK;
    free(dirs);
    return rc;
}

static int sweep_main(sweep *S, cli_values *v, const char *grid_path, char **sets, int nsets)
{
    long long jobs, threads;
    long long retries;
    if (cli_int(v, "jobs", 1, 1024, &jobs) || cli_int(v, "threads", 0, 4096, &threads) ||
        cli_int(v, "retries", 0, 1000, &retries))
        return cli_fail(OL_EXIT_USAGE, v->err);
    S->retries = (int)retries;
    if (sweep_grid_load(grid_path, &S->g, S->err, sizeof S->err) < 0)
        return cli_fail(OL_EXIT_USAGE, S->err);
    for (int i = 0; i < nsets; i++)
        if (sweep_grid_set(&S->g, sets[i], S->err, sizeof S->err) < 0)
            return cli_fail(OL_EXIT_USAGE, S->err);
    if (*cli_str(v, "out"))
        snprintf(S->g.out, sizeof S->g.out, "%s", cli_str(v, "out"));
    if (threads == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cpus > 0 ? cpus : 1;
    }
    S->threads_each = (int)(threads / jobs > 0 ? threads / jobs : 1);
    if (!(S->jobs = calloc((size_t)S->g.nconf, sizeof *S->jobs)))
        return cli_fail(OL_EXIT_FAIL, "out of memory");
    cli_values tv;
    cli_init(&tv, cli_train_tables);
    int bad = 0;
    for (int i = 0; i < S->g.nconf && !bad; i++) {
        sweep_job *j = &S->jobs[i];
        j->c = &S->g.conf[i];
        snprintf(j->dir, sizeof j->dir, "%s/%s", S->g.out, j->c->name);
        j->need_lr = S->g.lr_find && !sweep_conf_get(j->c, "lr");
        bad = build_args(S, j, &tv) < 0 || check_conf(S, j) < 0;
    }
    if (!bad && S->g.lr_find)
        bad = lrfind_args(S) < 0;
    cli_free(&tv);
    if (bad) {
        char msg[1600];
        snprintf(msg, sizeof msg, "%s: %s", grid_path, *S->err ? S->err : "out of memory");
        return cli_fail(OL_EXIT_USAGE, msg);
    }
    char logs[4200];
    snprintf(logs, sizeof logs, "%s/logs", S->g.out);
    const int dry = cli_flag(v, "dry-run");
    if (dry) {
        if (logs_dir(S, logs, 0) < 0) /* a dry run answers as the run would, creating nothing */
            return cli_fail(OL_EXIT_FAIL, S->err);
        printf("%d configurations into %s/:\n", S->g.nconf, S->g.out);
        if (classify(S, 1) < 0)
            return cli_fail(OL_EXIT_USAGE, S->err);
        for (int i = 0; i < S->g.nconf; i++) {
            printf("optimlab train ");
            for (int a = 0; a < S->jobs[i].nargs; a++) {
                sh_word(stdout, S->jobs[i].args[a]);
                putchar(' ');
            }
            printf("--out ");
            sh_word(stdout, S->jobs[i].dir);
            printf("\n");
        }
        return OL_EXIT_OK;
    }
    if (logs_dir(S, logs, 1) < 0)
        return cli_fail(OL_EXIT_FAIL, S->err);
    if (cli_flag(v, "slurm")) {
        int rc = write_slurm(S, grid_path);
        return rc ? cli_fail(rc, S->err) : rc;
    }
    /* one sweep per directory: a second would start the same runs' finders and trains */
    int lock_status;
    if (run_lock(S->g.out, "logs/.lock", "sweep directory", "another optimlab sweep is running in it", &lock_status,
                 S->err, sizeof S->err) < 0) {
        if (!lock_status) /* logs/ was made above: removed since */
            snprintf(S->err, sizeof S->err, "%.1000s/logs: no such directory", S->g.out);
        return cli_fail(lock_status ? lock_status : OL_EXIT_FAIL, S->err);
    }
    if (classify(S, 0) < 0)
        return cli_fail(OL_EXIT_USAGE, S->err);
    int skipped = 0;
    for (int i = 0; i < S->g.nconf; i++)
        skipped += S->jobs[i].state != J_TODO;
    printf("sweep: %d configurations into %s/ (%d finished or diverged before: skipped), %lld at once, %d threads "
           "each\n",
           S->g.nconf, S->g.out, skipped, jobs, S->threads_each);
    int rc = run_all(S, (int)jobs);
    if (!cli_flag(v, "no-report") && rc != OL_EXIT_STOPPED) {
        int r2 = final_report(S);
        if (rc == OL_EXIT_OK)
            rc = r2;
    }
    return rc;
}

int cmd_sweep(int argc, char **argv)
{
    const cli_opt *const tables[] = {sweep_opts, NULL};
    cli_values v;
    cli_init(&v, tables);
    /* the grid file may come before or after the options */
    char **opts = calloc((size_t)argc + 1, sizeof *opts), **sets = calloc((size_t)argc + 1, sizeof *sets);
    const char *grid = NULL;
    int no = 0, help = 0, rc, extra = 0, nsets = 0;
    if (!opts || !sets) {
        free(opts);
        free(sets);
        cli_free(&v);
        return cli_fail(OL_EXIT_FAIL, "out of memory");
    }
    opts[no++] = argv[0];
    opts[no++] = argv[1];
    for (int i = 2; i < argc; i++) {
        /* --set's values are kept apart, one each: a value may hold commas (betas: 0.9,0.95) */
        if (!strcmp(argv[i], "--set") && i + 1 < argc)
            sets[nsets++] = argv[++i];
        else if (!strncmp(argv[i], "--set=", 6))
            sets[nsets++] = argv[i] + 6;
        else if (argv[i][0] == '-' && argv[i][1]) {
            opts[no++] = argv[i];
            int k = strncmp(argv[i], "--", 2) == 0 && !strchr(argv[i], '=') ? cli_find(&v, argv[i] + 2) : -1;
            if (k >= 0 && v.opts[k]->kind != CLI_FLAG && i + 1 < argc)
                opts[no++] = argv[++i];
        } else if (!grid)
            grid = argv[i];
        else
            extra = i;
    }
    sweep S;
    memset(&S, 0, sizeof S);
    if (cli_parse(&v, no, opts, 2, &help) != 0)
        rc = cli_fail(OL_EXIT_USAGE, v.err);
    else if (help) {
        cli_print_help(stdout, &v, sweep_usage);
        rc = OL_EXIT_OK;
    } else if (!grid)
        rc = cli_fail(OL_EXIT_USAGE, "sweep: no grid file given (see optimlab sweep --help)");
    else if (extra) {
        snprintf(S.err, sizeof S.err, "sweep: one grid file at a time (got '%.500s' too)", argv[extra]);
        rc = cli_fail(OL_EXIT_USAGE, S.err);
    } else if (cli_flag(&v, "dry-run") && cli_flag(&v, "slurm"))
        rc = cli_fail(OL_EXIT_USAGE, "sweep: --dry-run and --slurm exclude each other");
    else
        rc = sweep_main(&S, &v, grid, sets, nsets);
    for (int i = 0; S.jobs && i < S.g.nconf; i++) {
        for (int a = 0; a < S.jobs[i].nargs; a++)
            free(S.jobs[i].args[a]);
        free(S.jobs[i].args);
    }
    free(S.jobs);
    for (int i = 0; i < S.nlrf; i++)
        free(S.lrf[i]);
    free(S.lrf);
    sweep_grid_free(&S.g);
    free(opts);
    free(sets);
    cli_free(&v);
    return rc;
}
