/* The training loop: gradient accumulation equals the large batch, same seed
 * and threads give bitwise-identical runs, metrics.jsonl has what it promises,
 * invalid parameters are rejected. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "optimlab.h"
#include "testutil.h"

static ol_model *make_model(ol_ctx *ctx, const char *arch, int batch)
{
    ol_model_params mp = ol_model_default_params();
    ol_model_params_set_arch(ctx, &mp, arch);
    mp.widths[0] = 64;
    mp.widths[1] = 32;
    mp.max_batch = batch;
    mp.seed = 3;
    ol_model *m = NULL;
    ASSERT_OK(ol_model_create(ctx, &mp, &m), ctx);
    return m;
}

static double max_rel_diff(const ol_paramset *a, const ol_paramset *b)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < a->numel; i++) {
        num = fmax(num, fabs((double)a->params[i] - b->params[i]));
        den = fmax(den, fabs((double)a->params[i]));
    }
    return num / den;
}

/* Four micro-batches of 64 equal one batch of 256 within float tolerance. */
static void test_accumulation(ol_ctx *ctx, const char *arch, int freeze_bn)
{
    ol_dataset d;
    ASSERT_OK(ol_dataset_synthetic(ctx, 256, 1, 28, 28, 10, 5, &d), ctx);
    const size_t per = 28 * 28;
    float *x = malloc(256 * per * sizeof(float));
    int32_t y[256];
    int64_t idx[256];
    for (int i = 0; i < 256; i++)
        idx[i] = i;
    ol_dataset_fill(&d, idx, 256, NULL, 0, 0, x, y);
    ol_model *a = make_model(ctx, arch, 256), *b = make_model(ctx, arch, 64);
    ol_optim_params op = ol_optim_default_params(OL_OPT_SGD);
    op.momentum = 0.9;
    op.lr = 0.05;
    ol_optim *oa = NULL, *ob = NULL;
    ASSERT_OK(ol_optim_create(ctx, &op, ol_model_paramset(a), &oa), ctx);
    ASSERT_OK(ol_optim_create(ctx, &op, ol_model_paramset(b), &ob), ctx);
    ol_train_params ta = ol_train_default_params(), tb = ta;
    ta.freeze_bn = tb.freeze_bn = freeze_bn;
    tb.micro_batch_size = 64;
    ol_optim_hyper h = {.lr = 0.05, .momentum = -1};
    ol_step_result ra, rb;
    for (int step = 0; step < 3; step++) {
        ASSERT_OK(ol_train_step(ctx, &ta, a, oa, x, y, 256, &h, &ra), ctx);
        ASSERT_OK(ol_train_step(ctx, &tb, b, ob, x, y, 256, &h, &rb), ctx);
        ASSERT_NEAR(ra.loss_sum, rb.loss_sum, 1e-5 * fabs(ra.loss_sum));
        ASSERT_EQ_INT(ra.correct, rb.correct);
        ASSERT_NEAR(ra.grad_norm, rb.grad_norm, 1e-5 * ra.grad_norm);
    }
    double diff = max_rel_diff(ol_model_paramset(a), ol_model_paramset(b));
    printf("  %s%s: 1x256 vs 4x64 after 3 steps: max |dp| / max |p| = %.3g\n", arch, freeze_bn ? " (BN eval)" : "",
           diff);
    ASSERT_TRUE(diff < 1e-5);
    ol_optim_free(oa);
    ol_optim_free(ob);
    ol_model_free(a);
    ol_model_free(b);
    free(x);
    ol_dataset_free(&d);
}

typedef struct {
    double *loss;
    int n, cap;
} losses;

static void record(void *user, const ol_step_info *s)
{
    losses *l = user;
    if (l->n < l->cap)
        l->loss[l->n++] = s->loss;
}

static int run(ol_ctx *ctx, const char *out, losses *l, float **params_out, size_t *numel)
{
    ol_dataset tr, te;
    ol_dataset_synthetic(ctx, 640, 1, 28, 28, 10, 11, &tr);
    ol_dataset_synthetic(ctx, 200, 1, 28, 28, 10, 12, &te);
    ol_model *m = make_model(ctx, "resnet8", 64);
    ol_optim_params op = ol_optim_default_params(OL_OPT_SGD);
    op.momentum = 0.9;
    op.nesterov = 1;
    op.weight_decay = 5e-4;
    ol_optim *o = NULL;
    ASSERT_OK(ol_optim_create(ctx, &op, ol_model_paramset(m), &o), ctx);
    ol_sched_params sp = ol_sched_default_params(OL_SCHED_COSINE);
    sp.base_lr = 0.1;
    sp.total_steps = 20;
    ol_train_params tp = ol_train_default_params();
    tp.epochs = 2;
    tp.batch_size = 64;
    tp.evals_per_epoch = 2;
    tp.log_every = 5;
    tp.aug.crop_pad = 2;
    tp.aug.hflip = 1;
    tp.seed = 7;
    tp.out_dir = out;
    ol_train_hooks hooks = {record, NULL, l};
    ol_train_result res;
    int rc = ol_train(ctx, &tp, m, o, &sp, &tr, &te, &hooks, &res);
    ASSERT_OK(rc, ctx);
    ASSERT_EQ_INT(res.steps, 20);
    ASSERT_EQ_INT(res.epochs_done, 2);
    *numel = ol_model_paramset(m)->numel;
    *params_out = malloc(*numel * sizeof(float));
    memcpy(*params_out, ol_model_paramset(m)->params, *numel * sizeof(float));
    ol_optim_free(o);
    ol_model_free(m);
    ol_dataset_free(&tr);
    ol_dataset_free(&te);
    return rc;
}

