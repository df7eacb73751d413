"""Chaos: kill the workflow at random moments, rerun it, and check that nothing is lost or wrong.

``advbench chaos`` copies the workflow into a scratch folder and runs it once without interruption (the
reference). It then runs it from scratch in a second folder and, at random moments, SIGKILLs the Snakemake
process, its whole session, or one busy Ray worker, rerunning the same command after every kill of the
workflow. Every run that completes must equal the reference (Parquet data by ``Table.equals``, checkpoints
tensor by tensor), leave no partial file and leak no process. Finally the finished workflow is fed malformed
configs, data files and checkpoints (:mod:`advbench.reliability.badinputs`).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from advbench.reliability import CHAOS_CONFIGS, KINDS
from advbench.reliability.snakemake_log import logged_jobs

WORKFLOW_FILES = ("Snakefile", "config.yaml", "workflow", "presets")
STATE = ("results", "resources", "logs", "benchmarks", ".snakemake")
VOLATILE_COLUMNS = ("seconds",)  # wall time per epoch: a measurement, not a result
_JOB = re.compile(r"advbench (\w+)")  # a job's process, or a Ray worker's title (ray::advbench train)
RULE_STAGES = {  # rule -> the advbench command it runs, where the names differ
    "prepare_data": "prepare",
    "train_members": "train",
    **dict.fromkeys(("agreement", "sweep", "ensemble", "rubbish"), "experiment"),
}


class Run(subprocess.Popen):
    """A workflow run, and where its part of the (shared, appended) log begins."""

    log: Path
    log_offset: int = 0
    _log_read: bytes = b""

    def log_text(self) -> str:
        """This run's log so far (read on from where the last call stopped: the harness polls it)."""
        with open(self.log, "rb") as fh:
            fh.seek(self.log_offset + len(self._log_read))
            self._log_read += fh.read()
        return self._log_read.decode(errors="replace")


def running_rules(log_text: str) -> set[str]:
    """The rules of the jobs that Snakemake's log shows started and not yet finished."""
    return {job.rule for job in logged_jobs(log_text).values() if not job.finished}


