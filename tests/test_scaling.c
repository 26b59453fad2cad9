/* The scaling planner's cost model against hand-computed cases: ring, tree
 * and hierarchical all-reduce, the bucket overlap of the exact mode, the step
 * of every method, the bucket layout shared with ol_ddp, the profile and
 * PowerSGD's bytes, and the rejection of bad networks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optimlab.h"
#include "testutil.h"

static ol_net ring(double bw, double lat) { return (ol_net){OL_TOPO_RING, bw, lat, 1, 0.0, 0.0}; }

static void test_formulas(void)
{
    ol_net r = ring(1e9, 1e-6);
    /* 2(N-1)/N S/B + 2(N-1) a: N=4, 1 MB, 1 GB/s, 1 us -> 1.5 ms + 6 us */
    ASSERT_NEAR(ol_allreduce_time(&r, 4, 1e6), 1.506e-3, 1e-15);
    ASSERT_NEAR(ol_allreduce_time(&r, 2, 1e6), 1.002e-3, 1e-15);
    ASSERT_NEAR(ol_allreduce_time(&r, 1, 1e6), 0.0, 0.0);
    ASSERT_NEAR(ol_allreduce_ring(4, 1e6, 1e9, 1e-6), 1.506e-3, 1e-15);
    /* 2 ceil(log2 N) (a + S/B): N=5 and N=8 -> 6 (1 us + 1 ms) */
    ol_net t = r;
    t.topo = OL_TOPO_TREE;
    ASSERT_NEAR(ol_allreduce_time(&t, 5, 1e6), 6.006e-3, 1e-15);
    ASSERT_NEAR(ol_allreduce_time(&t, 8, 1e6), 6.006e-3, 1e-15);
    ASSERT_NEAR(ol_allreduce_time(&t, 2, 1e6), 2.002e-3, 1e-15);
    ASSERT_NEAR(ol_allreduce_time(&t, 9, 1e6), 8.008e-3, 1e-15);
    /* hier, 4 nodes x 4: ring inside (1.5e-5 + 12 us) + ring between nodes (1.506 ms) */
    ol_net h = {OL_TOPO_HIER, 1e9, 1e-6, 4, 1e11, 2e-6};
    ASSERT_NEAR(ol_allreduce_time(&h, 16, 1e6), 2.7e-5 + 1.506e-3, 1e-15);
    /* fewer workers than a node: the links inside it only, 1e-5 + 4 us */
    ASSERT_NEAR(ol_allreduce_time(&h, 2, 1e6), 1.4e-5, 1e-15);
    ASSERT_NEAR(ol_allreduce_time(&h, 4, 1e6), 2.7e-5, 1e-15);
    /* small messages: binomial trees; hier: inside (log2 4 = 2) and between (log2 2 = 1) */
    ASSERT_NEAR(ol_allreduce_small(&r, 4, 8.0), 4 * (1e-6 + 8e-9), 1e-18);
    ASSERT_NEAR(ol_allreduce_small(&h, 8, 8.0), 4 * (2e-6 + 8e-11) + 2 * (1e-6 + 8e-9), 1e-18);
}

static void test_overlap(void)
{
    ol_net r = ring(1e9, 0.0); /* N = 2: a bucket of b bytes takes b / 1e9 s */
    /* backward 10 ms; 1 MB ready at 2 ms (2-3), 2 MB at 2.5 ms waits for the link (3-5),
     * 1 MB at the end (10-11): 1 ms exposed, 4 ms of all-reduce */
    ol_scaling_bucket b[3] = {{2e-3, 1e6}, {2.5e-3, 2e6}, {10e-3, 1e6}};
    double busy;
    ASSERT_NEAR(ol_scaling_exposed(&r, 2, b, 3, 10e-3, &busy), 1e-3, 1e-15);
    ASSERT_NEAR(busy, 4e-3, 1e-15);
    /* communication longer than backward: 20 MB from 0 to 20 ms, then 1 MB 20-21 -> 11 ms exposed */
    ol_scaling_bucket c[2] = {{0.0, 20e6}, {10e-3, 1e6}};
    ASSERT_NEAR(ol_scaling_exposed(&r, 2, c, 2, 10e-3, NULL), 11e-3, 1e-15);
    /* everything hidden */
    ol_scaling_bucket d[2] = {{1e-3, 1e6}, {3e-3, 1e6}};
    ASSERT_NEAR(ol_scaling_exposed(&r, 2, d, 2, 10e-3, NULL), 0.0, 0.0);
    /* one worker: nothing to send */
    ASSERT_NEAR(ol_scaling_exposed(&r, 1, c, 2, 10e-3, NULL), 0.0, 0.0);
}

