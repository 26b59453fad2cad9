/* Scaling planner: alpha-beta cost model (include/optimlab/scaling.h has the formulas). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "optimlab/optim.h"
#include "optimlab/scaling.h"
#include "tools/svg.h"

/* optimlab's per-step control all-reduces (src/train/train.c): the error
 * agreement (one int), the loss/accuracy/bad-step sum (3 doubles; DiLoCo 4)
 * and the stop flags (2 doubles; DiLoCo only at syncs). */
#define CTL_AGREE 4.0
#define CTL_SUM 24.0
#define CTL_SUM_LOCAL 32.0
#define CTL_STOP 16.0

static const char *const topo_names[OL_TOPO_COUNT] = {"ring", "tree", "hier"};

const char *ol_topology_name(ol_topology t) { return t >= 0 && t < OL_TOPO_COUNT ? topo_names[t] : "?"; }

int ol_topology_from_name(const char *name, ol_topology *out)
{
    for (int i = 0; i < OL_TOPO_COUNT; i++)
        if (name && strcmp(name, topo_names[i]) == 0) {
            *out = (ol_topology)i;
            return OL_OK;
        }
    return OL_EINVAL;
}

static int bad_bw(double b) { return !(b > 0.0) || !isfinite(b); }
static int bad_lat(double a) { return !(a >= 0.0) || !isfinite(a); }

int ol_net_check(ol_ctx *ctx, const ol_net *net)
{
    if (net->topo < 0 || net->topo >= OL_TOPO_COUNT)
        return ol__err(ctx, OL_EINVAL, "unknown topology %d", (int)net->topo);
    if (bad_bw(net->bandwidth))
        return ol__err(ctx, OL_EINVAL, "link bandwidth must be positive and finite, got %g bytes/s", net->bandwidth);
    if (bad_lat(net->latency))
        return ol__err(ctx, OL_EINVAL, "latency must be zero or positive and finite, got %g s", net->latency);
    if (net->topo == OL_TOPO_HIER) {
        if (net->gpus_per_node < 1)
            return ol__err(ctx, OL_EINVAL, "hier topology: GPUs per node must be at least 1, got %d",
                           net->gpus_per_node);
        if (bad_bw(net->intra_bandwidth))
            return ol__err(ctx, OL_EINVAL, "intra-node bandwidth must be positive and finite, got %g bytes/s",
                           net->intra_bandwidth);
        if (bad_lat(net->intra_latency))
            return ol__err(ctx, OL_EINVAL, "intra-node latency must be zero or positive and finite, got %g s",
                           net->intra_latency);
    }
    return OL_OK;
}

int ol_net_check_workers(ol_ctx *ctx, const ol_net *net, int n)
{
    if (n < 1)
        return ol__err(ctx, OL_EINVAL, "worker count must be at least 1, got %d", n);
    if (net->topo == OL_TOPO_HIER && n > net->gpus_per_node && n % net->gpus_per_node != 0)
        return ol__err(ctx, OL_EINVAL, "%d workers do not fill nodes of %d GPUs (hier: a multiple of %d, or fewer)",
                       n, net->gpus_per_node, net->gpus_per_node);
    return OL_OK;
}

static int ceil_log2(int n)
{
    int k = 0;
    while ((1LL << k) < (long long)n)
        k++;
    return k;
}

double ol_allreduce_ring(int n, double bytes, double bandwidth, double latency)
{
    if (n <= 1)
        return 0.0;
    return 2.0 * (n - 1) / n * bytes / bandwidth + 2.0 * (n - 1) * latency;
}

double ol_allreduce_tree(int n, double bytes, double bandwidth, double latency)
{
    if (n <= 1)
        return 0.0;
    return 2.0 * ceil_log2(n) * (latency + bytes / bandwidth);
}

/* Workers per node and nodes of a hier placement. */
static void placement(const ol_net *net, int n, int *g, int *m)
{
    *g = n < net->gpus_per_node ? n : net->gpus_per_node;
    if (*g < 1)
        *g = 1;
    *m = (n + *g - 1) / *g;
}

