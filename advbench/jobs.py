"""What one Snakemake job does: put the data once, run one task per seed, write one Parquet file.

Task functions are module-level so Ray can ship them; each is also callable directly (the serial path).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from advbench import checkpoints, results
from advbench.config import CONFIG_HASH_ENV, ModelSpec, RegimeSpec
from advbench.data import load_splits, model_inputs, restrict_classes
from advbench.dispatch import RaySettings, init_task, run_tasks, task_device
from advbench.evaluation import fgsm_scores
from advbench.models import build
from advbench.train_state import DiskStore, fingerprint, spec_dicts, state_path
from advbench.training import Tensors, task_seed, train_model

TRAIN_KEYS = ("x_train", "y_train", "x_val", "y_val")


@dataclass(frozen=True)
class Trained:
    """A trained model of one seed: its specs and its checkpoint."""

    spec: ModelSpec
    regime: RegimeSpec
    checkpoint: str


@dataclass(frozen=True)
class AttackSettings:
    eps: tuple[float, ...]
    clips: tuple[bool, ...]
    batch_size: int = 2000
    label_source: str = "true"


def _images(x: np.ndarray, data: dict, device: str) -> torch.Tensor:
    """Images as the models see them (:func:`advbench.data.model_inputs`), in a fresh tensor."""
    return torch.from_numpy(np.array(model_inputs(x, data), dtype=np.float32)).to(device)


def _labels(y: np.ndarray, device: str) -> torch.Tensor:
    """Object-store arrays are read-only: copy into a fresh tensor."""
    return torch.from_numpy(np.array(y, dtype=np.int64)).to(device)


def _node_id() -> str:
    """The Ray node a task ran on (``local`` on the serial path), recorded in the provenance."""
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"


def train_tensors(data: dict, spec: ModelSpec, device: str) -> Tensors:
    """The model's classes (all, or its ``classes`` subset), the first ``train.n_train`` training examples."""
    data = restrict_classes(data, spec.classes)
    n = spec.train.n_train
    return Tensors(
        _images(data["x_train"][:n], data, device),
        _labels(data["y_train"][:n], device),
        _images(data["x_val"], data, device),
        _labels(data["y_val"], device),
    )


def train_task(
    data: dict,
    spec: ModelSpec,
    regime: RegimeSpec,
    dataset: str,
    seed: int,
    checkpoint: str,
    settings: RaySettings,
    member: int | None = None,
) -> dict:
    """Train one (model, regime, seed[, ensemble member]), write its checkpoint, return its curve rows."""
    init_task(settings.num_cpus_per_task)
    device = task_device(settings.num_gpus_per_task)
    tensors = train_tensors(data, spec, device)
    key = (dataset, spec.name, regime.name, seed) + (() if member is None else (member,))
    tag = f" seed {seed}" + ("" if member is None else f" member {member}")
    store = DiskStore(
        state_path(Path(checkpoint)),
        fingerprint(*spec_dicts(spec, regime), list(key), tensors),
        every=spec.train.save_every,
        device=device,
    )
    state, curves = train_model(spec, regime, tensors, task_seed(*key), tag=tag, store=store)
    meta = {
        "model": spec.name,
        "regime": regime.name,
        "seed": str(seed),
        "member": str(member),
        "spec": json.dumps(asdict(spec), sort_keys=True),
    }
    checkpoints.save(state, Path(checkpoint), meta)
    keys = {"dataset": dataset, "seed": seed, "model": spec.name, "regime": regime.name, "member": member}
    return {"rows": [{**keys, **row} for row in curves], "node_id": _node_id(), "device": device}


