/* Models: MLPs, CIFAR-style ResNets (depth 6n+2, width multiplier, with or
 * without skip connections, shortcut option A or B), torchvision's ResNet-18
 * and GPT-2-style language models.
 *
 * Intended usage:
 *   ol_model_params mp = ol_model_default_params();
 *   ol_model_params_set_arch(ctx, &mp, "resnet20");   // also "mlp", "resnet18", "plain20"
 *   mp.in_c = 1; mp.in_h = mp.in_w = 28; mp.num_classes = 10;
 *   ol_model *m; ol_model_create(ctx, &mp, &m);        // parameters initialised from mp.seed
 *   loop: ol_model_zero_grads(m); ol_model_forward(ctx, m, x, n, 1);
 *         ol_model_loss(ctx, m, y, n, 0, 1.0f/n, &loss, &correct); ol_model_backward(ctx, m);
 *         optimizer step on ol_model_paramset(m)
 *   ol_model_free(m);
 * Inputs are float32 NCHW, [n][in_c][in_h][in_w]; a GPT's are token ids, [n][seq_len]
 * (ol_model_create sets its in_c, in_h, in_w to seq_len, 1, 1). */
#ifndef OPTIMLAB_MODEL_H
#define OPTIMLAB_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "optimlab/core.h"
#include "optimlab/params.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    OL_INIT_PYTORCH = 0,   /* each layer's PyTorch default (kaiming_uniform a=sqrt(5), bias U(+-1/sqrt(fan_in))) */
    OL_INIT_XAVIER_UNIFORM, /* Glorot: U(+-sqrt(6/(fan_in+fan_out))), biases 0 */
    OL_INIT_XAVIER_NORMAL,  /* N(0, 2/(fan_in+fan_out)), biases 0 */
    OL_INIT_KAIMING_UNIFORM, /* He: U(+-sqrt(6/fan)), ReLU gain, biases 0 */
    OL_INIT_KAIMING_NORMAL,  /* N(0, 2/fan), biases 0 */
    OL_INIT_COUNT
} ol_init;

typedef enum { OL_FAN_IN = 0, OL_FAN_OUT } ol_fan_mode;

const char *ol_init_name(ol_init i);
int ol_init_from_name(const char *name, ol_init *out);

typedef enum { OL_ARCH_MLP = 0, OL_ARCH_RESNET_CIFAR, OL_ARCH_RESNET18, OL_ARCH_GPT, OL_ARCH_COUNT } ol_arch;

#define OL_MLP_MAX_LAYERS 16

typedef struct {
    ol_arch arch;
    int depth;         /* CIFAR ResNet: 6n+2 (20, 32, 44, 56, 110, ...) */
    int width;         /* width multiplier k: channels 16k, 32k, 64k */
    int no_skip;       /* build the same net without shortcuts ("plain" nets) */
    char shortcut;     /* 'A' (subsample + zero-pad channels) or 'B' (1x1 conv + BN) */
    int widths[OL_MLP_MAX_LAYERS]; /* MLP hidden widths */
    int nwidths;
    int in_c, in_h, in_w;
    int num_classes;
    ol_init init;
    ol_fan_mode fan_mode;     /* kaiming only */
    int zero_init_residual;   /* last BN gamma of each residual block = 0 */
    uint64_t seed;
    int max_batch;            /* arenas are sized for this; larger batches grow them */
    float bn_momentum;        /* 0.1 as PyTorch */
    float bn_eps;             /* 1e-5 */
    int channel_block;        /* activation layout: 0 = auto (16 with AVX-512, else 8), 1 = plain NCHW, 8, 16 */
    /* GPT (decoder-only transformer, GPT-2 architecture): the vocabulary is
     * num_classes; the input is seq_len token ids per sample (as floats), the
     * logits [seq_len][vocab] per sample, one label per position */
    int n_layer, n_head, n_embd;
    int seq_len;              /* context length */
} ol_model_params;

typedef struct ol_model ol_model;

ol_model_params ol_model_default_params(void);
/* Parse an architecture name: "mlp", "resnet20" (any 6n+2), "plain20" (no skips),
 * "resnet18" (torchvision), "gpt" (n_layer, n_head, n_embd, seq_len as set),
 * "gpt-mini" (4 layers, 4 heads, 128 wide, context 128), "gpt2-124m" (GPT-2
 * small: 12, 12, 768, context 1024, vocabulary 50257). Sets arch, depth and
 * no_skip, and a preset's GPT fields. */
int ol_model_params_set_arch(ol_ctx *ctx, ol_model_params *mp, const char *name);
/* Canonical name of the configured architecture, e.g. "resnet20", "wrn20-4", "plain56". */
void ol_model_params_name(const ol_model_params *mp, char *buf, size_t cap);

int ol_model_create(ol_ctx *ctx, const ol_model_params *mp, ol_model **out);
void ol_model_free(ol_model *m); /* NULL-safe */

/* Re-initialise all parameters and BN statistics as mp->init/seed say. */
int ol_model_init_params(ol_ctx *ctx, ol_model *m);
ol_paramset *ol_model_paramset(ol_model *m);
const ol_model_params *ol_model_get_params(const ol_model *m);
int ol_model_num_classes(const ol_model *m);
/* Rows of logits, and labels, per sample: 1, or seq_len for a GPT. */
int ol_model_outputs_per_sample(const ol_model *m);

/* Grow the arenas for batches up to n. Forward does this on demand. */
int ol_model_reserve(ol_ctx *ctx, ol_model *m, int n);
/* Bytes held by activations, activation gradients, layer workspaces, the loss
 * buffers and backend scratch. */
