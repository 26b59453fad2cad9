/* Golden test of the models against PyTorch.
 *
 * tests/gen/gen_model_golden.py builds the same networks in PyTorch (the MLP,
 * akamaster's CIFAR ResNets with shortcut A and B and without skips,
 * torchvision's ResNet-18, nanoGPT's GPT-2 with a tied LM head), fills every
 * parameter and BN buffer from a hash
 * formula, runs one training-mode forward/backward with label-smoothed cross
 * entropy and an eval-mode forward in float64, and stores logits, loss, every
 * parameter gradient and the updated running statistics in
 * tests/fixtures/golden/<case>.json (big tensors as sampled elements plus sum,
 * L2 norm and max |v|). This test builds the nets with ol_model_create, matches
 * the tensors BY NAME (a name PyTorch has and we lack, or the reverse, fails),
 * sets them with the same formula, runs the same computation on every backend
 * and layout, and compares.
 *
 * Error metric, per tensor: max |ours - torch| / max |torch| over the stored
 * elements; |sum difference| / (max |torch| * sqrt(numel)); relative L2-norm
 * difference. Tolerance 1e-4: float32 accumulation in a different order
 * (torch's own float32 run is within 1.4e-5 of float64 on every case; the
 * fixtures record that as torch_f32_err). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optimlab.h"
#include "testutil.h"

#define TOL 1e-4

static const char *g_dir = "fixtures/golden";

typedef struct {
    const char *label;
    ol_backend be;
    int channel_block;
    int small_only; /* skip the big nets: blas runs the reference convolutions, only its GEMM differs */
} variant;

static const variant variants[] = {
    {"ref", OL_BACKEND_REF, 0, 0},           {"blas", OL_BACKEND_BLAS, 0, 1},
    {"onednn", OL_BACKEND_ONEDNN, 0, 0},     {"onednn/nchw", OL_BACKEND_ONEDNN, 1, 0},
    {"onednn/blocked8", OL_BACKEND_ONEDNN, 8, 0},
};

/* The generator's value formula (see gen_model_golden.py). */
static uint32_t lowbias32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

static void fill(float *p, size_t n, int stream, double center, double scale)
{
    const uint32_t base = 0x9E3779B9U * (uint32_t)(stream + 1);
    for (size_t i = 0; i < n; i++) {
        double u = (double)lowbias32((uint32_t)i + base) / 4294967296.0;
        double t = scale * (2.0 * u - 1.0);
        p[i] = (float)(center + t);
    }
}

static double num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_number(v)) {
        TU_FAIL("fixture: '%s' missing or not a number", key);
        return NAN;
    }
    return json_number_value(v);
}

/* Compare a stored tensor record (numel, sum, l2, absmax, [idx], val) with
 * got[0..numel); returns the worst normalised error. */
static double cmp_record(json_t *rec, const float *got, size_t numel, const char *what)
{
    double absmax = num(rec, "absmax"), l2 = num(rec, "l2"), sum = num(rec, "sum");
    if ((size_t)num(rec, "numel") != numel) {
        TU_FAIL("%s: %zu elements, PyTorch has %.0f", what, numel, num(rec, "numel"));
        return INFINITY;
    }
    double scale = absmax > 0 ? absmax : 1.0, err = 0.0;
    json_t *idx = json_object_get(rec, "idx"), *val = json_object_get(rec, "val");
    size_t nv = json_array_size(val);
    if (!idx && nv != numel) {
        TU_FAIL("%s: fixture holds %zu of %zu values and no indices", what, nv, numel);
        return INFINITY;
    }
    for (size_t j = 0; j < nv; j++) {
        size_t i = idx ? (size_t)json_integer_value(json_array_get(idx, j)) : j;
        if (i >= numel) {
            TU_FAIL("%s: fixture index %zu out of range", what, i);
            return INFINITY;
        }
        double e = fabs((double)got[i] - json_number_value(json_array_get(val, j))) / scale;
        if (!(e <= err))
            err = e; /* NaN propagates */
    }
    double s = 0.0, ss = 0.0;
    for (size_t i = 0; i < numel; i++) {
        s += got[i];
        ss += (double)got[i] * got[i];
    }
    double es = fabs(s - sum) / (scale * sqrt((double)numel));
    double el = l2 > 0 ? fabs(sqrt(ss) - l2) / l2 : sqrt(ss);
    if (!(es <= err))
        err = es;
    if (!(el <= err))
        err = el;
    return err;
}

