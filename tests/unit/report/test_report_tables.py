"""Tables generated from records (RobustBench style): the training-cost table of the report, and how a
rerun's tables are compared with a reference run's."""

from __future__ import annotations

import pandas as pd
import pytest

from advbench.reliability.chaos import differences
from advbench.report.tables import SUMMARIES, best_epochs, training_cost


def _epochs(model: str, seed: int, seconds: list[float], member: float | None = None) -> list[dict]:
    return [
        {"model": model, "regime": "clean", "seed": seed, "member": member, "epoch": i + 1, "seconds": s}
        for i, s in enumerate(seconds)
    ]


def test_training_cost_counts_every_seed_and_member_as_a_task():
    curves = pd.DataFrame(
        _epochs("maxout", 0, [1.0, 2.0, 3.0])
        + _epochs("maxout", 1, [2.0, 2.0, 5.0])
        + _epochs("member", 0, [1.0, 1.0], member=0)
        + _epochs("member", 0, [3.0, 3.0], member=1)
        + _epochs("member", 1, [2.0, 2.0], member=0)
    )
    cost = training_cost(curves).set_index("model")
    assert cost.loc["maxout", "tasks"] == 2 and cost.loc["member", "tasks"] == 3
    assert cost.loc["maxout", "epochs_per_task"] == 3 and cost.loc["member", "epochs_per_task"] == 2
    assert cost.loc["maxout", "seconds_per_epoch"] == 2.0  # median of six epochs
    assert cost.loc["maxout", "seconds_per_task"] == pytest.approx(7.5)  # median of 6 and 9
    assert cost.loc["member", "seconds_per_task"] == 4.0  # 2, 6 and 4
    assert cost["task_seconds"].to_dict() == {"maxout": 15.0, "member": 12.0}


def _summary(name: str, rows: list[dict]) -> pd.Series:
    """The one row of a summary table from ``rows`` (one per seed), its other value columns zero."""
    summary = SUMMARIES[name]
    df = pd.DataFrame([{"dataset": "mnist", "model": "maxout", "regime": "clean"} | r for r in rows])
    df = df.reindex(columns=[*df.columns.union(summary.values, sort=False)], fill_value=0.0)
    table = summary.table({summary.source: df}).data
    assert len(table) == 1
    return table.iloc[0]


def test_the_summaries_are_means_over_seeds_in_percent_but_for_lengths_epochs_and_cosines():
    rotation = _summary(
        "rotation_summary",
        [
            {"seed": 0, "angle": 5.0, "error": 0.1, "mean_l2": 2.0},
            {"seed": 1, "angle": 5.0, "error": 0.3, "mean_l2": 4.0},
        ],
    )
    assert rotation["error_mean"] == pytest.approx(20.0) and rotation["mean_l2_mean"] == pytest.approx(3.0)
    assert rotation["n_seeds"] == 2
    cosine = {"n": 100, "samples": 8, "noise": 0.1}
    saliency = _summary(
        "saliency_summary",
        [{"seed": 0, "gradient_alignment": 0.2} | cosine, {"seed": 1, "gradient_alignment": 0.4} | cosine],
    )
    assert saliency["gradient_alignment_mean"] == pytest.approx(0.3)  # a cosine, not a rate


def test_the_training_summary_takes_each_seeds_last_best_stage_1_epoch():
    def epoch(seed: int, stage: int, epoch: int, best: bool, val: float) -> dict:
        return {
            "model": "m",
            "regime": "clean",
            "seed": seed,
            "stage": stage,
            "epoch": epoch,
            "is_best": best,
        } | {"train_error": 0.0, "val_error": val, "val_adv_error": 0.0}

    curves = pd.DataFrame(
        [
            epoch(0, 1, 1, True, 0.5),
            epoch(0, 1, 2, True, 0.1),
            epoch(0, 1, 3, False, 0.2),
            epoch(0, 2, 1, True, 0.0),
        ]
        + [epoch(1, 1, 1, True, 0.3), epoch(1, 1, 2, False, 0.4)]
    )
    assert best_epochs(curves)[["seed", "epoch"]].values.tolist() == [[0, 2], [1, 1]]
    row = SUMMARIES["training_summary"].table({"best_epochs": best_epochs(curves)}).data.iloc[0]
    assert row["epoch_mean"] == pytest.approx(1.5)  # epochs, not %
    assert row["val_error_mean"] == pytest.approx(20.0)


def test_a_rerun_may_differ_from_the_reference_only_in_wall_times(tmp_path):
    """The chaos harness compares a killed-and-rerun workflow with an uninterrupted one: the training-cost
    table's seconds are measurements, every other cell must be equal."""
    tables = {}
    for name, seconds, tasks in [("ref", 1.5, 5), ("timing", 2.5, 5), ("result", 1.5, 4)]:
        root = tmp_path / name / "results" / "tables"
        root.mkdir(parents=True)
        table = pd.DataFrame({"model": ["maxout"], "tasks": [tasks], "seconds_per_task": [seconds]})
        table.to_csv(root / "training_cost.csv", index=False)
        pd.DataFrame({"error": [seconds]}).to_csv(root / "attack_summary.csv", index=False)
        tables[name] = tmp_path / name
    assert differences(tables["ref"], tables["ref"]) == []
    timing = differences(tables["ref"], tables["timing"])
    assert timing == ["differs results/tables/attack_summary.csv"]  # no wall-time column there
    assert differences(tables["ref"], tables["result"]) == ["differs results/tables/training_cost.csv"]
