#!/usr/bin/env bash
# Validate `optimlab plan-scaling` on this machine: measure the step time of
# ResNet-20 with the exact all-reduce, PowerSGD and DiLoCo on 1, 2 and 4 MPI
# ranks (weak scaling, BATCH samples per rank, 1 thread per rank), fit only
# the link's bandwidth and latency to `optimlab bench allreduce` (ring model),
# give the planner one worker's compute measured by one-process runs (alone,
# and N at once: the CPU share each of N ranks gets here), and print predicted
# against measured step times. Medians over REPS interleaved repetitions.
# usage: bench/validate_scaling.sh [path/to/optimlab]
# env:   REPS=3 STEPS=40 BATCH=32 NPS="1 2 4" R=2 H=10 OUT=/tmp/validate_scaling
set -eu
bin=${1:-build/optimlab}
REPS=${REPS:-3} STEPS=${STEPS:-40} BATCH=${BATCH:-32} NPS=${NPS:-"1 2 4"} R=${R:-2} H=${H:-10}
OUT=${OUT:-/tmp/validate_scaling}
py=/usr/bin/python3; [ -x $py ] || py=python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpi() { mpirun --allow-run-as-root --oversubscribe -np "$@"; }
mkdir -p "$OUT"
: >"$OUT/allreduce.jsonl"
: >"$OUT/runs.txt"
echo "load before: $(uptime)"
for rep in $(seq "$REPS"); do
    for np in 2 4; do
        for size in 4K 64K 256K 1M 4M; do
            mpi $np "$bin" bench allreduce --size $size --iters 50 --warmup 10 --json >>"$OUT/allreduce.jsonl"
        done
    done
    for np in $NPS; do
        # np independent one-process runs at once: the compute each rank gets when np share the CPUs
        for i in $(seq "$np"); do
            "$bin" train --model resnet20 --steps "$STEPS" --batch-size "$BATCH" --threads 1 --log-every 1 \
                --train-subset 8192 --test-subset 256 --keep-last 1 --quiet --overwrite \
                --out "$OUT/solo-$np-$i-$rep" >/dev/null &
        done
        wait
        for i in $(seq "$np"); do echo "$np solo $rep $OUT/solo-$np-$i-$rep" >>"$OUT/runs.txt"; done
        for m in exact psgd diloco; do
            case $m in
            exact) extra=() ;;
            psgd) extra=(--powersgd-rank "$R") ;;
            diloco) extra=(--diloco-h "$H") ;;
            esac
            dir="$OUT/run-$np-$m-$rep"
            mpi "$np" "$bin" train --model resnet20 --steps "$STEPS" --batch-size $((np * BATCH)) --threads 1 \
                --log-every 1 --train-subset 8192 --test-subset 256 --keep-last 1 --quiet --overwrite \
                --out "$dir" "${extra[@]}" >/dev/null
            echo "$np $m $rep $dir" >>"$OUT/runs.txt"
        done
    done
done
echo "load after: $(uptime)"
# fit 1/B and alpha of T = 2(N-1)/N S/B + 2(N-1) alpha to the medians of every (N, size)
fit=$("$py" - "$OUT/allreduce.jsonl" <<'EOF'
import json, statistics, sys
from collections import defaultdict
t = defaultdict(list)
for line in open(sys.argv[1]):
    o = json.loads(line)
    t[(o["ranks"], o["bytes"])].append(o["median_s"])
rows = [(2 * (n - 1) / n * s, 2 * (n - 1), statistics.median(v)) for (n, s), v in sorted(t.items())]
# least squares with relative weights (each point's error counts the same)
a11 = sum(x * x / y / y for x, _, y in rows); a12 = sum(x * c / y / y for x, c, y in rows)
a22 = sum(c * c / y / y for _, c, y in rows)
b1 = sum(x / y for x, _, y in rows); b2 = sum(c / y for _, c, y in rows)
det = a11 * a22 - a12 * a12
inv_b = (b1 * a22 - b2 * a12) / det; alpha = (a11 * b2 - a12 * b1) / det
if alpha < 0: alpha = 0.0; inv_b = b1 / a11
for (n, s), v in sorted(t.items()):
    pred = 2 * (n - 1) / n * s * inv_b + 2 * (n - 1) * alpha
    print(f"# allreduce N={n} {s:>8} B: measured {statistics.median(v)*1e3:.4f} ms, fitted {pred*1e3:.4f} ms", file=sys.stderr)
print(1 / inv_b, alpha)
EOF
)
read -r bw lat <<<"$fit"
echo "fitted link: bandwidth $bw B/s, latency $lat s"
# the planner gets one worker's compute from one-process runs of the same training: alone
# (ranks 1) and np at once (the CPU share each of np ranks has on this machine)
"$py" - "$OUT/runs.txt" "$BATCH" >"$OUT/sps.txt" <<'EOF2'
import json, statistics, sys
from collections import defaultdict
per_rep = defaultdict(list)
for line in open(sys.argv[1]):
    np_, m, rep, d = line.split()
    if m == "solo":
        st = [json.loads(l) for l in open(d + "/metrics.jsonl")]
        st = [o for o in st if o.get("type") == "step" and o["step"] > 5]
        per_rep[(int(np_), rep)].append(statistics.mean(o["batch"] / o["samples_per_s"] for o in st))
