"""The heartbeat watchdog: a runner that missed its deadline is fenced off by a new epoch and
its scenario restarted (with backoff, up to MISIS_MAX_RESTARTS in a row); a stop whose runner
died is completed."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from scenarios.models import RUNNING_STATUSES, OutboxKind, Scenario, ScenarioId, Status, StopReason
from scenarios.services.outbox import enqueue
from scenarios.services.transitions import finish, start_deadline

logger = logging.getLogger(__name__)


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
        finish(scenario, reason=scenario.stop_reason or StopReason.REQUESTED)
        scenario.save()
        return True
    if scenario.status not in RUNNING_STATUSES:
        return False
    if scenario.failed_restarts >= settings.MISIS_MAX_RESTARTS:
        msg = f"runner failed {scenario.failed_restarts} times in a row; giving up"
        logger.error("scenario %s: %s", scenario.pk, msg)
        finish(scenario, reason=StopReason.ERROR, error=msg)
        scenario.save()
        return True
    logger.warning(
        "scenario %s: runner %s missed its heartbeat (epoch %s); restarting",
        scenario.pk,
        scenario.runner,
        scenario.epoch,
    )
    restart(scenario, counts_as_failure=True)
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


def restart(scenario: Scenario, *, counts_as_failure: bool) -> None:
    """Bump the epoch (fencing off the old runner) and queue a start for the new one.

    Only a failure (a runner that went silent or crashed) counts in ``restarts`` and delays the
    start with backoff; a hand-over by a worker that shuts down (SIGTERM, ``celery control
    shutdown``) is neither."""
    delay = restart_backoff(scenario.failed_restarts) if counts_as_failure else 0.0
    scenario.epoch += 1
    if counts_as_failure:
        scenario.restarts += 1
        scenario.failed_restarts += 1
    scenario.runner = None
    scenario.fps = 0.0
    scenario.deadline_at = start_deadline(delay)
    enqueue(scenario, OutboxKind.START, delay=delay)
