"""One L-infinity projected-gradient core; FGSM is its one-step, no-random-start case (Foolbox style).

Inputs live in the paper's pixel space [0, 1]; ``clip`` optionally projects adversarial inputs back onto
that box (the paper does not clip). Attacks run in eval mode with parameter gradients off and restore the
model's state afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn

from advbench.models.heads import attack_loss

# called as loss(outputs, labels, reduction="sum"), as torch's functional losses are
Loss = Callable[..., torch.Tensor]


@contextlib.contextmanager
def attack_mode(model: nn.Module, eval_mode: bool = True) -> Iterator[nn.Module]:
    """Eval mode (unless ``eval_mode`` is False: the model's mode as it is) and ``requires_grad=False`` on
    parameters for the duration; both restored after."""
    was_training = model.training
    flags = [p.requires_grad for p in model.parameters()]
    if eval_mode:
        model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield model
    finally:
        model.train(was_training)
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)


def input_gradient(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: Loss | None = None
) -> torch.Tensor:
    """Gradient of the summed loss w.r.t. the input (summing keeps per-example gradients independent).

    The default loss is the model head's ``-log p_y`` (cross-entropy for a softmax).
    """
    return logits_and_input_gradient(model, x, y, loss)[1]


def logits_and_input_gradient(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: Loss | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's outputs on ``x`` (detached) and :func:`input_gradient`, from one forward pass."""
    x = (x.clone() if x.is_inference() else x.detach()).requires_grad_(True)  # a new leaf; no copy needed
    with torch.enable_grad():
        out = model(x)
        value = attack_loss(model, out, y, "sum") if loss is None else loss(out, y, reduction="sum")
        (grad,) = torch.autograd.grad(value, x)
    return out.detach(), grad


def linf_pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int = 1,
    step_size: float | None = None,
    random_start: bool = False,
    clip: tuple[float, float] | None = None,
    loss: Loss | None = None,
    generator: torch.Generator | None = None,
    train_mode: bool = False,
) -> torch.Tensor:
    """Maximize ``loss`` within the L-inf ball of radius ``eps`` around ``x`` by signed-gradient steps.

    FGSM: ``steps=1, step_size=eps``; BIM: ``steps>1``; PGD: ``random_start=True`` as well. A single step
    of at most ``eps`` from ``x`` cannot leave the ball, so FGSM skips the projection (and is exactly
    ``x + eps * sign(grad)``, as in torchattacks and ART). ``train_mode``: keep the model in training
    mode (dropout on, a new mask every step), as adversarial training may craft its examples.
    """
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    step_size = eps if step_size is None else step_size
    x0 = x.detach()
    x_adv = x0  # every step below makes a new tensor: x is never written to
    if random_start:
        # drawn on the CPU, where a seeded generator lives, whatever the device
        start = torch.empty(x0.shape).uniform_(-eps, eps, generator=generator)
        x_adv = x_adv + start.to(x0.device, x0.dtype)
        if clip is not None:  # the start, too, lies in the box (Madry et al.'s and Wong et al.'s code)
            x_adv = x_adv.clamp(*clip)
    project = random_start or steps > 1 or step_size > eps
    with attack_mode(model, eval_mode=not train_mode):
        for _ in range(steps):
            grad = input_gradient(model, x_adv, y, loss)
            x_adv = torch.add(x_adv, grad.sign_(), alpha=step_size)
            if project:
                x_adv = x0 + (x_adv - x0).clamp_(-eps, eps)
            if clip is not None:
                x_adv.clamp_(*clip)
    return x_adv.detach()


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, clip: bool = False) -> torch.Tensor:
    """The fast gradient sign method: ``x + eps * sign(grad_x J(x, y))``, optionally clipped to [0, 1]."""
    return linf_pgd(model, x, y, eps, steps=1, clip=(0.0, 1.0) if clip else None)


