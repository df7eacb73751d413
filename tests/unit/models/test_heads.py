"""Output heads and the models beyond softmax: logistic regression (F4), the RBF network (F14), independent
sigmoids (F22) and ensembles (F20), each checked against the paper's definition written out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from advbench.attacks import fgsm
from advbench.config.specs import model_spec
from advbench.data.inputs import restrict_classes
from advbench.models.architectures import Ensemble, build
from advbench.models.heads import attack_loss, probabilities, train_loss


def spec(arch: str, **kw):
    return model_spec(arch, {"arch": arch, **kw})


@pytest.fixture()
def x() -> torch.Tensor:
    return torch.rand(16, 784, generator=torch.Generator().manual_seed(0))


def test_logistic_fgsm_is_minus_eps_y_sign_w(x):
    model = build(spec("logistic", classes=[3, 7]), torch.Generator().manual_seed(1)).eval()
    with torch.no_grad():  # small weights: no example's sigmoid saturates to a gradient of exactly zero
        model.linear.weight.normal_(std=0.01, generator=torch.Generator().manual_seed(2))
    y = torch.arange(16) % 2  # index 0 = digit 3 (y = -1), index 1 = digit 7 (y = +1)
    y_pm = 2 * y - 1
    w = model.linear.weight[0]
    expected = x - 0.25 * y_pm[:, None].float() * w.sign()
    assert torch.allclose(fgsm(model, x, y, 0.25), expected, atol=1e-6)


def test_logistic_softmax_is_the_sigmoid(x):
    model = build(spec("logistic", classes=[3, 7])).eval()
    z = model.linear(x)[:, 0]
    assert torch.allclose(torch.softmax(model(x), dim=1)[:, 1], torch.sigmoid(z), atol=1e-6)


def test_logistic_needs_two_classes():
    with pytest.raises(ValueError, match="exactly two classes"):
        build(spec("logistic"))


def test_rbf_units_follow_section_7(x):
    model = build(spec("rbf", rbf_mu_init=0.3, rbf_beta_init=0.02))
    with torch.no_grad():
        model.mu.add_(0.1 * torch.randn_like(model.mu))
        model.rho.add_(0.5 * torch.randn_like(model.rho))
    beta = F.softplus(model.rho)
    explicit = torch.stack([-(beta[i] * (x - model.mu[i]) ** 2).sum(dim=1) for i in range(10)], dim=1)
    out = model(x)
    assert torch.allclose(out, explicit, rtol=1e-4, atol=1e-3)
    p = probabilities(model, out)
    assert (p > 0).all() and (p <= 1).all()  # independent, unnormalized units


def test_rbf_loss_is_the_per_class_binary_likelihood(x):
    model = build(spec("rbf", rbf_beta_init=0.005))
    y = torch.arange(16) % 10
    out = model(x)
    p = out.exp()
    onehot = F.one_hot(y, 10).bool()
    expected = -(torch.log(p[onehot]) + torch.log(1 - p[~onehot].view(16, 9)).sum(dim=1))
    assert torch.allclose(train_loss(model, out, y, "none"), expected, rtol=1e-4)
    assert torch.allclose(attack_loss(model, out, y, "none"), -torch.log(p[onehot]), rtol=1e-5)


def test_sigmoid_head_is_independent_per_class(x):
    model = build(spec("maxout", output="sigmoid", units=8, pieces=2)).eval()
    y = torch.arange(16) % 10
    out = model(x)
    assert torch.allclose(probabilities(model, out), torch.sigmoid(out))
    bce = F.binary_cross_entropy_with_logits(out, F.one_hot(y, 10).float(), reduction="none").sum(dim=1)
    assert torch.allclose(train_loss(model, out, y, "none"), bce, atol=1e-6)
    log_p_y = torch.log(torch.sigmoid(out.gather(1, y[:, None]).squeeze(1)))
    assert torch.allclose(attack_loss(model, out, y, "none"), -log_p_y, atol=1e-5)


def test_softmax_head_losses_are_cross_entropy(x):
    model = build(spec("softmax"))
    y = torch.arange(16) % 10
    out = model(x)
    ce = F.cross_entropy(out, y)
    assert torch.allclose(train_loss(model, out, y), ce) and torch.allclose(attack_loss(model, out, y), ce)


def test_ensemble_averages_member_probabilities(x):
    members = [
        build(spec("maxout", units=8, pieces=2), torch.Generator().manual_seed(s)).eval() for s in range(3)
    ]
    for m in members:
        with torch.no_grad():
            for p in m.parameters():
                p.normal_(std=0.3)
    ensemble = Ensemble(members).eval()
    mean_prob = torch.stack([torch.softmax(m(x), dim=1) for m in members]).mean(dim=0)
    assert torch.allclose(torch.softmax(ensemble(x), dim=1), mean_prob, atol=1e-6)
    assert torch.allclose(ensemble(x).exp().sum(dim=1), torch.ones(16), atol=1e-5)


def test_restrict_classes_relabels_in_order():
    data = {"x_train": np.arange(6)[:, None], "y_train": np.array([7, 3, 1, 3, 7, 0])}
    out = restrict_classes(data, (3, 7))
    assert out["x_train"].ravel().tolist() == [0, 1, 3, 4]
    assert out["y_train"].tolist() == [1, 0, 0, 1]
    assert restrict_classes(data, None) is data
