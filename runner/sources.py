"""Video sources read with OpenCV: local files under MISIS_VIDEO_ROOT (more schemes later)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np
from django.conf import settings
from django.utils import timezone

logger = logging.getLogger(__name__)

NETWORK_SCHEMES = ("rtsp", "rtsps", "http", "https")


class SourceError(Exception):
    """The source cannot be opened or read; the message is shown to the user."""


@dataclass
class Frame:
    index: int  # frames read since the scenario was created, 0-based
    pts: float  # seconds into the source
    captured_at: datetime
    image: np.ndarray


def resolve_local(source: str, root: Path | None = None) -> Path:
    """The file a relative local source names, refusing anything outside the video root."""
    root = (root or settings.MISIS_VIDEO_ROOT).resolve()
    if not source or Path(source).is_absolute() or ".." in Path(source).parts:
        raise SourceError("local sources are relative paths inside the video root")
    path = (root / source).resolve()
    if not path.is_relative_to(root):
        raise SourceError("the path leaves the video root")
    if path == root:
        raise SourceError("name a file inside the video root")
    return path


def redact(source: str) -> str:
    """The source with any password in it replaced by ***, for logs and error texts."""
    try:
        parts = urlsplit(source)
    except ValueError:
        return source.split("@", 1)[-1] if "@" in source else source
    if parts.password is None:
        return source
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


def is_live(source: str) -> bool:
    return urlsplit(source).scheme.lower() in NETWORK_SCHEMES


class VideoSource:
    """Reads frames in order; a file resumes at ``start_frame`` and may loop."""

    def __init__(self, source: str, *, start_frame: int = 0, loop: bool = False) -> None:
        self.source = source
        self.loop = loop
        self.live = is_live(source)
        self.next_index = start_frame
        self._cap: cv2.VideoCapture | None = None
        self._frame_count = 0
        self._loop_offset = 0.0  # pts of completed loops
        self._duration = 0.0
        # A looping file stands in for a camera: it is played at its own frame rate.
        self.realtime = loop and not self.live
        self._clock: tuple[float, float] | None = None  # (monotonic, pts) of the first frame

    def open(self) -> None:
        target = self.source if self.live else str(resolve_local(self.source))
        if not self.live and not Path(target).is_file():
            raise SourceError(f"file not found in the video root: {redact(self.source)}")
        cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open source {redact(self.source)}")
        self._cap = cap
        if not self.live:
            self._frame_count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
            self._duration = self._frame_count / fps if self._frame_count else 0.0
            self._skip_to(self.next_index)

    @property
    def frames_total(self) -> int | None:
        """Frames in a file that ends; None for live sources and looping files."""
        if self.live or self.loop or not self._frame_count:
            return None
        return self._frame_count

    def _skip_to(self, index: int) -> None:
        """Resume a file after the frames already published (grab() does not decode)."""
        assert self._cap is not None
        skip = index
        if self.loop and self._frame_count:
            loops, skip = divmod(index, self._frame_count)
            self._loop_offset = loops * self._duration
        for _ in range(skip):
            if not self._cap.grab():
                break

    def read(self) -> Frame | None:
        """The next frame, or None at the end of a file that does not loop."""
        assert self._cap is not None, "open() first"
        ok, image = self._cap.read()
        if not ok and self.loop and not self.live and self._frame_count:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._loop_offset += self._duration
            ok, image = self._cap.read()
        if not ok:
            if self.live:
                raise SourceError(f"stream {redact(self.source)} stopped sending frames")
            return None
        pts = time.monotonic() if self.live else self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        pts = round(pts + self._loop_offset, 6)
        if self.realtime:
            self._pace(pts)
        frame = Frame(
            index=self.next_index,
            pts=pts,
            captured_at=timezone.now(),
            image=image,
        )
        self.next_index += 1
        return frame

    def _pace(self, pts: float) -> None:
        now = time.monotonic()
        if self._clock is None:
            self._clock = (now, pts)
            return
        delay = self._clock[0] + (pts - self._clock[1]) - now
        if delay > 0:
            time.sleep(min(delay, 1.0))

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class FileFeed:
    """Every frame of a file, in order: the loop waits for the detector, nothing is dropped."""

    def __init__(self, source: VideoSource) -> None:
        self.source = source
        self.ended = False
        self.dropped = 0

    def next_frame(self, timeout: float) -> Frame | None:
        frame = self.source.read()
        if frame is None:
            self.ended = True
        return frame

    def close(self) -> None:
        self.source.close()


class LatestFrameFeed:
    """A live source read in its own thread; the loop always gets the newest frame.

    When the detector is slower than the source, frames the loop never looked at are
    overwritten and counted in ``dropped``: nothing queues up without bound, and a prediction
    is never about a stale frame.
    """

    def __init__(self, source: VideoSource) -> None:
        self.source = source
        self.ended = False
        self.dropped = 0
        self._latest: Frame | None = None
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="frame-reader", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while not self._stop.is_set():
                frame = self.source.read()
                with self._cond:
                    if frame is None:
                        self.ended = True
                        self._cond.notify_all()
                        return
                    if self._latest is not None:
                        self.dropped += 1
                    self._latest = frame
                    self._cond.notify_all()
        except BaseException as exc:  # handed to the loop, which decides what it means
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    def next_frame(self, timeout: float) -> Frame | None:
        with self._cond:
            if self._latest is None and self._error is None and not self.ended and timeout > 0:
                self._cond.wait(timeout)
            if self._error is not None:
                raise self._error
            frame, self._latest = self._latest, None
            return frame

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.source.close()


def open_feed(source: VideoSource) -> FileFeed | LatestFrameFeed:
    """Live sources and looping files (which stand in for cameras) drop stale frames."""
    if source.live or source.loop:
        return LatestFrameFeed(source)
    return FileFeed(source)
