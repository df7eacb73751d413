"""What Ray costs a job: the round trip of a no-op task, a real training task through Ray against the same
call in-process, and the speed-up of two concurrent workers over one.

The Ray instance is the one a job would get (:func:`advbench.runtime.ray.ray_session`: a cluster or shared
head when one is configured, else a private loopback-only instance), started once; start-up is reported apart.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypedDict

from advbench.bench.timing import median
from advbench.config.specs import ModelSpec, RegimeKind, RegimeSpec
from advbench.jobs.train import train_task
from advbench.runtime.ray import RaySettings, ray_session


def noop() -> None:
    return None


class TaskArgs(TypedDict):
    """The keyword arguments of :func:`train_task` that every timed call shares."""

    spec: ModelSpec
    regime: RegimeSpec
    dataset: str
    seed: int
    settings: RaySettings


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@dataclass(frozen=True)
class RayTimings:
    """Seconds measured through one Ray instance (medians where repeated)."""

    startup: float  # starting or connecting to Ray
    noop: float  # one no-op task's round trip
    cold: float  # the first training task: its worker imports torch and advbench
    local: float  # the same training task called in-process
    warm_overhead: float  # a training task through a warm worker, less the in-process call
    serial: float  # ``num_cpus`` training tasks one after another
    parallel: float  # ``num_cpus`` training tasks at once


def time_ray(data: dict, spec: ModelSpec, reps: int, num_cpus: int) -> RayTimings:
    """Time one clean training task of ``spec`` through Ray and in-process, and ``num_cpus`` of them at
    once."""
    import ray

    regime = RegimeSpec(name="clean", kind=RegimeKind.CLEAN)
    settings = RaySettings(num_cpus=num_cpus, num_cpus_per_task=1, object_store_mb=256)
    with tempfile.TemporaryDirectory(prefix="advbench-bench-") as tmp:
        ckpt = str(Path(tmp) / "model.safetensors")
        kwargs = TaskArgs(spec=spec, regime=regime, dataset="mnist", seed=0, settings=settings)
        local: TaskArgs = {**kwargs, "settings": replace(settings, use_ray=False)}
        start = time.perf_counter()
        with ray_session(settings):
            startup = time.perf_counter() - start
            task = ray.remote(train_task).options(num_cpus=1, max_retries=0)
            ref = ray.put(data)

            def via_ray(n: int = 1) -> None:
                ray.get([task.remote(ref, checkpoint=f"{ckpt}.{i}", **kwargs) for i in range(n)])

            def one_after_another() -> None:
                for _ in range(num_cpus):
                    via_ray()

            cold = _timed(via_ray)  # a fresh worker imports torch and advbench: once per worker and run
            empty = ray.remote(noop)
            noop_s = median([_timed(lambda: ray.get(empty.remote())) for _ in range(max(reps, 20))])
            pairs = [
                (_timed(via_ray), _timed(lambda: train_task(data, checkpoint=ckpt, **local)))
                for _ in range(reps)
            ]
            via_ray(num_cpus)  # warm every worker
            serial = median([_timed(one_after_another) for _ in range(reps)])
            parallel = median([_timed(lambda: via_ray(num_cpus)) for _ in range(reps)])
    return RayTimings(
        startup=startup,
        noop=noop_s,
        cold=cold,
        local=median([loc for _, loc in pairs]),
        warm_overhead=median([r - loc for r, loc in pairs]),
        serial=serial,
        parallel=parallel,
    )


def ray_rows(data: dict, spec: ModelSpec, reps: int, default_task_s: float, num_cpus: int = 2) -> list[dict]:
    """Ray's per-task overhead, absolute and as a share of ``default_task_s`` (one default training task),
    and the speed-up of ``num_cpus`` concurrent training tasks over running them one after another."""
    t = time_ray(data, spec, reps, num_cpus)
    cold_overhead = t.cold - t.local
    metrics = [
        ("startup_seconds", t.startup, "s"),
        ("noop_task_seconds", t.noop, "s"),
        ("train_task_seconds_local", t.local, "s"),
        ("task_overhead_seconds_warm", t.warm_overhead, "s"),
        ("task_overhead_seconds_cold", cold_overhead, "s"),
        ("default_train_task_seconds", default_task_s, "s"),
        # what each task pays: under the default profile every job drives the run's one Ray from a thread
        # of the Snakemake process, so its workers stay warm from job to job
        ("overhead_share_of_default_task", t.warm_overhead / default_task_s, "1"),
        # paid once per worker and run: the jobs of a run share its Ray, so a worker imports torch once
        ("cold_start_share_of_default_task", cold_overhead / default_task_s, "1"),
        (f"speedup_{num_cpus}_workers_over_1", t.serial / t.parallel, "x"),
    ]
    keys = {"section": "ray", "model": spec.name}
    return [{**keys, "metric": m, "value": v, "unit": u} for m, v, u in metrics]
