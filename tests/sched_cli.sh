#!/usr/bin/env bash
# optimlab schedule / lr-find / config / recipe command-line checks:
# bad input prints one line "optimlab: ..." on stderr, nothing on stdout, and
# exits 2; good input produces parseable output.
# usage: sched_cli.sh path/to/optimlab
set -u
BIN=${1:?usage: sched_cli.sh OPTIMLAB}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
checks=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# expect_usage DESCRIPTION ARGS...: exit 2, one stderr line starting "optimlab: ", empty stdout
expect_usage() {
    local what=$1
    shift
    checks=$((checks + 1))
    "$BIN" "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    local lines
    lines=$(wc -l <"$T/err")
    if [ "$rc" -ne 2 ]; then fail "$what: exit $rc, expected 2 ($(head -c 300 "$T/err"))"; return; fi
    if [ "$lines" -ne 1 ] || ! grep -q '^optimlab: ' "$T/err"; then fail "$what: stderr is not one 'optimlab:' line:"; cat "$T/err" >&2; return; fi
    if [ -s "$T/out" ]; then fail "$what: wrote to stdout"; return; fi
    if [ $# -gt 0 ] && [ -n "${NEEDLE:-}" ] && ! grep -q -- "$NEEDLE" "$T/err"; then fail "$what: message lacks '$NEEDLE': $(cat "$T/err")"; fi
}

S="schedule --steps 100"
NEEDLE="--steps" expect_usage "negative steps" schedule --steps -5
NEEDLE="--steps" expect_usage "missing steps" schedule
NEEDLE="warm-up" expect_usage "warm-up longer than training" $S --warmup-steps 150
NEEDLE="warm-up" expect_usage "warm-up in epochs longer than training" $S --steps-per-epoch 10 --warmup-epochs 12
NEEDLE="max lr" expect_usage "max_lr < base_lr" $S --schedule cyclic --lr 0.1 --max-lr 0.01 --step-size-up 10
NEEDLE="--max-lr" expect_usage "cyclic without max-lr" $S --schedule cyclic
NEEDLE="cycle-epochs" expect_usage "cyclic step size 12 epochs" $S --schedule cyclic --max-lr 1 --cycle-epochs 12
NEEDLE="unknown schedule" expect_usage "unknown schedule" $S --schedule cosine-annealing
NEEDLE="cyclic-mode" expect_usage "unknown cyclic mode" $S --schedule cyclic --max-lr 1 --cyclic-mode square
NEEDLE="anneal" expect_usage "unknown anneal" $S --schedule onecycle --anneal cubic
NEEDLE="warmup" expect_usage "unknown warm-up shape" $S --warmup quadratic
NEEDLE="pct" expect_usage "onecycle pct_start 1.5" $S --schedule onecycle --pct-start 1.5
NEEDLE="step-size" expect_usage "step without step size" $S --schedule step
NEEDLE="milestones" expect_usage "decreasing milestones" $S --schedule multistep --milestones 50,20
NEEDLE="t-mult" expect_usage "SGDR Tmult 0" $S --schedule sgdr --t-mult 0
NEEDLE="sequence" expect_usage "sequential without parts" $S --schedule sequential
NEEDLE="batch-schedule" expect_usage "unknown batch schedule" $S --batch-schedule exponential
NEEDLE="ramp" expect_usage "ramp without length" $S --batch-schedule ramp --max-batch-size 2048
NEEDLE="multiple" expect_usage "ramp not in whole increments" $S --batch-size 16 --batch-schedule ramp --max-batch-size 2040 --batch-ramp-samples 1000
NEEDLE="lr-scaling" expect_usage "unknown lr scaling" $S --lr-scaling cubic
NEEDLE="recipe" expect_usage "unknown recipe" $S --recipe fastest
NEEDLE="unknown option" expect_usage "unknown flag" $S --warmup-length 3
NEEDLE="in full" expect_usage "abbreviated --config" $S --conf "$T/x.yaml"
printf 'lr: 0.1\nwarmup-epoch: 3\n' >"$T/bad_key.yaml"
NEEDLE="bad_key.yaml:2: unknown key 'warmup-epoch'" expect_usage "unknown config key" $S --config "$T/bad_key.yaml"
printf 'lr: 0.1\nschedule: [cosine\n' >"$T/bad_yaml.yaml"
NEEDLE="bad_yaml.yaml:3:" expect_usage "bad YAML" $S --config "$T/bad_yaml.yaml"
NEEDLE="missing.yaml" expect_usage "missing config" $S --config "$T/missing.yaml"
NEEDLE="end-lr" expect_usage "lr-find end below start" lr-find --start-lr 1 --end-lr 0.1 --dataset synthetic
NEEDLE="mode" expect_usage "lr-find unknown mode" lr-find --mode zigzag --dataset synthetic
# train: a bad schedule is caught before anything is written
NEEDLE="warm-up" expect_usage "train warm-up longer than training" train --dataset synthetic --synthetic-size 64 --model mlp --epochs 1 --warmup-epochs 3 --out "$T/run" --threads 1
checks=$((checks + 1))
[ -e "$T/run" ] && fail "train left $T/run behind after a usage error"

# good input: CSV, JSON and the plot
checks=$((checks + 1))
"$BIN" $S --schedule onecycle --lr 0.5 >"$T/csv" 2>"$T/err" || fail "onecycle CSV: $(cat "$T/err")"
[ "$(head -1 "$T/csv")" = "step,lr,momentum,batch_size" ] || fail "CSV header: $(head -1 "$T/csv")"
[ "$(wc -l <"$T/csv")" -eq 101 ] || fail "CSV has $(wc -l <"$T/csv") lines, expected 101"
checks=$((checks + 1))
# epochs of 2 x 128 samples: batch 256 from epoch 25 = step 50 (an epoch of 128 samples could not hold
# it; train, and so the schedule, would take 128-sample steps there)
"$BIN" $S --json --schedule cyclic --lr 0.01 --max-lr 0.1 --step-size-up 10 --batch-schedule milestones \
    --batch-milestones 25 --batch-factor 2 --steps-per-epoch 2 --plot "$T/p.svg" >"$T/json" 2>"$T/err" ||
    fail "schedule --json: $(cat "$T/err")"
if command -v python3 >/dev/null; then
    python3 - "$T/json" <<'PY' || fail "schedule --json output does not parse or is wrong"
import json, sys
d = json.load(open(sys.argv[1]))
assert len(d["lr"]) == len(d["momentum"]) == len(d["batch_size"]) == 100, d.keys()
assert abs(d["lr"][10] - 0.1) < 1e-12 and abs(d["momentum"][10] - 0.8) < 1e-12
assert d["batch_size"][49] == 128 and d["batch_size"][50] == 256
PY
else
    grep -q '"lr": \[' "$T/json" || fail "schedule --json: no lr array"
fi
checks=$((checks + 1))
grep -q '<svg' "$T/p.svg" && grep -q '</svg>' "$T/p.svg" || fail "--plot did not write an SVG"
# a plot that cannot be written: exit 1, nothing printed
checks=$((checks + 1))
"$BIN" $S --plot "$T/no/such/dir/p.svg" >"$T/out" 2>"$T/err"
rc=$?
{ [ "$rc" -eq 1 ] && [ ! -s "$T/out" ] && [ "$(wc -l <"$T/err")" -eq 1 ]; } || fail "unwritable plot: exit $rc, stdout $(wc -c <"$T/out") bytes"
# config + recipe + flag precedence shows in the schedule
checks=$((checks + 1))
printf 'recipe: superconvergence\npct-start: 0.25\n' >"$T/c.yaml"
"$BIN" $S --config "$T/c.yaml" --lr 2 --json >"$T/json" 2>"$T/err" || fail "config run: $(cat "$T/err")"
if command -v python3 >/dev/null; then
    python3 - "$T/json" <<'PY' || fail "recipe+config+flag: wrong schedule"
import json, sys
d = json.load(open(sys.argv[1]))
lr = d["lr"]
assert d["schedule"] == "onecycle"
assert max(range(100), key=lambda i: lr[i]) == 24 and abs(lr[24] - 2.0) < 1e-12, lr[:30]
PY
fi
# lr-find on a tiny problem: CSV and SVG
checks=$((checks + 1))
"$BIN" lr-find --dataset synthetic --synthetic-size 256 --model mlp --batch-size 32 --num-iter 30 --threads 1 \
    --out "$T/lrf" >"$T/out" 2>"$T/err" || fail "lr-find: $(cat "$T/err")"
{ [ -s "$T/lrf/lr_find.csv" ] && grep -q '</svg>' "$T/lrf/lr_find.svg" && grep -q 'suggested lr' "$T/out"; } ||
    fail "lr-find outputs missing"
checks=$((checks + 1))
"$BIN" lr-find --mode sweep --dataset synthetic --synthetic-size 256 --model mlp --batch-size 32 --start-lr 1e-4 \
    --end-lr 10 --sweep-steps 5 --threads 1 --out "$T/sw" >"$T/out" 2>"$T/err" || fail "lr-find sweep: $(cat "$T/err")"
[ "$(wc -l <"$T/sw/lr_find.csv")" -eq 7 ] || fail "sweep CSV: expected 6 candidates"
checks=$((checks + 1))
head -1 "$T/sw/lr_find.csv" | grep -qx 'lr,final_loss,steps' || fail "sweep CSV: no steps column"
# lr 10 diverges on this problem: the candidate stops at once instead of spending its 5 steps
checks=$((checks + 1))
grep -qx '10,inf,[1-4]' "$T/sw/lr_find.csv" && grep -q 'lr 10 *diverged (stopped after [1-4] steps)' "$T/out" ||
    fail "a diverged candidate ran all its steps: $(tail -1 "$T/sw/lr_find.csv")"
checks=$((checks + 1))
grep -q '^note: the best lr is' "$T/out" && fail "an inner best lr flagged as an edge: $(cat "$T/out")"
# a best at the end of the candidates says so
checks=$((checks + 1))
"$BIN" lr-find --mode sweep --dataset synthetic --synthetic-size 256 --model mlp --batch-size 32 --sweep-lrs 1e-3,1e-4 \
    --sweep-steps 5 --threads 1 --out "$T/sw2" >"$T/out" 2>"$T/err" || fail "lr-find sweep: $(cat "$T/err")"
grep -q '^note: the best lr is the largest candidate; a larger lr may be better (extend --sweep-lrs)' "$T/out" ||
    fail "no note on a best lr at the edge: $(cat "$T/out")"

# a sweep killed mid-way (kill -9) and run again continues at the first unfinished candidate, with
# the uninterrupted run's results to the bit; CSV.partial goes once the CSV is written
lrk=(lr-find --mode sweep --dataset synthetic --synthetic-size 1024 --model mlp --batch-size 64
     --sweep-lrs 1e-4,1e-3,1e-2,0.1 --sweep-steps 100 --threads 1)
"$BIN" "${lrk[@]}" --out "$T/lk1" >/dev/null 2>"$T/err" || fail "lr-find sweep: $(cat "$T/err")"
"$BIN" "${lrk[@]}" --out "$T/lk2" >/dev/null 2>&1 & lkpid=$!
for _ in $(seq 3000); do [ -s "$T/lk2/lr_find.csv.partial" ] && break; sleep 0.01; done
kill -9 $lkpid 2>/dev/null; wait $lkpid 2>/dev/null
checks=$((checks + 1))
[ -s "$T/lk2/lr_find.csv.partial" ] && [ ! -e "$T/lk2/lr_find.csv" ] || fail "the killed sweep left no partial record"
"$BIN" "${lrk[@]}" --out "$T/lk2" >"$T/out" 2>"$T/err" || fail "resumed lr-find sweep: $(cat "$T/err")"
checks=$((checks + 1))
grep -q '^lr sweep: [1-3] of 4 candidates finished before' "$T/out" || fail "the rerun did not continue: $(head -1 "$T/out")"
checks=$((checks + 1))
cmp -s "$T/lk1/lr_find.csv" "$T/lk2/lr_find.csv" || fail "a resumed sweep differs from the uninterrupted one"
checks=$((checks + 1))
[ ! -e "$T/lk2/lr_find.csv.partial" ] || fail "CSV.partial left after the CSV was written"
# a damaged record (cut mid-line) is read up to the damage: the sweep starts afresh, same results
"$BIN" "${lrk[@]}" --out "$T/lk4" >/dev/null 2>&1 & lkpid=$!
for _ in $(seq 3000); do [ -s "$T/lk4/lr_find.csv.partial" ] && break; sleep 0.01; done
kill -9 $lkpid 2>/dev/null; wait $lkpid 2>/dev/null
{ head -1 "$T/lk4/lr_find.csv.partial"; printf '0.0001 2.1'; } >"$T/cut" && mv "$T/cut" "$T/lk4/lr_find.csv.partial"
"$BIN" "${lrk[@]}" --out "$T/lk4" >"$T/out" 2>"$T/err" || fail "lr-find after a damaged record: $(cat "$T/err")"
checks=$((checks + 1))
! grep -q 'finished before' "$T/out" && cmp -s "$T/lk1/lr_find.csv" "$T/lk4/lr_find.csv" ||
    fail "a damaged partial record was taken: $(head -1 "$T/out")"
# another command (here a seed) does not take over a partial record
"$BIN" "${lrk[@]}" --out "$T/lk3" >/dev/null 2>&1 & lkpid=$!
for _ in $(seq 3000); do [ -s "$T/lk3/lr_find.csv.partial" ] && break; sleep 0.01; done
kill -9 $lkpid 2>/dev/null; wait $lkpid 2>/dev/null
"$BIN" "${lrk[@]}" --seed 7 --out "$T/lk3" >"$T/out" 2>&1
checks=$((checks + 1))
grep -q 'finished before' "$T/out" && fail "a different command continued another's partial sweep"

if [ "$fails" -ne 0 ]; then
    echo "sched_cli: $fails of $checks checks FAILED" >&2
    exit 1
fi
echo "sched_cli: all $checks checks passed"
