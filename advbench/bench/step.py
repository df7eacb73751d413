"""Four costs inside a training step, each measured against its alternative: the maxout's max over pieces
(piece-major layout, :class:`advbench.models.architectures.Maxout`, against pylearn2's unit-major one), the
noise controls' objective (one stacked pass, :func:`advbench.training.loop.paired_objective`, against two
passes), glibc's malloc (the tuned thresholds of :mod:`advbench.runtime.allocator` against glibc's
defaults, in fresh processes) and denormal floats (flushed to zero, as tasks run, against computed).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

import torch

from advbench.bench.timing import median, paired_range, time_interleaved
from advbench.config.specs import Arch, ModelSpec, RegimeKind, RegimeSpec
from advbench.models.architectures import build
from advbench.training.loop import Sgd, momentum_at, noise, paired_objective, sgd_step

BATCH = 100  # the paper's minibatch


def maxout_max_rows(name: str, spec: ModelSpec, reps: int, warmup: int) -> list[dict]:
    """Forward + backward of one maxout layer's max over pieces, unit-major ÷ piece-major layout."""
    z = torch.rand(BATCH, spec.units * spec.pieces, requires_grad=True)
    grad = torch.rand(BATCH, spec.units)
    layouts = {
        "unit_major": lambda: z.view(BATCH, spec.units, spec.pieces).amax(dim=2),
        "piece_major": lambda: z.view(BATCH, spec.pieces, spec.units).amax(dim=1),  # as Maxout.forward
    }

    def step(layout: str) -> Callable[[], None]:
        def run() -> None:
            z.grad = None
            layouts[layout]().backward(grad)

        return run

    times = time_interleaved({k: step(k) for k in layouts}, reps * 20, warmup * 20)
    value = median(times["unit_major"]) / median(times["piece_major"])
    keys = {"section": "train", "model": name, "batch_size": BATCH}
    row = {**keys, "metric": "maxout_max_piece_major_speedup", "value": value, "unit": "x"}
    return [row | paired_range(times["unit_major"], times["piece_major"])]


def noise_pass_rows(
    name: str, spec: ModelSpec, x: torch.Tensor, y: torch.Tensor, reps: int, warmup: int
) -> list[dict]:
    """Forward + backward of the noise controls' objective on one minibatch, two passes ÷ one pass."""
    model = build(spec, torch.Generator().manual_seed(0)).to(x.device).train()
    regime = RegimeSpec(name="noise_sign", kind=RegimeKind.NOISE_SIGN, alpha=0.5, eps=0.25)
    xb, yb = x[:BATCH], y[:BATCH]
    one_pass = {"two_passes": False, "one_pass": True}

    def step(kind: str) -> Callable[[], None]:
        def run() -> None:
            for p in model.parameters():
                p.grad = None
            paired_objective(model, xb, xb + noise(xb, regime), yb, regime.alpha, one_pass=one_pass[kind])

        return run

    times = time_interleaved({k: step(k) for k in one_pass}, reps * 4, warmup * 2, str(x.device))
    value = median(times["two_passes"]) / median(times["one_pass"])
    keys = {"section": "train", "model": name, "batch_size": BATCH}
    row = {**keys, "metric": "noise_one_pass_speedup", "value": value, "unit": "x"}
    return [row | paired_range(times["two_passes"], times["one_pass"])]


WARM_STEPS = 1000


def flush_denormal_rows(
    name: str, spec: ModelSpec, x: torch.Tensor, y: torch.Tensor, reps: int, warmup: int
) -> list[dict]:
    """A clean training epoch over ``(x, y)`` with denormal floats computed, ÷ with them flushed to zero
    (:func:`advbench.runtime.task.init_task`). Denormals arise as training goes on: the velocity of a
    weight that gets no gradient decays by the momentum every step, and once the momentum exceeds .5 (from
    the second epoch) the smallest denormal times the momentum rounds back to itself, so such velocities
    stay denormal for good. Two copies of one model therefore each train ``WARM_STEPS`` minibatches (two
    epochs of MNIST's 50k) first, one computing denormals and one flushing them, then take turns, each
    epoch at its own epoch's momentum as training runs it. Tasks flush them: so does this process
    afterwards."""
    t, regime = spec.train, RegimeSpec(name="clean", kind=RegimeKind.CLEAN)

    def epoch(flush: bool) -> Callable[[], None]:
        gen = torch.Generator().manual_seed(0)  # one generator for the weights and the minibatches, as in
        sgd = Sgd(build(spec, gen).to(x.device), spec)  # advbench.training.loop.train_model
        epochs = iter(range(1, 1_000_000))

        def run() -> None:
            torch.set_flush_denormal(flush)
            sgd.epoch(x, y, regime, t, t.lr, momentum_at(next(epochs), t), gen)

        return run

    warm = max(warmup, -(-WARM_STEPS * t.batch_size // len(x)))
    try:
        times = time_interleaved(
            {"computed": epoch(False), "flushed": epoch(True)}, reps, warm, str(x.device)
        )
    finally:
        torch.set_flush_denormal(True)
    keys = {"section": "train", "model": name, "batch_size": t.batch_size}
    value = median(times["computed"]) / median(times["flushed"])
    row = {**keys, "metric": "flush_denormal_speedup", "value": value, "unit": "x"}
    return [row | paired_range(times["computed"], times["flushed"])]


def _step_seconds(units: int, tuned: bool, steps: int, reps: int) -> float:
    """In a fresh process: median seconds of one adversarial training step of a ``units``-unit maxout."""
    from advbench.bench.train import REGIMES, train_step
    from advbench.runtime.allocator import tune_allocator

    if tuned:
        tune_allocator()
    torch.set_num_threads(1)
    spec = ModelSpec(name="maxout", arch=Arch.MAXOUT, units=units)
    model = build(spec, torch.Generator().manual_seed(0))
    sgd = Sgd(model, spec)
    params: list[torch.Tensor] = list(model.parameters())
    x, y = torch.rand(50 * BATCH, 784), torch.randint(0, 10, (50 * BATCH,))

    def step(i: int) -> None:
        rows = slice(i % 50 * BATCH, (i % 50 + 1) * BATCH)
        train_step(model, x[rows], y[rows], REGIMES["adversarial"])
        sgd_step(params, sgd.velocity, 0.01, 0.5)
        sgd.constrain()

    for i in range(3):
        step(i)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        for i in range(steps):
            step(i)
        times.append((time.perf_counter() - start) / steps)
    return median(times)


def malloc_rows(name: str, spec: ModelSpec, rounds: int, steps: int, reps: int) -> list[dict]:
    """An adversarial training step with glibc's malloc defaults and with :mod:`advbench.runtime.allocator`'s,
    each in a fresh Python process (the settings cannot be undone), alternating for ``rounds``."""
    seconds: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for tuned in seconds:
            call = f"print(_step_seconds({spec.units}, {tuned}, {steps}, {reps}))"
            code = f"from advbench.bench.step import _step_seconds; {call}"
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            seconds[tuned].append(float(out.stdout.split()[-1]))
    keys = {"section": "train", "model": name, "batch_size": BATCH}
    default_s, tuned_s = median(seconds[False]), median(seconds[True])
    return [
        {**keys, "metric": "step_seconds_adversarial_default_malloc", "value": default_s, "unit": "s"},
        {**keys, "metric": "step_seconds_adversarial_tuned_malloc", "value": tuned_s, "unit": "s"},
        {**keys, "metric": "tuned_malloc_speedup", "value": default_s / tuned_s, "unit": "x"},
    ]
