"""Paper figures as data, and the verdicts drawn from results."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from conftest import REPO

from advbench.report.paper import Figure, comparison, load_figures, note


def test_reference_data_covers_the_foundation_figures():
    figures = load_figures()
    assert {f.id for f in figures} >= {"F1", "F2", "F6", "F9", "F10", "F11"}
    assert len({f.key for f in figures}) == len(figures)
    keys = {f.key for f in figures}
    assert all(f.direction["than"] in keys for f in figures if f.direction)
    by_key = {f.key: f for f in figures}
    assert by_key["F1.error"].paper == 0.999 and by_key["F10.adv_to_naive"].paper == 0.409


def test_the_files_the_notes_name_exist():
    """A note sends the reader to a preset or a doc (``presets/headline.yaml``, ``docs/budgets.md``): each
    exists, so a renamed file cannot leave the table pointing nowhere."""
    named = {
        path
        for figure in load_figures()
        for path in re.findall(
            r"\b(?:presets|docs)/[\w.-]+\.(?:yaml|md)", f"{figure.note} {figure.not_reproduced}"
        )
    }
    assert {"presets/headline.yaml", "docs/budgets.md"} <= named
    assert [path for path in sorted(named) if not (REPO / path).is_file()] == []


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


def test_intervals_combine_the_seeds_spread_with_the_test_sets_sampling_error():
    sel = {"table": "attack", "model": "m", "eps": 0.0, "clipped": False, "column": "error"}
    figs = [
        Figure("rate", "X", "exp", "error", 0.0094, 0.002, {**sel, "regime": "naive"}),
        Figure("conf", "X", "exp", "conf", 0.9, 0.05, {**sel, "regime": "naive", "column": "conf"}),
    ]
    errors = [0.010, 0.012, 0.011, 0.013, 0.014]
    attack = pd.DataFrame(
        [
            {"model": "m", "regime": "naive", "eps": 0.0, "clipped": False, "seed": s, "n": 10_000}
            | {"error": e, "conf": 0.8 + e}
            for s, e in enumerate(errors)
        ]
    )
    table = comparison({"attack": attack}, figs).set_index(pd.Index(["rate", "conf"]))
    mean, sd = 0.012, pd.Series(errors).std(ddof=1)
    seeds = 2.776445 * sd / 5**0.5  # t(0.975, 4)
    sampling = 1.959964 * (mean * (1 - mean) / 10_000) ** 0.5  # 0.94% of 10k: 94 +- 19 mistakes
    half = (seeds**2 + sampling**2) ** 0.5
    assert abs(table.loc["rate", "ci95_low"] - (mean - half)) < 1e-6
    assert abs(table.loc["rate", "ci95_high"] - (mean + half)) < 1e-6
    assert half > seeds and half > sampling
    # a confidence is not a rate of examples: the seeds' t-interval alone
    assert abs(table.loc["conf", "ci95_high"] - (0.812 + seeds)) < 1e-6


def test_a_miss_within_the_noise_is_marked_and_a_clear_miss_is_not():
    sel = {"table": "attack", "model": "m", "eps": 0.0, "clipped": False, "column": "error"}
    figs = [
        Figure("near", "X", "exp", "error", 0.0094, 0.002, {**sel, "regime": "near"}),
        Figure("far", "X", "exp", "error", 0.0094, 0.002, {**sel, "regime": "far"}),
        Figure("hit", "X", "exp", "error", 0.0094, 0.002, {**sel, "regime": "hit"}),
    ]
    rows = []
    for regime, errors in (("near", [0.0125, 0.0105]), ("far", [0.05, 0.051]), ("hit", [0.0095, 0.0093])):
        for s, e in enumerate(errors):
            rows.append({"model": "m", "regime": regime, "eps": 0.0, "clipped": False, "seed": s})
            rows[-1] |= {"error": e, "n": 10_000}
    table = comparison({"attack": pd.DataFrame(rows)}, figs).set_index(pd.Index(["near", "far", "hit"]))
    assert table.loc["near", "verdict"] == "differs" and table.loc["near", "within_noise"]
    assert table.loc["far", "verdict"] == "differs" and not table.loc["far", "within_noise"]
    assert table.loc["hit", "verdict"] == "matches" and pd.isna(table.loc["hit", "within_noise"])


def test_run_notes_reach_the_rows_that_select_those_runs():
    sel = {"table": "transfer", "eps": 0.25, "clipped": False, "column": "error"}
    pair = {"source_model": "a", "source_regime": "clean", "target_model": "b", "target_regime": "adv"}
    figs = [Figure("t", "X", "exp", "error", 0.2, 0.05, {**sel, **pair}), Figure("u", "X", "exp", "error")]
    table = comparison({}, figs, run_notes={"b-adv": "trained at most 2 epochs", "c-clean": "unused"})
    assert table.loc[0, "note"] == "b-adv: trained at most 2 epochs" and table.loc[1, "note"] == ""


def test_f9_to_f11_measure_the_1600_unit_adversarially_trained_model():
    by_key = {f.key: f for f in load_figures()}
    for key in ("F9.adversarial", "F11.conf"):
        assert by_key[key].select["model"] == "maxout1600" and by_key[key].select["regime"] == "adversarial"
    assert by_key["F9.naive"].select["model"] == "maxout"  # the section 4 model
    ends = {
        k: (f.select["source_model"], f.select["target_model"]) for k, f in by_key.items() if k[:4] == "F10."
    }
    assert ends["F10.naive_to_adv"] == ("maxout", "maxout1600")
    assert ends["F10.naive1600_to_adv"] == ("maxout1600", "maxout1600")
    for key in ("F9.adversarial240", "F10.naive_to_adv240", "F10.adv240_to_naive", "F11.conf240"):
        assert by_key[key].paper is None and by_key[key].direction  # no paper value, the paper's direction


def test_an_external_reference_is_marked_as_such_and_kept_off_the_papers_points():
    """DN's tutorial rows carry PyTorch's FGSM tutorial's numbers: the note says so, the chart marks them on
    the clipped line (the tutorial clips), and the paper's stars never include them."""
    from advbench.report.charts import paper_points, reference_points

    by_key = {f.key: f for f in load_figures()}
    tutorial = by_key["DN.tutorial_eps30"]
    assert tutorial.source == "PyTorch FGSM tutorial" and tutorial.paper == pytest.approx(1 - 0.087)
    assert note(tutorial).startswith("reference value from PyTorch FGSM tutorial, not the paper")
    assert not note(by_key["F1.error"]).startswith("reference value")
    assert ("lenet", "clean", 0.3) not in paper_points("error")
    assert reference_points("error")[("lenet", "clean", 0.3)] == pytest.approx(0.913)
    assert ("maxout", "clean", 0.25) in paper_points("error")
    assert ("maxout", "clean", 0.25) not in reference_points("error")


