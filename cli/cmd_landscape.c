/* optimlab landscape: loss along a line or over a plane around a checkpoint
 * (Li et al. 2018; Goodfellow et al. 2015), in parallel over model replicas
 * and MPI ranks, resumable. */
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "evalrun.h"
#include "landscape_io.h"
#include "optimlab/landscape.h"

static const cli_opt landscape_opts[] = {
    {"mode", CLI_VALUE, "2d", "1d|2d", "Landscape", "a line (1d) or a plane (2d) through the checkpoint"},
    {"directions", CLI_VALUE, "random", "KIND", "Landscape",
     "random (filter-normalized Gaussian) or pca (principal directions of the run's checkpoints, 2d)"},
    {"to", CLI_VALUE, "", "CKPT2", "Landscape",
     "1d: the line from the checkpoint (0) to CKPT2 (1), BatchNorm statistics interpolated too"},
    {"grid", CLI_VALUE, "", "NxM|N", "Landscape", "points per axis [2d: 21x21, 1d: 51]"},
    {"range", CLI_VALUE, "", "A:B", "Landscape",
     "coordinates along x [random: -1:1, --to: -0.5:1.5, pca: around the trajectory]"},
    {"yrange", CLI_VALUE, "", "A:B", "Landscape", "coordinates along y [--range]"},
    {"seed", CLI_VALUE, "0", "S", "Landscape", "seed of the random directions"},
    {"include-bn-bias", CLI_FLAG, "0", NULL, "Landscape",
     "move biases and BatchNorm weights too (the direction there is the weights themselves; default: zero)"},
    {"set", CLI_VALUE, "train", "LIST", "Landscape", "sets evaluated at every point: train, test or train,test"},
    {"train-subset", CLI_VALUE, "0", "N", "Landscape", "the first N training samples (0 = all)"},
    {"test-subset", CLI_VALUE, "0", "N", "Landscape", "the first N test samples (0 = all)"},
    {"batch-size", CLI_VALUE, "0", "B", "Landscape", "evaluation batch size (0 = the run's)"},
    {"data-dir", CLI_VALUE, "", "DIR", "Landscape", "dataset directory (default: the run's)"},
    {"levels", CLI_VALUE, "0", "K", "Landscape", "about K contour levels (0 = automatic)"},
    {"vtk", CLI_FLAG, "0", NULL, "Landscape", "2d: also write surface.vtk (VTK legacy, opens in ParaView)"},
    {"out", CLI_VALUE, "", "DIR", "Landscape", "output directory [RUN/landscape-<mode>-<directions>]"},
    {"overwrite", CLI_FLAG, "0", NULL, "Landscape", "replace a landscape of other settings in --out"},
    {"threads", CLI_VALUE, "0", "T", "Run",
     "model replicas evaluating points in parallel, per rank (0 = the cores divided by the ranks on the node)"},
    {"backend", CLI_VALUE, "auto", "NAME", "Run", "auto, onednn, blas, ref"},
    {NULL, 0, NULL, NULL, NULL, NULL}};

static const char *const landscape_usage =
    "usage: optimlab landscape RUN_DIR|CHECKPOINT [--mode 1d|2d] [--directions random|pca] [--to CKPT2]\n"
    "                          [--grid 21x21] [--range -1:1] [--set train,test] [--train-subset N] [--out DIR]\n"
    "\n"
    "Loss and accuracy at the points w + a d1 + b d2 around the checkpoint's weights w (Li et al. 2018):\n"
    "d1, d2 Gaussian with filter-wise normalization (biases and BatchNorm weights not moved unless\n"
    "--include-bn-bias), or the two principal directions of the run's checkpoints with the trajectory\n"
    "projected on the plane (--directions pca); or along the line (1 - a) w + a w2 to a second checkpoint\n"
    "(--to, Goodfellow et al. 2015). BatchNorm runs in eval mode with the checkpoint's running statistics\n"
    "(with --to, interpolated between the two checkpoints' statistics), as the reference implementation\n"
    "(tomgoldstein/loss-landscape) does. Each point is evaluated by one model replica on one thread:\n"
    "--threads replicas per process, and under mpirun the points are split over the ranks; the values do\n"
    "not depend on either. The grid is saved in OUT/landscape.json after every round of points: the same\n"
    "command continues an interrupted run. Writes landscape.json, landscape.csv, SVG plots (1d: loss.svg,\n"
    "acc.svg; 2d: contour plots <set>_loss.svg, <set>_acc.svg) and with --vtk surface.vtk.";

