"""Inside a task: its log, its device, its torch threads and the machine it runs on."""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The line a finished task leaves in its job's log, and its reader: a job's tasks share the cores with other
# jobs' tasks, so their seconds, not the job's wall time, say what the job cost (``advbench timeline``).
_TASK_LINE = "task %s ran %.2f s"
_TASK_SECONDS = re.compile(rf" {re.escape(__name__)}: task \S+(?: seed -?\d+)? ran (\d+\.\d+) s$", re.M)

log = logging.getLogger(__name__)


def logged_call(fn: Callable[..., Any], log_file: str | None, **kwargs: Any) -> Any:
    """``fn(**kwargs)`` in a Ray worker, its log lines appended to ``log_file`` (the job's log) if given.

    Workers outlive tasks (and serve other jobs' tasks), so the handler is removed when the task ends.
    """
    if log_file is None:
        return fn(**kwargs)
    root = logging.getLogger()
    handler = logging.FileHandler(log_file, mode="a")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    level, root.level = root.level, logging.INFO
    root.addHandler(handler)
    start = time.perf_counter()
    try:
        result = fn(**kwargs)
        seed = f" seed {kwargs['seed']}" if isinstance(kwargs.get("seed"), int) else ""
        log.info(_TASK_LINE, f"{fn.__name__}{seed}", time.perf_counter() - start)
        return result
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()


def task_seconds(job_log: str) -> list[float]:
    """The seconds of every task that ended, from a job's log as :func:`logged_call` writes it."""
    return [float(s) for s in _TASK_SECONDS.findall(job_log)]


def machine(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """This process's machine in words: the CPU, whether it has AMX (Intel's matrix units, which speed up
    torch's CPU matrix multiplies), the cores and the GPU it sees; the figures of a run depend on all four."""
    import torch

    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), None)
    amx = "" if flags is None else (", with AMX" if "amx_tile" in flags else ", no AMX")
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    cpu = names[0] if names else platform.machine()
    return f"{cpu}{amx}, {os.cpu_count()} cores{gpu}; torch {torch.__version__}"


def task_device(num_gpus_per_task: float) -> str:
    """``cuda`` when this task was given a GPU (Ray sets CUDA_VISIBLE_DEVICES), else ``cpu``."""
    import torch

    return "cuda" if num_gpus_per_task > 0 and torch.cuda.is_available() else "cpu"


def init_task(num_cpus: float, flush_denormal: bool = True) -> None:
    """Per-task setup: torch gets as many threads as the task has CPUs and deterministic algorithms only
    (results do not depend on the machine's load or core count); freed memory is kept for reuse
    (:mod:`advbench.runtime.allocator`); log lines go to stderr.

    ``flush_denormal`` (config ``ray.flush_denormal``): the CPU computes every value below 2**-126
    (1.2e-38 in float32) as zero. Momentum velocities of first-layer weights whose pixels are rarely
    nonzero decay through that range, and each operation on such a value costs the CPU a slow microcode
    path (``advbench bench``'s ``flush_denormal_speedup`` row). The flag lives in each thread's control
    register and torch's worker threads copy it when they are created, so it is set before any torch
    arithmetic and before the thread count (set later, it misses the workers: ``tests/unit/runtime``).
    """
    import torch

    from advbench.runtime.allocator import tune_allocator

    tune_allocator()

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)

    torch.set_flush_denormal(flush_denormal)
    torch.set_num_threads(max(int(num_cpus), 1))
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS, read at CUDA init
    torch.use_deterministic_algorithms(True)
