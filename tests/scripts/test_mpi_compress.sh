#!/usr/bin/env bash
# PowerSGD and DiLoCo on 2 ranks: the maths tests under mpirun (each rank its
# own gradients or its own inner steps); training runs with --check-replicas;
# PowerSGD with a rank >= every tensor's full rank and DiLoCo with Local-SGD
# settings and H = 1 give the exact all-reduce's parameters (MLP: ReLU and
# BatchNorm nets amplify rounding differences past any useful tolerance); the
# bytes in the epoch records are exactly the messages' sizes; a stopped and
# resumed run ends bitwise where the uninterrupted one does; bad launches and
# bench allreduce. Usage: test_mpi_compress.sh path/to/optimlab build-dir
set -uo pipefail
bin=$1
build=${2:-$(dirname "$bin")}
. "$(dirname "$0")/mpi_env.sh" mpic

# the maths with one gradient per rank
for t in "test_powersgd 2" "test_powersgd 3" "test_diloco 2" "test_diloco 3"; do
  set -- $t
  if "${mpi[@]}" -np $2 "$build/tests/$1" >"$tmp/out" 2>&1; then ok "$1 under mpirun -np $2"
  else bad "$1 under mpirun -np $2"; tail -20 "$tmp/out"; fi
done

run() { # label, then the arguments of train
  local label=$1; shift
  "${mpi[@]}" -np 2 "$bin" train "$@" >"$tmp/out" 2>&1 || { bad "$label: exit $?"; tail -5 "$tmp/out"; }
}

# exact all-reduce vs PowerSGD of full rank vs DiLoCo = Local SGD with H = 1
mlp=(--model mlp --widths 128,64 --dataset synthetic --synthetic-size 2048 --batch-size 64 --steps 20 --epochs 1
     --quiet --threads 1 --lr 0.05 --momentum 0.9 --schedule cosine --augment crop,flip --crop-pad 2
     --checkpoint-every 0)
run "mlp exact" "${mlp[@]}" --out "$tmp/mlp"
run "mlp powersgd full rank" "${mlp[@]}" --check-replicas --powersgd-rank 1000 --powersgd-min-compression 0 \
  --out "$tmp/mlp-psgd"
compare_params "$tmp/mlp" "$tmp/mlp-psgd" 1e-5 "PowerSGD of rank >= every tensor's rank vs the exact all-reduce"
run "mlp local sgd" "${mlp[@]}" --check-replicas --diloco-h 1 --outer-optimizer sgd --outer-lr 1 --outer-momentum 0 \
  --out "$tmp/mlp-local"
compare_params "$tmp/mlp" "$tmp/mlp-local" 1e-5 "DiLoCo H=1, outer SGD lr 1 (Local SGD) vs the exact all-reduce"

# ResNet-8 with BatchNorm: replicas identical after every step (DiLoCo: every sync); bytes accounted
net=(--model resnet8 --dataset synthetic --synthetic-size 1024 --batch-size 64 --epochs 1 --quiet --threads 1
     --lr 0.05 --momentum 0.9 --checkpoint-every 0)
run "resnet8 exact" "${net[@]}" --out "$tmp/ddp"
run "resnet8 powersgd" "${net[@]}" --check-replicas --powersgd-rank 2 --out "$tmp/psgd"
run "resnet8 diloco" "${net[@]}" --check-replicas --diloco-h 4 --out "$tmp/dl"
"$py" - "$tmp" <<'PY' || fail=1
import sys, json, struct, glob
tmp = sys.argv[1]
def shapes(d):
    p = sorted(glob.glob(d + "/ckpt-*.safetensors"))[-1]
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    par = [v["shape"] for k, v in h.items() if k != "__metadata__" and not k.startswith(("optim.", "dist.")) and "running" not in k]
    buf = [v["shape"] for k, v in h.items() if "running" in k]
    return par, buf
def numel(s):
    r = 1
    for x in s: r *= x
    return r
a16 = lambda n: (n + 15) // 16 * 16
def epoch(d):
    recs = [json.loads(l) for l in open(d + "/metrics.jsonl")]
    return [r for r in recs if r["type"] == "epoch"][-1]
