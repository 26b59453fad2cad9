#!/usr/bin/env bash
# Hostile-input suite (issue 10): every case is a small generated file or a
# command with its expected exit status, run under `timeout`; the files of an
# existing run directory (and of any directory a case must not change) are
# hashed before and after. Prints each case and the totals: cases tried,
# crashes, hangs, wrong statuses, failed checks, files damaged -- all zero but
# the first, or the suite fails.
# Usage: run.sh path/to/optimlab
set -uo pipefail
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-python3}
tmp=$(mktemp -d /tmp/optimlab-hostile-XXXXXX)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=1
limit=${HOSTILE_TIMEOUT:-60}
tried=0 crashes=0 hangs=0 wrong=0 checks=0 damaged=0 elapsed_ms=0
small=(--model mlp --widths 16 --dataset synthetic --synthetic-size 256 --batch-size 32 --threads 1 --quiet)

# sha256 of every file under the protected directories (the lock file aside:
# its flock is the point, its content the holder's pid)
protected=()
snapshot() {
  local d
  for d in "${protected[@]}"; do
    find "$d" -type f ! -name .lock -print0 2>/dev/null | sort -z | xargs -0 -r sha256sum
  done
}

# hcase NAME WANT CMD...: run, classify, compare the protected files
hcase() {
  local name=$1 want=$2; shift 2
  tried=$((tried + 1))
  local before after st verdict=ok t0
  before=$(snapshot)
  t0=$(date +%s%N)
  timeout -k 5 "$limit" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
  st=$?
  elapsed_ms=$((($(date +%s%N) - t0) / 1000000))
  after=$(snapshot)
  if [ $st -eq 124 ] || [ $st -eq 137 ]; then
    hangs=$((hangs + 1)); verdict=HANG
  elif { [ $st -ge 128 ] && [ $st -ne "$want" ]; } || grep -q "Sanitizer" "$tmp/err"; then
    crashes=$((crashes + 1)); verdict=CRASH
  elif [ $st -ne "$want" ]; then
    wrong=$((wrong + 1)); verdict=WRONG
  fi
  if [ "$before" != "$after" ]; then
    damaged=$((damaged + 1)); verdict="$verdict+DAMAGED"
    diff <(echo "$before") <(echo "$after") | head -4
  fi
  printf '%-7s %-58s exit %3d (want %d) %6d ms  %s\n' "$verdict" "$name" "$st" "$want" "$elapsed_ms" \
    "$(grep -m1 "^optimlab:" "$tmp/err" | cut -c1-100)"
}

# hcheck NAME CMD...: a property the previous case must leave (counted as a failed check)
hcheck() {
  local name=$1; shift
  if "$@" >/dev/null 2>&1; then
    printf '%-7s   check: %s\n' ok "$name"
  else
    checks=$((checks + 1)); printf '%-7s   check: %s\n' FAIL "$name"
  fi
}

