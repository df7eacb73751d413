"""CIFAR-10: the binary-version files, their checks, the paper's preprocessing (tfds: ``advbench.data.tfds``).

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
from pathlib import Path

import numpy as np

from advbench.data.registry import CIFAR10_FILES, PREP_PREFIX, Arrays, DataError

RECORD_BYTES, RECORDS_PER_FILE = 1 + 3072, 10_000
FILE_BYTES = RECORD_BYTES * RECORDS_PER_FILE
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


def cifar_from_dir(directory: Path, files: Mapping[str, str] = CIFAR10_FILES) -> Arrays:
    """The verified training (50k) and test (10k) arrays from a folder of binary-version files (``files``:
    name -> sha256, the test file last)."""
    if not directory.is_dir():
        raise DataError(
            f"{directory}: CIFAR-10 directory not found (set ADVBENCH_DATA to a folder with cifar10/)"
        )
    batches = [read_batch(directory / name, sha) for name, sha in files.items()]
    x_train = np.concatenate([x for x, _ in batches[:-1]])
    y_train = np.concatenate([y for _, y in batches[:-1]])
    return x_train, y_train, *batches[-1]


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


def fit_gcn_zca(x_train: np.ndarray, zca_fit_n: int | None = None) -> dict[str, np.ndarray]:
    """GCN + ZCA fitted on the training images (or the first ``zca_fit_n``): the ``prep_*`` arrays."""
    mean, p = fit_zca(gcn(x_train[:zca_fit_n]), ZCA_BIAS)
    prep = {
        "zca_mean": mean,
        "zca_matrix": p.astype(np.float32),
        "gcn_scale": np.float64(GCN_SCALE),
        "zca_bias": np.float64(ZCA_BIAS),
    }
    return {PREP_PREFIX + k: np.asarray(v) for k, v in prep.items()}