double ol_allreduce_time(const ol_net *net, int n, double bytes)
{
    if (n <= 1)
        return 0.0;
    switch (net->topo) {
    case OL_TOPO_TREE:
        return ol_allreduce_tree(n, bytes, net->bandwidth, net->latency);
    case OL_TOPO_HIER: {
        int g, m;
        placement(net, n, &g, &m);
        return ol_allreduce_ring(g, bytes, net->intra_bandwidth, net->intra_latency) +
               ol_allreduce_ring(m, bytes, net->bandwidth, net->latency);
    }
    default:
        return ol_allreduce_ring(n, bytes, net->bandwidth, net->latency);
    }
}

double ol_allreduce_small(const ol_net *net, int n, double bytes)
{
    if (n <= 1)
        return 0.0;
    if (net->topo != OL_TOPO_HIER)
        return ol_allreduce_tree(n, bytes, net->bandwidth, net->latency);
    int g, m;
    placement(net, n, &g, &m);
    return ol_allreduce_tree(g, bytes, net->intra_bandwidth, net->intra_latency) +
           ol_allreduce_tree(m, bytes, net->bandwidth, net->latency);
}

double ol_scaling_exposed(const ol_net *net, int n, const ol_scaling_bucket *b, int nb, double backward, double *busy)
{
    double t = 0.0, sum = 0.0;
    for (int k = 0; k < nb; k++) {
        const double c = ol_allreduce_time(net, n, b[k].bytes);
        t = (b[k].ready > t ? b[k].ready : t) + c;
        sum += c;
    }
    if (busy)
        *busy = sum;
    return t > backward ? t - backward : 0.0;
}

/* The exact mode's exposed all-reduce: buckets ready at fractions of backward. */
static double exact_exposed(const ol_scaling_workload *w, const ol_net *net, int n, double bwd, double *busy)
{
    ol_scaling_bucket one = {bwd, w->grad_bytes}, *b = &one;
    int nb = 1;
    if (w->nbuckets > 0) {
        b = malloc((size_t)w->nbuckets * sizeof *b);
        if (!b)
            return NAN;
        for (int k = 0; k < w->nbuckets; k++)
            b[k] = (ol_scaling_bucket){w->buckets[k].ready * bwd, w->buckets[k].bytes};
        nb = w->nbuckets;
    }
    double e = ol_scaling_exposed(net, n, b, nb, bwd, busy);
    if (b != &one)
        free(b);
    return e;
}

int ol_scaling_predict(ol_ctx *ctx, const ol_scaling_workload *w, const ol_net *net, const ol_plan_variant *v, int n,
                       double batch, ol_plan_point *out)
{
    memset(out, 0, sizeof *out);
    OL__TRY(ol_net_check(ctx, net));
    OL__TRY(ol_net_check_workers(ctx, net, n));
    if (!(batch > 0.0) || !isfinite(batch))
        return ol__err(ctx, OL_EINVAL, "per-worker batch must be positive, got %g", batch);
    if (!(w->fwd_per_sample >= 0.0) || !(w->bwd_per_sample >= 0.0) || !(w->update >= 0.0) ||
        !(w->fwd_per_sample + w->bwd_per_sample > 0.0))
        return ol__err(ctx, OL_EINVAL, "workload: compute times must be non-negative with some forward/backward time");
    if (v->method == OL_PLAN_POWERSGD && (v->param < 1 || !(v->sent_bytes >= 0.0) || !(v->compression >= 0.0)))
        return ol__err(ctx, OL_EINVAL, "PowerSGD: rank %d, %g bytes, %g s compression", v->param, v->sent_bytes,
                       v->compression);
    if (v->method == OL_PLAN_DILOCO && v->param < 1)
        return ol__err(ctx, OL_EINVAL, "DiLoCo needs H >= 1, got %d", v->param);
    if (v->method < 0 || v->method >= OL_PLAN_COUNT)
        return ol__err(ctx, OL_EINVAL, "unknown method %d", (int)v->method);
    const double fwd = batch * w->fwd_per_sample, bwd = batch * w->bwd_per_sample, base = fwd + bwd + w->update;
    double compute = base, comm = 0.0, busy = 0.0;
    const double ctl = ol_allreduce_small(net, n, CTL_AGREE) + ol_allreduce_small(net, n, CTL_SUM) +
                       ol_allreduce_small(net, n, CTL_STOP);
    switch (v->method) {
    case OL_PLAN_EXACT:
        if (n > 1) {
            comm = exact_exposed(w, net, n, bwd, &busy);
            if (isnan(comm))
                return ol__err(ctx, OL_ENOMEM, "out of memory");
            comm += ctl;
        }
        break;
    case OL_PLAN_POWERSGD: /* after backward, no overlap: P's (with the vectors) then Q's */
        compute += v->compression;
        busy = ol_allreduce_time(net, n, v->sent_bytes) + ol_allreduce_time(net, n, 0.0);
        comm = n > 1 ? busy + ctl : 0.0;
        break;
    default: { /* DiLoCo: the sync's all-reduce and outer step once per H steps */
        const double h = (double)v->param;
        compute += w->update / h;
        busy = ol_allreduce_time(net, n, w->diloco_bytes) / h;
        if (n > 1)
            comm = busy + ol_allreduce_small(net, n, CTL_AGREE) + ol_allreduce_small(net, n, CTL_SUM_LOCAL) +
                   ol_allreduce_small(net, n, CTL_STOP) / h;
        break;
    }
    }
    out->compute = compute;
    out->comm = comm;
    out->step = compute + comm;
    out->throughput = n * batch / out->step;
    out->efficiency = base / out->step;
    out->busy = busy;
    return OL_OK;
}

