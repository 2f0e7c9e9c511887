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
from typing import NoReturn

from django.conf import settings
from django.db import close_old_connections

from inference.backends.base import DetectOptions
from inference.client import Detection, InferenceClient
from inference.preprocess import letterbox
from misis import metrics
from misis.lease import Lease, LeaseLost
from misis.logs import scenario_context
from runner.analytics_stage import AnalyticsStage
from runner.feeds import FileFeed, LatestFrameFeed, open_feed
from runner.freshness import Freshness
from runner.motion import MotionGate
from runner.publishing import Publisher
from runner.sampling import SampledFrame, Sampler
from runner.sources import Frame, SourceError, VideoSource
from runner.stop_flags import STOP_FLAGS
from scenarios.event_writes import EventRow
from scenarios.models import SHUTTING_DOWN_STATUSES, StopReason
from scenarios.params import Params
from scenarios.preview import PreviewWriter
from scenarios.services import runner_writes as services

logger = logging.getLogger(__name__)

# Set when this worker process is shutting down: loops hand their scenarios over and return.
WORKER_STOPPING = threading.Event()

# The longest a loop waits for a result, or with nothing pending for a live feed's next frame,
# before it looks at its stop flag and the heartbeat again (a result or a frame ends the wait at
# once). Each wait that runs out is a turn of the loop: at 0.05 s, 4 file scenarios waiting on
# a slow detector cost their runners 54 ms of CPU a second, at 0.25 s 38 (the stop flags'
# poller at 0.05 s both times); 250 1-fps live loops idle-waiting for frames 0.05 s at a time
# cost 110 % of a core, 0.25 s at a time 82-93 % (bench.scale, README Scale).
STOP_CHECK_INTERVAL = 0.25
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
            claim = services.runner_claim(
                scenario_id=scenario_id, epoch=epoch, runner=services.runner_identity()
            )
            # Back to the process's pool: a source can take seconds to open, and a runner
            # process starts many scenarios at once with a few connections between them.
            close_old_connections()
            if claim is None:
                logger.info("scenario %s: nothing to run for epoch %s", scenario_id, epoch)
                return
            with STOP_FLAGS.watching(scenario_id, epoch) as stop_flag:
                ScenarioRunner(scenario_id, epoch, lease, claim, stop_flag).run()
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
        metrics.flush_tally()  # its last counts, and any other scenario's still in the tally
        close_old_connections()