typedef struct {
    int dims, pca, nx, ny, include, levels, vtk, overwrite, want[2];
    double x0, x1, y0, y1;
    int have_range, have_yrange;
    long long seed, ntrain, ntest, batch, threads;
    ol_backend be;
    const char *to, *out;
} ls_opts;

static int parse_range(const char *s, double *a, double *b)
{
    char *end;
    errno = 0;
    *a = strtod(s, &end);
    if (end == s || *end != ':')
        return -1;
    const char *t = end + 1;
    *b = strtod(t, &end);
    return end == t || *end || errno || !isfinite(*a) || !isfinite(*b) ? -1 : 0;
}

static int parse_grid(const char *s, int dims, int *nx, int *ny)
{
    char *end;
    long a = strtol(s, &end, 10), b = 1;
    if (end == s)
        return -1;
    if (dims == 2) {
        if (*end != 'x')
            return -1;
        const char *t = end + 1;
        b = strtol(t, &end, 10);
        if (end == t)
            return -1;
    }
    if (*end || a < 1 || b < 1 || a > 100000 || b > 100000 || a * b > 10000000)
        return -1;
    *nx = (int)a;
    *ny = (int)b;
    return 0;
}

static int fail_opt(char *err, size_t cap, const char *fmt, const char *what)
{
    snprintf(err, cap, fmt, what);
    return -1;
}

static int parse_ls_opts(cli_values *v, void *opts, char *err, size_t cap)
{
    ls_opts *o = opts;
    memset(o, 0, sizeof *o);
    const char *mode = cli_str(v, "mode"), *dirs = cli_str(v, "directions"), *sets = cli_str(v, "set");
    if (strcmp(mode, "1d") != 0 && strcmp(mode, "2d") != 0)
        return fail_opt(err, cap, "--mode: unknown mode '%.100s' (1d, 2d)", mode);
    o->dims = mode[0] - '0';
    if (strcmp(dirs, "random") != 0 && strcmp(dirs, "pca") != 0)
        return fail_opt(err, cap, "--directions: unknown kind '%.100s' (random, pca)", dirs);
    o->pca = strcmp(dirs, "pca") == 0;
    o->to = cli_str(v, "to");
    o->out = cli_str(v, "out");
    if (o->pca && o->dims != 2)
        return fail_opt(err, cap, "%s", "--directions pca makes a plane: use it with --mode 2d");
    if (*o->to && (o->dims != 1 || o->pca))
        return fail_opt(err, cap, "%s", "--to draws the line between two checkpoints: use it with --mode 1d");
    const char *grid = *cli_str(v, "grid") ? cli_str(v, "grid") : o->dims == 2 ? "21x21" : "51";
    if (parse_grid(grid, o->dims, &o->nx, &o->ny) < 0)
        return fail_opt(err, cap,
                        o->dims == 2 ? "--grid: expected NxM with N, M >= 1 (at most 10,000,000 points), got '%.100s'"
                                     : "--grid: expected the number of points N >= 1 of a line, got '%.100s'",
                        grid);
    o->x0 = o->y0 = *o->to ? -0.5 : -1.0;
    o->x1 = o->y1 = *o->to ? 1.5 : 1.0;
    o->have_range = *cli_str(v, "range") != '\0';
    o->have_yrange = *cli_str(v, "yrange") != '\0';
    if (o->have_range && parse_range(cli_str(v, "range"), &o->x0, &o->x1) < 0)
        return fail_opt(err, cap, "--range: expected MIN:MAX, got '%.100s'", cli_str(v, "range"));
    if (o->have_yrange && parse_range(cli_str(v, "yrange"), &o->y0, &o->y1) < 0)
        return fail_opt(err, cap, "--yrange: expected MIN:MAX, got '%.100s'", cli_str(v, "yrange"));
    if (!o->have_yrange)
        o->y0 = o->x0, o->y1 = o->x1;
    if (!(o->x1 > o->x0) || (o->dims == 2 && !(o->y1 > o->y0)))
        return fail_opt(err, cap, "%s", "--range/--yrange: MIN must be smaller than MAX");
    o->want[0] = strstr(sets, "train") != NULL;
    o->want[1] = strstr(sets, "test") != NULL;
    if (strcmp(sets, "train") != 0 && strcmp(sets, "test") != 0 && strcmp(sets, "train,test") != 0 &&
        strcmp(sets, "test,train") != 0)
        return fail_opt(err, cap, "--set: expected train, test or train,test, got '%.100s'", sets);
    long long lv;
    if (cli_int(v, "seed", 0, INT64_MAX, &o->seed) || cli_int(v, "train-subset", 0, INT64_MAX, &o->ntrain) ||
        cli_int(v, "test-subset", 0, INT64_MAX, &o->ntest) || cli_int(v, "batch-size", 0, 1 << 20, &o->batch) ||
        cli_int(v, "threads", 0, 1024, &o->threads) || cli_int(v, "levels", 0, 60, &lv))
        return fail_opt(err, cap, "%s", v->err);
    o->levels = (int)lv;
    o->include = cli_flag(v, "include-bn-bias");
    o->vtk = cli_flag(v, "vtk");
    o->overwrite = cli_flag(v, "overwrite");
    if (cli_backend(v, &o->be) < 0)
        return fail_opt(err, cap, "%s", v->err);
    return 0;
}

