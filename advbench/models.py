"""Model registry: the paper's shallow softmax regression and its maxout MLP (pylearn2 ``mnist_pi.yaml``).

Inputs are flat pixels in [0, 1]. Every model returns logits; dropout follows pylearn2's convention of an
explicit keep probability and a scale for kept units (input: keep .8, scale 1 = no rescaling; hidden: keep .5,
scale 2), active only in training mode.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from advbench.config import ModelSpec

N_INPUTS, N_CLASSES = 784, 10


class ScaledDropout(nn.Module):
    """Keep each unit with probability ``keep`` and multiply kept units by ``scale`` (training only)."""

    def __init__(self, keep: float, scale: float) -> None:
        super().__init__()
        self.keep, self.scale = keep, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or (self.keep >= 1.0 and self.scale == 1.0):
            return x
        mask = torch.rand_like(x) < self.keep
        return x * mask * self.scale


class Maxout(nn.Module):
    """A linear layer of ``units * pieces`` outputs followed by a max over each unit's pieces."""

    def __init__(self, n_in: int, units: int, pieces: int) -> None:
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = nn.Linear(n_in, units * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.linear(x).view(x.shape[0], self.units, self.pieces)
        return z.amax(dim=2)


class MaxoutMLP(nn.Module):
    """784 -> maxout (units x pieces) x layers -> softmax logits, with dropout before every layer."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        n_in = N_INPUTS
        for i in range(spec.hidden_layers):
            keep, scale = (
                (spec.input_keep, spec.input_scale) if i == 0 else (spec.hidden_keep, spec.hidden_scale)
            )
            layers += [ScaledDropout(keep, scale), Maxout(n_in, spec.units, spec.pieces)]
            n_in = spec.units
        layers += [ScaledDropout(spec.hidden_keep, spec.hidden_scale), nn.Linear(n_in, N_CLASSES)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SoftmaxRegression(nn.Module):
    """The paper's shallow softmax regression: one linear layer to 10 logits."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.linear = nn.Linear(N_INPUTS, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


REGISTRY: dict[str, Callable[[ModelSpec], nn.Module]] = {
    "softmax": SoftmaxRegression,
    "maxout": MaxoutMLP,
}


def build(spec: ModelSpec, generator: torch.Generator | None = None) -> nn.Module:
    """Instantiate ``spec``'s architecture with pylearn2's init: weights U(-r, r), biases 0."""
    if spec.arch not in REGISTRY:
        raise ValueError(
            f"model {spec.name!r}: unknown arch {spec.arch!r}; expected one of {sorted(REGISTRY)}"
        )
    model = REGISTRY[spec.arch](spec)
    with torch.no_grad():
        for layer in linear_layers(model):
            layer.weight.uniform_(-spec.init_range, spec.init_range, generator=generator)
            layer.bias.zero_()
    return model


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


@torch.no_grad()
def apply_max_col_norm(model: nn.Module, max_norm: float | None) -> None:
    """Cap the L2 norm of every unit's incoming weight vector (pylearn2 ``max_col_norm``)."""
    if max_norm is None:
        return
    for layer in linear_layers(model):
        norms = layer.weight.norm(dim=1, keepdim=True)
        layer.weight.mul_(torch.clamp(max_norm / norms.clamp_min(1e-12), max=1.0))
