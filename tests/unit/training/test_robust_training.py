"""The adversarial training that followed the paper: fast adversarial training (FGSM from a random start,
``fgsm_rs``) and PGD training (``pgd``), the per-epoch PGD monitoring, and the catastrophic-overfitting
table read from it."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest
import torch
from conftest import REPO
from torch.nn import functional as F

from advbench.attacks import input_gradient
from advbench.config.loading import load_config
from advbench.config.specs import TrainSpec, model_spec, regime_spec
from advbench.config.validation import validate_config
from advbench.models.architectures import build
from advbench.plan.priorities import passes
from advbench.report import charts
from advbench.report.overfitting import catastrophic_overfitting, overfitting_epoch
from advbench.training.loop import Tensors, epoch_metrics, objective, random_start_examples, train_model

EPS = 0.1
MAXOUT = model_spec(
    "maxout", {"arch": "maxout", "units": 16, "pieces": 2, "init_range": 0.05, "train": {"max_epochs": 2}}
)
FAST = regime_spec("fgsm_rs", {"kind": "fgsm_rs", "alpha": 0.0, "eps": EPS, "clip": True})
PGD = regime_spec("pgd", {"kind": "pgd", "alpha": 0.0, "eps": EPS, "clip": True, "steps": 4})


def batch(n: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 784, generator=g), torch.randint(0, 10, (n,), generator=g)


def tensors(n: int = 300) -> Tensors:
    x, y = batch(n)
    return Tensors(x[:200], y[:200], x[200:], y[200:])


def test_step_sizes_default_to_wong_and_madry():
    assert FAST.attack_steps == 1 and FAST.attack_step == pytest.approx(1.25 * EPS)
    assert PGD.attack_steps == 4 and PGD.attack_step == pytest.approx(2.5 / 4 * EPS)
    own = regime_spec("pgd", {"kind": "pgd", "eps": EPS, "steps": 4, "step_size": 0.5})
    assert own.attack_step == pytest.approx(0.5 * EPS)
    assert passes(PGD) == 6 and passes(FAST) == 2 and passes(regime_spec("c", {"kind": "clean"})) == 1


def test_fast_examples_are_one_step_from_a_random_start_projected_on_the_ball():
    """By hand: a uniform start in the ball (clipped to the box), one step of 1.25 eps up the loss,
    projected back onto the ball and the box; the start drawn from torch's global generator."""
    model = build(MAXOUT, torch.Generator().manual_seed(0)).eval()
    x, y = batch()
    torch.manual_seed(7)
    x_adv = random_start_examples(model, x, y, FAST)
    torch.manual_seed(7)
    start = (x + torch.empty(x.shape).uniform_(-EPS, EPS)).clamp(0, 1)
    step = start + 1.25 * EPS * input_gradient(model, start, y).sign()
    expected = (x + (step - x).clamp(-EPS, EPS)).clamp(0, 1)
    torch.testing.assert_close(x_adv, expected)
    assert float((x_adv - x).abs().max()) <= EPS + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    torch.manual_seed(8)
    assert not torch.equal(random_start_examples(model, x, y, FAST), x_adv)  # the start is random


def test_pgd_examples_raise_the_loss_beyond_the_fast_ones():
    model = build(MAXOUT, torch.Generator().manual_seed(0)).eval()
    x, y = batch(256)
    steps = regime_spec("pgd", {"kind": "pgd", "alpha": 0.0, "eps": EPS, "clip": True, "steps": 10})
    fast, pgd = random_start_examples(model, x, y, FAST), random_start_examples(model, x, y, steps)
    assert float((pgd - x).abs().max()) <= EPS + 1e-6
    with torch.no_grad():
        assert F.cross_entropy(model(pgd), y) > F.cross_entropy(model(fast), y)


@pytest.mark.parametrize("regime", [FAST, PGD], ids=["fgsm_rs", "pgd"])
def test_the_objective_with_alpha_0_is_the_loss_of_the_adversarial_examples_alone(regime):
    """Dropout on while the examples are made and while they are trained on (grad_in_train_mode); the same
    seed reproduces both the random start and every dropout mask."""
    model = build(MAXOUT, torch.Generator().manual_seed(0)).train()
    x, y = batch()
    torch.manual_seed(3)
    values = objective(model, x, y, regime)
    got = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    torch.manual_seed(3)
    x_adv = random_start_examples(model, x, y, regime)
    loss = F.cross_entropy(model(x_adv), y, reduction="none")
    expected = torch.autograd.grad(loss.mean(), list(model.parameters()))
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e)
    torch.testing.assert_close(values, loss.detach())


