"""A run in a folder of its own (``snakemake --directory``): a long run's outputs can live on storage that
outlives the checkout and the machine, and the same command resumes there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO

from advbench.reliability import CHAOS_CONFIGS

pytestmark = pytest.mark.e2e


def _snakemake(run: Path, *args: str) -> subprocess.CompletedProcess:
    """The chaos presets (the smallest run with every stage) from the checkout, working in ``run``."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = ["snakemake", "--profile", "workflow/profiles/default", "--configfile", *CHAOS_CONFIGS]
    cmd += ["--directory", str(run), "--cores", "2", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def _checkout_results() -> set[Path]:
    return set((REPO / "results").rglob("*"))  # empty when the checkout has no results/


def test_a_run_in_a_folder_of_its_own_keeps_every_output_there(tmp_path, mnist_dir):
    run = tmp_path / "run"
    before = _checkout_results()
    proc = _snakemake(run)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # the workflow's config.yaml came from the checkout, the preset over it, and every output went to the run
    table = pd.read_csv(run / "results/tables/paper_comparison.csv")
    assert {"F1", "F2", "F6"} <= set(table["id"])
    assert (table["n_seeds"] > 0).any()
    assert any((run / "results/models").rglob("*.safetensors"))
    assert any((run / "logs/train").rglob("*.log"))
    assert _checkout_results() == before
    # the same command finds the finished run in its folder
    proc = _snakemake(run, "-n")
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout + proc.stderr
