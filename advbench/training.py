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
from dataclasses import dataclass, field

import torch
from torch import nn

from advbench.attacks import fgsm
from advbench.config import ModelSpec, RegimeSpec, TrainSpec
from advbench.evaluation import fgsm_scores
from advbench.heads import train_loss
from advbench.models import apply_max_col_norm, apply_max_kernel_norm, build, linear_layers, lr_scales

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


def lr_at(step: int, t: TrainSpec, lr: float | None = None) -> float:
    """pylearn2 ``ExponentialDecay``: ``lr / decay**step``, floored at ``lr_min``."""
    return max((t.lr if lr is None else lr) / t.lr_decay**step, t.lr_min)


def epoch_lr(epoch: int, t: TrainSpec) -> float:
    """pylearn2 ``LinearDecayOverEpoch`` (CIFAR-10): lr falls linearly from ``lr`` at epoch 1 to
    ``lr * lr_linear_factor`` at ``lr_linear_saturate_epoch``; without that knob, ``lr`` throughout."""
    if t.lr_linear_saturate_epoch is None:
        return t.lr
    frac = min(max((epoch - 1) / max(t.lr_linear_saturate_epoch - 1, 1), 0.0), 1.0)
    return t.lr * (1 - frac * (1 - t.lr_linear_factor))


def objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor, regime: RegimeSpec) -> torch.Tensor:
    """Backpropagate the regime's loss into the parameters' ``.grad``; return its per-example values.

    For ``fgsm`` with ``grad_in_train_mode`` the perturbation's gradient comes from the same backward pass
    as the clean loss's parameter gradient (one extra forward and backward in all); no gradient flows
    through the sign. The noise controls of §6 use the same mixture with random perturbations of size eps.
    """
    if regime.kind == "clean":
        clean = train_loss(model, model(x), y, "none")
        clean.mean().backward()
        return clean.detach()
    if regime.kind in NOISE_KINDS:
        return noise_objective(model, x, y, regime)
    if regime.grad_in_train_mode:
        x_in = x.detach().clone().requires_grad_(True)
        clean = train_loss(model, model(x_in), y, "none")
        if regime.alpha > 0:
            (regime.alpha * clean.mean()).backward()
            grad = x_in.grad
        else:
            (grad,) = torch.autograd.grad(clean.mean(), x_in)
        x_adv = x + regime.eps * grad.sign()
        if regime.clip:
            x_adv = x_adv.clamp(0.0, 1.0)
    else:
        x_adv = fgsm(model, x, y, regime.eps, clip=regime.clip)
        clean = train_loss(model, model(x), y, "none")
        (regime.alpha * clean.mean()).backward()
    adv = train_loss(model, model(x_adv.detach()), y, "none")
    ((1 - regime.alpha) * adv.mean()).backward()
    return (regime.alpha * clean + (1 - regime.alpha) * adv).detach()


NOISE_KINDS = ("noise_sign", "noise_uniform")


def noise_objective(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, regime: RegimeSpec, stacked: bool | None = None
) -> torch.Tensor:
    """The noise controls' mixture ``alpha J(x) + (1 - alpha) J(x + noise)``, backpropagated.

    The noise does not depend on the model, so by default both terms go through one forward and one
    backward of the stacked batch: the same gradient as two passes, in fewer and larger matrix multiplies
    (bench row ``noise_one_pass_speedup`` times ``stacked=False`` against it). Models with batch norm take
    two passes: stacking would mix the two batches' statistics.
    """
    x_noisy = x + noise(x, regime)
    if stacked is None:
        stacked = not has_batch_norm(model)
    if stacked:
        clean, noisy = train_loss(model, model(torch.cat([x, x_noisy])), torch.cat([y, y]), "none").chunk(2)
    else:
        clean = train_loss(model, model(x), y, "none")
        noisy = train_loss(model, model(x_noisy), y, "none")
    mixed = regime.alpha * clean + (1 - regime.alpha) * noisy
    mixed.mean().backward()
    return mixed.detach()


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def noise(x: torch.Tensor, regime: RegimeSpec) -> torch.Tensor:
    """The paper's noise controls: ±eps per pixel with a random sign, or U(-eps, eps)."""
    if regime.kind == "noise_sign":
        return regime.eps * (torch.randint(0, 2, x.shape, device=x.device) * 2 - 1).to(x.dtype)
    return torch.empty_like(x).uniform_(-regime.eps, regime.eps)


