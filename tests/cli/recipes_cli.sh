#!/usr/bin/env bash
# Recipes through the CLI on the default data (Fashion-MNIST; skipped, 77, without it):
# - every recipe trains a few steps and exits 0 (BLOOM's warm-up, given in epochs and
#   converted at its first batch of 16, used to exceed the run; Goyal's and LARS's 5
#   warm-up epochs filled the default 5-epoch run);
# - BLOOM starts at the default length (5 epochs; stopped after 2 steps, exit 4);
# - the values reach the run: BLOOM trains with betas 0.9,0.95 and peak lr 6e-5;
# - BLOOM's shape (ramp, warm-up, cosine to 10% then flat, as fractions of the run's samples)
#   and its start on a language model;
# - `optimlab recipes` prints flags that `optimlab train` accepts (it printed --beta1,
#   --beta2 and "--three-phase 1").
# usage: recipes_cli.sh path/to/optimlab
set -u
bin=$1
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte ] ||
    [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || { echo "no Fashion-MNIST: skipped"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
short=(--model mlp --widths 64 --test-subset 256 --threads 2 --quiet)
"$bin" recipes >"$tmp/recipes" || { echo "FAIL: optimlab recipes"; exit 1; }
names=$(grep -E '^[a-z0-9-]+: ' "$tmp/recipes" | grep -v '^usage:' | cut -d: -f1)
[ "$(echo "$names" | wc -w)" -ge 5 ] || fail "optimlab recipes lists $(echo "$names" | wc -w) recipes"
for r in $names; do
    rm -rf "$tmp/run"
    if timeout 300 "$bin" train --recipe "$r" "${short[@]}" --steps 3 --out "$tmp/run" >"$tmp/out" 2>&1; then
        echo "ok   --recipe $r: 3 steps on Fashion-MNIST"
    else
        fail "--recipe $r: $(tail -2 "$tmp/out")"
    fi
    # the printed flags, parsed back by train
    flags=$(grep -A1 "^$r: " "$tmp/recipes" | tail -1)
    rm -rf "$tmp/run2"
    # shellcheck disable=SC2086
    if timeout 300 "$bin" train $flags "${short[@]}" --steps 4 --out "$tmp/run2" >"$tmp/out" 2>&1; then
        echo "ok   optimlab train$flags"
    else
        fail "printed flags of $r rejected by train: $(tail -2 "$tmp/out")"
    fi
done
rm -rf "$tmp/run"
timeout 300 "$bin" train --recipe bloom "${short[@]}" --stop-after 2 --out "$tmp/run" >"$tmp/out" 2>&1
st=$?
if [ $st -eq 4 ]; then
    echo "ok   --recipe bloom starts at the default 5 epochs"
    grep -q '"betas": "0.9,0.95"' "$tmp/run/config.json" || fail "bloom: config.json betas: $(grep betas "$tmp/run/config.json")"
    grep -q '"lr": "6e-5"' "$tmp/run/config.json" || fail "bloom: config.json lr: $(grep '"lr"' "$tmp/run/config.json")"
else
    fail "--recipe bloom at the default length: exit $st: $(tail -2 "$tmp/out")"
fi
# BLOOM's shape over one epoch of Fashion-MNIST (S samples): the batch ramps 16 -> 2048 in steps
# of 16 over 4.44% of S, the warm-up ends at 0.083% of S, the cosine reaches 10% of 6e-5 at 91.1%
# of S (warm-up included) and stays there; each length is the first step that starts once that
# many samples have been consumed. metrics record k holds step k-1 and the samples after it.
rm -rf "$tmp/shape"
if timeout 300 "$bin" train --recipe bloom "${short[@]}" --epochs 1 --log-every 1 --out "$tmp/shape" >"$tmp/out" 2>&1; then
    grep '"type":"step"' "$tmp/shape/metrics.jsonl" |
        sed 's/.*"lr":\([^,]*\),.*"batch":\([0-9]*\),"samples":\([0-9]*\),.*/\1 \2 \3/' >"$tmp/steps"
    grep -q '"batch-ramp-samples": "2664"' "$tmp/shape/config.json" ||
        fail "bloom: ramp over 4.44% of 60000 samples: $(grep '"batch-ramp-samples"' "$tmp/shape/config.json")"
    msg=$(awk 'function abs(x) { return x < 0 ? -x : x }
        { lr[NR - 1] = $1; b[NR - 1] = $2; before[NR] = $3; n = NR } END {
        S = before[n]; peak = 6e-5; lo = 6e-6
        if (S != 60000) { print "one epoch is " S " samples, not 60000"; exit }
        for (k = 0; k < n; k++) if (W == "" && before[k] >= 50) W = k           # round(0.000833 S)
        for (k = 0; k < n; k++) if (D == "" && before[k] >= 54660) D = k        # round(0.911 S)
        if (b[0] != 16) { print "first batch " b[0]; exit }
        for (k = 0; k < n - 1; k++) { # the epoch'"'"'s last step takes the samples left
            if (b[k] % 16 || (k && b[k] < b[k - 1])) { print "batch " b[k] " at step " k; exit }
            if ((b[k] == 2048) != (before[k] >= 2664)) { print "batch " b[k] " at step " k " after " before[k] " samples"; exit }
        }
        if (lr[0] != 0 || abs(lr[W] - peak) > 1e-12 * peak || lr[W - 1] > 0.99 * peak) {
            print "warm-up: lr " lr[W - 1] ", " lr[W] " at steps " W - 1 ", " W; exit }
        for (k = W; k < D; k++) {
            want = lo + (peak - lo) * (1 + cos(3.141592653589793 * (k - W) / (D - W))) / 2
            if (abs(lr[k] - want) > 1e-9 * peak) { print "cosine: step " k " lr " lr[k] ", want " want; exit }
        }
        if (lr[D - 1] <= lo * 1.0001) { print "the decay ends before step " D; exit }
        for (k = D; k < n; k++) if (abs(lr[k] - lo) > 1e-15) { print "after the decay: step " k " lr " lr[k]; exit }
        print "ok " n " steps, warm-up to step " W ", batch 2048 from " 2664 " samples, floor from step " D
    }' "$tmp/steps")
    case $msg in
    ok*) echo "ok   --recipe bloom shape: ${msg#ok }" ;;
    *) fail "--recipe bloom shape: $msg" ;;
    esac
else
    fail "--recipe bloom, 1 epoch: $(tail -2 "$tmp/out")"
fi
# and on the default text with a language model (gpt-mini, 16 windows of 128 tokens at first). The
# ramp is a fraction of the run's samples, so a 2-step run takes 848 windows at its second step
# (5 GB); --max-batch-size 64 keeps the test small
rm -rf "$tmp/lm"
if timeout 300 "$bin" train --recipe bloom --model gpt-mini --dataset text --test-subset 64 --threads 2 --quiet \
    --steps 2 --max-batch-size 64 --out "$tmp/lm" >"$tmp/out" 2>&1; then
    grep -q '"batch-tokens": "2048"' "$tmp/lm/config.json" && grep -q '"betas": "0.9,0.95"' "$tmp/lm/config.json" &&
        echo "ok   --recipe bloom on gpt-mini: 2 steps, batch 16 x 128 tokens" ||
        fail "bloom on gpt-mini: config.json $(grep -E '"(batch-tokens|betas)"' "$tmp/lm/config.json" | tr '\n' ' ')"
else
    fail "--recipe bloom on gpt-mini: $(tail -2 "$tmp/out")"
fi
# a run given in steps only (--epochs 0 --steps N): its samples S depend on the ramp, which is a
# fraction of S; the ramp is the fixed point (it was refused: "needs the run's length in epochs")
rm -rf "$tmp/bysteps"
if timeout 300 "$bin" train --recipe bloom "${short[@]}" --epochs 0 --steps 60 --log-every 1 \
    --out "$tmp/bysteps" >"$tmp/out" 2>&1; then
    R=$(sed -n 's/.*"batch-ramp-samples": "\([0-9]*\)".*/\1/p' "$tmp/bysteps/config.json")
    msg=$(grep '"type":"step"' "$tmp/bysteps/metrics.jsonl" |
        sed 's/.*"batch":\([0-9]*\),"samples":\([0-9]*\),.*/\1 \2/' | awk -v R="$R" '
        { b[NR] = $1; S = $2; n = NR } END {
        if (n != 60) { print n " steps, not 60"; exit }
        r = int(0.0444 * S + 0.5)
        if (R == "" || R + 0 != r) { print "ramp " R " samples, 4.44% of the run'"'"'s " S " is " r; exit }
        if (b[n] != 2048) { print "last batch " b[n]; exit }
        print "ok S " S ", ramp " R }')
    case $msg in
    ok*) echo "ok   --recipe bloom by steps: ${msg#ok }" ;;
    *) fail "--recipe bloom by steps: $msg" ;;
    esac
else
    fail "--recipe bloom --epochs 0 --steps 60: $(tail -2 "$tmp/out")"
fi
[ $fails -eq 0 ] && echo "recipes_cli: all passed"
exit $((fails > 0))
