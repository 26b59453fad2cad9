#!/usr/bin/env bash
# --gns and --log-layer-stats from the command line: the trained weights are
# bitwise those of the same run without them (BatchNorm, momentum, clipping,
# unequal micro-batches), the records and the summary lines are there, and bad
# options exit 2 with one line and leave no run directory.
# usage: diag_cli.sh path/to/optimlab
set -u
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
py=/usr/bin/python3; [ -x $py ] || py=python3
fails=0
common=(--model resnet8 --dataset synthetic --synthetic-size 320 --batch-size 64 --micro-batch-size 24 --epochs 2
        --threads 1 --lr 0.05 --momentum 0.9 --weight-decay 5e-4 --clip-grad-norm 2 --schedule cosine
        --log-every 2 --checkpoint-every 0)
"$bin" train "${common[@]}" --quiet --out "$tmp/off" >"$tmp/off.txt" 2>&1 || { echo "FAIL run without --gns"; exit 1; }
"$bin" train "${common[@]}" --gns --gns-smoothing 0.9 --log-layer-stats 3 --out "$tmp/on" >"$tmp/on.txt" 2>&1 ||
    { echo "FAIL run with --gns: $(tail -2 "$tmp/on.txt")"; exit 1; }
"$py" - "$tmp/off" "$tmp/on" <<'PY' || fails=$((fails + 1))
import glob, json, struct, sys, math
def data(d):
    p = sorted(glob.glob(d + "/ckpt-*.safetensors"))[-1]
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]
    return p.split("/")[-1], b[8 + n:]
(na, a), (nb, b) = data(sys.argv[1]), data(sys.argv[2])
ok = na == nb and a == b
print(("ok  " if ok else "FAIL") + f" with and without --gns --log-layer-stats: {na} vs {nb}, tensor bytes "
      f"{'identical' if a == b else 'DIFFER'}")
recs = [json.loads(l) for l in open(sys.argv[2] + "/metrics.jsonl")]
steps = [r for r in recs if r["type"] == "step"]
names = [r for r in recs if r["type"] == "layer_names"]
layers = [r for r in recs if r["type"] == "layers"]
summ = [r for r in recs if r["type"] == "summary"][0]
good = (len(steps) == 5 and all(math.isfinite(r["gns"]) and r["gns_trace"] > 0 for r in steps)
        and len(names) == 1 and [r["step"] for r in layers] == [3, 6, 9]
        and all(len(r[k]) == len(names[0]["names"]) for r in layers for k in ("grad_norm", "weight_norm", "update_ratio"))
        and summ["gns_steps"] == 10 and math.isfinite(summ["gns_run"]))
print(("ok  " if good else "FAIL") + f" records: {len(steps)} step records with gns, layers at "
      f"{[r['step'] for r in layers]} over {len(names[0]['names']) if names else 0} tensors, summary gns {summ.get('gns')}")
sys.exit(0 if ok and good else 1)
PY
if grep -q "critical batch size" "$tmp/on.txt" && grep -q "lr-scaling-knee" "$tmp/on.txt"; then
    echo "ok   summary lines: $(grep -c . "$tmp/on.txt") lines, critical batch size and knee printed"
else
    echo "FAIL summary lines missing"; fails=$((fails + 1))
fi
if "$bin" report "$tmp/on" "$tmp/off" --out "$tmp/report" >/dev/null 2>&1 && grep -q "<polyline" "$tmp/report/gns.svg"; then
    echo "ok   report: gns.svg plots the run that logged --gns"
else
    echo "FAIL report: no gns.svg"; fails=$((fails + 1))
fi
bad() { # label, options: exit 2, one line, no run directory
    local label=$1; shift
    "$bin" train --model mlp --widths 8 --dataset synthetic --synthetic-size 64 --batch-size 32 --epochs 1 --quiet \
        --out "$tmp/bad" "$@" >"$tmp/bad.out" 2>"$tmp/bad.err"
    local st=$?
    if [ $st -ne 2 ] || [ "$(wc -l <"$tmp/bad.err")" -ne 1 ] || [ -e "$tmp/bad" ]; then
        echo "FAIL $label: exit $st, stderr: $(cat "$tmp/bad.err")"; fails=$((fails + 1))
    else
        echo "ok   $label: $(cat "$tmp/bad.err")"
    fi
}
bad "--gns, one batch size" --gns
bad "--gns, micro-batch = batch" --gns --micro-batch-size 32
bad "--gns-smoothing without --gns" --gns-smoothing 0.9
bad "--gns-smoothing 1" --gns --micro-batch-size 8 --gns-smoothing 1
bad "--log-layer-stats -1" --log-layer-stats -1
bad "--log-layer-stats x" --log-layer-stats x
[ $fails -eq 0 ] && echo "diag_cli: all passed"
exit $((fails > 0))
