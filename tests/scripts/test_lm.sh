#!/usr/bin/env bash
# Language models from the CLI: a tiny GPT trains on byte-level text and on an
# llm.c token file; the epoch records carry perplexity and bits per byte, the
# step records tokens/s; a run stopped and resumed ends bitwise where the
# straight run ends; a learning rate far too high stops with exit 3; sampling
# with a seed is deterministic; bad input is one line, exit 2, nothing written.
# Usage: test_lm.sh path/to/optimlab
set -uo pipefail
bin=$1
. "$(dirname "$0")/lib.sh" lm

# a small English text: this repository's documentation, in a fixed order
cat "$(dirname "$0")"/../../README.md "$(dirname "$0")"/../../docs/checkpoints.md | head -c 60000 > "$tmp/text.txt"
gpt=(--model gpt --n-layer 2 --n-head 2 --n-embd 32 --seq-len 32 --dataset text --text-file "$tmp/text.txt"
     --batch-size 16 --threads 1 --quiet)

# 1. training: the loss falls, the records carry the language-model metrics
"$bin" train "${gpt[@]}" --steps 40 --epochs 0 --optimizer adamw --lr 3e-3 --log-every 10 --out "$tmp/run" \
  >/dev/null || bad "training a GPT on text"
"$py" - "$tmp/run/metrics.jsonl" <<'PY' && ok "train: loss falls; test_ppl, test_bpb, tokens_per_s recorded" || fail=1
import json, math, sys
rec = [json.loads(l) for l in open(sys.argv[1])]
steps = [r for r in rec if r["type"] == "step"]
ev = [r for r in rec if r["type"] in ("epoch", "eval")][-1]
ok = steps[-1]["loss"] < steps[0]["loss"] < math.log(256) + 0.5
ok &= abs(ev["test_ppl"] - math.exp(ev["test_loss"])) < 1e-9 * ev["test_ppl"]
ok &= abs(ev["test_bpb"] - ev["test_loss"] / math.log(2)) < 1e-12 and ev["test_bits_per_token"] == ev["test_bpb"]
ok &= all(abs(s["tokens_per_s"] - 32 * s["samples_per_s"]) < 1e-6 * s["tokens_per_s"] for s in steps)
if not ok:
    print("FAIL metrics:", steps[0], steps[-1], ev)
sys.exit(0 if ok else 1)
PY

# optimlab eval recomputes the run's last validation loss from its checkpoint, with perplexity and bits per byte
"$bin" eval "$tmp/run" --set test --json --threads 1 > "$tmp/eval.json" || bad "eval of a language-model run"
"$py" - "$tmp/eval.json" "$tmp/run/metrics.jsonl" <<'PY' && ok "eval: the run's validation loss, ppl and bpb" || fail=1
import json, math, sys
e = json.load(open(sys.argv[1]))["test"]
last = [json.loads(l) for l in open(sys.argv[2]) if '"epoch"' in l and '"test_loss"' in l][-1]
ok = abs(e["loss"] - last["test_loss"]) < 1e-9 and abs(e["ppl"] - math.exp(e["loss"])) < 1e-9 * e["ppl"]
ok &= abs(e["bpb"] - e["loss"] / math.log(2)) < 1e-12
if not ok:
    print("FAIL eval:", e, last["test_loss"])
sys.exit(0 if ok else 1)
PY

# 2. exact resume: stopped after 7 steps (mid-epoch), resumed; micro-batches and AdamW state
resume_case adamw-cosine 7 "${gpt[@]}" --train-subset 64 --test-subset 16 --epochs 2 --evals-per-epoch 2 \
  --log-every 1 --optimizer adamw --lr 3e-3 --weight-decay 0.1 --schedule cosine --warmup-steps 3 --micro-batch-size 8
resume_case sgd-clip 7 "${gpt[@]}" --train-subset 64 --test-subset 16 --epochs 2 --log-every 1 --optimizer sgd \
  --lr 0.3 --momentum 0.9 --clip-grad-norm 1.0

# 3. divergence guard: a learning rate far too high ends with exit 3 and one line
"$bin" train "${gpt[@]}" --train-subset 128 --test-subset 16 --epochs 1 --optimizer sgd --lr 1e5 --out "$tmp/div" \
  >/dev/null 2>"$tmp/div.err"
st=$?
[ $st -eq 3 ] && [ "$(wc -l < "$tmp/div.err")" -eq 1 ] && ok "divergence guard: exit 3, $(cat "$tmp/div.err")" \
  || bad "divergence guard: exit $st, stderr: $(cat "$tmp/div.err")"

# 4. sampling: the same seed gives the same text; another seed another; greedy ignores the seed
s1=$("$bin" sample "$tmp/run" --prompt "The " --tokens 60 --temperature 0.8 --top-k 20 --seed 7 --threads 1)
s2=$("$bin" sample "$tmp/run" --prompt "The " --tokens 60 --temperature 0.8 --top-k 20 --seed 7 --threads 1)
s3=$("$bin" sample "$tmp/run" --prompt "The " --tokens 60 --temperature 0.8 --top-k 20 --seed 8 --threads 1)
g1=$("$bin" sample "$tmp/run" --prompt "The " --tokens 60 --temperature 0 --seed 1 --threads 1)
g2=$("$bin" sample "$tmp/run" --prompt "The " --tokens 60 --temperature 0 --seed 2 --threads 1)
long=$("$bin" sample "$tmp/run" --tokens 100 --seq-len 16 --seed 1 --threads 1 | wc -c)
[ "$s1" = "$s2" ] && [ "$s1" != "$s3" ] && [ "$g1" = "$g2" ] && [ "${s1:0:4}" = "The " ] && [ "$long" -eq 100 ] \
  && ok "sample: seeded draws repeat, seeds differ, greedy is seed-free, 100 tokens past a 16-token window" \
  || bad "sample: '$s1' / '$s2' / '$s3' / greedy '$g1' '$g2' / $long bytes"

