/* Grid files of optimlab sweep: fixed options, lists of values whose
 * cartesian product makes the runs, and explicit extra runs.
 *
 *     out: runs/large-batch      # the sweep directory (default: runs/<file name>)
 *     group-by: optimizer        # optional: passed to the final report
 *     fixed: {model: resnet20, epochs: 10}
 *     grid:
 *       optimizer: [sgd, lamb]
 *       batch-size: [128, 4096]
 *     runs:                      # each: the fixed options and these
 *       - {optimizer: lars, batch-size: 4096, name: lars-4096}
 *     lr-find: {sweep-lrs: "0.01,0.1,1", sweep-steps: 100}   # optional: see below
 *
 * With lr-find (a mapping of lr-find options, or true), each run that sets
 * no lr gets the best of `optimlab lr-find --mode sweep` on its configuration.
 *
 * Each configuration is named after the options whose values differ between
 * the configurations (batch-size=128,optimizer=sgd), unless it has a name. */
#ifndef OL_CLI_SWEEP_H
#define OL_CLI_SWEEP_H

#include <stdio.h>

#include <stddef.h>

typedef struct {
    char *key, *val; /* option name and value as text ("" = the default) */
} sweep_kv;

typedef struct {
    char name[256];
    sweep_kv *kv;
    int n, cap;
    int line; /* where it comes from in the grid file */
} sweep_conf;

typedef struct {
    char out[4096];
    char group_by[128];
    sweep_conf *conf;
    int nconf;
    int lr_find;        /* pick the lr of runs without one with lr-find --mode sweep */
    sweep_conf lrfind;  /* its options (name unused) */
} sweep_grid;

/* Parse path and expand it into configurations, named. Returns 0, or -1 with
 * "path:line: what is wrong" in err. Option names and values are checked by
 * the caller (the train parser). */
int sweep_grid_load(const char *path, sweep_grid *g, char *err, size_t cap);
/* The same from an open stream (not closed); path names it in messages. */
int sweep_grid_load_stream(FILE *f, const char *path, sweep_grid *g, char *err, size_t cap);
/* --set KEY=VALUE: KEY takes VALUE in every configuration (added, or replacing
 * the grid file's value). KEY must not vary between the configurations, so the
 * run names stay those of the file. Returns 0, or -1 with the reason in err. */
int sweep_grid_set(sweep_grid *g, const char *kv, char *err, size_t cap);
void sweep_grid_free(sweep_grid *g);
/* The value of key in c, or NULL. */
const char *sweep_conf_get(const sweep_conf *c, const char *key);

#endif
