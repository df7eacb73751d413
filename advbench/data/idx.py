"""IDX files (MNIST's layout): decompression, header checks, md5 of the decompressed content."""

from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path

import numpy as np

from advbench.data.registry import DATASETS, Arrays, DataError, DatasetInfo

IDX_MAGIC = {1: 2049, 3: 2051}  # ndim -> magic number


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


def idx_from_dir(directory: Path, info: DatasetInfo) -> Arrays:
    """The four verified arrays of an ``idx`` dataset (train images, labels, test images, labels) from a
    directory of IDX files (gzipped or not); labels as int64."""
    if not directory.is_dir():
        raise DataError(
            f"{directory}: {info.name} directory not found "
            f"(set ADVBENCH_DATA to a folder holding {info.name}/)"
        )
    if len(info.files) != 4:
        raise DataError(
            f"{info.name}: an idx dataset names 4 files; its registry entry has {list(info.files)}"
        )
    x_train, y_train, x_test, y_test = (load_verified(directory, s, md5) for s, md5 in info.files.items())
    for x, y, stem in ((x_train, y_train, list(info.files)[0]), (x_test, y_test, list(info.files)[2])):
        if x.shape[1:] != info.shape[1:] or len(x) != len(y):
            raise DataError(
                f"{directory / stem}: images {x.shape} with {len(y)} labels; expected (N, "
                f"{info.shape[1]}, {info.shape[2]}) with N labels"
            )
    return x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64)


def mnist_from_dir(directory: Path) -> Arrays:
    """The four verified MNIST arrays from a directory of IDX files (gzipped or not)."""
    return idx_from_dir(directory, DATASETS["mnist"])
