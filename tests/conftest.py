"""Shared fixtures: the real MNIST from $ADVBENCH_DATA, small models, Ray on loopback only."""

from __future__ import annotations

import os
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
def prepared(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> Path:
    from advbench.data import prepare_mnist

    out = tmp_path_factory.mktemp("data") / "mnist.npz"
    prepare_mnist(out, "local", str(mnist_dir.parent))
    return out


@pytest.fixture()
def small_mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(20, 16), torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(16, 3)
    )
