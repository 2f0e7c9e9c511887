"""Scenario params: the one place that knows their names, defaults and ranges."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from misis.settings.retention import parse_duration
from scenarios.analytics_params import ANALYTICS_KEYS, analytics_errors, analytics_json_schema


class ParamsError(ValueError):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class Range:
    """A closed interval, or one open on the left; ``str()`` writes it as the API documents it."""

    low: float
    high: float
    low_open: bool = False

    def __contains__(self, value: float) -> bool:
        above = self.low < value if self.low_open else self.low <= value
        return above and value <= self.high

    def __str__(self) -> str:
        return f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"

    def json_schema(self, type_: str = "number") -> dict[str, Any]:
        """The range as JSON Schema (OpenAPI 3.0: a boolean exclusiveMinimum)."""
        bounds: dict[str, Any] = {"type": type_, "minimum": self.low, "maximum": self.high}
        if self.low_open:
            bounds["exclusiveMinimum"] = True
        return bounds


# Each param's range and default, defined here only: the API's checks and documentation, the
# runner (Params) and the detector's options (inference/backends/base.py) import them.
TARGET_FPS_RANGE = Range(0, 240, low_open=True)
CONFIDENCE_RANGE = Range(0, 1)
IMGSZ_RANGE = Range(32, 4096)
RECONNECT_TIMEOUT_RANGE = Range(0, 86400, low_open=True)  # seconds
# Seconds of source time; at most half the analytics' FORGET_AFTER (analytics/engine.py, 10 s),
# so a still object the detector sees only at the gap's frames is never forgotten between them
# (tests/runner/test_motion.py holds the two together).
MOTION_MAX_GAP_RANGE = Range(0, 5, low_open=True)
MOTION_THRESHOLD_RANGE = Range(0, 1, low_open=True)  # changed share of the frame
# A duration of at least an hour, parsed by misis/settings/retention.py (the check below); one
# longer than MISIS_RETENTION keeps rows for MISIS_RETENTION (a scenario may shorten it, not
# lengthen it). The same set as a regular expression, for the API's JSON schema.
RETENTION_PATTERN = "^([1-9][0-9]{0,5}[dh]|([6-9][0-9]|[1-9][0-9]{2,5})m)$"
MIN_RETENTION = timedelta(hours=1)
MAX_CLASSES = 1000
MAX_CLASS_LENGTH = 100

DEFAULT_TARGET_FPS: float | None = None  # every frame
DEFAULT_CONFIDENCE = 0.25
DEFAULT_CLASSES: frozenset[str] | None = None  # every label
DEFAULT_IMGSZ = 640
DEFAULT_LOOP = False
DEFAULT_RECONNECT_TIMEOUT = 60.0
# None: on for live sources, off for files (a file's events stay the same whether or not its
# runner was replaced mid-way; a resumed runner has no grey frame to compare with).
DEFAULT_MOTION: bool | None = None
DEFAULT_MOTION_MAX_GAP = 2.0
DEFAULT_MOTION_THRESHOLD = 0.002


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _duration(text: str) -> timedelta:
    """``text`` as misis/settings/retention.py parses MISIS_RETENTION; none when it cannot."""
    try:
        return parse_duration(text)
    except ValueError:
        return timedelta(0)


def _number_in(bounds: Range, what: str = "a number") -> tuple[Any, str]:
    """The rule of a number within ``bounds``, and its message."""
    return (lambda v: _number(v) and v in bounds, f"{what} in {bounds}")


# name: (check, message)
_RULES: dict[str, tuple[Any, str]] = {
    "target_fps": _number_in(TARGET_FPS_RANGE),
    "confidence": _number_in(CONFIDENCE_RANGE),
    "classes": (
        lambda v: (
            isinstance(v, list)
            and len(v) <= MAX_CLASSES
            and all(isinstance(c, str) and c.strip() and len(c) <= MAX_CLASS_LENGTH for c in v)
        ),
        "a list of non-empty label strings",
    ),
    "imgsz": (lambda v: _integer(v) and v in IMGSZ_RANGE, f"an integer in {IMGSZ_RANGE}"),
    "loop": (lambda v: isinstance(v, bool), "true or false"),
    "reconnect_timeout": _number_in(RECONNECT_TIMEOUT_RANGE, "seconds"),
    "motion": (lambda v: isinstance(v, bool), "true or false"),
    "motion_max_gap": _number_in(MOTION_MAX_GAP_RANGE, "seconds"),
    "motion_threshold": _number_in(MOTION_THRESHOLD_RANGE),
    "retention": (
        lambda v: isinstance(v, str) and _duration(v) >= MIN_RETENTION,
        "a duration of at least 1h: <n>d, <n>h or <n>m",
    ),
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


# A label: not blank, no NUL (PostgreSQL's text takes none).
LABEL_PATTERN = "^[^\\x00]*[^\\x00\\s][^\\x00]*$"


def params_json_schema() -> dict[str, Any]:
    """The rules above as JSON Schema for the OpenAPI document (documentation only:
    validate_params decides; tests/security/test_fuzz.py holds the two to each other)."""
    return {
        "type": "object",
        "nullable": True,
        "additionalProperties": False,
        "description": "Detector and reader settings, and analytics (track, zones, lines,"
        " webhook), every key optional; unknown keys are a 400.",
        "properties": {
            "target_fps": TARGET_FPS_RANGE.json_schema(),
            "confidence": CONFIDENCE_RANGE.json_schema(),
            "classes": {
                "type": "array",
                "maxItems": MAX_CLASSES,
                "items": {
                    "type": "string",
                    "maxLength": MAX_CLASS_LENGTH,
                    "pattern": LABEL_PATTERN,
                },
            },
            "imgsz": IMGSZ_RANGE.json_schema("integer"),
            "loop": {"type": "boolean"},
            "reconnect_timeout": RECONNECT_TIMEOUT_RANGE.json_schema(),
            "motion": {"type": "boolean"},
            "motion_max_gap": MOTION_MAX_GAP_RANGE.json_schema(),
            "motion_threshold": MOTION_THRESHOLD_RANGE.json_schema(),
            "retention": {"type": "string", "pattern": RETENTION_PATTERN},
            **analytics_json_schema(label_pattern=LABEL_PATTERN),
        },
    }


@dataclass(frozen=True)
class Params:
    target_fps: float | None = DEFAULT_TARGET_FPS
    confidence: float = DEFAULT_CONFIDENCE
    classes: frozenset[str] | None = DEFAULT_CLASSES
    imgsz: int = DEFAULT_IMGSZ
    loop: bool = DEFAULT_LOOP
    reconnect_timeout: float = DEFAULT_RECONNECT_TIMEOUT
    motion: bool | None = DEFAULT_MOTION
    motion_max_gap: float = DEFAULT_MOTION_MAX_GAP
    motion_threshold: float = DEFAULT_MOTION_THRESHOLD

    def motion_on(self, *, live: bool) -> bool:
        """Whether the motion gate (runner/motion.py) runs: as asked, else for live sources."""
        return live if self.motion is None else self.motion

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Params:
        """Params from validated stored params; a missing one takes its default."""
        classes = raw.get("classes")
        return cls(
            target_fps=raw.get("target_fps", DEFAULT_TARGET_FPS),
            confidence=raw.get("confidence", DEFAULT_CONFIDENCE),
            classes=frozenset(classes) if classes else DEFAULT_CLASSES,
            imgsz=raw.get("imgsz", DEFAULT_IMGSZ),
            loop=raw.get("loop", DEFAULT_LOOP),
            reconnect_timeout=raw.get("reconnect_timeout", DEFAULT_RECONNECT_TIMEOUT),
            motion=raw.get("motion", DEFAULT_MOTION),
            motion_max_gap=raw.get("motion_max_gap", DEFAULT_MOTION_MAX_GAP),
            motion_threshold=raw.get("motion_threshold", DEFAULT_MOTION_THRESHOLD),
        )
