"""Tables generated from records (RobustBench style): the training-cost table of the report."""

from __future__ import annotations

import pandas as pd
import pytest

from advbench.report import training_cost


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
