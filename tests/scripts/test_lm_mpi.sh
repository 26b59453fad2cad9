#!/usr/bin/env bash
# Data-parallel equivalence for a GPT on byte-level text: mpirun -np 2 with
# global batch B gives the parameters of one process with batch B within
# float-summation tolerance; with --deterministic-reduce, those of one process
# accumulating the same shards (--micro-batch-size B/2) bitwise for every
# tensor, the embeddings included (their backward used to add position by
# position into the accumulated gradient, so a second micro-batch continued
# the first one's sums where the ranks' sums are added whole); a deterministic
# run repeats bitwise. Every rank checks after every step that the replicas
# agree (--check-replicas).
# Usage: test_lm_mpi.sh path/to/optimlab
set -uo pipefail
bin=$1
. "$(dirname "$0")/mpi_env.sh" lm-mpi
head -c 40000 "$(dirname "$0")"/../../README.md > "$tmp/text.txt"
common=(--model gpt --n-layer 2 --n-head 2 --n-embd 32 --seq-len 32 --dataset text --text-file "$tmp/text.txt"
        --batch-size 16 --steps 12 --epochs 1 --quiet --threads 1 --optimizer sgd --lr 0.3 --momentum 0.9
        --schedule cosine --checkpoint-every 0)
compare() { # A B exact|tol label
  "$py" - "$@" <<'PY' || fail=1
import sys, glob, json, struct
import numpy as np
def load(d):
    p = sorted(glob.glob(d + "/ckpt-*.safetensors"))[-1]
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__" or k.startswith("optim."):
            continue
        s, e = v["data_offsets"]
        out[k] = np.frombuffer(b[8 + n + s:8 + n + e], dtype=np.float32)
    return p.split("/")[-1], out
(na, a), (nb, b) = load(sys.argv[1]), load(sys.argv[2])
mode, label = sys.argv[3], sys.argv[4]
if mode == "same":
    differ = [k for k in a if k not in b or a[k].tobytes() != b[k].tobytes()]
    ok = na == nb and a.keys() == b.keys() and not differ
    print(("ok  " if ok else "FAIL") + f" {label}: {na} vs {nb}, parameters "
          + ("bitwise identical" if ok else "DIFFER: " + " ".join(differ)))
else:
    rel = max(float(np.max(np.abs(a[k] - b[k]))) / max(float(np.max(np.abs(a[k]))), 1e-30) for k in a)
    ok = na == nb and rel < 1e-4
    print(("ok  " if ok else "FAIL") + f" {label}: {na} vs {nb}, max relative difference {rel:.2e} (tolerance 1e-4)")
sys.exit(0 if ok else 1)
PY
}
"$bin" train "${common[@]}" --out "$tmp/one" >/dev/null || { echo "FAIL: single process"; fail=1; }
"${mpi[@]}" -np 2 "$bin" train "${common[@]}" --check-replicas --out "$tmp/two" >/dev/null \
  || { echo "FAIL: mpirun -np 2"; fail=1; }
compare "$tmp/one" "$tmp/two" tol "gpt: 1 process vs mpirun -np 2, batch 16"
# the deterministic reduction is the single-process accumulation, bitwise, every parameter
"$bin" train "${common[@]}" --micro-batch-size 8 --out "$tmp/one-m8" >/dev/null \
  || { echo "FAIL: micro-batches"; fail=1; }
for r in a b; do
  "${mpi[@]}" -np 2 "$bin" train "${common[@]}" --check-replicas --deterministic-reduce --out "$tmp/det-$r" \
    >/dev/null || { echo "FAIL: mpirun -np 2 --deterministic-reduce ($r)"; fail=1; }
done
compare "$tmp/one-m8" "$tmp/det-a" same "gpt: 1 process with micro-batches of 8 vs mpirun -np 2 --deterministic-reduce"
compare "$tmp/det-a" "$tmp/det-b" same "gpt: two mpirun -np 2 --deterministic-reduce runs"
exit $fail
