#!/usr/bin/env bash
# Run every libFuzzer target for a bounded time on a copy of its corpus.
# A crash input is added to fuzz/corpus/<target>/ so the ordinary tests replay it.
# Usage: scripts/fuzz.sh BUILD_DIR SECONDS
set -uo pipefail
build=$(cd "$1" && pwd)
secs=${2:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/optimlab-fuzz-XXXXXX)
trap 'rm -rf "$work"' EXIT
fail=0
for bin in "$build"/fuzz/fuzz_*; do
  t=${bin##*/fuzz_}
  mkdir -p "$work/$t/corpus" "$work/$t/artifacts"
  cp "$root/fuzz/corpus/$t"/* "$work/$t/corpus/" 2>/dev/null
  (cd "$work/$t" && "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 -timeout=10 \
     -artifact_prefix="$work/$t/artifacts/" corpus >"$work/$t/log" 2>&1)
  st=$?
  runs=$(grep -o "Done [0-9]* runs" "$work/$t/log" | tail -1)
  if [ $st -ne 0 ]; then
    for a in "$work/$t/artifacts"/*; do
      [ -f "$a" ] && cp "$a" "$root/fuzz/corpus/$t/regression-$(basename "$a")"
    done
    echo "fuzz_$t: FOUND A PROBLEM (exit $st); input saved under fuzz/corpus/$t/"
    tail -30 "$work/$t/log"
    fail=1
  else
    echo "fuzz_$t: ${runs:-?} in ${secs} s, no finding"
  fi
done
exit $fail
