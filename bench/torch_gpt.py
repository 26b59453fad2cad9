#!/usr/bin/env python3
"""PyTorch CPU training throughput of the GPT-2 that `optimlab bench train
--model gpt-mini|gpt2-124m` times, for a side-by-side comparison
(bench/compare.sh runs both).

  python3 bench/torch_gpt.py --model gpt-mini|gpt2-124m --seq-len 256 \
      --batch-size 4 --steps 10 --threads 2 [--warmup 2] [--vocab V] \
      [--mode eager|compile] [--json]

The model is nanoGPT's model.py: token + position embeddings, pre-LayerNorm
blocks, causal self-attention fused in F.scaled_dot_product_attention
(is_causal=True), a GELU (tanh) MLP of width 4C, final LayerNorm, LM head tied
to the token embedding, biases in every Linear and LayerNorm. The context
(position table) is --seq-len, as optimlab's bench builds it, so both have the
same parameters. --mode compile: torch.compile of the model (PyTorch 2.x;
compilation happens in the warm-up steps, at least 2).

Same work as optimlab's benchmark: random token ids and targets uniform in
[0, vocab), one step = zero grads, forward, cross-entropy (mean over tokens),
backward, AdamW step (lr 6e-4, betas 0.9/0.95, eps 1e-8, weight decay 0.1 on
every parameter, fused=True where this torch has it, else foreach); warm-up
steps are not timed. Prints tokens/s and samples/s (mean over the timed
steps, and from the median step) and the peak RSS (getrusage ru_maxrss;
`rss_after_setup_mb` is the part before training: the interpreter, torch,
the parameters and the optimizer).
"""
import argparse
import json
import math
import sys

import torch_timing as tt

PRESETS = {"gpt-mini": (4, 4, 128, 128, 256), "gpt2-124m": (12, 12, 768, 1024, 50257)}


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="gpt-mini", choices=sorted(PRESETS))
    ap.add_argument("--seq-len", type=int, default=0, help="tokens per sample (0: the preset's context)")
    ap.add_argument("--vocab", type=int, default=0, help="vocabulary (0: the preset's: 256 bytes, GPT-2's 50257)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mode", default="eager", choices=["eager", "compile"])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args()
    if a.batch_size < 1 or a.steps < 1 or a.warmup < 0 or a.threads < 1 or a.seq_len < 0 or a.vocab < 0:
        ap.error("--batch-size, --steps and --threads must be >= 1, --warmup, --seq-len and --vocab >= 0")
    return a


def build(torch, nn, F, vocab, T, n_layer, n_head, C):
    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = nn.Linear(C, 3 * C)
            self.c_proj = nn.Linear(C, C)

        def forward(self, x):
            B, t, _ = x.shape
            q, k, v = self.c_attn(x).split(C, dim=2)
            q, k, v = (z.view(B, t, n_head, C // n_head).transpose(1, 2) for z in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.c_proj(y.transpose(1, 2).contiguous().view(B, t, C))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(C)
            self.attn = Attention()
            self.ln_2 = nn.LayerNorm(C)
            self.c_fc = nn.Linear(C, 4 * C)
            self.c_proj = nn.Linear(4 * C, C)

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.c_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(vocab, C)
            self.wpe = nn.Embedding(T, C)
            self.h = nn.ModuleList([Block() for _ in range(n_layer)])
            self.ln_f = nn.LayerNorm(C)
            self.lm_head = nn.Linear(C, vocab, bias=False)
            self.lm_head.weight = self.wte.weight  # tied
            for name, p in self.named_parameters():  # GPT-2 initialisation
                if name.endswith("c_proj.weight"):
                    nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layer))
                elif p.dim() == 2:
                    nn.init.normal_(p, 0.0, 0.02)
                elif name.endswith("bias") and "ln" not in name:
                    nn.init.zeros_(p)

        def forward(self, idx, targets):
            t = idx.shape[1]
            x = self.wte(idx) + self.wpe(torch.arange(t))
            for b in self.h:
                x = b(x)
            logits = self.lm_head(self.ln_f(x))
            return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    return GPT()


def main():
    a = parse_args()
    tt.set_threads(a.threads)
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    n_layer, n_head, C, ctx_len, vocab = PRESETS[a.model]
    T = a.seq_len or ctx_len
    vocab = a.vocab or vocab
    model = build(torch, nn, F, vocab, T, n_layer, n_head, C)
    model.train()
    nparams = sum(p.numel() for p in model.parameters())
    kw = dict(lr=6e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    opt, opt_impl = tt.fused_or(torch.optim.AdamW, model, "foreach", {"foreach": True}, **kw)
    g = torch.Generator().manual_seed(88172645463325252 % (2 ** 63))
    x = torch.randint(0, vocab, (a.batch_size, T), generator=g)
    y = torch.randint(0, vocab, (a.batch_size, T), generator=g)
    fwd = model
    if a.mode == "compile":
        fwd = tt.compiled(torch, model, "torch_gpt.py")
        a.warmup = max(a.warmup, 2)
    rss_setup = tt.rss_mb()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = fwd(x, y)
        loss.backward()
        opt.step()
        return loss

    mean, med = tt.mean_median(tt.time_steps(step, a.warmup, a.steps, "torch_gpt.py", torch))
    cap = tt.cpu_capability(torch)
    tokens = a.batch_size * T
    res = {
        "framework": "pytorch",
        "torch": torch.__version__,
        "mode": a.mode,
        "optimizer_impl": opt_impl,
        "model": a.model,
        "params": nparams,
        "batch_size": a.batch_size,
        "seq_len": T,
        "threads": torch.get_num_threads(),
        "steps": a.steps,
        "warmup": a.warmup,
        "samples_per_s": round(a.batch_size / mean, 2),
        "tokens_per_s": round(tokens / mean, 1),
        "median_tokens_per_s": round(tokens / med, 1),
        **tt.timing_fields(mean, med, rss_setup),
        "cpu_capability": cap,
    }
    if a.json:
        print(json.dumps(res))
    else:
        print("torch %s train: %s (%d parameters), batch %d, %d tokens per sample, vocabulary %d, %d threads, mode %s, "
              "%s AdamW" % (torch.__version__, a.model, nparams, a.batch_size, T, vocab, res["threads"], a.mode,
                            opt_impl))
        tt.print_timing(mean, med, res, "%.1f tokens/s (%.2f samples/s)" % (res["tokens_per_s"], res["samples_per_s"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
