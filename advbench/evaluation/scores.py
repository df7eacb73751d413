"""Metrics over batches: error and confidence under FGSM, for a model's own examples or transferred ones.

Adversarial examples are always scored by re-running the target model on them. "Confidence" is the paper's:
the predicted class's probability (under the model's head, see :mod:`advbench.models.heads`), averaged over
the misclassified examples (``mean_conf_wrong``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from advbench.attacks import (
    attack_mode,
    fgsm_from_direction,
    input_gradient,
    least_likely,
    least_likely_loss,
    linf_distance,
    linf_pgd,
    logits_and_input_gradient,
    pgd_restarts,
    random_sign,
)
from advbench.config.specs import LabelSource, Method
from advbench.models.heads import probabilities


@dataclass
class Tally:
    """Running counts for one (eps, clipped) cell."""

    n: int = 0
    n_wrong: int = 0
    conf_sum: float = 0.0
    conf_wrong_sum: float = 0.0
    max_perturbation: float = 0.0
    extra: dict = field(default_factory=dict)

    def add(self, probs: torch.Tensor, y: torch.Tensor, perturbation: float) -> None:
        conf, pred = probs.max(dim=1)
        wrong = pred != y
        self.n += len(y)
        self.n_wrong += int(wrong.sum())
        self.conf_sum += float(conf.double().sum())
        self.conf_wrong_sum += float(conf[wrong].double().sum())
        self.max_perturbation = max(self.max_perturbation, perturbation)

    def row(self) -> dict:
        return {
            "n": self.n,
            "n_wrong": self.n_wrong,
            "error": self.n_wrong / self.n,
            "mean_conf_wrong": self.conf_wrong_sum / self.n_wrong if self.n_wrong else None,
            "mean_conf": self.conf_sum / self.n,
            "max_perturbation": self.max_perturbation,
        }


def error_rate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> dict:
    """The clean cell of :func:`fgsm_scores` alone (no gradient): eval-mode error and confidences."""
    tally = Tally()
    with attack_mode(model), torch.inference_mode():
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            tally.add(probabilities(model, model(xb)), yb, 0.0)
    return tally.row()


def attack_labels(model: nn.Module, x: torch.Tensor, y: torch.Tensor, label_source: str) -> torch.Tensor:
    """The labels the attack ascends the loss of: the true ones (paper) or the model's predictions."""
    if label_source == LabelSource.TRUE:
        return y
    with attack_mode(model), torch.no_grad():  # not inference mode: the labels go into an autograd loss
        return model(x).argmax(dim=1)


def fgsm_scores(
    source: nn.Module,
    target: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: Sequence[float],
    clips: Sequence[bool],
    batch_size: int,
    label_source: str = "true",
) -> list[dict]:
    """FGSM examples crafted on ``source`` and scored on ``target`` for every (eps, clipped) cell.

    The sign of the input gradient does not depend on eps, so it is computed once per batch. Cells whose
    examples are the clean inputs (eps 0, clipped or not) share one clean forward pass of ``target``; when
    ``target`` is ``source`` that pass is the gradient's own forward. Every row also counts the examples
    whose input gradient is zero everywhere (FGSM leaves them where they are) or not finite.
    """
    tallies = {(e, c): Tally() for e in eps for c in clips}
    zero = nonfinite = 0
    with attack_mode(target):
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            labels = attack_labels(source, xb, yb, label_source)
            with attack_mode(source):
                logits, grad = logits_and_input_gradient(source, xb, labels)
            direction = grad.sign()
            # both counts from each row's extremes: a row is all zeros where they are, and holds a NaN or an
            # infinity where one of them does (a NaN propagates to both); amin and amax read the gradient
            # without writing a tensor of its size
            low, high = grad.amin(dim=1), grad.amax(dim=1)
            finite = torch.isfinite(low) & torch.isfinite(high)
            zero += int(((low == 0) & (high == 0)).sum())
            nonfinite += int((~finite).sum())
            clean = probabilities(target, logits) if target is source else None
            with torch.inference_mode():
                for (e, c), tally in tallies.items():
                    # unclipped at eps 0 the examples are the inputs (x + 0 * a finite sign is x)
                    same = e == 0 and not c and bool(finite.all())
                    x_adv = xb if same else fgsm_from_direction(xb, direction, e, c)
                    if same or (e == 0 and torch.equal(x_adv, xb)):
                        clean = probabilities(target, target(xb)) if clean is None else clean
                        probs = clean
                    else:
                        probs = probabilities(target, target(x_adv))
                    tally.add(probs, yb, 0.0 if same else linf_distance(x_adv, xb))
    gradients = {"n_zero_grad": zero, "n_nonfinite_grad": nonfinite}
    return [{"eps": float(e), "clipped": c, **t.row(), **gradients} for (e, c), t in tallies.items()]


