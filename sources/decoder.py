"""Frames from a checked target, decoded with PyAV (FFmpeg bindings with per-open options).

PyAV rather than OpenCV's FFmpeg backend: OpenCV takes FFmpeg options only from one
process-wide environment variable and cannot hook nested opens, while PyAV takes options per
open (``protocol_whitelist``, ``format_whitelist``, ``rtsp_transport``), bounded open and read
timeouts, and an ``io_open`` hook through which every open, the first and the nested ones,
passes (sources/pinned_http.py). The frame size is checked before any frame is converted.

A decoded frame stays in FFmpeg's own format (mostly planar YUV) until someone asks for it:
``Picture.bgr()`` converts it once, on demand, so the frames the sampler drops are never
converted; ``Picture.gray()`` gives the luma plane without any BGR conversion. Each open
decodes in the thread that reads (``MISIS_DECODER_THREADS``, 1 by default): a node runs
many captures, and FFmpeg's own worker threads per capture cost more than they save there
(bench/decode.py --levers).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

import av
import av.error
import cv2
import numpy as np
from django.conf import settings

from sources.base import SourceError, Target
from sources.redact import redact

logger = logging.getLogger(__name__)

# FFmpeg's HTTP client skips the proxy for hosts named in the process's no_proxy: every
# source's HTTP goes through the egress proxy, so no host may be named there.
os.environ.pop("no_proxy", None)

# What FFmpeg raises on a bad stream, a timeout, or an I/O hook that refused.
DECODE_ERRORS = (av.error.FFmpegError, OSError, ValueError, RuntimeError)


class Decoder:
    """One open of a target: its video stream's facts, then frames in order."""

    def __init__(
        self,
        target: Target,
        *,
        shown: str,
        open_timeout: float,
        read_timeout: float,
        max_pixels: int,
    ) -> None:
        self.target = target
        self.shown = shown  # the source as the user may see it (redacted)
        # FFmpeg's own bound, so that probing decodes no giant frame either; it counts its
        # buffer padding, hence the margin (the exact cap is checked below).
        options = {**target.options, "max_pixels": str(2 * max_pixels + 1024 * 1024)}
        try:
            self.container: Any = av.open(
                target.url,
                format=target.format,
                options=options,
                timeout=(open_timeout, read_timeout),
                io_open=target.io_open,
            )
        except SourceError:
            target.close()
            raise
        except DECODE_ERRORS as exc:
            target.close()
            raise self._error("cannot open source", exc) from None
        try:
            self._inspect(max_pixels)
        except BaseException:
            self.close()
            raise
        self._frames: Iterator[Any] = self.container.decode(self.stream)

    def _inspect(self, max_pixels: int) -> None:
        if not self.container.streams.video:
            raise SourceError(f"{self.shown} has no video stream")
        self.stream = self.container.streams.video[0]
        threads = settings.MISIS_DECODER_THREADS
        self.stream.codec_context.thread_count = threads
        if threads != 1:
            self.stream.thread_type = "AUTO"
        width, height = self.stream.codec_context.width, self.stream.codec_context.height
        if not width or not height or width * height > max_pixels:
            raise SourceError(
                f"{self.shown}: frames of {width}x{height} are not within the limit of"
                f" {max_pixels} pixels (MISIS_MAX_FRAME_PIXELS)"
            )
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.fps = float(rate) if rate else 25.0
        duration = self.container.duration
        self.duration = duration / av.time_base if duration and duration > 0 else 0.0
        frames = int(self.stream.frames or 0)
        if not frames and self.duration:
            frames = round(self.duration * self.fps)
        self.frame_count = frames
        start = self.stream.start_time
        self._start = float(start * self.stream.time_base) if start is not None else 0.0

    def _error(self, what: str, exc: BaseException) -> SourceError:
        reason = self.target.refusal() or _reason(exc)
        # FFmpeg's texts quote the URL it was given, credentials and all.
        logger.info("%s %s: %s", what, self.shown, str(exc).replace(self.target.url, self.shown))
        return SourceError(f"{what} {self.shown}: {reason}")

    def _next(self) -> Any | None:
        try:
            return next(self._frames)
        except StopIteration:
            return None
        except SourceError:
            raise
        except DECODE_ERRORS as exc:
            if isinstance(exc, av.error.EOFError):
                return None
            raise self._error("cannot read", exc) from None

    def read(self) -> tuple[Picture, float] | None:
        """The next frame, not yet converted, and its time in seconds from the start; None at
        the end."""
        frame = self._next()
        if frame is None:
            return None
        seconds = float(frame.time) - self._start if frame.time is not None else 0.0
        return Picture(frame), max(seconds, 0.0)

    def skip(self, count: int) -> int:
        """Decode and drop ``count`` frames (resuming a file); how many there were."""
        for done in range(count):
            if self._next() is None:
                return done
        return count

    def rewind(self) -> None:
        """Back to the first frame (a looping file)."""
        try:
            self.container.seek(0)
        except DECODE_ERRORS as exc:
            raise self._error("cannot rewind", exc) from None
        self._frames = self.container.decode(self.stream)

    def close(self) -> None:
        try:
            self.container.close()
        except DECODE_ERRORS:
            pass
        finally:
            self.target.close()


