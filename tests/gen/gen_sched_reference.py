#!/usr/bin/env python3
"""Regenerate the PyTorch learning-rate schedule reference vectors.

  gen_sched_reference.py --check    replay the scheduler of every committed
                                    tests/fixtures/reference/{sched_*,optim_*}.json with
                                    torch and compare the lr/momentum arrays (exit 1 on a
                                    mismatch, 77 when torch is missing: ctest SKIP)
  gen_sched_reference.py --write    (re)write the extra cases in tests/fixtures/sched/
  gen_sched_reference.py --check-extra   check those extra cases too

Run with Debian's /usr/bin/python3 (torch 1.13). Same file format as
tests/fixtures/reference/README.md; extra fields: steps_per_epoch (the
scheduler is stepped once every that many optimizer steps) and metrics
(ReduceLROnPlateau: scheduler.step(metrics[s]) after optimizer step s).
"""
import glob
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
REF = os.path.join(ROOT, "tests", "fixtures", "reference")
EXTRA = os.path.join(ROOT, "tests", "fixtures", "sched")

try:
    import torch
except ImportError:  # no torch: nothing to compare against
    print("gen_sched_reference: torch not available, skipping")
    sys.exit(77)

LRS = torch.optim.lr_scheduler


def make_optimizer(hyper):
    p = [torch.nn.Parameter(torch.zeros(1))]
    if "betas" in hyper:
        return torch.optim.Adam(p, lr=hyper["lr"], betas=tuple(hyper["betas"]))
    return torch.optim.SGD(p, lr=hyper["lr"], momentum=hyper.get("momentum", 0.0))


def make_scheduler(opt, spec):
    cls = spec["class"].rsplit(".", 1)[-1]
    if cls == "SequentialLR":
        subs = [make_scheduler(opt, s) for s in spec["schedulers"]]
        return LRS.SequentialLR(opt, subs, milestones=spec["milestones"])
    kwargs = {k: spec[k] for k in spec.get("passed", [])}
    return getattr(LRS, cls)(opt, **kwargs)


def run(hyper, spec, steps, steps_per_epoch=1, metrics=None):
    opt = make_optimizer(hyper)
    sch = make_scheduler(opt, spec)
    key = "betas[0]" if "betas" in hyper else "momentum"
    lr, mom = [], []
    for s in range(steps):
        g = opt.param_groups[0]
        lr.append(float(g["lr"]))
        mom.append(float(g["betas"][0] if key == "betas[0]" else g["momentum"]))
        opt.step()
        if metrics is not None:
            sch.step(metrics[s])
        elif (s + 1) % steps_per_epoch == 0:
            sch.step()
    return lr, mom, key


def close(a, b):
    if b == 0.0:
        return abs(a) <= 1e-12
    return abs(a - b) <= 1e-7 * abs(b)


def check_file(path):
    d = json.load(open(path))
    spec = d.get("scheduler")
    if not spec or "lr" not in d:
        return None
    hyper = dict(d["hyper"])
    if "betas" not in hyper and d["kind"] == "optimizer" and "beta1" in hyper:
        hyper["betas"] = [hyper["beta1"], hyper.get("beta2", 0.999)]
    if "momentum" not in hyper and "betas" not in hyper:
        hyper["momentum"] = 0.0
    lr, mom, _ = run(hyper, spec, d["steps"], d.get("steps_per_epoch", 1), d.get("metrics"))
    worst = 0.0
    for a, b in zip(lr, d["lr"]):
        if not close(a, b):
            print(f"{os.path.basename(path)}: lr {a!r} != {b!r}")
            return False
        worst = max(worst, abs(a - b) / (abs(b) or 1.0))
    for a, b in zip(mom, d.get("momentum") or []):
        if not close(a, b):
            print(f"{os.path.basename(path)}: momentum {a!r} != {b!r}")
            return False
    if len(lr) != len(d["lr"]):
        print(f"{os.path.basename(path)}: {len(lr)} values, fixture has {len(d['lr'])}")
        return False
    print(f"{os.path.basename(path)}: ok (max rel diff {worst:.3g})")
    return True


SGD = {"lr": 0.1, "momentum": 0.9}
ADAM = {"lr": 0.01, "betas": [0.9, 0.999]}


def spec(cls, **kw):
    return {"class": "torch.optim.lr_scheduler." + cls, **kw, "passed": sorted(kw)}


# plateau metric: improves, stalls, improves a little (below threshold), gets worse
def metric_seq(n, maximize=False):
    out = []
    v = 1.0
    for i in range(n):
        if i < 10:
            v *= 0.9
        elif i % 17 == 3:
            v *= 0.99995  # below a 1e-4 relative threshold
        elif i % 23 == 5:
            v *= 0.95
        else:
            v *= 1.0 + 0.001 * math.sin(i)
        out.append(1.0 - v if maximize else v)
    return out