/* Load checkpoint path into a second model of m's architecture. */
static int load_same_arch(ol_ctx *ctx, const char *path, ol_model *m, ol_model **out, ol_train_state *ts, char *err,
                          size_t cap)
{
    ol_model_params mp = *ol_model_get_params(m);
    mp.max_batch = 1;
    int s = ol_model_create(ctx, &mp, out);
    if (s >= 0)
        s = ol_checkpoint_load(ctx, path, *out, NULL, ts);
    if (s < 0) {
        snprintf(err, cap, "%s", ol_ctx_errmsg(ctx));
        return cli_exit_for(s);
    }
    return OL_EXIT_OK;
}

/* PCA directions of the checkpoints of the run up to r's, the trajectory projected into g. */
static int pca_directions(ol_ctx *ctx, cli_run *r, const ls_opts *o, float *d1, float *d2, ls_grid *g, char *err,
                          size_t cap)
{
    char path0[4096], dir[4096];
    snprintf(path0, sizeof path0, "%s", r->ckpt);
    snprintf(dir, sizeof dir, "%s", dirname(path0));
    long long *steps = NULL;
    int n = 0, rc = OL_EXIT_OK;
    if (cli_run_list_steps(dir, (long long)r->ts.step, &steps, &n) < 0 || n < 3) {
        free(steps);
        snprintf(err, cap, "--directions pca: %.800s has %d checkpoints up to step %lld, at least 3 are needed "
                           "(train with --checkpoint-every and --keep-last 0)",
                 dir, n, (long long)r->ts.step);
        return OL_EXIT_USAGE;
    }
    const ol_paramset *ps = ol_model_paramset(r->m);
    float **traj = calloc((size_t)n, sizeof(float *));
    double *xy = malloc(sizeof(double) * 2 * (size_t)n);
    g->tx = malloc(sizeof(double) * (size_t)n);
    g->ty = malloc(sizeof(double) * (size_t)n);
    g->tstep = malloc(sizeof(int64_t) * (size_t)n);
    if (!traj || !xy || !g->tx || !g->ty || !g->tstep)
        rc = OL_EXIT_FAIL, snprintf(err, cap, "out of memory");
    for (int i = 0; rc == OL_EXIT_OK && i < n; i++) {
        char path[4200];
        ol_model *m2 = NULL;
        ol_train_state ts;
        ol_checkpoint_path(dir, (int64_t)steps[i], path, sizeof path);
        rc = load_same_arch(ctx, path, r->m, &m2, &ts, err, cap);
        traj[i] = rc == OL_EXIT_OK ? malloc(ps->numel * sizeof(float)) : NULL;
        if (rc == OL_EXIT_OK && !traj[i])
            rc = OL_EXIT_FAIL, snprintf(err, cap, "out of memory for %d checkpoints", n);
        if (rc == OL_EXIT_OK) {
            memcpy(traj[i], ol_model_paramset(m2)->params, ps->numel * sizeof(float));
            g->tstep[i] = ts.step;
        }
        ol_model_free(m2);
    }
    if (rc == OL_EXIT_OK) {
        int s = ol_landscape_pca(ctx, ps, ps->params, (const float *const *)traj, n, o->include, d1, d2, xy, g->ratio);
        if (s < 0)
            rc = cli_exit_for(s), snprintf(err, cap, "--directions pca: %s", ol_ctx_errmsg(ctx));
    }
    if (rc == OL_EXIT_OK) {
        g->ntraj = n;
        for (int i = 0; i < n; i++)
            g->tx[i] = xy[2 * i], g->ty[i] = xy[2 * i + 1];
    }
    for (int i = 0; traj && i < n; i++)
        free(traj[i]);
    free(traj);
    free(xy);
    free(steps);
    return rc;
}

