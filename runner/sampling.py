"""Which frames of a source the runner sends for detection."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from inference.client import Detection
from inference.preprocess import Letterbox
from runner.sources import Frame
from scenarios.services import runner_writes as services


class Sampler:
    """Every frame, or ``target_fps`` of them by source time (pts), not by wall clock.

    Sampling by pts keeps the choice the same whatever the decode or detector speed, so a
    resumed file picks the same frames as an uninterrupted run would.
    """

    def __init__(self, target_fps: float | None) -> None:
        self.period = 1.0 / target_fps if target_fps else 0.0
        self.next_pts: float | None = None

    def take(self, pts: float) -> bool:
        if not self.period:
            return True
        if self.next_pts is None or pts + 1e-6 >= self.next_pts:
            base = pts if self.next_pts is None else self.next_pts
            # A gap in the source (a stall, a loop) restarts the grid at this frame.
            self.next_pts = max(base + self.period, pts)
            return True
        return False


@dataclass(frozen=True)
class SampledFrame:
    """A frame sent for detection: what its prediction row and the preview need back."""

    index: int
    pts: float
    captured_at: datetime
    width: int
    height: int
    letterbox: Letterbox | None
    image: np.ndarray  # the source frame, for the preview and the analytics
    # The sampler's clock before this frame was taken: what a runner that resumes at this
    # frame starts from, so that it samples the same frames an uninterrupted run would.
    sampler_before: float | None = None
    # The motion gate skipped frames before this one (runner/motion.py).
    after_skip: bool = False

    @classmethod
    def of(
        cls,
        frame: Frame,
        box: Letterbox | None,
        sampler_before: float | None = None,
        after_skip: bool = False,
    ) -> SampledFrame:
        w, h = frame.size
        return cls(
            frame.index,
            frame.pts,
            frame.captured_at,
            w,
            h,
            box,
            frame.image,
            sampler_before,
            after_skip,
        )

    def source_boxes(self, det: Detection) -> list[dict[str, Any]]:
        """The detector's boxes in source pixels (it saw the letterboxed image)."""
        if self.letterbox is None:
            return det.boxes
        return [self.letterbox.to_source(b) for b in det.boxes]

    def row(self, det: Detection, boxes: list[dict[str, Any]]) -> services.PredictionRow:
        return services.PredictionRow(
            frame_index=self.index,
            pts=self.pts,
            captured_at=self.captured_at,
            width=self.width,
            height=self.height,
            inference_ms=det.inference_ms,
            boxes=boxes,
        )
