#!/usr/bin/env bash
# Checkpoints and the divergence guard through the CLI: corrupt, truncated,
# wrong-version and wrong-model checkpoints give one line and exit status 2;
# an unwritable output directory gives a clear error; a diverging run skips
# its bad steps, records them, and stops with status 3 after --max-bad-steps.
# Usage: test_ckpt_cli.sh path/to/optimlab
set -uo pipefail
bin=$1
tmp=$(mktemp -d /tmp/optimlab-ckcli-XXXXXX)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
fail=0
small=(--dataset synthetic --synthetic-size 256 --batch-size 64 --threads 1 --quiet)
expect() { # label, expected status, then the command
  local label=$1 want=$2; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"
  local st=$? lines
  lines=$(grep -c "^optimlab:" "$tmp/err")
  if [ $st -ne "$want" ] || [ "$lines" -ne 1 ]; then
    echo "FAIL $label: exit $st (want $want), $lines error lines: $(head -2 "$tmp/err")"; fail=1
  else
    echo "ok   $label: exit $st: $(grep "^optimlab:" "$tmp/err" | cut -c1-110)"
  fi
}
"$bin" train --model resnet8 "${small[@]}" --epochs 1 --out "$tmp/run" >/dev/null || { echo "FAIL: setup"; exit 1; }
ck=$(ls "$tmp"/run/ckpt-*.safetensors | tail -1)
size=$(stat -c %s "$ck")
mkdir -p "$tmp/corrupt" "$tmp/trunc" "$tmp/version"
cp "$ck" "$tmp/corrupt/ckpt-00000004.safetensors"
printf '\x55' | dd of="$tmp/corrupt/ckpt-00000004.safetensors" bs=1 seek=$((size - 10)) conv=notrunc 2>/dev/null
head -c $((size / 2)) "$ck" > "$tmp/trunc/ckpt-00000004.safetensors"
sed 's/"format_version":"2"/"format_version":"9"/' "$ck" > "$tmp/version/ckpt-00000004.safetensors"
for d in corrupt trunc version; do cp "$tmp/run/config.json" "$tmp/$d/"; done
expect "verify a corrupt checkpoint" 2 "$bin" verify "$tmp/corrupt/ckpt-00000004.safetensors"
expect "resume from a corrupt checkpoint" 2 "$bin" train --resume "$tmp/corrupt"
expect "resume from a truncated checkpoint" 2 "$bin" train --resume "$tmp/trunc"
expect "resume from a wrong-version checkpoint" 2 "$bin" train --resume "$tmp/version"
expect "a checkpoint of a different model" 2 "$bin" train --resume "$tmp/run" --model resnet14
expect "init from a checkpoint of a different model" 2 "$bin" train --model resnet14 "${small[@]}" --epochs 1 \
  --init-from "$tmp/run/$(basename "$ck")" --out "$tmp/x"
expect "export from a directory without checkpoints" 2 "$bin" export "$tmp/trunc" --out "$tmp/w.safetensors"
mkdir -p "$tmp/ro" && chmod 555 "$tmp/ro"
if [ "$(id -u)" -ne 0 ]; then
  expect "an unwritable output directory" 1 "$bin" train --model resnet8 "${small[@]}" --epochs 1 --out "$tmp/ro/run"
fi
expect "an output path that is a file" 1 "$bin" train --model resnet8 "${small[@]}" --epochs 1 --out "$ck/sub"
# divergence: lr 1e5 makes the loss non-finite; each bad step is skipped and recorded
expect "divergence guard" 3 "$bin" train --model mlp "${small[@]}" --epochs 5 --lr 1e5 --momentum 0 \
  --max-bad-steps 2 --out "$tmp/div"
grep -q "training diverged" "$tmp/err" || { echo "FAIL: no divergence message"; fail=1; }
skips=$(grep -c '"type":"skip"' "$tmp/div/metrics.jsonl")
[ "$skips" -eq 3 ] || { echo "FAIL: $skips skip records, expected 3"; fail=1; }
exit $fail
