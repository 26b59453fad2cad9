#!/usr/bin/env bash
# The generalization gap of large batches and its remedies, ResNet-20 on
# Fashion-MNIST, the same number of epochs in every row:
#   batch 128 | batch 4096 as is | 4096 with linear lr scaling and warm-up (Goyal et al.)
#   | 4096 with square-root scaling and warm-up | 4096 with LARS | 4096 with LAMB
# Batches of 4096 run as micro-batches of 512 (gradient accumulation; BatchNorm
# statistics per micro-batch). Prints the markdown table of docs/large-batch.md.
# Usage: scripts/large_batch_experiment.sh [epochs] [threads]   (defaults: 10, 2)
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-10}
threads=${2:-2}
bin=${OPTIMLAB_BIN:-build/optimlab}
runs=runs/large-batch
mkdir -p "$runs"
common=(--model resnet20 --dataset fashion-mnist --epochs "$epochs" --threads "$threads" --schedule cosine
        --log-every 100 --checkpoint-every 0)
big=(--batch-size 4096 --micro-batch-size 512)

run() { # name, then flags
  local name=$1; shift
  [ -f "$runs/$name/metrics.jsonl" ] && grep -q '"summary"' "$runs/$name/metrics.jsonl" && return 0
  echo "== $name: $*"
  $bin train "${common[@]}" "$@" --out "$runs/$name" --quiet
}
run b128        --batch-size 128 --optimizer sgd --lr 0.1 --nesterov --weight-decay 5e-4
run b4096       "${big[@]}" --optimizer sgd --lr 0.1 --nesterov --weight-decay 5e-4
run b4096-goyal "${big[@]}" --optimizer sgd --lr 0.1 --nesterov --weight-decay 5e-4 \
                --lr-scaling linear --base-batch-size 128 --warmup-epochs 2
run b4096-sqrt  "${big[@]}" --optimizer sgd --lr 0.1 --nesterov --weight-decay 5e-4 \
                --lr-scaling sqrt --base-batch-size 128 --warmup-epochs 2
run b4096-lars  "${big[@]}" --optimizer lars --lr 10 --momentum 0.9 --weight-decay 5e-4 --always-adapt \
                --trust-coefficient 0.001 --warmup-epochs 2
run b4096-lamb  "${big[@]}" --optimizer lamb --lr 0.05 --weight-decay 0.01 --warmup-epochs 2

/usr/bin/python3 - "$runs" "$epochs" <<'PY'
import json, sys
runs, epochs = sys.argv[1], sys.argv[2]
rows = [("b128", "128", "SGD + Nesterov, lr 0.1"),
        ("b4096", "4096", "SGD + Nesterov, lr 0.1 (no scaling)"),
        ("b4096-goyal", "4096", "SGD + Nesterov, linear scaling to lr 3.2, 2-epoch warm-up"),
        ("b4096-sqrt", "4096", "SGD + Nesterov, sqrt scaling to lr 0.57, 2-epoch warm-up"),
        ("b4096-lars", "4096", "LARS, lr 10, trust 0.001, all tensors adapted, 2-epoch warm-up"),
        ("b4096-lamb", "4096", "LAMB, lr 0.05 (sqrt scaling of 0.01), 2-epoch warm-up")]
def summary(d):
    s = None
    for l in open(f"{runs}/{d}/metrics.jsonl"):
        o = json.loads(l)
        if o["type"] == "summary":
            s = o
    return s
base = summary("b128")
gap0 = 100 * (base["final_test_acc"] - summary("b4096")["final_test_acc"])
print(f"| run ({epochs} epochs) | batch | steps | final train acc | final test acc | behind batch 128 | "
      "of the gap closed | time |")
print("|---|---|---|---|---|---|---|---|")
for d, b, what in rows:
    s = summary(d)
    gap = 100 * (base["final_test_acc"] - s["final_test_acc"])
    closed = "" if d in ("b128", "b4096") else f"{100 * (1 - gap / gap0):.0f}%"
    print(f"| {what} | {b} | {s['steps']} | {100*s['final_train_acc']:.2f}% | {100*s['final_test_acc']:.2f}% | "
          f"{gap:.2f} pt | {closed} | {s['train_time']/60:.1f} min |")
PY
