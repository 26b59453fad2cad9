#!/usr/bin/env bash
# Train Fashion-MNIST ResNet-20 (batch 128, 5 epochs by default) with SGD+Nesterov, AdamW, LAMB,
# LARS, Lion and Schedule-Free AdamW, then write the results table into docs/optimizers.md.
#
# usage: scripts/optimizer_table.sh [--bin build/optimlab] [--root runs/optimizer-table]
#                                   [--doc docs/optimizers.md | --no-doc] [-- TRAIN OPTIONS...]
# Options after -- go to every `optimlab train` (they override the defaults below), e.g. a quick
# check:  scripts/optimizer_table.sh --root /tmp/opt-check --no-doc -- --epochs 1 --train-subset 5000 --threads 1
# Full table (about 6 x 5 min on 2 cores):  scripts/optimizer_table.sh
# Finished runs under --root are reused; delete the folder to retrain.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bin=build/optimlab
root=runs/optimizer-table
doc=docs/optimizers.md
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
    --bin) bin=$2; shift 2 ;;
    --root) root=$2; shift 2 ;;
    --doc) doc=$2; shift 2 ;;
    --no-doc) doc=; shift ;;
    --) shift; extra=("$@"); break ;;
    *) echo "optimizer_table.sh: unknown argument '$1' (see the header of $0)" >&2; exit 2 ;;
    esac
done
[ -x "$bin" ] || { echo "optimizer_table.sh: $bin not found (build first: make build)" >&2; exit 2; }

common=(--model resnet20 --dataset fashion-mnist --batch-size 128 --epochs 5 --threads 2 --seed 0 --quiet)

# name | optimizer flags (the recipe shown in the table). Learning rates were picked with 40-step
# runs (--epochs 1 --train-subset 5000): LAMB 1e-2 over 5e-3, LARS 2.0 with --always-adapt over 1.0,
# Lion 3e-4 over 1e-4 and 2e-4, Schedule-Free AdamW 2.5e-3 over 5e-3.
rows=(
    "SGD + Nesterov|--optimizer nesterov --lr 0.1 --momentum 0.9 --weight-decay 5e-4"
    "AdamW|--optimizer adamw --lr 1e-3 --weight-decay 0.05"
    "LAMB|--optimizer lamb --lr 0.01 --weight-decay 0.01"
    "LARS|--optimizer lars --lr 2.0 --momentum 0.9 --trust-coefficient 1e-3 --weight-decay 5e-4 --always-adapt --warmup-epochs 0.5"
    "Lion|--optimizer lion --lr 3e-4 --weight-decay 0.5"
    "Schedule-Free AdamW|--optimizer sfadamw --lr 2.5e-3 --weight-decay 0.05 --sf-warmup-steps 200 --schedule constant"
)

mkdir -p "$root"
list="$root/table.tsv"
: >"$list"
for row in "${rows[@]}"; do
    name=${row%%|*}
    flags=${row#*|}
    dir="$root/$(echo "$name" | tr 'A-Z +' 'a-z-' | tr -s '-')"
    # a finished run (its metrics end with a summary) is kept, so an interrupted table resumes
    if ! { [ -f "$dir/metrics.jsonl" ] && grep -q '"summary"' "$dir/metrics.jsonl"; }; then
        echo "== $name: optimlab train $flags ${extra[*]:-}" >&2
        rm -rf "$dir"
        # shellcheck disable=SC2086 # the flags are words
        "$bin" train "${common[@]}" $flags --out "$dir" "${extra[@]}"
    fi
    printf '%s\t%s\t%s\n' "$name" "$dir" "$flags" >>"$list"
done

args="${common[*]}"
[ ${#extra[@]} -gt 0 ] && args="$args, then ${extra[*]}"
if [ -n "$doc" ]; then
    python3 "$here/optimizer_table.py" --list "$list" --doc "$doc" --args "$args"
else
    python3 "$here/optimizer_table.py" --list "$list" --args "$args"
fi