static void test_determinism_and_metrics(ol_ctx *ctx)
{
    char dir[] = "/tmp/optimlab-train-XXXXXX";
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    char out1[256], out2[256];
    snprintf(out1, sizeof out1, "%s/a", dir);
    snprintf(out2, sizeof out2, "%s/b", dir);
    double b1[64], b2[64];
    losses l1 = {b1, 0, 64}, l2 = {b2, 0, 64};
    float *p1, *p2;
    size_t n1, n2;
    run(ctx, out1, &l1, &p1, &n1);
    run(ctx, out2, &l2, &p2, &n2);
    ASSERT_EQ_INT(l1.n, 20);
    ASSERT_EQ_INT(l1.n, l2.n);
    ASSERT_TRUE(memcmp(b1, b2, sizeof(double) * (size_t)l1.n) == 0);
    ASSERT_TRUE(n1 == n2 && memcmp(p1, p2, n1 * sizeof(float)) == 0);
    printf("  same seed, same threads: %d step losses and %zu parameters bitwise identical: %s\n", l1.n, n1,
           memcmp(p1, p2, n1 * sizeof(float)) == 0 ? "yes" : "NO");

    /* metrics.jsonl: step records every 5 steps, 2 evals per epoch, epoch records, a summary;
     * identical between the runs except for timing fields */
    char path[300];
    snprintf(path, sizeof path, "%s/metrics.jsonl", out1);
    FILE *f = fopen(path, "r");
    ASSERT_TRUE(f != NULL);
    char line[4096];
    int steps = 0, evals = 0, epochs = 0, summary = 0;
    while (f && fgets(line, sizeof line, f)) {
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        ASSERT_TRUE(o != NULL);
        if (!o)
            continue;
        const char *type = json_string_value(json_object_get(o, "type"));
        if (type && strcmp(type, "step") == 0) {
            steps++;
            ASSERT_TRUE(json_is_number(json_object_get(o, "lr")) && json_is_number(json_object_get(o, "loss")) &&
                        json_is_number(json_object_get(o, "acc")) &&
                        json_is_number(json_object_get(o, "grad_norm")) &&
                        json_is_number(json_object_get(o, "samples_per_s")) &&
                        json_is_number(json_object_get(o, "elapsed")) && json_is_integer(json_object_get(o, "step")));
        } else if (type && (strcmp(type, "eval") == 0 || strcmp(type, "epoch") == 0)) {
            evals += strcmp(type, "eval") == 0;
            epochs += strcmp(type, "epoch") == 0;
            ASSERT_TRUE(json_is_number(json_object_get(o, "test_acc")) &&
                        json_is_number(json_object_get(o, "test_loss")) &&
                        json_is_number(json_object_get(o, "train_loss")) &&
                        json_is_number(json_object_get(o, "train_acc")));
        } else if (type && strcmp(type, "summary") == 0) {
            summary++;
            ASSERT_TRUE(json_is_number(json_object_get(o, "best_test_acc")) &&
                        json_is_number(json_object_get(o, "final_test_acc")));
        }
        json_decref(o);
    }
    if (f)
        fclose(f);
    ASSERT_EQ_INT(steps, 4);
    ASSERT_EQ_INT(evals, 2);
    ASSERT_EQ_INT(epochs, 2);
    ASSERT_EQ_INT(summary, 1);
    free(p1);
    free(p2);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ASSERT_EQ_INT(system(cmd), 0);
}

static void test_invalid(ol_ctx *ctx)
{
    ol_dataset tr;
    ol_dataset_synthetic(ctx, 64, 1, 28, 28, 10, 1, &tr);
    ol_model *m = make_model(ctx, "mlp", 16);
    ol_optim_params op = ol_optim_default_params(OL_OPT_SGD);
    ol_optim *o = NULL;
    ol_optim_create(ctx, &op, ol_model_paramset(m), &o);
    ol_sched_params sp = ol_sched_default_params(OL_SCHED_CONSTANT);
    ol_train_result res;
    ol_train_params tp = ol_train_default_params();
    tp.batch_size = 0;
    ASSERT_EQ_INT(ol_train(ctx, &tp, m, o, &sp, &tr, &tr, NULL, &res), OL_EINVAL);
    tp = ol_train_default_params();
    tp.epochs = 0;
    ASSERT_EQ_INT(ol_train(ctx, &tp, m, o, &sp, &tr, &tr, NULL, &res), OL_EINVAL);
    tp = ol_train_default_params();
    sp.warmup_steps = 1000;
    sp.total_steps = 10;
    ASSERT_EQ_INT(ol_train(ctx, &tp, m, o, &sp, &tr, &tr, NULL, &res), OL_ERANGE);
    ol_optim_free(o);
    ol_model_free(m);
    ol_dataset_free(&tr);
}

int main(void)
{
    ol_ctx *ctx = ol_ctx_new(2);
    test_accumulation(ctx, "mlp", 0);
    test_accumulation(ctx, "resnet8", 1);
    test_determinism_and_metrics(ctx);
    test_invalid(ctx);
    ol_ctx_free(ctx);
    return tu_finish("test_train");
}
