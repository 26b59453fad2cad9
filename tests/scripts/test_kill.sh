#!/usr/bin/env bash
# SIGKILL a training process at random moments, many times, including during
# checkpoint writes (a checkpoint every step); every time, the newest
# checkpoint on disk must load and verify. Usage: test_kill.sh path/to/optimlab [build_dir [kills]]
set -uo pipefail
bin=$1
kills=${3:-25}
tmp=$(mktemp -d /tmp/optimlab-kill-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
run=$tmp/run
args=(--model resnet8 --dataset synthetic --synthetic-size 512 --epochs 100000 --batch-size 32 --threads 1 --quiet
      --checkpoint-every 1 --keep-last 2 --log-every 1)
RANDOM=42
fail=0 verified=0
for i in $(seq 1 "$kills"); do
  if [ -d "$run" ] && ls "$run"/ckpt-*.safetensors >/dev/null 2>&1; then
    "$bin" train --resume "$run" --quiet >/dev/null 2>&1 &
  else
    "$bin" train "${args[@]}" --out "$run" >/dev/null 2>&1 &
  fi
  pid=$!
  sleep "0.$(( (RANDOM % 9) + 1 ))$(( RANDOM % 10 ))"
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  if ls "$run"/ckpt-*.safetensors >/dev/null 2>&1; then
    if out=$("$bin" verify "$run" 2>&1); then
      verified=$((verified + 1))
    else
      echo "FAIL after kill $i: $out"; fail=1
    fi
  fi
done
steps=$("$bin" verify "$run" 2>/dev/null | sed -n 's/.*step \([0-9]*\),.*/\1/p')
echo "killed $kills times; newest checkpoint verified $verified times; the run reached step ${steps:-0}"
[ "$verified" -ge $((kills / 2)) ] || { echo "FAIL: too few checkpoints to check"; fail=1; }
[ "${steps:-0}" -gt 0 ] || fail=1
exit $fail
