"""A training task's saved state on disk, so that a killed, timed-out or preempted job goes on from its last
saved epoch when the workflow is rerun (:class:`advbench.training.loop.TrainState`).

One safetensors file per task beside its checkpoint (``seed=0.safetensors`` -> ``seed=0.state``): the tensors
(weights, velocities, stage 1's best weights, the generators' states) and, in the header's metadata, one JSON
document with the scalars, the curve rows and the task's fingerprint. Written atomically (a temporary file
renamed over the old one), so a kill leaves either the previous state or the new one; nothing is unpickled.
A state whose fingerprint (specs, seed, data, code) differs from the task's is refused with an error that
names the file and the first difference. The job deletes its tasks' states once its outputs are written.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from advbench.runtime.files import atomic_path
from advbench.training.loop import Tensors, TrainState

SCHEMA_VERSION = 1
# the modules whose code decides what a training task computes: a state saved by other code is refused
CODE_MODULES = (
    "training/loop.py",
    "training/stacked.py",
    "models/architectures.py",
    "models/heads.py",
    "attacks.py",
    "evaluation/scores.py",
)
SCALARS = ("stage", "epoch", "step", "best_score", "best_epoch", "best_loss", "stage_done", "finished")


class TrainStateError(RuntimeError):
    """A saved training state is unreadable or belongs to another task; the message names the file."""


def state_path(checkpoint: Path) -> Path:
    """Where the task that writes ``checkpoint`` keeps its state."""
    return checkpoint.with_suffix(".state")


def code_version() -> str:
    """A hash of the training code and torch's version."""
    digest = hashlib.sha256(torch.__version__.encode())
    for name in CODE_MODULES:
        digest.update(resources.files("advbench").joinpath(name).read_bytes())
    return digest.hexdigest()[:16]


def data_digest(data: Tensors) -> str:
    """A hash of the task's training and validation tensors (with a static regime's fixed examples, which
    also stand for the source model they came from)."""
    digest = hashlib.blake2b(digest_size=16)
    for t in (data.x_train, data.y_train, data.x_val, data.y_val, data.fixed_train, data.fixed_val):
        if t is not None:
            digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def fingerprint(
    spec: dict[str, Any], regime: dict[str, Any], key: list[Any], data: Tensors
) -> dict[str, Any]:
    """What a state must agree on with the task that loads it (``spec`` without its ``save_every``, which
    changes when states are written, not what is computed)."""
    spec = {**spec, "train": {k: v for k, v in spec["train"].items() if k != "save_every"}}
    return {"spec": spec, "regime": regime, "task": key, "data": data_digest(data), "code": code_version()}


