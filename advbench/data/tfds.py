"""``data.source: tfds``: tensorflow-datasets builders and one reader, none of which imports TensorFlow.

tfds's stock ``mnist`` and ``cifar10`` builders need TensorFlow to build, and store tfrecord files by
default, which only TensorFlow reads. advbench therefore has its own builder for every dataset of its
registry (``advbench_<name>``, made from the :class:`~advbench.data.registry.DatasetInfo` entry alone): it
reads the local folder as tfds's ``manual_dir`` with advbench's verified readers (the same md5/sha256 checks
as ``source: local``) and writes ``array_record`` files in the original order (``disable_shuffling``). Without
local files, tfds's stock builder is used (with internet; TensorFlow is needed for that one build step,
``pip install tensorflow-cpu``), also into ``array_record``.

Either way one reader (:func:`read_dataset`) reads the built dataset through tfds's ``data_source`` API
(``builder_from_directory(...).as_data_source``), which needs no TensorFlow, and restores the original
order, so that the split is pylearn2's whatever the source: by the examples' ``id`` where they carry one
(``train_00042``: stock CIFAR-10 and advbench's builders), else, for a shuffled dataset (stock MNIST, whose
example keys are the indices in its IDX files), by tfds's own hash of those keys, which is the order tfds
stored them in. Builds go to ``$TFDS_DATA_DIR`` if set, else ``resources/data/tfds``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import types
from pathlib import Path
from typing import Any

import numpy as np

from advbench.data.local import read_local
from advbench.data.registry import Arrays, DataError, DatasetInfo

SPLITS = ("train", "test")
OWN_VERSION = "1.0.0"
FILE_FORMAT = "array_record"  # tfrecord needs TensorFlow to read; parquet silently drops examples (4.9.10)
CHUNK = 10_000  # examples decoded per data-source call
INSTALL = "pip install -e '.[tfds]' -c constraints.txt"


def _tfds() -> types.ModuleType:
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DataError(
            f"data.source 'tfds' needs tensorflow-datasets and array_record ({INSTALL}), "
            "or set ADVBENCH_DATA to a folder holding the dataset's local files and use source 'local'"
        ) from None
    tfds.disable_progress_bar()  # one line per example batch would flood the job logs
    return tfds


def resolve_tfds_dir(cache: Path, tfds_dir: Path | None = None) -> Path:
    """Where tfds datasets are built and found: ``tfds_dir``, else ``$TFDS_DATA_DIR``, else ``cache/tfds``."""
    return Path(tfds_dir or os.environ.get("TFDS_DATA_DIR") or cache / "tfds")


def own_name(info: DatasetInfo) -> str:
    return f"advbench_{info.name}"


def own_description(info: DatasetInfo) -> str:
    """Stored with the build; a build from other files (the registry's hashes changed) is not reused."""
    hashes = ", ".join(f"{name} {digest}" for name, digest in info.files.items())
    return f"advbench's {info.name}, built from its verified local files ({info.layout}: {hashes})"


def hwc(x: np.ndarray, info: DatasetInfo) -> np.ndarray:
    """Images in advbench's layout (IDX: N x H x W; CIFAR binary: N x C x H x W) to tfds's N x H x W x C."""
    return np.ascontiguousarray(x[..., None] if info.layout == "idx" else x.transpose(0, 2, 3, 1))


def from_hwc(x: np.ndarray, info: DatasetInfo) -> np.ndarray:
    """tfds's N x H x W x C images back to the layout the local reader gives (see :func:`hwc`)."""
    if info.layout == "idx":
        return np.ascontiguousarray(x[..., 0])
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def _builder_info(self: Any) -> Any:
    """The builder's ``_info``: features ``image``, ``label`` and (unless a stock-like copy) ``id``."""
    tfds, info = _tfds(), self.advbench_dataset
    c, h, w = info.shape
    features = {
        "image": tfds.features.Tensor(shape=(h, w, c), dtype=np.uint8),
        "label": tfds.features.ClassLabel(names=list(info.classes)),
    }
    if self.advbench_ids:
        features["id"] = tfds.features.Text()
    return tfds.core.DatasetInfo(
        builder=self,
        description=own_description(info),
        features=tfds.features.FeaturesDict(features),
        supervised_keys=("image", "label"),
        disable_shuffling=not self.advbench_shuffled,
    )


def _split_generators(self: Any, dl_manager: Any) -> dict[str, Any]:
    """Both splits from the verified local files in tfds's ``manual_dir``."""
    info = self.advbench_dataset
    x_train, y_train, x_test, y_test = read_local(info, Path(dl_manager.manual_dir))
    return {
        "train": self._generate_examples("train", hwc(x_train, info), y_train),
        "test": self._generate_examples("test", hwc(x_test, info), y_test),
    }


def _generate_examples(self: Any, split: str, x: np.ndarray, y: np.ndarray) -> Any:
    """Examples keyed by their index, as tfds's stock builders key theirs."""
    for i in range(len(x)):
        example = {"image": x[i], "label": int(y[i])}
        if self.advbench_ids:
            example["id"] = f"{split}_{i:05d}"
        yield i, example


def builder_class(
    info: DatasetInfo,
    *,
    name: str | None = None,
    version: str = OWN_VERSION,
    shuffled: bool = False,
    ids: bool = True,
) -> type:
    """advbench's tfds builder of ``info``: features ``id`` (``train_00000``...), ``image`` (uint8 H x W x C),
    ``label``; examples keyed by their index, as tfds's stock builders key theirs. ``name``, ``version``,
    ``shuffled`` and ``ids`` only change it into a copy of a stock builder's output (the tests build
    stock-like datasets offline with them: shuffled, without ``id`` for MNIST)."""
    tfds = _tfds()
    body = {
        "__module__": __name__,  # tfds looks for a builder's files next to its module
        "name": name or own_name(info),
        "VERSION": tfds.core.Version(version),
        "MANUAL_DOWNLOAD_INSTRUCTIONS": f"the folder of {info.name}'s local files: {', '.join(info.files)}",
        "advbench_dataset": info,
        "advbench_shuffled": shuffled,
        "advbench_ids": ids,
        "_info": _builder_info,
        "_split_generators": _split_generators,
        "_generate_examples": _generate_examples,
    }
    # Not registered by name: advbench builds it directly, and a test may define several for one dataset.
    return types.new_class(
        f"Advbench{info.name.title().replace('_', '')}",
        (tfds.core.GeneratorBasedBuilder,),
        {"skip_registration": True},
        lambda ns: ns.update(body),
    )


def build(builder: Any, manual_dir: Path | None = None) -> Path:
    """``download_and_prepare`` (skipped by tfds when built already); returns the version folder."""
    tfds = _tfds()
    config = tfds.download.DownloadConfig(
        manual_dir=None if manual_dir is None else str(manual_dir),
        try_download_gcs=False,  # tfds's prepared copies are tfrecord files
    )
    builder.download_and_prepare(download_config=config)
    return Path(builder.data_dir)


def build_own(info: DatasetInfo, local_dir: Path, data_dir: Path, **stock_like: Any) -> Path:
    """advbench's builder of ``info`` over ``local_dir`` into ``data_dir`` (or the existing build)."""
    builder = builder_class(info, **stock_like)(data_dir=str(data_dir), file_format=FILE_FORMAT)
    version_dir = Path(builder.data_dir)
    if (version_dir / "dataset_info.json").exists():
        stored = json.loads((version_dir / "dataset_info.json").read_text()).get("description")
        if stored != own_description(info):
            raise DataError(
                f"{version_dir}: built from other files than {info.name}'s registry entry names "
                f"(description {stored!r}); delete that folder to rebuild it"
            )
        return version_dir
    return build(builder, local_dir)


def tensorflow_installed() -> bool:
    """Whether TensorFlow could be imported (without importing it)."""
    return importlib.util.find_spec("tensorflow") is not None


def stock_version_dir(name: str, data_dir: Path) -> Path | None:
    """The newest prepared version of tfds's stock ``name`` under ``data_dir``, if any."""
    found = [d for d in (data_dir / name).glob("*.*.*") if (d / "dataset_info.json").exists()]
    return max(found, key=lambda d: tuple(int(p) for p in d.name.split(".")), default=None)


def build_stock(info: DatasetInfo, data_dir: Path) -> Path:
    """tfds's stock builder of ``info`` (downloads; needs TensorFlow) into ``data_dir`` as array_record."""
    if not tensorflow_installed():
        raise DataError(
            f"data.source 'tfds': no local {info.name} files (data.dir or ADVBENCH_DATA) and no prepared "
            f"tfds {info.tfds_name!r} under {data_dir}; building tfds's stock {info.tfds_name!r} needs "
            "TensorFlow, once (pip install tensorflow-cpu==2.21.0), or point TFDS_DATA_DIR to a copy built "
            f"elsewhere with file_format='{FILE_FORMAT}'"
        )
    tfds = _tfds()
    return build(tfds.builder(str(info.tfds_name), data_dir=str(data_dir), file_format=FILE_FORMAT))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def original_order(
    records: list[dict[str, Any]], split: str, shuffled: bool, where: Path
) -> np.ndarray | None:
    """Indices that put stored examples back in the original order, or None when already in it."""
    n = len(records)
    if n and "id" in records[0]:
        try:
            index = np.array([int(_text(r["id"]).rsplit("_", 1)[1]) for r in records])
        except (IndexError, ValueError):
            raise DataError(
                f"{where}: {split} ids like {_text(records[0]['id'])!r}; expected '{split}_<n>'"
            ) from None
        if not np.array_equal(np.sort(index), np.arange(n)):
            raise DataError(f"{where}: the {split} ids are not {split}_0 .. {split}_{n - 1}, each once")
        return np.argsort(index, kind="stable")
    if not shuffled or not n:
        return None
    # tfds stores a shuffled split sorted by the hash of each example's key, salted with the split's name;
    # stock MNIST keys its examples by their index in the IDX files, so sorting the indices by that hash
    # gives the stored order, and inverting it the original one.
    from tensorflow_datasets.core import hashing

    hasher = hashing.Hasher(salt=split)
    stored = np.array(sorted(range(n), key=hasher.hash_key))
    order = np.empty(n, dtype=np.int64)
    order[stored] = np.arange(n)
    return order


def read_dataset(version_dir: Path, info: DatasetInfo) -> Arrays:
    """Train and test arrays, in the original order, of a tfds dataset built as array_record (advbench's
    or stock), through tfds's data-source API: no TensorFlow. Images come back in advbench's layout."""
    tfds = _tfds()
    builder = tfds.builder_from_directory(str(version_dir))
    # None: an older build that names no format, so tfds's default, tfrecord.
    file_format = getattr(builder.info.file_format, "value", builder.info.file_format) or "tfrecord"
    if file_format != FILE_FORMAT:
        raise DataError(
            f"{version_dir}: stored as {file_format}, which only TensorFlow reads; expected {FILE_FORMAT} "
            "(rebuild it with file_format='array_record', or delete it and let advbench build it)"
        )
    c, h, w = info.shape
    arrays: list[np.ndarray] = []
    for split in SPLITS:
        if split not in builder.info.splits:
            raise DataError(f"{version_dir}: no {split!r} split; expected {list(SPLITS)}")
        source = builder.as_data_source(split=split)
        n = len(source)
        records = [
            r for i in range(0, n, CHUNK) for r in source.__getitems__(list(range(i, min(n, i + CHUNK))))
        ]
        x = np.stack([np.asarray(r["image"], dtype=np.uint8) for r in records]) if records else np.empty(0)
        if x.shape[1:] != (h, w, c):
            raise DataError(f"{version_dir}: {split} images of shape {x.shape[1:]}; expected {(h, w, c)}")
        y = np.array([r["label"] for r in records], dtype=np.int64)
        order = original_order(records, split, not builder.info.disable_shuffling, version_dir)
        if order is not None:
            x, y = x[order], y[order]
        arrays += [from_hwc(x, info), y]
    return arrays[0], arrays[1], arrays[2], arrays[3]


def load_tfds(
    info: DatasetInfo, local_dir: Path | None, cache: Path, tfds_dir: Path | None = None
) -> tuple[Arrays, Path]:
    """``data.source: tfds``: advbench's builder over ``local_dir`` when given, else tfds's stock builder
    (an existing array_record build is reused); then :func:`read_dataset`. Returns the arrays and the
    dataset's version folder."""
    _tfds()  # a missing package is the first thing to say
    data_dir = resolve_tfds_dir(cache, tfds_dir)
    if local_dir is not None:
        version_dir = build_own(info, local_dir, data_dir)
    else:
        version_dir = stock_version_dir(str(info.tfds_name), data_dir) or build_stock(info, data_dir)
    return read_dataset(version_dir, info), version_dir
