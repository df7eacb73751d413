"""The train job: one Ray task per seed (and ensemble member), or one for all of them stacked, then every
curve in one file."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

import torch

from advbench.attacks import fgsm
from advbench.config.specs import Init, ModelSpec, RegimeSpec
from advbench.data.inputs import restrict_classes
from advbench.jobs.common import (
    input_tensor,
    label_tensor,
    load_checkpoint,
    subset_data,
    where,
    write_outputs,
)
from advbench.results import checkpoints
from advbench.runtime.ray import RaySettings, run_tasks
from advbench.runtime.task import init_task, task_device
from advbench.training.loop import Tensors, task_seed, train_model
from advbench.training.stacked import stackable, train_stacked
from advbench.training.state import DiskStore, fingerprint, spec_dicts, state_path

log = logging.getLogger(__name__)


def train_tensors(data: dict, spec: ModelSpec, device: str) -> Tensors:
    """The model's classes (all, or its ``classes`` subset), the first ``train.n_train`` training examples."""
    data = restrict_classes(data, spec.classes)
    n = spec.train.n_train
    return Tensors(
        input_tensor(data["x_train"][:n], data, device),
        label_tensor(data["y_train"][:n], device),
        input_tensor(data["x_val"], data, device),
        label_tensor(data["y_val"], device),
    )


def fixed_examples(
    source: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, regime: RegimeSpec, batch: int
) -> torch.Tensor:
    """The static regime's fixed examples: FGSM (eps and clip of the regime, true labels) of the trained
    source model in eval mode, made once, batch by batch."""
    batches = zip(x.split(batch), y.split(batch), strict=True)
    return torch.cat([fgsm(source, xb, yb, regime.eps, clip=regime.clip) for xb, yb in batches])


def with_fixed_examples(
    tensors: Tensors, spec: ModelSpec, regime: RegimeSpec, source_checkpoint: str
) -> tuple[Tensors, dict[str, torch.Tensor]]:
    """``tensors`` with the fixed examples of the source model (``source_checkpoint``: the same model entry
    and seed under ``regime.source_regime``) on both splits, and the source model's weights."""
    source = load_checkpoint(spec, source_checkpoint, str(tensors.x_train.device))
    batch = spec.train.eval_batch_size
    fixed = {
        "fixed_train": fixed_examples(source, tensors.x_train, tensors.y_train, regime, batch),
        "fixed_val": fixed_examples(source, tensors.x_val, tensors.y_val, regime, batch),
    }
    return replace(tensors, **fixed), source.state_dict()


def train_task(
    data: dict,
    spec: ModelSpec,
    regime: RegimeSpec,
    dataset: str,
    seed: int,
    checkpoint: str,
    settings: RaySettings,
    member: int | None = None,
    source: str | None = None,
) -> dict:
    """Train one (model, regime, seed[, ensemble member]), write its checkpoint, return its curve rows
    (``source``: a static regime's source checkpoint of this seed)."""
    init_task(settings.num_cpus_per_task, settings.flush_denormal)
    device = task_device(settings.num_gpus_per_task)
    tensors, init = train_tensors(data, spec, device), None
    if regime.source is not None:
        if source is None:
            raise ValueError(f"regime {regime.name!r} (static) needs the checkpoint of its source model")
        tensors, weights = with_fixed_examples(tensors, spec, regime, source)
        init = weights if regime.init == Init.CONTINUE else None
    key = task_key(dataset, spec, regime, seed, member)
    store = task_store(spec, regime, key, checkpoint, tensors, device)
    state, curves = train_model(
        spec, regime, tensors, task_seed(*key), tag=task_tag(seed, member), store=store, init=init
    )
    rows = save_trained(state, curves, checkpoint, dataset, spec, regime, seed, member)
    return {"rows": rows, **where(device)}


def train_stacked_task(
    data: dict,
    spec: ModelSpec,
    regime: RegimeSpec,
    dataset: str,
    tasks: list[dict],
    settings: RaySettings,
) -> dict:
    """Train every (seed[, member]) of ``tasks`` as one stacked model (:mod:`advbench.training.stacked`),
    write each one's checkpoint, return all their curve rows."""
    init_task(settings.num_cpus_per_task, settings.flush_denormal)
    device = task_device(settings.num_gpus_per_task)
    tensors = train_tensors(data, spec, device)
    keys = [task_key(dataset, spec, regime, t["seed"], t["member"]) for t in tasks]
    stores = [
        task_store(spec, regime, k, t["checkpoint"], tensors, device)
        for k, t in zip(keys, tasks, strict=True)
    ]
    tags = [task_tag(t["seed"], t["member"]) for t in tasks]
    trained = train_stacked(spec, regime, tensors, [task_seed(*k) for k in keys], tags, stores)
    rows = []
    for t, (state, curves) in zip(tasks, trained, strict=True):
        rows += save_trained(state, curves, t["checkpoint"], dataset, spec, regime, t["seed"], t["member"])
    return {"rows": rows, **where(device)}


