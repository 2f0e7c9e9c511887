"""Webhook delivery against a receiver that fails the first attempts, then checks the
signature: every event delivered, none twice, a host that became forbidden never contacted."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from pytest_django import Settings

from scenarios.models import Delivery, Event
from scenarios.webhooks import deliver, webhook_relay
from tests.factories import make_event, make_scenario
from tests.media_servers.internal_host import InternalHost

pytestmark = pytest.mark.django_db
SECRET = "0123456789abcdef-secret"


class Receiver:
    """Answers 500 to the first ``fail`` requests, then 204 to those whose signature holds."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.attempts: list[str] = []
        self.delivered: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts.append(self.headers["X-Misis-Event"])
                expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                if len(receiver.attempts) <= receiver.fail:
                    self.send_response(500)
                elif not hmac.compare_digest(self.headers["X-Misis-Signature"], expected):
                    self.send_response(401)
                else:
                    receiver.delivered.append(json.loads(body))
                    self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail=2)
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture(autouse=True)
def _fast_retries(settings: Settings) -> None:
    settings.MISIS_WEBHOOK_BACKOFF_BASE = 0.05
    settings.MISIS_WEBHOOK_BACKOFF_MAX = 0.2
    settings.MISIS_WEBHOOK_TIMEOUT = 3


def hook(receiver: Receiver) -> dict[str, Any]:
    return {"webhook": {"url": receiver.url, "secret": SECRET}}


def pending(scenario: Any, seq: int) -> Event:
    return make_event(scenario, seq, webhook=Delivery.PENDING, webhook_next_at=timezone.now())


def drain(events: list[Event], deadline: float = 20.0) -> None:
    """What the delivery tasks do, in-process: attempt each due event until none is pending."""
    end = time.monotonic() + deadline
    while Event.objects.filter(webhook=Delivery.PENDING).exists():
        assert time.monotonic() < end, "events still pending"
        for event in events:
            deliver(str(event.pk))
        time.sleep(0.05)


def test_every_event_is_delivered_once_signed_after_failures(
    receiver: Receiver, user: User
) -> None:
    scenario = make_scenario(
        owner=user, params={"webhook": {"url": receiver.url, "secret": SECRET}}
    )
    events = [pending(scenario, seq) for seq in range(1, 4)]
    drain(events)
    assert sorted(d["seq"] for d in receiver.delivered) == [1, 2, 3]
    assert {d["scenario_id"] for d in receiver.delivered} == {str(scenario.pk)}
    assert len({d["id"] for d in receiver.delivered}) == 3  # none twice
    assert len(receiver.attempts) == 5  # two refused, three delivered
    states = list(Event.objects.order_by("seq").values_list("webhook", "webhook_attempts"))
    assert all(state == Delivery.DELIVERED for state, _ in states)
    assert sum(attempts for _, attempts in states) == 5


def test_a_delivered_or_leased_event_is_not_sent_again(receiver: Receiver, user: User) -> None:
    receiver.fail = 0
    scenario = make_scenario(
        owner=user, params={"webhook": {"url": receiver.url, "secret": SECRET}}
    )
    event = pending(scenario, 1)
    assert deliver(str(event.pk)) == Delivery.DELIVERED
    assert deliver(str(event.pk)) is None
    assert webhook_relay() == 0
    assert len(receiver.attempts) == 1


def test_retries_give_up_after_the_limit(
    receiver: Receiver, user: User, settings: Settings
) -> None:
    receiver.fail = 100
    settings.MISIS_WEBHOOK_GIVE_UP = 0
    scenario = make_scenario(
        owner=user, params={"webhook": {"url": receiver.url, "secret": SECRET}}
    )
    event = pending(scenario, 1)
    assert deliver(str(event.pk)) == Delivery.FAILED
    event.refresh_from_db()
    assert event.webhook_error is not None
    assert event.webhook == Delivery.FAILED and "500" in event.webhook_error


def test_a_webhook_host_denied_since_is_never_contacted(
    internal_host: InternalHost, user: User
) -> None:
    hook = {"url": f"http://{internal_host.address}/hook", "secret": SECRET}
    scenario = make_scenario(owner=user)
    scenario.params = {"webhook": hook}  # as if it had been allowed when it was set
    scenario.save(update_fields=["params"])
    event = pending(scenario, 1)
    assert deliver(str(event.pk)) == "retry"
    event.refresh_from_db()
    assert event.webhook_error is not None
    assert "deny list" in event.webhook_error
    assert internal_host.untouched()


def test_the_relay_sends_what_is_due(
    receiver: Receiver, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []
    monkeypatch.setattr("scenarios.webhooks.dispatch", lambda ids: sent.extend(ids))
    scenario = make_scenario(
        owner=user, params={"webhook": {"url": receiver.url, "secret": SECRET}}
    )
    due = pending(scenario, 1)
    later = make_event(
        scenario,
        2,
        webhook=Delivery.PENDING,
        webhook_next_at=timezone.now() + timedelta(hours=1),
    )
    assert webhook_relay() == 1
    assert sent == [str(due.pk)] and str(later.pk) not in sent
