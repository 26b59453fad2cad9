#!/usr/bin/env bash
# optimlab landscape: the centre of a 2-D grid and the two ends of an
# interpolation equal `optimlab eval` of the checkpoints (bitwise); the grid
# does not depend on the number of replicas; a run killed with SIGKILL and
# restarted with the same command finishes the same grid bit for bit, without
# recomputing the points it had saved; mpirun -np 2 gives the grid of one
# process; other settings in the same --out are refused; bad input exits 2
# with one line and creates nothing. The plots are written (SVG, VTK).
# usage: landscape_cli.sh path/to/optimlab
set -u
bin=$1
py=/usr/bin/python3; [ -x $py ] || py=python3
tmp=$(mktemp -d)
trap 'kill $bg 2>/dev/null; rm -rf "$tmp"' EXIT
bg=
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
run=$tmp/run
timeout 300 "$bin" train --model resnet8 --train-subset 1024 --test-subset 128 --epochs 1 --batch-size 64 \
    --threads 1 --quiet --checkpoint-every 4 --keep-last 0 --out "$run" >/dev/null || { echo "FAIL: training"; exit 1; }
val() { # json-file key index -> the value (repr)
    "$py" -c 'import json,sys; d=json.load(open(sys.argv[1])); v=d[sys.argv[2]]; print(repr(v[int(sys.argv[3])]) if isinstance(v, list) else repr(v))' "$@"
}
evalv() { # checkpoint set field subset-option -> value
    timeout 120 "$bin" eval "$1" --set "$2" $4 --threads 1 --json | "$py" -c 'import json,sys; print(repr(json.load(sys.stdin)[sys.argv[1]][sys.argv[2]]))' "$2" "$3"
}
same_grid() { # a.json b.json label
    "$py" - "$@" <<'PY'
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
keys = [k for k in a if k.endswith("_loss") or k.endswith("_acc")] + ["x", "y", "done", "complete"]
ok = all(a.get(k) == b.get(k) for k in keys) and a["complete"]
print(("ok  " if ok else "FAIL") + f" {sys.argv[3]}: {len(a['done'])} points {'identical' if ok else 'DIFFER'}")
sys.exit(0 if ok else 1)
PY
}
# 2-D: the centre is the checkpoint
common=(--grid 5x5 --train-subset 256 --set train)
timeout 300 "$bin" landscape "$run" "${common[@]}" --threads 2 --vtk --out "$tmp/g2" >"$tmp/out" || fail "2d run: $(cat "$tmp/out")"
c=$(val "$tmp/g2/landscape.json" train_loss 12); e=$(evalv "$run" train loss "--train-subset 256")
[ "$c" = "$e" ] && echo "ok   2d centre $c = eval $e" || fail "2d centre $c != eval $e"
for f in landscape.csv train_loss.svg train_acc.svg surface.vtk; do
    [ -s "$tmp/g2/$f" ] || fail "2d: $f missing"
done
grep -q "DATASET STRUCTURED_GRID" "$tmp/g2/surface.vtk" && grep -q "^DIMENSIONS 5 5 1" "$tmp/g2/surface.vtk" || fail "vtk header"
# one replica: the same grid
timeout 300 "$bin" landscape "$run" "${common[@]}" --threads 1 --out "$tmp/g1" >/dev/null || fail "2d --threads 1"
same_grid "$tmp/g1/landscape.json" "$tmp/g2/landscape.json" "--threads 1 vs 2" || fail "threads"
# 1-D interpolation: the ends are the two checkpoints, train and test
first=$run/ckpt-00000004.safetensors
timeout 300 "$bin" landscape "$run" --mode 1d --to "$first" --grid 5 --range 0:1 --set train,test --train-subset 256 \
    --threads 2 --out "$tmp/l1" >/dev/null || fail "1d run"
for s in train test; do
    for k in loss acc; do
        a=$(val "$tmp/l1/landscape.json" ${s}_$k 0); b=$(val "$tmp/l1/landscape.json" ${s}_$k 4)
        ea=$(evalv "$run" $s $k "--train-subset 256"); eb=$(evalv "$first" $s $k "--train-subset 256")
        [ "$a" = "$ea" ] && [ "$b" = "$eb" ] && echo "ok   1d ends $s $k: $a = eval final, $b = eval step 4" \
            || fail "1d ends $s $k: $a vs $ea, $b vs $eb"
    done
