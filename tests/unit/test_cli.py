"""The command line: one parser/command pair per subcommand, and the job log only for the workflow's jobs."""

from __future__ import annotations

import argparse

import pytest

from advbench.cli import COMMANDS, parser, run_job

WORKFLOW_JOBS = {"train", "experiment", "attack", "transfer"}  # the rules that dispatch Ray tasks


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    (sub,) = (a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_command_has_its_parser_and_runs_its_own_function():
    subparsers = _subparsers()
    assert set(subparsers) == set(COMMANDS)
    for name, command in COMMANDS.items():
        assert subparsers[name].get_default("func") is command.run
        assert command.run.__name__ == f"cmd_{name}"


def test_only_the_workflow_jobs_take_a_job_log():
    """``main`` sends the log lines to ``--log``'s file (and truncates it) for these commands alone: no other
    option, of any command, lands where it looks."""
    with_log = {name for name, p in _subparsers().items() if any(a.dest == "job_log" for a in p._actions)}
    assert with_log == WORKFLOW_JOBS
    args = parser().parse_args(
        [
            "train",
            "--job",
            "{}",
            "--seeds",
            "0",
            "--data",
            "d.npz",
            "--log",
            "j.log",
            "--model",
            "{}",
            "--regime",
            "{}",
            "--checkpoints",
            "c",
            "--curves",
            "c.pq",
        ]
    )
    assert args.job_log == "j.log"


def test_a_job_run_in_process_needs_its_log():
    with pytest.raises(ValueError, match="advbench compare: a job run in-process needs --log"):
        run_job(["compare", "a", "b"])
