"""Files written atomically (a temporary name, then a rename) and the liveness of their writers."""

from __future__ import annotations

import contextlib
import glob
import os
import platform
from collections.abc import Iterator
from pathlib import Path


def _remove_stale_temps(path: Path) -> None:
    """Delete temporary siblings of ``path`` left by killed writers on this host (their pid is gone)."""
    prefix = f".{path.name}.tmp-{platform.node()}-"
    for tmp in path.parent.glob(f"{glob.escape(prefix)}*"):
        pid = tmp.name.removeprefix(prefix)
        if pid.isdigit() and not pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it into place only if the block succeeds.

    A killed writer leaves at most its temporary file (never a partial ``path``); the next writer of the same
    path removes it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
    tmp = path.with_name(f".{path.name}.tmp-{platform.node()}-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
