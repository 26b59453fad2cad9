/* Model API: architecture names, creation, initialisation, summary. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "models/builders.h"

void ol__graph_free(ol_model *m);

static const char *const init_names[OL_INIT_COUNT] = {"pytorch", "xavier-uniform", "xavier-normal",
                                                      "kaiming-uniform", "kaiming-normal"};

const char *ol_init_name(ol_init i) { return (i >= 0 && i < OL_INIT_COUNT) ? init_names[i] : "?"; }

int ol_init_from_name(const char *name, ol_init *out)
{
    for (int i = 0; i < OL_INIT_COUNT; i++)
        if (strcmp(name, init_names[i]) == 0) {
            *out = (ol_init)i;
            return OL_OK;
        }
    return OL_ENAME;
}

ol_model_params ol_model_default_params(void)
{
    ol_model_params mp;
    memset(&mp, 0, sizeof mp);
    mp.arch = OL_ARCH_RESNET_CIFAR;
    mp.depth = 20;
    mp.width = 1;
    mp.shortcut = 'A';
    mp.widths[0] = 1024;
    mp.widths[1] = 1024;
    mp.nwidths = 2;
    mp.in_c = 1;
    mp.in_h = mp.in_w = 28;
    mp.num_classes = 10;
    mp.init = OL_INIT_PYTORCH;
    mp.fan_mode = OL_FAN_IN;
    mp.seed = 0;
    mp.max_batch = 128;
    mp.bn_momentum = 0.1f;
    mp.bn_eps = 1e-5f;
    return mp;
}

/* "resnet20", "resnet-20", "plain20", "resnet18", "mlp" */
int ol_model_params_set_arch(ol_ctx *ctx, ol_model_params *mp, const char *name)
{
    if (strcmp(name, "mlp") == 0) {
        mp->arch = OL_ARCH_MLP;
        return OL_OK;
    }
    const char *digits = NULL;
    int plain = 0;
    if (strncmp(name, "resnet", 6) == 0)
        digits = name + 6;
    else if (strncmp(name, "plain", 5) == 0) {
        digits = name + 5;
        plain = 1;
    }
    if (digits && *digits == '-')
        digits++;
    if (digits && *digits) {
        char *end;
        long d = strtol(digits, &end, 10);
        if (*end == '\0' && isdigit((unsigned char)*digits)) {
            if (d == 18 && !plain) {
                mp->arch = OL_ARCH_RESNET18;
                mp->depth = 18;
                mp->no_skip = 0;
                return OL_OK;
            }
            if (d >= 8 && d <= 1000 && (d - 2) % 6 == 0) {
                mp->arch = OL_ARCH_RESNET_CIFAR;
                mp->depth = (int)d;
                mp->no_skip = plain;
                return OL_OK;
            }
            return ol__err(ctx, OL_ENAME,
                           "unknown model '%s': CIFAR ResNets have depth 6n+2 (resnet20, resnet32, resnet44, "
                           "resnet56, resnet110); resnet18 is the torchvision net",
                           name);
        }
    }
    return ol__err(ctx, OL_ENAME, "unknown model '%s' (known: mlp, resnet20/32/44/56/110, plain20/..., resnet18)",
                   name);
}

void ol_model_params_name(const ol_model_params *mp, char *buf, size_t cap)
{
    switch (mp->arch) {
    case OL_ARCH_MLP: snprintf(buf, cap, "mlp"); break;
    case OL_ARCH_RESNET18: snprintf(buf, cap, mp->no_skip ? "plain18" : "resnet18"); break;
    default:
        if (mp->width > 1)
            snprintf(buf, cap, "%s%d-%d", mp->no_skip ? "plain-wrn" : "wrn", mp->depth, mp->width);
        else
            snprintf(buf, cap, "%s%d", mp->no_skip ? "plain" : "resnet", mp->depth);
    }
}

/* Build the graph; meta != 0 plans sizes for max_batch without allocating
 * parameters or arenas (nothing may run on such a model). */
