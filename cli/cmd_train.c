/* optimlab train */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <jansson.h>
#include <pthread.h>
#include <time.h>
#include <signal.h>
#include <unistd.h>

#include "common.h"
#include "runs.h"

const cli_opt cli_train_opts[] = {
    {"epochs", CLI_VALUE, "5", "E", "Training", "epochs to train"},
    {"steps", CLI_VALUE, "0", "N", "Training", "stop after N optimizer steps (0 = no limit)"},
    {"batch-size", CLI_VALUE, "128", "B", "Training", "batch size"},
    {"eval-batch-size", CLI_VALUE, "0", "B", "Training", "evaluation batch size (0 = batch size)"},
    {"evals-per-epoch", CLI_VALUE, "1", "K", "Training", "evaluate on the test set K times per epoch"},
    {"label-smoothing", CLI_VALUE, "0", "EPS", "Training", "label smoothing of the cross-entropy loss"},
    {"drop-last", CLI_FLAG, "0", NULL, "Training", "skip the final partial batch of each epoch"},
    {"freeze-bn", CLI_FLAG, "0", NULL, "Training",
     "BatchNorm uses and keeps its running statistics while training (fine-tuning; exact data-parallel equivalence)"},
    {"snapshot-ensemble", CLI_VALUE, "0", "M", "Training",
     "save the weights at the end of each lr cycle (warm restarts, cyclic) and report the test accuracy of the "
     "ensemble of the last M snapshots (averaged softmax)"},
    {"bn-recompute-batches", CLI_VALUE, "50", "N", "Training",
     "Schedule-Free: training batches used to recompute BatchNorm statistics at x before evaluation"},
    {"out", CLI_VALUE, "runs/latest", "DIR", "Output",
     "run directory: metrics.jsonl, config.json, checkpoints ckpt-<step>.safetensors"},
    {"checkpoint-every", CLI_VALUE, "1e", "N|Ne", "Checkpoints",
     "write a checkpoint every N steps, or every N epochs with a trailing e (0 = only at the end)"},
    {"keep-last", CLI_VALUE, "3", "K", "Checkpoints", "keep the newest K checkpoints (0 = all)"},
    {"overwrite", CLI_FLAG, "0", NULL, "Output",
     "replace the run in a non-empty --out directory (its checkpoints, snapshots, metrics and config)"},
    {"resume", CLI_VALUE, "", "DIR", "Checkpoints",
     "continue the run in DIR from its newest valid checkpoint, with its configuration (flags given here override)"},
    {"init-from", CLI_VALUE, "", "FILE", "Checkpoints",
     "start from the weights in a safetensors file (optimlab export, or a PyTorch state_dict)"},
    {"time-limit", CLI_VALUE, "", "HH:MM:SS", "Checkpoints",
     "checkpoint and stop (exit status 4) before this much wall time has passed"},
    {"stop-after", CLI_VALUE, "0", "N", "Checkpoints",
     "simulate a preemption: checkpoint and stop (exit status 4) after N steps, the schedule unchanged"},
    {"max-bad-steps", CLI_VALUE, "0", "K", "Checkpoints",
     "skip steps with a non-finite loss or gradient; stop after more than K in a row"},
    {"skip-loss-spikes", CLI_VALUE, "0", "Z", "Checkpoints",
     "also skip steps whose loss is Z standard deviations above the recent mean (0 = off)"},
    {"divergence-factor", CLI_VALUE, "10", "K", "Checkpoints",
     "stop (exit status 3) when the mean loss of the last 16 steps exceeds K times the larger of the lowest loss so far "
     "and ln(classes) (0 = off)"},
    {"log-every", CLI_VALUE, "50", "N", "Output", "steps between step records in metrics.jsonl and plain output"},
    {"quiet", CLI_FLAG, "0", NULL, "Output", "print only the final summary"},
    {"gns", CLI_FLAG, "0", NULL, "Diagnostics",
     "log the gradient noise scale B_simple (McCandlish et al. 2018) from the micro-batches (--micro-batch-size) or "
     "the per-rank gradients; the summary prints the critical batch size it suggests"},
    {"gns-smoothing", CLI_VALUE, "0.99", "BETA", "Diagnostics",
     "--gns: decay per step of the moving averages of |G|^2 and tr(Sigma)"},
    {"log-layer-stats", CLI_VALUE, "0", "N", "Diagnostics",
     "every N steps a \"layers\" record in metrics.jsonl: per-tensor gradient norm, weight norm and update/weight "
     "ratio (0 = off)"},
    {NULL, 0, NULL, NULL, NULL, NULL}};

/* Length, batch, evaluation and loss of the run. */
static int parse_train_shape(cli_values *v, ol_train_params *tp)
{
    long long x;
    double d;
    if (cli_int(v, "epochs", 0, 1000000, &x))
        return -1;
    tp->epochs = (int)x;
    if (cli_int(v, "steps", 0, INT64_MAX / 2, &x))
        return -1;
    tp->max_steps = x;
    if (tp->epochs == 0 && tp->max_steps == 0) {
        snprintf(v->err, sizeof v->err, "--epochs and --steps are both 0: nothing to train");
        return -1;
    }
    if (cli_batch_tokens(v) || cli_int(v, "batch-size", 1, 1 << 20, &x))
        return -1;
    tp->batch_size = (int)x;
    if (cli_int(v, "eval-batch-size", 0, 1 << 20, &x))
        return -1;
    tp->eval_batch_size = (int)x;
    if (cli_int(v, "evals-per-epoch", 1, 10000, &x))
        return -1;
    tp->evals_per_epoch = (int)x;
    if (cli_double(v, "label-smoothing", 0.0, 0.999, &d))
        return -1;
    tp->label_smoothing = (float)d;
    if (cli_double(v, "clip-grad-norm", 0.0, 1e12, &tp->clip_grad_norm))
        return -1;
    tp->drop_last = cli_flag(v, "drop-last");
    tp->freeze_bn = cli_flag(v, "freeze-bn");
    if (cli_int(v, "snapshot-ensemble", 0, 1000, &x))
        return -1;
    tp->snapshot_ensemble = (int)x;
    if (cli_int(v, "bn-recompute-batches", 1, 1000000, &x))
        return -1;
    tp->bn_recompute_batches = (int)x;
    return 0;
}

