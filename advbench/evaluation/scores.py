"""Metrics over batches: error and confidence under FGSM, for a model's own examples or transferred ones.

Adversarial examples are always scored by re-running the target model on them. "Confidence" is the paper's:
the predicted class's probability (under the model's head, see :mod:`advbench.models.heads`), averaged over
the
misclassified examples (``mean_conf_wrong``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from advbench.attacks import attack_mode, fgsm_from_direction, logits_and_input_gradient
from advbench.config.specs import LabelSource
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


def attack_labels(model: nn.Module, x: torch.Tensor, y: torch.Tensor, label_source: str) -> torch.Tensor:
    """The labels the attack ascends the loss of: the true ones (paper) or the model's predictions."""
    if label_source == LabelSource.TRUE:
        return y
    with attack_mode(model), torch.inference_mode():
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
    ``target`` is ``source`` that pass is the gradient's own forward.
    """
    tallies = {(e, c): Tally() for e in eps for c in clips}
    with attack_mode(target):
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            labels = attack_labels(source, xb, yb, label_source)
            with attack_mode(source):
                logits, grad = logits_and_input_gradient(source, xb, labels)
            direction = grad.sign()
            clean = probabilities(target, logits) if target is source else None
            with torch.inference_mode():
                for (e, c), tally in tallies.items():
                    x_adv = fgsm_from_direction(xb, direction, e, c)
                    if e == 0 and torch.equal(x_adv, xb):
                        clean = probabilities(target, target(xb)) if clean is None else clean
                        probs = clean
                    else:
                        probs = probabilities(target, target(x_adv))
                    tally.add(probs, yb, float((x_adv - xb).abs().max()))
    return [{"eps": float(e), "clipped": c, **t.row()} for (e, c), t in tallies.items()]
