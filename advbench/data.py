"""MNIST: sources (local IDX files, torchvision download), integrity checks, the paper's splits.

Integrity is checked on the *decompressed* IDX content (md5), since gzip headers differ between mirrors.
Prepared data is a ``.npz`` of uint8 images and int64 labels: ``x_train`` (the first 50k), ``x_val``
(50k-60k), ``x_test`` (10k), as the paper's pylearn2 setup splits them.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from advbench.results import atomic_path

#: md5 of the uncompressed original MNIST files (the values published by LeCun's mirrors and torchvision).
MNIST_FILES: dict[str, str] = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
IDX_MAGIC = {1: 2049, 3: 2051}  # ndim -> magic number
N_TRAIN = 50_000


class DataError(RuntimeError):
    """A dataset file is missing, truncated or not what it should be; the message names the file."""


@dataclass(frozen=True)
class Splits:
    """uint8 images (N, 28, 28) and int64 labels of the paper's train/validation/test splits."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return dict(self.__dict__)


def read_raw(path: Path) -> bytes:
    """The decompressed bytes of an IDX file (``.gz`` or plain); a clear error if unreadable."""
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: cannot decompress ({err}); the file is truncated or corrupt") from None


def parse_idx(raw: bytes, path: Path) -> np.ndarray:
    """Parse IDX bytes (big-endian header, uint8 payload) after checking magic number and length."""
    if len(raw) < 8:
        raise DataError(f"{path}: {len(raw)} bytes is too short for an IDX header")
    magic = int.from_bytes(raw[:4], "big")
    ndim = raw[3]
    if IDX_MAGIC.get(ndim) != magic:
        raise DataError(f"{path}: wrong IDX magic number {magic}; expected 2049 (labels) or 2051 (images)")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    start, expected = 4 + 4 * ndim, int(np.prod(dims))
    if len(raw) - start != expected:
        raise DataError(f"{path}: payload is {len(raw) - start} bytes; header {dims} expects {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=start).reshape(dims)


def load_verified(directory: Path, stem: str, md5: str) -> np.ndarray:
    """Read ``stem`` (``.gz`` preferred) from ``directory``, verify its content md5, and parse it."""
    path = directory / f"{stem}.gz"
    if not path.exists() and (directory / stem).exists():
        path = directory / stem
    raw = read_raw(path)
    found = hashlib.md5(raw).hexdigest()
    if found != md5:
        raise DataError(f"{path}: md5 of the decompressed content is {found}; expected {md5}")
    return parse_idx(raw, path)


def mnist_from_dir(directory: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The four verified MNIST arrays from a directory of IDX files (gzipped or not)."""
    if not directory.is_dir():
        raise DataError(
            f"{directory}: MNIST directory not found (set ADVBENCH_DATA to a folder holding mnist/)"
        )
    arrays = [load_verified(directory, stem, md5) for stem, md5 in MNIST_FILES.items()]
    return arrays[0], arrays[1].astype(np.int64), arrays[2], arrays[3].astype(np.int64)


def mnist_from_torchvision(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Download MNIST with torchvision, then read and verify the raw IDX files it extracted."""
    from torchvision.datasets import MNIST

    for train in (True, False):
        MNIST(str(root), train=train, download=True)
    return mnist_from_dir(root / "MNIST" / "raw")


def resolve_source(source: str, data_dir: str | None) -> tuple[str, Path | None]:
    """Pick the data source: local files when a directory is given (config or ``ADVBENCH_DATA``)."""
    directory = data_dir or os.environ.get("ADVBENCH_DATA")
    if source == "local" and not directory:
        raise DataError("data.source is 'local' but neither data.dir nor ADVBENCH_DATA names a directory")
    if source in ("local", "auto") and directory:
        return "local", Path(directory) / "mnist"
    return "torchvision", None


def split(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> Splits:
    """The paper's split: train on 0-50k, validate on 50k-60k, test on the 10k test set."""
    return Splits(x_train[:N_TRAIN], y_train[:N_TRAIN], x_train[N_TRAIN:], y_train[N_TRAIN:], x_test, y_test)


def prepare_mnist(
    out: Path, source: str = "auto", data_dir: str | None = None, cache: Path | None = None
) -> Path:
    """Read, verify and split MNIST, writing ``out`` (.npz) atomically. Returns the source used."""
    kind, directory = resolve_source(source, data_dir)
    if kind == "local":
        assert directory is not None
        arrays = mnist_from_dir(directory)
    else:
        arrays = mnist_from_torchvision(cache or out.parent / "download")
    splits = split(*arrays)
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **splits.as_dict())
    return directory or Path("torchvision")


def load_splits(
    path: Path, n_train: int | None = None, n_val: int | None = None, n_test: int | None = None
) -> Splits:
    """Load prepared splits, optionally the first ``n`` examples of each (for small presets)."""
    with np.load(path) as npz:
        d = {k: npz[k] for k in npz.files}
    cut = {"train": n_train, "val": n_val, "test": n_test}
    return Splits(**{k: v[: cut[k.split("_")[1]]] for k, v in d.items()})


def to_float(x: np.ndarray) -> np.ndarray:
    """uint8 images to the paper's pixel space: float32 in [0, 1], flattened to 784."""
    return (x.reshape(len(x), -1).astype(np.float32)) / 255.0


def restrict_classes(data: dict[str, np.ndarray], classes: tuple[int, ...] | None) -> dict[str, np.ndarray]:
    """Keep only the examples of ``classes`` in every split and relabel them ``0..k-1`` in that order."""
    if not classes:
        return data
    out = {}
    lookup = np.full(10, -1, dtype=np.int64)
    lookup[list(classes)] = np.arange(len(classes))
    for split in ("train", "val", "test"):
        if f"y_{split}" not in data:
            continue
        y = np.asarray(data[f"y_{split}"])
        keep = np.isin(y, classes)
        out[f"x_{split}"], out[f"y_{split}"] = np.asarray(data[f"x_{split}"])[keep], lookup[y[keep]]
    return out