jsonl_ok() { "${PYTHON:-python3}" -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$1"; }
export -f jsonl_ok
newest() { ls "$1"/ckpt-*.safetensors | tail -1; }
flip_byte() { # file offset: flip one bit of the byte at offset
  "$py" - "$1" "$2" <<'PY'
import sys
p, o = sys.argv[1], int(sys.argv[2])
b = bytearray(open(p, "rb").read()); b[o] ^= 1 << (o % 8); open(p, "wb").write(b)
PY
}

# ---- the reference run every case must leave alone ----------------------
ref=$tmp/ref
"$bin" train "${small[@]}" --epochs 2 --checkpoint-every 4 --keep-last 2 --out "$ref" >/dev/null ||
  { echo "FAIL: reference run"; exit 1; }
protected=("$ref")

# ---- data files (generated IDX sets) -------------------------------------
"$py" "$here/gen_idx.py" "$tmp/data" || { echo "FAIL: data generation"; exit 1; }
mnist=(--model mlp --widths 8 --dataset fashion-mnist --batch-size 16 --threads 1 --quiet --epochs 1)

# ---- a new run into an existing run directory ------------------------------
hcase "new run into a non-empty run directory" 2 "$bin" train "${small[@]}" --epochs 1 --out "$ref"
hcase "--checkpoint-every 4294967295e (with --overwrite)" 2 \
  "$bin" train "${small[@]}" --epochs 1 --checkpoint-every 4294967295e --overwrite --out "$ref"
hcase "--checkpoint-every 4294967296e" 2 "$bin" train "${small[@]}" --checkpoint-every 4294967296e --out "$ref"
hcase "--checkpoint-every 99999999999999999999" 2 \
  "$bin" train "${small[@]}" --checkpoint-every 99999999999999999999 --overwrite --out "$ref"
hcase "13-class fashion-mnist (with --overwrite)" 2 \
  "$bin" train "${mnist[@]}" --data-dir "$tmp/data/classes13" --overwrite --out "$ref"
hcase "14x14 test images beside 28x28 training images" 2 \
  "$bin" train "${mnist[@]}" --data-dir "$tmp/data/test14" --overwrite --out "$ref"
for d in classes13 test14 test56; do # the same data into a new directory: refused, nothing created
  hcase "$d data into a new directory" 2 "$bin" train "${mnist[@]}" --data-dir "$tmp/data/$d" --out "$tmp/new-$d"
  hcheck "no directory created ($d)" test ! -e "$tmp/new-$d"
done
cp -r "$tmp/data/ok" "$tmp/data/devzero"; ln -sf /dev/zero "$tmp/data/devzero/train-images-idx3-ubyte"
hcase "/dev/zero as the training images" 2 "$bin" train "${mnist[@]}" --data-dir "$tmp/data/devzero" --out "$tmp/dz"
cp -r "$tmp/data/ok" "$tmp/data/loop"; rm "$tmp/data/loop/train-images-idx3-ubyte"
ln -s loop1 "$tmp/data/loop/loop2"; ln -s loop2 "$tmp/data/loop/loop1"
ln -s loop1 "$tmp/data/loop/train-images-idx3-ubyte"
hcase "a symlink loop as the training images" 2 "$bin" train "${mnist[@]}" --data-dir "$tmp/data/loop" --out "$tmp/dz"
hcase "fine 28x28 generated set into a new directory" 0 "$bin" train "${mnist[@]}" --data-dir "$tmp/data/ok" \
  --out "$tmp/okrun"

# ---- memory: refused in seconds from the estimate, or run small -------------
# peak RSS of a command, in MB: its exit status, or 9 above the limit
rss_under=("$py" -c 'import resource, subprocess, sys
st = subprocess.call(sys.argv[2:])
mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
sys.stderr.write("optimlab: (peak RSS %.0f MB)\n" % mb)
sys.exit(9 if mb > float(sys.argv[1]) else st)')
fast() { hcheck "refused within 5 s ($elapsed_ms ms)" test "$elapsed_ms" -lt 5000; }
hcase "--model mlp --widths 50000,50000 (30 GB)" 1 \
  "$bin" train "${small[@]}" --widths 50000,50000 --overwrite --out "$ref"
fast
hcheck "the refusal gives the estimate" grep -q "GB needed" "$tmp/err"
hcase "one 4096x4096 image, ResNet-20 (29 GB of activations)" 1 \
  "$bin" train --model resnet20 --dataset fashion-mnist --data-dir "$tmp/data/big4096" --batch-size 1 --quiet \
  --overwrite --out "$ref"
fast
hcase "one 4096x4096 image, MLP 1024,1024 (17 G parameters)" 1 \
  "$bin" train --model mlp --dataset fashion-mnist --data-dir "$tmp/data/big4096" --quiet --overwrite --out "$ref"
fast
hcase "--synthetic-size 100000000 (98 GB of data)" 1 \
  "$bin" train "${small[@]}" --synthetic-size 100000000 --overwrite --out "$ref"
fast
hcase "--max-memory 1M on a small run" 1 "$bin" train "${small[@]}" --max-memory 1M --overwrite --out "$ref"
hcase "--max-memory 10x" 2 "$bin" train "${small[@]}" --max-memory 10x --out "$tmp/mm"
hcase "--batch-size 1048576 on 128 samples runs in under 300 MB" 0 "${rss_under[@]}" 300 \
  "$bin" train "${small[@]}" --synthetic-size 128 --batch-size 1048576 --epochs 1 --out "$tmp/bigbatch"
hcase "the same with --max-memory none" 0 "${rss_under[@]}" 300 "$bin" train "${small[@]}" --synthetic-size 128 \
  --batch-size 1048576 --eval-batch-size 1048576 --epochs 1 --max-memory none --out "$tmp/bigbatch2"
hcase "bench train --widths 50000,50000" 1 "$bin" bench train --model mlp --widths 50000,50000 --threads 1
fast
hcase "bench optimizer --params 2000000000 --max-memory 1G" 1 "$bin" bench optimizer --params 2000000000 --max-memory 1G
fast
hcase "import into --widths 50000,50000" 1 "$bin" import "$(newest "$ref")" --model mlp --widths 50000,50000 \
  --input 1x28x28 --classes 10 --out "$tmp/big.safetensors"
fast

# ---- declared sizes, checked before the body is read -------------------------
hcase "gzip IDX set, well-formed" 0 "$bin" train "${mnist[@]}" --data-dir "$tmp/data/gz-ok" --out "$tmp/gzok"
hcase "gzip IDX whose header claims 4.1 GB" 2 "$bin" train "${mnist[@]}" --data-dir "$tmp/data/gz-claim41" \
  --overwrite --out "$ref"
fast
hcase "the same with the gzip trailer forged to agree" 2 "$bin" train "${mnist[@]}" \
  --data-dir "$tmp/data/gz-forged" --overwrite --out "$ref"
fast
hcase "gzip IDX with trailing garbage" 2 "$bin" train "${mnist[@]}" --data-dir "$tmp/data/gz-garbage" \
  --overwrite --out "$ref"
mkdir -p "$tmp/cifar6"
for f in data_batch_1 data_batch_2 data_batch_3 data_batch_4 data_batch_5 test_batch; do
  truncate -s 30730000 "$tmp/cifar6/$f.bin"
done
truncate -s 6G "$tmp/cifar6/data_batch_1.bin" # sparse: no disk used
hcase "a 6 GB (sparse) CIFAR-10 file" 2 "$bin" train --model mlp --widths 8 --dataset cifar10 --quiet \
  --data-dir "$tmp/cifar6" --overwrite --out "$ref"
fast
rm -rf "$tmp/cifar6"

# ---- a second writer --------------------------------------------------------
# another process holds the lock (and wrote its pid into it, as optimlab does)
"$py" -c 'import fcntl, os, sys, time
f = open(sys.argv[1], "r+"); fcntl.flock(f, fcntl.LOCK_EX)
f.truncate(0); f.write("%d\n" % os.getpid()); f.flush(); time.sleep(60)' "$ref/.lock" &
holder=$!
for _ in $(seq 1 100); do grep -q "^$holder$" "$ref/.lock" 2>/dev/null && break; sleep 0.05; done
hcase "--resume of a directory another process holds" 2 "$bin" train --resume "$ref" --epochs 3
hcheck "the refusal names the holder" grep -q "in use by pid $holder" "$tmp/err"
hcase "--overwrite of a directory another process holds" 2 \
  "$bin" train "${small[@]}" --epochs 1 --overwrite --out "$ref"
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null

# ---- export onto checkpoints ------------------------------------------------
hcase "export RUN --out RUN's newest checkpoint" 2 "$bin" export "$ref" --out "$(newest "$ref")"
hcase "export RUN --out RUN's older checkpoint" 2 "$bin" export "$ref" --out "$(ls "$ref"/ckpt-* | head -1)"
ln -s "$(newest "$ref")" "$tmp/alias.safetensors"
hcase "export CKPT --out a symlink to it" 2 "$bin" export "$(newest "$ref")" --out "$tmp/alias.safetensors"
hcase "verify the reference run" 0 "$bin" verify "$ref"

# ---- non-regular files named like checkpoints ------------------------------
cp -r "$ref" "$tmp/fifo"; rm -f "$tmp/fifo/.lock"
mkfifo "$tmp/fifo/ckpt-99999999.safetensors"
mkdir "$tmp/fifo/ckpt-99999998.safetensors"
protected=("$ref" "$tmp/fifo")
hcase "verify a FIFO named like a checkpoint" 2 "$bin" verify "$tmp/fifo/ckpt-99999999.safetensors"
hcase "verify DIR with a FIFO and a directory named like checkpoints" 0 "$bin" verify "$tmp/fifo"
protected=("$ref")
hcase "--resume DIR with a FIFO named like the newest checkpoint" 0 "$bin" train --resume "$tmp/fifo" --epochs 3

# ---- header bit flips: detected, and the fallback takes an older valid one ---
cp -r "$ref" "$tmp/flip"; rm -f "$tmp/flip/.lock"
ck=$(newest "$tmp/flip")
hl=$("$py" -c 'import struct,sys; print(struct.unpack("<Q", open(sys.argv[1],"rb").read(8))[0])' "$ck")
cp "$ck" "$tmp/pristine"
for off in 3 8 40 $((hl / 3)) $((hl / 2)) $((hl - 2)) $((hl + 7)); do
  cp "$tmp/pristine" "$ck"; flip_byte "$ck" "$off"
  hcase "verify a checkpoint with header byte $off flipped" 2 "$bin" verify "$ck"
done
# the batch size stored in the configuration: 32 -> 22 is one bit (0x33 -> 0x32)
cp "$tmp/pristine" "$ck"
"$py" - "$ck" <<'PY'
import sys
p = sys.argv[1]; b = open(p, "rb").read()
key = b'\\"batch-size\\": \\"'
i = b.index(key + b'32') + len(key)
b = bytearray(b); b[i] ^= 0x01; open(p, "wb").write(b)
PY
hcase "verify DIR whose newest stores batch size 22" 0 "$bin" verify "$tmp/flip"
hcheck "verify DIR fell back to the older checkpoint" bash -c "! grep -q '$(basename "$ck")' '$tmp/out'"
hcase "--resume falls back past the flipped checkpoint" 0 "$bin" train --resume "$tmp/flip" --quiet
hcheck "the resumed run kept batch size 32" grep -q '"batch-size": *"32"' "$tmp/flip/config.json"

# ---- pruning: corrupt newest, fallback, new checkpoints, keep-last 1 -------
cp -r "$ref" "$tmp/prune"; rm -f "$tmp/prune/.lock"
ck=$(newest "$tmp/prune"); size=$(stat -c %s "$ck")
printf '\x55' | dd of="$ck" bs=1 seek=$((size - 10)) conv=notrunc 2>/dev/null
hcase "--resume past a corrupt newest with --keep-last 1" 0 \
  "$bin" train --resume "$tmp/prune" --epochs 4 --keep-last 1 --checkpoint-every 4
hcase "the pruned run verifies" 0 "$bin" verify "$tmp/prune"
hcheck "and reports the final step 32" grep -q "step 32" "$tmp/out"
hcase "and resumes" 0 "$bin" train --resume "$tmp/prune" --epochs 5 --keep-last 1
cp -r "$ref" "$tmp/misnamed"; rm -f "$tmp/misnamed/.lock"
cp "$(ls "$tmp/misnamed"/ckpt-* | head -1)" "$tmp/misnamed/ckpt-00000099.safetensors"
hcase "verify DIR with an older checkpoint named ckpt-99" 0 "$bin" verify "$tmp/misnamed"
hcheck "the real newest (step 16) is chosen" grep -q "ckpt-00000016.*step 16" "$tmp/out"

# ---- metrics.jsonl that does not match the checkpoint ----------------------
for kind in shorter longer edited; do
  cp -r "$ref" "$tmp/m-$kind"; rm -f "$tmp/m-$kind/.lock"
  f=$tmp/m-$kind/metrics.jsonl
  case $kind in
    shorter) head -c 100 "$ref/metrics.jsonl" > "$f" ;;
    longer) printf '{"type":"step","step":9' >> "$f" ;;
    edited) sed -i '1s/"step"/"STEP"/' "$f" ;;
  esac
  hcase "--resume with a $kind metrics.jsonl" 0 "$bin" train --resume "$tmp/m-$kind" --epochs 3
  if [ $kind = longer ]; then # the prefix matches: what came after the checkpoint goes, whole lines stay
    hcheck "every line parses, no marker ($kind)" bash -c "jsonl_ok '$f' && ! grep -q resume_mismatch '$f'"
  else
    hcheck "no NUL byte, a resume_mismatch marker line ($kind)" \
      bash -c "! grep -qaP '\\x00' '$f' && grep -q resume_mismatch '$f'"
  fi
