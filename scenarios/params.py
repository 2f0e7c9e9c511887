"""Scenario params: the one place that knows their names, defaults and ranges."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scenarios.analytics_params import ANALYTICS_KEYS, analytics_errors


class ParamsError(ValueError):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# name: (check, message)
_RULES: dict[str, tuple[Any, str]] = {
    "target_fps": (lambda v: _number(v) and 0 < v <= 240, "a number in (0, 240]"),
    "confidence": (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "classes": (
        lambda v: (
            isinstance(v, list)
            and len(v) <= 1000
            and all(isinstance(c, str) and c.strip() and len(c) <= 100 for c in v)
        ),
        "a list of non-empty label strings",
    ),
    "imgsz": (
        lambda v: isinstance(v, int) and not isinstance(v, bool) and 32 <= v <= 4096,
        "an integer in [32, 4096]",
    ),
    "loop": (lambda v: isinstance(v, bool), "true or false"),
    "reconnect_timeout": (lambda v: _number(v) and 0 < v <= 86400, "seconds in (0, 86400]"),
}


def storable_text(value: str) -> bool:
    """PostgreSQL text and jsonb take neither NUL nor lone surrogates."""
    return "\x00" not in value and not any("\ud800" <= ch <= "\udfff" for ch in value)


def _all_storable(value: Any) -> bool:
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, list):
        return all(_all_storable(v) for v in value)
    if isinstance(value, dict):
        return all(_all_storable(k) and _all_storable(v) for k, v in value.items())
    return True


def validate_params(params: Any) -> dict[str, Any]:
    """The params as given, or ParamsError naming each bad key."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise ParamsError({"params": "must be a JSON object"})
    errors: dict[str, str] = {}
    for key, value in params.items():
        rule = _RULES.get(key)
        if not _all_storable(key) or not _all_storable(value):
            errors[repr(key)] = "must not contain NUL or unpaired surrogate characters"
        elif key in ANALYTICS_KEYS:
            continue  # checked together below: names are unique across zones and lines
        elif rule is None:
            errors[key] = f"unknown param; known: {', '.join(sorted([*_RULES, *ANALYTICS_KEYS]))}"
        elif not rule[0](value):
            errors[key] = f"must be {rule[1]}"
    if not errors:
        errors = analytics_errors(params)
    if errors:
        raise ParamsError(errors)
    return dict(params)


@dataclass(frozen=True)
class Params:
    target_fps: float | None = None
    confidence: float = 0.25
    classes: frozenset[str] | None = None
    imgsz: int = 640
    loop: bool = False
    reconnect_timeout: float = 60.0

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Params:
        classes = raw.get("classes")
        return cls(
            target_fps=raw.get("target_fps"),
            confidence=raw.get("confidence", 0.25),
            classes=frozenset(classes) if classes else None,
            imgsz=raw.get("imgsz", 640),
            loop=raw.get("loop", False),
            reconnect_timeout=raw.get("reconnect_timeout", 60.0),
        )
