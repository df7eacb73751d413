"""The image panels as Parquet (advbench panels) and the figures drawn from them with no checkpoint or
dataset on disk; CIFAR-10's whitening inverted for display."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from advbench.config.specs import model_spec, regime_spec
from advbench.data.cifar10 import fit_zca, gcn, preprocess, unwhiten
from advbench.data.inputs import to_float
from advbench.data.registry import PREP_PREFIX
from advbench.evaluation.saliency import gradient_map, smoothgrad
from advbench.jobs import panels
from advbench.models.architectures import build
from advbench.report import figures
from advbench.report.tables import load_tables
from advbench.results import checkpoints
from advbench.results.schemas import SCHEMA_VERSION
from advbench.results.tables import read_meta, read_table
from advbench.training.loop import task_seed

SPECS = {
    "softmax": {"arch": "softmax", "max_col_norm": None},
    "logistic37": {"arch": "logistic", "classes": [3, 7], "max_col_norm": None},
    "maxout": {"arch": "maxout", "units": 6, "pieces": 2, "init_range": 0.05},
    "conv": {
        "arch": "conv_maxout",
        "dataset": "cifar10",
        "channels": [4],
        "kernels": [5],
        "pads": [2],
        "pools": [4],
        "pool_strides": [4],
        "units": 5,
        "pieces": 2,
        "init_range": 0.05,
    },
}


def zca_prep(x_train: np.ndarray) -> dict[str, np.ndarray]:
    mean, p = fit_zca(gcn(x_train))
    prep = {"zca_mean": mean, "zca_matrix": p.astype(np.float32), "gcn_scale": np.float64(55.0)}
    return {PREP_PREFIX + k: v for k, v in prep.items()}


def test_unwhiten_recovers_the_gcn_images():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(80, 3, 8, 8), dtype=np.uint8)  # fewer images than dimensions
    prep = zca_prep(x[:60])
    white = preprocess(x[60:], prep)
    assert not np.allclose(white, gcn(x[60:]), atol=0.1)  # whitening changed them
    np.testing.assert_allclose(unwhiten(white, prep), gcn(x[60:]), atol=1e-3)


def entry(tmp: Path, name: str, seed: int = 0) -> dict:
    """A run entry with a freshly initialized model's checkpoint (what a trained run's entry holds)."""
    spec, regime = model_spec(name, SPECS[name]), regime_spec("clean", {"kind": "clean"})
    torch.manual_seed(seed)
    path = tmp / f"{name}.safetensors"
    checkpoints.save(build(spec).state_dict(), path, {})
    spec_dict = {**spec.__dict__, "train": spec.train.__dict__}
    return {"run": f"{name}-clean", "model": spec_dict, "regime": regime.__dict__, "checkpoint": str(path)}


@pytest.fixture()
def panel_files(tmp_path: Path) -> dict[str, Path]:
    """The panels of two MNIST models, the logistic 3 vs 7 and a tiny CIFAR-10 conv maxout on small
    synthetic test sets; the checkpoints and data are deleted afterwards."""
    rng = np.random.default_rng(1)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    y = np.tile(np.arange(10), 3).astype(np.int64)
    mnist = {"x_test": rng.integers(0, 256, (30, 28, 28), dtype=np.uint8), "y_test": y}
    cifar = {"x_test": rng.integers(0, 256, (30, 3, 32, 32), dtype=np.uint8), "y_test": y}
    cifar |= zca_prep(rng.integers(0, 256, (40, 3, 32, 32), dtype=np.uint8))
    for name, arrays in (("mnist", mnist), ("cifar10", cifar)):
        np.savez(inputs / f"{name}.npz", **arrays)
    job = {
        "seed": 0,
        "data": {ds: str(inputs / f"{ds}.npz") for ds in ("mnist", "cifar10")},
        "examples": [entry(inputs, "softmax"), entry(inputs, "maxout"), entry(inputs, "conv")],
        "weights": [entry(inputs, "maxout"), entry(inputs, "conv")],
        "logistic": entry(inputs, "logistic37"),
        "rubbish": [entry(inputs, "softmax"), entry(inputs, "conv")],
        "example_eps": {"mnist": 0.25, "cifar10": 0.1},
        "n_examples": 3,
        "n_weights": 10,
        "rubbish_n": {"mnist": 50, "cifar10": 20},
        "rubbish_k": 4,
        "rubbish_threshold": 0.5,
        "saliency": [entry(inputs, "softmax"), entry(inputs, "maxout"), entry(inputs, "conv")],
        "saliency_settings": {"maps": 3, "samples": 2, "noise": 0.15},
    }
    out = panels.make_panels(job, tmp_path / "panels")
    out["mnist_x"], out["cifar_x"] = mnist["x_test"], cifar["x_test"]
    out["cifar_prep"] = {k: v for k, v in cifar.items() if k.startswith(PREP_PREFIX)}
    shutil.rmtree(inputs)  # the figures must not need them
    return out


def test_examples_round_trip_in_display_space(panel_files):
    table = read_table(panel_files["panel_examples"], "panel_examples").to_pandas()
    grid = table[table["figure"] == "examples"]
    assert grid.groupby("model", sort=False).size().to_dict() == {"softmax": 3, "maxout": 3, "conv": 3}
    mnist = grid[grid["dataset"] == "mnist"]
    assert list(mnist["example"][:3]) == [0, 1, 2] and list(mnist["label"][:3]) == [0, 1, 2]
    clean = np.stack(list(mnist["clean"]))
    np.testing.assert_array_equal(
        clean[:3], to_float(panel_files["mnist_x"][:3])
    )  # MNIST: pixels as they are
    pert = np.stack(list(mnist["perturbation"]))
    np.testing.assert_allclose(np.abs(pert), 0.25, atol=1e-6)  # unclipped FGSM: +-eps on every pixel
    np.testing.assert_allclose(np.stack(list(mnist["adversarial"])), clean + pert, atol=1e-6)
    assert list(mnist["shape"].iloc[0]) == [1, 28, 28]
    assert mnist["clean_conf"].between(0.1, 1).all() and mnist["adv_pred"].between(0, 9).all()
    cifar = grid[grid["dataset"] == "cifar10"]
    assert list(cifar["shape"].iloc[0]) == [3, 32, 32] and (cifar["eps"] == 0.1).all()
    shown = np.stack(list(cifar["clean"]))
    assert shown.min() == pytest.approx(0.0) and shown.max() == pytest.approx(1.0)
    original = gcn(panel_files["cifar_x"][:3])  # display = the GCN'd image, scaled by its range
    lo, hi = original.min(axis=1, keepdims=True), original.max(axis=1, keepdims=True)
    np.testing.assert_allclose(shown, (original - lo) / (hi - lo), atol=1e-4)
    logistic = table[table["figure"] == "logistic"]
    assert list(logistic["label"]) == [3, 7] and set(logistic["clean_pred"]) <= {3, 7}


def test_weights_and_rubbish_round_trip(panel_files):
    weights = read_table(panel_files["panel_weights"], "panel_weights").to_pandas()
    first = weights[weights["figure"] == "first_layer"]
    assert first.groupby("model").size().to_dict() == {"conv": 4, "maxout": 6}  # units, one piece each
    conv = first[first["model"] == "conv"]
    assert list(conv["shape"].iloc[0]) == [3, 5, 5] and len(conv["weights"].iloc[0]) == 75
    assert len(weights[weights["figure"] == "logistic"]["weights"].iloc[0]) == 784
    rubbish = read_table(panel_files["panel_rubbish"], "panel_rubbish").to_pandas()
    assert rubbish.groupby("dataset").size().to_dict() == {"cifar10": 4, "mnist": 4}
    expected = panels.rubbish_noise("mnist", 0, 50, 4).numpy()  # the rubbish experiment's first inputs
    np.testing.assert_array_equal(np.stack(list(rubbish[rubbish["dataset"] == "mnist"]["noise"])), expected)
    meta = read_meta(panel_files["panel_rubbish"])
    assert meta["rule"] == "panels" and meta["schema_version"] == SCHEMA_VERSION


def test_saliency_maps_are_the_experiments_maps_of_the_first_inputs(panel_files):
    table = read_table(panel_files["panel_saliency"], "panel_saliency").to_pandas()
    assert table.groupby(["dataset", "model"], sort=False).size().to_dict() == {
        ("mnist", "softmax"): 3,
        ("mnist", "maxout"): 3,
        ("cifar10", "conv"): 3,
    }
    maxout = table[table["model"] == "maxout"]
    assert list(maxout["example"]) == [0, 1, 2] and list(maxout["label"]) == [0, 1, 2]
    x = torch.from_numpy(to_float(panel_files["mnist_x"][:3]).reshape(3, -1))
    np.testing.assert_array_equal(np.stack(list(maxout["image"])), x.numpy())
    torch.manual_seed(0)  # the fixture's model again (its checkpoint is gone)
    model = build(model_spec("maxout", SPECS["maxout"])).eval()
    y = torch.arange(3)
    np.testing.assert_allclose(np.stack(list(maxout["gradient"])), gradient_map(model, x, y).numpy())
    gen = torch.Generator().manual_seed(task_seed("mnist", "saliency", 0))  # the experiment's noise
    expected = smoothgrad(model, x, y, 2, 0.15, gen).numpy()
    np.testing.assert_allclose(np.stack(list(maxout["smoothgrad"])), expected, rtol=1e-5, atol=1e-7)
    assert not np.allclose(expected, np.stack(list(maxout["gradient"])))
    conv = table[table["model"] == "conv"]
    assert list(conv["shape"].iloc[0]) == [3, 32, 32] and len(conv["smoothgrad"].iloc[0]) == 3 * 32 * 32


def test_figures_are_drawn_from_parquet_only(panel_files, tmp_path):
    job = {
        "charts": [],
        "images": {
            "adversarial_examples_mnist": {"panel": "examples", "dataset": "mnist"},
            "adversarial_examples_cifar10": {"panel": "examples", "dataset": "cifar10"},
            "first_layer_weights_cifar10": {"panel": "weights", "dataset": "cifar10"},
            "logistic_weights": {"panel": "logistic", "dataset": "mnist"},
            "rubbish_samples_cifar10": {"panel": "rubbish", "dataset": "cifar10"},
            "saliency_maps_mnist": {"panel": "saliency", "dataset": "mnist"},
            "saliency_maps_cifar10": {"panel": "saliency", "dataset": "cifar10"},
        },
    }
    files = [panel_files[k] for k in panels.KINDS]
    written = figures.make_figures(files, job, tmp_path / "figures")
    assert sorted(p.name for p in written) == sorted(
        f"{n}.{e}" for n in job["images"] for e in ("png", "pdf")
    )
    tables = load_tables(files)
    fig = figures.examples_figure(tables, "x", "cifar10")
    assert fig.axes[0].images[0].get_array().shape == (32, 32, 3)  # drawn in colour
    assert fig.axes[0].get_title().startswith("clean (label airplane)")  # the first test input's class
    assert fig.axes[0].get_ylabel() == "conv-clean" and "ZCA inverted" in fig.axes[1].get_title()
    maps = figures.saliency_figure(tables, "x", "mnist")
    labels = [ax.get_ylabel() for ax in maps.axes if ax.get_ylabel()]
    assert labels[0] == "input" and labels[1:3] == ["softmax-clean\ngradient", "softmax-clean\nSmoothGrad"]
    assert len(maps.axes) == 5 * 3  # the inputs and two rows per run, three inputs each
    bad = {"charts": [], "images": {"adversarial_examples_svhn": {"panel": "examples", "dataset": "svhn"}}}
    with pytest.raises(ValueError, match="adversarial_examples_svhn.*panel_examples rows of svhn"):
        figures.make_figures(files, bad, tmp_path)
