#!/usr/bin/env bash
# Regenerate the schedule plots of docs/schedules.md (docs/img/sched_*.svg)
# with `optimlab schedule`. usage: scripts/schedule_plots.sh [path/to/optimlab]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/optimlab}
OUT=docs/img
mkdir -p "$OUT"
# 30 epochs of 100 steps: lengths below are in epochs
E="--steps 3000 --steps-per-epoch 100"
plot() {
    local name=$1 title=$2
    shift 2
    "$BIN" schedule $E "$@" --title "$title" --plot "$OUT/sched_$name.svg" >/dev/null
    echo "$OUT/sched_$name.svg"
}
plot constant "constant" --schedule constant --lr 0.1
plot step "step: x0.1 every 10 epochs" --schedule step --step-size 10 --lr 0.1
plot multistep "multistep: x0.1 at epochs 15 and 25" --schedule multistep --milestones 15,25 --lr 0.1
plot exponential "exponential: gamma 0.9 per epoch" --schedule exponential --gamma 0.9 --per-epoch --lr 0.1
plot polynomial "polynomial power 2 (LARS)" --schedule polynomial --power 2 --lr 0.1
plot linear "linear decay to 0" --schedule linear --lr 0.1
plot cosine "cosine to 10% with 3 warm-up epochs" --schedule cosine --min-lr-ratio 0.1 --warmup-epochs 3 --lr 0.1
plot warmup_exponential "exponential warm-up (5 epochs from 1%) then cosine" --schedule cosine \
    --warmup exponential --warmup-start-factor 0.01 --warmup-epochs 5 --lr 0.1
plot sgdr "SGDR: T0 = 2 epochs, Tmult = 2" --schedule cosine-restarts --t0 2 --t-mult 2 --eta-min 0.001 --lr 0.1
plot cyclic_triangular "cyclic triangular, step size 4 epochs" --schedule cyclic --lr 0.01 --max-lr 0.1 \
    --cycle-epochs 4
plot cyclic_triangular2 "cyclic triangular2" --schedule cyclic --lr 0.01 --max-lr 0.1 --cycle-epochs 3 \
    --cyclic-mode triangular2
plot cyclic_exp_range "cyclic exp_range, gamma 0.9995" --schedule cyclic --lr 0.01 --max-lr 0.1 --cycle-epochs 2 \
    --cyclic-mode exp_range --cyclic-gamma 0.9995
plot onecycle "one-cycle (cos, two phases)" --schedule onecycle --lr 0.1
plot onecycle_three_phase "one-cycle, linear, three phases" --schedule onecycle --lr 0.1 --anneal linear \
    --three-phase --pct-start 0.4
plot wsd "warmup-stable-decay (20% sqrt decay)" --schedule wsd --warmup-epochs 2 --decay-frac 0.2 \
    --wsd-decay sqrt --min-lr-ratio 0.01 --lr 0.1
plot sequential "sequential: constant, step, cosine" --schedule sequential --lr 0.1 \
    --sequence 'constant; step step-size=2 gamma=0.5; cosine eta-min=0.001' --sequence-milestones 5,15
plot batch_milestones "increase the batch instead of decaying the lr" --schedule constant --lr 0.1 \
    --batch-size 128 --batch-schedule milestones --batch-milestones 10,20 --batch-factor 5
# bloom: one epoch of 320,000 samples (185 steps), its lengths fractions of them
plot bloom "recipe bloom: warm-up 0.083%, ramp 16 -> 2048 over 4.44%, cosine to 10% at 91.1%" --recipe bloom \
    --steps 185 --steps-per-epoch 20000
plot goyal "recipe goyal: linear scaling to batch 1024 with gradual warm-up" --recipe goyal --batch-size 1024
