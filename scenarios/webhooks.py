"""Delivery of events: a signed POST to the scenario's webhook, and MQTT when configured.

The event row is the outbox: written with its frame's prediction in the runner's fenced
transaction, ``webhook="pending"``. A delivery task takes the row (a short lease on it, so that
the relay does not send it again while the POST is in flight), POSTs outside any transaction,
and records the outcome; failures are retried with exponential backoff and jitter until
MISIS_WEBHOOK_GIVE_UP seconds have passed, then the event is ``failed``. A receiver may get an
event twice only if it answered too late; ``X-Misis-Event`` (the event id) lets it drop the
copy.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from misis import metrics
from scenarios.models import Delivery, Event
from sources.base import SourceError
from sources.egress import post_checked

logger = logging.getLogger(__name__)

DELIVER_TASK = "scenarios.deliver_event"
# What an attempt comes to; counted as misis_webhook_deliveries_total{outcome=...}.
OUTCOMES = (Delivery.DELIVERED.value, "retry", Delivery.FAILED.value)
RELAY_BATCH = 200


def event_json(event: Event) -> dict[str, Any]:
    """An event as GET /event/<id>/ shows it."""
    return {
        "id": str(event.id),
        "seq": event.seq,
        "type": event.type,
        "zone": event.zone,
        "line": event.line,
        "direction": event.direction,
        "track_id": event.track_id,
        "label": event.label,
        "confidence": event.confidence,
        "frame_index": event.frame_index,
        "pts": event.pts,
        "captured_at": event.captured_at.isoformat().replace("+00:00", "Z"),
        "box": event.box,
        "snapshot": f"/event/{event.scenario_id}/{event.seq}/snapshot.jpg"
        if event.snapshot
        else None,
        "webhook": None
        if event.webhook is None
        else {"state": event.webhook, "attempts": event.webhook_attempts},
    }


def signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def dispatch(event_ids: list[str]) -> None:
    """Send the delivery tasks; call on commit of the transaction that wrote the events."""
    for event_id in event_ids:
        current_app.send_task(DELIVER_TASK, args=(event_id,))


def _backoff(attempts: int) -> float:
    base = settings.MISIS_WEBHOOK_BACKOFF_BASE * 2.0 ** max(attempts - 1, 0)
    return min(base, settings.MISIS_WEBHOOK_BACKOFF_MAX) * random.uniform(0.5, 1.0)


def _take(event_id: str) -> Event | None:
    """Lease a pending event whose time has come; None when another task has it or it is done."""
    now = timezone.now()
    with transaction.atomic():
        event = (
            Event.objects.select_for_update(skip_locked=True)
            .select_related("scenario")
            .filter(pk=event_id, webhook=Delivery.PENDING, webhook_next_at__lte=now)
            .first()
        )
        if event is None:
            return None
        event.webhook_attempts += 1
        # In flight: the relay leaves it alone until the POST has had its time.
        event.webhook_next_at = now + timedelta(seconds=settings.MISIS_WEBHOOK_TIMEOUT + 5)
        event.save(update_fields=["webhook_attempts", "webhook_next_at"])
    return event


def deliver(event_id: str) -> str | None:
    """One delivery attempt of a pending event; the outcome, or None when not due."""
    event = _take(event_id)
    if event is None:
        return None
    hook = (event.scenario.params or {}).get("webhook") or {}
    body = json.dumps({**event_json(event), "scenario_id": str(event.scenario_id)}).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Misis-Event": str(event.id),
        "X-Misis-Signature": signature(body, hook.get("secret", "")),
        "User-Agent": "misis-webhook",
    }
    error = None
    try:
        answer = post_checked(
            hook.get("url", ""), body, headers, timeout=settings.MISIS_WEBHOOK_TIMEOUT
        )
        if not 200 <= answer.status < 300:
            error = f"answered HTTP {answer.status}"
    except SourceError as exc:
        error = str(exc)
    now = timezone.now()
    outcome: str
    if error is None:
        outcome = Delivery.DELIVERED
        fields: dict[str, Any] = {
            "webhook": outcome,
            "webhook_next_at": None,
            "webhook_error": None,
        }
    elif (now - event.created_at).total_seconds() >= settings.MISIS_WEBHOOK_GIVE_UP:
        outcome = Delivery.FAILED
        fields = {"webhook": outcome, "webhook_next_at": None, "webhook_error": error}
    else:
        outcome = "retry"
        next_at = now + timedelta(seconds=_backoff(event.webhook_attempts))
        fields = {"webhook_next_at": next_at, "webhook_error": error}
    Event.objects.filter(pk=event.pk, webhook=Delivery.PENDING).update(**fields)
    metrics.record({f"webhook_{outcome}": 1})
    log = logger.info if error is None else logger.warning
    log(
        "scenario %s: event %s webhook to %s: %s (attempt %d)",
        event.scenario_id,
        event.seq,
        urlsplit(hook.get("url", "")).hostname,
        error or "delivered",
        event.webhook_attempts,
    )
    return str(outcome)


def webhook_relay() -> int:
    """Send the delivery tasks that are due (retries, and what the on-commit path missed)."""
    due = list(
        Event.objects.filter(webhook=Delivery.PENDING, webhook_next_at__lte=timezone.now())
        .order_by("webhook_next_at")
        .values_list("pk", flat=True)[:RELAY_BATCH]
    )
    dispatch([str(pk) for pk in due])
    return len(due)