def least_likely_loss(model: nn.Module) -> Loss:
    """The loss whose ascent is targeted FGSM toward a target class (Kurakin et al.'s least-likely-class
    method): minus the head's ``-log p_target``, so the step goes *down* the target's cost."""

    def loss(out: torch.Tensor, target: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
        return -attack_loss(model, out, target, reduction)

    return loss


def least_likely(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The class the model finds least likely for each input (eval mode; no inference tensor, since the
    labels go into an autograd loss)."""
    with attack_mode(model), torch.no_grad():
        return model(x).argmin(dim=1)


def random_sign(
    x: torch.Tensor, eps: float, clip: bool = False, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The model-free baseline of the same L-inf size as FGSM: ``x + eps * s``, ``s`` a random sign per
    pixel."""
    bits = torch.randint(0, 2, x.shape, generator=generator, device="cpu").to(x.device, x.dtype)
    x_adv = x.detach() + eps * (2 * bits - 1)
    return x_adv.clamp(0.0, 1.0) if clip else x_adv


def pgd_restarts(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int,
    step_size: float,
    restarts: int,
    clip: tuple[float, float] | None,
    generator: torch.Generator,
) -> torch.Tensor:
    """PGD (random start) ``restarts`` times; per example the restart that fools the model, else the one of
    the highest loss (Madry et al.: an example counts as broken when any restart breaks it)."""
    best = x.detach()
    best_fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    best_loss = torch.full((len(x),), -float("inf"), device=x.device)
    for _ in range(restarts):
        x_adv = linf_pgd(model, x, y, eps, steps, step_size, True, clip, generator=generator)
        with attack_mode(model), torch.inference_mode():
            out = model(x_adv)
            loss, fooled = attack_loss(model, out, y, "none"), out.argmax(dim=1) != y
        # a fooled example ranks above every unfooled one; among equals, the higher loss
        better = (fooled & ~best_fooled) | ((fooled == best_fooled) & (loss > best_loss))
        best = torch.where(better[:, None], x_adv, best)
        best_fooled, best_loss = best_fooled | fooled, torch.where(better, loss, best_loss)
    return best


def fgsm_from_direction(x: torch.Tensor, direction: torch.Tensor, eps: float, clip: bool) -> torch.Tensor:
    """FGSM examples for many eps from one precomputed ``sign(grad)``: the gradient does not depend on eps.
    ``x + eps * direction`` in one pass (a sign times eps is exact, so fused or not it rounds once)."""
    x_adv = torch.add(x, direction, alpha=eps)
    return x_adv.clamp_(0.0, 1.0) if clip else x_adv


def linf_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """The largest absolute difference between two batches (0 for empty ones), from the difference's
    extremes: one reduction, no second tensor of the batch's size."""
    if a.numel() == 0:
        return 0.0
    low, high = (a - b).aminmax()
    return float(torch.maximum(-low, high))  # a NaN propagates, as through max()


def rotate(x: torch.Tensor, angle: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """Flat images of ``shape`` (channels, height, width) rotated about their centre by ``angle`` (radians,
    one per image), bilinear, zero outside the image; differentiable in ``angle``.

    Written with gathers rather than ``F.grid_sample``: the gradient reaches the angle through the
    interpolation weights only, and no op here lacks a deterministic CUDA backward (``grid_sample``'s raises
    under deterministic algorithms, which every advbench task asks for).
    """
    c, h, w = shape
    n = x.shape[0]
    images = x.reshape(n, c, h * w)
    rows, cols = torch.meshgrid(
        torch.arange(h, dtype=x.dtype, device=x.device),
        torch.arange(w, dtype=x.dtype, device=x.device),
        indexing="ij",
    )
    u, v = cols.reshape(1, -1) - (w - 1) / 2, rows.reshape(1, -1) - (h - 1) / 2
    cos, sin = angle.cos()[:, None], angle.sin()[:, None]
    # each output pixel takes the input at its position rotated back by the angle
    src_u, src_v = cos * u + sin * v + (w - 1) / 2, -sin * u + cos * v + (h - 1) / 2
    u0, v0 = src_u.detach().floor(), src_v.detach().floor()
    du, dv = src_u - u0, src_v - v0
    out = torch.zeros_like(images)
    for ou, ov, weight in (
        (0, 0, (1 - du) * (1 - dv)),
        (1, 0, du * (1 - dv)),
        (0, 1, (1 - du) * dv),
        (1, 1, du * dv),
    ):
        uu, vv = u0 + ou, v0 + ov
        inside = (uu >= 0) & (uu <= w - 1) & (vv >= 0) & (vv <= h - 1)
        index = (vv.clamp(0, h - 1) * w + uu.clamp(0, w - 1)).long()
        values = images.gather(2, index[:, None, :].expand(n, c, h * w))
        out = out + values * (weight * inside)[:, None, :]
    return out.reshape(n, -1)


def rotate_by_sign(
    x: torch.Tensor, sign: torch.Tensor, radians: float, shape: tuple[int, int, int]
) -> torch.Tensor:
    """:func:`rotate` by ``sign * radians`` per image, ``sign`` in {-1, 0, 1}: two rotations of the whole
    batch, one per direction, shared by all its images (their weights and indices computed once, not per
    image), and the images themselves where the sign is 0 (a rotation by 0 returns them unchanged)."""
    turned = {
        s: rotate(x, torch.tensor([s * radians], dtype=x.dtype, device=x.device), shape) for s in (1, -1)
    }
    per_image = sign.reshape(-1, *([1] * (x.dim() - 1)))
    return torch.where(per_image > 0, turned[1], torch.where(per_image < 0, turned[-1], x))


def rotation_direction(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, shape: tuple[int, int, int], side: float = 1e-3
) -> torch.Tensor:
    """Per image, the sign of the loss's derivative with respect to a rotation angle at 0 (§4: rotating x by
    a small angle in the direction of the gradient): +1, -1, or 0 where the derivative vanishes.

    At angle 0 every output pixel sits on a kink of the bilinear interpolation, so autograd's derivative
    there is one-sided. The derivative used is the mean of the two one-sided ones, taken by autograd at
    ``+side`` and ``-side`` radians (inside the first interpolation cell of every pixel of an image up to
    ~500 pixels across): the sign that decides which of two small opposite rotations raises the loss more.
    """
    n = len(x)
    angle = torch.full((2 * n,), side, dtype=x.dtype, device=x.device)
    angle[n:] = -side
    angle.requires_grad_(True)
    both = x.detach().repeat(2, 1)
    with attack_mode(model), torch.enable_grad():
        loss = attack_loss(model, model(rotate(both, angle, shape)), y.repeat(2), "sum")
        (grad,) = torch.autograd.grad(loss, angle)
    return (grad[:n] + grad[n:]).sign()
