#!/usr/bin/env bash
# optimlab plan-scaling: bad input (zero or negative bandwidth, empty or bad worker lists, a run
# directory without timing metrics, ...) is one line on stderr and exit status 2; valid input gives
# the table, JSON with the hand-computable numbers of a --shapes model, a plot, and --run reads the
# compute of single-process and data-parallel metrics.
# usage: plan_cli.sh path/to/optimlab
set -u
bin=$1
py=/usr/bin/python3; [ -x $py ] || py=python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
plan() { timeout 120 "$bin" plan-scaling --threads 1 "$@" >"$tmp/out" 2>"$tmp/err"; }
bad() { # expected-substring, options...
    local want=$1; shift
    plan "$@"
    local rc=$? lines
    lines=$(wc -l <"$tmp/err")
    if [ $rc -eq 2 ] && [ "$lines" -eq 1 ] && grep -q "^optimlab: .*$want" "$tmp/err"; then
        echo "ok   exit 2: $*"
    else
        fail "plan-scaling $* -> exit $rc, $lines lines: $(head -c 300 "$tmp/err") (want '$want')"
    fi
}
m=(--model mlp --widths 32)
bad "link bandwidth must be positive" "${m[@]}" --link-bandwidth 0
bad "link bandwidth must be positive" "${m[@]}" --link-bandwidth -10Gb/s
bad "expected a bandwidth" "${m[@]}" --link-bandwidth fast
bad "latency must be zero or positive" "${m[@]}" --network hdr --latency -1us
bad "intra-node bandwidth must be positive" "${m[@]}" --network hdr --topology hier --intra-bandwidth 0
bad "option --workers needs a value" "${m[@]}" --network hdr --workers ""
bad "list of worker counts is empty" "${m[@]}" --network hdr --workers ,
bad "expected counts >= 1" "${m[@]}" --network hdr --workers 0,2
bad "expected counts >= 1" "${m[@]}" --network hdr --workers 8-2
bad "do not fill nodes of 4 GPUs" "${m[@]}" --network hdr --topology hier --workers 6
bad "expected ring, tree or hier" "${m[@]}" --network hdr --topology mesh
bad "unknown preset" "${m[@]}" --network infiniband
bad "give the network" "${m[@]}"
bad "not both" "${m[@]}" --network hdr --per-worker-batch 4 --global-batch 64
bad "smaller than 128 workers" "${m[@]}" --network hdr --global-batch 64 --workers 1-128
bad "needs --samples-per-s" --shapes 64x32 --network hdr
bad "expected dimensions" --shapes 64xx32 --samples-per-s 10 --network hdr
bad "takes the model from the run" --run "$tmp" --model resnet20 --network hdr
bad "cannot read" --run "$tmp/none" --network hdr
# a run directory whose metrics have no step timing
mkdir -p "$tmp/run0"
echo '{"model":"mlp","widths":"32","dataset":"fashion-mnist"}' >"$tmp/run0/config.json"
echo '{"type":"epoch","step":5,"train_loss":1.0}' >"$tmp/run0/metrics.jsonl"
bad "has no timing metrics" --run "$tmp/run0" --network hdr
# data-parallel records of an older optimlab: compute_time without the rank count
echo '{"type":"step","step":1,"batch":64,"compute_time":0.03,"step_time":0.04}' >"$tmp/run0/metrics.jsonl"
bad "lack the rank count" --run "$tmp/run0" --network hdr

# --shapes: 64x32 weight and a 32 vector, 1000 samples/s, 10 per worker -> 10 ms of compute (1:2);
# one 8320-byte bucket ready at the end of backward: ring N=2 at 1 GB/s, no latency, exposes
# 8.32 us, plus the control messages 2 (4 + 24 + 16) bytes / 1 GB/s; PowerSGD r=1: (64+32) + 32 floats
if plan --shapes 64x32,32 --samples-per-s 1000 --per-worker-batch 10 --link-bandwidth 1GB/s --latency 0 \
    --workers 1,2 --powersgd 1 --powersgd-compute 0.001 --diloco 5 --json; then
    "$py" - "$tmp/out" <<'PY' && echo "ok   --shapes JSON matches the hand-computed step" || fail "--shapes JSON: $(cat "$tmp/out")"
import json, sys
o = json.load(open(sys.argv[1]))
p = {(q["workers"], q["method"]): q for q in o["points"]}
close = lambda a, b: abs(a - b) <= 1e-12 + 1e-9 * abs(b)
assert o["params"] == 2080 and o["grad_bytes"] == 8320, o
assert close(p[(1, "exact")]["step_s"], 0.01) and p[(1, "exact")]["efficiency"] == 1
assert close(p[(2, "exact")]["comm_s"], 8.32e-6 + 88e-9), p[(2, "exact")]
assert p[(2, "powersgd")]["sent_bytes"] == 4 * (64 + 32 + 32), p[(2, "powersgd")]
assert close(p[(2, "powersgd")]["compute_s"], 0.011)
assert close(p[(2, "diloco")]["comm_s"], 8320 / 1e9 / 5 + 2 * 36 / 1e9 + 2 * 16 / 1e9 / 5), p[(2, "diloco")]
PY
else
    fail "--shapes: exit $?: $(cat "$tmp/err")"
fi
# --model: the table, the plot, exact efficiency falls with the worker count on 10 GbE
if plan "${m[@]}" --network 10gbe --workers 1-64 --per-worker-batch 16 --profile-steps 2 --svg "$tmp/eff.svg"; then
    grep -q "exact all-reduce: efficiency" "$tmp/out" && grep -q "<svg" "$tmp/eff.svg" && echo "ok   table and plot" ||
        fail "table or plot missing: $(head -c 500 "$tmp/out")"
else
    fail "--model mlp: exit $?: $(cat "$tmp/err")"
fi
# --run: a one-process run (samples_per_s) and data-parallel records (compute_time, batch, ranks)
if timeout 300 "$bin" train --model mlp --widths 32 --dataset synthetic --synthetic-size 256 --steps 6 \
    --batch-size 32 --log-every 1 --threads 1 --quiet --out "$tmp/run1" >/dev/null 2>"$tmp/err"; then
    plan --run "$tmp/run1" --network hdr --workers 1,2 --json &&
        grep -q 'measured in .*run1 on 1 rank' "$tmp/out" && echo "ok   --run of a one-process run" ||
        fail "--run one process: $(cat "$tmp/err" "$tmp/out" | head -c 500)"
    cp "$tmp/run1/config.json" "$tmp/run0/config.json"
    for s in 1 2 3; do
        echo "{\"type\":\"step\",\"step\":$s,\"batch\":64,\"ranks\":2,\"comm_bytes\":1000,\"comm_time\":0.01,\"step_time\":0.042,\"compute_time\":0.032}"
    done >"$tmp/run0/metrics.jsonl"
    plan --run "$tmp/run0" --network hdr --workers 1,2 &&
        grep -q "^compute: 1000 samples/s per worker (measured in .* on 2 ranks)" "$tmp/out" &&
        grep -q "^run: 1000 bytes sent per step" "$tmp/out" && echo "ok   --run of data-parallel records" ||
        fail "--run data parallel: $(cat "$tmp/err" "$tmp/out" | head -c 600)"
else
    fail "train for --run: $(cat "$tmp/err")"
fi
[ $fails -eq 0 ] && echo "plan_cli: all passed" || { echo "plan_cli: $fails failed"; exit 1; }
