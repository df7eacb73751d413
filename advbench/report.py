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


def load_tables(paths: Sequence[Path]) -> dict[str, pd.DataFrame]:
    """Every results file, grouped by the kind recorded in its metadata, schema-checked and concatenated;
    every kind is present (empty when no file of it was given)."""
    by_kind: dict[str, list[Path]] = {kind: [] for kind in results.SCHEMAS}
    for path in paths:
        by_kind[results.read_kind(Path(path))].append(Path(path))
    return {kind: results.read_many(files, kind).to_pandas() for kind, files in by_kind.items()}


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


def _mean_sd(df: pd.DataFrame, keys: list[str], columns: list[str]) -> pd.DataFrame:
    """Mean and sd over seeds of ``columns`` per ``keys``, with the number of seeds."""
    if df.empty:
        return pd.DataFrame(
            columns=[*keys, *(f"{c}_{s}" for c in columns for s in ("mean", "std")), "n_seeds"]
        )
    aggs = {f"{c}_{s}": (c, s) for c in columns for s in ("mean", "std")}
    return df.groupby(keys, sort=True).agg(**aggs, n_seeds=("seed", "nunique")).reset_index()


def experiment_tables(tables: dict[str, pd.DataFrame]) -> dict[str, tuple[pd.DataFrame, str]]:
    """The per-experiment tables (values in %): name -> (table, caption)."""
    pct = ["error_mean", "error_std", "mean_conf_wrong_mean", "mean_conf_wrong_std"]
    transfer = _mean_sd(
        tables["transfer"],
        ["source_model", "source_regime", "target_model", "target_regime", "eps", "clipped"],
        ["error", "mean_conf_wrong"],
    )
    agreement = _mean_sd(tables["agreement"], ["reference", "observer", "condition", "eps"], ["rate"])
    ensemble = _mean_sd(
        tables["ensemble"], ["run", "members", "attacked", "eps"], ["error", "mean_conf_wrong"]
    )
    rubbish = _mean_sd(tables["rubbish"], ["dataset", "model", "regime", "threshold"], ["error", "mean_conf"])
    skew = _mean_sd(tables["rubbish_classes"], ["dataset", "model", "regime", "class"], ["share"])
    curves = tables["curves"]
    best = curves[curves["is_best"] & (curves["stage"] == 1)].groupby(["model", "regime", "seed"]).tail(1)
    training = _mean_sd(best, ["model", "regime"], ["epoch", "train_error", "val_error", "val_adv_error"])
    return {
        "transfer_summary": (
            as_percent(transfer, pct),
            "FGSM transfer: source's examples on the target (%).",
        ),
        "agreement_summary": (
            as_percent(agreement, ["rate_mean", "rate_std"]),
            "Cross-model agreement on the source's FGSM examples (%).",
        ),
        "ensemble_summary": (
            as_percent(ensemble, pct),
            "FGSM on an ensemble vs on one member, scored on the ensemble (%).",
        ),
        "rubbish_summary": (
            as_percent(rubbish, ["error_mean", "error_std", "mean_conf_mean", "mean_conf_std"]),
            "Rubbish-class inputs N(0, I): error = some class with p > threshold (%).",
        ),
        "rubbish_classes": (
            as_percent(skew, ["share_mean", "share_std"]),
            "Classes of confident rubbish predictions (%).",
        ),
        "training_summary": (
            as_percent(training, [c for c in training.columns if "error" in c]),
            "Selected epoch (stage 1) and its training / validation errors (%).",
        ),
    }


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


def make_report(paths: Sequence[Path], out_dir: Path) -> pd.DataFrame:
    """Write ``paper_comparison`` and every per-experiment table under ``out_dir``; return the comparison."""
    tables = load_tables(paths)
    comparison = paper.comparison(tables)
    write_all(
        as_percent(comparison, PERCENT_COLUMNS),
        out_dir / "paper_comparison",
        "Paper vs reproduced (values in %, mean and sd over seeds).",
    )
    write_all(attack_summary(tables["attack"]), out_dir / "attack_summary", "FGSM on the test set (%).")
    for name, (table, caption) in experiment_tables(tables).items():
        write_all(table, out_dir / name, caption)
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


def make_figures(paths: Sequence[Path], data: Path, job: dict, out_dir: Path) -> list[Path]:
    """Every figure of the report, from the results files, checkpoints and the test set."""
    tables = load_tables(paths)
    written = save(figures.eps_curves(tables["attack"]), out_dir / "fgsm_vs_eps")
    eps = job["transfer_eps"]
    matrix = figures.transfer_matrix(tables["attack"], tables["transfer"], eps)
    written += save(figures.transfer_heatmap(matrix, eps), out_dir / "transfer_matrix")
    written += save(figures.training_curves(tables["curves"]), out_dir / "training_curves")
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
