"""The image panels' data: what the report's image figures show, computed from the first seed's checkpoints
and the test set and written as Parquet (``advbench panels``, the ``panels`` rule), so that every figure is
drawn from Parquet only (:mod:`advbench.report.figures`).

Three tables (schemas in :mod:`advbench.results`), one row per image, flat images with their shape:

- ``panel_examples``: FGSM examples (``figure`` ``examples``: the panda figure; ``logistic``: Fig. 2's
  clean 3 and 7) with the predicted class and its probability on the clean and the adversarial input;
- ``panel_weights``: first-layer weights (``first_layer``: Fig. 3, one piece per maxout unit; ``logistic``:
  Fig. 2's w);
- ``panel_rubbish``: the rubbish experiment's first noise inputs and each model's prediction on them;
- ``panel_saliency``: sensitivity maps (the gradient of log p_y and SmoothGrad,
  :mod:`advbench.evaluation.saliency`) of the first test inputs of distinct classes, in the model's input
  space, with the input.

Images are in display space: MNIST pixels as they are (in [0, 1]; adversarial ones unclipped); CIFAR-10's
whitened inputs with the ZCA inverted (:func:`advbench.data.cifar10.unwhiten`), each clean image and its
adversarial
version mapped to [0, 1] by the clean image's range (GCN removed mean and contrast, so the pixels themselves
cannot be recovered). The perturbation is adversarial minus clean in that space. Rubbish noise is stored in
the model's input space, as the models see it.

The job (built by ``workflow/rules/panels.smk``): ``seed``, ``data`` (dataset -> prepared .npz), run entries
(``run``, ``model`` and ``regime`` specs, ``checkpoint``) under ``examples``, ``weights``, ``logistic``
(optional), ``rubbish`` and ``saliency``, and ``example_eps`` (dataset -> eps), ``n_examples``, ``n_weights``,
``rubbish_n`` (dataset -> noise inputs of the experiment), ``rubbish_k``, ``rubbish_threshold`` and
``saliency_settings`` (``maps``, ``samples``, ``noise``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from advbench.attacks import attack_mode, fgsm
from advbench.config.loading import CONFIG_HASH_ENV
from advbench.config.specs import model_spec_from_dict, regime_spec_from_dict
from advbench.data.cifar10 import unwhiten
from advbench.data.inputs import model_inputs
from advbench.data.registry import PREP_PREFIX, dataset_info
from advbench.evaluation.saliency import gradient_map, smoothgrad
from advbench.jobs.common import Trained, load_model, test_tensors
from advbench.jobs.experiments import rubbish_inputs
from advbench.models.architectures import Maxout, MaxoutConv, conv_layers, linear_layers
from advbench.models.heads import probabilities
from advbench.results.provenance import provenance
from advbench.results.tables import write_table
from advbench.training.loop import task_seed

KINDS = ("panel_examples", "panel_weights", "panel_rubbish", "panel_saliency")


class PanelError(ValueError):
    """A run cannot be drawn as asked (e.g. a model without a first layer of weights); names the run."""


def trained(entry: dict) -> Trained:
    return Trained(
        model_spec_from_dict(entry["model"]), regime_spec_from_dict(entry["regime"]), entry["checkpoint"]
    )


def keys(t: Trained, seed: int) -> dict:
    return {"dataset": t.spec.dataset, "seed": seed, "model": t.spec.name, "regime": t.regime.name}


def test_set(path: Path) -> dict[str, np.ndarray]:
    """The test images and labels of a prepared dataset and its fitted preprocessing (nothing else read)."""
    with np.load(path) as npz:
        return {k: npz[k] for k in npz.files if k in ("x_test", "y_test") or k.startswith(PREP_PREFIX)}


@torch.inference_mode()
def predict(model: torch.nn.Module, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class and its probability under the model's head (softmax, sigmoid or RBF units)."""
    with attack_mode(model):
        conf, pred = probabilities(model, model(x)).max(dim=1)
    return pred.numpy(), conf.numpy().astype(np.float64)


