"""The runner's event rows, written inside its fenced publish (scenarios/services.py
``runner_publish``), in the same transaction as the predictions of their frames."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from misis import metrics
from scenarios.models import Delivery, Event, Scenario


@dataclass(frozen=True)
class EventFacts:
    """What a track did, as the analytics engine finds it (analytics/engine.py)."""

    type: str
    zone: str | None
    line: str | None
    direction: str | None
    track_id: int
    label: str
    confidence: float
    frame_index: int
    pts: float
    box: dict[str, float]


@dataclass(frozen=True)
class EventRow:
    """An event as the runner hands it over; ``seq`` counts the scenario's events from 1."""

    seq: int
    facts: EventFacts
    captured_at: datetime
    snapshot: str


def write_events(
    *, scenario: Scenario, epoch: int, rows: list[EventRow], dispatch: Callable[[list[str]], None]
) -> None:
    """Insert ``rows``; precondition: inside the publish's transaction, fence checked.

    Each event is its webhook's outbox row (pending when the scenario has a webhook) and
    MQTT's (pending when MISIS_MQTT_URL is set); ``dispatch`` sends the delivery tasks once
    the transaction commits.
    """
    if not rows:
        return
    now = timezone.now()
    webhook = Delivery.PENDING if (scenario.params or {}).get("webhook") else None
    mqtt = Delivery.PENDING if settings.MISIS_MQTT_URL else None
    created = Event.objects.bulk_create(
        [
            Event(
                scenario=scenario,
                epoch=epoch,
                seq=r.seq,
                **asdict(r.facts),
                captured_at=r.captured_at,
                snapshot=r.snapshot,
                webhook=webhook,
                webhook_next_at=now if webhook else None,
                mqtt=mqtt,
            )
            for r in rows
        ]
    )
    counted: dict[str, float] = {}
    for r in rows:
        counted[f"events_{r.facts.type}"] = counted.get(f"events_{r.facts.type}", 0) + 1
    metrics.record(counted)
    if webhook:
        ids = [str(e.pk) for e in created]
        transaction.on_commit(lambda: dispatch(ids))
