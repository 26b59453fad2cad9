# Shared set-up and checks of the test scripts: "$tmp" (removed on exit),
# "$py", fail=0, ok/bad, and comparisons of run directories' checkpoints.
# Usage: . lib.sh TMP-NAME    (mpi_env.sh sources it for the MPI scripts)
tmp=$(mktemp -d "/tmp/optimlab-$1-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
py=/usr/bin/python3; [ -x $py ] || py=python3
fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }

# compare_params A B exact|TOL LABEL [NEAR]: the parameters in the newest checkpoints of run
# directories A and B (optimizer and distributed state and BatchNorm running statistics aside) are
# bitwise the same, but for the comma-separated tensors NEAR within 1e-6 relative (exact), or within
# TOL relative (the largest difference over a tensor's largest value); otherwise fail=1.
compare_params() {
  "$py" - "$@" <<'PY' || fail=1
import sys, glob, json, struct
import numpy as np
def load(d):
    p = sorted(glob.glob(d + "/ckpt-*.safetensors"))[-1]
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__" or k.startswith(("optim.", "dist.")) or "running" in k:
            continue
        s, e = v["data_offsets"]
        out[k] = np.frombuffer(b[8 + n + s:8 + n + e], dtype=np.float32)
    return p.split("/")[-1], out
def rel(a, b, keys):
    return max((float(np.max(np.abs(a[k] - b[k]))) / max(float(np.max(np.abs(a[k]))), 1e-30) for k in keys),
               default=0.0)
(na, a), (nb, b) = load(sys.argv[1]), load(sys.argv[2])
mode, label = sys.argv[3], sys.argv[4]
near = [k for k in sys.argv[5].split(",") if k] if len(sys.argv) > 5 else []
if mode == "exact":
    same = a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a if k not in near)
    r = rel(a, b, near) if same else float("inf")
    ok = na == nb and same and r < 1e-6
    what = "parameters but " + ", ".join(near) if near else "parameters"
    print(("ok  " if ok else "FAIL") + f" {label}: {na} vs {nb}, {what} {'bitwise identical' if same else 'DIFFER'}"
          + (f", {', '.join(near)} within {r:.1e} (tolerance 1e-6)" if near else ""))
else:
    r = rel(a, b, a) if a.keys() == b.keys() else float("inf")
    ok = na == nb and r < float(mode)
    print(("ok  " if ok else "FAIL") + f" {label}: {na} vs {nb}, max relative difference {r:.2e} (tolerance {mode})")
sys.exit(0 if ok else 1)
PY
}

# resume_case NAME N TRAIN-ARGS...: `train TRAIN-ARGS` straight, and stopped after N steps (exit 4)
# then resumed, end with bitwise the same tensor data in the newest checkpoint and the same metrics
# records apart from timings; otherwise fail=1.
resume_case() {
  local name=$1 n=$2; shift 2
  local a=$tmp/$name-straight b=$tmp/$name-resumed st=0
  "$bin" train "$@" --out "$a" >/dev/null || { bad "$name straight"; return; }
  "$bin" train "$@" --out "$b" --stop-after "$n" >/dev/null 2>&1 || st=$?
  [ $st -eq 4 ] || { bad "$name: preempted run exited $st, expected 4"; return; }
  "$bin" train --resume "$b" --quiet >/dev/null || { bad "$name: resume"; return; }
  "$py" - "$a" "$b" "$name" <<'PY' || fail=1
import json, struct, sys, glob, os
def data(d):
    p = sorted(glob.glob(os.path.join(d, "ckpt-*.safetensors")))[-1]
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]
    return os.path.basename(p), b[8 + n:]
def metrics(d):
    out = []
    for l in open(os.path.join(d, "metrics.jsonl")):
        o = json.loads(l)
        for k in ("elapsed", "samples_per_s", "tokens_per_s", "train_time", "eval_time"):
            o.pop(k, None)
        out.append(o)
    return out
(na, da), (nb, db) = data(sys.argv[1]), data(sys.argv[2])
ma, mb = metrics(sys.argv[1]), metrics(sys.argv[2])
ok = na == nb and da == db and ma == mb
print(("ok  " if ok else "FAIL") + f" resume {sys.argv[3]}: final {na} vs {nb}, tensor bytes {len(da)} "
      f"{'identical' if da == db else 'DIFFER'}, {len(ma)} metrics records {'identical' if ma == mb else 'DIFFER'}")
sys.exit(0 if ok else 1)
PY
}
