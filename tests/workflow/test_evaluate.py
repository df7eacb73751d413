"""Bring your own model, end to end: a CNN trained here in plain torch (not an advbench model), saved as
safetensors, evaluated by ``advbench evaluate`` beside the paper's models, and its numbers re-derived from
its own module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import REPO, smoke_copy
from safetensors.torch import save_file

from advbench.results.tables import read_many, read_table

pytestmark = pytest.mark.e2e

NET = """
import torch
from torch import nn


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 5, padding=2)
        self.fc = nn.Linear(8 * 14 * 14, 10)

    def forward(self, x):  # (N, 1, 28, 28) in [0, 1]
        return self.fc(torch.max_pool2d(torch.relu(self.conv(x)), 2).flatten(1))


def small_cnn():
    return SmallCNN()
"""


def _train(factory: Path, data: Path, out: Path) -> torch.nn.Module:
    """A user's training: one pass of Adam over 20,000 training images."""
    sys.path.insert(0, str(factory.parent))
    try:
        from mynet import small_cnn
    finally:
        sys.path.pop(0)
    torch.manual_seed(0)
    net, splits = small_cnn(), np.load(data)
    x = torch.from_numpy(splits["x_train"][:20000]).float().reshape(-1, 1, 28, 28) / 255  # pixels in [0, 1]
    y = torch.from_numpy(splits["y_train"][:20000]).long()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    for i in range(0, len(x), 100):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x[i : i + 100]), y[i : i + 100]).backward()
        opt.step()
    save_file(net.state_dict(), str(out))
    return net.eval()


def test_advbench_evaluate_runs_the_battery_on_a_model_of_ones_own(tmp_path, prepared, mnist_dir):
    user = tmp_path / "user"
    user.mkdir()
    (user / "mynet.py").write_text(NET)
    net = _train(user / "mynet.py", prepared, user / "mynet.safetensors")
    (tmp_path / "work").mkdir()
    work = smoke_copy(tmp_path / "work")
    overlay = REPO / "tests/workflow/evaluate_small.yaml"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = [
        "advbench", "evaluate", "--name", "mynet", "--factory", "mynet.py:small_cnn",
        "--weights", "mynet.safetensors", "--input-shape", "1", "28", "28", "--workdir", str(work),
        "--configfile", str(overlay), "--cores", "2",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=user, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    # its clean error, re-derived from the user's own module on the same 500 test images
    attack = read_table(
        work / "results/metrics/attack/dataset=mnist/model=mynet/regime=pretrained/attacks.parquet", "attack"
    ).to_pandas()
    splits = np.load(prepared)
    x, y = (
        torch.from_numpy(splits["x_test"][:500]).float() / 255,
        torch.from_numpy(splits["y_test"][:500]).long(),
    )
    with torch.no_grad():
        wrong = int((net(x.reshape(-1, 1, 28, 28)).argmax(1) != y).sum())
    clean = attack[(attack["eps"] == 0) & (attack["attack"] == "fgsm") & ~attack["clipped"]]
    assert clean["n_wrong"].tolist() == [wrong] and wrong < 50
    at = attack[np.isclose(attack["eps"], 0.25) & attack["clipped"]].groupby("attack")["error"].mean()
    assert at["pgd"] >= at["fgsm"] - 0.01 and at["random_sign"] < at["fgsm"]

    # transfer to and from the paper's models, rubbish inputs, its record and its place on the leaderboard
    transfer = read_many(
        sorted((work / "results/metrics/transfer").rglob("*.parquet")), "transfer"
    ).to_pandas()
    ends = set(zip(transfer["source_model"], transfer["target_model"], strict=True))
    assert {("mynet", "maxout"), ("maxout", "mynet"), ("mynet", "softmax"), ("softmax", "mynet")} <= ends
    rubbish = read_table(work / "results/metrics/rubbish/rubbish.parquet", "rubbish").to_pandas()
    assert "mynet" in set(rubbish["model"])
    record = json.loads((work / "results/records/mnist/mynet-pretrained.json").read_text())
    assert record["architecture"].startswith("external: ") and record["regime"]["kind"] == "none"
    assert record["clean_acc"] == pytest.approx(100 * (1 - wrong / 500))
    assert record["robust_acc"] == pytest.approx(100 * (1 - at.max()), abs=1e-3)
    board = pd.read_csv(work / "results/tables/leaderboard.csv")
    assert "mynet-pretrained" in set(board["name"])
    curves = read_table(
        work / "results/metrics/curves/dataset=mnist/model=mynet/regime=pretrained/curves.parquet", "curves"
    ).to_pandas()
    assert curves["epoch"].tolist() == [0]  # taken as given: no training step


def test_advbench_evaluate_refuses_a_model_that_does_not_fit_before_any_job(tmp_path):
    work = smoke_copy(tmp_path)
    (tmp_path / "flat.py").write_text(NET.replace("small_cnn", "make"))
    cmd = [
        "advbench",
        "evaluate",
        "--name",
        "flat",
        "--factory",
        f"{tmp_path / 'flat.py'}:make",
        "--workdir",
        str(work),
    ]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert (
        "models.flat: fails on a batch of shape (16, 784)" in proc.stderr and "set input_shape" in proc.stderr
    )
    assert not (work / "results/metrics").exists()  # refused before any job ran
