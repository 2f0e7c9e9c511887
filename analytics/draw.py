"""Zones, lines, track ids and counts drawn on frames: the live preview's overlay, and the
snapshot of each event (its box, its track id, its zone or line)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from analytics.config import AnalyticsConfig
from analytics.engine import Event

ZONE_COLOUR = (0, 180, 255)
LINE_COLOUR = (255, 0, 180)
EVENT_COLOUR = (0, 0, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _px(point: tuple[float, float], width: int, height: int) -> tuple[int, int]:
    return round(point[0] * (width - 1)), round(point[1] * (height - 1))


def _zone(out: np.ndarray, polygon: Any, caption: str, colour: tuple[int, int, int]) -> None:
    h, w = out.shape[:2]
    points = np.array([_px(p, w, h) for p in polygon], dtype=np.int32)
    cv2.polylines(out, [points], isClosed=True, color=colour, thickness=2)
    x, y = points.min(axis=0)
    cv2.putText(out, caption, (int(x) + 4, int(y) + 16), FONT, 0.5, colour, 1)


def _line(out: np.ndarray, a: Any, b: Any, caption: str, colour: tuple[int, int, int]) -> None:
    h, w = out.shape[:2]
    p1, p2 = _px(a, w, h), _px(b, w, h)
    cv2.line(out, p1, p2, colour, 2)
    cv2.putText(out, caption, (p1[0] + 4, p1[1] + 16), FONT, 0.5, colour, 1)


def overlay(image: np.ndarray, config: AnalyticsConfig, counts: dict[str, Any]) -> None:
    """Draw every zone and line with its live counts onto ``image`` (in place)."""
    zones, lines = counts.get("zones", {}), counts.get("lines", {})
    for zone in config.zones:
        c = zones.get(zone.name, {})
        caption = f"{zone.name}: {c.get('inside', 0)} in, {c.get('entered', 0)} entered"
        _zone(image, zone.polygon, caption, ZONE_COLOUR)
    for line in config.lines:
        c = lines.get(line.name, {})
        _line(image, line.a, line.b, f"{line.name}: in {c.get('in', 0)} out {c.get('out', 0)}",
              LINE_COLOUR)  # fmt: skip


def snapshot(image: np.ndarray, event: Event, config: AnalyticsConfig) -> bytes:
    """The event's frame as a JPEG: its box and track id, and its zone or line."""
    out = image.copy()
    for zone in config.zones:
        if zone.name == event.zone:
            _zone(out, zone.polygon, zone.name, ZONE_COLOUR)
    for line in config.lines:
        if line.name == event.line:
            _line(out, line.a, line.b, line.name, LINE_COLOUR)
    box = event.box
    p1, p2 = (round(box["x1"]), round(box["y1"])), (round(box["x2"]), round(box["y2"]))
    cv2.rectangle(out, p1, p2, EVENT_COLOUR, 2)
    what = event.direction or event.type.removeprefix("zone_")
    caption = f"#{event.track_id} {event.label} {what}"
    cv2.putText(out, caption, (p1[0] + 2, max(p1[1] - 4, 12)), FONT, 0.5, EVENT_COLOUR, 1)
    ok, jpeg = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise ValueError("the snapshot could not be encoded")
    return jpeg.tobytes()
