/* Model and run options. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

const cli_opt cli_model_opts[] = {
    {"model", CLI_VALUE, "resnet20", "NAME", "Model",
     "mlp, resnet20/32/44/56/110 (any 6n+2), plain20/... (no skips), resnet18 (torchvision), gpt (GPT-2 "
     "architecture, set its shape with --n-layer --n-head --n-embd --seq-len), gpt-mini (4 layers, 4 heads, 128 "
     "wide, context 128), gpt2-124m (GPT-2 small: 12, 12, 768, context 1024)"},
    {"n-layer", CLI_VALUE, "", "L", "Model", "GPT: transformer blocks [the preset's; gpt: 4]"},
    {"n-head", CLI_VALUE, "", "H", "Model", "GPT: attention heads, dividing --n-embd [the preset's; gpt: 4]"},
    {"n-embd", CLI_VALUE, "", "C", "Model", "GPT: embedding width [the preset's; gpt: 128]"},
    {"seq-len", CLI_VALUE, "", "T", "Model", "GPT: context length, the tokens of one sample [the preset's; gpt: 128]"},
    {"width", CLI_VALUE, "1", "K", "Model", "width multiplier of CIFAR ResNets: 16K/32K/64K channels"},
    {"no-skip", CLI_FLAG, "0", NULL, "Model", "build the ResNet without shortcut connections"},
    {"shortcut", CLI_VALUE, "A", "A|B", "Model",
     "ResNet shortcut: A = subsample + zero-pad channels, B = 1x1 conv + BN"},
    {"widths", CLI_VALUE, "1024,1024", "W1,W2,...", "Model", "MLP hidden layer widths"},
    {"init", CLI_VALUE, "pytorch", "NAME", "Model",
     "pytorch, xavier-uniform, xavier-normal, kaiming-uniform, kaiming-normal"},
    {"init-mode", CLI_VALUE, "fan_in", "fan_in|fan_out", "Model", "fan used by the kaiming schemes"},
    {"zero-init-residual", CLI_FLAG, "0", NULL, "Model", "start the last BN of each residual block at gamma = 0"},
    {"layout", CLI_VALUE, "auto", "NAME", "Model",
     "activation layout: auto (blocked, 16 or 8 channels), plain (NCHW), blocked8, blocked16"},
    {NULL, 0, NULL, NULL, NULL, NULL}};

const cli_opt cli_run_opts[] = {
    {"threads", CLI_VALUE, "0", "T", "Run", "compute threads (0 = all cores)"},
    {"backend", CLI_VALUE, "auto", "NAME", "Run", "auto, onednn, blas (reference convolutions), ref (all reference)"},
    {"seed", CLI_VALUE, "0", "S", "Run", "seed for initialisation, data order and augmentation"},
    {"max-memory", CLI_VALUE, "auto", "SIZE", "Run",
     "refuse (exit status 1) a run whose estimated memory exceeds SIZE (bytes, or with K, M, G, T: 8G, 512M); "
     "auto = the memory available (MemAvailable, cgroup limit), none = no check"},
    {NULL, 0, NULL, NULL, NULL, NULL}};

int cli_backend(cli_values *v, ol_backend *be)
{
    if (ol_backend_from_name(cli_str(v, "backend"), be) >= 0)
        return 0;
    snprintf(v->err, sizeof v->err, "--backend: unknown backend '%.100s' (auto, onednn, blas, ref)",
             cli_str(v, "backend"));
    return -1;
}

int cli_ctx_new(cli_values *v, int threads, ol_ctx **ctx)
{
    ol_backend be = OL_BACKEND_AUTO;
    const int has_backend = cli_find(v, "backend") >= 0;
    if (has_backend && cli_backend(v, &be) < 0)
        return cli_fail(OL_EXIT_USAGE, v->err);
    if (!(*ctx = ol_ctx_new(threads)))
        return cli_fail(OL_EXIT_FAIL, "out of memory");
    if (has_backend && ol_ctx_set_backend(*ctx, be) < 0)
        return cli_fail_ctx(*ctx, OL_EXIT_USAGE);
    return OL_EXIT_OK;
}

int cli_memory_limit(cli_values *v, ol_ctx *ctx)
{
    const char *s = cli_str(v, "max-memory");
    uint64_t bytes = 0; /* auto */
    if (strcmp(s, "none") == 0) {
        bytes = UINT64_MAX;
    } else if (strcmp(s, "auto") != 0) {
        char *end;
        errno = 0;
        unsigned long long x = *s >= '0' && *s <= '9' ? strtoull(s, &end, 10) : 0;
        const char *units = "KMGT", *u = *s >= '0' && *s <= '9' && *end ? strchr(units, end[0] & ~0x20) : NULL;
        int shift = u ? 10 * (int)(u - units + 1) : 0;
        int ok = (*s >= '0' && *s <= '9') && errno != ERANGE && x > 0 &&
                 (*end == '\0' || (u && (end[1] == '\0' || ((end[1] & ~0x20) == 'B' && end[2] == '\0')))) &&
                 x <= (UINT64_MAX >> 1 >> shift);
        if (!ok) {
            snprintf(v->err, sizeof v->err,
                     "--max-memory: expected a size such as 8G, 512M or 1000000 bytes, auto or none, got '%.200s'", s);
            return -1;
        }
        bytes = (uint64_t)x << shift;
    }
    ol_ctx_set_memory_limit(ctx, bytes);
    return 0;
}