class Picture:
    """One decoded frame, converted to BGR only when asked, and then only once.

    Handed from the thread that decodes to the one that analyses, and used by that one only.
    """

    __slots__ = ("_bgr", "_frame", "height", "width")

    def __init__(self, frame: av.VideoFrame | None, bgr: np.ndarray | None = None) -> None:
        self._frame = frame
        self._bgr = bgr
        if frame is not None:
            self.width: int = frame.width
            self.height: int = frame.height
        elif bgr is not None:
            self.height, self.width = bgr.shape[:2]
        else:
            raise ValueError("a picture needs a decoded frame or a BGR image")

    @classmethod
    def from_bgr(cls, image: np.ndarray) -> Picture:
        """A picture that is a BGR image already (tests, benches, images not from a decoder)."""
        return cls(None, image)

    @property
    def converted(self) -> bool:
        return self._bgr is not None

    def bgr(self) -> np.ndarray:
        """The frame as a BGR array (height x width x 3), converted on the first call."""
        if self._bgr is None:
            assert self._frame is not None
            self._bgr = to_bgr(self._frame)
            _count_conversion()
        return self._bgr

    def gray(self) -> np.ndarray:
        """The frame's luma, height x width, uint8, without a BGR conversion.

        Full range (0-255), like ``cv2.cvtColor(self.bgr(), cv2.COLOR_BGR2GRAY)`` (within a
        few levels: BGR clips saturated colours): the luma plane itself when FFmpeg decodes
        to 8-bit YUV, stretched from video range (16-235) unless the stream is full range
        (``yuvj*``). Other formats are converted to BGR first.
        """
        frame = self._frame
        if frame is None or frame.format.name not in _LUMA_FIRST:
            return cv2.cvtColor(self.bgr(), cv2.COLOR_BGR2GRAY)
        plane = frame.planes[0]
        rows = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
        luma = rows[: frame.height, : frame.width]
        name = frame.format.name
        if name.startswith("yuvj") or name == "gray":
            return luma.copy()  # the plane's memory belongs to FFmpeg's frame
        stretched: np.ndarray = cv2.LUT(luma, _VIDEO_TO_FULL_RANGE)
        return stretched


# 8-bit pixel formats whose first plane is the luma, a byte a pixel.
_LUMA_FIRST = frozenset(
    {
        "yuv420p",
        "yuvj420p",
        "yuv422p",
        "yuvj422p",
        "yuv444p",
        "yuvj444p",
        "yuv440p",
        "yuvj440p",
        "yuv411p",
        "yuv410p",
        "nv12",
        "nv21",
        "gray",
    }
)
# Video range luma (16-235) to full range (0-255), as a BGR conversion and back would give.
_VIDEO_TO_FULL_RANGE = np.clip(
    np.round((np.arange(256, dtype=np.float64) - 16) * 255 / 219), 0, 255
).astype(np.uint8)

_conversions = 0
_conversions_lock = threading.Lock()


def _count_conversion() -> None:
    global _conversions
    with _conversions_lock:
        _conversions += 1


def conversions() -> int:
    """Frames converted to BGR by this process so far (what lazy conversion saves shows here)."""
    return _conversions


def to_bgr(frame: av.VideoFrame) -> np.ndarray:
    """The frame as BGR. Planar 4:2:0 (what cameras and files mostly carry) is converted by
    OpenCV, several times faster here than FFmpeg's swscale as PyAV calls it."""
    if frame.format.name == "yuv420p" and not frame.width % 2 and not frame.height % 2:
        return cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2BGR_I420)
    return frame.to_ndarray(format="bgr24")


def _reason(exc: BaseException) -> str:
    """What the server said, for a user who can fix it; only allowed hosts are ever asked."""
    if isinstance(exc, av.error.HTTPUnauthorizedError | av.error.HTTPForbiddenError):
        return "the server refused the credentials"
    if isinstance(exc, av.error.HTTPNotFoundError):
        return "the server has no such stream or path"
    if isinstance(exc, av.error.InvalidDataError):
        return "not a video this decoder reads"
    return "wrong path or credentials, or not a video?"


def open_decoder(target: Target, *, source: str, **kwargs: Any) -> Decoder:
    return Decoder(target, shown=redact(source), **kwargs)