/* Logging, diagnostics, seed and prefetch. */
static int parse_train_logging(cli_values *v, ol_train_params *tp)
{
    long long x;
    if (cli_int(v, "log-every", 1, 1000000000, &x))
        return -1;
    tp->log_every = (int)x;
    tp->gns = cli_flag(v, "gns");
    if (cli_double(v, "gns-smoothing", 0.0, 0.999999, &tp->gns_smoothing))
        return -1;
    if (cli_given(v, "gns-smoothing") && !tp->gns) {
        snprintf(v->err, sizeof v->err, "--gns-smoothing applies only with --gns");
        return -1;
    }
    if (cli_int(v, "log-layer-stats", 0, 1000000000, &x))
        return -1;
    tp->log_layer_stats = (int)x;
    if (cli_int(v, "seed", 0, INT64_MAX, &x))
        return -1;
    tp->seed = (uint64_t)x;
    tp->prefetch = !cli_flag(v, "no-prefetch");
    return 0;
}

/* --time-limit: HH:MM:SS, MM:SS or seconds; empty: none. */
static int parse_time_limit(cli_values *v, ol_train_params *tp)
{
    const char *tl = cli_str(v, "time-limit");
    if (!*tl)
        return 0;
    int part[3] = {0, 0, 0}, n = 0;
    const char *p = tl;
    for (;;) {
        char *stop;
        long val = strtol(p, &stop, 10);
        if (stop == p || val < 0 || val > 1000000 || n == 3) {
            n = -1;
            break;
        }
        part[n++] = (int)val;
        if (*stop == '\0')
            break;
        if (*stop != ':') {
            n = -1;
            break;
        }
        p = stop + 1;
    }
    double secs = n == 3 ? 3600.0 * part[0] + 60.0 * part[1] + part[2]
                  : n == 2 ? 60.0 * part[0] + part[1]
                  : n == 1 ? (double)part[0]
                           : -1.0;
    if (!(secs > 0) || (n >= 2 && part[n - 1] >= 60) || (n == 3 && part[1] >= 60)) {
        snprintf(v->err, sizeof v->err, "--time-limit: expected HH:MM:SS, MM:SS or seconds, got '%s'", tl);
        return -1;
    }
    tp->time_limit = secs;
    return 0;
}

/* Checkpoints (--checkpoint-every N steps or Ne epochs, --keep-last) and the
 * rules that stop a run: --stop-after, bad steps, divergence, --time-limit. */
static int parse_train_checkpoints(cli_values *v, ol_train_params *tp)
{
    long long x;
    const char *ce = cli_str(v, "checkpoint-every");
    char *end;
    errno = 0;
    long long every = strtoll(ce, &end, 10);
    const int epochs_unit = *end != '\0';
    if (!*ce || end == ce || errno == ERANGE || every < 0 || every > (epochs_unit ? 1000000LL : INT64_MAX / 2) ||
        (*end && strcmp(end, "e") != 0 && strcmp(end, "epoch") != 0 && strcmp(end, "epochs") != 0)) {
        snprintf(v->err, sizeof v->err,
                 "--checkpoint-every: expected N (steps, at most 2^62) or Ne (epochs, at most 1000000), got '%.200s'", ce);
        return -1;
    }
    if (*end)
        tp->checkpoint_every_epochs = (int)every;
    else
        tp->checkpoint_every_steps = every;
    if (cli_int(v, "keep-last", 0, 1000000, &x))
        return -1;
    tp->keep_last = (int)x;
    if (cli_int(v, "stop-after", 0, INT64_MAX / 2, &x))
        return -1;
    tp->stop_after_steps = x;
    if (cli_int(v, "max-bad-steps", 0, 1000000, &x))
        return -1;
    tp->max_bad_steps = (int)x;
    if (cli_double(v, "skip-loss-spikes", 0.0, 1e6, &tp->spike_zscore))
        return -1;
    if (cli_double(v, "divergence-factor", 0.0, 1e12, &tp->divergence_factor))
        return -1;
    return parse_time_limit(v, tp);
}

/* --augment (auto: crop,flip for cifar10, else none) and --crop-pad. */
static int parse_augment(cli_values *v, ol_train_params *tp)
{
    long long x;
    const char *aug = cli_str(v, "augment");
    const char *ds = cli_str(v, "dataset");
    if (strcmp(aug, "auto") == 0)
        aug = strcmp(ds, "cifar10") == 0 ? "crop,flip" : "none";
    if (strcmp(aug, "none") != 0) {
        char buf[64];
        snprintf(buf, sizeof buf, "%s", aug);
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
            if (strcmp(tok, "crop") == 0) {
                if (cli_int(v, "crop-pad", 1, 64, &x))
                    return -1;
                tp->aug.crop_pad = (int)x;
            } else if (strcmp(tok, "flip") == 0) {
                tp->aug.hflip = 1;
            } else {
                snprintf(v->err, sizeof v->err, "--augment: unknown augmentation '%s' (none, crop, flip)", tok);
                return -1;
            }
        }
    }
    if (cli_given(v, "crop-pad") && !tp->aug.crop_pad) {
        snprintf(v->err, sizeof v->err, "--crop-pad applies only with --augment crop (here: %s)", aug);
        return -1;
    }
    return 0;
}

