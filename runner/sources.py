"""Video sources read with OpenCV's FFmpeg backend.

- local files under MISIS_VIDEO_ROOT (symlinks resolved, never outside the root);
- ``s3://bucket/key`` objects, handed to FFmpeg as a presigned URL (no copy on local disk);
- ``http(s)://`` URLs: a file (progressive download, VOD) when FFmpeg reports a frame count,
  otherwise a live stream (MJPEG, HLS live);
- ``rtsp(s)://`` cameras, and ``onvif://`` cameras resolved to their RTSP URI on every open.

Files are read frame by frame and resume at ``start_frame``; live streams are opened with
bounded open and read timeouts, so a frozen camera is noticed within the read timeout instead
of blocking a read for half a minute; runner/feeds.py reconnects them.
"""

from __future__ import annotations

import http.client
import logging
import os
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import SplitResult, urljoin, urlsplit

import cv2
import numpy as np
from django.conf import settings
from django.utils import timezone

from runner.hosts import HostRefused, check_url
from runner.redact import redact

logger = logging.getLogger(__name__)

LIVE_SCHEMES = ("rtsp", "rtsps", "onvif")
NETWORK_SCHEMES = (*LIVE_SCHEMES, "http", "https")
SCHEMES = (*NETWORK_SCHEMES, "s3")
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}
MAX_REDIRECTS = 5

__all__ = ["Frame", "SourceError", "VideoSource", "resolve_local"]


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


def scheme_of(source: str) -> str:
    try:
        return urlsplit(source).scheme.lower()
    except ValueError:
        return ""


def _ffmpeg_options() -> None:
    # Read by OpenCV at every open; one value per process (RTSP transport for every camera).
    os.environ.setdefault(
        "OPENCV_FFMPEG_CAPTURE_OPTIONS", f"rtsp_transport;{settings.MISIS_RTSP_TRANSPORT}"
    )


def _probe(url: str, timeout: float) -> None:
    """Connect to the URL's host and port first: OpenCV only says "cannot open", this says why.

    For HTTP(S) this is a request whose redirects are followed here, each target checked
    against the host lists: FFmpeg follows redirects without asking anyone.
    """
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
        if not host or not port:
            return
        shown = f"{host}:{port}"
        try:
            if parts.scheme.lower() not in ("http", "https"):
                socket.create_connection((host, port), timeout=timeout).close()
                return
            location = _redirect_of(parts, host, port, timeout)
        except socket.gaierror as exc:
            raise SourceError(f"cannot resolve host {host}: {exc.strerror}") from None
        except TimeoutError:
            raise SourceError(f"{shown} did not answer within {timeout:g} s") from None
        except OSError as exc:
            raise SourceError(f"cannot connect to {shown}: {exc.strerror or exc}") from None
        except http.client.HTTPException as exc:
            raise SourceError(f"{shown} did not answer HTTP: {type(exc).__name__}") from None
        if location is None:
            return
        url = urljoin(url, location)
        _check_host(url)
    raise SourceError(f"more than {MAX_REDIRECTS} redirects from {redact(url)}")


def _redirect_of(parts: SplitResult, host: str, port: int, timeout: float) -> str | None:
    """Where an HTTP(S) URL redirects to, if it does. Credentials are not sent along."""
    if parts.scheme.lower() == "https":
        # Cameras mostly carry self-signed certificates; FFmpeg does not verify them either.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, timeout=timeout, context=context
        )
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("GET", target, headers={"Range": "bytes=0-0", "Connection": "close"})
        response = conn.getresponse()  # headers only: an endless MJPEG body is never read
        if response.status in (301, 302, 303, 307, 308):
            return response.getheader("Location")
        return None
    finally:
        conn.close()


def _check_host(url: str) -> None:
    try:
        check_url(url)
    except (HostRefused, LookupError) as exc:
        raise SourceError(str(exc)) from None


