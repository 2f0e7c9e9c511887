"""The long-running loop of one scenario on one runner process.

Read a frame, maybe sample it for detection, keep a bounded number of frames at the inference
workers, collect their results in order, publish them in small batches with the heartbeat.
Every publish renews the lease first and is fenced by epoch in the database, so a runner that
lost its lease (paused, partitioned, replaced) publishes nothing more.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn

import numpy as np
from django.conf import settings
from django.db import close_old_connections

from inference.backends.base import DetectOptions
from inference.client import Detection, InferenceClient
from inference.preprocess import Letterbox, letterbox
from misis import metrics
from misis.lease import Lease, LeaseLost
from misis.logs import scenario_context
from runner.feeds import FileFeed, LatestFrameFeed, open_feed
from runner.sources import Frame, SourceError, VideoSource
from scenarios.control import stop_requested
from scenarios.models import SHUTTING_DOWN_STATUSES
from scenarios.params import Params
from scenarios.preview import PreviewWriter
from scenarios.services import runner_writes as services

logger = logging.getLogger(__name__)

# Set when this worker process is shutting down: loops hand their scenarios over and return.
WORKER_STOPPING = threading.Event()

STOP_CHECK_INTERVAL = 0.05
_SHUTDOWN = SHUTTING_DOWN_STATUSES


class Stop(Exception):
    """Leave the loop; the scenario's status has already been written."""


def run_scenario(scenario_id: str, epoch: int) -> None:
    """Run (scenario, epoch) until it stops, ends, is handed over or its lease is lost.

    A duplicate delivery of the same start, or a start of an epoch already superseded, finds
    the lease taken and returns at once: the lease, not the broker, keeps one runner.
    """
    lease = Lease.acquire(scenario_id, epoch)
    if lease is None:
        logger.info("scenario %s: epoch %s already has a runner or is stale", scenario_id, epoch)
        return
    try:
        with scenario_context(scenario_id):
            ScenarioRunner(scenario_id, epoch, lease).run()
    except Stop:
        pass
    except LeaseLost as exc:
        logger.warning("scenario %s: %s; stopping without publishing", scenario_id, exc)
    except Exception:
        logger.exception("scenario %s: runner crashed (epoch %s)", scenario_id, epoch)
        try:
            services.runner_crashed(scenario_id=scenario_id, epoch=epoch)
        except Exception:
            logger.exception("scenario %s: could not report the crash", scenario_id)
    finally:
        try:
            lease.release()
        except Exception:
            logger.warning("scenario %s: lease release failed", scenario_id, exc_info=True)
        close_old_connections()


@dataclass(frozen=True)
class _Tag:
    index: int
    pts: float
    captured_at: datetime
    width: int
    height: int
    letterbox: Letterbox | None
    image: np.ndarray  # the source frame, for the preview


class Sampler:
    """Which frames to analyse: every frame, or ``target_fps`` of them by source time."""

    def __init__(self, target_fps: float | None) -> None:
        self.period = 1.0 / target_fps if target_fps else 0.0
        self.next_pts: float | None = None

    def take(self, pts: float) -> bool:
        if not self.period:
            return True
        if self.next_pts is None or pts + 1e-6 >= self.next_pts:
            base = pts if self.next_pts is None else self.next_pts
            self.next_pts = max(base + self.period, pts)
            return True
        return False


