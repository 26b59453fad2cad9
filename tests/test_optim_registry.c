/* The optimizer and schedule registry: built-ins and user algorithms are
 * found the same way, user algorithms live in their context only, a user
 * kernel sees the library's per-tensor coefficients, a user optimizer's state
 * is saved under its name, and malformed or duplicate registrations fail. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optimlab.h"
#include "testutil.h"

/* p -= lr * scale * g', with g' the library's effective gradient; counts steps in a scalar */
static int scaled_step(ol_ctx *ctx, const ol_optim_step_args *a)
{
    (void)ctx;
    const float scale = (float)a->hparam[0];
    for (int c = 0; c < a->nchunks; c++) {
        const ol_optim_chunk ch = a->chunks[c];
        const ol_optim_tcoef *tc = &a->tc[ch.tensor];
        for (size_t i = ch.begin; i < ch.end; i++) {
            float g = ((float)tc->gs * a->grads[i] + (float)tc->gp * a->params[i]) * (float)tc->ga;
            a->slot[0][i] = g;
            a->params[i] = a->params[i] * (float)tc->shrink - (float)tc->lr * scale * g;
        }
    }
    a->scalar[0] += 1.0;
    return OL_OK;
}

static void scaled_init(const ol_optim_step_args *a) { a->scalar[0] = 100.0; }

static const ol_optim_algo scaled = {
    .name = "scaled-sgd",
    .aliases = {{"ssgd", NULL}},
    .n_slots = 1,
    .slot_names = {"last_grad"},
    .n_scalars = 1,
    .scalar_names = {"calls"},
    .wd_style = OL_WD_COUPLED,
    .n_hparams = 1,
    .hparams = {{"scale", 1.0, 0.0, 10.0, "step multiplier"}},
    .init = scaled_init,
    .step = scaled_step,
};

static void test_register_and_find(ol_ctx *ctx)
{
    const ol_optim_algo *a;
    ASSERT_EQ_INT(ol_optim_algo_find(ctx, "scaled-sgd", &a), OL_ENAME);
    ASSERT_OK(ol_optim_register(ctx, &scaled), ctx);
    ASSERT_OK(ol_optim_algo_find(ctx, "ssgd", &a), ctx);
    ASSERT_TRUE(strcmp(a->name, "scaled-sgd") == 0);
    ASSERT_EQ_INT(ol_optim_algo_count(ctx), OL_OPT_COUNT + 1);
    ASSERT_EQ_INT(ol_optim_algo_count(NULL), OL_OPT_COUNT);
    /* built-ins are found through the same table, by name and alias */
    ASSERT_OK(ol_optim_algo_find(NULL, "fusedlamb", &a), ctx);
    ASSERT_TRUE(strcmp(a->name, "lamb") == 0);
    for (int t = 0; t < OL_OPT_COUNT; t++) {
        ol_optim_type back;
        ASSERT_OK(ol_optim_from_name(ol_optim_name((ol_optim_type)t), &back), ctx);
        ASSERT_EQ_INT((int)back, t);
    }
    /* another context does not see it (no globals) */
    ol_ctx *other = ol_ctx_new(1);
    ASSERT_EQ_INT(ol_optim_algo_find(other, "scaled-sgd", &a), OL_ENAME);
    ol_ctx_free(other);
    /* duplicates and malformed descriptors */
    ASSERT_EQ_INT(ol_optim_register(ctx, &scaled), OL_ENAME);
    ol_optim_algo bad = scaled;
    bad.name = "sgd";
    bad.aliases[0].name = NULL;
    ASSERT_EQ_INT(ol_optim_register(ctx, &bad), OL_ENAME);
    bad.name = "momentum"; /* a built-in's alias */
    ASSERT_EQ_INT(ol_optim_register(ctx, &bad), OL_ENAME);
    bad.name = "Bad Name";
    ASSERT_EQ_INT(ol_optim_register(ctx, &bad), OL_EINVAL);
    bad.name = "nostep";
    bad.step = NULL;
    ASSERT_EQ_INT(ol_optim_register(ctx, &bad), OL_EINVAL);
    bad = scaled;
    bad.name = "toomany";
    bad.aliases[0].name = NULL;
    bad.n_slots = OL_OPTIM_MAX_SLOTS + 1;
    ASSERT_EQ_INT(ol_optim_register(ctx, &bad), OL_EINVAL);
    bad.n_slots = 1;
    bad.hparams[0].def = 11.0; /* outside its own range */
    ASSERT_EQ_INT(ol_optim_register(ctx, &bad), OL_EINVAL);
}

