"""Kill the workflow at every stage and rerun the same command: it completes with an uninterrupted run's
results, redoes no finished job, leaves no partial file and leaks no process (the CI version of
``advbench chaos``, on the tiny ``presets/chaos.yaml``)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from conftest import REPO

from advbench.reliability.badinputs import check_bad_inputs
from advbench.reliability.chaos import (
    CHAOS_CONFIGS,
    Summary,
    Workflow,
    copy_workflow,
    differences,
    kill,
    leaked,
    partial_files,
    result_files,
    wait_for_stage,
)

pytestmark = pytest.mark.e2e

# (stage, what is killed): data preparation, a Ray worker mid-training (the run goes on), every process of
# the run mid-attack, the Snakemake process during aggregation.
PLAN = [("prepare", "workflow"), ("train", "worker"), ("attack", "session"), ("report", "workflow")]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> Workflow:
    workflow = Workflow(copy_workflow(REPO, tmp_path_factory.mktemp("reference")), CHAOS_CONFIGS)
    log = workflow.workdir / "run.log"
    assert workflow.start(log).wait() == 0, log.read_text()[-3000:]
    return workflow


def _mtimes(workdir: Path) -> dict[Path, int]:
    """Checkpoints and metrics of finished jobs (the report's tables are redone: it was killed). A job killed
    after writing its outputs but before Snakemake recorded it done still has its incomplete markers, and
    is rightly redone."""
    markers = workdir / ".snakemake" / "incomplete"
    incomplete = {Path(base64.urlsafe_b64decode(m.name).decode()) for m in markers.glob("*")}
    kept = (
        p for p in result_files(workdir) if p.suffix in (".safetensors", ".parquet") and p not in incomplete
    )
    return {p: (workdir / p).stat().st_mtime_ns for p in kept}


def test_killed_at_every_stage_the_rerun_equals_an_uninterrupted_run(reference, tmp_path):
    workflow = Workflow(copy_workflow(REPO, tmp_path / "chaos"), CHAOS_CONFIGS)
    log, run, killed = tmp_path / "chaos.log", None, []
    for where, kind in PLAN:
        run = run or workflow.start(log)
        assert wait_for_stage(run, where, worker=kind == "worker"), f"ended before {where}: {log.read_text()}"
        assert kill(kind, run) == kind
        if kind != "worker":
            killed.append(run.pid)
            run = None
    finished = _mtimes(workflow.workdir)
    assert any(p.suffix == ".safetensors" for p in finished)  # training was done before the last kill
    assert workflow.start(log).wait() == 0, log.read_text()[-3000:]
    assert differences(reference.workdir, workflow.workdir) == []
    assert partial_files(workflow.workdir) == []
    assert {p: t for p, t in _mtimes(workflow.workdir).items() if p in finished} == finished  # not redone
    assert leaked(killed) == []
    assert not [d for pid in killed for d in Path("/tmp").glob(f"advray-{pid}-*")]  # swept by the rerun


def test_bad_inputs_are_refused_and_nothing_finished_is_lost(reference, mnist_dir, tmp_path):
    summary = Summary()
    names = {"NaN eps", "shell in data.dir", "wrong hash", "pickle payload", "torch.save payload", "NaN loss"}
    check_bad_inputs(reference, reference.workdir, mnist_dir, tmp_path, summary, names, say=lambda _: None)
    assert sorted(n for n, _, _ in summary.bad_inputs) == sorted(names)
    assert [(n, said) for n, rejected, said in summary.bad_inputs if not rejected] == []
    assert summary.problems == []