done
cp -r "$ref" "$tmp/m-good"; rm -f "$tmp/m-good/.lock"
hcase "--resume with the matching metrics.jsonl" 0 "$bin" train --resume "$tmp/m-good" --epochs 3
hcheck "every line parses, no marker" bash -c "jsonl_ok '$tmp/m-good/metrics.jsonl' && \
  ! grep -q resume_mismatch '$tmp/m-good/metrics.jsonl'"

# ---- divergence ------------------------------------------------------------
div=(--model mlp --widths 32 --dataset synthetic --synthetic-size 512 --batch-size 32 --threads 1 --quiet)
hcase "--lr 100 (SGD)" 3 "$bin" train "${div[@]}" --epochs 5 --lr 100 --out "$tmp/d1"
hcase "--optimizer adam --lr 1e6" 3 "$bin" train "${div[@]}" --epochs 5 --optimizer adam --lr 1e6 --out "$tmp/d2"
hcase "a warm-up into --lr 30, checkpoints every 2 steps, --keep-last 1" 3 \
  "$bin" train "${div[@]}" --epochs 12 --lr 30 --warmup-epochs 10 --checkpoint-every 2 --keep-last 1 --out "$tmp/d3"
sane=$(grep -o "explosion: [^ ]*" "$tmp/err" | cut -d' ' -f2)
hcheck "the exit-3 message names a kept checkpoint" test -f "$sane"
hcheck "which verifies" "$bin" verify "$sane"
hcheck "and holds weights of a sane loss" "$py" - "$sane" <<'PY'
import json, struct, sys
b = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", b[:8])[0]
st = json.loads(json.loads(b[8:8 + n])["__metadata__"]["train_state"])
sys.exit(0 if st["loss_hist"] and max(st["loss_hist"][:st["loss_hist_pos"]] or [0]) < 23 else 1)
PY