typedef struct {
    cli_values v;
    ls_opts o;
    ol_ctx *ctx;
    ol_comm *comm;
    cli_run r;
    ol_model *m2; /* --to */
    ls_grid g;
    float *d1, *d2;
    ol_landscape *ls;
    char to_ckpt[4096]; /* --to's checkpoint file */
    long long to_step;
    char out[4096], err[2000];
} ls_job;

/* Directions (or the interpolation target), the grid's coordinates and labels. */
static int setup_directions(ls_job *j)
{
    ls_opts *o = &j->o;
    const ol_paramset *ps = ol_model_paramset(j->r.m);
    if (*o->to) {
        ol_train_state ts;
        char path[4096];
        if (cli_run_checkpoint(j->ctx, o->to, path, sizeof path) < 0) {
            snprintf(j->err, sizeof j->err, "--to: %s", ol_ctx_errmsg(j->ctx));
            return OL_EXIT_USAGE;
        }
        int rc = load_same_arch(j->ctx, path, j->r.m, &j->m2, &ts, j->err, sizeof j->err);
        if (rc != OL_EXIT_OK)
            return rc;
        snprintf(j->to_ckpt, sizeof j->to_ckpt, "%s", path);
        j->to_step = (long long)ts.step;
        snprintf(j->g.xlabel, sizeof j->g.xlabel, "interpolation (0: step %lld, 1: step %lld)", (long long)j->r.ts.step,
                 (long long)ts.step);
        return OL_EXIT_OK;
    }
    j->d1 = calloc(ps->numel, sizeof(float));
    j->d2 = o->dims == 2 ? calloc(ps->numel, sizeof(float)) : NULL;
    if (!j->d1 || (o->dims == 2 && !j->d2)) {
        snprintf(j->err, sizeof j->err, "out of memory for the directions");
        return OL_EXIT_FAIL;
    }
    if (o->pca) {
        int rc = pca_directions(j->ctx, &j->r, o, j->d1, j->d2, &j->g, j->err, sizeof j->err);
        if (rc != OL_EXIT_OK)
            return rc;
        snprintf(j->g.xlabel, sizeof j->g.xlabel, "PC1 (%.1f%% of the variance)", 100 * j->g.ratio[0]);
        snprintf(j->g.ylabel, sizeof j->g.ylabel, "PC2 (%.1f%%)", 100 * j->g.ratio[1]);
        return OL_EXIT_OK;
    }
    ol_landscape_random_direction(ps, ps->params, (uint64_t)o->seed, 0, o->include, j->d1);
    if (j->d2)
        ol_landscape_random_direction(ps, ps->params, (uint64_t)o->seed, 1, o->include, j->d2);
    snprintf(j->g.xlabel, sizeof j->g.xlabel, "direction 1 (filter-normalized)");
    snprintf(j->g.ylabel, sizeof j->g.ylabel, "direction 2 (filter-normalized)");
    return OL_EXIT_OK;
}

/* PCA without --range: the trajectory's extent with a margin, 0 included. */
static void pca_range(const ls_grid *g, const double *t, double *a, double *b)
{
    double lo = 0, hi = 0;
    for (int i = 0; i < g->ntraj; i++)
        lo = fmin(lo, t[i]), hi = fmax(hi, t[i]);
    double pad = 0.2 * (hi - lo) + 1e-6;
    *a = lo - pad;
    *b = hi + pad;
}

