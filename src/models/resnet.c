/* ResNets: the CIFAR family of He et al. 2016 (depth 6n+2, three stages of n
 * basic blocks, 16k/32k/64k channels) and torchvision's ResNet-18. Conv layers
 * have no bias; every conv is followed by BatchNorm. Parameter names follow
 * the PyTorch modules: akamaster/pytorch_resnet_cifar10 for the CIFAR nets
 * (conv1, bn1, layerS.B.{conv1,bn1,conv2,bn2,shortcut.0,shortcut.1}, linear),
 * torchvision for ResNet-18 (downsample.0/.1, fc). */
#include <stdio.h>

#include "models/builders.h"

/* One basic block: conv3x3(stride) -> BN+ReLU -> conv3x3 -> BN (+shortcut) + ReLU. */
static int basic_block(ol_ctx *ctx, ol_model *m, const char *prefix, int x, int planes, int stride, int opt_b,
                       const char *proj_name)
{
    const ol_model_params *mp = &m->mp;
    char name[OL_NAME_MAX];
    int in_planes = m->vals[x].c;
    snprintf(name, sizeof name, "%s.conv1", prefix);
    int c1 = ol__graph_conv(ctx, m, name, x, planes, 3, stride, 1, 0);
    OL__TRY(c1);
    snprintf(name, sizeof name, "%s.bn1", prefix);
    int a1 = ol__graph_bn(ctx, m, name, c1, -1, 1);
    OL__TRY(a1);
    snprintf(name, sizeof name, "%s.conv2", prefix);
    int c2 = ol__graph_conv(ctx, m, name, a1, planes, 3, 1, 1, 0);
    OL__TRY(c2);
    snprintf(name, sizeof name, "%s.bn2", prefix);
    if (mp->no_skip)
        return ol__graph_bn(ctx, m, name, c2, -1, 1);
    int sc = x;
    if (stride != 1 || in_planes != planes) {
        if (opt_b) {
            char pname[OL_NAME_MAX];
            snprintf(pname, sizeof pname, "%s.%s.0", prefix, proj_name);
            sc = ol__graph_conv(ctx, m, pname, x, planes, 1, stride, 0, 0);
            OL__TRY(sc);
            snprintf(pname, sizeof pname, "%s.%s.1", prefix, proj_name);
            sc = ol__graph_bn(ctx, m, pname, sc, -1, 0);
        } else {
            sc = ol__graph_shortcut_a(ctx, m, x, planes, stride);
        }
        OL__TRY(sc);
    }
    return ol__graph_bn(ctx, m, name, c2, sc, 1);
}

int ol__build_resnet_cifar(ol_ctx *ctx, ol_model *m, int x)
{
    const ol_model_params *mp = &m->mp;
    if (mp->depth < 8 || (mp->depth - 2) % 6 != 0)
        return ol__err(ctx, OL_EINVAL, "CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110), got %d", mp->depth);
    if (mp->width < 1 || mp->width > 64)
        return ol__err(ctx, OL_EINVAL, "width multiplier must be in 1..64, got %d", mp->width);
    const int n = (mp->depth - 2) / 6, k = mp->width;
    int a = ol__graph_conv(ctx, m, "conv1", x, 16, 3, 1, 1, 0); /* stem: 16 channels, as WRN */
    OL__TRY(a);
    a = ol__graph_bn(ctx, m, "bn1", a, -1, 1);
    OL__TRY(a);
    for (int s = 0; s < 3; s++) {
        int planes = 16 * k << s;
        for (int b = 0; b < n; b++) {
            char prefix[OL_NAME_MAX];
            snprintf(prefix, sizeof prefix, "layer%d.%d", s + 1, b);
            a = basic_block(ctx, m, prefix, a, planes, (s > 0 && b == 0) ? 2 : 1, mp->shortcut == 'B', "shortcut");
            OL__TRY(a);
        }
    }
    a = ol__graph_gap(ctx, m, a);
    OL__TRY(a);
    /* "linear", as akamaster/pytorch_resnet_cifar10 (and kuangliu/pytorch-cifar)
     * name it, so state_dicts carry over; torchvision's ResNet-18 says "fc" */
    return ol__graph_linear(ctx, m, "linear", a, mp->num_classes, 0);
}

int ol__build_resnet18(ol_ctx *ctx, ol_model *m, int x)
{
    const ol_model_params *mp = &m->mp;
    int a = ol__graph_conv(ctx, m, "conv1", x, 64 * mp->width, 7, 2, 3, 0);
    OL__TRY(a);
    a = ol__graph_bn(ctx, m, "bn1", a, -1, 1);
    OL__TRY(a);
    a = ol__graph_maxpool(ctx, m, a, 3, 2, 1);
    OL__TRY(a);
    for (int s = 0; s < 4; s++) {
        int planes = 64 * mp->width << s;
        for (int b = 0; b < 2; b++) {
            char prefix[OL_NAME_MAX];
            snprintf(prefix, sizeof prefix, "layer%d.%d", s + 1, b);
            a = basic_block(ctx, m, prefix, a, planes, (s > 0 && b == 0) ? 2 : 1, 1, "downsample");
            OL__TRY(a);
        }
    }
    a = ol__graph_gap(ctx, m, a);
    OL__TRY(a);
    return ol__graph_linear(ctx, m, "fc", a, mp->num_classes, 0);
}

int ol__build_mlp(ol_ctx *ctx, ol_model *m, int x)
{
    const ol_model_params *mp = &m->mp;
    int a = ol__graph_flatten(ctx, m, x);
    OL__TRY(a);
    char name[OL_NAME_MAX];
    for (int i = 0; i < mp->nwidths; i++) {
        if (mp->widths[i] <= 0)
            return ol__err(ctx, OL_EINVAL, "MLP width %d is %d; widths must be positive", i + 1, mp->widths[i]);
        snprintf(name, sizeof name, "fc%d", i + 1);
        a = ol__graph_linear(ctx, m, name, a, mp->widths[i], 1);
        OL__TRY(a);
    }
    snprintf(name, sizeof name, "fc%d", mp->nwidths + 1);
    return ol__graph_linear(ctx, m, name, a, mp->num_classes, 0);
}