# the same run stopped at step 10 (after the sane checkpoint, before the explosion) and resumed:
# the sane checkpoint stays protected from --keep-last 1 across the resume, and is named
"$bin" train "${div[@]}" --epochs 12 --lr 30 --warmup-epochs 10 --checkpoint-every 2 --keep-last 1 --stop-after 10 \
  --out "$tmp/d4" >/dev/null 2>&1
hcase "the same stopped at step 10 and resumed" 3 "$bin" train --resume "$tmp/d4" --quiet
sane4=$(grep -o "explosion: [^ ]*" "$tmp/err" | cut -d' ' -f2)
hcheck "it names the uninterrupted run's checkpoint ($(basename "$sane")), kept" \
  test -f "$sane4" -a "$(basename "$sane4")" = "$(basename "$sane")"
hcheck "which verifies" "$bin" verify "$sane4"

# ---- values accepted silently before ---------------------------------------
hcase "--lr 0x10 (a hex float)" 2 "$bin" train "${small[@]}" --lr 0x10 --out "$tmp/hex"
hcase "--momentum 1e1x" 2 "$bin" train "${small[@]}" --momentum 1e1x --out "$tmp/hex"
hcase "--resume DIR --out OTHER" 2 "$bin" train --resume "$ref" --out "$tmp/other"
hcase "--resume DIR --init-from FILE" 2 "$bin" train --resume "$ref" --init-from "$(newest "$ref")"
hcase "--resume DIR --dataset fashion-mnist (stored: synthetic)" 2 "$bin" train --resume "$ref" --dataset fashion-mnist
"$bin" export "$ref" --out "$tmp/w.safetensors" >/dev/null
"$py" - "$tmp/w.safetensors" "$tmp/nan.safetensors" <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read()); n = struct.unpack("<Q", b[:8])[0]
b[8 + n + 4:8 + n + 8] = struct.pack("<I", 0x7fc00000)  # the second float: NaN
open(sys.argv[2], "wb").write(b)
PY
hcase "import of NaN weights" 2 "$bin" import "$tmp/nan.safetensors" --model mlp --widths 16 --input 1x28x28 \
  --classes 10 --out "$tmp/nan2.safetensors"
