"""Two finished runs side by side: does the second reproduce the first (another device, machine or commit)?

Reads each run's ``results/tables/paper_comparison.csv`` (one row per reproduced measurement: mean and
standard deviation over seeds) and, per row, the difference of the means in standard errors
(``z = |b - a| / sqrt(sd_a^2 / n_a + sd_b^2 / n_b)``), whether the verdicts agree, and each run's judgement
of the comparison the paper draws (``direction``: holds or fails, beyond or within the seeds' noise; empty
for a row without one, or a table written before the column existed). Rows neither run measured are left
out; rows whose spreads are both zero get ``z`` 0 when the means are equal, else inf.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from advbench.report.layout import TABLES_DIR

KEYS = ["id", "experiment", "metric"]
TABLE = Path(TABLES_DIR) / "paper_comparison.csv"


class CompareError(ValueError):
    """A run folder or table that cannot be compared; the message names the file."""


def load(run: Path) -> pd.DataFrame:
    """A run's paper comparison: ``run`` is the run's folder or the CSV itself."""
    path = run if run.suffix == ".csv" else run / TABLE
    if not path.is_file():
        raise CompareError(f"{path}: no paper comparison (run the workflow's report rule first)")
    table = pd.read_csv(path)
    missing = {*KEYS, "reproduced_mean", "reproduced_std", "n_seeds", "verdict"} - set(table.columns)
    if missing:
        raise CompareError(f"{path}: columns {sorted(missing)} missing; is it a paper_comparison.csv?")
    if "direction" not in table:
        table["direction"] = ""
    return table.dropna(subset=["reproduced_mean"]).fillna({"direction": ""})


def _z(row: pd.Series) -> float:
    se = math.sqrt(row.sd_a**2 / row.n_a + row.sd_b**2 / row.n_b)
    diff = abs(row.mean_b - row.mean_a)
    if se > 0:
        return diff / se
    return 0.0 if diff == 0 else math.inf


def compare(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """One row per measurement both runs made: both means, ``z``, both verdicts and both directions."""
    cols = {"reproduced_mean": "mean", "reproduced_std": "sd", "n_seeds": "n", "verdict": "verdict"}
    cols |= {"direction": "direction"}
    both = pd.merge(
        a[[*KEYS, *cols]].rename(columns={k: f"{v}_a" for k, v in cols.items()}),
        b[[*KEYS, *cols]].rename(columns={k: f"{v}_b" for k, v in cols.items()}),
        on=KEYS,
    )
    both["z"] = both.apply(_z, axis=1)
    both["same_verdict"] = both["verdict_a"] == both["verdict_b"]
    shown = [*KEYS, "mean_a", "mean_b", "z", "verdict_a", "verdict_b", "same_verdict"]
    return both[[*shown, "direction_a", "direction_b"]]


def summary(table: pd.DataFrame) -> str:
    """One line: how many rows, the largest ``z``, how many verdicts agree."""
    return (
        f"{len(table)} measurements in both runs; largest difference {table['z'].max():.2f} standard errors; "
        f"verdicts equal in {int(table['same_verdict'].sum())} of {len(table)}"
    )
