"""§5's closed-form adversarial objective of a linear model (regime kind ``worst_case``)."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
from conftest import REPO

from advbench.config.loading import load_config
from advbench.config.specs import ConfigError, model_spec, regime_spec
from advbench.config.validation import validate_config
from advbench.models.architectures import build
from advbench.training.loop import objective, worst_case_logits

LOGISTIC = {"arch": "logistic", "classes": [3, 7], "max_col_norm": None}


def regime(kind: str, **kw):
    return regime_spec(kind, {"kind": kind, "alpha": 0.5, "eps": 0.25, **kw})


def param_grads(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, spec) -> list[torch.Tensor]:
    model.zero_grad()
    objective(model, x, y, spec)
    return [p.grad.clone() for p in model.parameters()]


def batch(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 784, generator=g), torch.randint(0, 2, (n,), generator=g)


@pytest.mark.parametrize("grad_in_train_mode", [True, False])
def test_logistic_worst_case_gradients_equal_fgsm_adversarial_trainings(grad_in_train_mode):
    torch.manual_seed(0)
    model = build(model_spec("logistic37", LOGISTIC))
    with torch.no_grad():  # weights away from zero, so sign(w) is FGSM's direction everywhere
        model.linear.weight.normal_(0, 0.05)
    x, y = batch()
    fgsm = param_grads(model, x, y, regime("fgsm", grad_in_train_mode=grad_in_train_mode))
    closed = param_grads(model, x, y, regime("worst_case"))
    for a, b in zip(fgsm, closed, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    clean = param_grads(model, x, y, regime("clean"))
    assert not torch.allclose(clean[0], closed[0])  # the adversarial term changes the step


def test_logistic_weights_after_training_equal_fgsm_adversarial_trainings():
    """Fifty SGD steps from one init on the same batches: FGSM adversarial training and the closed form end
    at the same weights (up to float rounding)."""
    torch.manual_seed(1)
    start = build(model_spec("logistic37", LOGISTIC))
    models = {kind: copy.deepcopy(start) for kind in ("fgsm", "worst_case")}
    for step in range(50):
        x, y = batch(seed=step)
        for kind, model in models.items():
            model.zero_grad()
            objective(model, x, y, regime(kind))
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.1 * p.grad
    a, b = (dict(m.named_parameters()) for m in models.values())
    moved = (a["linear.weight"] - start.linear.weight).abs().max()
    assert moved > 1e-2
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-6)


def tiny_softmax() -> torch.nn.Module:
    torch.manual_seed(2)
    return build(model_spec("softmax", {"arch": "softmax", "classes": [0, 1, 2], "max_col_norm": None}))


def test_pairwise_is_the_exact_worst_case_and_the_bound_is_above_it():
    """Against every wrong class alone, the largest margin over the eps ball's vertices is the pairwise
    logits' margin; the paper's bound (every logit moved at once) is never below it."""
    model = tiny_softmax()
    w = model.linear.weight
    x, y, eps = torch.rand(5, w.shape[1]), torch.tensor([0, 1, 2, 0, 1]), 0.1
    with torch.no_grad():
        logits = model(x)
        pairwise = worst_case_logits(model, logits, y, regime("worst_case", pairwise=True, eps=eps))
        bound = worst_case_logits(model, logits, y, regime("worst_case", eps=eps))
    # the margin z_k - z_y is linear in the input: its maximum over the ball is at eps * sign(w_k - w_y)
    for i, k in itertools.product(range(len(y)), range(3)):
        t = int(y[i])
        if k == t:
            continue
        best = eps * torch.sign(w[k] - w[t]).detach()
        with torch.no_grad():
            margin = model(x[i : i + 1] + best)[0]
        exact = float(margin[k] - margin[t])
        assert float(pairwise[i, k] - pairwise[i, t]) == pytest.approx(exact, abs=1e-5)
        assert float(bound[i, k] - bound[i, t]) >= exact - 1e-5


def test_both_forms_agree_for_logistic_regression():
    model = build(model_spec("logistic37", LOGISTIC))
    x, y = batch(8)
    logits = model(x)
    torch.testing.assert_close(
        worst_case_logits(model, logits, y, regime("worst_case")).diff(dim=1),
        worst_case_logits(model, logits, y, regime("worst_case", pairwise=True)).diff(dim=1),
    )


def test_worst_case_needs_a_linear_model():
    config = load_config(REPO / "config.yaml")
    config["regimes"]["closed_form"] = {"kind": "worst_case"}
    config["runs"].append({"model": "maxout", "regime": "closed_form"})
    with pytest.raises(ConfigError, match=r"regime 'closed_form' .*needs a linear model.*'maxout' has arch"):
        validate_config(config)
    config["runs"][-1]["model"] = "softmax"
    config["regimes"]["closed_form"]["clip"] = True
    with pytest.raises(ConfigError, match=r"regimes\.closed_form\.clip: the closed-form objective has no"):
        validate_config(config)
