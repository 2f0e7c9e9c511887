"""The analytics engine over synthetic tracks: crossings, zones, dwell, jitter, hand-over."""

from __future__ import annotations

from typing import Any

from analytics.config import AnalyticsConfig
from analytics.engine import Analytics, Event

W, H = 1000, 1000
PARAMS: dict[str, Any] = {
    "zones": [
        {"name": "door", "polygon": [[0.6, 0.0], [1.0, 0.0], [1.0, 1.0], [0.6, 1.0]], "dwell": 2}
    ],
    "lines": [{"name": "entry", "points": [[0.5, 0.0], [0.5, 0.6]]}],
}


def person(cx: float, bottom: float, label: str = "person") -> dict[str, Any]:
    """A box whose anchor (bottom centre) is at (cx, bottom), in fractions of the frame."""
    x, y = cx * W, bottom * H
    return {"label": label, "class_id": 0, "confidence": 0.9, "x1": x - 100, "y1": y - 300,
            "x2": x + 100, "y2": y}  # fmt: skip


def run(
    analytics: Analytics, paths: list[list[tuple[float, float]]], *, start: int = 0, fps: float = 5
) -> list[Event]:
    """Feed frames; ``paths[i]`` is the anchors of frame ``start + i``."""
    events: list[Event] = []
    for offset, anchors in enumerate(paths):
        index = start + offset
        boxes = [person(x, y) for x, y in anchors]
        _, new = analytics.process(
            frame_index=index, pts=index / fps, width=W, height=H, boxes=boxes
        )
        events += new
    return events


def walk(x0: float, x1: float, y: float, frames: int) -> list[list[tuple[float, float]]]:
    return [[(x0 + (x1 - x0) * i / (frames - 1), y)] for i in range(frames)]


def engine(params: dict[str, Any] = PARAMS, state: bytes | None = None) -> Analytics:
    return Analytics(AnalyticsConfig.from_params(params), fps=5, state=state)


def test_crossing_left_to_right_is_out_and_back_is_in() -> None:
    analytics = engine()
    events = run(analytics, walk(0.2, 0.45, 0.3, 6) + walk(0.45, 0.55, 0.3, 3)[1:])
    events += run(analytics, walk(0.55, 0.3, 0.3, 8), start=8)
    crossings = [(e.line, e.direction, e.track_id) for e in events if e.type == "line_cross"]
    assert crossings == [("entry", "out", 1), ("entry", "in", 1)]
    assert analytics.counts["lines"] == {"entry": {"in": 1, "out": 1}}


def test_passing_beyond_the_end_of_the_segment_is_no_crossing() -> None:
    events = run(engine(), walk(0.2, 0.55, 0.9, 10))  # the line ends at y = 0.6
    assert [e for e in events if e.type == "line_cross"] == []


def test_jitter_on_the_line_makes_no_burst() -> None:
    # Up to the line, then jitter across it (one frame each side, and within the margin).
    jitter = [[(0.5 + dx, 0.3)] for dx in (0.02, -0.02, 0.005, -0.005, 0.0, 0.02, -0.02) * 3]
    events = run(engine(), walk(0.3, 0.48, 0.3, 5) + jitter)
    assert [e for e in events if e.type == "line_cross"] == []


def test_a_track_standing_on_the_line_does_not_count() -> None:
    events = run(engine(), walk(0.3, 0.5, 0.3, 5) + [[(0.5, 0.3)]] * 20)
    assert [e for e in events if e.type == "line_cross"] == []


def test_zone_enter_dwell_exit_once_per_visit() -> None:
    analytics = engine()
    inside = [[(0.8, 0.5)]] * 15  # 3 s at 5 fps; dwell is 2 s
    events = run(analytics, walk(0.7, 0.8, 0.5, 3) + inside + walk(0.8, 0.4, 0.5, 6))
    kinds = [(e.type, e.zone) for e in events if e.zone]
    assert kinds == [("zone_enter", "door"), ("zone_dwell", "door"), ("zone_exit", "door")]
    assert analytics.counts["zones"] == {"door": {"inside": 0, "entered": 1}}


def test_a_track_that_leaves_the_frame_inside_a_zone_exits_when_forgotten() -> None:
    analytics = engine()
    events = run(analytics, [[(0.8, 0.5)]] * 5 + [[]] * 60)
    assert [e.type for e in events] == ["zone_enter", "zone_exit"]
    assert analytics.counts["zones"]["door"]["inside"] == 0


def test_classes_filter_what_counts() -> None:
    params = {"lines": [{"name": "l", "points": [[0.5, 0.0], [0.5, 1.0]], "classes": ["car"]}]}
    assert [e for e in run(engine(params), walk(0.2, 0.8, 0.5, 10)) if e.line] == []


def test_two_scenarios_keep_separate_track_ids() -> None:
    first, second = engine(), engine()
    run(first, [[(0.1, 0.5), (0.3, 0.5)]] * 3)
    events = run(second, walk(0.2, 0.8, 0.3, 10))
    assert {e.track_id for e in events} == {1}  # its own counter, from 1


def test_resumed_from_saved_state_gives_the_same_events_as_one_run() -> None:
    """What a runner that takes over sees: the state saved at a publish, then the same frames."""
    frames = (
        walk(0.2, 0.8, 0.3, 20)
        + [[(0.8, 0.5), (0.2, 0.2)]] * 15
        + [[(0.3 + 0.02 * i, 0.4), (0.2 + 0.03 * i, 0.2)] for i in range(20)]
    )
    whole = run(engine(), frames)
    assert {e.type for e in whole} >= {"line_cross", "zone_enter"}
    for cut in (7, 21, 40):
        before = engine()
        first = run(before, frames[:cut])
        after = engine(state=before.dump())
        assert first + run(after, frames[cut:], start=cut) == whole
