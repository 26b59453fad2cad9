#!/usr/bin/env bash
# Recipes through the CLI on the default data (Fashion-MNIST; skipped, 77, without it):
# - every recipe trains a few steps and exits 0 (BLOOM's warm-up, given in epochs and
#   converted at its first batch of 16, used to exceed the run; Goyal's and LARS's 5
#   warm-up epochs filled the default 5-epoch run);
# - BLOOM starts at the default length (5 epochs; stopped after 2 steps, exit 4);
# - the values reach the run: BLOOM trains with betas 0.9,0.95 and peak lr 6e-5;
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
[ $fails -eq 0 ] && echo "recipes_cli: all passed"
exit $((fails > 0))
