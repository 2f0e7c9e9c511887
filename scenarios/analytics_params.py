"""The analytics keys of ``params`` (tracks, zones, lines, webhook): their checks.

Coordinates are fractions of the frame, ``[x, y]`` with x to the right and y down, each in
0..1. A polygon has 3 to 64 points; a line exactly 2 distinct points. Names are unique within a
scenario (zones and lines together), 1 to 64 characters. The webhook URL passes the same host
checks as sources: it is another way to make the server connect somewhere.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from shapely import Polygon

from sources.base import SourceError
from sources.policy import check_host_now, require_clean

ANALYTICS_KEYS = ("track", "zones", "lines", "webhook")
MAX_POLYGON_POINTS = 64
MAX_NAME = 64
MIN_SECRET = 16
MAX_SECRET = 256
MAX_SHAPES = 64  # zones and lines of one scenario, together
MAX_DWELL = 86400  # seconds
MAX_URL = 2048
SECRET_MASK = "***"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _point(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(_number(c) and 0 <= c <= 1 for c in value)
    )


def _classes(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(c, str) and c.strip() for c in value):
        return "classes must be a list of non-empty label strings"
    return None


def _shape_errors(kind: str, items: Any, names: set[str]) -> dict[str, str]:
    if not isinstance(items, list):
        return {kind: "must be a list"}
    errors: dict[str, str] = {}
    for i, item in enumerate(items):
        where = f"{kind}[{i}]"
        if not isinstance(item, dict):
            errors[where] = "must be an object"
            continue
        known = {"name", "classes", "polygon", "dwell"} if kind == "zones" else {
            "name", "classes", "points"
        }  # fmt: skip
        unknown = set(item) - known
        name = item.get("name")
        if unknown:
            errors[where] = f"unknown keys {sorted(unknown)}; known: {sorted(known)}"
        elif not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME or not name.strip():
            errors[where] = f"name must be a string of 1 to {MAX_NAME} characters"
        elif name in names:
            errors[where] = f"name {name!r} is used twice (zones and lines share names)"
        elif message := _classes(item.get("classes")):
            errors[where] = message
        elif kind == "zones":
            message = _polygon(item.get("polygon")) or _dwell(item.get("dwell"))
            if message:
                errors[where] = message
        else:
            points = item.get("points")
            if not (isinstance(points, list) and len(points) == 2 and all(map(_point, points))):
                errors[where] = "points must be exactly 2 points [x, y], each in 0..1"
            elif points[0] == points[1]:
                errors[where] = "the 2 points of a line must differ"
        if isinstance(name, str):
            names.add(name)
    return errors


def _polygon(value: Any) -> str | None:
    if not (
        isinstance(value, list)
        and 3 <= len(value) <= MAX_POLYGON_POINTS
        and all(map(_point, value))
    ):
        return f"polygon must be 3 to {MAX_POLYGON_POINTS} points [x, y], each in 0..1"
    polygon = Polygon(value)
    if not polygon.is_valid or polygon.area <= 0:
        return "polygon must enclose an area and not cross itself"
    return None


def _dwell(value: Any) -> str | None:
    if value is None or (_number(value) and 0 < value <= MAX_DWELL):
        return None
    return f"dwell must be seconds in (0, {MAX_DWELL}]"


def _webhook_errors(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or set(value) - {"url", "secret"}:
        return {"webhook": 'must be {"url": "https://...", "secret": "..."}'}
    url, secret = value.get("url"), value.get("secret")
    if not isinstance(secret, str) or not MIN_SECRET <= len(secret) <= MAX_SECRET:
        return {"webhook.secret": f"must be a string of {MIN_SECRET} to {MAX_SECRET} characters"}
    if not isinstance(url, str) or len(url) > MAX_URL:
        return {"webhook.url": "must be an http(s) URL"}
    try:
        require_clean(url)
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is the check
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
            raise SourceError("must be an http(s) URL with a host and no user name")
        check_host_now(parts.hostname)
    except (SourceError, ValueError) as exc:
        return {"webhook.url": str(exc)}
    return {}


def analytics_errors(params: dict[str, Any]) -> dict[str, str]:
    """What is wrong with the analytics keys of ``params``, by field; empty when all is well."""
    errors: dict[str, str] = {}
    track = params.get("track")
    if track is not None and not isinstance(track, bool):
        errors["track"] = "must be true or false"
    names: set[str] = set()
    for kind in ("zones", "lines"):
        if kind in params:
            errors.update(_shape_errors(kind, params[kind], names))
    if len(names) > MAX_SHAPES:
        errors["zones"] = f"at most {MAX_SHAPES} zones and lines together"
    if "webhook" in params:
        errors.update(_webhook_errors(params["webhook"]))
    return errors


# What JSON Schema cannot say (tests/security/test_fuzz.py allows a 400 for these alone): a
# polygon that crosses itself or encloses no area, a line whose 2 points are one, a name used
# twice, more than MAX_SHAPES zones and lines together, a webhook URL refused by the host checks.
GEOMETRY_RULES = (
    "polygon must enclose an area and not cross itself",
    "the 2 points of a line must differ",
    "is used twice (zones and lines share names)",
    f"at most {MAX_SHAPES} zones and lines together",
)


def analytics_json_schema(*, label_pattern: str) -> dict[str, Any]:
    """The analytics keys of ``params`` as JSON Schema properties (OpenAPI 3.0), from the
    constants above; ``label_pattern``: a non-blank string without NUL."""
    number_0_1 = {"type": "number", "minimum": 0, "maximum": 1}
    point = {"type": "array", "minItems": 2, "maxItems": 2, "items": number_0_1}
    name = {"type": "string", "minLength": 1, "maxLength": MAX_NAME, "pattern": label_pattern}
    classes = {
        "type": "array",
        "nullable": True,
        "items": {"type": "string", "pattern": label_pattern},
    }

    def shapes(description: str, **properties: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "array",
            "maxItems": MAX_SHAPES,
            "description": description,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", *(k for k in properties if k != "dwell")],
                "properties": {"name": name, "classes": classes, **properties},
            },
        }

    no_nul = "^[^\\x00]*$"
    return {
        "track": {"type": "boolean", "nullable": True},
        "zones": shapes(
            f"Polygons of 3 to {MAX_POLYGON_POINTS} points [x, y] in 0..1 (not crossing"
            " themselves); names unique across zones and lines; dwell in seconds.",
            polygon={
                "type": "array",
                "minItems": 3,
                "maxItems": MAX_POLYGON_POINTS,
                "items": point,
            },
            dwell={
                "type": "number",
                "nullable": True,
                "minimum": 0,
                "exclusiveMinimum": True,
                "maximum": MAX_DWELL,
            },
        ),
        "lines": shapes(
            "Lines of 2 distinct points [x, y] in 0..1; names unique across zones and lines.",
            points={"type": "array", "minItems": 2, "maxItems": 2, "items": point},
        ),
        "webhook": {
            "type": "object",
            "additionalProperties": False,
            "required": ["url", "secret"],
            "description": "Events are POSTed to this http(s) URL (its host passes the same checks"
            " as a source's), signed with the secret; the secret is write-only.",
            "properties": {
                "url": {"type": "string", "maxLength": MAX_URL, "pattern": no_nul},
                "secret": {
                    "type": "string",
                    "minLength": MIN_SECRET,
                    "maxLength": MAX_SECRET,
                    "pattern": no_nul,
                },
            },
        },
    }


def masked(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` as answers show them: the webhook secret is write-only."""
    webhook = params.get("webhook")
    if not isinstance(webhook, dict) or "secret" not in webhook:
        return params
    return {**params, "webhook": {**webhook, "secret": SECRET_MASK}}