/* The backward hook's record: when each bucket's gradients became final. */
typedef struct {
    const size_t *lo;
    double *ready;
    int nb;
    double t0;
} hook_rec;

static void on_backward(void *user, size_t final_from)
{
    hook_rec *r = user;
    const double t = ol__now() - r->t0;
    for (int k = 0; k < r->nb; k++)
        if (r->ready[k] < 0.0 && r->lo[k] >= final_from)
            r->ready[k] = t;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void ol_scaling_profile_free(ol_scaling_profile *p)
{
    if (!p)
        return;
    free(p->buckets);
    p->buckets = NULL;
    p->nbuckets = 0;
}

/* Random inputs in [-1, 1) and cyclic labels, as bench train. */
static void fill_inputs(float *x, size_t n, int32_t *y, int batch, int classes)
{
    uint64_t s = 88172645463325252ULL;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        x[i] = (float)((double)(s >> 11) * 0x1.0p-52 - 1.0);
    }
    for (int i = 0; i < batch; i++)
        y[i] = i % classes;
}

typedef struct {
    float *x;
    int32_t *y;
    size_t *lo;
    double *t; /* steps x (3 + nb): fwd, bwd, update, ready fractions */
    ol_optim *opt;
} prof_bufs;

static void prof_bufs_free(prof_bufs *b)
{
    free(b->x);
    free(b->y);
    free(b->lo);
    free(b->t);
    ol_optim_free(b->opt);
}

static int profile_step(ol_ctx *ctx, ol_model *m, prof_bufs *pb, hook_rec *rec, int batch, double *row)
{
    ol_paramset *ps = ol_model_paramset(m);
    double loss;
    int correct;
    double t0 = ol__now();
    ol_model_zero_grads(m);
    OL__TRY(ol_model_forward(ctx, m, pb->x, batch, 1));
    OL__TRY(ol_model_loss(ctx, m, pb->y, batch, 0.0f, 1.0f / (float)batch, &loss, &correct));
    double t1 = ol__now();
    for (int k = 0; k < rec->nb; k++)
        rec->ready[k] = -1.0;
    rec->t0 = t1;
    OL__TRY(ol_model_backward(ctx, m));
    double t2 = ol__now();
    ol_optim_hyper h = {.lr = 0.01, .momentum = -1};
    OL__TRY(ol_optim_step(ctx, pb->opt, ps, &h));
    double t3 = ol__now();
    row[0] = t1 - t0;
    row[1] = t2 - t1;
    row[2] = t3 - t2;
    for (int k = 0; k < rec->nb; k++)
        rec->ready[k] = (rec->ready[k] < 0.0 ? row[1] : rec->ready[k]) / (row[1] > 0.0 ? row[1] : 1.0);
    return OL_OK;
}

