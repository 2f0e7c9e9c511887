"""The create form's fields as the body of POST /scenario/; the API's serializer judges it.

The form has the body's three fields (``source``, ``name``, ``params`` as JSON text) and two
conveniences that only add keys to ``params``: ``target_fps`` and ``loop``. Nothing here
decides what is valid beyond "is the params text JSON at all": ScenarioCreateSerializer does,
so a bad form gets the API's own messages.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.http import QueryDict

from misis.parsers import json_depth

FIELDS = ("source", "name", "params", "target_fps", "loop")


def _number(text: str) -> int | float | str:
    """``"5"`` -> 5, ``"2.5"`` -> 2.5; anything else as typed, for the serializer to refuse."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def create_body(form: QueryDict) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """(the JSON body the form stands for, errors found before the serializer: bad JSON)."""
    body: dict[str, Any] = {"source": form.get("source", ""), "name": form.get("name", "")}
    params_text = form.get("params", "").strip()
    params: Any = {}
    if params_text:
        # The API's parser bounds (misis.parsers): the form's size is bounded by Django
        # (DATA_UPLOAD_MAX_MEMORY_SIZE), the depth here, before json.loads recurses into it.
        max_depth = settings.MISIS_JSON_MAX_DEPTH
        if json_depth(params_text.encode("utf-8", "replace")) > max_depth:
            return body, {"params": [f"arrays and objects nested deeper than {max_depth}"]}
        try:
            params = json.loads(params_text)
        except ValueError as exc:
            return body, {"params": [f"not valid JSON: {exc}"]}
    if isinstance(params, dict):
        target_fps = form.get("target_fps", "").strip()
        if target_fps:
            params["target_fps"] = _number(target_fps)
        if form.get("loop"):
            params["loop"] = True
    body["params"] = params
    return body, {}


def flat_errors(detail: Any, prefix: str = "") -> list[str]:
    """DRF's nested error detail as lines: ``{"zones": ["..."]}`` -> ``["zones: ..."]``."""
    if isinstance(detail, dict):
        lines: list[str] = []
        for key, value in detail.items():
            lines += flat_errors(value, f"{prefix}{key}: " if key != "non_field_errors" else prefix)
        return lines
    if isinstance(detail, list):
        return [line for item in detail for line in flat_errors(item, prefix)]
    return [f"{prefix}{detail}"]
