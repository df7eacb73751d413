"""What every job shares: trained checkpoints, tensors on the task's device, outputs with provenance."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from advbench.config.loading import CONFIG_HASH_ENV
from advbench.config.runs import run_id
from advbench.config.specs import Method, ModelSpec, RegimeSpec
from advbench.data.inputs import model_inputs, restrict_classes
from advbench.data.splits import load_splits
from advbench.evaluation.scores import MultiStep
from advbench.models.architectures import build
from advbench.results import checkpoints
from advbench.results.provenance import provenance
from advbench.results.tables import write_table
from advbench.runtime.ray import RaySettings
from advbench.runtime.task import machine

TRAIN_KEYS = ("x_train", "y_train", "x_val", "y_val")


@dataclass(frozen=True)
class Trained:
    """A trained model of one seed: its specs and its checkpoint."""

    spec: ModelSpec
    regime: RegimeSpec
    checkpoint: str

    @property
    def run(self) -> str:
        return run_id(self.spec.name, self.regime.name)


@dataclass(frozen=True)
class AttackSettings:
    """An attack or transfer job's attacks: every method over the eps grid (bim and pgd over
    ``multistep_eps`` where given) and clipping."""

    eps: tuple[float, ...]
    clips: tuple[bool, ...]
    batch_size: int = 2000
    label_source: str = "true"
    methods: tuple[str, ...] = ("fgsm",)
    multistep_eps: tuple[float, ...] | None = None
    multistep: MultiStep = MultiStep()

    def eps_of(self, method: str) -> tuple[float, ...]:
        multi = method in (Method.BIM, Method.PGD)
        return self.multistep_eps if multi and self.multistep_eps is not None else self.eps


def input_tensor(x: np.ndarray, data: dict, device: str) -> torch.Tensor:
    """Images as the models see them (:func:`advbench.data.inputs.model_inputs`), in a fresh tensor."""
    return torch.from_numpy(np.array(model_inputs(x, data), dtype=np.float32)).to(device)


def label_tensor(y: np.ndarray, device: str) -> torch.Tensor:
    """Object-store arrays are read-only: copy into a fresh tensor."""
    return torch.from_numpy(np.array(y, dtype=np.int64)).to(device)


def ray_node_id() -> str:
    """The Ray node a task ran on (``local`` on the serial path), recorded in the provenance."""
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"


def where(device: str) -> dict[str, str]:
    """Where a task ran, for its job's provenance: the Ray node, the device and the machine in words."""
    return {"node_id": ray_node_id(), "device": device, "machine": machine()}


def test_tensors(data: dict, spec: ModelSpec, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The test split, restricted to the model's classes."""
    data = restrict_classes({k: v for k, v in data.items() if k not in TRAIN_KEYS}, spec.classes)
    return input_tensor(data["x_test"], data, device), label_tensor(data["y_test"], device)


def load_model(trained: Trained, device: str) -> torch.nn.Module:
    return load_checkpoint(trained.spec, trained.checkpoint, device)


def load_checkpoint(spec: ModelSpec, checkpoint: str, device: str) -> torch.nn.Module:
    """The model of ``spec`` with the weights of ``checkpoint``, on ``device``, in eval mode."""
    model = build(spec).to(device)
    checkpoints.load_into(model, Path(checkpoint))
    return model.eval()


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
        "machines": sorted({o["machine"] for o in outputs}),
        "ray_address": ray_mode(settings),
    }
    meta = provenance(os.environ.get(CONFIG_HASH_ENV, "unknown"), rule, wildcards, extra)
    write_table(rows, kind, out, meta)


def ray_mode(settings: RaySettings) -> str:
    """Where the tasks ran, for the provenance: a cluster's address, or which kind of embedded Ray."""
    if not settings.use_ray:
        return "serial"
    if os.environ.get("RAY_ADDRESS") or settings.address:
        return settings.cluster_address or ""
    return "embedded (shared by the workflow run)" if settings.cluster_address else "embedded (per job)"


def absolute_paths(trained: Trained) -> Trained:
    return replace(trained, checkpoint=str(Path(trained.checkpoint).resolve()))


def subset_data(path: Path, subset: dict) -> dict:
    return load_splits(path, subset.get("n_train"), subset.get("n_val"), subset.get("n_test")).as_dict()
