"""The config schema (``schema.yaml``, shipped with the package): the one source of every default.

The workflow validates ``config.yaml`` against it (filling the defaults); the specs' dataclasses take their
field defaults from it, so a spec built without a config has the values a validated config would have.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import yaml

SCHEMA_PATH = Path(__file__).resolve().parent / "schema.yaml"


@functools.cache
def _loaded() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def load_schema() -> dict[str, Any]:
    """The schema as data (a copy: callers may change it)."""
    return copy.deepcopy(_loaded())


def defaults(definition: str) -> dict[str, Any]:
    """The default of every key of ``definitions/<definition>`` that has one."""
    props = _loaded()["definitions"][definition]["properties"]
    return {key: copy.deepcopy(p["default"]) for key, p in props.items() if "default" in p}


def top_default(key: str) -> Any:
    """The default of a top-level key."""
    return copy.deepcopy(_loaded()["properties"][key]["default"])