static void setup_grid_coords(ls_job *j)
{
    ls_opts *o = &j->o;
    if (o->pca && !o->have_range)
        pca_range(&j->g, j->g.tx, &o->x0, &o->x1);
    if (o->pca && !o->have_yrange)
        pca_range(&j->g, j->g.ty, &o->y0, &o->y1);
    for (int i = 0; i < j->g.nx; i++)
        j->g.x[i] = j->g.nx > 1 ? o->x0 + (o->x1 - o->x0) * i / (j->g.nx - 1) : o->x0;
    for (int k = 0; k < j->g.ny; k++)
        j->g.y[k] = j->g.ny > 1 ? o->y0 + (o->y1 - o->y0) * k / (j->g.ny - 1) : o->y0;
    if (o->dims == 1 && !*o->to)
        snprintf(j->g.xlabel, sizeof j->g.xlabel, "random direction (filter-normalized)");
    j->g.nmark = o->dims == 1 ? (*o->to ? 2 : 1) : 0;
    j->g.mark[0] = 0.0;
    j->g.mark[1] = 1.0;
    snprintf(j->g.mark_label[0], sizeof j->g.mark_label[0], "step %lld", (long long)j->r.ts.step);
    snprintf(j->g.mark_label[1], sizeof j->g.mark_label[1], "step %lld", j->to_step);
    char arch[64];
    ol_model_params_name(ol_model_get_params(j->r.m), arch, sizeof arch);
    snprintf(j->g.title, sizeof j->g.title, "%s, step %lld", arch, (long long)j->r.ts.step);
    char real[4096], real2[4096] = ""; /* file names and steps identify the checkpoints */
    snprintf(real, sizeof real, "%s", j->r.ckpt);
    if (j->m2)
        snprintf(real2, sizeof real2, "%.4000s@%lld", j->to_ckpt, j->to_step);
    snprintf(j->g.settings, sizeof j->g.settings,
             "checkpoint=%.1500s step=%lld mode=%dd directions=%s to=%.1500s seed=%lld include-bn-bias=%d grid=%dx%d "
             "x=%.17g:%.17g y=%.17g:%.17g set=%s%s%s train-subset=%lld test-subset=%lld batch=%lld",
             basename(real), (long long)j->r.ts.step, o->dims, *o->to ? "to" : o->pca ? "pca" : "random",
             *real2 ? basename(real2) : "", o->seed,
             o->include, j->g.nx, j->g.ny, o->x0, o->x1, o->y0, o->y1, o->want[0] ? "train" : "",
             o->want[0] && o->want[1] ? "," : "", o->want[1] ? "test" : "", o->ntrain, o->ntest, o->batch);
}

/* Evaluate the points not done yet, in rounds: each rank takes every size-th
 * point of a round, the values are summed over ranks (zero elsewhere), rank 0
 * saves the grid. Returns an exit status. */
static int run_points(ls_job *j, const char *json_path, int64_t *computed, double *seconds)
{
    ls_grid *g = &j->g;
    const int rank = ol_comm_rank(j->comm), size = ol_comm_size(j->comm), np = g->nx * g->ny;
    const int workers = (int)j->o.threads, round = workers * size * 2;
    int *todo = malloc(sizeof(int) * (size_t)np);
    double *ab = malloc(sizeof(double) * 2 * (size_t)round), *res = malloc(sizeof(double) * 4 * (size_t)round);
    double *sum = malloc(sizeof(double) * 4 * (size_t)round);
    if (!todo || !ab || !res || !sum) {
        free(todo), free(ab), free(res), free(sum);
        snprintf(j->err, sizeof j->err, "out of memory");
        return OL_EXIT_FAIL;
    }
    int nt = 0, status = OL_EXIT_OK;
    for (int p = 0; p < np; p++)
        if (!g->done[p])
            todo[nt++] = p;
    const double t0 = ol_now();
    for (int start = 0; start < nt && status == OL_EXIT_OK; start += round) {
        const int cnt = nt - start < round ? nt - start : round;
        int mine = 0;
        for (int k = rank; k < cnt; k += size, mine++) {
            const int p = todo[start + k];
            ab[2 * mine] = g->x[p % g->nx];
            ab[2 * mine + 1] = g->y[p / g->nx];
        }
        int s = mine > 0 ? ol_landscape_eval(j->ctx, j->ls, ab, mine, res) : OL_OK;
        if (s < 0)
            snprintf(j->err, sizeof j->err, "%s", ol_ctx_errmsg(j->ctx));
        status = cli_agree(j->ctx, j->comm, s < 0 ? cli_exit_for(s) : OL_EXIT_OK, j->err, sizeof j->err);
        if (status != OL_EXIT_OK)
            break;
        memset(sum, 0, sizeof(double) * 4 * (size_t)cnt);
        for (int k = rank, q = 0; k < cnt; k += size, q++)
            memcpy(sum + 4 * k, res + 4 * q, 4 * sizeof(double));
        if (size > 1 && ol_comm_allreduce_f64(j->ctx, j->comm, sum, 4 * (size_t)cnt) < 0) {
            snprintf(j->err, sizeof j->err, "%s", ol_ctx_errmsg(j->ctx));
            status = OL_EXIT_FAIL;
            break;
        }
        for (int k = 0; k < cnt; k++) {
            const int p = todo[start + k];
            memcpy(g->val + 4 * (size_t)p, sum + 4 * k, 4 * sizeof(double));
            g->done[p] = 1;
        }
        *computed += cnt;
        if (rank == 0 && ls_save(json_path, g, start + cnt == nt, j->err, sizeof j->err) < 0)
            status = OL_EXIT_FAIL;
        status = cli_agree(j->ctx, j->comm, status, j->err, sizeof j->err);
        if (rank == 0 && isatty(1))
            printf("\r%d/%d points", (int)ls_grid_done(g), np), fflush(stdout);
    }
    if (rank == 0 && isatty(1) && nt > 0)
        printf("\n");
    *seconds = ol_now() - t0;
    free(todo), free(ab), free(res), free(sum);
    return status;
}

