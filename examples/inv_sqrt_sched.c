/* A user schedule: inverse square root with a linear warm-up (Vaswani et al.
 * 2017, in the form of fairseq's inverse_sqrt):
 *   lr(t) = base_lr * (t+1)/w            for t + 1 <= w
 *   lr(t) = base_lr * sqrt(w / (t+1))    after,  w = warmup (steps)
 * A schedule is a pure function of the step; the library adds --warmup-*,
 * batch scaling and plotting around it like around the built-ins.
 *
 * Build: cc -shared -fPIC inv_sqrt_sched.c $(pkg-config --cflags --libs optimlab) -o inv_sqrt_sched.so
 * Run:   optimlab schedule --plugin ./inv_sqrt_sched.so --schedule inv-sqrt --sched-param warmup=500 ... */
#include <math.h>

#include <optimlab/sched.h>

enum { WARMUP = 0 };

static double inv_sqrt_lr(const double *params, int64_t step, int64_t total_steps, double base_lr)
{
    (void)total_steps; /* no end: the schedule decays forever */
    const double w = params[WARMUP], s = (double)step + 1.0;
    return s <= w ? base_lr * s / w : base_lr * sqrt(w / s);
}

static const ol_sched_algo inv_sqrt = {
    .name = "inv-sqrt",
    .summary = "inverse square root decay after a linear warm-up",
    .n_params = 1,
    .params = {{"warmup", 100.0, 1.0, 1e9, "warm-up steps w: peak at step w, then base_lr sqrt(w/t)"}},
    .lr = inv_sqrt_lr,
};

int optimlab_plugin_init(ol_ctx *ctx);
int optimlab_plugin_init(ol_ctx *ctx) { return ol_sched_register(ctx, &inv_sqrt); }