int cli_build_train(cli_values *v, ol_train_params *tp)
{
    *tp = ol_train_default_params();
    if (parse_train_shape(v, tp) || parse_train_logging(v, tp) || parse_train_checkpoints(v, tp) ||
        parse_augment(v, tp))
        return -1;
    return 0;
}

/* ---- progress output ---------------------------------------------------- */

typedef struct {
    int tty, quiet, log_every;
    double last_draw;
    int has_val;
    int per; /* a language model's tokens per sample (throughput in tokens/s), else 0 */
} progress;

static void fmt_time(double s, char *buf, size_t cap)
{
    if (!(s >= 0) || s > 1e7)
        s = 0;
    int t = (int)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, cap, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, cap, "%d:%02d", t / 60, t % 60);
}

static void on_step(void *user, const ol_step_info *s)
{
    progress *p = user;
    if (p->quiet)
        return;
    double frac = s->total_steps > 0 ? (double)s->step / (double)s->total_steps : 0.0;
    double eta = frac > 0 ? s->elapsed * (1.0 - frac) / frac : 0.0;
    char el[32], et[32];
    fmt_time(s->elapsed, el, sizeof el);
    fmt_time(eta, et, sizeof et);
    if (p->tty) {
        if (s->elapsed - p->last_draw < 0.1 && s->step != s->total_steps)
            return;
        p->last_draw = s->elapsed;
        int width = 24, fill = (int)(frac * width + 0.5);
        char bar[32];
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
        bar[width] = '\0';
        printf("\r\033[Kepoch %6.2f [%s] %5.1f%% step %lld/%lld  loss %.4f  acc %5.1f%%  lr %.3g  %5.0f %s  %s<%s",
               s->epoch, bar, 100.0 * frac, (long long)s->step, (long long)s->total_steps, s->loss, 100.0 * s->acc,
               s->lr, s->samples_per_s * (p->per ? p->per : 1), p->per ? "tok/s" : "img/s", el, et);
        fflush(stdout);
    } else if (s->step % p->log_every == 0 || s->step == s->total_steps) {
        printf("step %lld/%lld  epoch %.2f  loss %.4f  acc %.1f%%  lr %.4g  grad-norm %.3g  %.0f %s  elapsed %s  "
               "eta %s\n",
               (long long)s->step, (long long)s->total_steps, s->epoch, s->loss, 100.0 * s->acc, s->lr, s->grad_norm,
               s->samples_per_s * (p->per ? p->per : 1), p->per ? "tokens/s" : "img/s", el, et);
        fflush(stdout);
    }
}

static void on_eval(void *user, const ol_eval_info *e)
{
    progress *p = user;
    if (p->quiet)
        return;
    char el[32];
    fmt_time(e->elapsed, el, sizeof el);
    if (p->per) /* language model: validation loss, perplexity, bits per token */
        printf("%sepoch %.2f  train loss %.4f  val loss %.4f ppl %.2f bits/token %.3f  acc %.2f%%  [%s]\n",
               p->tty ? "\r\033[K" : "", e->epoch, e->train_loss, e->test_loss, exp(e->test_loss),
               e->test_loss / log(2.0), 100.0 * e->test_acc, el);
    else
        printf("%sepoch %.2f  train loss %.4f acc %.2f%%  %s loss %.4f acc %.2f%%  [%s]\n", p->tty ? "\r\033[K" : "",
               e->epoch, e->train_loss, 100.0 * e->train_acc, p->has_val ? "val" : "test", e->test_loss,
               100.0 * e->test_acc, el);
    fflush(stdout);
}

static int write_config(ol_ctx *ctx, const char *json, const char *dir, char *err, size_t cap)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    return cli_write_file(ctx, path, json, strlen(json), err, cap);
}

/* The one piece of process state a signal handler may touch. */
static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig)
{
    stop_requested = 1;
    signal(sig, SIG_DFL); /* a second signal ends the process at once */
}

/* The one thread that takes the stop signals: it only waits for them. */
static void *signal_thread(void *arg)
{
    pthread_sigmask(SIG_UNBLOCK, (const sigset_t *)arg, NULL);
    for (;;)
        pause();
    return NULL;
}

/* The stop signals set stop_requested. They are blocked in this thread, and so
 * in every thread created after it (OpenMP's, the data prefetcher's), and taken
 * by a thread that only waits: oneDNN's JIT GEMM kernels (Debian's 2.6; fixed
 * upstream in 3.12, oneDNN issue 4845) point rsp into the heap while they run,
 * so a signal handled on a thread running one wrote its frame over the heap
 * and the run later aborted in malloc instead of checkpointing (tests/
 * scripts/test_sigterm.sh). Call it before anything starts a thread. */
static void install_handlers(void)
{
    static sigset_t set;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL); /* SLURM --signal=USR1@... */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    pthread_attr_t attr;
    pthread_t th;
    if (pthread_attr_init(&attr) != 0)
        return; /* the handler alone: signals reach any thread, as before */
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (pthread_create(&th, &attr, signal_thread, &set) != 0)
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    pthread_attr_destroy(&attr);
}

/* --resume DIR: the newest valid checkpoint, and its configuration for every
 * option not given on the command line. */
/* 1 when the JSON array a holds the string key. */
static int listed(const json_t *a, const char *key)
{
    for (size_t i = 0; i < json_array_size(a); i++) {
        const char *s = json_string_value(json_array_get(a, i));
        if (s && strcmp(s, key) == 0)
            return 1;
    }
    return 0;
}

/* A stored option of the schedule (or batch schedule) that the command line
 * replaces on resume belongs to the old one: it is not carried over (the new
 * schedule would reject it as not applying). */
