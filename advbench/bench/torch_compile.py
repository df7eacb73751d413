"""``torch.compile`` against eager PyTorch, the way advbench runs: FGSM on attack batches and one clean
training step (forward + backward) on the paper's minibatch, same model, same inputs. advbench runs eager;
these rows are the measurement behind that choice (docs/performance.md). Compilation happens in the
warm-up, outside the timings. Where it fails (no C++ compiler, say) the rows are NaN and the log says why.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import cast

import torch

from advbench.attacks import fgsm
from advbench.bench.fgsm import EPS, batched
from advbench.bench.timing import median, paired_range, time_interleaved
from advbench.bench.train import REGIMES, train_step
from advbench.config.specs import ModelSpec
from advbench.models.architectures import build

log = logging.getLogger(__name__)


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
    # shares eager's parameters: the same model; compiling a Module returns a Module (an OptimizedModule),
    # though torch.compile's signature promises only a callable like its argument
    compiled = cast(torch.nn.Module, torch.compile(eager))
    xt, yt = (t[: spec.train.batch_size] for t in train)
    models = {"eager": eager, "compiled": compiled}
    cases: dict[tuple[str, int], dict[str, Callable[[], object]]] = {
        ("fgsm", attack_batch): {k: _fgsm_over(m, x, y, attack_batch) for k, m in models.items()},
        ("train_step", len(xt)): {k: _step_on(m, xt, yt) for k, m in models.items()},
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


def _fgsm_over(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int
) -> Callable[[], object]:
    attack = batched(lambda xb, yb: fgsm(model, xb, yb, EPS, clip=True), batch_size)
    return lambda: attack(x, y)


def _step_on(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    return lambda: train_step(model, x, y, REGIMES["clean"])
