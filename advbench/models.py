"""Model registry: the paper's shallow softmax and logistic regressions, its maxout MLP (pylearn2
``mnist_pi.yaml``), the shallow RBF network of §7, and ensembles of trained models.

Inputs are flat pixels in [0, 1]. Every model returns logits; dropout follows pylearn2's convention of an
explicit keep probability and a scale for kept units (input: keep .8, scale 1 = no rescaling; hidden: keep .5,
scale 2), active only in training mode. A model's ``head`` attribute says how its outputs become probabilities
(:mod:`advbench.heads`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from advbench.config import ModelSpec

N_INPUTS, N_CLASSES = 784, 10


def n_outputs(spec: ModelSpec) -> int:
    """Ten classes, or as many as the model's ``classes`` subset names."""
    return len(spec.classes) if spec.classes else N_CLASSES


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
        layers += [ScaledDropout(spec.hidden_keep, spec.hidden_scale), nn.Linear(n_in, n_outputs(spec))]
        self.net = nn.Sequential(*layers)
        self.head = spec.output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SoftmaxRegression(nn.Module):
    """The paper's shallow softmax regression: one linear layer to 10 logits."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.linear = nn.Linear(N_INPUTS, n_outputs(spec))
        self.head = spec.output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class LogisticRegression(nn.Module):
    """Binary logistic regression (§5, Fig. 2): ``P(y=1|x) = sigmoid(w.x + b)`` on two classes.

    It returns the logits ``[0, w.x + b]``, whose softmax is exactly ``[1 - sigmoid, sigmoid]``, so the
    cross-entropy is the logistic loss and FGSM is exactly ``x - eps * y * sign(w)`` with y = -1 / +1.
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        if n_outputs(spec) != 2:
            raise ValueError(f"model {spec.name!r}: arch 'logistic' needs exactly two classes")
        self.linear = nn.Linear(N_INPUTS, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.linear(x)
        return torch.cat([torch.zeros_like(z), z], dim=1)


class RBFNetwork(nn.Module):
    """The shallow RBF network of §7: ``p(y=i|x) = exp(-(x - mu_i)^T diag(beta_i) (x - mu_i))``, one
    independent unit per class. It returns the log-probabilities; ``beta = softplus(rho) >= 0``.

    Not stated by the paper: the initialization (mu = ``rbf_mu_init`` everywhere, beta = ``rbf_beta_init``).
    """

    head = "rbf"

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        shape = (n_outputs(spec), N_INPUTS)
        self.mu = nn.Parameter(torch.full(shape, spec.rbf_mu_init))
        rho = math.log(math.expm1(spec.rbf_beta_init))  # inverse softplus
        self.rho = nn.Parameter(torch.full(shape, rho))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta = nn.functional.softplus(self.rho)
        # sum_j beta_ij (x_j - mu_ij)^2, expanded into matrix products
        dist = (x * x) @ beta.T - 2 * x @ (beta * self.mu).T + (beta * self.mu**2).sum(dim=1)
        return -dist.clamp_min(0.0)


class Ensemble(nn.Module):
    """Members' softmax probabilities averaged (§9); returns the log of the average, so the softmax of the
    output is the ensemble's probability and cross-entropy is ``-log`` of it."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_probs = torch.stack([torch.log_softmax(m(x), dim=1) for m in self.members])
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))


REGISTRY: dict[str, Callable[[ModelSpec], nn.Module]] = {
    "softmax": SoftmaxRegression,
    "logistic": LogisticRegression,
    "maxout": MaxoutMLP,
    "rbf": RBFNetwork,
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
