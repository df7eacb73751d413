"""Datasets: the registry (MNIST, CIFAR-10), their sources and checks, the paper's splits, model inputs.

Every dataset is one :class:`DatasetInfo` entry: its shape and classes, its local files and their hashes, the
layout they are in (IDX or CIFAR-10's binary records), where its training split ends, and which download
sources have it. From that entry alone it can be read from local files (``data.source: local``), through
torchvision (``torchvision``: the same IDX files, downloaded), or through tensorflow-datasets (``tfds``:
advbench's own builder over the local files, or tfds's stock builder; see :mod:`advbench.tfds_data`); all
give the same arrays in the same order, so the same prepared file.

Integrity of IDX files is checked on the *decompressed* content (md5), since gzip headers differ between
mirrors; CIFAR-10's binary files are checked by sha256 (:mod:`advbench.cifar`). Prepared data is a ``.npz``
of uint8 images and int64 labels: ``x_train``, ``x_val``, ``x_test`` (MNIST: the first 50k, 50k-60k, the 10k
test set, as the paper's pylearn2 setup splits them), plus any fitted preprocessing (``prep_*`` arrays, e.g.
CIFAR-10's GCN + ZCA). Models see flat float32 vectors (:func:`model_inputs`): pixels in [0, 1], or the
preprocessed space.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
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
#: sha256 of the binary-version files in ADVBENCH_DATA/cifar10 (real images, JPEG q=75 degraded).
CIFAR10_FILES: dict[str, str] = {
    "data_batch_1.bin": "8da035fc1631e8ce5f25904206b8993b0f3ad02a504c0584d662e806fd76c12b",
    "data_batch_2.bin": "106eeaad9f1fa7a999292fdafe68ee909080f58aee038a76994035aedf40ba26",
    "data_batch_3.bin": "99cb88ba00fca88bf28c517a74307b6b78a346c6ea747a561cb8e660c787d5cb",
    "data_batch_4.bin": "76b482bc3bb79c0370e48ea71bb6e4f567a3770d224dc09a9ddc8cfa2369f294",
    "data_batch_5.bin": "490f5ead4f04a3eb71d5898eb551e0d8d2c592feb778fb9b109a006b3f231495",
    "test_batch.bin": "0ce179d0c0a5220739d6223197952896644ceabb648dacfdebd7f06789af543f",
}
IDX_MAGIC = {1: 2049, 3: 2051}  # ndim -> magic number
N_TRAIN = 50_000
PREP_PREFIX = "prep_"
#: How local files are laid out; each layout has one reader (:func:`read_local`).
#: ``idx``: four IDX files, in ``files`` order train images, train labels, test images, test labels (md5 of
#: the decompressed content); ``cifar_bin``: CIFAR-10's binary records, the last file the test set (sha256).
LAYOUTS = ("idx", "cifar_bin")


Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # x_train, y_train, x_test, y_test


class DataError(RuntimeError):
    """A dataset file is missing, truncated or not what it should be; the message names the file."""


@dataclass(frozen=True)
class DatasetInfo:
    """What advbench needs to know of a dataset: image shape, classes, its files, where it can come from.

    Adding a dataset whose files are in an existing layout is one entry in :data:`DATASETS`: the local
    reader, advbench's tfds builder and the tfds reader are all derived from it.
    """

    name: str
    shape: tuple[int, int, int]  # (channels, height, width) of one image
    classes: tuple[str, ...]
    download: str  # the source ``auto`` falls back to without local files
    pixel_space: bool  # True: inputs are pixels in [0, 1]; False: a fitted preprocessing's space
    prepare_options: tuple[str, ...] = ()  # keys of config["data"] its preparation takes
    files: Mapping[str, str] = field(default_factory=dict, hash=False)  # local file -> expected hash
    layout: str = "idx"  # one of LAYOUTS
    n_train: int = N_TRAIN  # the training split is the first n_train; the rest of it validates
    torchvision: str | None = None  # a torchvision.datasets class that downloads the same IDX files
    tfds_name: str | None = None  # tfds's stock builder of the same data (its order is restored)
    preprocessing: str | None = None  # fitted on the training images at preparation (see PREPROCESSING)

    @property
    def n_inputs(self) -> int:
        return int(np.prod(self.shape))

    @property
    def sources(self) -> tuple[str, ...]:
        """The values of ``data.source`` that can provide it (tfds: advbench's builder over local files)."""
        return ("auto", "local", *(("torchvision",) if self.torchvision else ()), "tfds")


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        "mnist",
        (1, 28, 28),
        tuple("0123456789"),
        "torchvision",
        True,
        files=MNIST_FILES,
        torchvision="MNIST",
        tfds_name="mnist",
    ),
    "cifar10": DatasetInfo(
        "cifar10",
        (3, 32, 32),
        CIFAR10_CLASSES,
        "tfds",
        False,
        ("zca_fit_n",),
        files=CIFAR10_FILES,
        layout="cifar_bin",
        n_train=40_000,  # pylearn2's CIFAR-10 maxout setup: train on 40k, validate on the last 10k of 50k
        tfds_name="cifar10",
        preprocessing="gcn_zca",
    ),
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


def read_local(info: DatasetInfo, directory: Path) -> Arrays:
    """The verified arrays of ``info`` from its local folder, read by its layout's reader."""
    if info.layout == "idx":
        return idx_from_dir(directory, info)
    if info.layout == "cifar_bin":
        from advbench.cifar import cifar_from_dir  # cifar imports this module

        return cifar_from_dir(directory, info.files)
    raise DataError(f"{info.name}: unknown layout {info.layout!r}; expected one of {list(LAYOUTS)}")


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
    from advbench.tfds_data import load_tfds

    return load_tfds(info, directory, cache)


def split(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, n_train: int = N_TRAIN
) -> Splits:
    """The paper's split: train on the first ``n_train`` (MNIST: 50k), validate on the rest of the
    training set, test on the test set."""
    return Splits(x_train[:n_train], y_train[:n_train], x_train[n_train:], y_train[n_train:], x_test, y_test)


def write_splits(out: Path, splits: Splits) -> None:
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **splits.as_dict())


def fit_preprocessing(name: str, x_train: np.ndarray, **options) -> dict[str, np.ndarray]:
    """The ``prep_*`` arrays of a dataset's preprocessing, fitted on its training images."""
    if name == "gcn_zca":
        from advbench.cifar import fit_gcn_zca

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
