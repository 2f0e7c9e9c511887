"""The analytics of one scenario: boxes in, track ids and events out, state to save.

Hysteresis against jitter: a track is on a side of a line, or inside or outside a zone, only
when its anchor is more than ``MARGIN`` (a fraction of the frame) from the line or border; a
change counts after ``CONFIRM`` consecutive analysed frames on the new side. A line crossing
also needs the path from the last place the track was clearly on the old side to the new one to
meet the segment itself, so walking round its end crosses nothing.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import Any

from analytics.config import AnalyticsConfig, Line, Zone
from analytics.config import Point as XY
from analytics.geometry import Area, anchor, crosses_segment, side
from analytics.tracking import Tracker
from scenarios.event_writes import EventFacts
from scenarios.models import EventType

MARGIN = 0.01
CONFIRM = 2
# A track not seen for this long is forgotten; one that was inside a zone exits it then.
FORGET_AFTER = 10.0

ZONE_ENTER, ZONE_EXIT = EventType.ZONE_ENTER.value, EventType.ZONE_EXIT.value
ZONE_DWELL, LINE_CROSS = EventType.ZONE_DWELL.value, EventType.LINE_CROSS.value


# What the engine finds; the runner adds seq, time and snapshot (scenarios/event_writes.py).
Event = EventFacts


@dataclass
class _LineTrack:
    side: int = 0  # -1, +1; 0 until first seen clearly
    last: XY | None = None  # where it was last seen clearly on ``side``
    pending: int = 0


@dataclass
class _ZoneTrack:
    inside: bool = False
    pending: int = 0
    entered_at: float = 0.0
    dwelled: bool = False


@dataclass
class _Seen:
    pts: float
    label: str
    confidence: float
    frame_index: int
    box: dict[str, float]


@dataclass
class _State:
    """Everything that must survive a hand-over; geometry is rebuilt from the config."""

    tracker: Tracker
    lines: dict[str, dict[int, _LineTrack]] = field(default_factory=dict)
    zones: dict[str, dict[int, _ZoneTrack]] = field(default_factory=dict)
    seen: dict[int, _Seen] = field(default_factory=dict)
    line_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    zone_entered: dict[str, int] = field(default_factory=dict)


class Analytics:
    def __init__(self, config: AnalyticsConfig, *, fps: float, state: bytes | None = None):
        self.config = config
        self.areas = {zone.name: Area(zone.polygon) for zone in config.zones}
        self.state: _State = pickle.loads(state) if state else _State(tracker=Tracker(fps))
        for line in config.lines:
            self.state.lines.setdefault(line.name, {})
            self.state.line_counts.setdefault(line.name, {"in": 0, "out": 0})
        for zone in config.zones:
            self.state.zones.setdefault(zone.name, {})
            self.state.zone_entered.setdefault(zone.name, 0)

    def dump(self) -> bytes:
        """The state to save with a publish; written and read by runners only."""
        return pickle.dumps(self.state, protocol=pickle.HIGHEST_PROTOCOL)

    @property
    def counts(self) -> dict[str, Any]:
        inside = {
            name: sum(1 for t in tracks.values() if t.inside)
            for name, tracks in self.state.zones.items()
        }
        return {
            "lines": {name: dict(c) for name, c in self.state.line_counts.items()},
            "zones": {
                name: {"inside": inside[name], "entered": self.state.zone_entered[name]}
                for name in self.state.zones
            },
        }

    def process(
        self,
        *,
        frame_index: int,
        pts: float,
        width: int,
        height: int,
        boxes: list[dict[str, Any]],
        after_skip: bool = False,
    ) -> tuple[list[int | None], list[Event]]:
        """Track ids for ``boxes`` (in order) and the events of this frame, in a fixed order.

        ``after_skip``: the frames since the last call were skipped because nothing moved (the
        tracks coast over them; see Tracker.update)."""
        ids = self.state.tracker.update(boxes, pts, after_skip=after_skip)
        events: list[Event] = []
        for box, track_id in zip(boxes, ids, strict=True):
            if track_id is None:
                continue
            seen = _Seen(pts, box["label"], box["confidence"], frame_index, _xyxy(box))
            self.state.seen[track_id] = seen
            point = anchor(box, width, height)
            for line in self.config.lines:
                if _wants(line.classes, box["label"]):
                    events += self._line(line, track_id, point, seen)
            for zone in self.config.zones:
                if _wants(zone.classes, box["label"]):
                    events += self._zone(zone, track_id, point, seen)
        events += self._forget(pts, frame_index)
        return ids, events

    def _line(self, line: Line, track_id: int, point: XY, seen: _Seen) -> list[Event]:
        track = self.state.lines[line.name].setdefault(track_id, _LineTrack())
        distance = side(line.a, line.b, point)
        now = 1 if distance > MARGIN else -1 if distance < -MARGIN else 0
        if now == 0:
            return []
        if track.side in (0, now):
            track.side, track.last, track.pending = now, point, 0
            return []
        track.pending += 1
        if track.pending < CONFIRM:
            return []
        crossed = track.last is not None and crosses_segment(track.last, point, line.a, line.b)
        track.side, track.last, track.pending = now, point, 0
        if not crossed:
            return []
        direction = "in" if now > 0 else "out"
        self.state.line_counts[line.name][direction] += 1
        return [_event(LINE_CROSS, seen, track_id, line=line.name, direction=direction)]

    def _zone(self, zone: Zone, track_id: int, point: XY, seen: _Seen) -> list[Event]:
        track = self.state.zones[zone.name].setdefault(track_id, _ZoneTrack())
        depth = self.areas[zone.name].depth(point)
        events: list[Event] = []
        if (depth > MARGIN) != track.inside and abs(depth) > MARGIN:
            track.pending += 1
            if track.pending >= CONFIRM:
                track.inside, track.pending = not track.inside, 0
                if track.inside:
                    track.entered_at, track.dwelled = seen.pts, False
                    self.state.zone_entered[zone.name] += 1
                events.append(
                    _event(ZONE_ENTER if track.inside else ZONE_EXIT, seen, track_id, zone.name)
                )
        elif abs(depth) > MARGIN:
            track.pending = 0
        if (
            track.inside
            and zone.dwell is not None
            and not track.dwelled
            and seen.pts - track.entered_at >= zone.dwell
        ):
            track.dwelled = True
            events.append(_event(ZONE_DWELL, seen, track_id, zone.name))
        return events

    def _forget(self, pts: float, frame_index: int) -> list[Event]:
        """Tracks gone for FORGET_AFTER seconds leave every zone they were in."""
        events: list[Event] = []
        for track_id, seen in sorted(self.state.seen.items()):
            if pts - seen.pts < FORGET_AFTER:
                continue
            for zone in self.config.zones:
                track = self.state.zones[zone.name].pop(track_id, None)
                if track is not None and track.inside:
                    gone = _Seen(pts, seen.label, seen.confidence, frame_index, seen.box)
                    events.append(_event(ZONE_EXIT, gone, track_id, zone.name))
            for tracks in self.state.lines.values():
                tracks.pop(track_id, None)
            del self.state.seen[track_id]
        return events


def _wants(classes: frozenset[str] | None, label: str) -> bool:
    return classes is None or label in classes


def _xyxy(box: dict[str, Any]) -> dict[str, float]:
    return {k: float(box[k]) for k in ("x1", "y1", "x2", "y2")}


def _event(
    kind: str,
    seen: _Seen,
    track_id: int,
    zone: str | None = None,
    *,
    line: str | None = None,
    direction: str | None = None,
) -> Event:
    return Event(
        type=kind,
        zone=zone,
        line=line,
        direction=direction,
        track_id=track_id,
        label=seen.label,
        confidence=round(float(seen.confidence), 4),
        frame_index=seen.frame_index,
        pts=seen.pts,
        box=seen.box,
    )
