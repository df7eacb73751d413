"""Every figure of the report: charts from the Parquet results, image panels from the first seed's checkpoints
and the test set. ``make_figures`` is what ``advbench figures`` (the ``figures`` rule) runs.

The job (built by ``workflow/rules/report.smk``) names the runs each image figure shows, each with its model
and regime spec and its first seed's checkpoint: ``weights`` (Fig. 3), ``examples`` (the panda figure),
``logistic`` (Fig. 2, optional) and ``rubbish`` (noise samples, optional, with ``rubbish_n``,
``rubbish_threshold`` and ``rubbish_seed``); ``example_eps``, ``n_examples``, ``transfer_eps``, ``dataset``
and ``charts``, the charts to draw (default: all of :data:`CHARTS`; sweep and rubbish can be switched off).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from advbench import figures, images
from advbench.attacks import attack_mode, fgsm
from advbench.config import model_spec_from_dict, regime_spec_from_dict
from advbench.data import Splits, load_splits, to_float
from advbench.figures import save
from advbench.heads import probabilities
from advbench.jobs import Trained, load_model
from advbench.models import linear_layers
from advbench.report import load_tables
from advbench.training import task_seed

#: figure name -> the results tables it needs (the figure is skipped with a log line when one is empty)
CHARTS: dict[str, tuple[str, ...]] = {
    "fgsm_vs_eps": ("attack",),
    "transfer_matrix": ("attack", "transfer"),
    "training_curves": ("curves",),
    "logits_vs_eps": ("sweep",),
    "rubbish_histogram": ("rubbish", "rubbish_classes"),
}


def trained(entry: dict) -> Trained:
    return Trained(
        model_spec_from_dict(entry["model"]), regime_spec_from_dict(entry["regime"]), entry["checkpoint"]
    )


@torch.inference_mode()
def predict(model: torch.nn.Module, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class and its probability under the model's head (softmax, sigmoid or RBF units)."""
    with attack_mode(model):
        conf, pred = probabilities(model, model(x)).max(dim=1)
    return pred.numpy(), conf.numpy()


def caption(dataset: str, cls: int, conf: float) -> str:
    return f"'{images.class_name(dataset, int(cls))}' {conf:.1%}"


def first_of_each_class(y: np.ndarray, n: int) -> np.ndarray:
    """Indices of test examples with ``n`` different labels, the first example of each, in test order."""
    _, first = np.unique(y, return_index=True)
    return np.sort(first)[:n]


def chart(name: str, tables: dict[str, pd.DataFrame], job: dict):
    """The chart ``name`` from the results tables."""
    if name == "fgsm_vs_eps":
        return figures.eps_curves(tables["attack"])
    if name == "transfer_matrix":
        eps = job["transfer_eps"]
        return figures.transfer_heatmap(
            figures.transfer_matrix(tables["attack"], tables["transfer"], eps), eps
        )
    if name == "training_curves":
        return figures.training_curves(tables["curves"])
    if name == "logits_vs_eps":
        return figures.logit_sweep(tables["sweep"])
    return figures.rubbish_histogram(tables["rubbish"], tables["rubbish_classes"])


def weights_figure(job: dict, splits: Splits) -> images.Figure:
    """Fig. 3: first-layer weight vectors (one piece per maxout unit, or the classes' templates)."""
    rows = []
    for entry in job["weights"]:
        t = trained(entry)
        w = linear_layers(load_model(t, "cpu"))[0].weight.detach().numpy()
        rows.append((entry["run"], (w[:: t.spec.pieces] if t.spec.arch == "maxout" else w)[:10]))
    return images.weight_panels(rows, splits.x_test.shape[1:])


def examples_figure(job: dict, splits: Splits) -> images.Figure:
    """The panda figure: each ``examples`` run's FGSM examples of the first test inputs of distinct
    classes."""
    dataset, eps = job["dataset"], job["example_eps"]
    idx = first_of_each_class(splits.y_test, job["n_examples"])
    x, y = (
        torch.from_numpy(to_float(splits.x_test[idx])),
        torch.from_numpy(splits.y_test[idx].astype(np.int64)),
    )
    rows = []
    for entry in job["examples"]:
        model = load_model(trained(entry), "cpu")
        x_adv = fgsm(model, x, y, eps)
        (p0, c0), (p1, c1) = predict(model, x), predict(model, x_adv)
        for i in range(len(idx)):
            label = images.class_name(dataset, int(y[i]))
            rows.append(
                images.Example(
                    x[i].numpy(),
                    x_adv[i].numpy(),
                    label,
                    caption(dataset, p0[i], c0[i]),
                    caption(dataset, p1[i], c1[i]),
                    entry["run"],
                )
            )
    title = f"FGSM examples on {dataset} test inputs, ε = {eps:g} (unclipped; drawn clipped to [0, 1])"
    return images.adversarial_grid(rows, splits.x_test.shape[1:], eps, title)


