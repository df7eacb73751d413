"""The paper's figures as data (``paper.yaml``) and the verdict of each against our results."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from importlib import resources
from typing import Any

import pandas as pd
import yaml

COLUMNS = [
    "id",
    "experiment",
    "metric",
    "paper",
    "reproduced_mean",
    "reproduced_std",
    "n_seeds",
    "verdict",
    "note",
]
RELATIONS = {"<": operator.lt, ">": operator.gt, "<=": operator.le, ">=": operator.ge}


@dataclass(frozen=True)
class Figure:
    """One published number: what it measures, where our reproduction of it lives, how close is close."""

    key: str
    id: str
    experiment: str
    metric: str
    paper: float | None = None
    tolerance: float = 0.0
    select: dict[str, Any] | None = None
    direction: dict[str, str] | None = None
    bound: str | None = None
    figure: str | None = None
    not_reproduced: str | None = None
    note: str = ""


def load_figures() -> list[Figure]:
    """The figures listed in the package's ``paper.yaml``."""
    text = resources.files("advbench").joinpath("paper.yaml").read_text()
    return [Figure(**entry) for entry in yaml.safe_load(text)["figures"]]


def per_seed(figure: Figure, tables: dict[str, pd.DataFrame]) -> pd.Series:
    """The figure's metric for every seed that has it (empty if the experiment was not run).

    ``select`` names the table, the column and the row's keys; ``pick: last`` keeps each seed's last
    matching row (e.g. the last ``is_best`` epoch of a training curve).
    """
    if figure.select is None:
        return pd.Series(dtype=float)
    sel = dict(figure.select)
    table, column, pick = tables.get(sel.pop("table")), sel.pop("column"), sel.pop("pick", None)
    if table is None or table.empty:
        return pd.Series(dtype=float)
    mask = pd.Series(True, index=table.index)
    for key, value in sel.items():
        mask &= (table[key] - value).abs() < 1e-9 if isinstance(value, float) else table[key] == value
    rows = table.loc[mask]
    if pick == "last":
        rows = rows.groupby("seed").tail(1)
    return rows.set_index("seed")[column].astype(float).sort_index()


def verdict(figure: Figure, mean: float, means: dict[str, float], n_seeds: int) -> str:
    """``matches`` within tolerance (or, for a bound the paper states, when it holds); else ``direction
    holds`` if the paper's comparison holds; else ``differs``. Figures and unreproduced rows say so, and
    so does a metric that ran but is undefined (e.g. a confidence averaged over no confident input)."""
    if figure.not_reproduced:
        return "not reproduced"
    if not n_seeds:
        return "not run"
    if figure.figure:
        return "shown in figure"
    if pd.isna(mean):
        return "undefined"
    if figure.bound:
        return "matches" if RELATIONS[figure.bound](mean, figure.paper) else "differs"
    if figure.paper is not None and abs(mean - figure.paper) <= figure.tolerance:
        return "matches"
    if figure.direction:
        other = means.get(figure.direction["than"], float("nan"))
        if not pd.isna(other) and RELATIONS[figure.direction["relation"]](mean, other):
            return "direction holds"
    return "differs"


def note(figure: Figure) -> str:
    """What the row's verdict rests on, for a reader of the table."""
    parts = [figure.note] if figure.note else []
    if figure.not_reproduced:
        parts.append(figure.not_reproduced)
    if figure.figure:
        parts.append(f"figure {figure.figure}")
    if figure.bound:
        parts.append(f"paper states {figure.bound} {figure.paper:g}")
    if figure.direction:
        parts.append(f"paper: {figure.direction['relation']} {figure.direction['than']}")
    return "; ".join(parts)


def comparison(tables: dict[str, pd.DataFrame], figures: list[Figure] | None = None) -> pd.DataFrame:
    """One row per figure: paper value, our mean and sd over seeds, the number of seeds, the verdict.

    Rows with a ``figure`` point to the figure that shows the result; they report a mean only when their
    selection is one number per seed (F26's confidences: yes; F18's logit traces: no).
    """
    figures = figures or load_figures()
    values = {f.key: per_seed(f, tables) for f in figures}
    means = {k: float(v.mean()) if len(v) else float("nan") for k, v in values.items()}
    rows = []
    for f in figures:
        v = values[f.key]
        seeds = v.index.unique()
        quantitative = f.figure is None or (len(v) > 0 and v.index.is_unique)
        rows.append(
            {
                "id": f.id,
                "experiment": f.experiment,
                "metric": f.metric,
                "paper": float("nan") if f.paper is None else f.paper,
                "reproduced_mean": means[f.key] if quantitative else float("nan"),
                "reproduced_std": float(v.std(ddof=1)) if quantitative and len(v) > 1 else float("nan"),
                "n_seeds": len(seeds),
                "verdict": verdict(f, means[f.key], means, len(seeds)),
                "note": note(f),
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)
