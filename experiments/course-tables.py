#!/usr/bin/env python3
"""The course's four tables, ours beside the deck's numbers, from published runs
(scripts/publish_results.sh copies each finished run's config.json and metrics.jsonl):

  experiments/course-tables.py [RESULTS_DIR]      (default docs/results; markdown on stdout)

RESULTS_DIR/practical/<run>, skips-depth/model=<net>, width/width=<k> and large-batch/<run> are
read; a run not there yet is shown as "-". Under each table comes RESULTS_DIR/<its directory>/
README.md when there is one: what reproduces and what does not, written as the runs finish.
Accuracies are percentages of the test set: the practical's column is the best test accuracy of the
run (the practical reports its best validation accuracy), the error columns are 100 - the final
test accuracy (as He et al. report)."""
import json
import math
import os
import statistics
import sys

# the practical (IDRIS-CNRS/DLO-JZ Jour3/1.tp_optimizer, ResNet-18 on CIFAR-10, 1 A100): best
# validation accuracy at batch 256 (30 epochs) and 8192 (75 epochs)
PRACTICAL = [("SGD, constant lr", "sgd-constant", 77.8, 67.0),
             ("SGD, one-cycle", "sgd-onecycle", 78.4, 72.9),
             ("SGD, one-cycle, wd 5e-4", "sgd-onecycle-wd", 78.4, 74.6),
             ("AdamW", "adamw", 83.2, 84.5),
             ("LAMB", "lamb", 77.7, 85.0),
             ("LARC (SGD)", "larc", 85.2, 81.4),
             ("Lion", "lion", 84.2, 79.8)]
# the deck, CIFAR-10 test error (%): with and without skip connections; ResNet-56 by width
DEPTH = [(20, 7.37, 8.18), (56, 5.89, 13.31), (110, 5.79, 16.44)]
WIDTH = [(1, 5.89), (2, 5.07), (4, 4.34), (8, 3.93)]
# experiments/large-batch.yaml: (run, what it is, the run it is compared with: its batch-128 twin at equal
# epochs; for the equal-steps rows, the batch-4096 run with the same 450 steps)
LARGE = [("sgd-b128", "SGD+Nesterov, lr 0.1, wd 5e-4", None),
         ("sgd-b4096", "same, no lr scaling", "sgd-b128"),
         ("sgd-b4096-goyal", "same, linear scaling to 3.2, 2-epoch warm-up", "sgd-b128"),
         ("sgd-b4096-sqrt", "same, sqrt scaling to 0.57, 2-epoch warm-up", "sgd-b128"),
         ("lars-b4096", "LARS, lr 10, trust 0.001, 2-epoch warm-up", "sgd-b128"),
         ("lamb-b4096", "LAMB, lr 0.05, wd 0.01, 2-epoch warm-up", "sgd-b128"),
         ("sgd-b128-wd0", "SGD+Nesterov, lr 0.1, wd 0", None),
         ("sgd-b4096-goyal-wd0", "same, linear scaling, 2-epoch warm-up", "sgd-b128-wd0"),
         ("adam-b128", "Adam, lr 1e-3, wd 5e-4 (L2)", None),
         ("adam-b4096-sqrt", "same, sqrt scaling, 2-epoch warm-up", "adam-b128"),
         ("adam-b128-wd0", "Adam, lr 1e-3, wd 0", None),
         ("adam-b4096-sqrt-wd0", "same, sqrt scaling, 2-epoch warm-up", "adam-b128-wd0"),
         ("sgd-b128-450steps", "SGD+Nesterov, lr 0.1, wd 5e-4, batch 128 for batch 4096's 450 steps", "sgd-b4096"),
         ("adam-b128-450steps", "Adam, lr 1e-3, wd 5e-4, batch 128 for 450 steps", "adam-b4096-sqrt")]


def load(path):
    """The run's summary and config, or None while it is not published (or not finished)."""
    try:
        cfg = json.load(open(os.path.join(path, "config.json")))
        summ = None
        with open(os.path.join(path, "metrics.jsonl")) as f:
            for line in f:
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                if isinstance(r, dict) and r.get("type") == "summary":
                    summ = r
    except (OSError, ValueError):
        return None
    if summ is None:
        return None
    summ["config"] = cfg
    return summ


def pct(x):
    return "-" if x is None else f"{x:.2f}"


def acc(run, key):
    return None if run is None or run.get(key) is None else 100.0 * run[key]


def err(run):
    a = acc(run, "final_test_acc")
    return None if a is None else 100.0 - a


