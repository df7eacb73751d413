"""The task slots of the Ray a process drives, handed to its jobs highest priority first.

Ray has no task priorities: a job's tasks queue in Ray as they are submitted, and once queued they share the
CPUs by lease requests, whichever job asked first. When the workflow's jobs run as threads of the Snakemake
process (the default profile), two training jobs that start together would interleave their seeds, and the
most expensive job's last seed could run alone at the end while the other cores wait. So each job submits a
task only when this process holds a free slot (one per task that fits the cluster's CPUs and GPUs) and no job
of a higher Snakemake priority (``advbench.priorities``: longest first) still has tasks to submit; Ray then
never holds a backlog, and the tasks start in the order of their jobs' priorities.
"""

from __future__ import annotations

import itertools
import threading


class TaskSlots:
    """Slots for in-flight tasks, granted to the registered job of highest priority (the earliest
    registered among equals)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._capacity = 0
        self._busy = 0
        self._order = itertools.count()
        self._wanting: dict[int, tuple[int, int]] = {}  # job -> (priority, -registration order)

    def resize(self, capacity: int) -> None:
        """Hold at most ``capacity`` tasks in flight (the cluster's size, read when a job starts)."""
        with self._cond:
            self._capacity = max(capacity, 1)
            self._cond.notify_all()

    def want(self, priority: int) -> int:
        """Register a job with tasks to submit; returns its handle."""
        with self._cond:
            job = next(self._order)
            self._wanting[job] = (priority, -job)
            return job

    def done(self, job: int) -> None:
        """The job has submitted all its tasks: it no longer holds back lower-priority jobs."""
        with self._cond:
            self._wanting.pop(job, None)
            self._cond.notify_all()

    def acquire(self, job: int, timeout: float | None) -> bool:
        """Take a slot for one of ``job``'s tasks once one is free and ``job`` is the first in line; give up
        after ``timeout`` seconds (None: wait)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._grantable(job), timeout)

    def _grantable(self, job: int) -> bool:
        first = max(self._wanting, key=self._wanting.__getitem__)
        if self._busy >= self._capacity or first != job:
            return False
        self._busy += 1
        return True

    def release(self, n: int = 1) -> None:
        """``n`` of this process's tasks have ended."""
        with self._cond:
            self._busy -= n
            self._cond.notify_all()

    @property
    def busy(self) -> int:
        return self._busy