class VideoSource:
    """Reads frames in order; a file resumes at ``start_frame`` and may loop."""

    def __init__(self, source: str, *, start_frame: int = 0, loop: bool = False) -> None:
        self.source = source
        self.scheme = scheme_of(source)
        self.loop = loop
        # Known before opening; http(s) is decided once FFmpeg has looked (open()).
        self.live = self.scheme in LIVE_SCHEMES
        self.next_index = start_frame
        self._cap: cv2.VideoCapture | None = None
        self._frame_count = 0
        self._loop_offset = 0.0  # pts of completed loops
        self._duration = 0.0
        self._opened_once = False
        self._reopened_at = -1
        # HLS hands out whole segments (often 6 s): a read at the live edge waits for the next
        # one, so its timeout must outlast a segment or every segment would look like a stall.
        self.read_timeout = settings.MISIS_STREAM_READ_TIMEOUT
        if source.split("?", 1)[0].lower().endswith(".m3u8"):
            self.read_timeout = max(self.read_timeout, settings.MISIS_HLS_READ_TIMEOUT)
        # A looping file stands in for a camera: it is played at its own frame rate.
        self.realtime = loop and not self.live
        self._clock: tuple[float, float] | None = None  # (monotonic, pts) of the first frame

    def _target(self, open_timeout: float) -> str:
        """What FFmpeg opens: a path, a presigned URL, a camera URL; checked for each open."""
        if not self.scheme:
            path = resolve_local(self.source)
            if not path.is_file():
                raise SourceError(f"file not found in the video root: {self.source}")
            return str(path)
        if self.scheme == "s3":
            from videos.storage import presigned_url

            return presigned_url(self.source)
        url = self.source
        if self.scheme == "onvif":
            from runner.onvif import resolve_stream_uri

            # The device and the Media service it names are checked before they are asked.
            url = resolve_stream_uri(self.source, timeout=open_timeout, check_url=_check_host)
        _check_host(url)
        _probe(url, open_timeout)
        return url

    def open(self, open_timeout: float | None = None) -> None:
        """Open (or, for a live stream, reopen) the source. Raises SourceError."""
        self.close()
        open_timeout = open_timeout or settings.MISIS_STREAM_OPEN_TIMEOUT
        target = self._target(open_timeout)
        params: list[int] = []
        if self.scheme:
            _ffmpeg_options()
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                int(open_timeout * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                int(self.read_timeout * 1000),
            ]
        cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            hint = " (wrong path or credentials, or not a video?)" if self.scheme else ""
            raise SourceError(f"cannot open source {redact(self.source)}{hint}")
        self._cap = cap
        frame_count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if self.scheme in ("http", "https") and not self._opened_once:
            # A progressive download or VOD has an end; MJPEG and live HLS report no frames.
            self.live = frame_count <= 0
        self._opened_once = True
        if not self.live:
            self._frame_count = max(frame_count, 0)
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
        """The next frame, or None at the end of a file that does not loop.

        A live stream that sends nothing within the read timeout, or ends, raises SourceError.
        """
        if self._cap is None:
            raise SourceError(f"source {redact(self.source)} is not open")
        started = time.monotonic()
        ok, image = self._cap.read()
        if ok and self.live and time.monotonic() - started >= 0.9 * self.read_timeout:
            # FFmpeg's read timeout fired but it still had buffered packets to decode: the
            # source has stopped (a frozen RTSP server gives two such frames, 2 timeouts late).
            ok = False
        if not ok and self._cut_short():
            # A remote file that stops before its end (a dropped connection, an expired
            # presigned URL) is opened again where it stopped; failing that, the scenario ends
            # with the error rather than a false end_of_stream.
            logger.warning(
                "%s stopped at frame %d; reopening", redact(self.source), self.next_index
            )
            self._reopened_at = self.next_index
            self.open()
            assert self._cap is not None
            ok, image = self._cap.read()
        if not ok and self.loop and not self.live and self._frame_count:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._loop_offset += self._duration
            ok, image = self._cap.read()
        if not ok:
            if self.live:
                raise SourceError(
                    f"stream {redact(self.source)} sent no frame within"
                    f" {self.read_timeout:g} s or ended"
                )
            return None
        pts = time.monotonic() if self.live else self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        pts = round(pts + self._loop_offset, 6)
        if self.realtime:
            self._pace(pts)
        frame = Frame(index=self.next_index, pts=pts, captured_at=timezone.now(), image=image)
        self.next_index += 1
        return frame

    def _cut_short(self) -> bool:
        if self.live or self.scheme not in ("s3", "http", "https") or not self._frame_count:
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
        if self._cap is not None:
            self._cap.release()
            self._cap = None
