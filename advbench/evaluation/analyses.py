"""The paper's analyses beyond error rates: cross-model agreement (§8), logits along the FGSM direction
(§8, Fig. 4) and rubbish-class noise inputs (App. A). Pure functions of models and tensors."""

from __future__ import annotations

import torch
from torch import nn

from advbench.attacks import attack_mode, fgsm, input_gradient
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
