"""What every service shares: the scenario's row lock, the runner's next deadline, and the
walk of any status to ``inactive`` through the state machine."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from scenarios.models import STARTING_STATUSES, Scenario, ScenarioId, Status, StopReason


def lock_scenario(scenario_id: ScenarioId) -> Scenario:
    return Scenario.objects.select_for_update().get(pk=scenario_id)


def next_deadline(seconds: float | None = None) -> datetime:
    return timezone.now() + timedelta(
        seconds=settings.MISIS_HEARTBEAT_TIMEOUT if seconds is None else seconds
    )


def start_deadline(delay: float = 0.0) -> datetime:
    """When a start sent now (or in ``delay`` seconds) must have been claimed by a runner."""
    return next_deadline(settings.MISIS_START_TIMEOUT + delay)


def finish(scenario: Scenario, *, reason: StopReason | str, error: str | None = None) -> None:
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
