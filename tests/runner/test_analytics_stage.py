"""The runner's analytics step: track ids on boxes, events with seq, state that resumes, and a
saved state it cannot read (an older version's) costs fresh tracks, not a crash loop."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pytest_django import Settings

from runner.analytics_stage import AnalyticsStage

PARAMS: dict[str, Any] = {"lines": [{"name": "mid", "points": [[0.5, 0.0], [0.5, 1.0]]}]}


def box(cx: float) -> dict[str, Any]:
    x = cx * 640
    return {"label": "person", "class_id": 0, "confidence": 0.9,
            "x1": x - 60, "y1": 100.0, "x2": x + 60, "y2": 400.0}  # fmt: skip


def walk(stage: AnalyticsStage, start: int, stop: int) -> list[Any]:
    image = np.zeros((480, 640, 3), dtype=np.uint8)
    rows = []
    for i in range(start, stop):
        boxes = [box(0.2 + 0.03 * i)]
        rows += stage.process(
            frame_index=i, pts=i / 5, captured_at=datetime.now(UTC), image=image, boxes=boxes
        )
        assert "track_id" in boxes[0]
    return rows


def stage(state: bytes | None = None, events_total: int = 0) -> AnalyticsStage:
    return AnalyticsStage(
        scenario_id="s", params=PARAMS, state=state, events_total=events_total, fps=5
    )


@pytest.fixture(autouse=True)
def _snapshots_in_tmp(settings: Settings, tmp_path: Path) -> None:
    settings.MISIS_VIDEO_ROOT = tmp_path


def test_a_crossing_gets_seq_1_and_resumes_with_the_same_numbering() -> None:
    whole = walk(stage(), 0, 20)
    assert [(r.seq, r.facts.type, r.facts.direction) for r in whole] == [(1, "line_cross", "out")]
    first = stage()
    before = walk(first, 0, 8)
    after = walk(stage(first.dump(sampler_next_pts=1.6), first.events_total), 8, 20)
    assert [(r.seq, r.facts) for r in before + after] == [(r.seq, r.facts) for r in whole]


@pytest.mark.parametrize(
    "state", [b"not a pickle", pickle.dumps(["not", "a", "dict"]), pickle.dumps({"engine": b"x"})]
)
def test_an_unreadable_saved_state_starts_fresh_tracks(state: bytes) -> None:
    fresh = stage(state)
    assert fresh.enabled and fresh.sampler_next_pts is None
    assert [r.facts.type for r in walk(fresh, 0, 20)] == ["line_cross"]
