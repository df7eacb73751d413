"""Figures and tables from small synthetic results: labels, legends, colours, shapes, table formats."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from advbench.report import charts, images, tables


def attack_df(runs=(("softmax", "clean"), ("maxout", "clean"), ("maxout", "adversarial"))) -> pd.DataFrame:
    rows = []
    for (model, regime), seed, eps, clipped in itertools.product(
        runs, (0, 1, 2), (0.0, 0.1, 0.25), (False, True)
    ):
        err = min(1.0, 0.02 + 3 * eps + 0.01 * seed)
        rows.append(dict(model=model, regime=regime, seed=seed, eps=eps, clipped=clipped, n=100))
        rows[-1] |= dict(error=err, mean_conf_wrong=0.5 + eps, n_wrong=int(100 * err))
    return pd.DataFrame(rows)


def test_eps_curves_are_small_multiples_of_the_papers_comparisons():
    runs = (("softmax", "clean"), ("maxout", "clean"), ("maxout", "adversarial"), ("mystery", "clean"))
    fig = charts.eps_curves(attack_df(runs))
    axes = fig.axes
    assert len(axes) == 6  # three rows (naive vs adversarial, softmax regression, other models) x two metrics
    titles = [ax.get_title() for ax in axes[::2]]
    assert titles[0].startswith("naive vs adversarially") and titles[1].startswith("softmax regression")
    assert titles[2] == "other models"
    assert all("ε" in ax.get_xlabel() for ax in axes[4:]) and not axes[0].get_xlabel()
    assert {ax.get_ylabel() for ax in axes} == {"FGSM error (%)", "mean confidence on mistakes (%)"}
    legends = [[t.get_text() for t in ax.get_legend().get_texts()] for ax in axes[1::2]]
    assert legends == [["maxout (clean)", "maxout (adversarial)"], ["softmax (clean)"], ["mystery (clean)"]]
    colours = [line.get_color() for line in axes[0].lines if line.get_label() in legends[0]]
    assert len(set(colours)) == 2  # colours restart per row: no two lines of a panel share one
    solid = [line for line in axes[2].lines if line.get_label() == "softmax (clean)"][0]
    np.testing.assert_allclose(solid.get_ydata(), [3.0, 33.0, 78.0])  # mean over seeds 0-2, unclipped
    assert any(line.get_linestyle() == "--" for line in axes[2].lines)  # the clipped attack
    stars = [line for line in axes[0].lines if line.get_marker() == "*"]
    # the paper's 240-unit maxout: clean error .94% naive, .84% adversarially trained (F6); FGSM 89.4% (F2)
    points = sorted((float(s.get_xdata()[0]), round(float(s.get_ydata()[0]), 6)) for s in stars)
    assert points == [(0.0, 0.84), (0.0, 0.94), (0.25, 89.4)]
    assert len(axes[0].collections) == 2  # one ± sd band per run


def test_styles_are_distinct_and_colour_blind_safe():
    styles = [charts.style(i) for i in range(20)]
    keys = {(s["color"], s["linestyle"]) for s in styles}
    assert len(keys) == 20
    assert {to_hex(s["color"]).upper() for s in styles} <= set(charts.OKABE_ITO)


def test_transfer_matrix_keeps_only_pair_models_and_fills_the_diagonal():
    attack = attack_df()
    transfer = pd.DataFrame(
        [
            dict(source_model="maxout", source_regime=a, target_model="maxout", target_regime=b, seed=0)
            | dict(eps=0.25, clipped=False, error=0.4)
            for a, b in (("clean", "adversarial"), ("adversarial", "clean"))
        ]
    )
    matrix = charts.transfer_matrix(attack, transfer, 0.25)
    assert list(matrix.index) == ["maxout-adversarial", "maxout-clean"] == list(matrix.columns)
    assert matrix.loc["maxout-clean", "maxout-adversarial"] == pytest.approx(40.0)
    assert matrix.loc["maxout-clean", "maxout-clean"] == pytest.approx(78.0)  # mean of 77, 78 and 79 %
    fig = charts.transfer_heatmap(matrix, 0.25)
    assert "target" in fig.axes[0].get_xlabel() and "source" in fig.axes[0].get_ylabel()
    assert fig.axes[1].get_ylabel().endswith("(%)")  # the colour bar


def test_training_curves_integer_epochs_and_legend():
    rows = [
        dict(model="maxout", regime=r, seed=s, epoch=e, val_error=0.5 / e, val_adv_error=0.9, stage=1)
        for r in ("clean", "adversarial")
        for s in (0, 1)
        for e in (1, 2, 3)
    ]
    fig = charts.training_curves(pd.DataFrame(rows))
    assert fig.axes[0].get_xlabel() == "epoch" and "(%)" in fig.axes[0].get_ylabel()
    assert len(fig.legends[0].get_texts()) == 2
    assert fig.axes[0].get_yscale() == "log"
    # the paper's test errors as dotted lines: naive clean .94% (F6) and adversarial .84%; FGSM 89.4% (F2)
    dotted = [
        sorted(round(line.get_ydata()[0], 6) for line in ax.lines if line.get_linestyle() == ":")
        for ax in fig.axes
    ]
    assert dotted == [[0.84, 0.94], [89.4]]


def sweep_df(label: int = 4) -> pd.DataFrame:
    eps = np.linspace(-0.5, 0.5, 11)
    rows = []
    for seed, e, cls in itertools.product((0, 1), eps, range(10)):
        logit = (5.0 if cls == label else 0.0) + (cls - label) * 10 * e  # class 9 wins at large eps
        rows.append(
            dict(seed=seed, run="maxout-clean", example=7, label=label, eps=e, **{"class": cls}, logit=logit)
        )
    return pd.DataFrame(rows)


def test_logit_sweep_draws_every_class_and_the_prediction_strip():
    fig = charts.logit_sweep(sweep_df())
    ax, strip = fig.axes
    assert len(ax.lines) == 10 + 1  # ten classes and the eps = 0 line
    assert "(true)" in [t.get_text() for t in ax.get_legend().get_texts()][4]
    assert "ε" in strip.get_xlabel() and "logit" in ax.get_ylabel()
    predicted = [t.get_text() for t in strip.texts]
    assert predicted[0] == "0" and "4" in predicted and predicted[-1] == "9"  # argmax along eps, in order


def test_rubbish_histogram_bars_and_error_in_legend():
    rubbish = pd.DataFrame(
        [
            dict(model="maxout", regime="clean", seed=s, threshold=0.5, error=e)
            for s, e in ((0, 0.6), (1, 0.8))
        ]
    )
    classes = pd.DataFrame(
        [
            dict(model="maxout", regime="clean", seed=s, **{"class": c}, share=1.0 if c == 5 else 0.0)
            for s in (0, 1)
            for c in range(10)
        ]
    )
    fig = charts.rubbish_histogram(rubbish, classes)
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert heights[5] == pytest.approx(100.0) and sum(heights) == pytest.approx(100.0)
    assert "70.0 ± 14.1%" in ax.get_legend().get_texts()[0].get_text()
    assert ax.get_xlabel() == "predicted class" and "(%)" in ax.get_ylabel()


def test_as_image_handles_grey_and_both_colour_layouts():
    assert images.as_image(np.zeros(784), (28, 28)).shape == (28, 28)
    chw = np.arange(3 * 4 * 5, dtype=float).reshape(3, 4, 5)
    hwc = images.as_image(chw.ravel(), (3, 4, 5))
    assert hwc.shape == (4, 5, 3) and hwc[1, 2, 0] == chw[0, 1, 2]
    assert images.as_image(np.zeros(4 * 5 * 3), (4, 5, 3)).shape == (4, 5, 3)


@pytest.mark.parametrize("shape", [(28, 28), (32, 32, 3)])
def test_adversarial_grid_draws_colour_images_in_colour(shape):
    rng = np.random.default_rng(0)
    clean = rng.random(int(np.prod(shape)))
    ex = images.Example(clean, clean + 0.1, "cat", "'cat' 90.0%", "'frog' 99.0%", "conv-clean")
    fig = images.adversarial_grid([ex, ex], shape, 0.1, "title", "+ perturbation")
    drawn = [ax.images[0].get_array() for ax in fig.axes]
    assert len(drawn) == 6
    assert drawn[0].ndim == len(shape)  # grey stays 2-D, colour is (H, W, 3)
    assert "'frog' 99.0%" in fig.axes[2].get_title()
    assert fig.axes[0].get_ylabel() == "conv-clean"


def test_logistic_and_weight_panels():
    w = np.linspace(-1, 1, 784)
    fig = images.logistic_panels(w, np.zeros((2, 784)), np.ones((2, 784)), (28, 28), "3 vs 7")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:2] == ["(a) weights w", "(b) sign(w)"] and "(c) clean" in titles
    assert set(np.unique(fig.axes[1].images[0].get_array())) == {-1.0, 1.0}
    fig = images.weight_panels([("a", np.ones((10, 784)), (28, 28)), ("b", -np.ones((3, 75)), (3, 5, 5))])
    assert len(fig.axes) == 20 and not fig.axes[-1].axison  # missing units are left blank
    assert fig.axes[10].images[0].get_array().shape == (5, 5, 3)  # each row its own shape, colour kernels


def test_class_names():
    assert images.class_name("cifar10", 6) == "frog"
    assert images.class_name("mnist", 6) == "6"


def test_present_merges_mean_and_sd_with_n():
    df = pd.DataFrame(
        dict(
            model=["a"],
            error_mean=[12.345],
            error_std=[0.5],
            conf_mean=[float("nan")],
            conf_std=[float("nan")],
        )
    ).assign(n_seeds=[5], eps=[0.25])
    shown = tables.present(df)
    assert list(shown.columns) == ["model", "error", "conf", "n", "eps"]
    assert shown.iloc[0].tolist() == ["a", "12.35 ± 0.50", "–", "5", "0.25"]


def test_tables_are_written_in_every_format(tmp_path):
    df = pd.DataFrame(
        dict(reference=["maxout-clean"], condition=["both_wrong"], rate_mean=[55.0], rate_std=[0.4])
    )
    paths = tables.write_all(df.assign(n_seeds=[2]), tmp_path / "agreement", "Agreement (%) & more_")
    assert [p.suffix for p in paths] == [".md", ".csv", ".tex", ".html"]
    tex = (tmp_path / "agreement.tex").read_text()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"both\_wrong & 55.00 $\pm$ 0.40 & 2 \\" in tex and r"(\%) \& more\_" in tex
    assert r"\begin{tabular}{llrr}" in tex
    assert "55.00 ± 0.40" in (tmp_path / "agreement.md").read_text()
    csv = pd.read_csv(tmp_path / "agreement.csv")
    assert csv["rate_std"].iloc[0] == pytest.approx(0.4)  # the CSV keeps every number
    assert "<caption>Agreement (%) &amp; more_</caption>" in (tmp_path / "agreement.html").read_text()


def test_deep_nets_get_their_panel_with_the_tutorials_crosses_on_the_clipped_line():
    attack = attack_df((("lenet", "clean"), ("lenet", "adversarial")))
    fig = charts.eps_curves(attack)
    assert len(fig.axes) == 2 and fig.axes[0].get_title().startswith("deep nets")
    crosses = [line for line in fig.axes[0].lines if line.get_marker() == "X"]
    # PyTorch's FGSM tutorial's seven points (accuracy .981 ... .087), on the naive LeNet's lines only
    points = sorted((float(c.get_xdata()[0]), round(float(c.get_ydata()[0]), 6)) for c in crosses)
    expected = [(0.0, 1.9), (0.05, 5.7), (0.1, 14.9), (0.15, 31.7), (0.2, 57.0), (0.25, 79.2), (0.3, 91.3)]
    assert points == expected
    assert {c.get_color() for c in crosses} == {charts.style(0)["color"]}  # lenet-clean, the first line
    assert not [line for line in fig.axes[0].lines if line.get_marker() == "*"]  # no paper value for LeNet


def test_rotation_curves_draw_the_attack_and_both_references_per_run():
    rows = []
    for (model, regime), seed, angle in itertools.product(
        (("maxout", "clean"), ("maxout", "adversarial")), (0, 1), (0.0, 10.0, 30.0)
    ):
        err = 0.01 + angle / 40
        rows.append(
            dict(model=model, regime=regime, seed=seed, angle=angle, error=err, random_error=err / 2)
            | dict(fgsm_error=err / 3)
        )
    fig = charts.rotation_curves(pd.DataFrame(rows))
    (ax,) = fig.axes
    labels = [line.get_label() for line in ax.lines]
    assert len(labels) == 6 and "maxout (clean): random direction" in labels
    attack = [line for line in ax.lines if line.get_label() == "maxout (clean): rotation toward the loss"][0]
    np.testing.assert_allclose(attack.get_ydata(), [1.0, 26.0, 76.0])
    assert {line.get_linestyle() for line in ax.lines} == {"-", ":", "--"}
    assert "degrees" in ax.get_xlabel()
