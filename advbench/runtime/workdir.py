"""One live workflow run per directory: a kernel lock that dies with its process."""

from __future__ import annotations

import os
from pathlib import Path

_run_lock: int | None = None


RUN_LOCK = Path(".snakemake") / "advbench-run.lock"


def claim_workdir(lock_file: Path = RUN_LOCK) -> None:
    """Refuse a second live workflow run in this directory (it would start a second shared head).

    The default profile runs Snakemake with ``nolock``: Snakemake's lock files outlive a ``kill -9`` and
    would block the rerun. This lock is the kernel's (``flock``), so it is released when its process dies.
    """
    global _run_lock
    import fcntl

    if _run_lock is not None:
        return
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.read(fd, 32).decode().strip() or "unknown"
        os.close(fd)
        raise RuntimeError(
            f"{lock_file.resolve()}: another workflow run (pid {owner}) is running in this directory; "
            "wait for it to finish (a killed run holds no lock)"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    _run_lock = fd
