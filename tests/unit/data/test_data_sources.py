"""Every value of ``data.source`` prepares MNIST byte for byte as the local files do (tfds: test_tfds.py),
offline: torchvision finds its raw folder laid out from the local files and downloads nothing."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from advbench.cli import parser
from advbench.data.registry import DATASETS, DataError
from advbench.data.sources import resolve_source
from advbench.data.splits import prepare


def _torchvision_raw(root: Path, mnist_dir: Path) -> None:
    """torchvision's MNIST layout (``<root>/MNIST/raw``, unzipped): it then skips its download."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in mnist_dir.glob("*.gz"):
        (raw / f.name.removesuffix(".gz")).write_bytes(gzip.decompress(f.read_bytes()))


@pytest.mark.parametrize("source", ["local", "auto", "torchvision"])
def test_every_source_prepares_the_local_bytes(source, tmp_path, mnist_dir, prepared):
    out = tmp_path / "data" / "mnist.npz"
    data_dir: str | None = str(mnist_dir.parent)
    if source == "torchvision":
        _torchvision_raw(out.parent / "download", mnist_dir)
    used = prepare("mnist", out, source, data_dir)
    assert out.read_bytes() == prepared.read_bytes()
    assert used == (out.parent / "download" if source == "torchvision" else mnist_dir)


def test_auto_without_local_files_goes_through_torchvision(tmp_path, mnist_dir, prepared, monkeypatch):
    monkeypatch.delenv("ADVBENCH_DATA", raising=False)
    out = tmp_path / "data" / "mnist.npz"
    _torchvision_raw(out.parent / "download", mnist_dir)
    assert prepare("mnist", out, "auto") == out.parent / "download"
    assert out.read_bytes() == prepared.read_bytes()


def test_sources_are_the_same_everywhere():
    """The schema, the CLI and the registry agree on the values of data.source."""
    schema = yaml.safe_load((REPO / "advbench/config/schema.yaml").read_text())
    in_schema = schema["properties"]["data"]["properties"]["source"]["enum"]
    in_registry = sorted({s for info in DATASETS.values() for s in info.sources})
    assert sorted(in_schema) == in_registry
    for source in in_registry:
        assert parser().parse_args(["prepare", "--out", "x.npz", "--source", source]).source == source


def test_a_source_the_dataset_lacks_is_refused(monkeypatch):
    monkeypatch.delenv("ADVBENCH_DATA", raising=False)
    with pytest.raises(DataError, match=r"'torchvision' cannot provide cifar10; expected one of"):
        resolve_source("torchvision", None, "cifar10")
    assert resolve_source("tfds", None, "mnist") == ("tfds", None)  # tfds's stock builder
    assert resolve_source("auto", None, "cifar10") == ("tfds", None)
