"""Checkpoints as safetensors: no pickle is ever loaded."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from advbench.runtime.files import atomic_path


class CheckpointError(RuntimeError):
    """A checkpoint is unreadable or belongs to another architecture; the message names the file."""


def save(state: dict[str, torch.Tensor], path: Path, meta: dict[str, str]) -> None:
    """Write ``state`` atomically as safetensors, ``meta`` as one JSON string in its header (key
    ``advbench``): safetensors writes a header's metadata keys in no fixed order, so one key keeps the bytes
    of a checkpoint the same from run to run."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"advbench": json.dumps(meta, sort_keys=True)})


def load_into(model: nn.Module, path: Path) -> nn.Module:
    """Load a safetensors checkpoint into ``model``, refusing files of another format or shape."""
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({err})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: does not fit model {type(model).__name__}: {err}") from None
    return model
