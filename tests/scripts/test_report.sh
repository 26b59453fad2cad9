#!/usr/bin/env bash
# optimlab report on two short real runs: the table rows, the labels by the
# option that differs, inline SVG plots, nothing external; and hostile input
# (a directory that is not a run, malformed metrics and config, a run still
# being written). Usage: test_report.sh path/to/optimlab
set -uo pipefail
bin=$1
tmp=$(mktemp -d /tmp/optimlab-report-XXXXXX)
trap 'kill $lockpid 2>/dev/null; rm -rf "$tmp"' EXIT
lockpid=
fail=0
check() { # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fail=1; fi
}
common=(--model mlp --widths 32 --dataset synthetic --synthetic-size 512 --epochs 2 --batch-size 64 --threads 1
        --quiet --log-every 2)
"$bin" train "${common[@]}" --optimizer sgd --out "$tmp/sgd" >/dev/null || { echo "FAIL train sgd"; exit 1; }
"$bin" train "${common[@]}" --optimizer adamw --lr 1e-3 --out "$tmp/adamw" >/dev/null || { echo "FAIL train adamw"; exit 1; }

"$bin" report "$tmp/sgd" "$tmp/adamw" --out "$tmp/rep" >"$tmp/out.txt" 2>"$tmp/err.txt"
check "report exits 0" test $? -eq 0
check "no warnings for good runs" test ! -s "$tmp/err.txt"
h=$tmp/rep/report.html
md=$tmp/rep/report.md
check "report.html and report.md written" test -s "$h" -a -s "$md"
check "two table rows in the page" test "$(grep -c '<tr><td><span class="sw"' "$h")" -eq 2
check "runs labelled by the differing options" grep -q 'optimizer=sgd lr=0.1' "$h"
check "second label" grep -q 'optimizer=adamw lr=1e-3' "$h"
check "varying options listed" grep -q 'they differ in <code>optimizer</code>, <code>lr</code>' "$h"
check "seven inline SVG plots" test "$(grep -c '<svg ' "$h")" -eq 7
check "plots as files for the markdown" test -s "$tmp/rep/acc-epoch.svg" -a -s "$tmp/rep/grad-norm.svg"
check "markdown table rows" test "$(grep -c '^| optimizer=' "$md")" -eq 2
check "final accuracy cells" test "$(grep -c '[0-9]\.[0-9][0-9] %' "$md")" -ge 2
# self-contained: the only URL is the SVG namespace name; no scripts, links or images to fetch
check "no external URLs" test -z "$(grep -o 'https\?://[^"]*' "$h" | grep -v '^http://www.w3.org/2000/svg$')"
check "no scripts, sources or links" test -z "$(grep -Eio '<script|src=|href=|@import|url\(' "$h")"
check "image runs' throughput in img/s" test "$(grep -c ' img/s |' "$md")" -eq 2

# the peak lr of a scaled run is the scaled one (0.1 x 128/64), though no logged step holds it;
# with more than three differing options the runs are labelled by their directory names
"$bin" train "${common[@]}" --optimizer sgd --batch-size 128 --lr-scaling linear --base-batch-size 64 \
  --warmup-epochs 1 --log-every 100 --out "$tmp/scaled" >/dev/null || { echo "FAIL train scaled"; exit 1; }
"$bin" report "$tmp/sgd" "$tmp/adamw" "$tmp/scaled" --out "$tmp/repsc" >/dev/null 2>&1
check "scaled peak lr in the table" test "$(grep -c '^| scaled | finished | mlp | sgd | 128 | 0.2 |' "$tmp/repsc/report.md")" -eq 1
check "many differing options: directory names as labels" \
  test "$(grep -c '^| sgd | finished\|^| adamw | finished' "$tmp/repsc/report.md")" -eq 2