int cli_check_memory(ol_ctx *ctx, uint64_t bytes, const char *what, char *err, size_t cap)
{
    if (ol_ctx_check_memory(ctx, bytes, what) >= 0)
        return 0;
    snprintf(err, cap, "%s; --max-memory SIZE or none overrides the check", ol_ctx_errmsg(ctx));
    return -1;
}

/* Model options that only some architectures have: given for another, they
 * would be ignored, so they are an error. */
static int check_model_applies(cli_values *v, const ol_model_params *mp)
{
    static const struct {
        const char *name;
        unsigned archs;
        const char *which;
    } applies[] = {
        {"width", 1u << OL_ARCH_RESNET_CIFAR | 1u << OL_ARCH_RESNET18, "ResNets"},
        {"no-skip", 1u << OL_ARCH_RESNET_CIFAR | 1u << OL_ARCH_RESNET18, "ResNets"},
        {"zero-init-residual", 1u << OL_ARCH_RESNET_CIFAR | 1u << OL_ARCH_RESNET18, "ResNets"},
        {"layout", 1u << OL_ARCH_RESNET_CIFAR | 1u << OL_ARCH_RESNET18, "convolutional models"},
        {"shortcut", 1u << OL_ARCH_RESNET_CIFAR, "CIFAR ResNets (resnet18 always uses 1x1 conv + BN)"},
        {"widths", 1u << OL_ARCH_MLP, "the MLP"},
        {"init", ~(1u << OL_ARCH_GPT), "MLPs and ResNets (a GPT starts as GPT-2 does)"},
        {"n-layer", 1u << OL_ARCH_GPT, "GPT models"},
        {"n-head", 1u << OL_ARCH_GPT, "GPT models"},
        {"n-embd", 1u << OL_ARCH_GPT, "GPT models"},
        {"seq-len", 1u << OL_ARCH_GPT, "GPT models"},
    };
    for (size_t i = 0; i < sizeof applies / sizeof applies[0]; i++)
        if (cli_is_set(v, applies[i].name) && !(applies[i].archs & (1u << mp->arch))) {
            snprintf(v->err, sizeof v->err, "--%s does not apply to --model %s (only %s)", applies[i].name,
                     cli_str(v, "model"), applies[i].which);
            return -1;
        }
    if (cli_is_set(v, "init-mode") && mp->init != OL_INIT_KAIMING_UNIFORM && mp->init != OL_INIT_KAIMING_NORMAL) {
        snprintf(v->err, sizeof v->err, "--init-mode applies to --init kaiming-uniform and kaiming-normal only");
        return -1;
    }
    return 0;
}

int cli_model_context(cli_values *v)
{
    if (cli_find(v, "model") < 0)
        return 0;
    ol_model_params mp = ol_model_default_params();
    ol_ctx *tmp = ol_ctx_new(0);
    int rc = tmp ? ol_model_params_set_arch(tmp, &mp, cli_str(v, "model")) : -1;
    ol_ctx_free(tmp);
    if (rc < 0 || mp.arch != OL_ARCH_GPT)
        return 0;
    long long x;
    if (*cli_str(v, "seq-len") && cli_int(v, "seq-len", 1, 1 << 20, &x) == 0)
        return (int)x;
    return mp.seq_len;
}

