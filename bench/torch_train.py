#!/usr/bin/env python3
"""PyTorch CPU training throughput of the networks `optimlab bench train` times,
for a side-by-side comparison (bench/compare.sh runs both).

  python3 bench/torch_train.py --model resnet20|mlp|resnet18 --batch-size 128 \
      --steps 20 --threads 2 [--warmup 3] [--input 1x28x28] [--classes 10] \
      [--mode eager|channels_last|compile] [--json]

--mode: eager (as written), channels_last (model and input in NHWC memory
format, which oneDNN convolutions prefer), compile (torch.compile of the model,
PyTorch 2.x; compilation happens in the warm-up steps, at least 3).
The optimizer is torch.optim.SGD with fused=True where this torch has it
(2.x), else its default (foreach) implementation.

Same work as optimlab's benchmark: random inputs uniform in [-1, 1), labels
i % classes, one step = zero grads, forward, cross-entropy (mean), backward,
SGD step (lr 0.01, momentum 0.9); warm-up steps are not timed. The networks are
the golden-test definitions (tests/gen/gen_model_golden.py): ResNet-20 with
option-A shortcuts exactly as optimlab's (akamaster/pytorch_resnet_cifar10, any
input channels), the MLP 784-1024-1024-10, torchvision's ResNet-18.

Prints samples/s (mean over the timed steps, and from the median step), the
peak RSS (getrusage ru_maxrss; `rss_after_setup_mb` is the part before
training: the Python interpreter and torch itself), and the kernels torch
reports: its oneDNN (MKL-DNN) version, CPU capability, and the OpenBLAS core
(Debian's torch does its GEMMs in OpenBLAS; OpenBLAS 0.3.21 does not know
newer Xeons and falls back to the generic Prescott kernel unless
OPENBLAS_CORETYPE is set - compare.sh runs both ways).
"""
import argparse
import ctypes
import json
import os
import sys

import torch_timing as tt


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="resnet20", choices=["resnet20", "mlp", "resnet18"])
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--input", default="1x28x28", help="CxHxW")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--widths", default="1024,1024", help="MLP hidden widths")
    ap.add_argument("--mode", default="eager", choices=["eager", "channels_last", "compile"])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args()
    try:
        a.shape = tuple(int(v) for v in a.input.split("x"))
        assert len(a.shape) == 3 and min(a.shape) > 0
    except (ValueError, AssertionError):
        ap.error("--input: expected CxHxW such as 1x28x28, got '%s'" % a.input)
    if a.batch_size < 1 or a.steps < 1 or a.warmup < 0 or a.threads < 1:
        ap.error("--batch-size, --steps and --threads must be >= 1, --warmup >= 0")
    return a


def openblas_info():
    """(core name, library) of the OpenBLAS loaded into this process."""
    libs = []
    with open("/proc/self/maps") as f:
        for line in f:
            p = line.split()[-1]
            if "openblas" in p and p.endswith((".so", ".so.0", ".so.3")) or "libopenblas" in p:
                if p not in libs:
                    libs.append(p)
    for p in libs:
        try:
            lib = ctypes.CDLL(p)
            fn = lib.openblas_get_corename
        except (OSError, AttributeError):
            continue
        fn.restype = ctypes.c_char_p
        return fn().decode(), p
    return "none found", ""


def main():
    a = parse_args()
    tt.set_threads(a.threads)
    import torch
    import torch.nn.functional as F

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "gen"))
    from gen_model_golden import MLP, CifarResNet, TVResNet18

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    c, h, w = a.shape
    if a.model == "resnet20":
        model = CifarResNet(20, c, a.classes, "A")
    elif a.model == "resnet18":
        model = TVResNet18(c, a.classes)
    else:
        model = MLP(c * h * w, [int(v) for v in a.widths.split(",")], a.classes)
    nparams = sum(p.numel() for p in model.parameters())
    model.train()
    opt, opt_impl = tt.fused_or(torch.optim.SGD, model, "default", {}, lr=0.01, momentum=0.9)
    g = torch.Generator().manual_seed(88172645463325252 % (2 ** 63))
    x = torch.rand(a.batch_size, c, h, w, generator=g) * 2 - 1
    y = torch.arange(a.batch_size) % a.classes
    fwd = model
    if a.mode == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
        fwd = model
    elif a.mode == "compile":
        fwd = tt.compiled(torch, model, "torch_train.py")
        a.warmup = max(a.warmup, 3)
    rss_setup = tt.rss_mb()

    def step():
        opt.zero_grad(set_to_none=False)
        loss = F.cross_entropy(fwd(x), y)
        loss.backward()
        opt.step()
        return loss

    mean, med = tt.mean_median(tt.time_steps(step, a.warmup, a.steps, "torch_train.py", torch))
    core, blaslib = openblas_info()
    cfg = torch.__config__.show()
    dnnl = next((l.strip().lstrip("- ") for l in cfg.splitlines() if "MKL-DNN" in l or "oneDNN" in l), "?")
    cap = tt.cpu_capability(torch)
    res = {
        "framework": "pytorch",
        "torch": torch.__version__,
        "mode": a.mode,
        "optimizer_impl": opt_impl,
        "model": a.model,
        "params": nparams,
        "batch_size": a.batch_size,
        "input": a.input,
        "threads": torch.get_num_threads(),
        "steps": a.steps,
        "warmup": a.warmup,
        "samples_per_s": round(a.batch_size / mean, 1),
        "median_samples_per_s": round(a.batch_size / med, 1),
        **tt.timing_fields(mean, med, rss_setup),
        "openblas_core": core,
        "openblas_lib": blaslib,
        "openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE", ""),
        "mkldnn": dnnl,
        "mkldnn_enabled": bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled),
        "cpu_capability": cap,
    }
    if a.json:
        print(json.dumps(res))
    else:
        print("torch %s train: %s (%d parameters), batch %d, input %s, %d threads, mode %s, %s SGD" % (
            torch.__version__, a.model, nparams, a.batch_size, a.input, res["threads"], a.mode, opt_impl))
        print("kernels: %s; CPU capability %s; OpenBLAS core %s%s" % (
            dnnl, cap, core, " (OPENBLAS_CORETYPE=%s)" % res["openblas_coretype_env"] if res["openblas_coretype_env"]
            else ""))
        tt.print_timing(mean, med, res, "%.1f samples/s" % res["samples_per_s"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