static int model_build(ol_ctx *ctx, const ol_model_params *mp, int meta, ol_model **out)
{
    *out = NULL;
    if (mp->in_c <= 0 || mp->in_h <= 0 || mp->in_w <= 0)
        return ol__err(ctx, OL_EINVAL, "invalid input shape %dx%dx%d", mp->in_c, mp->in_h, mp->in_w);
    if (mp->num_classes < 2)
        return ol__err(ctx, OL_EINVAL, "need at least 2 classes, got %d", mp->num_classes);
    if (mp->shortcut != 'A' && mp->shortcut != 'B')
        return ol__err(ctx, OL_EINVAL, "shortcut must be A or B, got '%c'", mp->shortcut);
    if (mp->width < 1 || mp->width > 64)
        return ol__err(ctx, OL_EINVAL, "width multiplier must be in 1..64, got %d", mp->width);
    if (mp->nwidths < 0 || mp->nwidths > OL_MLP_MAX_LAYERS)
        return ol__err(ctx, OL_EINVAL, "MLP: 0..%d hidden layers allowed", OL_MLP_MAX_LAYERS);
    if (!(mp->bn_momentum >= 0.0f && mp->bn_momentum <= 1.0f) || !(mp->bn_eps > 0.0f))
        return ol__err(ctx, OL_ERANGE, "BatchNorm momentum must be in [0,1] and eps > 0");
    if (mp->channel_block != 0 && mp->channel_block != 1 && mp->channel_block != 8 && mp->channel_block != 16)
        return ol__err(ctx, OL_EINVAL, "channel block must be 0 (auto), 1, 8 or 16, got %d", mp->channel_block);
    ol_model *m = calloc(1, sizeof *m);
    if (!m)
        return ol__err(ctx, OL_ENOMEM, "out of memory");
    m->mp = *mp;
    m->meta = meta;
    ol_model_params_name(mp, m->arch, sizeof m->arch);
    int rc = ol__graph_input(ctx, m, mp->in_c, mp->in_h, mp->in_w);
    if (rc >= 0) {
        switch (mp->arch) {
        case OL_ARCH_MLP: rc = ol__build_mlp(ctx, m, rc); break;
        case OL_ARCH_RESNET_CIFAR: rc = ol__build_resnet_cifar(ctx, m, rc); break;
        case OL_ARCH_RESNET18: rc = ol__build_resnet18(ctx, m, rc); break;
        default: rc = ol__err(ctx, OL_EINVAL, "unknown architecture %d", (int)mp->arch);
        }
    }
    if (rc >= 0)
        rc = ol__graph_finish(ctx, m, rc);
    if (rc >= 0 && !meta)
        rc = ol_model_init_params(ctx, m);
    if (rc < 0) {
        ol_model_free(m);
        return rc;
    }
    *out = m;
    return OL_OK;
}

int ol_model_create(ol_ctx *ctx, const ol_model_params *mp, ol_model **out)
{
    return model_build(ctx, mp, 0, out);
}

int ol_model_memory_estimate(ol_ctx *ctx, const ol_model_params *mp, int batch, ol_model_memory *out)
{
    memset(out, 0, sizeof *out);
    if (batch <= 0)
        return ol__err(ctx, OL_EINVAL, "batch size must be > 0, got %d", batch);
    ol_model_params q = *mp;
    q.max_batch = batch;
    ol_model *m;
    OL__TRY(model_build(ctx, &q, 1, &m));
    out->batch = batch;
    out->param_count = ol_paramset_count(&m->ps);
    out->params = (uint64_t)m->ps.numel * sizeof(float);
    out->grads = out->params;
    out->buffers = (uint64_t)m->ps.bnumel * sizeof(float);
    out->activations = ol__graph_activation_bytes(m);
    ol_model_free(m);
    return OL_OK;
}

void ol_model_free(ol_model *m)
{
    if (!m)
        return;
    ol__graph_free(m);
    free(m);
}

ol_paramset *ol_model_paramset(ol_model *m) { return &m->ps; }
const ol_model_params *ol_model_get_params(const ol_model *m) { return &m->mp; }
int ol_model_num_classes(const ol_model *m) { return m->num_classes; }

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

