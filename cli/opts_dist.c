/* Data-parallel options (mpirun -np N optimlab train ...). */
#include "common.h"

const cli_opt cli_dist_opts[] = {
    {"deterministic-reduce", CLI_FLAG, "0", NULL, "Distributed",
     "sum gradients in rank order (all-gather): bitwise the single-process run with --micro-batch-size B/N"},
    {"bucket-size", CLI_VALUE, "256", "KB", "Distributed",
     "gradient all-reduce bucket size; buckets start during backward as soon as their gradients are final"},
    {"check-replicas", CLI_FLAG, "0", NULL, "Distributed",
     "verify after every step that all ranks hold bitwise identical parameters"},
    {"comm-timeout", CLI_VALUE, "600", "S", "Distributed",
     "end the job when a rank sees no progress for S seconds (a rank died or hangs; 0 = never)"},
    {NULL, 0, NULL, NULL, NULL, NULL}};

int cli_build_dist(cli_values *v, ol_train_params *tp)
{
    long long kb;
    double t;
    if (cli_int(v, "bucket-size", 4, 1 << 20, &kb) || cli_double(v, "comm-timeout", 0.0, 1e9, &t))
        return -1;
    tp->bucket_bytes = (size_t)kb * 1024;
    tp->deterministic_reduce = cli_flag(v, "deterministic-reduce");
    tp->check_replicas = cli_flag(v, "check-replicas");
    return 0;
}
