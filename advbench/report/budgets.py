"""The report's epoch-budget table: the columns of a budgets.csv that ``advbench budgets`` writes
(:mod:`advbench.bench.budgets` runs the budgets; the report only reads them)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

# the rows each budget is read for (paper.yaml keys), in the order the table shows them
ROWS = {
    "F6.naive": "F6 naive clean",
    "F6.adversarial": "F6 AT clean",
    "F2.error": "F2 FGSM error",
    "F2.conf": "F2 confidence",
    "F9.adversarial240": "AT own FGSM",
    "F10.naive_to_adv240": "naive -> AT",
    "F10.adv240_to_naive": "AT -> naive",
    "F11.conf240": "AT confidence",
}


def read_table(path: Path) -> pd.DataFrame:
    """A budgets.csv written by :func:`write_outputs`, for the report; a clear error if it is not one."""
    if not path.is_file():
        raise FileNotFoundError(f"report.budgets: {path} does not exist; `advbench budgets` writes it")
    table = pd.read_csv(path)
    missing = [c for c in ("stage1_epochs", "snakemake_s", *ROWS.values()) if c not in table.columns]
    if missing:
        raise ValueError(f"report.budgets: {path} has no columns {missing}; expected a budgets.csv of "
                         "`advbench budgets`")  # fmt: skip
    return table
