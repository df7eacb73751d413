"""Paper figures as data, and the verdicts drawn from results."""

from __future__ import annotations

import pandas as pd

from advbench.paper import Figure, comparison, load_figures


def test_reference_data_covers_the_foundation_figures():
    figures = load_figures()
    assert {f.id for f in figures} >= {"F1", "F2", "F6", "F9", "F10", "F11"}
    assert len({f.key for f in figures}) == len(figures)
    keys = {f.key for f in figures}
    assert all(f.direction["than"] in keys for f in figures if f.direction)
    by_key = {f.key: f for f in figures}
    assert by_key["F1.error"].paper == 0.999 and by_key["F10.adv_to_naive"].paper == 0.409


def _attack(values: dict[tuple[str, int], float]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"model": "m", "regime": r, "eps": 0.25, "clipped": False, "seed": s, "error": v}
            for (r, s), v in values.items()
        ]
    )


def test_verdicts():
    sel = {"table": "attack", "model": "m", "eps": 0.25, "clipped": False, "column": "error"}
    figs = [
        Figure("a", "X", "exp", "error", 0.90, 0.05, {**sel, "regime": "naive"}),
        Figure(
            "b", "X", "exp", "error", 0.20, 0.05, {**sel, "regime": "adv"}, {"relation": "<", "than": "a"}
        ),
        Figure(
            "c", "X", "exp", "error", 0.10, 0.01, {**sel, "regime": "adv"}, {"relation": ">", "than": "a"}
        ),
        Figure("d", "X", "exp", "error", 0.10, 0.01, {**sel, "regime": "missing"}),
    ]
    attack = _attack({("naive", 0): 0.92, ("naive", 1): 0.88, ("adv", 0): 0.5, ("adv", 1): 0.7})
    table = comparison({"attack": attack}, figs).set_index(pd.Index(["a", "b", "c", "d"]))
    assert table.loc["a", "verdict"] == "matches"
    assert table.loc["a", "reproduced_mean"] == 0.90 and table.loc["a", "n_seeds"] == 2
    assert abs(table.loc["b", "reproduced_std"] - 0.1414) < 1e-3
    assert table.loc["b", "verdict"] == "direction holds"
    assert table.loc["c", "verdict"] == "differs"
    assert table.loc["d", "verdict"] == "not run" and table.loc["d", "n_seeds"] == 0


def test_a_metric_that_ran_but_is_undefined_is_not_called_not_run():
    sel = {"table": "attack", "model": "m", "eps": 0.25, "clipped": False, "column": "error"}
    figs = [Figure("e", "X", "exp", "confidence", 0.9, 0.05, {**sel, "regime": "naive"})]
    attack = _attack({("naive", 0): float("nan"), ("naive", 1): float("nan")})
    row = comparison({"attack": attack}, figs).iloc[0]
    assert row["verdict"] == "undefined" and row["n_seeds"] == 2


def test_figure_rows_report_one_value_per_seed():
    sel = {"table": "attack", "model": "m", "eps": 0.25, "clipped": False, "column": "error"}
    figs = [
        Figure("one", "X", "exp", "error", select={**sel, "regime": "naive"}, figure="fgsm_vs_eps"),
        Figure("many", "X", "exp", "error", select={"table": "attack", "column": "error"}, figure="f"),
    ]
    attack = _attack({("naive", 0): 0.9, ("naive", 1): 0.8, ("adv", 0): 0.1, ("adv", 1): 0.2})
    table = comparison({"attack": attack}, figs).set_index(pd.Index(["one", "many"]))
    assert (
        abs(table.loc["one", "reproduced_mean"] - 0.85) < 1e-12
        and table.loc["one", "verdict"] == "shown in figure"
    )
    assert pd.isna(table.loc["many", "reproduced_mean"]) and table.loc["many", "verdict"] == "shown in figure"
