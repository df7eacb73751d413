"""Ray: an embedded loopback-only Ray, a shared head for a workflow run, or an existing cluster
(``RAY_ADDRESS``); tasks dispatched one per seed, with retries."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from advbench.runtime.cleanup import RAY_DIR_ENV, TEMP_PREFIX, remove_stale_temp_dirs
from advbench.runtime.slots import TaskSlots
from advbench.runtime.task import logged_call

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
    flush_denormal: bool = True  # tasks compute float values below 2**-126 as 0 (advbench.runtime.task)
    stack_seeds: str = "auto"  # a job's seeds in one stacked model: auto (on a GPU), always, never
    address: str | None = None
    use_ray: bool = True
    task_name: str | None = None  # shown as the workers' process title (ray::<name>); default: the function's
    log_file: str | None = None  # the job's log: tasks append their log lines to it (else: to the driver)
    priority: int = 0  # the job's Snakemake priority: its tasks start before those of lower ones

    @property
    def cluster_address(self) -> str | None:
        """A cluster to join: ``RAY_ADDRESS``, the config's address, or the workflow's shared head."""
        return os.environ.get("RAY_ADDRESS") or self.address or os.environ.get(SHARED_HEAD_ENV)


SHARED_HEAD_ENV = "ADVBENCH_RAY_HEAD"


def loopback_only() -> None:
    """Make the Ray this process starts bind every port to 127.0.0.1, never the machine's address.

    Ray reads ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` once, when it is first imported, into
    ``ray_constants.ENABLE_RAY_CLUSTER``: setting the variable after ``import ray`` (as every job path of
    this module does) would change nothing, so the constant is set too. The variable reaches the processes
    this one starts. Tested by listing the listening sockets of a Ray started without the variable.
    """
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


def _start_local(
    num_cpus: int, num_gpus: float | None, object_store_mb: int, log_to_driver: bool = True
) -> str:
    """Start a private, loopback-only Ray in this process (the caller becomes its driver); return its
    temp dir. Its processes share this process's fate (Linux kills them when it dies)."""
    loopback_only()
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    remove_stale_temp_dirs()
    temp_dir = tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir="/tmp")
    os.environ[RAY_DIR_ENV] = temp_dir  # inherited by the processes this one starts (kill_processes_using)
    ray.init(
        address="local",
        num_cpus=num_cpus,
        num_gpus=num_gpus,  # type: ignore[arg-type]  # Ray's stub says int; its resources are floats
        include_dashboard=False,
        object_store_memory=object_store_mb * 2**20,
        log_to_driver=log_to_driver,
        _temp_dir=temp_dir,
    )
    return temp_dir


_shared_temp_dir: str | None = None


def start_shared_head(num_cpus: int, object_store_mb: int = 1024) -> str:
    """One embedded Ray for a whole workflow run (called from Snakemake's ``onstart``): every job joins it
    through ``ADVBENCH_RAY_HEAD``, so jobs pay no Ray start-up and their tasks share the cores.

    Jobs that run in the Snakemake process itself (the default profile's threads, see
    :func:`advbench.cli.run_job`) drive this very Ray: one Ray job for the whole run, whose workers, torch
    imported once, serve every job's tasks. Tasks write their log lines to their job's log, not to this
    process."""
    global _shared_temp_dir
    import ray

    _shared_temp_dir = _start_local(num_cpus, None, object_store_mb, log_to_driver=False)
    address = ray.get_runtime_context().gcs_address
    os.environ[SHARED_HEAD_ENV] = address
    log.info("shared Ray head at %s with %d CPUs", address, num_cpus)
    return address


def stop_shared_head() -> None:
    """Shut the shared head down (Snakemake's ``onsuccess`` / ``onerror``)."""
    import ray

    os.environ.pop(SHARED_HEAD_ENV, None)
    ray.shutdown()
    if _shared_temp_dir:
        shutil.rmtree(_shared_temp_dir, ignore_errors=True)


_session_lock = threading.Lock()


_session_users = 0


_session_owned = False


@contextlib.contextmanager
def ray_session(settings: RaySettings) -> Iterator[None]:
    """Be a Ray driver for the duration of the block: join a cluster (or the shared head) or start a private
    Ray, and shut it down afterwards.

    A process that is already a driver (the workflow's shared head lives in the Snakemake process, whose
    threads run jobs) reuses its connection, and the threads of one process share one session: the last one
    out shuts down what the first one started, never a connection made outside.
    """
    # Read when ray is imported: every seed's progress lines reach the job's log, as plain text.
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    global _session_users, _session_owned
    import ray

    with _session_lock:
        if _session_users == 0 and not ray.is_initialized():
            _connect(settings)
            _session_owned = True
        _session_users += 1
    try:
        yield
    finally:
        with _session_lock:
            _session_users -= 1
            if _session_users == 0 and _session_owned:
                _session_owned = False
                _disconnect()


_private_temp_dir: str | None = None


def _connect(settings: RaySettings) -> None:
    """Join the cluster (or shared head) or start a private Ray; tasks that log to a file send nothing to
    the driver."""
    global _private_temp_dir
    import ray

    to_driver = settings.log_file is None
    if settings.cluster_address:
        ray.init(address=settings.cluster_address, log_to_driver=to_driver)
    else:
        _private_temp_dir = _start_local(
            settings.num_cpus, settings.num_gpus, settings.object_store_mb, log_to_driver=to_driver
        )


def _disconnect() -> None:
    global _private_temp_dir
    import ray

    ray.shutdown()
    if _private_temp_dir:
        shutil.rmtree(_private_temp_dir, ignore_errors=True)
        _private_temp_dir = None


def run_tasks(
    fn: Callable[..., Any], shared: dict[str, Any], per_task: Sequence[dict[str, Any]], settings: RaySettings
) -> list[Any]:
    """Call ``fn(**shared, **kwargs)`` for each ``kwargs`` in ``per_task``, as Ray tasks or serially.

    ``shared`` holds the large inputs (the dataset): it is put into the object store once and passed by
    reference. Results come back in the order of ``per_task``.
    """
    if not settings.use_ray:
        return [fn(**shared, **kwargs) for kwargs in per_task]
    job = SLOTS.want(settings.priority)  # in line before joining Ray: see advbench.runtime.slots
    try:
        with ray_session(settings):
            return _run_remote(fn, shared, per_task, settings, job)
    finally:
        SLOTS.done(job)


def _run_remote(
    fn: Callable[..., Any],
    shared: dict[str, Any],
    per_task: Sequence[dict[str, Any]],
    settings: RaySettings,
    job: int,
) -> list[Any]:
    """:func:`run_tasks` once Ray is up: the shared inputs put once, a task per ``per_task``, in turn."""
    import ray

    gpus = ray.cluster_resources().get("GPU", 0)
    if settings.num_gpus_per_task > gpus:
        raise ValueError(
            f"ray.num_gpus_per_task is {settings.num_gpus_per_task} but the Ray cluster has {gpus} GPUs; "
            "set ray.num_gpus_per_task to 0 to run on CPUs"
        )
    _check_cpus_fit(settings.num_cpus_per_task)
    refs = {name: ray.put(value) for name, value in shared.items()}
    remote = ray.remote(logged_call).options(
        name=settings.task_name or fn.__name__,
        num_cpus=settings.num_cpus_per_task,
        num_gpus=settings.num_gpus_per_task,
        max_retries=settings.max_retries,
        retry_exceptions=False,
    )
    calls = [functools.partial(remote.remote, fn, settings.log_file, **refs, **kw) for kw in per_task]
    return ray.get(_submit_in_turn(calls, settings, job))


SLOTS = TaskSlots()  # shared by the jobs (threads) of this process
POLL_S = 0.05  # how often a job with tasks in flight looks for a slot another job freed


def _submit_in_turn(calls: Sequence[Callable[[], Any]], settings: RaySettings, job: int) -> list[Any]:
    """Submit each call (a Ray task) once this process holds a free slot for it and no job of a higher
    priority has tasks left to submit (``advbench.runtime.slots``); the refs, in the calls' order, once every
    task has ended (a failed one raises at ``ray.get``)."""
    import ray

    SLOTS.resize(_task_capacity(settings))
    todo = list(range(len(calls)))
    running: dict[Any, int] = {}
    ended: dict[int, Any] = {}

    def collect(timeout: float | None) -> None:  # one ended task of this job, waiting at most ``timeout``
        finished, _ = ray.wait(list(running), num_returns=1, timeout=timeout)
        for ref in finished:
            ended[running.pop(ref)] = ref
        SLOTS.release(len(finished))

    try:
        while todo:
            if SLOTS.acquire(job, timeout=0 if running else None):
                try:
                    running[calls[todo[0]]()] = todo[0]
                except BaseException:
                    SLOTS.release()  # the slot taken for a task that was never submitted
                    raise
                todo.pop(0)
            else:  # back as soon as a task of this job ends, or to look again for a slot another job freed
                collect(timeout=POLL_S)
        SLOTS.done(job)
        log.info("dispatched %d Ray tasks", len(calls))
        while running:
            collect(timeout=None)
    finally:  # the registration is run_tasks's to end
        SLOTS.release(len(running))
    return [ended[i] for i in range(len(calls))]


def _task_capacity(settings: RaySettings) -> int | None:
    """How many of these tasks the cluster runs at once: its CPUs (and GPUs) over each task's share. On a
    cluster of one's own (``RAY_ADDRESS``, ``ray.address``) None, no cap: an autoscaler grows it on queued
    tasks."""
    import ray

    if os.environ.get("RAY_ADDRESS") or settings.address:
        return None

    total = ray.cluster_resources()
    fits = [total.get("CPU", 0) / settings.num_cpus_per_task] if settings.num_cpus_per_task else []
    if settings.num_gpus_per_task:
        fits.append(total.get("GPU", 0) / settings.num_gpus_per_task)
    return int(min(fits, default=total.get("CPU", 1)))


def _check_cpus_fit(num_cpus_per_task: float) -> None:
    """A task that asks for more CPUs than any node has waits forever (Ray calls it infeasible): refuse it."""
    import ray

    most = max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n["Alive"]), default=0)
    if num_cpus_per_task > most:
        raise ValueError(
            f"ray.num_cpus_per_task is {num_cpus_per_task} but the largest node of the Ray cluster has "
            f"{most} CPUs; a task runs on one node: set ray.num_cpus_per_task to at most that"
        )
