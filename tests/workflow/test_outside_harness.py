"""The smoke run's checkpoints re-evaluated by a harness that shares no code with advbench: MNIST read from
its idx files with numpy, each network rebuilt in plain torch from the safetensors tensors and the spec in
their metadata (docs/results.md, "Reading a checkpoint without advbench"), and FGSM written out here. Its
clean, FGSM and transferred FGSM mistakes equal the ones advbench's attack and transfer jobs reported for
every seed."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

pytestmark = pytest.mark.e2e

EPS = 0.25
CHECKPOINT = "results/models/dataset=mnist/model={model}/regime={regime}/seed={seed}.safetensors"
ATTACKS = "results/metrics/attack/dataset=mnist/model={model}/regime={regime}/attacks.parquet"
TRANSFER = (
    "results/metrics/transfer/dataset=mnist/source=maxout-{source}/target=maxout-{target}/attacks.parquet"
)
RUNS = [("softmax", "clean"), ("maxout", "clean"), ("maxout", "adversarial")]


def read_idx(path: Path) -> np.ndarray:
    """An idx file (the MNIST distribution's format): magic, dimension sizes, then the array."""
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def mnist_test_set(mnist_dir: Path, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` test images as 784 intensities in [0, 1], and their labels."""
    x = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")[:n].reshape(n, 784) / 255.0
    y = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")[:n].astype(np.int64)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y)


def network(path: Path):
    """The logits function of a softmax-regression or maxout-MLP checkpoint, in evaluation mode (dropout
    off: its scaling is part of training only). Maxout units take the max over ``pieces`` slabs of
    ``units`` outputs each."""
    w = load_file(path)
    with safe_open(path, "pt") as f:
        spec = json.loads(json.loads(f.metadata()["advbench"])["spec"])
    if spec["arch"] == "softmax":
        return lambda x: x @ w["linear.weight"].T + w["linear.bias"]
    assert spec["arch"] == "maxout" and spec["output"] == "softmax", spec
    hidden = sorted({int(k.split(".")[1]) for k in w if k.endswith("linear.weight")})
    assert len(hidden) == spec["hidden_layers"]
    last = max(int(k.split(".")[1]) for k in w)

    def logits(x: torch.Tensor) -> torch.Tensor:
        for i in hidden:
            z = x @ w[f"net.{i}.linear.weight"].T + w[f"net.{i}.linear.bias"]
            x = z.view(len(z), spec["pieces"], spec["units"]).amax(dim=1)
        return x @ w[f"net.{last}.weight"].T + w[f"net.{last}.bias"]

    return logits


def mistakes(logits, x: torch.Tensor, y: torch.Tensor) -> tuple[int, float]:
    """How many are misclassified, and the mean top-class probability on those."""
    with torch.no_grad():
        p = torch.softmax(logits(x), dim=1)
    wrong = p.argmax(dim=1) != y
    return int(wrong.sum()), float(p.max(dim=1).values[wrong].mean())


def fgsm(logits, x: torch.Tensor, y: torch.Tensor, eps: float, clip: bool) -> torch.Tensor:
    """Goodfellow et al.'s x + eps sign(grad_x J(x, y)), J the cross-entropy; unclipped as in the paper, or
    clipped to the images' [0, 1]."""
    x = x.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(logits(x), y, reduction="sum").backward()
    adv = (x + eps * x.grad.sign()).detach()
    return adv.clamp(0, 1) if clip else adv


def reported(path: Path, seed: int, eps: float, clip: bool) -> dict:
    """advbench's row of an attack or transfer file for one seed and FGSM cell (true labels)."""
    rows = pq.read_table(path).to_pandas()
    keep = (
        (rows["seed"] == seed)
        & (rows["attack"] == "fgsm")
        & (rows["eps"] == eps)
        & (rows["clipped"] == clip)
        & (rows["label_source"] == "true")
    )
    (row,) = rows[keep].to_dict("records")
    return row


def assert_same(ours: tuple[int, float], theirs: dict, where: tuple) -> None:
    assert ours[0] == theirs["n_wrong"], (where, ours, theirs)
    assert ours[1] == pytest.approx(theirs["mean_conf_wrong"], rel=1e-5), where


@pytest.mark.parametrize(("model", "regime"), RUNS, ids=["-".join(r) for r in RUNS])
def test_an_outside_harness_counts_the_same_mistakes(smoke_run, mnist_dir, model, regime):
    """Each seed's clean error and its FGSM error at eps .25, unclipped and clipped (F1, F2, F6, F9)."""
    path = smoke_run / ATTACKS.format(model=model, regime=regime)
    x, y = mnist_test_set(mnist_dir, reported(path, 0, 0.0, False)["n"])
    for seed in (0, 1):
        logits = network(smoke_run / CHECKPOINT.format(model=model, regime=regime, seed=seed))
        assert_same(mistakes(logits, x, y), reported(path, seed, 0.0, False), (seed, "clean"))
        for clip in (False, True):
            adv = fgsm(logits, x, y, EPS, clip)
            assert_same(mistakes(logits, adv, y), reported(path, seed, EPS, clip), (seed, clip))


@pytest.mark.parametrize(("source", "target"), [("clean", "adversarial"), ("adversarial", "clean")])
def test_an_outside_harness_counts_the_same_transferred_mistakes(smoke_run, mnist_dir, source, target):
    """The FGSM examples of one 240-unit maxout (eps .25) on the other, seed for seed (F10's pairs)."""
    path = smoke_run / TRANSFER.format(source=source, target=target)
    x, y = mnist_test_set(mnist_dir, reported(path, 0, EPS, False)["n"])
    for seed in (0, 1):
        crafting, attacked = (
            network(smoke_run / CHECKPOINT.format(model="maxout", regime=regime, seed=seed))
            for regime in (source, target)
        )
        for clip in (False, True):
            adv = fgsm(crafting, x, y, EPS, clip)
            assert_same(mistakes(attacked, adv, y), reported(path, seed, EPS, clip), (seed, clip))
