#!/usr/bin/env bash
# A full disk: training and a sweep on a tmpfs with 5 MB left (a filler file
# takes the rest), room for two checkpoints of the run but not a third. The run stops with one line naming the problem
# (exit 1), keeps its complete checkpoints and well-formed metrics; once there
# is room (the filler removed), --resume ends bitwise where an undisturbed run ends, and the sweep
# run again finishes its runs. The tmpfs lives in a private mount namespace
# (unshare -m as root, unshare -rm otherwise), gone when the test ends; where
# neither is allowed the test is skipped (exit 77).
# Usage: disk_full.sh path/to/optimlab
set -uo pipefail
bin=$(realpath "$1")
if [ -z "${OL_DISK_FULL_NS:-}" ]; then
  if [ "$(id -u)" = 0 ]; then ns=(unshare -m); else ns=(unshare -rm); fi
  if ! "${ns[@]}" true 2>/dev/null; then
    echo "SKIP: no mount namespace here (${ns[*]} refused): cannot make a small file system"
    exit 77
  fi
  OL_DISK_FULL_NS=1 exec "${ns[@]}" bash "$0" "$bin"
fi
py=${PYTHON:-python3}
tmp=$(mktemp -d /tmp/optimlab-full-XXXXXX)
fs=$tmp/fs
mkdir "$fs"
trap 'umount "$fs" 2>/dev/null; rm -rf "$tmp"' EXIT
if ! mount -t tmpfs -o size=20M tmpfs "$fs"; then
  echo "SKIP: cannot mount a tmpfs"
  exit 77
fi
export OMP_NUM_THREADS=1
fail=0
check() { # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fail=1; fi
}
json_lines() { "$py" -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$1"; }
fill() { head -c 15M /dev/zero >"$fs/filler"; } # 5 MB left
room() { rm -f "$fs/filler"; }
summary() { grep '"type":"summary"' "$1/metrics.jsonl" | sed 's/,"train_time".*//'; }

# a checkpoint of this run is 2.2 MB: the third one does not fit
fill
args=(--model mlp --widths 256,256 --dataset synthetic --synthetic-size 2048 --epochs 2 --checkpoint-every 10
      --threads 1 --quiet)
"$bin" train "${args[@]}" --out "$fs/run" >/dev/null 2>"$tmp/err"
st=$?
check "train on a full disk: exit 1" test $st -eq 1
check "... one line naming the file and the cause" \
  test "$(wc -l <"$tmp/err")" -eq 1 -a -n "$(grep 'ckpt-00000030.safetensors: No space left on device' "$tmp/err")"
check "... the complete checkpoints kept, no partial one" \
  test "$(cd "$fs/run" && ls -A | grep -v -x -e .lock -e config.json -e metrics.jsonl | tr '\n' ' ')" = \
  "ckpt-00000010.safetensors ckpt-00000020.safetensors "
check "... metrics.jsonl well-formed" json_lines "$fs/run/metrics.jsonl"

room
"$bin" train --resume "$fs/run" --threads 1 --quiet >/dev/null 2>"$tmp/err"
check "with room again, --resume finishes (exit 0)" test $? -eq 0
"$bin" train "${args[@]}" --out "$tmp/ref" >/dev/null 2>&1
check "... bitwise where an undisturbed run ends" test -n "$(summary "$tmp/ref")" -a "$(summary "$tmp/ref")" = "$(summary "$fs/run")"

# a sweep on a full disk: both runs fail and say so; run again with room, both finish
rm -rf "${fs:?}/run"
fill
cat >"$tmp/grid.yaml" <<YAML
fixed: {model: mlp, widths: [256, 256], dataset: synthetic, synthetic-size: 2048, epochs: 2, checkpoint-every: 10}
grid: {lr: [0.01, 0.02]}
YAML
"$bin" sweep "$tmp/grid.yaml" --out "$fs/sw" --threads 1 --retries 0 --no-report >"$tmp/sweep.txt" 2>&1
st=$?
check "sweep on a full disk: exit 1" test $st -eq 1
check "... each failed run named, with its log" \
  test "$(grep -c '^lr=0.0[12]: failed (exit status 1; see .*/logs/lr=0.0[12].log)$' "$tmp/sweep.txt")" -eq 2
check "... the log says why" grep -q 'No space left on device' "$fs/sw/logs/lr=0.01.log"
room
"$bin" sweep "$tmp/grid.yaml" --out "$fs/sw" --threads 1 >"$tmp/sweep.txt" 2>&1
check "with room again, the sweep finishes (exit 0)" test $? -eq 0
check "... the first run resumed from its checkpoint" grep -q '^lr=0.01: resuming$' "$tmp/sweep.txt"
check "... both runs finished" test "$(cat "$fs"/sw/lr=*/metrics.jsonl | grep -c '"type":"summary"')" -eq 2
exit $fail
