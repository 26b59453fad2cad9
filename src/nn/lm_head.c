/* Language-model head tied to the token embedding (GPT-2):
 *   logits [N][T][V] = x [N][T][C] wte^T,  wte [V][C] the embedding's matrix
 * No bias. Its gradient adds into wte's, which the embedding's backward then
 * adds to (the graph counts wte final only after that). */
#include "nn/backend.h"
#include "nn/graph.h"

static int lm_head_forward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N, int train)
{
    (void)train;
    const ol__value *xv = &m->vals[nd->in[0]], *yv = &m->vals[nd->out];
    const int64_t R = (int64_t)N * ol__value_rows(xv), C = xv->c, V = yv->c;
    ol__sgemm(ctx, 0, 1, R, V, C, 1.0f, xv->data, C, ol__P(m, nd->p_w), C, 0.0f, yv->data, V);
    return OL_OK;
}

static int lm_head_backward(ol_ctx *ctx, ol_model *m, ol__node *nd, int N)
{
    const ol__value *xv = &m->vals[nd->in[0]], *yv = &m->vals[nd->out];
    const int64_t R = (int64_t)N * ol__value_rows(xv), C = xv->c, V = yv->c;
    OL__TRY(ol__graph_sgemm_acc(ctx, m, nd->p_w, 1, 0, V, C, R, yv->grad, V, xv->data, C));
    if (nd->need_dx[0])
        ol__sgemm(ctx, 0, 0, R, C, V, 1.0f, yv->grad, V, ol__P(m, nd->p_w), C, nd->acc_dx[0] ? 1.0f : 0.0f, xv->grad,
                  C);
    return OL_OK;
}

int ol__graph_lm_head(ol_ctx *ctx, ol_model *m, int x, int wte)
{
    OL__TRY(ol__graph_check_value(ctx, m, x));
    const ol__value v = m->vals[x];
    if (wte < 0 || wte >= m->ps.n || m->ps.t[wte].ndim != 2 || m->ps.t[wte].shape[1] != v.c)
        return ol__err(ctx, OL_ESHAPE, "lm head: the tied matrix must be [vocab][%d]", v.c);
    if (ol__value_rows(&v) == 0)
        return ol__err(ctx, OL_ESHAPE, "lm head: input must be flat features or a sequence");
    const int V = (int)m->ps.t[wte].shape[0];
    int id = ol__graph_simple_node(ctx, m, OL__OP_LM_HEAD, x, -1, V, v.h, v.w, v.h * v.w > 1 ? V : 1);
    OL__TRY(id);
    m->nodes[id].p_w = wte;
    return m->nodes[id].out;
}

static const char *lm_head_note(const ol__node *nd)
{
    (void)nd;
    return " tied"; /* its parameters are the embedding's, counted there */
}

const ol__layer_ops ol__layer_lm_head = {
    .name = "lm-head", .forward = lm_head_forward, .backward = lm_head_backward, .note = lm_head_note};
