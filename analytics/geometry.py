"""Anchors, sides of a line, crossings of a segment and insides of a polygon, in fractions of
the frame (a camera that changes resolution keeps its zones). Shapely does the polygon and
segment tests; the side of a line is the contract's formula."""

from __future__ import annotations

import math

from shapely import LineString, Point, Polygon, prepared

from analytics.config import Point as XY


def anchor(box: dict[str, float], width: int, height: int) -> XY:
    """The middle of the box's bottom edge, as fractions of the frame."""
    return ((box["x1"] + box["x2"]) / 2 / width, box["y2"] / height)


def side(a: XY, b: XY, p: XY) -> float:
    """Signed distance of ``p`` from the line through ``a`` and ``b`` (fractions of the frame):
    positive on the side the contract calls "in" (``side = (Bx-Ax)*(Py-Ay) - (By-Ay)*(Px-Ax)``,
    divided by the segment's length)."""
    cross = (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
    length = math.hypot(b[0] - a[0], b[1] - a[1])
    return cross / length


def crosses_segment(p0: XY, p1: XY, a: XY, b: XY) -> bool:
    """Whether the path from ``p0`` to ``p1`` meets the segment AB itself (not its extension)."""
    return bool(LineString([p0, p1]).intersects(LineString([a, b])))


class Area:
    """A zone's polygon, prepared once for many point tests."""

    def __init__(self, polygon: tuple[XY, ...]) -> None:
        self.polygon = Polygon(polygon)
        self.boundary = self.polygon.exterior
        self._prepared = prepared.prep(self.polygon)

    def depth(self, p: XY) -> float:
        """Distance from the border: positive inside, negative outside."""
        point = Point(p)
        distance = float(self.boundary.distance(point))
        return distance if self._prepared.contains(point) else -distance
