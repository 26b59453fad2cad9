#!/usr/bin/env python3
"""Format the optimizer comparison runs as a markdown table.

Reads a list of runs (name, run directory, optimizer flags; tab-separated, written by
scripts/optimizer_table.sh), takes each run's summary line from DIR/metrics.jsonl and prints
the table, or with --doc replaces the block between the optimizer-table markers in that file.
"""
import argparse
import json
import os
import sys

BEGIN = "<!-- optimizer-table:begin -->"
END = "<!-- optimizer-table:end -->"


def summary(path):
    last = None
    evals = []
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("type") == "summary":
                last = rec
            elif rec.get("type") in ("epoch", "eval"):
                evals.append(rec)
    if last is None:
        raise ValueError("%s has no summary line (did the run finish?)" % path)
    return last, evals


def fmt_time(s):
    s = int(round(s))
    return "%d:%02d" % (s // 60, s % 60)


def table(rows, args):
    out = ["| optimizer | recipe | test acc. final | test acc. best (epoch) | train time | total time |",
           "|---|---|---|---|---|---|"]
    for name, rundir, flags in rows:
        s, _ = summary(os.path.join(rundir, "metrics.jsonl"))
        out.append("| %s | `%s` | %.2f %% | %.2f %% (%.2f) | %s | %s |" % (
            name, flags, 100 * s["final_test_acc"], 100 * s["best_test_acc"], s["best_epoch"],
            fmt_time(s["train_time"]), fmt_time(s["elapsed"])))
    out.append("")
    out.append("Common options: `%s`. Times are wall-clock on the machine that ran the table; "
               "\"train\" excludes evaluation." % args.strip())
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--list", required=True, help="tab-separated name, run directory, flags")
    ap.add_argument("--doc", help="markdown file whose optimizer-table block is replaced")
    ap.add_argument("--args", default="", help="options common to all runs (shown under the table)")
    a = ap.parse_args()
    rows = []
    with open(a.list) as f:
        for line in f:
            if line.strip():
                name, rundir, flags = line.rstrip("\n").split("\t")
                rows.append((name, rundir, flags))
    try:
        text = table(rows, a.args)
    except (OSError, ValueError, KeyError) as e:
        print("optimizer_table.py: %s" % e, file=sys.stderr)
        return 1
    if not a.doc:
        print(text)
        return 0
    with open(a.doc) as f:
        doc = f.read()
    if BEGIN not in doc or END not in doc:
        print("optimizer_table.py: %s lacks the %s ... %s markers" % (a.doc, BEGIN, END), file=sys.stderr)
        return 1
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    tmp = a.doc + ".tmp"
    with open(tmp, "w") as f:
        f.write(head + BEGIN + "\n" + text + "\n" + END + tail)
    os.replace(tmp, a.doc)
    print(text)
    print("table written to %s" % a.doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