def test_a_comparison_is_judged_on_the_interval_of_the_difference_over_seeds():
    sel = {"table": "attack", "model": "m", "eps": 0.25, "clipped": False, "column": "error"}

    def fig(key: str, regime: str, relation: str | None = None) -> Figure:
        return Figure(key, "X", "exp", "error", None, 0.0, {**sel, "regime": regime},
                      {"relation": relation, "than": "base"} if relation else None)  # fmt: skip

    figs = [
        fig("base", "base"),
        fig("clear", "clear", "<"),
        fig("close", "close", "<"),
        fig("reversed_close", "reversed_close", "<"),
        fig("reversed", "reversed", "<"),
        fig("one_seed", "one_seed", "<"),
    ]
    seeds = {
        "base": [0.50, 0.52, 0.48],
        "clear": [0.20, 0.22, 0.18],
        "close": [0.49, 0.52, 0.47],
        "reversed_close": [0.51, 0.53, 0.48],
        "reversed": [0.80, 0.82, 0.78],
        "one_seed": [0.10],
    }
    attack = _attack({(r, s): v for r, vs in seeds.items() for s, v in enumerate(vs)})
    table = comparison({"attack": attack}, figs).set_index(pd.Index([f.key for f in figs]))
    assert table.loc["base", "direction"] == ""  # no comparison: empty, as an empty note
    assert table.loc["clear", "direction"] == "holds"
    assert table.loc["close", "direction"] == "holds within noise"
    assert table.loc["reversed_close", "direction"] == "fails within noise"
    assert table.loc["reversed", "direction"] == "fails"
    assert table.loc["one_seed", "direction"] == "holds (no interval)"
    # the verdict still rests on the means alone
    assert table.loc["close", "verdict"] == "direction holds"
    assert table.loc["reversed_close", "verdict"] == "differs"


def test_the_difference_interval_is_welchs():
    from scipy import stats

    from advbench.report.paper import difference_interval

    a, b = pd.Series([1.0, 2.0, 3.0, 4.0]), pd.Series([0.0, 0.5, 1.0])
    low, high = difference_interval(a, b)
    welch = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert abs(low - welch.low) < 1e-12 and abs(high - welch.high) < 1e-12
    assert difference_interval(pd.Series([2.0, 2.0]), pd.Series([1.0, 1.0])) == (1.0, 1.0)
    assert all(pd.isna(v) for v in difference_interval(pd.Series([1.0]), b))