static int belongs_to_replaced(const cli_values *v, const json_t *stored, const char *key)
{
    static const char *const kinds[2] = {"schedule", "batch-schedule"};
    const cli_opt *const tables[2] = {cli_sched_opts, cli_batch_opts};
    for (int k = 0; k < 2; k++) {
        const char *old = json_string_value(json_object_get(stored, kinds[k]));
        int i = cli_find(v, kinds[k]);
        if (!old || i < 0 || v->set[i] != 1 || strcmp(old, cli_str(v, kinds[k])) == 0)
            continue;
        int mine = k == 0 && cli_is_sched_option(key);
        for (const cli_opt *o = tables[k]; o->name && !mine; o++)
            mine = strcmp(o->name, key) == 0;
        if (mine)
                return strncmp(key, "warmup", 6) != 0 && strcmp(key, "per-epoch") != 0 &&
                       strncmp(key, "lr-scaling", 10) != 0 && strcmp(key, "base-batch-size") != 0 &&
                       strcmp(key, "micro-batch-size") != 0;
    }
    return 0;
}

static int apply_resume(ol_ctx *ctx, cli_values *v, char *ckpt, size_t cap, char *err, size_t ecap)
{
    const char *dir = cli_str(v, "resume");
    if (ol_checkpoint_latest(ctx, dir, ckpt, cap) < 0) {
        snprintf(err, ecap, "--resume: %s", ol_ctx_errmsg(ctx));
        return -1;
    }
    char *cfg = NULL;
    if (ol_checkpoint_read_config(ctx, ckpt, &cfg) < 0) {
        snprintf(err, ecap, "--resume: %s", ol_ctx_errmsg(ctx));
        return -1;
    }
    json_error_t je;
    json_t *o = json_loads(cfg, 0, &je);
    free(cfg);
    if (!json_is_object(o)) {
        json_decref(o);
        snprintf(err, ecap, "--resume: %.900s: unreadable configuration", ckpt);
        return -1;
    }
    /* what cannot change on resume: the directory, the starting weights, the data */
    int iout = cli_find(v, "out"), iinit = cli_find(v, "init-from"), ids = cli_find(v, "dataset");
    const char *stored_ds = json_string_value(json_object_get(o, "dataset"));
    struct stat so, sd;
    const int same_out = strcmp(cli_str(v, "out"), dir) == 0 ||
                         (stat(cli_str(v, "out"), &so) == 0 && stat(dir, &sd) == 0 && so.st_dev == sd.st_dev &&
                          so.st_ino == sd.st_ino);
    const char *bad = iout >= 0 && v->set[iout] == 1 && !same_out ? "--out"
                      : iinit >= 0 && v->set[iinit] == 1                                   ? "--init-from"
                      : ids >= 0 && v->set[ids] == 1 && stored_ds && strcmp(stored_ds, cli_str(v, "dataset")) != 0
                          ? "--dataset"
                          : NULL;
    if (bad) {
        json_decref(o);
        snprintf(err, ecap,
                 "--resume continues the run in %.600s as it was: %s cannot change on resume (options that may: the "
                 "number of epochs or steps, schedule and optimizer hyperparameters, checkpoint, output and thread "
                 "options)",
                 dir, bad);
        return -1;
    }
    const char *key;
    json_t *val;
    /* values config.json resolved from defaults stay defaults */
    json_t *resolved = json_object_get(o, "resolved");
    json_object_foreach(o, key, val)
    {
        if (listed(resolved, key) || strcmp(key, "resolved") == 0 || strcmp(key, "resume") == 0 || strcmp(key, "out") == 0 || strcmp(key, "config") == 0 ||
            strcmp(key, "recipe") == 0 || strcmp(key, "init-from") == 0 || strcmp(key, "stop-after") == 0 ||
            strcmp(key, "time-limit") == 0 || strcmp(key, "max-memory") == 0) /* limits of this job, not the run */
            continue;
        int i = cli_find(v, key);
        if (i < 0) {
            json_decref(o);
            snprintf(err, ecap, "--resume: %.700s: unknown option '%.100s' in the stored configuration", ckpt, key);
            return -1;
        }
        if (v->set[i] == 1 || belongs_to_replaced(v, o, key))
            continue; /* the command line wins */
        const char *sv = json_is_string(val) ? json_string_value(val) : json_is_true(val) ? "1" : "0";
        const char *def = v->opts[i]->def ? v->opts[i]->def : "";
        if (strcmp(sv, def) == 0)
            continue; /* a default stays a default (options that do not apply must stay unset) */
        cli_set(v, key, sv, 2);
    }
    json_decref(o);
    cli_set(v, "out", dir, 2);
    return 0;
}

static char *config_string(const cli_values *v)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    int bad = cli_write_json(v, f) != 0;
    if (fclose(f) != 0 || bad) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* ---- the run directory: one writer at a time -------------------------- */

/* Anything in dir besides the lock file (a missing dir is empty; one that
 * cannot be read fails later, when it is created). */
static int run_dir_nonempty(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *de;
    int any = 0;
    while (!any && (de = readdir(d)))
        any = strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 && strcmp(de->d_name, ".lock") != 0;
    closedir(d);
    return any;
}

/* --overwrite: remove the previous run's files, nothing else. */
static int clear_run_dir(const char *dir, char *err, size_t cap)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *de;
    char path[4096];
    int rc = 0;
    while ((de = readdir(d))) {
        const char *n = de->d_name;
        size_t len = strlen(n);
        int ours = strcmp(n, "metrics.jsonl") == 0 || strcmp(n, "config.json") == 0 ||
                   ((strncmp(n, "ckpt-", 5) == 0 || strncmp(n, "snapshot-", 9) == 0) &&
                    (strstr(n, ".safetensors.tmp.") || (len > 12 && strcmp(n + len - 12, ".safetensors") == 0)));
        snprintf(path, sizeof path, "%s/%s", dir, n);
        if (ours && unlink(path) != 0 && errno != ENOENT) {
            snprintf(err, cap, "--overwrite: cannot remove %.900s: %s", path, strerror(errno));
            rc = -1;
            break;
        }
    }
    closedir(d);
    return rc;
}