def test_pgd_monitoring_scores_validation_and_leaves_training_alone():
    data = tensors()
    plain = TrainSpec(max_epochs=2, monitor_train=50)
    spec = model_spec("maxout", {"arch": "maxout", "units": 16, "pieces": 2, "init_range": 0.05})
    monitored = replace(spec, train=replace(plain, monitor_pgd=60, monitor_pgd_steps=5))
    weights, curves = train_model(monitored, FAST, data, seed=1)
    same, plain_curves = train_model(replace(spec, train=plain), FAST, data, seed=1)
    for k in weights:
        assert torch.equal(weights[k], same[k]), k  # monitoring draws no training random number
    assert all(0.0 <= row["val_pgd_error"] <= 1.0 for row in curves)
    assert all("val_pgd_error" not in row for row in plain_curves)
    model = build(spec, torch.Generator().manual_seed(0))
    again = epoch_metrics(model, data, monitored.train)
    assert again["val_pgd_error"] == epoch_metrics(model, data, monitored.train)["val_pgd_error"]
    assert again["val_pgd_error"] >= again["val_adv_error"] - 2 / 60  # PGD at least FGSM, up to rounding


def test_overfitting_is_pgd_climbing_while_fgsm_does_not():
    epochs = [1, 2, 3, 4, 5]
    # Wong et al.'s signature: FGSM error keeps falling, PGD error jumps at epoch 4
    assert overfitting_epoch(epochs, [0.6, 0.4, 0.3, 0.1, 0.05], [0.8, 0.6, 0.5, 0.95, 1.0]) == 4
    # both climbing: the model got worse, not overfit to the one step
    assert overfitting_epoch(epochs, [0.6, 0.4, 0.3, 0.7, 0.8], [0.8, 0.6, 0.5, 0.95, 1.0]) is None
    # PGD rising by less than 20 points
    assert overfitting_epoch(epochs, [0.6, 0.4, 0.3, 0.2, 0.1], [0.8, 0.6, 0.5, 0.6, 0.65]) is None


def test_the_catastrophic_overfitting_table_counts_tasks_and_epochs():
    pgd = {0: [0.8, 0.5, 0.95], 1: [0.8, 0.6, 0.55]}
    rows = [
        {"model": "maxout", "regime": "fgsm_alone", "seed": s, "epoch": e + 1, "stage": 1, "member": None}
        | {"val_adv_error": [0.6, 0.4, 0.2][e], "val_pgd_error": pgd[s][e]}
        for s in (0, 1)
        for e in range(3)
    ] + [
        {"model": "maxout", "regime": "clean", "seed": 0, "epoch": 1, "stage": 1, "member": None}
        | {"val_adv_error": 0.9, "val_pgd_error": None}
    ]
    table = catastrophic_overfitting(pd.DataFrame(rows))
    assert table["regime"].tolist() == ["fgsm_alone"]  # the run without PGD monitoring has no row
    row = table.iloc[0]
    assert (row["tasks"], row["overfit_tasks"], row["overfit_epochs"], row["epochs"]) == (2, 1, "3", 3)
    assert row["final_pgd_error"] == pytest.approx(75.0) and row["final_gap"] == pytest.approx(55.0)
    assert catastrophic_overfitting(pd.DataFrame(rows[-1:])).empty


def test_training_curves_get_a_pgd_panel_with_pgd_monitoring():
    rows = [
        dict(model="maxout", regime=r, seed=0, epoch=e, val_error=0.1, val_adv_error=0.5, stage=1)
        | {"val_pgd_error": 0.9 if r == "fgsm_rs" else None}
        for r in ("clean", "fgsm_rs")
        for e in (1, 2)
    ]
    fig = charts.training_curves(pd.DataFrame(rows))
    assert [ax.get_ylabel() for ax in fig.axes][2] == "PGD validation error (%)"
    drawn = [line for line in fig.axes[2].lines if not pd.isna(line.get_ydata()).all()]
    assert len(drawn) == 1 and list(drawn[0].get_ydata()) == [90.0, 90.0]
    assert len(charts.training_curves(pd.DataFrame(rows).drop(columns="val_pgd_error")).axes) == 2


def test_the_configs_run_the_new_regimes():
    for preset in ("smoke", "paper", "robust_training"):
        config = validate_config(load_config(REPO / "config.yaml", REPO / f"presets/{preset}.yaml"))
        kinds = {config["regimes"][run["regime"]]["kind"] for run in config["runs"]}
        assert {"fgsm_rs", "pgd"} <= kinds, preset
    bad = validate_config(load_config(REPO / "config.yaml"))
    bad["regimes"]["pgd_trained"]["steps"] = 0
    with pytest.raises(Exception, match="steps"):
        validate_config(bad)
