"""The runner's writes: claim, activate, publish with the heartbeat, finish, hand off, crash.

Each is fenced by epoch under the scenario's row lock: a runner whose epoch is no longer the
scenario's gets ``LeaseLost`` and writes nothing. Precondition of each: the caller holds the
lease of ``epoch`` (misis/lease.py).
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from misis.lease import LeaseLost
from scenarios import webhooks
from scenarios.event_writes import EventRow, write_events
from scenarios.models import (
    PREDICTION_FIELDS,
    RUNNING_STATUSES,
    SHUTTING_DOWN_STATUSES,
    Prediction,
    Scenario,
    ScenarioId,
    Status,
    StopReason,
)
from scenarios.services.transitions import finish, next_deadline
from scenarios.services.watchdog import restart
from scenarios.streams import StreamStatus

logger = logging.getLogger(__name__)


def runner_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _lock_fenced(scenario_id: ScenarioId, epoch: int) -> Scenario:
    scenario = Scenario.objects.select_for_update().filter(pk=scenario_id, epoch=epoch).first()
    if scenario is None:
        raise LeaseLost(f"scenario {scenario_id}: epoch {epoch} is fenced off")
    return scenario


@dataclass(frozen=True)
class Claim:
    source: str
    params: dict[str, Any]
    next_frame: int
    status: str
    # The analytics and sampler state as of next_frame, and the events written so far.
    analytics_state: bytes | None = None
    events_total: int = 0


@transaction.atomic
def runner_claim(*, scenario_id: ScenarioId, epoch: int, runner: str) -> Claim | None:
    """Record the runner of (scenario, epoch). None when there is nothing to run."""
    scenario = Scenario.objects.select_for_update().filter(pk=scenario_id).first()
    if scenario is None or scenario.epoch != epoch:
        return None
    if scenario.status not in (*RUNNING_STATUSES, *SHUTTING_DOWN_STATUSES):
        return None
    scenario.runner = runner
    scenario.heartbeat_at = timezone.now()
    scenario.deadline_at = next_deadline()
    scenario.save()
    return Claim(
        source=scenario.source,
        params=scenario.params,
        next_frame=scenario.next_frame,
        status=scenario.status,
        analytics_state=bytes(scenario.analytics_state) if scenario.analytics_state else None,
        events_total=scenario.events_total,
    )


@transaction.atomic
def runner_activate(
    *, scenario_id: ScenarioId, epoch: int, frames_total: int | None = None, live: bool = False
) -> str:
    """The source is open: ``in_startup_processing -> active``. Returns the status."""
    scenario = _lock_fenced(scenario_id, epoch)
    scenario.frames_total = frames_total
    scenario.stream_state = "connected" if live else None
    scenario.stream_error = None
    if scenario.status == Status.IN_STARTUP_PROCESSING:
        scenario.activate()
        scenario.started_at = timezone.now()
    scenario.heartbeat_at = timezone.now()
    scenario.deadline_at = next_deadline()
    scenario.save()
    return str(scenario.status)  # FSMField: typed Any


@dataclass(frozen=True)
class PredictionRow:
    """One result as the runner publishes it: the fields of PREDICTION_FIELDS."""

    frame_index: int
    pts: float
    captured_at: datetime
    width: int
    height: int
    inference_ms: float
    boxes: list[dict[str, Any]]


@transaction.atomic
def runner_publish(
    *,
    scenario_id: ScenarioId,
    epoch: int,
    rows: list[PredictionRow],
    next_frame: int,
    frames_dropped: int = 0,
    frames_skipped: int = 0,
    fps: float | None = None,
    stream: StreamStatus | None = None,
    reconnects: int = 0,
    events: list[EventRow] | None = None,
    analytics_state: bytes | None = None,
    counts: dict[str, Any] | None = None,
) -> str:
    """Publish predictions and events and beat the heart, fenced by epoch; the current status.

    The caller renewed its lease just before. The row lock taken here is the same one the
    watchdog takes to bump the epoch, so a publish either lands before the bump (and the next
    runner resumes after it) or is refused. ``analytics_state`` is the state as of
    ``next_frame`` (the frames below it are all in ``rows`` or published before): saved with
    them, it is where a runner that takes over resumes.
    """
    scenario = _lock_fenced(scenario_id, epoch)
    _refuse_published(scenario, rows, events or [])
    if rows:
        created = Prediction.objects.bulk_create(
            [
                Prediction(
                    scenario_id=scenario.pk,
                    epoch=epoch,
                    **{name: getattr(r, name) for name in PREDICTION_FIELDS},
                )
                for r in rows
            ]
        )
        scenario.frames_processed += len(created)
        scenario.failed_restarts = 0
    if events:
        write_events(scenario=scenario, epoch=epoch, rows=events, dispatch=webhooks.dispatch)
        scenario.events_total = max(scenario.events_total, events[-1].seq)
    if analytics_state is not None and next_frame >= scenario.next_frame:
        scenario.analytics_state = analytics_state
        if counts is not None:
            scenario.counts = counts
    scenario.next_frame = max(scenario.next_frame, next_frame)
    scenario.frames_dropped += frames_dropped
    scenario.frames_skipped += frames_skipped
    if fps is not None:
        scenario.fps = round(fps, 2)
    if stream is not None:
        scenario.stream_state = stream.state
        scenario.reconnects += reconnects
        scenario.last_frame_at = stream.last_frame_at or scenario.last_frame_at
        scenario.stream_error = stream.error
    scenario.heartbeat_at = timezone.now()
    scenario.deadline_at = next_deadline()
    scenario.save()
    return str(scenario.status)  # FSMField: typed Any


def _refuse_published(
    scenario: Scenario, rows: list[PredictionRow], events: list[EventRow]
) -> None:
    """The uniqueness of (scenario, frame_index) and (scenario, seq) across partitions (see
    scenarios/retention.py): under the row lock, a frame below ``next_frame`` or an event at or
    below ``events_total`` was published before, and is refused."""
    low = min((r.frame_index for r in rows), default=None)
    if low is not None and low < scenario.next_frame:
        raise IntegrityError(
            f"scenario {scenario.pk}: frame {low} is below next_frame {scenario.next_frame}:"
            " published already"
        )
    seq = min((e.seq for e in events), default=None)
    if seq is not None and seq <= scenario.events_total:
        raise IntegrityError(
            f"scenario {scenario.pk}: event {seq} is not above events_total"
            f" {scenario.events_total}: published already"
        )


@transaction.atomic
def runner_finish(
    *, scenario_id: ScenarioId, epoch: int, reason: StopReason | str, error: str | None = None
) -> None:
    """Walk the scenario to ``inactive`` through the state machine (end of stream, stop, error)."""
    scenario = _lock_fenced(scenario_id, epoch)
    if scenario.status == Status.INACTIVE:
        return
    if scenario.status in SHUTTING_DOWN_STATUSES:
        reason = scenario.stop_reason or reason  # a requested stop stays "requested"
    finish(scenario, reason=reason, error=error)
    scenario.save()
    logger.info("scenario %s: inactive (%s)%s", scenario.pk, reason, f": {error}" if error else "")


@transaction.atomic
def runner_handoff(*, scenario_id: ScenarioId, epoch: int) -> None:
    """The runner's worker is shutting down: hand the scenario to another runner at once.

    The runner stops publishing after this.
    """
    scenario = _lock_fenced(scenario_id, epoch)
    if scenario.status in RUNNING_STATUSES:
        restart(scenario, counts_as_failure=False)
        scenario.save()
        logger.info("scenario %s: handed off (new epoch %s)", scenario.pk, scenario.epoch)
    elif scenario.status in SHUTTING_DOWN_STATUSES:
        finish(scenario, reason=scenario.stop_reason or StopReason.REQUESTED)
        scenario.save()


@transaction.atomic
def runner_crashed(*, scenario_id: ScenarioId, epoch: int) -> None:
    """The runner failed unexpectedly: let the watchdog restart it (with backoff) right away."""
    scenario = _lock_fenced(scenario_id, epoch)
    scenario.deadline_at = timezone.now()
    scenario.runner = None
    scenario.save()
