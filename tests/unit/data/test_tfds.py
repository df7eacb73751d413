"""``data.source: tfds`` offline, on the real data: advbench's builders over the local files, datasets laid
out as tfds's stock builders store them (shuffled), TensorFlow never imported, and a new registry entry."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from advbench.data.inputs import model_inputs
from advbench.data.registry import DATASETS, DataError, DatasetInfo
from advbench.data.splits import load_splits, prepare

if importlib.util.find_spec("tensorflow_datasets") is None:  # CI installs the extra: there, this fails
    if os.environ.get("CI"):
        raise RuntimeError(
            "CI must install the tfds extra (pip install -e '.[test,tfds]' -c constraints.txt)"
        )
    pytest.skip("needs the tfds extra: pip install -e '.[tfds]' -c constraints.txt", allow_module_level=True)

from advbench.data import tfds as own_tfds  # noqa: E402

ZCA_FIT_N = 1000  # as the smoke preset; the comparison is byte for byte either way

#: Prepares both datasets in a fresh interpreter, then lists the TensorFlow modules loaded (none may be) and
#: the imports of TensorFlow attempted (probes, which find nothing where it is not installed, as in CI).
NO_TF_SCRIPT = """
import importlib.abc, json, sys
from pathlib import Path

attempts = []
class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            attempts.append(name)
        return None
sys.meta_path.insert(0, Watch())

