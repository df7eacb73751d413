"""What a model looks at: input-gradient sensitivity maps and SmoothGrad (Smilkov et al. 2017), and how
much a map looks like its input (Etmann et al. 2019's alignment, as a cosine).

The map of an input ``x`` with label ``y`` is the gradient of ``log p_y`` (the evidence for the label, minus
the paper's attack cost, :func:`~advbench.attacks.input_gradient`): positive where brightening a pixel
raises the label's probability. SmoothGrad averages it over ``samples`` copies of ``x`` with Gaussian noise
of standard deviation ``noise * (max(x) - min(x))`` per input, Smilkov et al.'s parametrization (their
10-20% noise, 50 samples). Pure functions of models and tensors; the noise comes from ``generator``, so a
task seeded by its key draws the same noise for every model it compares.
"""

from __future__ import annotations

import torch
from torch import nn

from advbench.attacks import attack_mode, input_gradient


def gradient_map(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``grad_x log p_y(x)`` per example (eval mode; the model's state restored after)."""
    with attack_mode(model):
        return -input_gradient(model, x, y)


def smoothgrad(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    samples: int,
    noise: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """SmoothGrad: the mean of :func:`gradient_map` over ``samples`` noisy copies of each input, noise
    N(0, sigma^2) with ``sigma = noise * (max(x) - min(x))`` per input. The noise is drawn on the CPU,
    sample after sample, each of the batch's shape, whatever the device."""
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    flat = x.flatten(1)
    sigma = noise * (flat.max(dim=1).values - flat.min(dim=1).values)
    sigma = sigma.reshape(-1, *([1] * (x.dim() - 1)))
    total = torch.zeros_like(x)
    for _ in range(samples):
        z = torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
        total += gradient_map(model, x + sigma * z, y)
    return total / samples


def alignment(x: torch.Tensor, saliency: torch.Tensor) -> torch.Tensor:
    """Per example, the cosine between the input and its map (1: the map is the image, scaled; 0: none of
    it; an all-zero map counts 0)."""
    a, b = x.flatten(1).double(), saliency.flatten(1).double()
    norms = a.norm(dim=1) * b.norm(dim=1)
    dots = (a * b).sum(dim=1)
    return torch.where(norms > 0, dots / norms.clamp_min(torch.finfo(torch.float64).tiny), 0.0)


def saliency_summary(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    samples: int,
    noise: float,
    batch_size: int,
    generator: torch.Generator,
) -> dict:
    """Over the examples ``x``: the mean alignment of the gradient and of the SmoothGrad maps with their
    inputs, and the mean cosine between the two maps (how much the smoothing changes them)."""
    sums = {"gradient_alignment": 0.0, "smoothgrad_alignment": 0.0, "gradient_smoothgrad_cosine": 0.0}
    for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True):
        grad = gradient_map(model, xb, yb)
        smooth = smoothgrad(model, xb, yb, samples, noise, generator)
        cells = {
            "gradient_alignment": alignment(xb, grad),
            "smoothgrad_alignment": alignment(xb, smooth),
            "gradient_smoothgrad_cosine": alignment(grad, smooth),
        }
        for key, values in cells.items():
            sums[key] += float(values.sum())
    return {"n": len(x), "samples": samples, "noise": float(noise)} | {
        key: total / len(x) for key, total in sums.items()
    }
