"""What the API and the admin ask of a scenario: create, start, stop; each under the quota.

A command changes the status and writes its outbox row in one transaction; the row is sent
once that commits (``outbox``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from celery import current_app
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django_fsm import can_proceed

from misis import keys
from misis.exceptions import ApiError
from misis.redis_client import get_redis
from scenarios.control import signal_stop
from scenarios.models import (
    STARTING_STATUSES,
    STOPPING_STATUSES,
    OutboxKind,
    OutboxMessage,
    Scenario,
    ScenarioId,
    Status,
    StopReason,
)
from scenarios.services.outbox import enqueue
from scenarios.services.transitions import lock_scenario, next_deadline, start_deadline
from scenarios.snapshots import delete_snapshots
from sources.redact import redact

logger = logging.getLogger(__name__)


class TransitionRefused(ApiError):
    """The state machine cannot take the command from the current status (HTTP 409)."""

    status_code = 409

    def __init__(self, status: str) -> None:
        super().__init__(f"not allowed from status {status}")
        self.status = status

    def body(self) -> dict[str, Any]:
        return {"detail": f"command not allowed from status {self.status}", "status": self.status}


class ScenarioGone(ApiError):
    """The scenario was deleted while the request was on its way (HTTP 404)."""

    status_code = 404

    def __init__(self) -> None:
        super().__init__("no such scenario")


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


def _deleted_while_running(owner_id: int) -> int:
    """The owner's scenarios deleted while running in the last MISIS_START_TIMEOUT: their
    runner may still be busy (a source that takes its time to open notices the delete only
    once it has), so each keeps its slot of the quota until then."""
    key = keys.deleted_running(owner_id)
    pipe = get_redis().pipeline(transaction=False)  # one round trip on every start
    pipe.zremrangebyscore(key, "-inf", time.time())
    pipe.zcard(key)
    _, held = pipe.execute()
    return int(held)


def _hold_quota_slot(owner_id: int, scenario_id: ScenarioId) -> None:
    key = keys.deleted_running(owner_id)
    until = time.time() + settings.MISIS_START_TIMEOUT
    pipe = get_redis().pipeline(transaction=False)
    pipe.zadd(key, {str(scenario_id): until})
    pipe.expire(key, int(settings.MISIS_START_TIMEOUT) + 1)
    pipe.execute()


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
    if running.count() + _deleted_while_running(owner_id) >= quota:
        logger.info("user %s: scenario quota of %d reached", owner_id, quota)
        raise QuotaExceeded(quota)


@transaction.atomic
def scenario_create(
    *, owner: User, source: str, name: str = "", params: dict[str, Any] | None = None
) -> Scenario:
    """Create a scenario in ``init_startup`` and queue its start. Input is already validated.

    Raises QuotaExceeded when the owner has MISIS_QUOTA_ACTIVE_SCENARIOS running already.
    """
    _check_quota(owner.pk)
    scenario = Scenario.objects.create(
        owner=owner, source=source, name=name, params=params or {}, deadline_at=start_deadline()
    )
    enqueue(scenario, OutboxKind.START)
    logger.info("scenario %s: created for source %s", scenario.pk, redact(scenario.source))
    return scenario


@transaction.atomic
def scenario_request_stop(*, scenario_id: ScenarioId) -> tuple[Scenario, bool]:
    """Ask for a stop. Returns (scenario, changed); a stop already under way changes nothing."""
    scenario = lock_scenario(scenario_id)
    if scenario.status in STOPPING_STATUSES:
        return scenario, False
    scenario.request_shutdown()
    scenario.stop_reason = StopReason.REQUESTED
    scenario.deadline_at = next_deadline()
    scenario.save()
    enqueue(scenario, OutboxKind.STOP)
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
    scenario = lock_scenario(scenario_id)
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
    scenario.deadline_at = start_deadline()
    scenario.save()
    enqueue(scenario, OutboxKind.START)
    logger.info("scenario %s: start requested (epoch %s)", scenario.pk, scenario.epoch)
    return scenario, True


# The task that sweeps a deleted scenario's leftovers once more (scenarios/tasks.py).
PURGE_TASK = "scenarios.purge_scenario"


def delete_scenario(scenario: Scenario) -> None:
    """Stop the scenario's runner and delete the scenario with its predictions, events, outbox
    rows, stored snapshots and Redis keys.

    Precondition: the caller found ``scenario`` through the visibility selector
    (``selectors.scenario_get``): this checks no owner. Raises ``ScenarioGone`` (404) when a
    concurrent request deleted it first.

    The fence: the row goes in one transaction under its lock, and every runner write locks
    the row by (id, epoch) first, so a runner still holding the old epoch finds no row, gets
    ``LeaseLost`` and publishes nothing (a write that skipped the lock would fail on the foreign
    key at its commit). The stop flag, raised under the lock, makes the runner leave within a
    frame; on commit the lease and the preview go (a runner cannot write a preview without a
    lease, nor renew a lease that is gone), then the snapshots, and a purge task sweeps both
    again once any runner has surely left (``scenario_purge``).
    """
    pk = scenario.pk
    with transaction.atomic():
        # The outbox dispatcher locks a message, then its scenario: take them in that order, or
        # a dispatch in flight and this delete would wait for each other.
        list(OutboxMessage.objects.select_for_update().filter(scenario_id=pk).values_list("pk"))
        locked = (
            Scenario.objects.select_for_update()
            .filter(pk=pk)
            .values_list("epoch", "owner_id", "status")
            .first()
        )
        if locked is None:
            raise ScenarioGone()
        epoch, owner_id, status = locked
        if status != Status.INACTIVE:
            _hold_quota_slot(owner_id, pk)
        # Set even for a stopped scenario: a runner that has not left yet still sees it. Short
        # lived: the runner checks it every 50 ms, and a deleted scenario leaves no key behind.
        signal_stop(pk, epoch, ttl=settings.MISIS_LEASE_TTL)
        # A write to the scenarios table before the partitioned tables, in the order a publish
        # and a partition's DDL take them (scenarios/retention.py): the collector deletes the
        # predictions first, and a partition created or dropped in between would deadlock.
        Scenario.objects.filter(pk=pk).update(updated_at=timezone.now())
        # Django's collector: one DELETE per related table by scenario_id (no signals, so each
        # is a "fast delete", not row by row), then the scenario row.
        _, deleted = Scenario.objects.filter(pk=pk).delete()
        transaction.on_commit(lambda: _after_delete(pk))
    logger.info(
        "scenario %s: deleted (epoch %s) with %s",
        pk,
        epoch,
        ", ".join(f"{n} {label.rsplit('.', 1)[-1].lower()}" for label, n in deleted.items()),
    )


def _after_delete(scenario_id: ScenarioId) -> None:
    # After the commit: the response must not fail for what the purge task does again.
    try:
        scenario_purge(scenario_id=scenario_id, keep_stop=True)
    except Exception:
        logger.exception(
            "scenario %s: purge after delete failed; the purge task sweeps again", scenario_id
        )
    try:
        current_app.send_task(
            PURGE_TASK, args=(str(scenario_id),), countdown=2 * settings.MISIS_LEASE_TTL
        )
    except Exception:
        logger.exception("scenario %s: purge task not sent", scenario_id)


def scenario_purge(*, scenario_id: ScenarioId, keep_stop: bool = False) -> bool:
    """Remove what a deleted scenario left outside PostgreSQL: its Redis keys (misis/keys.py
    ``scenario_keys``) and its stored snapshots. Idempotent; does nothing while the row exists.

    ``keep_stop``: leave the stop flag (right after the delete, for a runner to see; it
    expires within the lease TTL). Returns whether the scenario was gone.
    """
    if Scenario.objects.filter(pk=scenario_id).exists():
        logger.warning("scenario %s: not purged, it exists", scenario_id)
        return False
    names = keys.scenario_keys(scenario_id)
    if keep_stop:
        names.remove(keys.stop(scenario_id))
    get_redis().delete(*names)
    removed = delete_snapshots(scenario_id)
    if removed:
        logger.info("scenario %s: %d stored snapshot(s) removed", scenario_id, removed)
    return True


def delete_owned_scenarios(sender: object, instance: User, **kwargs: object) -> None:
    """A user is being deleted (the admin, ``manage.py shell``): each of their scenarios goes
    through ``delete_scenario`` first, so that no runner, snapshot or Redis key outlives it
    (the cascade alone would delete only the rows). Connected in scenarios/apps.py."""
    for scenario in Scenario.objects.filter(owner_id=instance.pk).order_by("pk"):
        with contextlib.suppress(ScenarioGone):  # deleted meanwhile
            delete_scenario(scenario)
