"""Building scenarios in a given status, through the real transitions, and their predictions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone

from scenarios.models import Event, Prediction, Scenario, Status
from scenarios.services import commands, runner_writes

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
    name: str = "",
    params: dict[str, Any] | None = None,
    **fields: Any,
) -> Scenario:
    """A scenario created by the service (with its outbox row), walked to ``status`` through
    the real transitions; then ``fields`` (model fields: ``error``, ``runner``...) are set."""
    if owner is None:
        owner, _ = get_user_model().objects.get_or_create(username="factory")
    scenario = commands.scenario_create(owner=owner, source=source, name=name, params=params or {})
    for step in PATH_TO[Status(status)]:
        getattr(scenario, step)()
    for field, value in fields.items():
        setattr(scenario, field, value)
    scenario.save()
    scenario.refresh_from_db()
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


def make_event(scenario: Scenario, seq: int, **fields: Any) -> Event:
    """An event of ``scenario`` as the runner writes it (a line crossing unless told)."""
    values: dict[str, Any] = {
        "type": "line_cross",
        "line": "entry",
        "direction": "in",
        "track_id": 1,
        "label": "person",
        "confidence": 0.9,
        "frame_index": seq * 10,
        "pts": seq * 0.4,
        "captured_at": datetime.now(UTC),
        "box": {"x1": 1.0, "y1": 2.0, "x2": 30.0, "y2": 40.0},
        **fields,
    }
    return Event.objects.create(scenario=scenario, seq=seq, epoch=scenario.epoch, **values)


def prediction_row(
    i: int,
    captured_at: datetime | None = None,
    *,
    width: int = 320,
    height: int = 240,
    boxes: list[dict[str, Any]] | None = None,
) -> runner_writes.PredictionRow:
    """Frame ``i``'s result as a runner publishes it (25 fps; no boxes unless given)."""
    return runner_writes.PredictionRow(
        frame_index=i,
        pts=i / 25,
        captured_at=captured_at or timezone.now(),
        width=width,
        height=height,
        inference_ms=1.0,
        boxes=boxes or [],
    )