@dataclass(frozen=True)
class MultiStep:
    """BIM and PGD: ``steps`` signed-gradient steps of ``step_size * eps`` each (None: Madry et al.'s
    2.5 / steps, which lets a walk reach the ball's edge from anywhere inside), PGD with ``restarts``
    random starts."""

    steps: int = 20
    step_size: float | None = None
    restarts: int = 1

    def step(self, eps: float) -> float:
        return (2.5 / self.steps if self.step_size is None else self.step_size) * eps


def adversarial_examples(
    method: str,
    source: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    eps: float,
    clip: bool,
    multistep: MultiStep,
    generator: torch.Generator,
) -> torch.Tensor:
    """One batch of a multi-step method's examples crafted on ``source``: ``bim`` (no random start) or
    ``pgd`` (random starts)."""
    box = (0.0, 1.0) if clip else None
    steps, size = multistep.steps, multistep.step(eps)
    if method == Method.BIM:
        return linf_pgd(source, x, labels, eps, steps, size, clip=box)
    if method == Method.PGD:
        return pgd_restarts(source, x, labels, eps, steps, size, multistep.restarts, box, generator)
    raise ValueError(f"not a multi-step attack: {method!r}; expected bim or pgd")


def single_step_direction(
    method: str, source: nn.Module, x: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """The sign a single-step method other than FGSM moves each pixel by, for every eps at once:
    ``fgsm_ll`` down the loss of the least likely class, ``random_sign`` at random."""
    if method == Method.RANDOM_SIGN:
        return random_sign(torch.zeros_like(x), 1.0, generator=generator)
    if method == Method.FGSM_LL:
        with attack_mode(source):
            target = least_likely(source, x)
            return input_gradient(source, x, target, least_likely_loss(source)).sign()
    raise ValueError(f"not a single-step attack: {method!r}; expected fgsm_ll or random_sign")


def method_scores(
    source: nn.Module,
    target: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    method: str,
    eps: Sequence[float],
    clips: Sequence[bool],
    batch_size: int,
    label_source: str = "true",
    multistep: MultiStep = MultiStep(),
    generator: torch.Generator | None = None,
) -> list[dict]:
    """:func:`fgsm_scores` for any method: its examples crafted on ``source`` for every (eps, clipped)
    cell, scored on ``target``. ``fgsm`` is :func:`fgsm_scores` itself, ``fgsm_pred`` the same on the
    model's predictions; a single-step method's sign is one per batch for the whole grid; a multi-step
    method's examples are not one direction scaled by eps, so each of its cells crafts its own."""
    if method in (Method.FGSM, Method.FGSM_PRED):
        on = LabelSource.PREDICTED if method == Method.FGSM_PRED else label_source
        return fgsm_scores(source, target, x, y, eps, clips, batch_size, on)
    generator = torch.Generator().manual_seed(0) if generator is None else generator
    tallies = {(e, c): Tally() for e in eps for c in clips}
    single = method in (Method.FGSM_LL, Method.RANDOM_SIGN)
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        direction = single_step_direction(method, source, xb, generator) if single else None
        # the single-step methods here pick their own target (least likely class) or none: no forward pass
        labels = yb if single else attack_labels(source, xb, yb, label_source)
        for (e, c), tally in tallies.items():
            if direction is not None:
                x_adv = fgsm_from_direction(xb, direction, e, c)
            else:
                x_adv = adversarial_examples(method, source, xb, labels, e, c, multistep, generator)
            with attack_mode(target), torch.inference_mode():
                probs = probabilities(target, target(x_adv))
            tally.add(probs, yb, linf_distance(x_adv, xb))
    return [{"eps": float(e), "clipped": c, **t.row()} for (e, c), t in tallies.items()]