def practical(root):
    print("| optimizer | deck, b256 | ours, b256 | deck, b8192 | ours, b8192 | deck, change | ours, change "
          "| our lr (finder), b256 / b8192 |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    seen = []
    for label, suffix, d256, d8192 in PRACTICAL:
        r = [load(os.path.join(root, "practical", f"b{b}-{suffix}")) for b in (256, 8192)]
        seen += r
        a = [acc(x, "best_test_acc") for x in r]
        ch = None if None in a else a[1] - a[0]
        lrs = " / ".join("-" if x is None else str(x["config"].get("lr", "-")) for x in r)
        print(f"| {label} | {d256} | {pct(a[0])} | {d8192} | {pct(a[1])} | {d8192 - d256:+.1f} | "
              f"{'-' if ch is None else f'{ch:+.1f}'} | {lrs} |")
    return seen


def depth(root):
    print("| depth | deck, ResNet | ours, ResNet | deck, no skips | ours, no skips |")
    print("|---:|---:|---:|---:|---:|")
    seen = []
    for n, dres, dplain in DEPTH:
        res = load(os.path.join(root, "skips-depth", f"model=resnet{n}"))
        plain = load(os.path.join(root, "skips-depth", f"model=plain{n}"))
        seen += [res, plain]
        print(f"| {n} | {dres} | {pct(err(res))} | {dplain} | {pct(err(plain))} |")
    return seen


def width(root):
    print("| width k | deck, ResNet-56 | ours, ResNet-20 |")
    print("|---:|---:|---:|")
    seen = []
    for k, d in WIDTH:
        seen.append(load(os.path.join(root, "width", f"width={k}")))
        print(f"| {k} | {d} | {pct(err(seen[-1]))} |")
    return seen


def large(root):
    print("| run | what | batch | steps | best acc | final acc | final acc against |")
    print("|---|---|---:|---:|---:|---:|---|")
    runs = {name: load(os.path.join(root, "large-batch", name)) for name, _, _ in LARGE}
    for name, what, base in LARGE:
        r = runs[name]
        gap = "-"
        if r is not None and base and runs[base] is not None:
            d = acc(runs[base], 'final_test_acc') - acc(r, 'final_test_acc')
            gap = f"{abs(d):.2f} pt {'behind' if d >= 0 else 'ahead of'} {base}"
        batch = "-" if r is None else r["config"].get("batch-size", "-")
        steps = "-" if r is None else r["steps"]
        print(f"| {name} | {what} | {batch} | {steps} | {pct(acc(r, 'best_test_acc'))} | "
              f"{pct(acc(r, 'final_test_acc'))} | {gap} |")
    return list(runs.values())


def noise(runs):
    """What one test-set accuracy can tell apart: its binomial standard error on the runs' test set."""
    runs = [r for r in runs if r is not None and r.get("final_test_acc") is not None]
    if not runs:
        return None
    # the median, not the mean: one failed run (plain-110 at chance) would drag a mean far from the rest
    p = statistics.median(r["final_test_acc"] for r in runs)
    cfg = runs[0]["config"]
    try:
        sizes = {"fashion-mnist": 10000, "mnist": 10000, "cifar10": 10000,
                 "synthetic": int(cfg.get("synthetic-size") or 2048) // 4}
        n = sizes.get(cfg.get("dataset", "fashion-mnist"), 0)
        sub = int(cfg.get("test-subset") or 0)
    except (TypeError, ValueError):
        return None
    n = min(n, sub) if sub > 0 else n
    if n <= 0:
        return None
    se = 100.0 * math.sqrt(p * (1.0 - p) / n)
    return (f"One run per cell (seed 0). On {n:,} test images an accuracy near {100 * p:.1f} % has a binomial "
            f"standard error of {se:.2f} points: a difference under about {2 * math.sqrt(2) * se:.1f} points (two "
            f"standard errors of a difference) is within what the draw of the test images alone can make, before "
            f"the seed-to-seed spread of training.")


HEADER = """# The course's tables, reproduced

Made by `experiments/course-tables.py docs/results > docs/results/tables.md` from the published runs
(each run's `config.json` and `metrics.jsonl` under this directory). A "-" is a run that has not
finished yet: the sweeps run over several sessions on a 2-core machine, and this page is regenerated as
runs finish. Each table says where the deck's numbers come from and what ours are; the text under it
(the table directory's README.md) what reproduces and what does not.
"""


def main(root):
    print(HEADER)
    for title, sub, source, fn in (
            ("The practical: best test accuracy (%)", "practical",
             "Deck: the practical's ResNet-18 on CIFAR-10, best validation accuracy, batch 256 for 30 epochs and "
             "8192 for 75. Ours: ResNet-20 on Fashion-MNIST, 8 and 20 epochs (experiments/practical.yaml).", practical),
            ("Skip connections against depth: final test error (%)", "skips-depth",
             "Deck: CIFAR-10. Ours: Fashion-MNIST, 15 epochs (experiments/skips-depth.yaml).", depth),
            ("Width: final test error (%)", "width",
             "Deck: ResNet-56 on CIFAR-10. Ours: ResNet-20 on Fashion-MNIST, 10 epochs; k = 8 (about 3 hours "
             "per epoch of ResNet-56 here) is left to a faster machine (experiments/width.yaml).", width),
            ("Large-batch trends: test accuracy (%)", "large-batch",
             "The deck gives this grid's trends, not numbers. Ours: ResNet-20 on Fashion-MNIST, 30 epochs "
             "(experiments/large-batch.yaml).", large)):
        print(f"### {title}\n\n{source}\n")
        note = noise(fn(root))
        print(f"\n{note}\n" if note else "")
        try:
            with open(os.path.join(root, sub, "README.md")) as f:
                print(f.read().strip() + "\n")
        except OSError:
            pass


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0)
    if len(sys.argv) > 2 or (len(sys.argv) == 2 and sys.argv[1].startswith("-")):
        print("usage: experiments/course-tables.py [RESULTS_DIR]", file=sys.stderr)
        sys.exit(2)
    root = sys.argv[1] if len(sys.argv) == 2 else "docs/results"
    if not os.path.isdir(root):
        print(f"course-tables.py: {root}: no such directory", file=sys.stderr)
        sys.exit(2)
    main(root)
