"""Every figure of the report, drawn from Parquet only: charts from the results tables, image panels from the
panel tables that ``advbench panels`` wrote (:mod:`advbench.jobs.panels`). ``make_figures`` is what
``advbench figures`` (the ``figures`` rule) runs; no checkpoint or dataset is read.

The job (built by :func:`advbench.plan.report.figures_job`): ``charts``, the charts to draw (default: all
of :data:`~advbench.report.layout.CHARTS`), ``transfer_eps``, and ``images``: figure name ->
``{"panel", "dataset"}``, ``panel`` one of :data:`PANELS` (``examples``: the panda figure; ``weights``:
Fig. 3; ``logistic``: Fig. 2; ``rubbish``: noise samples; ``saliency``: sensitivity maps), the dataset whose
rows it shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from advbench.config.runs import run_id
from advbench.data.registry import dataset_info
from advbench.report import charts, images
from advbench.report.charts import save
from advbench.report.layout import CHARTS
from advbench.report.tables import load_tables


def caption(dataset: str, cls: int, conf: float) -> str:
    return f"'{images.class_name(dataset, int(cls))}' {conf:.1%}"


def run_name(row) -> str:
    return run_id(row.model, row.regime)


def fgsm_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The FGSM rows of an attack or transfer table (the paper's attack; the other methods have tables of
    their own)."""
    return table[table["attack"] == "fgsm"]


def chart(name: str, tables: dict[str, pd.DataFrame], job: dict):
    """The chart ``name`` from the results tables."""
    if name == "fgsm_vs_eps":
        return charts.eps_curves(fgsm_rows(tables["attack"]))
    if name == "transfer_matrix":
        eps, attack, transfer = job["transfer_eps"], tables["attack"], tables["transfer"]
        matrix = charts.transfer_matrix(fgsm_rows(attack), fgsm_rows(transfer), eps)
        sd = charts.transfer_matrix(fgsm_rows(attack), fgsm_rows(transfer), eps, stat="std")
        return charts.transfer_heatmap(matrix, eps, sd)
    if name == "training_curves":
        return charts.training_curves(tables["curves"])
    if name == "logits_vs_eps":
        return charts.logit_sweep(tables["sweep"])
    if name == "error_vs_angle":
        return charts.rotation_curves(tables["rotation"])
    return charts.rubbish_histogram(tables["rubbish"], tables["rubbish_classes"])


def panel_rows(
    tables: dict[str, pd.DataFrame], kind: str, name: str, dataset: str, figure: str | None = None
) -> pd.DataFrame:
    """The rows of panel table ``kind`` of ``dataset`` (and ``figure``, if given), in the order written."""
    df = tables[kind]
    keep = df["dataset"] == dataset
    if figure is not None:
        keep &= df["figure"] == figure
    if not keep.any():
        raise ValueError(
            f"figure {name!r} needs {kind} rows of {dataset} {figure or ''}; none in the --results files"
        )
    return df[keep]


def weights_figure(tables: dict[str, pd.DataFrame], name: str, dataset: str) -> images.Figure:
    """Fig. 3: first-layer weight vectors of each run (one piece per maxout unit)."""
    rows = panel_rows(tables, "panel_weights", name, dataset, "first_layer")
    runs = [
        (run, np.stack(list(df["weights"])), list(df["shape"].iloc[0]))
        for run, df in rows.groupby(rows["model"] + "-" + rows["regime"], sort=False)
    ]
    colour = any(len(shape) == 3 and shape[0] == 3 for _, _, shape in runs)
    scale = "RGB channels, mid-grey = 0" if colour else "red > 0, blue < 0, white = 0"
    title = f"{dataset}: first-layer weights (one piece per maxout unit); {scale}"
    return images.weight_panels(runs, title=title)


def examples_figure(tables: dict[str, pd.DataFrame], name: str, dataset: str) -> images.Figure:
    """The panda figure: each run's FGSM examples of the first test inputs of distinct classes."""
    rows = panel_rows(tables, "panel_examples", name, dataset, "examples")
    examples = [
        images.Example(
            np.asarray(r.clean),
            np.asarray(r.adversarial),
            images.class_name(dataset, r.label),
            caption(dataset, r.clean_pred, r.clean_conf),
            caption(dataset, r.adv_pred, r.adv_conf),
            run_name(r),
        )
        for r in rows.itertuples()
    ]
    eps, shape = float(rows["eps"].iloc[0]), list(rows["shape"].iloc[0])
    if dataset_info(dataset).pixel_space:
        title = f"FGSM examples on {dataset} test inputs, ε = {eps:g} (unclipped; drawn clipped to [0, 1])"
        return images.adversarial_grid(
            examples, shape, eps, title, f"+ ε·sign(∇ₓJ), ε = {eps:g}\nblue −ε, red +ε"
        )
    lim = float(max(np.abs(np.asarray(p)).max() for p in rows["perturbation"])) or 1.0
    title = (
        f"FGSM examples on {dataset} test inputs, ε = {eps:g} in the whitened input space; drawn with the "
        "ZCA inverted,\neach clean image and its adversarial version scaled by the clean image's range"
    )
    return images.adversarial_grid(examples, shape, lim, title, f"+ ε·sign(∇ₓJ), ε = {eps:g}\n(ZCA inverted)")


