"""Every model against every model: ``transfer.matrix`` expands to transfer pairs, is validated, and its
heatmap shows mean ± sd over seeds."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from conftest import REPO

from advbench.config.loading import load_config
from advbench.config.runs import transfer_pairs
from advbench.config.specs import ConfigError
from advbench.config.validation import validate_config
from advbench.plan import Plan
from advbench.report import charts


@pytest.fixture(scope="module")
def config() -> dict:
    return validate_config(load_config(REPO / "config.yaml"))


def test_the_matrix_adds_every_ordered_pair_not_already_given(config):
    cfg = copy.deepcopy(config)
    cfg["transfer"]["pairs"] = [{"source": "maxout-clean", "target": "softmax-clean"}]
    cfg["transfer"]["matrix"] = ["softmax-clean", "maxout-clean", "rbf-clean"]
    pairs = transfer_pairs(validate_config(cfg))
    assert pairs[0] == ("maxout-clean", "softmax-clean")  # the explicit pairs first, in their order
    assert len(pairs) == len(set(pairs)) == 6
    assert set(pairs) == {
        (s, t) for s in cfg["transfer"]["matrix"] for t in cfg["transfer"]["matrix"] if s != t
    }
    assert len(Plan(cfg).transfer_outputs()) == 6


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        (["softmax-clean", "nosuch-clean"], r"transfer\.matrix\[1\]"),
        (["softmax-clean", "logistic37-clean"], "transfer.matrix: its runs must classify the same classes"),
    ],
)
def test_a_bad_matrix_is_refused_naming_the_key(config, matrix, message):
    cfg = copy.deepcopy(config)
    cfg["transfer"]["matrix"] = matrix
    with pytest.raises(ConfigError, match=message):
        validate_config(cfg)


def test_the_heatmap_shows_the_spread_over_seeds():
    runs = ["a-clean", "b-clean"]
    attack = pd.DataFrame(
        [{"model": r.split("-")[0], "regime": "clean", "seed": s, "eps": 0.25, "clipped": False, "error": e}
         for r in runs for s, e in ((0, 0.9), (1, 0.7))]
    )  # fmt: skip
    transfer = pd.DataFrame(
        [{"source_model": "a", "source_regime": "clean", "target_model": "b", "target_regime": "clean"}
         | {"seed": s, "eps": 0.25, "clipped": False, "error": e} for s, e in ((0, 0.4), (1, 0.2))]
    )  # fmt: skip
    mean = charts.transfer_matrix(attack, transfer, 0.25)
    sd = charts.transfer_matrix(attack, transfer, 0.25, stat="std")
    assert mean.loc["a-clean", "b-clean"] == pytest.approx(30.0)
    assert sd.loc["a-clean", "b-clean"] == pytest.approx(100 * np.std([0.4, 0.2], ddof=1))
    fig = charts.transfer_heatmap(mean, 0.25, sd)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "30.0\n± 14.1" in texts and "n/a" in texts  # b's examples never went to a
