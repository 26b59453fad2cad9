#!/usr/bin/env bash
# Lengths in tokens (--batch-tokens, --warmup-tokens, --decay-tokens, --batch-ramp-tokens):
# - optimlab schedule converts them exactly: tokens -> samples (rounded up) -> the steps
#   those samples take through the batch schedule (the first step that starts once they
#   have been consumed);
# - a GPT run records them in config.json (batch-size and the ramp in samples resolved from
#   them, batch-tokens resolved from --batch-size) and its lr per step is what
#   optimlab schedule prints for the same flags;
# - rejected (exit 2, one line) for image models, --batch-tokens not a multiple of
#   --seq-len, --batch-tokens with --batch-size, --decay-tokens for a schedule without
#   --decay-epochs, and optimlab schedule without --seq-len.
# usage: tokens_cli.sh path/to/optimlab
set -u
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok   $*"; }

# exit 2 with one line "optimlab: ..." containing $1
rejects() {
    local want=$1
    shift
    "$@" >"$tmp/out" 2>"$tmp/err"
    local st=$?
    if [ $st -ne 2 ] || [ "$(wc -l <"$tmp/err")" -ne 1 ] || ! grep -q "^optimlab: .*$want" "$tmp/err"; then
        fail "expected exit 2 and one line with '$want' from: ${*:2}; got exit $st: $(head -3 "$tmp/err")"
    else
        ok "rejected: $(cat "$tmp/err")"
    fi
}

sched=("$bin" schedule --steps 40 --steps-per-epoch 1000 --lr 1)
# --batch-tokens = --batch-size x --seq-len, --batch-ramp-tokens = samples x --seq-len
"${sched[@]}" --batch-size 8 --batch-schedule ramp --max-batch-size 32 --batch-ramp-increment 8 \
    --batch-ramp-samples 64 >"$tmp/a.csv" || fail "schedule with samples"
"${sched[@]}" --seq-len 16 --batch-tokens 128 --batch-schedule ramp --max-batch-size 32 --batch-ramp-increment 8 \
    --batch-ramp-tokens 1024 >"$tmp/b.csv" || fail "schedule with tokens"
cmp -s "$tmp/a.csv" "$tmp/b.csv" && ok "--batch-tokens 128 --batch-ramp-tokens 1024 (T 16) = batch 8, ramp 64 samples" ||
    fail "tokens and samples forms differ: $(diff "$tmp/a.csv" "$tmp/b.csv" | head -4)"
# a ramp 1015 tokens long is 64 samples too (rounded up)
"${sched[@]}" --seq-len 16 --batch-tokens 128 --batch-schedule ramp --max-batch-size 32 --batch-ramp-increment 8 \
    --batch-ramp-tokens 1009 >"$tmp/c.csv"
cmp -s "$tmp/a.csv" "$tmp/c.csv" && ok "--batch-ramp-tokens 1009 rounds up to 64 samples" || fail "1009 tokens != 64 samples"

# the warm-up ends at the first step that starts once the tokens have been consumed, through
# the ramp: warm-up (linear from 0) of a constant schedule reaches the lr exactly there
ramp=(--seq-len 16 --batch-tokens 128 --batch-schedule ramp --max-batch-size 32 --batch-ramp-increment 8
    --batch-ramp-tokens 2048)
for tokens in 1 300 2000 2001 4096; do
    "${sched[@]}" "${ramp[@]}" --schedule constant --warmup-tokens $tokens >"$tmp/w.csv" || fail "warm-up $tokens"
    got=$(awk -F, 'NR > 1 && $2 == 1 { print $1; exit }' "$tmp/w.csv")
    want=$(awk -F, -v s=$(((tokens + 15) / 16)) 'NR > 1 { if (seen >= s) { print $1; exit } seen += $4 }' "$tmp/w.csv")
    [ -n "$got" ] && [ "$got" = "$want" ] && ok "--warmup-tokens $tokens: warm-up ends at step $got" ||
        fail "--warmup-tokens $tokens: lr peaks at step '$got', the samples are consumed at step '$want'"
done
# cosine to 0 over --decay-tokens: the lr reaches 0 at the step where they have been consumed
"${sched[@]}" "${ramp[@]}" --schedule cosine --decay-tokens 3000 >"$tmp/d.csv" || fail "decay"
got=$(awk -F, 'NR > 1 && $2 + 0 < 1e-12 { print $1; exit }' "$tmp/d.csv")
want=$(awk -F, -v s=$(((3000 + 15) / 16)) 'NR > 1 { if (seen >= s) { print $1; exit } seen += $4 }' "$tmp/d.csv")
[ -n "$got" ] && [ "$got" = "$want" ] && ok "--decay-tokens 3000: cosine ends at step $got" ||
    fail "--decay-tokens 3000: lr 0 at step '$got', expected '$want'"

# rejections
rejects "not a multiple of --seq-len 16" "${sched[@]}" --seq-len 16 --batch-tokens 100
rejects "needs --seq-len" "${sched[@]}" --warmup-tokens 100
rejects "both set the batch" "${sched[@]}" --seq-len 16 --batch-tokens 128 --batch-size 8
rejects "does not apply to --schedule step" "${sched[@]}" --seq-len 16 --schedule step --step-size 1 --decay-tokens 64
rejects "give one" "${sched[@]}" --seq-len 16 --decay-tokens 64 --decay-epochs 0.01
rejects "does not apply to --model mlp" "$bin" train --model mlp --dataset synthetic --batch-tokens 1024 --steps 1 \
    --out "$tmp/img"
rejects "does not apply to --model mlp" "$bin" train --model mlp --dataset synthetic --warmup-tokens 1024 --steps 1 \
    --out "$tmp/img"
