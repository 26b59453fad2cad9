#!/usr/bin/env bash
# config.json holds the effective value of every option that applies to the run:
# options left at "the optimizer's default" (lr, momentum, weight decay, betas, eps,
# ...) and schedule parameters derived from the run used to be stored as "".
# Options that do not apply stay "" (each optimizer option left empty is one the
# CLI rejects for that optimizer), the resolved ones are listed under "resolved",
# and --resume from such a run is still bitwise identical to a run straight through.
# usage: config_effective.sh path/to/optimlab
set -u
bin=$1
py=/usr/bin/python3; [ -x $py ] || py=python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
small=(--model mlp --widths 32 --dataset synthetic --synthetic-size 256 --batch-size 64 --epochs 2 --threads 1 --quiet)
# (--plugin and --opt-param name code and its values: nothing to resolve)
optim_keys=$("$bin" train --help | awk '/^Optimizer:/{g=1; next} /^[A-Z][a-z ]*:$/{g=0} g && /^  --/{print substr($1, 3)}' |
    grep -vx -e plugin -e opt-param)
# case: expected non-empty keys, then the run's options
check() {
    local label=$1 want=$2; shift 2
    rm -rf "$tmp/run"
    if ! "$bin" train "${small[@]}" "$@" --out "$tmp/run" >"$tmp/out" 2>&1; then
        fail "$label: $(tail -2 "$tmp/out")"; return
    fi
    local got
    got=$("$py" -c '
import json, sys
d = json.load(open(sys.argv[1]))
missing = [k for k in sys.argv[2].split() if d.get(k) in ("", None)]
res = set(d.get("resolved", []))
unmarked = [k for k in sys.argv[2].split() if k not in res and k not in sys.argv[3]]
print(" ".join(missing) + ("" if not unmarked else " unmarked:" + ",".join(unmarked)))' \
        "$tmp/run/config.json" "$want" "$*")
    if [ -n "$got" ]; then fail "$label: empty in config.json: $got"; else echo "ok   $label: $want"; fi
    # every optimizer option still "" must be one this optimizer does not take
    for k in $optim_keys; do
        "$py" -c 'import json,sys; sys.exit(json.load(open(sys.argv[1])).get(sys.argv[2]) != "")' \
            "$tmp/run/config.json" "$k" || continue
        local val=0.5
        [ "$k" = betas ] && val=0.9,0.99
        if "$bin" train "${small[@]}" "$@" --$k $val --steps 2 --out "$tmp/probe" >/dev/null 2>"$tmp/err" ||
            ! grep -q "does not apply" "$tmp/err"; then
            fail "$label: --$k applies but config.json holds \"\" ($(cat "$tmp/err"))"
        fi
        rm -rf "$tmp/probe"
    done
}
check "sgd defaults" "lr momentum dampening weight-decay decay-epochs" --optimizer sgd
check "adamw onecycle" "lr betas eps weight-decay max-lr base-momentum max-momentum" --optimizer adamw --schedule onecycle
check "rmsprop multistep + warm-up" "lr momentum alpha eps weight-decay gamma milestones warmup-start-factor" \
    --optimizer rmsprop --schedule multistep --warmup-epochs 0.5
check "lamb cyclic" "lr betas eps weight-decay max-grad-norm step-size-up step-size-down cycle-epochs" \
    --optimizer lamb --schedule cyclic --max-lr 0.01
check "adagrad cosine-restarts" "lr eps lr-decay initial-accumulator-value weight-decay t0" \
    --optimizer adagrad --schedule cosine-restarts
# a per-epoch cosine's decay length is recorded in epochs (2 epochs of 4 steps:
# "2", where it used to be the 8 steps written as epochs)
rm -rf "$tmp/run"
if "$bin" train "${small[@]}" --schedule cosine --per-epoch --out "$tmp/run" >/dev/null 2>&1 &&
  [ "$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["decay-epochs"])' "$tmp/run/config.json")" = 2 ]; then
  echo "ok   per-epoch cosine: decay-epochs 2"
else fail "per-epoch cosine: decay-epochs in config.json is not 2"; fi
# resume from a config.json with resolved values: no option "does not apply", same bytes
tensors() { # digest of the tensor data of a run's newest checkpoint
    "$py" -c '
import glob, hashlib, struct, sys
p = sorted(glob.glob(sys.argv[1] + "/ckpt-*.safetensors"))[-1]
b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]
print(p.split("/")[-1], hashlib.sha256(b[8 + n:]).hexdigest())' "$1"
}
for opt in "--optimizer adamw --schedule onecycle" "--optimizer sgd --schedule multistep"; do
    rm -rf "$tmp/a" "$tmp/b"
    # shellcheck disable=SC2086
    "$bin" train "${small[@]}" $opt --out "$tmp/a" >/dev/null 2>&1 || { fail "$opt: straight run"; continue; }
    # shellcheck disable=SC2086
    "$bin" train "${small[@]}" $opt --stop-after 3 --out "$tmp/b" >/dev/null 2>&1
    if ! "$bin" train --resume "$tmp/b" --quiet >"$tmp/out" 2>&1; then
        fail "$opt: resume: $(tail -2 "$tmp/out")"; continue
    fi
    if [ "$(tensors "$tmp/a")" = "$(tensors "$tmp/b")" ]; then
        echo "ok   $opt: resumed run bitwise identical"
    else
        fail "$opt: resumed run differs from the straight one"
    fi
done
[ $fails -eq 0 ] && echo "config_effective: all passed"
exit $((fails > 0))
