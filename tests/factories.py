"""Building scenarios in a given status, through the real transitions."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

from scenarios import services
from scenarios.models import Scenario, Status

PATH_TO = {
    Status.INIT_STARTUP: [],
    Status.IN_STARTUP_PROCESSING: ["begin_startup"],
    Status.ACTIVE: ["begin_startup", "activate"],
    Status.INIT_SHUTDOWN: ["request_shutdown"],
    Status.IN_SHUTDOWN_PROCESSING: ["request_shutdown", "begin_shutdown"],
    Status.INACTIVE: ["request_shutdown", "begin_shutdown", "finish_shutdown"],
}


def make_scenario(
    status: str = Status.INIT_STARTUP,
    *,
    owner: Any = None,
    source: str = "short.mp4",
    **params: Any,
) -> Scenario:
    """A scenario created by the service (with its outbox row), then walked to ``status``."""
    if owner is None:
        owner, _ = get_user_model().objects.get_or_create(username="factory")
    scenario = services.scenario_create(owner=owner, source=source, params=params)
    for step in PATH_TO[Status(status)]:
        getattr(scenario, step)()
    scenario.save()
    return scenario
