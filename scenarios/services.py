"""Everything that changes a scenario. Each service is atomic and holds the scenario's row lock.

Commands (start, stop, restart) write an outbox row in the same transaction as the status
change and dispatch it on commit; ``outbox_relay`` sends what the fast path missed. Runner
services are fenced by epoch: a runner whose epoch is no longer the scenario's gets
``LeaseLost`` and writes nothing.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django_fsm import can_proceed

from misis.exceptions import ApiError
from misis.lease import LeaseLost, lease_holder_epoch
from scenarios.control import signal_stop
from scenarios.models import (
    RUNNING_STATUSES,
    STARTING_STATUSES,
    STOPPING_STATUSES,
    OutboxKind,
    OutboxMessage,
    Prediction,
    Scenario,
    ScenarioId,
    Status,
    StopReason,
)
from scenarios.streams import StreamStatus
from sources.redact import redact

logger = logging.getLogger(__name__)

# The runner's task (runner/tasks.py), started by name.
RUN_SCENARIO_TASK = "runner.run_scenario"


class TransitionRefused(ApiError):
    """The state machine cannot take the command from the current status (HTTP 409)."""

    status_code = 409

    def __init__(self, status: str) -> None:
        super().__init__(f"not allowed from status {status}")
        self.status = status

    def body(self) -> dict[str, Any]:
        return {"detail": f"command not allowed from status {self.status}", "status": self.status}


class QuotaExceeded(ApiError):
    """The owner already has MISIS_QUOTA_ACTIVE_SCENARIOS scenarios that are not inactive (429)."""

    status_code = 429

    def __init__(self, quota: int) -> None:
        super().__init__(
            f"you already have {quota} active scenarios, the most allowed; stop one first"
        )
        self.quota = quota

    def body(self) -> dict[str, Any]:
        return {"detail": str(self), "quota": self.quota}


def _lock_owner(owner_id: int) -> None:
    list(get_user_model().objects.select_for_update().filter(pk=owner_id).values_list("pk"))


def _check_quota(owner_id: int, *, starting: ScenarioId | None = None) -> None:
    """Refuse one more running scenario past the owner's quota. Caller is in a transaction.

    The owner's user row is locked first, so that two requests of one user (two creates, or a
    create and a start) count one after the other: without it both would count N-1 and both
    pass. Lock order everywhere: user row, then scenario row. Stopping scenarios still hold a
    runner and count; staff are not exempt (their scenarios use the same workers).
    """
    quota = settings.MISIS_QUOTA_ACTIVE_SCENARIOS
    if quota <= 0:
        return
    _lock_owner(owner_id)
    running = Scenario.objects.filter(owner_id=owner_id).exclude(status=Status.INACTIVE)
    if starting is not None:
        running = running.exclude(pk=starting)
    if running.count() >= quota:
        logger.info("user %s: scenario quota of %d reached", owner_id, quota)
        raise QuotaExceeded(quota)


def _lock(scenario_id: ScenarioId) -> Scenario:
    return Scenario.objects.select_for_update().get(pk=scenario_id)


def _deadline(seconds: float | None = None) -> datetime:
    return timezone.now() + timedelta(
        seconds=settings.MISIS_HEARTBEAT_TIMEOUT if seconds is None else seconds
    )


def _enqueue(scenario: Scenario, kind: str, *, delay: float = 0.0) -> OutboxMessage:
    """Write an outbox row in the caller's transaction and dispatch it once that commits."""
    msg = OutboxMessage.objects.create(
        scenario=scenario,
        kind=kind,
        epoch=scenario.epoch,
        available_at=timezone.now() + timedelta(seconds=delay),
    )
    if delay <= 0:
        transaction.on_commit(lambda: _dispatch_quietly(msg.pk))
    return msg


def _dispatch_quietly(message_id: int) -> None:
    # The fast path must never fail the request that committed: the relay retries.
    try:
        outbox_dispatch(message_id=message_id)
    except Exception:
        logger.exception("outbox %s: fast dispatch failed; the relay will retry", message_id)


# --- API commands -------------------------------------------------------------------------


@transaction.atomic
def scenario_create(
    *, owner: User, source: str, name: str = "", params: dict[str, Any] | None = None
) -> Scenario:
    """Create a scenario in ``init_startup`` and queue its start. Input is already validated.

    Raises QuotaExceeded when the owner has MISIS_QUOTA_ACTIVE_SCENARIOS running already.
    """
    _check_quota(owner.pk)
    scenario = Scenario.objects.create(
        owner=owner, source=source, name=name, params=params or {}, deadline_at=_deadline()
    )
    _enqueue(scenario, OutboxKind.START)
    logger.info("scenario %s: created for source %s", scenario.pk, redact(scenario.source))
    return scenario