static void test_predict(ol_ctx *ctx)
{
    /* batch 10: forward 10 ms, backward 20 ms, update 5 ms -> 35 ms of compute */
    ol_scaling_bucket b[2] = {{0.5, 1e6}, {1.0, 1e6}};
    ol_scaling_workload w = {1e-3, 2e-3, 5e-3, b, 2, 2e6, 2e6};
    ol_net r = ring(1e9, 0.0);
    ol_plan_point p;
    ol_plan_variant exact = {OL_PLAN_EXACT, 0, 0, 0};
    ASSERT_OK(ol_scaling_predict(ctx, &w, &r, &exact, 1, 10, &p), ctx);
    ASSERT_NEAR(p.step, 35e-3, 1e-15);
    ASSERT_NEAR(p.efficiency, 1.0, 1e-15);
    ASSERT_NEAR(p.throughput, 10 / 35e-3, 1e-9);
    /* 2 workers: buckets ready at 10 and 20 ms of backward, 1 ms each: the second is exposed;
     * plus the 3 control all-reduces (4 + 24 + 16 bytes, tree, no latency) */
    ASSERT_OK(ol_scaling_predict(ctx, &w, &r, &exact, 2, 10, &p), ctx);
    const double ctl = 2 * 44 / 1e9;
    ASSERT_NEAR(p.comm, 1e-3 + ctl, 1e-15);
    ASSERT_NEAR(p.step, 36e-3 + ctl, 1e-15);
    ASSERT_NEAR(p.efficiency, 35e-3 / (36e-3 + ctl), 1e-12);
    ASSERT_NEAR(p.throughput, 20 / (36e-3 + ctl), 1e-9);
    /* PowerSGD, 4 workers, 1 us: two all-reduces (1.5e5/1e9 + 6 us, then 6 us) after backward,
     * controls 3 x 2 log2(4) (1 us + bytes/B), 2 ms of compression */
    ol_net r4 = ring(1e9, 1e-6);
    ol_plan_variant ps = {OL_PLAN_POWERSGD, 2, 1e5, 2e-3};
    ASSERT_OK(ol_scaling_predict(ctx, &w, &r4, &ps, 4, 10, &p), ctx);
    const double ctl4 = 4 * (3e-6 + 44 / 1e9);
    ASSERT_NEAR(p.compute, 37e-3, 1e-15);
    ASSERT_NEAR(p.comm, 1.5e-4 + 12e-6 + ctl4, 1e-15);
    ASSERT_NEAR(p.efficiency, 35e-3 / p.step, 1e-15);
    /* DiLoCo H = 10: the 2 MB sync (3 ms + 6 us) and the update (5 ms) once per 10 steps; per step
     * the agreement (4 bytes) and the sum (32 bytes), the stop flags (16 bytes) once per sync */
    ol_plan_variant dl = {OL_PLAN_DILOCO, 10, 0, 0};
    ASSERT_OK(ol_scaling_predict(ctx, &w, &r4, &dl, 4, 10, &p), ctx);
    ASSERT_NEAR(p.compute, 35.5e-3, 1e-15);
    ASSERT_NEAR(p.comm, 3.006e-4 + 4.016e-6 + 4.128e-6 + 4.064e-7, 1e-15);
    /* strong scaling is the same formula at the smaller per-worker batch */
    ASSERT_OK(ol_scaling_predict(ctx, &w, &r, &exact, 2, 5, &p), ctx);
    ASSERT_NEAR(p.compute, 20e-3, 1e-15);
}

