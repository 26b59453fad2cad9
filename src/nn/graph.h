/* The network: a list of nodes in topological order over values (activation
 * tensors). Layers are free forward/backward functions over these structs;
 * activations live in one arena sized for the largest batch seen, gradients of
 * activations in a second arena whose slots are reused by liveness.
 *
 * Activation layout: a value with channel block B stores element (n, c, h, w) at
 *   ((n*(C/B) + c/B)*H*W + h*W + w)*B + c%B
 * B = 1 is plain NCHW; B = 16 is oneDNN's nChw16c; B = C is NHWC. Features
 * (linear layers) are values with H = W = 1 and B = 1. */
#ifndef OL_NN_GRAPH_H
#define OL_NN_GRAPH_H

#include <stdint.h>

#include "core/internal.h"
#include "optimlab/model.h"
#include "optimlab/params.h"

typedef struct {
    int c, h, w;
    int blk;            /* channel block; c % blk == 0 */
    size_t numel;       /* per sample: c*h*w */
    float *data;        /* [max_batch * numel] */
    float *grad;        /* gradient slot, NULL when not needed */
    int producer;       /* node index, -1 for the network input */
    int grad_slot;      /* planner's slot, -1 for none */
    int64_t grad_bytes; /* bytes needed at max batch */
} ol__value;

typedef enum {
    OL__OP_CONV2D = 0,
    OL__OP_BATCHNORM2D, /* optional residual input and ReLU fused */
    OL__OP_RELU,
    OL__OP_ADD, /* optional ReLU */
    OL__OP_SHORTCUT_A,
    OL__OP_MAXPOOL2D,
    OL__OP_AVGPOOL_GLOBAL,
    OL__OP_FLATTEN,
    OL__OP_LINEAR, /* optional ReLU */
    OL__OP_COUNT
} ol__op;

typedef struct ol__conv_impl ol__conv_impl; /* backend state (oneDNN primitives) */

typedef struct {
    ol__op op;
    char name[OL_NAME_MAX]; /* parameter prefix, e.g. "layer1.0.conv1" */
    int in[2];              /* value indices, -1 when absent */
    int out;
    int acc_dx[2]; /* backward: 1 = add into the input's gradient, 0 = overwrite */
    int need_dx[2];
    int relu;
    /* conv / pool geometry */
    int k, stride, pad;
    /* parameters (indices into the param set, -1 when absent) */
    int p_w, p_b;
    int b_mean, b_var; /* BN running statistics: buffer indices */
    float bn_momentum, bn_eps;
    /* saved forward state */
    float *save_mean, *save_invstd; /* BN: [C] statistics used by the last forward */
    float *coef;                    /* BN: [3C] backward coefficients */
    int32_t *argmax;                /* max-pool: [max_batch * out numel] */
    double *partials;               /* BN: per-chunk reduction scratch */
    ol__conv_impl *impl;
    size_t final_from; /* after this node's backward, grads at offsets >= final_from are final */
} ol__node;

struct ol_model {
    ol_model_params mp;
    char arch[32];
    ol_paramset ps;
    ol__node *nodes;
    int nnodes, nodes_cap;
    ol__value *vals;
    int nvals, vals_cap;
    int logits; /* value index of the output */
    int num_classes;
    int max_batch; /* arenas are sized for this */
    int cur_batch; /* batch of the last forward */
    int train_bn;  /* last forward used batch statistics */
    int input_grad; /* backward also computes d loss / d input */
    ol_backward_hook bwd_hook;
    void *bwd_hook_user;
    float *act_arena;
    float *grad_arena;
    int32_t *idx_arena;
    size_t act_bytes, grad_bytes, idx_bytes;
    size_t loss_bytes; /* softmax, per-sample loss and BatchNorm partials at max_batch */
    int meta;          /* built for a size query: nothing allocated, nothing runs */
    float *probs; /* [max_batch * classes] softmax of the last loss */
    double *sample_loss; /* [max_batch] per-sample loss of the last loss call */
    void *scratch; /* shared backend scratchpad */
    size_t scratch_cap;
    float *tmp; /* shared temporary activation-sized buffer */
    size_t tmp_cap;
};

/* Building (models call these; each returns the new value index or < 0). */
int ol__graph_input(ol_ctx *ctx, ol_model *m, int c, int h, int w);
int ol__graph_conv(ol_ctx *ctx, ol_model *m, const char *name, int x, int cout, int k, int stride, int pad,
                   int bias);
