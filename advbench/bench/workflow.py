"""End-to-end wall time of a finished workflow run and its split by rule, read from what Snakemake leaves
behind: the run's log (``.snakemake/log/*.snakemake.log``, its ``Elapsed time``) and the ``benchmark:``
files (``benchmarks/``, each job's wall seconds).

Nothing is run here. Jobs share the cores (one Ray head for the whole run), so a rule's job seconds
overlap other rules'; they say where the time goes, not how it adds up to the wall time.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

_ELAPSED = re.compile(r"^Elapsed time: (\d+):(\d\d):(\d\d(?:\.\d+)?)$", re.M)
_STEPS = re.compile(r"^(\d+) of \1 steps \(100%\) done$", re.M)
_CONFIGS = re.compile(r"^\s*Config file\(s\): (.*)$", re.M)
_QUOTED = re.compile(r"'([^']+)'")


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
    """The run's wall time and one row per rule, labelled with the run's config files (``model``)."""
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
    return rows