static void test_bad_input(ol_ctx *ctx)
{
    ol_net n = ring(0.0, 1e-6);
    ASSERT_EQ_INT(ol_net_check(ctx, &n), OL_EINVAL);
    n.bandwidth = -5;
    ASSERT_EQ_INT(ol_net_check(ctx, &n), OL_EINVAL);
    n.bandwidth = NAN;
    ASSERT_EQ_INT(ol_net_check(ctx, &n), OL_EINVAL);
    n.bandwidth = INFINITY;
    ASSERT_EQ_INT(ol_net_check(ctx, &n), OL_EINVAL);
    n = ring(1e9, -1e-6);
    ASSERT_EQ_INT(ol_net_check(ctx, &n), OL_EINVAL);
    ol_net h = {OL_TOPO_HIER, 1e9, 1e-6, 4, 0.0, 1e-6};
    ASSERT_EQ_INT(ol_net_check(ctx, &h), OL_EINVAL);
    h.intra_bandwidth = 1e11;
    ASSERT_OK(ol_net_check(ctx, &h), ctx);
    ASSERT_EQ_INT(ol_net_check_workers(ctx, &h, 6), OL_EINVAL);
    ASSERT_OK(ol_net_check_workers(ctx, &h, 3), ctx);
    ASSERT_OK(ol_net_check_workers(ctx, &h, 8), ctx);
    ASSERT_EQ_INT(ol_net_check_workers(ctx, &h, 0), OL_EINVAL);
    ol_scaling_workload w = {1e-3, 2e-3, 0, NULL, 0, 1e6, 1e6};
    ol_plan_variant ex = {OL_PLAN_EXACT, 0, 0, 0}, dl = {OL_PLAN_DILOCO, 0, 0, 0};
    ol_plan_point p;
    ol_net r = ring(1e9, 0);
    ASSERT_EQ_INT(ol_scaling_predict(ctx, &w, &r, &ex, 2, 0.0, &p), OL_EINVAL);
    ASSERT_EQ_INT(ol_scaling_predict(ctx, &w, &r, &dl, 2, 8.0, &p), OL_EINVAL);
    ol_topology t;
    ASSERT_EQ_INT(ol_topology_from_name("mesh", &t), OL_EINVAL);
    ASSERT_OK(ol_topology_from_name("hier", &t), ctx);
    ASSERT_EQ_INT(t, OL_TOPO_HIER);
}

/* Tensors of 2048, 100, 3000 and 10 floats with 1024-float buckets: the last
 * two form one bucket (3000 + 10 >= 1024), the first two the other. */
static void test_bucket_layout(ol_ctx *ctx, ol_comm *comm)
{
    ol_paramset ps;
    memset(&ps, 0, sizeof ps);
    const int64_t sizes[4][2] = {{32, 64}, {100, 1}, {30, 100}, {10, 1}};
    for (int i = 0; i < 4; i++) {
        char name[8];
        snprintf(name, sizeof name, "t%d", i);
        ASSERT_TRUE(ol_paramset_add(ctx, &ps, name, sizes[i][1] > 1 ? OL_KIND_WEIGHT : OL_KIND_BIAS,
                                    sizes[i][1] > 1 ? 2 : 1, sizes[i]) >= 0);
    }
    ASSERT_OK(ol_paramset_finalize(ctx, &ps), ctx);
    size_t lo[4], hi[4];
    ASSERT_EQ_INT(ol_ddp_bucket_layout(&ps, 4096, lo, hi), 2);
    ASSERT_EQ_INT(lo[0], ps.t[2].offset);
    ASSERT_EQ_INT(hi[0], ps.numel);
    ASSERT_EQ_INT(lo[1], 0);
    ASSERT_EQ_INT(hi[1], ps.t[2].offset);
    /* one bucket for everything when a bucket must hold more than the buffer */
    ASSERT_EQ_INT(ol_ddp_bucket_layout(&ps, 1 << 20, lo, hi), 1);
    /* PowerSGD rank 2: the 32 x 64 and 30 x 100 matrices compress ((32 + 64) 2 and (30 + 100) 2
     * floats), the vectors are sent exactly (100 + 10): 562 floats */
    double sent, sec;
    ASSERT_OK(ol_scaling_measure_powersgd(ctx, comm, &ps, 2, 2, &sent, &sec), ctx);
    ASSERT_NEAR(sent, 4.0 * (96 * 2 + 130 * 2 + 110), 0.0);
    ASSERT_TRUE(sec > 0.0);
    ASSERT_OK(ol_scaling_measure_powersgd(ctx, comm, &ps, 2, 0, &sent, &sec), ctx);
    ASSERT_NEAR(sec, 0.0, 0.0);
    ol_paramset_free(&ps);
}

