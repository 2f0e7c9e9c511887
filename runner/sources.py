"""Frames of a scenario's source, in order, for the frame loop.

The scheme's rules (what may be opened, how, and whether it is live) are in ``sources/``; this
module reads: a file frame by frame, resuming at ``start_frame``, looping if asked, played at
its own rate when it stands in for a camera; a live stream with bounded open and read
timeouts, so that a frozen camera is noticed within the read timeout (runner/feeds.py
reconnects it).

A ``Frame`` carries the decoded picture unconverted: ``frame.image`` (BGR) is converted on
first use, so frames that are never analysed cost no conversion; ``frame.gray`` is the luma
without one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from django.conf import settings
from django.utils import timezone

from sources.base import SourceError
from sources.decoder import Decoder, Picture, open_decoder
from sources.local import resolve_local
from sources.redact import redact
from sources.registry import scheme_of, source_for

logger = logging.getLogger(__name__)

__all__ = ["Frame", "SourceError", "VideoSource", "resolve_local", "scheme_of"]


@dataclass
class Frame:
    index: int  # frames read since the scenario was created, 0-based
    pts: float  # seconds into the source
    captured_at: datetime
    picture: Picture  # as decoded; converted when asked

    @property
    def image(self) -> np.ndarray:
        """BGR, height x width x 3: converted on the first use, once."""
        return self.picture.bgr()

    @property
    def gray(self) -> np.ndarray:
        """Luma, height x width, full range: no BGR conversion (sources/decoder.py)."""
        return self.picture.gray()

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), known without a conversion."""
        return self.picture.width, self.picture.height


class VideoSource:
    """Reads frames in order; a file resumes at ``start_frame`` and may loop."""

    def __init__(self, source: str, *, start_frame: int = 0, loop: bool = False) -> None:
        self.source = source
        self.scheme = scheme_of(source)
        self.kind = source_for(source)
        self.loop = loop
        # Known before opening, except for http(s), decided once FFmpeg has looked (open()).
        self.live = bool(self.kind.live)
        self.next_index = start_frame
        self._decoder: Decoder | None = None
        self._frame_count = 0
        self._loop_offset = 0.0  # pts of completed loops
        self._duration = 0.0
        self._opened_once = False
        self._reopened_at = -1
        self.read_timeout = self.kind.read_timeout(settings.MISIS_STREAM_READ_TIMEOUT)
        # A looping file stands in for a camera: it is played at its own frame rate.
        self.realtime = loop and not self.live
        self._clock: tuple[float, float] | None = None  # (monotonic, pts) of the first frame

    def open(self, open_timeout: float | None = None) -> None:
        """Open (or, for a live stream, reopen) the source. Raises SourceError."""
        self.close()
        open_timeout = open_timeout or settings.MISIS_STREAM_OPEN_TIMEOUT
        target = self.kind.target(open_timeout=open_timeout, read_timeout=self.read_timeout)
        decoder = open_decoder(
            target,
            source=self.source,
            open_timeout=open_timeout,
            read_timeout=self.read_timeout,
            max_pixels=settings.MISIS_MAX_FRAME_PIXELS,
        )
        self._decoder = decoder
        if self.kind.live is None and not self._opened_once:
            # A progressive download or VOD has an end; MJPEG and live HLS report none.
            self.live = decoder.frame_count <= 0
            self.realtime = self.loop and not self.live
        self._opened_once = True
        if not self.live:
            self._frame_count = max(decoder.frame_count, 0)
            self._duration = decoder.duration or (
                self._frame_count / decoder.fps if self._frame_count else 0.0
            )
            self._skip_to(self.next_index)

    @property
    def frames_total(self) -> int | None:
        """Frames in a file that ends; None for live sources and looping files."""
        if self.live or self.loop or not self._frame_count:
            return None
        return self._frame_count

    def _skip_to(self, index: int) -> None:
        """Resume a file after the frames already published."""
        assert self._decoder is not None
        skip = index
        if self.loop and self._frame_count:
            loops, skip = divmod(index, self._frame_count)
            self._loop_offset = loops * self._duration
        self._decoder.skip(skip)

    def read(self) -> Frame | None:
        """The next frame, or None at the end of a file that does not loop.

        A live stream that sends nothing within the read timeout, or ends, raises SourceError.
        """
        if self._decoder is None:
            raise SourceError(f"source {redact(self.source)} is not open")
        started = time.monotonic()
        got = self._read_one()
        if got is not None and self.live and time.monotonic() - started >= 0.9 * self.read_timeout:
            # The read timeout fired but FFmpeg still had buffered packets to decode: the
            # source has stopped (a frozen RTSP server gives such frames, a timeout late).
            got = None
        if got is None and self._cut_short():
            # A remote file that stops before its end (a dropped connection, an expired
            # presigned URL) is opened again where it stopped; failing that, the scenario ends
            # with the error rather than a false end_of_stream.
            logger.warning(
                "%s stopped at frame %d; reopening", redact(self.source), self.next_index
            )
            self._reopened_at = self.next_index
            self.open()
            got = self._read_one()
        if got is None and self.loop and not self.live and self._frame_count:
            assert self._decoder is not None
            self._decoder.rewind()
            self._loop_offset += self._duration
            got = self._read_one()
        if got is None:
            if self.live:
                raise SourceError(
                    f"stream {redact(self.source)} sent no frame within"
                    f" {self.read_timeout:g} s or ended"
                )
            return None
        picture, seconds = got
        pts = time.monotonic() if self.live else seconds
        pts = round(pts + self._loop_offset, 6)
        if self.realtime:
            self._pace(pts)
        frame = Frame(index=self.next_index, pts=pts, captured_at=timezone.now(), picture=picture)
        self.next_index += 1
        return frame

    def _read_one(self) -> tuple[Picture, float] | None:
        assert self._decoder is not None
        try:
            return self._decoder.read()
        except SourceError:
            if self.live or self._cut_short():
                return None  # a stall, or a remote file to reopen: handled by read()
            raise

    def _cut_short(self) -> bool:
        if self.live or not self.kind.reopens_when_cut or not self._frame_count:
            return False
        position = self.next_index % self._frame_count if self.loop else self.next_index
        if self.loop and position == 0:
            return False  # the end of one pass
        # Containers may overstate their frame count by a frame or two: only a stop well
        # before the end, and only once at the same frame, counts as cut short.
        return position < self._frame_count - 2 and self._reopened_at != self.next_index

    def _pace(self, pts: float) -> None:
        now = time.monotonic()
        if self._clock is None:
            self._clock = (now, pts)
            return
        delay = self._clock[0] + (pts - self._clock[1]) - now
        if delay > 0:
            time.sleep(min(delay, 1.0))

    def close(self) -> None:
        if self._decoder is not None:
            self._decoder.close()
            self._decoder = None
