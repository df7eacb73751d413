"""Training-epoch cost of the paper's adversarial objective against clean training, beside its floor, and
the peak memory of one attack and one training step.

Floor of (adversarial epoch ÷ clean epoch): the adversarial step is a clean step whose backward also yields
the input gradient, plus a second clean step on the adversarial batch, so it costs
``2 + (multiply-adds of the first layer's input gradient) ÷ (multiply-adds of a clean step)``; a clean step
is the forward, the weight gradients and the input gradients of every layer but the first. This floor
holds because ``objective`` takes the FGSM direction from the clean loss's own backward pass; with
``grad_in_train_mode: false`` (gradient in eval mode, no dropout) the paper's objective needs a separate
forward and backward, and the floor is 3.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

import torch
from torch import nn

from advbench.attacks import fgsm
from advbench.bench.fgsm import EPS
from advbench.bench.timing import median, paired_range, peak_memory_mib, time_interleaved
from advbench.config.specs import ModelSpec, RegimeKind, RegimeSpec
from advbench.models.architectures import build, linear_layers
from advbench.training.loop import Run, Sgd, Tensors, TrainState, epoch_metrics, momentum_at, objective
from advbench.training.stacked import StackedSgd
from advbench.training.state import DiskStore

REGIMES = {
    "clean": RegimeSpec(name="clean", kind=RegimeKind.CLEAN),
    "adversarial": RegimeSpec(
        name="adversarial", kind=RegimeKind.FGSM, alpha=0.5, eps=EPS, grad_in_train_mode=True
    ),
}


def adversarial_floor(model: nn.Module) -> float:
    """``2 + input-gradient MACs ÷ clean-step MACs`` for a stack of linear layers (see the module doc)."""
    macs = [layer.in_features * layer.out_features for layer in linear_layers(model)]
    clean_step = 2 * sum(macs) + sum(macs[1:])
    return 2 + macs[0] / clean_step


def epoch_rows(
    name: str, spec: ModelSpec, x: torch.Tensor, y: torch.Tensor, reps: int, warmup: int, seed: int = 0
) -> list[dict]:
    """Median seconds of one training epoch over ``(x, y)`` per regime (the SGD pass only, without the
    per-epoch monitoring), and their ratio beside its floor."""
    gen = torch.Generator().manual_seed(seed)
    sgds = {regime: Sgd(build(spec, gen).to(x.device), spec) for regime in REGIMES}
    t = spec.train

    def epoch(regime: str) -> Callable[[], object]:
        return lambda: sgds[regime].epoch(x, y, REGIMES[regime], t, t.lr, momentum_at(1, t), gen)

    times = time_interleaved({r: epoch(r) for r in REGIMES}, reps, warmup, str(x.device))
    seconds = {r: median(v) for r, v in times.items()}
    keys = {"section": "train", "model": name, "batch_size": t.batch_size}
    rows = [
        {**keys, "metric": f"epoch_seconds_{r}", "value": s, "unit": f"s per {len(x)} examples"}
        for r, s in seconds.items()
    ]
    ratio = seconds["adversarial"] / seconds["clean"]
    floor = adversarial_floor(sgds["clean"].model)
    rows.append(
        {**keys, "metric": "adversarial_over_clean_epoch", "value": ratio, "unit": "x", "floor": floor}
        | paired_range(times["adversarial"], times["clean"])
    )
    save = state_save_seconds(sgds["clean"], reps)
    full_epoch = seconds["clean"] * FULL_EPOCH / len(x)  # the timed subset scaled to a whole epoch
    rows.append({**keys, "metric": "state_save_seconds", "value": save, "unit": "s per saved training state"})
    rows.append(
        {**keys, "metric": "state_save_share_of_clean_epoch", "value": save / full_epoch}
        | {"unit": f"1 (one save ÷ a clean epoch of {FULL_EPOCH} examples)"}
    )
    return rows


STACK = 5  # the seeds of a job


def stacked_rows(
    name: str, spec: ModelSpec, x: torch.Tensor, y: torch.Tensor, reps: int, warmup: int
) -> list[dict]:
    """Seconds per seed of a clean and an adversarial training epoch over ``(x, y)``: ``STACK`` seeds one
    after another (one task each) and as one stacked model (``ray.stack_seeds``); separate ÷ stacked."""
    keys = {"section": "train", "model": name, "batch_size": spec.train.batch_size}
    unit = f"s per seed and epoch of {len(x)} examples ({STACK} seeds)"
    rows = []
    for regime_name, regime in REGIMES.items():
        times = _stacked_times(spec, regime, x, y, reps, warmup)
        for kind, values in times.items():
            metric = f"epoch_seconds_per_seed_{kind}_{regime_name}"
            rows.append({**keys, "metric": metric, "value": median(values) / STACK, "unit": unit})
        value = median(times["separate"]) / median(times["stacked"])
        row = {**keys, "metric": f"stacked_seeds_speedup_{regime_name}", "value": value, "unit": "x"}
        rows.append(row | paired_range(times["separate"], times["stacked"]))
    return rows


def _stacked_times(
    spec: ModelSpec, regime: RegimeSpec, x: torch.Tensor, y: torch.Tensor, reps: int, warmup: int
) -> dict[str, list[float]]:
    data, t = Tensors(x, y, x[:1], y[:1]), spec.train
    runs = []
    for seed in range(STACK):
        gen = torch.Generator().manual_seed(seed)
        model = build(spec, gen).to(x.device)
        runs.append(Run(spec, regime, data, gen, "", model, Sgd(model, spec)))
    stacked = StackedSgd(runs, list(range(STACK)), x.device)
    momentum = momentum_at(1, t)

    def separate() -> None:
        for run in runs:
            run.sgd.epoch(x, y, regime, t, t.lr, momentum, run.gen)

    def together() -> None:
        stacked.epoch(x, y, regime, t.lr, momentum)

    return time_interleaved({"separate": separate, "stacked": together}, reps, warmup, str(x.device))


FULL_EPOCH = 50_000
# per-epoch monitoring, (training, validation, validation under FGSM) examples scored: the default's
# (config.yaml), the paper's recipe's (the best epoch chosen on all 10k, each also under FGSM) and the
# headline preset's (the best epoch on all 10k, the FGSM curve on the first 1000)
MONITORING = {
    "default": (1000, 1000, 1000),
    "paper_recipe": (1000, 10_000, 10_000),
    "headline": (1000, 10_000, 1000),
}


def monitoring_rows(
    name: str, spec: ModelSpec, x: torch.Tensor, y: torch.Tensor, clean_epoch: float, reps: int, warmup: int
) -> list[dict]:
    """Median seconds of one epoch's monitoring (:func:`epoch_metrics`) at the default's and the paper
    recipe's sizes, and its share of a clean epoch of ``FULL_EPOCH`` examples (``clean_epoch`` seconds)."""
    model = build(spec, torch.Generator().manual_seed(0)).to(x.device)
    data = Tensors(x, y, x, y)
    sizes = {k: tuple(min(n, len(x)) for n in ns) for k, ns in MONITORING.items()}

    def monitor(n_train: int, n_val: int, n_adv: int) -> Callable[[], object]:
        t = replace(spec.train, monitor_train=n_train, monitor_val=n_val, monitor_val_adv=n_adv)
        return lambda: epoch_metrics(model, data, t)

    times = time_interleaved({k: monitor(*n) for k, n in sizes.items()}, reps, warmup, str(x.device))
    rows = []
    for k, (n_train, n_val, n_adv) in sizes.items():
        keys = {"section": "train", "model": name, "batch_size": spec.train.eval_batch_size}
        seconds = median(times[k])
        unit = f"s per epoch ({n_train} training + {n_val} validation examples, {n_adv} of them under FGSM)"
        share = {"value": seconds / clean_epoch, "unit": f"1 (÷ a clean epoch of {FULL_EPOCH} examples)"}
        rows.append({**keys, "metric": f"monitoring_seconds_{k}", "value": seconds, "unit": unit})
        rows.append({**keys, "metric": f"monitoring_share_of_clean_epoch_{k}", **share})
    return rows