static void test_profile(ol_ctx *ctx)
{
    ol_model_params mp = ol_model_default_params();
    ASSERT_OK(ol_model_params_set_arch(ctx, &mp, "resnet8"), ctx);
    mp.in_h = mp.in_w = 12;
    mp.max_batch = 4;
    ol_model *m = NULL;
    ASSERT_OK(ol_model_create(ctx, &mp, &m), ctx);
    if (!m)
        return;
    ol_scaling_profile p;
    ASSERT_OK(ol_scaling_profile_model(ctx, m, 8, 2, 4096, &p), ctx);
    ASSERT_TRUE(p.fwd > 0 && p.bwd > 0 && p.update > 0);
    ASSERT_TRUE(p.nbuckets >= 2);
    double bytes = 0.0;
    for (int k = 0; k < p.nbuckets; k++) {
        ASSERT_TRUE(p.buckets[k].ready > 0.0 && p.buckets[k].ready <= 1.0);
        if (k > 0) /* backward finishes the buckets from the end of the buffer */
            ASSERT_TRUE(p.buckets[k].ready >= p.buckets[k - 1].ready);
        bytes += p.buckets[k].bytes;
    }
    ASSERT_NEAR(bytes, 4.0 * p.numel, 0.0);
    ol_scaling_workload w = ol_scaling_workload_from_profile(&p);
    ASSERT_NEAR(w.fwd_per_sample * 8, p.fwd, 1e-15);
    ASSERT_NEAR(w.diloco_bytes, 4.0 * (p.numel + p.bnumel), 0.0);
    /* the plot writes a file */
    const int workers[3] = {1, 2, 4};
    const double eff[3] = {1.0, 0.9, 0.7};
    ol_plan_series s = {"exact", workers, eff, 3};
    char path[] = "/tmp/test_scaling_XXXXXX";
    int fd = mkstemp(path);
    ASSERT_TRUE(fd >= 0);
    if (fd >= 0) {
        ASSERT_OK(ol_scaling_plot(ctx, &s, 1, NULL, path), ctx);
        FILE *f = fopen(path, "r");
        char head[8] = {0};
        ASSERT_TRUE(f && fread(head, 1, 4, f) == 4 && strncmp(head, "<svg", 4) == 0);
        if (f)
            fclose(f);
        remove(path);
    }
    ol_scaling_profile_free(&p);
    ol_model_free(m);
}

int main(int argc, char **argv)
{
    ol_ctx *ctx = ol_ctx_new(1);
    ol_comm *comm = NULL;
    ASSERT_OK(ol_comm_init(ctx, &argc, &argv, &comm), ctx);
    test_formulas();
    test_overlap();
    test_predict(ctx);
    test_bad_input(ctx);
    test_bucket_layout(ctx, comm);
    test_profile(ctx);
    ol_comm_finalize(comm);
    ol_ctx_free(ctx);
    return tu_finish("test_scaling");
}
