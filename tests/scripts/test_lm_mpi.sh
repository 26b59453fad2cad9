#!/usr/bin/env bash
# Data-parallel equivalence for a GPT on byte-level text: mpirun -np 2 with
# global batch B gives the parameters of one process with batch B within
# float-summation tolerance; with --deterministic-reduce, those of one process
# accumulating the same shards (--micro-batch-size B/2) bitwise for every
# tensor, the embeddings included (their backward used to add position by
# position into the accumulated gradient, so a second micro-batch continued
# the first one's sums where the ranks' sums are added whole); a deterministic
# run repeats bitwise. Every rank checks after every step that the replicas
# agree (--check-replicas).
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
# the deterministic reduction is the single-process accumulation, bitwise, every parameter
"$bin" train "${common[@]}" --micro-batch-size 8 --out "$tmp/one-m8" >/dev/null \
  || { echo "FAIL: micro-batches"; fail=1; }
for r in a b; do
  "${mpi[@]}" -np 2 "$bin" train "${common[@]}" --check-replicas --deterministic-reduce --out "$tmp/det-$r" \
    >/dev/null || { echo "FAIL: mpirun -np 2 --deterministic-reduce ($r)"; fail=1; }
done
compare_params "$tmp/one-m8" "$tmp/det-a" exact "gpt: 1 process with micro-batches of 8 vs mpirun -np 2 --deterministic-reduce"
compare_params "$tmp/det-a" "$tmp/det-b" exact "gpt: two mpirun -np 2 --deterministic-reduce runs"
# micro-batches of 8 x 64 = 512 positions: the matrix products of the linear layers' and the LM
# head's weight gradients sum over more positions than one block of the GEMM (they used to add
# block by block into the accumulated gradient)
long=(--model gpt --n-layer 2 --n-head 2 --n-embd 32 --seq-len 64 --dataset text --text-file "$tmp/text.txt"
      --batch-size 16 --steps 4 --epochs 1 --quiet --threads 1 --optimizer sgd --lr 0.3 --momentum 0.9
      --schedule cosine --checkpoint-every 0)
"$bin" train "${long[@]}" --micro-batch-size 8 --out "$tmp/long-m8" >/dev/null || { echo "FAIL: micro-batches, T 64"; fail=1; }
"${mpi[@]}" -np 2 "$bin" train "${long[@]}" --deterministic-reduce --out "$tmp/long-det" >/dev/null \
  || { echo "FAIL: mpirun -np 2 --deterministic-reduce, T 64"; fail=1; }
compare_params "$tmp/long-m8" "$tmp/long-det" exact "gpt: 512 positions per micro-batch, 1 process vs --deterministic-reduce"
# docs/language-model.md's table 3 script runs end to end (2 steps per row instead of 100)
if STEPS=2 OUT="$tmp/lmdist" MPIRUN="${mpi[*]}" "$(dirname "$0")/../../experiments/lm-distributed.sh" "$bin" \
    --test-subset 8 >"$tmp/lmdist.txt" 2>&1 && [ "$(grep -c '^| [ePD]' "$tmp/lmdist/table.md")" -eq 7 ]; then
  echo "ok   experiments/lm-distributed.sh: the 7 rows of table 3 (2 steps each)"
else
  echo "FAIL experiments/lm-distributed.sh: $(tail -3 "$tmp/lmdist.txt")"; fail=1
fi
exit $fail
