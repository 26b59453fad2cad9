#!/usr/bin/env bash
# optimlab lr-find: runs with every kind of optimizer state (Adam and SGD without
# momentum used to crash copying optional state slots that were never allocated),
# and honours --micro-batch-size: for a BatchNorm-free MLP the loss curve equals
# the whole-batch one up to float rounding; for a BatchNorm ResNet it differs
# (statistics per micro-batch), which shows the option is not ignored.
# usage: lrfind_cli.sh path/to/optimlab
set -u
bin=$1
py=/usr/bin/python3; [ -x $py ] || py=python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
lrf() { # csv-name, options
    local name=$1; shift
    timeout 120 "$bin" lr-find --dataset synthetic --synthetic-size 512 --batch-size 32 --num-iter 20 --end-lr 1 \
        --threads 1 --csv "$tmp/$name.csv" --plot "$tmp/$name.svg" "$@" >"$tmp/out" 2>"$tmp/err"
}
for o in "adam" "sgd --momentum 0" "sgd --momentum 0.9" "adamw" "lion" "lamb" "sfadamw"; do
    # shellcheck disable=SC2086
    if lrf opt --model mlp --widths 32 --optimizer $o && [ "$(wc -l <"$tmp/opt.csv")" -gt 2 ]; then
        echo "ok   lr-find --optimizer $o"
    else
        fail "lr-find --optimizer $o -> exit $?: $(tail -c 300 "$tmp/err")"
    fi
done
# max |loss difference| between two lr-find CSVs
maxdiff() { "$py" -c '
import csv, sys
a = list(csv.DictReader(open(sys.argv[1]))); b = list(csv.DictReader(open(sys.argv[2])))
assert len(a) == len(b) and len(a) > 2, (len(a), len(b))
print(max(abs(float(x["loss"]) - float(y["loss"])) for x, y in zip(a, b)))' "$1" "$2"; }
for model in mlp resnet8; do
    lrf "$model-whole" --model $model --optimizer sgd || fail "$model whole batch: $(cat "$tmp/err")"
    lrf "$model-micro" --model $model --optimizer sgd --micro-batch-size 8 || fail "$model micro: $(cat "$tmp/err")"
    grep -q "batch 32 in micro-batches of 8" "$tmp/out" || fail "$model: the summary does not name the micro-batches"
    d=$(maxdiff "$tmp/$model-whole.csv" "$tmp/$model-micro.csv") || { fail "$model: csv"; continue; }
    if [ $model = mlp ]; then
        "$py" -c "import sys; sys.exit(not float('$d') < 1e-5)" && echo "ok   mlp: micro-batches of 8 match batch 32 (max diff $d)" ||
            fail "mlp: micro-batch loss curve differs by $d"
    else
        "$py" -c "import sys; sys.exit(not float('$d') > 1e-3)" && echo "ok   resnet8: BatchNorm per micro-batch changes the curve (max diff $d)" ||
            fail "resnet8: micro-batch curve equals the whole-batch one (diff $d): --micro-batch-size ignored"
    fi
done
lrf big --model mlp --micro-batch-size 64
st=$?
if [ $st -eq 2 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q '^optimlab: --micro-batch-size' "$tmp/err"; then
    echo "ok   micro-batch larger than the batch: $(cat "$tmp/err")"
else
    fail "micro-batch larger than the batch -> exit $st: $(cat "$tmp/err")"
fi
[ $fails -eq 0 ] && echo "lrfind_cli: all passed"
exit $((fails > 0))
