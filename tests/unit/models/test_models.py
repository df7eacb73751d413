"""The paper's maxout MLP: shapes, init, max column norm, pylearn2 dropout semantics."""

from __future__ import annotations

import pytest
import torch

from advbench.config.specs import model_spec
from advbench.models.architectures import (
    ScaledDropout,
    apply_max_col_norm,
    build,
    linear_layers,
    scaled_dropout,
)


def maxout(**kw):
    return model_spec("maxout", {"arch": "maxout", **kw})


def test_maxout_shapes_and_init():
    model = build(maxout(), torch.Generator().manual_seed(0))
    shapes = [tuple(layer.weight.shape) for layer in linear_layers(model)]
    assert shapes == [(1200, 784), (1200, 240), (10, 240)]
    assert model(torch.rand(7, 784)).shape == (7, 10)
    for layer in linear_layers(model):
        assert layer.weight.abs().max() <= 0.005 and torch.all(layer.bias == 0)


def test_maxout_takes_max_over_pieces():
    model = build(maxout(units=2, pieces=3, hidden_layers=1)).eval()
    maxout_layer = model.net[1]
    x = torch.rand(4, 784)
    z = maxout_layer.linear(x).view(4, 3, 2)  # piece-major: row p * units + u is piece p of unit u
    assert torch.equal(maxout_layer(x), z.max(dim=1).values)
    assert torch.equal(maxout_layer.unit_weights(), maxout_layer.linear.weight[:2])


def test_max_col_norm_caps_every_unit():
    model = build(maxout())
    with torch.no_grad():
        for layer in linear_layers(model):
            layer.weight.mul_(1000)
        small = linear_layers(model)[2].weight[0].clone() / 1e6
        linear_layers(model)[2].weight[0] = small
    apply_max_col_norm(model, 1.9365)
    for layer in linear_layers(model):
        assert layer.weight.norm(dim=1).max() <= 1.9365 + 1e-4
    assert torch.equal(linear_layers(model)[2].weight[0], small)  # below the cap: untouched


def test_scaled_dropout_follows_pylearn2():
    x = torch.ones(20000)
    keep_only = ScaledDropout(0.8, 1.0).train()
    out = keep_only(x)
    assert set(out.unique().tolist()) <= {0.0, 1.0}  # kept inputs are not rescaled
    assert abs(out.mean().item() - 0.8) < 0.02
    scaled = ScaledDropout(0.5, 2.0).train()(x)
    assert set(scaled.unique().tolist()) <= {0.0, 2.0}
    assert torch.equal(ScaledDropout(0.5, 2.0).eval()(x), x)


@pytest.mark.parametrize(("keep", "scale"), [(0.8, 1.0), (0.5, 2.0), (1.0, 1.25)])
def test_scaled_dropout_is_the_formula_bit_for_bit(keep, scale):
    """One multiply each way gives the values and input gradient of ``x * (u < keep) * scale``."""
    x = torch.randn(64, 300, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    x.data[0, :10] = 0.0  # zeros keep the sign of zero as the formula does
    grad = torch.randn(64, 300, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(3)
    ours = scaled_dropout(x, keep, scale)
    (ours_grad,) = torch.autograd.grad(ours, x, grad)
    torch.manual_seed(3)
    formula = x * (torch.rand_like(x) < keep) * scale
    (formula_grad,) = torch.autograd.grad(formula, x, grad)
    for a, b in ((ours, formula), (ours_grad, formula_grad)):
        assert torch.equal(a, b) and torch.equal(a.signbit(), b.signbit())
    dropped = (ours[1:] == 0).float().mean().item()  # row 0 holds the zeros set above
    assert abs(dropped - (1 - keep)) < 0.01


def test_softmax_regression_is_linear():
    model = build(model_spec("softmax", {"arch": "softmax"}))
    x = torch.rand(3, 784)
    assert torch.allclose(model(2 * x) - model(x), model(x) - model(torch.zeros_like(x)), atol=1e-6)
