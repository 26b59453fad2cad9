/* Data-parallel options (mpirun -np N optimlab train ...). */
#include <stdio.h>
#include <string.h>

#include "common.h"

const cli_opt cli_dist_opts[] = {
    {"deterministic-reduce", CLI_FLAG, "0", NULL, "Distributed",
     "sum gradients in rank order (all-gather): bitwise the single-process run with --micro-batch-size B/N"},
    {"bucket-size", CLI_VALUE, "256", "KB", "Distributed",
     "gradient all-reduce bucket size; buckets start during backward as soon as their gradients are final"},
    {"check-replicas", CLI_FLAG, "0", NULL, "Distributed",
     "verify after every step (DiLoCo: every sync) that all ranks hold bitwise identical parameters"},
    {"comm-timeout", CLI_VALUE, "auto", "S", "Distributed",
     "end the job when a rank sees no progress for S seconds (a rank died, hangs or was stopped; 0 = never; auto: "
     "300 s before the first step, then max(60 s, 10 x the longest gap between steps or evaluations so far))"},
    {"powersgd-rank", CLI_VALUE, "0", "R", "Distributed",
     "PowerSGD: send rank-R factors of each weight gradient instead of the gradient (0 = exact all-reduce)"},
    {"powersgd-start-step", CLI_VALUE, "0", "S", "Distributed",
     "PowerSGD: the exact all-reduce for the first S steps (PyTorch's start_powerSGD_iter)"},
    {"powersgd-min-compression", CLI_VALUE, "2", "X", "Distributed",
     "PowerSGD: compress a tensor only when its factors are X times smaller; vectors are never compressed"},
    {"powersgd-no-error-feedback", CLI_FLAG, "0", NULL, "Distributed",
     "PowerSGD: drop the compression error instead of adding it to the next step's gradient"},
    {"powersgd-no-warm-start", CLI_FLAG, "0", NULL, "Distributed",
     "PowerSGD: a new random Q every step instead of the last step's"},
    {"diloco-h", CLI_VALUE, "0", "H", "Distributed",
     "DiLoCo: each rank takes H steps with --optimizer on its own shards, then the outer optimizer applies the "
     "averaged parameter change (0 = off)"},
    {"outer-optimizer", CLI_VALUE, "nesterov", "NAME", "Distributed",
     "DiLoCo outer optimizer (nesterov, sgd, or any --optimizer name); sgd with --outer-lr 1 --outer-momentum 0 "
     "is Local SGD"},
    {"outer-lr", CLI_VALUE, "0.7", "LR", "Distributed", "DiLoCo outer learning rate"},
    {"outer-momentum", CLI_VALUE, "0.9", "M", "Distributed", "DiLoCo outer momentum (SGD family)"},
    {NULL, 0, NULL, NULL, NULL, NULL}};

static int build_outer(cli_values *v, ol_optim_params *op)
{
    const char *name = cli_str(v, "outer-optimizer");
    ol_optim_type t;
    if (ol_optim_from_name(name, &t) < 0) {
        snprintf(v->err, sizeof v->err, "--outer-optimizer: unknown optimizer '%s' (nesterov, sgd, adam, ...)", name);
        return -1;
    }
    *op = ol_optim_default_params(t);
    if (t == OL_OPT_SFSGD || t == OL_OPT_SFADAMW) {
        snprintf(v->err, sizeof v->err, "--outer-optimizer: a Schedule-Free outer optimizer is not supported");
        return -1;
    }
    if (cli_double(v, "outer-lr", 0.0, 1e6, &op->lr))
        return -1;
    if (t != OL_OPT_SGD && t != OL_OPT_LARS && cli_given(v, "outer-momentum")) {
        snprintf(v->err, sizeof v->err, "--outer-momentum applies only to an SGD-family --outer-optimizer, not %s", name);
        return -1;
    }
    if (t == OL_OPT_SGD || t == OL_OPT_LARS) {
        if (cli_double(v, "outer-momentum", 0.0, 1.0, &op->momentum))
            return -1;
        op->nesterov = strcmp(name, "nesterov") == 0;
        if (op->nesterov && !(op->momentum > 0.0)) {
            snprintf(v->err, sizeof v->err, "--outer-optimizer nesterov needs --outer-momentum > 0");
            return -1;
        }
    }
    op->weight_decay = 0.0; /* the inner optimizer decays the weights */
    ol_ctx *tmp = ol_ctx_new(0);
    int rc = tmp ? ol_optim_validate(tmp, op) : -1;
    if (rc < 0)
        snprintf(v->err, sizeof v->err, "--outer-optimizer: %s", tmp ? ol_ctx_errmsg(tmp) : "out of memory");
    ol_ctx_free(tmp);
    return rc < 0 ? -1 : 0;
}

