#!/usr/bin/env bash
# The optimizer command-line surface: invalid hyperparameters (train, trajectory, bench
# optimizer) give one line "optimlab: ..." on stderr, exit status 2 and nothing written;
# valid trajectory and bench runs give well-formed output.
# usage: optim_cli.sh path/to/optimlab
set -u
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
checks=0

fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# bad ARGS...: exit 2, exactly one stderr line "optimlab: ...", nothing on stdout, no files
bad() {
    checks=$((checks + 1))
    rm -rf "$tmp/run" "$tmp/plot.svg"
    timeout 60 "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    local lines
    lines=$(wc -l <"$tmp/err")
    if [ "$rc" -ne 2 ]; then fail "$* -> exit $rc, expected 2"; return; fi
    if [ "$lines" -ne 1 ] || ! grep -q '^optimlab: ' "$tmp/err"; then
        fail "$* -> stderr is not one 'optimlab: ' line: $(head -c 300 "$tmp/err")"; return
    fi
    if [ -s "$tmp/out" ]; then fail "$* -> wrote to stdout"; return; fi
    if [ -e "$tmp/run" ] || [ -e "$tmp/plot.svg" ]; then fail "$* -> left files behind"; return; fi
    echo "ok: $* -> $(cat "$tmp/err")"
}

train() { bad train --dataset synthetic --steps 1 --out "$tmp/run" "$@"; }
train --optimizer adam --betas 1,0.999
train --optimizer adam --betas 0.9,1
train --optimizer adamw --betas -0.1,0.999
train --optimizer lion --betas 0.9,1.5
train --optimizer lamb --betas 0.9
train --optimizer sfadamw --betas 0,0.999
train --lr -0.1
train --optimizer adamw --lr=-1e-3
train --optimizer adam --lr abc
train --optimizer adam --eps -1e-8
train --optimizer lamb --eps -1
train --weight-decay -1e-4
train --optimizer adamw --weight-decay -0.05
train --optimizer lion --weight-decay -1
train --nesterov --momentum 0
train --optimizer nesterov --momentum 0
train --optimizer lars --nesterov --momentum 0
train --nesterov --dampening 0.5
train --momentum 1.5
train --optimizer adamax
train --optimizer ''
train --optimizer sgd --amsgrad
train --optimizer adam --momentum 0.9
train --optimizer lion --eps 1e-8
train --optimizer lars --larc
train --optimizer lamb --larc
train --optimizer sfsgd --momentum 1
train --optimizer larc --larc-mode sideways
train --optimizer sgd --larc-trust-coefficient 0.02
train --optimizer rmsprop --alpha 1.5
train --optimizer adadelta --rho -0.1
train --optimizer adagrad --lr-decay -1
train --optimizer lamb --max-grad-norm -1
train --optimizer lars --trust-coefficient 0
train --optimizer sfadamw --sf-warmup-steps -5
train --no-decay-on bias,gamma

traj() { bad trajectory --plot "$tmp/plot.svg" "$@"; }
traj --function foo
traj --function quadratic --condition 0.5
traj --function rosenbrock --condition 10
traj --start 1
traj --start 1,2,3
traj --steps -1
traj --compare sgd:abc
traj --compare sgd,adamax
traj --compare ''
traj --optimizer adam --compare sgd
traj --optimizer adam --betas 1,0.9
traj --optimizer adam --lr -1
traj --box 1,0,0,1

bad bench optimizer --optimizer adam --betas 1,0.9
bad bench optimizer --optimizer adamw --weight-decay -1
bad bench optimizer --params 0
bad bench optimizer --params 5 --tensors 10
bad bench optimizer --optimizer foo

# valid runs
checks=$((checks + 1))
out=$("$bin" trajectory --function quadratic --condition 10 --optimizer sgd --lr 0.1 --steps 3 2>"$tmp/err")
if [ "$(echo "$out" | head -1)" != "step,x,y,f,lr" ] || [ "$(echo "$out" | wc -l)" -ne 5 ]; then
    fail "trajectory CSV: $out"
else
    # one SGD step from (-4, 1) on (x^2 + 10 y^2)/2 with lr 0.1: (-3.6, 0)
    echo "$out" | awk -F, 'NR==3 { if (($2 + 3.6)^2 > 1e-10 || $3^2 > 1e-12) exit 1 }' ||
        fail "trajectory step 1 is not (-3.6, 0): $out"
fi

checks=$((checks + 1))
"$bin" trajectory --function saddle --steps 50 --compare sgd:0.05,momentum:0.05,adam:0.05 --json \
    --plot "$tmp/saddle.svg" >"$tmp/t.json" 2>"$tmp/err" || fail "trajectory --compare --json: $(cat "$tmp/err")"
/usr/bin/python3 - "$tmp/t.json" <<'PY' || fail "trajectory JSON malformed"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["function"] == "saddle" and len(d["runs"]) == 3
for r in d["runs"]:
    assert len(r["x"]) == len(r["y"]) == len(r["f"]) == 51, r["optimizer"]
PY
grep -q '<svg' "$tmp/saddle.svg" && grep -q '<polyline' "$tmp/saddle.svg" || fail "trajectory plot missing"

checks=$((checks + 1))
"$bin" trajectory --function rosenbrock --optimizer adam --lr 0.05 --json --steps 10 >"$tmp/r.json" 2>"$tmp/err" &&
    /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert len(d['x'])==11 and d['f'][-1]<d['f'][0]" \
        "$tmp/r.json" || fail "trajectory --json (single)"

checks=$((checks + 1))
"$bin" bench optimizer --optimizer lion --params 100000 --tensors 3 --steps 3 --warmup 1 --threads 1 --json \
    >"$tmp/b.json" 2>"$tmp/err" || fail "bench optimizer: $(cat "$tmp/err")"
/usr/bin/python3 -c "
import json, sys
d = json.load(open(sys.argv[1]))
for k in ('ms_per_step', 'gparams_per_s', 'gbytes_per_s', 'stream_gbytes_per_s'):
    assert d[k] > 0, k
" "$tmp/b.json" || fail "bench optimizer JSON: $(cat "$tmp/b.json")"

checks=$((checks + 1))
help=$("$bin" train --help)
for f in lr momentum dampening nesterov betas eps weight-decay amsgrad alpha centered rho lr-decay \
    initial-accumulator-value momentum-decay trust-coefficient trust-clip always-adapt no-bias-correction \
    max-grad-norm larc larc-mode larc-trust-coefficient sf-warmup-steps sf-r weight-lr-power eps-inside-sqrt; do
    echo "$help" | grep -q -- "--$f " || fail "train --help lacks --$f"
done

if [ "$fails" -ne 0 ]; then
    echo "optim_cli: $fails of $checks checks FAILED" >&2
    exit 1
fi
echo "optim_cli: all $checks checks passed"
