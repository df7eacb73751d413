"""The paper's figures as data (``paper.yaml``) and the verdict of each against our results."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from importlib import resources
from typing import Any

import pandas as pd
import yaml

COLUMNS = ["id", "experiment", "metric", "paper", "reproduced_mean", "reproduced_std", "n_seeds", "verdict"]
RELATIONS = {"<": operator.lt, ">": operator.gt}


@dataclass(frozen=True)
class Figure:
    """One published number: what it measures, where our reproduction of it lives, how close is close."""

    key: str
    id: str
    experiment: str
    metric: str
    paper: float
    tolerance: float
    select: dict[str, Any]
    direction: dict[str, str] | None = None


def load_figures() -> list[Figure]:
    """The figures listed in the package's ``paper.yaml``."""
    text = resources.files("advbench").joinpath("paper.yaml").read_text()
    return [Figure(**entry) for entry in yaml.safe_load(text)["figures"]]


def per_seed(figure: Figure, tables: dict[str, pd.DataFrame]) -> pd.Series:
    """The figure's metric for every seed that has it (empty if the experiment was not run)."""
    sel = dict(figure.select)
    table, column = tables.get(sel.pop("table")), sel.pop("column")
    if table is None or table.empty:
        return pd.Series(dtype=float)
    mask = pd.Series(True, index=table.index)
    for key, value in sel.items():
        mask &= (table[key] - value).abs() < 1e-9 if isinstance(value, float) else table[key] == value
    return table.loc[mask].set_index("seed")[column].astype(float).sort_index()


def verdict(figure: Figure, mean: float, means: dict[str, float]) -> str:
    """``matches`` within tolerance; else ``direction holds`` if the paper's comparison holds."""
    if pd.isna(mean):
        return "not run"
    if abs(mean - figure.paper) <= figure.tolerance:
        return "matches"
    if figure.direction:
        other = means.get(figure.direction["than"], float("nan"))
        if not pd.isna(other) and RELATIONS[figure.direction["relation"]](mean, other):
            return "direction holds"
    return "differs"


def comparison(tables: dict[str, pd.DataFrame], figures: list[Figure] | None = None) -> pd.DataFrame:
    """One row per figure: paper value, our mean and sd over seeds, the number of seeds, the verdict."""
    figures = figures or load_figures()
    values = {f.key: per_seed(f, tables) for f in figures}
    means = {k: float(v.mean()) if len(v) else float("nan") for k, v in values.items()}
    rows = []
    for f in figures:
        v = values[f.key]
        rows.append(
            {
                "id": f.id,
                "experiment": f.experiment,
                "metric": f.metric,
                "paper": f.paper,
                "reproduced_mean": means[f.key],
                "reproduced_std": float(v.std(ddof=1)) if len(v) > 1 else float("nan"),
                "n_seeds": len(v),
                "verdict": verdict(f, means[f.key], means),
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)
