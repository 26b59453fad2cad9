"""What the PyTorch benchmarks share (torch_train.py, torch_gpt.py,
torch_optim.py): the thread counts, set before torch loads; an optimizer's
fused implementation where this torch has one; the timed step loop; the peak
resident memory and the CPU kernels torch reports."""
import os
import resource
import statistics
import sys
import time


def set_threads(n):
    """OpenMP, OpenBLAS and MKL threads: read when torch (and its BLAS) load."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)


def rss_mb():
    """Peak resident memory of this process so far (getrusage ru_maxrss), MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def fused_or(cls, model, fallback, fallback_kw, **kw):
    """(cls(model's parameters, fused=True, **kw), "fused") where this torch
    has a fused implementation (on CPU), else (cls(..., **fallback_kw, **kw),
    fallback)."""
    try:
        return cls(model.parameters(), fused=True, **kw), "fused"
    except (TypeError, RuntimeError):  # torch 1.x, or none on CPU in this torch
        return cls(model.parameters(), **fallback_kw, **kw), fallback


def compiled(torch, model, prog):
    """torch.compile(model); exits where this torch has no torch.compile."""
    if not hasattr(torch, "compile"):
        sys.exit("%s: --mode compile needs PyTorch 2.x (this is %s)" % (prog, torch.__version__))
    return torch.compile(model)


def time_steps(step, warmup, steps, prog, torch=None):
    """Calls step() warmup + steps times; returns the wall times of the last
    steps calls (the warm-up ones are not timed). With torch, step returns the
    loss, and a loss that is not finite exits."""
    times = []
    for it in range(-warmup, steps):
        t0 = time.perf_counter()
        loss = step()
        t1 = time.perf_counter()
        if it >= 0:
            times.append(t1 - t0)
        if torch is not None and not torch.isfinite(loss):
            sys.exit("%s: loss is not finite" % prog)
    return times


def mean_median(times):
    return sum(times) / len(times), statistics.median(times)


def cpu_capability(torch):
    """The CPU capability (AVX2, AVX512, ...) torch's kernels use."""
    cfg = torch.__config__.show()
    return next((l.split(":", 1)[1].strip() for l in cfg.splitlines() if "CPU capability usage" in l), "?")


def timing_fields(mean, med, rss_setup):
    """The result's step times and memory (MB; rss_setup: before training)."""
    return {
        "ms_per_step": round(mean * 1e3, 3),
        "median_ms_per_step": round(med * 1e3, 3),
        "peak_rss_mb": round(rss_mb(), 1),
        "rss_after_setup_mb": round(rss_setup, 1),
    }


def print_timing(mean, med, res, throughput):
    """The text output's last lines: time per step, throughput (the caller's words), memory."""
    print("time per step: %.2f ms mean, %.2f ms median over %d steps" % (mean * 1e3, med * 1e3, res["steps"]))
    print("throughput: " + throughput)
    print("peak memory: %.1f MB resident (%.1f MB before training)" % (res["peak_rss_mb"], res["rss_after_setup_mb"]))