def add_l1_first_layer(model: nn.Module, coef: float) -> float:
    """Add the gradient of ``coef * sum|W|`` of the first layer to its ``.grad``; return the penalty."""
    weight = linear_layers(model)[0].weight
    with torch.no_grad():
        weight.grad.add_(weight.sign(), alpha=coef)
        return coef * float(weight.abs().sum())


@torch.no_grad()
def sgd_step(
    params: list[torch.Tensor],
    velocity: list[torch.Tensor],
    lr: float,
    momentum: float,
    scales: list[float] | None = None,
) -> None:
    """pylearn2 momentum: ``v = mu*v - lr*scale*g; w += v`` (``scales``: per-parameter lr scales)."""
    grads = [p.grad for p in params]
    if scales is not None and any(s != 1.0 for s in scales):
        grads = torch._foreach_mul(grads, scales)
    torch._foreach_mul_(velocity, momentum)
    torch._foreach_add_(velocity, grads, alpha=-lr)
    torch._foreach_add_(params, velocity)


def epoch_metrics(model: nn.Module, data: Tensors, t: TrainSpec) -> dict[str, float]:
    """Eval-mode clean and FGSM (``t.monitor_eps``) error on the first ``t.monitor_val`` validation and
    ``t.monitor_train`` training examples (``None``: all)."""
    metrics = {}
    n_train, n_val = t.monitor_train or len(data.x_train), t.monitor_val or len(data.x_val)
    for split, x, y in (
        ("train", data.x_train[:n_train], data.y_train[:n_train]),
        ("val", data.x_val[:n_val], data.y_val[:n_val]),
    ):
        clean, adv = fgsm_scores(model, model, x, y, [0.0, t.monitor_eps], [False], t.eval_batch_size)
        metrics[f"{split}_error"], metrics[f"{split}_adv_error"] = clean["error"], adv["error"]
    return metrics


@dataclass
class Sgd:
    """The optimizer state of one run: parameters, their velocities, lr scales, the minibatch counter."""

    model: nn.Module
    spec: ModelSpec
    velocity: list[torch.Tensor] = field(init=False)
    scales: list[float] = field(init=False)
    step: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.velocity = [torch.zeros_like(p) for p in self.model.parameters()]
        self.scales = lr_scales(self.model, self.spec)

    def constrain(self) -> None:
        """pylearn2's norm constraints after every step: max column norm and max kernel norm."""
        apply_max_col_norm(self.model, self.spec.max_col_norm)
        apply_max_kernel_norm(self.model, self.spec.max_kernel_norm)

    def epoch(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        regime: RegimeSpec,
        t: TrainSpec,
        lr0: float,
        momentum: float,
        gen: torch.Generator,
    ) -> tuple[torch.Tensor, float]:
        """One pass over ``(x, y)`` in random minibatches; per-example objective values and the last lr."""
        params = list(self.model.parameters())
        losses = torch.empty(len(x), device=x.device)
        self.model.train()
        lr = lr0
        for idx in torch.randperm(len(x), generator=gen).split(t.batch_size):
            idx = idx.to(x.device)
            for p in params:
                p.grad = None
            losses[idx] = objective(self.model, x[idx], y[idx], regime)
            if regime.l1_first_layer:
                losses[idx] += add_l1_first_layer(self.model, regime.l1_first_layer)
            lr = lr_at(self.step, t, lr0)
            sgd_step(params, self.velocity, lr, momentum, self.scales)
            self.constrain()
            self.step += 1
        return losses, lr


