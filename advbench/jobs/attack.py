"""The attack job: FGSM (and the config's other methods) over the eps grid, one Ray task per seed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from advbench.evaluation.scores import method_scores
from advbench.jobs.common import (
    AttackSettings,
    Trained,
    absolute_paths,
    load_model,
    subset_data,
    test_tensors,
    where,
    write_outputs,
)
from advbench.runtime.ray import RaySettings, run_tasks
from advbench.runtime.task import init_task, task_device
from advbench.training.loop import task_seed


def fgsm_task(
    data: dict,
    source: Trained,
    target: Trained,
    dataset: str,
    seed: int,
    attack: AttackSettings,
    settings: RaySettings,
) -> dict:
    """Every method's examples of the test set crafted on ``source``, scored on ``target`` (the same model
    for white-box); random starts and signs from a generator of the task's key."""
    init_task(settings.num_cpus_per_task, settings.flush_denormal)
    device = task_device(settings.num_gpus_per_task)
    src = load_model(source, device)
    tgt = src if target == source else load_model(target, device)
    x, y = test_tensors(data, source.spec, device)
    rows = []
    for method in attack.methods:
        cells = (attack.eps_of(method), attack.clips, attack.batch_size, attack.label_source)
        gen = torch.Generator().manual_seed(task_seed(dataset, source.run, target.run, seed, method))
        scores = method_scores(src, tgt, x, y, method, *cells, attack.multistep, gen)
        rows += [{"attack": str(method), **row} for row in scores]
    keys = {"dataset": dataset, "seed": seed, "label_source": attack.label_source}
    if target == source:
        keys |= {"model": source.spec.name, "regime": source.regime.name}
    else:
        keys |= {
            "source_model": source.spec.name,
            "source_regime": source.regime.name,
            "target_model": target.spec.name,
            "target_regime": target.regime.name,
        }
    return {"rows": [{**keys, **row} for row in rows], **where(device)}


def run_fgsm(
    data_path: Path,
    sources: Sequence[Trained],
    targets: Sequence[Trained],
    seeds: Sequence[int],
    out: Path,
    dataset: str,
    subset: dict,
    attack: AttackSettings,
    settings: RaySettings,
) -> None:
    """One Snakemake attack (sources == targets) or transfer job: a task per seed."""
    data = subset_data(data_path, subset)
    sources, targets = [absolute_paths(t) for t in sources], [absolute_paths(t) for t in targets]
    triples = zip(seeds, sources, targets, strict=True)
    per_task = [{"seed": s, "source": a, "target": b} for s, a, b in triples]
    shared = {"data": data, "dataset": dataset, "attack": attack, "settings": settings}
    outputs = run_tasks(fgsm_task, shared, per_task, settings)
    white_box = list(sources) == list(targets)
    src, tgt = sources[0], targets[0]
    wildcards = {"dataset": dataset, "source": src.run}
    if not white_box:
        wildcards["target"] = tgt.run
    kind = "attack" if white_box else "transfer"
    write_outputs(outputs, kind, out, kind, wildcards, settings)
