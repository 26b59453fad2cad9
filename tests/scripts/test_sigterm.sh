#!/usr/bin/env bash
# SIGTERM (walltime, preemption): the process finishes its step, writes a
# checkpoint and exits with status 4; the checkpoint resumes.
# Usage: test_sigterm.sh path/to/optimlab
set -uo pipefail
bin=$1
tmp=$(mktemp -d /tmp/optimlab-term-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
run=$tmp/run
"$bin" train --model resnet8 --dataset synthetic --synthetic-size 512 --epochs 100000 --batch-size 32 --threads 1 \
  --quiet --checkpoint-every 0 --out "$run" >/dev/null 2>"$tmp/err" &
pid=$!
sleep 1.5
kill -TERM "$pid"
wait "$pid"
st=$?
fail=0
[ $st -eq 4 ] || { echo "FAIL: exit status $st after SIGTERM, expected 4"; fail=1; }
grep -q "stopped on request" "$tmp/err" || { echo "FAIL: no message: $(cat "$tmp/err")"; fail=1; }
"$bin" verify "$run" || fail=1
step=$("$bin" verify "$run" | sed -n 's/.*step \([0-9]*\),.*/\1/p')
"$bin" train --resume "$run" --steps $((step + 3)) --quiet >/dev/null || { echo "FAIL: resume"; fail=1; }
step2=$("$bin" verify "$run" | sed -n 's/.*step \([0-9]*\),.*/\1/p')
[ "$step2" -eq $((step + 3)) ] || { echo "FAIL: resumed run ended at step $step2, expected $((step + 3))"; fail=1; }
# --time-limit stops by itself with status 4, before the limit
start=$(date +%s.%N)
"$bin" train --model resnet8 --dataset synthetic --synthetic-size 512 --epochs 100000 --batch-size 32 --threads 1 \
  --quiet --time-limit 0:00:04 --out "$tmp/tl" >/dev/null 2>&1
st=$?
took=$(echo "$(date +%s.%N) - $start" | bc)
[ $st -eq 4 ] || { echo "FAIL: --time-limit exit status $st, expected 4"; fail=1; }
"$bin" verify "$tmp/tl" >/dev/null || fail=1
echo "SIGTERM at step $step -> exit 4, resumed to step $step2; --time-limit 4 s stopped after $took s"
exit $fail
