"""The jobs of a Snakemake log, read line by line: each job's rule, name and stamped start and end. The
chaos harness asks which jobs are running (:func:`advbench.reliability.chaos.running_rules`), ``advbench
timeline`` when each ran (:func:`advbench.bench.workflow.job_timeline`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d{1,2} \d\d:\d\d:\d\d \d{4})\]$")
_RULE = re.compile(r"^(?:local)?rule (\w+):$")
_JOBID = re.compile(r"^\s+jobid: (\d+)$")
_BENCHMARK = re.compile(r"^\s+benchmark: benchmarks/(.+)\.tsv$")
_LOG = re.compile(r"^\s+log: (.+)$")
_FINISHED = re.compile(r"^Finished jobid: (\d+)")


@dataclass
class LoggedJob:
    """One job as its log shows it: ``name`` is its benchmark file under ``benchmarks/`` without ``.tsv``
    (else its rule); ``start`` and ``end`` the stamps before its block and its ``Finished`` line (whole
    seconds; None where the log has no stamp there); ``log`` its ``log:`` files, relative to the workflow's
    folder."""

    rule: str
    name: str
    start: datetime | None
    end: datetime | None = None
    finished: bool = False
    log: list[str] = field(default_factory=list)


def _stamp(text: str) -> datetime:
    """A job stamp, ``Mon Dec  7 03:29:29 2026`` (local time)."""
    return datetime.strptime(" ".join(text.split()), "%a %b %d %H:%M:%S %Y")


def logged_jobs(text: str) -> dict[int, LoggedJob]:
    """Every job the log has started, by job id, in the order started (a log that is still being written
    included: a block not yet showing its jobid is left out)."""
    jobs: dict[int, LoggedJob] = {}
    stamp: datetime | None = None
    block: LoggedJob | None = None  # the job whose rule block is being read
    for line in text.splitlines():
        if m := _STAMP.match(line):
            stamp = _stamp(m.group(1))
        elif m := _RULE.match(line):
            block = LoggedJob(rule=m.group(1), name=m.group(1), start=stamp)
        elif block is not None and (m := _JOBID.match(line)):
            jobs[int(m.group(1))] = block
        elif block is not None and (m := _BENCHMARK.match(line)):
            block.name = m.group(1)
        elif block is not None and (m := _LOG.match(line)):
            block.log = m.group(1).split(", ")
        elif (m := _FINISHED.match(line)) and int(m.group(1)) in jobs:
            job = jobs[int(m.group(1))]
            job.end, job.finished = stamp, True
    return jobs
