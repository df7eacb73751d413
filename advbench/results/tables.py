"""Results as Parquet: written with their schema and provenance, read back checked."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from advbench.results.schemas import _IMAGE, _PANEL_KEYS, SCHEMA_VERSION, SCHEMAS
from advbench.runtime.files import atomic_path

#: the image panels' data (advbench/jobs/panels.py): images in display space, flat, with their shape
SCHEMAS |= {
    "panel_examples": pa.schema(
        [
            *_PANEL_KEYS,
            pa.field("figure", pa.string(), False),
            pa.field("example", pa.int64(), False),
            pa.field("label", pa.int64(), False),
            pa.field("eps", pa.float64(), False),
            *_IMAGE,
            pa.field("clean", pa.list_(pa.float32()), False),
            pa.field("perturbation", pa.list_(pa.float32()), False),
            pa.field("adversarial", pa.list_(pa.float32()), False),
            pa.field("clean_pred", pa.int64(), False),
            pa.field("clean_conf", pa.float64(), False),
            pa.field("adv_pred", pa.int64(), False),
            pa.field("adv_conf", pa.float64(), False),
        ]
    ),
    "panel_weights": pa.schema(
        [
            *_PANEL_KEYS,
            pa.field("figure", pa.string(), False),
            pa.field("unit", pa.int64(), False),
            *_IMAGE,
            pa.field("weights", pa.list_(pa.float32()), False),
        ]
    ),
    "panel_saliency": pa.schema(
        [
            *_PANEL_KEYS,
            pa.field("example", pa.int64(), False),
            pa.field("label", pa.int64(), False),
            pa.field("samples", pa.int64(), False),
            pa.field("noise", pa.float64(), False),
            *_IMAGE,
            pa.field("image", pa.list_(pa.float32()), False),
            pa.field("gradient", pa.list_(pa.float32()), False),
            pa.field("smoothgrad", pa.list_(pa.float32()), False),
        ]
    ),
    "panel_rubbish": pa.schema(
        [
            *_PANEL_KEYS,
            pa.field("sample", pa.int64(), False),
            pa.field("threshold", pa.float64(), False),
            *_IMAGE,
            pa.field("noise", pa.list_(pa.float32()), False),
            pa.field("pred", pa.int64(), False),
            pa.field("conf", pa.float64(), False),
        ]
    ),
}


class ResultsError(RuntimeError):
    """A results file does not have the schema it should; the message names the file."""


def write_table(rows: Sequence[dict[str, Any]], kind: str, path: Path, meta: dict[str, Any]) -> pa.Table:
    """Write ``rows`` with the schema of ``kind`` and ``meta`` as JSON in ``advbench`` metadata."""
    schema = SCHEMAS[kind].with_metadata({"advbench": json.dumps(meta, sort_keys=True), "kind": kind})
    table = pa.Table.from_pylist(list(rows), schema=schema)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return table


def _read(path: Path, reader: Any) -> Any:
    """``reader(path)``, with a damaged or foreign file reported by name."""
    try:
        return reader(path)
    except (pa.ArrowException, OSError) as err:
        raise ResultsError(f"{path}: not a readable Parquet results file ({err})") from None


def read_table(path: Path, kind: str) -> pa.Table:
    """Read one results file and check its schema against ``kind``."""
    table = _read(path, pq.read_table)
    expected = SCHEMAS[kind]
    if not table.schema.remove_metadata().equals(expected):
        raise ResultsError(
            f"{path}: schema does not match {kind!r} results (schema version {SCHEMA_VERSION})"
        )
    return table


def read_many(paths: Sequence[Path], kind: str) -> pa.Table:
    """Concatenate many results files of one kind (their metadata dropped)."""
    tables = [read_table(Path(p), kind).replace_schema_metadata(None) for p in paths]
    return pa.concat_tables(tables) if tables else SCHEMAS[kind].empty_table()


def read_kind(path: Path) -> str:
    """The kind of results a file holds, from its metadata."""
    meta = _read(path, pq.read_schema).metadata or {}
    kind = meta.get(b"kind", b"").decode()
    if kind not in SCHEMAS:
        raise ResultsError(
            f"{path}: not an advbench results file (kind {kind!r}; expected one of {sorted(SCHEMAS)})"
        )
    return kind


def read_meta(path: Path) -> dict[str, Any]:
    """The provenance metadata of one results file."""
    return json.loads(_read(path, pq.read_schema).metadata[b"advbench"])