static const char *const train_usage =
    "usage: optimlab train [options]\n"
    "\n"
    "Train a model and evaluate it on the test set every epoch. Writes OUT/metrics.jsonl\n"
    "(one JSON object per logged step, evaluation and epoch, and a final summary) and\n"
    "OUT/config.json (every option's effective value).\n"
    "\n"
    "example: optimlab train --model resnet20 --dataset fashion-mnist --epochs 10 --batch-size 128 \\\n"
    "           --lr 0.1 --momentum 0.9 --nesterov --weight-decay 5e-4 --out runs/x";

/* Everything a train command builds, freed in one place. */
typedef struct {
    cli_values v;
    ol_ctx *ctx;
    ol_comm *comm;
    ol_model *m;
    ol_optim *opt;
    cli_data data;
    char *config;
    ol_sched_params sp;
    cli_batch_config bc;
    ol_model_params mp;
    ol_optim_params op;
    ol_train_params tp;
    ol_train_state resume_state;
    char ckpt[4096];
    int64_t total;
    int lock_fd; /* the run directory's lock, held to the end; -1: none */
    char err[1024];
} train_job;

#define JOB_FAIL(status, ...)                                                                                       \
    do {                                                                                                            \
        snprintf(j->err, sizeof j->err, __VA_ARGS__);                                                               \
        return (status);                                                                                            \
    } while (0)

/* Every split against the training set, which sizes the model: a smaller
 * test image would be read past its end, a larger one cut. */
static int check_splits(const cli_data *d, const char *dataset, char *err, size_t cap)
{
    const ol_dataset *tr = &d->train;
    /* a named image dataset has a known class count */
    if (strcmp(dataset, "synthetic") != 0 && !tr->tokens && tr->num_classes != 10) {
        snprintf(err, cap, "--dataset %s has 10 classes, but the training labels need %d", dataset, tr->num_classes);
        return -1;
    }
    const ol_dataset *other[2] = {&d->test, d->has_val ? &d->real_test : NULL};
    const char *names[2] = {d->has_val ? "validation" : "test", "test"};
    for (int i = 0; i < 2; i++) {
        const ol_dataset *o = other[i];
        if (!o || o->n == 0)
            continue;
        if (o->c != tr->c || o->h != tr->h || o->w != tr->w) {
            snprintf(err, cap, "%s images are %dx%dx%d but the training images (and the model) are %dx%dx%d", names[i],
                     o->c, o->h, o->w, tr->c, tr->h, tr->w);
            return -1;
        }
        if (o->num_classes > tr->num_classes) {
            snprintf(err, cap, "%s labels need %d classes but the training set (and the model) has %d", names[i],
                     o->num_classes, tr->num_classes);
            return -1;
        }
    }
    return 0;
}

/* The run's memory, estimated from the model's planned sizes before anything
 * is allocated: refused (exit 1, one line with the estimate) when it exceeds
 * --max-memory (by default the memory available). */
static int check_memory(train_job *j)
{
    ol_train_memory tm;
    int st = ol_train_memory_estimate(j->ctx, &j->tp, &j->mp, &j->op, &j->data.train, &j->data.test, &tm);
    if (st < 0)
        JOB_FAIL(cli_exit_for(st), "%s", ol_ctx_errmsg(j->ctx));
    char what[512];
    snprintf(what, sizeof what,
             "this run (%zu parameters, batch %lld: parameters and gradients %.3g GB, optimizer state %.3g GB, "
             "activations %.3g GB, data and batches %.3g GB, checkpoint %.3g GB)",
             tm.model.num_params, (long long)tm.batch, (double)(tm.model.params + tm.model.grads) / 1e9,
             (double)tm.optimizer / 1e9, (double)(tm.model.total - tm.model.params - tm.model.grads - tm.model.buffers) / 1e9, (double)(tm.data + tm.batches) / 1e9,
             (double)tm.checkpoint / 1e9);
    if (cli_check_memory(j->ctx, tm.total, what, j->err, sizeof j->err) < 0)
        return OL_EXIT_FAIL;
    return 0;
}

/* Parse-level checks and data, model, optimizer and checkpoint set-up. Returns
 * 0 or an exit status with the message in j->err; run on every rank. */