static double cmp_array(json_t *arr, const float *got, size_t n, const char *what)
{
    if (json_array_size(arr) != n) {
        TU_FAIL("%s: %zu values, PyTorch has %zu", what, n, json_array_size(arr));
        return INFINITY;
    }
    double absmax = 0.0, err = 0.0;
    for (size_t i = 0; i < n; i++)
        absmax = fmax(absmax, fabs(json_number_value(json_array_get(arr, i))));
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - json_number_value(json_array_get(arr, i))) / (absmax > 0 ? absmax : 1.0);
        if (!(e <= err))
            err = e;
    }
    return err;
}

static int shape_matches(const ol_tensor_desc *t, json_t *shape)
{
    if ((int)json_array_size(shape) != t->ndim)
        return 0;
    for (int d = 0; d < t->ndim; d++)
        if (json_integer_value(json_array_get(shape, (size_t)d)) != t->shape[d])
            return 0;
    return 1;
}

static void shape_str(json_t *shape, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t d = 0; d < json_array_size(shape) && len < cap; d++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%lld", d ? "x" : "",
                                (long long)json_integer_value(json_array_get(shape, d)));
}

/* Check that our tensors and PyTorch's are the same set of names with the
 * same shapes; returns 0 when they are. */
static int match_names(const char *label, const ol_tensor_desc *ours, int n, json_t *theirs, const char *kind)
{
    int bad = 0;
    for (size_t j = 0; j < json_array_size(theirs); j++) {
        json_t *e = json_array_get(theirs, j);
        const char *name = json_string_value(json_object_get(e, "name"));
        int found = -1;
        for (int i = 0; i < n && name; i++)
            if (strcmp(ours[i].name, name) == 0)
                found = i;
        tu_checks++;
        if (found < 0) {
            TU_FAIL("%s: PyTorch %s '%s' has no tensor of that name in optimlab", label, kind, name ? name : "?");
            bad = 1;
        } else if (!shape_matches(&ours[found], json_object_get(e, "shape"))) {
            char s[64];
            shape_str(json_object_get(e, "shape"), s, sizeof s);
            TU_FAIL("%s: %s '%s' has shape %s in PyTorch and a different one in optimlab", label, kind, name, s);
            bad = 1;
        }
    }
    for (int i = 0; i < n; i++) {
        int found = 0;
        for (size_t j = 0; j < json_array_size(theirs) && !found; j++) {
            const char *name = json_string_value(json_object_get(json_array_get(theirs, j), "name"));
            found = name && strcmp(name, ours[i].name) == 0;
        }
        tu_checks++;
        if (!found) {
            TU_FAIL("%s: optimlab %s '%s' has no tensor of that name in PyTorch", label, kind, ours[i].name);
            bad = 1;
        }
    }
    return bad;
}

typedef struct {
    double logits, loss, grads, buffers, eval;
    char worst_grad[OL_NAME_MAX];
} errors;

static void check_err(const char *label, const char *what, double err)
{
    tu_checks++;
    if (!(err <= TOL))
        TU_FAIL("%s: %s differs from PyTorch by %.3g (tolerance %.0e)", label, what, err, TOL);
}

