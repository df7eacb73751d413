"""The training loop: schedules, the adversarial objective's gradient, determinism, loud failures."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch.nn import functional as F

from advbench.config.specs import TrainSpec, model_spec, regime_spec
from advbench.models.architectures import build
from advbench.training.loop import (
    Tensors,
    add_l1_first_layer,
    lr_at,
    momentum_at,
    noise,
    objective,
    task_seed,
    train_model,
)


def test_momentum_ramp_and_lr_decay():
    t = TrainSpec()
    assert momentum_at(1, t) == 0.5 and momentum_at(250, t) == 0.7 and momentum_at(900, t) == 0.7
    assert momentum_at(125, t) == pytest.approx(0.5 + 0.2 * 124 / 249)
    assert lr_at(0, t) == 0.1 and lr_at(1, t) == pytest.approx(0.1 / 1.000004)
    assert lr_at(10**8, t) == t.lr_min
    # A faster decay leaves the float range in a long schedule (1.01**71500 overflows): the floor holds.
    fast = TrainSpec(lr_decay=1.01)
    assert lr_at(71_000, fast) == t.lr_min and lr_at(500 * 1000, fast) == t.lr_min
    assert lr_at(100, fast) == 0.1 / 1.01**100  # exactly pylearn2's quotient where it is a float


def test_task_seed_depends_on_the_whole_key():
    assert task_seed("mnist", "maxout", "clean", 0) == task_seed("mnist", "maxout", "clean", 0)
    assert task_seed("mnist", "maxout", "clean", 0) != task_seed("mnist", "maxout", "clean", 1)
    assert task_seed("mnist", "maxout", "clean", 0) != task_seed("mnist", "softmax", "clean", 0)


def _model():
    return build(model_spec("softmax", {"arch": "softmax"}), torch.Generator().manual_seed(0))


def test_adversarial_objective_gradient_is_the_papers():
    """alpha*grad J(x) + (1-alpha)*grad J(x + eps*sign(grad_x J(x))), no gradient through the sign."""
    g = torch.Generator().manual_seed(5)
    x, y = torch.rand(32, 784, generator=g), torch.randint(0, 10, (32,), generator=g)
    regime = regime_spec("adv", {"kind": "fgsm", "alpha": 0.3, "eps": 0.1})
    model = _model()
    with torch.no_grad():
        model.linear.weight.normal_(0, 0.05, generator=g)
    objective(model, x, y, regime)
    got = [p.grad.clone() for p in model.parameters()]

    ref = _model()
    ref.load_state_dict(model.state_dict())
    x_in = x.clone().requires_grad_(True)
    (gx,) = torch.autograd.grad(F.cross_entropy(ref(x_in), y), x_in)
    x_adv = x + 0.1 * gx.sign()
    loss = 0.3 * F.cross_entropy(ref(x), y) + 0.7 * F.cross_entropy(ref(x_adv), y)
    expected = torch.autograd.grad(loss, list(ref.parameters()))
    for a, b in zip(got, expected, strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def _tensors(n=600):
    g = torch.Generator().manual_seed(7)
    centers = torch.rand(10, 784, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    x = (centers[y] + 0.3 * torch.randn(n, 784, generator=g)).clamp(0, 1)
    return Tensors(x[:500], y[:500], x[500:], y[500:])


def _spec(**kw):
    train = {"max_epochs": 5, "batch_size": 50}
    return model_spec(
        "maxout", {"arch": "maxout", "units": 32, "pieces": 2, "init_range": 0.1, "train": train, **kw}
    )


@pytest.mark.parametrize("kind", ["clean", "fgsm"])
def test_training_learns_and_keeps_the_best_epoch(kind):
    spec = _spec(input_keep=1.0, hidden_keep=1.0, hidden_scale=1.0)
    data = _tensors()
    state, curves = train_model(spec, regime_spec(kind, {"kind": kind}), data, seed=11)
    best = min(curves, key=lambda c: c["val_error"])
    assert best["val_error"] < 0.5  # 10 classes: chance is 0.9
    assert best["is_best"] and sum(c["is_best"] for c in curves) >= 1
    model = build(spec)
    model.load_state_dict(state)  # the returned state is the best epoch's
    with torch.no_grad():
        err = (model.eval()(data.x_val).argmax(1) != data.y_val).float().mean().item()
    assert err == pytest.approx(best["val_error"])


@pytest.mark.parametrize("kind", ["clean", "fgsm"])
def test_training_with_dropout_is_deterministic(kind):
    spec, regime, data = _spec(), regime_spec(kind, {"kind": kind}), _tensors()
    state_a, curves_a = train_model(spec, regime, data, seed=11)
    state_b, curves_b = train_model(spec, regime, data, seed=11)
    state_c, _ = train_model(spec, regime, data, seed=12)
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert [c["val_error"] for c in curves_a] == [c["val_error"] for c in curves_b]
    assert not all(torch.equal(state_a[k], state_c[k]) for k in state_a)


def test_early_stopping_respects_patience():
    spec = model_spec("softmax", {"arch": "softmax", "train": {"max_epochs": 50, "patience": 1, "lr": 1e-9}})
    _, curves = train_model(spec, regime_spec("clean", {"kind": "clean"}), _tensors(), seed=0)
    assert len(curves) < 50


def test_non_finite_loss_fails_loudly_naming_model_and_epoch():
    data = _tensors()
    data.x_train[7, 3] = float("nan")
    spec = model_spec("softmax", {"arch": "softmax", "train": {"max_epochs": 3}})
    with pytest.raises(
        FloatingPointError, match=r"model 'softmax' regime 'clean': non-finite loss in epoch 1"
    ):
        train_model(spec, regime_spec("clean", {"kind": "clean"}), data, seed=0)


def test_retraining_continues_from_the_best_model_on_train_and_validation():
    spec = _spec(input_keep=1.0, hidden_keep=1.0, hidden_scale=1.0)
    clean, data = regime_spec("clean", {"kind": "clean"}), _tensors()
    stage1_state, stage1 = train_model(spec, clean, data, seed=3)
    retrain = replace(spec, train=replace(spec.train, retrain=True, retrain_max_epochs=3))
    state, curves = train_model(retrain, clean, data, seed=3)
    first, second = [c for c in curves if c["stage"] == 1], [c for c in curves if c["stage"] == 2]
    assert [c["val_error"] for c in first] == [c["val_error"] for c in stage1]  # stage 1 unchanged
    assert 1 <= len(second) <= 3 and [c["epoch"] for c in second] == list(range(6, 6 + len(second)))
    assert all(c["lr"] <= 0.0615 and c["momentum"] == 0.694 for c in second)
    assert not all(torch.equal(state[k], stage1_state[k]) for k in state)  # it kept training
    assert second[-1]["val_error"] <= min(c["val_error"] for c in stage1)  # validation data is now trained on


@pytest.mark.parametrize("kind", ["noise_sign", "noise_uniform"])
def test_noise_controls_perturb_by_eps(kind):
    x = torch.rand(200, 784)
    delta = noise(x, regime_spec(kind, {"kind": kind, "eps": 0.25}))
    assert delta.abs().max() <= 0.25
    if kind == "noise_sign":
        assert set(delta.unique().tolist()) == {-0.25, 0.25}
    else:
        assert delta.abs().min() < 0.25 and abs(float(delta.mean())) < 0.01


def test_noise_objective_is_the_alpha_mixture():
    g = torch.Generator().manual_seed(8)
    x, y = torch.rand(16, 784, generator=g), torch.randint(0, 10, (16,), generator=g)
    regime = regime_spec("noise", {"kind": "noise_uniform", "alpha": 0.5, "eps": 0.25})
    model = _model()
    torch.manual_seed(1)
    objective(model, x, y, regime)
    torch.manual_seed(1)
    x_noisy = x + noise(x, regime)
    ref = _model()
    loss = 0.5 * F.cross_entropy(ref(x), y) + 0.5 * F.cross_entropy(ref(x_noisy), y)
    expected = torch.autograd.grad(loss, list(ref.parameters()))
    for p, e in zip(model.parameters(), expected, strict=True):
        assert torch.allclose(p.grad, e, atol=1e-6)


def test_l1_on_the_first_layer():
    model = _model()
    with torch.no_grad():
        model.linear.weight.normal_()
    model.linear.weight.grad = torch.zeros_like(model.linear.weight)
    penalty = add_l1_first_layer(model, 0.0025)
    assert penalty == pytest.approx(0.0025 * float(model.linear.weight.detach().abs().sum()))
    assert torch.equal(model.linear.weight.grad, 0.0025 * model.linear.weight.sign())
    plain = regime_spec("clean", {"kind": "clean"})
    l1 = regime_spec("l1", {"kind": "clean", "l1_first_layer": 0.01})
    spec = model_spec("softmax", {"arch": "softmax", "train": {"max_epochs": 3, "batch_size": 50}})
    sparse, _ = train_model(spec, l1, _tensors(), seed=0)
    dense, _ = train_model(spec, plain, _tensors(), seed=0)
    assert sparse["linear.weight"].abs().sum() < 0.8 * dense["linear.weight"].abs().sum()


def test_the_fgsm_part_of_the_monitoring_can_score_fewer_validation_examples():
    """``monitor_val_adv`` cuts the FGSM part only: the clean validation error (the paper's choice of the
    best epoch) still counts every monitored example."""
    from advbench.evaluation.scores import error_rate, fgsm_scores
    from advbench.training.loop import epoch_metrics

    g = torch.Generator().manual_seed(6)
    x, y = torch.rand(300, 784, generator=g), torch.randint(0, 10, (300,), generator=g)
    model = _model()
    with torch.no_grad():
        model.linear.weight.normal_(0, 0.05, generator=g)
    t = TrainSpec(monitor_train=100, monitor_val=None, monitor_val_adv=50, eval_batch_size=64)
    t = replace(t, monitor_eps=0.01)
    metrics = epoch_metrics(model, Tensors(x[:200], y[:200], x[200:], y[200:]), t)
    full = fgsm_scores(model, model, x[200:], y[200:], [0.0, 0.01], [False], 64)
    first = fgsm_scores(model, model, x[200:250], y[200:250], [0.0, 0.01], [False], 64)
    assert metrics["val_error"] == full[0]["error"] == error_rate(model, x[200:], y[200:], 64)["error"]
    assert metrics["val_adv_error"] == first[1]["error"] != full[1]["error"]
    same = epoch_metrics(model, Tensors(x[:200], y[:200], x[200:], y[200:]), replace(t, monitor_val_adv=None))
    assert same["val_adv_error"] == full[1]["error"] and same["val_error"] == metrics["val_error"]