@dataclass
class DiskStore:
    """:class:`advbench.training.loop.StateStore` in one file: ``every`` epochs between saves."""

    path: Path
    fingerprint: dict[str, Any]
    every: int = 1
    device: str = "cpu"

    def save(self, state: TrainState) -> None:
        tensors = {f"model.{k}": v for k, v in state.model.items()}
        tensors |= {f"velocity.{k}": v for k, v in state.velocity.items()}
        tensors |= {f"best.{k}": v for k, v in (state.best or {}).items()}
        tensors |= {f"rng.{k}": v for k, v in state.rng.items()}
        doc = {
            "schema_version": SCHEMA_VERSION,
            "fingerprint": self.fingerprint,
            "has_best": state.best is not None,
            "curves": state.curves,
            **{k: getattr(state, k) for k in SCALARS},
        }
        tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        with atomic_path(self.path) as tmp:
            save_file(tensors, str(tmp), metadata={"state": json.dumps(doc)})

    def load(self) -> TrainState | None:
        """The saved state, or None if there is none; refused if it is not this task's."""
        if not self.path.exists():
            return None
        doc = read_document(self.path)
        if doc.get("schema_version") != SCHEMA_VERSION:
            raise TrainStateError(
                f"{self.path}: saved training state has schema version {doc.get('schema_version')!r}, "
                f"expected {SCHEMA_VERSION}; delete the file to start this task over"
            )
        _check_fingerprint(self.path, doc["fingerprint"], self.fingerprint)
        try:
            tensors = load_file(str(self.path), device=self.device)
        except (SafetensorError, OSError, ValueError) as err:
            raise TrainStateError(f"{self.path}: not a readable training state ({err})") from None
        parts: dict[str, dict[str, torch.Tensor]] = {"model": {}, "velocity": {}, "best": {}, "rng": {}}
        for name, tensor in tensors.items():
            part, _, key = name.partition(".")
            parts[part][key] = tensor
        parts["rng"] = {k: v.cpu() for k, v in parts["rng"].items()}  # generators take CPU byte tensors
        return TrainState(
            **{k: doc[k] for k in SCALARS},
            model=parts["model"],
            velocity=parts["velocity"],
            best=parts["best"] if doc["has_best"] else None,
            curves=doc["curves"],
            rng=parts["rng"],
        )

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def read_document(path: Path) -> dict[str, Any]:
    """The JSON document of a saved state (its header only: no tensor is read)."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            text = (fh.metadata() or {}).get("state")
    except (SafetensorError, OSError, ValueError) as err:
        raise TrainStateError(f"{path}: not a readable training state ({err})") from None
    if text is None:
        raise TrainStateError(f"{path}: a safetensors file without a training state in its metadata")
    return json.loads(text)


def _check_fingerprint(path: Path, saved: dict[str, Any], now: dict[str, Any]) -> None:
    diff = first_difference(saved, now)
    if diff is not None:
        where, a, b = diff
        raise TrainStateError(
            f"{path}: saved training state is not this task's: {where} is {a!r} in the file but {b!r} now; "
            "delete the file to start this task over"
        )


def first_difference(a: Any, b: Any, where: str = "") -> tuple[str, Any, Any] | None:
    """The first key path at which two JSON values differ (None if they are equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            diff = first_difference(a.get(key), b.get(key), f"{where}.{key}" if where else key)
            if diff is not None:
                return diff
        return None
    return None if a == b else (where, a, b)


def spec_dicts(spec: Any, regime: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The specs as JSON values (tuples as lists), as a saved state's fingerprint holds them."""
    return json.loads(json.dumps(asdict(spec))), json.loads(json.dumps(asdict(regime)))


PROGRESS_COLUMNS = [
    "dataset", "model", "regime", "seed", "member", "status", "stage", "epoch", "of at most", "best",
    "best epoch", "stage 1 stops at", "s/epoch", "stage 1 ends in", "at most to go", "saved ago",
]  # fmt: skip
KEYS = ("dataset", "model", "regime", "seed", "member")


def progress_table(workdir: Path, planned: Sequence[str] = ()) -> pd.DataFrame:
    """Every training task that has a saved state under ``workdir/results/models``: where it stands (read
    from the states' headers, so a running or a stopped workflow alike). ``planned``, the checkpoints a
    config trains (relative to ``workdir``, :meth:`advbench.plan.Plan.trained_checkpoints`), adds the
    tasks without a state, ``written`` where the checkpoint is and ``not started`` where it is not.

    ``stage 1 stops at``: the epoch at which early stopping ends stage 1 unless a better epoch comes first;
    ``stage 1 ends in``: the time to that epoch (each better epoch pushes it back by ``patience`` epochs).
    With ``at most to go`` (the epoch budget's end, stage 2 included) it brackets a long run's end.
    ``status``: ``under way`` (running, or stopped part-way), ``finished`` (its job is waiting for other
    seeds before it writes the checkpoints), ``written`` or ``not started``."""
    states = sorted((workdir / "results" / "models").rglob("*.state"))
    rows = {_keys(path.relative_to(workdir)): _state_row(path) for path in states}
    for checkpoint in planned:
        key = _keys(Path(checkpoint))
        if key not in rows:
            written = (workdir / checkpoint).exists()
            rows[key] = {"status": "written" if written else "not started"}
            rows[key]["at most to go"] = "0:00:00" if written else "?"
    table = [dict(zip(KEYS, key, strict=True)) | rows[key] for key in sorted(rows, key=_order)]
    return pd.DataFrame(table, columns=PROGRESS_COLUMNS)


def _order(key: tuple[str | None, ...]) -> tuple:
    dataset, model, regime, seed, member = key
    return (dataset or "", model or "", regime or "", int(seed or -1), int(member or -1))


STATUSES = ("under way", "finished", "written", "not started")


def progress_summary(table: pd.DataFrame) -> str:
    """How many tasks stand where, e.g. ``2 under way, 6 finished, 2 not started of 10 tasks``."""
    counts = table["status"].value_counts()
    parts = [f"{counts[status]} {status}" for status in STATUSES if status in counts]
    return ", ".join(parts) + f" of {len(table)} tasks"


def _keys(path: Path) -> tuple[str | None, ...]:
    """(dataset, model, regime, seed, member) from a task's file's path (``key=value`` folders)."""
    keys = dict(part.split("=", 1) for part in path.with_suffix("").parts if "=" in part)
    return tuple(keys.get(k) for k in KEYS)


def _state_row(path: Path) -> dict[str, Any]:
    doc = read_document(path)
    train = doc["fingerprint"]["spec"]["train"]
    stage2 = train["retrain_max_epochs"] if train["retrain"] else 0
    last = train["max_epochs"] + stage2 if doc["stage"] == 1 else _stage1_epochs(doc) + stage2
    seconds = [r["seconds"] for r in doc["curves"]]
    per_epoch = sum(seconds) / len(seconds) if seconds else float("nan")
    stops_at = min(doc["best_epoch"] + train["patience"], train["max_epochs"])
    stage1_left = stops_at - doc["epoch"] if doc["stage"] == 1 and not doc["finished"] else 0
    return {
        "status": "finished" if doc["finished"] else "under way",
        "stage": doc["stage"],
        "epoch": doc["epoch"],
        "of at most": last,
        "best": doc["best_score"],
        "best epoch": doc["best_epoch"],
        "stage 1 stops at": stops_at,
        "s/epoch": per_epoch,
        "stage 1 ends in": _duration(per_epoch * stage1_left),
        "at most to go": "0:00:00" if doc["finished"] else _duration(per_epoch * (last - doc["epoch"])),
        "saved ago": _duration(time.time() - path.stat().st_mtime),
    }


def _stage1_epochs(doc: dict[str, Any]) -> int:
    return sum(r["stage"] == 1 for r in doc["curves"])


def _duration(seconds: float) -> str:
    return "?" if seconds != seconds else str(datetime.timedelta(seconds=round(seconds)))
