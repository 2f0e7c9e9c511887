"""The runner's writes: claim, activate, publish with the heartbeat, finish, hand off, crash.

Each is fenced by epoch under the scenario's row lock: a runner whose epoch is no longer the
scenario's gets ``LeaseLost`` and writes nothing. The publish, hundreds a second on a busy runner
process, is one ``UPDATE ... FROM (VALUES ...) WHERE id AND epoch RETURNING`` for all the
publishes a process has waiting (runner/publish_queue.py) plus their inserts; the rare writes
lock the row, change it through the state machine and save it. Precondition of each: the
caller holds the lease of ``epoch`` (misis/lease.py).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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


@dataclass(frozen=True)
class PublishRequest:
    """One runner's publish of one (scenario, epoch): see ``runner_publish_many``."""

    scenario_id: ScenarioId
    epoch: int
    rows: list[PredictionRow]
    next_frame: int
    frames_dropped: int = 0
    frames_skipped: int = 0
    fps: float | None = None
    stream: StreamStatus | None = None
    reconnects: int = 0
    events: list[EventRow] | None = None
    analytics_state: bytes | None = None
    counts: dict[str, Any] | None = None

    @property
    def low_frame(self) -> int | None:
        """The first frame it publishes: at or above the scenario's next_frame, or refused."""
        return min((r.frame_index for r in self.rows), default=None)

    @property
    def low_seq(self) -> int | None:
        """The first event it publishes: above the scenario's events_total, or refused."""
        return min((e.seq for e in self.events or []), default=None)


# The publish's one write to the scenario rows of a batch of publishes. A statement written out
# rather than compiled by the ORM each time: QuerySet.update() can neither return the status nor
# take a row of values per scenario, and compiling this UPDATE from F()/Greatest/Case
# expressions cost ~1.7 ms of CPU a publish, about as much as the rest of the transaction
# (measured once while choosing; bench/publish.py measures the whole). Counters grow in the
# database, never from a value read before; one more counter is one more column of ``v`` and
# one more ``col = s.col + v.col`` line. On the right of SET, ``s.`` is the row before.
_PUBLISH_COLUMNS = (
    ("id", "uuid"),
    ("epoch", "integer"),
    ("now", "timestamptz"),
    ("deadline", "timestamptz"),
    ("next_frame", "bigint"),
    ("frames_processed", "bigint"),
    ("frames_dropped", "bigint"),
    ("frames_skipped", "bigint"),
    ("reconnects", "bigint"),
    ("events_total", "bigint"),
    ("state", "bytea"),
    ("counts", "jsonb"),
    ("fps", "double precision"),
    ("stream", "boolean"),
    ("stream_state", "text"),
    ("stream_error", "text"),
    ("last_frame_at", "timestamptz"),
    ("low_frame", "bigint"),
    ("low_seq", "bigint"),
)
_PUBLISH_SQL = """
UPDATE scenarios_scenario AS s SET
    heartbeat_at = v.now,
    updated_at = v.now,
    deadline_at = v.deadline,
    next_frame = GREATEST(s.next_frame, v.next_frame),
    frames_processed = s.frames_processed + v.frames_processed,
    frames_dropped = s.frames_dropped + v.frames_dropped,
    frames_skipped = s.frames_skipped + v.frames_skipped,
    reconnects = s.reconnects + v.reconnects,
    failed_restarts = CASE WHEN v.frames_processed > 0 THEN 0 ELSE s.failed_restarts END,
    events_total = GREATEST(s.events_total, v.events_total),
    -- The state of an older frontier than the saved one never replaces it.
    analytics_state = CASE WHEN v.state IS NOT NULL AND s.next_frame <= v.next_frame
                           THEN v.state ELSE s.analytics_state END,
    counts = CASE WHEN v.counts IS NOT NULL AND s.next_frame <= v.next_frame
                  THEN v.counts ELSE s.counts END,
    fps = COALESCE(v.fps, s.fps),
    stream_state = CASE WHEN v.stream THEN v.stream_state ELSE s.stream_state END,
    stream_error = CASE WHEN v.stream THEN v.stream_error ELSE s.stream_error END,
    last_frame_at = COALESCE(v.last_frame_at, s.last_frame_at)
FROM (VALUES {values}) AS v({names})
WHERE s.id = v.id AND s.epoch = v.epoch
    -- The uniqueness of (scenario, frame_index) and (scenario, seq) across partitions (see
    -- scenarios/retention.py): a frame below next_frame or an event at or below events_total
    -- was published before; the row is then left alone and the publish refused.
    AND (v.low_frame IS NULL OR s.next_frame <= v.low_frame)
    AND (v.low_seq IS NULL OR s.events_total < v.low_seq)
RETURNING s.id, s.status, s.params
"""


@functools.cache
def _publish_sql(count: int) -> str:
    """The UPDATE for ``count`` publishes: one typed row of values each."""
    row = "(" + ", ".join(f"%s::{kind}" for _, kind in _PUBLISH_COLUMNS) + ")"
    names = ", ".join(name for name, _ in _PUBLISH_COLUMNS)
    return _PUBLISH_SQL.format(values=", ".join([row] * count), names=names)


