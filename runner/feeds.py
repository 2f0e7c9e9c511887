"""How the frame loop gets frames from a source: every frame of a file, or the newest frame
of a live stream, read in its own thread that reconnects when the stream drops out."""

from __future__ import annotations

import contextvars
import logging
import random
import threading
import time
from datetime import datetime

from django.conf import settings

from misis import metrics
from runner.sources import Frame, SourceError, VideoSource
from scenarios.params import DEFAULT_RECONNECT_TIMEOUT
from scenarios.streams import StreamStatus

logger = logging.getLogger(__name__)


class FileFeed:
    """Every frame of a file, in order: the loop waits for the detector, nothing is dropped."""

    def __init__(self, source: VideoSource) -> None:
        self.source = source
        self.ended = False
        self.dropped = 0
        self.reconnects = 0

    def next_frame(self, timeout: float, fresher_within: float = 0.0) -> Frame | None:
        frame = self.source.read()
        if frame is None:
            self.ended = True
        return frame

    def status(self) -> StreamStatus | None:
        return None

    def close(self) -> None:
        self.source.close()


class LatestFrameFeed:
    """A source read in its own thread; the loop always gets the newest frame.

    When the detector is slower than the source, frames the loop never looked at are
    overwritten and counted in ``dropped``: nothing queues up without bound, and a prediction
    is never about a stale frame.

    A live stream that stops sending (read timeout, closed connection) is reopened with
    exponential backoff and jitter while the loop goes on beating its heart; the feed gives up
    with SourceError once ``reconnect_timeout`` seconds have passed without a frame.

    The feed measures the stream's frame interval, so the loop can tell when the frame waiting
    is about to be replaced and wait for its successor instead (``next_frame``'s
    ``fresher_within``).
    """

    def __init__(self, source: VideoSource, *, scenario_id: str, reconnect_timeout: float) -> None:
        self.source = source
        self.scenario_id = scenario_id
        self.reconnect_timeout = reconnect_timeout
        self.ended = False
        self.dropped = 0
        self.reconnects = 0
        self.state = "connected"
        self.last_error: str | None = None
        self.last_frame_at: datetime | None = None
        self._latest: Frame | None = None
        self._arrived: float | None = None  # when the newest frame came (monotonic)
        self.interval: float | None = None  # between frames of the stream: a moving average
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        # The reader's log lines carry the scenario id, like the loop's (misis.logs context).
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._run,), name="frame-reader", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        try:
            self._read()
        except BaseException as exc:  # handed to the loop, which decides what it means
            with self._cond:
                self._error = exc
                self._cond.notify_all()
        finally:
            # Released here, by the thread that reads: releasing a capture under a blocked
            # read from another thread crashes FFmpeg.
            self.source.close()

    def _read(self) -> None:
        last_frame = time.monotonic()
        while not self._stop.is_set():
            try:
                frame = self.source.read()
            except SourceError as exc:
                if not self.source.live:
                    raise
                self._reconnect(exc, since=last_frame)
                continue
            last_frame = time.monotonic()
            with self._cond:
                if frame is None:
                    self.ended = True
                    self._cond.notify_all()
                    return
                if self._latest is not None:
                    self.dropped += 1
                self._measure_interval(last_frame)
                self._latest = frame
                self.last_frame_at = frame.captured_at
                self._cond.notify_all()

    def _measure_interval(self, now: float) -> None:
        """Fold the gap since the last frame into ``interval``; a gap over a second or over
        three intervals is a stall, not the stream's rate, and is left out."""
        if self._arrived is not None and now - self._arrived <= min(
            1.0, 3 * self.interval if self.interval else 1.0
        ):
            gap = now - self._arrived
            self.interval = (
                gap if self.interval is None else self.interval + 0.1 * (gap - self.interval)
            )
        self._arrived = now

    def _reconnect(self, error: SourceError, *, since: float) -> None:
        """Reopen the stream until it gives a frame source again, or raise past the timeout."""
        self.state, self.last_error = "reconnecting", str(error)
        with self._cond:
            self._arrived = None  # the next gap is the reconnect's, not the stream's
        logger.warning("scenario %s: %s; reconnecting", self.scenario_id, error)
        self.source.close()
        delay = settings.MISIS_RECONNECT_BACKOFF_BASE
        while not self._stop.is_set():
            left = since + self.reconnect_timeout - time.monotonic()
            if left <= 0:
                raise SourceError(
                    f"no frame from the stream for {self.reconnect_timeout:g} s"
                    f" (reconnect_timeout); last error: {self.last_error}"
                )
            # Jitter: cameras behind one switch come back together, their runners should not.
            if self._stop.wait(min(left, delay * random.uniform(0.5, 1.0))):
                return
            delay = min(delay * 2, settings.MISIS_RECONNECT_BACKOFF_MAX)
            left = since + self.reconnect_timeout - time.monotonic()
            try:
                self.source.open(
                    open_timeout=max(0.5, min(settings.MISIS_STREAM_OPEN_TIMEOUT, left))
                )
            except SourceError as exc:
                self.last_error = str(exc)
                logger.info("scenario %s: reconnect failed: %s", self.scenario_id, exc)
                continue
            self.reconnects += 1
            metrics.record({"source_reconnects": 1})
            self.state, self.last_error = "connected", None
            logger.info(
                "scenario %s: stream back after %.1f s (reconnect %d)",
                self.scenario_id,
                time.monotonic() - since,
                self.reconnects,
            )
            return

    def successor_due(self, within: float) -> float | None:
        """Seconds until the frame waiting is expected to be replaced by the next, when that is
        within ``within`` seconds; else None (no frame waits, the interval is not known yet,
        the successor is further off, or overdue by more than ``within``: a stall, not a frame
        about to come)."""
        with self._cond:
            return self._due(within)

    def _due(self, within: float) -> float | None:  # under self._cond
        if self._latest is None or self._arrived is None or self.interval is None:
            return None
        due = self._arrived + self.interval - time.monotonic()
        return due if -within < due <= within else None

    def next_frame(self, timeout: float, fresher_within: float = 0.0) -> Frame | None:
        """The newest frame; waits up to ``timeout`` when there is none. ``fresher_within``:
        when the frame waiting is due to be replaced within that many seconds, wait up to that
        long for its successor and return that one (the one replaced counts as dropped)."""
        with self._cond:
            if self._latest is None and self._error is None and not self.ended and timeout > 0:
                self._cond.wait(timeout)
            elif fresher_within > 0 and self._due(fresher_within) is not None:
                waiting = self._latest
                self._cond.wait_for(
                    lambda: self._latest is not waiting or self._error is not None or self.ended,
                    timeout=fresher_within,
                )
            if self._error is not None:
                raise self._error
            frame, self._latest = self._latest, None
            return frame

    def status(self) -> StreamStatus | None:
        if not self.source.live:
            return None
        return StreamStatus(self.state, self.last_frame_at, self.last_error)

    def close(self) -> None:
        self._stop.set()
        # A read or an open in progress returns within its timeout; the thread then releases
        # the capture itself. Waiting longer than that would only hold up a stop.
        limit = settings.MISIS_STREAM_OPEN_TIMEOUT + self.source.read_timeout + 1
        self._thread.join(timeout=limit)
        if self._thread.is_alive():
            logger.warning(
                "scenario %s: frame reader still blocked; left to exit", self.scenario_id
            )


def open_feed(
    source: VideoSource,
    *,
    scenario_id: str = "",
    reconnect_timeout: float = DEFAULT_RECONNECT_TIMEOUT,
) -> FileFeed | LatestFrameFeed:
    """Live sources and looping files (which stand in for cameras) drop stale frames."""
    if source.live or source.loop:
        return LatestFrameFeed(source, scenario_id=scenario_id, reconnect_timeout=reconnect_timeout)
    return FileFeed(source)
