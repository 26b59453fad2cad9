#!/usr/bin/env bash
# A plugin optimizer under data parallelism: every rank of mpirun -np 2 loads
# --plugin (rank 1 would not know the optimizer otherwise), and the Lion
# plugin gives bitwise the parameters of the built-in Lion in the same
# 2-rank run with --deterministic-reduce. Usage: test_plugin_mpi.sh path/to/optimlab
set -uo pipefail
bin=$1
src=$(cd "$(dirname "$0")/../.." && pwd)
. "$(dirname "$0")/mpi_env.sh" plugin-mpi
# the CLI exports the library's symbols: a plugin needs only the headers
${CC:-cc} -shared -fPIC -I"$src/include" -ffp-contract=off -fopenmp "$src/examples/lion_plugin.c" \
  -o "$tmp/lion.so" || { echo "FAIL: building the plugin"; exit 1; }
common=(--model mlp --widths 128,64 --dataset synthetic --synthetic-size 2048 --batch-size 64 --steps 20 --epochs 1
        --quiet --threads 1 --lr 1e-3 --weight-decay 0.1 --schedule cosine --evals-per-epoch 1 --checkpoint-every 0
        --check-replicas --deterministic-reduce)
"${mpi[@]}" -np 2 "$bin" train "${common[@]}" --optimizer lion --out "$tmp/builtin" || { echo "FAIL: built-in"; fail=1; }
"${mpi[@]}" -np 2 "$bin" train "${common[@]}" --plugin "$tmp/lion.so" --optimizer my-lion --out "$tmp/plugin" ||
  { echo "FAIL: mpirun -np 2 with --plugin"; fail=1; }
"$py" - "$tmp/builtin" "$tmp/plugin" <<'PY' || fail=1
import glob, os, struct, sys
def data(d):
    p = sorted(glob.glob(os.path.join(d, "ckpt-*.safetensors")))[-1]
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]
    return os.path.basename(p), b[8 + n:]
(na, a), (nb, b) = data(sys.argv[1]), data(sys.argv[2])
ok = na == nb and a == b
print(("ok  " if ok else "FAIL") + f" mpirun -np 2: plugin Lion vs built-in Lion, {na} vs {nb}, "
      f"tensor bytes {'identical' if ok else 'DIFFER'}")
sys.exit(0 if ok else 1)
PY
exit $fail