def _publish_values(p: PublishRequest, now: datetime, deadline: datetime) -> list[Any]:
    """The row of values of ``p``, in the order of ``_PUBLISH_COLUMNS``."""
    events = p.events or []
    stream = p.stream
    return [
        str(p.scenario_id),
        p.epoch,
        now,
        deadline,
        p.next_frame,
        len(p.rows),
        p.frames_dropped,
        p.frames_skipped,
        p.reconnects if stream is not None else 0,
        events[-1].seq if events else None,
        p.analytics_state,
        Jsonb(p.counts) if p.analytics_state is not None and p.counts is not None else None,
        round(p.fps, 2) if p.fps is not None else None,
        stream is not None,
        stream.state if stream is not None else None,
        stream.error if stream is not None else None,
        stream.last_frame_at if stream is not None else None,
        p.low_frame,
        p.low_seq,
    ]


def runner_publish(**request: Any) -> str:
    """One publish (the fields of ``PublishRequest``) in its own transaction: its status, or
    its refusal raised (``LeaseLost``, ``IntegrityError``)."""
    (outcome,) = runner_publish_many([PublishRequest(**request)])
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


@transaction.atomic
def runner_publish_many(requests: list[PublishRequest]) -> list[str | Exception]:
    """Publish predictions and events and beat the hearts of many scenarios, each fenced by its
    epoch, in one transaction; for each request, its scenario's status or its refusal.

    One ``UPDATE ... FROM (VALUES ...) WHERE id AND epoch RETURNING`` checks every fence, takes
    the row locks the watchdog takes to bump an epoch and holds them until the rows below are
    inserted and the transaction commits: a publish either lands whole before the bump (and the
    next runner resumes after it) or is refused with ``LeaseLost`` (or ``IntegrityError`` for
    rows published before) and writes nothing; the others land all the same. The callers
    renewed their leases just before. ``analytics_state`` is the state as of ``next_frame``
    (the frames below it are all in ``rows`` or published before): saved with them, it is
    where a runner that takes over resumes; None leaves the saved one (and ``counts``) as they
    are. At most one request per scenario (runner/publish_queue.py keeps it so).
    """
    now = timezone.now()
    deadline = next_deadline()
    values = [v for p in requests for v in _publish_values(p, now, deadline)]
    with connection.cursor() as cursor:
        cursor.execute(_publish_sql(len(requests)), values)
        found = {str(sid): (status, params) for sid, status, params in cursor.fetchall()}
    outcomes: list[str | Exception] = []
    accepted: list[PublishRequest] = []
    for p in requests:
        if str(p.scenario_id) not in found:
            outcomes.append(_refusal(p))
            continue
        status, params = found[str(p.scenario_id)]
        outcomes.append(str(status))
        accepted.append(p)
        if p.events:
            scenario = Scenario(pk=p.scenario_id, epoch=p.epoch, params=_json(params))
            write_events(
                scenario=scenario, epoch=p.epoch, rows=p.events, dispatch=webhooks.dispatch
            )
    _insert_predictions(accepted)
    return outcomes


# The predictions of a batch of publishes in one INSERT of one array per column: built in
# microseconds, where Django's bulk_create compiled a row of parameters per prediction (a
# third of a runner's CPU in a profile at 40 frames/s). created_at is the database's default.
_PREDICTION_COLUMNS = (
    ("scenario_id", "uuid"),
    ("epoch", "integer"),
    ("frame_index", "bigint"),
    ("pts", "double precision"),
    ("captured_at", "timestamptz"),
    ("width", "integer"),
    ("height", "integer"),
    ("inference_ms", "double precision"),
    ("boxes", "jsonb"),
)
assert tuple(c for c, _ in _PREDICTION_COLUMNS) == ("scenario_id", "epoch", *PREDICTION_FIELDS)
_INSERT_PREDICTIONS = "INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays})".format(
    table=Prediction._meta.db_table,
    names=", ".join(c for c, _ in _PREDICTION_COLUMNS),
    arrays=", ".join(f"%s::{kind}[]" for _, kind in _PREDICTION_COLUMNS),
)


def _insert_predictions(accepted: list[PublishRequest]) -> None:
    rows = [(p, r) for p in accepted for r in p.rows]
    if not rows:
        return
    columns: list[list[Any]] = [
        [str(p.scenario_id) for p, _ in rows],
        [p.epoch for p, _ in rows],
        *([getattr(r, name) for _, r in rows] for name in PREDICTION_FIELDS[:-1]),
        [Jsonb(r.boxes) for _, r in rows],
    ]
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_PREDICTIONS, columns)


def _refusal(p: PublishRequest) -> Exception:
    """Why the publish's UPDATE matched no row: another epoch, or rows published before."""
    scenario_id = p.scenario_id
    scenario = Scenario.objects.filter(pk=scenario_id, epoch=p.epoch).first()
    if scenario is None:
        return LeaseLost(f"scenario {scenario_id}: epoch {p.epoch} is fenced off")
    low = p.low_frame
    if low is not None and low < scenario.next_frame:
        return IntegrityError(
            f"scenario {scenario_id}: frame {low} is below next_frame {scenario.next_frame}:"
            " published already"
        )
    seq = p.low_seq
    return IntegrityError(
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
