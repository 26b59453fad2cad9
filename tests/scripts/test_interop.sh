#!/usr/bin/env bash
# Interoperability with the Python safetensors package: Python reads a
# checkpoint (every tensor, shape, checksum of the values), and a file written
# by Python loads here. Skipped (exit 77) where `pip install safetensors numpy`
# does not work. Usage: test_interop.sh path/to/optimlab build_dir
set -uo pipefail
bin=$1
deps=$2/pydeps
py=$(command -v python3)
if ! PYTHONPATH=$deps "$py" -c "import safetensors.numpy, numpy" 2>/dev/null; then
  "$py" -m pip install -q --target "$deps" safetensors numpy >/dev/null 2>&1 || { echo "skip: cannot pip install safetensors numpy"; exit 77; }
fi
export PYTHONPATH=$deps
tmp=$(mktemp -d /tmp/optimlab-interop-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
"$bin" train --model resnet8 --dataset synthetic --synthetic-size 256 --epochs 1 --batch-size 32 --threads 2 --quiet \
  --out "$tmp/run" >/dev/null || exit 1
"$bin" export "$tmp/run" --out "$tmp/w.safetensors" >/dev/null || exit 1
"$py" - "$tmp" <<'PY' || exit 1
import sys, glob, json, struct, zlib, numpy as np
from safetensors.numpy import load_file, save_file
tmp = sys.argv[1]
ck = sorted(glob.glob(tmp + "/run/ckpt-*.safetensors"))[-1]
t = load_file(ck)
raw = open(ck, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]; hdr = json.loads(raw[8:8 + n])
meta = hdr["__metadata__"]
# every tensor of a ResNet-8 (option A) with its PyTorch shape
want = {"conv1.weight": (16, 1, 3, 3), "bn1.weight": (16,), "bn1.running_var": (16,),
        "layer1.0.conv1.weight": (16, 16, 3, 3), "layer2.0.conv1.weight": (32, 16, 3, 3),
        "layer3.0.conv2.weight": (64, 64, 3, 3), "layer3.0.bn2.bias": (64,), "linear.weight": (10, 64), "linear.bias": (10,)}
for k, s in want.items():
    assert k in t, k
    assert t[k].shape == s and t[k].dtype == np.float32, (k, t[k].shape)
    assert "optim.momentum_buffer." + k in t or k.startswith("bn") or ".bn" in k or "running" in k, k
# values: the CRC-32 optimlab stored covers every byte of the file, computed with "00000000" in its own place
slot = b'"file_crc32":"' + meta["file_crc32"].encode() + b'"'
assert raw.count(slot) == 1, "checksum slot"
blank = raw.replace(slot, b'"file_crc32":"00000000"')
assert "%08x" % zlib.crc32(blank) == meta["file_crc32"], "checksum"
w = load_file(tmp + "/w.safetensors")
params = [k for k in w if not k.endswith("num_batches_tracked")]
for k in params:
    assert np.array_equal(w[k], t[k]), k
assert w["bn1.num_batches_tracked"].dtype == np.int64
# a file written by Python: new random weights for every tensor, float64 on purpose
rng = np.random.default_rng(0)
mine = {k: rng.standard_normal(w[k].shape).astype(np.float64) for k in params}
mine["bn1.running_var"] = np.abs(mine["bn1.running_var"]) + 0.5
save_file(mine, tmp + "/py.safetensors")
np.save(tmp + "/fc.npy", mine["linear.weight"].astype(np.float32))
print(f"python read {len(t)} tensors of {ck.split('/')[-1]}, checksum ok; wrote {len(mine)} tensors")
PY
"$bin" import "$tmp/py.safetensors" --model resnet8 --out "$tmp/imported.safetensors" >/dev/null || exit 1
"$bin" train --model resnet8 --dataset synthetic --synthetic-size 64 --epochs 1 --batch-size 32 --lr 0 --threads 2 \
  --quiet --init-from "$tmp/py.safetensors" --out "$tmp/run2" --no-decay-on weight,bias,norm >/dev/null || exit 1
"$py" - "$tmp" <<'PY' || exit 1
import sys, glob, numpy as np
from safetensors.numpy import load_file
tmp = sys.argv[1]
a = load_file(tmp + "/imported.safetensors")
b = load_file(sorted(glob.glob(tmp + "/run2/ckpt-*.safetensors"))[-1])
fc = np.load(tmp + "/fc.npy")
assert np.array_equal(a["linear.weight"], fc) and np.array_equal(b["linear.weight"], fc), "weights not loaded exactly"
print("optimlab loaded the Python file: linear.weight identical after import and after --init-from with lr 0")
PY