rejects "does not apply to --model mlp" "$bin" train --model mlp --dataset synthetic --decay-tokens 1024 --steps 1 \
    --out "$tmp/img"
rejects "does not apply to --model mlp" "$bin" train --model mlp --dataset synthetic --batch-schedule ramp \
    --max-batch-size 256 --batch-ramp-tokens 1024 --steps 1 --out "$tmp/img"
[ -e "$tmp/img" ] && fail "a rejected run wrote $tmp/img"
# fractions of the run's samples: two warm-up fractions given, a decay fraction without a decay
rejects "give one" "${sched[@]}" --warmup-ratio 0.1 --warmup-samples-ratio 0.1
rejects "does not apply to --schedule step" "${sched[@]}" --schedule step --step-size 1 --decay-samples-ratio 0.5
rejects "does not apply to --schedule step" "${sched[@]}" --schedule step --step-size 1 --hold-floor
# a given --warmup-ratio replaces the recipe's --warmup-samples-ratio: 4 of 40 steps
"${sched[@]}" --recipe bloom --warmup-ratio 0.1 >"$tmp/r.csv" 2>"$tmp/err" &&
    [ "$(awk -F, 'NR > 1 && $2 == 1 { print $1; exit }' "$tmp/r.csv")" = 4 ] &&
    ok "--recipe bloom --warmup-ratio 0.1: warm-up of 4 steps" ||
    fail "--recipe bloom --warmup-ratio 0.1: $(cat "$tmp/err") $(head -6 "$tmp/r.csv" | tr '\n' ' ')"

# a GPT run on the default text: config.json and the lr of every step
gpt=(--lr 0.001 --seq-len 32 --batch-tokens 256 --warmup-tokens 1000 --schedule cosine --decay-tokens 4096 --batch-schedule ramp
    --max-batch-size 32 --batch-ramp-tokens 2048)
if "$bin" train --model gpt-mini --n-layer 1 --dataset text "${gpt[@]}" --steps 12 --log-every 1 --threads 2 --quiet \
    --evals-per-epoch 1 --out "$tmp/gpt" >"$tmp/out" 2>&1; then
    cfg=$tmp/gpt/config.json
    for kv in '"batch-tokens": "256"' '"batch-size": "8"' '"warmup-tokens": "1000"' '"decay-tokens": "4096"' \
        '"batch-ramp-tokens": "2048"' '"batch-ramp-samples": "64"'; do
        grep -qF "$kv" "$cfg" && ok "config.json: $kv" || fail "config.json lacks $kv: $(grep -F "${kv%%:*}" "$cfg")"
    done
    grep -q '"resolved": \[.*"batch-size"' "$cfg" || fail "batch-size from --batch-tokens not marked resolved"
    "$bin" schedule --steps 12 --steps-per-epoch 100000 "${gpt[@]}" >"$tmp/s.csv" ||
        fail "schedule of the GPT run"
    grep '"type":"step"' "$tmp/gpt/metrics.jsonl" | sed 's/.*"lr":\([^,]*\),.*/\1/' >"$tmp/run_lr"
    awk -F, 'NR > 1 { print $2 }' "$tmp/s.csv" >"$tmp/sched_lr"
    [ "$(wc -l <"$tmp/run_lr")" -eq 12 ] && cmp -s "$tmp/run_lr" "$tmp/sched_lr" &&
        ok "the GPT run's lr of each of 12 steps = optimlab schedule's" ||
        fail "run lr vs schedule: $(paste "$tmp/run_lr" "$tmp/sched_lr" | head -14 | tr '\n' ' ')"
    grep '"type":"step"' "$tmp/gpt/metrics.jsonl" | sed 's/.*"batch":\([0-9]*\),.*/\1/' >"$tmp/run_b"
    awk -F, 'NR > 1 { print $4 }' "$tmp/s.csv" >"$tmp/sched_b"
    cmp -s "$tmp/run_b" "$tmp/sched_b" && ok "and its batches" ||
        fail "run batches vs schedule: $(paste "$tmp/run_b" "$tmp/sched_b" | tr '\n' ' ')"
    # resumed from a checkpoint half-way, with --batch-tokens recorded
    rm -rf "$tmp/res"
    "$bin" train --model gpt-mini --n-layer 1 --dataset text "${gpt[@]}" --steps 12 --stop-after 6 --threads 2 \
        --quiet --out "$tmp/res" >"$tmp/out" 2>&1
    st=$?
    "$bin" train --resume "$tmp/res" --log-every 1 --quiet >"$tmp/out" 2>&1 &&
        [ $st -eq 4 ] && grep '"type":"step"' "$tmp/res/metrics.jsonl" | tail -6 |
        sed 's/.*"lr":\([^,]*\),.*/\1/' | cmp -s - <(tail -6 "$tmp/sched_lr") &&
        ok "resumed at step 6 with the same lr" || fail "resume of a --batch-tokens run: exit $st, $(tail -2 "$tmp/out")"
    # without --batch-tokens the batch in tokens is recorded (resolved)
    "$bin" train --model gpt-mini --n-layer 1 --dataset text --seq-len 32 --batch-size 4 --steps 1 --threads 2 \
        --quiet --out "$tmp/gpt2" >"$tmp/out" 2>&1 || fail "gpt batch-size run: $(tail -2 "$tmp/out")"
    grep -qF '"batch-tokens": "128"' "$tmp/gpt2/config.json" && ok "config.json: batch-tokens 128 from --batch-size 4" ||
        fail "no batch-tokens in config.json: $(grep batch-tokens "$tmp/gpt2/config.json")"
else
    fail "GPT run with token lengths: $(tail -2 "$tmp/out")"
fi
[ $fails -eq 0 ] && echo "tokens_cli: all passed"
exit $((fails > 0))
