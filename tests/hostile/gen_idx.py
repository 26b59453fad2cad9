#!/usr/bin/env python3
"""Small Fashion-MNIST-format (IDX, uncompressed) directories for the hostile suite:
ok (28x28, 10 classes), classes13 (labels up to 12), test14 / test56 (test images
14x14 / 56x56 beside 28x28 training images), big4096 (one 4096x4096 image per split); gzip sets gz-ok,
gz-claim41 (header claims 4.1 GB), gz-garbage (bytes after the stream),
gz-forged (trailer forged to the claim). Usage: gen_idx.py OUTDIR"""
import gzip
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


def gz_set(d, images_gz):
    """A gzip Fashion-MNIST directory whose image files hold images_gz."""
    os.makedirs(d, exist_ok=True)
    lab = gzip.compress(struct.pack(">II", 0x801, 64) + bytes(i % 10 for i in range(64)))
    for pre in ("train", "t10k"):
        open(os.path.join(d, pre + "-images-idx3-ubyte.gz"), "wb").write(images_gz)
        open(os.path.join(d, pre + "-labels-idx1-ubyte.gz"), "wb").write(lab)


ok_images = struct.pack(">IIII", 0x803, 64, 28, 28) + bytes(i % 256 for i in range(64 * 784))
claim = struct.pack(">IIII", 0x803, 5230000, 28, 28) + bytes(1000)  # the header claims 4.1 GB
gz_set(os.path.join(out, "gz-ok"), gzip.compress(ok_images))
gz_set(os.path.join(out, "gz-claim41"), gzip.compress(claim))
gz_set(os.path.join(out, "gz-garbage"), gzip.compress(ok_images) + b"trailing garbage")
forged = bytearray(gzip.compress(claim))  # ISIZE forged to agree with the 4.1 GB header
forged[-4:] = struct.pack("<I", (16 + 5230000 * 784) & 0xFFFFFFFF)
gz_set(os.path.join(out, "gz-forged"), bytes(forged))
