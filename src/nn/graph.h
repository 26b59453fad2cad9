/* The network: a list of nodes in topological order over values (activation
 * tensors). Layers are free forward/backward functions over these structs;
 * activations live in one arena sized for the largest batch seen, gradients of
 * activations in a second arena whose slots are reused by liveness.
 *
 * Activation layout: a value with channel block B stores element (n, c, h, w) at
 *   ((n*(C/B) + c/B)*H*W + h*W + w)*B + c%B
 * B = 1 is plain NCHW; B = 16 is oneDNN's nChw16c; B = C is NHWC. Features
 * (linear layers) are values with H = W = 1 and B = 1. Sequences (the
 * language-model layers) are values with C features, H = T positions, W = 1
 * and B = C: rows [N][T][C], token-major. */
#ifndef OL_NN_GRAPH_H
#define OL_NN_GRAPH_H

#include <stdint.h>

#include "core/internal.h"
#include "optimlab/model.h"
#include "optimlab/params.h"

/* Elements of simple per-element work below which a layer runs on one
 * thread: a parallel region's start and barrier cost more than the work, and
 * far more when the cores are shared with other processes. */
#define OL__PAR_MIN ((size_t)1 << 17)

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

/* Every layer type, once: X(ENUM, ops) where ops is the layer's ol__layer_ops,
 * defined in the layer's own file. A new layer type is one file and one row. */
#define OL__LAYERS(X)                                                                                               \
    X(CONV2D, ol__layer_conv2d)                                                                                      \
    X(BATCHNORM2D, ol__layer_batchnorm2d) /* optional residual input and ReLU fused */                               \
    X(RELU, ol__layer_relu)                                                                                          \
    X(ADD, ol__layer_add) /* optional ReLU */                                                                        \
    X(SHORTCUT_A, ol__layer_shortcut_a)                                                                              \
    X(MAXPOOL2D, ol__layer_maxpool2d)                                                                                \
    X(AVGPOOL_GLOBAL, ol__layer_avgpool)                                                                             \
    X(FLATTEN, ol__layer_flatten)                                                                                    \
    X(LINEAR, ol__layer_linear) /* optional ReLU; flat features or rows */                                    \
    X(EMBEDDING, ol__layer_embedding) /* token + position */                                                        \
    X(LAYERNORM, ol__layer_layernorm)                                                                                \
    X(ATTENTION, ol__layer_attention) /* causal multi-head self-attention */                                         \
    X(GELU, ol__layer_gelu) /* tanh approximation */                                                                 \
    X(LM_HEAD, ol__layer_lm_head) /* logits against a tied embedding matrix */

typedef enum {
#define OL__X(e, ops) OL__OP_##e,
    OL__LAYERS(OL__X)
#undef OL__X
    OL__OP_COUNT
} ol__op;

typedef struct ol__conv_impl ol__conv_impl; /* backend state (oneDNN primitives) */

typedef struct ol__node {
    ol__op op;
    char name[OL_NAME_MAX]; /* parameter prefix, e.g. "layer1.0.conv1" */
    int in[2];              /* value indices, -1 when absent */
    int out;
    int acc_dx[2]; /* backward: 1 = add into the input's gradient, 0 = overwrite */
    int need_dx[2];
    int relu;
    int heads;      /* attention: number of heads */
    float init_std; /* > 0: weights start N(0, init_std^2), biases 0 (GPT-2); 0: the model's scheme */
    /* conv / pool geometry */
    int k, stride, pad;
    /* parameters (indices into the param set, -1 when absent) */
    int p_w, p_b;
    int b_mean, b_var; /* BN running statistics: buffer indices */
    float bn_momentum, bn_eps;
    /* saved forward state */
    float *save_mean, *save_invstd; /* BN: [C] statistics used by the last forward */
    float *coef;                    /* BN: [3C] backward coefficients */
    void *ws; /* per-batch workspace, ops->workspace_bytes at max_batch (max-pool indices, BN partials) */
    ol__conv_impl *impl;
    size_t final_from; /* after this node's backward, grads at offsets >= final_from are final */
} ol__node;

