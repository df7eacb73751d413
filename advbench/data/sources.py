"""Where a dataset comes from (``data.source``): local files, torchvision or tensorflow-datasets."""

from __future__ import annotations

import os
from pathlib import Path

from advbench.data.idx import idx_from_dir
from advbench.data.local import read_local
from advbench.data.registry import DATASETS, Arrays, DataError, DatasetInfo, dataset_info


def from_torchvision(info: DatasetInfo, root: Path) -> Arrays:
    """Download with torchvision (``info.torchvision``, e.g. ``MNIST``), then read and verify the raw IDX
    files it extracted to ``root/<class>/raw`` (already there: no download, as in the tests)."""
    import torchvision.datasets

    cls = getattr(torchvision.datasets, str(info.torchvision))
    for train in (True, False):
        cls(str(root), train=train, download=True)
    return idx_from_dir(root / cls.__name__ / "raw", info)


def mnist_from_torchvision(root: Path) -> Arrays:
    """Download MNIST with torchvision, then read and verify the raw IDX files it extracted."""
    return from_torchvision(DATASETS["mnist"], root)


def resolve_source(source: str, data_dir: str | None, dataset: str = "mnist") -> tuple[str, Path | None]:
    """Pick the data source and the local folder it reads, ``<dir>/<dataset>/`` with ``dir`` from data.dir
    or ``ADVBENCH_DATA``. ``local``, or ``auto`` with a directory: the local files; ``auto`` without one:
    the dataset's download source; ``tfds``: advbench's builder over the local folder where it exists,
    else tfds's stock builder (folder None); ``torchvision``: its download. A source the dataset lacks
    is refused."""
    info = dataset_info(dataset)
    if source not in info.sources:
        raise DataError(
            f"data.source {source!r} cannot provide {dataset}; expected one of {list(info.sources)}"
        )
    directory = data_dir or os.environ.get("ADVBENCH_DATA")
    if source == "local" and not directory:
        raise DataError("data.source is 'local' but neither data.dir nor ADVBENCH_DATA names a directory")
    if source in ("local", "auto") and directory:
        return "local", Path(directory) / dataset
    kind = info.download if source == "auto" else source
    if kind != "tfds":
        return kind, None
    local = Path(directory) / dataset if directory else None
    if local is not None and local.is_dir():
        return "tfds", local
    if not info.tfds_name:
        raise DataError(
            f"data.source 'tfds': {dataset} has no stock tfds builder and {local or '<data.dir>/' + dataset} "
            "is no folder; put its files there (data.dir or ADVBENCH_DATA) for advbench's own builder"
        )
    return "tfds", None


def load_arrays(
    dataset: str, source: str = "auto", data_dir: str | None = None, cache: Path = Path("resources/data")
) -> tuple[Arrays, Path]:
    """The verified train and test arrays of ``dataset`` from ``source``, in the original order, and the
    folder they were read from. ``cache`` holds downloads (``download/``) and tfds builds (``tfds/``, or
    ``$TFDS_DATA_DIR``)."""
    info = dataset_info(dataset)
    kind, directory = resolve_source(source, data_dir, dataset)
    if kind == "local":
        assert directory is not None
        return read_local(info, directory), directory
    if kind == "torchvision":
        root = cache / "download"
        return from_torchvision(info, root), root
    from advbench.data.tfds import load_tfds

    return load_tfds(info, directory, cache)