def logistic_figure(job: dict, splits: Splits, attack: pd.DataFrame) -> images.Figure:
    """Fig. 2: the logistic regression's weights, their sign, a clean input of each class and its FGSM
    version; the title carries the clean and FGSM error of the attack results (mean over seeds)."""
    entry, eps = job["logistic"], job["example_eps"]
    t = trained(entry)
    model = load_model(t, "cpu")
    w = linear_layers(model)[0].weight.detach().numpy()[0]
    classes = list(t.spec.classes or (0, 1))
    idx = [int(np.flatnonzero(splits.y_test == c)[0]) for c in classes]
    x = torch.from_numpy(to_float(splits.x_test[idx]))
    x_adv = fgsm(model, x, torch.arange(len(classes)), eps)
    mine = attack[(attack["model"] == t.spec.name) & (attack["regime"] == t.regime.name) & ~attack["clipped"]]
    err = mine.groupby("eps")["error"].mean() * 100
    rates = f"; test error {err.iloc[0]:.1f}% clean" if len(err) else ""
    if len(err) and np.isclose(err.index, eps).any():
        rates += f", {err[np.isclose(err.index, eps)].iloc[0]:.1f}% at ε = {eps:g}"
    title = f"{entry['run']}: {' vs '.join(map(str, classes))}, FGSM ε = {eps:g}{rates} (paper: 1.6% / 99%)"
    return images.logistic_panels(w, x.numpy(), x_adv.numpy(), splits.x_test.shape[1:], title)


def rubbish_figure(job: dict, splits: Splits, k: int = 8) -> images.Figure:
    """App. A: the first ``k`` noise inputs of the rubbish experiment's first seed (the same generator as
    :func:`advbench.experiments.rubbish_task`) and every model's prediction on them."""
    dims = to_float(splits.x_test[:1]).shape[1:]
    gen = torch.Generator().manual_seed(task_seed(job["dataset"], "rubbish", job["rubbish_seed"]))
    noise = torch.randn(job["rubbish_n"], *dims, generator=gen)[:k]
    rows = []
    for entry in job["rubbish"]:
        pred, conf = predict(load_model(trained(entry), "cpu"), noise)
        rows.append(
            [(images.class_name(job["dataset"], int(p)), float(c)) for p, c in zip(pred, conf, strict=True)]
        )
    labels = [entry["run"] for entry in job["rubbish"]]
    return images.rubbish_samples(
        noise.numpy(), rows, labels, splits.x_test.shape[1:], job["rubbish_threshold"]
    )


def image_figures(job: dict, splits: Splits, tables: dict[str, pd.DataFrame]) -> dict[str, Callable]:
    """Name -> a thunk drawing the image figure; the optional ones only when the job names their runs."""
    out: dict[str, Callable] = {
        "first_layer_weights": lambda: weights_figure(job, splits),
        "adversarial_examples": lambda: examples_figure(job, splits),
    }
    if job.get("logistic"):
        out["logistic_weights"] = lambda: logistic_figure(job, splits, tables["attack"])
    if job.get("rubbish"):
        out["rubbish_samples"] = lambda: rubbish_figure(job, splits)
    return out


def make_figures(paths: Sequence[Path], data: Path, job: dict, out_dir: Path) -> list[Path]:
    """Every figure of the report as PNG and PDF under ``out_dir``; returns the files written."""
    tables = load_tables(paths)
    written: list[Path] = []
    for name in job.get("charts", CHARTS):
        needs = CHARTS[name]
        missing = [kind for kind in needs if tables[kind].empty]
        if missing:
            raise ValueError(
                f"figure {name!r} needs results of kind {missing}; none among the --results files"
            )
        written += save(chart(name, tables, job), out_dir / name)
    splits = load_splits(data)
    for name, draw in image_figures(job, splits, tables).items():
        written += save(draw(), out_dir / name)
    return written