class ScenarioRunner:
    """One claimed (scenario, epoch): open the source, then loop until a ``Stop``.

    Each turn of the loop: stop?  next frame -> sample -> motion gate -> submit;  publish if due;
    collect. A live feed's next frame may be its successor, when that is due within a short
    wait (runner/freshness.py); a publish that is due is then written first, during the wait.
    """

    def __init__(
        self,
        scenario_id: str,
        epoch: int,
        lease: Lease,
        claim: services.Claim,
        stop_flag: threading.Event,
    ) -> None:
        self.scenario_id = scenario_id
        self.epoch = epoch
        self.lease = lease
        self.claim = claim
        self.params = Params.from_dict(claim.params)
        self.source = VideoSource(claim.source, start_frame=claim.next_frame, loop=self.params.loop)
        self.sampler = Sampler(self.params.target_fps)
        self.options = DetectOptions(
            confidence=self.params.confidence, classes=self.params.classes, imgsz=self.params.imgsz
        )
        self.client = InferenceClient(max_in_flight=settings.MISIS_MAX_IN_FLIGHT)
        self.feed: FileFeed | LatestFrameFeed | None = None  # once the source is open
        self.rows: list[services.PredictionRow] = []
        self.publisher = Publisher(scenario_id, epoch, lease, read_from=claim.next_frame)
        self.preview = PreviewWriter(scenario_id, watched=lambda: STOP_FLAGS.previewed(scenario_id))
        self.analytics = AnalyticsStage(
            scenario_id=scenario_id,
            params=claim.params,
            state=claim.analytics_state,
            events_total=claim.events_total,
            fps=self.params.target_fps or 25.0,
        )
        if self.analytics.sampler_next_pts is not None:
            self.sampler.next_pts = self.analytics.sampler_next_pts  # where the last run left it
        self.events: list[EventRow] = []
        self.next_unseen = claim.next_frame  # one past the last frame the loop took
        self.gate: MotionGate | None = None  # once the source is open (is it live?)
        self.freshness = Freshness(settings.MISIS_FRESH_FRAME_COST)  # live feeds only
        self.stop_flag = stop_flag  # set by the process's poller (runner/stop_flags.py)

    # --- life cycle -----------------------------------------------------------------------
    def run(self) -> None:
        if self.claim.status in _SHUTDOWN:
            self.finish(StopReason.REQUESTED)
        self.open_source()
        try:
            self.activate()
            self.loop()
        finally:
            if self.feed is None:  # a feed closes its source itself, from its reader thread
                self.source.close()

    def open_source(self) -> None:
        assert self.source is not None
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
                    self.finish(StopReason.ERROR, error=str(exc))
                self.publish()  # keeps the heartbeat, and notices a stop
                time.sleep(min(2.0 ** (attempt - 1), 5.0))

    def activate(self) -> None:
        status = services.runner_activate(
            scenario_id=self.scenario_id,
            epoch=self.epoch,
            frames_total=self.source.frames_total,
            live=self.source.live,
        )
        close_old_connections()  # back to the pool until the first publish
        if status in _SHUTDOWN:
            self.finish(StopReason.REQUESTED)
        logger.info(
            "scenario %s: active on %s (epoch %s) from frame %s",
            self.scenario_id,
            services.runner_identity(),
            self.epoch,
            self.claim.next_frame,
        )

    def finish(self, reason: StopReason, error: str | None = None) -> NoReturn:
        services.runner_finish(
            scenario_id=self.scenario_id, epoch=self.epoch, reason=reason, error=error
        )
        raise Stop

    # --- the frame loop -------------------------------------------------------------------
    def loop(self) -> None:
        feed = self.feed = open_feed(
            self.source,
            scenario_id=self.scenario_id,
            reconnect_timeout=self.params.reconnect_timeout,
        )
        if isinstance(feed, LatestFrameFeed):
            # A file keeps frames queued at the detector so it never idles between them; a
            # live source sends one at a time, so each prediction is about the newest frame.
            self.client.max_in_flight = 1
        if self.params.motion_on(live=self.source.live):
            self.gate = MotionGate(
                max_gap=self.params.motion_max_gap, threshold=self.params.motion_threshold
            )
        try:
            while True:
                self._turn(feed)
        finally:
            feed.close()

    def _turn(self, feed: FileFeed | LatestFrameFeed) -> None:
        """One pass: every step either returns quickly or raises ``Stop`` to leave the loop."""
        self._handle_stop()
        frame = self._next_frame(feed, self._fresher_wait(feed))
        before = self.sampler.next_pts
        if frame is not None and self.sampler.take(frame.pts):
            self._sample(frame, before)
        # Publish after the next frame is on its way, so the write overlaps inference.
        self._maybe_publish()
        self._collect(took=frame is not None)
        if feed.ended and not self.client.in_flight:
            self.publish(frontier=self.source.next_index)
            self.finish(StopReason.END_OF_STREAM)

    def _handle_stop(self) -> None:
        """Hand over when the worker shuts down; finish when the scenario's stop is flagged."""
        if WORKER_STOPPING.is_set():
            self.publish(frontier=self.frontier())
            services.runner_handoff(scenario_id=self.scenario_id, epoch=self.epoch)
            raise Stop
        if self.stop_flag.is_set():
            self.publish(frontier=self.frontier())
            self.finish(StopReason.REQUESTED)

    def _fresher_wait(self, feed: FileFeed | LatestFrameFeed) -> float:
        """How long a live feed's loop, its detector free, waits for the frame due to replace
        the one waiting (0: none is due that soon); a publish that is due and fits in the wait
        is written first (else after the next frame is sent, overlapping the detector)."""
        if not isinstance(feed, LatestFrameFeed) or self.client.in_flight:
            return 0.0
        wait = self.freshness.wait(feed.interval)
        due = feed.successor_due(wait) if wait > 0 else None
        if due is None:
            return 0.0
        if self.publisher.took <= due:
            self._maybe_publish()
        return wait

    def _next_frame(self, feed: FileFeed | LatestFrameFeed, fresher: float) -> Frame | None:
        """A frame if the pipeline has room; waits for one only when nothing else is pending
        (until the stop check or the heartbeat is due), or up to ``fresher`` for a live feed's
        next frame (``_fresher_wait``)."""
        if feed.ended or self.client.full:
            return None
        idle = not self.client.in_flight and not self.rows
        wait = min(STOP_CHECK_INTERVAL, self.publisher.heartbeat_in()) if idle else 0.0
        try:
            frame = feed.next_frame(timeout=wait, fresher_within=fresher)
        except SourceError as exc:
            self.fail(exc)
        if frame is not None:
            self.next_unseen = frame.index + 1
        return frame

    def _sample(self, frame: Frame, sampler_before: float | None) -> None:
        """A sampled frame goes to the detector unless the motion gate finds nothing new in it;
        a skipped one is counted, and the tracks and the preview keep the last detections."""
        after_skip = False
        if self.gate is not None:
            decision = self.gate.decide(frame)
            if not decision.send:
                self.publisher.skipped += 1
                return
            after_skip = decision.after_skip
        self._submit(frame, sampler_before, after_skip)

    def _submit(self, frame: Frame, sampler_before: float | None, after_skip: bool) -> None:
        image, box = letterbox(frame.image, self.params.imgsz)
        tag = SampledFrame.of(frame, box, sampler_before, after_skip)
        self.client.submit(image, self.options, tag=tag)
        if isinstance(self.feed, LatestFrameFeed):
            self.freshness.sent()

    def _maybe_publish(self) -> None:
        """Publish a full batch, rows older than the interval, or a heartbeat that is due."""
        if self.publisher.due(len(self.rows), every_frame=isinstance(self.feed, FileFeed)):
            self.publish(frontier=self.frontier())

    def _collect(self, *, took: bool) -> None:
        """Take the oldest result if ready; block only when there is nothing else to do."""
        if not self.client.in_flight:
            return
        full_or_idle = not took or self.client.full
        wait = min(STOP_CHECK_INTERVAL, settings.MISIS_HEARTBEAT_INTERVAL) if full_or_idle else 0.0
        result = self.client.collect(wait)
        if result is not None:
            if isinstance(self.feed, LatestFrameFeed):
                self.freshness.answered()
            self.rows.append(self._row(*result))

    def fail(self, exc: SourceError) -> NoReturn:
        """The source is gone for good: publish what is done, end ``inactive`` with the error."""
        logger.error("scenario %s: source failed: %s", self.scenario_id, exc)
        self.publish(frontier=self.frontier())
        self.finish(StopReason.ERROR, error=str(exc))

    def _row(self, sampled: SampledFrame, det: Detection) -> services.PredictionRow:
        self.publisher.analysed()
        boxes = [dict(b) for b in sampled.source_boxes(det)]
        # In frame order (results come back in the order they were sent): tracks and events.
        self.events += self.analytics.process(
            frame_index=sampled.index,
            pts=sampled.pts,
            captured_at=sampled.captured_at,
            image=sampled.image,
            boxes=boxes,
            after_skip=sampled.after_skip,
        )
        if self.gate is not None:
            self.gate.observe(boxes, sampled.width, sampled.height)
        overlay = self.analytics.overlay if self.analytics.enabled else None
        self.preview.offer(sampled.image, boxes, overlay)
        return sampled.row(det, boxes)

    def _sampler_at_frontier(self) -> float | None:
        """The sampler's clock as of the frontier: before the oldest frame still in flight."""
        if self.client.in_flight:
            tag: SampledFrame = self.client.in_flight[0][1]
            return tag.sampler_before
        return self.sampler.next_pts

    def frontier(self) -> int:
        """Frames below this index are published or skipped: a restart resumes here."""
        if self.client.in_flight:
            return int(self.client.in_flight[0][1].index)
        # Not the source's own count: a live feed's reader thread reads ahead of the loop, and
        # the frame it holds for the loop may still be analysed and published.
        return self.next_unseen

    # --- publishing -----------------------------------------------------------------------
    def publish(self, frontier: int | None = None) -> None:
        """Publish pending rows and events with the heartbeat (runner/publishing.py)."""
        status = self.publisher.publish(
            rows=self.rows,
            events=self.events,
            feed=self.feed,
            read=self.source.next_index,
            frontier=frontier,
            analytics_state=self.analytics.dump(self._sampler_at_frontier()),
            counts=self.analytics.counts,
        )
        self.rows = []
        self.events = []
        if status in _SHUTDOWN:
            self.finish(StopReason.REQUESTED)
