"""A non-editable install runs the workflow: the schema and paper.yaml ship as package data.

A fresh venv gets advbench from ``pip install .`` (a wheel, not the source tree); its dependencies come from
this interpreter's site-packages through a ``.pth`` line, which adds the folder to ``sys.path`` without
running that folder's own ``.pth`` files, so the editable install of the checkout stays out of it. The chaos
preset (every stage of the DAG on tiny data, merged over the smoke preset) then runs from a folder without
``advbench/`` and must give the tables of the same run by the editable install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, smoke_copy

from advbench.results.tables import read_meta, read_table

pytestmark = pytest.mark.e2e

RESULTS = [
    ("attack", "results/metrics/attack/dataset=mnist/model=maxout/regime=adversarial/attacks.parquet"),
    ("curves", "results/metrics/curves/dataset=mnist/model=maxout/regime=clean/curves.parquet"),
    ("saliency", "results/metrics/saliency/dataset=mnist/saliency.parquet"),
]
PRESETS = ["--configfile", "presets/smoke.yaml", "presets/chaos.yaml"]


LOCAL = {".git", ".venv", "results", "resources", "logs", ".snakemake", "build"}  # the checkout's, not code


def _checkout_only(folder: str, names: list[str]) -> set[str]:
    """What a copy of the checkout leaves out: its git data, venv and run outputs (at the top only)."""
    top = Path(folder) == REPO
    return {n for n in names if (top and n in LOCAL) or n.endswith(".egg-info") or n == "__pycache__"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with advbench installed from a copy of the checkout (no git, no editable finder)."""
    root = tmp_path_factory.mktemp("installed")
    source = root / "source"
    shutil.copytree(REPO, source, ignore=_checkout_only)
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=True)
    purelib = sysconfig.get_path("purelib", vars={"base": str(env_dir), "platbase": str(env_dir)})
    Path(purelib, "advbench-test-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    pip = [str(env_dir / "bin/python"), "-m", "pip", "install", "-q", "--no-deps"]  # builds a wheel
    proc = subprocess.run([*pip, str(source)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return env_dir


def _python(env_dir: Path, code: str) -> str:
    proc = subprocess.run([str(env_dir / "bin/python"), "-c", code], capture_output=True, text=True, cwd="/")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


def test_the_install_is_not_the_checkout_and_ships_its_data(installed):
    where = _python(installed, "import advbench; print(advbench.__file__)")
    assert Path(where).is_relative_to(installed) and not Path(where).is_relative_to(REPO)
    shipped = _python(
        installed,
        "from advbench.config.schema import SCHEMA_PATH; from advbench.report.paper import load_figures;"
        "print(SCHEMA_PATH.is_file(), len(load_figures()) > 0)",
    )
    assert shipped == "True True"


def run_chaos_preset(work: Path, python: Path) -> None:
    """The chaos preset in ``work`` by ``python``'s Snakemake, with its folder first on PATH (advbench)."""
    env = {**os.environ, "PATH": f"{python.parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = [str(python), "-m", "snakemake", "--profile", "workflow/profiles/default", *PRESETS, "--cores", "2"]
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_the_installed_package_runs_the_workflow(installed, mnist_dir, tmp_path):
    work, editable = tmp_path / "installed", tmp_path / "editable"
    for folder in (work, editable):
        folder.mkdir()
        smoke_copy(folder)
    assert not (work / "advbench").exists()
    run_chaos_preset(work, installed / "bin/python")
    run_chaos_preset(editable, Path(sys.executable))
    ours, theirs = (pd.read_csv(w / "results/tables/paper_comparison.csv") for w in (work, editable))
    pd.testing.assert_frame_equal(ours, theirs)
    for kind, rel in RESULTS:
        table, reference = (read_table(w / rel, kind).replace_schema_metadata(None) for w in (work, editable))
        if kind == "curves":
            table, reference = table.drop_columns(["seconds"]), reference.drop_columns(["seconds"])
        assert table.equals(reference), rel
    # the jobs ran the installed code: outside a checkout, its provenance has no commit
    assert read_meta(work / RESULTS[0][1])["git_commit"] == "unknown"
    assert read_meta(editable / RESULTS[0][1])["git_commit"] != "unknown"
