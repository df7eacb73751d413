"""``advbench timeline``: a Snakemake log's jobs, their start, end and seconds, and the stretches in which one
job ran alone, on a log written the way Snakemake 9 writes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from advbench.bench.workflow import alone_stretches, job_timeline, timeline_summary, workflow_rows
from advbench.cli import main

# Two training jobs start together (a: 0-300 s, b: 0-100 s); an attack starts when b ends (100-120 s);
# a local report job with no benchmark file runs last (300-310 s), then rule all.
LOG = """SNAKEMAKE
=========
  Date: 2026-12-07 03:29:20
  Config file(s): ['config.yaml']
Provided cores: 4
Execute 2 jobs...
[Mon Dec  7 03:29:20 2026]
localrule train:
    input: resources/data/mnist.npz
    output: results/models/a/seed=0.safetensors
    log: logs/train/mnist/maxout-a.log
    jobid: 18
    benchmark: benchmarks/train/mnist/maxout-a.tsv
    priority: 16
Shell command: None
[Mon Dec  7 03:29:20 2026]
localrule train:
    output: results/models/b/seed=0.safetensors
    jobid: 20
    benchmark: benchmarks/train/mnist/maxout-b.tsv
[Mon Dec  7 03:31:00 2026]
Finished jobid: 20 (Rule: train)
1 of 4 steps (25%) done
[Mon Dec  7 03:31:00 2026]
rule attack:
    output: results/metrics/attack/b/attacks.parquet
    log: logs/attack/mnist/maxout-b.log, logs/attack/mnist/maxout-b.extra.log
    jobid: 7
    benchmark: benchmarks/attack/mnist/maxout-b.tsv
[Mon Dec  7 03:31:20 2026]
Finished jobid: 7 (Rule: attack)
[Mon Dec  7 03:34:20 2026]
Finished jobid: 18 (Rule: train)
[Mon Dec  7 03:34:20 2026]
localrule report:
    jobid: 2
[Mon Dec  7 03:34:30 2026]
Finished jobid: 2 (Rule: report)
[Mon Dec  7 03:34:30 2026]
localrule all:
    jobid: 0
[Mon Dec  7 03:34:30 2026]
Finished jobid: 0 (Rule: all)
4 of 4 steps (100%) done
Elapsed time: 0:05:10.500000
"""


def write_run(root: Path, log: str = LOG) -> Path:
    """A workflow folder holding one Snakemake log, as a run leaves it."""
    logs = root / ".snakemake" / "log"
    logs.mkdir(parents=True)
    path = logs / "2026-12-07T032920.1.snakemake.log"
    path.write_text(log)
    return path


def test_the_timeline_has_every_finished_job_but_all_from_the_runs_start(tmp_path):
    timeline = job_timeline(write_run(tmp_path))
    rows = {r.job: (r.rule, r.start_s, r.end_s, r.seconds) for r in timeline.itertuples()}
    assert rows == {
        "train/mnist/maxout-a": ("train", 0, 300, 300),
        "train/mnist/maxout-b": ("train", 0, 100, 100),
        "attack/mnist/maxout-b": ("attack", 100, 120, 20),
        "report": ("report", 300, 310, 10),  # no benchmark file: named by its rule
    }
    assert list(timeline["start_s"]) == sorted(timeline["start_s"])


def write_job_log(root: Path, name: str, seconds: list[float]) -> None:
    """A job's log as its Ray tasks leave it (:func:`advbench.runtime.task.logged_call`)."""
    path = root / "logs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["2026-12-07 03:31:01,000 INFO advbench.runtime.ray: dispatched 2 Ray tasks"]
    lines += [
        f"2026-12-07 03:31:1{i},000 INFO advbench.runtime.task: task fgsm_task seed {i} ran {s:.2f} s"
        for i, s in enumerate(seconds)
    ]
    path.write_text("\n".join(lines) + "\n")