def first_of_each_class(y: np.ndarray, n: int) -> np.ndarray:
    """Indices of test examples with ``n`` different labels, the first example of each, in test order."""
    _, first = np.unique(y, return_index=True)
    return np.sort(first)[:n]


def display(clean: np.ndarray, adversarial: np.ndarray, data: Mapping[str, np.ndarray]) -> tuple:
    """Clean, perturbation and adversarial inputs in display space (see the module docstring)."""
    if f"{PREP_PREFIX}zca_matrix" not in data:
        return clean, adversarial - clean, adversarial
    clean, adversarial = unwhiten(clean, data), unwhiten(adversarial, data)
    lo, hi = clean.min(axis=1, keepdims=True), clean.max(axis=1, keepdims=True)
    span = np.where(hi > lo, hi - lo, 1.0)
    clean, adversarial = (clean - lo) / span, (adversarial - lo) / span
    return clean, adversarial - clean, adversarial


def example_rows(
    t: Trained, data: Mapping[str, np.ndarray], idx: np.ndarray, eps: float, seed: int, figure: str
) -> list[dict]:
    """FGSM examples of the test inputs ``idx`` on one model, with its predictions, in display space. A
    model of a class subset (``classes``) sees its labels relabelled ``0..k-1``; rows keep the digits."""
    classes = list(t.spec.classes or range(10))
    y_test = data["y_test"][idx]
    y = np.array([classes.index(int(c)) for c in y_test], dtype=np.int64)
    model = load_model(t, "cpu")
    x = torch.from_numpy(model_inputs(data["x_test"][idx], data))
    x_adv = fgsm(model, x, torch.from_numpy(y), eps)
    (p0, c0), (p1, c1) = predict(model, x), predict(model, x_adv)
    images = display(x.numpy(), x_adv.numpy(), data)
    shape = list(dataset_info(t.spec.dataset).shape)
    base = keys(t, seed) | {"figure": figure, "eps": eps, "shape": shape}
    return [
        base
        | {"example": int(i), "label": int(y_test[j]), "clean_pred": int(classes[p0[j]])}
        | {"clean_conf": float(c0[j]), "adv_pred": int(classes[p1[j]]), "adv_conf": float(c1[j])}
        | {name: images[k][j] for k, name in enumerate(("clean", "perturbation", "adversarial"))}
        for j, i in enumerate(idx)
    ]


def first_layer(t: Trained, n: int) -> tuple[np.ndarray, list[int]]:
    """The first ``n`` units' input weights (one piece per maxout unit) and the shape of one unit's."""
    model = load_model(t, "cpu")
    convs = conv_layers(model)
    layers = convs or linear_layers(model)
    if not layers:
        raise PanelError(f"{t.run}: a {t.spec.arch} model has no first layer to draw")
    pieced = [m for m in model.modules() if isinstance(m, (Maxout, MaxoutConv))]
    w = (pieced[0].unit_weights() if pieced else layers[0].weight).detach().numpy()[:n]
    shape = list(w.shape[1:]) if convs else list(dataset_info(t.spec.dataset).shape)
    return w.reshape(len(w), -1), shape


def weight_rows(t: Trained, n: int, seed: int, figure: str) -> list[dict]:
    w, shape = first_layer(t, n)
    base = keys(t, seed) | {"figure": figure, "shape": shape}
    return [base | {"unit": u, "weights": row} for u, row in enumerate(w)]


def rubbish_noise(dataset: str, seed: int, n: int, k: int) -> torch.Tensor:
    """The first ``k`` of the rubbish experiment's ``n`` inputs of ``dataset`` and ``seed``."""
    return rubbish_inputs(dataset, seed, n)[:k]


def rubbish_rows(t: Trained, noise: torch.Tensor, threshold: float, seed: int) -> list[dict]:
    pred, conf = predict(load_model(t, "cpu"), noise)
    base = keys(t, seed) | {"threshold": threshold, "shape": list(dataset_info(t.spec.dataset).shape)}
    return [
        base | {"sample": i, "noise": x, "pred": int(p), "conf": float(c)}
        for i, (x, p, c) in enumerate(zip(noise.numpy(), pred, conf, strict=True))
    ]