static int job_setup(train_job *j)
{
    cli_values *v = &j->v;
    ol_ctx *ctx = j->ctx;
    if (*cli_str(v, "resume")) { /* lock first: another writer may still be pruning */
        int st = 0;
        if (ol_comm_rank(j->comm) == 0 &&
            (j->lock_fd = run_lock(cli_str(v, "resume"), ".lock", "run directory", "another optimlab is writing it", &st, j->err, sizeof j->err)) < 0 && st)
            return st;
        if (apply_resume(ctx, v, j->ckpt, sizeof j->ckpt, j->err, sizeof j->err) < 0)
            return OL_EXIT_USAGE;
    }
    long long threads;
    ol_backend be;
    if (cli_build_model(v, &j->mp) || cli_build_optim(v, &j->op) || cli_build_train(v, &j->tp) ||
        cli_int(v, "threads", 0, 1024, &threads))
        JOB_FAIL(OL_EXIT_USAGE, "%s", v->err);
    if (cli_backend(v, &be) < 0)
        JOB_FAIL(OL_EXIT_USAGE, "%s", v->err);
    if (ol_ctx_set_threads(ctx, (int)threads) < 0 || ol_ctx_set_backend(ctx, be) < 0)
        JOB_FAIL(OL_EXIT_USAGE, "%s", ol_ctx_errmsg(ctx));
    if (cli_memory_limit(v, ctx) < 0)
        JOB_FAIL(OL_EXIT_USAGE, "%s", v->err);
    int st = cli_load_data(ctx, v, &j->data, j->err, sizeof j->err);
    if (st != 0)
        return st;
    if (check_splits(&j->data, cli_str(v, "dataset"), j->err, sizeof j->err) < 0)
        return OL_EXIT_USAGE;
    if (j->data.train.tokens && j->tp.snapshot_ensemble) /* the ensemble averages one softmax per sample */
        JOB_FAIL(OL_EXIT_USAGE, "--snapshot-ensemble does not apply to language models");
    ol_train_params *tp = &j->tp;
    j->mp.in_c = j->data.train.c;
    j->mp.in_h = j->data.train.h;
    j->mp.in_w = j->data.train.w;
    j->mp.num_classes = j->data.train.num_classes;
    const int64_t n = j->data.train.n;
    j->mp.max_batch = tp->batch_size < n ? tp->batch_size : (int)n; /* arenas no larger than the data */
    int64_t spe = tp->drop_last ? n / tp->batch_size : (n + tp->batch_size - 1) / tp->batch_size;
    if (spe < 1)
        JOB_FAIL(OL_EXIT_USAGE, "--batch-size %d is larger than the %lld training samples with --drop-last",
                 tp->batch_size, (long long)n);
    if (cli_build_run_plan(v, j->op.lr, tp, n, &j->bc, &j->sp, &j->total))
        JOB_FAIL(OL_EXIT_USAGE, "%s", v->err);
    tp->comm = j->comm;
    if ((st = check_memory(j)) != 0)
        return st;
    if ((st = ol_model_create(ctx, &j->mp, &j->m)) < 0)
        JOB_FAIL(cli_exit_for(st), "%s", ol_ctx_errmsg(ctx));
    st = ol_optim_create(ctx, &j->op, ol_model_paramset(j->m), &j->opt);
    if (st < 0)
        JOB_FAIL(cli_exit_for(st), "%s", ol_ctx_errmsg(ctx));
    if (cli_given(v, "bn-recompute-batches") && !ol_optim_has_eval_mode(j->opt))
        JOB_FAIL(OL_EXIT_USAGE, "--bn-recompute-batches applies only to Schedule-Free optimizers (sfsgd, sfadamw)");
    if (*j->ckpt) {
        if ((st = ol_checkpoint_load(ctx, j->ckpt, j->m, j->opt, &j->resume_state)) < 0)
            JOB_FAIL(cli_exit_for(st), "%s", ol_ctx_errmsg(ctx));
        tp->resume = &j->resume_state;
        tp->resume_path = j->ckpt;
    } else if (*cli_str(v, "init-from")) {
        if ((st = ol_weights_import(ctx, cli_str(v, "init-from"), j->m)) < 0)
            JOB_FAIL(cli_exit_for(st), "%s", ol_ctx_errmsg(ctx));
    }
    if (cli_build_dist(v, tp))
        JOB_FAIL(OL_EXIT_USAGE, "%s", v->err);
    if (ol_train_check_world(ctx, tp, n, ol_comm_size(j->comm)) < 0 || /* every batch of the schedule */
        ol_train_check_diag(ctx, tp, ol_comm_size(j->comm)) < 0)
        JOB_FAIL(OL_EXIT_USAGE, "%s", ol_ctx_errmsg(ctx));
    cli_values eff; /* config.json: every option's effective value */
    if (cli_effective_values(&eff, v, &j->op, &j->sp, &j->bc, tp) < 0)
        JOB_FAIL(OL_EXIT_FAIL, "out of memory");
    j->config = config_string(&eff);
    cli_free(&eff);
    if (!j->config)
        JOB_FAIL(OL_EXIT_FAIL, "out of memory");
    tp->config_json = j->config;
    return 0;
}

/* Watchdog of a data-parallel run: a rank that sees no progress for the
 * timeout (another rank died, hangs or was stopped in a collective) ends the
 * job. timeout < 0 is "auto": 300 s until the first progress (start-up, first
 * step), then max(60 s, 10 x the longest gap between progress marks seen so
 * far), so a job gives up tens of seconds after a rank stops, yet a run whose
 * evaluations or checkpoints take long is not cut short. */
typedef struct {
    ol_comm *comm;
    volatile double heartbeat;
    double timeout;
    volatile int done;
    pthread_t thread;
} watchdog;

#define WD_AUTO_FIRST 300.0
#define WD_AUTO_MIN 60.0
#define WD_AUTO_GAPS 10.0

/* The limit in force: fixed, or auto from the longest gap seen. */
static double watchdog_limit(const watchdog *w, int seen, double longest)
{
    if (w->timeout >= 0.0)
        return w->timeout;
    if (!seen)
        return WD_AUTO_FIRST;
    return fmax(WD_AUTO_MIN, WD_AUTO_GAPS * longest);
}

static void *watchdog_main(void *arg)
{
    watchdog *w = arg;
    double last = w->heartbeat, longest = 0.0;
    int seen = 0;
    while (!w->done) {
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
        double hb = w->heartbeat;
        if (hb != last) {
            longest = fmax(longest, hb - last);
            last = hb;
            seen = 1;
        }
        double limit = watchdog_limit(w, seen, longest);
        if (!w->done && ol_now() - hb > limit) {
            fprintf(stderr,
                    "optimlab: rank %d: no progress for %.0f s: another rank failed, hangs or was stopped; ending "
                    "the job (the newest checkpoint restarts it)\n",
                    ol_comm_rank(w->comm), limit);
            ol_comm_abort(w->comm, OL_EXIT_FAIL);
        }
    }
    return NULL;
}

