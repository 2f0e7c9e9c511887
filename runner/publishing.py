"""The publish step of one (scenario, epoch) on a runner: renew the lease, then write the pending
rows, events, analytics state (when it changed) and the heartbeat fenced by epoch, in one
transaction with the process's other waiting publishes (runner/publish_queue.py); count what
was read, analysed, dropped and skipped since the last publish in the process's metrics."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from django.conf import settings

from misis import metrics
from misis.lease import Lease
from runner.feeds import FileFeed, LatestFrameFeed
from runner.publish_queue import PUBLISHES
from scenarios.event_writes import EventRow
from scenarios.services import runner_writes as services


class Publisher:
    """When to publish, and the counters each publish reports as a difference from the last."""

    def __init__(self, scenario_id: str, epoch: int, lease: Lease, read_from: int) -> None:
        self.scenario_id = scenario_id
        self.epoch = epoch
        self.lease = lease
        self.dropped_reported = 0
        self.reconnects_reported = 0
        self.skipped = 0  # frames the motion gate skipped since the last publish
        self.read_reported = read_from  # frame index up to which frames_read was counted
        self.done_times: deque[float] = deque(maxlen=50)
        self.last_publish = time.monotonic()
        self.took = 0.0  # seconds the last publish took, lease renewal and write
        # The analytics state the last publish saved: an unchanged one (no frame analysed
        # since) is not written again, nor its counts (computed from the same state).
        self.state_saved: bytes | None = None

    def analysed(self) -> None:
        """One more frame came back from the detector (for the fps the heartbeat reports)."""
        self.done_times.append(time.monotonic())

    def fps(self) -> float:
        t = self.done_times
        if len(t) < 2 or time.monotonic() - t[-1] > 5:
            return 0.0
        return (len(t) - 1) / max(t[-1] - t[0], 1e-6)

    def heartbeat_in(self) -> float:
        """Seconds until a heartbeat is due (0 when it is)."""
        due = self.last_publish + settings.MISIS_HEARTBEAT_INTERVAL
        return max(0.0, due - time.monotonic())

    def due(self, pending: int, *, every_frame: bool = False) -> bool:
        """A full batch, rows older than the interval, or a heartbeat that is due.

        ``every_frame``: a file read frame by frame, whose rows wait longer (fewer publishes)."""
        since = time.monotonic() - self.last_publish
        interval = (
            settings.MISIS_FILE_PUBLISH_INTERVAL if every_frame else settings.MISIS_PUBLISH_INTERVAL
        )
        return (
            pending >= settings.MISIS_PUBLISH_BATCH
            or (pending > 0 and since >= interval)
            or self.heartbeat_in() == 0.0
        )

    def publish(
        self,
        *,
        rows: list[services.PredictionRow],
        events: list[EventRow],
        feed: FileFeed | LatestFrameFeed | None,
        read: int,
        frontier: int | None,
        analytics_state: bytes,
        counts: dict[str, Any] | None,
    ) -> str:
        """Renew the lease, then write (both with the process's other waiting publishes);
        returns the scenario's status as the write found it.

        ``read``: the source's next frame index (frames read so far)."""
        started = time.monotonic()
        unchanged = analytics_state == self.state_saved
        dropped = feed.dropped if feed is not None else 0
        reconnects = feed.reconnects if feed is not None else 0
        request = services.PublishRequest(
            scenario_id=self.scenario_id,
            epoch=self.epoch,
            rows=rows,
            next_frame=frontier if frontier is not None else 0,
            frames_dropped=dropped - self.dropped_reported,
            frames_skipped=self.skipped,
            fps=self.fps(),
            stream=feed.status() if feed is not None else None,
            reconnects=reconnects - self.reconnects_reported,
            events=events,
            analytics_state=None if unchanged else analytics_state,
            counts=None if unchanged else counts,
        )
        status = PUBLISHES.publish(request, self.lease)  # with the process's other publishes
        self.state_saved = analytics_state
        metrics.tally(  # the process's counts, written at most once a second
            {
                "frames_read": read - self.read_reported,
                "frames_analysed": len(rows),
                "frames_dropped": dropped - self.dropped_reported,
                "frames_skipped": self.skipped,
            }
        )
        self.skipped = 0
        self.read_reported = read
        self.reconnects_reported = reconnects
        self.dropped_reported = dropped
        self.last_publish = time.monotonic()
        self.took = self.last_publish - started
        return status