int cli_build_model(cli_values *v, ol_model_params *mp)
{
    *mp = ol_model_default_params();
    ol_ctx *tmp = ol_ctx_new(0);
    if (!tmp) {
        snprintf(v->err, sizeof v->err, "out of memory");
        return -1;
    }
    int rc = ol_model_params_set_arch(tmp, mp, cli_str(v, "model"));
    if (rc < 0)
        snprintf(v->err, sizeof v->err, "--model: %s", ol_ctx_errmsg(tmp));
    ol_ctx_free(tmp);
    if (rc < 0)
        return -1;
    long long x;
    if (mp->arch == OL_ARCH_GPT) {
        static const char *const names[4] = {"n-layer", "n-head", "n-embd", "seq-len"};
        static const long long hi[4] = {1024, 1024, 1 << 16, 1 << 20};
        int *fields[4] = {&mp->n_layer, &mp->n_head, &mp->n_embd, &mp->seq_len};
        for (int i = 0; i < 4; i++) {
            if (!*cli_str(v, names[i]))
                continue;
            if (cli_int(v, names[i], 1, hi[i], &x))
                return -1;
            *fields[i] = (int)x;
        }
        if (mp->n_embd % mp->n_head != 0) {
            snprintf(v->err, sizeof v->err, "--n-head %d does not divide --n-embd %d", mp->n_head, mp->n_embd);
            return -1;
        }
    }
    if (cli_int(v, "width", 1, 64, &x))
        return -1;
    mp->width = (int)x;
    if (cli_flag(v, "no-skip"))
        mp->no_skip = 1;
    const char *sc = cli_str(v, "shortcut");
    if (strcmp(sc, "A") != 0 && strcmp(sc, "B") != 0 && strcmp(sc, "a") != 0 && strcmp(sc, "b") != 0) {
        snprintf(v->err, sizeof v->err, "--shortcut: expected A or B, got '%s'", sc);
        return -1;
    }
    mp->shortcut = (char)(sc[0] & ~0x20);
    long long w[OL_MLP_MAX_LAYERS];
    int n = 0;
    if (cli_int_list(v, "widths", 1, 1 << 20, w, OL_MLP_MAX_LAYERS, &n))
        return -1;
    mp->nwidths = n;
    for (int i = 0; i < n; i++)
        mp->widths[i] = (int)w[i];
    if (ol_init_from_name(cli_str(v, "init"), &mp->init) < 0) {
        snprintf(v->err, sizeof v->err,
                 "--init: unknown scheme '%s' (pytorch, xavier-uniform, xavier-normal, kaiming-uniform, "
                 "kaiming-normal)",
                 cli_str(v, "init"));
        return -1;
    }
    const char *fm = cli_str(v, "init-mode");
    if (strcmp(fm, "fan_in") == 0 || strcmp(fm, "fan-in") == 0)
        mp->fan_mode = OL_FAN_IN;
    else if (strcmp(fm, "fan_out") == 0 || strcmp(fm, "fan-out") == 0)
        mp->fan_mode = OL_FAN_OUT;
    else {
        snprintf(v->err, sizeof v->err, "--init-mode: expected fan_in or fan_out, got '%s'", fm);
        return -1;
    }
    mp->zero_init_residual = cli_flag(v, "zero-init-residual");
    const char *lay = cli_str(v, "layout");
    if (strcmp(lay, "auto") == 0)
        mp->channel_block = 0;
    else if (strcmp(lay, "plain") == 0)
        mp->channel_block = 1;
    else if (strcmp(lay, "blocked8") == 0)
        mp->channel_block = 8;
    else if (strcmp(lay, "blocked16") == 0)
        mp->channel_block = 16;
    else {
        snprintf(v->err, sizeof v->err, "--layout: expected auto, plain, blocked8 or blocked16, got '%s'", lay);
        return -1;
    }
    if (cli_int(v, "seed", 0, INT64_MAX, &x))
        return -1;
    mp->seed = (uint64_t)x;
    return check_model_applies(v, mp);
}