/* Rank 0, after every input checked out: a new run refuses a non-empty
 * directory unless --overwrite; then lock (resume locked earlier), clear what
 * --overwrite replaces, write config.json. Returns 0 or an exit status. */
static int open_run_dir(train_job *j, const char *dir)
{
    const int iout = cli_find(&j->v, "out");
    const int resume = *cli_str(&j->v, "resume") != '\0';
    /* the default runs/latest is, by its name, replaced by each new run */
    const int overwrite = cli_flag(&j->v, "overwrite") || (iout >= 0 && j->v.set[iout] == 0);
    if (!resume && !overwrite && run_dir_nonempty(dir))
        JOB_FAIL(OL_EXIT_USAGE,
                 "--out %.400s is not empty (a previous run?): --resume %.400s continues it, --overwrite replaces it",
                 dir, dir);
    if (cli_mkdir_p(j->ctx, dir, j->err, sizeof j->err) < 0)
        return OL_EXIT_FAIL;
    if (j->lock_fd < 0) {
        int st = 0;
        j->lock_fd = run_lock(dir, ".lock", "run directory", "another optimlab is writing it", &st, j->err, sizeof j->err);
        if (j->lock_fd < 0)
            return st ? st : OL_EXIT_FAIL;
    }
    if (!resume && overwrite && clear_run_dir(dir, j->err, sizeof j->err) < 0)
        return OL_EXIT_FAIL;
    return write_config(j->ctx, j->config, dir, j->err, sizeof j->err) < 0 ? OL_EXIT_FAIL : 0;
}

const cli_opt *const cli_train_tables[] = {cli_model_opts, cli_data_opts, cli_optim_opts, cli_sched_opts, cli_batch_opts,
                                           cli_train_opts, cli_dist_opts, cli_run_opts,  cli_config_opts, NULL};

/* Every rank, after the parse (status: its outcome): the same binary, the
 * set-up, then agreement on the outcome and the same configuration on every
 * rank. Returns 0 or the exit status, reported. */
static int start_job(train_job *j, int status)
{
    char launch[256];
    snprintf(launch, sizeof launch, "optimlab %s built %s", OL_VERSION_STRING, OL_BUILD_ID);
    if (!status && ol_comm_check_same(j->ctx, j->comm, launch, "optimlab binary") < 0) {
        snprintf(j->err, sizeof j->err, "%s", ol_ctx_errmsg(j->ctx));
        status = OL_EXIT_USAGE;
    }
    if (!status)
        status = job_setup(j);
    if (!status && stop_requested) {
        snprintf(j->err, sizeof j->err,
                 "stopped on request during start-up, before the first step: nothing to checkpoint yet (the same "
                 "command starts again)");
        status = OL_EXIT_STOPPED;
    }
    int rc = cli_agree(j->ctx, j->comm, status, j->err, sizeof j->err);
    if (rc != 0) {
        cli_fail(rc, j->err);
        return rc;
    }
    if (ol_comm_check_same(j->ctx, j->comm, j->config, "configuration") < 0)
        return cli_fail(OL_EXIT_USAGE, ol_ctx_errmsg(j->ctx));
    return 0;
}

/* The first lines of a run: model, data, optimizer, kernels, resume point. */
static void print_banner(const train_job *j)
{
    const ol_train_params *tp = &j->tp;
    char arch[64], kinfo[512];
    ol_model_params_name(&j->mp, arch, sizeof arch);
    ol_ctx_kernel_info(j->ctx, kinfo, sizeof kinfo);
    printf("optimlab %s: %s (%zu parameters) on %s (%lld train / %lld %s, %dx%dx%d), %s lr %g, batch %d, "
           "%lld steps, %d threads",
           OL_VERSION_STRING, arch, ol_paramset_count(ol_model_paramset(j->m)), cli_str(&j->v, "dataset"),
           (long long)j->data.train.n, (long long)j->data.test.n,
           j->data.has_val || j->data.train.tokens ? "val" : "test", j->mp.in_c,
           j->mp.in_h, j->mp.in_w, ol_optim_params_name(&j->op), j->op.lr, tp->batch_size, (long long)j->total,
           ol_ctx_threads(j->ctx));
    if (ol_comm_size(j->comm) > 1)
        printf(" x %d ranks", ol_comm_size(j->comm));
    printf("\nkernels: %s\n", kinfo);
    if (tp->resume)
        printf("resuming from %s at step %lld (epoch %lld)\n", j->ckpt, (long long)j->resume_state.step,
               (long long)j->resume_state.epoch);
    fflush(stdout);
}

/* ol_train with the progress hooks, under the watchdog of a data-parallel
 * run. Returns ol_train's status. */
static int run_training(train_job *j, progress *pr, ol_train_result *res)
{
    ol_train_params *tp = &j->tp;
    watchdog wd = {.comm = j->comm, .heartbeat = ol_now(), .timeout = 0};
    double timeout = -1.0; /* auto */
    if (strcmp(cli_str(&j->v, "comm-timeout"), "auto") != 0)
        cli_double(&j->v, "comm-timeout", 0, 1e9, &timeout);
    wd.timeout = timeout;
    tp->heartbeat = &wd.heartbeat;
    int wd_running = ol_comm_size(j->comm) > 1 && timeout != 0 && pthread_create(&wd.thread, NULL, watchdog_main, &wd) == 0;
    ol_train_hooks hooks = {on_step, on_eval, pr};
    int st = ol_train(j->ctx, tp, j->m, j->opt, &j->sp, &j->data.train, &j->data.test, &hooks, res);
    if (wd_running) {
        wd.done = 1;
        pthread_join(wd.thread, NULL);
    }
    tp->heartbeat = NULL; /* wd ends here */
    return st;
}

