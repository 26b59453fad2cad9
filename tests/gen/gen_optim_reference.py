#!/usr/bin/python3
"""Regenerate the PyTorch-built-in optimizer reference cases (tests/fixtures/reference).

Runs torch.optim (SGD, Adam, AdamW, Adagrad, RMSprop, Adadelta, NAdam with foreach=True,
RAdam, and the cases driven by torch.optim.lr_scheduler) on the README's three-tensor
problem and writes one JSON file per case in the fixtures' format.

    /usr/bin/python3 tests/gen/gen_optim_reference.py --out DIR
    /usr/bin/python3 tests/gen/gen_optim_reference.py --check tests/fixtures/reference

--check regenerates into a temporary directory and compares with the committed files:
parameters within |x - ref| <= max(1e-6, 1e-5 |ref|), learning rates and momenta within
relative 1e-7, and the same effective hyperparameters. Exit status 0 when everything
matches, 1 on a mismatch, 77 (skipped) when torch cannot be imported.

Use Debian's /usr/bin/python3, which has torch 1.13; the library never uses PyTorch at
run time. The timm, apex and Schedule-Free cases are not regenerated here (they need
those packages).
"""
import argparse
import json
import math
import os
import sys
import tempfile
import warnings

SHAPES = {"w1": [4, 3], "b1": [4], "w2": [2, 4]}
ORDER = ["w1", "b1", "w2"]
STEPS = 50
RECORD_STEPS = [1, 2, 3, 5, 10, 20, 30, 50]