def state_save_seconds(sgd: Sgd, reps: int) -> float:
    """Median seconds to write one training task's whole saved state (weights, velocities, best weights,
    the generators' states) as training does after every ``train.save_every`` epochs."""
    weights = {k: v.detach().clone() for k, v in sgd.model.state_dict().items()}
    names = [name for name, _ in sgd.model.named_parameters()]
    rng = {"torch": torch.get_rng_state(), "task": torch.Generator().get_state()}
    best = {k: v.clone() for k, v in weights.items()}
    state = TrainState(1, 1, sgd.step, weights, dict(zip(names, sgd.velocity, strict=True)), best,
                       0.5, 1, 0.5, [], rng)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        store = DiskStore(Path(tmp) / "seed=0.state", {"spec": {}})
        return median([_timed(lambda: store.save(state)) for _ in range(max(reps, 3))])


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def memory_rows(
    name: str, spec: ModelSpec, x: torch.Tensor, y: torch.Tensor, attack_batch: int
) -> list[dict]:
    """Peak tensor memory of one FGSM batch and of one training step of each regime."""
    model = build(spec, torch.Generator().manual_seed(0)).to(x.device)
    device = str(x.device)
    xa, ya = x[:attack_batch], y[:attack_batch]
    xt, yt = x[: spec.train.batch_size], y[: spec.train.batch_size]
    # (metric, batch size) -> one step
    steps: dict[tuple[str, int], Callable[[], object]] = {
        ("attack_step", attack_batch): lambda: fgsm(model.eval(), xa, ya, EPS, clip=True)
    }
    for regime, r in REGIMES.items():
        steps[(f"train_step_{regime}", spec.train.batch_size)] = partial(train_step, model, xt, yt, r)
    rows = []
    for (metric, batch), step in steps.items():
        step()  # warm-up: lazily allocated state is not part of a step
        value = peak_memory_mib(step, device)
        rows.append({"section": "memory", "model": name, "batch_size": batch, "metric": f"peak_{metric}"})
        rows[-1] |= {"value": value, "unit": "MiB"}
    return rows


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, regime: RegimeSpec) -> None:
    model.train()
    for p in model.parameters():
        p.grad = None
    objective(model, x, y, regime)