from advbench.data.splits import prepare
out, data_dir = Path(sys.argv[1]), sys.argv[2]
prepare("mnist", out / "mnist.npz", "tfds", data_dir)
prepare("cifar10", out / "cifar10.npz", "tfds", data_dir, zca_fit_n=int(sys.argv[3]))
loaded = sorted(m for m, v in sys.modules.items() if m.split(".")[0] == "tensorflow" and v is not None)
print(json.dumps({"tensorflow_modules": loaded, "attempts": sorted(set(attempts))}))
"""


@pytest.fixture(scope="module")
def cifar_local(tmp_path_factory: pytest.TempPathFactory, cifar_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("local") / "cifar10.npz"
    prepare("cifar10", out, "local", str(cifar_dir.parent), zca_fit_n=ZCA_FIT_N)
    return out


@pytest.fixture(scope="module")
def no_tf_run(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path, cifar_dir: Path) -> Path:
    """Both datasets prepared with ``source: tfds`` (advbench's builders, built here) without TensorFlow."""
    work = tmp_path_factory.mktemp("tfds_run")
    env = {**os.environ, "TFDS_DATA_DIR": str(work / "tfds")}
    proc = subprocess.run(
        [sys.executable, "-c", NO_TF_SCRIPT, str(work), str(mnist_dir.parent), str(ZCA_FIT_N)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["tensorflow_modules"] == [], report
    return work


def test_tfds_source_prepares_the_local_bytes_without_tensorflow(no_tf_run, prepared, cifar_local):
    """The acceptance check: the prepared files are byte-identical to the local-files source's."""
    assert (no_tf_run / "mnist.npz").read_bytes() == prepared.read_bytes()
    assert (no_tf_run / "cifar10.npz").read_bytes() == cifar_local.read_bytes()
    built = sorted(p.relative_to(no_tf_run / "tfds").as_posix() for p in (no_tf_run / "tfds").glob("*/*.*.*"))
    assert built == ["advbench_cifar10/1.0.0", "advbench_mnist/1.0.0"]
    info = json.loads((no_tf_run / "tfds/advbench_mnist/1.0.0/dataset_info.json").read_text())
    assert info["fileFormat"] == "array_record" and info["disableShuffling"] is True


def test_a_build_is_reused_and_refused_when_the_files_changed(
    no_tf_run, mnist_dir, prepared, tmp_path, monkeypatch
):
    monkeypatch.setenv("TFDS_DATA_DIR", str(no_tf_run / "tfds"))
    out = tmp_path / "mnist.npz"
    used = prepare("mnist", out, "tfds", str(mnist_dir.parent))  # in this process: reads the existing build
    assert used == no_tf_run / "tfds/advbench_mnist/1.0.0" and out.read_bytes() == prepared.read_bytes()
    other = dataclasses.replace(
        DATASETS["mnist"], files={**DATASETS["mnist"].files, "t10k-labels-idx1-ubyte": "0" * 32}
    )
    with pytest.raises(
        DataError, match=r"advbench_mnist/1.0.0: built from other files .* delete that folder"
    ):
        own_tfds.build_own(other, mnist_dir, no_tf_run / "tfds")


def test_stock_cifar10_layout_is_put_back_in_order_by_id(tmp_path, cifar_dir, cifar_local, monkeypatch):
    """A dataset stored as tfds's stock cifar10 stores it (name, version, shuffled, ``id`` per example)."""
    info = DATASETS["cifar10"]
    stock = tmp_path / "tfds"
    own_tfds.build_own(info, cifar_dir, stock, name="cifar10", version="3.0.2", shuffled=True)
    stored = (
        own_tfds._tfds().builder_from_directory(str(stock / "cifar10/3.0.2")).as_data_source(split="train")
    )
    first_ids = [r["id"] for r in stored.__getitems__(list(range(5)))]
    assert [own_tfds._text(i) for i in first_ids] != [f"train_{i:05d}" for i in range(5)]  # really shuffled
    monkeypatch.delenv("ADVBENCH_DATA", raising=False)  # no local files: the stock path
    monkeypatch.setenv("TFDS_DATA_DIR", str(stock))
    out = tmp_path / "cifar10.npz"
    assert prepare("cifar10", out, "tfds", zca_fit_n=ZCA_FIT_N) == stock / "cifar10/3.0.2"
    assert out.read_bytes() == cifar_local.read_bytes()  # so the 40k/10k split is pylearn2's


def test_stock_mnist_layout_is_put_back_in_order_by_key_hash(tmp_path, mnist_dir, prepared, monkeypatch):
    """Stock MNIST has no ``id``: tfds stored it sorted by the hash of each example's index."""
    stock = tmp_path / "tfds"
    own_tfds.build_own(
        DATASETS["mnist"], mnist_dir, stock, name="mnist", version="3.0.1", shuffled=True, ids=False
    )
    stored = own_tfds._tfds().builder_from_directory(str(stock / "mnist/3.0.1")).as_data_source(split="train")
    assert [int(r["label"]) for r in stored.__getitems__(list(range(8)))] != [5, 0, 4, 1, 9, 2, 1, 3]
    monkeypatch.delenv("ADVBENCH_DATA", raising=False)
    monkeypatch.setenv("TFDS_DATA_DIR", str(stock))
    out = tmp_path / "mnist.npz"
    prepare("mnist", out, "tfds")
    assert out.read_bytes() == prepared.read_bytes()


def test_stock_build_without_tensorflow_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.delenv("ADVBENCH_DATA", raising=False)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setattr(own_tfds, "tensorflow_installed", lambda: False)
    with pytest.raises(
        DataError, match=r"no prepared tfds 'mnist' under .*empty.*needs TensorFlow.*tensorflow-cpu"
    ):
        prepare("mnist", tmp_path / "mnist.npz", "tfds")
    assert not (tmp_path / "mnist.npz").exists()


def test_a_tfrecord_dataset_is_refused_by_name(no_tf_run, tmp_path):
    """tfds's default format needs TensorFlow to read: a clear error, not an import failure."""
    src, dst = no_tf_run / "tfds/advbench_mnist/1.0.0", tmp_path / "mnist/3.0.1"
    dst.mkdir(parents=True)
    for name in ("dataset_info.json", "features.json"):
        shutil.copy(src / name, dst / name)
    info = json.loads((dst / "dataset_info.json").read_text())
    (dst / "dataset_info.json").write_text(json.dumps(info | {"fileFormat": "tfrecord"}))
    with pytest.raises(DataError, match=r"mnist/3.0.1: stored as tfrecord, which only TensorFlow reads"):
        own_tfds.read_dataset(dst, DATASETS["mnist"])


def test_a_bad_local_file_is_named_through_tfds(tmp_path, mnist_dir, monkeypatch):
    local = tmp_path / "data" / "mnist"
    shutil.copytree(mnist_dir, local)
    bad = local / "t10k-labels-idx1-ubyte.gz"
    bad.chmod(0o644)
    bad.write_bytes(bad.read_bytes()[:2000])
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz.*(truncated|corrupt)"):
        prepare("mnist", tmp_path / "mnist.npz", "tfds", str(local.parent))
    assert not (tmp_path / "mnist.npz").exists()


def _idx(array: np.ndarray) -> bytes:
    magic = 2049 if array.ndim == 1 else 2051
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_a_new_dataset_is_one_registry_entry(tmp_path, monkeypatch):
    """A small synthetic IDX dataset (non-square images, 3 classes): one DatasetInfo, nothing else; local and
    tfds (advbench's builder, derived from the entry) prepare the same bytes."""
    rng = np.random.default_rng(0)
    arrays = {
        "tiny-train-images": rng.integers(0, 256, (30, 6, 5)),
        "tiny-train-labels": rng.integers(0, 3, 30),
        "tiny-test-images": rng.integers(0, 256, (8, 6, 5)),
        "tiny-test-labels": rng.integers(0, 3, 8),
    }
    folder = tmp_path / "data" / "tiny"
    folder.mkdir(parents=True)
    for stem, array in arrays.items():
        (folder / f"{stem}.gz").write_bytes(gzip.compress(_idx(array)))
    files = {stem: hashlib.md5(_idx(array)).hexdigest() for stem, array in arrays.items()}
    entry = DatasetInfo("tiny", (1, 6, 5), ("a", "b", "c"), "tfds", True, files=files, n_train=24)
    monkeypatch.setitem(DATASETS, "tiny", entry)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))

    prepare("tiny", tmp_path / "local.npz", "local", str(tmp_path / "data"))
    used = prepare("tiny", tmp_path / "tfds.npz", "tfds", str(tmp_path / "data"))
    assert used == tmp_path / "tfds/advbench_tiny/1.0.0"
    assert (tmp_path / "tfds.npz").read_bytes() == (tmp_path / "local.npz").read_bytes()
    s = load_splits(tmp_path / "tfds.npz")
    assert [len(s.x_train), len(s.x_val), len(s.x_test)] == [24, 6, 8] and s.x_train.shape[1:] == (6, 5)
    assert np.array_equal(s.x_val, arrays["tiny-train-images"][24:]) and np.array_equal(
        s.y_test, arrays["tiny-test-labels"]
    )
    assert model_inputs(s.x_test, {}).shape == (8, 30)
    with pytest.raises(DataError, match="tiny has no stock tfds builder"):
        prepare("tiny", tmp_path / "none.npz", "tfds", str(tmp_path / "nowhere"))
