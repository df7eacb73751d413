"""Results files: explicit schemas, provenance, atomic writes, schema checks on read."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from advbench.results.provenance import provenance
from advbench.results.schemas import SCHEMA_VERSION
from advbench.results.tables import ResultsError, read_many, read_meta, read_table, write_table
from advbench.runtime.files import atomic_path


def _row(seed=0, **kw):
    row = {
        "dataset": "mnist",
        "seed": seed,
        "model": "maxout",
        "regime": "clean",
        "attack": "fgsm",
        "eps": 0.25,
        "clipped": False,
        "label_source": "true",
        "n": 10,
        "n_wrong": 9,
        "error": 0.9,
        "mean_conf_wrong": 0.95,
        "mean_conf": 0.9,
        "max_perturbation": 0.25,
    }
    return row | kw


def test_round_trip_with_provenance(tmp_path):
    meta = provenance("abc123", "attack", {"model": "maxout"})
    path = tmp_path / "a" / "fgsm.parquet"
    written = write_table([_row(0), _row(1)], "attack", path, meta)
    read = read_table(path, "attack")
    assert read.replace_schema_metadata(None).equals(written.replace_schema_metadata(None))
    got = read_meta(path)
    assert got["config_hash"] == "abc123" and got["schema_version"] == SCHEMA_VERSION
    assert {"torch", "pyarrow"} <= set(got["packages"]) and got["created_at"]
    assert read.schema.field("error").type == pa.float64()


def test_missing_or_mistyped_columns_are_refused(tmp_path):
    with pytest.raises((KeyError, pa.ArrowInvalid, pa.ArrowTypeError, TypeError)):
        write_table([_row(n="ten")], "attack", tmp_path / "x.parquet", {})
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"seed": [1]}), other)
    with pytest.raises(ResultsError, match="other.parquet"):
        read_table(other, "attack")


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "t.txt"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("killed")
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_read_many_concatenates(tmp_path):
    for seed in (0, 1):
        write_table([_row(seed)], "attack", tmp_path / f"{seed}.parquet", {})
    table = read_many(sorted(tmp_path.glob("*.parquet")), "attack")
    assert table.column("seed").to_pylist() == [0, 1]
