"""Building scenarios in a given status, through the real transitions, and their predictions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.contrib.auth import get_user_model

from scenarios.models import Prediction, Scenario, Status
from scenarios.services import commands

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
    scenario = commands.scenario_create(owner=owner, source=source, params=params)
    for step in PATH_TO[Status(status)]:
        getattr(scenario, step)()
    scenario.save()
    return scenario


PERSON = {
    "label": "person",
    "class_id": 0,
    "confidence": 0.9,
    "x1": 1.0,
    "y1": 2.0,
    "x2": 30.0,
    "y2": 40.0,
}


def make_prediction(scenario: Scenario, frame_index: int = 0, **fields: Any) -> Prediction:
    """A published frame of ``scenario`` (one person box unless ``boxes`` says otherwise)."""
    values: dict[str, Any] = {
        "pts": frame_index / 25,
        "captured_at": datetime.now(UTC),
        "width": 64,
        "height": 48,
        "inference_ms": 3.0,
        "boxes": [PERSON],
        **fields,
    }
    return Prediction.objects.create(
        scenario=scenario, frame_index=frame_index, epoch=scenario.epoch, **values
    )