int ol_scaling_profile_model(ol_ctx *ctx, ol_model *m, int batch, int steps, size_t bucket_bytes,
                             ol_scaling_profile *out)
{
    memset(out, 0, sizeof *out);
    if (batch < 1 || steps < 1)
        return ol__err(ctx, OL_EINVAL, "profile: batch %d and steps %d must be at least 1", batch, steps);
    ol_paramset *ps = ol_model_paramset(m);
    const ol_model_params *mp = ol_model_get_params(m);
    OL__TRY(ol_model_reserve(ctx, m, batch));
    const size_t nt = (size_t)(ps->n > 0 ? ps->n : 1), nin = (size_t)batch * mp->in_c * mp->in_h * mp->in_w;
    prof_bufs pb = {0};
    pb.x = malloc(nin * sizeof(float));
    pb.y = malloc((size_t)batch * sizeof(int32_t));
    pb.lo = malloc(2 * nt * sizeof(size_t));
    out->buckets = calloc(nt, sizeof *out->buckets);
    const int nb = pb.lo ? ol_ddp_bucket_layout(ps, bucket_bytes ? bucket_bytes : 256 * 1024, pb.lo, pb.lo + nt) : 0;
    const size_t row = 3 + (size_t)nb;
    pb.t = malloc((size_t)(steps + 1) * row * sizeof(double));
    if (!pb.x || !pb.y || !pb.lo || !pb.t || !out->buckets) {
        prof_bufs_free(&pb);
        ol_scaling_profile_free(out);
        return ol__err(ctx, OL_ENOMEM, "out of memory for the profile");
    }
    fill_inputs(pb.x, nin, pb.y, batch, ol_model_num_classes(m));
    ol_optim_params op = ol_optim_default_params(OL_OPT_SGD);
    op.lr = 0.01;
    op.momentum = 0.9;
    int rc = ol_optim_create(ctx, &op, ps, &pb.opt);
    hook_rec rec = {pb.lo, NULL, nb, 0.0};
    ol_model_set_backward_hook(m, on_backward, &rec);
    /* step 0 warms up (primitive creation, page faults) */
    for (int s = 0; rc >= 0 && s <= steps; s++) {
        double *r = pb.t + (size_t)s * row;
        rec.ready = r + 3;
        rc = profile_step(ctx, m, &pb, &rec, batch, r);
    }
    ol_model_set_backward_hook(m, NULL, NULL);
    if (rc >= 0) {
        double *col = malloc((size_t)steps * sizeof(double));
        if (!col)
            rc = ol__err(ctx, OL_ENOMEM, "out of memory for the profile");
        for (size_t c = 0; rc >= 0 && c < row; c++) {
            for (int s = 0; s < steps; s++)
                col[s] = pb.t[(size_t)(s + 1) * row + c];
            const double med = median(col, steps);
            if (c == 0)
                out->fwd = med;
            else if (c == 1)
                out->bwd = med;
            else if (c == 2)
                out->update = med;
            else
                out->buckets[c - 3] = (ol_scaling_bucket){med, (double)(pb.lo[nt + c - 3] - pb.lo[c - 3]) * 4.0};
        }
        free(col);
    }
    prof_bufs_free(&pb);
    if (rc < 0) {
        ol_scaling_profile_free(out);
        return rc;
    }
    out->batch = batch;
    out->nbuckets = nb;
    out->numel = ps->numel;
    out->bnumel = ps->bnumel;
    return OL_OK;
}

ol_scaling_workload ol_scaling_workload_from_profile(const ol_scaling_profile *p)
{
    ol_scaling_workload w;
    memset(&w, 0, sizeof w);
    const double b = p->batch > 0 ? (double)p->batch : 1.0;
    w.fwd_per_sample = p->fwd / b;
    w.bwd_per_sample = p->bwd / b;
    w.update = p->update;
    w.buckets = p->buckets;
    w.nbuckets = p->nbuckets;
    w.grad_bytes = (double)p->numel * 4.0;
    w.diloco_bytes = (double)(p->numel + p->bnumel) * 4.0;
    return w;
}

