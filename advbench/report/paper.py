"""The paper's figures as data (``paper.yaml``) and the verdict of each against our results.

Every reproduced value carries a 95% interval that combines the seeds' spread (Student's t over the seeds)
with the test set's own sampling error for rates of examples (binomial: 0.94% of 10,000 test images is
94 +- 19 mistakes at 95%, and that error does not shrink with more seeds, since every seed is scored on the
same test set). The tolerances decide the verdict; the interval says when a miss lies within the noise.

A comparison the paper draws (``direction``: this row below or above another) is judged on the 95% interval
of the difference of the two means over seeds (Welch): it ``holds`` or ``fails`` where the whole interval
lies on one side, and holds or fails ``within noise`` where the interval reaches the other. The test set's
sampling error stays out of that interval: both rows are scored on the same test images, so it is paired
there and largely cancels, and what is left of it would need the per-image predictions.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from advbench.config.runs import run_id

COLUMNS = [
    "id",
    "experiment",
    "metric",
    "paper",
    "reproduced_mean",
    "reproduced_std",
    "ci95_low",
    "ci95_high",
    "n_seeds",
    "verdict",
    "within_noise",
    "direction",
    "note",
]
# columns that are a fraction of the row's ``n`` examples (their test-set sampling error is binomial)
RATE_COLUMNS = ("error", "rate", "share")
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
    source: str = "paper"  # who published ``paper``: the paper, or an external reference (DN's tutorial rows)


def load_figures() -> list[Figure]:
    """The figures listed in the package's ``paper.yaml``."""
    text = resources.files("advbench.report").joinpath("paper.yaml").read_text()
    return [Figure(**entry) for entry in yaml.safe_load(text)["figures"]]


