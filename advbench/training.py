"""The training loop of the paper's pylearn2 recipe, for the clean and the FGSM-adversarial objectives.

SGD with pylearn2's momentum (``v = mu*v - lr*g; w += v``), lr divided by ``lr_decay`` after every minibatch
(floored at ``lr_min``), momentum rising linearly between two epochs, max column norm after every step, and
keeping the parameters of the epoch with the best validation error (early stopping with ``patience``).
Each epoch also records eval-mode clean and FGSM error on the validation set and a training subset.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from advbench.attacks import fgsm
from advbench.config import ModelSpec, RegimeSpec, TrainSpec
from advbench.evaluation import fgsm_scores
from advbench.models import apply_max_col_norm, build

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tensors:
    """Float inputs in [0, 1] and int64 labels of the splits a training run needs."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor


def task_seed(*key: object) -> int:
    """A seed derived from a task's key (dataset, model, regime, seed): retries give the same result."""
    digest = hashlib.sha256("/".join(map(str, key)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def momentum_at(epoch: int, t: TrainSpec) -> float:
    """pylearn2 ``MomentumAdjustor``: linear from ``momentum_start`` to ``momentum_end`` over epochs."""
    span = max(t.momentum_saturate_epoch - t.momentum_start_epoch, 1)
    frac = min(max((epoch - t.momentum_start_epoch) / span, 0.0), 1.0)
    return t.momentum_start + frac * (t.momentum_end - t.momentum_start)


def lr_at(step: int, t: TrainSpec) -> float:
    """pylearn2 ``ExponentialDecay``: ``lr / decay**step``, floored at ``lr_min``."""
    return max(t.lr / t.lr_decay**step, t.lr_min)


def objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor, regime: RegimeSpec) -> torch.Tensor:
    """Backpropagate the regime's loss into the parameters' ``.grad``; return the clean logits.

    For ``fgsm`` with ``grad_in_train_mode`` the perturbation's gradient comes from the same backward pass
    as the clean loss's parameter gradient (one extra forward and backward in all); no gradient flows
    through the sign.
    """
    if regime.kind == "clean":
        logits = model(x)
        F.cross_entropy(logits, y).backward()
        return logits.detach()
    if regime.grad_in_train_mode:
        x_in = x.detach().clone().requires_grad_(True)
        logits = model(x_in)
        clean = F.cross_entropy(logits, y)
        if regime.alpha > 0:
            (regime.alpha * clean).backward()
            grad = x_in.grad
        else:
            (grad,) = torch.autograd.grad(clean, x_in)
        x_adv = x + regime.eps * grad.sign()
        if regime.clip:
            x_adv = x_adv.clamp(0.0, 1.0)
    else:
        x_adv = fgsm(model, x, y, regime.eps, clip=regime.clip)
        logits = model(x)
        (regime.alpha * F.cross_entropy(logits, y)).backward()
    ((1 - regime.alpha) * F.cross_entropy(model(x_adv.detach()), y)).backward()
    return logits.detach()


@torch.no_grad()
def sgd_step(params: list[torch.Tensor], velocity: list[torch.Tensor], lr: float, momentum: float) -> None:
    """pylearn2 momentum: ``v = mu*v - lr*g; w += v``."""
    grads = [p.grad for p in params]
    torch._foreach_mul_(velocity, momentum)
    torch._foreach_add_(velocity, grads, alpha=-lr)
    torch._foreach_add_(params, velocity)


def epoch_metrics(model: nn.Module, data: Tensors, t: TrainSpec) -> dict[str, float]:
    """Eval-mode clean and FGSM (``t.monitor_eps``) error on the validation set and a training subset."""
    metrics = {}
    n_train = t.monitor_train or len(data.x_train)
    for split, x, y in (
        ("train", data.x_train[:n_train], data.y_train[:n_train]),
        ("val", data.x_val, data.y_val),
    ):
        clean, adv = fgsm_scores(model, model, x, y, [0.0, t.monitor_eps], [False], t.eval_batch_size)
        metrics[f"{split}_error"], metrics[f"{split}_adv_error"] = clean["error"], adv["error"]
    return metrics


def train_model(
    spec: ModelSpec, regime: RegimeSpec, data: Tensors, seed: int, tag: str = ""
) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Train one model; return the best epoch's state dict and one curve row per epoch.

    "Best" is the lowest validation error, clean or adversarial as ``select_on`` says.
    """
    t = spec.train
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build(spec, gen).to(data.x_train.device)
    params = list(model.parameters())
    velocity = [torch.zeros_like(p) for p in params]
    best = (float("inf"), None, 0)  # (selection error, state, epoch)
    curves, step = [], 0
    n = len(data.x_train)
    for epoch in range(1, t.max_epochs + 1):
        start, momentum = time.perf_counter(), momentum_at(epoch, t)
        model.train()
        loss_sum = 0.0
        for idx in torch.randperm(n, generator=gen).split(t.batch_size):
            idx = idx.to(data.x_train.device)
            xb, yb = data.x_train[idx], data.y_train[idx]
            for p in params:
                p.grad = None
            logits = objective(model, xb, yb, regime)
            lr = lr_at(step, t)
            sgd_step(params, velocity, lr, momentum)
            apply_max_col_norm(model, spec.max_col_norm)
            step += 1
            loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
        if not math.isfinite(loss_sum):
            raise FloatingPointError(
                f"model {spec.name!r} regime {regime.name!r}: non-finite loss in epoch {epoch}"
            )
        metrics = epoch_metrics(model, data, t)
        score = metrics["val_adv_error" if t.select_on == "adversarial" else "val_error"]
        is_best = score < best[0]
        if is_best:
            best = (score, copy.deepcopy(model.state_dict()), epoch)
        row = {"epoch": epoch, "lr": lr, "momentum": momentum, "train_loss": loss_sum / n, **metrics}
        curves.append(row | {"seconds": time.perf_counter() - start, "is_best": is_best})
        log.info(
            "%s/%s%s epoch %d/%d: val error %.4f, FGSM val error %.4f (%.1f s)",
            spec.name,
            regime.name,
            tag,
            epoch,
            t.max_epochs,
            metrics["val_error"],
            metrics["val_adv_error"],
            curves[-1]["seconds"],
        )
        if epoch - best[2] >= t.patience:
            break
    return best[1], curves