hcase "--init-from NaN weights" 2 "$bin" train "${small[@]}" --init-from "$tmp/nan.safetensors" --out "$tmp/nanrun"
hcheck "the NaN run created no directory" test ! -e "$tmp/nanrun"

# ---- options of a feature that is not enabled: rejected, not stored ---------
# (the default schedule is cosine, batch schedule constant, no PowerSGD/DiLoCo,
# SGD, synthetic data without augmentation); each with --overwrite of the
# reference run, which must stay as it was
hcase "--milestones abc" 2 "$bin" train "${small[@]}" --milestones abc --overwrite --out "$ref"
hcase "--cyclic-mode bogus" 2 "$bin" train "${small[@]}" --cyclic-mode bogus --overwrite --out "$ref"
hcase "--plateau-factor nan" 2 "$bin" train "${small[@]}" --plateau-factor nan --overwrite --out "$ref"
na=(--sched-param k=1 --step-size 2 --gamma 0.5 --milestones 1,2 --power 2 --start-factor 0.5 --end-factor 0.1
  --t0 1 --t-mult 2 --max-lr 1 --cycle-epochs 3 --step-size-up 4 --step-size-down 4 --cyclic-mode triangular2
  --cyclic-gamma 0.9 --pct-start 0.2 --div-factor 10 --final-div-factor 100 --anneal linear --three-phase
  --no-cycle-momentum --base-momentum 0.8 --max-momentum 0.9 --decay-frac 0.2 --wsd-decay sqrt
  --sequence "constant; cosine" --sequence-milestones 1 --plateau-mode max --plateau-factor 0.5
  --plateau-patience 2 --plateau-threshold 0.01 --plateau-threshold-mode abs --plateau-cooldown 1
  --plateau-min-lr 0.001 --batch-milestones 1 --batch-factor 3 --batch-ramp-samples 100 --batch-ramp-ratio 0.5
  --batch-ramp-increment 8 --max-batch-size 64 --lr-scaling-knee 4 --base-batch-size 64 --crop-pad 2
  --data-dir /tmp --powersgd-start-step 2 --powersgd-min-compression 3 --powersgd-no-error-feedback
  --powersgd-no-warm-start --outer-optimizer sgd --outer-lr 0.5 --outer-momentum 0.5 --bn-recompute-batches 5)