def test_tensors(data: dict, spec: ModelSpec, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The test split, restricted to the model's classes."""
    data = restrict_classes({k: v for k, v in data.items() if k not in TRAIN_KEYS}, spec.classes)
    return _images(data["x_test"], data, device), _labels(data["y_test"], device)


def load_model(trained: Trained, device: str) -> torch.nn.Module:
    model = build(trained.spec).to(device)
    checkpoints.load_into(model, Path(trained.checkpoint))
    return model.eval()


def fgsm_task(
    data: dict,
    source: Trained,
    target: Trained,
    dataset: str,
    seed: int,
    attack: AttackSettings,
    settings: RaySettings,
) -> dict:
    """FGSM on the test set crafted on ``source``, scored on ``target`` (the same model for white-box)."""
    init_task(settings.num_cpus_per_task)
    device = task_device(settings.num_gpus_per_task)
    src = load_model(source, device)
    tgt = src if target == source else load_model(target, device)
    x, y = test_tensors(data, source.spec, device)
    rows = fgsm_scores(src, tgt, x, y, attack.eps, attack.clips, attack.batch_size, attack.label_source)
    keys = {"dataset": dataset, "seed": seed, "attack": "fgsm", "label_source": attack.label_source}
    if target == source:
        keys |= {"model": source.spec.name, "regime": source.regime.name}
    else:
        keys |= {
            "source_model": source.spec.name,
            "source_regime": source.regime.name,
            "target_model": target.spec.name,
            "target_regime": target.regime.name,
        }
    return {"rows": [{**keys, **row} for row in rows], "node_id": _node_id(), "device": device}


def write_outputs(
    outputs: list[dict],
    kind: str,
    out: Path,
    rule: str,
    wildcards: dict,
    settings: RaySettings,
    field: str = "rows",
) -> None:
    """All tasks' ``field`` rows in one results file, with the job's provenance."""
    rows = [row for o in outputs for row in o[field]]
    extra = {
        "node_ids": sorted({o["node_id"] for o in outputs}),
        "devices": sorted({o["device"] for o in outputs}),
        "ray_address": ray_mode(settings),
    }
    meta = results.provenance(os.environ.get(CONFIG_HASH_ENV, "unknown"), rule, wildcards, extra)
    results.write_table(rows, kind, out, meta)


def ray_mode(settings: RaySettings) -> str:
    """Where the tasks ran, for the provenance: a cluster's address, or which kind of embedded Ray."""
    if not settings.use_ray:
        return "serial"
    if os.environ.get("RAY_ADDRESS") or settings.address:
        return settings.cluster_address or ""
    return "embedded (shared by the workflow run)" if settings.cluster_address else "embedded (per job)"


def _absolute(trained: Trained) -> Trained:
    return replace(trained, checkpoint=str(Path(trained.checkpoint).resolve()))


def subset_data(path: Path, subset: dict) -> dict:
    return load_splits(path, subset.get("n_train"), subset.get("n_val"), subset.get("n_test")).as_dict()


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
) -> None:
    """One Snakemake train job: a task per seed (and ensemble member), then all curves in one file.

    With ``members > 1``, ``ckpts`` lists every seed's members in turn (seed-major).
    """
    data = subset_data(data_path, subset)
    keys = [(s, m) for s in seeds for m in range(members)] if members > 1 else [(s, None) for s in seeds]
    # absolute paths: a task on another node of a cluster does not run in this job's directory
    per_task = [
        {"seed": s, "member": m, "checkpoint": str(Path(c).resolve())}
        for (s, m), c in zip(keys, ckpts, strict=True)
    ]
    shared = {"data": data, "spec": spec, "regime": regime, "dataset": dataset, "settings": settings}
    outputs = run_tasks(train_task, shared, per_task, settings)
    wildcards = {"dataset": dataset, "model": spec.name, "regime": regime.name}
    write_outputs(outputs, "curves", curves_out, "train", wildcards, settings)
    for task in per_task:  # every output is written: the saved states have served their purpose
        state_path(Path(task["checkpoint"])).unlink(missing_ok=True)


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
    sources, targets = [_absolute(t) for t in sources], [_absolute(t) for t in targets]
    triples = zip(seeds, sources, targets, strict=True)
    per_task = [{"seed": s, "source": a, "target": b} for s, a, b in triples]
    shared = {"data": data, "dataset": dataset, "attack": attack, "settings": settings}
    outputs = run_tasks(fgsm_task, shared, per_task, settings)
    white_box = list(sources) == list(targets)
    src, tgt = sources[0], targets[0]
    wildcards = {"dataset": dataset, "source": f"{src.spec.name}-{src.regime.name}"}
    if not white_box:
        wildcards["target"] = f"{tgt.spec.name}-{tgt.regime.name}"
    kind = "attack" if white_box else "transfer"
    write_outputs(outputs, kind, out, kind, wildcards, settings)
