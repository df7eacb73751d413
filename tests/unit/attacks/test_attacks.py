"""Property tests every L-inf attack must pass (CONVENTIONS.md)."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from advbench.attacks import attack_mode, fgsm, fgsm_from_direction, input_gradient, linf_pgd


@pytest.fixture()
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(64, 20, generator=g), torch.randint(0, 3, (64,), generator=g)


def test_eps_zero_returns_input(small_mlp, batch):
    x, y = batch
    assert torch.equal(fgsm(small_mlp, x, y, 0.0), x)


@pytest.mark.parametrize("eps", [0.01, 0.1, 0.3])
@pytest.mark.parametrize("clip", [False, True])
def test_perturbation_within_eps_and_input_untouched(small_mlp, batch, eps, clip):
    x, y = batch
    before = x.clone()
    x_adv = fgsm(small_mlp, x, y, eps, clip=clip)
    assert torch.equal(x, before)
    assert (x_adv - x).abs().max() <= eps + 1e-6
    if clip:
        assert x_adv.min() >= 0 and x_adv.max() <= 1
    else:  # unclipped FGSM moves every coordinate with a nonzero gradient by exactly eps
        moved = (x_adv - x).abs()
        nonzero = input_gradient(small_mlp.eval(), x, y) != 0
        assert torch.allclose(moved[nonzero], torch.full_like(moved[nonzero], eps), atol=1e-6)


def test_batch_equals_per_example(small_mlp, batch):
    x, y = batch
    whole = fgsm(small_mlp, x, y, 0.1)
    single = torch.cat([fgsm(small_mlp, x[i : i + 1], y[i : i + 1], 0.1) for i in range(len(x))])
    assert torch.allclose(whole, single, atol=1e-6)


def test_linear_model_closed_form():
    """For logistic regression with labels +-1, FGSM is exactly x - eps * y * sign(w)."""
    torch.manual_seed(3)
    model = torch.nn.Linear(30, 1)
    x = torch.rand(50, 30)
    y = torch.randint(0, 2, (50,)).float() * 2 - 1

    def logistic(out, y, reduction="sum"):
        return F.softplus(-y * out.squeeze(1)).sum()

    x_adv = linf_pgd(model, x, y, 0.25, loss=logistic)
    expected = x - 0.25 * y[:, None] * model.weight.detach().sign()
    assert torch.allclose(x_adv, expected, atol=1e-6)


def test_mode_and_requires_grad_restored(small_mlp, batch):
    x, y = batch
    small_mlp.train()
    small_mlp[0].weight.requires_grad_(False)
    fgsm(small_mlp, x, y, 0.1)
    assert small_mlp.training
    assert not small_mlp[0].weight.requires_grad and small_mlp[0].bias.requires_grad
    assert all(p.grad is None for p in small_mlp.parameters())


def test_attack_runs_in_eval_mode(small_mlp, batch):
    """Dropout must be off during the attack: two runs give the same examples."""
    x, y = batch
    small_mlp.train()
    assert torch.equal(fgsm(small_mlp, x, y, 0.1), fgsm(small_mlp, x, y, 0.1))


def _error(model, x, y):
    with attack_mode(model), torch.no_grad():
        return (model(x).argmax(1) != y).float().mean().item()


def _trained_linear(x, y):
    model = torch.nn.Linear(x.shape[1], 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(200):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model


def test_error_grows_with_eps_and_beats_noise(batch):
    g = torch.Generator().manual_seed(2)
    centers = torch.rand(3, 20, generator=g)
    y = torch.randint(0, 3, (300,), generator=g)
    x = (centers[y] + 0.1 * torch.randn(300, 20, generator=g)).clamp(0, 1)
    model = _trained_linear(x, y)
    errors = [_error(model, fgsm(model, x, y, e), y) for e in (0.0, 0.05, 0.1, 0.2, 0.3)]
    assert errors == sorted(errors) and errors[-1] > errors[0] + 0.3
    noise = x + 0.2 * torch.randint(0, 2, x.shape, generator=g).float().mul(2).sub(1)
    assert _error(model, fgsm(model, x, y, 0.2), y) > _error(model, noise, y) + 0.2


def test_iterative_at_least_as_strong_as_fgsm(batch):
    g = torch.Generator().manual_seed(4)
    x, y = torch.rand(200, 20, generator=g), torch.randint(0, 3, (200,), generator=g)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(20, 32), torch.nn.Tanh(), torch.nn.Linear(32, 3))
    one = F.cross_entropy(model(fgsm(model, x, y, 0.1)), y).item()
    bim = F.cross_entropy(model(linf_pgd(model, x, y, 0.1, steps=10, step_size=0.02)), y).item()
    assert bim >= one - 1e-6


def test_direction_reuse_equals_fgsm(small_mlp, batch):
    x, y = batch
    with attack_mode(small_mlp):
        direction = input_gradient(small_mlp, x, y).sign()
    for eps, clip in [(0.05, False), (0.3, True)]:
        assert torch.equal(fgsm_from_direction(x, direction, eps, clip), fgsm(small_mlp, x, y, eps, clip))


def test_negative_eps_rejected(small_mlp, batch):
    with pytest.raises(ValueError, match="eps"):
        fgsm(small_mlp, *batch, -0.1)
