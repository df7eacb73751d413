"""A model of one's own (``arch: external``): a ``torch.nn.Module`` from a factory (``module:function`` or
``file.py:function``) with the weights of a safetensors file, or a TorchScript file; no pickle is loaded.
advbench feeds every model flat inputs in its dataset's space (MNIST: 784 values in [0, 1]); the wrapper
reshapes them to ``input_shape`` on the way in."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from advbench.config.specs import ModelSpec


class ExternalModelError(RuntimeError):
    """An external model that cannot be built or does not fit advbench's inputs; names the config key."""


class External(nn.Module):
    """The user's module behind a reshape of advbench's flat inputs; advbench's init never touches it."""

    pylearn2_init = False

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.input_shape = tuple(spec.input_shape) if spec.input_shape else None
        self.net = load_module(spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_shape is not None:
            x = x.reshape(len(x), *self.input_shape)
        return self.net(x)


def load_module(spec: ModelSpec) -> nn.Module:
    """The module of ``spec``: its TorchScript file, or its factory's module with ``weights`` loaded."""
    key = f"models.{spec.name}"
    if spec.torchscript:
        try:
            return torch.jit.load(spec.torchscript, map_location="cpu")
        except (RuntimeError, ValueError, OSError) as err:
            raise ExternalModelError(f"{key}.torchscript: {spec.torchscript}: not loadable ({err})") from None
    if not spec.factory:
        raise ExternalModelError(f"{key}: arch 'external' needs factory or torchscript")
    module = resolve_factory(spec.factory, f"{key}.factory")()
    if not isinstance(module, nn.Module):
        raise ExternalModelError(
            f"{key}.factory: {spec.factory} returned {type(module).__name__}, not a Module"
        )
    if spec.weights:
        _load_weights(module, spec.weights, f"{key}.weights")
    return module


def resolve_factory(factory: str, key: str) -> Callable[[], nn.Module]:
    """The function named by ``module:function`` or ``path/to/file.py:function``."""
    where, _, name = factory.rpartition(":")
    try:
        module = _module_from_file(Path(where)) if where.endswith(".py") else importlib.import_module(where)
    except (ImportError, OSError, SyntaxError) as err:
        raise ExternalModelError(f"{key}: cannot import {where!r} ({err})") from None
    function = getattr(module, name, None)
    if not callable(function):
        raise ExternalModelError(f"{key}: {where!r} has no function {name!r}")
    return function


def _module_from_file(path: Path):
    """Import a .py file once per process, under a name of its own."""
    name = "advbench_external_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _load_weights(module: nn.Module, path: str, key: str) -> None:
    try:
        state = load_file(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise ExternalModelError(f"{key}: {path}: not a readable safetensors file ({err})") from None
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ExternalModelError(f"{key}: {path} does not fit the factory's module: {err}") from None


def check_outputs(model: nn.Module, x: torch.Tensor, n_classes: int, name: str) -> None:
    """The model maps a batch of advbench's inputs to one finite logit per class, or the error says what
    it got (the usual causes: another input shape or scale than the dataset's)."""
    try:
        with torch.no_grad():
            out = model(x)
    except RuntimeError as err:
        raise ExternalModelError(
            f"models.{name}: fails on a batch of shape {tuple(x.shape)} in [{x.min():.3g}, {x.max():.3g}] "
            f"(set input_shape to the shape one input has for it): {err}"
        ) from None
    if out.shape != (len(x), n_classes):
        raise ExternalModelError(
            f"models.{name}: output of shape {tuple(out.shape)} for {len(x)} inputs; expected "
            f"({len(x)}, {n_classes}), one logit per class"
        )
    if not torch.isfinite(out).all():
        raise ExternalModelError(f"models.{name}: outputs that are not finite on test inputs")
    if (out >= 0).all() and torch.allclose(out.sum(1), torch.ones_like(out[:, 0]), atol=1e-4):
        raise ExternalModelError(
            f"models.{name}: its outputs are probabilities (rows summing to 1); advbench needs logits, the "
            "input of the softmax, so that its losses and gradients are the model's"
        )
