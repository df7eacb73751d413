"""The dataset registry: one :class:`DatasetInfo` entry per dataset (shape, classes, files and hashes,
layout, training split, download sources)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

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
