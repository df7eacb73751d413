"""Several seeds of one maxout MLP trained as one stacked model: every layer a batched matrix multiply.

On a GPU a 240-unit maxout's minibatch step is too small to fill the device: the seeds of a job, trained one
task each, spend their time launching kernels. Stacked, the seeds' weights are tensors with a leading seed
axis and one step trains them all, in the same number of kernel launches as one seed. Each seed keeps what
makes it that seed: its initial weights and its minibatch order come from its own generator exactly as in
:func:`advbench.training.loop.train_model`; its dropout masks come from the one global generator the stack
shares, so a stacked seed is a different draw of the same training (without dropout it computes the same
numbers, to rounding). Each seed also keeps its own early stopping and its own stage 2: a seed whose stage
is over is frozen (its update masked) while the others go on, and the stages switch when every seed is done.

Supported: the ``maxout`` architecture with the clean objective, the noise controls and FGSM adversarial
training on the input (:func:`stackable`); everything else trains one task per seed. ``ray.stack_seeds``
decides where it is used (:func:`advbench.jobs.train.stacks`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import torch
from torch import nn

from advbench.config.specs import Arch, ModelSpec, RegimeKind, RegimeSpec
from advbench.models.architectures import Maxout, MaxoutMLP, ScaledDropout, build
from advbench.models.heads import attack_loss, train_loss
from advbench.training.loop import (
    NOISE_KINDS,
    ProgressLog,
    Run,
    Sgd,
    StateStore,
    Tensors,
    TrainState,
    all_examples,
    end_stage1_epoch,
    end_stage2_epoch,
    epoch_lr,
    lr_at,
    momentum_at,
    noise,
    stage2_last,
)

log = logging.getLogger(__name__)


def stackable(spec: ModelSpec, regime: RegimeSpec) -> bool:
    """Whether :func:`train_stacked` can train this (model, regime)."""
    if spec.arch != Arch.MAXOUT or regime.l1_first_layer:
        return False
    if regime.kind == RegimeKind.CLEAN or regime.kind in NOISE_KINDS:
        return True
    return regime.kind == RegimeKind.FGSM and not regime.hidden_layer


class StackedMaxout(nn.Module):
    """``len(models)`` maxout MLPs of one architecture as one module: inputs ``(seeds, batch, features)``,
    outputs ``(seeds, batch, classes)``; parameter ``i`` is the stack of every model's parameter ``i``."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        if not all(isinstance(m, MaxoutMLP) for m in models):
            raise TypeError(f"only maxout MLPs stack, not {sorted({type(m).__name__ for m in models})}")
        template = models[0]
        assert isinstance(template, MaxoutMLP)
        self.head = template.head
        self.names = [name for name, _ in template.named_parameters()]
        self.stack = nn.ParameterList(
            nn.Parameter(torch.stack([dict(m.named_parameters())[n].detach() for m in models]).clone())
            for n in self.names
        )
        # (keep, scale, pieces): dropout before each linear layer, then the max over pieces (1: none)
        self.layers: list[tuple[float, float, int]] = []
        modules = list(template.net)
        for drop, layer in zip(modules[::2], modules[1::2], strict=True):
            if not isinstance(drop, ScaledDropout):
                raise TypeError(f"expected dropout before every layer, got {type(drop).__name__}")
            self.layers.append((drop.keep, drop.scale, layer.pieces if isinstance(layer, Maxout) else 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(2)
        for i, (keep, scale, pieces) in enumerate(self.layers):
            if self.training and (keep < 1.0 or scale != 1.0):
                h = h * (torch.rand_like(h) < keep) * scale
            weight, bias = self.stack[2 * i], self.stack[2 * i + 1]
            h = torch.baddbmm(bias[:, None, :], h, weight.transpose(1, 2))
            if pieces > 1:
                h = h.view(h.shape[0], h.shape[1], pieces, -1).amax(dim=2)
        return h

    def state_dict_of(self, i: int) -> dict[str, torch.Tensor]:
        """Model ``i``'s parameters under :class:`MaxoutMLP`'s names."""
        return {n: p[i].detach().clone() for n, p in zip(self.names, self.stack, strict=True)}

    def weights(self) -> list[torch.Tensor]:
        """The stacked weight matrices ``(seeds, out, in)``, input layer first."""
        return [p for p in self.stack if p.dim() == 3]


def per_seed(model: StackedMaxout, out: torch.Tensor, y: torch.Tensor, attack: bool = False) -> torch.Tensor:
    """The training loss (or the attack's cost) of every example, ``(seeds, batch)``."""
    loss = attack_loss if attack else train_loss
    return loss(model, out.flatten(0, 1), y.flatten(), "none").view(y.shape)


def backward_means(values: torch.Tensor, weight: float = 1.0) -> None:
    """Backpropagate ``weight`` times every seed's mean: each seed's gradient is that of its own mean."""
    (weight * values.mean(dim=1).sum()).backward()


def stacked_objective(
    model: StackedMaxout, x: torch.Tensor, y: torch.Tensor, regime: RegimeSpec
) -> torch.Tensor:
    """:func:`advbench.training.loop.objective` for a stack: backpropagate the regime's loss of every seed
    into the stacked ``.grad``; return the per-example values ``(seeds, batch)``."""
    if regime.kind == RegimeKind.CLEAN:
        clean = per_seed(model, model(x), y)
        backward_means(clean)
        return clean.detach()
    if regime.kind in NOISE_KINDS:  # both terms in one pass, as paired_objective does
        both = per_seed(model, model(torch.cat([x, x + noise(x, regime)], dim=1)), torch.cat([y, y], dim=1))
        clean, other = both.chunk(2, dim=1)
        mixed = regime.alpha * clean + (1 - regime.alpha) * other
        backward_means(mixed)
        return mixed.detach()
    x_in = x.detach().clone().requires_grad_(True)
    if regime.grad_in_train_mode:
        clean = per_seed(model, model(x_in), y)
        if regime.alpha > 0:
            backward_means(clean, regime.alpha)
            grad = x_in.grad
        else:
            (grad,) = torch.autograd.grad(clean.mean(dim=1).sum(), x_in)
    else:  # the gradient in eval mode (no dropout), as advbench.attacks.fgsm takes it
        model.eval()
        (grad,) = torch.autograd.grad(per_seed(model, model(x_in), y, attack=True).sum(), x_in)
        model.train()
        clean = per_seed(model, model(x), y)
        backward_means(clean, regime.alpha)
    assert grad is not None
    x_adv = x + regime.eps * grad.sign()
    if regime.clip:
        x_adv = x_adv.clamp(0.0, 1.0)
    adv = per_seed(model, model(x_adv.detach()), y)
    backward_means(adv, 1 - regime.alpha)
    return (regime.alpha * clean + (1 - regime.alpha) * adv).detach()


class StackedSgd:
    """pylearn2's momentum SGD and max column norm (:class:`advbench.training.loop.Sgd`) on a stack, with a
    mask of the seeds still training: a frozen seed's weights stay as they are."""

    def __init__(self, model: StackedMaxout, runs: Sequence[Run]) -> None:
        self.model, self.runs = model, runs
        self.velocity = [
            torch.stack([run.sgd.velocity[i] for run in runs]).clone() for i in range(len(model.names))
        ]

    def step(self, lr: float, momentum: float, active: torch.Tensor) -> None:
        with torch.no_grad():
            for p, v in zip(self.model.stack, self.velocity, strict=True):
                mask = active.view(-1, *([1] * (p.dim() - 1)))
                assert p.grad is not None
                v.mul_(momentum).sub_(p.grad, alpha=lr).mul_(mask)
                p.add_(v)
            if (cap := self.runs[0].spec.max_col_norm) is not None:
                for w in self.model.weights():
                    w.mul_(torch.clamp(cap / w.norm(dim=2, keepdim=True).clamp_min(1e-12), max=1.0))

    def epoch(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        regime: RegimeSpec,
        lr0: float,
        momentum: float,
        active: list[bool],
    ) -> tuple[torch.Tensor, float]:
        """One pass of every active seed over ``(x, y)``, each in its own random minibatches; per-example
        objective values ``(seeds, examples)`` and the last lr. Frozen seeds draw no minibatch order (their
        generator stays where their stage left it) and follow the first active seed's."""
        t, device = self.runs[0].spec.train, x.device
        orders = {
            i: torch.randperm(len(x), generator=run.gen) for i, run in enumerate(self.runs) if active[i]
        }
        first = orders[min(orders)]
        batches = torch.stack([orders.get(i, first) for i in range(len(self.runs))]).to(device)
        mask = torch.tensor(active, dtype=x.dtype, device=device)
        losses = torch.zeros(len(self.runs), len(x), device=device)
        rows = torch.arange(len(self.runs), device=device)[:, None]
        self.model.train()
        step, lr = next(run.sgd.step for i, run in enumerate(self.runs) if active[i]), lr0
        for idx in batches.split(t.batch_size, dim=1):
            for p in self.model.stack:
                p.grad = None
            losses[rows, idx] = stacked_objective(self.model, x[idx], y[idx], regime)
            lr = lr_at(step, t, lr0)
            self.step(lr, momentum, mask)
            step += 1
        for i, run in enumerate(self.runs):
            if active[i]:
                run.sgd.step = step
        return losses, lr

    def unstack(self, active: list[bool]) -> None:
        """Copy every active seed's weights and velocities back into its run (for scoring and saving)."""
        for i, run in enumerate(self.runs):
            if active[i]:
                run.model.load_state_dict(self.model.state_dict_of(i))
                run.sgd.velocity = [v[i].clone() for v in self.velocity]


def train_stacked(
    spec: ModelSpec,
    regime: RegimeSpec,
    data: Tensors,
    seeds: Sequence[int],
    tags: Sequence[str],
    stores: Sequence[StateStore | None],
) -> list[tuple[dict[str, torch.Tensor], list[dict]]]:
    """:func:`advbench.training.loop.train_model` for every seed at once; per seed its final state dict and
    curve rows. Each seed saves its state in its own store; a job resumes from them when the unfinished
    seeds' states agree on their stage and epoch (a kill between two seeds' saves of one epoch leaves them
    apart: then the job starts over, and says so)."""
    if not stackable(spec, regime):
        raise ValueError(f"{spec.name}-{regime.name}: not stackable (training.stacked.stackable)")
    torch.manual_seed(seeds[0])
    runs = []
    for seed, tag in zip(seeds, tags, strict=True):
        gen = torch.Generator().manual_seed(seed)
        model = build(spec, gen).to(data.x_train.device)
        runs.append(Run(spec, regime, data, gen, tag, model, Sgd(model, spec)))
    stage, done = _resume(runs, stores)
    progress = ProgressLog()
    if stage == 1 and not all(done):
        _stage1(runs, stores, done, progress)
    if stage == 1:  # every seed's stage 1 is over: stage 2 starts from each one's best weights
        for run in runs:
            if run.best is None:
                raise RuntimeError(f"{spec.name}{run.tag}: stage 1 ended without a best model")
            run.model.load_state_dict(run.best)
            if spec.train.retrain:
                run.sgd = Sgd(run.model, spec)
        stage, done = (2, [False] * len(runs)) if spec.train.retrain else (1, done)
    if stage == 2 and not all(done):
        _stage2(runs, stores, done, progress)
    for run, store in zip(runs, stores, strict=True):
        if store is not None:
            store.save(run.snapshot(stage, stage_done=True, finished=True))
    return [({k: v.detach().clone() for k, v in run.model.state_dict().items()}, run.curves) for run in runs]


def _resume(runs: list[Run], stores: Sequence[StateStore | None]) -> tuple[int, list[bool]]:
    """Restore every seed's saved state when they fit together; the stage and which seeds are done."""
    states = [store.load() if store else None for store in stores]
    if all(s is None for s in states):
        return 1, [False] * len(runs)
    if _consistent(states):
        saved: list[TrainState] = [s for s in states if s is not None]
        # restored oldest first: the last restore sets torch's global generator, which the stack shares, to
        # its state at the latest save
        for i in sorted(range(len(runs)), key=lambda i: (saved[i].stage, saved[i].epoch)):
            runs[i].restore(saved[i])
        stage = max(s.stage for s in saved)
        log.info("%s/%s: resuming %d stacked seeds in stage %d", runs[0].spec.name, runs[0].regime.name,
                 len(runs), stage)  # fmt: skip
        return stage, [s.stage_done or s.finished for s in saved]
    log.warning(
        "%s/%s: the seeds' saved states are from different epochs (a kill between their saves): "
        "training them again from the start", runs[0].spec.name, runs[0].regime.name,
    )  # fmt: skip
    return 1, [False] * len(runs)


def _consistent(states: list[TrainState | None]) -> bool:
    """Every seed has a state, all in one stage, and the seeds still training share their epoch."""
    if any(s is None for s in states):
        return False
    saved = [s for s in states if s is not None]
    if len({s.stage for s in saved}) != 1:
        return False
    return len({s.epoch for s in saved if not (s.stage_done or s.finished)}) <= 1


def _stage1(
    runs: list[Run], stores: Sequence[StateStore | None], done: list[bool], progress: ProgressLog
) -> None:
    t, data = runs[0].spec.train, runs[0].data
    stacked = StackedMaxout([run.model for run in runs]).to(data.x_train.device)
    sgd = StackedSgd(stacked, runs)
    first = min(len(run.curves) for i, run in enumerate(runs) if not done[i]) + 1
    for epoch in range(first, t.max_epochs + 1):
        active = [not d for d in done]
        start, momentum = time.perf_counter(), momentum_at(epoch, t)
        losses, lr = sgd.epoch(
            data.x_train, data.y_train, runs[0].regime, epoch_lr(epoch, t), momentum, active
        )
        sgd.unstack(active)
        share = (time.perf_counter() - start) / sum(active)  # the pass's seconds, shared by its seeds
        for i, run in enumerate(runs):
            if active[i]:
                done[i] = end_stage1_epoch(run, epoch, losses[i], lr, momentum, share, stores[i], progress)
        if all(done):
            return


def _stage2(
    runs: list[Run], stores: Sequence[StateStore | None], done: list[bool], progress: ProgressLog
) -> None:
    t = runs[0].spec.train
    x_all, y_all, _ = all_examples(runs[0].data)
    stacked = StackedMaxout([run.model for run in runs]).to(x_all.device)
    sgd = StackedSgd(stacked, runs)
    while not all(done):
        active = [not d for d in done]
        start = time.perf_counter()
        losses, lr = sgd.epoch(x_all, y_all, runs[0].regime, t.retrain_lr, t.retrain_momentum, active)
        sgd.unstack(active)
        share = (time.perf_counter() - start) / sum(active)
        for i, run in enumerate(runs):
            if active[i]:
                epoch = len(run.curves) + 1
                assert epoch <= stage2_last(run)
                done[i] = end_stage2_epoch(run, epoch, losses[i], lr, share, stores[i], progress)
