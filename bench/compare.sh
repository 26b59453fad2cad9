#!/bin/bash
# optimlab vs PyTorch (CPU) at its best, same work, same threads:
# 1. Training throughput and peak memory, same networks, same batch:
#      optimlab bench train --model M --batch-size B --steps N --threads T --json
#      bench/torch_train.py  --model M ... --mode eager|channels_last|compile --json
#    for M in resnet20 and mlp (1x28x28 input, 10 classes). PyTorch runs eager,
#    channels_last (convnets only) and torch.compile (PyTorch 2.x), with its fused
#    SGD where it has one; the best mode is the one compared against. A PyTorch that
#    does its GEMMs in OpenBLAS (Debian's 1.13) runs again with
#    OPENBLAS_CORETYPE=SKYLAKEX when the CPU has AVX-512: OpenBLAS 0.3.21 does not
#    recognise newer CPUs and falls back to a generic kernel.
#    Language models, GPT_MODELS (gpt-mini, gpt2-124m), on random tokens with an
#    AdamW step, SEQ_LEN tokens per sample, GPT_BATCH samples:
#      optimlab bench train --model M --seq-len T --batch-size B ... --json
#      bench/torch_gpt.py   --model M --seq-len T ... --mode eager|compile --json
# 2. One optimizer step on P parameters in T equal tensors (SGD momentum 0.9,
#    weight decay 5e-4; AdamW weight decay 0.01):
#      optimlab bench optimizer --optimizer O --params P --tensors T --json
#      bench/torch_optim.py --optimizer O --params P --tensors T --impl foreach|fused --json
# Every run is repeated REPS times, the variants interleaved (A B C A B C ...) so that
# a busy spell of a shared machine hits them alike; the table shows the median over
# repetitions of each run's median step time, and the spread (min-max).
#
# usage: bench/compare.sh [path/to/optimlab]
# environment: TORCH_PYTHON (the python with torch; default: $VIRTUAL_ENV/bin/python,
#   then ~/venv-torch/bin/python, then /usr/bin/python3, the first that imports torch;
#   PYTHON is accepted as an older name), BATCH=128 STEPS=20 WARMUP=3 THREADS=2 REPS=3
#   MODELS="resnet20 mlp" MODES="eager channels_last compile" OPTIMIZERS="sgd adamw"
#   OPT_PARAMS=10000000 OPT_TENSORS=10 OPT_STEPS=20
#   GPT_MODELS="gpt-mini gpt2-124m" SEQ_LEN=256 GPT_BATCH=4 GPT_STEPS=5 GPT_WARMUP=1 (GPT_MODELS= skips them;
#   gpt2-124m takes minutes per run on 2 cores)
# A PyTorch 2.x from PyPI: python3 -m venv ~/venv-torch && ~/venv-torch/bin/pip install torch numpy
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
OL=${1:-$here/../build/optimlab}
BATCH=${BATCH:-128}
STEPS=${STEPS:-20}
WARMUP=${WARMUP:-3}
THREADS=${THREADS:-2}
REPS=${REPS:-3}
MODELS=${MODELS-resnet20 mlp}
MODES=${MODES:-eager channels_last compile}
OPTIMIZERS=${OPTIMIZERS-sgd adamw}
OPT_PARAMS=${OPT_PARAMS:-10000000}
OPT_TENSORS=${OPT_TENSORS:-10}
OPT_STEPS=${OPT_STEPS:-20}
GPT_MODELS=${GPT_MODELS-gpt-mini gpt2-124m}
SEQ_LEN=${SEQ_LEN:-256}
GPT_BATCH=${GPT_BATCH:-4}
GPT_STEPS=${GPT_STEPS:-5}
GPT_WARMUP=${GPT_WARMUP:-1}
[ -x "$OL" ] || { echo "compare.sh: no optimlab binary at $OL (build first)" >&2; exit 2; }
PY=
for c in "${TORCH_PYTHON:-}" "${PYTHON:-}" "${VIRTUAL_ENV:+$VIRTUAL_ENV/bin/python}" "$HOME/venv-torch/bin/python" \
    /usr/bin/python3; do
    if [ -n "$c" ] && "$c" -c 'import torch' 2>/dev/null; then
        PY=$c
        break
    fi
    if [ -n "$c" ] && [ "$c" = "${TORCH_PYTHON:-}" ]; then
        echo "compare.sh: TORCH_PYTHON=$c cannot import torch" >&2
        exit 2
    fi
