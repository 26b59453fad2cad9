#!/usr/bin/env bash
# Snapshot ensembles save the weights at the end of each lr cycle only: where the
# lr is about to rise after having fallen, plus the final step. A schedule that
# rises from step 0 (cyclic, warm-up) used to give a snapshot of the nearly
# untrained model at step 1, which the ensemble then averaged in.
# usage: snapshot_cli.sh path/to/optimlab
set -u
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
# 256 samples / batch 64 = 4 steps per epoch, 4 epochs = 16 steps
run() { # label, expected snapshot steps, schedule options
    local label=$1 want=$2; shift 2
    rm -rf "$tmp/run"
    if ! "$bin" train --model mlp --widths 32 --dataset synthetic --synthetic-size 256 --batch-size 64 --threads 1 \
        --quiet --epochs 4 --snapshot-ensemble 2 --out "$tmp/run" "$@" >"$tmp/out" 2>&1; then
        echo "FAIL $label: $(tail -2 "$tmp/out")"; fails=$((fails + 1)); return
    fi
    local got
    got=$(cd "$tmp/run" && ls snapshot-*.safetensors | sed 's/snapshot-0*\([0-9]*\).safetensors/\1/' | tr '\n' ' ')
    if [ "$got" != "$want" ]; then
        echo "FAIL $label: snapshots at steps '$got', expected '$want'"; fails=$((fails + 1))
    else
        echo "ok   $label: snapshots at steps $got"
    fi
}
# triangular, 2 steps up and 2 down: the lr is lowest at steps 4, 8, 12 (run after step 5, 9, 13)
run "cyclic" "5 9 13 16 " --schedule cyclic --lr 0.01 --max-lr 0.1 --step-size-up 2
# 2 warm-up steps, then restarts every 4 steps: lowest at steps 5, 9, 13
run "warm-up + cosine restarts" "6 10 14 16 " --schedule cosine-restarts --lr 0.1 --warmup-steps 2 --t0 1
# a schedule without cycles: only the final weights
run "cosine" "16 " --schedule cosine --lr 0.1 --warmup-steps 2
[ $fails -eq 0 ] && echo "snapshot_cli: all passed"
exit $((fails > 0))