class ScenarioRunner:
    def __init__(self, scenario_id: str, epoch: int, lease: Lease) -> None:
        self.scenario_id = scenario_id
        self.epoch = epoch
        self.lease = lease
        self.rows: list[services.PredictionRow] = []
        self.feed: FileFeed | LatestFrameFeed | None = None
        self.dropped_reported = 0
        self.reconnects_reported = 0
        self.read_reported = 0  # frame index up to which frames_read was counted
        self.source: VideoSource | None = None
        self.preview = PreviewWriter(scenario_id)
        self.done_times: deque[float] = deque(maxlen=50)
        self.last_publish = time.monotonic()

    # --- life cycle -----------------------------------------------------------------------
    def run(self) -> None:
        claim = services.runner_claim(
            scenario_id=self.scenario_id, epoch=self.epoch, runner=services.runner_identity()
        )
        if claim is None:
            logger.info("scenario %s: nothing to run for epoch %s", self.scenario_id, self.epoch)
            return
        if claim.status in _SHUTDOWN:
            self.finish("requested")
        self.params = Params.from_dict(claim.params)
        self.source = VideoSource(claim.source, start_frame=claim.next_frame, loop=self.params.loop)
        self.read_reported = claim.next_frame
        self.open_source()
        try:
            status = services.runner_activate(
                scenario_id=self.scenario_id,
                epoch=self.epoch,
                frames_total=self.source.frames_total,
                live=self.source.live,
            )
            if status in _SHUTDOWN:
                self.finish("requested")
            logger.info(
                "scenario %s: active on %s (epoch %s) from frame %s",
                self.scenario_id,
                services.runner_identity(),
                self.epoch,
                claim.next_frame,
            )
            self.loop()
        finally:
            if self.feed is None:  # a feed closes its source itself, from its reader thread
                self.source.close()

    def open_source(self) -> None:
        retries = max(1, settings.MISIS_OPEN_RETRIES)
        for attempt in range(1, retries + 1):
            try:
                self.source.open()
                return
            except SourceError as exc:
                logger.warning(
                    "scenario %s: open failed (%d/%d): %s", self.scenario_id, attempt, retries, exc
                )
                if attempt == retries:
                    self.finish("error", error=str(exc))
                self.publish()  # keeps the heartbeat, and notices a stop
                time.sleep(min(2.0 ** (attempt - 1), 5.0))

    def finish(self, reason: str, error: str | None = None) -> NoReturn:
        services.runner_finish(
            scenario_id=self.scenario_id, epoch=self.epoch, reason=reason, error=error
        )
        raise Stop

    # --- the frame loop -------------------------------------------------------------------
    def loop(self) -> None:
        assert self.source is not None
        feed = open_feed(
            self.source,
            scenario_id=self.scenario_id,
            reconnect_timeout=self.params.reconnect_timeout,
        )
        self.feed = feed
        # A file keeps frames queued at the detector so it never idles between them; a live
        # source sends one at a time, so each prediction is about the newest frame.
        client = InferenceClient(
            max_in_flight=1 if isinstance(feed, LatestFrameFeed) else settings.MISIS_MAX_IN_FLIGHT
        )
        sampler = Sampler(self.params.target_fps)
        options = DetectOptions(
            confidence=self.params.confidence, classes=self.params.classes, imgsz=self.params.imgsz
        )
        next_stop_check = 0.0
        beat = settings.MISIS_HEARTBEAT_INTERVAL
        try:
            while True:
                now = time.monotonic()
                if WORKER_STOPPING.is_set():
                    self.publish(frontier=self.frontier(client))
                    services.runner_handoff(scenario_id=self.scenario_id, epoch=self.epoch)
                    raise Stop
                if now >= next_stop_check:
                    next_stop_check = now + STOP_CHECK_INTERVAL
                    if stop_requested(self.scenario_id, self.epoch):
                        self.publish(frontier=self.frontier(client))
                        self.finish("requested")

                took = False
                if not feed.ended and not client.full:
                    idle = not client.in_flight and not self.rows
                    try:
                        frame = feed.next_frame(timeout=0.05 if idle else 0.0)
                    except SourceError as exc:
                        self.fail(exc, client)
                    if frame is not None:
                        took = True
                        if sampler.take(frame.pts):
                            image, box = letterbox(frame.image, self.params.imgsz)
                            client.submit(image, options, tag=self._tag(frame, box))
                # Publish after the next frame is on its way, so the write overlaps inference.
                since = time.monotonic() - self.last_publish
                if (
                    len(self.rows) >= settings.MISIS_PUBLISH_BATCH
                    or (self.rows and since >= settings.MISIS_PUBLISH_INTERVAL)
                    or since >= beat
                ):
                    self.publish(frontier=self.frontier(client))
                if client.in_flight:
                    # Block only when there is nothing else to do: pipeline full or no frame.
                    wait = 0.0 if took and not client.full else min(STOP_CHECK_INTERVAL, beat)
                    result = client.collect(wait)
                    if result is not None:
                        self.rows.append(self._row(*result))
                elif feed.ended:
                    self.publish(frontier=self.source.next_index)
                    self.finish("end_of_stream")
        finally:
            feed.close()

    def fail(self, exc: SourceError, client: InferenceClient) -> NoReturn:
        """The source is gone for good: publish what is done, end ``inactive`` with the error."""
        logger.error("scenario %s: source failed: %s", self.scenario_id, exc)
        self.publish(frontier=self.frontier(client))
        self.finish("error", error=str(exc))

    def _row(self, tag: _Tag, det: Detection) -> services.PredictionRow:
        self.done_times.append(time.monotonic())
        boxes = (
            det.boxes if tag.letterbox is None else [tag.letterbox.to_source(b) for b in det.boxes]
        )
        self.preview.offer(tag.image, boxes)
        return services.PredictionRow(
            frame_index=tag.index,
            pts=tag.pts,
            captured_at=tag.captured_at,
            width=tag.width,
            height=tag.height,
            inference_ms=det.inference_ms,
            boxes=boxes,
        )

    def frontier(self, client: InferenceClient) -> int:
        """Frames below this index are published or skipped: a restart resumes here."""
        assert self.source is not None
        if client.in_flight:
            return int(client.in_flight[0][1].index)
        return self.source.next_index

    @staticmethod
    def _tag(frame: Frame, box: Letterbox | None) -> _Tag:
        h, w = frame.image.shape[:2]
        return _Tag(frame.index, frame.pts, frame.captured_at, w, h, box, frame.image)

    def fps(self) -> float:
        t = self.done_times
        if len(t) < 2 or time.monotonic() - t[-1] > 5:
            return 0.0
        return (len(t) - 1) / max(t[-1] - t[0], 1e-6)

    def publish(self, frontier: int | None = None) -> None:
        """Renew the lease, then write pending rows and the heartbeat; fenced by epoch."""
        self.lease.renew()
        dropped = self.feed.dropped if self.feed is not None else 0
        reconnects = self.feed.reconnects if self.feed is not None else 0
        status = services.runner_publish(
            scenario_id=self.scenario_id,
            epoch=self.epoch,
            rows=self.rows,
            next_frame=frontier if frontier is not None else 0,
            frames_dropped=dropped - self.dropped_reported,
            fps=self.fps(),
            stream=self.feed.status() if self.feed is not None else None,
            reconnects=reconnects - self.reconnects_reported,
        )
        self.reconnects_reported = reconnects
        read = self.source.next_index if self.source is not None else self.read_reported
        metrics.record(
            {
                "frames_read": read - self.read_reported,
                "frames_analysed": len(self.rows),
                "frames_dropped": dropped - self.dropped_reported,
            }
        )
        self.read_reported = read
        self.dropped_reported = dropped
        self.rows = []
        # Hand the database connection back to the process's pool until the next publish.
        close_old_connections()
        self.last_publish = time.monotonic()
        if status in _SHUTDOWN:
            self.finish("requested")