done
[ -n "$PY" ] || { echo "compare.sh: no python with torch found (set TORCH_PYTHON)" >&2; exit 2; }
torch_major=$("$PY" -c 'import torch; print(torch.__version__.split(".")[0])')
echo "PyTorch: $("$PY" -c 'import torch; print(torch.__version__)') from $PY" >&2
avx512=0
grep -qw avx512f /proc/cpuinfo && avx512=1
common=(--batch-size "$BATCH" --steps "$STEPS" --warmup "$WARMUP" --threads "$THREADS" --input 1x28x28)

results=$(mktemp)
trap 'rm -f "$results"' EXIT
tag() { jq -c --arg v "$1" --argjson r "$2" '. + {variant: $v, rep: $r}' >>"$results"; }
for m in $MODELS; do
    modes=()
    for mode in $MODES; do
        [ "$mode" = channels_last ] && [ "$m" = mlp ] && continue # no convolutions: same as eager
        [ "$mode" = compile ] && [ "$torch_major" -lt 2 ] && continue
        modes+=("$mode")
    done
    blas=$("$PY" -c 'import torch; print(int(torch.__config__.show().find("BLAS_INFO=open") >= 0))')
    for ((r = 1; r <= REPS; r++)); do
        echo "$m, repetition $r/$REPS: optimlab ..." >&2
        "$OL" bench train --model "$m" "${common[@]}" --json | tag optimlab "$r"
        for mode in "${modes[@]}"; do
            echo "$m, repetition $r/$REPS: pytorch $mode ..." >&2
            env -u OPENBLAS_CORETYPE "$PY" "$here/torch_train.py" --model "$m" "${common[@]}" --mode "$mode" --json |
                tag "torch $mode" "$r"
            if [ "$avx512" -eq 1 ] && [ "$blas" = 1 ]; then
                OPENBLAS_CORETYPE=SKYLAKEX "$PY" "$here/torch_train.py" --model "$m" "${common[@]}" --mode "$mode" \
                    --json | tag "torch $mode SKYLAKEX" "$r"
            fi
        done
    done
done
for m in $GPT_MODELS; do
    gcommon=(--seq-len "$SEQ_LEN" --batch-size "$GPT_BATCH" --steps "$GPT_STEPS" --warmup "$GPT_WARMUP" --threads "$THREADS")
    modes=()
    for mode in $MODES; do
        [ "$mode" = channels_last ] && continue # no convolutions
        [ "$mode" = compile ] && [ "$torch_major" -lt 2 ] && continue
        modes+=("$mode")
    done
    for ((r = 1; r <= REPS; r++)); do
        echo "$m, repetition $r/$REPS: optimlab ..." >&2
        "$OL" bench train --model "$m" "${gcommon[@]}" --json | tag optimlab "$r"
        for mode in "${modes[@]}"; do
            echo "$m, repetition $r/$REPS: pytorch $mode ..." >&2
            "$PY" "$here/torch_gpt.py" --model "$m" "${gcommon[@]}" --mode "$mode" --json | tag "torch $mode" "$r"
        done
    done
done
for o in $OPTIMIZERS; do
    ocommon=(--params "$OPT_PARAMS" --tensors "$OPT_TENSORS" --threads "$THREADS" --steps "$OPT_STEPS" --warmup "$WARMUP")
    impls="foreach"
    [ "$torch_major" -ge 2 ] && impls="foreach fused"
    for ((r = 1; r <= REPS; r++)); do
        echo "$o step, repetition $r/$REPS ..." >&2
        "$OL" bench optimizer --optimizer "$o" "${ocommon[@]}" --json | tag optimlab "$r"
        for impl in $impls; do
            "$PY" "$here/torch_optim.py" --optimizer "$o" "${ocommon[@]}" --impl "$impl" --json | tag "torch $impl" "$r"
        done
    done
done

