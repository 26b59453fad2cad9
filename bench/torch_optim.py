#!/usr/bin/env python3
"""PyTorch CPU optimizer-step time, for a side-by-side comparison with
`optimlab bench optimizer` (bench/compare.sh runs both).

  python3 bench/torch_optim.py --optimizer sgd|adamw --params 10000000 --tensors 10 \
      --threads 2 [--steps 20] [--warmup 3] [--impl foreach|fused|for-loop] [--json]

Same work as optimlab's benchmark: N parameters split into T tensors of equal
size (the last takes the remainder; each a 2-D matrix where the size allows, like
a model's weights), parameters uniform in [-1, 1), gradients uniform in
[-0.01, 0.01), one timed step = optimizer.step() with the same hyperparameters as
`optimlab bench optimizer` uses by default:
  sgd:   lr 0.1, momentum 0.9, weight decay 5e-4 (L2, added to the gradient)
  adamw: lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.01 (decoupled)
Warm-up steps (untimed) allocate the optimizer state first. Prints the median
step time and the effective memory traffic (20 bytes per parameter for SGD with
momentum: read p, g, buf, write p, buf; 28 for AdamW: read p, g, m, v, write p,
m, v).
"""
import argparse
import json
import sys

import torch_timing as tt


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--optimizer", default="sgd", choices=["sgd", "adamw"])
    ap.add_argument("--params", type=int, default=10000000)
    ap.add_argument("--tensors", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--impl", default="fused", choices=["foreach", "fused", "for-loop"])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args()
    if a.params < 1 or a.tensors < 1 or a.tensors > a.params or a.steps < 1 or a.warmup < 0 or a.threads < 1:
        ap.error("need --params >= --tensors >= 1, --steps >= 1, --warmup >= 0, --threads >= 1")
    return a


def shape_of(n):
    """A 2-D shape with n elements, as square as n's divisors allow."""
    r = int(n ** 0.5)
    while r > 1 and n % r:
        r -= 1
    return (n // r, r)


def main():
    a = parse_args()
    tt.set_threads(a.threads)
    import torch

    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(1)
    params, base = [], a.params // a.tensors
    for i in range(a.tensors):
        n = base + (a.params % a.tensors if i == a.tensors - 1 else 0)
        p = torch.nn.Parameter(torch.rand(shape_of(n), generator=g) * 2 - 1)
        p.grad = (torch.rand(p.shape, generator=g) * 2 - 1) * 1e-2
        params.append(p)
    kw = {"foreach": {"foreach": True}, "fused": {"fused": True}, "for-loop": {"foreach": False}}[a.impl]
    if a.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4, **kw)
        bpp = 20.0
    else:
        opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, **kw)
        bpp = 28.0
    with torch.no_grad():
        times = tt.time_steps(opt.step, a.warmup, a.steps, "torch_optim.py")
    mean, med = tt.mean_median(times)
    res = {
        "framework": "pytorch",
        "torch": torch.__version__,
        "optimizer": a.optimizer,
        "impl": a.impl,
        "params": a.params,
        "tensors": a.tensors,
        "threads": torch.get_num_threads(),
        "steps": a.steps,
        "ms_per_step": round(med * 1e3, 4),
        "mean_ms_per_step": round(mean * 1e3, 4),
        "gparams_per_s": round(a.params / med / 1e9, 4),
        "bytes_per_param": bpp,
        "gbytes_per_s": round(bpp * a.params / med / 1e9, 3),
    }
    if a.json:
        print(json.dumps(res))
    else:
        print("torch %s %s (%s): %d parameters in %d tensors, %d threads, median of %d steps"
              % (torch.__version__, a.optimizer, a.impl, a.params, a.tensors, res["threads"], a.steps))
        print("step: %.3f ms, %.3f G parameters/s, %.2f GB/s effective (%.0f bytes read+written per parameter)"
              % (med * 1e3, res["gparams_per_s"], res["gbytes_per_s"], bpp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