/* What a layer type provides. graph.c runs every node through its type's row;
 * nothing else in the executor knows a layer type. */
typedef struct ol__layer_ops {
    const char *name; /* in summaries */
    /* y = f(x) over N samples; train != 0: batch statistics (BatchNorm) */
    int (*forward)(ol_ctx *ctx, ol_model *m, ol__node *nd, int N, int train);
    /* parameter gradients +=; input gradients overwritten or added as nd->acc_dx says */
    int (*backward)(ol_ctx *ctx, ol_model *m, ol__node *nd, int N);
    /* before any node's backward (NULL: nothing): a layer whose parameter gradient a
     * later node also adds to (a tied weight) gets ready to sum the batch's share apart */
    int (*backward_begin)(ol_ctx *ctx, ol_model *m, ol__node *nd, int N);
    /* bytes of nd->ws at batch N beyond the output activation (NULL: none) */
    size_t (*workspace_bytes)(const ol_model *m, const ol__node *nd, int N);
    /* fixed state once the parameters are laid out (NULL: none) */
    int (*setup)(ol_ctx *ctx, ol_model *m, ol__node *nd);
    /* frees what setup and the layer's backend created (NULL: nothing) */
    void (*destroy)(ol__node *nd);
    /* appended to the summary line after " +relu", e.g. " +residual" (NULL: nothing) */
    const char *(*note)(const ol__node *nd);
} ol__layer_ops;

#define OL__X(e, ops) extern const ol__layer_ops ops;
OL__LAYERS(OL__X)
#undef OL__X
const ol__layer_ops *ol__layer_ops_of(ol__op op);

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
    int out_rows;  /* logits per sample: 1, or T for a sequence model */
    int max_batch; /* arenas are sized for this */
    int cur_batch; /* batch of the last forward */
    int train_bn;  /* last forward used batch statistics */
    int input_grad; /* backward also computes d loss / d input */
    int relu_mode;  /* ol_relu_mode: ReLU outputs as computed, recorded or frozen */
    unsigned char *relu_pat; /* the pattern for the next forward (caller-owned) */
    ol_backward_hook bwd_hook;
    void *bwd_hook_user;
    float *act_arena;
    float *grad_arena;
    unsigned char *ws_arena; /* every node's nd->ws */
    size_t act_bytes, grad_bytes, ws_bytes;
    float *probs; /* [max_batch * classes] softmax of the last loss */
    double *sample_loss; /* [max_batch] per-sample loss of the last loss call */
    void *scratch; /* shared backend scratchpad */
    size_t scratch_cap;
    float *tmp; /* shared temporary activation-sized buffer */
    size_t tmp_cap;
    /* [ps.n] 1 while a tensor's gradient holds the zeros of ol_model_zero_grads: its
     * first product is written, not added (ol__graph_sgemm_acc) */
    unsigned char *grad_zero;
    int grad_zero_cap;
};

/* Building blocks for the layers' own graph functions: a new value (output
 * tensor), a node of a layer type, a parameter or buffer named prefix.suffix.
 * Each returns the new index or < 0. */
int ol__graph_new_value(ol_ctx *ctx, ol_model *m, int c, int h, int w, int blk, int producer);
int ol__graph_new_node(ol_ctx *ctx, ol_model *m, ol__op op, const char *name, int in0, int in1);
int ol__graph_check_value(ol_ctx *ctx, const ol_model *m, int v);
int ol__graph_add_param(ol_ctx *ctx, ol_model *m, const char *prefix, const char *suffix, ol_kind kind, int ndim,
                        const int64_t *shape);
int ol__graph_add_buffer(ol_ctx *ctx, ol_model *m, const char *prefix, const char *suffix, int64_t n);
/* A node without parameters whose output has the given shape; returns the node index. */
int ol__graph_simple_node(ol_ctx *ctx, ol_model *m, ol__op op, int a, int b, int c, int h, int w, int blk);