int cli_build_dist(cli_values *v, ol_train_params *tp)
{
    long long kb, rank, start, h;
    double t;
    if (cli_int(v, "bucket-size", 4, 1 << 20, &kb) || (strcmp(cli_str(v, "comm-timeout"), "auto") != 0 && cli_double(v, "comm-timeout", 0.0, 1e9, &t)) ||
        cli_int(v, "powersgd-rank", 0, 1 << 20, &rank) || cli_int(v, "powersgd-start-step", 0, INT64_MAX / 2, &start) ||
        cli_double(v, "powersgd-min-compression", 0.0, 1e9, &tp->powersgd.min_compression) ||
        cli_int(v, "diloco-h", 0, 1 << 30, &h))
        return -1;
    tp->bucket_bytes = (size_t)kb * 1024;
    tp->deterministic_reduce = cli_flag(v, "deterministic-reduce");
    tp->check_replicas = cli_flag(v, "check-replicas");
    tp->powersgd.rank = (int)rank;
    tp->powersgd.start_step = start;
    tp->powersgd.error_feedback = !cli_flag(v, "powersgd-no-error-feedback");
    tp->powersgd.warm_start = !cli_flag(v, "powersgd-no-warm-start");
    tp->diloco.h = (int)h;
    if (rank > 0 && h > 0) {
        snprintf(v->err, sizeof v->err,
                 "--powersgd-rank and --diloco-h exclude each other (DiLoCo sends no gradients to compress)");
        return -1;
    }
    static const char *const psgd[] = {"powersgd-start-step", "powersgd-min-compression",
                                       "powersgd-no-error-feedback", "powersgd-no-warm-start"};
    static const char *const outer[] = {"outer-optimizer", "outer-lr", "outer-momentum"};
    for (size_t i = 0; i < sizeof psgd / sizeof psgd[0]; i++)
        if (rank == 0 && cli_given(v, psgd[i])) {
            snprintf(v->err, sizeof v->err, "--%s applies only with --powersgd-rank R > 0", psgd[i]);
            return -1;
        }
    for (size_t i = 0; i < sizeof outer / sizeof outer[0]; i++)
        if (h == 0 && cli_given(v, outer[i])) {
            snprintf(v->err, sizeof v->err, "--%s applies only with --diloco-h H > 0", outer[i]);
            return -1;
        }
    if (h > 0 && build_outer(v, &tp->diloco.outer))
        return -1;
    return 0;
}

void cli_print_comm(const ol_train_params *tp, const ol_train_result *res)
{
    const double steps = res->steps > 0 ? (double)res->steps : 1.0;
    printf("communication (rank 0): %.1f MB sent, %.3f MB per step; %.2f s of %.2f s training waiting on it "
           "(exposed: %.1f ms per step)",
           res->comm_bytes / 1e6, res->step_comm_bytes / steps / 1e6, res->step_comm_time, res->train_time,
           1e3 * res->step_comm_time / steps);
    const double ratio = res->step_comm_bytes > 0 ? res->comm_dense_bytes / res->step_comm_bytes : 0.0;
    if (tp->powersgd.rank > 0)
        printf("; PowerSGD rank %d: %.1fx less than the exact all-reduce", tp->powersgd.rank, ratio);
    else if (tp->diloco.h > 0)
        printf("; DiLoCo H=%d: %lld sync%s, %.1fx less than an all-reduce every step", tp->diloco.h,
               (long long)res->syncs, res->syncs == 1 ? "" : "s", ratio);
    else
        printf("; %.0f%% of the gradient bytes all-reduced during backward", 100.0 * res->overlap);
    printf("\n");
}
