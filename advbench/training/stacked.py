"""Several seeds of one maxout MLP trained as one stacked model: every layer a batched matrix multiply.

On a GPU a 240-unit maxout's minibatch step is too small to fill the device: the seeds of a job, trained one
task each, spend their time launching kernels. Stacked, the seeds' weights are tensors with a leading seed
axis and one step trains them all, in the same number of kernel launches as one seed. Each seed keeps what
makes it that seed: its initial weights and its minibatch order come from its own generator exactly as in
:func:`advbench.training.loop.train_model`; its dropout masks come from the one global generator the stack
shares, so a stacked seed is a different draw of the same training (without dropout it computes the same
numbers, to rounding). Each seed also keeps its own early stopping and its own stage 2: a seed whose stage
is over leaves the stack (no step computes it) while the others go on, and the stages switch when every seed
is done.

Supported: the ``maxout`` architecture with the clean objective, the noise controls and FGSM adversarial
training on the input (:func:`stackable`); everything else trains one task per seed. ``ray.stack_seeds``
decides where it is used (:func:`advbench.jobs.train.stacks`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import cast

import torch
from torch import nn

from advbench.config.specs import Arch, ModelSpec, RegimeKind, RegimeSpec
from advbench.models.architectures import Maxout, MaxoutMLP, ScaledDropout, build, cap_rows, scaled_dropout
from advbench.training.loop import (
    NOISE_KINDS,
    SEED_STACK,
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
    objective,
    sgd_step,
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
        template = cast(MaxoutMLP, models[0])
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
                h = scaled_dropout(h, keep, scale)
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


class StackedSgd:
    """pylearn2's momentum SGD and max column norm (:class:`advbench.training.loop.Sgd`) for a stack of
    ``runs[i]`` for each ``i`` in ``seeds``, built from their current weights and velocities;
    :meth:`unstack` copies them back."""

    def __init__(self, runs: Sequence[Run], seeds: list[int], device: torch.device) -> None:
        self.seeds, self.runs = seeds, [runs[i] for i in seeds]
        self.model = StackedMaxout([run.model for run in self.runs]).to(device)
        self.params = list(self.model.stack)
        velocities = zip(*(run.sgd.velocity for run in self.runs), strict=True)
        self.velocity = [torch.stack(vs).clone() for vs in velocities]

    def step(self, lr: float, momentum: float) -> None:
        with torch.no_grad():
            sgd_step(self.params, self.velocity, lr, momentum, self.runs[0].sgd.scales)
            if (cap := self.runs[0].spec.max_col_norm) is not None:
                cap_rows(cap, self.model.weights())

    def epoch(
        self, x: torch.Tensor, y: torch.Tensor, regime: RegimeSpec, lr0: float, momentum: float
    ) -> tuple[torch.Tensor, float]:
        """One pass of every seed over ``(x, y)``, each in its own random minibatches; per-example objective
        values ``(seeds, examples)`` and the last lr."""
        t, device = self.runs[0].spec.train, x.device
        orders = torch.stack([torch.randperm(len(x), generator=run.gen) for run in self.runs]).to(device)
        losses = torch.zeros(len(self.runs), len(x), device=device)
        rows = torch.arange(len(self.runs), device=device)[:, None]
        self.model.train()
        step, lr = self.runs[0].sgd.step, lr0
        for idx in orders.split(t.batch_size, dim=1):
            for p in self.params:
                p.grad = None
            losses[rows, idx] = objective(self.model, x[idx], y[idx], regime, layout=SEED_STACK)
            lr = lr_at(step, t, lr0)
            self.step(lr, momentum)
            step += 1
        for run in self.runs:
            run.sgd.step = step
        return losses, lr

    def unstack(self) -> None:
        """Copy every seed's weights and velocities back into its run (for scoring and saving)."""
        for i, run in enumerate(self.runs):
            run.model.load_state_dict(self.model.state_dict_of(i))
            run.sgd.velocity = [v[i].clone() for v in self.velocity]


def live_stack(
    stack: StackedSgd | None, runs: list[Run], done: list[bool], device: torch.device
) -> StackedSgd:
    """The stack of the seeds still training: ``stack`` while they are its seeds, else a new one. A seed
    whose stage is over leaves the stack, so no step computes it."""
    live = [i for i, finished in enumerate(done) if not finished]
    if stack is not None and stack.seeds == live:
        return stack
    return StackedSgd(runs, live, device)


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
    stack: StackedSgd | None = None
    first = min(len(run.curves) for i, run in enumerate(runs) if not done[i]) + 1
    for epoch in range(first, t.max_epochs + 1):
        stack = live_stack(stack, runs, done, data.x_train.device)
        start, momentum = time.perf_counter(), momentum_at(epoch, t)
        losses, lr = stack.epoch(data.x_train, data.y_train, runs[0].regime, epoch_lr(epoch, t), momentum)
        stack.unstack()
        share = (time.perf_counter() - start) / len(stack.runs)  # the pass's seconds, shared by its seeds
        for i, loss in zip(stack.seeds, losses, strict=True):
            done[i] = end_stage1_epoch(runs[i], epoch, loss, lr, momentum, share, stores[i], progress)
        if all(done):
            return


def _stage2(
    runs: list[Run], stores: Sequence[StateStore | None], done: list[bool], progress: ProgressLog
) -> None:
    t = runs[0].spec.train
    x_all, y_all, _ = all_examples(runs[0].data)
    stack: StackedSgd | None = None
    while not all(done):
        stack = live_stack(stack, runs, done, x_all.device)
        start = time.perf_counter()
        losses, lr = stack.epoch(x_all, y_all, runs[0].regime, t.retrain_lr, t.retrain_momentum)
        stack.unstack()
        share = (time.perf_counter() - start) / len(stack.runs)
        for i, loss in zip(stack.seeds, losses, strict=True):
            run = runs[i]
            epoch = len(run.curves) + 1
            if epoch > stage2_last(run):
                raise RuntimeError(f"{run.spec.name}{run.tag}: stage 2 went past its last epoch {epoch - 1}")
            done[i] = end_stage2_epoch(run, epoch, loss, lr, share, stores[i], progress)
