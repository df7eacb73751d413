"""The package's imports run one way (docs/layout.md): a module imports only its own package and those
below it, so no cycle can form and the product never imports the tooling."""

from __future__ import annotations

import ast
from pathlib import Path

import advbench

ROOT = Path(advbench.__file__).parent
# lowest first; the tooling (reliability, bench) sits above the product, and the CLI, which imports the
# tooling only inside its commands (tests/unit/jobs/test_imports.py), on top
ORDER = [
    "runtime",
    "data",
    "config",
    "models",
    "attacks",
    "evaluation",
    "training",
    "results",
    "jobs",
    "report",
    "plan",
    "reliability",
    "bench",
    "cli",
]


def package_of(path: Path) -> str:
    return path.relative_to(ROOT).parts[0].removesuffix(".py")


def imported_packages(path: Path) -> set[str]:
    """The advbench packages ``path`` imports, at module level or inside functions."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        out |= {n.split(".")[1] for n in names if n.startswith("advbench.")}
    return out


def test_every_package_is_ranked():
    found = {package_of(p) for p in ROOT.rglob("*.py")} - {"__init__"}
    assert found == set(ORDER)


def test_imports_run_one_way():
    rank = {name: i for i, name in enumerate(ORDER)}
    upward = []
    for path in sorted(ROOT.rglob("*.py")):
        own = package_of(path)
        if own == "__init__":
            continue
        upward += [
            f"{path.relative_to(ROOT)} imports advbench.{dep}"
            for dep in sorted(imported_packages(path))
            if rank[dep] > rank[own]
        ]
    assert upward == []
