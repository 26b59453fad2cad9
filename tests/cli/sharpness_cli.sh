#!/usr/bin/env bash
# optimlab sharpness and optimlab histogram on a small MLP run.
# sharpness: the JSON holds K eigenvalues in decreasing magnitude, converged,
# a trace with a positive standard error; the same seed gives the same bits;
# the batch size and the start vectors do not change the top eigenvalue beyond
# the finite-difference error; --out DIR holds what --json printed; RUN and
# its CKPT give the same answer. histogram: one curve per checkpoint and panel,
# the counts equal a histogram computed here from the checkpoint files, the SVG
# parses. Bad input exits 2 with one line and leaves the run directory as it was.
# usage: sharpness_cli.sh path/to/optimlab
set -u
bin=$1
py=/usr/bin/python3; [ -x $py ] || py=python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
run=$tmp/run
timeout 300 "$bin" train --model mlp --widths 32 --train-subset 512 --test-subset 128 --epochs 1 --batch-size 64 \
    --threads 1 --quiet --checkpoint-every 2 --keep-last 0 --out "$run" >/dev/null || { echo "FAIL: training"; exit 1; }
before=$(ls -l --time-style=full-iso "$run" | md5sum)
common=(--train-subset 128 --threads 1 --iters 200 --tol 1e-6)
timeout 300 "$bin" sharpness "$run" "${common[@]}" --top-k 2 --trace --trace-samples 40 --json >"$tmp/a.json" \
    || fail "sharpness: $(cat "$tmp/a.json")"
timeout 300 "$bin" sharpness "$run" "${common[@]}" --top-k 2 --trace --trace-samples 40 --json --out "$tmp/o" \
    >"$tmp/b.json" || fail "sharpness again"
timeout 300 "$bin" sharpness "$run/ckpt-00000008.safetensors" "${common[@]}" --batch-size 7 --seed 5 --json \
    >"$tmp/c.json" || fail "sharpness CKPT, batch 7, seed 5"
timeout 300 "$bin" sharpness "$run" --threads 1 --json >"$tmp/d.json" || fail "sharpness with the default subset"
"$py" -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(d["samples"] != 512)' "$tmp/d.json" \
    && echo "ok   the default --train-subset (1000) takes the whole set of 512" || fail "default subset: $(head -c 300 "$tmp/d.json")"
"$py" - "$tmp/a.json" "$tmp/b.json" "$tmp/o/sharpness.json" "$tmp/c.json" <<'PY' || fail "sharpness results"
import json, sys
a, b, o, c = (json.load(open(f)) for f in sys.argv[1:5])
ok = True
def check(cond, what):
    global ok
    print(("ok  " if cond else "FAIL") + " " + what)
    ok &= bool(cond)
ev = a["eigenvalues"]
check(len(ev) == 2 and abs(ev[0]) >= abs(ev[1]) * (1 - 1e-3) and all(a["converged"]),
      f"two eigenvalues by magnitude, converged: {ev} in {a['iterations']} iterations")
check(a["samples"] == 128 and a["batchnorm"] == "eval" and a["step"] == 8, "128 samples, eval mode, step 8")
t = a["trace"]
check(t["samples"] >= 10 and t["stderr"] > 0 and t["mean"] > 0, f"trace {t['mean']:.4g} +- {t['stderr']:.3g}")
check(a["eigenvalues"] == b["eigenvalues"] and a["trace"] == b["trace"], "same seed: bitwise the same")
drop = lambda d: {k: v for k, v in d.items() if k != "seconds"}
check(drop(o) == drop(b), "--out DIR/sharpness.json is what --json printed")
rel = abs(c["eigenvalues"][0] - ev[0]) / abs(ev[0])
check(rel < 1e-3 and c["batch_size"] == 7, f"CKPT, batch 7, seed 5: top eigenvalue {c['eigenvalues'][0]:.6g} ({rel:.1e} off)")
check(a["fd_check"]["rayleigh"] < 1e-3, f"finite-difference check: v'Hv changes by {a['fd_check']['rayleigh']:.1e}")
sys.exit(0 if ok else 1)
PY
# histogram: counts against the checkpoint files
timeout 120 "$bin" histogram "$run" --per-layer --bins 16 --out "$tmp/h.svg" --json "$tmp/h.json" >"$tmp/out" \
    || fail "histogram: $(cat "$tmp/out")"
timeout 120 "$bin" histogram "$run" --tensors 'bias$' --max-checkpoints 2 --out "$tmp/hb.svg" --json "$tmp/hb.json" \
    >/dev/null || fail "histogram --tensors"
