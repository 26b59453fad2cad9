#!/usr/bin/env bash
# The lr and batch of every training step (metrics.jsonl) are bitwise what
# `optimlab schedule` prints for the same options: one lr rule (schedule x
# warm-up x batch scaling, ol_train_lr) and one step plan
# (ol_train_step_batches) for both, with batch schedules and lr scaling.
# usage: lr_rule_cli.sh path/to/optimlab
set -u
bin=$1
py=/usr/bin/python3; [ -x $py ] || py=python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# 512 samples at a starting batch of 32: 16 steps per epoch
N=512
B=32
check() {
    local what=$1 epochs=$2
    shift 2
    rm -rf "$tmp/run"
    if ! "$bin" train --model mlp --widths 16 --dataset synthetic --synthetic-size $N --batch-size $B --epochs "$epochs" \
        --log-every 1 --threads 1 --quiet --checkpoint-every 0 --out "$tmp/run" "$@" >"$tmp/out" 2>&1; then
        fail "$what: train: $(tail -2 "$tmp/out")"; return
    fi
    local steps
    steps=$("$py" -c 'import json,sys; print(max(json.loads(l)["step"] for l in open(sys.argv[1]) if "\"step\"" in l))' \
        "$tmp/run/metrics.jsonl")
    if ! "$bin" schedule --steps "$steps" --steps-per-epoch $((N / B)) --batch-size $B "$@" >"$tmp/sched.csv" 2>"$tmp/err"; then
        fail "$what: schedule: $(cat "$tmp/err")"; return
    fi
    local got
    got=$("$py" - "$tmp/run/metrics.jsonl" "$tmp/sched.csv" <<'PY'
import csv, json, sys
train = {}
for l in open(sys.argv[1]):
    d = json.loads(l)
    if d.get("type") == "step":
        train[d["step"] - 1] = (d["lr"], d["batch"])  # record of step s: the lr of step index s-1
rows = list(csv.DictReader(open(sys.argv[2])))
bad = [t for t, r in enumerate(rows) if t not in train or train[t] != (float(r["lr"]), int(r["batch_size"]))]
if len(train) != len(rows) or len(rows) < 2:
    print("%d train steps, %d schedule rows" % (len(train), len(rows)))
elif bad:
    t = bad[0]
    print("%d steps differ; first: step %d train lr %r batch %d, schedule lr %s batch %s"
          % (len(bad), t, train[t][0], train[t][1], rows[t]["lr"], rows[t]["batch_size"]))
else:
    print("same %d" % len(rows))
PY
)
    case $got in
    same*) echo "ok   $what: lr and batch of all ${got#same } steps identical" ;;
    *) fail "$what: $got" ;;
    esac
}
check "batch milestones, linear scaling, warm-up" 3 --schedule cosine --lr 0.05 --batch-schedule milestones \
    --batch-milestones 1,2 --max-batch-size 128 --lr-scaling linear --base-batch-size 16 --warmup-epochs 0.5
check "milestones, linear-then-sqrt, Goyal warm-up start" 3 --schedule step --step-size 1 --gamma 0.5 --lr 0.05 \
    --batch-schedule milestones --batch-milestones 1 --batch-factor 4 --lr-scaling linear-then-sqrt \
    --lr-scaling-knee 2 --warmup-steps 6 --warmup-start-factor auto
check "reduce-on-plateau with warm-up and sqrt scaling" 2 --schedule reduce-on-plateau --lr 0.05 --warmup-steps 5 \
    --lr-scaling sqrt --base-batch-size 8
# a ramp whose batches do not divide the epoch: its last step takes the samples
# left (smaller batch, smaller scaled lr), and the ramp goes on from the
# samples seen; optimlab schedule used to print the full batch there
check "batch ramp across epoch ends, linear scaling" 3 --schedule cosine --lr 0.05 --batch-schedule ramp \
    --batch-ramp-samples 700 --max-batch-size 96 --lr-scaling linear --warmup-steps 4
[ $fails -eq 0 ] && echo "lr_rule_cli: all passed"
exit $((fails > 0))