def logistic_figure(tables: dict[str, pd.DataFrame], name: str, dataset: str) -> images.Figure:
    """Fig. 2: the logistic regression's weights, their sign, a clean input of each class and its FGSM
    version; the title carries the clean and FGSM error of the attack results (mean over seeds)."""
    ex = panel_rows(tables, "panel_examples", name, dataset, "logistic")
    w = np.asarray(panel_rows(tables, "panel_weights", name, dataset, "logistic")["weights"].iloc[0])
    first = ex.iloc[0]
    eps, run = float(first["eps"]), run_id(first["model"], first["regime"])
    attack = fgsm_rows(tables["attack"])
    mine = attack[(attack["model"] == first["model"]) & (attack["regime"] == first["regime"])]
    err = mine[~mine["clipped"]].groupby("eps")["error"].mean() * 100
    rates = f"; test error {err.iloc[0]:.1f}% clean" if len(err) else ""
    if len(err) and np.isclose(err.index, eps).any():
        rates += f", {err[np.isclose(err.index, eps)].iloc[0]:.1f}% at ε = {eps:g}"
    classes = " vs ".join(str(c) for c in ex["label"])
    title = f"{run}: {classes}, FGSM ε = {eps:g}{rates} (paper: 1.6% / 99%)"
    clean, adversarial = np.stack(list(ex["clean"])), np.stack(list(ex["adversarial"]))
    return images.logistic_panels(w, clean, adversarial, list(first["shape"]), title)


def rubbish_figure(tables: dict[str, pd.DataFrame], name: str, dataset: str) -> images.Figure:
    """App. A: the rubbish experiment's first noise inputs (first seed) and every model's prediction."""
    rows = panel_rows(tables, "panel_rubbish", name, dataset)
    runs = list(rows.groupby(rows["model"] + "-" + rows["regime"], sort=False))
    noise = np.stack(list(runs[0][1].sort_values("sample")["noise"]))
    predictions = [
        [
            (images.class_name(dataset, int(r.pred)), float(r.conf))
            for r in df.sort_values("sample").itertuples()
        ]
        for _, df in runs
    ]
    threshold = float(rows["threshold"].iloc[0])
    shape = list(rows["shape"].iloc[0])
    return images.rubbish_samples(noise, predictions, [run for run, _ in runs], shape, threshold)


def saliency_figure(tables: dict[str, pd.DataFrame], name: str, dataset: str) -> images.Figure:
    """What the models look at: the first seed's gradient and SmoothGrad maps of the same test inputs,
    two rows per run, each labelled with the run's mean alignment over seeds where the saliency results
    are among the tables."""
    rows = panel_rows(tables, "panel_saliency", name, dataset)
    runs = list(rows.groupby(rows["model"] + "-" + rows["regime"], sort=False))
    first = runs[0][1].sort_values("example")
    scores = tables["saliency"]
    scores = scores[scores["dataset"] == dataset].groupby(["model", "regime"]).mean(numeric_only=True)
    maps = []
    for run, df in runs:
        df = df.sort_values("example")
        key = (df["model"].iloc[0], df["regime"].iloc[0])
        for column, label in (("gradient", "gradient"), ("smoothgrad", "SmoothGrad")):
            note = f"\nalignment {scores.loc[key, column + '_alignment']:.2f}" if key in scores.index else ""
            maps.append((f"{run}\n{label}{note}", np.stack(list(df[column]))))
    labels = [images.class_name(dataset, int(y)) for y in first["label"]]
    samples, noise = int(first["samples"].iloc[0]), float(first["noise"].iloc[0])
    title = (
        f"{dataset}: sensitivity maps, ∇ₓ log p_y and SmoothGrad ({samples} samples, noise {noise:g} of "
        "the input's range),\nfirst seed; red raises p_y, blue lowers it; alignment: mean cosine with "
        "the input over seeds"
    )
    pixels = dataset_info(dataset).pixel_space
    inputs = np.stack(list(first["image"]))
    return images.saliency_panels(inputs, labels, maps, list(first["shape"].iloc[0]), pixels, title)


#: panel kind -> the function drawing it from the tables
PANELS = {
    "examples": examples_figure,
    "weights": weights_figure,
    "logistic": logistic_figure,
    "rubbish": rubbish_figure,
    "saliency": saliency_figure,
}


def make_figures(paths: Sequence[Path], job: dict, out_dir: Path) -> list[Path]:
    """Every figure of the report as PNG and PDF under ``out_dir``, from the Parquet files ``paths`` (results
    and panels); returns the files written."""
    tables = load_tables(paths)
    written: list[Path] = []
    for name in job.get("charts", CHARTS):
        missing = [kind for kind in CHARTS[name] if tables[kind].empty]
        if missing:
            raise ValueError(
                f"figure {name!r} needs results of kind {missing}; none among the --results files"
            )
        written += save(chart(name, tables, job), out_dir / name)
    for name, image in job.get("images", {}).items():
        if image["panel"] not in PANELS:
            raise ValueError(
                f"figure {name!r}: unknown panel {image['panel']!r}; expected one of {list(PANELS)}"
            )
        written += save(PANELS[image["panel"]](tables, name, image["dataset"]), out_dir / name)
    return written
