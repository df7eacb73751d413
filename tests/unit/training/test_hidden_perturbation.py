"""§6's where-to-perturb: FGSM adversarial training with the perturbation on a hidden layer."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import REPO

from advbench.config.loading import load_config
from advbench.config.specs import ConfigError, model_spec, regime_spec
from advbench.config.validation import validate_config
from advbench.models.architectures import build
from advbench.models.heads import train_loss
from advbench.training.loop import objective


def maxout():
    torch.manual_seed(0)
    model = build(model_spec("maxout", {"arch": "maxout", "units": 20, "pieces": 3, "init_range": 0.05}))
    return model.eval()  # dropout off: the passes are deterministic and comparable


def regime(perturb: str, eps: float = 0.25):
    return regime_spec("r", {"kind": "fgsm", "alpha": 0.5, "eps": eps, "perturb": perturb})


def batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(32, 784, generator=g), torch.randint(0, 10, (32,), generator=g)


def grads(model, x, y, spec):
    model.zero_grad()
    losses = objective(model, x, y, spec)
    return losses, {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("perturb", ["hidden1", "hidden2"])
def test_zero_eps_is_the_clean_objective(perturb):
    model, (x, y) = maxout(), batch()
    clean_losses, clean = grads(model, x, y, regime_spec("c", {"kind": "clean"}))
    losses, hidden = grads(model, x, y, regime(perturb, eps=0.0))
    torch.testing.assert_close(losses, clean_losses)
    for name in clean:
        torch.testing.assert_close(hidden[name], clean[name], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("layer", [1, 2])
def test_the_perturbation_is_fgsm_on_the_layers_activations(layer):
    model, (x, y) = maxout(), batch()
    below, above = model.split(layer)
    torch.testing.assert_close(above(below(x)), model(x))
    h = below(x).detach().requires_grad_(True)
    clean = train_loss(model, above(h), y, "none")
    clean.mean().backward()
    adv = train_loss(model, above(h + 0.25 * h.grad.sign()), y, "none").detach()
    losses, g = grads(model, x, y, regime(f"hidden{layer}"))
    torch.testing.assert_close(losses, 0.5 * clean.detach() + 0.5 * adv)
    assert adv.mean() > clean.mean()  # the perturbation raises the loss
    assert g["net.1.linear.weight"].abs().sum() > 0  # the first layer learns from the adversarial term too


def test_hidden_perturbation_differs_from_the_inputs():
    model, (x, y) = maxout(), batch()
    inputs, _ = grads(model, x, y, regime("input"))
    hidden, _ = grads(model, x, y, regime("hidden1"))
    assert not torch.allclose(inputs, hidden)


def test_a_hidden_layer_to_perturb_needs_fgsm_and_a_maxout_that_has_it():
    config = load_config(REPO / "config.yaml")
    config["regimes"]["h3"] = {"kind": "fgsm", "perturb": "hidden2"}
    bad = copy.deepcopy(config)
    bad["runs"].append({"model": "softmax", "regime": "h3"})
    with pytest.raises(ConfigError, match=r"regime 'h3' perturbs hidden layer 2; model 'softmax'"):
        validate_config(bad)
    bad = copy.deepcopy(config)
    bad["regimes"]["h3"]["kind"] = "noise_sign"
    bad["runs"].append({"model": "maxout", "regime": "h3"})
    with pytest.raises(ConfigError, match=r"regimes\.h3\.perturb: 'hidden2' needs kind fgsm"):
        validate_config(bad)
    config["runs"].append({"model": "maxout", "regime": "h3"})
    validate_config(config)
