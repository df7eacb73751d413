"""End-to-end wall time of a finished workflow run, its split by rule and its jobs' timeline, read from what
Snakemake leaves behind: the run's log (``.snakemake/log/*.snakemake.log``: its ``Elapsed time`` and the
stamped start and end of every job) and the ``benchmark:`` files (``benchmarks/``, each job's wall seconds).

Nothing is run here. Jobs share the cores (one Ray head for the whole run), so a rule's job seconds
overlap other rules'; they say where the time goes, not how it adds up to the wall time. The timeline
(``advbench timeline``) says when: which jobs ran together, when training ended, which ran alone.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pandas as pd

from advbench.reliability.snakemake_log import LoggedJob, logged_jobs
from advbench.runtime.task import task_seconds

_ELAPSED = re.compile(r"^Elapsed time: (\d+):(\d\d):(\d\d(?:\.\d+)?)$", re.M)
_STEPS = re.compile(r"^(\d+) of \1 steps \(100%\) done$", re.M)
_CONFIGS = re.compile(r"^\s*Config file\(s\): (.*)$", re.M)
_QUOTED = re.compile(r"'([^']+)'")
_DATE = re.compile(r"^\s*Date: (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)$", re.M)
_CORES = re.compile(r"^Provided cores: (\d+)$", re.M)
TIMELINE_COLUMNS = ["rule", "job", "start_s", "end_s", "seconds", "tasks", "task_s"]


class WorkflowRunError(ValueError):
    """The workflow folder holds no finished run to read; the message names the file or folder."""


def finished_run(workflow_dir: Path) -> tuple[Path, float, int, str]:
    """The newest Snakemake log of a complete run of the default target (rule ``all``): its path, its
    elapsed wall seconds, its number of jobs and its config files (``config.yaml`` alone: the default
    preset). Runs of other targets (``bench`` itself) are skipped."""
    logs = sorted((workflow_dir / ".snakemake" / "log").glob("*.snakemake.log"), reverse=True)
    for log in logs:
        text = log.read_text()
        elapsed, steps = _ELAPSED.search(text), _STEPS.search(text)
        if elapsed and steps and "(Rule: all)" in text:
            h, m, s = elapsed.groups()
            configs = _CONFIGS.search(text)
            names = [Path(q).name for q in _QUOTED.findall(configs.group(1))] if configs else []
            return log, int(h) * 3600 + int(m) * 60 + float(s), int(steps.group(1)), "+".join(names)
    raise WorkflowRunError(
        f"{workflow_dir}: none of the {len(logs)} logs in .snakemake/log/ is a finished run of rule 'all'"
    )


def rule_seconds(workflow_dir: Path, exclude: tuple[str, ...] = ("bench",)) -> pd.DataFrame:
    """Per rule (the first folder under ``benchmarks/``): jobs, summed and longest job wall seconds."""
    rows = []
    for tsv in sorted((workflow_dir / "benchmarks").rglob("*.tsv")):
        rule = tsv.relative_to(workflow_dir / "benchmarks").parts[0]
        if rule not in exclude:
            rows.append({"rule": rule, "s": float(pd.read_csv(tsv, sep="\t")["s"].iloc[-1])})
    if not rows:
        raise WorkflowRunError(f"{workflow_dir}: no benchmark files under benchmarks/")
    df = pd.DataFrame(rows).groupby("rule")["s"].agg(jobs="count", job_seconds="sum", longest_job="max")
    return df.reset_index().sort_values("job_seconds", ascending=False)


def workflow_rows(workflow_dir: Path) -> list[dict]:
    """The run's wall time and per rule its jobs' wall seconds and, where its jobs' logs hold them, its Ray
    tasks' seconds (what the rule cost: its jobs' wall times overlap), labelled with the run's config files
    (``model``)."""
    log, wall, jobs, configs = finished_run(workflow_dir)
    keys = {"section": "workflow", "model": configs}
    rows = [{**keys, "metric": "wall_seconds", "value": wall, "unit": f"s ({jobs} jobs, {log.name})"}]
    for r in rule_seconds(workflow_dir).itertuples():
        rows.append(
            {
                **keys,
                "metric": f"rule_{r.rule}_job_seconds",
                "value": r.job_seconds,
                "unit": f"s ({r.jobs} jobs)",
            }
        )
    timeline = job_timeline(log, workflow_dir)
    for rule, tasks in timeline[timeline["tasks"] > 0].groupby("rule"):
        rows.append(
            {
                **keys,
                "metric": f"rule_{rule}_task_seconds",
                "value": float(tasks["task_s"].sum()),
                "unit": f"s ({int(tasks['tasks'].sum())} Ray tasks)",
            }
        )
    return rows


def job_timeline(log: Path, workdir: Path | None = None) -> pd.DataFrame:
    """Every finished job of a Snakemake log (rule ``all`` left out): its rule, its name (its benchmark
    file under ``benchmarks/`` without ``.tsv``, else the rule), its start, end and wall seconds from the
    run's start (the log's ``Date:``, else its first job; the log stamps whole seconds), and its Ray tasks'
    number and summed seconds from its own log under ``workdir`` (default: the folder whose
    ``.snakemake/log/`` holds ``log``; none where a job ran no task or its log is gone)."""
    text = log.read_text()
    workdir = log.resolve().parents[2] if workdir is None else workdir
    spans = [(j, j.start, j.end) for j in logged_jobs(text).values() if j.start and j.end and j.rule != "all"]
    if not spans:
        return pd.DataFrame(columns=TIMELINE_COLUMNS)
    date = _DATE.search(text)
    t0 = datetime.fromisoformat(date.group(1)) if date else min(start for _, start, _ in spans)
    rows = []
    for job, start, end in spans:
        tasks = _job_task_seconds(job, workdir)
        rows.append(
            {
                "rule": job.rule,
                "job": job.name,
                "start_s": (start - t0).total_seconds(),
                "end_s": (end - t0).total_seconds(),
                "tasks": len(tasks),
                "task_s": sum(tasks) if tasks else float("nan"),
            }
        )
    df = pd.DataFrame(rows).sort_values(["start_s", "end_s"], kind="stable", ignore_index=True)
    df["seconds"] = df["end_s"] - df["start_s"]
    return df[TIMELINE_COLUMNS]


def _job_task_seconds(job: LoggedJob, workdir: Path) -> list[float]:
    """The seconds of a job's tasks, from the job's log files that are still there."""
    paths = [workdir / name for name in job.log]
    return [s for path in paths if path.is_file() for s in task_seconds(path.read_text(errors="replace"))]


def alone_stretches(timeline: pd.DataFrame) -> pd.DataFrame:
    """The stretches of the run in which exactly one job ran (``job``, ``start_s``, ``seconds``; a job may
    run several Ray tasks at once, so one job is not one busy core)."""
    edges = sorted(set(timeline["start_s"]) | set(timeline["end_s"]))
    rows: list[dict] = []
    for a, b in zip(edges, edges[1:], strict=False):
        running = timeline[(timeline["start_s"] <= a) & (timeline["end_s"] >= b)]
        if len(running) != 1:
            continue
        job = running["job"].iloc[0]
        if rows and rows[-1]["job"] == job and rows[-1]["start_s"] + rows[-1]["seconds"] == a:
            rows[-1]["seconds"] += b - a
        else:
            rows.append({"job": job, "start_s": a, "seconds": b - a})
    return pd.DataFrame(rows, columns=["job", "start_s", "seconds"])


def provided_cores(log: Path) -> int | None:
    """The cores Snakemake was given for a run (its log's ``Provided cores:``), if the log says."""
    found = _CORES.search(log.read_text())
    return int(found.group(1)) if found else None


def timeline_summary(timeline: pd.DataFrame, cores: int | None = None) -> str:
    """Where a run's minutes went, in words: its last job's end, the end of its training jobs and what ran
    after them, the seconds of each rule's Ray tasks and, given the run's ``cores``, the share of those
    cores' time they took, and the longest stretch in which one job ran alone."""
    end = float(timeline["end_s"].max())
    lines = [f"{len(timeline)} jobs; the last ended {end:.0f} s after the run started"]
    train = timeline[timeline["rule"] == "train"]
    if not train.empty:
        train_end = float(train["end_s"].max())
        lines.append(
            f"training jobs ended at {train_end:.0f} s; {end - train_end:.0f} s of other jobs after them"
        )
    by_rule = timeline.groupby("rule")["task_s"].sum(min_count=1).dropna().sort_values(ascending=False)
    if not by_rule.empty:
        spent = ", ".join(f"{rule} {seconds:.0f}" for rule, seconds in by_rule.items())
        lines.append(f"Ray task seconds by rule (what the jobs cost, whatever ran beside them): {spent}")
        if cores:
            total = float(by_rule.sum())
            lines.append(
                f"{total:.0f} task-seconds in all: {total / (cores * end):.0%} of {cores} cores"
                f" over the {end:.0f} s (one thread per task)"
            )
    alone = alone_stretches(timeline)
    if not alone.empty:
        longest = alone.loc[alone["seconds"].idxmax()]
        lines.append(
            f"one job running alone: {alone['seconds'].sum():.0f} s in all;"
            f" longest {longest['seconds']:.0f} s ({longest['job']}, from {longest['start_s']:.0f} s)"
        )
    return "\n".join(lines)
