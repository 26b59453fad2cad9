/* A run's learning rate and batch size at every optimizer step, recomputed
 * from its config.json by train's own rule, for optimlab report: the logged
 * steps (every --log-every) miss a short warm-up and show a 450-step cosine
 * as four points. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "runs.h"

/* The stored options into a parsed train command line (v), as train --resume reads them. */
static int load_options(const run_data *r, cli_values *v)
{
    char err[256];
    cli_init(v, cli_train_tables);
    if (cli_apply_stored(v, r->config, err, sizeof err) < 0)
        return -1;
    /* a plugin would be loaded (code run) from a path the run directory names: not for a report */
    if (*cli_str(v, "plugin"))
        return -1;
    return 0;
}

/* 1 when every logged step has the computed lr and batch (a run resumed with
 * other options, or another version's rule, does not: its logged steps stay). */
static int agrees(const run_data *r, const double *lr, const double *batch, int64_t total)
{
    int checked = 0;
    for (int i = 0; i < r->nsteps; i++) {
        const run_step *s = &r->steps[i];
        int64_t t = (int64_t)s->step - 1; /* step k is logged after the k-th update, taken at lr[k-1] */
        if (!(t >= 0 && t < total))
            return 0;
        if (fabs(lr[t] - s->lr) > 1e-9 * fabs(s->lr) + 1e-300 || (isfinite(s->batch) && batch[t] != s->batch))
            return 0;
        checked++;
    }
    return checked > 0;
}

int run_schedule(const run_data *r, double **lr_out, double **batch_out, int64_t *n_out, double *peak)
{
    *lr_out = *batch_out = NULL;
    *n_out = 0;
    *peak = NAN;
    const double nt = r->n_train;
    if (!(nt >= 1 && nt < 1e15) || !r->config || r->nsteps == 0)
        return -1;
    const int64_t n = (int64_t)nt;
    cli_values v;
    ol_optim_params op;
    ol_train_params tp;
    ol_sched_params sp;
    cli_batch_config bc;
    memset(&sp, 0, sizeof sp);
    int rc = -1;
    int64_t total = 0, *steps = NULL;
    double *lr = NULL, *batch = NULL;
    if (load_options(r, &v) < 0 || cli_build_optim(&v, &op) || cli_build_train(&v, &tp) ||
        cli_build_run_plan(&v, op.lr, &tp, n, &bc, &sp, &total) || total > 10000000)
        goto done;
    if (sp.type == OL_SCHED_PLATEAU) /* its lr follows the evaluations: the logged steps say it */
        goto done;
    steps = malloc(sizeof *steps * (size_t)total);
    lr = malloc(sizeof *lr * (size_t)total);
    batch = malloc(sizeof *batch * (size_t)total);
    if (!steps || !lr || !batch || ol_train_step_batches(&tp, n, steps, total) != total)
        goto done;
    *peak = 0.0;
    for (int64_t t = 0; t < total; t++) {
        lr[t] = ol_train_lr(&tp, &sp, NULL, t, steps[t]);
        batch[t] = (double)steps[t];
        *peak = lr[t] > *peak ? lr[t] : *peak;
    }
    /* the steps the run took so far (a stopped or running one: not the rest of its plan) */
    if (r->steps_reached >= 1 && r->steps_reached < (double)total)
        total = (int64_t)r->steps_reached;
    if (agrees(r, lr, batch, total)) {
        *lr_out = lr;
        *batch_out = batch;
        *n_out = total;
        lr = batch = NULL;
        rc = 0;
    } else
        *peak = NAN;
done:
    free(steps);
    free(lr);
    free(batch);
    cli_free_sched(&sp);
    cli_free(&v);
    return rc;
}
