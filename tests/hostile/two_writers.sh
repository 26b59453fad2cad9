#!/usr/bin/env bash
# Two writers (issue 10): start a run, start a --resume of the same directory
# while it trains (a requeued SLURM job beside the old one). The second is
# refused with exit 2 "in use by pid N"; the first finishes with the same
# tensors as an undisturbed run, well-formed metrics (every line JSON), and a
# run that resumes bitwise from its middle checkpoint.
# Usage: two_writers.sh path/to/optimlab
set -uo pipefail
bin=$1
py=${PYTHON:-python3}
tmp=$(mktemp -d /tmp/optimlab-2w-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=1
args=(--model mlp --widths 64 --dataset synthetic --synthetic-size 4096 --batch-size 32 --threads 1 --quiet
      --epochs 8 --checkpoint-every 1e --keep-last 3)
fail=0
"$bin" train "${args[@]}" --out "$tmp/a" >/dev/null 2>"$tmp/a.err" &
first=$!
for _ in $(seq 1 600); do # until the first checkpoint exists: the run is under way
  ls "$tmp"/a/ckpt-*.safetensors >/dev/null 2>&1 && break
  sleep 0.05
done
timeout 60 "$bin" train --resume "$tmp/a" --quiet >/dev/null 2>"$tmp/b.err"
second=$?
running=0
kill -0 $first 2>/dev/null && running=1
wait $first
st=$?
echo "second writer: exit $second: $(head -1 "$tmp/b.err")"
if [ $running -ne 1 ]; then
  echo "SKIP-ish: the first run had already finished when the second started; the refusal was not exercised"
  fail=1
fi
if [ $second -ne 2 ] || ! grep -q "in use by pid $first" "$tmp/b.err"; then
  echo "FAIL: the second writer was not refused with 'in use by pid $first'"; fail=1
fi
if [ $st -ne 0 ]; then echo "FAIL: the first run exited $st: $(head -2 "$tmp/a.err")"; fail=1; fi
"$bin" train "${args[@]}" --out "$tmp/ref" >/dev/null || { echo "FAIL: reference run"; exit 1; }
cp -r "$tmp/a" "$tmp/again"
rm -f "$tmp/again/.lock" "$(ls "$tmp"/again/ckpt-*.safetensors | tail -1)"
"$bin" train --resume "$tmp/again" --quiet >/dev/null || { echo "FAIL: resume from the middle checkpoint"; fail=1; }
"$py" - "$tmp/a" "$tmp/ref" "$tmp/again" <<'PY' || fail=1
import glob, json, os, struct, sys
def data(d):
    p = sorted(glob.glob(os.path.join(d, "ckpt-*.safetensors")))[-1]
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]
    return os.path.basename(p), b[8 + n:]
ok = True
for l in open(os.path.join(sys.argv[1], "metrics.jsonl")):
    try:
        json.loads(l)
    except ValueError:
        print("FAIL: malformed metrics line:", l[:80]); ok = False
a, r, g = data(sys.argv[1]), data(sys.argv[2]), data(sys.argv[3])
print(("ok  " if a == r else "FAIL") + f" first run vs an undisturbed run: {a[0]} vs {r[0]}")
print(("ok  " if a == g else "FAIL") + f" resumed from the middle checkpoint: {g[0]}, tensors "
      + ("identical" if a[1] == g[1] else "DIFFER"))
sys.exit(0 if ok and a == r and a == g else 1)
PY
[ $fail -eq 0 ] && echo "two writers: ok"
exit $fail
