/* The flat parameter store: one contiguous buffer for all trainable parameters,
 * one for their gradients, one for non-trainable state (BatchNorm running
 * statistics), and a table of tensor descriptors. Optimizers, gradient clipping,
 * all-reduce and checkpoints all work on these buffers.
 *
 * Each tensor starts at a 64-byte aligned offset; the padding between tensors
 * stays zero in every buffer, so whole-buffer passes are safe. */
#ifndef OPTIMLAB_PARAMS_H
#define OPTIMLAB_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "optimlab/core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define OL_NAME_MAX 64
#define OL_MAX_DIMS 4

typedef enum {
    OL_KIND_WEIGHT = 0, /* conv / linear weights */
    OL_KIND_BIAS,       /* biases */
    OL_KIND_NORM,       /* normalisation scale and shift (BN gamma, beta) */
    OL_KIND_COUNT
} ol_kind;

const char *ol_kind_name(ol_kind k);
int ol_kind_from_name(const char *name, ol_kind *out);

typedef struct {
    char name[OL_NAME_MAX]; /* PyTorch state_dict name, e.g. "layer1.0.conv1.weight" */
    int ndim;
    int64_t shape[OL_MAX_DIMS]; /* PyTorch order: conv OIHW, linear [out,in] */
    size_t offset;              /* in floats, into the owning buffer */
    size_t numel;
    ol_kind kind; /* parameters only; buffers use OL_KIND_NORM */
    int fan_in, fan_out;
} ol_tensor_desc;

typedef struct {
    ol_tensor_desc *t; /* parameter tensors */
    int n;
    size_t numel; /* floats in params/grads, padding included */
    float *params;
    float *grads;

    ol_tensor_desc *b; /* non-trainable buffers (running_mean, running_var, ...) */
    int nb;
    size_t bnumel;
    float *buffers;

    int cap, bcap;
} ol_paramset;

/* Registration happens while a model is built; ol_paramset_finalize allocates
 * the buffers (zero-filled). Returns the new tensor's index or a negative code. */
int ol_paramset_add(ol_ctx *ctx, ol_paramset *ps, const char *name, ol_kind kind, int ndim,
                    const int64_t *shape);
int ol_paramset_add_buffer(ol_ctx *ctx, ol_paramset *ps, const char *name, int ndim, const int64_t *shape);
int ol_paramset_finalize(ol_ctx *ctx, ol_paramset *ps);
void ol_paramset_free(ol_paramset *ps);

/* Index of the parameter (or buffer) called name, or -1. */
int ol_paramset_find(const ol_paramset *ps, const char *name);
int ol_paramset_find_buffer(const ol_paramset *ps, const char *name);

/* Number of real (unpadded) trainable parameters. */
size_t ol_paramset_count(const ol_paramset *ps);
void ol_paramset_zero_grads(ol_paramset *ps);
/* L2 norm over all gradients (double accumulation, deterministic). */
double ol_paramset_grad_norm(const ol_paramset *ps);

#ifdef __cplusplus
}
#endif
#endif