done
[ -s "$tmp/l1/loss.svg" ] && [ -s "$tmp/l1/acc.svg" ] || fail "1d plots missing"
# resume after SIGKILL: the same grid, the saved points not recomputed
big=(--grid 9x9 --train-subset 1024 --threads 1 --range -0.5:0.5)
timeout 600 "$bin" landscape "$run" "${big[@]}" --out "$tmp/ref" >/dev/null || fail "reference grid"
"$bin" landscape "$run" "${big[@]}" --out "$tmp/res" >/dev/null 2>&1 &
bg=$!
for _ in $(seq 1 600); do
    [ -s "$tmp/res/landscape.json" ] && [ "$(val "$tmp/res/landscape.json" complete)" = "False" ] && break
    sleep 0.05
done
kill -9 $bg 2>/dev/null; wait $bg 2>/dev/null; bg=
partial=$("$py" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sum(d["done"]), d["complete"])' "$tmp/res/landscape.json")
echo "     killed with ${partial% *} points saved"
case "$partial" in *False) ;; *) fail "the run was not interrupted ($partial)";; esac
timeout 600 "$bin" landscape "$run" "${big[@]}" --out "$tmp/res" >"$tmp/out" || fail "resume"
n=${partial% *}
grep -q "($((81 - n)) computed now" "$tmp/out" && echo "ok   resumed: $((81 - n)) points computed" \
    || fail "resume recomputed: $(head -1 "$tmp/out") (expected $((81 - n)))"
same_grid "$tmp/ref/landscape.json" "$tmp/res/landscape.json" "resumed after kill -9 vs uninterrupted" || fail "resume grid"
# other settings in the same directory are refused; --overwrite replaces
timeout 60 "$bin" landscape "$run" "${big[@]}" --seed 1 --out "$tmp/res" >/dev/null 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "other settings" "$tmp/err" && echo "ok   other settings refused" || fail "settings: $(cat "$tmp/err")"
# MPI: two ranks, the grid of one process
if command -v mpirun >/dev/null; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
    # Open MPI leaks in MPI_Init/MPI_Finalize: LeakSanitizer would make every rank exit 1 (as mpi_env.sh)
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 timeout 600 mpirun --oversubscribe -np 2 "$bin" landscape "$run" "${big[@]}" --out "$tmp/mpi" >"$tmp/out" 2>&1 \
        || fail "mpirun -np 2: $(tail -3 "$tmp/out")"
    grep -q "1 replicas x 2 ranks" "$tmp/out" || fail "mpirun: not 2 ranks: $(head -1 "$tmp/out")"
    same_grid "$tmp/ref/landscape.json" "$tmp/mpi/landscape.json" "mpirun -np 2 vs one process" || fail "mpi grid"
else
    echo "skip mpirun (not installed)"
fi
# bad input: exit 2, one line, no output directory
bad() { # expected-message-part, args...
    local want=$1; shift
    timeout 60 "$bin" landscape "$@" --out "$tmp/bad" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ $rc -eq 2 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q -- "$want" "$tmp/err" && [ ! -e "$tmp/bad" ]; then
        echo "ok   exit 2: $(cat "$tmp/err")"
    else
        fail "landscape $* -> exit $rc: $(cat "$tmp/err")"
    fi
}
mkdir -p "$tmp/empty" "$tmp/one"
cp "$first" "$tmp/one/"
timeout 120 "$bin" train --model mlp --widths 16 --train-subset 128 --test-subset 64 --epochs 1 --threads 1 --quiet \
    --out "$tmp/mlp" >/dev/null || fail "mlp training"
bad "no checkpoint" "$tmp/empty"
bad "different model" "$run" --mode 1d --to "$tmp/mlp"
bad "grid" "$run" --grid 0x5
bad "grid" "$run" --grid 5
bad "MIN must be smaller" "$run" --range 1:-1
bad "MIN must be smaller" "$run" --range 0.5:0.5
bad "with --mode 2d" "$run" --mode 1d --directions pca
bad "with --mode 1d" "$run" --to "$first"
bad "at least 3" "$tmp/one" --directions pca
bad "unknown mode" "$run" --mode 3d
# --out naming a file: refused before any point is evaluated, one line naming it (it used to pass
# mkdir's EEXIST and fail at the first write of a temporary file)
touch "$tmp/blocker"
timeout 60 "$bin" landscape "$run" --mode 1d --grid 3 --train-subset 64 --set train --threads 1 \
    --out "$tmp/blocker" >/dev/null 2>"$tmp/err"; st=$?
if [ $st -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "blocker: a file of that name is in the way" "$tmp/err"; then
    echo "ok   --out on a file: $(cat "$tmp/err")"
else
    fail "--out on a file -> exit $st: $(cat "$tmp/err")"
fi
[ $fails -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all landscape checks passed"
