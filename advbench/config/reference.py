"""``docs/config.md``, generated from the schema: every key with its type, default, bounds and description.

Regenerate it with ``python -m advbench.config.reference docs/config.md`` (a test fails while it is stale).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from advbench.config.schema import SCHEMA_PATH

HEADER = """# Configuration reference

Generated from `advbench/config/schema.yaml` by `python -m advbench.config.reference docs/config.md`; do not
edit by hand. `config.yaml` is validated against that schema, which also fills every default below; a preset
(`presets/*.yaml`) is merged over it. `<name>` stands for a key you choose (a model or regime name), `[]` for
an item of a list.
"""
BOUNDS = (
    ("minimum", "≥ {}"),
    ("exclusiveMinimum", "> {}"),
    ("maximum", "≤ {}"),
    ("exclusiveMaximum", "< {}"),
    ("minItems", "{} or more items"),
    ("maxItems", "{} or fewer items"),
    ("minProperties", "{} or more entries"),
    ("pattern", "matches `{}`"),
)


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """``node`` with its ``$ref`` (``#/definitions/<name>``) merged in."""
    ref = node.get("$ref")
    if ref is None:
        return node
    target = schema["definitions"][ref.removeprefix("#/definitions/")]
    return {**_resolve(schema, target), **{k: v for k, v in node.items() if k != "$ref"}}


def _type(node: dict[str, Any]) -> str:
    if "enum" in node:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in node["enum"])
    kinds = node.get("type", "any")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "array" in kinds and "items" in node and "type" in node["items"]:
        item = node["items"]["type"]
        kinds = [
            f"array of {item if isinstance(item, str) else ' or '.join(item)}" if k == "array" else k
            for k in kinds
        ]
    return " or ".join(kinds)


def _notes(node: dict[str, Any]) -> str:
    bounds = [fmt.format(node[key]) for key, fmt in BOUNDS if key in node]
    items = node.get("items", {})
    bounds += [
        f"items {fmt.format(items[key])}" for key, fmt in BOUNDS if isinstance(items, dict) and key in items
    ]
    if node.get("uniqueItems"):
        bounds.append("no repeats")
    text = node.get("description", "").strip()
    return "; ".join(([text] if text else []) + bounds).replace("|", "\\|").replace("\n", " ")


def rows(schema: dict[str, Any], node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every key under ``node`` (depth first), with its resolved schema."""
    node = _resolve(schema, node)
    for key, child in node.get("properties", {}).items():
        child = _resolve(schema, child)
        key_path = f"{path}.{key}" if path else key
        yield key_path, child
        yield from rows(schema, child, key_path)
        items = child.get("items")
        if isinstance(items, dict) and _resolve(schema, items).get("properties"):
            yield from rows(schema, items, key_path + "[]")
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and _resolve(schema, extra).get("properties"):
        yield from rows(schema, extra, f"{path}.<name>")


def markdown(schema: dict[str, Any]) -> str:
    """The reference: one table per top-level key."""
    out = [HEADER]
    for section, node in schema["properties"].items():
        out += [f"\n## `{section}`\n"]
        node = _resolve(schema, node)
        out += ["| key | type | default | notes |", "|---|---|---|---|"]
        entries = [(section, node), *rows(schema, node, section)]
        for key, child in entries:
            default = f"`{json.dumps(child['default'])}`" if "default" in child else ""
            out.append(
                f"| `{key}` | {_type(child)} | {default.replace('|', chr(92) + '|')} | {_notes(child)} |"
            )
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> None:
    text = markdown(yaml.safe_load(SCHEMA_PATH.read_text()))
    if argv:
        Path(argv[0]).write_text(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main(sys.argv[1:])
