"""The training loop of the paper's pylearn2 recipe, for the clean and the FGSM-adversarial objectives.

SGD with pylearn2's momentum (``v = mu*v - lr*g; w += v``), lr divided by ``lr_decay`` after every minibatch
(floored at ``lr_min``), momentum rising linearly between two epochs, max column norm after every step, and
keeping the parameters of the epoch with the best validation error (early stopping with ``patience``).
Each epoch also records eval-mode clean and FGSM error on the validation set and a training subset.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn

from advbench.attacks import Loss, linf_pgd
from advbench.config.specs import Method, ModelSpec, RegimeKind, RegimeSpec, SelectOn, TrainSpec
from advbench.evaluation.scores import MultiStep, error_rate, fgsm_scores, method_scores
from advbench.models.architectures import (
    MaxoutMLP,
    apply_max_col_norm,
    apply_max_kernel_norm,
    build,
    linear_layers,
    logit_weight,
    lr_scales,
    n_outputs,
)
from advbench.models.dbm import MPDBM
from advbench.models.external import ExternalModelError, check_outputs
from advbench.models.heads import attack_loss, train_loss

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tensors:
    """Float inputs in [0, 1] and int64 labels of the splits a training run needs; for a ``static`` regime
    also the fixed adversarial examples of both splits (row for row)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    fixed_train: torch.Tensor | None = None
    fixed_val: torch.Tensor | None = None


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
    """pylearn2 ``ExponentialDecay``: ``lr / decay**step``, floored at ``lr_min``.

    ``decay**step`` leaves the float range in long schedules (1.01**step past step 71,300: epoch 143 of 500
    steps); the quotient is then below every positive ``lr_min``, and the floor holds.
    """
    try:
        decayed = (t.lr if lr is None else lr) / t.lr_decay**step
    except OverflowError:
        decayed = 0.0
    return max(decayed, t.lr_min)


def epoch_lr(epoch: int, t: TrainSpec) -> float:
    """pylearn2 ``LinearDecayOverEpoch`` (CIFAR-10): lr falls linearly from ``lr`` at epoch 1 to
    ``lr * lr_linear_factor`` at ``lr_linear_saturate_epoch``; without that knob, ``lr`` throughout."""
    if t.lr_linear_saturate_epoch is None:
        return t.lr
    frac = min(max((epoch - 1) / max(t.lr_linear_saturate_epoch - 1, 1), 0.0), 1.0)
    return t.lr * (1 - frac * (1 - t.lr_linear_factor))


