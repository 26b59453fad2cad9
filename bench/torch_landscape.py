#!/usr/bin/env python3
"""The 2-D loss landscape the way tomgoldstein/loss-landscape computes it, in
PyTorch on the CPU, to time against `optimlab landscape` on the same grid.

  python3 bench/torch_landscape.py --weights W.safetensors [--grid 21x21]
      [--range -1:1] [--train-subset 2000] [--batch-size 128] [--threads 2]
      [--data-dir /usr/share/datasets/fashion-mnist] [--json]

W.safetensors: `optimlab export RUN --out W.safetensors` of a ResNet-20 run
(option-A shortcuts, the golden-test definition in tests/gen/gen_model_golden.py).
What the reference does (net_plotter.py, plot_surface.py, evaluation.py):
two random Gaussian directions over net.parameters(), filter-normalized, zero
on 1-D parameters (biases, BatchNorm: ignore='biasbn'); at each grid point
p.data = w + x d0 + y d1 (set_weights), then eval_loss: net.eval(), no_grad,
cross-entropy summed over batches of the first N training images. The data
are held as one normalised tensor (no DataLoader: PyTorch's best case).
Prints points/s and the loss at the centre (compare it with optimlab's).
"""
import argparse
import gzip
import json
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "gen"))
from gen_model_golden import CifarResNet  # noqa: E402


def load_safetensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        dt = {"F32": np.float32, "I64": np.int64, "F64": np.float64}[v["dtype"]]
        out[k] = torch.from_numpy(np.frombuffer(b[8 + n + s:8 + n + e], dtype=dt).reshape(v["shape"]).copy())
    return out


def load_idx(path):
    with gzip.open(path, "rb") as f:
        b = f.read()
    magic, n = struct.unpack(">II", b[:8])
    if magic == 2051:
        r, c = struct.unpack(">II", b[8:16])
        return np.frombuffer(b[16:], dtype=np.uint8).reshape(n, 1, r, c)
    return np.frombuffer(b[8:], dtype=np.uint8).astype(np.int64)


# net_plotter.py: random directions with filter-wise normalization
def normalize_direction(d, w):
    for di, wi in zip(d, w):
        di.mul_(wi.norm() / (di.norm() + 1e-10))


def create_random_direction(weights):
    direction = [torch.randn(w.size()) for w in weights]
    for d, w in zip(direction, weights):
        if d.dim() <= 1:
            d.fill_(0)
        else:
            normalize_direction(d, w)
    return direction


def set_weights(net, weights, directions, step):
    changes = [d0 * step[0] + d1 * step[1] for (d0, d1) in zip(directions[0], directions[1])]
    for (p, w, d) in zip(net.parameters(), weights, changes):
        p.data = w + d.type(type(w))


def eval_loss(net, x, y, batch):
    criterion = nn.CrossEntropyLoss()
    net.eval()
    total, correct = 0.0, 0
    with torch.no_grad():
        for s in range(0, x.shape[0], batch):
            out = net(x[s:s + batch])
            t = y[s:s + batch]
            total += criterion(out, t).item() * t.shape[0]
            correct += out.argmax(1).eq(t).sum().item()
    return total / x.shape[0], correct / x.shape[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--grid", default="21x21")
    ap.add_argument("--range", default="-1:1")
    ap.add_argument("--train-subset", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    nx, ny = (int(v) for v in a.grid.split("x"))
    lo, hi = (float(v) for v in a.range.split(":"))
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    imgs = load_idx(os.path.join(a.data_dir, "train-images-idx3-ubyte.gz"))
    labels = load_idx(os.path.join(a.data_dir, "train-labels-idx1-ubyte.gz"))
    mean, std = imgs.mean() / 255.0, (imgs / 255.0).std()  # optimlab: the whole training set's statistics
    x = torch.from_numpy(((imgs[:a.train_subset] / 255.0 - mean) / std).astype(np.float32))
    y = torch.from_numpy(labels[:a.train_subset])

    net = CifarResNet(20, 1, 10, "A")
    net.load_state_dict(load_safetensors(a.weights))
    w = [p.data.clone() for p in net.parameters()]
    dirs = [create_random_direction(w), create_random_direction(w)]
    xs = np.linspace(lo, hi, nx)
    ys = np.linspace(lo, hi, ny)
    centre = eval_loss(net, x, y, a.batch_size)  # also warms up oneDNN
    t0 = time.perf_counter()
    losses = np.zeros((ny, nx))
    for j, yy in enumerate(ys):
        for i, xx in enumerate(xs):
            set_weights(net, w, dirs, (xx, yy))
            losses[j, i] = eval_loss(net, x, y, a.batch_size)[0]
    secs = time.perf_counter() - t0
    res = {"points": nx * ny, "seconds": secs, "points_per_s": nx * ny / secs, "centre_loss": centre[0],
           "centre_acc": centre[1], "threads": a.threads, "torch": torch.__version__, "min_loss": float(losses.min())}
    if a.json:
        print(json.dumps(res))
    else:
        print("PyTorch %s, %d threads: %d points in %.1f s, %.3f points/s; centre loss %.6f acc %.4f" %
              (torch.__version__, a.threads, nx * ny, secs, nx * ny / secs, centre[0], centre[1]))


if __name__ == "__main__":
    main()
