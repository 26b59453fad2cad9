#!/usr/bin/env bash
# The LR range test on ResNet-20 / Fashion-MNIST, then a one-cycle run with the
# suggested max lr against the hand-tuned step schedule, same epochs; writes
# the tables of docs/lr-finder.md and its plots into docs/img/.
# Usage: scripts/lr_finder_experiment.sh [epochs] [threads]   (defaults: 10, 2)
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-10}
threads=${2:-2}
bin=${OPTIMLAB_BIN:-build/optimlab}
runs=runs/lrf
mkdir -p "$runs" docs/img
common=(--model resnet20 --dataset fashion-mnist --batch-size 128 --momentum 0.9 --nesterov --weight-decay 5e-4
        --threads "$threads")

# 1. range test: 300 steps, lr from 1e-5 to 10
$bin lr-find "${common[@]}" --start-lr 1e-5 --end-lr 10 --num-iter 300 --out "$runs/range" | tee "$runs/range.txt"
cp "$runs/range/lr_find.svg" docs/img/lr_find_resnet20.svg
maxlr=$(sed -n 's/^one-cycle: *--schedule onecycle --lr \([0-9.e+-]*\).*/\1/p' "$runs/range.txt")
[ -n "$maxlr" ] || { echo "no suggestion found"; exit 1; }

# 2. the sweep variant of the course's practical: one short training per decade
$bin lr-find "${common[@]}" --mode sweep --start-lr 1e-6 --end-lr 10 --sweep-steps 100 --out "$runs/sweep" \
  | tee "$runs/sweep.txt"
cp "$runs/sweep/lr_find.svg" docs/img/lr_sweep_resnet20.svg

# 3. same epochs: one-cycle at the suggested max lr vs the hand-tuned step schedule
$bin train "${common[@]}" --epochs "$epochs" --schedule onecycle --lr "$maxlr" --out "$runs/onecycle" --log-every 500
$bin train "${common[@]}" --epochs "$epochs" --schedule multistep --lr 0.1 --out "$runs/step" --log-every 500

/usr/bin/python3 - "$runs" "$maxlr" "$epochs" <<'PY'
import json, sys
runs, maxlr, epochs = sys.argv[1], sys.argv[2], sys.argv[3]
def summary(d):
    for l in open(f"{runs}/{d}/metrics.jsonl"):
        o = json.loads(l)
        if o["type"] == "summary":
            return o
rows = [("one-cycle, max lr from the finder", f"--schedule onecycle --lr {maxlr}", summary("onecycle")),
        ("hand-tuned step (0.1, /10 at 50% and 75%)", "--schedule multistep --lr 0.1", summary("step"))]
print(f"| schedule ({epochs} epochs) | flags | final test acc | best test acc | train time |")
print("|---|---|---|---|---|")
for name, flags, s in rows:
    print(f"| {name} | `{flags}` | {100*s['final_test_acc']:.2f}% | {100*s['best_test_acc']:.2f}% | "
          f"{s['train_time']/60:.1f} min |")
PY
