/* optimlab plan-scaling: the inputs shared by its parsing, measuring and reporting parts. */
#ifndef OL_CLI_PLAN_H
#define OL_CLI_PLAN_H

#include "common.h"
#include "optimlab/scaling.h"

#define PLAN_MAX_WORKERS 256
#define PLAN_MAX_VARIANTS 32

enum { PLAN_FROM_HERE = 0, PLAN_FROM_DEVICE, PLAN_FROM_RUN };

typedef struct {
    /* from the options */
    int workers[PLAN_MAX_WORKERS], nworkers;
    ol_net net;
    char net_desc[512];
    int global;   /* batch is the global batch (else per worker) */
    double batch;
    int profile_batch, profile_steps;
    size_t bucket_bytes;
    int compute_from;  /* PLAN_FROM_* */
    double target_sps; /* one worker's samples/s on the target (device, run) */
    ol_plan_variant var[PLAN_MAX_VARIANTS];
    int nvar;
    int psgd_given;
    double psgd_compute;
    /* built by plan_build_workload */
    char model_name[160];
    size_t nparams;
    char compute_note[1024], psgd_note[256];
    double run_bytes; /* median bytes per step recorded in the run (-1: none) */
    double scale;     /* target time / this machine's time, for every measured part */
    ol_scaling_profile prof;
    ol_scaling_bucket *own_buckets;
    ol_scaling_workload w;
    ol_ctx *ctx;
    ol_comm *comm;
    ol_model *m;
    ol_paramset shapes;
    int have_shapes;
} plan_inputs;

/* Measure or read one worker's compute and PowerSGD's bytes; 0 or an exit status (message printed). */
int plan_build_workload(cli_values *v, plan_inputs *in);
/* Predict every worker count and method; print the table or JSON, write the SVG. */
int plan_report(cli_values *v, plan_inputs *in);
void plan_inputs_free(plan_inputs *in);

#endif
