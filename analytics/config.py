"""The analytics part of a scenario's params, parsed (scenarios/params.py validates it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Point = tuple[float, float]


@dataclass(frozen=True)
class Zone:
    name: str
    polygon: tuple[Point, ...]  # fractions of the frame, x right, y down
    classes: frozenset[str] | None
    dwell: float | None  # seconds inside before one zone_dwell event per visit


@dataclass(frozen=True)
class Line:
    name: str
    a: Point
    b: Point
    classes: frozenset[str] | None


@dataclass(frozen=True)
class AnalyticsConfig:
    track: bool
    zones: tuple[Zone, ...]
    lines: tuple[Line, ...]

    @property
    def enabled(self) -> bool:
        return self.track

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> AnalyticsConfig:
        zones = tuple(
            Zone(
                name=z["name"],
                polygon=tuple((float(x), float(y)) for x, y in z["polygon"]),
                classes=frozenset(z["classes"]) if z.get("classes") else None,
                dwell=float(z["dwell"]) if z.get("dwell") else None,
            )
            for z in params.get("zones") or ()
        )
        lines = tuple(
            Line(
                name=line["name"],
                a=(float(line["points"][0][0]), float(line["points"][0][1])),
                b=(float(line["points"][1][0]), float(line["points"][1][1])),
                classes=frozenset(line["classes"]) if line.get("classes") else None,
            )
            for line in params.get("lines") or ()
        )
        track = params.get("track")
        if track is None:
            track = bool(zones or lines)
        return cls(track=bool(track), zones=zones, lines=lines)