# the lr and batch plots show every step, recomputed from config.json by train's rule (the scaled run
# logged only its last step): 8 steps, the warm-up rising; a run whose stored options no longer give its
# logged lr (edited here) keeps its logged steps; the training loss is the epochs' means from 3 epochs
npts() { grep -o 'points="[^"]*"' "$1" | head -1 | tr ' ' '\n' | grep -c ,; }
"$bin" report "$tmp/scaled" --out "$tmp/repsched" >/dev/null 2>&1
check "lr of every step from the stored schedule (8 points)" test "$(npts "$tmp/repsched/lr.svg")" -eq 8
check "batch of every step (8 points)" test "$(npts "$tmp/repsched/batch.svg")" -eq 8
ys=$(grep -o 'points="[^"]*"' "$tmp/repsched/lr.svg" | head -1 | tr ' ' '\n' | grep , | cut -d, -f2)
check "the warm-up rises (pixel y falls)" test "$(echo "$ys" | head -1 | cut -d. -f1)" -gt "$(echo "$ys" | sed -n 4p | cut -d. -f1)"
cp -r "$tmp/scaled" "$tmp/edited" && sed -i 's/"base-batch-size": "64"/"base-batch-size": "32"/' "$tmp/edited/config.json"
check "config.json edited for the next check" grep -q '"base-batch-size": "32"' "$tmp/edited/config.json"
"$bin" report "$tmp/edited" --out "$tmp/repedit" >/dev/null 2>&1
check "disagreeing stored options: the logged step only" test "$(npts "$tmp/repedit/lr.svg")" -eq 1
# the peak lr of a batch ramp with --lr-scaling is reached mid-run at a batch above the starting one
# (the old column said 0.1: the configured lr at the starting batch); optimlab schedule agrees
"$bin" train "${common[@]}" --epochs 3 --optimizer sgd --schedule cosine --batch-schedule ramp --batch-ramp-samples 768 \
  --max-batch-size 256 --lr-scaling linear --log-every 100 --out "$tmp/ramp" >/dev/null || { echo "FAIL train ramp"; exit 1; }
"$bin" report "$tmp/ramp" --out "$tmp/repramp" >/dev/null 2>&1
steps=$(grep -o '"steps":[0-9]*' "$tmp/ramp/metrics.jsonl" | cut -d: -f2)
want=$("$bin" schedule --steps "$steps" --steps-per-epoch 8 --batch-size 64 --schedule cosine --batch-schedule ramp \
  --batch-ramp-samples 768 --max-batch-size 256 --lr-scaling linear --optimizer sgd | tail -n +2 | cut -d, -f2 | sort -g | tail -1)
want=$(printf '%.4g' "$want")
check "a ramp's peak lr ($want, from optimlab schedule) in the table" grep -q "^| ramp | finished | mlp | sgd | 64 ramp | $want |" "$tmp/repramp/report.md"
"$bin" train "${common[@]}" --optimizer sgd --schedule plateau --log-every 100 --out "$tmp/plateau" >/dev/null ||
  { echo "FAIL train plateau"; exit 1; }
"$bin" report "$tmp/plateau" --out "$tmp/repplat" >/dev/null 2>&1
check "reduce-on-plateau (its lr follows the evaluations): the logged step only" test "$(npts "$tmp/repplat/lr.svg")" -eq 1
"$bin" train "${common[@]}" --optimizer sgd --epochs 3 --out "$tmp/three" >/dev/null || { echo "FAIL train three"; exit 1; }
"$bin" report "$tmp/three" --out "$tmp/rep3ep" >/dev/null 2>&1
check "3 epochs: the training loss as epoch means" grep -q 'training loss (epoch means) vs epoch' "$tmp/rep3ep/report.md"
check "one point per epoch" test "$(npts "$tmp/rep3ep/loss-epoch.svg")" -eq 3
check "2 epochs: the logged steps" grep -q 'training loss (logged steps) vs epoch' "$tmp/repsc/report.md"

# a language model's throughput is in tokens per second (it was labelled img/s: windows per second)
t=$tmp/text.txt
for i in $(seq 200); do echo "the quick brown fox jumps over the lazy dog $i"; done >"$t"
if "$bin" train --model gpt --n-layer 1 --n-head 2 --n-embd 16 --seq-len 16 --dataset text --text-file "$t" \
    --steps 6 --epochs 0 --batch-size 4 --threads 1 --quiet --log-every 2 --out "$tmp/lm" >/dev/null 2>&1; then
  "$bin" report "$tmp/lm" --out "$tmp/replm" >/dev/null 2>&1
  tps=$(grep -o '"tokens_per_s":[0-9.e+]*' "$tmp/lm/metrics.jsonl" | head -1)
  check "a language model's throughput in tok/s ($tps in metrics)" grep -q ' tok/s |' "$tmp/replm/report.md"
else
  check "train a tiny GPT for the report" false
fi

