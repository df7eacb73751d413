"""Timing and memory probes shared by the benchmark's sections: interleaved repetitions after warm-up
(medians), and the peak tensor memory of one step (CUDA's allocator statistics, or the profiler on CPU)."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

import torch
from scipy import stats


def synchronize(device: str) -> None:
    """Wait for queued CUDA kernels so that wall-clock times cover the work itself."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_interleaved(
    fns: dict[str, Callable[[], object]], reps: int, warmup: int, device: str = "cpu"
) -> dict[str, list[float]]:
    """Seconds of each of ``reps`` calls of every function, after ``warmup`` untimed calls of each.

    The functions take turns within each repetition, so a change in the machine's load hits all of them
    alike instead of biasing whichever ran last; each repetition starts one function later than the one
    before, so no function always runs first or always follows the same one (whose leftovers in caches
    and in the allocator it would inherit).
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    names = list(fns)
    times: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            synchronize(device)
            start = time.perf_counter()
            fns[name]()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return times


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def paired_range(num: list[float], den: list[float]) -> dict[str, float]:
    """The per-repetition ratios ``num[i] / den[i]``: their smallest and largest (``rep_min``, ``rep_max``)
    and a 95% interval of their geometric mean (``ci_low``, ``ci_high``: Student's t over the logs).

    Each repetition times every function back to back, so its ratio is one paired reading; their range
    shows how far the machine's noise moves a ratio whose value is the ratio of the medians, and the
    interval decides whether a target is met, missed or within that noise
    (:meth:`advbench.bench.suite.Target`).
    """
    ratios = [a / b for a, b in zip(num, den, strict=True)]
    logs = [math.log(r) for r in ratios]
    if len(logs) > 1:
        half = float(stats.t.ppf(0.975, len(logs) - 1)) * statistics.stdev(logs) / len(logs) ** 0.5
        centre = statistics.fmean(logs)
        ci = {"ci_low": math.exp(centre - half), "ci_high": math.exp(centre + half)}
    else:
        ci = {"ci_low": math.nan, "ci_high": math.nan}
    return {"rep_min": min(ratios), "rep_max": max(ratios)} | ci


def peak_memory_mib(fn: Callable[[], object], device: str = "cpu") -> float:
    """Peak tensor memory (MiB) that one call of ``fn`` allocates beyond what was live before it.

    On CUDA this is exact (the caching allocator's peak). On CPU it is read from the profiler's memory
    events, each allocation placed at the start and each release at the end of the event it belongs to,
    so it is an upper bound.
    """
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    changes = []
    for event in prof.events():
        delta = event.self_cpu_memory_usage
        if delta:
            changes.append((event.time_range.start if delta > 0 else event.time_range.end, delta))
    live = peak = 0
    for _, delta in sorted(changes, key=lambda c: (c[0], -c[1])):
        live += delta
        peak = max(peak, live)
    return peak / 2**20
