#!/usr/bin/env bash
# Data-parallel scaling efficiency of the exact all-reduce: NP ranks x THREADS
# threads with global batch NP*B against one rank with batch B (the same work
# per rank), ResNet-20 on Fashion-MNIST, STEPS steps each. Prints both
# throughputs, the efficiency img/s(NP) / (NP img/s(1)), the exposed
# communication per step and the fraction of gradient bytes whose all-reduce
# started during backward, and the all-reduce time of one gradient-sized
# message (bench allreduce). Needs NP x THREADS idle cores to mean anything.
#
# usage: scripts/dp_efficiency.sh [path/to/optimlab]
#   environment: NP (2), THREADS (1), B (64 per rank), STEPS (60), MODEL (resnet20),
#   OUT (runs/dp_efficiency), MPIRUN ("mpirun --bind-to core")
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/optimlab}
NP=${NP:-2}
THREADS=${THREADS:-1}
B=${B:-64}
STEPS=${STEPS:-60}
MODEL=${MODEL:-resnet20}
OUT=${OUT:-runs/dp_efficiency}
MPIRUN=${MPIRUN:-mpirun --bind-to core}
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1} OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
common=(--model "$MODEL" --dataset fashion-mnist --epochs 1 --test-subset 100 --threads "$THREADS" --quiet
        --checkpoint-every 0 --log-every 10)
mkdir -p "$OUT"
"$BIN" train "${common[@]}" --batch-size "$B" --train-subset $((B * STEPS)) --out "$OUT/one" >/dev/null
# shellcheck disable=SC2086
$MPIRUN -np "$NP" "$BIN" train "${common[@]}" --batch-size $((NP * B)) --train-subset $((NP * B * STEPS)) \
    --out "$OUT/np$NP" >/dev/null
# the gradient's size: the summary's dense bytes are STEPS ring all-reduces of 2 (NP-1)/NP of it
bytes=$(python3 -c "import json; s=[json.loads(l) for l in open('$OUT/np$NP/metrics.jsonl')][-1]; print(int(s['comm_dense_bytes'] / s['steps'] / (2 * ($NP - 1) / $NP)))")
# shellcheck disable=SC2086
$MPIRUN -np "$NP" "$BIN" bench allreduce --size $(( (bytes + 3) / 4 * 4 )) --iters 30 --json >"$OUT/allreduce.json"
python3 - "$OUT" "$NP" "$THREADS" "$MODEL" <<'PY'
import json, sys
out, np_, th, model = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def summ(d):
    recs = [json.loads(l) for l in open(f"{out}/{d}/metrics.jsonl")]
    return [r for r in recs if r["type"] == "summary"][-1], [r for r in recs if r["type"] == "step"]
s1, _ = summ("one")
sn, steps = summ(f"np{np_}")
b = json.load(open(f"{out}/allreduce.json"))
ips1 = s1["steps"] * (steps[0]["batch"] // np_) / s1["train_time"]
ipsn = sn["steps"] * steps[0]["batch"] / sn["train_time"]
print(f"{model}, {th} thread(s) per rank, {steps[0]['batch'] // np_} samples per rank and step")
print(f"1 rank:  {ips1:.1f} img/s")
print(f"{np_} ranks: {ipsn:.1f} img/s  -> efficiency {ipsn / (np_ * ips1):.1%} of {np_} x one rank")
print(f"exposed communication: {1e3 * sn['step_comm_time'] / sn['steps']:.2f} ms of "
      f"{1e3 * sn['train_time'] / sn['steps']:.1f} ms per step; "
      f"{100 * sn['overlap']:.0f}% of the gradient bytes all-reduced during backward")
print(f"one all-reduce of the gradients ({b['bytes'] / 1e6:.2f} MB): median {1e3 * b['median_s']:.3f} ms, "
      f"bus bandwidth {b['busbw_gb_per_s']:.2f} GB/s")
PY
