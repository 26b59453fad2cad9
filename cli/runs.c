/* Run directories as written by optimlab train: config.json (every option's
 * effective value) and metrics.jsonl (step, eval, epoch and summary records).
 * Read-only: a run may be in progress while it is read. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "runs.h"

/* An exclusive flock on DIR/FILE, held until the process ends (the kernel
 * releases it when the process dies; not inherited by children). Returns the
 * descriptor, or -1 with *status and err set; *status 0 with -1: DIR does not
 * exist (nothing to lock). A held lock is exit 2 naming the holder's pid. */
int run_lock(const char *dir, const char *file, const char *what, const char *why, int *status, char *err,
             size_t cap)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    *status = 0;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        if (errno == ENOENT)
            return -1;
        *status = OL_EXIT_FAIL;
        snprintf(err, cap, "cannot create %.900s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char buf[32] = "";
        int e = errno;
        ssize_t r = pread(fd, buf, sizeof buf - 1, 0);
        buf[r > 0 ? r : 0] = '\0';
        long pid = strtol(buf, NULL, 10);
        close(fd);
        *status = OL_EXIT_USAGE;
        if (e == EWOULDBLOCK || e == EAGAIN || pid > 0)
            snprintf(err, cap, "%s %.900s in use by pid %ld (%s)", what, dir, pid, why);
        else
            snprintf(err, cap, "cannot lock %.900s: %s", path, strerror(e));
        return -1;
    }
    char buf[32];
    int len = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)len, 0) != len) {
        *status = OL_EXIT_FAIL;
        snprintf(err, cap, "cannot write %.900s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int run_locked(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/.lock", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return 0;
    /* shared and non-blocking: fails only while a writer holds its exclusive lock */
    int busy = flock(fd, LOCK_SH | LOCK_NB) != 0 && (errno == EWOULDBLOCK || errno == EAGAIN);
    close(fd); /* releases ours */
    return busy;
}

int run_has_checkpoint(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *de;
    int any = 0;
    while (!any && (de = readdir(d))) {
        size_t len = strlen(de->d_name);
        any = strncmp(de->d_name, "ckpt-", 5) == 0 && len > 12 && strcmp(de->d_name + len - 12, ".safetensors") == 0;
    }
    closedir(d);
    return any;
}

/* Calls fn on every complete line of DIR/metrics.jsonl that parses as a JSON
 * object; returns the number of lines that did not, or -1 when the file cannot be read. */
static int each_record(const char *dir, void (*fn)(void *, json_t *), void *user)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int bad = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] != '\n') /* the writer is mid-line, or it was cut: not a record yet */
            break;
        json_error_t je;
        json_t *o = json_loadb(line, (size_t)len, 0, &je);
        if (json_is_object(o))
            fn(user, o);
        else if (strspn(line, " \t\r\n") != (size_t)len)
            bad++;
        json_decref(o);
    }
    free(line);
    fclose(f);
    return bad;
}

static void find_summary(void *user, json_t *o)
{
    const char *t = json_string_value(json_object_get(o, "type"));
    if (t && !strcmp(t, "summary"))
        *(int *)user = 1;
}

int run_finished(const char *dir)
{
    int found = 0;
    return each_record(dir, find_summary, &found) >= 0 && found;
}

static void last_step(void *user, json_t *o)
{
    const char *t = json_string_value(json_object_get(o, "type"));
    if (t && !strcmp(t, "step"))
        *(long long *)user = (long long)json_integer_value(json_object_get(o, "step"));
}

int run_progress(const char *dir, long long *step)
{
    *step = 0;
    return each_record(dir, last_step, step) >= 0 ? 0 : -1;
}

