"""What the API and the admin ask of a scenario: create, start, stop; each under the quota.

A command changes the status and writes its outbox row in one transaction; the row is sent
once that commits (``outbox``).
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction
from django_fsm import can_proceed

from misis.exceptions import ApiError
from scenarios.models import (
    STARTING_STATUSES,
    STOPPING_STATUSES,
    OutboxKind,
    Scenario,
    ScenarioId,
    Status,
    StopReason,
)
from scenarios.services.outbox import enqueue
from scenarios.services.transitions import lock_scenario, next_deadline
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


@transaction.atomic
def scenario_create(
    *, owner: User, source: str, name: str = "", params: dict[str, Any] | None = None
) -> Scenario:
    """Create a scenario in ``init_startup`` and queue its start. Input is already validated.

    Raises QuotaExceeded when the owner has MISIS_QUOTA_ACTIVE_SCENARIOS running already.
    """
    _check_quota(owner.pk)
    scenario = Scenario.objects.create(
        owner=owner, source=source, name=name, params=params or {}, deadline_at=next_deadline()
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
    scenario.deadline_at = next_deadline()
    scenario.save()
    enqueue(scenario, OutboxKind.START)
    logger.info("scenario %s: start requested (epoch %s)", scenario.pk, scenario.epoch)
    return scenario, True
