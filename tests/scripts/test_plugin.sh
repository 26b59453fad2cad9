#!/usr/bin/env bash
# The public extension API end to end: install into a temporary prefix, build
# the examples/ plugins with pkg-config, and run them through the CLI:
# the Lion plugin matches the built-in Lion bit for bit over 100 training steps,
# a plugin optimizer resumes bitwise from a checkpoint, a plugin schedule drives
# `optimlab schedule`, the other commands take --plugin, and every plugin error
# is one line with exit status 2.
# Usage: test_plugin.sh path/to/optimlab BUILD_DIR SOURCE_DIR
set -euo pipefail
bin=$1 build=$2 src=$3
tmp=$(mktemp -d /tmp/optimlab-plugin-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
pc=$(dirname "$(find "$tmp/prefix" -name optimlab.pc | head -1)")
export PKG_CONFIG_PATH=$pc
cc=${CC:-cc}
for e in ema_momentum lion_plugin inv_sqrt_sched; do
  # shellcheck disable=SC2046
  "$cc" -Wall -Wextra -Werror -shared -fPIC "$src/examples/$e.c" $(pkg-config --cflags --libs optimlab) \
    -o "$tmp/$e.so" || { echo "FAIL building examples/$e.c against the installed library"; exit 1; }
done
ok "examples built with pkg-config against the installed library"
ibin=$(find "$tmp/prefix" -type f -name optimlab -perm -u+x | head -1)
[ -x "$ibin" ] || { echo "FAIL: make install did not install the optimlab binary"; exit 1; }
bin=$ibin # the installed CLI loads the plugins from here on

# tensor bytes of the last checkpoint (parameters and optimizer slots)
data() { python3 - "$1" <<'PY'
import glob, hashlib, os, struct, sys
p = sorted(glob.glob(os.path.join(sys.argv[1], "ckpt-*.safetensors")))[-1]
b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]
print(os.path.basename(p), hashlib.sha256(b[8 + n:]).hexdigest())
PY
}
losses() { python3 -c 'import json,sys; print([json.loads(l).get("loss") for l in open(sys.argv[1])])' "$1/metrics.jsonl"; }

common=(--model mlp --widths 64 --batch-size 64 --epochs 1 --threads 2 --quiet --train-subset 8192 --test-subset 512)

# 1. Lion as a plugin = the built-in Lion, bit for bit, over 100 steps of real training
lion=(--steps 100 --lr 3e-4 --weight-decay 0.1 --betas 0.9,0.99 --schedule onecycle)
"$bin" train "${common[@]}" "${lion[@]}" --optimizer lion --out "$tmp/lion-builtin" >/dev/null
"$bin" train "${common[@]}" "${lion[@]}" --plugin "$tmp/lion_plugin.so" --optimizer my-lion \
  --out "$tmp/lion-plugin" >/dev/null
a=$(data "$tmp/lion-builtin") b=$(data "$tmp/lion-plugin")
if [ "$a" = "$b" ] && [ "$(losses "$tmp/lion-builtin")" = "$(losses "$tmp/lion-plugin")" ]; then
  ok "plugin Lion = built-in Lion bitwise after 100 steps ($a)"
else bad "plugin Lion differs from the built-in: $a vs $b"; fi

# 2. A plugin optimizer resumes bitwise; config.json brings the plugin back
ema=(--plugin "$tmp/ema_momentum.so" --optimizer ema-momentum --momentum 0.9 --opt-param bias_correction=1
     --steps 60 --evals-per-epoch 2 --log-every 7 --weight-decay 5e-4)
"$bin" train "${common[@]}" "${ema[@]}" --out "$tmp/ema-straight" >/dev/null
set +e
"$bin" train "${common[@]}" "${ema[@]}" --out "$tmp/ema-resumed" --stop-after 25 >/dev/null 2>&1
st=$?
set -e
[ $st -eq 4 ] || bad "preempted plugin run exited $st, expected 4"
(cd / && "$bin" train --resume "$tmp/ema-resumed" --quiet >/dev/null) # from another directory
a=$(data "$tmp/ema-straight") b=$(data "$tmp/ema-resumed")
if [ "$a" = "$b" ]; then ok "plugin optimizer resumed bitwise ($a)"; else bad "plugin resume differs: $a vs $b"; fi
grep -q "\"plugin\": \"$tmp/ema_momentum.so\"" "$tmp/ema-resumed/config.json" ||
  bad "config.json does not name the plugin by its absolute path"