@transaction.atomic
def scenario_request_stop(*, scenario_id: ScenarioId) -> tuple[Scenario, bool]:
    """Ask for a stop. Returns (scenario, changed); a stop already under way changes nothing."""
    scenario = _lock(scenario_id)
    if scenario.status in STOPPING_STATUSES:
        return scenario, False
    scenario.request_shutdown()
    scenario.stop_reason = StopReason.REQUESTED
    scenario.deadline_at = _deadline()
    scenario.save()
    _enqueue(scenario, OutboxKind.STOP)
    logger.info("scenario %s: stop requested", scenario.pk)
    return scenario, True


@transaction.atomic
def scenario_request_start(*, scenario_id: ScenarioId) -> tuple[Scenario, bool]:
    """Start an inactive scenario again under a new epoch; a start under way changes nothing.

    Raises QuotaExceeded when the owner has MISIS_QUOTA_ACTIVE_SCENARIOS running already.
    """
    owner_id = Scenario.objects.filter(pk=scenario_id).values_list("owner_id", flat=True).first()
    if owner_id is not None and settings.MISIS_QUOTA_ACTIVE_SCENARIOS > 0:
        # The owner's row before the scenario's (the lock order of _check_quota).
        _lock_owner(owner_id)
    scenario = _lock(scenario_id)
    if scenario.status in STARTING_STATUSES:
        return scenario, False
    if not can_proceed(scenario.request_startup):
        raise TransitionRefused(scenario.status)
    _check_quota(scenario.owner_id, starting=scenario.pk)
    scenario.request_startup()
    scenario.epoch += 1
    scenario.stop_reason = None
    scenario.error = None
    scenario.runner = None
    scenario.failed_restarts = 0
    scenario.deadline_at = _deadline()
    scenario.save()
    _enqueue(scenario, OutboxKind.START)
    logger.info("scenario %s: start requested (epoch %s)", scenario.pk, scenario.epoch)
    return scenario, True


# --- outbox -------------------------------------------------------------------------------


def outbox_dispatch(*, message_id: int) -> bool:
    """Send one outbox message unless another dispatcher has it or it was sent already.

    The row lock (skip_locked) makes the fast path and the relay mutually exclusive; the
    message is marked sent in the same transaction that sends it, so a crash before commit
    sends it again, and the runner's lease turns that duplicate into a no-op.
    """
    with transaction.atomic():
        msg = (
            OutboxMessage.objects.select_for_update(skip_locked=True)
            .filter(pk=message_id, dispatched_at__isnull=True)
            .first()
        )
        if msg is None:
            return False
        scenario = _lock(msg.scenario_id)
        msg.attempts += 1
        if msg.kind == OutboxKind.START:
            _dispatch_start(scenario, msg)
        else:
            _dispatch_stop(scenario, msg)
        msg.dispatched_at = timezone.now()
        msg.save(update_fields=["attempts", "dispatched_at"])
        return True


def _dispatch_start(scenario: Scenario, msg: OutboxMessage) -> None:
    if scenario.epoch != msg.epoch or scenario.status not in STARTING_STATUSES:
        logger.info("scenario %s: start of epoch %s is obsolete", scenario.pk, msg.epoch)
        return
    if scenario.status == Status.INIT_STARTUP:
        scenario.begin_startup()
    scenario.deadline_at = _deadline()
    scenario.save()
    # By name: the runner depends on this app, never the other way.
    current_app.send_task(
        RUN_SCENARIO_TASK, args=(str(scenario.pk), scenario.epoch), queue="runner"
    )
    logger.info("scenario %s: runner task sent (epoch %s)", scenario.pk, scenario.epoch)


def _dispatch_stop(scenario: Scenario, msg: OutboxMessage) -> None:
    if scenario.status == Status.INIT_SHUTDOWN:
        scenario.begin_shutdown()
        scenario.deadline_at = _deadline()
    if scenario.status == Status.IN_SHUTDOWN_PROCESSING:
        holder = lease_holder_epoch(scenario.pk)
        if holder is not None and holder >= scenario.epoch:
            # The runner finishes the shutdown itself once it has flushed its predictions.
            transaction.on_commit(lambda: signal_stop(scenario.pk, scenario.epoch))
        else:
            # No runner of this epoch is alive (not started yet, or dead): complete here.
            # A runner that starts later sees the status and leaves.
            _finish(scenario, reason=scenario.stop_reason or StopReason.REQUESTED)
            signal_stop(scenario.pk, scenario.epoch)
    scenario.save()


