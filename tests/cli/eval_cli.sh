#!/usr/bin/env bash
# optimlab eval: the loss and accuracy of a checkpoint equal what the training
# run logged for the same weights (final checkpoint and an epoch-boundary one,
# bitwise, same thread count); the run's data options come from its stored
# configuration (here subsets and a batch size that are not the defaults); bad
# input exits 2 with one line and leaves the run directory as it was.
# usage: eval_cli.sh path/to/optimlab
set -u
bin=$1
py=/usr/bin/python3; [ -x $py ] || py=python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
run=$tmp/run
timeout 300 "$bin" train --model resnet8 --train-subset 1024 --test-subset 500 --epochs 2 --batch-size 64 \
    --threads 1 --quiet --checkpoint-every 8 --keep-last 0 --out "$run" >/dev/null || { echo "FAIL: training"; exit 1; }
# logged epoch record (step) against eval of ckpt-<step>
check() { # step file
    "$py" - "$run/metrics.jsonl" "$1" "$2" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
ep = [r for r in recs if r["type"] == "epoch" and r["step"] == int(sys.argv[2])][0]
ev = json.load(open(sys.argv[3]))
ok = ev["test"]["loss"] == ep["test_loss"] and ev["test"]["acc"] == ep["test_acc"] and ev["test"]["n"] == 500
print(("ok  " if ok else "FAIL") + f" eval step {sys.argv[2]}: test loss {ev['test']['loss']!r} acc {ev['test']['acc']!r}"
      f" vs logged {ep['test_loss']!r} {ep['test_acc']!r}")
sys.exit(0 if ok else 1)
PY
}
before=$(ls -l --time-style=full-iso "$run" | md5sum)
timeout 120 "$bin" eval "$run" --set test --threads 1 --out "$tmp/final.json" >/dev/null || fail "eval RUN"
check 32 "$tmp/final.json" || fail "final checkpoint"
timeout 120 "$bin" eval "$run/ckpt-00000016.safetensors" --set test --threads 1 --json >"$tmp/e16.json" || fail "eval CKPT"
check 16 "$tmp/e16.json" || fail "epoch-1 checkpoint"
# subsets after the run's statistics; text output names the sets
out=$(timeout 120 "$bin" eval "$run" --train-subset 100 --test-subset 50 --threads 1) || fail "subsets"
echo "$out" | grep -q "^train loss .*(100 samples" && echo "$out" | grep -q "^test  loss .*(50 samples" \
    && echo "ok   subsets: $(echo "$out" | tail -2 | tr '\n' ' ')" || fail "subset output: $out"
bad() { # expected-message-part, args...
    local want=$1; shift
    timeout 60 "$bin" eval "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ $rc -eq 2 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q -- "$want" "$tmp/err"; then
        echo "ok   exit 2: $(cat "$tmp/err")"
    else
        fail "eval $* -> exit $rc: $(cat "$tmp/err")"
    fi
}
mkdir -p "$tmp/empty"
bad "no valid checkpoint\|no checkpoint\|ckpt" "$tmp/empty"
bad "no such run" "$tmp/missing"
bad "unknown set" "$run" --set bogus
bad "only 500 samples" "$run" --test-subset 501
bad "validation" "$run" --set val
bad "threads" "$run" --threads -1
[ "$(ls -l --time-style=full-iso "$run" | md5sum)" = "$before" ] && echo "ok   run directory unchanged" \
    || fail "eval changed the run directory"
[ $fails -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all eval checks passed"
