"""Synthetic sample videos, for the demo scenario and the tests (no binaries in the repo)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write_sample_video(
    path: Path, *, frames: int = 100, fps: float = 25.0, size: tuple[int, int] = (320, 240)
) -> Path:
    """An MP4 whose every frame differs (a moving square, a frame counter, changing colour)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    try:
        for i in range(frames):
            img = np.full((h, w, 3), (i * 7) % 200 + 30, dtype=np.uint8)
            x = (i * 5) % max(w - 60, 1)
            cv2.rectangle(img, (x, h // 3), (x + 50, h // 3 + 80), (0, 0, 255), -1)
            cv2.putText(img, str(i), (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
            writer.write(img)
    finally:
        writer.release()
    return path
