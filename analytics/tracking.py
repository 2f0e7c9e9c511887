"""Tracks per scenario: ByteTrack from Roboflow's ``trackers`` (Apache-2.0), one instance per
scenario, so that batched inference across scenarios never shares tracker state or an id
counter (the trap of ultralytics' batched ``track()``)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker

# Track ids count per scenario from 1 (ByteTrack's from 0).
FIRST_ID = 1


class Tracker:
    """ByteTrack over one scenario's boxes, in frame order; unconfirmed boxes get no id."""

    def __init__(self, fps: float) -> None:
        self._tracker = ByteTrackTracker(
            frame_rate=max(fps, 1.0), minimum_consecutive_frames=2, lost_track_buffer=30
        )

    def update(
        self, boxes: list[dict[str, Any]], pts: float, *, after_skip: bool = False
    ) -> list[int | None]:
        """The track id of each box (None while a track is not yet confirmed), in input order.

        ``after_skip``: the motion gate skipped the frames since the last update because nothing
        moved. ByteTrack with timestamps would count that gap against each track's lost-track
        budget (a second) and drop every track before matching; without a timestamp it counts
        this update as the next frame, so a skipped stretch costs no track.
        """
        timestamp = None if after_skip else pts
        if not boxes:
            self._update(sv.Detections.empty(), timestamp)
            return []
        detections = sv.Detections(
            xyxy=np.array([[b["x1"], b["y1"], b["x2"], b["y2"]] for b in boxes], dtype=float),
            confidence=np.array([b["confidence"] for b in boxes], dtype=float),
            class_id=np.array([b["class_id"] for b in boxes], dtype=int),
            data={"index": np.arange(len(boxes))},
        )
        tracked = self._update(detections, timestamp)
        ids: list[int | None] = [None] * len(boxes)
        assert tracked.tracker_id is not None  # a tracker's output always carries ids
        for index, track_id in zip(tracked.data["index"], tracked.tracker_id, strict=True):
            if track_id >= 0:
                ids[int(index)] = int(track_id) + FIRST_ID
        return ids

    def _update(self, detections: sv.Detections, timestamp: float | None) -> sv.Detections:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return self._tracker.update(detections, timestamp=timestamp)