sps = defaultdict(list)
for (n, rep), v in per_rep.items():
    sps[n].append(int(sys.argv[2]) / statistics.mean(v))
for n in sorted(sps):
    print(n, statistics.median(sps[n]))
EOF2
cat "$OUT/sps.txt" | while read -r n s; do echo "one worker's compute, $n process(es) at once: $s samples/s"; done
read -r _ sps1 < <(head -1 "$OUT/sps.txt")
plan() { # samples/s, workers, output
    "$bin" plan-scaling --model resnet20 --per-worker-batch "$BATCH" --workers "$2" --link-bandwidth "$bw" \
        --latency "$lat" --topology ring --samples-per-s "$1" --powersgd "$R" --diloco "$H" --threads 1 --json >"$3"
}
plan "$sps1" "$(echo $NPS | tr ' ' ,)" "$OUT/plan.json"
while read -r n s; do plan "$s" "$n" "$OUT/plan-matched-$n.json"; done <"$OUT/sps.txt"
"$py" - "$OUT/runs.txt" "$OUT/plan.json" "$R" "$H" "$BATCH" <<'EOF'
import json, statistics, sys
from collections import defaultdict
R, H, BATCH = sys.argv[3], sys.argv[4], int(sys.argv[5])
meas = defaultdict(list)
for line in open(sys.argv[1]):
    np_, m, rep, d = line.split()
    st = [json.loads(l) for l in open(d + "/metrics.jsonl")]
    st = [o for o in st if o.get("type") == "step" and o["step"] > 5]
    step = statistics.mean(o.get("step_time", o["batch"] / o["samples_per_s"]) for o in st)
    comm = statistics.mean(o.get("comm_time", 0.0) for o in st)
    comp = statistics.mean(o.get("compute_time", o["batch"] / o["samples_per_s"]) for o in st)
    meas[(int(np_), m)].append((step, comm, comp))
plan = json.load(open(sys.argv[2]))
matched = {}
for n in {k[0] for k in meas}:
    matched[n] = json.load(open(sys.argv[2].replace("plan.json", f"plan-matched-{n}.json")))
key = {"exact": "exact", "psgd": "powersgd", "diloco": "diloco", "solo": "exact"}
name = {"exact": "exact all-reduce", "psgd": f"PowerSGD r={R}", "diloco": f"DiLoCo H={H}"}
print(f"\nResNet-20, {BATCH} samples per rank, 1 thread per rank; times per step in ms (means over the steps after"
      " the 5th, medians over the repetitions)\n")
print("| ranks | method | measured step | min-max | predicted (1-rank compute) | error | predicted (compute of n at once) | error | measured comm wait | predicted comm | measured compute |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for (n, m), v in sorted(meas.items(), key=lambda kv: (kv[0][0], list(key).index(kv[0][1]))):
    if m == "solo":
        continue
    p = [q for q in plan["points"] if q["workers"] == n and q["method"] == key[m]][0]
    pm = [q for q in matched[n]["points"] if q["workers"] == n and q["method"] == key[m]][0]
    step = statistics.median(x[0] for x in v)
    comm = statistics.median(x[1] for x in v)
    comp = statistics.median(x[2] for x in v)
    lo, hi = min(x[0] for x in v), max(x[0] for x in v)
    err = 100 * (p["step_s"] - step) / step
    errm = 100 * (pm["step_s"] - step) / step
    print(f"| {n} | {name[m]} | {step*1e3:.1f} | {lo*1e3:.1f}-{hi*1e3:.1f} | {p['step_s']*1e3:.1f} | {err:+.1f} % |"
          f" {pm['step_s']*1e3:.1f} | {errm:+.1f} % |"
          f" {comm*1e3:.2f} | {pm['comm_s']*1e3:.3f} | {comp*1e3:.1f} |")
EOF
