"""What models see: flat float32 vectors, pixels in [0, 1] or the preprocessed space; class subsets."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from advbench.data.cifar10 import preprocess
from advbench.data.registry import PREP_PREFIX


def to_float(x: np.ndarray) -> np.ndarray:
    """uint8 images to the paper's pixel space: float32 in [0, 1], flattened (MNIST: 784)."""
    return (x.reshape(len(x), -1).astype(np.float32)) / 255.0


def model_inputs(x: np.ndarray, data: Mapping[str, np.ndarray]) -> np.ndarray:
    """uint8 images to what the models see: flat float32 pixels in [0, 1], or, when ``data`` carries a
    fitted preprocessing (CIFAR-10), the GCN + ZCA-whitened space in which the paper's eps is measured."""
    if f"{PREP_PREFIX}zca_matrix" not in data:
        return to_float(x)
    return preprocess(x, data)


def restrict_classes(data: dict[str, np.ndarray], classes: tuple[int, ...] | None) -> dict[str, np.ndarray]:
    """Keep only the examples of ``classes`` in every split and relabel them ``0..k-1`` in that order."""
    if not classes:
        return data
    out = {k: v for k, v in data.items() if k.startswith(PREP_PREFIX)}
    lookup = np.full(10, -1, dtype=np.int64)
    lookup[list(classes)] = np.arange(len(classes))
    for split in ("train", "val", "test"):
        if f"y_{split}" not in data:
            continue
        y = np.asarray(data[f"y_{split}"])
        keep = np.isin(y, classes)
        out[f"x_{split}"], out[f"y_{split}"] = np.asarray(data[f"x_{split}"])[keep], lookup[y[keep]]
    return out
