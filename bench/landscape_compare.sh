#!/usr/bin/env bash
# optimlab landscape against the reference's method in PyTorch (bench/torch_landscape.py)
# on the same 2-D grid of the same ResNet-20 checkpoint, same images, same batch size.
# usage: TORCH_PYTHON=~/venv-torch/bin/python bench/landscape_compare.sh RUN_DIR [GRID] [SUBSET] [THREADS...]
# Prints, per tool and thread count: wall seconds, CPU seconds (user+sys), points/s, centre loss;
# with mpirun, optimlab on 2 ranks x 1 thread too. Run it on a quiet machine: wall times under load
# measure the load (the CPU seconds less so).
set -eu
run=$1; grid=${2:-11x11}; subset=${3:-2000}; shift $(( $# < 3 ? $# : 3 )); threads=("${@:-1 2}")
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${OPTIMLAB:-$here/build/optimlab}
py=${TORCH_PYTHON:-python3}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$bin" export "$run" --out "$tmp/w.safetensors" >/dev/null
n=$(( ${grid%x*} * ${grid#*x} ))
row() { printf '%-28s %8s %8s %10s %s\n' "$@"; }
row tool wall_s cpu_s points/s "centre loss"
for t in ${threads[*]}; do
    /usr/bin/time -f "%e %U %S" -o "$tmp/time" "$bin" landscape "$run" --grid "$grid" --train-subset "$subset" \
        --batch-size 128 --threads "$t" --out "$tmp/ol$t" >"$tmp/out"
    read -r w u s <"$tmp/time"
    row "optimlab --threads $t" "$w" "$(echo "$u + $s" | bc)" "$(echo "scale=3; $n / $w" | bc)" \
        "$(grep -o 'checkpoint: [0-9.]*' "$tmp/out" | cut -d' ' -f2) (load $(cut -d' ' -f1 /proc/loadavg))"
    /usr/bin/time -f "%e %U %S" -o "$tmp/time" "$py" "$here/bench/torch_landscape.py" --weights "$tmp/w.safetensors" \
        --grid "$grid" --train-subset "$subset" --batch-size 128 --threads "$t" --json >"$tmp/out"
    read -r w u s <"$tmp/time"
    row "PyTorch $($py -c 'import torch; print(torch.__version__.split("+")[0])') threads $t" "$w" \
        "$(echo "$u + $s" | bc)" "$(echo "scale=3; $n / $w" | bc)" \
        "$("$py" -c 'import json,sys; print("%.6f" % json.load(sys.stdin)["centre_loss"])' <"$tmp/out") (load $(cut -d' ' -f1 /proc/loadavg))"
done
if command -v mpirun >/dev/null; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    /usr/bin/time -f "%e %U %S" -o "$tmp/time" mpirun --oversubscribe -np 2 "$bin" landscape "$run" --grid "$grid" \
        --train-subset "$subset" --batch-size 128 --threads 1 --out "$tmp/mpi" >"$tmp/out"
    read -r w u s <"$tmp/time"
    row "optimlab mpirun -np 2 x 1" "$w" "$(echo "$u + $s" | bc)" "$(echo "scale=3; $n / $w" | bc)" \
        "$(grep -o 'checkpoint: [0-9.]*' "$tmp/out" | cut -d' ' -f2) (load $(cut -d' ' -f1 /proc/loadavg))"
fi
