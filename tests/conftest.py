"""Shared fixtures: the real MNIST from $ADVBENCH_DATA, small models, Ray on loopback only."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # every Ray port on 127.0.0.1
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    root = os.environ.get("ADVBENCH_DATA")
    if not root or not (Path(root) / "mnist").is_dir():
        pytest.skip("set ADVBENCH_DATA to a folder holding mnist/ (CI sets ../shared/data)")
    os.environ["ADVBENCH_DATA"] = str(Path(root).resolve())  # the e2e run works in another folder
    return Path(root).resolve() / "mnist"


@pytest.fixture(scope="session")
def cifar_dir() -> Path:
    root = os.environ.get("ADVBENCH_DATA")
    if not root or not (Path(root) / "cifar10").is_dir():
        pytest.skip("set ADVBENCH_DATA to a folder holding cifar10/ (CI sets ../shared/data)")
    return Path(root).resolve() / "cifar10"


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> Path:
    from advbench.data.splits import prepare_mnist

    out = tmp_path_factory.mktemp("data") / "mnist.npz"
    prepare_mnist(out, "local", str(mnist_dir.parent))
    return out


@pytest.fixture()
def small_mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(20, 16), torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(16, 3)
    )


def run_snakemake(
    workdir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run the smoke preset's workflow in ``workdir`` with this interpreter's tools on PATH."""
    full_env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        **(env or {}),
    }
    cmd = ["snakemake", "--profile", "workflow/profiles/default", "--configfile", "presets/smoke.yaml", *args]
    return subprocess.run(cmd, cwd=workdir, env=full_env, capture_output=True, text=True, timeout=900)


def smoke_copy(workdir: Path) -> Path:
    """A fresh copy of the workflow (no results) in ``workdir``."""
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, workdir / name)
    for name in ("workflow", "presets"):
        shutil.copytree(REPO / name, workdir / name)
    return workdir


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> Path:
    """The smoke preset run once, end to end, on the embedded local Ray."""
    work = smoke_copy(tmp_path_factory.mktemp("smoke"))
    proc = run_snakemake(work, "--cores", "2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return work