"$PY" - "$results" "$avx512" "$WARMUP" "$REPS" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
avx512, warmup, reps = sys.argv[2] == "1", sys.argv[3], int(sys.argv[4])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
load = open("/proc/loadavg").read().split()[:3]
torch_v = next((r["torch"] for r in rows if "torch" in r), "?")
print("CPU: %s (AVX-512: %s), %s threads; PyTorch %s; %d repetitions, interleaved; load average at the end: %s"
      % (cpu, "yes" if avx512 else "no", rows[0]["threads"] if rows else "?", torch_v, reps, " ".join(load)))


def summary(runs, key):
    v = sorted(r[key] for r in runs)
    return statistics.median(v), v[0], v[-1]


train = [r for r in rows if r.get("benchmark") == "train" or r.get("framework") == "pytorch" and "model" in r]
if train:
    r0 = train[0]
    print("\nTraining step: %d timed steps after the warm-up steps per run (language models: samples/s is"
          " tokens/s)" % r0["steps"])
    print("%-9s %-30s %12s %24s %9s %10s" % ("model", "run", "samples/s", "median step (range)", "optimlab",
                                            "peak RSS"))
    for m in dict.fromkeys(r["model"] for r in train):
        runs = {}
        for r in train:
            if r["model"] == m:
                runs.setdefault(r["variant"], []).append(r)
        ours = summary(runs["optimlab"], "median_ms_per_step")[0] if "optimlab" in runs else float("nan")
        best = None
        for v, rs in runs.items():
            med, lo, hi = summary(rs, "median_ms_per_step")
            name = v if v == "optimlab" else "pytorch " + v[6:]
            if v != "optimlab" and (best is None or med < best[1]):
                best = (name, med, rs)
            per = rs[0]["batch_size"] * (rs[0].get("seq_len") or 1)  # samples, or tokens
            print("%-9s %-30s %12.1f %24s %8.2fx %7.1f MB" % (
                m, name, per * 1e3 / med, "%.2f ms (%.2f-%.2f)" % (med, lo, hi), med / ours,
                max(r["peak_rss_mb"] for r in rs)))
            if v != "optimlab" and "optimlab" in runs and rs[0]["params"] != runs["optimlab"][0]["params"]:
                print("  WARNING: %s has %d parameters, optimlab %d: not the same network"
                      % (name, rs[0]["params"], runs["optimlab"][0]["params"]))
        if best and "optimlab" in runs:
            print("%-9s optimlab = %.2fx the best PyTorch (%s); kernels: %s" % (
                "", best[1] / ours, best[0], runs["optimlab"][0]["kernels"]))
opt = [r for r in rows if r.get("benchmark") == "optimizer" or "impl" in r]
if opt:
    r0 = opt[0]
    print("\nOptimizer step: %d parameters in %d tensors, median of %d steps per run"
          % (r0["params"], r0["tensors"], r0["steps"]))
    print("%-9s %-30s %24s %9s %9s" % ("optimizer", "run", "median step (range)", "GB/s", "optimlab"))
    for o in dict.fromkeys(r["optimizer"] for r in opt):
        runs = {}
        for r in opt:
            if r["optimizer"] == o:
                runs.setdefault(r["variant"], []).append(r)
        ours = summary(runs["optimlab"], "ms_per_step")[0] if "optimlab" in runs else float("nan")
        best = None
        for v, rs in runs.items():
            med, lo, hi = summary(rs, "ms_per_step")
            name = v if v == "optimlab" else "pytorch " + v[6:]
            if v != "optimlab" and (best is None or med < best[1]):
                best = (name, med)
            extra = ""
            if v == "optimlab":
                extra = "  (bandwidth probe %.1f GB/s)" % statistics.median(r["stream_gbytes_per_s"] for r in rs)
            print("%-9s %-30s %24s %9.1f %8.2fx%s" % (
                o, name, "%.2f ms (%.2f-%.2f)" % (med, lo, hi), rs[0]["bytes_per_param"] * rs[0]["params"] / med / 1e6,
                med / ours, extra))
        if best and "optimlab" in runs:
            print("%-9s optimlab = %.2fx the best PyTorch (%s)" % ("", best[1] / ours, best[0]))
print()
print("'optimlab': that run's median step time divided by optimlab's (above 1: optimlab is faster). The median")
print("step resists other processes on a shared machine; a wide range means the runs were disturbed.")
print("Peak RSS includes the Python interpreter and torch for PyTorch.")
EOF
