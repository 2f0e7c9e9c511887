"""docs/API.md against the OpenAPI schema and the URL configuration: neither drifts unnoticed.

Each endpoint of the page is a heading ``### METHOD /path`` (paths as the schema writes them,
``{scenario_id}``). Every operation of the schema has its heading, with each answer code the
schema documents written in its section; every heading is an operation of the schema, or one of
the few browser and operator endpoints the schema leaves out on purpose, which must still
resolve to a view.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, cast

import pytest
from django.test import Client
from django.urls import Resolver404, resolve

ROOT = Path(__file__).resolve().parents[1]
API_MD = ROOT / "docs" / "API.md"
HEADING = re.compile(r"^### (GET|POST|PUT|PATCH|DELETE) (/\S*)$", re.MULTILINE)
HTTP_METHODS = {"get", "put", "post", "delete", "patch"}
# Documented on the page, left out of the schema (a browser feature, the operators' metrics).
OUTSIDE_SCHEMA = {
    ("GET", "/scenario/{scenario_id}/view/"),
    ("GET", "/scenario/{scenario_id}/frame.jpg"),
    ("GET", "/scenario/{scenario_id}/view/state/"),
    ("GET", "/metrics"),
}
PRUNED = {"__pycache__", "node_modules", "media", "staticfiles", "static"}
SAMPLE_ID = "00000000-0000-0000-0000-000000000000"


def sections() -> dict[tuple[str, str], str]:
    """Each endpoint heading of the page, with the text of its section."""
    text = API_MD.read_text()
    found = list(HEADING.finditer(text))
    out = {}
    for i, match in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        body = text[match.end() : end]
        body = re.split(r"^## ", body, maxsplit=1, flags=re.MULTILINE)[0]
        out[(match.group(1), match.group(2))] = body
    return out


@pytest.fixture
def schema(db: None) -> dict[str, Any]:
    response = Client().get("/api/schema/?format=json")
    assert response.status_code == 200
    return cast("dict[str, Any]", response.json())


def operations(schema: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def test_every_schema_operation_has_its_section(schema: dict[str, Any]) -> None:
    missing = operations(schema) - set(sections())
    assert not missing, f"docs/API.md lacks a '### METHOD /path' section for {sorted(missing)}"


def test_every_section_is_a_real_endpoint(schema: dict[str, Any]) -> None:
    documented = set(sections())
    extra = documented - operations(schema)
    assert extra == OUTSIDE_SCHEMA, f"sections the schema does not know: {extra - OUTSIDE_SCHEMA}"
    for _, path in documented:
        try:
            resolve(path.replace("{scenario_id}", SAMPLE_ID).replace("{seq}", "1"))
        except Resolver404:
            pytest.fail(f"docs/API.md documents {path}, which no URL pattern serves")


def test_each_section_names_the_answers_the_schema_documents(schema: dict[str, Any]) -> None:
    text = sections()
    for method, path in operations(schema):
        codes = set(schema["paths"][path][method.lower()]["responses"])
        body = text[(method, path)]
        unnamed = {code for code in codes if f"`{code}`" not in body}
        assert not unnamed, f"{method} {path}: the section does not name {sorted(unnamed)}"


def test_no_file_points_outside_the_repository() -> None:
    """The contract lives in docs/API.md: nothing may send readers to a path outside the repo."""
    files = []
    for folder, dirs, names in os.walk(ROOT):
        # Not ours or not text: the venv, git, caches, media written by runs.
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in PRUNED]
        files += [os.path.relpath(os.path.join(folder, n), ROOT) for n in names]
    offenders = []
    for name in files:
        path = ROOT / name
        if path.suffix not in {".py", ".md", ".sh", ".yml", ".yaml", ".toml", ".txt", ".html"}:
            continue
        if name == "tests/test_api_docs.py" or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if "../shared/" in text or "api-contract" in text:
            offenders.append(name)
    assert not offenders
    assert "(docs/API.md)" in (ROOT / "README.md").read_text()