# (case, torch.optim class, keyword arguments, gradient noise, scheduler or None)
CASES = [
    ("optim_adadelta_default", "Adadelta", {}, 0.0, None),
    ("optim_adadelta_variant", "Adadelta", {"eps": 1e-05, "lr": 0.5, "rho": 0.95, "weight_decay": 0.01}, 0.1, None),
    ("optim_adagrad_decay_wd_init", "Adagrad",
     {"initial_accumulator_value": 0.1, "lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.001}, 0.1, None),
    ("optim_adagrad_default", "Adagrad", {"lr": 0.05}, 0.0, None),
    ("optim_adam_amsgrad", "Adam", {"amsgrad": True, "lr": 0.01}, 0.1, None),
    ("optim_adam_default", "Adam", {"lr": 0.01}, 0.1, None),
    ("optim_adam_steplr", "Adam", {"lr": 0.01}, 0.1, {"class": "StepLR", "step_size": 10, "gamma": 0.5}),
    ("optim_adam_wd_coupled", "Adam", {"lr": 0.01, "weight_decay": 0.01}, 0.0, None),
    ("optim_adamw_bloom", "AdamW", {"betas": (0.9, 0.95), "eps": 1e-08, "lr": 0.01, "weight_decay": 0.1}, 0.1, None),
    ("optim_adamw_default", "AdamW", {"lr": 0.01}, 0.0, None),
    ("optim_adamw_warmup_cosine", "AdamW", {"lr": 0.01, "weight_decay": 0.01}, 0.1,
     {"class": "SequentialLR", "milestones": [5],
      "schedulers": [{"class": "LinearLR", "start_factor": 0.1, "end_factor": 1.0, "total_iters": 5},
                     {"class": "CosineAnnealingLR", "T_max": 45, "eta_min": 0.0001}]}),
    ("optim_nadam_default", "NAdam", {"lr": 0.01, "foreach": True}, 0.1, None),
    ("optim_nadam_wd", "NAdam", {"lr": 0.01, "momentum_decay": 0.008, "weight_decay": 0.01, "foreach": True}, 0.0,
     None),
    ("optim_radam_default", "RAdam", {"lr": 0.01}, 0.1, None),
    ("optim_radam_wd", "RAdam", {"betas": (0.9, 0.99), "lr": 0.01, "weight_decay": 0.01}, 0.0, None),
    ("optim_rmsprop_default", "RMSprop", {"lr": 0.01}, 0.0, None),
    ("optim_rmsprop_momentum_centered", "RMSprop", {"centered": True, "lr": 0.01, "momentum": 0.9}, 0.1, None),
    ("optim_sgd_cyclic_triangular2", "SGD", {"lr": 0.01, "momentum": 0.9}, 0.0,
     {"class": "CyclicLR", "base_lr": 0.01, "max_lr": 0.1, "step_size_up": 5, "mode": "triangular2",
      "cycle_momentum": True}),
    ("optim_sgd_momentum", "SGD", {"lr": 0.05, "momentum": 0.9}, 0.1, None),
    ("optim_sgd_momentum_dampening", "SGD", {"dampening": 0.9, "lr": 0.05, "momentum": 0.9}, 0.1, None),
    ("optim_sgd_momentum_onecycle", "SGD", {"lr": 0.1, "momentum": 0.9}, 0.1,
     {"class": "OneCycleLR", "max_lr": 0.1, "total_steps": 50}),
    ("optim_sgd_nesterov_wd", "SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.0005}, 0.0,
     None),
    ("optim_sgd_plain", "SGD", {"lr": 0.05}, 0.0, None),
]

# code-path switches, not hyperparameters of the update rule
NON_MATH = {"foreach", "differentiable", "capturable", "fused"}


def problem(torch):
    """p0, center and curvature per tensor, computed in double and rounded to float32."""
    p0, c, a = {}, {}, {}
    for k, name in enumerate(ORDER):
        n = math.prod(SHAPES[name])
        p0[name] = torch.tensor([0.5 * math.sin(1.0 + 0.37 * i + 1.1 * k) for i in range(n)],
                                dtype=torch.float32).reshape(SHAPES[name])
        c[name] = torch.tensor([0.3 * math.cos(0.5 + 0.23 * i + 0.7 * k) for i in range(n)],
                               dtype=torch.float32).reshape(SHAPES[name])
        a[name] = torch.tensor([0.5 + 1.5 * (((i * 7 + k * 3) % 5) / 4.0) for i in range(n)],
                               dtype=torch.float32).reshape(SHAPES[name])
    return p0, c, a


def make_scheduler(torch, opt, spec):
    sched = torch.optim.lr_scheduler
    args = {k: v for k, v in spec.items() if k not in ("class", "schedulers")}
    if spec["class"] == "SequentialLR":
        subs = [make_scheduler(torch, opt, s) for s in spec["schedulers"]]
        return sched.SequentialLR(opt, subs, milestones=spec["milestones"])
    return getattr(sched, spec["class"])(opt, **args)


def flat(t):
    return [float("%.9g" % v) for v in t.detach().reshape(-1).tolist()]


def run_case(torch, case, cls, kwargs, noise, sched_spec):
    p0, center, curv = problem(torch)
    params = [torch.nn.Parameter(p0[n].clone()) for n in ORDER]
    opt = getattr(torch.optim, cls)(params, **kwargs)
    hyper = {k: (list(v) if isinstance(v, tuple) else v) for k, v in opt.defaults.items() if k not in NON_MATH}
    sched = make_scheduler(torch, opt, sched_spec) if sched_spec else None
    record, lrs, moms = {}, [], []
    mom_key = None
    if sched_spec and sched_spec.get("cycle_momentum", sched_spec["class"] == "OneCycleLR"):
        mom_key = "momentum" if "momentum" in opt.param_groups[0] else "betas"
    for t in range(1, STEPS + 1):
        for k, (name, p) in enumerate(zip(ORDER, params)):
            n = p.numel()
            d = p.detach() - center[name]
            g = curv[name] * d
            if noise != 0.0:
                nz = torch.tensor([noise * math.sin(0.7 * t + 1.3 * i + 0.5 * k) for i in range(n)],
                                  dtype=torch.float32).reshape(SHAPES[name])
                g = g + nz
            p.grad = g
        group = opt.param_groups[0]
        lrs.append(group["lr"])
        if mom_key:
            moms.append(group["momentum"] if mom_key == "momentum" else group["betas"][0])
        opt.step()
        if sched:
            sched.step()
        if t in RECORD_STEPS:
            record[str(t)] = {name: flat(p) for name, p in zip(ORDER, params)}
    impl = "torch %s torch.optim.%s" % (torch.__version__, cls)
    if kwargs.get("foreach"):
        impl += " (foreach=True)"
    out = {
        "case": case,
        "kind": "optimizer",
        "implementation": impl,
        "implementation_note": "regenerated by tests/gen/gen_optim_reference.py",
        "hyper": hyper,
        "hyper_passed": sorted(kwargs),
        "scheduler": dict(sched_spec, **{"class": "torch.optim.lr_scheduler." + sched_spec["class"]})
        if sched_spec else None,
        "problem": {
            "noise": noise,
            "shapes": SHAPES,
            "tensor_number_k": {n: k for k, n in enumerate(ORDER)},
            "init": {n: flat(p0[n]) for n in ORDER},
            "center": {n: flat(center[n]) for n in ORDER},
            "curvature": {n: flat(curv[n]) for n in ORDER},
        },
        "steps": STEPS,
        "record_steps": RECORD_STEPS,
        "record": record,
    }
    if sched:
        out["lr"] = lrs
    if moms:
        out["momentum"] = moms
        out["momentum_key"] = mom_key
    return out


def generate(torch, outdir):
    torch.set_num_threads(1)
    for spec in CASES:
        data = run_case(torch, *spec)
        with open(os.path.join(outdir, spec[0] + ".json"), "w") as f:
            json.dump(data, f, indent=1)
            f.write("\n")


def close(x, ref, rel):
    return abs(x - ref) <= (1e-12 if ref == 0 else rel * abs(ref))


def compare(gen, ref):
    """List of mismatches between a regenerated case and the committed one."""
    bad = []
    for key, val in gen["hyper"].items():
        if key not in ref["hyper"]:
            bad.append("hyper %s missing in the fixture" % key)
        elif val != ref["hyper"][key]:
            bad.append("hyper %s: %r vs %r" % (key, val, ref["hyper"][key]))
    if ref["record_steps"] != gen["record_steps"] or ref["steps"] != gen["steps"]:
        bad.append("steps differ")
    worst = 0.0
    for t, tensors in ref["record"].items():
        for name, values in tensors.items():
            mine = gen["record"].get(t, {}).get(name)
            if mine is None or len(mine) != len(values):
                bad.append("record %s/%s missing" % (t, name))
                continue
            for x, r in zip(mine, values):
                worst = max(worst, abs(x - r) / max(1e-6, 1e-5 * abs(r)))
    if worst > 1.0:
        bad.append("parameters: max err/tol %.3g" % worst)
    for key in ("lr", "momentum"):
        if (key in ref) != (key in gen):
            bad.append("'%s' present in only one file" % key)
        elif key in ref and (len(ref[key]) != len(gen[key]) or
                             not all(close(x, r, 1e-7) for x, r in zip(gen[key], ref[key]))):
            bad.append("'%s' arrays differ" % key)
    return bad, worst


def check(torch, refdir):
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(torch, tmp)
        for spec in CASES:
            name = spec[0] + ".json"
            with open(os.path.join(tmp, name)) as f:
                gen = json.load(f)
            with open(os.path.join(refdir, name)) as f:
                ref = json.load(f)
            bad, worst = compare(gen, ref)
            if bad:
                failures += 1
                print("%-40s MISMATCH: %s" % (name, "; ".join(bad)))
            else:
                print("%-40s ok (max err/tol %.3g)" % (name, worst))
    print("%d of %d regenerated cases match the committed fixtures" % (len(CASES) - failures, len(CASES)))
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--out", help="write the cases into this directory")
    g.add_argument("--check", metavar="DIR", help="regenerate and compare with the fixtures in DIR")
    args = ap.parse_args()
    try:
        import torch
        # SequentialLR steps its schedulers with an epoch argument internally
        warnings.filterwarnings("ignore", category=UserWarning, module="torch.optim.lr_scheduler")
    except ImportError as e:
        print("torch is not importable with %s (%s): skipped" % (sys.executable, e))
        return 77
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        generate(torch, args.out)
        print("wrote %d cases to %s" % (len(CASES), args.out))
        return 0
    return check(torch, args.check)


if __name__ == "__main__":
    sys.exit(main())