# 5. llm.c token files: train, sample with --prompt-ids
"$py" - "$tmp" <<'PY'
import struct, sys, random
def write(path, toks, magic=20240520, version=1, count=None, cut=0):
    h = [0] * 256
    h[0], h[1], h[2] = magic, version, len(toks) if count is None else count
    body = struct.pack("<%dH" % len(toks), *toks)
    open(path, "wb").write(struct.pack("<256i", *h) + body[:len(body) - cut])
r = random.Random(1)
toks = [(i * 7 + r.randrange(3)) % 300 for i in range(4000)]
d = sys.argv[1]
write(d + "/train.bin", toks[:3500]); write(d + "/val.bin", toks[3500:])
write(d + "/magic.bin", toks[:100], magic=20240521)
write(d + "/version.bin", toks[:100], version=2)
write(d + "/trunc.bin", toks[:100], cut=2)
write(d + "/long.bin", toks[:100], count=90)
write(d + "/vocab.bin", toks[:99] + [60000])
PY
tok=(--model gpt --n-layer 1 --n-head 2 --n-embd 32 --seq-len 16 --dataset tokens --vocab-size 300 --batch-size 8
     --threads 1 --quiet)
"$bin" train "${tok[@]}" --train-bin "$tmp/train.bin" --val-bin "$tmp/val.bin" --epochs 1 --optimizer adamw \
  --lr 3e-3 --out "$tmp/tok" >/dev/null || bad "training on token files"
ids=$("$bin" sample "$tmp/tok" --prompt-ids 7,14,21 --tokens 5 --seed 1 --threads 1)
[ "$(echo $ids | wc -w)" -eq 5 ] && ! grep -q test_bpb "$tmp/tok/metrics.jsonl" && grep -q test_bits_per_token "$tmp/tok/metrics.jsonl" \
  && ok "token files: trained (bits per token, no bits per byte), sample ids: $ids" || bad "token files: sample '$ids'"

# 6. bad input: one line on stderr, exit 2, no run directory
: > "$tmp/empty.txt"
expect2() { # label, then the command
  local label=$1; shift
  rm -rf "$tmp/out"
  "$@" >/dev/null 2>"$tmp/err"
  local st=$?
  if [ $st -eq 2 ] && [ "$(wc -l < "$tmp/err")" -eq 1 ] && [ ! -e "$tmp/out" ]; then
    ok "$label: $(cat "$tmp/err")"
  else
    bad "$label: exit $st, $(wc -l < "$tmp/err") lines: $(head -c 300 "$tmp/err")"
  fi
}
tb() { "$bin" train "${tok[@]}" --train-bin "$1" --val-bin "$tmp/val.bin" --out "$tmp/out"; }
expect2 "empty text file" "$bin" train "${gpt[@]}" --text-file "$tmp/empty.txt" --out "$tmp/out"
expect2 "missing text file" "$bin" train "${gpt[@]}" --text-file "$tmp/nope.txt" --out "$tmp/out"
printf 'tiny' > "$tmp/tiny.txt"
expect2 "text too short for a window" "$bin" train "${gpt[@]}" --text-file "$tmp/tiny.txt" --out "$tmp/out"
expect2 "token file: wrong magic" tb "$tmp/magic.bin"
expect2 "token file: wrong version" tb "$tmp/version.bin"
expect2 "token file: truncated body" tb "$tmp/trunc.bin"
expect2 "token file: more tokens than declared" tb "$tmp/long.bin"
expect2 "token file: id beyond the vocabulary" tb "$tmp/vocab.bin"
expect2 "token file: missing" tb "$tmp/nope.bin"
expect2 "tokens without --val-bin" "$bin" train "${tok[@]}" --train-bin "$tmp/train.bin" --out "$tmp/out"
expect2 "gpt on images" "$bin" train --model gpt-mini --dataset synthetic --out "$tmp/out"
expect2 "text for an image model" "$bin" train --model mlp --dataset text --text-file "$tmp/text.txt" --out "$tmp/out"
expect2 "--n-layer for a ResNet" "$bin" train --model resnet20 --n-layer 2 --out "$tmp/out"
expect2 "--width for a GPT" "$bin" train "${gpt[@]}" --width 2 --out "$tmp/out"
expect2 "--augment for text" "$bin" train "${gpt[@]}" --augment crop --out "$tmp/out"
expect2 "--n-head not dividing --n-embd" "$bin" train "${gpt[@]}" --n-head 3 --out "$tmp/out"
expect2 "--snapshot-ensemble for a GPT" "$bin" train "${gpt[@]}" --snapshot-ensemble 2 --schedule cosine-restarts \
  --out "$tmp/out"
expect2 "--train-bin for text" "$bin" train "${gpt[@]}" --train-bin "$tmp/train.bin" --out "$tmp/out"
expect2 "sample: prompt longer than the context" "$bin" sample "$tmp/run" --prompt "$(head -c 33 "$tmp/text.txt")"
expect2 "sample: --seq-len beyond the context" "$bin" sample "$tmp/run" --seq-len 33
expect2 "sample: text prompt for a token run" "$bin" sample "$tmp/tok" --prompt "hello"
expect2 "sample: prompt id beyond the vocabulary" "$bin" sample "$tmp/tok" --prompt-ids 1,300
"$bin" train --model mlp --widths 8 --dataset synthetic --synthetic-size 64 --epochs 1 --batch-size 32 --threads 1 \
  --quiet --out "$tmp/mlp" >/dev/null || bad "an MLP run"
expect2 "sample: an image model" "$bin" sample "$tmp/mlp"
exit $fail
