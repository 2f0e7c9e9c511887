"""Events to MQTT, against a real broker (Debian's mosquitto) the test starts on loopback."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from django.contrib.auth.models import User
from paho.mqtt.enums import CallbackAPIVersion
from pytest_django import Settings

from scenarios.models import Delivery, Event
from scenarios.mqtt import mqtt_relay, topic
from testbed.processes import free_port
from tests.factories import make_event, make_scenario

pytestmark = pytest.mark.django_db
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[str]:
    assert Path(MOSQUITTO).exists(), "mosquitto is missing: ./run.sh --test installs it"
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(config)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        probe = mqtt.Client(CallbackAPIVersion.VERSION2)
        try:
            probe.connect("127.0.0.1", port)
            probe.disconnect()
            break
        except OSError:
            assert time.monotonic() < deadline, "mosquitto did not start"
            time.sleep(0.1)
    yield f"mqtt://127.0.0.1:{port}"
    proc.kill()
    proc.wait()


def subscribe(url: str, pattern: str) -> tuple[mqtt.Client, list[dict[str, Any]], threading.Event]:
    got: list[dict[str, Any]] = []
    ready = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.on_subscribe = lambda *_: ready.set()
    client.on_message = lambda _c, _u, msg: got.append(
        {"topic": msg.topic, "qos": msg.qos, **json.loads(msg.payload)}
    )
    host, port = url.removeprefix("mqtt://").split(":")
    client.connect(host, int(port))
    client.subscribe(pattern, qos=1)
    client.loop_start()
    assert ready.wait(10)
    return client, got, ready


def test_pending_events_are_published_once_in_order(
    broker: str, settings: Settings, user: User
) -> None:
    settings.MISIS_MQTT_URL = broker
    scenario = make_scenario(owner=user)
    for seq in (1, 2, 3):
        make_event(scenario, seq, mqtt=Delivery.PENDING)
    client, got, _ = subscribe(broker, "misis/+/events")
    try:
        assert mqtt_relay() == 3
        assert mqtt_relay() == 0  # delivered ones are not sent again
        deadline = time.monotonic() + 10
        while len(got) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # nothing more arrives
    finally:
        client.loop_stop()
        client.disconnect()
    assert [m["seq"] for m in got] == [1, 2, 3]
    assert {m["topic"] for m in got} == {topic(scenario.pk)}
    assert {m["qos"] for m in got} == {1}
    assert set(Event.objects.values_list("mqtt", flat=True)) == {Delivery.DELIVERED}


def test_without_a_broker_url_nothing_is_sent(settings: Settings, user: User) -> None:
    settings.MISIS_MQTT_URL = ""
    make_event(make_scenario(owner=user), 1, mqtt=Delivery.PENDING)
    assert mqtt_relay() == 0
    assert Event.objects.get().mqtt == Delivery.PENDING