def _check_finite(loss: float, spec: ModelSpec, regime: RegimeSpec, epoch: int) -> None:
    if not math.isfinite(loss):
        raise FloatingPointError(
            f"model {spec.name!r} regime {regime.name!r}: non-finite loss in epoch {epoch}"
        )


def _log_epoch(spec: ModelSpec, regime: RegimeSpec, tag: str, row: dict) -> None:
    log.info(
        "%s/%s%s stage %d epoch %d: train objective %.4f, val error %.4f, FGSM val error %.4f (%.1f s)",
        spec.name,
        regime.name,
        tag,
        row["stage"],
        row["epoch"],
        row["train_loss"],
        row["val_error"],
        row["val_adv_error"],
        row["seconds"],
    )


def train_model(
    spec: ModelSpec, regime: RegimeSpec, data: Tensors, seed: int, tag: str = ""
) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Train one model; return its final state dict and one curve row per epoch.

    Stage 1 trains on the training split and keeps the epoch with the lowest validation error (clean or
    adversarial as ``select_on`` says), stopping after ``patience`` epochs without improvement. With
    ``retrain``, stage 2 continues from that model on training + validation data (paper §6).
    """
    t = spec.train
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build(spec, gen).to(data.x_train.device)
    sgd = Sgd(model, spec)
    best: tuple[float, dict | None, int, float] = (
        float("inf"),
        None,
        0,
        float("nan"),
    )  # score, state, epoch, loss
    curves = []
    for epoch in range(1, t.max_epochs + 1):
        start, momentum = time.perf_counter(), momentum_at(epoch, t)
        losses, lr = sgd.epoch(data.x_train, data.y_train, regime, t, epoch_lr(epoch, t), momentum, gen)
        train_loss = float(losses.mean())
        _check_finite(train_loss, spec, regime, epoch)
        metrics = epoch_metrics(model, data, t)
        score = metrics["val_adv_error" if t.select_on == "adversarial" else "val_error"]
        is_best = score < best[0]
        if is_best:
            best = (score, copy.deepcopy(model.state_dict()), epoch, train_loss)
        row = {
            "stage": 1,
            "epoch": epoch,
            "lr": lr,
            "momentum": momentum,
            "train_loss": train_loss,
            **metrics,
        }
        curves.append(row | {"seconds": time.perf_counter() - start, "is_best": is_best})
        _log_epoch(spec, regime, tag, curves[-1])
        if epoch - best[2] >= t.patience:
            break
    model.load_state_dict(best[1])
    if t.retrain:
        curves += retrain_on_all(model, spec, regime, data, gen, best[3], len(curves), tag)
    return copy.deepcopy(model.state_dict()), curves


def retrain_on_all(
    model: nn.Module,
    spec: ModelSpec,
    regime: RegimeSpec,
    data: Tensors,
    gen: torch.Generator,
    target: float,
    epochs_done: int,
    tag: str,
) -> list[dict]:
    """Stage 2: continue on all training + validation examples until the objective on the validation part
    falls to ``target`` (stage 1's training objective at its best epoch), at most ``retrain_max_epochs``."""
    t = spec.train
    x_all, y_all = torch.cat([data.x_train, data.x_val]), torch.cat([data.y_train, data.y_val])
    sgd, n_train, curves = Sgd(model, spec), len(data.x_train), []
    for epoch in range(epochs_done + 1, epochs_done + t.retrain_max_epochs + 1):
        start = time.perf_counter()
        losses, lr = sgd.epoch(x_all, y_all, regime, t, t.retrain_lr, t.retrain_momentum, gen)
        _check_finite(float(losses.mean()), spec, regime, epoch)
        held_out = float(losses[n_train:].mean())
        row = {"stage": 2, "epoch": epoch, "lr": lr, "momentum": t.retrain_momentum}
        row |= {"train_loss": float(losses.mean()), **epoch_metrics(model, data, t), "is_best": False}
        curves.append(row | {"seconds": time.perf_counter() - start})
        _log_epoch(spec, regime, tag, curves[-1])
        if held_out <= target:
            break
    return curves