static void make_ps(ol_ctx *ctx, ol_paramset *ps)
{
    memset(ps, 0, sizeof *ps);
    const int64_t nw = 6, nb = 3;
    ASSERT_OK(ol_paramset_add(ctx, ps, "w", OL_KIND_WEIGHT, 1, &nw), ctx);
    ASSERT_OK(ol_paramset_add(ctx, ps, "b", OL_KIND_BIAS, 1, &nb), ctx);
    ASSERT_OK(ol_paramset_finalize(ctx, ps), ctx);
    for (size_t i = 0; i < ps->numel; i++) {
        ps->params[i] = 0.5f - 0.125f * (float)i;
        ps->grads[i] = 0.25f * (float)i - 0.75f;
    }
}

/* The kernel gets lr_mult, wd_mult, coupled L2 and maximize through tc. */
static void test_user_step(ol_ctx *ctx)
{
    ol_paramset ps;
    make_ps(ctx, &ps);
    ol_optim_params op;
    ASSERT_OK(ol_optim_params_for(ctx, "scaled-sgd", &op), ctx);
    ASSERT_TRUE(op.type == OL_OPT_USER && op.hparam[0] == 1.0);
    ASSERT_EQ_INT(ol_optim_hparam_set(ctx, &op, "scale", 11.0), OL_ERANGE);
    ASSERT_EQ_INT(ol_optim_hparam_set(ctx, &op, "nope", 1.0), OL_ENAME);
    ASSERT_OK(ol_optim_hparam_set(ctx, &op, "scale", 2.0), ctx);
    op.weight_decay = 0.5;
    op.wd_mult[OL_KIND_BIAS] = 0.0;
    op.lr_mult[OL_KIND_BIAS] = 0.5;
    op.maximize = 1;
    ol_optim_params wrong = op;
    wrong.amsgrad = 1; /* an option scaled-sgd does not read */
    ol_optim *o;
    ASSERT_EQ_INT(ol_optim_create(ctx, &wrong, &ps, &o), OL_EINVAL);
    ASSERT_OK(ol_optim_create(ctx, &op, &ps, &o), ctx);
    ASSERT_TRUE(strcmp(ol_optim_get_name(o), "scaled-sgd") == 0);
    ASSERT_TRUE(*ol_optim_scalar(o, 0) == 100.0);
    float p0[64], g0[64]; /* tensors start at aligned offsets: numel counts the padding */
    ASSERT_TRUE(ps.numel <= 64);
    memcpy(p0, ps.params, ps.numel * sizeof(float));
    memcpy(g0, ps.grads, ps.numel * sizeof(float));
    const double lr = 0.25;
    ol_optim_hyper h = {.lr = lr, .momentum = -1.0};
    ASSERT_OK(ol_optim_step(ctx, o, &ps, &h), ctx);
    for (int t = 0; t < 2; t++)
        for (size_t i = ps.t[t].offset; i < ps.t[t].offset + ps.t[t].numel; i++) {
            const float wd = t == 0 ? 0.5f : 0.0f, tlr = t == 0 ? 0.25f : 0.125f;
            float g = (-1.0f * g0[i] + wd * p0[i]) * 1.0f;
            ASSERT_TRUE(ol_optim_slot(o, 0)[i] == g);
            ASSERT_TRUE(ps.params[i] == p0[i] * 1.0f - tlr * 2.0f * g);
        }
    ASSERT_TRUE(*ol_optim_scalar(o, 0) == 101.0);

    /* the state blob carries the name; a built-in with the same layout refuses it */
    size_t n = ol_optim_state_size(o);
    char *blob = malloc(n);
    ASSERT_OK(ol_optim_state_save(ctx, o, blob, n), ctx);
    ASSERT_TRUE(memcmp(blob, "OLOPTST2", 8) == 0);
    ol_optim *o2;
    ASSERT_OK(ol_optim_create(ctx, &op, &ps, &o2), ctx);
    ASSERT_OK(ol_optim_state_load(ctx, o2, blob, n), ctx);
    ASSERT_TRUE(ol_optim_steps(o2) == 1 && *ol_optim_scalar(o2, 0) == 101.0);
    ASSERT_TRUE(memcmp(ol_optim_slot(o2, 0), ol_optim_slot(o, 0), ps.numel * sizeof(float)) == 0);
    ol_optim_params sp = ol_optim_default_params(OL_OPT_SGD);
    sp.momentum = 0.9;
    ol_optim *s;
    ASSERT_OK(ol_optim_create(ctx, &sp, &ps, &s), ctx);
    ASSERT_EQ_INT(ol_optim_state_load(ctx, s, blob, n), OL_ESHAPE);
    size_t ns = ol_optim_state_size(s);
    char *sblob = malloc(ns);
    ASSERT_OK(ol_optim_state_save(ctx, s, sblob, ns), ctx);
    ASSERT_TRUE(memcmp(sblob, "OLOPTST1", 8) == 0); /* built-ins keep the old format */
    ASSERT_EQ_INT(ol_optim_state_load(ctx, o2, sblob, ns), OL_ESHAPE);
    free(blob);
    free(sblob);
    ol_optim_free(s);
    ol_optim_free(o2);
    ol_optim_free(o);
    ol_paramset_free(&ps);
}

