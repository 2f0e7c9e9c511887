"""Inference only where something moves: a cheap look at each sampled frame decides whether the
detector has to see it.

The gate compares a small grey copy of the frame (``WIDTH`` pixels wide, lightly blurred, so that
sensor noise averages out) with the copy of the last frame it *sent*, not the last frame it saw:
a slow change adds up until it counts, and a stretch of still frames stays skipped however long
it is. A frame is sent when

* it is the first the gate sees, or its size differs from the reference's;
* ``max_gap`` seconds of source time (pts, never the wall clock: the choice does not depend on
  decode or detector speed) have passed since the last frame sent;
* more than ``SCENE_CHANGE`` of the picture changed (a cut, the lights, a camera that moved);
* the change outside the boxes the detector last found covers ``threshold`` of the frame
  (something new, or something moving where nothing is tracked);
* the change inside those boxes covers ``BOX_CHANGE`` of their area (a tracked object moved).

Every other frame is skipped: no detector call, no prediction row, the tracks and the preview
keep the last detections (runner/loop.py counts it in ``frames_skipped``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import cv2
import numpy as np

from runner.sources import Frame

WIDTH = 160  # pixels of the grey copy; its height keeps the frame's aspect ratio
BLUR = (3, 3)
PIXEL_DELTA = 12  # grey levels (of 255) by which a pixel must differ to count as changed
SCENE_CHANGE = 0.5  # changed share of the whole frame that is a new scene
BOX_CHANGE = 0.1  # changed share of the tracked boxes' area that is a tracked object moving
BOX_MARGIN = 0.1  # boxes grow by this share of their size on each side: an edge that sways
# is still the tracked object


def small_grey(frame: Frame) -> np.ndarray:
    """The frame as a small, lightly blurred grey image: all the gate ever looks at."""
    grey = frame.gray  # the luma plane as decoded: no BGR conversion for a frame it skips
    height, width = grey.shape[:2]
    small_w = min(WIDTH, width)
    small_h = max(1, round(height * small_w / width))
    small = cv2.resize(grey, (small_w, small_h), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small, BLUR, 0)


class Reason(StrEnum):
    FIRST = "first"
    GAP = "max_gap"
    SCENE = "scene_change"
    NEW_OBJECT = "new_object"
    MOTION = "motion"
    STILL = "still"  # skipped


@dataclass(frozen=True)
class Decision:
    send: bool
    reason: Reason
    # Frames were skipped since the last frame sent: the analytics must not read the gap as
    # time in which the tracked objects went missing (analytics/tracking.py).
    after_skip: bool = False


class MotionGate:
    """Decides, frame by frame in source order, which sampled frames go to the detector."""

    def __init__(self, *, max_gap: float, threshold: float) -> None:
        self.max_gap = max_gap
        self.threshold = threshold
        self.reference: np.ndarray | None = None  # grey copy of the last frame sent
        self.sent_pts = 0.0
        self.skipped_run = 0  # frames skipped since the last frame sent
        self.boxes: list[tuple[float, float, float, float]] = []  # as fractions of the frame

    def observe(self, boxes: Sequence[dict[str, Any]], width: int, height: int) -> None:
        """The detector's boxes (source pixels) on the newest analysed frame."""
        self.boxes = [
            (b["x1"] / width, b["y1"] / height, b["x2"] / width, b["y2"] / height) for b in boxes
        ]

    def decide(self, frame: Frame) -> Decision:
        grey = small_grey(frame)
        reason = self._reason(grey, frame.pts)
        if reason is Reason.STILL:
            self.skipped_run += 1
            return Decision(False, reason)
        after_skip = self.skipped_run > 0
        self.reference, self.sent_pts, self.skipped_run = grey, frame.pts, 0
        return Decision(True, reason, after_skip)

    def _reason(self, grey: np.ndarray, pts: float) -> Reason:
        ref = self.reference
        if ref is None or ref.shape != grey.shape:
            return Reason.FIRST
        # A pts that runs backwards (a stream that restarted its clock) is a gap too.
        if pts - self.sent_pts >= self.max_gap or pts < self.sent_pts:
            return Reason.GAP
        changed = cv2.absdiff(grey, ref) > PIXEL_DELTA
        if changed.mean() > SCENE_CHANGE:
            return Reason.SCENE
        tracked = self._box_mask(grey.shape)
        outside = np.count_nonzero(changed & ~tracked)
        if outside >= self.threshold * changed.size:
            return Reason.NEW_OBJECT
        area = np.count_nonzero(tracked)
        if area and np.count_nonzero(changed & tracked) >= BOX_CHANGE * area:
            return Reason.MOTION
        return Reason.STILL

    def _box_mask(self, shape: tuple[int, ...]) -> np.ndarray:
        """Where the tracked boxes (grown by BOX_MARGIN) lie on the grey copy."""
        height, width = shape[:2]
        mask = np.zeros((height, width), dtype=bool)
        for x1, y1, x2, y2 in self.boxes:
            mx, my = BOX_MARGIN * (x2 - x1), BOX_MARGIN * (y2 - y1)
            left, right = int(max(x1 - mx, 0.0) * width), int(np.ceil(min(x2 + mx, 1.0) * width))
            top, bottom = int(max(y1 - my, 0.0) * height), int(np.ceil(min(y2 + my, 1.0) * height))
            mask[top:bottom, left:right] = True
        return mask