static void run_case(json_t *fx, const char *cname, const variant *va, ol_ctx *ctx)
{
    char label[128];
    snprintf(label, sizeof label, "%s/%s", cname, va->label);
    if (ol_ctx_set_backend(ctx, va->be) < 0) {
        printf("  %-24s skipped: %s\n", label, ol_ctx_errmsg(ctx));
        return;
    }
    json_t *md = json_object_get(fx, "model"), *in = json_object_get(fx, "input");
    const int n = (int)json_integer_value(json_object_get(fx, "batch"));
    const int classes = (int)json_integer_value(json_object_get(fx, "classes"));
    ol_model_params mp = ol_model_default_params();
    ASSERT_OK(ol_model_params_set_arch(ctx, &mp, json_string_value(json_object_get(md, "arch"))), ctx);
    json_t *sc = json_object_get(md, "shortcut"), *widths = json_object_get(md, "widths");
    if (sc)
        mp.shortcut = json_string_value(sc)[0];
    if (widths) {
        mp.nwidths = (int)json_array_size(widths);
        for (int i = 0; i < mp.nwidths; i++)
            mp.widths[i] = (int)json_integer_value(json_array_get(widths, (size_t)i));
    }
    mp.in_c = (int)json_integer_value(json_array_get(in, 0));
    mp.in_h = (int)json_integer_value(json_array_get(in, 1));
    mp.in_w = (int)json_integer_value(json_array_get(in, 2));
    json_t *tokens = json_object_get(fx, "tokens"); /* a language model: token ids in, a label per position */
    if (tokens) {
        mp.n_layer = (int)json_integer_value(json_object_get(md, "n_layer"));
        mp.n_head = (int)json_integer_value(json_object_get(md, "n_head"));
        mp.n_embd = (int)json_integer_value(json_object_get(md, "n_embd"));
        mp.seq_len = (int)json_integer_value(json_object_get(md, "seq_len"));
    }
    const int rows = n * (tokens ? mp.seq_len : 1); /* labels and logit rows */
    mp.num_classes = classes;
    mp.max_batch = n;
    mp.channel_block = va->channel_block;
    ol_model *m = NULL;
    ASSERT_OK(ol_model_create(ctx, &mp, &m), ctx);
    if (!m)
        return;
    ol_paramset *ps = ol_model_paramset(m);
    json_t *params = json_object_get(fx, "params"), *bufs = json_object_get(fx, "buffers");
    int bad = match_names(label, ps->t, ps->n, params, "parameter");
    bad |= match_names(label, ps->b, ps->nb, bufs, "buffer");
    if (bad) {
        ol_model_free(m);
        return;
    }
    for (size_t j = 0; j < json_array_size(params); j++) {
        json_t *e = json_array_get(params, j);
        const ol_tensor_desc *t = &ps->t[ol_paramset_find(ps, json_string_value(json_object_get(e, "name")))];
        fill(ps->params + t->offset, t->numel, (int)json_integer_value(json_object_get(e, "stream")),
             num(e, "center"), num(e, "scale"));
    }
    for (size_t j = 0; j < json_array_size(bufs); j++) {
        json_t *e = json_array_get(bufs, j);
        const ol_tensor_desc *t = &ps->b[ol_paramset_find_buffer(ps, json_string_value(json_object_get(e, "name")))];
        fill(ps->buffers + t->offset, t->numel, (int)json_integer_value(json_object_get(e, "stream")),
             num(e, "center"), num(e, "scale"));
    }
    size_t nin = (size_t)n * mp.in_c * mp.in_h * mp.in_w;
    float *x = malloc(nin * sizeof(float));
    int32_t *y = malloc((size_t)rows * sizeof(int32_t));
    fill(x, nin, (int)json_integer_value(json_object_get(fx, "input_stream")), 0.0, 1.0);
    for (size_t i = 0; tokens && i < nin; i++)
        x[i] = (float)json_integer_value(json_array_get(tokens, i));
    json_t *labels = json_object_get(fx, "labels");
    for (int i = 0; i < rows; i++)
        y[i] = (int32_t)json_integer_value(json_array_get(labels, (size_t)i));

    errors er = {0, 0, 0, 0, 0, ""};
    double loss = 0.0;
    int correct = 0;
    const float ls = (float)num(fx, "label_smoothing");
    ol_paramset_zero_grads(ps);
    ASSERT_OK(ol_model_forward(ctx, m, x, n, 1), ctx);
    ASSERT_OK(ol_model_loss(ctx, m, y, n, ls, 1.0f / (float)rows, &loss, &correct), ctx);
    ASSERT_OK(ol_model_backward(ctx, m), ctx);
    er.logits = cmp_array(json_object_get(fx, "logits_train"), ol_model_logits(m), (size_t)rows * classes, label);
    er.loss = fabs(loss / rows - num(fx, "loss")) / fabs(num(fx, "loss"));
    for (size_t j = 0; j < json_array_size(params); j++) {
        json_t *e = json_array_get(params, j);
        const char *name = json_string_value(json_object_get(e, "name"));
        const ol_tensor_desc *t = &ps->t[ol_paramset_find(ps, name)];
        char what[160];
        snprintf(what, sizeof what, "%s: gradient of %s", label, name);
        double err = cmp_record(json_object_get(e, "grad"), ps->grads + t->offset, t->numel, what);
        check_err(label, what + strlen(label) + 2, err);
        if (!(err <= er.grads)) {
            er.grads = err;
            snprintf(er.worst_grad, sizeof er.worst_grad, "%s", name);
        }
    }
    for (size_t j = 0; j < json_array_size(bufs); j++) {
        json_t *e = json_array_get(bufs, j);
        const char *name = json_string_value(json_object_get(e, "name"));
        const ol_tensor_desc *t = &ps->b[ol_paramset_find_buffer(ps, name)];
        char what[160];
        snprintf(what, sizeof what, "%s: updated %s", label, name);
        double err = cmp_record(json_object_get(e, "after"), ps->buffers + t->offset, t->numel, what);
        check_err(label, what + strlen(label) + 2, err);
        if (!(err <= er.buffers))
            er.buffers = err;
    }
    ASSERT_OK(ol_model_forward(ctx, m, x, n, 0), ctx);
    er.eval = cmp_array(json_object_get(fx, "logits_eval"), ol_model_logits(m), (size_t)rows * classes, label);
    check_err(label, "train-mode logits", er.logits);
    check_err(label, "loss", er.loss);
    check_err(label, "eval-mode logits", er.eval);
    printf("  %-24s max err: logits %.2e  loss %.2e  grads %.2e (%s)  bn stats %.2e  eval logits %.2e\n", label,
           er.logits, er.loss, er.grads, er.worst_grad, er.buffers, er.eval);
    free(x);
    free(y);
    ol_model_free(m);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        g_dir = argv[1];
    static const struct {
        const char *name;
        int big;
    } cases[] = {{"mlp", 0}, {"resnet8a", 0}, {"resnet8b", 0}, {"plain8", 0}, {"resnet20a", 1}, {"resnet18", 1}, {"gpt", 0}};
    ol_ctx *ctx = ol_ctx_new(0);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s.json", g_dir, cases[c].name);
        json_error_t jerr;
        json_t *fx = json_load_file(path, 0, &jerr);
        tu_checks++;
        if (!fx) {
            TU_FAIL("cannot read %s: %s (line %d)", path, jerr.text, jerr.line);
            continue;
        }
        json_t *f32 = json_object_get(fx, "torch_f32_err");
        printf("%s (torch float32 vs float64: grads %.1e, logits %.1e):\n", cases[c].name,
               json_number_value(json_object_get(f32, "grads")),
               json_number_value(json_object_get(f32, "logits_train")));
        for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++)
            if (!(cases[c].big && variants[v].small_only))
                run_case(fx, cases[c].name, &variants[v], ctx);
        json_decref(fx);
    }
    ol_ctx_free(ctx);
    return tu_finish("test_model_golden");
}
