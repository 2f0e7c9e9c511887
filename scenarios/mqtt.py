"""Events to MQTT (MISIS_MQTT_URL): each on ``misis/<scenario_id>/events``, QoS 1, with
paho-mqtt (the Eclipse client). A relay task publishes what is pending over one connection
and marks it delivered once the broker has acknowledged it (PUBACK)."""

from __future__ import annotations

import json
import logging
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from django.conf import settings
from django.db import transaction
from paho.mqtt.enums import CallbackAPIVersion

from misis import metrics
from scenarios.models import Delivery, Event
from scenarios.webhooks import event_json

logger = logging.getLogger(__name__)

BATCH = 500


def topic(scenario_id: object) -> str:
    return f"misis/{scenario_id}/events"


def _client() -> mqtt.Client:
    parts = urlsplit(settings.MISIS_MQTT_URL)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", clean_session=True)
    if parts.username:
        client.username_pw_set(parts.username, parts.password)
    if parts.scheme == "mqtts":
        client.tls_set()
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883, keepalive=30)
    client.loop_start()
    return client


def mqtt_relay() -> int:
    """Publish pending events (QoS 1), in seq order per scenario; how many were delivered."""
    if not settings.MISIS_MQTT_URL:
        return 0
    with transaction.atomic():
        events = list(
            Event.objects.select_for_update(skip_locked=True)
            .filter(mqtt=Delivery.PENDING)
            .order_by("scenario_id", "seq")[:BATCH]
        )
        if not events:
            return 0
        client = _client()
        try:
            sent = []
            for event in events:
                payload = json.dumps({**event_json(event), "scenario_id": str(event.scenario_id)})
                info = client.publish(topic(event.scenario_id), payload, qos=1)
                sent.append((event, info))
            delivered = []
            for event, info in sent:
                info.wait_for_publish(timeout=settings.MISIS_WEBHOOK_TIMEOUT)
                if info.is_published():
                    delivered.append(event.pk)
        finally:
            client.loop_stop()
            client.disconnect()
        Event.objects.filter(pk__in=delivered).update(mqtt=Delivery.DELIVERED)
    metrics.record({"mqtt_delivered": len(delivered)})
    if len(delivered) < len(events):
        logger.warning(
            "mqtt: %d of %d events not acknowledged", len(events) - len(delivered), len(events)
        )
    return len(delivered)
