"""advbench compare: two runs' paper comparisons, row by row, in standard errors."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from advbench.cli import main
from advbench.report.compare import TABLE, CompareError, compare, load, summary


def _run(tmp_path, name: str, rows: list[tuple]) -> object:
    cols = ["id", "experiment", "metric", "paper", "reproduced_mean", "reproduced_std", "n_seeds", "verdict"]
    path = tmp_path / name / TABLE
    path.parent.mkdir(parents=True)
    pd.DataFrame(rows, columns=cols).to_csv(path, index=False)
    return tmp_path / name


def test_rows_are_compared_in_standard_errors_with_their_verdicts(tmp_path, capsys):
    a = _run(tmp_path, "a", [
        ("F1", "fgsm", "error", 99.9, 90.0, 2.0, 5, "differs"),
        ("F4", "clean", "error", 1.6, 2.0, 0.0, 5, "matches"),
        ("F9", "adv", "error", 17.9, 70.0, 1.0, 5, "direction holds"),
        ("F3", "cifar", "error", 87.15, float("nan"), float("nan"), 0, "not run"),
    ])  # fmt: skip
    b = _run(tmp_path, "b", [
        ("F1", "fgsm", "error", 99.9, 92.0, 2.0, 5, "differs"),
        ("F4", "clean", "error", 1.6, 2.5, 0.0, 5, "matches"),
        ("F9", "adv", "error", 17.9, 70.0, 3.0, 5, "matches"),
        ("F3", "cifar", "error", 87.15, 80.0, 1.0, 5, "differs"),
    ])  # fmt: skip
    table = compare(load(a), load(b)).set_index("id")
    assert list(table.index) == ["F1", "F4", "F9"]  # F3: run a has no value
    assert table.loc["F1", "z"] == pytest.approx(2.0 / math.sqrt(4 / 5 + 4 / 5))
    assert math.isinf(table.loc["F4", "z"]) and table.loc["F9", "z"] == 0
    assert list(table["same_verdict"]) == [True, True, False]
    assert summary(table.reset_index()).endswith("verdicts equal in 2 of 3")
    assert main(["compare", str(a), str(b / TABLE)]) == 0
    assert "verdicts equal in 2 of 3" in capsys.readouterr().out


def test_a_run_without_its_table_or_with_another_table_is_named(tmp_path):
    with pytest.raises(CompareError, match=r"nowhere/results/tables/paper_comparison.csv: no paper"):
        load(tmp_path / "nowhere")
    other = tmp_path / "other.csv"
    pd.DataFrame({"id": ["F1"], "value": [1.0]}).to_csv(other, index=False)
    with pytest.raises(CompareError, match=r"other.csv: columns \[.*'reproduced_mean'.*\] missing"):
        load(other)


def test_each_runs_direction_is_shown_and_an_older_table_without_one_reads_as_empty(tmp_path):
    a = _run(tmp_path, "a", [("F6", "adv", "clean error", 0.84, 3.19, 0.32, 5, "differs")])
    b = _run(tmp_path, "b", [("F6", "adv", "clean error", 0.84, 1.26, 0.08, 5, "direction holds")])
    table_b = pd.read_csv(b / TABLE).assign(direction="holds")
    table_b.to_csv(b / TABLE, index=False)
    row = compare(load(a), load(b)).iloc[0]
    assert row["direction_a"] == "" and row["direction_b"] == "holds"
    assert not row["same_verdict"]