size_t ol_model_memory_bytes(const ol_model *m);

/* What a model needs at a batch size, in bytes. */
typedef struct {
    size_t params, grads;     /* parameters and their gradients (padded as laid out) */
    size_t buffers;           /* non-trainable state (BatchNorm running statistics) */
    size_t activations;       /* every layer's output at the batch */
    size_t activation_grads;  /* their gradients (slots shared by liveness) */
    size_t workspace;         /* per-layer workspace (max-pool indices, BatchNorm partial sums) */
    size_t loss;              /* softmax probabilities and per-sample losses */
    size_t total;             /* the sum of the above */
    size_t num_params;        /* real (unpadded) trainable parameters */
} ol_model_memory;

/* Estimate, before allocating anything large, the memory a model built from
 * mp needs at batch size `batch`: only the layer graph is described (a few KB),
 * no parameter or activation is allocated. The activation, workspace and loss
 * figures equal what ol_model_reserve(batch) then allocates. Not included:
 * optimizer state (the optimizer's bytes per parameter times num_params),
 * backend scratch (oneDNN, sized at the first pass), data. Returns OL_OK or a
 * negative code (invalid mp or batch; *out zeroed). */
int ol_model_memory_estimate(ol_ctx *ctx, const ol_model_params *mp, int batch, ol_model_memory *out);

/* Freezing the ReLU activation pattern (for finite-difference Hessian-vector
 * products, optimlab/hessian.h: the loss with a frozen pattern is smooth in the
 * weights and has, at the weights where the pattern was recorded, the same
 * gradient and the same Hessian as backpropagation sees).
 * OL_RELU_RECORD: each forward writes pattern[i] = (output i of a ReLU > 0);
 * OL_RELU_APPLY: each forward uses output i = pattern[i] ? pre-activation : 0,
 * and backward passes gradients where the pattern is 1. The pattern of a
 * forward of n samples is n * ol_model_relu_units(m) bytes (caller-owned;
 * point at the next batch's part before each forward). NULL: ReLUs as usual.
 * Max-pooling choices are not frozen. */
typedef enum { OL_RELU_FREE = 0, OL_RELU_RECORD, OL_RELU_APPLY } ol_relu_mode;
size_t ol_model_relu_units(const ol_model *m); /* ReLU outputs per sample */
void ol_model_set_relu_pattern(ol_model *m, ol_relu_mode mode, unsigned char *pattern);

/* Forward pass. train != 0 uses batch statistics in BatchNorm and updates the
 * running statistics (PyTorch's train mode); 0 uses the running statistics. */
int ol_model_forward(ol_ctx *ctx, ol_model *m, const float *x, int n, int train);
/* Logits of the last forward: [n][num_classes], owned by the model. */
const float *ol_model_logits(const ol_model *m);

/* Softmax probabilities computed by the last ol_model_loss: [n][num_classes],
 * owned by the model (ensembles average them). */
const float *ol_model_probs(const ol_model *m);

/* Whether the model has BatchNorm layers (running statistics in the buffers). */
int ol_model_has_batchnorm(const ol_model *m);
/* The momentum of the BatchNorm running statistics (PyTorch's: new = (1 - m)
 * old + m batch), one value for every BatchNorm layer: mp.bn_momentum until
 * set. Set it to 1/(b+1) for the b-th batch to recompute the statistics as a
 * cumulative average. */
float ol_model_bn_momentum(const ol_model *m);
void ol_model_set_bn_momentum(ol_model *m, float momentum);

/* Softmax cross-entropy of the last forward's logits against labels (one per
 * sample, or for a sequence model one per position: labels [n][T], the
 * counts and sums then run over the n*T positions), with
 * optional label smoothing. Returns the summed loss (not the mean) and the
 * number of correct top-1 predictions, and sets the logits' gradient to
 * grad_scale * d(sum of losses)/d(logits): pass 1/batch for the mean loss, or
 * 1/global_batch when accumulating micro-batches. */
int ol_model_loss(ol_ctx *ctx, ol_model *m, const int32_t *labels, int n, float label_smoothing, float grad_scale,
                  double *loss_sum, int *correct);
/* Backward pass of the last forward; adds parameter gradients into the param
 * set's grads (zero them before the first micro-batch of a step). Each micro-batch's
 * share of a gradient is summed from zero and added once, so micro-batches give the
 * bits of ranks that each compute one and sum them in order. */
int ol_model_backward(ol_ctx *ctx, ol_model *m);
/* Zero the gradients (ol_paramset_zero_grads of ol_model_paramset) and let the next
 * backward write its products into them instead of adding: the same bits, one pass
 * over the largest gradients fewer. */
void ol_model_zero_grads(ol_model *m);

/* Also compute the gradient of the loss with respect to the input (saliency,
 * tests); ol_model_input_grad returns it after a backward pass, NULL when off. */
int ol_model_enable_input_grad(ol_ctx *ctx, ol_model *m);
const float *ol_model_input_grad(const ol_model *m);

/* Called during ol_model_backward after each layer with the lowest offset in
 * the flat gradient buffer from which all gradients are final (0 at the end):
 * the hook that starts gradient all-reduces while backward goes on. */
typedef void (*ol_backward_hook)(void *user, size_t final_from);
void ol_model_set_backward_hook(ol_model *m, ol_backward_hook fn, void *user);

/* Multi-line architecture summary (layers, shapes, parameter counts). */
int ol_model_summary(const ol_model *m, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
