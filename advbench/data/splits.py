"""The paper's splits (train / validation / test), fitted preprocessing and the prepared ``.npz``."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from advbench.data.cifar10 import fit_gcn_zca
from advbench.data.registry import N_TRAIN, PREP_PREFIX, DataError, dataset_info
from advbench.data.sources import load_arrays
from advbench.runtime.files import atomic_path


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


def split(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, n_train: int = N_TRAIN
) -> Splits:
    """The paper's split: train on the first ``n_train`` (MNIST: 50k), validate on the rest of the
    training set, test on the test set."""
    return Splits(x_train[:n_train], y_train[:n_train], x_train[n_train:], y_train[n_train:], x_test, y_test)


def write_splits(out: Path, splits: Splits) -> None:
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **splits.as_dict())  # type: ignore[arg-type]  # numpy's stub: a key could be allow_pickle


def fit_preprocessing(name: str, x_train: np.ndarray, **options) -> dict[str, np.ndarray]:
    """The ``prep_*`` arrays of a dataset's preprocessing, fitted on its training images."""
    if name == "gcn_zca":
        return fit_gcn_zca(x_train, **options)
    raise DataError(f"unknown preprocessing {name!r}; expected 'gcn_zca' or none")


def prepare(dataset: str, out: Path, source: str = "auto", data_dir: str | None = None, **options) -> Path:
    """Read, verify and split ``dataset`` (fitting its preprocessing, if any); write ``out`` atomically.
    Returns the folder read. ``options`` go to the dataset's preparation (CIFAR-10: ``zca_fit_n``)."""
    info = dataset_info(dataset)
    unknown = sorted(set(options) - set(info.prepare_options))
    if unknown:
        raise DataError(
            f"{dataset}: unknown preparation options {unknown}; it takes {list(info.prepare_options)}"
        )
    arrays, used = load_arrays(dataset, source, data_dir, out.parent)
    splits = split(*arrays, n_train=info.n_train)
    if info.preprocessing:
        splits = replace(splits, prep=fit_preprocessing(info.preprocessing, arrays[0], **options))
    write_splits(out, splits)
    return used


def prepare_mnist(out: Path, source: str = "auto", data_dir: str | None = None) -> Path:
    """Read, verify and split MNIST, writing ``out`` (.npz) atomically. Returns the folder read."""
    return prepare("mnist", out, source, data_dir)


def load_splits(
    path: Path, n_train: int | None = None, n_val: int | None = None, n_test: int | None = None
) -> Splits:
    """Load prepared splits, optionally the first ``n`` examples of each (for small presets)."""
    with np.load(path) as npz:
        d = {k: npz[k] for k in npz.files}
    cut = {"train": n_train, "val": n_val, "test": n_test}
    prep = {k: d.pop(k) for k in list(d) if k.startswith(PREP_PREFIX)}
    return Splits(**{k: v[: cut[k.split("_")[1]]] for k, v in d.items()}, prep=prep)
