#!/usr/bin/env bash
# Data-parallel equivalence for a GPT on byte-level text: mpirun -np 2 with
# global batch B gives the parameters of one process with batch B within
# float-summation tolerance; after one step with --deterministic-reduce, those
# of one process accumulating the same shards (--micro-batch-size B/2) bitwise
# for every tensor but the embeddings (their backward adds row by row into the
# gradient, so one process's second micro-batch continues the first one's
# sums where the ranks' sums are added whole: a float rounding apart); a
# deterministic run repeats bitwise. Every rank checks after every step that
# the replicas agree (--check-replicas).
# Usage: test_lm_mpi.sh path/to/optimlab
set -uo pipefail
bin=$1
. "$(dirname "$0")/mpi_env.sh" lm-mpi
head -c 40000 "$(dirname "$0")"/../../README.md > "$tmp/text.txt"
common=(--model gpt --n-layer 2 --n-head 2 --n-embd 32 --seq-len 32 --dataset text --text-file "$tmp/text.txt"
        --batch-size 16 --steps 12 --epochs 1 --quiet --threads 1 --optimizer sgd --lr 0.3 --momentum 0.9
        --schedule cosine --checkpoint-every 0)
"$bin" train "${common[@]}" --out "$tmp/one" >/dev/null || { echo "FAIL: single process"; fail=1; }
"${mpi[@]}" -np 2 "$bin" train "${common[@]}" --check-replicas --out "$tmp/two" >/dev/null \
  || { echo "FAIL: mpirun -np 2"; fail=1; }
compare_params "$tmp/one" "$tmp/two" 1e-4 "gpt: 1 process vs mpirun -np 2, batch 16"
# one step: the deterministic reduction is the single-process accumulation (the embeddings aside)
"$bin" train "${common[@]}" --steps 1 --micro-batch-size 8 --out "$tmp/one-m8" >/dev/null \
  || { echo "FAIL: micro-batches"; fail=1; }
"${mpi[@]}" -np 2 "$bin" train "${common[@]}" --steps 1 --check-replicas --deterministic-reduce --out "$tmp/two-d" \
  >/dev/null || { echo "FAIL: mpirun -np 2 --deterministic-reduce"; fail=1; }
compare_params "$tmp/one-m8" "$tmp/two-d" exact "gpt, 1 step: 1 process with micro-batches of 8 vs mpirun -np 2 --deterministic-reduce" \
  transformer.wte.weight,transformer.wpe.weight
# twelve steps: --deterministic-reduce repeats bitwise
for r in a b; do
  "${mpi[@]}" -np 2 "$bin" train "${common[@]}" --deterministic-reduce --out "$tmp/det-$r" >/dev/null \
    || { echo "FAIL: mpirun -np 2 --deterministic-reduce ($r)"; fail=1; }
done
compare_params "$tmp/det-a" "$tmp/det-b" exact "gpt: two mpirun -np 2 --deterministic-reduce runs"
exit $fail
