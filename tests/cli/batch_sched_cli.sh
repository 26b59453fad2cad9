#!/usr/bin/env bash
# Batch-size milestones are data epochs, and the batch may grow past --batch-size
# without --max-batch-size: the run used to stop after the first milestone with
# "loader: batch of 256 outside 1..128" (buffers sized for the starting batch),
# and later milestones fired late (converted to steps at the starting batch: the
# batch reached 512 at data epoch 3 instead of 2).
# usage: batch_sched_cli.sh path/to/optimlab
set -u
bin=$1
py=/usr/bin/python3; [ -x $py ] || py=python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# 1024 samples, batch 128 -> 256 at epoch 1 -> 512 at epoch 2
for cap in "" "--max-batch-size 512"; do
    rm -rf "$tmp/run"
    # shellcheck disable=SC2086
    if ! "$bin" train --model mlp --widths 32 --dataset synthetic --synthetic-size 1024 --batch-size 128 --epochs 4 \
        --batch-schedule milestones --batch-milestones 1,2 $cap --log-every 1 --threads 1 --quiet \
        --out "$tmp/run" >"$tmp/out" 2>&1; then
        fail "milestones ${cap:-without a cap}: $(tail -2 "$tmp/out")"; continue
    fi
    # the data epoch at which each batch size starts: (samples before the step) / n
    got=$("$py" -c '
import json, sys
seen = {}
for l in open(sys.argv[1]):
    d = json.loads(l)
    if d.get("type") == "step" and d["batch"] not in seen:
        seen[d["batch"]] = (d["samples"] - d["batch"]) / 1024
print(" ".join("%d@%g" % kv for kv in sorted(seen.items())))' "$tmp/run/metrics.jsonl")
    if [ "$got" = "128@0 256@1 512@2" ]; then
        echo "ok   milestones ${cap:-without a cap}: batch@data-epoch $got"
    else
        fail "milestones ${cap:-without a cap}: batch@data-epoch '$got', expected '128@0 256@1 512@2'"
    fi
done
# optimlab schedule shows the same: 8 steps per epoch at the starting batch of 128
"$bin" schedule --steps 16 --steps-per-epoch 8 --batch-size 128 --batch-schedule milestones --batch-milestones 1,2 \
    --schedule constant --json >"$tmp/sched.json" 2>"$tmp/err" || fail "optimlab schedule: $(cat "$tmp/err")"
got=$("$py" -c '
import json, sys
b = json.load(open(sys.argv[1]))["batch_size"]
print(b.index(512) if 512 in b else -1)' "$tmp/sched.json" 2>&1)
# epoch 0: 8 steps of 128, epoch 1: 4 of 256 -> 512 from step 12
[ "$got" = "12" ] && echo "ok   optimlab schedule: batch 512 from step 12" || fail "optimlab schedule: batch 512 from step '$got', expected 12"
[ $fails -eq 0 ] && echo "batch_sched_cli: all passed"
exit $((fails > 0))