const char *run_cfg(const run_data *r, const char *key, char *buf, size_t cap)
{
    json_t *v = r->config ? json_object_get(r->config, key) : NULL;
    if (json_is_string(v))
        snprintf(buf, cap, "%s", json_string_value(v));
    else if (json_is_boolean(v))
        snprintf(buf, cap, "%s", json_is_true(v) ? "true" : "false");
    else if (json_is_integer(v))
        snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, cap, "%.17g", json_real_value(v));
    else
        snprintf(buf, cap, "%s", "");
    return buf;
}

static double num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static int grow(void **p, int n, int *cap, size_t size)
{
    if (n < *cap)
        return 0;
    int nc = *cap ? 2 * *cap : 256;
    void *q = realloc(*p, (size_t)nc * size);
    if (!q)
        return -1;
    *p = q;
    *cap = nc;
    return 0;
}

typedef struct {
    run_data *r;
    int scap, ecap, oom;
    double samples_first, epoch_first; /* the first record inside epoch 0, for n_train */
    double samples_any, epoch_any;     /* the first record with the samples seen (epoch = samples / n) */
} loader;

static void add_record(void *user, json_t *o)
{
    loader *L = user;
    run_data *r = L->r;
    const char *t = json_string_value(json_object_get(o, "type"));
    if (!t)
        return;
    if (!strcmp(t, "resume_mismatch")) {
        r->bad_lines++; /* the metrics before it may not belong to this run: worth a warning */
    } else if (!strcmp(t, "step")) {
        if (grow((void **)&r->steps, r->nsteps, &L->scap, sizeof *r->steps) < 0) {
            L->oom = 1;
            return;
        }
        run_step s = {num(o, "step"), num(o, "epoch"), num(o, "lr"), num(o, "loss"), num(o, "grad_norm"),
                      num(o, "batch"), num(o, "gns")};
        /* a resumed run re-logs what came after its checkpoint: keep the later copy */
        while (r->nsteps > 0 && !(r->steps[r->nsteps - 1].step < s.step))
            r->nsteps--;
        r->steps[r->nsteps++] = s;
        double samples = num(o, "samples");
        if (isnan(L->epoch_first) && s.epoch > 0 && s.epoch < 1) {
            L->epoch_first = s.epoch;
            L->samples_first = isfinite(samples) ? samples : s.step * s.batch; /* full batches until then */
        }
        if (isnan(L->epoch_any) && isfinite(samples) && samples > 0 && s.epoch > 0) {
            L->epoch_any = s.epoch;
            L->samples_any = samples;
        }
        r->steps_reached = s.step;
        const double tps = num(o, "tokens_per_s"), sps = num(o, "samples_per_s");
        if (isnan(r->tokens_per_sample) && tps > 0 && sps > 0)
            r->tokens_per_sample = round(tps / sps);
    } else if (!strcmp(t, "epoch") || !strcmp(t, "eval")) {
        if (grow((void **)&r->evals, r->nevals, &L->ecap, sizeof *r->evals) < 0) {
            L->oom = 1;
            return;
        }
        run_eval e = {num(o, "step"), num(o, "epoch"), num(o, "test_acc"), num(o, "test_loss"), num(o, "train_loss")};
        while (r->nevals > 0 && !(r->evals[r->nevals - 1].step < e.step))
            r->nevals--;
        r->evals[r->nevals++] = e;
        r->elapsed = num(o, "elapsed");
    } else if (!strcmp(t, "summary")) {
        r->status = RUN_FINISHED;
        r->best_acc = num(o, "best_test_acc");
        r->final_acc = num(o, "final_test_acc");
        r->final_loss = num(o, "final_test_loss");
        r->elapsed = num(o, "elapsed");
        r->train_time = num(o, "train_time");
        r->comm_bytes = num(o, "comm_bytes");
        r->steps_reached = num(o, "steps");
    }
}