i=0
while [ $i -lt ${#na[@]} ]; do
  opt=(${na[$i]}); i=$((i + 1))
  if [ $i -lt ${#na[@]} ] && [ "${na[$i]#--}" = "${na[$i]}" ]; then opt+=("${na[$i]}"); i=$((i + 1)); fi
  hcase "${opt[*]} (does not apply)" 2 "$bin" train "${small[@]}" "${opt[@]}" --overwrite --out "$ref"
done
hcheck "the refusal says what it applies to" grep -q "applies only\|does not apply" "$tmp/err"
hcase "--schedule cyclic --max-lr 1 --cyclic-mode bogus" 2 "$bin" train "${small[@]}" --schedule cyclic --max-lr 1 \
  --cyclic-mode bogus --out "$tmp/na"
hcase "--schedule cyclic --step-size-up 4 --cycle-epochs 99 (overridden, still checked)" 2 \
  "$bin" train "${small[@]}" --schedule cyclic --max-lr 1 --step-size-up 4 --cycle-epochs 99 --out "$tmp/na"
hcase "--recipe goyal --schedule cosine (the recipe's milestone options stay presets)" 0 \
  "$bin" train "${small[@]}" --recipe goyal --schedule cosine --batch-size 32 --epochs 1 --out "$tmp/na"
"$bin" train "${small[@]}" --epochs 1 --eta-min 0.001 --out "$tmp/etamin" >/dev/null
hcase "--resume of a cosine run with --eta-min, --schedule step (not carried over)" 0 \
  "$bin" train --resume "$tmp/etamin" --schedule step --step-size 1 --epochs 2

# ---- raw bytes from corrupt headers are escaped in messages ------------------
"$py" - "$tmp/esc.safetensors" <<'PY'
import json, struct, sys
h = {"\u001b[31mevil\u0007": {"dtype": "F32\u001b]0;x", "shape": [1], "data_offsets": [0, 4]}}
b = json.dumps(h).encode()
open(sys.argv[1], "wb").write(struct.pack("<Q", len(b)) + b + b"\0\0\0\0")
PY
hcase "import of a tensor named with terminal escapes" 2 "$bin" import "$tmp/esc.safetensors" --model mlp \
  --widths 16 --input 1x28x28 --classes 10 --out "$tmp/esc2.safetensors"
hcheck "the message shows them as \\xNN, no raw control byte" bash -c \
  "grep -qF '\\x1b[31mevil\\x07' '$tmp/err' && ! LC_ALL=C grep -qP '[\\x00-\\x09\\x0b-\\x1f\\x7f]' '$tmp/err'"
hcase "verify a file whose name has a control byte" 2 "$bin" verify "$tmp/$(printf 'bad\033name').safetensors"
hcheck "the path is escaped too" bash -c "! LC_ALL=C grep -qP '[\\x00-\\x09\\x0b-\\x1f\\x7f]' '$tmp/err'"

# ---- language models: text and llm.c token files ------------------------------
gpt=(--model gpt --n-layer 1 --n-head 2 --n-embd 16 --seq-len 16 --threads 1 --quiet --batch-size 8)
head -c 20000 "$here/../../README.md" > "$tmp/text.txt"
"$bin" train "${gpt[@]}" --dataset text --text-file "$tmp/text.txt" --steps 3 --epochs 0 --out "$tmp/lmref" \
  >/dev/null || { echo "FAIL: language-model reference run"; exit 1; }
protected=("$ref" "$tmp/lmref")
"$py" - "$tmp" <<'PY'
import struct, sys
d = sys.argv[1]
def write(name, toks, magic=20240520, version=1, count=None, cut=0, extra=b""):
    h = [0] * 256
    h[0], h[1], h[2] = magic, version, len(toks) if count is None else count
    body = struct.pack("<%dH" % len(toks), *toks)
    open(d + "/" + name, "wb").write(struct.pack("<256i", *h) + body[:len(body) - cut] + extra)
toks = [i % 200 for i in range(500)]
write("ok.bin", toks)
write("magic.bin", toks, magic=0x7fffffff)
write("version.bin", toks, version=-1)
write("trunc.bin", toks, cut=1)
write("claim.bin", toks, count=2**31 - 1)
write("negative.bin", toks, count=-5)
write("extra.bin", toks, extra=b"\0")
write("vocab.bin", toks[:-1] + [65535])
write("empty.bin", [])
open(d + "/header-only.bin", "wb").write(struct.pack("<100i", 20240520, 1, 0, *[0] * 97))
PY
tokens=("$bin" train "${gpt[@]}" --dataset tokens --vocab-size 256 --val-bin "$tmp/ok.bin" --train-bin)
hcase "token file, well-formed" 0 "${tokens[@]}" "$tmp/ok.bin" --epochs 1 --out "$tmp/tokok"
hcase "language-model run into a non-empty run directory" 2 "${tokens[@]}" "$tmp/ok.bin" --out "$tmp/lmref"
for k in magic version trunc claim negative extra vocab empty header-only; do
  hcase "token file: $k" 2 "${tokens[@]}" "$tmp/$k.bin" --out "$tmp/tok-$k"
  hcheck "no directory created (token file: $k)" test ! -e "$tmp/tok-$k"
done
hcase "token file: /dev/zero" 2 "${tokens[@]}" /dev/zero --out "$tmp/tok-z"
hcase "token file: a directory" 2 "${tokens[@]}" "$tmp" --out "$tmp/tok-z"
: > "$tmp/empty.txt"
hcase "text: an empty file" 2 "$bin" train "${gpt[@]}" --dataset text --text-file "$tmp/empty.txt" --out "$tmp/tx"
hcase "text: /dev/zero" 2 "$bin" train "${gpt[@]}" --dataset text --text-file /dev/zero --out "$tmp/tx"
hcase "text: a symlink loop" 2 "$bin" train "${gpt[@]}" --dataset text --text-file "$tmp/data/loop/loop1" --out "$tmp/tx"
truncate -s 40G "$tmp/sparse.txt"
hcase "text: a 40 GB (sparse) file, refused from its size" 1 \
  "$bin" train "${gpt[@]}" --dataset text --text-file "$tmp/sparse.txt" --out "$tmp/tx"
rm -f "$tmp/sparse.txt"
hcase "--seq-len 100000 on 20 KB of text" 2 "$bin" train "${gpt[@]}" --dataset text --text-file "$tmp/text.txt" \
  --seq-len 100000 --out "$tmp/tx"
hcheck "no directory created (text cases)" test ! -e "$tmp/tx"
hcase "sample: a prompt longer than the context" 2 "$bin" sample "$tmp/lmref" --prompt "$(head -c 17 "$tmp/text.txt")"
hcase "sample: --seq-len beyond the checkpoint's context" 2 "$bin" sample "$tmp/lmref" --seq-len 17
hcase "sample: --top-k beyond the vocabulary" 2 "$bin" sample "$tmp/lmref" --top-k 257
hcase "sample: --temperature -1" 2 "$bin" sample "$tmp/lmref" --temperature -1
hcase "sample: a run of an image model" 2 "$bin" sample "$ref"
hcase "sample: 20 tokens" 0 "$bin" sample "$tmp/lmref" --prompt "The" --tokens 20 --seed 1 --threads 1

# ---- signals during start-up -------------------------------------------------
"$bin" train --model mlp --widths 8 --dataset synthetic --synthetic-size 100000 --threads 1 --quiet --epochs 1 \
  --out "$tmp/sig" >/dev/null 2>"$tmp/sigerr" &
pid=$!
sleep 0.3
kill -TERM $pid
wait $pid
st=$?
tried=$((tried + 1))
if [ $st -eq 4 ]; then printf '%-7s %-58s exit %3d (want 4)\n' ok "SIGTERM while loading data" $st
else wrong=$((wrong + 1)); printf '%-7s %-58s exit %3d (want 4)\n' WRONG "SIGTERM while loading data" $st; fi

echo "hostile: $tried cases tried, $crashes crashes, $hangs hangs, $wrong wrong statuses, $checks failed checks," \
  "$damaged files damaged"
[ $crashes -eq 0 ] && [ $hangs -eq 0 ] && [ $wrong -eq 0 ] && [ $checks -eq 0 ] && [ $damaged -eq 0 ]