/* Building (models call these, each defined in its layer's file; each returns
 * the new value index or < 0). */
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
/* Token ids x (flat, T per sample, stored as floats) -> [N][T][C] token plus
 * position embeddings: wte [vocab][C], wpe [T][C]. */
int ol__graph_embedding(ol_ctx *ctx, ol_model *m, const char *wte, const char *wpe, int x, int vocab, int C);
int ol__graph_layernorm(ol_ctx *ctx, ol_model *m, const char *name, int x);
/* qkv [N][T][3C] -> [N][T][C], causal, heads of C/heads features. */
int ol__graph_attention(ol_ctx *ctx, ol_model *m, int qkv, int heads);
int ol__graph_gelu(ol_ctx *ctx, ol_model *m, int x);
/* [N][T][C] -> logits [N][T][vocab] = x wte^T with the parameter wte (index
 * into the param set, [vocab][C]) of an embedding: tied, gradients add up. */
int ol__graph_lm_head(ol_ctx *ctx, ol_model *m, int x, int wte);
/* After the last node: finalize parameters, plan memory for max_batch. */
int ol__graph_finish(ol_ctx *ctx, ol_model *m, int logits);
/* Only the output part of finishing: the logits value and the class count. */
int ol__graph_set_output(ol_ctx *ctx, ol_model *m, int logits);
/* Bytes the graph needs at batch n (activations, their gradients, workspace,
 * loss buffers), from the shapes alone: also on a graph not yet finished. */
int ol__graph_plan_bytes(ol_ctx *ctx, ol_model *m, int n, size_t *act, size_t *grad, size_t *ws, size_t *loss);
void ol__graph_free(ol_model *m);

/* Channel block the graph gives conv outputs (16 on AVX-512, 8 otherwise). */
int ol__graph_channel_block(const ol_model *m);

static inline float *ol__P(ol_model *m, int i) { return m->ps.params + m->ps.t[i].offset; }
static inline float *ol__G(ol_model *m, int i) { return m->ps.grads + m->ps.t[i].offset; }
static inline float *ol__BUF(ol_model *m, int i) { return m->ps.buffers + m->ps.b[i].offset; }

/* Rows of v->c contiguous features per sample (flat features: 1, sequences:
 * T), or 0 when the layout is channel-blocked. */
static inline int ol__value_rows(const ol__value *v)
{
    if (v->blk == v->c)
        return v->h * v->w;
    return (v->h == 1 && v->w == 1) ? 1 : 0;
}

static inline size_t ol__lidx(const ol__value *v, int64_t n, int c, int h, int w)
{
    int B = v->blk;
    return (((size_t)n * (size_t)(v->c / B) + (size_t)(c / B)) * (size_t)(v->h * v->w) + (size_t)(h * v->w + w)) *
               (size_t)B +
           (size_t)(c % B);
}

/* Layer kernels: parameter gradients are always accumulated (+=) into
 * ps->grads; input gradients are overwritten or accumulated as nd->acc_dx says. */
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

/* Copy plain NCHW input into value 0 (converting the layout if needed). */
void ol__graph_load_input(ol_model *m, const float *x, int N);
/* Make sure the shared backend scratchpad holds bytes. */
int ol__graph_scratch(ol_ctx *ctx, ol_model *m, size_t bytes, void **out);
int ol__graph_tmp(ol_ctx *ctx, ol_model *m, size_t floats, float **out);
/* C[M,N] += op(A) op(B) for the gradient C of parameter tensor param: the product is computed
 * from zero (in row chunks through the model's temporary) and added to C once, so a process that accumulates
 * micro-batches gets the bits of ranks that each compute theirs and sum them
 * (--deterministic-reduce); a GEMM told to add (beta 1) adds partial sums over K block by block.
 * Into a gradient still zero (ol_model_zero_grads) the product is written directly. */
int ol__graph_sgemm_acc(ol_ctx *ctx, ol_model *m, int param, int transa, int transb, int64_t M, int64_t N,
                        int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb);

#endif