# 3. The deck's EMA momentum really is m = b m + (1-b) g from zero: its first
#    step moves by lr (1-b) g, so with momentum 0 it equals plain SGD (dampening 0)
one=(--steps 3 --lr 0.05 --weight-decay 0)
"$bin" train "${common[@]}" "${one[@]}" --optimizer sgd --momentum 0 --out "$tmp/sgd0" >/dev/null
"$bin" train "${common[@]}" "${one[@]}" --plugin "$tmp/ema_momentum.so" --optimizer ema-momentum --momentum 0 \
  --out "$tmp/ema0" >/dev/null
[ "$(losses "$tmp/sgd0")" = "$(losses "$tmp/ema0")" ] && ok "ema-momentum with b = 0 is SGD" ||
  bad "ema-momentum with b = 0 differs from SGD"

# 4. A plugin schedule: optimlab schedule prints the inverse square root
out=$("$bin" schedule --plugin "$tmp/inv_sqrt_sched.so" --schedule inv-sqrt --sched-param warmup=10 --lr 1 --steps 40)
python3 - "$out" <<'PY' && ok "inv-sqrt schedule values" || bad "inv-sqrt schedule values"
import math, sys
rows = [l.split(",") for l in sys.argv[1].strip().splitlines()[1:]]
for r in rows:
    t, lr = int(r[0]), float(r[1])
    want = (t + 1) / 10 if t + 1 <= 10 else math.sqrt(10 / (t + 1))
    assert abs(lr - want) < 1e-12, (t, lr, want)
assert len(rows) == 40
PY

# 5. The other commands take --plugin
"$bin" trajectory --plugin "$tmp/ema_momentum.so" --optimizer ema-momentum --function rosenbrock --lr 1e-3 \
  --steps 20 >/dev/null && ok "trajectory --plugin" || bad "trajectory --plugin"
"$bin" bench optimizer --plugin "$tmp/lion_plugin.so" --optimizer my-lion --params 100000 --steps 3 --warmup 1 --threads 1 >/dev/null &&
  ok "bench optimizer --plugin" || bad "bench optimizer --plugin"
"$bin" lr-find "${common[@]}" --plugin "$tmp/ema_momentum.so" --optimizer ema-momentum --num-iter 20 \
  --schedule inv-sqrt --plugin "$tmp/inv_sqrt_sched.so" >/dev/null 2>&1 && ok "lr-find with two --plugin" ||
  bad "lr-find with two --plugin"
"$bin" train "${common[@]}" --steps 5 --plugin "$tmp/ema_momentum.so,$tmp/inv_sqrt_sched.so" \
  --optimizer ema-momentum --schedule inv-sqrt --sched-param warmup=3 --out "$tmp/both" >/dev/null &&
  ok "comma-separated --plugin, plugin optimizer and schedule together" || bad "comma-separated --plugin"

# 5a. optimlab report on a run that used plugins: it recomputes the lr of built-in schedules from
#     config.json, but never loads the plugin a run directory names (code from a path in a file);
#     the plugin run keeps its logged steps. A plugin that leaves a mark when loaded proves it.
printf '#include <stdio.h>\n#include <stdlib.h>\n#include <optimlab.h>\nint optimlab_plugin_init(ol_ctx *c);\nint optimlab_plugin_init(ol_ctx *c) { (void)c; const char *m = getenv("OL_TEST_MARK"); if (m) { FILE *f = fopen(m, "w"); if (f) fclose(f); } return 0; }\n' \
  >"$tmp/mark.c"
# shellcheck disable=SC2046
"$cc" -shared -fPIC "$tmp/mark.c" $(pkg-config --cflags --libs optimlab) -o "$tmp/mark.so"
OL_TEST_MARK="$tmp/marked" "$bin" train "${common[@]}" --steps 5 --log-every 100 --plugin "$tmp/mark.so" \
  --out "$tmp/marked-run" >/dev/null