timeout 120 "$bin" histogram "$run" --log-y --out "$tmp/hall.svg" >/dev/null || fail "histogram (all weights)"
"$py" - "$run" "$tmp" <<'PY' || fail "histogram results"
import json, struct, sys, os, xml.etree.ElementTree as ET
run, tmp = sys.argv[1:3]
def tensors(path):
    f = open(path, "rb")
    n = struct.unpack("<Q", f.read(8))[0]
    h = json.loads(f.read(n)); base = 8 + n
    raw = open(path, "rb").read()
    out = {}
    for k, v in h.items():
        if k == "__metadata__" or v.get("dtype") != "F32":
            continue
        a, b = v["data_offsets"]
        out[k] = struct.unpack("<%df" % ((b - a) // 4), raw[base + a:base + b])
    return out
ok = True
def check(cond, what):
    global ok
    print(("ok  " if cond else "FAIL") + " " + what)
    ok &= bool(cond)
for js, svg, panels, ncks in (("h.json", "h.svg", ["fc1", "fc2"], 4), ("hb.json", "hb.svg", ["fc1.bias", "fc2.bias"], 2)):
    h = json.load(open(os.path.join(tmp, js)))
    check([p["name"] for p in h["panels"]] == panels and len(h["steps"]) == ncks, f"{js}: panels {panels}, {ncks} checkpoints {h['steps']}")
    bins = h["bins"]
    for p in h["panels"]:
        vals_all = []
        for c, step in enumerate(h["steps"]):
            t = tensors(os.path.join(run, "ckpt-%08d.safetensors" % step))
            vals = [x for name in p["tensors"] for x in t[name]]
            vals_all += vals
            cnt = [0] * bins
            for x in vals:
                b = int((x - p["lo"]) / (p["hi"] - p["lo"]) * bins) if p["hi"] > p["lo"] else 0
                cnt[min(b, bins - 1)] += 1
            if cnt != p["counts"][c]:
                check(False, f"{js} {p['name']} step {step}: counts {p['counts'][c]} != {cnt}")
        check(min(vals_all) == p["lo"] and max(vals_all) == p["hi"] and p["values"] == len(vals_all) // len(h["steps"]),
              f"{js} {p['name']}: range [{p['lo']:.4g}, {p['hi']:.4g}] of {p['values']} values, counts match")
    root = ET.parse(os.path.join(tmp, svg)).getroot()
    lines = [e for e in root.iter() if e.tag.endswith("polyline")]
    check(len(lines) >= len(panels) * ncks, f"{svg}: {len(lines)} curves for {len(panels)} panels x {ncks} checkpoints")
ET.parse(os.path.join(tmp, "hall.svg"))
sys.exit(0 if ok else 1)
PY
# --density: stochastic Lanczos quadrature; its largest Ritz value is the top eigenvalue, the weights
# of each run sum to 1, --out writes the plot (it parses) and the smoothed curve (it integrates to 1)
timeout 300 "$bin" sharpness "$run" "${common[@]}" --density --density-steps 40 --density-runs 2 --json \
    --out "$tmp/dens" >"$tmp/e.json" || fail "sharpness --density: $(head -c 300 "$tmp/e.json")"
timeout 300 "$bin" sharpness "$run" "${common[@]}" --density --density-steps 40 --density-runs 2 >"$tmp/e.txt" \
    || fail "sharpness --density (text)"
grep -q "^eigenvalue density (stochastic Lanczos, 40 steps x 2 runs): Ritz values .* weight on negative" "$tmp/e.txt" \
    && echo "ok   --density: one line of text" || fail "--density text: $(cat "$tmp/e.txt")"
"$py" - "$tmp/e.json" "$tmp/dens" <<'PY' || fail "density results"
import json, sys, os, xml.etree.ElementTree as ET
e = json.load(open(sys.argv[1])); d = e["density"]; out = sys.argv[2]
ok = True
def check(cond, what):
    global ok
    print(("ok  " if cond else "FAIL") + " " + what)
    ok &= bool(cond)
top = e["eigenvalues"][0]
check(d["steps"] == 40 and d["runs"] == 2 and len(d["nodes"]) == 2, "density: 40 steps x 2 runs")
check(all(abs(sum(w) - 1) < 1e-9 for w in d["weights"]), "density: each run's weights sum to 1")
check(all(n == sorted(n) for n in d["nodes"]), "density: nodes ascending")
check(abs(d["lambda_max"] - top) <= 1e-3 * abs(top), f"density: largest Ritz value {d['lambda_max']:.6g} = top eigenvalue {top:.6g}")
check(0 <= d["negative_weight"] <= 1, f"density: weight on negative eigenvalues {d['negative_weight']:.3g}")
rows = [l.split(",") for l in open(os.path.join(out, "density.csv")).read().split()[1:]]
x = [float(r[0]) for r in rows]; y = [float(r[1]) for r in rows]
check(len(x) == 10000 and abs(sum(y) * (x[1] - x[0]) - 1) < 1e-6, "density.csv: 10000 points integrating to 1")
root = ET.parse(os.path.join(out, "density.svg")).getroot()
check(any(el.tag.endswith("polyline") for el in root.iter()), "density.svg: parses, has the curve")
sys.exit(0 if ok else 1)
PY
# --out naming a file: exit 1 (a failure to write, as the other commands), one line; it was 255
touch "$tmp/blocker"
timeout 60 "$bin" sharpness "$run" --train-subset 64 --threads 1 --out "$tmp/blocker" >/dev/null 2>"$tmp/err"; st=$?
if [ $st -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "a file of that name is in the way" "$tmp/err"; then
    echo "ok   --out on a file: exit 1, $(cat "$tmp/err")"
else
    fail "--out on a file -> exit $st: $(cat "$tmp/err")"
fi
bad() { # command expected-message-part args...
    local cmd=$1 want=$2; shift 2
    timeout 60 "$bin" "$cmd" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ $rc -eq 2 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q -- "$want" "$tmp/err"; then
        echo "ok   exit 2: $(cat "$tmp/err")"
    else
        fail "$cmd $* -> exit $rc: $(cat "$tmp/err")"
    fi
}
mkdir -p "$tmp/empty"
bad sharpness "no valid checkpoint\|no checkpoint\|ckpt" "$tmp/empty"
bad sharpness "no such run" "$tmp/missing"
bad sharpness "train-subset" "$run" --train-subset 0
# a language model: the Hessian of the mean loss over every position
head -c 6000 "$(dirname "$0")/../../README.md" > "$tmp/lm.txt"
"$bin" train --model gpt --n-layer 1 --n-head 2 --n-embd 16 --seq-len 16 --dataset text --text-file "$tmp/lm.txt" \
    --epochs 0 --steps 3 --batch-size 8 --quiet --threads 1 --out "$tmp/lm" >/dev/null 2>&1 || fail "gpt run"
"$bin" sharpness "$tmp/lm" --top-k 1 --iters 30 --train-subset 16 --threads 1 --json > "$tmp/lm.json" 2>&1 \
    && "$py" -c 'import json,sys,math; d=json.load(open(sys.argv[1])); e=d["eigenvalues"][0]; sys.exit(0 if math.isfinite(e) and e > 0 else 1)' "$tmp/lm.json" \
    && echo "ok   sharpness of a language model" || fail "sharpness of a language model: $(head -c 300 "$tmp/lm.json")"
bad sharpness "only 512 samples" "$run" --train-subset 513
bad sharpness "top-k" "$run" --top-k 0
bad sharpness "top-k" "$run" --top-k 17
bad sharpness "tol" "$run" --tol -1
bad sharpness "iters" "$run" --iters 0
bad sharpness "fd-step" "$run" --fd-step 0
bad sharpness "eps-sharpness" "$run" --eps-sharpness 0
bad sharpness "eps-sharpness" "$run" --eps-sharpness 1e-3,x
bad sharpness "eps-iters" "$run" --eps-iters 0
bad sharpness "apply only with --density" "$run" --density-steps 20
bad sharpness "density-steps" "$run" --density --density-steps 1
bad sharpness "density-runs" "$run" --density --density-runs 0
bad sharpness "steps must be 1 to" "$run" --density --density-steps 99999
# Keskar's epsilon-sharpness: one entry per box size, a larger box rises at least as high
"$bin" sharpness "$run" --train-subset 128 --threads 1 --iters 5 --eps-sharpness 1e-3,1e-2 --eps-iters 10 --json \
    >"$tmp/eps.json" 2>&1 && "$py" - "$tmp/eps.json" <<'PY' && echo "ok   --eps-sharpness 1e-3,1e-2" ||
import json, math, sys
d = json.load(open(sys.argv[1])); e = d["eps_sharpness"]
ok = [x["eps"] for x in e] == [1e-3, 1e-2] and all(x["iters"] == 10 and x["max_loss"] >= d["loss"] for x in e)
ok = ok and 0 < e[0]["sharpness"] <= e[1]["sharpness"] and math.isclose(
    e[0]["sharpness"], 100 * (e[0]["max_loss"] - d["loss"]) / (1 + d["loss"]), rel_tol=1e-9)
sys.exit(0 if ok else 1)
PY
    fail "--eps-sharpness: $(head -c 400 "$tmp/eps.json")"
bad sharpness "unknown" "$run" --bogus
bad histogram "no checkpoint" "$tmp/empty" --out "$tmp/x.svg"
bad histogram "no such run" "$tmp/missing" --out "$tmp/x.svg"
bad histogram "no such run" "$run/ckpt-00000008.safetensors" --out "$tmp/x.svg"
bad histogram "required" "$run"
bad histogram "matches no parameter" "$run" --tensors 'nothing_like_this' --out "$tmp/x.svg"
bad histogram "invalid regular expression" "$run" --tensors '(' --out "$tmp/x.svg"
bad histogram "exclude each other" "$run" --tensors fc --per-layer --out "$tmp/x.svg"
bad histogram "bins" "$run" --bins 1 --out "$tmp/x.svg"
[ -e "$tmp/x.svg" ] && fail "a refused histogram wrote its file"
[ "$(ls -l --time-style=full-iso "$run" | md5sum)" = "$before" ] && echo "ok   run directory unchanged" \
    || fail "the commands changed the run directory"
[ $fails -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all sharpness and histogram checks passed"
