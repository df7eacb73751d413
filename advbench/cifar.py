"""CIFAR-10: the binary-version files (or tensorflow-datasets), checks, and the paper's preprocessing.

The local files are ``data_batch_1..5.bin`` and ``test_batch.bin``, each 10,000 records of one label byte
and 3072 pixel bytes (1024 R, 1024 G, 1024 B, row-major). Their sha256s are those of the JPEG-degraded
copies under ``ADVBENCH_DATA/cifar10`` (see that folder's README); nothing here reads a pickle.

Preprocessing (pylearn2 ``make_cifar10_gcn_whitened.py``): global contrast normalization of every image
(subtract its mean, scale to L2 norm 55), then ZCA whitening ``(x - mean) @ P`` with
``P = (C + 0.1 I)^(-1/2)``, ``C`` the covariance of the GCN'd training images. The prepared ``.npz`` keeps
the uint8 images (for figures) and the fitted ``mean`` and ``P``; models see the whitened space, and the
paper's eps (.1) is measured there (:func:`preprocess`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np

from advbench.data import PREP_PREFIX, DataError, resolve_source, split, write_splits

RECORD_BYTES, RECORDS_PER_FILE = 1 + 3072, 10_000
FILE_BYTES = RECORD_BYTES * RECORDS_PER_FILE
#: sha256 of the binary-version files in ADVBENCH_DATA/cifar10 (real images, JPEG q=75 degraded).
FILES: dict[str, str] = {
    "data_batch_1.bin": "8da035fc1631e8ce5f25904206b8993b0f3ad02a504c0584d662e806fd76c12b",
    "data_batch_2.bin": "106eeaad9f1fa7a999292fdafe68ee909080f58aee038a76994035aedf40ba26",
    "data_batch_3.bin": "99cb88ba00fca88bf28c517a74307b6b78a346c6ea747a561cb8e660c787d5cb",
    "data_batch_4.bin": "76b482bc3bb79c0370e48ea71bb6e4f567a3770d224dc09a9ddc8cfa2369f294",
    "data_batch_5.bin": "490f5ead4f04a3eb71d5898eb551e0d8d2c592feb778fb9b109a006b3f231495",
    "test_batch.bin": "0ce179d0c0a5220739d6223197952896644ceabb648dacfdebd7f06789af543f",
}
N_TRAIN = 40_000  # pylearn2's CIFAR-10 maxout setup: train on 40k, validate on the last 10k of the 50k
GCN_SCALE, ZCA_BIAS = 55.0, 0.1


def read_batch(path: Path, sha256: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels of one binary batch, after checking length and sha256."""
    if not path.exists():
        raise DataError(f"{path}: file not found (set ADVBENCH_DATA to a folder holding cifar10/)")
    raw = path.read_bytes()
    if len(raw) != FILE_BYTES:
        raise DataError(
            f"{path}: {len(raw)} bytes; expected {FILE_BYTES} "
            f"({RECORDS_PER_FILE} records of 1 label byte + 3072 pixel bytes)"
        )
    found = hashlib.sha256(raw).hexdigest()
    if found != sha256:
        raise DataError(f"{path}: sha256 is {found}; expected {sha256}")
    records = np.frombuffer(raw, dtype=np.uint8).reshape(RECORDS_PER_FILE, RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise DataError(f"{path}: label {labels.max()} out of range 0..9")
    return records[:, 1:].reshape(-1, 3, 32, 32).copy(), labels


def cifar_from_dir(directory: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The verified training (50k) and test (10k) arrays from a folder of binary-version files."""
    if not directory.is_dir():
        raise DataError(
            f"{directory}: CIFAR-10 directory not found (set ADVBENCH_DATA to a folder with cifar10/)"
        )
    batches = [read_batch(directory / name, sha) for name, sha in FILES.items()]
    x_train = np.concatenate([x for x, _ in batches[:-1]])
    y_train = np.concatenate([y for _, y in batches[:-1]])
    return x_train, y_train, *batches[-1]


def cifar_from_tfds(data_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CIFAR-10 through tensorflow-datasets (online; optional dependency). Its examples are shuffled."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DataError(
            "data.source 'tfds' needs tensorflow-datasets (pip install tensorflow-datasets tensorflow-cpu), "
            "or set ADVBENCH_DATA to a folder holding cifar10/ with the binary-version files"
        ) from None
    arrays = []
    for split_name in ("train", "test"):
        x, y = tfds.as_numpy(
            tfds.load("cifar10", split=split_name, batch_size=-1, as_supervised=True, data_dir=data_dir)
        )
        arrays += [np.ascontiguousarray(x.transpose(0, 3, 1, 2)), y.astype(np.int64)]
    return tuple(arrays)  # type: ignore[return-value]


def gcn(x: np.ndarray, scale: float = GCN_SCALE, min_divisor: float = 1e-8) -> np.ndarray:
    """Global contrast normalization (pylearn2): subtract each row's mean, scale its L2 norm to ``scale``."""
    x = x.reshape(len(x), -1).astype(np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    norm = np.sqrt((x * x).sum(axis=1, keepdims=True)) / scale
    return x / np.where(norm < min_divisor, 1.0, norm)


def fit_zca(x: np.ndarray, bias: float = ZCA_BIAS) -> tuple[np.ndarray, np.ndarray]:
    """pylearn2's ZCA: the mean and ``P = (C + bias I)^(-1/2)`` of rows ``x`` (``C = X^T X / n``, centred).

    With fewer rows than dimensions the eigenvectors come from the n x n Gram matrix; the complement of
    their span (eigenvalue 0 of ``C``) is scaled by ``bias^(-1/2)``, which is the same ``P``.
    """
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    xc = x - mean
    n, d = xc.shape
    if n >= d:
        eigs, vecs = np.linalg.eigh(xc.T @ xc / n)
        return mean, (vecs * (np.clip(eigs, 0, None) + bias) ** -0.5) @ vecs.T
    eigs, u = np.linalg.eigh(xc @ xc.T / n)
    keep = eigs > eigs.max() * 1e-10
    eigs, u = eigs[keep], u[:, keep]
    vecs = xc.T @ u / np.sqrt(n * eigs)  # unit eigenvectors of C
    p = (vecs * ((eigs + bias) ** -0.5 - bias**-0.5)) @ vecs.T
    p[np.diag_indices(d)] += bias**-0.5
    return mean, p


def preprocess(x: np.ndarray, data: Mapping[str, np.ndarray], chunk: int = 5000) -> np.ndarray:
    """uint8 images to the whitened space: GCN, then ``(x - mean) @ P`` with the fitted ``prep_*``."""
    mean = data[f"{PREP_PREFIX}zca_mean"]
    p = data[f"{PREP_PREFIX}zca_matrix"]
    scale = float(data[f"{PREP_PREFIX}gcn_scale"])
    parts = [(gcn(x[i : i + chunk], scale) - mean).astype(np.float32) @ p for i in range(0, len(x), chunk)]
    return np.concatenate(parts) if parts else np.empty((0, p.shape[0]), dtype=np.float32)


def unwhiten(x: np.ndarray, data: Mapping[str, np.ndarray]) -> np.ndarray:
    """Inverse of :func:`preprocess`'s ZCA step, for display: whitened rows back to GCN'd images (float64;
    the mean and scale that GCN removed are lost)."""
    p = np.asarray(data[f"{PREP_PREFIX}zca_matrix"], dtype=np.float64)
    white = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return np.linalg.solve(p.T, white.T).T + data[f"{PREP_PREFIX}zca_mean"]


def prepare_cifar10(
    out: Path, source: str = "auto", data_dir: str | None = None, zca_fit_n: int | None = None
) -> Path:
    """Read and verify CIFAR-10, fit GCN + ZCA on the 50k training images (or the first ``zca_fit_n``),
    split 40k / 10k / 10k test, and write ``out`` atomically. Returns the source used."""
    kind, directory = resolve_source(source, data_dir, "cifar10")
    if kind == "local":
        assert directory is not None
        arrays = cifar_from_dir(directory)
    else:
        arrays = cifar_from_tfds()
    mean, p = fit_zca(gcn(arrays[0][:zca_fit_n]), ZCA_BIAS)
    prep = {
        "zca_mean": mean,
        "zca_matrix": p.astype(np.float32),
        "gcn_scale": np.float64(GCN_SCALE),
        "zca_bias": np.float64(ZCA_BIAS),
    }
    prep = {PREP_PREFIX + k: v for k, v in prep.items()}
    write_splits(out, replace(split(*arrays, n_train=N_TRAIN), prep=prep))
    return directory or Path("tensorflow-datasets")
