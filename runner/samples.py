"""Sample videos, for the demo scenario, the tests and the benches (no binaries in the repo)."""

from __future__ import annotations

import importlib.util
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


def ultralytics_assets() -> Path:
    """The photos ultralytics ships (bus.jpg, zidane.jpg), found without importing it."""
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("ultralytics is not installed (requirements/inference-nodeps.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / "assets"


def write_people_video(
    path: Path, *, frames: int = 50, fps: float = 25.0, size: tuple[int, int] = (640, 480)
) -> Path:
    """A video of real people: ultralytics' bus.jpg and zidane.jpg, panned a little per frame."""
    assets = ultralytics_assets()
    w, h = size
    stills = []
    for name in ("bus.jpg", "zidane.jpg"):
        img = cv2.imread(str(assets / name))
        if img is None:
            raise RuntimeError(f"cannot read {assets / name}")
        scale = min(w / img.shape[1], h / img.shape[0])
        stills.append(cv2.resize(img, (round(img.shape[1] * scale), round(img.shape[0] * scale))))
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    try:
        for i in range(frames):
            still = stills[(i * 2 // frames) % 2] if frames > 1 else stills[0]
            canvas = np.full((h, w, 3), 114, dtype=np.uint8)
            sh, sw = still.shape[:2]
            x = min((w - sw) // 2 + (i % 10) * 2 - 10, w - sw) if sw < w else 0
            x = max(x, 0)
            y = (h - sh) // 2
            canvas[y : y + sh, x : x + sw] = still
            writer.write(canvas)
    finally:
        writer.release()
    return path


# One person of bus.jpg (y1, y2, x1, x2), which the default weights find on a plain background.
WALKER_CROP = (383, 907, 46, 215)


def write_walker_video(
    path: Path,
    *,
    frames: int = 60,
    fps: float = 10.0,
    size: tuple[int, int] = (640, 480),
    path_x: tuple[float, float] = (0.0, 0.85),
    stay: int = 0,
) -> Path:
    """A person cut from ultralytics' bus.jpg walking left to right across a plain background.

    The person's left edge moves from ``path_x[0]`` to ``path_x[1]`` (fractions of the width)
    over ``frames`` frames, then stands still for ``stay`` more: the analytics tests' subject.
    """
    y1, y2, x1, x2 = WALKER_CROP
    bus = cv2.imread(str(ultralytics_assets() / "bus.jpg"))
    if bus is None:
        raise RuntimeError("cannot read bus.jpg")
    w, h = size
    scale = 0.6 * h / 480
    person = cv2.resize(bus[y1:y2, x1:x2], (round((x2 - x1) * scale), round((y2 - y1) * scale)))
    ph, pw = person.shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    try:
        for i in range(frames + stay):
            t = min(i, frames - 1) / max(frames - 1, 1)
            x = round((path_x[0] + (path_x[1] - path_x[0]) * t) * w)
            x = min(max(x, 0), w - pw)
            canvas = np.full((h, w, 3), 114, dtype=np.uint8)
            canvas[h - ph - 20 : h - 20, x : x + pw] = person
            writer.write(canvas)
    finally:
        writer.release()
    return path


def write_static_video(
    path: Path,
    *,
    frames: int = 100,
    fps: float = 25.0,
    size: tuple[int, int] = (320, 240),
    noise: float = 6.0,
) -> Path:
    """A still scene as a fixed camera sees it: nothing moves, only sensor noise (Gaussian,
    ``noise`` grey levels) differs from frame to frame. The motion gate's quiet case."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    scene = np.empty((h, w, 3), dtype=np.float32)
    scene[:] = np.linspace(60, 190, w, dtype=np.float32)[None, :, None]  # a lit wall
    cv2.rectangle(scene, (w // 8, h // 2), (w // 3, h - 10), (40, 70, 120), -1)  # a door
    cv2.rectangle(scene, (w // 2, h // 6), (w - w // 8, h // 2), (200, 180, 150), -1)  # a window
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    try:
        for _ in range(frames):
            grain = rng.normal(0.0, noise, scene.shape).astype(np.float32)
            writer.write(np.clip(scene + grain, 0, 255).astype(np.uint8))
    finally:
        writer.release()
    return path
