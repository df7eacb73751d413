"""Output heads: how a model's outputs become probabilities, a training loss and an attack cost.

``softmax`` (the paper's default): outputs are logits of one softmax. ``sigmoid`` (App. A, F22): one
independent sigmoid per class. ``rbf`` (§7, F14): outputs are log-probabilities
``-(x-mu_i)^T diag(beta_i) (x-mu_i)`` of independent, unnormalized units in (0, 1]. Independent heads train
with a per-class binary likelihood; every head is attacked with the paper's cost ``-log p_y``. A model names
its head in a ``head`` attribute.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

HEADS = ("softmax", "sigmoid", "rbf")


def head_of(model: nn.Module) -> str:
    return getattr(model, "head", "softmax")


def probabilities(model: nn.Module, out: torch.Tensor) -> torch.Tensor:
    """Per-class probabilities; they sum to one only for ``softmax``."""
    head = head_of(model)
    if head == "softmax":
        return torch.softmax(out, dim=1)
    if head == "sigmoid":
        return torch.sigmoid(out)
    return out.exp()


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return values
    return values.sum() if reduction == "sum" else values.mean()


def train_loss(model: nn.Module, out: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy for ``softmax``; for independent heads ``-log p_y - sum_{i != y} log(1 - p_i)``."""
    head = head_of(model)
    if head == "softmax":
        return F.cross_entropy(out, y, reduction=reduction)
    target = F.one_hot(y, out.shape[1]).to(out.dtype)
    if head == "sigmoid":
        per_class = F.binary_cross_entropy_with_logits(out, target, reduction="none")
    else:  # rbf: out = log p, clamped below 0 so that log(1 - p) stays finite
        log_p = out.clamp(max=-1e-6)
        per_class = -(target * log_p + (1 - target) * torch.log(-torch.expm1(log_p)))
    return _reduce(per_class.sum(dim=1), reduction)


def attack_loss(
    model: nn.Module, out: torch.Tensor, y: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """The cost FGSM ascends: ``-log p_y`` under the model's head (cross-entropy for ``softmax``)."""
    head = head_of(model)
    if head == "softmax":
        return F.cross_entropy(out, y, reduction=reduction)
    picked = out.gather(1, y[:, None]).squeeze(1)
    return _reduce(F.softplus(-picked) if head == "sigmoid" else -picked, reduction)