def copy_workflow(repo: Path, dest: Path) -> Path:
    """A fresh copy of the workflow (no results) in ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = repo / name
        if src.is_dir():
            shutil.copytree(src, dest / name, dirs_exist_ok=True)
        else:
            shutil.copy(src, dest / name)
    return dest


def reset(workdir: Path) -> None:
    """Delete everything a run wrote, so that the next run starts from scratch."""
    for name in STATE:
        shutil.rmtree(workdir / name, ignore_errors=True)


@dataclass(frozen=True)
class Workflow:
    """The README's command in ``workdir``, each run in its own session (to find and kill its processes)."""

    workdir: Path
    configfiles: tuple[str, ...] = ("presets/smoke.yaml",)
    cores: int = 2

    def command(self) -> list[str]:
        profile = ["--profile", "workflow/profiles/default", "--configfile", *self.configfiles]
        return ["snakemake", *profile, "--cores", str(self.cores)]

    def start(self, log: Path) -> Run:
        with open(log, "ab") as fh:
            offset = fh.tell()
            run = Run(
                self.command(),
                cwd=self.workdir,
                env=tool_env(),
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        run.log, run.log_offset = log, offset
        return run


def tool_env() -> dict[str, str]:
    """This interpreter's tools first on PATH; Ray on loopback only."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def session(sid: int) -> list[psutil.Process]:
    """The live processes of session ``sid`` (a run, its jobs, its Ray), orphans included."""
    procs = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == sid and proc.status() != psutil.STATUS_ZOMBIE:
                procs.append(proc)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return procs


def _cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


def stage(run: Run) -> str:
    """The ``advbench`` commands a run is executing (``snakemake`` when none: parsing or scheduling).

    A job in a process of its own shows in the process table; one in a thread of the Snakemake process (the
    default profile) shows in the run's log, and its Ray tasks in their workers' titles."""
    jobs = {m.group(1) for p in session(run.pid) for m in _JOB.finditer(_cmdline(p))}
    jobs |= {RULE_STAGES.get(rule, rule) for rule in running_rules(run.log_text())}
    return "+".join(sorted(jobs)) or "snakemake"


# Ray processes named ray::… that run no task: idle workers, and the node's agents (killing an agent takes
# its raylet, i.e. the whole node, down: a node failure, not a worker failure)
NOT_WORKERS = ("ray::IDLE", "ray::DashboardAgent", "ray::RuntimeEnvAgent")


def busy_workers(sid: int) -> list[psutil.Process]:
    """Ray workers of the run that are executing a task."""
    return [
        p for p in session(sid) if (c := _cmdline(p)).startswith("ray::") and not c.startswith(NOT_WORKERS)
    ]


def kill(kind: str, run: subprocess.Popen) -> str:
    """SIGKILL the Snakemake process (``workflow``), every process of its session (``session``) or one busy
    Ray worker (``worker``; the workflow when none is busy). Returns the kind actually done."""
    if kind == "worker" and (workers := busy_workers(run.pid)):
        workers[0].send_signal(signal.SIGKILL)
        return "worker"
    victims = session(run.pid) if kind == "session" else [psutil.Process(run.pid)]
    for proc in victims:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.Error:
            continue
    run.wait()
    return "session" if kind == "session" else "workflow"


def wait_for_stage(run: Run, name: str, worker: bool = False, timeout: float = 600) -> bool:
    """Poll until ``advbench <name>`` runs (with a busy Ray worker if ``worker``): True, or False if the run
    ends first."""
    deadline = time.monotonic() + timeout
    while run.poll() is None and time.monotonic() < deadline:
        if name in stage(run).split("+") and (not worker or busy_workers(run.pid)):
            return True
        time.sleep(0.1)
    return False


def leaked(sids: Sequence[int], grace: float = 90) -> list[str]:
    """Processes of killed runs still alive after ``grace`` seconds."""
    deadline = time.monotonic() + grace
    while (alive := [p for sid in sids for p in session(sid)]) and time.monotonic() < deadline:
        time.sleep(1)
    return [f"{p.pid} {_cmdline(p)[:120]}" for p in alive]


def partial_files(workdir: Path) -> list[str]:
    """Temporary files of interrupted writes under ``results/`` and ``resources/``."""
    found = []
    for top in ("results", "resources"):
        found += [str(p.relative_to(workdir)) for p in (workdir / top).rglob("*.tmp-*")]
    return found


def result_files(root: Path) -> set[Path]:
    """Checkpoints, Parquet results and CSV tables under ``root/results``, relative to ``root``."""
    keep = {".parquet", ".safetensors", ".csv"}
    return {p.relative_to(root) for p in (root / "results").rglob("*") if p.suffix in keep}


def _same(a: Path, b: Path) -> bool:
    if a.suffix == ".parquet":
        import pyarrow.parquet as pq

        ta, tb = (pq.read_table(p) for p in (a, b))
        drop = [c for c in VOLATILE_COLUMNS if c in ta.column_names]
        return ta.drop_columns(drop).equals(tb.drop_columns([c for c in drop if c in tb.column_names]))
    if a.suffix == ".safetensors":
        import torch
        from safetensors.torch import load_file

        sa, sb = load_file(a), load_file(b)
        return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    return a.read_bytes() == b.read_bytes() or (a.suffix == ".csv" and _same_but_wall_times(a, b))


def _same_but_wall_times(a: Path, b: Path) -> bool:
    """Two CSV tables equal once their wall-time columns (``*seconds*``, the training-cost table's) are
    dropped; False when there are none to drop."""
    import pandas as pd

    ta, tb = pd.read_csv(a), pd.read_csv(b)
    volatile = [c for c in ta.columns if any(v in c for v in VOLATILE_COLUMNS)]
    if not volatile or list(ta.columns) != list(tb.columns):
        return False
    return ta.drop(columns=volatile).equals(tb.drop(columns=volatile))


def differences(reference: Path, other: Path) -> list[str]:
    """How ``other``'s results differ from ``reference``'s: Parquet data (metadata and wall times ignored),
    checkpoints tensor by tensor, tables (CSV) byte by byte but for their wall-time columns."""
    ref, got = result_files(reference), result_files(other)
    diffs = [f"missing {p}" for p in sorted(ref - got)] + [f"unexpected {p}" for p in sorted(got - ref)]
    return diffs + [f"differs {p}" for p in sorted(ref & got) if not _same(reference / p, other / p)]


@dataclass
class Summary:
    """What a chaos run did and found."""

    kills: list[tuple[str, str, float]] = field(default_factory=list)  # kind, stage, seconds into the run
    completed: int = 0
    identical: int = 0
    problems: list[str] = field(default_factory=list)
    leaked: list[str] = field(default_factory=list)
    bad_inputs: list[tuple[str, bool, str]] = field(default_factory=list)  # name, rejected, message

    @property
    def ok(self) -> bool:
        rejected = all(r for _, r, _ in self.bad_inputs)
        return self.identical == self.completed > 0 and not self.problems and not self.leaked and rejected

    def lines(self) -> list[str]:
        kinds = {k: sum(1 for kind, _, _ in self.kills if kind == k) for k in KINDS}
        stages = sorted({s for _, s, _ in self.kills})
        rejected = sum(1 for _, r, _ in self.bad_inputs if r)
        out = [
            f"kills survived: {len(self.kills)} ({', '.join(f'{k} {n}' for k, n in kinds.items())}; "
            f"during {', '.join(stages) or '-'})",
            f"reruns identical: {self.identical}/{self.completed} completed runs equal the reference",
            f"bad inputs tried and rejected: {rejected}/{len(self.bad_inputs)}",
            f"leaked processes: {len(self.leaked)}",
        ]
        out += [f"  problem: {p}" for p in self.problems] + [f"  leaked: {p}" for p in self.leaked]
        out += [f"  NOT rejected: {n}: {m}" for n, r, m in self.bad_inputs if not r]
        return out


def check_completed(rc: int, workdir: Path, reference: Path, summary: Summary, log: Path) -> None:
    """Score a run that ended by itself: it must succeed, equal the reference and leave no partial file."""
    if rc != 0:
        summary.problems.append(f"a rerun failed (exit {rc}); see {log}")
        return
    summary.completed += 1
    diffs = differences(reference, workdir) + [f"partial {p}" for p in partial_files(workdir)]
    summary.identical += not diffs
    summary.problems += diffs


def run_chaos(
    repo: Path,
    scratch: Path,
    kills: int,
    seed: int = 0,
    configfiles: tuple[str, ...] = CHAOS_CONFIGS,
    cores: int = 2,
    kinds: Sequence[str] = KINDS,
    say: Callable[[str], None] = print,
) -> Summary:
    """Reference run, then ``kills`` kills at random moments, each followed by the same command."""
    reference = Workflow(copy_workflow(repo, scratch / "reference"), configfiles, cores)
    started = time.monotonic()
    if reference.start(scratch / "reference.log").wait() != 0:
        raise RuntimeError(f"the reference run failed; see {scratch / 'reference.log'}")
    duration = time.monotonic() - started
    say(f"reference run: {duration:.0f} s")
    chaos, log = Workflow(copy_workflow(repo, scratch / "chaos"), configfiles, cores), scratch / "chaos.log"
    rng, summary, killed, run = random.Random(seed), Summary(), [], None
    while len(summary.kills) < kills:
        if run is None:
            run, began = chaos.start(log), time.monotonic()
        try:
            rc = run.wait(timeout=rng.uniform(0.5, duration))
        except subprocess.TimeoutExpired:
            where, done = stage(run), kill(rng.choice(kinds), run)
            summary.kills.append((done, where, time.monotonic() - began))
            say(f"kill {len(summary.kills)}: {done} during {where}, {time.monotonic() - began:.0f} s in")
            if done != "worker":
                killed.append(run.pid)
                run = None
            continue
        check_completed(rc, chaos.workdir, reference.workdir, summary, log)
        say(f"run completed (exit {rc}); starting over from scratch")
        reset(chaos.workdir)
        run = None
    rc = (run or chaos.start(log)).wait()
    check_completed(rc, chaos.workdir, reference.workdir, summary, log)
    summary.leaked = leaked(killed)
    return summary