int ol_model_init_params(ol_ctx *ctx, ol_model *m)
{
    const ol_model_params *mp = &m->mp;
    ol_paramset *ps = &m->ps;
    memset(ps->params, 0, ps->numel * sizeof(float));
    for (int i = 0; i < ps->n; i++) {
        const ol_tensor_desc *t = &ps->t[i];
        float *p = ps->params + t->offset;
        ol__rng r;
        ol__rng_seed(&r, mp->seed, OL__RNG_INIT, (uint64_t)i);
        if (t->kind == OL_KIND_NORM) {
            float v = ends_with(t->name, ".weight") ? 1.0f : 0.0f;
            if (mp->zero_init_residual && !mp->no_skip && ends_with(t->name, ".bn2.weight"))
                v = 0.0f;
            for (size_t j = 0; j < t->numel; j++)
                p[j] = v;
            continue;
        }
        if (t->kind == OL_KIND_BIAS) {
            if (mp->init != OL_INIT_PYTORCH)
                continue; /* zero */
            /* PyTorch: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with the weight's fan_in */
            char wname[OL_NAME_MAX];
            snprintf(wname, sizeof wname, "%.*s.weight", (int)(strlen(t->name) - 5), t->name);
            int wi = ol_paramset_find(ps, wname);
            if (wi < 0)
                return ol__err(ctx, OL_ESTATE, "bias %s has no weight %s", t->name, wname);
            double bound = 1.0 / sqrt((double)ps->t[wi].fan_in);
            for (size_t j = 0; j < t->numel; j++)
                p[j] = (float)((2.0 * ol__rng_uniform(&r) - 1.0) * bound);
            continue;
        }
        double fan_in = t->fan_in, fan_out = t->fan_out;
        double fan = mp->fan_mode == OL_FAN_OUT ? fan_out : fan_in;
        int normal = 0;
        double scale = 0.0;
        switch (mp->init) {
        case OL_INIT_PYTORCH: scale = 1.0 / sqrt(fan_in); break; /* kaiming_uniform(a=sqrt(5)) */
        case OL_INIT_XAVIER_UNIFORM: scale = sqrt(6.0 / (fan_in + fan_out)); break;
        case OL_INIT_XAVIER_NORMAL:
            scale = sqrt(2.0 / (fan_in + fan_out));
            normal = 1;
            break;
        case OL_INIT_KAIMING_UNIFORM: scale = sqrt(6.0 / fan); break;
        case OL_INIT_KAIMING_NORMAL:
            scale = sqrt(2.0 / fan);
            normal = 1;
            break;
        default: return ol__err(ctx, OL_EINVAL, "unknown init %d", (int)mp->init);
        }
        for (size_t j = 0; j < t->numel; j++)
            p[j] = (float)(normal ? scale * ol__rng_normal(&r) : (2.0 * ol__rng_uniform(&r) - 1.0) * scale);
    }
    for (int i = 0; i < ps->nb; i++) {
        const ol_tensor_desc *b = &ps->b[i];
        float v = ends_with(b->name, ".running_var") ? 1.0f : 0.0f;
        for (size_t j = 0; j < b->numel; j++)
            ps->buffers[b->offset + j] = v;
    }
    return OL_OK;
}

static const char *op_name(ol__op op)
{
    static const char *const names[OL__OP_COUNT] = {"conv2d",  "batchnorm2d", "relu",    "add",   "shortcut-A",
                                                    "maxpool", "avgpool",     "flatten", "linear"};
    return (op >= 0 && op < OL__OP_COUNT) ? names[op] : "?";
}

int ol_model_summary(const ol_model *m, char *buf, size_t cap)
{
    size_t len = 0;
#define APPEND(...)                                                                                                 \
    do {                                                                                                            \
        int w_ = snprintf(buf + len, len < cap ? cap - len : 0, __VA_ARGS__);                                       \
        if (w_ > 0)                                                                                                 \
            len += (size_t)w_;                                                                                      \
    } while (0)
    APPEND("%s: input %dx%dx%d, %d classes, %zu parameters\n", m->arch, m->mp.in_c, m->mp.in_h, m->mp.in_w,
           m->num_classes, ol_paramset_count(&m->ps));
    for (int k = 0; k < m->nnodes; k++) {
        const ol__node *nd = &m->nodes[k];
        const ol__value *y = &m->vals[nd->out];
        size_t np = 0;
        if (nd->p_w >= 0)
            np += m->ps.t[nd->p_w].numel;
        if (nd->p_b >= 0)
            np += m->ps.t[nd->p_b].numel;
        APPEND("  %-24s %-12s -> %4dx%3dx%3d%s%s  params %zu\n", nd->name[0] ? nd->name : "-", op_name(nd->op), y->c,
               y->h, y->w, nd->relu ? " +relu" : "", (nd->op == OL__OP_BATCHNORM2D && nd->in[1] >= 0) ? " +residual" : "",
               np);
    }
#undef APPEND
    if (cap)
        buf[len < cap ? len : cap - 1] = '\0';
    return (int)len;
}
