"""The task slots of the Ray a process drives, handed to its jobs highest priority first.

Ray has no task priorities: a job's tasks queue in Ray as they are submitted, and once queued they share the
CPUs by lease requests, whichever job asked first. When the workflow's jobs run as threads of the Snakemake
process (the default profile), two training jobs that start together would interleave their seeds, and the
most expensive job's last seed could run alone at the end while the other cores wait. So each job submits a
task only when this process holds a free slot (one per task that fits the cluster's CPUs and GPUs) and no job
of a higher Snakemake priority (``advbench.plan.priorities``: longest first) still has tasks to submit.

Jobs that Snakemake starts together reach the slots a fraction of a second apart (each loads its data and
joins Ray first), so the first to arrive would take every free slot before a higher one had registered: no
slot is granted until no job that carries a priority (> 0: the training jobs, which the order is for) has
registered for ``settle_s`` seconds. Jobs of priority 0 (attacks, transfer, experiments) start no settling,
so where no training job has just arrived they start at once. A job that arrives while tasks run takes the
next slot that frees; one already in flight is never stopped.
"""

from __future__ import annotations

import itertools
import threading
import time

SETTLE_S = 1.0  # jobs started together register well within this (measured: the same second of the log)


class TaskSlots:
    """Slots for in-flight tasks, granted to the registered job of highest priority (the earliest
    registered among equals) once no job of priority > 0 has registered for ``settle_s`` seconds."""

    def __init__(self, settle_s: float = SETTLE_S) -> None:
        self._cond = threading.Condition()
        self._capacity: int | None = None  # None: no cap
        self._busy = 0
        self._order = itertools.count()
        self._wanting: dict[int, tuple[int, int]] = {}  # job -> (priority, -registration order)
        self._settle_s = settle_s
        self._settled_at = 0.0  # monotonic time from which the last registration has settled

    def resize(self, capacity: int | None) -> None:
        """Hold at most ``capacity`` tasks in flight (the cluster's size, read when a job starts); None: no
        cap, only the order."""
        with self._cond:
            self._capacity = None if capacity is None else max(capacity, 1)
            self._cond.notify_all()

    def want(self, priority: int) -> int:
        """Register a job with tasks to submit; returns its handle."""
        with self._cond:
            job = next(self._order)
            self._wanting[job] = (priority, -job)
            if priority > 0:  # a job the order is for: let the ones started with it register too
                self._settled_at = time.monotonic() + self._settle_s
            return job

    def done(self, job: int) -> None:
        """The job has submitted all its tasks (or given up): it no longer holds back lower-priority jobs."""
        with self._cond:
            self._wanting.pop(job, None)
            self._cond.notify_all()

    def acquire(self, job: int, timeout: float | None) -> bool:
        """Take a slot for one of ``job``'s tasks once one is free, registrations have settled and ``job`` is
        the first in line; give up after ``timeout`` seconds (None: wait)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                if now >= self._settled_at and self._grantable(job):
                    self._busy += 1
                    return True
                if deadline is not None and now >= deadline:
                    return False
                # woken by a release or a registration, or at the end of the settling or of the timeout
                ends = [t for t in (self._settled_at, deadline) if t is not None and t > now]
                self._cond.wait(min(ends) - now if ends else None)

    def _grantable(self, job: int) -> bool:
        first = max(self._wanting, key=self._wanting.__getitem__)
        return first == job and (self._capacity is None or self._busy < self._capacity)

    def release(self, n: int = 1) -> None:
        """``n`` of this process's tasks have ended."""
        with self._cond:
            self._busy -= n
            self._cond.notify_all()

    @property
    def busy(self) -> int:
        return self._busy
