"""MNIST integrity: real files load with the published counts; bad files give errors naming the file."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from advbench.data.idx import mnist_from_dir
from advbench.data.registry import DataError
from advbench.data.sources import resolve_source
from advbench.data.splits import load_splits, prepare_mnist


def test_prepared_splits_match_the_paper(prepared):
    s = load_splits(prepared)
    assert [len(s.x_train), len(s.x_val), len(s.x_test)] == [50_000, 10_000, 10_000]
    assert s.x_train.dtype == np.uint8 and s.x_train.shape[1:] == (28, 28)
    test_counts = np.bincount(s.y_test, minlength=10).tolist()
    assert test_counts == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    train_counts = np.bincount(np.concatenate([s.y_train, s.y_val]), minlength=10).tolist()
    assert train_counts == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert int(s.y_train[0]) == 5  # original order: the first training digit is a 5


def test_subset_takes_the_first_examples(prepared):
    full, small = load_splits(prepared), load_splits(prepared, 100, 10, 20)
    assert np.array_equal(small.x_train, full.x_train[:100]) and len(small.y_test) == 20


@pytest.fixture()
def copy_dir(tmp_path: Path, mnist_dir: Path) -> Path:
    dst = tmp_path / "mnist"
    shutil.copytree(mnist_dir, dst)
    for f in dst.iterdir():
        f.chmod(0o644)
    return dst


def test_truncated_file_is_named(copy_dir):
    target = copy_dir / "t10k-labels-idx1-ubyte.gz"
    target.write_bytes(target.read_bytes()[:2000])
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz.*(truncated|corrupt|md5)"):
        mnist_from_dir(copy_dir)


def test_wrong_content_reports_expected_and_found_hash(copy_dir):
    target = copy_dir / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(target.read_bytes()))
    raw[-1] = (raw[-1] + 1) % 10
    target.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError) as err:
        mnist_from_dir(copy_dir)
    assert "t10k-labels-idx1-ubyte.gz" in str(err.value)
    assert "27ae3e4e09519cfbb04c329615203637" in str(err.value)  # expected
    assert "expected" in str(err.value) and "content is " in str(err.value)


def test_missing_file_is_named(copy_dir):
    (copy_dir / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: file not found"):
        mnist_from_dir(copy_dir)


def test_uncompressed_files_are_accepted(copy_dir):
    for f in list(copy_dir.glob("*.gz")):
        f.with_suffix("").write_bytes(gzip.decompress(f.read_bytes()))
        f.unlink()
    x_train, *_ = mnist_from_dir(copy_dir)
    assert x_train.shape == (60_000, 28, 28)


def test_failed_prepare_leaves_no_output(copy_dir, tmp_path):
    (copy_dir / "t10k-images-idx3-ubyte.gz").write_bytes(b"not a gzip file")
    out = tmp_path / "out" / "mnist.npz"
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz"):
        prepare_mnist(out, "local", str(copy_dir.parent))
    assert not out.exists()


def test_missing_data_dir_and_source_choice(tmp_path, monkeypatch):
    monkeypatch.delenv("ADVBENCH_DATA", raising=False)
    assert resolve_source("auto", None) == ("torchvision", None)
    with pytest.raises(DataError, match="ADVBENCH_DATA"):
        resolve_source("local", None)
    with pytest.raises(DataError, match="not found"):
        mnist_from_dir(tmp_path / "nowhere")


def test_idx_magic_and_length_are_checked(tmp_path):
    from advbench.data.idx import parse_idx

    header = (
        (2051).to_bytes(4, "big") + (2).to_bytes(4, "big") + (2).to_bytes(4, "big") + (2).to_bytes(4, "big")
    )
    assert parse_idx(header + bytes(8), tmp_path / "ok").shape == (2, 2, 2)
    with pytest.raises(DataError, match="wrong IDX magic number 2052"):
        parse_idx((2052).to_bytes(4, "big") + header[4:] + bytes(8), tmp_path / "bad")
    with pytest.raises(DataError, match="payload is 7 bytes"):
        parse_idx(header + bytes(7), tmp_path / "short")


def test_torchvision_source_reads_through_torchvision(tmp_path, mnist_dir):
    """The download path, offline: torchvision finds the raw files already in place and skips the download."""
    from advbench.data.sources import mnist_from_torchvision

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in mnist_dir.glob("*.gz"):
        (raw / f.name.removesuffix(".gz")).write_bytes(gzip.decompress(f.read_bytes()))
    x_train, y_train, x_test, y_test = mnist_from_torchvision(tmp_path)
    assert x_train.shape == (60_000, 28, 28) and len(y_test) == 10_000
    assert np.array_equal(x_test, mnist_from_dir(mnist_dir)[2])