/* Data, model, directions, replicas; the grid loaded from a partial run. */
static int ls_prepare(ls_job *j, const char *src, char *json_path, size_t cap)
{
    ls_opts *o = &j->o;
    ls_grid *g = &j->g;
    int rc = cli_run_open(j->ctx, src, 1, cli_str(&j->v, "data-dir"), o->ntrain, o->ntest, &j->r, j->err,
                         sizeof j->err);
    if (rc != OL_EXIT_OK)
        return rc;
    if (o->batch == 0)
        o->batch = j->r.batch;
    if (o->threads == 0) { /* all cores, shared by the ranks on this node */
        const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
        const int per_node = local && atoi(local) > 0 ? atoi(local) : 1;
        o->threads = ol_ctx_threads(j->ctx) / per_node > 0 ? ol_ctx_threads(j->ctx) / per_node : 1;
    }
    g->dims = o->dims;
    g->levels = o->levels;
    g->set[0] = o->want[0] ? "train" : NULL;
    g->set[1] = o->want[1] ? "test" : NULL;
    if (ls_grid_alloc(g, o->nx, o->ny) < 0) {
        snprintf(j->err, sizeof j->err, "out of memory for a %dx%d grid", o->nx, o->ny);
        return OL_EXIT_FAIL;
    }
    if ((rc = setup_directions(j)) != OL_EXIT_OK)
        return rc;
    setup_grid_coords(j);
    if (*o->out)
        snprintf(j->out, sizeof j->out, "%s", o->out);
    else {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", j->r.ckpt);
        snprintf(j->out, sizeof j->out, "%.3900s/landscape-%dd-%s", dirname(dir), o->dims,
                 *o->to ? "to" : o->pca ? "pca" : "random");
    }
    snprintf(json_path, cap, "%.4000s/landscape.json", j->out);
    int found = 0;
    if (!o->overwrite && ls_load(json_path, g, &found, j->err, sizeof j->err) < 0)
        return OL_EXIT_USAGE;
    ol_landscape_params lp = ol_landscape_default_params();
    lp.dir[0] = j->d1;
    lp.dir[1] = j->d2;
    if (j->m2) {
        lp.to_params = ol_model_paramset(j->m2)->params;
        lp.to_buffers = ol_model_paramset(j->m2)->buffers;
    }
    lp.data[0] = o->want[0] ? &j->r.data.train : NULL;
    lp.data[1] = !o->want[1] ? NULL : j->r.data.has_val ? &j->r.data.real_test : &j->r.data.test;
    lp.batch = (int)o->batch;
    lp.workers = (int)o->threads;
    int s = ol_landscape_create(j->ctx, j->r.m, &lp, &j->ls);
    if (s < 0) {
        snprintf(j->err, sizeof j->err, "%s", ol_ctx_errmsg(j->ctx));
        return cli_exit_for(s);
    }
    return OL_EXIT_OK;
}

