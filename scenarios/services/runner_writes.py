"""The runner's writes: claim, activate, publish with the heartbeat, finish, hand off, crash.

Each is fenced by epoch under the scenario's row lock: a runner whose epoch is no longer the
scenario's gets ``LeaseLost`` and writes nothing. The publish, many a second on a busy runner,
is one ``UPDATE ... WHERE id AND epoch RETURNING`` plus its inserts; the rare writes lock the
row, change it through the state machine and save it. Precondition of each: the caller holds the
lease of ``epoch`` (misis/lease.py).
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from django.db import connections, transaction
from django.db.models import BinaryField, Case, F, JSONField, Q, Value, When
from django.db.models.functions import Greatest
from django.db.models.sql import UpdateQuery
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
    fps: float | None = None,
    stream: StreamStatus | None = None,
    reconnects: int = 0,
    events: list[EventRow] | None = None,
    analytics_state: bytes | None = None,
    counts: dict[str, Any] | None = None,
) -> str:
    """Publish predictions and events and beat the heart, fenced by epoch; the current status.

    The caller renewed its lease just before. The fenced UPDATE takes the same row lock the
    watchdog takes to bump the epoch, and holds it until the rows below are inserted and the
    transaction commits, so a publish either lands whole before the bump (and the next runner
    resumes after it) or is refused. ``analytics_state`` is the state as of ``next_frame``
    (the frames below it are all in ``rows`` or published before): saved with them, it is
    where a runner that takes over resumes; None leaves the saved one as it is.
    """
    now = timezone.now()
    values: dict[str, Any] = {
        "heartbeat_at": now,
        "deadline_at": next_deadline(),
        "updated_at": now,  # auto_now: only save() sets it by itself
        "next_frame": Greatest("next_frame", Value(next_frame)),
        # Counters grow in the database, never from a value read before.
        "frames_processed": F("frames_processed") + len(rows),
        "frames_dropped": F("frames_dropped") + frames_dropped,
    }
    if rows:
        values["failed_restarts"] = 0
    if events:
        values["events_total"] = Greatest("events_total", Value(events[-1].seq))
    if analytics_state is not None:
        # The state of an older frontier than the saved one never replaces it.
        newer = Q(next_frame__lte=next_frame)
        values["analytics_state"] = Case(
            When(newer, then=Value(analytics_state, BinaryField())), default=F("analytics_state")
        )
        if counts is not None:
            values["counts"] = Case(
                When(newer, then=Value(counts, JSONField())), default=F("counts")
            )
    if fps is not None:
        values["fps"] = round(fps, 2)
    if stream is not None:
        values["stream_state"] = stream.state
        values["reconnects"] = F("reconnects") + reconnects
        values["stream_error"] = stream.error
        if stream.last_frame_at is not None:
            values["last_frame_at"] = stream.last_frame_at
    status, params = _fenced_update(scenario_id, epoch, values, returning=("status", "params"))
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
        scenario = Scenario(pk=scenario_id, epoch=epoch, params=params)  # what events need
        write_events(scenario=scenario, epoch=epoch, rows=events, dispatch=webhooks.dispatch)
    return str(status)


def _fenced_update(
    scenario_id: ScenarioId, epoch: int, values: dict[str, Any], *, returning: tuple[str, ...]
) -> tuple[Any, ...]:
    """``UPDATE scenarios_scenario SET <values> WHERE id = %s AND epoch = %s RETURNING ...``.

    One statement checks the fence, locks the row (until the transaction ends) and writes.
    ``QuerySet.update`` cannot return columns, so this compiles the same UPDATE (the values
    may be expressions: ``F``, ``Greatest``, ``Case``) and asks for ``returning`` too.
    Raises ``LeaseLost`` when the scenario's epoch is no longer ``epoch``.
    """
    queryset = Scenario.objects.filter(pk=scenario_id, epoch=epoch)
    query = cast(UpdateQuery, queryset.query.chain(UpdateQuery))
    query.add_update_values(values)
    sql, params = query.get_compiler(queryset.db).as_sql()
    conn = connections[queryset.db]
    by_name = {f.name: f for f in Scenario._meta.concrete_fields}
    fields = [by_name[name] for name in returning]
    columns = ", ".join(conn.ops.quote_name(str(f.column)) for f in fields)
    with conn.cursor() as cursor:
        cursor.execute(f"{sql} RETURNING {columns}", params)
        found = cursor.fetchone()
    if found is None:
        raise LeaseLost(f"scenario {scenario_id}: epoch {epoch} is fenced off")
    return tuple(
        f.from_db_value(v, None, conn) if hasattr(f, "from_db_value") else v
        for f, v in zip(fields, found, strict=True)
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