static double halving(const double *p, int64_t step, int64_t total, double base_lr)
{
    (void)total;
    return base_lr * pow(0.5, floor((double)step / p[0]));
}

static void test_user_schedule(ol_ctx *ctx)
{
    static const ol_sched_algo algo = {.name = "halving", .n_params = 1,
                                       .params = {{"every", 10.0, 1.0, 1e6, "halve every N steps"}},
                                       .lr = halving};
    ol_sched_params sp;
    ASSERT_EQ_INT(ol_sched_params_for(ctx, "halving", &sp), OL_ENAME);
    ASSERT_OK(ol_sched_register(ctx, &algo), ctx);
    ASSERT_EQ_INT(ol_sched_register(ctx, &algo), OL_ENAME);
    ol_sched_algo clash = algo;
    clash.name = "cosine";
    ASSERT_EQ_INT(ol_sched_register(ctx, &clash), OL_ENAME);
    ASSERT_OK(ol_sched_params_for(ctx, "halving", &sp), ctx);
    ASSERT_TRUE(strcmp(ol_sched_params_name(&sp), "halving") == 0);
    ASSERT_EQ_INT(ol_sched_param_set(ctx, &sp, "every", 0.5), OL_ERANGE);
    ASSERT_EQ_INT(ol_sched_param_set(ctx, &sp, "evry", 4.0), OL_ENAME);
    ASSERT_OK(ol_sched_param_set(ctx, &sp, "every", 4.0), ctx);
    sp.base_lr = 0.8;
    sp.total_steps = 40;
    sp.steps_per_epoch = 10;
    sp.warmup_steps = 2; /* the library's warm-up in front, then the user function from 0 */
    ASSERT_OK(ol_sched_validate(ctx, &sp), ctx);
    ASSERT_TRUE(ol_sched_lr(&sp, 2) == 0.8);
    ASSERT_TRUE(ol_sched_lr(&sp, 6) == 0.4);
    ASSERT_TRUE(ol_sched_lr(&sp, 13) == 0.2); /* step 11 of the main part: 0.8 / 2^2 */
    ASSERT_TRUE(ol_sched_lr(&sp, 0) < 0.8);
    ol_sched_params builtin;
    ASSERT_OK(ol_sched_params_for(ctx, "cosine", &builtin), ctx);
    ASSERT_EQ_INT(ol_sched_param_set(ctx, &builtin, "every", 4.0), OL_ENAME);
}

int main(void)
{
    ol_ctx *ctx = ol_ctx_new(1);
    test_register_and_find(ctx);
    test_user_step(ctx);
    test_user_schedule(ctx);
    ol_ctx_free(ctx);
    return tu_finish("optim_registry");
}