static void print_summary(const ls_job *j, int64_t computed, double secs)
{
    const ls_grid *g = &j->g;
    const int np = g->nx * g->ny, s0 = g->set[0] ? 0 : 1;
    int best = -1, centre = -1;
    for (int p = 0; p < np; p++) {
        const double v = g->val[4 * p + 2 * s0];
        if (isfinite(v) && (best < 0 || v < g->val[4 * best + 2 * s0]))
            best = p;
        if (g->x[p % g->nx] == 0.0 && (g->dims == 1 || g->y[p / g->nx] == 0.0))
            centre = p;
    }
    printf("%d points in %.1f s: %.3g points/s (%lld computed now by %lld replicas x %d ranks, %.0f MB)\n", np, secs,
           secs > 0 ? (double)computed / secs : 0.0, (long long)computed, j->o.threads, ol_comm_size(j->comm),
           ol_landscape_memory_bytes(j->ls) / 1e6);
    if (centre >= 0)
        printf("%s loss at the checkpoint: %.6f\n", g->set[s0], g->val[4 * centre + 2 * s0]);
    if (best >= 0 && g->dims == 2)
        printf("lowest %s loss: %.6f at (%g, %g)\n", g->set[s0], g->val[4 * best + 2 * s0], g->x[best % g->nx],
               g->y[best / g->nx]);
    else if (best >= 0)
        printf("lowest %s loss: %.6f at %g\n", g->set[s0], g->val[4 * best + 2 * s0], g->x[best]);
    printf("output: %s (landscape.json, landscape.csv, %s)\n", j->out,
           g->dims == 1 ? "loss.svg, acc.svg" : j->o.vtk ? "contour plots *.svg, surface.vtk" : "contour plots *.svg");
}

int cmd_landscape(int argc, char **argv)
{
    const cli_opt *const tables[] = {landscape_opts, NULL};
    ls_job *j = calloc(1, sizeof *j);
    if (!j)
        return cli_fail(OL_EXIT_FAIL, "out of memory");
    cli_init(&j->v, tables);
    int rc;
    char json_path[4200];
    if ((rc = cli_run_args(&j->v, argc, argv, landscape_usage, parse_ls_opts, &j->o)) >= 0)
        goto done;
    j->ctx = ol_ctx_new(0);
    if (!j->ctx || ol_comm_init(j->ctx, &argc, &argv, &j->comm) < 0) {
        rc = cli_fail(OL_EXIT_FAIL, j->ctx ? ol_ctx_errmsg(j->ctx) : "out of memory");
        goto done;
    }
    if (ol_ctx_set_backend(j->ctx, j->o.be) < 0) {
        rc = cli_fail_ctx(j->ctx, OL_EXIT_USAGE);
        goto done;
    }
    const int root = ol_comm_rank(j->comm) == 0;
    rc = ls_prepare(j, argv[2], json_path, sizeof json_path);
    if (rc == OL_EXIT_OK && root && cli_mkdir_p(j->ctx, j->out, j->err, sizeof j->err) != 0)
        rc = OL_EXIT_FAIL;
    rc = cli_agree(j->ctx, j->comm, rc, j->err, sizeof j->err);
    if (rc != OL_EXIT_OK) {
        rc = cli_fail(rc, j->err);
        goto done;
    }
    int64_t computed = 0;
    double secs = 0;
    rc = run_points(j, json_path, &computed, &secs);
    if (rc == OL_EXIT_OK && root && ls_grid_done(&j->g) == (int64_t)j->g.nx * j->g.ny &&
        (ls_save(json_path, &j->g, 1, j->err, sizeof j->err) < 0 ||
         ls_write_outputs(j->ctx, j->out, &j->g, j->o.vtk, j->err, sizeof j->err) < 0))
        rc = OL_EXIT_FAIL;
    if (rc != OL_EXIT_OK)
        rc = cli_fail(rc, j->err);
    else if (root)
        print_summary(j, computed, secs);
done:
    ol_landscape_free(j->ls);
    ol_model_free(j->m2);
    cli_run_close(&j->r);
    ls_grid_free(&j->g);
    free(j->d1);
    free(j->d2);
    ol_comm_finalize(j->comm);
    ol_ctx_free(j->ctx);
    cli_free(&j->v);
    free(j);
    return rc;
}
