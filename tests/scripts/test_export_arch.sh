#!/usr/bin/env bash
# optimlab export recovers the architecture of a checkpoint from its stored
# name exactly: a checkpoint whose model claims resnet182 while its depth is 8
# is refused with one line naming it (exit 2); a substring match used to read
# any name containing "18" as the torchvision resnet18. The unmodified
# checkpoint still exports.
# Usage: test_export_arch.sh path/to/optimlab
set -uo pipefail
bin=$1
py=/usr/bin/python3; [ -x $py ] || py=python3
tmp=$(mktemp -d /tmp/optimlab-exarch-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0
"$bin" train --model resnet8 --dataset synthetic --synthetic-size 256 --batch-size 64 --threads 1 --quiet \
  --epochs 1 --out "$tmp/run" >/dev/null || { echo "FAIL: setup"; exit 1; }
ck=$(ls "$tmp"/run/ckpt-*.safetensors | tail -1)
mkdir -p "$tmp/claim"
# rewrite the model description in the safetensors header, with a whole-file checksum that matches
# again (format 2), so that only the architecture check can refuse it
"$py" - "$ck" "$tmp/claim/$(basename "$ck")" <<'PY' || { echo "FAIL: rewrite"; exit 1; }
import json, struct, sys, zlib
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
m = json.loads(h["__metadata__"]["model"])
assert m["arch"] == "resnet8"
m["arch"] = "resnet182"
h["__metadata__"]["model"] = json.dumps(m, separators=(",", ":"), sort_keys=True)
h["__metadata__"]["file_crc32"] = "00000000"
hb = json.dumps(h, separators=(",", ":")).encode()
hb += b" " * ((8 - len(hb) % 8) % 8)
out = struct.pack("<Q", len(hb)) + hb + b[8 + n:]
crc = "%08x" % zlib.crc32(out)
out = out.replace(b'"file_crc32":"00000000"', ('"file_crc32":"%s"' % crc).encode(), 1)
open(sys.argv[2], "wb").write(out)
PY
"$bin" export "$tmp/claim" --out "$tmp/w.safetensors" >"$tmp/out" 2>"$tmp/err"
st=$?
if [ $st -ne 2 ] || [ "$(wc -l <"$tmp/err")" -ne 1 ] || ! grep -q "^optimlab: .*'resnet182'" "$tmp/err"; then
  echo "FAIL: a checkpoint claiming resnet182 (depth 8): exit $st: $(head -2 "$tmp/err")"; fail=1
else
  echo "ok   claimed resnet182 refused: $(cat "$tmp/err")"
fi
[ -e "$tmp/w.safetensors" ] && { echo "FAIL: wrote an export for the refused checkpoint"; fail=1; }
if "$bin" export "$tmp/run" --out "$tmp/ok.safetensors" >"$tmp/out" 2>&1 && grep -q "^exported resnet8 " "$tmp/out"; then
  echo "ok   $(cat "$tmp/out")"
else
  echo "FAIL: export of the real run: $(cat "$tmp/out")"; fail=1
fi
exit $fail
