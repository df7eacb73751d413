"""Tables (Markdown, CSV, LaTeX) and figures, generated from the results files and checkpoints."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from advbench import figures, paper, results
from advbench.attacks import fgsm
from advbench.config import ModelSpec, model_spec_from_dict, regime_spec_from_dict
from advbench.data import load_splits, to_float
from advbench.figures import save
from advbench.jobs import Trained, load_model
from advbench.models import linear_layers
from advbench.results import atomic_path

PERCENT_COLUMNS = ["paper", "reproduced_mean", "reproduced_std"]


def load_tables(attack: Sequence[Path], transfer: Sequence[Path]) -> dict[str, pd.DataFrame]:
    """Every results file of each kind, schema-checked and concatenated."""
    return {
        "attack": results.read_many(attack, "attack").to_pandas(),
        "transfer": results.read_many(transfer, "transfer").to_pandas(),
    }


def as_percent(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    out = df.copy()
    out[list(columns)] = out[list(columns)] * 100
    return out


def attack_summary(attack: pd.DataFrame) -> pd.DataFrame:
    """Error and confidence on mistakes (%) per model, regime, eps and clipping: mean and sd over seeds."""
    keys = ["model", "regime", "eps", "clipped"]
    grouped = attack.groupby(keys, sort=True)
    out = grouped.agg(
        error_mean=("error", "mean"),
        error_std=("error", "std"),
        conf_wrong_mean=("mean_conf_wrong", "mean"),
        conf_wrong_std=("mean_conf_wrong", "std"),
        n_seeds=("seed", "nunique"),
        n=("n", "first"),
    ).reset_index()
    return as_percent(out, ["error_mean", "error_std", "conf_wrong_mean", "conf_wrong_std"])


def write_all(df: pd.DataFrame, stem: Path, caption: str) -> list[Path]:
    """Write ``df`` as ``stem.md``, ``stem.csv`` and ``stem.tex`` (booktabs), each atomically."""
    paths = [stem.with_suffix(s) for s in (".md", ".csv", ".tex")]
    texts = [
        df.to_markdown(index=False, floatfmt=".2f") + "\n",
        df.to_csv(index=False),
        df.style.format(precision=2, na_rep="--")
        .hide(axis="index")
        .to_latex(hrules=True, caption=caption, position="t"),
    ]
    for path, text in zip(paths, texts, strict=True):
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    return paths


def make_report(attack: Sequence[Path], transfer: Sequence[Path], out_dir: Path) -> pd.DataFrame:
    """Write ``paper_comparison`` and ``attack_summary`` tables under ``out_dir``; return the comparison."""
    tables = load_tables(attack, transfer)
    comparison = paper.comparison(tables)
    write_all(
        as_percent(comparison, PERCENT_COLUMNS),
        out_dir / "paper_comparison",
        "Paper vs reproduced (values in %, mean and sd over seeds).",
    )
    if not tables["attack"].empty:
        write_all(attack_summary(tables["attack"]), out_dir / "attack_summary", "FGSM on MNIST test (%).")
    return comparison


def first_layer_rows(model: torch.nn.Module, spec: ModelSpec, n: int = 10) -> np.ndarray:
    """First-layer incoming weight vectors: one piece per maxout unit, or the softmax's class templates."""
    w = linear_layers(model)[0].weight.detach().numpy()
    return (w[:: spec.pieces] if spec.arch == "maxout" else w)[:n]


def fgsm_examples(entry: Trained, x: np.ndarray, y: np.ndarray, eps: float) -> tuple[np.ndarray, list]:
    """FGSM examples of ``entry``'s model and the (class, confidence) captions of clean and adversarial."""
    model = load_model(entry, "cpu")
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    x_adv = fgsm(model, xt, yt, eps)
    with torch.inference_mode():
        probs = [torch.softmax(model(v), 1).max(1) for v in (xt, x_adv)]
    captions = [
        tuple(f"'{int(p.indices[i])}' {float(p.values[i]):.1%}" for p in probs) for i in range(len(x))
    ]
    return x_adv.numpy(), captions


def make_figures(
    attack: Sequence[Path],
    transfer: Sequence[Path],
    curves: Sequence[Path],
    data: Path,
    job: dict,
    out_dir: Path,
) -> list[Path]:
    """Every figure of the report, from the results files, checkpoints and the test set."""
    tables = load_tables(attack, transfer)
    written = save(figures.eps_curves(tables["attack"]), out_dir / "fgsm_vs_eps")
    eps = job["transfer_eps"]
    matrix = figures.transfer_matrix(tables["attack"], tables["transfer"], eps)
    written += save(figures.transfer_heatmap(matrix, eps), out_dir / "transfer_matrix")
    written += save(
        figures.training_curves(results.read_many(curves, "curves").to_pandas()), out_dir / "training_curves"
    )
    trained = {e["run"]: _trained(e) for e in job["weights"] + job["examples"]}
    rows = [
        (run, first_layer_rows(load_model(trained[run], "cpu"), trained[run].spec))
        for run in (e["run"] for e in job["weights"])
    ]
    written += save(figures.weight_panels(rows), out_dir / "first_layer_weights")
    splits = load_splits(data, n_test=job["n_examples"])
    x, y = to_float(splits.x_test), splits.y_test.astype(np.int64)
    clean, adv, labels, captions = [], [], [], []
    for e in job["examples"]:
        x_adv, caps = fgsm_examples(trained[e["run"]], x, y, job["example_eps"])
        clean.append(x)
        adv.append(x_adv)
        labels += [f"{e['run']}\nlabel {int(c)}" for c in y]
        captions += caps
    grid = figures.adversarial_grid(
        np.concatenate(clean), np.concatenate(adv), labels, captions, job["example_eps"]
    )
    written += save(grid, out_dir / "adversarial_examples")
    return written


def _trained(entry: dict) -> Trained:
    return Trained(
        model_spec_from_dict(entry["model"]), regime_spec_from_dict(entry["regime"]), entry["checkpoint"]
    )
