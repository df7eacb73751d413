"""Static adversarial data augmentation: FGSM examples of a trained source model, made once, mixed with the
clean examples; the train job that makes them, the config checks, and the label-leaking table."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import REPO
from torch.nn import functional as F

from advbench.attacks import fgsm
from advbench.config.loading import load_config
from advbench.config.specs import ConfigError, model_spec, regime_spec
from advbench.config.validation import validate_config
from advbench.jobs.train import train_task, with_fixed_examples
from advbench.models.architectures import build
from advbench.plan import Plan
from advbench.report.tables import label_leaking
from advbench.results import checkpoints
from advbench.runtime.ray import RaySettings
from advbench.training.loop import Tensors, objective, train_model
from advbench.training.state import data_digest

SPEC = model_spec("softmax", {"arch": "softmax", "max_col_norm": None, "train": {"max_epochs": 2}})
STATIC = regime_spec("static", {"kind": "static", "alpha": 0.25, "eps": 0.2})


def data(seed: int = 0) -> dict[str, np.ndarray]:
    g = np.random.default_rng(seed)
    x = g.integers(0, 256, (300, 28, 28), dtype=np.uint8)
    y = g.integers(0, 10, 300)
    return {"x_train": x[:200], "y_train": y[:200], "x_val": x[200:], "y_val": y[200:]}


def source_checkpoint(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(3)
    source = build(SPEC)
    with torch.no_grad():
        source.linear.weight.normal_(0, 0.1)
    path = tmp_path / "source.safetensors"
    checkpoints.save(source.state_dict(), path, {"model": "softmax"})
    return path, source.eval()


def test_the_objective_is_the_alpha_mixture_on_the_fixed_examples():
    g = torch.Generator().manual_seed(2)
    x, fixed = torch.rand(16, 784, generator=g), torch.rand(16, 784, generator=g)
    y = torch.randint(0, 10, (16,), generator=g)
    model = build(SPEC, torch.Generator().manual_seed(0))
    values = objective(model, x, y, STATIC, fixed)
    loss = 0.25 * F.cross_entropy(model(x), y) + 0.75 * F.cross_entropy(model(fixed), y)
    expected = torch.autograd.grad(loss, list(model.parameters()))
    for p, e in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, e)
    torch.testing.assert_close(values.mean(), loss.detach())
    with pytest.raises(ValueError, match="'static' .*needs its fixed adversarial examples"):
        objective(model, x, y, STATIC)


def test_the_fixed_examples_are_the_source_models_fgsm(tmp_path):
    path, source = source_checkpoint(tmp_path)
    d = data()
    x = torch.from_numpy(d["x_train"].reshape(200, -1).astype(np.float32) / 255)
    y = torch.from_numpy(d["y_train"])
    xv = torch.from_numpy(d["x_val"].reshape(100, -1).astype(np.float32) / 255)
    tensors = Tensors(x, y, xv, torch.from_numpy(d["y_val"]))
    fixed, weights = with_fixed_examples(tensors, SPEC, STATIC, str(path))
    torch.testing.assert_close(fixed.fixed_train, fgsm(source, x, y, 0.2))
    assert fixed.fixed_train.shape == x.shape and fixed.fixed_val.shape == xv.shape
    assert (fixed.fixed_train - x).abs().max() == pytest.approx(0.2)
    torch.testing.assert_close(weights["linear.weight"], source.linear.weight)
    # the saved states of a static run know which examples they were trained on
    assert data_digest(fixed) != data_digest(tensors)


def test_continue_starts_from_the_given_weights():
    """With lr 0 nothing moves: a run that continues ends where it started, one from scratch elsewhere."""
    frozen = model_spec("softmax", {"arch": "softmax", "max_col_norm": None})
    frozen = replace(frozen, train=replace(frozen.train, lr=0.0, lr_min=0.0, max_epochs=1))
    g = torch.Generator().manual_seed(4)
    x, y = torch.rand(50, 784, generator=g), torch.randint(0, 10, (50,), generator=g)
    tensors = Tensors(x, y, x[:20], y[:20], x.clamp(0, 0.5), x[:20].clamp(0, 0.5))
    init = {k: torch.full_like(v, 0.01) for k, v in build(frozen).state_dict().items()}
    state, _ = train_model(frozen, STATIC, tensors, seed=1, init=init)
    assert all(torch.equal(state[k], init[k]) for k in init)
    scratch, _ = train_model(frozen, STATIC, tensors, seed=1)
    assert not torch.equal(scratch["linear.weight"], init["linear.weight"])


@pytest.mark.parametrize("init", ["scratch", "continue"])
def test_the_train_task_trains_on_its_source_models_examples(tmp_path, init):
    path, _ = source_checkpoint(tmp_path)
    regime = replace(STATIC, init=init)
    out = tmp_path / f"{init}.safetensors"
    settings = RaySettings(use_ray=False)
    result = train_task(data(), SPEC, regime, "mnist", 0, str(out), settings, source=str(path))
    assert [r["epoch"] for r in result["rows"]] == [1, 2] and out.is_file()
    with pytest.raises(ValueError, match="needs the checkpoint of its source model"):
        train_task(data(), SPEC, regime, "mnist", 0, str(tmp_path / "x.safetensors"), settings)


def config_with(runs: list[dict], **regimes) -> dict:
    config = copy.deepcopy(load_config(REPO / "config.yaml"))
    config["regimes"] |= regimes
    config["runs"] = runs
    config |= {"transfer": {"eps": [0.25], "pairs": []}, "rotation": None, "agreement": None, "sweep": None}
    config |= {"saliency": None}
    config |= {"rubbish": None, "report": {"examples": [], "weights": []}}
    return config


def test_the_config_names_a_trained_source():
    runs = [{"model": "softmax", "regime": "clean"}, {"model": "softmax", "regime": "static"}]
    plan = Plan(validate_config(config_with(runs)))
    assert plan.train_sources("mnist", "softmax", "static") == plan.checkpoints("mnist", "softmax", "clean")
    assert plan.train_sources("mnist", "softmax", "clean") == []
    with pytest.raises(ConfigError, match=r"runs\[0\]: regime 'static' .* on 'softmax-clean'"):
        validate_config(config_with(runs[1:]))
    chained = {"kind": "static", "source_regime": "static"}
    runs2 = [*runs, {"model": "softmax", "regime": "again"}]
    with pytest.raises(ConfigError, match="regimes.again.source_regime: 'static' is static itself"):
        validate_config(config_with(runs2, again=chained))


def test_label_leaking_flags_an_error_that_falls_with_eps():
    rows = []
    for seed in (0, 1):
        grid = ((0.0, 0.02, 0.02), (0.1, 0.60, 0.40), (0.25, 0.30, 0.41), (0.3, 0.35, 0.50))
        for eps, leaky, plain in grid:
            keys = {"seed": seed, "eps": eps, "clipped": False, "attack": "fgsm"}
            rows += [keys | {"model": "m", "regime": "leaky", "error": leaky}]
            rows += [keys | {"model": "m", "regime": "plain", "error": plain}]
    table = label_leaking(pd.DataFrame(rows)).set_index("regime")
    assert bool(table.loc["leaky", "label_leaking"]) and not bool(table.loc["plain", "label_leaking"])
    assert (table.loc["leaky", "eps_from"], table.loc["leaky", "eps_to"]) == (0.1, 0.25)
    assert table.loc["leaky", "largest_fall"] == pytest.approx(30.0)
    assert table.loc["plain", "largest_fall"] < 0  # its error only grows: the smallest rise