def outbox_relay(*, limit: int = 500) -> int:
    """Send pending messages the fast path missed (crash between commit and dispatch)."""
    now = timezone.now()
    grace = now - timedelta(seconds=settings.MISIS_OUTBOX_RELAY_GRACE)
    ids = list(
        OutboxMessage.objects.filter(dispatched_at__isnull=True, available_at__lte=now)
        .filter(Q(created_at__lte=grace) | Q(available_at__gt=F("created_at")))
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    sent = 0
    for message_id in ids:
        try:
            sent += outbox_dispatch(message_id=message_id)
        except Exception:
            logger.exception("outbox %s: relay dispatch failed", message_id)
    if sent:
        logger.info("outbox relay sent %d message(s)", sent)
    return sent


# --- runner side (caller holds the lease) -------------------------------------------------


def runner_identity() -> str:
    import os

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


@transaction.atomic
def runner_claim(*, scenario_id: ScenarioId, epoch: int, runner: str) -> Claim | None:
    """Record the runner of (scenario, epoch). None when there is nothing to run.

    Precondition: the caller holds the lease of ``epoch``.
    """
    scenario = Scenario.objects.select_for_update().filter(pk=scenario_id).first()
    if scenario is None or scenario.epoch != epoch:
        return None
    if scenario.status not in RUNNING_STATUSES and scenario.status not in (
        Status.INIT_SHUTDOWN,
        Status.IN_SHUTDOWN_PROCESSING,
    ):
        return None
    scenario.runner = runner
    scenario.heartbeat_at = timezone.now()
    scenario.deadline_at = _deadline()
    scenario.save()
    return Claim(
        source=scenario.source,
        params=scenario.params,
        next_frame=scenario.next_frame,
        status=scenario.status,
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
    scenario.deadline_at = _deadline()
    scenario.save()
    return str(scenario.status)  # FSMField: typed Any


@dataclass(frozen=True)
class PredictionRow:
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
) -> str:
    """Publish predictions and beat the heart, fenced by epoch. Returns the current status.

    Precondition: the caller holds the lease of ``epoch`` (renewed just before). The row lock
    taken here is the same one the watchdog takes to bump the epoch, so a publish either lands
    before the bump (and the next runner resumes after it) or is refused.
    """
    scenario = _lock_fenced(scenario_id, epoch)
    if rows:
        created = Prediction.objects.bulk_create(
            [
                Prediction(
                    scenario_id=scenario.pk,
                    epoch=epoch,
                    frame_index=r.frame_index,
                    pts=r.pts,
                    captured_at=r.captured_at,
                    width=r.width,
                    height=r.height,
                    inference_ms=r.inference_ms,
                    boxes=r.boxes,
                )
                for r in rows
            ]
        )
        scenario.frames_processed += len(created)
        scenario.failed_restarts = 0
    scenario.next_frame = max(scenario.next_frame, next_frame)
    scenario.frames_dropped += frames_dropped
    if fps is not None:
        scenario.fps = round(fps, 2)
    if stream is not None:
        scenario.stream_state = stream.state
        scenario.reconnects += reconnects
        scenario.last_frame_at = stream.last_frame_at or scenario.last_frame_at
        scenario.stream_error = stream.error
    scenario.heartbeat_at = timezone.now()
    scenario.deadline_at = _deadline()
    scenario.save()
    return str(scenario.status)  # FSMField: typed Any


@transaction.atomic
def runner_finish(
    *, scenario_id: ScenarioId, epoch: int, reason: str, error: str | None = None
) -> None:
    """Walk the scenario to ``inactive`` through the state machine (end of stream, stop, error).

    Precondition: the caller holds the lease of ``epoch``.
    """
    scenario = _lock_fenced(scenario_id, epoch)
    if scenario.status == Status.INACTIVE:
        return
    if scenario.status in (Status.INIT_SHUTDOWN, Status.IN_SHUTDOWN_PROCESSING):
        reason = scenario.stop_reason or reason  # a requested stop stays "requested"
    _finish(scenario, reason=reason, error=error)
    scenario.save()
    logger.info("scenario %s: inactive (%s)%s", scenario.pk, reason, f": {error}" if error else "")


@transaction.atomic
def runner_handoff(*, scenario_id: ScenarioId, epoch: int) -> None:
    """The runner's worker is shutting down: hand the scenario to another runner at once.

    Precondition: the caller holds the lease of ``epoch``; it stops publishing after this.
    """
    scenario = _lock_fenced(scenario_id, epoch)
    if scenario.status in RUNNING_STATUSES:
        _restart(scenario, counts_as_failure=False)
        scenario.save()
        logger.info("scenario %s: handed off (new epoch %s)", scenario.pk, scenario.epoch)
    elif scenario.status in (Status.INIT_SHUTDOWN, Status.IN_SHUTDOWN_PROCESSING):
        _finish(scenario, reason=scenario.stop_reason or StopReason.REQUESTED)
        scenario.save()


# --- watchdog -----------------------------------------------------------------------------


def watchdog_sweep(*, limit: int = 500) -> int:
    """Restart scenarios whose runner missed its deadline; finish stops whose runner died."""
    now = timezone.now()
    overdue = list(
        Scenario.objects.filter(deadline_at__lt=now)
        .filter(status__in=[*RUNNING_STATUSES, Status.IN_SHUTDOWN_PROCESSING])
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
    acted = 0
    for scenario_id in overdue:
        try:
            acted += _watchdog_one(scenario_id)
        except Exception:
            logger.exception("scenario %s: watchdog failed", scenario_id)
    return acted


@transaction.atomic
def _watchdog_one(scenario_id: ScenarioId) -> bool:
    scenario = Scenario.objects.select_for_update(skip_locked=True).filter(pk=scenario_id).first()
    if scenario is None or scenario.deadline_at is None or scenario.deadline_at >= timezone.now():
        return False
    if scenario.status == Status.IN_SHUTDOWN_PROCESSING:
        logger.warning("scenario %s: runner died while stopping; completing", scenario.pk)
        _finish(scenario, reason=scenario.stop_reason or StopReason.REQUESTED)
        scenario.save()
        return True
    if scenario.status not in RUNNING_STATUSES:
        return False
    if scenario.failed_restarts >= settings.MISIS_MAX_RESTARTS:
        msg = f"runner failed {scenario.failed_restarts} times in a row; giving up"
        logger.error("scenario %s: %s", scenario.pk, msg)
        scenario.request_shutdown()
        scenario.begin_shutdown()
        _finish(scenario, reason=StopReason.ERROR, error=msg)
        scenario.save()
        return True
    logger.warning(
        "scenario %s: runner %s missed its heartbeat (epoch %s); restarting",
        scenario.pk,
        scenario.runner,
        scenario.epoch,
    )
    _restart(scenario, counts_as_failure=True)
    scenario.save()
    return True


def restart_backoff(failed_restarts: int) -> float:
    """No wait for a first failure; then exponential, capped."""
    if failed_restarts <= 0:
        return 0.0
    return min(
        settings.MISIS_RESTART_BACKOFF_MAX,
        settings.MISIS_RESTART_BACKOFF_BASE * 2.0 ** (failed_restarts - 1),
    )


def _restart(scenario: Scenario, *, counts_as_failure: bool) -> None:
    """Bump the epoch (fencing off the old runner) and queue a start for the new one."""
    delay = restart_backoff(scenario.failed_restarts) if counts_as_failure else 0.0
    scenario.epoch += 1
    scenario.restarts += 1
    if counts_as_failure:
        scenario.failed_restarts += 1
    scenario.runner = None
    scenario.fps = 0.0
    scenario.deadline_at = _deadline(settings.MISIS_HEARTBEAT_TIMEOUT + delay)
    _enqueue(scenario, OutboxKind.START, delay=delay)


def _finish(scenario: Scenario, *, reason: str, error: str | None = None) -> None:
    """Walk any status to ``inactive`` through the FSM transitions. Caller saves."""
    if scenario.status in STARTING_STATUSES:
        scenario.request_shutdown()
    if scenario.status == Status.INIT_SHUTDOWN:
        scenario.begin_shutdown()
    if scenario.status == Status.IN_SHUTDOWN_PROCESSING:
        scenario.finish_shutdown()
    scenario.stop_reason = reason
    if error is not None:
        scenario.error = error
    scenario.runner = None
    scenario.fps = 0.0
    scenario.deadline_at = None
    scenario.stream_state = None


@transaction.atomic
def runner_crashed(*, scenario_id: ScenarioId, epoch: int) -> None:
    """The runner failed unexpectedly: let the watchdog restart it (with backoff) right away."""
    scenario = _lock_fenced(scenario_id, epoch)
    scenario.deadline_at = timezone.now()
    scenario.runner = None
    scenario.save()
