#!/usr/bin/env bash
# Copy a sweep's small outputs into the repository: for every finished (or diverged) run of
# SWEEP_DIR (diverged: exit status 3 in SWEEP_DIR/logs/<run>.status), its config.json and metrics.jsonl into DEST/<run>/ (never checkpoints), then
# `optimlab report` of those runs into DEST/report/. Runs still training or stopped are listed
# and left out, so DEST only ever holds complete runs; rerun as more finish.
# usage: scripts/publish_results.sh SWEEP_DIR DEST [--group-by KEY]
set -eu
[ $# -ge 2 ] || { echo "usage: $0 SWEEP_DIR DEST [--group-by KEY]" >&2; exit 2; }
src=$1; dest=$2; shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${OPTIMLAB:-$here/build/optimlab}
[ -d "$src" ] || { echo "$0: $src: no such sweep directory" >&2; exit 2; }
mkdir -p "$dest"
done_runs=()
for d in "$src"/*/; do
    d=${d%/}; name=$(basename "$d")
    [ -f "$d/config.json" ] && [ -f "$d/metrics.jsonl" ] || continue
    # complete: its metrics end with the summary record, or the sweep recorded a divergence (exit 3)
    if tail -n 1 "$d/metrics.jsonl" | grep -q '"type":"summary"' ||
        [ "$(cat "$src/logs/$name.status" 2>/dev/null)" = 3 ]; then
        mkdir -p "$dest/$name"
        cp "$d/config.json" "$d/metrics.jsonl" "$dest/$name/"
        done_runs+=("$dest/$name")
    else
        echo "not finished, left out: $name"
    fi
done
[ ${#done_runs[@]} -gt 0 ] || { echo "no finished run in $src yet"; exit 0; }
"$bin" report "${done_runs[@]}" --out "$dest/report" "$@"
echo "published ${#done_runs[@]} runs into $dest"
