#!/usr/bin/python3
"""Golden fixtures for tests/test_model_golden.c: the optimlab networks built in
PyTorch, with deterministic parameters, one training-mode forward/backward and an
eval-mode forward.

Run with Debian's python3 (torch 1.13):  /usr/bin/python3 tests/gen/gen_model_golden.py
(the gpt case needs torch >= 1.12 for GELU's approximate="tanh"; it was made with torch 2.15 from a
virtual environment: /work/venv-torch/bin/python tests/gen/gen_model_golden.py gpt).
It writes tests/fixtures/golden/<case>.json. The C test needs only those files.

Networks (PyTorch definitions, written out here so no torchvision is needed):
  mlp        Linear 64-32-16-5 with ReLU, on 1x8x8 (fc1, fc2, fc3)
  resnet8a   CIFAR ResNet-8 of akamaster/pytorch_resnet_cifar10 (option A, the
             LambdaLayer F.pad(x[:, :, ::2, ::2], (0,0,0,0,p,p))), on 2x12x12
  resnet8b   the same with option B shortcuts (1x1 conv + BN, `shortcut.0/.1`)
  plain8     the same without shortcuts
  resnet20a  CIFAR ResNet-20, option A, on 1x28x28
  resnet18   torchvision's resnet18 (BasicBlock, `downsample.0/.1`), on 3x32x32
  gpt        a GPT-2 as nanoGPT's model.py (2 layers, 2 heads, width 16, context 6,
             vocabulary 17; pre-LayerNorm blocks, causal attention, GELU tanh,
             LM head tied to transformer.wte): tokens (7 i + 3) mod 17 as input,
             one label (5 i + 2) mod 17 per position, cross entropy over all
             positions; no BatchNorm, so the eval logits equal the train ones

Usage: gen_model_golden.py [CASE ...]   (default: every case)

Values: every tensor is filled from a 32-bit integer hash, so the C test can
recompute them bit for bit (integer arithmetic, then one double multiply-add,
then rounding to float32):
  u(s, i) = lowbias32((i + 0x9E3779B9 * (s + 1)) mod 2^32) / 2^32      in [0, 1)
  lowbias32(x): x ^= x >> 16; x *= 0x7feb352d; x ^= x >> 15; x *= 0x846ca68b; x ^= x >> 16  (mod 2^32)
  value[i] = float32(center + scale * (2 u(s, i) - 1))
where i is the flat index (row-major; conv OIHW, linear [out, in]) and the
stream s is the tensor's position k in named_parameters(), 1000 + k for the
k-th buffer in named_buffers() (num_batches_tracked left out), 2000 for the
input. Each fixture lists center and scale per tensor:
  conv/linear weights  center 0, scale 1/sqrt(fan_in)
  linear biases, BN biases, running_mean   center 0, scale 0.1
  BN and LayerNorm weights  center 1, scale 0.2
  embeddings (wte, wpe)     center 0, scale 0.5
  running_var          center 1, scale 0.5
Labels y[n] = (3*n + 1) % classes.
(Smooth formulas such as 0.1*sin(1 + 0.37*i + 1.1*k) make the weights periodic
in i: convolutions then cancel massively and a ResNet-18 in float32 differs
from float64 by O(1) at the logits - no implementation could match it.)

Computation, in float64 from those float32 values (so the fixture is the exact
answer, not one float32 rounding of it): model.train(); logits = model(x);
loss = cross_entropy(logits, y, label_smoothing=0.1) (mean); loss.backward().
Recorded: logits, loss, every parameter gradient, the BN running statistics
after the update (momentum 0.1, unbiased variance), and then model.eval()
logits. The same run in float32 is compared with float64 and its error stored
as `torch_f32_err`: the float32 noise floor the C tolerance must sit above.

Tensors with more than 64 elements are stored as 32 sampled flat indices with
their values, plus numel, sum, L2 norm and max |v| of the whole tensor.
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

LABEL_SMOOTHING = 0.1
FULL_MAX = 64
NSAMPLES = 32
F32_MAX_ERR = 5e-5  # torch float32 vs float64, per tensor, relative to max |v|


# ---- networks -----------------------------------------------------------------------------

class MLP(nn.Module):
    def __init__(self, n_in, widths, classes):
        super().__init__()
        dims = [n_in] + list(widths) + [classes]
        self.n = len(dims) - 1
        for j in range(self.n):
            setattr(self, "fc%d" % (j + 1), nn.Linear(dims[j], dims[j + 1]))

    def forward(self, x):
        x = torch.flatten(x, 1)
        for j in range(self.n):
            x = getattr(self, "fc%d" % (j + 1))(x)
            if j + 1 < self.n:
                x = F.relu(x)
        return x


class LambdaLayer(nn.Module):  # akamaster/pytorch_resnet_cifar10 resnet.py
    def __init__(self, lambd):
        super().__init__()
        self.lambd = lambd

    def forward(self, x):
        return self.lambd(x)


class CifarBlock(nn.Module):  # akamaster BasicBlock, plus a no-skip switch
    def __init__(self, in_planes, planes, stride=1, option="A", skip=True):
        super().__init__()
        self.skip = skip
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if skip and (stride != 1 or in_planes != planes):
            if option == "A":
                self.shortcut = LambdaLayer(
                    lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4), "constant", 0))
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.skip:
            out = out + self.shortcut(x)
        return F.relu(out)


class CifarResNet(nn.Module):  # akamaster ResNet, any input channels
    def __init__(self, depth, in_c, classes, option="A", skip=True):
        super().__init__()
        n = (depth - 2) // 6
        self.in_planes = 16
        self.conv1 = nn.Conv2d(in_c, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(16, n, 1, option, skip)
        self.layer2 = self._make_layer(32, n, 2, option, skip)
        self.layer3 = self._make_layer(64, n, 2, option, skip)
        self.linear = nn.Linear(64, classes)

    def _make_layer(self, planes, n, stride, option, skip):
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(CifarBlock(self.in_planes, planes, s, option, skip))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size()[3])
        return self.linear(out.view(out.size(0), -1))


class TVBlock(nn.Module):  # torchvision.models.resnet.BasicBlock
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class TVResNet18(nn.Module):  # torchvision.models.resnet18 structure and names
    def __init__(self, in_c, classes):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(in_c, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, 2, 1)
        self.layer2 = self._make_layer(128, 2, 2)
        self.layer3 = self._make_layer(256, 2, 2)
        self.layer4 = self._make_layer(512, 2, 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, classes)

    def _make_layer(self, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        layers = [TVBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        for _ in range(1, blocks):
            layers.append(TVBlock(self.inplanes, planes))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class GPTAttention(nn.Module):
    def __init__(self, C, nh):
        super().__init__()
        self.nh = nh
        self.c_attn = nn.Linear(C, 3 * C)
        self.c_proj = nn.Linear(C, C)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.nh, C // self.nh).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // self.nh))
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
        att = F.softmax(att.masked_fill(~mask, float("-inf")), dim=-1)
        return self.c_proj((att @ v).transpose(1, 2).contiguous().view(B, T, C))


class GPTMLP(nn.Module):
    def __init__(self, C):
        super().__init__()
        self.c_fc = nn.Linear(C, 4 * C)
        self.c_proj = nn.Linear(4 * C, C)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class GPTBlock(nn.Module):
    def __init__(self, C, nh):
        super().__init__()
        self.ln_1 = nn.LayerNorm(C)
        self.attn = GPTAttention(C, nh)
        self.ln_2 = nn.LayerNorm(C)
        self.mlp = GPTMLP(C)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):  # nanoGPT's model.py structure and names
    def __init__(self, vocab, seq_len, n_layer, n_head, n_embd):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab, n_embd), wpe=nn.Embedding(seq_len, n_embd),
            h=nn.ModuleList([GPTBlock(n_embd, n_head) for _ in range(n_layer)]), ln_f=nn.LayerNorm(n_embd)))
        self.lm_head = nn.Linear(n_embd, vocab, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied

    def forward(self, idx):
        t = idx.shape[1]
        x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(t))
        for b in self.transformer.h:
            x = b(x)
        return self.lm_head(self.transformer.ln_f(x))


GPT_CFG = {"arch": "gpt", "n_layer": 2, "n_head": 2, "n_embd": 16, "seq_len": 6}

# (name, constructor, optimlab model description, input CxHxW, classes, batch)
CASES = [
    ("mlp", lambda: MLP(64, [32, 16], 5), {"arch": "mlp", "widths": [32, 16]}, (1, 8, 8), 5, 6),
    ("resnet8a", lambda: CifarResNet(8, 2, 4, "A"), {"arch": "resnet8", "shortcut": "A"}, (2, 12, 12), 4, 4),
    ("resnet8b", lambda: CifarResNet(8, 2, 4, "B"), {"arch": "resnet8", "shortcut": "B"}, (2, 12, 12), 4, 4),
    ("plain8", lambda: CifarResNet(8, 2, 4, "A", skip=False), {"arch": "plain8", "shortcut": "A"}, (2, 12, 12), 4, 4),
    ("resnet20a", lambda: CifarResNet(20, 1, 10, "A"), {"arch": "resnet20", "shortcut": "A"}, (1, 28, 28), 10, 4),
    ("resnet18", lambda: TVResNet18(3, 10), {"arch": "resnet18"}, (3, 32, 32), 10, 8),
    ("gpt", lambda: GPT(17, 6, 2, 2, 16), GPT_CFG, (6, 1, 1), 17, 3),
]


# ---- deterministic values ------------------------------------------------------------------

M32 = 0xFFFFFFFF


def hash_u(stream, n):
    """u(stream, i) for i in [0, n), as float64 in [0, 1) (exact: integer ops, then / 2^32)."""
    x = (np.arange(n, dtype=np.uint64) + np.uint64((0x9E3779B9 * (stream + 1)) & M32)) & np.uint64(M32)
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & np.uint64(M32)
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & np.uint64(M32)
    x ^= x >> np.uint64(16)
    return x.astype(np.float64) / 4294967296.0


def values(stream, center, scale, n):
    v = center + scale * (2.0 * hash_u(stream, n) - 1.0)  # float64, as in C
    return torch.from_numpy(v.astype(np.float32))


def param_init(model, name, p):
    mod = model.get_submodule(name.rsplit(".", 1)[0])
    if isinstance(mod, (nn.BatchNorm2d, nn.LayerNorm)):
        return (1.0, 0.2) if name.endswith(".weight") else (0.0, 0.1)
    if isinstance(mod, nn.Embedding):
        return (0.0, 0.5)
    if name.endswith(".bias"):
        return (0.0, 0.1)
    return (0.0, 1.0 / math.sqrt(p[0].numel()))  # weight: fan_in = numel / out


def buffers_of(model):
    return [(n, b) for n, b in model.named_buffers() if not n.endswith("num_batches_tracked")]


def set_params(model):
    params, bufs = [], []
    with torch.no_grad():
        for k, (name, p) in enumerate(model.named_parameters()):
            center, scale = param_init(model, name, p)
            p.copy_(values(k, center, scale, p.numel()).view_as(p))
            params.append({"name": name, "stream": k, "shape": list(p.shape), "center": center, "scale": scale})
        for k, (name, b) in enumerate(buffers_of(model)):
            center, scale = (0.0, 0.1) if name.endswith("running_mean") else (1.0, 0.5)
            b.copy_(values(1000 + k, center, scale, b.numel()).view_as(b))
            bufs.append({"name": name, "stream": 1000 + k, "shape": list(b.shape), "center": center, "scale": scale})
    return params, bufs


INPUT_STREAM = 2000


def make_input(shape, classes, batch, tokens=False):
    if tokens:  # a language model: shape[0] positions, a label per position
        n = batch * shape[0]
        x = torch.tensor([(7 * i + 3) % classes for i in range(n)], dtype=torch.long).view(batch, shape[0])
        y = torch.tensor([(5 * i + 2) % classes for i in range(n)], dtype=torch.long).view(batch, shape[0])
        return x, y
    c, h, w = shape
    x = values(INPUT_STREAM, 0.0, 1.0, batch * c * h * w).view(batch, c, h, w)
    y = torch.tensor([(3 * n + 1) % classes for n in range(batch)], dtype=torch.long)
    return x, y


def run(model, x, y):
    """Train-mode forward/backward, then eval-mode forward. Returns a dict of tensors."""
    model.zero_grad(set_to_none=True)
    model.train()
    logits = model(x)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), label_smoothing=LABEL_SMOOTHING)
    loss.backward()
    out = {"logits_train": logits.detach().clone(), "loss": loss.detach().clone()}
    out["grads"] = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    out["buffers"] = {n: b.detach().clone() for n, b in buffers_of(model)}
    model.eval()
    with torch.no_grad():
        out["logits_eval"] = model(x).detach().clone()
    return out


# ---- records --------------------------------------------------------------------------------

def rnd(v):
    return float("%.10g" % float(v))


def sample_indices(numel):
    if numel <= FULL_MAX:
        return list(range(numel))
    s = {0, numel - 1}
    j = 1
    while len(s) < NSAMPLES:
        s.add((j * 2654435761 + 12345) % numel)
        j += 1
    return sorted(s)


def record(t):
    flat = t.detach().reshape(-1).double()
    idx = sample_indices(flat.numel())
    r = {"numel": flat.numel(), "sum": rnd(flat.sum()), "l2": rnd(flat.norm()), "absmax": rnd(flat.abs().max())}
    if flat.numel() <= FULL_MAX:
        r["val"] = [rnd(flat[i]) for i in idx]
    else:
        r["idx"] = idx
        r["val"] = [rnd(flat[i]) for i in idx]
    return r


def rel_err(a, b):
    """max |a-b| / max |b| over the tensor: the metric the C test uses."""
    a, b = a.double().reshape(-1), b.double().reshape(-1)
    scale = b.abs().max().item()
    return (a - b).abs().max().item() / (scale if scale > 0 else 1.0)


def main():
    torch.set_num_threads(2)
    outdir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "golden")
    os.makedirs(outdir, exist_ok=True)
    only = sys.argv[1:]
    for name, ctor, desc, shape, classes, batch in CASES:
        if only and name not in only:
            continue
        torch.manual_seed(0)
        model = ctor()
        params, bufs = set_params(model)
        lm = desc["arch"] == "gpt"
        x, y = make_input(shape, classes, batch, tokens=lm)
        ref = run(model.double(), x if lm else x.double(), y)  # float32 values, float64 arithmetic
        model32 = ctor()
        set_params(model32)
        got = run(model32, x, y)
        f32err = {
            "logits_train": rel_err(got["logits_train"], ref["logits_train"]),
            "loss": rel_err(got["loss"], ref["loss"]),
            "grads": max(rel_err(got["grads"][n], ref["grads"][n]) for n in ref["grads"]),
            "buffers": max((rel_err(got["buffers"][n], ref["buffers"][n]) for n in ref["buffers"]), default=0.0),
            "logits_eval": rel_err(got["logits_eval"], ref["logits_eval"]),
        }
        worst = max(f32err.values())
        if worst > F32_MAX_ERR:  # a kink (ReLU, max-pool tie) or cancellation: not a usable reference
            sys.exit("%s: torch float32 differs from float64 by %.3g (> %g): ill-conditioned case, not written"
                     % (name, worst, F32_MAX_ERR))
        for p in params:
            p["grad"] = record(ref["grads"][p["name"]])
        for b in bufs:
            b["after"] = record(ref["buffers"][b["name"]])
        fx = {
            "case": name,
            "generator": "tests/gen/gen_model_golden.py",
            "torch": torch.__version__,
            "model": desc,
            "input": list(shape),
            "classes": classes,
            "batch": batch,
            "label_smoothing": LABEL_SMOOTHING,
            "input_stream": INPUT_STREAM,
            "labels": y.reshape(-1).tolist(),
            "loss": rnd(ref["loss"]),
            "logits_train": [rnd(v) for v in ref["logits_train"].reshape(-1)],
            "logits_eval": [rnd(v) for v in ref["logits_eval"].reshape(-1)],
            "torch_f32_err": {k: float("%.3g" % v) for k, v in f32err.items()},
            "params": params,
            "buffers": bufs,
        }
        if lm:
            fx["tokens"] = x.reshape(-1).tolist()
        path = os.path.join(outdir, name + ".json")
        with open(path, "w") as f:
            json.dump(fx, f, separators=(",", ":"))
            f.write("\n")
        print("%-10s %3d params %3d buffers  loss %.6f  torch float32 vs float64: %s  -> %s (%d bytes)" % (
            name, len(params), len(bufs), fx["loss"],
            " ".join("%s %.2g" % kv for kv in f32err.items()), os.path.relpath(path), os.path.getsize(path)))


if __name__ == "__main__":
    sys.exit(main())