def task_key(dataset: str, spec: ModelSpec, regime: RegimeSpec, seed: int, member: int | None) -> tuple:
    """What a training task's seed derives from (:func:`advbench.training.loop.task_seed`)."""
    return (dataset, spec.name, regime.name, seed) + (() if member is None else (member,))


def task_tag(seed: int, member: int | None) -> str:
    return f" seed {seed}" + ("" if member is None else f" member {member}")


def task_store(
    spec: ModelSpec, regime: RegimeSpec, key: tuple, checkpoint: str, tensors: Tensors, device: str
) -> DiskStore:
    """Where the task keeps its training state, beside its checkpoint."""
    return DiskStore(
        state_path(Path(checkpoint)),
        fingerprint(*spec_dicts(spec, regime), list(key), tensors),
        every=spec.train.save_every,
        device=device,
    )


def save_trained(
    state: dict[str, torch.Tensor],
    curves: list[dict],
    checkpoint: str,
    dataset: str,
    spec: ModelSpec,
    regime: RegimeSpec,
    seed: int,
    member: int | None,
) -> list[dict]:
    """Write the trained model's checkpoint; its curve rows with their keys."""
    meta = {
        "model": spec.name,
        "regime": regime.name,
        "seed": str(seed),
        "member": str(member),
        "spec": json.dumps(asdict(spec), sort_keys=True),
    }
    checkpoints.save(state, Path(checkpoint), meta)
    keys = {"dataset": dataset, "seed": seed, "model": spec.name, "regime": regime.name, "member": member}
    return [{**keys, **row} for row in curves]


def stacks(settings: RaySettings, spec: ModelSpec, regime: RegimeSpec, n_tasks: int) -> bool:
    """Whether a job trains its tasks as one stacked model: ``ray.stack_seeds`` (``auto``: where its tasks
    get a GPU), for a job of several tasks that :func:`advbench.training.stacked.stackable` can stack."""
    if settings.stack_seeds == "never" or n_tasks < 2:
        return False
    if not stackable(spec, regime):
        if settings.stack_seeds == "always":
            log.info("%s-%s: not stackable, one task per seed", spec.name, regime.name)
        return False
    return settings.stack_seeds == "always" or settings.num_gpus_per_task > 0


def run_train(
    data_path: Path,
    spec: ModelSpec,
    regime: RegimeSpec,
    seeds: Sequence[int],
    ckpts: Sequence[str],
    curves_out: Path,
    dataset: str,
    subset: dict,
    settings: RaySettings,
    members: int = 1,
    sources: Sequence[str] = (),
) -> None:
    """One Snakemake train job: a task per seed (and ensemble member), then all curves in one file.

    With ``members > 1``, ``ckpts`` lists every seed's members in turn (seed-major); ``sources``: a static
    regime's source checkpoints, one per seed.
    """
    data = subset_data(data_path, subset)
    keys = [(s, m) for s in seeds for m in range(members)] if members > 1 else [(s, None) for s in seeds]
    # absolute paths: a task on another node of a cluster does not run in this job's directory
    per_task = [
        {"seed": s, "member": m, "checkpoint": str(Path(c).resolve())}
        for (s, m), c in zip(keys, ckpts, strict=True)
    ]
    if sources:
        if members > 1 or len(sources) != len(seeds):
            raise ValueError(
                f"{spec.name}-{regime.name}: one source checkpoint per seed, no ensemble members"
            )
        for task, src in zip(per_task, sources, strict=True):
            task["source"] = str(Path(src).resolve())
    shared = {"data": data, "spec": spec, "regime": regime, "dataset": dataset, "settings": settings}
    if stacks(settings, spec, regime, len(per_task)) and not sources:
        outputs = run_tasks(train_stacked_task, shared, [{"tasks": per_task}], settings)
    else:
        outputs = run_tasks(train_task, shared, per_task, settings)
    wildcards = {"dataset": dataset, "model": spec.name, "regime": regime.name}
    write_outputs(outputs, "curves", curves_out, "train", wildcards, settings)
    for task in per_task:  # every output is written: the saved states have served their purpose
        state_path(Path(str(task["checkpoint"]))).unlink(missing_ok=True)
