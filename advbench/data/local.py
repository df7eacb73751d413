"""A dataset's local files, read by its layout's reader."""

from __future__ import annotations

from pathlib import Path

from advbench.data.cifar10 import cifar_from_dir
from advbench.data.idx import idx_from_dir
from advbench.data.registry import LAYOUTS, Arrays, DataError, DatasetInfo


def read_local(info: DatasetInfo, directory: Path) -> Arrays:
    """The verified arrays of ``info`` from its local folder, read by its layout's reader."""
    if info.layout == "idx":
        return idx_from_dir(directory, info)
    if info.layout == "cifar_bin":
        return cifar_from_dir(directory, info.files)
    raise DataError(f"{info.name}: unknown layout {info.layout!r}; expected one of {list(LAYOUTS)}")