par, buf = shapes(tmp + "/ddp")
P = sum(a16(numel(s)) for s in par); B = sum(a16(numel(s)) for s in buf)
steps = 16  # 1024 / 64, 2 ranks: the ring all-reduce sends 2 (W-1)/W N = N bytes
ctl = 16 + 24  # stop flags (2 doubles) and loss, accuracy, bad flag (3 doubles) per step
sent = 0
for s in par:
    n = s[0] if len(s) >= 2 else 1; m = numel(s) // n; r = min(2, n, m)
    sent += (n + m) * r if len(s) >= 2 and (n + m) * r * 2 < n * m else numel(s)
want = {"ddp": steps * (4 * P + ctl), "psgd": steps * (4 * sent + ctl),
        "dl": steps * 32 + 4 * 16 + 4 * 4 * (P + B)}  # DiLoCo: 4 doubles a step, stop flags and a sync every 4
ok = True
for k, w in want.items():
    e = epoch(tmp + "/" + k)
    good = e["comm_bytes"] == w and e["comm_dense_bytes"] == steps * 4 * P
    ok &= good
    print(("ok  " if good else "FAIL") + f" {k}: epoch record {e['comm_bytes']:.0f} bytes sent, expected {w}; "
          f"compression {e.get('compression', 0):.2f}x vs {e['comm_dense_bytes']:.0f} for the exact all-reduce")
sys.exit(0 if ok else 1)
PY

# stop (exit 4) and resume: bitwise the uninterrupted run. DiLoCo stops at the next sync.
# PowerSGD with --freeze-bn: the exact all-reduce's resume averages BN statistics that
# the uninterrupted run keeps per rank, which moves BatchNorm's rounding.
for mode in "diloco:--diloco-h 5" "powersgd:--powersgd-rank 2 --powersgd-start-step 3 --freeze-bn"; do
  name=${mode%%:*}; args=(${mode#*:})
  run "$name full" "${net[@]}" --epochs 2 "${args[@]}" --out "$tmp/$name-full"
  "${mpi[@]}" -np 2 "$bin" train "${net[@]}" --epochs 2 "${args[@]}" --stop-after 7 --out "$tmp/$name-part" \
    >/dev/null 2>&1
  st=$?
  ck=$(cd "$tmp/$name-part" 2>/dev/null && ls ckpt-* 2>/dev/null)
  [ $st -eq 4 ] && ok "$name: stopped with exit 4 at $ck" || bad "$name: stop exit $st ($ck)"
  [ "$name" = diloco ] && [ "$ck" != ckpt-00000010.safetensors ] && bad "diloco: the stop did not wait for the sync"
  cp -r "$tmp/$name-part" "$tmp/$name-part3"
  "${mpi[@]}" -np 2 "$bin" train --resume "$tmp/$name-part" --quiet >/dev/null 2>&1 || bad "$name: resume failed"
  compare_params "$tmp/$name-full" "$tmp/$name-part" exact "$name: stopped after 7 steps and resumed vs uninterrupted"
done

# bad launches: one clear error on rank 0, exit 2
expect_fail() { # label, then the command
  local label=$1; shift
  timeout 60 "$@" >"$tmp/out" 2>"$tmp/err"
  local st=$?
  local lines=$(grep -c "^optimlab:" "$tmp/err")
  if [ $st -ne 2 ] || [ "$lines" -ne 1 ]; then bad "$label: exit $st, $lines error lines: $(head -3 "$tmp/err")"
  else ok "$label: exit $st, '$(grep "^optimlab:" "$tmp/err")'"; fi
}
expect_fail "PowerSGD with DiLoCo" "${mpi[@]}" -np 2 "$bin" train "${net[@]}" --powersgd-rank 2 --diloco-h 4 \
  --out "$tmp/x1"
expect_fail "DiLoCo state resumed on 4 ranks" "${mpi[@]}" -np 4 "$bin" train --resume "$tmp/diloco-part3" --quiet
expect_fail "bench allreduce without mpirun" "$bin" bench allreduce --size 1M
if "${mpi[@]}" -np 2 "$bin" bench allreduce --size 64K --iters 5 --json >"$tmp/ar" 2>"$tmp/err" &&
   "$py" -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["bytes"]==65536 and r["ranks"]==2 and r["busbw_gb_per_s"]>0 and abs(r["busbw_gb_per_s"]-r["algbw_gb_per_s"])<1e-9*r["algbw_gb_per_s"]+1e-12' "$tmp/ar"; then
  ok "bench allreduce: $(cat "$tmp/ar")"
else bad "bench allreduce: $(cat "$tmp/ar" "$tmp/err" | head -3)"; fi
exit $fail
