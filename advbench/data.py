"""Datasets: the registry (MNIST, CIFAR-10), MNIST's sources and checks, the paper's splits, model inputs.

Integrity of MNIST is checked on the *decompressed* IDX content (md5), since gzip headers differ between
mirrors; CIFAR-10 lives in :mod:`advbench.cifar`. Prepared data is a ``.npz`` of uint8 images and int64
labels: ``x_train``, ``x_val``, ``x_test`` (MNIST: the first 50k, 50k-60k, the 10k test set, as the paper's
pylearn2 setup splits them), plus any fitted preprocessing (``prep_*`` arrays, e.g. CIFAR-10's GCN + ZCA).
Models see flat float32 vectors (:func:`model_inputs`): pixels in [0, 1], or the preprocessed space.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
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
PREP_PREFIX = "prep_"


class DataError(RuntimeError):
    """A dataset file is missing, truncated or not what it should be; the message names the file."""


@dataclass(frozen=True)
class DatasetInfo:
    """What the rest of advbench needs to know of a dataset: image shape, classes, where it can come from."""

    name: str
    shape: tuple[int, int, int]  # (channels, height, width) of one image
    classes: tuple[str, ...]
    download: str  # the source ``auto`` falls back to without local files
    pixel_space: bool  # True: inputs are pixels in [0, 1]; False: a fitted preprocessing's space
    prepare_options: tuple[str, ...] = ()  # keys of config["data"] its preparation takes

    @property
    def n_inputs(self) -> int:
        return int(np.prod(self.shape))


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo("mnist", (1, 28, 28), tuple("0123456789"), "torchvision", True),
    "cifar10": DatasetInfo("cifar10", (3, 32, 32), CIFAR10_CLASSES, "tfds", False, ("zca_fit_n",)),
}


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
    return DATASETS[name]


@dataclass(frozen=True)
class Splits:
    """uint8 images and int64 labels of the train/validation/test splits, and fitted preprocessing."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    prep: dict[str, np.ndarray] = field(default_factory=dict)

    def as_dict(self) -> dict[str, np.ndarray]:
        out = {k: v for k, v in self.__dict__.items() if k != "prep"}
        return out | self.prep


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


def resolve_source(source: str, data_dir: str | None, dataset: str = "mnist") -> tuple[str, Path | None]:
    """Pick the data source: local files (``<dir>/<dataset>/``) when a directory is given (config or
    ``ADVBENCH_DATA``), else the dataset's download source; a source the dataset lacks is an error."""
    info = dataset_info(dataset)
    directory = data_dir or os.environ.get("ADVBENCH_DATA")
    if source == "local" and not directory:
        raise DataError("data.source is 'local' but neither data.dir nor ADVBENCH_DATA names a directory")
    if source in ("local", "auto") and directory:
        return "local", Path(directory) / dataset
    if source not in ("auto", info.download):
        raise DataError(f"data.source {source!r} cannot provide {dataset}; use 'local' or {info.download!r}")
    return info.download, None


def split(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, n_train: int = N_TRAIN
) -> Splits:
    """The paper's split: train on the first ``n_train`` (MNIST: 50k), validate on the rest of the
    training set, test on the test set."""
    return Splits(x_train[:n_train], y_train[:n_train], x_train[n_train:], y_train[n_train:], x_test, y_test)


def write_splits(out: Path, splits: Splits) -> None:
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **splits.as_dict())


def prepare(dataset: str, out: Path, source: str = "auto", data_dir: str | None = None, **options) -> Path:
    """Read, verify and split ``dataset`` (fitting its preprocessing, if any); write ``out``. Returns the
    source used. ``options`` go to the dataset's own preparation (CIFAR-10: ``zca_fit_n``)."""
    allowed = dataset_info(dataset).prepare_options
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise DataError(f"{dataset}: unknown preparation options {unknown}; it takes {list(allowed)}")
    return PREPARE[dataset](out, source, data_dir, **options)


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
    write_splits(out, split(*arrays))
    return directory or Path("torchvision")


def _prepare_cifar10(out: Path, source: str, data_dir: str | None, **options) -> Path:
    from advbench.cifar import prepare_cifar10  # cifar imports this module

    return prepare_cifar10(out, source, data_dir, **options)


PREPARE = {"mnist": prepare_mnist, "cifar10": _prepare_cifar10}


def load_splits(
    path: Path, n_train: int | None = None, n_val: int | None = None, n_test: int | None = None
) -> Splits:
    """Load prepared splits, optionally the first ``n`` examples of each (for small presets)."""
    with np.load(path) as npz:
        d = {k: npz[k] for k in npz.files}
    cut = {"train": n_train, "val": n_val, "test": n_test}
    prep = {k: d.pop(k) for k in list(d) if k.startswith(PREP_PREFIX)}
    return Splits(**{k: v[: cut[k.split("_")[1]]] for k, v in d.items()}, prep=prep)


def to_float(x: np.ndarray) -> np.ndarray:
    """uint8 images to the paper's pixel space: float32 in [0, 1], flattened (MNIST: 784)."""
    return (x.reshape(len(x), -1).astype(np.float32)) / 255.0


def model_inputs(x: np.ndarray, data: Mapping[str, np.ndarray]) -> np.ndarray:
    """uint8 images to what the models see: flat float32 pixels in [0, 1], or, when ``data`` carries a
    fitted preprocessing (CIFAR-10), the GCN + ZCA-whitened space in which the paper's eps is measured."""
    if f"{PREP_PREFIX}zca_matrix" not in data:
        return to_float(x)
    from advbench.cifar import preprocess

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
