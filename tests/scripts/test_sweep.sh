#!/usr/bin/env bash
# optimlab sweep on a 2x2 grid of tiny runs: names, --dry-run, one run killed
# (SIGKILL) mid-way, then the sweep again: finished runs skipped, the killed
# one resumed from its checkpoint; a changed grid refused; the SLURM script
# passes bash -n and runs a task; bad grid files exit 2 with one line.
# Usage: test_sweep.sh path/to/optimlab
set -uo pipefail
bin=$1
tmp=$(mktemp -d /tmp/optimlab-sweep-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() { # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fail=1; fi
}
cat >"$tmp/grid.yaml" <<YAML
out: $tmp/out
fixed:
  model: mlp
  widths: [256, 256]
  dataset: synthetic
  synthetic-size: 8192
  epochs: 3
  checkpoint-every: 20
  log-every: 10
grid:
  optimizer: [sgd, adamw]
  batch-size: [32, 64]
YAML
out=$tmp/out
names=("optimizer=sgd,batch-size=32" "optimizer=sgd,batch-size=64" "optimizer=adamw,batch-size=32"
       "optimizer=adamw,batch-size=64")

"$bin" sweep "$tmp/grid.yaml" --dry-run >"$tmp/dry.txt"
check "--dry-run exits 0" test $? -eq 0
check "--dry-run lists the four runs by their varying options" \
  test "$(grep -c -F -e "${names[0]}" -e "${names[1]}" -e "${names[2]}" -e "${names[3]}" "$tmp/dry.txt")" -eq 8
check "--dry-run runs nothing" test ! -e "$out"
# --dry-run answers as the run would where a file is in the way of the directory (was: exit 0)
touch "$tmp/afile"
"$bin" sweep "$tmp/grid.yaml" --out "$tmp/afile/sub" --dry-run >"$tmp/dry2.txt" 2>"$tmp/err.txt"
check "--dry-run: a file in the way of --out: exit 1" test $? -eq 1
check "--dry-run: a file in the way: one line naming it" \
  test "$(cat "$tmp/err.txt")" = "optimlab: cannot create $tmp/afile: a file of that name is in the way"
mkdir "$tmp/blocked" && touch "$tmp/blocked/logs"
"$bin" sweep "$tmp/grid.yaml" --out "$tmp/blocked" --dry-run >"$tmp/dry2.txt" 2>"$tmp/err.txt"
check "--dry-run: a file named logs in the sweep directory: exit 1, one line" \
  test $? -eq 1 -a "$(cat "$tmp/err.txt")" = "optimlab: cannot create $tmp/blocked/logs: a file of that name is in the way"

# kill -9 the train process of run directory $1 once it has a checkpoint; killed=1 when it did
kill_at_checkpoint() {
  killed=0
  for _ in $(seq 3000); do
    if ls "$1"/ckpt-*.safetensors >/dev/null 2>&1 && [ -s "$1/.lock" ]; then
      kill -9 "$(cat "$1/.lock")" && killed=1
      return
    fi
    sleep 0.01
  done
}

# the sweep, one run at a time, no retries; the first run is killed (SIGKILL) once it has a checkpoint
"$bin" sweep "$tmp/grid.yaml" --jobs 1 --threads 1 --no-report --retries 0 >"$tmp/sweep1.txt" 2>&1 & sweep=$!
victim=$out/${names[0]}
kill_at_checkpoint "$victim"
wait $sweep; st=$?
check "a run was killed mid-way" test $killed -eq 1
check "the killed run has no summary" test "$(grep -c '"type":"summary"' "$victim/metrics.jsonl")" -eq 0
check "the sweep reports the failure (exit 1)" test $st -eq 1
check "the other three finished" test "$(cat "$out"/*/metrics.jsonl | grep -c '"type":"summary"')" -eq 3
for n in "${names[@]:1}"; do cp "$out/$n/metrics.jsonl" "$tmp/$n.before"; done

"$bin" sweep "$tmp/grid.yaml" --jobs 2 --threads 2 >"$tmp/sweep2.txt" 2>&1
check "the second sweep exits 0" test $? -eq 0
check "finished runs skipped" grep -q '(3 finished or diverged before: skipped)' "$tmp/sweep2.txt"
check "only the killed run ran" test "$(grep -c ': finished$' "$tmp/sweep2.txt")" -eq 1
untouched() { for n in "${names[@]:1}"; do cmp -s "$tmp/$n.before" "$out/$n/metrics.jsonl" || return 1; done; }
check "finished runs untouched" untouched
check "the killed run resumed from its checkpoint" grep -q '^resuming from .*ckpt-' "$out/logs/${names[0]}.log"
check "all four finished" test "$(cat "$out"/*/metrics.jsonl | grep -c '"type":"summary"')" -eq 4
check "the report covers the grid" test "$(grep -c '<tr><td><span class="sw"' "$out/report/report.html")" -eq 4
# a sweep with nothing left to run has nothing to estimate: eta 0:00, not "?"
"$bin" sweep "$tmp/grid.yaml" --jobs 2 --threads 2 --no-report >"$tmp/sweep3.txt" 2>&1
check "all finished: the third sweep exits 0" test $? -eq 0
check "all finished: eta 0:00" grep -q '100.0% of the samples, runs: 4 finished, 0 running, 0 to go, elapsed 0:00, eta 0:00$' "$tmp/sweep3.txt"

# --retries (default 1): a run killed by a signal the sweep did not send resumes from its checkpoint
# within the same sweep, which then exits 0
"$bin" sweep "$tmp/grid.yaml" --out "$tmp/retry" --jobs 1 --threads 1 --no-report >"$tmp/retry.txt" 2>&1 & sweep=$!
victim=$tmp/retry/${names[0]}
kill_at_checkpoint "$victim"
wait $sweep; st=$?
check "--retries: a run was killed mid-way" test $killed -eq 1
check "--retries: the sweep carries on and exits 0" test $st -eq 0
check "--retries: it says so" grep -q "^${names[0]}: killed by signal 9 .*; resuming from its newest checkpoint (retry 1 of 1)" "$tmp/retry.txt"
check "--retries: the run resumed from its checkpoint" grep -q '^resuming from .*ckpt-' "$tmp/retry/logs/${names[0]}.log"
check "--retries: all four finished" test "$(cat "$tmp/retry"/*/metrics.jsonl | grep -c '"type":"summary"')" -eq 4
"$bin" sweep "$tmp/grid.yaml" --out "$tmp/retry2" --retries -1 --dry-run >/dev/null 2>"$tmp/err.txt"
check "--retries -1: exit 2, one line" test $? -eq 2 -a "$(wc -l <"$tmp/err.txt")" -eq 1

# two sweeps into one directory at once: the second is refused (exit 2, one line naming the first's
# pid) before it starts anything, and the first finishes undisturbed
"$bin" sweep "$tmp/grid.yaml" --out "$tmp/twice" --jobs 1 --threads 1 --no-report >/dev/null 2>&1 & sweep=$!
for _ in $(seq 500); do [ -s "$tmp/twice/logs/.lock" ] && break; sleep 0.01; done
"$bin" sweep "$tmp/grid.yaml" --out "$tmp/twice" --jobs 1 --threads 1 --no-report >"$tmp/twice.txt" 2>"$tmp/err.txt"
st=$?
check "a second sweep into the same directory: exit 2, one line" test $st -eq 2 -a "$(wc -l <"$tmp/err.txt")" -eq 1
check "... naming the first sweep's pid" grep -q "sweep directory $tmp/twice in use by pid $sweep " "$tmp/err.txt"
check "... and starting nothing" test ! -s "$tmp/twice.txt"
wait $sweep
check "the first sweep finishes all four (exit 0)" \
  test $? -eq 0 -a "$(cat "$tmp/twice"/*/metrics.jsonl | grep -c '"type":"summary"')" -eq 4

# scripts/publish_results.sh: the finished runs' config.json + metrics.jsonl (no checkpoints) and a report
pub=$(dirname "$0")/../../scripts/publish_results.sh
OPTIMLAB=$bin bash "$pub" "$out" "$tmp/pub" >"$tmp/pub.txt" 2>&1
check "publish_results: every finished run copied" test "$(ls "$tmp"/pub/*/metrics.jsonl | wc -l)" -eq 4
check "publish_results: no checkpoint copied" test -z "$(find "$tmp/pub" -name '*.safetensors')"
check "publish_results: the report of the copies" test "$(grep -c '<tr><td><span class="sw"' "$tmp/pub/report/report.html")" -eq 4
# experiments/course-tables.py on published runs laid out as docs/results: a run's accuracy in
# its row, a run not yet published as "-", a missing results directory exit 2
tables=$(dirname "$0")/../../experiments/course-tables.py
if command -v python3 >/dev/null; then
  # set_summary RUN_DIR KEY=NUMBER...: overwrites fields of the run's summary record (its last line)
  set_summary() {
    python3 -c 'import json,sys
p = sys.argv[1]; rs = [json.loads(l) for l in open(p)]
rs[-1].update({k: float(v) for k, v in (a.split("=", 1) for a in sys.argv[2:])})
open(p, "w").write("".join(json.dumps(r) + "\n" for r in rs))' "$1/metrics.jsonl" "${@:2}"
  }
  mkdir -p "$tmp/res/large-batch" "$tmp/res/width"
  cp -r "$tmp/pub/${names[0]}" "$tmp/res/large-batch/sgd-b128"
  cp -r "$tmp/pub/${names[2]}" "$tmp/res/width/width=2"
  # best and final accuracies set apart (these tiny runs reach 100 % on both), so the columns are told apart
  for d in "$tmp/res/large-batch/sgd-b128" "$tmp/res/width/width=2"; do
    set_summary "$d" best_test_acc=0.9456 final_test_acc=0.9123
  done
  # a run ahead of the one it is compared with says so (the sign is not lost)
  cp -r "$tmp/res/large-batch/sgd-b128" "$tmp/res/large-batch/sgd-b4096"
  set_summary "$tmp/res/large-batch/sgd-b4096" final_test_acc=0.9300
  printf 'Wider is better here too.\n' >"$tmp/res/width/README.md" # the table's prose, shown under it
  # a third width run that failed (chance accuracy, as plain-110 does): the noise note keeps to the
  # others' 91.2 % (the median), where a mean would say 64.2 %
  cp -r "$tmp/res/width/width=2" "$tmp/res/width/width=1"
  cp -r "$tmp/res/width/width=2" "$tmp/res/width/width=4"
  set_summary "$tmp/res/width/width=4" best_test_acc=0.1 final_test_acc=0.1
  python3 "$tables" "$tmp/res" >"$tmp/tables.md"
  check "course-tables: exits 0" test $? -eq 0
  check "course-tables: a run ahead of its reference" grep -q "^| sgd-b4096 | .* | 93.00 | 1.77 pt ahead of sgd-b128 |$" "$tmp/tables.md"
  check "course-tables: best 94.56 and final 91.23 in the run's row" \
    grep -q "^| sgd-b128 | .* | 32 | [0-9]* | 94.56 | 91.23 | - |$" "$tmp/tables.md"
  check "course-tables: width 2's final error 8.77 beside the deck's 5.07" grep -qx "| 2 | 5.07 | 8.77 |" "$tmp/tables.md"
  check "course-tables: runs not published are -" grep -qx "| 110 | 5.79 | - | 16.44 | - |" "$tmp/tables.md"
  check "course-tables: the whole page, title first" test "$(head -n 1 "$tmp/tables.md")" = "# The course's tables, reproduced"
  check "course-tables: width's README.md under the width table, before the next" \
    test "$(grep -e '^### ' -e '^Wider is better here too.$' "$tmp/tables.md" | sed -n 3,4p | cut -c1-12)" = $'### Width: f\nWider is bet'
  check "course-tables: four tables" test "$(grep -c '^### ' "$tmp/tables.md")" -eq 4
  # the tiny runs' test set: 8192 / 4 = 2048 images; at 91.23 % the standard error is 0.63 points
  check "course-tables: a table's noise note from its runs' test set" \
    grep -q "^One run per cell (seed 0). On 2,048 test images an accuracy near 91.2 % has a binomial standard error of 0.63 points: a difference under about 1.8 points" "$tmp/tables.md"
  check "course-tables: a failed run does not move a table's noise note" \
    test "$(grep -c '^One run per cell (seed 0). On 2,048 test images an accuracy near 91.2 %' "$tmp/tables.md")" -eq 1
  check "course-tables: no note under a table without runs" test "$(grep -c '^One run per cell' "$tmp/tables.md")" -eq 2
  python3 "$tables" "$tmp/nothing" >/dev/null 2>"$tmp/err.txt"
  check "course-tables: a missing directory exits 2, one line" test $? -eq 2 -a "$(wc -l <"$tmp/err.txt")" -eq 1
  python3 "$tables" "$tmp/res" "$tmp/res" >/dev/null 2>"$tmp/err.txt"
  check "course-tables: two directories: usage, exit 2, one line" test $? -eq 2 -a "$(wc -l <"$tmp/err.txt")" -eq 1
  python3 "$tables" --help >"$tmp/help.txt"
  check "course-tables: --help exits 0" test $? -eq 0 -a -s "$tmp/help.txt"
fi
rm -f "$out/${names[1]}/metrics.jsonl.tmp"; sed -i '$d' "$out/${names[1]}/metrics.jsonl" # as if still training
OPTIMLAB=$bin bash "$pub" "$out" "$tmp/pub2" >"$tmp/pub2.txt" 2>&1
check "publish_results: an unfinished run left out" grep -q "not finished, left out: ${names[1]}" "$tmp/pub2.txt"
check "publish_results: ... and not copied" test ! -e "$tmp/pub2/${names[1]}"

# SIGTERM to the sweep: its running run checkpoints and exits 4, so does the sweep; the rerun continues
"$bin" sweep "$tmp/grid.yaml" --out "$tmp/term" --jobs 1 --threads 1 --no-report >"$tmp/term1.txt" 2>&1 & sweep=$!
first=$tmp/term/${names[0]}
for _ in $(seq 3000); do
  ls "$first"/ckpt-*.safetensors >/dev/null 2>&1 && break
  sleep 0.01
done
kill -TERM $sweep; wait $sweep; st=$?
check "a stopped sweep exits 4" test $st -eq 4
check "its run stopped with status 4" grep -qx 4 "$tmp/term/logs/${names[0]}.status"
grep -qx 4 "$tmp/term/logs/${names[0]}.status" ||
  { echo "  status: $(cat "$tmp/term/logs/${names[0]}.status" 2>&1); sweep: $(tr '\n' ' ' <"$tmp/term1.txt")"
    tail -3 "$tmp/term/logs/${names[0]}.log"; }
check "nothing else started" test ! -e "$tmp/term/${names[1]}"
"$bin" sweep "$tmp/grid.yaml" --out "$tmp/term" --jobs 2 --threads 2 --no-report >"$tmp/term2.txt" 2>&1
check "the rerun finishes the grid" test $? -eq 0 -a "$(cat "$tmp/term"/*/metrics.jsonl | grep -c '"type":"summary"')" -eq 4
check "the stopped run resumed" grep -q '^resuming from .*ckpt-' "$tmp/term/logs/${names[0]}.log"

# a grid whose fixed options changed does not reuse the runs
sed 's/epochs: 3/epochs: 4/' "$tmp/grid.yaml" >"$tmp/grid2.yaml"
"$bin" sweep "$tmp/grid2.yaml" >/dev/null 2>"$tmp/err.txt"
check "changed options refused (exit 2, one line)" test $? -eq 2 -a "$(wc -l <"$tmp/err.txt")" -eq 1
check "... naming the run" grep -q 'was started with other options' "$tmp/err.txt"

# SLURM: a job array, requeue-safe
"$bin" sweep "$tmp/grid.yaml" --slurm --out "$tmp/sl" >/dev/null
s=$tmp/sl/sweep.sbatch
check "--slurm writes the script" test -s "$s"
check "it passes bash -n" bash -n "$s"
check "one array task per configuration" grep -q '^#SBATCH --array=0-3$' "$s"
check "requeue on exit status 4" grep -q 'scontrol requeue' "$s"
check "it resumes from a checkpoint" grep -q -- '--resume "$RUN"' "$s"
(cd "$tmp" && SLURM_ARRAY_TASK_ID=3 SLURM_CPUS_PER_TASK=1 bash "$s" >"$tmp/task.txt" 2>&1)
check "a task runs its configuration" grep -q '"type":"summary"' "$tmp/sl/${names[3]}/metrics.jsonl"
(cd "$tmp" && SLURM_ARRAY_TASK_ID=3 bash "$s" >"$tmp/task.txt" 2>&1)
check "a finished task exits at once" grep -q 'finished already' "$tmp/task.txt"

# lr-find: a run without an lr gets the best of an lr sweep, recorded in its config
cat >"$tmp/lrf.yaml" <<YAML
out: $tmp/lrf
fixed: {model: mlp, widths: [32], dataset: synthetic, synthetic-size: 512, epochs: 1, optimizer: sgd}
runs:
  - {name: found}
  - {name: given, lr: 0.05}
lr-find: {sweep-lrs: "0.01,0.1", sweep-steps: 5}
YAML
"$bin" sweep "$tmp/lrf.yaml" --threads 1 >"$tmp/lrf.txt" 2>&1
check "lr-find sweep exits 0" test $? -eq 0
lr=$(cat "$tmp/lrf/logs/found.lr" 2>/dev/null)
check "lr-find chose one of the candidates" grep -q -x -e 0.01 -e 0.1 "$tmp/lrf/logs/found.lr"
check "the chosen lr is in the run's config" grep -q "\"lr\": \"$lr\"" "$tmp/lrf/found/config.json"
edge=$([ "$lr" = 0.1 ] && echo largest || echo smallest)
check "the progress says the choice is at an edge of the candidates" grep -q "found: lr-find chose lr $lr (the $edge candidate" "$tmp/lrf.txt"
check "a run with an lr keeps it" test ! -e "$tmp/lrf/logs/given.lr" -a -n "$(grep '"lr": "0.05"' "$tmp/lrf/given/config.json")"
# a finder killed mid-way: the sweep run again continues it at its first unfinished candidate
cat >"$tmp/lrk.yaml" <<YAML
out: $tmp/lrk
fixed: {model: mlp, widths: [256, 256], dataset: synthetic, synthetic-size: 2048, epochs: 1, optimizer: sgd}
runs: [{name: found}]
lr-find: {sweep-lrs: "0.001,0.01,0.1", sweep-steps: 150}
YAML
"$bin" sweep "$tmp/lrk.yaml" --threads 1 --retries 0 --no-report >/dev/null 2>&1 & sweep=$!
for _ in $(seq 3000); do [ -s "$tmp/lrk/logs/found.lrfind/lr_find.csv.partial" ] && break; sleep 0.01; done
pkill -9 -f "lr-find .*$tmp/lrk/logs/found.lrfind"; wait $sweep
"$bin" sweep "$tmp/lrk.yaml" --threads 1 --no-report >/dev/null 2>&1
check "a killed finder: the sweep run again exits 0" test $? -eq 0
check "... continuing the finder where it stopped" grep -q '^lr sweep: [12] of 3 candidates finished before' "$tmp/lrk/logs/found.lrfind.log"
check "... and the run finished with the finder's lr" grep -q "\"lr\": \"$(cat "$tmp/lrk/logs/found.lr")\"" "$tmp/lrk/found/config.json"
# ... and in a SLURM task: USR1 (the time limit) during the finder requeues the task, which continues
# the finder at its first unfinished candidate (scontrol is a stand-in that records its arguments)
"$bin" sweep "$tmp/lrk.yaml" --slurm --out "$tmp/lksl" >/dev/null
mkdir -p "$tmp/fakebin" && printf '#!/bin/sh\necho "$@" >>"%s/requeued"\n' "$tmp" >"$tmp/fakebin/scontrol"
chmod +x "$tmp/fakebin/scontrol"
(cd "$tmp" && PATH=$tmp/fakebin:$PATH SLURM_ARRAY_JOB_ID=7 SLURM_ARRAY_TASK_ID=0 SLURM_CPUS_PER_TASK=1 \
  exec bash "$tmp/lksl/sweep.sbatch" >"$tmp/task.txt" 2>&1) & task=$!
for _ in $(seq 3000); do [ -s "$tmp/lksl/logs/found.lrfind/lr_find.csv.partial" ] && break; sleep 0.01; done
kill -USR1 $task; wait $task; st=$?
check "SLURM: USR1 in the finder: the task exits 4" test $st -eq 4
check "... requeued" grep -qx 'requeue 7_0' "$tmp/requeued"
check "... no lr chosen yet" test ! -s "$tmp/lksl/logs/found.lr"
(cd "$tmp" && PATH=$tmp/fakebin:$PATH SLURM_ARRAY_JOB_ID=7 SLURM_ARRAY_TASK_ID=0 SLURM_CPUS_PER_TASK=1 \
  bash "$tmp/lksl/sweep.sbatch" >"$tmp/task.txt" 2>&1)
check "SLURM: the requeued task exits 0" test $? -eq 0
check "... continuing the finder" grep -q '^lr sweep: [12] of 3 candidates finished before' "$tmp/lksl/logs/found.lrfind.log"
check "... and trains with its lr" grep -q "\"lr\": \"$(cat "$tmp/lksl/logs/found.lr")\"" "$tmp/lksl/found/config.json"
"$bin" sweep "$tmp/lrf.yaml" --slurm --out "$tmp/lrfsl" >/dev/null
check "the SLURM script runs lr-find too" grep -q 'lr-find "${LRF\[@\]}"' "$tmp/lrfsl/sweep.sbatch"
check "... and passes bash -n" bash -n "$tmp/lrfsl/sweep.sbatch"

# --set: an option for every run, in place of the file's value; the names stay the file's
"$bin" sweep "$tmp/lrf.yaml" --set seed=3 --set synthetic-size=256 --out "$tmp/set" --dry-run >"$tmp/set.txt"
check "--set: a dry run exits 0" test $? -eq 0
check "--set: every run gets the value, under the file's names" \
  test "$(grep -c -e '--synthetic-size 256 .*--seed 3 .*--out '"$tmp/set/found"'$' \
                 -e '--synthetic-size 256 .*--seed 3 .*--out '"$tmp/set/given"'$' "$tmp/set.txt")" -eq 2
"$bin" sweep "$tmp/lrf.yaml" --set synthetic-size=256 --set betas=0.8,0.9 --set optimizer=adamw --out "$tmp/set" --threads 1 >/dev/null 2>&1
check "--set: a sweep with it exits 0" test $? -eq 0
check "--set: the runs' configs have the values (a list value kept whole)" \
  grep -q '"betas": "0.8,0.9"' "$tmp/set/given/config.json"
check "... replacing the file's" grep -q '"optimizer": "adamw"' "$tmp/set/given/config.json"
setbad() { # setbad DESCRIPTION EXPECTED-MESSAGE SWEEP-ARGS...
  local what=$1 msg=$2; shift 2
  "$bin" sweep "$tmp/lrf.yaml" "$@" >/dev/null 2>"$tmp/err.txt"
  local st=$?
  check "$what" test $st -eq 2 -a "$(wc -l <"$tmp/err.txt")" -eq 1
  grep -q -F -- "$msg" "$tmp/err.txt" || { echo "FAIL $what: message: $(cat "$tmp/err.txt")"; fail=1; }
}
setbad "--set on a sweep directory made without it" "was started with other options" --set synthetic-size=128
setbad "--set of an option that varies" "'lr' varies between the grid's runs" --set lr=0.1 --out "$tmp/set2" --dry-run
setbad "--set without a value" "expected OPTION=VALUE" --set seed --out "$tmp/set2" --dry-run
setbad "--set of the run directory" "'out' is set by the sweep" --set out=x --out "$tmp/set2" --dry-run
setbad "--set of an unknown option" "unknown option 'sead'" --set sead=1 --out "$tmp/set2" --dry-run
check "a refused --set writes nothing" test ! -e "$tmp/set2"

# bad grid files: one line, exit 2 (--dry-run: a grid that wrongly passed must not start a real run)
bad() { # bad DESCRIPTION YAML EXPECTED-MESSAGE
  printf '%s\n' "$2" >"$tmp/bad.yaml"
  "$bin" sweep "$tmp/bad.yaml" --out "$tmp/badout" --dry-run >/dev/null 2>"$tmp/err.txt"
  local st=$?
  check "$1" test $st -eq 2 -a "$(wc -l <"$tmp/err.txt")" -eq 1 -a ! -e "$tmp/badout"
  grep -q -F -- "$3" "$tmp/err.txt" || { echo "FAIL $1: message: $(cat "$tmp/err.txt")"; fail=1; }
}
bad "bad YAML" 'grid: {lr: [0.1, 0.2}' "bad.yaml:1: did not find expected"
bad "unknown option" 'grid: {optimiser: [sgd, adamw]}' "unknown option 'optimiser'"
bad "empty list" 'grid: {lr: []}' "the list of 'lr' is empty"
bad "duplicate run names" $'runs:\n  - {lr: 0.1}\n  - {lr: 0.1}' "two runs are named 'run'"
bad "the same value twice in a list" 'grid: {lr: [0.1, 0.2, 0.10]}' "the list of 'lr' has the same value twice ('0.1' and '0.10')"
bad "the same value twice, as text" 'grid: {optimizer: [sgd, sgd]}' "the list of 'optimizer' has the same value twice"
bad "a bad value" 'grid: {lr: [0.1, fast]}' "--lr: expected a number, got 'fast'"
bad "an unknown schedule" 'grid: {schedule: [cosine, cosinus]}' "unknown schedule 'cosinus'"
bad "an unknown top-level key" 'grids: {lr: [0.1]}' "unknown key 'grids'"
bad "out set per run" 'runs: [{out: x}]' "'out' is set by the sweep"
bad "an unknown lr-find option" $'lr-find: {num-iter: 5}\nruns: [{lr: 0.1}]' "lr-find: 'num-iter' is not an option of the lr sweep"
# a configuration no step fits is refused before any run starts (it used to start and fail)
bad "a batch larger than the data with --drop-last" $'fixed: {drop-last: true}\ngrid: {batch-size: [128, 70000]}' \
  "run batch-size=70000 (line 2): no training step fits: 60000 samples, batch 70000 with --drop-last"
# the repository's own grid files stay valid: every configuration passes train's parser,
# and a dry run writes nothing
dry() { "$bin" sweep "$1" --dry-run --out "$2" >/dev/null && [ ! -e "$2" ]; }
for g in "$(dirname "$0")"/../../experiments/*.yaml; do
  check "$(basename "$g") parses (--dry-run)" dry "$g" "$tmp/exp-$(basename "$g" .yaml)"
done
exit $fail