[ -e "$tmp/marked" ] && ok "the marking plugin marks when loaded" || bad "the marking plugin left no mark"
rm -f "$tmp/marked"
"$bin" train "${common[@]}" --steps 5 --log-every 100 --out "$tmp/plain-run" >/dev/null
OL_TEST_MARK="$tmp/marked" "$bin" report "$tmp/marked-run" "$tmp/plain-run" --out "$tmp/rep" >/dev/null
[ ! -e "$tmp/marked" ] && ok "report loads no plugin" || bad "report loaded the run's plugin"
n=$(grep -o 'points="[^"]*"' "$tmp/rep/lr.svg" | tr ' ' '\n' | grep -c ,)
# plain-run: its 5 steps from config.json; marked-run (a plugin named): its one logged step
[ "$n" -eq 6 ] && ok "report: computed lr without a plugin, the logged step with one" ||
  bad "report lr points: $n, expected 5 + 1"

# 5b. Built-in and registered schedules come from one registry: both are in
#     `schedule --help` and `schedule --list` (the plugin's only when loaded)
help=$("$bin" schedule --plugin "$tmp/inv_sqrt_sched.so" --help)
list=$("$bin" schedule --plugin "$tmp/inv_sqrt_sched.so" --list)
plain=$("$bin" schedule --list)
if grep -q -- "--schedule NAME .*cosine-restarts (sgdr).*inv-sqrt" <<<"$help" && grep -q "^inv-sqrt .*(registered)" <<<"$list" &&
  grep -q "^cosine " <<<"$list" && grep -q -- "--sched-param warmup=X" <<<"$list" && grep -q -- "--t0 E" <<<"$list" &&
  ! grep -q "inv-sqrt" <<<"$plain"; then
  ok "schedule --help and --list show the built-ins and the plugin's schedule"
else bad "schedule --help/--list: $(grep -- '--schedule NAME' <<<"$help")"; fi

# 5c. Checkpoints with schedule state resume bitwise: reduce-on-plateau (its
#     cuts live in the checkpoint) and a plugin schedule (brought back by config.json)
plat=(--steps 60 --evals-per-epoch 8 --log-every 7 --optimizer sgd --lr 0.05 --schedule plateau
      --plateau-patience 0 --plateau-threshold 0.5)
isq=(--steps 60 --evals-per-epoch 8 --log-every 7 --optimizer sgd --lr 0.05 --plugin "$tmp/inv_sqrt_sched.so"
     --schedule inv-sqrt --sched-param warmup=20 --warmup-steps 5)
for case in plat isq; do
  declare -n args=$case
  "$bin" train "${common[@]}" "${args[@]}" --out "$tmp/$case-straight" >/dev/null
  set +e
  "$bin" train "${common[@]}" "${args[@]}" --out "$tmp/$case-resumed" --stop-after 40 >/dev/null 2>&1
  st=$?
  set -e
  [ $st -eq 4 ] || bad "$case: preempted run exited $st, expected 4"
  (cd / && "$bin" train --resume "$tmp/$case-resumed" --quiet >/dev/null)
  a=$(data "$tmp/$case-straight") b=$(data "$tmp/$case-resumed")
  if [ "$a" = "$b" ] && [ "$(losses "$tmp/$case-straight")" = "$(losses "$tmp/$case-resumed")" ]; then
    ok "$case: schedule resumed bitwise ($a)"
  else bad "$case: resumed run differs: $a vs $b"; fi
done
# the plateau run really cut its lr before the stop, so the resumed run needed that state
python3 - "$tmp/plat-resumed/metrics.jsonl" <<'PY' && ok "plateau cut the lr before step 40" || bad "plateau: no cut before step 40"
import json, sys
cuts = [r for r in map(json.loads, open(sys.argv[1])) if r.get("type") == "plateau"]
assert cuts and cuts[0].get("step", 0) <= 40, cuts
PY