EXTRA_CASES = [
    ("sched_sgdr_tmult1", SGD, spec("CosineAnnealingWarmRestarts", T_0=15, eta_min=0.001), 100, {}),
    ("sched_sgdr_tmult3", SGD, spec("CosineAnnealingWarmRestarts", T_0=4, T_mult=3), 130, {}),
    ("sched_cyclic_updown", SGD, spec("CyclicLR", base_lr=0.001, max_lr=0.05, step_size_up=7, step_size_down=13),
     90, {}),
    ("sched_cyclic_exp_range_momentum", SGD,
     spec("CyclicLR", base_lr=0.0005, max_lr=0.005, step_size_up=8, mode="exp_range", gamma=0.97,
          base_momentum=0.85, max_momentum=0.95), 80, {}),
    ("sched_cyclic_no_momentum", SGD,
     spec("CyclicLR", base_lr=0.01, max_lr=0.2, step_size_up=6, mode="triangular2", cycle_momentum=False), 60, {}),
    ("sched_onecycle_linear_three_phase", SGD,
     spec("OneCycleLR", max_lr=0.5, total_steps=97, pct_start=0.4, anneal_strategy="linear", three_phase=True,
          div_factor=10.0, final_div_factor=100.0), 97, {}),
    ("sched_onecycle_custom_momentum", SGD,
     spec("OneCycleLR", max_lr=1.0, total_steps=64, pct_start=0.25, base_momentum=0.8, max_momentum=0.97), 64, {}),
    ("sched_sequential_three", SGD,
     {"class": "torch.optim.lr_scheduler.SequentialLR", "milestones": [5, 30],
      "schedulers": [spec("LinearLR", start_factor=0.2, total_iters=5),
                     spec("StepLR", step_size=8, gamma=0.5),
                     spec("ExponentialLR", gamma=0.95)]}, 70, {}),
    ("sched_polynomial_sqrt", SGD, spec("PolynomialLR", total_iters=50, power=0.5), 60, {}),
    ("sched_linear_decay", SGD, spec("LinearLR", start_factor=1.0, end_factor=0.05, total_iters=40), 50, {}),
    ("sched_steplr_per_epoch", SGD, spec("StepLR", step_size=3, gamma=0.5), 70, {"steps_per_epoch": 7}),
    ("sched_cosine_per_epoch", SGD, spec("CosineAnnealingLR", T_max=10, eta_min=0.002), 60, {"steps_per_epoch": 5}),
    ("sched_multistep_per_epoch", SGD, spec("MultiStepLR", milestones=[2, 5, 7], gamma=0.3), 45,
     {"steps_per_epoch": 5}),
    ("sched_plateau_min_rel", SGD, spec("ReduceLROnPlateau", factor=0.5, patience=3), 120,
     {"metrics": metric_seq(120)}),
    ("sched_plateau_cooldown_minlr", SGD,
     spec("ReduceLROnPlateau", factor=0.3, patience=2, cooldown=4, min_lr=0.002), 120, {"metrics": metric_seq(120)}),
    ("sched_plateau_max_abs", SGD,
     spec("ReduceLROnPlateau", mode="max", factor=0.5, patience=4, threshold=0.01, threshold_mode="abs"), 120,
     {"metrics": metric_seq(120, maximize=True)}),
]


def write_extra():
    os.makedirs(EXTRA, exist_ok=True)
    for name, hyper, sp, steps, extra in EXTRA_CASES:
        lr, mom, key = run(hyper, sp, steps, extra.get("steps_per_epoch", 1), extra.get("metrics"))
        cycles = sp["class"].endswith(("CyclicLR", "OneCycleLR")) and sp.get("cycle_momentum", True)
        d = {"case": name, "kind": "schedule",
             "implementation": f"PyTorch {torch.__version__} {sp['class']}",
             "hyper": hyper, "scheduler": sp, "steps": steps}
        d.update(extra)
        d["lr"] = lr
        if cycles:
            d["momentum"] = mom
            d["momentum_key"] = key
        with open(os.path.join(EXTRA, name + ".json"), "w") as f:
            json.dump(d, f, indent=1)
            f.write("\n")
        print("wrote", name)


def main():
    args = sys.argv[1:] or ["--check"]
    ok = True
    if "--write" in args:
        write_extra()
    files = []
    if "--check" in args:
        files += sorted(glob.glob(os.path.join(REF, "sched_*.json")) + glob.glob(os.path.join(REF, "optim_*.json")))
    if "--check-extra" in args:
        files += sorted(glob.glob(os.path.join(EXTRA, "*.json")))
    checked = 0
    for path in files:
        r = check_file(path)
        if r is not None:
            checked += 1
            ok &= r
    print(f"gen_sched_reference: {checked} cases {'match' if ok else 'DIFFER'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
