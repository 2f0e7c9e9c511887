"""The runner's writes: claim, activate, publish with the heartbeat, finish, hand off, crash.

Each is fenced by epoch under the scenario's row lock: a runner whose epoch is no longer the
scenario's gets ``LeaseLost`` and writes nothing. The publish, hundreds a second on a busy runner
process, is one ``UPDATE ... WHERE id AND epoch RETURNING`` plus its inserts; the rare writes
lock the row, change it through the state machine and save it. Precondition of each: the
caller holds the lease of ``epoch`` (misis/lease.py).
"""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

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


# The publish's one write to the scenario row. A statement written out rather than compiled by
# the ORM each time: QuerySet.update() cannot return the status, and compiling this UPDATE
# from F()/Greatest/Case expressions cost ~1.7 ms of CPU a publish, about as much as the rest
# of the transaction (measured once while choosing; bench/publish.py measures the whole).
# Counters grow in the database, never from a value read before; one more counter is one
# more ``col = col + %(col)s`` line here.
_PUBLISH_SQL = """
UPDATE scenarios_scenario SET
    heartbeat_at = %(now)s,
    updated_at = %(now)s,
    deadline_at = %(deadline)s,
    next_frame = GREATEST(next_frame, %(next_frame)s),
    frames_processed = frames_processed + %(frames_processed)s,
    frames_dropped = frames_dropped + %(frames_dropped)s,
    frames_skipped = frames_skipped + %(frames_skipped)s,
    reconnects = reconnects + %(reconnects)s,
    failed_restarts = CASE WHEN %(frames_processed)s > 0 THEN 0 ELSE failed_restarts END,
    events_total = GREATEST(events_total, %(events_total)s),
    -- The state of an older frontier than the saved one never replaces it.
    analytics_state = CASE WHEN %(state)s::bytea IS NOT NULL AND next_frame <= %(next_frame)s
                           THEN %(state)s::bytea ELSE analytics_state END,
    counts = CASE WHEN %(counts)s::jsonb IS NOT NULL AND next_frame <= %(next_frame)s
                  THEN %(counts)s::jsonb ELSE counts END,
    fps = COALESCE(%(fps)s::double precision, fps),
    stream_state = CASE WHEN %(stream)s THEN %(stream_state)s ELSE stream_state END,
    stream_error = CASE WHEN %(stream)s THEN %(stream_error)s ELSE stream_error END,
    last_frame_at = COALESCE(%(last_frame_at)s::timestamptz, last_frame_at)
WHERE id = %(id)s AND epoch = %(epoch)s
    -- The uniqueness of (scenario, frame_index) and (scenario, seq) across partitions (see
    -- scenarios/retention.py): a frame below next_frame or an event at or below events_total
    -- was published before; the row is then left alone and the publish refused.
    AND (%(low_frame)s::bigint IS NULL OR next_frame <= %(low_frame)s::bigint)
    AND (%(low_seq)s::bigint IS NULL OR events_total < %(low_seq)s::bigint)
RETURNING status, params
"""


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

    One ``UPDATE ... WHERE id AND epoch RETURNING`` checks the fence, takes the row lock the
    watchdog takes to bump the epoch and holds it until the rows below are inserted and the
    transaction commits: a publish either lands whole before the bump (and the next runner
    resumes after it) or is refused with ``LeaseLost``. The caller renewed its lease just
    before. ``analytics_state`` is the state as of ``next_frame`` (the frames below it are all
    in ``rows`` or published before): saved with them, it is where a runner that takes over
    resumes; None leaves the saved one (and ``counts``) as they are.
    """
    now = timezone.now()
    values: dict[str, Any] = {
        "id": scenario_id,
        "epoch": epoch,
        "now": now,
        "deadline": next_deadline(),
        "next_frame": next_frame,
        "frames_processed": len(rows),
        "frames_dropped": frames_dropped,
        "frames_skipped": frames_skipped,
        "low_frame": min((r.frame_index for r in rows), default=None),
        "low_seq": min((e.seq for e in events or []), default=None),
        "reconnects": reconnects if stream is not None else 0,
        "events_total": events[-1].seq if events else None,
        "state": analytics_state,
        "counts": Jsonb(counts) if analytics_state is not None and counts is not None else None,
        "fps": round(fps, 2) if fps is not None else None,
        "stream": stream is not None,
        "stream_state": stream.state if stream is not None else None,
        "stream_error": stream.error if stream is not None else None,
        "last_frame_at": stream.last_frame_at if stream is not None else None,
    }
    with connection.cursor() as cursor:
        cursor.execute(_PUBLISH_SQL, values)
        found = cursor.fetchone()
    if found is None:
        _refused(scenario_id, epoch, rows, events or [])
    status, params = found
    if rows:
        Prediction.objects.bulk_create(
            [
                Prediction(
                    scenario_id=scenario_id,
                    epoch=epoch,
                    **{name: getattr(r, name) for name in PREDICTION_FIELDS},
                )
                for r in rows
            ]
        )
    if events:
        scenario = Scenario(pk=scenario_id, epoch=epoch, params=_json(params))  # what events need
        write_events(scenario=scenario, epoch=epoch, rows=events, dispatch=webhooks.dispatch)
    return str(status)


def _refused(
    scenario_id: ScenarioId, epoch: int, rows: list[PredictionRow], events: list[EventRow]
) -> NoReturn:
    """Why the publish's UPDATE matched no row: another epoch, or rows published before."""
    scenario = Scenario.objects.filter(pk=scenario_id, epoch=epoch).first()
    if scenario is None:
        raise LeaseLost(f"scenario {scenario_id}: epoch {epoch} is fenced off")
    low = min((r.frame_index for r in rows), default=None)
    if low is not None and low < scenario.next_frame:
        raise IntegrityError(
            f"scenario {scenario_id}: frame {low} is below next_frame {scenario.next_frame}:"
            " published already"
        )
    seq = min((e.seq for e in events), default=None)
    raise IntegrityError(
        f"scenario {scenario_id}: event {seq} is not above events_total"
        f" {scenario.events_total}: published already"
    )


def _json(raw: Any) -> Any:
    """A jsonb column as the raw cursor returns it (text under Django's psycopg set-up)."""
    return json.loads(raw) if isinstance(raw, str | bytes) else raw


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
