#!/usr/bin/env bash
# The measured table of docs/distributed.md: ResNet-20 on Fashion-MNIST on NP
# ranks, the same epochs, seed and inner recipe for every row: the exact
# all-reduce, PowerSGD rank 1, 2, 4, and DiLoCo with H = 10, 50, 200. Prints a
# Markdown table (also OUT/table.md): final test accuracy, data each rank sent
# per epoch (MB, and how many times less than the exact all-reduce), time per
# batch and the part of it spent waiting on communication.
#
# usage: scripts/distributed_table.sh [path/to/optimlab] [extra train options...]
#   environment: EPOCHS (15), NP (2), THREADS (1 per rank), OUT (runs/distributed),
#   MPIRUN ("mpirun --oversubscribe"), INNER (the recipe of every row's --optimizer),
#   DILOCO_INNER (DiLoCo's inner recipe; default INNER)
# full table: EPOCHS=15 scripts/distributed_table.sh build/optimlab
# quick check: EPOCHS=1 scripts/distributed_table.sh build/optimlab --train-subset 2048 --test-subset 1000
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/optimlab}
shift || true
EPOCHS=${EPOCHS:-15}
NP=${NP:-2}
THREADS=${THREADS:-1}
OUT=${OUT:-runs/distributed}
MPIRUN=${MPIRUN:-mpirun --oversubscribe}
INNER=${INNER:---optimizer sgd --lr 0.1 --momentum 0.9 --nesterov --weight-decay 5e-4}
DILOCO_INNER=${DILOCO_INNER:-$INNER}
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1} OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
common=(--model resnet20 --dataset fashion-mnist --epochs "$EPOCHS" --batch-size 128 --schedule cosine
        --augment crop,flip --crop-pad 2 --seed 1 --threads "$THREADS" --checkpoint-every 0 --quiet "$@")
mkdir -p "$OUT"

rows=("exact all-reduce|plain|"
      "PowerSGD rank 1|psgd1|--powersgd-rank 1"
      "PowerSGD rank 2|psgd2|--powersgd-rank 2"
      "PowerSGD rank 4|psgd4|--powersgd-rank 4"
      "DiLoCo H=10|diloco10|--diloco-h 10"
      "DiLoCo H=50|diloco50|--diloco-h 50"
      "DiLoCo H=200|diloco200|--diloco-h 200")
for row in "${rows[@]}"; do
    IFS='|' read -r label name extra <<<"$row"
    recipe=$INNER
    [[ $name == diloco* ]] && recipe=$DILOCO_INNER
    echo "== $label: $MPIRUN -np $NP $BIN train ${common[*]} $recipe $extra --out $OUT/$name" >&2
    # shellcheck disable=SC2086
    $MPIRUN -np "$NP" "$BIN" train "${common[@]}" $recipe $extra --out "$OUT/$name" >"$OUT/$name.log" 2>&1 ||
        { echo "failed: see $OUT/$name.log" >&2; tail -3 "$OUT/$name.log" >&2; exit 1; }
done

python3 - "$OUT" "$NP" "$EPOCHS" "${rows[@]}" <<'PY' | tee "$OUT/table.md"
import json, sys
out, np_, epochs, rows = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
def load(name):
    recs = [json.loads(l) for l in open(f"{out}/{name}/metrics.jsonl")]
    ep = [r for r in recs if r["type"] == "epoch"]
    summ = [r for r in recs if r["type"] == "summary"][-1]
    return ep, summ
res = {}
for row in rows:
    label, name, _ = row.split("|", 2)
    ep, s = load(name)
    mb = sum(e["comm_bytes"] for e in ep) / len(ep) / 1e6
    res[name] = (label, 100 * s["final_test_acc"], mb, 1e3 * s["train_time"] / s["steps"],
                 1e3 * s["step_comm_time"] / s["steps"], 0)
plain_mb = res["plain"][2]
print(f"ResNet-20, Fashion-MNIST, {epochs} epochs, {np_} ranks, global batch 128\n")
print("| method | test acc. (%) | sent per epoch and rank (MB) | vs exact | time per batch (ms) | of it waiting on communication (ms) |")
print("|---|---:|---:|---:|---:|---:|")
for name, (label, acc, mb, tb, tc, _) in res.items():
    vs = "1 x" if name == "plain" else f"{plain_mb / mb:.1f} x less" if mb > 0 else "-"
    print(f"| {label} | {acc:.2f} | {mb:.2f} | {vs} | {tb:.1f} | {tc:.1f} |")
PY
