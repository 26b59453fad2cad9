#!/usr/bin/env python3
"""Small Fashion-MNIST-format (IDX, uncompressed) directories for the hostile suite:
ok (28x28, 10 classes), classes13 (labels up to 12), test14 / test56 (test images
14x14 / 56x56 beside 28x28 training images), big4096 (one 4096x4096 image per split). Usage: gen_idx.py OUTDIR"""
import os
import struct
import sys


def images(path, n, h, w, seed):
    with open(path, "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, h, w))
        row = bytes((i * 31 + seed * 7) % 256 for i in range(256))
        f.write((row * (n * h * w // 256 + 1))[:n * h * w])


def labels(path, n, classes):
    with open(path, "wb") as f:
        f.write(struct.pack(">II", 0x801, n))
        f.write(bytes(i % classes for i in range(n)))


def make(d, train_hw=28, test_hw=28, classes=10, n=64, nt=32):
    os.makedirs(d, exist_ok=True)
    images(os.path.join(d, "train-images-idx3-ubyte"), n, train_hw, train_hw, 1)
    labels(os.path.join(d, "train-labels-idx1-ubyte"), n, classes)
    images(os.path.join(d, "t10k-images-idx3-ubyte"), nt, test_hw, test_hw, 2)
    labels(os.path.join(d, "t10k-labels-idx1-ubyte"), nt, min(classes, 10))


out = sys.argv[1]
make(os.path.join(out, "ok"))
make(os.path.join(out, "classes13"), classes=13)
make(os.path.join(out, "test14"), test_hw=14)
make(os.path.join(out, "test56"), test_hw=56)
make(os.path.join(out, "big4096"), train_hw=4096, test_hw=4096, n=1, nt=1)  # one 4096x4096 image