# hostile input
mkdir -p "$tmp/notrun"
"$bin" report "$tmp/sgd" "$tmp/notrun" "$tmp/missing" --out "$tmp/rep2" >/dev/null 2>"$tmp/err.txt"
check "non-run directories skipped: exit 0" test $? -eq 0
check "one warning line each" test "$(grep -c '^optimlab: warning: .*skipped$' "$tmp/err.txt")" -eq 2
"$bin" report "$tmp/notrun" "$tmp/missing" --out "$tmp/rep3" >/dev/null 2>"$tmp/err.txt"
check "no run at all: exit 2, one line" test $? -eq 2 -a "$(grep -vc warning "$tmp/err.txt")" -eq 1
check "nothing written without runs" test ! -e "$tmp/rep3/report.html"
"$bin" report "$tmp/missing" --out "$tmp/rep3" >/dev/null 2>"$tmp/err.txt"
check "a lone missing path: exit 2, one line naming it" \
  test $? -eq 2 -a "$(wc -l <"$tmp/err.txt")" -eq 1 -a "$(grep -c "$tmp/missing" "$tmp/err.txt")" -eq 1
cp -r "$tmp/adamw" "$tmp/bad"
printf '{"type":"step","step":\nnot json\n[1,2]\n{"type":"epoch","step":99,"epo' >>"$tmp/bad/metrics.jsonl"
cp -r "$tmp/sgd" "$tmp/badcfg" && echo '{"model": ' >"$tmp/badcfg/config.json"
"$bin" report "$tmp/sgd" "$tmp/bad" "$tmp/badcfg" --out "$tmp/rep4" >/dev/null 2>"$tmp/err.txt"
check "malformed lines skipped: exit 0" test $? -eq 0
check "malformed lines counted" grep -q 'bad/metrics.jsonl: 3 malformed or mismatched lines skipped' "$tmp/err.txt"
check "malformed config.json skipped" grep -q 'badcfg/config.json:[0-9]*: malformed config.json' "$tmp/err.txt"
check "the damaged run is still reported" test "$(grep -c '<tr><td><span class="sw"' "$tmp/rep4/report.html")" -eq 2
# a run being written: no summary yet, its lock held
cp -r "$tmp/sgd" "$tmp/live" && grep -v '"type":"summary"' "$tmp/sgd/metrics.jsonl" >"$tmp/live/metrics.jsonl"
if command -v flock >/dev/null; then
  # the lock holder is the process itself (exec): killing it releases the lock
  ( exec 9>"$tmp/live/.lock"; flock 9; exec sleep 60 ) >/dev/null 2>&1 & lockpid=$!
  for _ in $(seq 50); do flock -n "$tmp/live/.lock" true 2>/dev/null || break; sleep 0.1; done
  "$bin" report "$tmp/sgd" "$tmp/live" --out "$tmp/rep5" >/dev/null 2>&1
  check "a run in progress is shown as running" grep -q '<td>running</td>' "$tmp/rep5/report.html"
  kill $lockpid; wait $lockpid 2>/dev/null
  # a run that has only started: config.json, no metrics.jsonl yet
  mkdir "$tmp/start" && cp "$tmp/sgd/config.json" "$tmp/start/"
  ( exec 9>"$tmp/start/.lock"; flock 9; exec sleep 60 ) >/dev/null 2>&1 & lockpid=$!
  for _ in $(seq 50); do flock -n "$tmp/start/.lock" true 2>/dev/null || break; sleep 0.1; done
  "$bin" report "$tmp/sgd" "$tmp/start" --out "$tmp/rep5b" >/dev/null 2>"$tmp/err.txt"
  check "a run that just started is shown as running, no warning" \
    test "$(grep -c '<td>running</td>' "$tmp/rep5b/report.html")" -eq 1 -a ! -s "$tmp/err.txt"
  kill $lockpid; wait $lockpid 2>/dev/null
  "$bin" report "$tmp/sgd" "$tmp/start" --out "$tmp/rep5c" >/dev/null 2>"$tmp/err.txt"
  check "... and without its writer it is no run" grep -q 'start is not a run directory (no readable metrics.jsonl); skipped' "$tmp/err.txt"
fi
"$bin" report "$tmp/sgd" "$tmp/live" --out "$tmp/rep6" >/dev/null 2>&1
check "an interrupted run is shown as stopped" grep -q '<td>stopped</td>' "$tmp/rep6/report.html"
"$bin" report "$tmp/sgd" "$tmp/adamw" --group-by optimizer --out "$tmp/rep7" >/dev/null
check "--group-by: a section per value" test "$(grep -c '<h2>optimizer = ' "$tmp/rep7/report.html")" -eq 2
"$bin" report "$tmp/sgd" --group-by nosuchoption --out "$tmp/rep8" >/dev/null 2>"$tmp/err.txt"
check "--group-by an unknown key: exit 2" test $? -eq 2 -a "$(wc -l <"$tmp/err.txt")" -eq 1
"$bin" report "$tmp/sgd" >/dev/null 2>"$tmp/err.txt"
check "missing --out: exit 2" test $? -eq 2
exit $fail