@dataclass(frozen=True)
class Layout:
    """Where a model's examples lie: ``batch_dim`` 0 for one model, 1 for a stack of seeds
    (:mod:`advbench.training.stacked`: inputs ``(seeds, batch, features)``). Each seed's gradient is that
    of its own mean loss, so a stack backpropagates the sum of its seeds' means."""

    batch_dim: int = 0

    def flat(self, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Outputs ``(examples, classes)``, labels ``(examples,)``: a stack's seed and batch axes as one."""
        if self.batch_dim == 0:
            return out, y
        return out.flatten(0, 1), y.flatten()

    def losses(self, model: nn.Module, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training loss of every example, shaped as ``y``."""
        return train_loss(model, *self.flat(out, y), "none").view(y.shape)

    def attack_cost(self, model: nn.Module) -> Loss:
        """The cost FGSM ascends (:func:`advbench.models.heads.attack_loss`) for :mod:`advbench.attacks`."""

        def cost(out: torch.Tensor, y: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
            return attack_loss(model, *self.flat(out, y), reduction)

        return cost

    def backward_mean(self, values: torch.Tensor, weight: float = 1.0) -> None:
        """Backpropagate ``weight`` times the mean of ``values`` (of every seed's, for a stack)."""
        (weight * values.mean(dim=self.batch_dim).sum()).backward()

    def cat(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.cat([a, b], dim=self.batch_dim)

    def halves(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first, second = t.chunk(2, dim=self.batch_dim)
        return first, second


ONE_MODEL = Layout(0)
SEED_STACK = Layout(1)


def objective(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    regime: RegimeSpec,
    fixed: torch.Tensor | None = None,
    layout: Layout = ONE_MODEL,
) -> torch.Tensor:
    """Backpropagate the regime's loss into the parameters' ``.grad``; return its per-example values.

    For ``fgsm`` with ``grad_in_train_mode`` the perturbation's gradient comes from the same backward pass
    as the clean loss's parameter gradient (one extra forward and backward in all); no gradient flows
    through the sign. The noise controls of §6 use the same mixture with random perturbations of size eps,
    ``static`` with ``fixed``, the minibatch's precomputed adversarial examples. A stack of seeds
    (``layout``) takes the clean, noise and input-FGSM objectives
    (:func:`advbench.training.stacked.stackable`).
    """
    if isinstance(model, MPDBM):  # validation allows it the clean regime only
        mp = model.training_loss(x, y)
        mp.mean().backward()
        return mp.detach()
    if regime.kind == RegimeKind.CLEAN:
        clean = layout.losses(model, model(x), y)
        layout.backward_mean(clean)
        return clean.detach()
    if regime.kind in NOISE_KINDS:
        return paired_objective(model, x, x + noise(x, regime), y, regime.alpha, layout=layout)
    if regime.kind == RegimeKind.FGSM and not regime.hidden_layer:
        return fgsm_objective(model, x, y, regime, layout)
    if layout != ONE_MODEL:
        raise ValueError(f"regime {regime.name!r} ({regime.kind}) trains one model per task, not a stack")
    if regime.kind == RegimeKind.STATIC:
        if fixed is None:
            raise ValueError(f"regime {regime.name!r} (static) needs its fixed adversarial examples")
        return paired_objective(model, x, fixed, y, regime.alpha)
    if regime.kind == RegimeKind.WORST_CASE:
        return worst_case_objective(model, x, y, regime)
    if regime.kind in RANDOM_START_KINDS:
        return paired_objective(model, x, random_start_examples(model, x, y, regime), y, regime.alpha)
    if regime.kind == RegimeKind.FGSM:
        return hidden_fgsm_objective(model, x, y, regime)
    raise ValueError(f"regime {regime.name!r} ({regime.kind}) has no training objective")


def fgsm_objective(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, regime: RegimeSpec, layout: Layout = ONE_MODEL
) -> torch.Tensor:
    """The paper's ``alpha J(x) + (1 - alpha) J(x + eps sign(grad_x J))``, backpropagated; per-example
    values. The gradient comes from the clean term's own training-mode pass (``grad_in_train_mode``) or
    from an eval-mode FGSM, as :func:`advbench.attacks.fgsm` attacks."""
    if regime.grad_in_train_mode:
        x_in = x.detach().clone().requires_grad_(True)
        clean = layout.losses(model, model(x_in), y)
        if regime.alpha > 0:
            layout.backward_mean(clean, regime.alpha)
            grad = grad_of(x_in)
        else:
            (grad,) = torch.autograd.grad(clean.mean(dim=layout.batch_dim).sum(), x_in)
        x_adv = x + regime.eps * grad.sign()
        if regime.clip:
            x_adv = x_adv.clamp(0.0, 1.0)
    else:
        clip = (0.0, 1.0) if regime.clip else None
        x_adv = linf_pgd(model, x, y, regime.eps, clip=clip, loss=layout.attack_cost(model))
        clean = layout.losses(model, model(x), y)
        layout.backward_mean(clean, regime.alpha)
    adv = layout.losses(model, model(x_adv.detach()), y)
    layout.backward_mean(adv, 1 - regime.alpha)
    return (regime.alpha * clean + (1 - regime.alpha) * adv).detach()


NOISE_KINDS = (RegimeKind.NOISE_SIGN, RegimeKind.NOISE_UNIFORM)
RANDOM_START_KINDS = (RegimeKind.FGSM_RS, RegimeKind.PGD)


def random_start_examples(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, regime: RegimeSpec
) -> torch.Tensor:
    """The training examples of fast adversarial training (``fgsm_rs``: one step of 1.25 eps by default
    from a uniform random start, projected on the eps ball; Wong et al. 2020) or of PGD training (``pgd``:
    ``steps`` such steps; Madry et al. 2018), through the attacks' one L-inf core. Dropout stays on while
    they are made when ``grad_in_train_mode``; the random start draws from torch's global generator, whose
    state a training run saves and restores."""
    return linf_pgd(
        model,
        x,
        y,
        regime.eps,
        regime.attack_steps,
        regime.attack_step,
        random_start=True,
        clip=(0.0, 1.0) if regime.clip else None,
        train_mode=regime.grad_in_train_mode,
    )


def paired_objective(
    model: nn.Module,
    x: torch.Tensor,
    x_other: torch.Tensor,
    y: torch.Tensor,
    alpha: float,
    one_pass: bool | None = None,
    layout: Layout = ONE_MODEL,
) -> torch.Tensor:
    """The mixture ``alpha J(x) + (1 - alpha) J(x_other)`` for inputs that do not depend on the model being
    trained (noise, fixed adversarial examples), backpropagated.

    By default both terms go through one forward and one backward of the concatenated batch: the same
    gradient as two passes, in fewer and larger matrix multiplies (bench row ``noise_one_pass_speedup``
    times ``one_pass=False`` against it). Models with batch norm take two passes: one would mix the two
    batches' statistics.
    """
    if alpha == 0:  # the other term alone (fast and PGD adversarial training as their authors run them)
        other = layout.losses(model, model(x_other), y)
        layout.backward_mean(other)
        return other.detach()
    if one_pass is None:
        one_pass = not has_batch_norm(model)
    if one_pass:
        clean, other = layout.halves(layout.losses(model, model(layout.cat(x, x_other)), layout.cat(y, y)))
    else:
        clean = layout.losses(model, model(x), y)
        other = layout.losses(model, model(x_other), y)
    return backward_mixture(clean, other, alpha, layout)


def backward_mixture(
    clean: torch.Tensor, other: torch.Tensor, alpha: float, layout: Layout = ONE_MODEL
) -> torch.Tensor:
    """Backpropagate the mean of ``alpha * clean + (1 - alpha) * other``; return its per-example values."""
    mixed = alpha * clean + (1 - alpha) * other
    layout.backward_mean(mixed)
    return mixed.detach()


def hidden_fgsm_objective(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, regime: RegimeSpec
) -> torch.Tensor:
    """FGSM adversarial training with the perturbation on a hidden layer's activations h (§6):
    ``alpha J(h) + (1 - alpha) J(h + eps sign(grad_h J))``, backpropagated into every layer.

    The layers below h run once, so both terms share their dropout masks; the layers above run twice, each
    with masks of its own, as the input version's two passes do. No gradient flows through the sign.
    """
    if not isinstance(model, MaxoutMLP):
        raise TypeError(f"perturb {regime.perturb!r} needs a maxout MLP, not {type(model).__name__}")
    below, above = model.split(regime.hidden_layer)
    h = below(x.flatten(1))
    clean = train_loss(model, above(h), y, "none")
    (grad,) = torch.autograd.grad(clean.mean(), h, retain_graph=True)
    adv = train_loss(model, above(h + regime.eps * grad.sign()), y, "none")
    return backward_mixture(clean, adv, regime.alpha)


def worst_case_logits(
    model: nn.Module, logits: torch.Tensor, y: torch.Tensor, regime: RegimeSpec
) -> torch.Tensor:
    """§5's logits under the worst L-inf perturbation of size eps, in closed form for a linear model.

    For logits ``W x + b``, a perturbation ``eta`` with ``|eta|_inf <= eps`` moves logit k by ``w_k . eta``,
    at most ``eps |w_k|_1``. The paper's bound moves every wrong logit up and the true one down by that much
    at once (no single ``eta`` need do both: it is pessimistic); ``pairwise`` takes the exact worst case
    against each wrong class k alone, ``eps |w_k - w_y|_1`` on the margin. For logistic regression
    (logits ``[0, w.x + b]``) both equal FGSM's effect exactly: ``z - eps * y * |w|_1``.
    """
    weight = logit_weight(model)
    if regime.pairwise:
        # gap[j, k] = |w_k - w_j|_1: row y says how far each logit can rise against the true class y
        gap = (weight[None, :, :] - weight[:, None, :]).abs().sum(-1)
        return logits + regime.eps * gap[y]
    norms = weight.abs().sum(1)
    true = torch.nn.functional.one_hot(y, logits.shape[1]).to(logits.dtype)
    return logits + regime.eps * norms * (1 - 2 * true)


def worst_case_objective(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, regime: RegimeSpec
) -> torch.Tensor:
    """``alpha J(x) + (1 - alpha) J_worst(x)`` with :func:`worst_case_logits`, backpropagated."""
    logits = model(x)
    clean = train_loss(model, logits, y, "none")
    worst = train_loss(model, worst_case_logits(model, logits, y, regime), y, "none")
    return backward_mixture(clean, worst, regime.alpha)


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def noise(x: torch.Tensor, regime: RegimeSpec) -> torch.Tensor:
    """The paper's noise controls: ±eps per pixel with a random sign, or U(-eps, eps)."""
    if regime.kind == RegimeKind.NOISE_SIGN:
        return regime.eps * (torch.randint(0, 2, x.shape, device=x.device) * 2 - 1).to(x.dtype)
    return torch.empty_like(x).uniform_(-regime.eps, regime.eps)


def grad_of(t: torch.Tensor) -> torch.Tensor:
    """``t.grad``, which a backward pass through ``t`` has set."""
    if t.grad is None:
        raise RuntimeError("no gradient: the objective's backward pass did not reach this tensor")
    return t.grad


def add_l1_first_layer(model: nn.Module, coef: float) -> float:
    """Add the gradient of ``coef * sum|W|`` of the first layer to its ``.grad``; return the penalty."""
    weight = linear_layers(model)[0].weight
    with torch.no_grad():
        grad_of(weight).add_(weight.sign(), alpha=coef)
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
    grads: list[torch.Tensor] | tuple[torch.Tensor, ...] = [grad_of(p) for p in params]
    if scales is not None and any(s != 1.0 for s in scales):
        grads = torch._foreach_mul(grads, scales)
    torch._foreach_mul_(velocity, momentum)
    torch._foreach_add_(velocity, grads, alpha=-lr)
    torch._foreach_add_(params, velocity)


def epoch_metrics(model: nn.Module, data: Tensors, t: TrainSpec) -> dict[str, float]:
    """Eval-mode clean and FGSM (``t.monitor_eps``) error on the first ``t.monitor_train`` training and
    ``t.monitor_val`` validation examples (``None``: all), FGSM on the first ``t.monitor_val_adv`` of the
    latter, PGD on the first ``t.monitor_pgd`` (``val_pgd_error``, absent without it). Where both parts
    score the same examples, the clean error is the FGSM gradient's own forward."""
    metrics = {}
    n_train, n_val = t.monitor_train or len(data.x_train), t.monitor_val or len(data.x_val)
    n_adv = min(t.monitor_val_adv or n_val, n_val)
    for split, x, y, n in (
        ("train", data.x_train[:n_train], data.y_train[:n_train], n_train),
        ("val", data.x_val[:n_val], data.y_val[:n_val], n_adv),
    ):
        clean, adv = fgsm_scores(model, model, x[:n], y[:n], [0.0, t.monitor_eps], [False], t.eval_batch_size)
        if n < len(x):
            clean = error_rate(model, x, y, t.eval_batch_size)
        metrics[f"{split}_error"], metrics[f"{split}_adv_error"] = clean["error"], adv["error"]
    if t.monitor_pgd is not None:
        metrics["val_pgd_error"] = monitor_pgd_error(model, data, t)
    return metrics


def monitor_pgd_error(model: nn.Module, data: Tensors, t: TrainSpec) -> float:
    """Eval-mode PGD error (``t.monitor_eps``, unclipped, one random start, ``t.monitor_pgd_steps`` steps of
    Madry et al.'s 2.5 eps / steps) on the first ``t.monitor_pgd`` validation examples. The random starts
    come from a generator of their own, the same every epoch: monitoring leaves the training's random
    numbers alone, and epochs differ only by the model."""
    n = min(t.monitor_pgd or len(data.x_val), len(data.x_val))
    multistep = MultiStep(steps=t.monitor_pgd_steps)
    generator = torch.Generator().manual_seed(0)
    (row,) = method_scores(
        model, model, data.x_val[:n], data.y_val[:n], Method.PGD, [t.monitor_eps], [False],
        t.eval_batch_size, multistep=multistep, generator=generator,
    )  # fmt: skip
    return float(row["error"])


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
        """pylearn2's norm constraints after every step: max column norm and max kernel norm (the MP-DBM:
        a cap per layer)."""
        if isinstance(self.model, MPDBM):
            self.model.constrain()
            return
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
        fixed: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, float]:
        """One pass over ``(x, y)`` (and ``fixed``, the static regime's examples, row for row) in random
        minibatches; per-example objective values and the last lr."""
        params: list[torch.Tensor] = list(self.model.parameters())
        losses = torch.empty(len(x), device=x.device)
        self.model.train()
        lr = lr0
        for idx in torch.randperm(len(x), generator=gen).split(t.batch_size):
            idx = idx.to(x.device)
            for p in params:
                p.grad = None
            losses[idx] = objective(self.model, x[idx], y[idx], regime, None if fixed is None else fixed[idx])
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


@dataclass
class TrainState:
    """Everything a training run needs to go on after its last finished epoch, bit for bit: the weights,
    the optimizer's velocities and minibatch count, stage 1's best epoch so far, the curve rows, and the
    random-number generators (torch's global one draws the dropout masks and noise, the task's own one the
    minibatch order). ``stage_done``: the stage ended with this epoch; ``finished``: training is over and
    ``model`` holds the final weights."""

    stage: int
    epoch: int
    step: int
    model: dict[str, torch.Tensor]
    velocity: dict[str, torch.Tensor]
    best: dict[str, torch.Tensor] | None
    best_score: float
    best_epoch: int
    best_loss: float
    curves: list[dict]
    rng: dict[str, torch.Tensor]
    stage_done: bool = False
    finished: bool = False


class StateStore(Protocol):
    """Where a training run keeps its :class:`TrainState` (:mod:`advbench.training.state` on disk)."""

    every: int  # save after every ``every``-th epoch (0: never); the final state is always saved

    def load(self) -> TrainState | None: ...

    def save(self, state: TrainState) -> None: ...


@dataclass
class Run:
    """One training run in progress: the model, its optimizer, the generators, stage 1's best so far."""

    spec: ModelSpec
    regime: RegimeSpec
    data: Tensors
    gen: torch.Generator
    tag: str
    model: nn.Module
    sgd: Sgd
    curves: list[dict] = field(default_factory=list)
    best: dict[str, torch.Tensor] | None = None
    best_score: float = float("inf")
    best_epoch: int = 0
    best_loss: float = float("nan")

    def snapshot(self, stage: int, stage_done: bool = False, finished: bool = False) -> TrainState:
        device = self.data.x_train.device
        rng = {"torch": torch.get_rng_state(), "task": self.gen.get_state()}
        if device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(device)
        names = [name for name, _ in self.model.named_parameters()]
        return TrainState(
            stage=stage,
            epoch=self.curves[-1]["epoch"] if self.curves else 0,
            step=self.sgd.step,
            model=_copy(self.model.state_dict()),
            velocity=_copy(dict(zip(names, self.sgd.velocity, strict=True))),
            best=self.best if stage == 1 else None,  # stage 2 started from it and needs it no more
            best_score=self.best_score,
            best_epoch=self.best_epoch,
            best_loss=self.best_loss,
            curves=list(self.curves),
            rng=rng,
            stage_done=stage_done,
            finished=finished,
        )

    def restore(self, state: TrainState) -> None:
        device = self.data.x_train.device
        self.model.load_state_dict(state.model)
        names = [name for name, _ in self.model.named_parameters()]
        self.sgd.velocity = [state.velocity[name].to(device) for name in names]
        self.sgd.step = state.step
        self.best, self.best_score = state.best, state.best_score
        self.best_epoch, self.best_loss = state.best_epoch, state.best_loss
        self.curves = list(state.curves)
        torch.set_rng_state(state.rng["torch"])
        self.gen.set_state(state.rng["task"])
        if "cuda" in state.rng:
            torch.cuda.set_rng_state(state.rng["cuda"], device)


def _copy(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in tensors.items()}


def _log_epoch(run: Run, row: dict, last: int, eta: float) -> None:
    """The epoch's line in the job log: where the run is, how well it does, how long the rest can take."""
    selected = "FGSM val error" if run.spec.train.select_on == SelectOn.ADVERSARIAL else "val error"
    log.info(
        "%s/%s%s stage %d epoch %d of at most %d: train objective %.4f, val error %.4f, FGSM val error %.4f; "
        "best %s %.4f (epoch %d); %.1f s/epoch, at most %s to go",
        run.spec.name,
        run.regime.name,
        run.tag,
        row["stage"],
        row["epoch"],
        last,
        row["train_loss"],
        row["val_error"],
        row["val_adv_error"],
        selected,
        run.best_score,
        run.best_epoch,
        row["seconds"],
        datetime.timedelta(seconds=round(eta)),
    )


class ProgressLog:
    """Epoch lines at most once a minute per run (an epoch longer than that gets a line of its own)."""

    def __init__(self, every_s: float = 60.0) -> None:
        self.every_s, self.last = every_s, -math.inf

    def __call__(self, run: Run, row: dict, last: int, eta: float, final: bool) -> None:
        now = time.monotonic()
        if final or now - self.last >= self.every_s:
            self.last = now
            _log_epoch(run, row, last, eta)


def _mean_seconds(curves: list[dict]) -> float:
    return sum(r["seconds"] for r in curves) / len(curves) if curves else 0.0


def train_model(
    spec: ModelSpec,
    regime: RegimeSpec,
    data: Tensors,
    seed: int,
    tag: str = "",
    store: StateStore | None = None,
    init: dict[str, torch.Tensor] | None = None,
) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Train one model, from fresh weights or from ``init``; return its final state dict and one curve row
    per epoch.

    Stage 1 trains on the training split and keeps the epoch with the lowest validation error (clean or
    adversarial as ``select_on`` says), stopping after ``patience`` epochs without improvement. With
    ``retrain``, stage 2 continues from that model on training + validation data (paper §6). With a
    ``store``, the run saves its state every ``store.every`` epochs and at the end, and a run that finds a
    saved state goes on from it: the result is bit for bit that of a run never interrupted.
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build(spec, gen).to(data.x_train.device)
    if regime.kind == RegimeKind.NONE:
        return as_given(model, spec, data)
    if init is not None:
        model.load_state_dict(init)
    elif isinstance(model, MPDBM):
        model.init_from_data(data.x_train)
    run = Run(spec, regime, data, gen, tag, model, Sgd(model, spec))
    state = store.load() if store else None
    if state is not None:
        log.info(
            "%s/%s%s: resuming after stage %d epoch %d", spec.name, regime.name, tag, state.stage, state.epoch
        )
        run.restore(state)
        if state.finished:
            return _copy(model.state_dict()), run.curves
    progress = ProgressLog()
    stage, done = (state.stage, state.stage_done) if state else (1, False)
    if stage == 1 and not done:
        train_stage1(run, store, progress)
    if stage == 1:  # stage 1 is over: keep its best weights, from which stage 2 starts
        if run.best is None:
            raise RuntimeError(f"{spec.name}: stage 1 ended without a best model")
        model.load_state_dict(run.best)
        if spec.train.retrain:
            run.sgd, stage, done = Sgd(model, spec), 2, False
    if stage == 2 and not done:
        retrain_on_all(run, store, progress)
    if store is not None:
        store.save(run.snapshot(stage, stage_done=True, finished=True))
    return _copy(model.state_dict()), run.curves


#: a model taken as given whose validation error lies this close to chance's is refused: it is most likely
#: fed inputs of another shape, scale or preprocessing than it was trained on
CHANCE_MARGIN = 0.05


def as_given(model: nn.Module, spec: ModelSpec, data: Tensors) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Regime kind ``none``: the model as it is, no step taken. Its one curve row (stage 1, epoch 0) holds
    the monitored errors, as a trained run's epochs do; a model whose outputs do not fit advbench's inputs,
    or whose validation error is chance's, is refused with what it got."""
    start = time.perf_counter()
    model.eval()
    k = n_outputs(spec)
    check_outputs(model, data.x_val[:16], k, spec.name)
    metrics = epoch_metrics(model, data, spec.train)
    chance = 1 - 1 / k
    if metrics["val_error"] > chance - CHANCE_MARGIN:
        x = data.x_val
        raise ExternalModelError(
            f"models.{spec.name}: validation error {100 * metrics['val_error']:.1f}%, chance's is "
            f"{100 * chance:.0f}%: does it take advbench's inputs, flat vectors of {x.shape[1]} values in "
            f"[{x.min():.3g}, {x.max():.3g}] (input_shape reshapes them)?"
        )
    n, batch = spec.train.monitor_train or len(data.x_train), spec.train.eval_batch_size
    with torch.no_grad():
        total = sum(
            float(train_loss(model, model(data.x_train[i : i + batch]), data.y_train[i : i + batch], "sum"))
            for i in range(0, n, batch)
        )
    row = {"stage": 1, "epoch": 0, "lr": 0.0, "momentum": 0.0, "train_loss": total / n, **metrics}
    return _copy(model.state_dict()), [row | {"seconds": time.perf_counter() - start, "is_best": True}]


def _save(run: Run, store: StateStore | None, stage: int, stage_done: bool) -> None:
    """The state after this epoch, if it is one the store keeps."""
    epoch = run.curves[-1]["epoch"]
    if store is not None and store.every and epoch % store.every == 0:
        store.save(run.snapshot(stage, stage_done))


def train_stage1(run: Run, store: StateStore | None, progress: ProgressLog) -> None:
    """Stage 1 from the run's last epoch: until ``patience`` epochs pass without a better validation
    score, at most ``max_epochs``."""
    t, data = run.spec.train, run.data
    for epoch in range(len(run.curves) + 1, t.max_epochs + 1):
        start, momentum = time.perf_counter(), momentum_at(epoch, t)
        losses, lr = run.sgd.epoch(
            data.x_train, data.y_train, run.regime, t, epoch_lr(epoch, t), momentum, run.gen, data.fixed_train
        )
        if end_stage1_epoch(run, epoch, losses, lr, momentum, time.perf_counter() - start, store, progress):
            break


def end_stage1_epoch(
    run: Run,
    epoch: int,
    losses: torch.Tensor,
    lr: float,
    momentum: float,
    pass_seconds: float,
    store: StateStore | None,
    progress: ProgressLog,
) -> bool:
    """After stage 1's pass over the data (``losses``: its per-example objective): score the model, keep it
    if it is the best so far, record the curve row, save the state; whether stage 1 is over."""
    t, start = run.spec.train, time.perf_counter()
    train_loss = float(losses.mean())
    _check_finite(train_loss, run.spec, run.regime, epoch)
    metrics = epoch_metrics(run.model, run.data, t)
    score = metrics["val_adv_error" if t.select_on == SelectOn.ADVERSARIAL else "val_error"]
    is_best = score < run.best_score
    if is_best:
        run.best, run.best_score = _copy(run.model.state_dict()), score
        run.best_epoch, run.best_loss = epoch, train_loss
    row = {"stage": 1, "epoch": epoch, "lr": lr, "momentum": momentum, "train_loss": train_loss, **metrics}
    seconds = pass_seconds + time.perf_counter() - start
    run.curves.append(row | {"seconds": seconds, "is_best": is_best})
    done = epoch - run.best_epoch >= t.patience or epoch == t.max_epochs
    stage2 = t.retrain_max_epochs if t.retrain else 0
    eta = _mean_seconds(run.curves) * (t.max_epochs - epoch + (stage2 * 1.2))  # stage 2: 60k of 50k
    progress(run, run.curves[-1], t.max_epochs, eta, done)
    _save(run, store, 1, done)
    return done


def all_examples(data: Tensors) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Stage 2's examples: the training and the validation split (and their fixed examples) in one."""
    fixed = None
    if data.fixed_train is not None and data.fixed_val is not None:
        fixed = torch.cat([data.fixed_train, data.fixed_val])
    return torch.cat([data.x_train, data.x_val]), torch.cat([data.y_train, data.y_val]), fixed


def retrain_on_all(run: Run, store: StateStore | None, progress: ProgressLog) -> None:
    """Stage 2: continue on all training + validation examples until the objective on the validation part
    falls to stage 1's training objective at its best epoch, at most ``retrain_max_epochs``."""
    t = run.spec.train
    x_all, y_all, fixed = all_examples(run.data)
    for epoch in range(len(run.curves) + 1, stage2_last(run) + 1):
        start = time.perf_counter()
        losses, lr = run.sgd.epoch(
            x_all, y_all, run.regime, t, t.retrain_lr, t.retrain_momentum, run.gen, fixed
        )
        if end_stage2_epoch(run, epoch, losses, lr, time.perf_counter() - start, store, progress):
            break


def stage2_last(run: Run) -> int:
    """The last epoch stage 2 may run: ``retrain_max_epochs`` after stage 1's."""
    return sum(r["stage"] == 1 for r in run.curves) + run.spec.train.retrain_max_epochs


def end_stage2_epoch(
    run: Run,
    epoch: int,
    losses: torch.Tensor,
    lr: float,
    pass_seconds: float,
    store: StateStore | None,
    progress: ProgressLog,
) -> bool:
    """After stage 2's pass over all examples: record the curve row, save the state; whether the objective
    on the validation part has fallen to stage 1's best training objective (or the epochs ran out)."""
    t, data, start, last = run.spec.train, run.data, time.perf_counter(), stage2_last(run)
    _check_finite(float(losses.mean()), run.spec, run.regime, epoch)
    held_out = float(losses[len(data.x_train) :].mean())
    row = {"stage": 2, "epoch": epoch, "lr": lr, "momentum": t.retrain_momentum}
    row |= {"train_loss": float(losses.mean()), **epoch_metrics(run.model, data, t), "is_best": False}
    run.curves.append(row | {"seconds": pass_seconds + time.perf_counter() - start})
    done = held_out <= run.best_loss or epoch == last
    stage2_rows = [r for r in run.curves if r["stage"] == 2]
    progress(run, run.curves[-1], last, _mean_seconds(stage2_rows) * (last - epoch), done)
    _save(run, store, 2, done)
    return done
