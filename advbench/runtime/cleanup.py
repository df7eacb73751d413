"""Cleaning up after embedded Rays whose owner was killed."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from advbench.runtime.files import pid_alive

if TYPE_CHECKING:
    import psutil

TEMP_PREFIX = "advray-"


def remove_stale_temp_dirs(root: Path = Path("/tmp")) -> list[Path]:
    """Delete the temp dirs of embedded Rays whose owner died without cleaning up (``kill -9``).

    A dir is named ``advray-<owner pid>-<random>``; the owner's Ray processes die with it (kernel fate
    sharing), so a dir whose owner is gone is unused. Dirs of live owners and foreign names are kept.
    """
    removed = []
    for path in root.glob(f"{TEMP_PREFIX}*-*"):
        owner = path.name.removeprefix(TEMP_PREFIX).split("-", 1)[0]
        if owner.isdigit() and not pid_alive(int(owner)):
            kill_processes_using(path)
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


RAY_DIR_ENV = "ADVBENCH_RAY_DIR"


def kill_processes_using(directory: Path) -> list[int]:
    """Kill the processes of a dead embedded Ray: those tagged with its temp dir, running from it or holding
    files in it.

    When its owner is killed, most of an embedded Ray goes with it, but its agents (``ray::DashboardAgent``,
    ``ray::RuntimeEnvAgent``, which rename themselves) can outlive it and keep the dashboard agent's fixed
    port, so the next embedded Ray fails to start; they are found by the logs they hold in the dir. The job
    drivers of a killed workflow run inherit ``RAY_DIR_ENV`` from it (set before its Ray starts) and hold no
    file there: the tag finds them. (Ray starts its agents with an environment of its own.)
    """
    prefix = str(directory)
    return kill_matching(
        lambda proc: (
            proc.environ().get(RAY_DIR_ENV) == prefix
            or prefix in " ".join(proc.cmdline())
            or any(f.path.startswith(prefix) for f in proc.open_files())
        )
    )


def kill_matching(matches: Callable[[psutil.Process], bool]) -> list[int]:
    """SIGKILL every process of this machine but this one for which ``matches`` holds, wait for them to exit,
    and return their pids; processes that vanish or may not be read while being checked are skipped."""
    import psutil

    victims = []
    for proc in psutil.process_iter():
        try:
            if proc.pid != os.getpid() and matches(proc):
                proc.kill()
                victims.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    psutil.wait_procs(victims, timeout=5)
    return [proc.pid for proc in victims]
