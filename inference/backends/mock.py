"""Deterministic stand-in detector: only when asked for, or when no model can load."""

from __future__ import annotations

import time

import numpy as np

from inference.backends.base import Box, DetectOptions

LABELS = {0: "person", 1: "car"}


class MockBackend:
    name = "mock"
    runtime = "mock"

    def __init__(self, model: str = "mock", delay_ms: float = 0.0) -> None:
        self.model = model
        self.labels = dict(LABELS)
        self.delay_ms = delay_ms

    def predict(self, frames: list[np.ndarray], options: list[DetectOptions]) -> list[list[Box]]:
        if self.delay_ms:
            time.sleep(self.delay_ms / 1000.0)
        return [self._one(frame, opts) for frame, opts in zip(frames, options, strict=True)]

    def _one(self, frame: np.ndarray, opts: DetectOptions) -> list[Box]:
        # A box in the middle of the frame whose confidence follows the frame's brightness, so
        # different frames give different, reproducible answers.
        h, w = frame.shape[:2]
        confidence = round(0.5 + float(frame[::16, ::16].mean()) / 510.0, 4)
        boxes = [
            Box("person", 0, confidence, w * 0.25, h * 0.25, w * 0.75, h * 0.75),
            Box("car", 1, round(confidence / 2, 4), 0.0, h * 0.5, w * 0.25, float(h)),
        ]
        return [
            b
            for b in boxes
            if b.confidence >= opts.confidence and (opts.classes is None or b.label in opts.classes)
        ]