int ol__graph_bn(ol_ctx *ctx, ol_model *m, const char *name, int x, int residual, int relu);
int ol__graph_relu(ol_ctx *ctx, ol_model *m, int x);
int ol__graph_add(ol_ctx *ctx, ol_model *m, int a, int b, int relu);
int ol__graph_shortcut_a(ol_ctx *ctx, ol_model *m, int x, int cout, int stride);
int ol__graph_maxpool(ol_ctx *ctx, ol_model *m, int x, int k, int stride, int pad);
int ol__graph_gap(ol_ctx *ctx, ol_model *m, int x);
int ol__graph_flatten(ol_ctx *ctx, ol_model *m, int x);
int ol__graph_linear(ol_ctx *ctx, ol_model *m, const char *name, int x, int out, int relu);
/* After the last node: finalize parameters, plan memory for max_batch (in a
 * meta model: plan only, allocate nothing). */
int ol__graph_finish(ol_ctx *ctx, ol_model *m, int logits);
/* Bytes of the planned arenas at max_batch: activations, their gradients,
 * pooling indices, loss and BatchNorm scratch. */
uint64_t ol__graph_activation_bytes(const ol_model *m);

/* Channel block the graph gives conv outputs (16 on AVX-512, 8 otherwise). */
int ol__graph_channel_block(const ol_model *m);

static inline float *ol__P(ol_model *m, int i) { return m->ps.params + m->ps.t[i].offset; }
static inline float *ol__G(ol_model *m, int i) { return m->ps.grads + m->ps.t[i].offset; }
static inline float *ol__BUF(ol_model *m, int i) { return m->ps.buffers + m->ps.b[i].offset; }

static inline size_t ol__lidx(const ol__value *v, int64_t n, int c, int h, int w)
{
    int B = v->blk;
    return (((size_t)n * (size_t)(v->c / B) + (size_t)(c / B)) * (size_t)(v->h * v->w) + (size_t)(h * v->w + w)) *
               (size_t)B +
           (size_t)(c % B);
}

/* Layer kernels. N is the batch. Parameter gradients are always accumulated
 * (+=) into ps->grads; input gradients are overwritten or accumulated as
 * nd->acc_dx says. */
int ol__conv_forward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N);
int ol__conv_backward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N);
void ol__conv_free_impl(ol__node *nd);
/* Reference convolution on raw buffers (also used by tests). */
void ol__conv_ref_fwd(const ol__value *x, const ol__value *y, const float *w, const float *b, int k, int stride,
                      int pad, int N, const float *xd, float *yd);
void ol__conv_ref_bwd_data(const ol__value *x, const ol__value *y, const float *w, int k, int stride, int pad,
                           int N, const float *dy, float *dx, int acc);
void ol__conv_ref_bwd_weights(const ol__value *x, const ol__value *y, int k, int stride, int pad, int N,
                              const float *xd, const float *dy, float *dw, float *db);
#ifdef OL_HAVE_ONEDNN
int ol__conv_onednn_forward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N);
int ol__conv_onednn_backward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N);
void ol__conv_onednn_free(ol__conv_impl *impl);
#endif

void ol__bn_forward(ol_model *m, ol__node *nd, int N, int train);
void ol__bn_backward(ol_model *m, ol__node *nd, int N);
void ol__relu_forward(ol_model *m, ol__node *nd, int N);
void ol__relu_backward(ol_model *m, ol__node *nd, int N);
void ol__add_forward(ol_model *m, ol__node *nd, int N);
void ol__add_backward(ol_model *m, ol__node *nd, int N);
void ol__shortcut_a_forward(ol_model *m, ol__node *nd, int N);
void ol__shortcut_a_backward(ol_model *m, ol__node *nd, int N);
void ol__maxpool_forward(ol_model *m, ol__node *nd, int N);
void ol__maxpool_backward(ol_model *m, ol__node *nd, int N);
void ol__gap_forward(ol_model *m, ol__node *nd, int N);
void ol__gap_backward(ol_model *m, ol__node *nd, int N);
void ol__flatten_forward(ol_model *m, ol__node *nd, int N);
void ol__flatten_backward(ol_model *m, ol__node *nd, int N);
void ol__linear_forward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N);
void ol__linear_backward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N);

/* Copy plain NCHW input into value 0 (converting the layout if needed). */
void ol__graph_load_input(ol_model *m, const float *x, int N);
/* Make sure the shared backend scratchpad holds bytes. */
int ol__graph_scratch(ol_ctx *ctx, ol_model *m, size_t bytes, void **out);
int ol__graph_tmp(ol_ctx *ctx, ol_model *m, size_t floats, float **out);

#endif