def selected_rows(figure: Figure, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The rows of the figure's table that ``select`` names (empty if the experiment was not run).

    ``select`` names the table, the column and the row's keys; ``pick: last`` keeps each seed's last
    matching row (e.g. the last ``is_best`` epoch of a training curve).
    """
    if figure.select is None:
        return pd.DataFrame()
    sel = dict(figure.select)
    table = tables.get(sel.pop("table"))
    sel.pop("column")
    pick = sel.pop("pick", None)
    if table is None or table.empty:
        return pd.DataFrame()
    if "attack" in table.columns:  # the paper's attack unless the row names another
        sel.setdefault("attack", "fgsm")
    mask = pd.Series(True, index=table.index)
    for key, value in sel.items():
        mask &= (table[key] - value).abs() < 1e-9 if isinstance(value, float) else table[key] == value
    rows = table.loc[mask]
    return rows.groupby("seed").tail(1) if pick == "last" else rows


def metric_column(figure: Figure) -> str:
    """The column of the figure's table that holds its metric (``select: column``)."""
    if figure.select is None:
        raise ValueError(f"figure {figure.key!r} has no select: no table column holds its metric")
    return figure.select["column"]


def seed_values(figure: Figure, rows: pd.DataFrame) -> pd.Series:
    """The figure's metric in its :func:`selected_rows`, for every seed that has it (empty if the experiment
    was not run)."""
    if rows.empty:
        return pd.Series(dtype=float)
    return rows.set_index("seed")[metric_column(figure)].astype(float).sort_index()


def sample_size(figure: Figure, rows: pd.DataFrame) -> float:
    """How many examples a rate of this figure counts (NaN where it is not a rate of examples)."""
    if rows.empty or metric_column(figure) not in RATE_COLUMNS or "n" not in rows:
        return float("nan")
    return float(rows["n"].mean())


def interval(values: pd.Series, n: float) -> tuple[float, float]:
    """A 95% interval of the mean over seeds: the seeds' t-interval and, for a rate of ``n`` examples, the
    binomial sampling error of the one test set, added in quadrature; clipped to [0, 1] for rates."""
    values = values.dropna()
    k = len(values)
    if k == 0:
        return float("nan"), float("nan")
    mean = float(values.mean())
    is_rate = not math.isnan(n) and n > 0
    seeds = stats.t.ppf(0.975, k - 1) * float(values.std(ddof=1)) / k**0.5 if k > 1 else 0.0
    sampling = stats.norm.ppf(0.975) * (mean * (1 - mean) / n) ** 0.5 if is_rate else 0.0
    if k == 1 and not is_rate:
        return float("nan"), float("nan")
    half = float((seeds**2 + sampling**2) ** 0.5)
    return (max(mean - half, 0.0), min(mean + half, 1.0)) if is_rate else (mean - half, mean + half)


def within_noise(figure: Figure, verdict_: str, low: float, high: float) -> bool | None:
    """For a value the paper states and we miss: does our 95% interval reach the tolerance band around it?
    (None where the question does not arise: a match, a bound, no paper value, nothing measured.)"""
    if verdict_ not in ("differs", "direction holds") or figure.paper is None or figure.bound:
        return None
    if pd.isna(low):
        return None
    return bool(low <= figure.paper + figure.tolerance and high >= figure.paper - figure.tolerance)


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
        if figure.paper is None:
            raise ValueError(f"figure {figure.key!r} states a bound {figure.bound!r} but no paper value")
        return "matches" if RELATIONS[figure.bound](mean, figure.paper) else "differs"
    if figure.paper is not None and abs(mean - figure.paper) <= figure.tolerance:
        return "matches"
    if figure.direction and relation_holds(figure, mean, means):
        return "direction holds"
    return "differs"


def relation_holds(figure: Figure, mean: float, means: dict[str, float]) -> bool:
    """Whether the comparison the paper draws (``figure.direction``) holds between ``mean`` and the other
    row's mean (False where that row has none)."""
    assert figure.direction is not None
    other = means.get(figure.direction["than"], float("nan"))
    return not pd.isna(other) and RELATIONS[figure.direction["relation"]](mean, other)


def difference_interval(values: pd.Series, other: pd.Series) -> tuple[float, float]:
    """A 95% Welch interval of ``mean(values) - mean(other)`` over seeds (NaN where a side has fewer than
    two seeds: its spread is unknown)."""
    a, b = values.dropna(), other.dropna()
    if len(a) < 2 or len(b) < 2:
        return float("nan"), float("nan")
    difference = float(a.mean() - b.mean())
    va, vb = float(a.var(ddof=1)) / len(a), float(b.var(ddof=1)) / len(b)
    if va + vb == 0:
        return difference, difference
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = float(stats.t.ppf(0.975, dof)) * (va + vb) ** 0.5
    return difference - half, difference + half


def direction(figure: Figure, values: dict[str, pd.Series], means: dict[str, float]) -> str:
    """Whether the comparison the paper draws holds: ``holds`` or ``fails`` (as the verdict judges the
    means) where the 95% interval of the difference lies wholly on one side, ``... within noise`` where it
    reaches the other, ``... (no interval)`` with one seed on a side; empty without a comparison or a value
    on both sides."""
    if not figure.direction or figure.figure:
        return ""
    than = figure.direction["than"]
    if pd.isna(means[figure.key]) or pd.isna(means.get(than, float("nan"))):
        return ""
    outcome = "holds" if relation_holds(figure, means[figure.key], means) else "fails"
    low, high = difference_interval(values[figure.key], values[than])
    if pd.isna(low):
        return f"{outcome} (no interval)"
    relation = RELATIONS[figure.direction["relation"]]
    on_side = relation(low, 0.0) + relation(high, 0.0)  # ends of the interval on the paper's side
    return outcome if on_side == (2 if outcome == "holds" else 0) else f"{outcome} within noise"


def figure_runs(figure: Figure) -> list[str]:
    """The trained runs (``model-regime``) whose results the figure selects."""
    sel = figure.select or {}
    runs = [sel[k] for k in ("run", "reference", "observer") if k in sel]
    for prefix in ("", "source_", "target_"):
        if f"{prefix}model" in sel and f"{prefix}regime" in sel:
            runs.append(run_id(sel[f"{prefix}model"], sel[f"{prefix}regime"]))
    return runs


def note(figure: Figure, run_notes: dict[str, str] | None = None) -> str:
    """What the row's verdict rests on, for a reader of the table: the figure's own note, and what the
    config says about how its runs were trained where that is not the paper's schedule (``run_notes``)."""
    parts = [] if figure.source == "paper" else [f"reference value from {figure.source}, not the paper"]
    parts += [figure.note] if figure.note else []
    if figure.not_reproduced:
        parts.append(figure.not_reproduced)
    if figure.figure:
        parts.append(f"figure {figure.figure}")
    if figure.bound:
        parts.append(f"paper states {figure.bound} {figure.paper:g}")
    if figure.direction:
        parts.append(f"paper: {figure.direction['relation']} {figure.direction['than']}")
    notes = run_notes or {}
    for run in dict.fromkeys(figure_runs(figure)):
        if run in notes:
            parts.append(f"{run}: {notes[run]}")
    return "; ".join(parts)


def comparison(
    tables: dict[str, pd.DataFrame],
    figures: list[Figure] | None = None,
    run_notes: dict[str, str] | None = None,
) -> pd.DataFrame:
    """One row per figure: paper value, our mean, sd and 95% interval over seeds, the number of seeds,
    the verdict, whether a miss lies within the noise, whether the comparison the paper draws holds
    (:func:`direction`), and a note (``run_notes``: run id -> how it was
    trained, where that is not the paper's schedule).

    Rows with a ``figure`` point to the figure that shows the result; they report a mean only when their
    selection is one number per seed (F26's confidences: yes; F18's logit traces: no).
    """
    figures = figures or load_figures()
    selected = {f.key: selected_rows(f, tables) for f in figures}
    values = {f.key: seed_values(f, selected[f.key]) for f in figures}
    means = {k: float(v.mean()) if len(v) else float("nan") for k, v in values.items()}
    rows = []
    for f in figures:
        v = values[f.key]
        seeds = v.index.unique()
        quantitative = f.figure is None or (len(v) > 0 and v.index.is_unique)
        low, high = interval(v, sample_size(f, selected[f.key])) if quantitative else (np.nan, np.nan)
        verdict_ = verdict(f, means[f.key], means, len(seeds))
        rows.append(
            {
                "id": f.id,
                "experiment": f.experiment,
                "metric": f.metric,
                "paper": float("nan") if f.paper is None else f.paper,
                "reproduced_mean": means[f.key] if quantitative else float("nan"),
                "reproduced_std": float(v.std(ddof=1)) if quantitative and len(v) > 1 else float("nan"),
                "ci95_low": low,
                "ci95_high": high,
                "n_seeds": len(seeds),
                "verdict": verdict_,
                "within_noise": within_noise(f, verdict_, low, high),
                "direction": direction(f, values, means),
                "note": note(f, run_notes),
            }
        )
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["within_noise"] = table["within_noise"].astype("boolean")
    return table
