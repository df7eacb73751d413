"""One thread's log lines to one file: a workflow job run in the Snakemake process (see
:func:`advbench.cli.run_job`) logs to its own ``log:`` file while other jobs run in other threads."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

from advbench.runtime.task import LOG_FORMAT


class _ThisThread(logging.Filter):
    """Passes the records logged by one thread."""

    def __init__(self, ident: int) -> None:
        super().__init__()
        self.ident = ident

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread == self.ident


def job_log_handler(path: Path) -> logging.FileHandler:
    """A handler on a job's log, emptied first and then opened for appending: the job's Ray tasks append
    to the same file (:func:`advbench.runtime.task.logged_call`), and appends never overwrite each other."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    handler = logging.FileHandler(path, mode="a")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    return handler


@contextlib.contextmanager
def thread_log(path: Path) -> Iterator[None]:
    """Send the calling thread's log records (INFO and up, of any logger) to ``path`` for the block.

    The ``advbench`` logger is set to INFO, so its lines reach the file whatever the process's root level;
    the file is truncated first (a rerun's log is the rerun's).
    """
    handler = job_log_handler(path)
    handler.setLevel(logging.INFO)
    handler.addFilter(_ThisThread(threading.get_ident()))
    root, ours = logging.getLogger(), logging.getLogger("advbench")
    if ours.level == logging.NOTSET or ours.level > logging.INFO:
        ours.setLevel(logging.INFO)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
