#!/usr/bin/env bash
# Data-parallel equivalence: mpirun -np 2 and -np 4 (oversubscribed) with
# global batch B give the parameters of one process with batch B after 20
# steps, within float-summation tolerance; with --deterministic-reduce they are
# bitwise those of one process accumulating the same shards (--micro-batch-size
# B/N). Every run checks that all ranks hold identical parameters after every
# step (--check-replicas). Bad launches fail with one message and no hang.
# Usage: test_mpi.sh path/to/optimlab
set -uo pipefail
bin=$1
. "$(dirname "$0")/mpi_env.sh" mpi
common=(--dataset synthetic --synthetic-size 2048 --batch-size 64 --steps 20 --epochs 1 --quiet --threads 1 --lr 0.05
        --momentum 0.9 --schedule cosine --augment crop,flip --crop-pad 2 --evals-per-epoch 1 --checkpoint-every 0)
for model in "--model mlp --widths 128,64" "--model resnet8 --freeze-bn"; do
  name=${model#--model }; name=${name%% *}
  "$bin" train $model "${common[@]}" --out "$tmp/$name-1" || { echo "FAIL: single process"; fail=1; }
  for np in 2 4; do
    "${mpi[@]}" -np $np "$bin" train $model "${common[@]}" --check-replicas --out "$tmp/$name-$np" \
      || { echo "FAIL: $name -np $np"; fail=1; }
    compare_params "$tmp/$name-1" "$tmp/$name-$np" 1e-4 "$name: 1 process vs mpirun -np $np, batch 64"
    "$bin" train $model "${common[@]}" --micro-batch-size $((64 / np)) --out "$tmp/$name-1m$np" \
      || { echo "FAIL: single process micro-batches"; fail=1; }
    "${mpi[@]}" -np $np "$bin" train $model "${common[@]}" --check-replicas --deterministic-reduce \
      --out "$tmp/$name-${np}d" || { echo "FAIL: $name -np $np deterministic"; fail=1; }
    compare_params "$tmp/$name-1m$np" "$tmp/$name-${np}d" exact \
      "$name: 1 process with micro-batches of $((64 / np)) vs mpirun -np $np --deterministic-reduce"
  done
done

# stopped mid-epoch and resumed: every communication metric (step, epoch and summary records) is
# that of the uninterrupted run (the resumed process used to count only its own share)
for model in "--model mlp --widths 16" "--model resnet8"; do
  name=${model#--model }; name=${name%% *}
  c=($model --dataset synthetic --synthetic-size 256 --epochs 2 --batch-size 32 --quiet --threads 1 --log-every 1)
  "${mpi[@]}" -np 2 "$bin" train "${c[@]}" --out "$tmp/cm-$name-full" >/dev/null || { echo "FAIL: $name full"; fail=1; }
  "${mpi[@]}" -np 2 "$bin" train "${c[@]}" --stop-after 5 --out "$tmp/cm-$name-part" >/dev/null 2>&1
  "${mpi[@]}" -np 2 "$bin" train --resume "$tmp/cm-$name-part" --quiet >/dev/null || { echo "FAIL: $name resume"; fail=1; }
  "$py" - "$tmp/cm-$name-full/metrics.jsonl" "$tmp/cm-$name-part/metrics.jsonl" "$name" <<'PY' || fail=1
import json, sys
a, b = ([json.loads(l) for l in open(p)] for p in sys.argv[1:3])
keys = ("comm_bytes", "step_comm_bytes", "comm_dense_bytes", "overlap", "compression", "syncs")
diff = [(x.get("type"), x.get("step"), k, x.get(k), y.get(k)) for x, y in zip(a, b) for k in keys if x.get(k) != y.get(k)]
n = sum(k in x for x in a for k in keys)
ok = len(a) == len(b) and not diff and n > 0
print(("ok  " if ok else "FAIL") + f" {sys.argv[3]}: {n} communication fields after stop + resume vs uninterrupted"
      + ("" if ok else f": {len(a)} vs {len(b)} records, {diff[:3]}"))
sys.exit(0 if ok else 1)
PY
done

# the run directory's lock is rank 0's alone: a 2-rank resume works (the ranks do not lock each
# other out), and one of a directory another process holds is refused with the holder's pid
"${mpi[@]}" -np 2 "$bin" train --resume "$tmp/cm-mlp-full" --epochs 3 --quiet >/dev/null 2>"$tmp/err" ||
  { echo "FAIL: 2-rank resume: $(head -2 "$tmp/err")"; fail=1; }
"$py" -c 'import fcntl, os, sys, time
f = open(sys.argv[1], "r+"); fcntl.flock(f, fcntl.LOCK_EX)
f.truncate(0); f.write("%d\n" % os.getpid()); f.flush(); time.sleep(60)' "$tmp/cm-mlp-full/.lock" &
holder=$!
for _ in $(seq 1 100); do grep -q "^$holder$" "$tmp/cm-mlp-full/.lock" 2>/dev/null && break; sleep 0.05; done

# bad launches: one clear error on rank 0, a non-zero exit, no hang
expect_fail() { # label, then the command
  local label=$1; shift
  timeout 60 "$@" >"$tmp/out" 2>"$tmp/err"
  local st=$?
  local lines=$(grep -c "^optimlab:" "$tmp/err")
  if [ $st -eq 0 ] || [ $st -eq 124 ] || [ "$lines" -ne 1 ]; then
    echo "FAIL $label: exit $st, $lines error lines: $(head -3 "$tmp/err")"; fail=1
  else
    echo "ok   $label: exit $st, '$(grep "^optimlab:" "$tmp/err")'"
  fi
}
expect_fail "world size not dividing the batch" "${mpi[@]}" -np 3 "$bin" train --model mlp "${common[@]}" --out "$tmp/x1"
expect_fail "a rank that cannot read the data" "${mpi[@]}" -np 2 bash -c \
  'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then d=/nonexistent; else d=/usr/share/datasets/fashion-mnist; fi;
   exec "$0" train --model mlp --dataset fashion-mnist --data-dir $d --steps 2 --quiet --threads 1 --out '"$tmp/x2" "$bin"
expect_fail "mismatched configurations" "${mpi[@]}" -np 2 bash -c \
  'exec "$0" train --model mlp --dataset synthetic --steps 2 --quiet --threads 1 --lr 0.0${OMPI_COMM_WORLD_RANK}1 --out '"$tmp/x3" "$bin"
# a batch schedule whose later global batches the world size does not divide (34 x 1.5 = 51; a ramp
# 2, 5, 8, ...): the whole schedule is checked at launch, the message names the first such batch
bsched=(--model mlp --widths 8 --dataset synthetic --synthetic-size 512 --epochs 3 --quiet --threads 1)
expect_fail "batch milestones 34 -> 51 on 2 ranks" "${mpi[@]}" -np 2 "$bin" train "${bsched[@]}" --batch-size 34 \
  --batch-schedule milestones --batch-milestones 1 --batch-factor 1.5 --out "$tmp/x4"
grep -q "global batch 51 of step" "$tmp/err" || { echo "FAIL: the message does not name batch 51"; fail=1; }
expect_fail "batch ramp 2, 5, ... on 2 ranks" "${mpi[@]}" -np 2 "$bin" train "${bsched[@]}" --batch-size 2 \
  --batch-schedule ramp --max-batch-size 62 --batch-ramp-increment 3 --batch-ramp-samples 500 --out "$tmp/x5"
expect_fail "2-rank resume of a directory another process holds" "${mpi[@]}" -np 2 "$bin" train \
  --resume "$tmp/cm-mlp-full" --epochs 4 --quiet
grep -q "in use by pid $holder" "$tmp/err" || { echo "FAIL: the refusal does not name pid $holder"; fail=1; }
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
[ -e "$tmp/x1" ] || [ -e "$tmp/x2" ] || [ -e "$tmp/x3" ] || [ -e "$tmp/x4" ] || [ -e "$tmp/x5" ] &&
  { echo "FAIL: a failed launch created its run directory"; fail=1; }

# a rank that dies or freezes mid-run: the others stop within a bounded time
long=(--model mlp --dataset synthetic --synthetic-size 4096 --epochs 1000 --batch-size 64 --quiet --threads 1
      --checkpoint-every 20)
for how in KILL STOP; do
  start=$(date +%s)
  timeout 120 "${mpi[@]}" -np 2 bash -c 'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then (sleep 3; kill -'$how' $$) & fi;
    exec "$0" train "$@"' "$bin" "${long[@]}" --comm-timeout 5 --out "$tmp/die-$how" >/dev/null 2>"$tmp/err"
  st=$?
  took=$(( $(date +%s) - start ))
  if [ $st -eq 0 ] || [ $st -eq 124 ]; then
    echo "FAIL rank 1 SIG$how: exit $st after $took s"; fail=1
  else
    ok=$("$bin" verify "$tmp/die-$how" 2>&1 | head -1)
    echo "ok   rank 1 SIG$how: job ended with exit $st after $took s; newest checkpoint: $ok"
  fi
done
# the default timeout (auto): a stopped rank ends the job about a minute after the last progress,
# not after the 600 s of old
if [ -z "${OPTIMLAB_TEST_QUICK:-}" ]; then
  start=$(date +%s)
  timeout 200 "${mpi[@]}" -np 2 bash -c 'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then (sleep 3; kill -STOP $$) & fi;
    exec "$0" train "$@"' "$bin" "${long[@]}" --out "$tmp/die-auto" >/dev/null 2>"$tmp/err"
  st=$?
  took=$(( $(date +%s) - start ))
  if [ $st -eq 0 ] || [ $st -eq 124 ] || [ $took -gt 120 ] || ! grep -q "no progress for 60 s" "$tmp/err"; then
    echo "FAIL rank 1 SIGSTOP, default --comm-timeout: exit $st after $took s: $(grep optimlab: "$tmp/err" | head -2)"; fail=1
  else
    echo "ok   rank 1 SIGSTOP, default --comm-timeout: job ended with exit $st after $took s"
  fi
fi
exit $fail
