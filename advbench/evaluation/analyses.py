"""The paper's analyses beyond error rates: cross-model agreement (§8), logits along the FGSM direction
(§8, Fig. 4), rubbish-class noise inputs (App. A) and rotations in the gradient's direction (§4). Pure
functions of models and tensors."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from advbench.attacks import (
    attack_mode,
    fgsm,
    input_gradient,
    linf_distance,
    rotate_by_sign,
    rotation_direction,
)
from advbench.evaluation.scores import Tally
from advbench.models.heads import probabilities


@torch.inference_mode()
def predictions(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    with attack_mode(model):
        return torch.cat([model(xb).argmax(dim=1) for xb in x.split(batch_size)])


def fgsm_batched(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, batch_size: int
) -> torch.Tensor:
    """Unclipped FGSM examples (the paper's) of ``model``, batch by batch."""
    return torch.cat(
        [fgsm(model, xb, yb, eps) for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True)]
    )


def agreement(
    models: dict[str, nn.Module], source: str, x: torch.Tensor, y: torch.Tensor, eps: float, batch_size: int
) -> list[dict]:
    """On ``source``'s FGSM examples: for every ordered pair (reference, observer), how often the observer
    predicts the reference's class, where the reference is wrong (``reference_wrong``) and where both are
    wrong (``both_wrong``)."""
    x_adv = fgsm_batched(models[source], x, y, eps, batch_size)
    preds = {name: predictions(m, x_adv, batch_size) for name, m in models.items()}
    rows = []
    for ref, p_ref in preds.items():
        for obs, p_obs in preds.items():
            if ref == obs:
                continue
            for condition, mask in (
                ("reference_wrong", p_ref != y),
                ("both_wrong", (p_ref != y) & (p_obs != y)),
            ):
                n, n_agree = int(mask.sum()), int((p_obs == p_ref)[mask].sum())
                rows.append(
                    {"reference": ref, "observer": obs, "condition": condition, "n": n, "n_agree": n_agree}
                    | {"rate": n_agree / n if n else None, "eps": float(eps)}
                )
    return rows


def logit_sweep(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Outputs of ``model`` at ``x + e * sign(grad_x J(x, y))`` for every ``e`` in ``eps`` (one example)."""
    with attack_mode(model):
        direction = input_gradient(model, x[None], y[None]).sign()
        with torch.inference_mode():
            return model(x[None] + eps[:, None] * direction)


@torch.inference_mode()
def rubbish(
    model: nn.Module, noise: torch.Tensor, threshold: float, batch_size: int
) -> tuple[dict, list[dict]]:
    """Noise inputs a model assigns some class with probability above ``threshold`` (App. A): the error
    rate, the mean of that probability, and how the confident predictions spread over the classes."""
    with attack_mode(model):
        out = torch.cat([model(xb) for xb in noise.split(batch_size)])
    conf, pred = probabilities(model, out).max(dim=1)
    confident = conf > threshold
    n_conf = int(confident.sum())
    summary = {
        "threshold": float(threshold),
        "n": len(noise),
        "n_confident": n_conf,
        "error": n_conf / len(noise),
        "mean_conf": float(conf[confident].double().mean()) if n_conf else None,
    }
    counts = torch.bincount(pred[confident], minlength=out.shape[1])
    classes = [
        {"class": c, "n_predicted": int(k), "share": int(k) / n_conf if n_conf else None}
        for c, k in enumerate(counts.tolist())
    ]
    return summary, classes


def rotation(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    shape: tuple[int, int, int],
    angles: Sequence[float],
    batch_size: int,
    generator: torch.Generator,
) -> list[dict]:
    """§4's rotation attack at every angle (degrees): each image rotated by the angle in the direction that
    raises its loss (:func:`~advbench.attacks.rotation_direction`), against two references of the same
    size: the same rotation in a random direction (``random_``), and FGSM scaled per image to the rotation's
    L2 distance (``fgsm_``; unclipped FGSM moves every pixel whose gradient is nonzero by eps, so its L2
    size is eps times the square root of their number)."""
    cells = {(a, kind): Tally() for a in angles for kind in ("", "random_", "fgsm_")}
    l2_sum = {a: 0.0 for a in angles}
    eps_sum = {a: 0.0 for a in angles}
    with attack_mode(model):
        for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True):
            toward = rotation_direction(model, xb, yb, shape)
            random = torch.randint(0, 2, (len(xb),), generator=generator).to(xb) * 2 - 1
            fgsm_sign = input_gradient(model, xb, yb).sign()
            nonzero = fgsm_sign.abs().sum(dim=1).clamp_min(1.0)
            with torch.inference_mode():
                for a in angles:
                    radians = math.radians(a)
                    x_rot = rotate_by_sign(xb, toward, radians, shape)
                    l2 = (x_rot - xb).norm(dim=1)
                    eps = l2 / nonzero.sqrt()
                    examples = {
                        "": x_rot,
                        "random_": rotate_by_sign(xb, random, radians, shape),
                        "fgsm_": xb + eps[:, None] * fgsm_sign,
                    }
                    for kind, x_adv in examples.items():
                        change = linf_distance(x_adv, xb)
                        cells[(a, kind)].add(probabilities(model, model(x_adv)), yb, change)
                    l2_sum[a] += float(l2.double().sum())
                    eps_sum[a] += float(eps.double().sum())
    rows = []
    for a in angles:
        row = {"angle": float(a), "mean_l2": l2_sum[a] / len(x), "fgsm_mean_eps": eps_sum[a] / len(x)}
        for kind in ("", "random_", "fgsm_"):
            tally = cells[(a, kind)].row()
            row |= {f"{kind}{k}": tally[k] for k in ("n_wrong", "error", "mean_conf_wrong")}
        rows.append(row | {"n": cells[(a, "")].n})
    return rows
