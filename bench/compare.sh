#!/bin/bash
# Training throughput and peak memory, optimlab vs PyTorch (CPU), same networks,
# same batch, same threads:
#   optimlab bench train --model M --batch-size B --steps N --threads T --json
#   bench/torch_train.py  --model M --batch-size B --steps N --threads T --json
# for M in resnet20 and mlp (1x28x28 input, 10 classes). PyTorch runs as-is and,
# when the CPU has AVX-512, again with OPENBLAS_CORETYPE=SKYLAKEX: Debian's
# OpenBLAS 0.3.21 does not recognise newer Xeons and falls back to its generic
# "Prescott" kernel, so a fair comparison uses PyTorch at its best. (optimlab
# sets OPENBLAS_CORETYPE for itself when it sees the fallback.)
#
# usage: bench/compare.sh [path/to/optimlab]    environment: BATCH=128 STEPS=20 WARMUP=3 THREADS=2
#        MODELS="resnet20 mlp" PYTHON=/usr/bin/python3
# Keep it short on a shared machine: each run is WARMUP+STEPS training steps.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
OL=${1:-$here/../build/optimlab}
BATCH=${BATCH:-128}
STEPS=${STEPS:-20}
WARMUP=${WARMUP:-3}
THREADS=${THREADS:-2}
MODELS=${MODELS:-resnet20 mlp}
PYTHON=${PYTHON:-/usr/bin/python3}
[ -x "$OL" ] || { echo "compare.sh: no optimlab binary at $OL (build first)" >&2; exit 2; }
"$PYTHON" -c 'import torch' 2>/dev/null || { echo "compare.sh: $PYTHON has no torch" >&2; exit 2; }
avx512=0
grep -qw avx512f /proc/cpuinfo && avx512=1
common=(--batch-size "$BATCH" --steps "$STEPS" --warmup "$WARMUP" --threads "$THREADS" --input 1x28x28)

results=$(mktemp)
trap 'rm -f "$results"' EXIT
for m in $MODELS; do
    echo "running $m: optimlab ..." >&2
    "$OL" bench train --model "$m" "${common[@]}" --json | jq -c --arg v optimlab '. + {variant: $v}' >>"$results"
    echo "running $m: torch (OpenBLAS as detected) ..." >&2
    env -u OPENBLAS_CORETYPE "$PYTHON" "$here/torch_train.py" --model "$m" "${common[@]}" --json |
        jq -c --arg v torch '. + {variant: $v}' >>"$results"
    if [ $avx512 -eq 1 ]; then
        echo "running $m: torch (OPENBLAS_CORETYPE=SKYLAKEX) ..." >&2
        OPENBLAS_CORETYPE=SKYLAKEX "$PYTHON" "$here/torch_train.py" --model "$m" "${common[@]}" --json |
            jq -c --arg v torch-skylakex '. + {variant: $v}' >>"$results"
    fi
done

"$PYTHON" - "$results" "$avx512" "$WARMUP" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
avx512 = sys.argv[2] == "1"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
r0 = rows[0]
print("CPU: %s (AVX-512: %s); batch %d, %d threads, %d timed steps after %s warm-up steps"
      % (cpu, "yes" if avx512 else "no", r0["batch_size"], r0["threads"], r0["steps"], sys.argv[3]))
print()
print("%-9s %-26s %11s %9s %13s %9s %10s  %s" % ("model", "run", "samples/s", "vs ours", "median-step/s",
                                                "vs ours", "peak RSS", "kernels"))
for m in dict.fromkeys(r["model"] for r in rows):
    mine = [r for r in rows if r["model"] == m and r["variant"] == "optimlab"]
    ours = mine[0]["samples_per_s"] if mine else float("nan")
    med = lambda r: r["batch_size"] * 1e3 / r["median_ms_per_step"]
    ours_med = med(mine[0]) if mine else float("nan")
    for r in (r for r in rows if r["model"] == m):
        if r["variant"] == "optimlab":
            name, kern = "optimlab", r["kernels"]
        else:
            name = "pytorch " + r["torch"] + (" SKYLAKEX" if r["variant"] == "torch-skylakex" else " as-is")
            kern = "%s; OpenBLAS %s" % (r["mkldnn"], r["openblas_core"])
        print("%-9s %-26s %11.1f %8.2fx %13.1f %8.2fx %7.1f MB  %s" % (
            m, name, r["samples_per_s"], ours / r["samples_per_s"], med(r), ours_med / med(r), r["peak_rss_mb"], kern))
        if r["variant"] != "optimlab" and mine and r["params"] != mine[0]["params"]:
            print("  WARNING: %s has %d parameters, optimlab %d: not the same network"
                  % (name, r["params"], mine[0]["params"]))
    torch_runs = [r for r in rows if r["model"] == m and r["variant"] != "optimlab"]
    if mine and torch_runs:
        best = max(torch_runs, key=lambda r: r["samples_per_s"])
        print("%-9s optimlab / best pytorch = %.2fx speed, peak memory %.1f MB vs %.1f MB (torch: %.1f MB before "
              "training)" % ("", ours / best["samples_per_s"], mine[0]["peak_rss_mb"], best["peak_rss_mb"],
                             best["rss_after_setup_mb"]))
print()
print("'vs ours': optimlab samples/s divided by that run's. median-step/s: batch / median step time, which")
print("resists other processes on a shared machine (mean and median far apart = the run was disturbed).")
print("Peak RSS includes the Python interpreter and torch for PyTorch; 'before training' is that baseline.")
EOF
