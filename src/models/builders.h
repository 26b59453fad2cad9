#ifndef OL_MODELS_BUILDERS_H
#define OL_MODELS_BUILDERS_H

#include "nn/graph.h"

/* Each builder adds the network's nodes after the input value and returns the
 * logits value index (or a negative code). */
int ol__build_mlp(ol_ctx *ctx, ol_model *m, int x);
int ol__build_resnet_cifar(ol_ctx *ctx, ol_model *m, int x);
int ol__build_resnet18(ol_ctx *ctx, ol_model *m, int x);
int ol__build_gpt(ol_ctx *ctx, ol_model *m, int x);
int ol__model_init_params(ol_ctx *ctx, ol_model *m);

#endif
