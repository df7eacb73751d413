"""``torch.compile`` against eager PyTorch, the way advbench runs: FGSM on attack batches and one clean
training step (forward + backward) on the paper's minibatch, same model, same inputs. advbench runs eager;
these rows are the measurement behind that choice (README, Performance). Compilation happens in the
warm-up, outside the timings. Where it fails (no C++ compiler, say) the rows are NaN and the log says why.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import torch
from torch import nn

from advbench.attacks import fgsm
from advbench.bench_fgsm import EPS
from advbench.bench_timing import median, paired_range, time_interleaved
from advbench.config import ModelSpec, RegimeSpec
from advbench.models import build
from advbench.training import objective

log = logging.getLogger(__name__)
CLEAN = RegimeSpec(name="clean", kind="clean")


def fgsm_run(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> Callable[[], None]:
    def run() -> None:
        for i in range(0, len(x), batch_size):
            fgsm(model, x[i : i + batch_size], y[i : i + batch_size], EPS, clip=True)

    return run


def train_step_run(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        model.train()
        for p in model.parameters():
            p.grad = None
        objective(model, x, y, CLEAN)

    return run


def compile_rows(
    name: str,
    spec: ModelSpec,
    attack: tuple[torch.Tensor, torch.Tensor],
    train: tuple[torch.Tensor, torch.Tensor],
    attack_batch: int,
    reps: int,
    warmup: int,
) -> list[dict]:
    """Eager ÷ compiled seconds (above 1: compiling helps) of FGSM over the ``attack`` images in batches
    of ``attack_batch`` and of one training step on the first ``spec.train.batch_size`` of ``train``."""
    x, y = attack
    eager = build(spec, torch.Generator().manual_seed(0)).to(x.device)
    compiled = torch.compile(eager)  # shares eager's parameters: the same model
    xt, yt = (t[: spec.train.batch_size] for t in train)
    models = {"eager": eager, "compiled": compiled}
    cases = {
        ("fgsm", attack_batch): {k: fgsm_run(m, x, y, attack_batch) for k, m in models.items()},
        ("train_step", len(xt)): {k: train_step_run(m, xt, yt) for k, m in models.items()},
    }
    rows = []
    for (what, batch), fns in cases.items():
        keys = {"section": "train", "model": name, "batch_size": batch, "unit": "x"}
        metric = f"compile_speedup_{what}"
        try:
            times = time_interleaved(fns, reps, max(warmup, 1), str(x.device))
        except Exception as err:  # torch.compile needs a working C++ toolchain on CPU
            log.warning("torch.compile failed for %s %s: %s", name, what, err)
            rows.append({**keys, "metric": metric, "value": math.nan})
            continue
        value = median(times["eager"]) / median(times["compiled"])
        rows.append(
            {**keys, "metric": metric, "value": value} | paired_range(times["eager"], times["compiled"])
        )
    return rows