def test_each_job_has_its_tasks_seconds_from_its_own_logs(tmp_path, capsys):
    write_run(tmp_path)
    write_job_log(tmp_path, "train/mnist/maxout-a.log", [250.0, 240.5, 260.25])
    write_job_log(tmp_path, "attack/mnist/maxout-b.log", [9.5])
    write_job_log(tmp_path, "attack/mnist/maxout-b.extra.log", [10.0])
    timeline = job_timeline(tmp_path / ".snakemake" / "log" / "2026-12-07T032920.1.snakemake.log")
    rows = {r.job: (r.tasks, r.task_s) for r in timeline.itertuples()}
    assert rows["train/mnist/maxout-a"] == (3, 750.75)
    assert rows["attack/mnist/maxout-b"] == (2, 19.5)  # both of its log files
    tasks, seconds = rows["train/mnist/maxout-b"]  # its log is gone: no tasks, no seconds
    assert tasks == 0 and seconds != seconds
    summary = timeline_summary(timeline)
    assert (
        "Ray task seconds by rule (what the jobs cost, whatever ran beside them): train 751, attack 20"
        in summary
    )
    assert "770 task-seconds in all" not in summary  # no cores given, no share of them
    assert main(["timeline", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "|       3 |      751 |" in out
    assert "770 task-seconds in all: 62% of 4 cores over the 310 s" in out  # the log's "Provided cores"


def test_the_benchmark_reports_each_rules_task_seconds(tmp_path):
    write_run(tmp_path)
    write_job_log(tmp_path, "train/mnist/maxout-a.log", [250.0, 250.5])
    for name, seconds in [("train/mnist/maxout-a", 300), ("attack/mnist/maxout-b", 20)]:
        (tmp_path / "benchmarks" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "benchmarks" / f"{name}.tsv").write_text(f"s\th:m:s\n{seconds}\t0:00:01\n")
    rows = {r["metric"]: (r["value"], r["unit"]) for r in workflow_rows(tmp_path)}
    assert rows["rule_train_task_seconds"] == (500.5, "s (2 Ray tasks)")
    assert rows["rule_train_job_seconds"][0] == 300
    assert "rule_attack_task_seconds" not in rows  # its log is gone: no tasks to count


def test_alone_stretches_merge_and_name_the_job_that_ran_alone(tmp_path):
    alone = alone_stretches(job_timeline(write_run(tmp_path)))
    assert alone.to_dict("records") == [
        {"job": "train/mnist/maxout-a", "start_s": 120, "seconds": 180},
        {"job": "report", "start_s": 300, "seconds": 10},
    ]


def test_the_summary_says_when_training_ended_and_what_ran_alone(tmp_path):
    summary = timeline_summary(job_timeline(write_run(tmp_path)))
    assert "the last ended 310 s after" in summary
    assert "training jobs ended at 300 s; 10 s of other jobs after them" in summary
    assert "190 s in all; longest 180 s (train/mnist/maxout-a, from 120 s)" in summary


def test_an_unfinished_job_is_left_out(tmp_path):
    log = LOG.replace("[Mon Dec  7 03:31:20 2026]\nFinished jobid: 7 (Rule: attack)\n", "")
    assert "attack/mnist/maxout-b" not in set(job_timeline(write_run(tmp_path, log))["job"])


def test_the_command_prints_the_table_and_refuses_a_folder_without_a_run(tmp_path, capsys, caplog):
    write_run(tmp_path / "run")
    assert main(["timeline", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "| train  | train/mnist/maxout-a" in out and "training jobs ended at 300 s" in out
    assert main(["timeline", str(tmp_path / "empty")]) == 2
    assert "none of the 0 logs in .snakemake/log/ is a finished run of rule 'all'" in caplog.text


@pytest.mark.parametrize("log", ["", "Elapsed time: 0:00:01\n"])
def test_a_log_without_finished_jobs_gives_an_empty_timeline(tmp_path, log):
    assert job_timeline(write_run(tmp_path, log)).empty


def test_a_named_log_is_read_and_left_as_it_was(tmp_path, capsys):
    path = write_run(tmp_path)
    assert main(["timeline", "--snakemake-log", str(path)]) == 0
    assert "train/mnist/maxout-a" in capsys.readouterr().out
    assert path.read_text() == LOG  # the CLI's --log (a job's own log file) would have been overwritten
