"""Results as data: explicit pyarrow schemas, provenance metadata, atomic writes, checked reads."""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import json
import os
import platform
import subprocess
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA_VERSION = "2"
_KEYS = [
    pa.field("dataset", pa.string(), nullable=False),
    pa.field("seed", pa.int64(), nullable=False),
]
_ATTACK_KEYS = [
    pa.field("attack", pa.string(), nullable=False),
    pa.field("eps", pa.float64(), nullable=False),
    pa.field("clipped", pa.bool_(), nullable=False),
    pa.field("label_source", pa.string(), nullable=False),
]
_COUNTS = [
    pa.field("n", pa.int64(), nullable=False),
    pa.field("n_wrong", pa.int64(), nullable=False),
    pa.field("error", pa.float64(), nullable=False),
    pa.field("mean_conf_wrong", pa.float64(), nullable=True),
    pa.field("mean_conf", pa.float64(), nullable=False),
    pa.field("max_perturbation", pa.float64(), nullable=False),
]

SCHEMAS: dict[str, pa.Schema] = {
    "attack": pa.schema(
        [*_KEYS, pa.field("model", pa.string(), False), pa.field("regime", pa.string(), False), *_ATTACK_KEYS]
        + _COUNTS
    ),
    "transfer": pa.schema(
        [
            *_KEYS,
            pa.field("source_model", pa.string(), False),
            pa.field("source_regime", pa.string(), False),
            pa.field("target_model", pa.string(), False),
            pa.field("target_regime", pa.string(), False),
            *_ATTACK_KEYS,
            *_COUNTS,
        ]
    ),
    "curves": pa.schema(
        [
            *_KEYS,
            pa.field("model", pa.string(), False),
            pa.field("regime", pa.string(), False),
            pa.field("stage", pa.int64(), False),
            pa.field("epoch", pa.int64(), False),
            pa.field("lr", pa.float64(), False),
            pa.field("momentum", pa.float64(), False),
            pa.field("train_loss", pa.float64(), False),
            pa.field("train_error", pa.float64(), False),
            pa.field("train_adv_error", pa.float64(), False),
            pa.field("val_error", pa.float64(), False),
            pa.field("val_adv_error", pa.float64(), False),
            pa.field("seconds", pa.float64(), False),
            pa.field("is_best", pa.bool_(), False),
            pa.field("member", pa.int64(), True),
        ]
    ),
    "agreement": pa.schema(
        [
            *_KEYS,
            pa.field("eps", pa.float64(), False),
            pa.field("reference", pa.string(), False),
            pa.field("observer", pa.string(), False),
            pa.field("condition", pa.string(), False),
            pa.field("n", pa.int64(), False),
            pa.field("n_agree", pa.int64(), False),
            pa.field("rate", pa.float64(), True),
        ]
    ),
    "sweep": pa.schema(
        [
            *_KEYS,
            pa.field("run", pa.string(), False),
            pa.field("example", pa.int64(), False),
            pa.field("label", pa.int64(), False),
            pa.field("eps", pa.float64(), False),
            pa.field("class", pa.int64(), False),
            pa.field("logit", pa.float64(), False),
        ]
    ),
    "ensemble": pa.schema(
        [
            *_KEYS,
            pa.field("run", pa.string(), False),
            pa.field("members", pa.int64(), False),
            pa.field("attacked", pa.string(), False),
            *_ATTACK_KEYS,
            *_COUNTS,
        ]
    ),
    "rubbish": pa.schema(
        [
            *_KEYS,
            pa.field("model", pa.string(), False),
            pa.field("regime", pa.string(), False),
            pa.field("threshold", pa.float64(), False),
            pa.field("n", pa.int64(), False),
            pa.field("n_confident", pa.int64(), False),
            pa.field("error", pa.float64(), False),
            pa.field("mean_conf", pa.float64(), True),
        ]
    ),
    "rubbish_classes": pa.schema(
        [
            *_KEYS,
            pa.field("model", pa.string(), False),
            pa.field("regime", pa.string(), False),
            pa.field("class", pa.int64(), False),
            pa.field("n_predicted", pa.int64(), False),
            pa.field("share", pa.float64(), True),
        ]
    ),
}
_PANEL_KEYS = [*_KEYS, pa.field("model", pa.string(), False), pa.field("regime", pa.string(), False)]
_IMAGE = [pa.field("shape", pa.list_(pa.int64()), False)]  # (channels, height, width) of the flat images
#: the image panels' data (advbench/panels.py): images in display space, flat, with their shape
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


def _remove_stale_temps(path: Path) -> None:
    """Delete temporary siblings of ``path`` left by killed writers on this host (their pid is gone)."""
    prefix = f".{path.name}.tmp-{platform.node()}-"
    for tmp in path.parent.glob(f"{glob.escape(prefix)}*"):
        pid = tmp.name.removeprefix(prefix)
        if pid.isdigit() and not pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it into place only if the block succeeds.

    A killed writer leaves at most its temporary file (never a partial ``path``); the next writer of the same
    path removes it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
    tmp = path.with_name(f".{path.name}.tmp-{platform.node()}-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def git_commit() -> str:
    """The repository's HEAD commit, or ``unknown`` outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    versions = {}
    for name in ("advbench", "torch", "ray", "numpy", "pyarrow", "snakemake"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def provenance(
    config_hash: str, rule: str, wildcards: dict[str, str], extra: dict[str, Any] | None = None
) -> dict:
    """The metadata stored with every results file."""
    return {
        "schema_version": SCHEMA_VERSION,
        "git_commit": git_commit(),
        "config_hash": config_hash,
        "rule": rule,
        "wildcards": wildcards,
        "packages": package_versions(),
        "python": platform.python_version(),
        "host_platform": platform.platform(),
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **(extra or {}),
    }


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