def saliency_rows(t: Trained, data: Mapping[str, np.ndarray], settings: Mapping, seed: int) -> list[dict]:
    """Gradient and SmoothGrad maps of the first test inputs of distinct classes that the run sees (its
    classes only; rows keep the digits), with the inputs, in the model's input space. The noise is the
    saliency experiment's generator of the dataset and seed, so every model of a figure gets the same."""
    x, y = test_tensors(dict(data), t.spec, "cpu")
    idx = torch.from_numpy(first_of_each_class(y.numpy(), settings["maps"]))
    x, y = x[idx], y[idx]
    model = load_model(t, "cpu")
    gen = torch.Generator().manual_seed(task_seed(t.spec.dataset, "saliency", seed))
    smooth = smoothgrad(model, x, y, settings["samples"], settings["noise"], gen).numpy()
    grad = gradient_map(model, x, y).numpy()
    classes = list(t.spec.classes or range(10))
    base = keys(t, seed) | {"samples": settings["samples"], "noise": float(settings["noise"])}
    base |= {"shape": list(dataset_info(t.spec.dataset).shape)}
    return [
        base
        | {"example": int(i), "label": int(classes[int(y[j])]), "image": x[j].numpy()}
        | {"gradient": grad[j], "smoothgrad": smooth[j]}
        for j, i in enumerate(idx.tolist())
    ]


def panel_rows(job: dict) -> dict[str, list[dict]]:
    """Every panel table's rows for the job (see the module docstring)."""
    seed, data = job["seed"], {ds: test_set(Path(path)) for ds, path in job["data"].items()}
    rows: dict[str, list[dict]] = {kind: [] for kind in KINDS}
    for entry in job["examples"]:
        t = trained(entry)
        ds = t.spec.dataset
        idx = first_of_each_class(data[ds]["y_test"], job["n_examples"])
        rows["panel_examples"] += example_rows(t, data[ds], idx, job["example_eps"][ds], seed, "examples")
    for entry in job["weights"]:
        rows["panel_weights"] += weight_rows(trained(entry), job["n_weights"], seed, "first_layer")
    if job.get("logistic"):
        t = trained(job["logistic"])
        y = data[t.spec.dataset]["y_test"]
        idx = np.array([np.flatnonzero(y == c)[0] for c in t.spec.classes or (0, 1)])
        eps = job["example_eps"][t.spec.dataset]
        rows["panel_examples"] += example_rows(t, data[t.spec.dataset], idx, eps, seed, "logistic")
        rows["panel_weights"] += weight_rows(t, 1, seed, "logistic")
    noise: dict[str, torch.Tensor] = {}
    for entry in job["rubbish"]:
        t = trained(entry)
        ds = t.spec.dataset
        if ds not in noise:
            noise[ds] = rubbish_noise(ds, seed, job["rubbish_n"][ds], job["rubbish_k"])
        rows["panel_rubbish"] += rubbish_rows(t, noise[ds], job["rubbish_threshold"], seed)
    for entry in job.get("saliency", []):
        t = trained(entry)
        rows["panel_saliency"] += saliency_rows(t, data[t.spec.dataset], job["saliency_settings"], seed)
    return rows


def make_panels(job: dict, out_dir: Path) -> dict[str, Path]:
    """Write ``out_dir/<kind>.parquet`` for every panel table (``examples``, ``weights``, ``rubbish``,
    ``saliency``);
    returns kind -> path."""
    meta = provenance(os.environ.get(CONFIG_HASH_ENV, "unknown"), "panels", {}, {"device": "cpu"})
    out = {}
    for kind, rows in panel_rows(job).items():
        out[kind] = Path(out_dir) / f"{kind.removeprefix('panel_')}.parquet"
        write_table(rows, kind, out[kind], meta)
    return out
