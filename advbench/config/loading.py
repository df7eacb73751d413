"""Reading config files (merged as Snakemake merges ``--configfile``), its hash, and what jobs inherit
through their environment."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import yaml

CONFIG_HASH_ENV, RAY_ENV = "ADVBENCH_CONFIG_HASH", "ADVBENCH_RAY"


def load_config(*paths: Path) -> dict[str, Any]:
    """Load YAML files, later ones merged over earlier ones (as Snakemake merges ``--configfile``)."""
    merged: dict[str, Any] = {}
    for path in paths:
        with open(path) as fh:
            _merge(merged, yaml.safe_load(fh) or {})
    return merged


def _merge(base: dict[str, Any], over: dict[str, Any]) -> None:
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def export_to_jobs(config: dict[str, Any]) -> None:
    """Hand the config hash and the Ray settings to the jobs through their environment.

    Unlike rule params, these do not make Snakemake rerun finished jobs when they change.
    """
    os.environ[CONFIG_HASH_ENV] = config_hash(config)
    os.environ[RAY_ENV] = json.dumps(config["ray"], sort_keys=True)


def config_hash(config: dict[str, Any]) -> str:
    """A short, stable hash of a config, recorded in every result's provenance."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]
