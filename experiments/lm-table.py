#!/usr/bin/env python3
"""The measured tables of docs/language-model.md from run directories: per run the last
validation record (loss in nats per byte, perplexity, bits per byte, next-byte accuracy), the
optimizer steps, the tokens trained on (the samples the last step record counts, or steps x batch,
x seq_len) and the
training time. usage: experiments/lm-table.py RUN_DIR...  (a row per run, named after the
directory)"""
import json
import math
import os
import sys


def row(run):
    recs = []
    with open(os.path.join(run, "metrics.jsonl")) as f:
        for line in f:
            try:
                recs.append(json.loads(line))
            except ValueError:
                pass
    cfg = json.load(open(os.path.join(run, "config.json")))
    evals = [r for r in recs if r.get("type") in ("epoch", "eval")]
    summ = [r for r in recs if r.get("type") == "summary"]
    if not evals or not summ:
        return None
    ev, s = evals[-1], summ[-1]
    seq = int(cfg.get("seq-len") or 128)
    steps = [r for r in recs if r.get("type") == "step"]
    # a batch schedule logs the samples consumed; a constant batch (runs under an epoch) is steps x batch
    samples = steps[-1].get("samples") if steps else None
    if samples is None:
        samples = s["steps"] * int(cfg["batch-size"])
    return dict(name=os.path.basename(os.path.normpath(run)), optimizer=cfg.get("optimizer"), lr=cfg.get("lr"),
                steps=s["steps"], loss=ev["test_loss"], ppl=math.exp(ev["test_loss"]),
                bpb=ev["test_loss"] / math.log(2), acc=ev["test_acc"], train_loss=s["final_train_loss"],
                time=s["train_time"], tokens=int(samples) * seq)


def main(runs):
    rows = [r for r in (row(d) for d in runs) if r]
    best = min(r["loss"] for r in rows)
    print("| run | optimizer | peak lr | steps | tokens | val loss (nats/byte) | val perplexity | val bits/byte "
          "| next-byte acc. | train time |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        b = "**" if r["loss"] == best else ""
        print(f"| {r['name']} | {r['optimizer']} | {r['lr']} | {r['steps']} | {r['tokens']:,} | {b}{r['loss']:.4f}{b} | "
              f"{r['ppl']:.3f} | {r['bpb']:.3f} | {100 * r['acc']:.1f} % | {r['time'] / 60:.1f} min |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: lm-table.py RUN_DIR...")
    main(sys.argv[1:])
