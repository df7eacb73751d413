"""Ray, in one place: join a cluster or start an embedded loopback-only instance, and run one task per key.

With ``RAY_ADDRESS`` (or ``ray.address`` in the config) set, jobs join that cluster. Otherwise each job starts
a private local Ray with explicit ``num_cpus`` (the rule's threads), no dashboard, a capped object store and
its own temp dir, listening on 127.0.0.1 only; the workflow's ``ray`` resource keeps two from running at once.
``use_ray=False`` runs the same task functions serially in-process (unit tests, debugging).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RaySettings:
    """How a job talks to Ray (the ``ray`` section of the config plus the rule's threads)."""

    num_cpus: int = 1
    num_gpus: float | None = None  # None: Ray detects the GPUs
    num_cpus_per_task: float = 1.0
    num_gpus_per_task: float = 0.0
    object_store_mb: int = 512
    max_retries: int = 2
    address: str | None = None
    use_ray: bool = True

    @property
    def cluster_address(self) -> str | None:
        return os.environ.get("RAY_ADDRESS") or self.address


@contextlib.contextmanager
def ray_session(settings: RaySettings) -> Iterator[None]:
    """Connect to (or start) Ray for the duration of the block; always shut down afterwards."""
    # Read when ray is imported: every seed's progress lines reach the job's log, as plain text.
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    import ray

    temp_dir = None
    if settings.cluster_address:
        ray.init(address=settings.cluster_address, log_to_driver=True)
    else:
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # bind every port to loopback only
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        temp_dir = tempfile.mkdtemp(prefix="advray-", dir="/tmp")
        ray.init(
            address="local",
            num_cpus=settings.num_cpus,
            num_gpus=settings.num_gpus,
            include_dashboard=False,
            object_store_memory=settings.object_store_mb * 2**20,
            _temp_dir=temp_dir,
        )
    try:
        yield
    finally:
        ray.shutdown()
        if temp_dir:
            shutil.rmtree(temp_dir, ignore_errors=True)


def run_tasks(
    fn: Callable[..., Any], shared: dict[str, Any], per_task: Sequence[dict[str, Any]], settings: RaySettings
) -> list[Any]:
    """Call ``fn(**shared, **kwargs)`` for each ``kwargs`` in ``per_task``, as Ray tasks or serially.

    ``shared`` holds the large inputs (the dataset): it is put into the object store once and passed by
    reference. Results come back in the order of ``per_task``.
    """
    if not settings.use_ray:
        return [fn(**shared, **kwargs) for kwargs in per_task]
    import ray

    with ray_session(settings):
        gpus = ray.cluster_resources().get("GPU", 0)
        if settings.num_gpus_per_task > gpus:
            raise ValueError(
                f"ray.num_gpus_per_task is {settings.num_gpus_per_task} but the Ray cluster has {gpus} GPUs; "
                "set ray.num_gpus_per_task to 0 to run on CPUs"
            )
        refs = {name: ray.put(value) for name, value in shared.items()}
        remote = ray.remote(fn).options(
            num_cpus=settings.num_cpus_per_task,
            num_gpus=settings.num_gpus_per_task,
            max_retries=settings.max_retries,
            retry_exceptions=False,
        )
        futures = [remote.remote(**refs, **kwargs) for kwargs in per_task]
        log.info("dispatched %d Ray tasks", len(futures))
        return ray.get(futures)


def task_device(num_gpus_per_task: float) -> str:
    """``cuda`` when this task was given a GPU (Ray sets CUDA_VISIBLE_DEVICES), else ``cpu``."""
    import torch

    return "cuda" if num_gpus_per_task > 0 and torch.cuda.is_available() else "cpu"


def init_task(num_cpus: float) -> None:
    """Per-task setup: torch gets as many threads as the task has CPUs; log lines go to stderr."""
    import torch

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    torch.set_num_threads(max(int(num_cpus), 1))
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