/* Training samples per epoch: from the data options, else from the steps of epoch 0. */
static double train_size(const run_data *r, const loader *L)
{
    if (isfinite(L->epoch_first) && L->samples_first > 0)
        return round(L->samples_first / L->epoch_first);
    if (isfinite(L->epoch_any))
        return round(L->samples_any / L->epoch_any);
    char b[64];
    double subset = atof(run_cfg(r, "train-subset", b, sizeof b));
    if (subset > 0)
        return subset;
    char d[64];
    const char *ds = run_cfg(r, "dataset", d, sizeof d);
    double syn = atof(run_cfg(r, "synthetic-size", b, sizeof b));
    double n = !strcmp(ds, "synthetic")                                ? (syn > 0 ? syn : 2048)
               : !strcmp(ds, "cifar10")                                ? 50000
               : (!strcmp(ds, "fashion-mnist") || !strcmp(ds, "mnist")) ? 60000
                                                                        : NAN;
    return n * (1.0 - atof(run_cfg(r, "val-split", b, sizeof b)));
}

static json_t *load_config(const char *dir, char *err, size_t cap)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t je;
    json_t *c = json_load_file(path, 0, &je);
    if (!c) {
        struct stat st;
        if (stat(path, &st) != 0)
            snprintf(err, cap, "%.900s is not a run directory (no config.json)", dir);
        else
            snprintf(err, cap, "%.900s:%d: malformed config.json: %.200s", path, je.line, je.text);
        return NULL;
    }
    if (!json_is_object(c)) {
        json_decref(c);
        snprintf(err, cap, "%.900s: config.json is not a JSON object", path);
        return NULL;
    }
    return c;
}

int run_load(const char *dir, run_data *r, char *err, size_t cap)
{
    memset(r, 0, sizeof *r);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, cap, "%.900s: %s", dir, stat(dir, &st) != 0 ? strerror(errno) : "not a directory");
        return -1;
    }
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    size_t len = strlen(r->dir);
    while (len > 1 && r->dir[len - 1] == '/')
        r->dir[--len] = '\0';
    const char *slash = strrchr(r->dir, '/');
    snprintf(r->name, sizeof r->name, "%.255s", slash ? slash + 1 : r->dir);
    if (!(r->config = load_config(r->dir, err, cap)))
        return -1;
    r->status = RUN_STOPPED;
    r->best_acc = r->final_acc = r->final_loss = r->elapsed = r->train_time = r->comm_bytes = NAN;
    r->tokens_per_sample = NAN;
    loader L = {.r = r, .epoch_first = NAN, .epoch_any = NAN};
    int bad = each_record(r->dir, add_record, &L);
    if (bad < 0 && run_locked(r->dir))
        bad = 0; /* just started: config.json written, nothing logged yet */
    if (bad < 0) {
        snprintf(err, cap, "%.900s is not a run directory (no readable metrics.jsonl)", r->dir);
        run_free(r);
        return -1;
    }
    if (L.oom) {
        snprintf(err, cap, "out of memory reading %.900s/metrics.jsonl", r->dir);
        run_free(r);
        return -1;
    }
    r->bad_lines += bad;
    if (r->status != RUN_FINISHED) { /* what the records so far say */
        for (int i = 0; i < r->nevals; i++) {
            if (!(r->best_acc >= r->evals[i].test_acc))
                r->best_acc = r->evals[i].test_acc;
            r->final_acc = r->evals[i].test_acc;
            r->final_loss = r->evals[i].test_loss;
        }
        if (run_locked(r->dir))
            r->status = RUN_RUNNING;
    }
    char b[64];
    r->has_val = atof(run_cfg(r, "val-split", b, sizeof b)) > 0;
    r->n_train = train_size(r, &L);
    r->epochs_reached = r->nsteps ? r->steps[r->nsteps - 1].epoch : 0;
    if (r->nevals && r->evals[r->nevals - 1].epoch > r->epochs_reached)
        r->epochs_reached = r->evals[r->nevals - 1].epoch;
    return 0;
}

void run_free(run_data *r)
{
    json_decref(r->config);
    free(r->steps);
    free(r->evals);
    memset(r, 0, sizeof *r);
}
