/* GPT-2 (Radford et al. 2019; karpathy/nanoGPT's model.py, llm.c's
 * train_gpt2.c): token + learned position embeddings, n_layer pre-LayerNorm
 * blocks of causal multi-head self-attention and a GELU (tanh) MLP of width
 * 4 n_embd, each added to the residual stream, a final LayerNorm and an LM
 * head tied to the token embedding. Parameter names are nanoGPT's
 * (transformer.wte, transformer.h.L.attn.c_attn, ...; nn.Linear [out][in]).
 * Initialisation as GPT-2: weights N(0, 0.02^2), the projections into the
 * residual stream N(0, (0.02 / sqrt(2 n_layer))^2), biases 0, LayerNorm 1, 0. */
#include <math.h>
#include <stdio.h>

#include "models/builders.h"

#define OL__GPT_STD 0.02f

/* the node that produced value v starts N(0, std^2) */
static int with_std(ol_model *m, int v, float std)
{
    if (v >= 0)
        m->nodes[m->vals[v].producer].init_std = std;
    return v;
}

static void layer_name(char *buf, size_t cap, int l, const char *name)
{
    snprintf(buf, cap, "transformer.h.%d.%s", l, name);
}

static int linear(ol_ctx *ctx, ol_model *m, int l, const char *name, int x, int out, float std)
{
    char full[OL_NAME_MAX];
    layer_name(full, sizeof full, l, name);
    return with_std(m, ol__graph_linear(ctx, m, full, x, out, 0), std);
}

static int block(ol_ctx *ctx, ol_model *m, int l, int x)
{
    const ol_model_params *mp = &m->mp;
    const int C = mp->n_embd;
    const float proj_std = OL__GPT_STD / sqrtf(2.0f * (float)mp->n_layer);
    char name[OL_NAME_MAX];
    layer_name(name, sizeof name, l, "ln_1");
    int a = ol__graph_layernorm(ctx, m, name, x);
    OL__TRY(a);
    a = linear(ctx, m, l, "attn.c_attn", a, 3 * C, OL__GPT_STD);
    OL__TRY(a);
    a = ol__graph_attention(ctx, m, a, mp->n_head);
    OL__TRY(a);
    a = linear(ctx, m, l, "attn.c_proj", a, C, proj_std);
    OL__TRY(a);
    int r = ol__graph_add(ctx, m, x, a, 0);
    OL__TRY(r);
    layer_name(name, sizeof name, l, "ln_2");
    a = ol__graph_layernorm(ctx, m, name, r);
    OL__TRY(a);
    a = linear(ctx, m, l, "mlp.c_fc", a, 4 * C, OL__GPT_STD);
    OL__TRY(a);
    a = ol__graph_gelu(ctx, m, a);
    OL__TRY(a);
    a = linear(ctx, m, l, "mlp.c_proj", a, C, proj_std);
    OL__TRY(a);
    return ol__graph_add(ctx, m, r, a, 0);
}

int ol__build_gpt(ol_ctx *ctx, ol_model *m, int x)
{
    const ol_model_params *mp = &m->mp;
    if (mp->n_layer < 1 || mp->n_head < 1 || mp->n_embd < 1 || mp->n_embd % mp->n_head != 0)
        return ol__err(ctx, OL_EINVAL, "gpt: %d layers, %d heads, width %d: need >= 1 of each, heads dividing the width",
                       mp->n_layer, mp->n_head, mp->n_embd);
    int a = with_std(m, ol__graph_embedding(ctx, m, "transformer.wte", "transformer.wpe", x, mp->num_classes, mp->n_embd),
                     OL__GPT_STD);
    OL__TRY(a);
    for (int l = 0; l < mp->n_layer; l++) {
        a = block(ctx, m, l, a);
        OL__TRY(a);
    }
    a = ol__graph_layernorm(ctx, m, "transformer.ln_f", a);
    OL__TRY(a);
    return ol__graph_lm_head(ctx, m, a, ol_paramset_find(&m->ps, "transformer.wte.weight"));
}
