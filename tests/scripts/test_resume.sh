#!/usr/bin/env bash
# Exact resume: N epochs straight vs a run preempted after one epoch and
# resumed give bitwise-identical tensor data in the final checkpoint, and the
# same metrics apart from timing. Usage: test_resume.sh path/to/optimlab
set -euo pipefail
bin=$1
tmp=$(mktemp -d /tmp/optimlab-resume-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
common=(--model resnet8 --dataset synthetic --synthetic-size 640 --epochs 2 --batch-size 64 --threads 2 --quiet
        --augment crop,flip --crop-pad 2 --evals-per-epoch 2 --log-every 3)
fail=0
run_case() {
  local name=$1; shift
  local a=$tmp/$name-straight b=$tmp/$name-resumed
  "$bin" train "${common[@]}" "$@" --out "$a" >/dev/null
  set +e
  "$bin" train "${common[@]}" "$@" --out "$b" --stop-after 10 >/dev/null 2>&1
  local st=$?
  set -e
  if [ $st -ne 4 ]; then echo "FAIL $name: preempted run exited $st, expected 4"; fail=1; return; fi
  "$bin" train --resume "$b" --quiet >/dev/null
  python3 - "$a" "$b" "$name" <<'PY' || fail=1
import json, struct, sys, glob, os
def data(d):
    p = sorted(glob.glob(os.path.join(d, "ckpt-*.safetensors")))[-1]
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]
    return os.path.basename(p), b[8 + n:]
def metrics(d):
    out = []
    for l in open(os.path.join(d, "metrics.jsonl")):
        o = json.loads(l)
        for k in ("elapsed", "samples_per_s", "train_time", "eval_time"):
            o.pop(k, None)
        out.append(o)
    return out
(na, da), (nb, db) = data(sys.argv[1]), data(sys.argv[2])
ma, mb = metrics(sys.argv[1]), metrics(sys.argv[2])
ok = na == nb and da == db and ma == mb
print(("ok  " if ok else "FAIL") + f" {sys.argv[3]}: final {na} vs {nb}, tensor bytes {len(da)} "
      f"{'identical' if da == db else 'DIFFER'}, {len(ma)} metrics records {'identical' if ma == mb else 'DIFFER'}")
sys.exit(0 if ok else 1)
PY
}
run_case sgd-nesterov --optimizer sgd --lr 0.1 --momentum 0.9 --nesterov --schedule cosine --warmup-epochs 0.5
run_case sgd-step --optimizer sgd --lr 0.05 --schedule step --step-size 1
ramp=(--schedule onecycle --batch-schedule ramp --max-batch-size 128 --batch-ramp-samples 640 --batch-ramp-increment 32
      --lr-scaling linear --base-batch-size 64 --micro-batch-size 32)
run_case sgd-onecycle-ramp --optimizer sgd --lr 0.05 "${ramp[@]}"
run_case adamw-onecycle-ramp --optimizer adamw --lr 3e-3 --weight-decay 0.05 "${ramp[@]}"
run_case lamb-onecycle-ramp --optimizer lamb --lr 1e-2 "${ramp[@]}"
run_case sfadamw-onecycle-ramp --optimizer sfadamw --lr 3e-3 --sf-warmup-steps 4 "${ramp[@]}"
exit $fail
