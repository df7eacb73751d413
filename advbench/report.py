"""Tables (Markdown, CSV, LaTeX) generated from the Parquet results only."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from advbench import paper, results
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
