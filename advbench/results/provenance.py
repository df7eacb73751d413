"""Provenance written with every result: code version, packages, config hash, rule, devices."""

from __future__ import annotations

import contextlib
import datetime as dt
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from advbench.results.schemas import SCHEMA_VERSION


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
