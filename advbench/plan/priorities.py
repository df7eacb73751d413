"""Scheduling hints for Snakemake (``priority:``): the most expensive training jobs start first.

With as many job slots as cores, a long job that starts last runs alone at the end of the run while the other
cores wait for it (in the default run the 1600-unit maxouts take minutes, the regressions seconds).
Longest-first is the classic cure; the estimate only has to rank jobs, so it counts the multiply-adds of
one training pass and ignores monitoring.
"""

from __future__ import annotations

from typing import Any

from advbench.config.runs import run_entries, run_model_spec
from advbench.config.specs import Arch, ModelSpec, RegimeKind, RegimeSpec, regime_spec
from advbench.data.registry import dataset_info
from advbench.models.dbm import mean_field_cost

N_CLASSES = 10
IMAGE_MODEL_MACS = 1e9  # conv maxout and GoogLeNet: far above every MLP, exact rank not needed
FULL_TRAIN = 50_000  # examples per epoch without ``n_train`` (MNIST; CIFAR-10's 40k ranks the same)


def passes(regime: RegimeSpec) -> float:
    """Forward-backward passes per training example and step: none for a model taken as given, one clean,
    ``steps`` more for PGD's examples, two for every other objective (FGSM, noise)."""
    if regime.kind == RegimeKind.NONE:
        return 0.0
    if regime.kind == RegimeKind.CLEAN:
        return 1.0
    return 2.0 + (regime.attack_steps if regime.kind == RegimeKind.PGD else 0)


def forward_macs(spec: ModelSpec) -> float:
    """Multiply-adds of one example's forward pass (image models: a constant above every MLP)."""
    n_in = dataset_info(spec.dataset).n_inputs
    if spec.arch == Arch.MAXOUT:
        width = spec.units * spec.pieces
        return n_in * width + (spec.hidden_layers - 1) * spec.units * width + spec.units * N_CLASSES
    if spec.arch in (Arch.CONV_MAXOUT, Arch.GOOGLENET):
        return IMAGE_MODEL_MACS
    if spec.arch == Arch.LENET:
        return lenet_macs(dataset_info(spec.dataset).shape)
    if spec.arch == Arch.MP_DBM:
        return mean_field_cost(spec, n_in, N_CLASSES)
    return n_in * N_CLASSES


def lenet_macs(shape: tuple[int, int, int]) -> float:
    """Multiply-adds of :class:`~advbench.models.architectures.LeNet`: two valid 5x5 convolutions (10 and
    20 maps), each followed by a 2x2 pool, then 50 hidden units and 10 outputs (MNIST: 480,500)."""
    c, h, w = shape
    h1, w1 = h - 4, w - 4
    h2, w2 = h1 // 2 - 4, w1 // 2 - 4
    flat = 20 * (h2 // 2) * (w2 // 2)
    return h1 * w1 * 10 * c * 25 + h2 * w2 * 20 * 10 * 25 + flat * 50 + 50 * N_CLASSES


def train_cost(config: dict[str, Any], run: str) -> float:
    """Multiply-adds of a run's training passes, all members: an estimate of its job's cost."""
    spec, entry = run_model_spec(config, run), run_entries(config)[run]
    regime = regime_spec(entry["regime"], config["regimes"][entry["regime"]])
    examples = spec.train.max_epochs * (spec.train.n_train or FULL_TRAIN) * entry.get("members", 1)
    return examples * forward_macs(spec) * passes(regime)


def train_priorities(config: dict[str, Any]) -> dict[str, int]:
    """Snakemake priority of every run's training job: 1 + the number of runs that cost less (the most
    expensive runs first); every other job keeps priority 0."""
    costs = {run: train_cost(config, run) for run in run_entries(config)}
    return {run: 1 + sum(other < cost for other in costs.values()) for run, cost in costs.items()}