# 6. Errors: one line on stderr, exit status 2, no run directory left behind
printf 'int not_the_entry(void);\nint not_the_entry(void) { return 0; }\n' >"$tmp/noinit.c"
"$cc" -shared -fPIC "$tmp/noinit.c" -o "$tmp/noinit.so"
printf '#include <optimlab/optim_algo.h>\nint optimlab_plugin_init(ol_ctx *c);\nint optimlab_plugin_init(ol_ctx *c) { return ol_optim_error(c, OL_EINVAL, "refused"); }\n' \
  >"$tmp/refuse.c"
# shellcheck disable=SC2046
"$cc" -shared -fPIC "$tmp/refuse.c" $(pkg-config --cflags --libs optimlab) -o "$tmp/refuse.so"
expect_bad() { # what, args...
  local what=$1; shift
  set +e
  "$bin" "$@" --out "$tmp/bad-run" >"$tmp/o" 2>"$tmp/e"
  local st=$?
  set -e
  if [ $st -ne 2 ] || [ "$(wc -l <"$tmp/e")" -ne 1 ] || ! grep -q "$what" "$tmp/e" || [ -e "$tmp/bad-run" ]; then
    bad "$* -> exit $st: $(cat "$tmp/e")"
  else ok "error: $(cat "$tmp/e")"; fi
}
T=(train "${common[@]}" --steps 2)
expect_bad "No such file" "${T[@]}" --plugin "$tmp/missing.so" --optimizer sgd
expect_bad "optimlab_plugin_init" "${T[@]}" --plugin "$tmp/noinit.so" --optimizer sgd
expect_bad "refused" "${T[@]}" --plugin "$tmp/refuse.so" --optimizer sgd
expect_bad "already registered" "${T[@]}" --plugin "$tmp/lion_plugin.so" --plugin "$tmp/lion_plugin.so"
expect_bad "unknown optimizer 'my-lion'" "${T[@]}" --optimizer my-lion
expect_bad "no hyperparameter 'beta'" "${T[@]}" --plugin "$tmp/ema_momentum.so" --optimizer ema-momentum --opt-param beta=0.5
expect_bad "bias_correction must be in" "${T[@]}" --plugin "$tmp/ema_momentum.so" --optimizer ema-momentum \
  --opt-param bias_correction=2
expect_bad "expected NAME=VALUE" "${T[@]}" --plugin "$tmp/ema_momentum.so" --optimizer ema-momentum --opt-param x
expect_bad "does not apply to ema-momentum" "${T[@]}" --plugin "$tmp/ema_momentum.so" --optimizer ema-momentum --betas 0.9,0.99
expect_bad "no parameter 'warm'" "${T[@]}" --plugin "$tmp/inv_sqrt_sched.so" --schedule inv-sqrt --sched-param warm=3
# a plugin schedule may not take a built-in's alias
printf '#include <optimlab/sched.h>\nstatic double f(const double *p, int64_t s, int64_t t, double lr) { (void)p; (void)s; (void)t; return lr; }\nstatic const ol_sched_algo a = {.name = "sgdr", .lr = f};\nint optimlab_plugin_init(ol_ctx *c);\nint optimlab_plugin_init(ol_ctx *c) { return ol_sched_register(c, &a); }\n' \
  >"$tmp/clash.c"
# shellcheck disable=SC2046
"$cc" -shared -fPIC "$tmp/clash.c" $(pkg-config --cflags --libs optimlab) -o "$tmp/clash.so"
expect_bad "schedule name 'sgdr' is already registered" "${T[@]}" --plugin "$tmp/clash.so"
# a resume whose plugin is gone
mv "$tmp/ema_momentum.so" "$tmp/ema_moved.so"
set +e
"$bin" train --resume "$tmp/ema-resumed" --quiet >/dev/null 2>"$tmp/e"
st=$?
set -e
if [ $st -eq 2 ] && [ "$(wc -l <"$tmp/e")" -eq 1 ] && grep -q "ema_momentum.so" "$tmp/e"; then
  ok "resume without its plugin: $(cat "$tmp/e")"
else bad "resume without its plugin exited $st: $(cat "$tmp/e")"; fi
exit $fail