int ol_scaling_measure_powersgd(ol_ctx *ctx, ol_comm *comm, ol_paramset *ps, int r, int reps, double *sent_bytes,
                                double *seconds)
{
    *sent_bytes = *seconds = 0.0;
    if (ol_comm_size(comm) != 1)
        return ol__err(ctx, OL_EINVAL, "measuring PowerSGD's compute needs a single-process communicator");
    if (reps < 0)
        return ol__err(ctx, OL_EINVAL, "PowerSGD measurement: reps %d must not be negative", reps);
    ol_powersgd_params pp = ol_powersgd_default_params();
    pp.rank = r;
    ol_powersgd *p;
    OL__TRY(ol_powersgd_create(ctx, comm, ps, &pp, &p));
    size_t sent, dense;
    ol_powersgd_sizes(p, &sent, &dense);
    *sent_bytes = (double)sent * sizeof(float);
    if (reps == 0) {
        ol_powersgd_free(p);
        return OL_OK;
    }
    double *t = malloc((size_t)(reps + 1) * sizeof(double));
    int rc = t ? OL_OK : ol__err(ctx, OL_ENOMEM, "out of memory");
    uint64_t s = 0x9E3779B97F4A7C15ULL;
    for (int i = 0; rc >= 0 && i <= reps; i++) { /* the first call warms up (and has no warm Q) */
        for (size_t j = 0; j < ps->numel; j++) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ps->grads[j] = (float)((double)(s >> 11) * 0x1.0p-52 - 0.5) * 1e-2f;
        }
        double t0 = ol__now();
        rc = ol_powersgd_reduce(ctx, p, ps, i);
        if (rc >= 0)
            ol_powersgd_commit(p);
        t[i] = ol__now() - t0;
    }
    if (rc >= 0)
        *seconds = median(t + 1, reps);
    free(t);
    ol_powersgd_free(p);
    return rc;
}

int ol_scaling_plot(ol_ctx *ctx, const ol_plan_series *s, int ns, const char *title, const char *path)
{
    double xlo = INFINITY, xhi = 0.0;
    for (int i = 0; i < ns; i++)
        for (int j = 0; j < s[i].n; j++) {
            xlo = s[i].workers[j] < xlo ? s[i].workers[j] : xlo;
            xhi = s[i].workers[j] > xhi ? s[i].workers[j] : xhi;
        }
    if (!(xhi >= 1.0))
        return ol__err(ctx, OL_EINVAL, "scaling plot: no points");
    if (xhi <= xlo)
        xhi = xlo * 2.0;
    ol__svg g;
    OL__TRY(ol__svg_begin(ctx, &g, 900, 520, xlo, xhi, 0.0, 1.05, 1, 0));
    ol__svg_axes(&g, title ? title : "scaling efficiency", "workers", "scaling efficiency");
    const char *labels[16], *colors[16];
    int nl = 0;
    for (int i = 0; i < ns; i++) {
        double *x = malloc((size_t)(s[i].n > 0 ? s[i].n : 1) * sizeof(double));
        if (!x) {
            ol__svg_free(&g);
            return ol__err(ctx, OL_ENOMEM, "out of memory");
        }
        for (int j = 0; j < s[i].n; j++)
            x[j] = s[i].workers[j];
        ol__svg_polyline(&g, x, s[i].efficiency, s[i].n, ol__svg_color(i), 2.0, 0);
        for (int j = 0; j < s[i].n; j++)
            ol__svg_marker(&g, x[j], s[i].efficiency[j], 3, ol__svg_color(i));
        free(x);
        if (nl < 16) {
            labels[nl] = s[i].label;
            colors[nl++] = ol__svg_color(i);
        }
    }
    ol__svg_legend(&g, labels, colors, nl);
    int rc = ol__svg_save(ctx, &g, path);
    ol__svg_free(&g);
    return rc;
}
