#!/usr/bin/env bash
# --gns over 2 ranks: the small batches are the per-rank gradients (their
# norms taken from the DDP buckets just before each all-reduce), the big one
# the all-reduced gradient. With the ranks' contiguous shards equal to one
# process's micro-batches, the estimates match the one-process micro-batch
# estimates step by step; the weights are bitwise those of the run without
# --gns; PowerSGD with --gns over ranks is refused (exit 2, one line).
# Usage: test_mpi_gns.sh path/to/optimlab
set -uo pipefail
bin=$1
. "$(dirname "$0")/mpi_env.sh" mpi-gns
common=(--model mlp --widths 64 --dataset synthetic --synthetic-size 1024 --batch-size 64 --epochs 1
        --quiet --threads 1 --lr 0.05 --momentum 0.9 --log-every 4 --checkpoint-every 0 --deterministic-reduce)
"${mpi[@]}" -np 2 "$bin" train "${common[@]}" --gns --out "$tmp/np2" >"$tmp/np2.txt" 2>&1 || { cat "$tmp/np2.txt"; exit 1; }
"${mpi[@]}" -np 2 "$bin" train "${common[@]}" --out "$tmp/np2off" >/dev/null 2>&1 || exit 1
"$bin" train "${common[@]}" --micro-batch-size 32 --gns --out "$tmp/np1" >/dev/null 2>&1 || exit 1
"$py" - "$tmp" <<'PY' || fail=1
import glob, json, struct, sys, math
t = sys.argv[1]
def data(d):
    p = sorted(glob.glob(d + "/ckpt-*.safetensors"))[-1]
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]
    return b[8 + n:]
same = data(t + "/np2") == data(t + "/np2off")
print(("ok  " if same else "FAIL") + " np 2 with and without --gns: tensor bytes " + ("identical" if same else "DIFFER"))
def gns(d):
    return [(r["step"], r["gns"], r["gns_trace"]) for r in map(json.loads, open(d + "/metrics.jsonl")) if r["type"] == "step"]
a, b = gns(t + "/np2"), gns(t + "/np1")
rel = max(abs(x[1] - y[1]) / abs(y[1]) for x, y in zip(a, b)) if a and len(a) == len(b) else float("inf")
ok = len(a) == 4 and rel < 1e-3 and all(math.isfinite(x[1]) for x in a)
print(("ok  " if ok else "FAIL") + f" np 2 per-rank estimates vs one process with micro-batches of 32: "
      f"{len(a)} step records, max relative difference {rel:.2e}; B_simple {[round(x[1], 2) for x in a]}")
sys.exit(0 if same and ok else 1)
PY
grep -q "critical batch size" "$tmp/np2.txt" && echo "ok   np 2 summary prints the critical batch size" ||
    { echo "FAIL np 2 summary"; fail=1; }
"${mpi[@]}" -np 2 "$bin" train "${common[@]}" --gns --powersgd-rank 2 --out "$tmp/psgd" >"$tmp/psgd.out" 2>"$tmp/psgd.err"
st=$?
if [ $st -eq 2 ] && [ ! -e "$tmp/psgd" ] && grep -q "exact all-reduce" "$tmp/psgd.err"; then
    echo "ok   np 2 --gns --powersgd-rank 2: exit 2: $(grep -m1 . "$tmp/psgd.err")"
else
    echo "FAIL np 2 --gns with PowerSGD: exit $st: $(cat "$tmp/psgd.err")"; fail=1
fi
[ $fail -eq 0 ] && echo "test_mpi_gns: all passed"
exit $fail
