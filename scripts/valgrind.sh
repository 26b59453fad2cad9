#!/usr/bin/env bash
# Short training runs under valgrind memcheck; any error or definite leak fails.
# Usage: scripts/valgrind.sh path/to/optimlab (built with OL_NATIVE=OFF)
set -uo pipefail
bin=$1
tmp=$(mktemp -d /tmp/optimlab-vg-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
vg=(valgrind --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite -q)
export OPENBLAS_CORETYPE=Haswell
fail=0
run() {
  local name=$1; shift
  if "${vg[@]}" "$bin" "$@" >"$tmp/$name.log" 2>&1; then
    echo "valgrind $name: clean"
  else
    echo "valgrind $name: FAILED"; tail -40 "$tmp/$name.log"; fail=1
  fi
}
common=(--dataset synthetic --synthetic-size 32 --epochs 1 --batch-size 16 --threads 2 --quiet)
run resnet8-ref train --model resnet8 --backend ref "${common[@]}" --augment crop,flip --crop-pad 2 \
    --checkpoint-every 1 --out "$tmp/r1"
run resnet8-resume train --resume "$tmp/r1" --epochs 2 --quiet
run mlp-blas train --model mlp --widths 64 --backend blas "${common[@]}" --out "$tmp/r2"
run export export "$tmp/r1" --out "$tmp/w.safetensors"
exit $fail