/* Rank 0's summary: the real test set once (a run with a validation split),
 * accuracies, paths. Returns an exit status. */
static int print_summary(train_job *j, const progress *pr, const ol_train_result *res)
{
    const ol_train_params *tp = &j->tp;
    double final_test = res->final_test_acc;
    if (j->data.has_val) { /* the real test set, once, at x for Schedule-Free */
        double tl, ta;
        if (ol_optim_eval_mode(j->ctx, j->opt, ol_model_paramset(j->m)) < 0 ||
            ol_evaluate(j->ctx, j->m, &j->data.real_test,
                        tp->eval_batch_size > 0 ? tp->eval_batch_size : tp->batch_size, &tl, &ta) < 0)
            return cli_fail_ctx(j->ctx, OL_EXIT_FAIL);
        final_test = ta;
    }
    if (pr->per)
        printf("done: %lld steps, %d epochs in %.1f s (%.0f tokens/s training); val loss %.4f, perplexity %.2f, "
               "%.3f bits per token\n",
               (long long)res->steps, res->epochs_done, res->elapsed, res->samples_per_s * pr->per,
               res->final_test_loss, exp(res->final_test_loss), res->final_test_loss / log(2.0));
    else
        printf("done: %lld steps, %d epochs in %.1f s (%.0f img/s training); %s accuracy: final %.2f%%, best %.2f%% "
               "(epoch %.2f)\n",
               (long long)res->steps, res->epochs_done, res->elapsed, res->samples_per_s,
               j->data.has_val ? "val" : "test", 100.0 * res->final_test_acc, 100.0 * res->best_test_acc,
               res->best_epoch);
    if (j->data.has_val)
        printf("test accuracy (evaluated once, at the end): %.2f%%\n", 100.0 * final_test);
    if (res->snapshots > 0)
        printf("snapshot ensemble of the last %d snapshots: %s accuracy %.2f%% (single model %.2f%%)\n",
               res->snapshots, j->data.has_val ? "val" : "test", 100.0 * res->ensemble_test_acc,
               100.0 * res->final_test_acc);
    if (ol_comm_size(j->comm) > 1)
        cli_print_comm(tp, res);
    if (tp->out_dir)
        printf("metrics: %s/metrics.jsonl\ncheckpoint: %s\n", tp->out_dir, res->checkpoint);
    if (res->bad_steps)
        printf("skipped steps (non-finite or loss spikes): %lld\n", (long long)res->bad_steps);
    if (tp->gns)
        cli_print_gns(tp, res);
    return OL_EXIT_OK;
}

int cmd_train(int argc, char **argv)
{
    train_job job, *j = &job;
    memset(j, 0, sizeof *j);
    j->lock_fd = -1;
    cli_init(&j->v, cli_train_tables);
    int help = 0, rc = OL_EXIT_OK;
    const double t_cmd = ol_now();
    install_handlers(); /* first: before any thread starts, and a SLURM SIGTERM during start-up still exits 4 */
    j->ctx = ol_ctx_new(0);
    if (!j->ctx) {
        cli_free(&j->v);
        return cli_fail(OL_EXIT_FAIL, "out of memory");
    }
    int status = 0;
    if (cli_apply_presets(&j->v, argc, argv, 2) != 0 || cli_parse(&j->v, argc, argv, 2, &help) != 0) {
        snprintf(j->err, sizeof j->err, "%.1000s", j->v.err);
        status = OL_EXIT_USAGE;
    }
    if (!status && help) {
        if (cli_env_rank() == 0)
            cli_print_help(stdout, &j->v, train_usage);
        goto done;
    }
    if (ol_comm_init(j->ctx, &argc, &argv, &j->comm) < 0) {
        fprintf(stderr, "optimlab: %s\n", ol_ctx_errmsg(j->ctx));
        rc = OL_EXIT_FAIL;
        goto done;
    }
    const int root = ol_comm_rank(j->comm) == 0;
    if ((rc = start_job(j, status)) != 0)
        goto done;
    ol_train_params *tp = &j->tp;
    const char *out = cli_str(&j->v, "out");
    tp->out_dir = *out ? out : NULL;
    /* inputs are valid on every rank: only now create (or lock and reuse) the run directory */
    status = root && tp->out_dir ? open_run_dir(j, tp->out_dir) : 0;
    if ((rc = cli_agree(j->ctx, j->comm, status, j->err, sizeof j->err)) != 0) {
        cli_fail(rc, j->err);
        goto done;
    }
    if (tp->time_limit > 0) {
        tp->time_limit -= ol_now() - t_cmd; /* data loading counted */
        if (tp->time_limit <= 0)
            tp->time_limit = 1e-3;
    }
    tp->stop_flag = &stop_requested;
    progress pr = {.tty = isatty(STDOUT_FILENO), .quiet = cli_flag(&j->v, "quiet") || !root,
                   .log_every = tp->log_every, .has_val = j->data.has_val,
                   .per = j->data.train.tokens ? j->data.train.seq_len : 0};
    if (!pr.quiet)
        print_banner(j);
    ol_train_result res;
    int st = run_training(j, &pr, &res);
    if (pr.tty && !pr.quiet)
        printf("\r\033[K");
    if (st < 0)
        rc = cli_fail_ctx(j->ctx, st == OL_EINTR ? OL_EXIT_STOPPED : cli_exit_for(st));
    else if (root)
        rc = print_summary(j, &pr, &res);
done:
    free(j->config);
    cli_free_sched(&j->sp);
    ol_optim_free(j->opt);
    ol_model_free(j->m);
    cli_free_data(&j->data);
    ol_comm_finalize(j->comm);
    ol_ctx_free(j->ctx);
    cli_free(&j->v);
    if (j->lock_fd >= 0)
        close(j->lock_fd); /* releases the run directory */
    return rc;
}
