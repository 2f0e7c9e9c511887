"""Tooling stands on its own: bench/ and testbed/ never import the test suite."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_bench_and_testbed_do_not_import_tests() -> None:
    files = sorted((ROOT / "bench").rglob("*.py")) + sorted((ROOT / "testbed").rglob("*.py"))
    assert files
    offenders = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in files
        for name in imported_modules(path)
        if name == "tests" or name.startswith("tests.")
    }
    assert not offenders


def test_testbed_needs_no_pytest() -> None:
    for path in sorted((ROOT / "testbed").rglob("*.py")):
        assert "pytest" not in {n.split(".")[0] for n in imported_modules(path)}, path
