"""Checkpoints as safetensors: no pickle is ever loaded."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from advbench.results import atomic_path


class CheckpointError(RuntimeError):
    """A checkpoint is unreadable or belongs to another architecture; the message names the file."""


def save(state: dict[str, torch.Tensor], path: Path, meta: dict[str, str]) -> None:
    """Write ``state`` atomically as safetensors with string metadata."""
    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp), metadata=meta)


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
