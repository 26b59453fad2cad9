#!/usr/bin/env bash
# docs/language-model.md, table 3: the PowerSGD paper's language-model table on gpt-mini.
# 2 ranks (mpirun, 1 thread each), global batch 16 x 128 tokens, the same steps, seed, data and
# inner recipe (AdamW, betas 0.9/0.95, wd 0.1, clip 1, 5 % warm-up, cosine to 10 %) in every row:
# the exact all-reduce, PowerSGD rank 1, 2, 4, and DiLoCo with H = 5, 20, 50 (outer Nesterov,
# lr 0.7, momentum 0.9: the defaults, the DiLoCo paper's). Prints a Markdown table (also
# OUT/table.md): validation loss and perplexity, bytes rank 0 sent per step and per epoch (the
# runs are shorter than an epoch: per step x steps per epoch) and the ratio to the exact
# all-reduce, time per batch and the part of it spent waiting on communication.
#
# usage: experiments/lm-distributed.sh [path/to/optimlab] [extra train options...]
#   environment: STEPS (100), LR (1e-3: AdamW's best in experiments/lm-optimizers-lr.yaml),
#   OUT (runs/lm-distributed), NP (2), MPIRUN ("mpirun --allow-run-as-root --oversubscribe")
# Cost: about 1 min per row under a load average of 9 (7 rows).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/optimlab}
shift || true
STEPS=${STEPS:-100}
LR=${LR:-1e-3}
NP=${NP:-2}
OUT=${OUT:-runs/lm-distributed}
MPIRUN=${MPIRUN:-mpirun --allow-run-as-root --oversubscribe}
common=(--model gpt-mini --dataset text --batch-size 16 --epochs 0 --steps "$STEPS"
        --optimizer adamw --lr "$LR" --betas 0.9,0.95 --weight-decay 0.1 --clip-grad-norm 1.0
        --schedule cosine --min-lr-ratio 0.1 --warmup-ratio 0.05 --test-subset 200
        --log-every 10 --seed 0 --threads 1 --checkpoint-every 0 --quiet "$@")
mkdir -p "$OUT"
load() { uptime 2>/dev/null || echo "load average: $(cut -d" " -f1-3 /proc/loadavg)"; }
load | tee "$OUT/uptime-start.txt" >&2

rows=("exact all-reduce|exact|"
      "PowerSGD rank 1|psgd1|--powersgd-rank 1"
      "PowerSGD rank 2|psgd2|--powersgd-rank 2"
      "PowerSGD rank 4|psgd4|--powersgd-rank 4"
      "DiLoCo H=5|diloco5|--diloco-h 5"
      "DiLoCo H=20|diloco20|--diloco-h 20"
      "DiLoCo H=50|diloco50|--diloco-h 50")
for row in "${rows[@]}"; do
    IFS='|' read -r label name extra <<<"$row"
    if grep -qs '"type":"summary"' "$OUT/$name/metrics.jsonl"; then
        echo "== $label: finished, skipped" >&2
        continue
    fi
    echo "== $label: $MPIRUN -np $NP $BIN train ${common[*]} $extra --out $OUT/$name --overwrite" >&2
    # shellcheck disable=SC2086
    $MPIRUN -np "$NP" "$BIN" train "${common[@]}" $extra --out "$OUT/$name" --overwrite >"$OUT/$name.log" 2>&1 ||
        { echo "failed: see $OUT/$name.log" >&2; tail -3 "$OUT/$name.log" >&2; exit 1; }
    load >>"$OUT/uptime.txt"
done
load | tee "$OUT/uptime-end.txt" >&2

python3 - "$OUT" "$NP" "$STEPS" "${rows[@]}" <<'PY' | tee "$OUT/table.md"
import json, math, sys
out, np_, steps, rows = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
res = {}
for row in rows:
    label, name, _ = row.split("|", 2)
    recs = [json.loads(l) for l in open(f"{out}/{name}/metrics.jsonl")]
    cfg = json.load(open(f"{out}/{name}/config.json"))
    ev = [r for r in recs if r["type"] in ("epoch", "eval")][-1]
    s = [r for r in recs if r["type"] == "summary"][-1]
    per_step = s["step_comm_bytes"] / s["steps"]
    res[name] = dict(label=label, loss=ev["test_loss"], ppl=math.exp(ev["test_loss"]), step_kb=per_step / 1e3,
                     dense=s["comm_dense_bytes"] / s["steps"], per_step=per_step,
                     ms=1e3 * s["train_time"] / s["steps"], wait=1e3 * s["step_comm_time"] / s["steps"])
# an epoch: the training windows of the fortunes corpus over the global batch (the last one partial)
windows = 18117
steps_per_epoch = math.ceil(windows / 16)
exact = res["exact"]["per_step"]
print(f"gpt-mini, fortunes, {np_} ranks x 1 thread, global batch 16 x 128 tokens, {steps} steps "
      f"({int(steps) * 16 * 128:,} tokens); an epoch = {steps_per_epoch} steps\n")
print("| method | val loss (nats/byte) | val perplexity | sent per step and rank (kB) | per epoch (MB) | vs exact "
      "| time per batch (ms) | of it waiting on communication (ms) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for name, r in res.items():
    vs = "1 x" if name == "exact" else f"{exact / r['per_step']:.1f} x less"
    print(f"| {r['label']} | {r['loss']:.4f} | {r['ppl']:.3f} | {r['step_kb']:.1f} | "
          f"{r['per_step'] * steps_per_epoch / 1e6:.2f} | {vs} | {r['ms']:.1f} | {r['wait']:.1f} |")
PY
